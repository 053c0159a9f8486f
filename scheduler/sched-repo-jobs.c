/* SchedRepos' jobs: VerifyBackups and GcRepo run on the agent that has
 * the repository open; its progress stream updates the job. */
#include "sched-repos-private.h"

#include <string.h>

/* One verify or gc job in flight. */
typedef struct
{
  SchedRepos *owner;
  SchedJob *job;
  char *repo;
  char *host;
  gint64 last_store_us;
} RepoOp;

void
sched_repo_op_free (gpointer data)
{
  RepoOp *op = data;

  sched_job_free (op->job);
  g_free (op->repo);
  g_free (op->host);
  g_free (op);
}

static SchedRepos *
repos_of (SchedService *svc)
{
  return svc->repos;
}

/* The job's message for progress P. Caller frees. */
static char *
describe (const RepoOp *op, const Drover__V1__StorageProgress *p)
{
  gboolean gc = strcmp (op->job->kind, PROTO_JOB_KIND_GC) == 0;
  const Drover__V1__VerifyResult *v = p->verify;

  if (gc && p->gc)
    return g_strdup_printf ("gc of repository %s on host %s: %" G_GUINT64_FORMAT
                            " chunks swept, %" G_GUINT64_FORMAT " bytes freed",
                            op->repo, op->host, p->gc->chunks_swept,
                            p->gc->bytes_freed);
  if (v)
    return g_strdup_printf ("verify of repository %s on host %s: %u backups, "
                            "%" G_GUINT64_FORMAT " chunks checked, %zu bad "
                            "chunks, %zu bad manifests",
                            op->repo, op->host, v->backups, v->chunks, v->n_bad,
                            v->n_bad_manifests);
  if (p->total > 0)
    return g_strdup_printf ("%s of repository %s: %s, %" G_GUINT64_FORMAT
                            " of %" G_GUINT64_FORMAT " chunks",
                            op->job->kind, op->repo, p->phase, p->processed,
                            p->total);
  return g_strdup_printf ("%s of repository %s: %s", op->job->kind, op->repo,
                          p->phase);
}

static void
on_progress (const ProtobufCMessage *msg, gpointer data)
{
  RepoOp *op = data;
  const Drover__V1__StorageProgress *p = (const void *)msg;
  gint64 now = g_get_monotonic_time ();
  gboolean store = now - op->last_store_us >= G_USEC_PER_SEC
                   || strcmp (p->phase, PROTO_STOR_PHASE_COMPLETED) == 0;

  proto_msg_free (op->job->storage);
  op->job->storage = proto_msg_copy (msg);
  if (sched_storage_fraction (p) >= 0)
    op->job->progress
        = MAX (op->job->progress, MIN (0.99, sched_storage_fraction (p)));
  g_free (op->job->message);
  op->job->message = describe (op, p);
  if (store)
    op->last_store_us = now;
  sched_jobs_update (op->owner->svc->jobs, op->job, store);
}

static void
on_end (const GError *error, gpointer data)
{
  RepoOp *op = data;
  SchedService *svc = op->owner->svc;
  const Drover__V1__StorageProgress *last = op->job->storage;
  g_autofree char *id = g_strdup (op->job->id);
  g_autofree char *msg = NULL;

  if (last && strcmp (last->phase, PROTO_STOR_PHASE_COMPLETED) == 0)
    {
      const Drover__V1__VerifyResult *v = last->verify;
      gsize bad = v ? v->n_bad + v->n_bad_manifests : 0;

      msg = describe (op, last);
      drover_message (NULL, op->job->id, op->host, "%s", msg);
      if (v)
        sched_events_emit (svc->events, SCHED_EVENT_BACKUP_VERIFIED, NULL,
                           op->host, bad ? "bad" : "ok", NULL, "%s", msg);
      else
        sched_events_emit (svc->events, SCHED_EVENT_REPO_GC, NULL, op->host,
                           NULL, NULL, "%s", msg);
      sched_jobs_set (svc->jobs, op->job, PROTO_JOB_DONE, 1.0, msg, NULL);
    }
  else
    {
      msg = sched_storage_failure (last, error, op->host, op->owner->stopped);
      drover_message (NULL, op->job->id, op->host, "%s of repository %s: %s",
                      op->job->kind, op->repo, msg);
      sched_jobs_set (svc->jobs, op->job, PROTO_JOB_FAILED, op->job->progress,
                      NULL, msg);
    }
  g_hash_table_remove (op->owner->ops, id);
}

/* Starts a job of KIND on repository REPO ("": the only one) with REQ
 * (its repo and job id are set here) on the agent's METHOD; replies to
 * CALL with the job. */
static void
start_job (SchedService *svc, ProtoServerCall *call, const char *kind,
           const char *repo, Drover__V1__AgentRepoRequest *req, guint method)
{
  SchedRepos *r = repos_of (svc);
  g_autofree char *name = g_strdup (repo), *host = NULL;
  ProtoClient *client;
  Drover__V1__Job msg;
  RepoOp *op;

  if (r->stopped)
    {
      g_autoptr (GError) error = g_error_new_literal (
          SCHED_ERROR, SCHED_ERROR_UNAVAILABLE, "the scheduler is stopping");

      sched_call_fail (call, error);
      return;
    }
  client = sched_repos_client_for (svc, call, &name, &host);
  if (!client)
    return;
  op = g_new0 (RepoOp, 1);
  op->owner = r;
  op->repo = g_steal_pointer (&name);
  op->host = g_steal_pointer (&host);
  op->job = sched_job_new (kind, "", PROTO_JOB_RUNNING,
                           sched_registry_now (svc->registry));
  g_free (op->job->source_host);
  op->job->source_host = g_strdup (op->host);
  op->last_store_us = g_get_monotonic_time ();
  g_hash_table_insert (r->ops, g_strdup (op->job->id), op);
  {
    g_autofree char *first = g_strdup_printf ("%s of repository %s on host %s",
                                              kind, op->repo, op->host);

    sched_jobs_set (svc->jobs, op->job, PROTO_JOB_RUNNING, 0.01, first, NULL);
    drover_message (NULL, op->job->id, op->host, "%s", first);
  }
  req->job_id = op->job->id;
  req->repo = op->repo;
  /* The reply first: the stream's callbacks run from the main loop. */
  sched_job_msg (op->job, &msg);
  proto_server_call_reply (call, &msg.base);
  sched_agents_stream (svc->agents, client, method, &req->base, on_progress,
                       on_end, op);
}

/* Most backup ids one VerifyBackups may name. */
#define MAX_VERIFY_IDS 4096

void
sched_repos_handle_verify (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__VerifyBackupsRequest *req = (const void *)request;
  Drover__V1__AgentRepoRequest fwd = DROVER__V1__AGENT_REPO_REQUEST__INIT;
  g_autoptr (GError) error = NULL;

  if (req->n_backup_ids == 0 && !req->all)
    g_set_error_literal (&error, SCHED_ERROR, SCHED_ERROR_INVALID,
                         "name the backups to verify, or all of them");
  else if (req->n_backup_ids > 0 && req->all)
    g_set_error_literal (&error, SCHED_ERROR, SCHED_ERROR_INVALID,
                         "give backup ids or all, not both");
  else if (req->n_backup_ids > MAX_VERIFY_IDS)
    g_set_error (&error, SCHED_ERROR, SCHED_ERROR_INVALID,
                 "at most %d backups per verify", MAX_VERIFY_IDS);
  if (error)
    {
      sched_call_fail (call, error);
      return;
    }
  fwd.all = req->all;
  fwd.n_backup_ids = req->n_backup_ids;
  fwd.backup_ids = req->backup_ids;
  start_job (svc, call, PROTO_JOB_KIND_VERIFY, req->repo, &fwd,
             DROVER_AGENT_METHOD_VERIFY_BACKUPS);
}

void
sched_repos_handle_gc (ProtoServerCall *call, const ProtobufCMessage *request,
                       gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__RepoRequest *req = (const void *)request;
  Drover__V1__AgentRepoRequest fwd = DROVER__V1__AGENT_REPO_REQUEST__INIT;

  start_job (svc, call, PROTO_JOB_KIND_GC, req->name, &fwd,
             DROVER_AGENT_METHOD_GC_REPO);
}
