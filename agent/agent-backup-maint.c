/* Repository maintenance on this host (issue 14): AttachRepo,
 * GetRepoStatus, PruneBackups (unary) and VerifyBackups, GcRepo
 * (streams of StorageProgress). The work is the repository library's
 * (storage/stor-repo.h); this file checks what comes from the wire,
 * names the repository through the registry (agent-backup-repos.c), and
 * turns results into messages.
 *
 * Verify and gc run on the stream's own thread and stop when the caller
 * cancels (the library watches the GCancellable).
 */
#include "agent-backup-private.h"

#include <string.h>

/* Most backup ids one VerifyBackups may name. */
#define MAX_VERIFY_IDS 4096
/* Progress messages of a verify: at most about four a second. */
#define PUSH_INTERVAL_US (250 * 1000)

ProtobufCMessage *
agent_backup_attach_repo (Agent *agent, const AgentCaller *caller,
                          const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentRepoRequest *req = (const void *)request;

  if (!agent_backup_repos_attach (agent, req->repo, req->path, error))
    return NULL;
  return agent_service_empty_reply ();
}

static gint64
to_ms (gint64 seconds)
{
  return seconds * 1000;
}

ProtobufCMessage *
agent_backup_repo_status (Agent *agent, const AgentCaller *caller,
                          const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentRepoRequest *req = (const void *)request;
  g_autoptr (StorRepo) repo
      = agent_backup_repos_lookup (agent, req->repo, error);
  Drover__V1__RepoStatus *m;
  StorRepoStatus st;

  if (!repo || !stor_repo_status (repo, &st, error))
    return NULL;
  m = g_new0 (Drover__V1__RepoStatus, 1);
  drover__v1__repo_status__init (m);
  m->name = proto_msg_strdup (req->repo);
  m->host = proto_msg_strdup (agent->config.name);
  m->disk_bytes = st.disk_bytes;
  m->chunks = st.chunks;
  m->raw_bytes = st.raw_bytes;
  m->stored_bytes = st.stored_bytes;
  m->backups = st.backups;
  m->logical_bytes = st.logical_bytes;
  m->dedup_ratio = st.dedup_ratio;
  m->compression_ratio = st.compression_ratio;
  m->last_verify_ms = to_ms (st.last_verify);
  m->last_gc_ms = to_ms (st.last_gc);
  m->last_gc_freed = st.last_gc_freed;
  return (ProtobufCMessage *)m;
}

ProtobufCMessage *
agent_backup_prune (Agent *agent, const AgentCaller *caller,
                    const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentPruneRequest *req = (const void *)request;
  StorRepoKeep keep = { req->keep_last,   req->keep_hourly,  req->keep_daily,
                        req->keep_weekly, req->keep_monthly, req->keep_yearly };
  g_autoptr (StorRepo) repo = NULL;
  g_autoptr (GPtrArray) items = NULL;
  g_autoptr (GError) local = NULL;
  Drover__V1__PruneBackupsReply *m;
  guint removed = 0;

  if (!proto_name_validate ("VM", req->vm, error))
    return NULL;
  repo = agent_backup_repos_lookup (agent, req->repo, error);
  if (!repo)
    return NULL;
  items = stor_repo_prune (repo, req->vm, &keep, req->dry_run, &local);
  /* A prune that failed on one backup (a running writer's parent) has
   * still done the others: report them, then the failure. */
  if (!items)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                  "prune of VM %s in repository %s: ", req->vm,
                                  req->repo);
      return NULL;
    }
  m = g_new0 (Drover__V1__PruneBackupsReply, 1);
  drover__v1__prune_backups_reply__init (m);
  m->repo = proto_msg_strdup (req->repo);
  m->host = proto_msg_strdup (agent->config.name);
  m->dry_run = req->dry_run;
  m->n_backups = items->len;
  m->backups = g_new0 (Drover__V1__PrunedBackup *, items->len);
  m->removed = g_new0 (char *, items->len);
  for (guint i = 0; i < items->len; i++)
    {
      const StorRepoPruneItem *it = items->pdata[i];
      Drover__V1__PrunedBackup *b = g_new0 (Drover__V1__PrunedBackup, 1);

      drover__v1__pruned_backup__init (b);
      b->id = proto_msg_strdup (it->id);
      b->time_ms = to_ms (it->time);
      b->kept_by = proto_msg_strdup (it->reason ? it->reason : "removed");
      m->backups[i] = b;
      if (!it->reason)
        m->removed[removed++] = proto_msg_strdup (it->id);
    }
  m->n_removed = removed;
  drover_message (req->vm, req->job_id[0] ? req->job_id : NULL, NULL,
                  "prune in repository %s: %u of %u backups %s", req->repo,
                  removed, items->len,
                  req->dry_run ? "would be removed (dry run)" : "removed");
  return (ProtobufCMessage *)m;
}

/* --- the streams ------------------------------------------------------------
 */

typedef struct
{
  Agent *agent;
  const Drover__V1__AgentRepoRequest *req; /* owned by the call */
  gboolean gc;
  AgentStream *stream;
  gint64 last_push_us; /* progress calls come one at a time */
} MaintCall;

static Drover__V1__StorageProgress *
progress_new (const char *phase, guint64 done, guint64 total,
              const char *error_msg)
{
  Drover__V1__StorageProgress *m = g_new0 (Drover__V1__StorageProgress, 1);

  drover__v1__storage_progress__init (m);
  m->phase = proto_msg_strdup (phase);
  m->error = proto_msg_strdup (error_msg);
  m->processed = done;
  m->total = total;
  m->eta_s = -1;
  return m;
}

/* From the library's threads, one call at a time. */
static void
on_verify_progress (guint64 done, guint64 total, gpointer data)
{
  MaintCall *c = data;
  gint64 now = g_get_monotonic_time ();

  agent_fault_crash ("verify-crash-reading");
  if (now - c->last_push_us < PUSH_INTERVAL_US && done < total)
    return;
  c->last_push_us = now;
  agent_stream_push (
      c->stream, (ProtobufCMessage *)progress_new (PROTO_STOR_PHASE_VERIFYING,
                                                   done, total, NULL));
}

static char **
strv_copy (GPtrArray *strings, gsize *n)
{
  char **out = g_new0 (char *, strings ? strings->len + 1 : 1);

  *n = strings ? strings->len : 0;
  for (gsize i = 0; i < *n; i++)
    out[i] = proto_msg_strdup (strings->pdata[i]);
  return out;
}

static Drover__V1__VerifyResult *
verify_msg (const StorRepoVerifyResult *r)
{
  Drover__V1__VerifyResult *m = g_new0 (Drover__V1__VerifyResult, 1);

  drover__v1__verify_result__init (m);
  m->backups = r->backups;
  m->chunks = r->chunks;
  m->bytes = r->bytes;
  m->bad_manifests = strv_copy (r->bad_manifests, &m->n_bad_manifests);
  m->n_bad = r->bad->len;
  m->bad = g_new0 (Drover__V1__BadChunk *, r->bad->len);
  for (guint i = 0; i < r->bad->len; i++)
    {
      const StorRepoBadChunk *b = r->bad->pdata[i];
      Drover__V1__BadChunk *bm = g_new0 (Drover__V1__BadChunk, 1);

      drover__v1__bad_chunk__init (bm);
      bm->digest = proto_msg_strdup (b->digest);
      bm->missing = b->missing;
      bm->message = proto_msg_strdup (b->message);
      bm->backup_ids = strv_copy (b->backups, &bm->n_backup_ids);
      m->bad[i] = bm;
    }
  return m;
}

static Drover__V1__GcResult *
gc_msg (const StorRepoGcResult *r)
{
  Drover__V1__GcResult *m = g_new0 (Drover__V1__GcResult, 1);

  drover__v1__gc_result__init (m);
  m->chunks_marked = r->chunks_marked;
  m->chunks_swept = r->chunks_swept;
  m->bytes_freed = r->bytes_freed;
  m->chunks_kept_recent = r->chunks_kept_recent;
  m->tmp_removed = r->tmp_removed;
  m->stale_writers = strv_copy (r->stale_writers, &m->n_stale_writers);
  return m;
}

/* The backup ids REQ names, checked (NULL: all); FALSE with ERROR for a
 * bad id, too many, or neither ids nor ALL. */
static gboolean
verify_ids (const Drover__V1__AgentRepoRequest *req, GPtrArray **ids,
            GError **error)
{
  *ids = NULL;
  if (req->n_backup_ids == 0)
    {
      if (req->all)
        return TRUE;
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "verify needs backup ids or all");
      return FALSE;
    }
  if (req->n_backup_ids > MAX_VERIFY_IDS)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "verify takes at most %d backup ids", MAX_VERIFY_IDS);
      return FALSE;
    }
  *ids = g_ptr_array_new ();
  for (gsize i = 0; i < req->n_backup_ids; i++)
    {
      if (!stor_repo_id_validate (req->backup_ids[i], error))
        {
          g_clear_pointer (ids, g_ptr_array_unref);
          return FALSE;
        }
      g_ptr_array_add (*ids, req->backup_ids[i]);
    }
  g_ptr_array_add (*ids, NULL);
  return TRUE;
}

static gboolean
maint_run (MaintCall *c, Drover__V1__StorageProgress **final, GError **error)
{
  const Drover__V1__AgentRepoRequest *req = c->req;
  GCancellable *cancel = agent_stream_get_cancellable (c->stream);
  const char *job = req->job_id[0] ? req->job_id : NULL;
  g_autoptr (StorRepo) repo
      = agent_backup_repos_lookup (c->agent, req->repo, error);
  g_autoptr (GPtrArray) ids = NULL;

  if (!repo)
    return FALSE;
  if (c->gc)
    {
      g_autoptr (StorRepoGcResult) r = NULL;

      agent_stream_push (c->stream,
                         (ProtobufCMessage *)progress_new (
                             PROTO_STOR_PHASE_COLLECTING, 0, 0, NULL));
      r = stor_repo_gc (repo, STOR_REPO_GC_MARGIN_S, cancel, error);
      if (!r)
        return FALSE;
      agent_metrics_repo_gc (c->agent->metrics, req->repo, r->bytes_freed);
      drover_message (NULL, job, NULL,
                      "gc of repository %s: %" G_GUINT64_FORMAT
                      " chunks swept, %" G_GUINT64_FORMAT
                      " bytes freed, %" G_GUINT64_FORMAT " kept as too recent",
                      req->repo, r->chunks_swept, r->bytes_freed,
                      r->chunks_kept_recent);
      *final = progress_new (PROTO_STOR_PHASE_COMPLETED, r->chunks_swept,
                             r->chunks_swept, NULL);
      (*final)->gc = gc_msg (r);
      return TRUE;
    }

  g_autoptr (StorRepoVerifyResult) r = NULL;

  if (!verify_ids (req, &ids, error))
    return FALSE;
  agent_stream_push (c->stream, (ProtobufCMessage *)progress_new (
                                    PROTO_STOR_PHASE_PREPARING, 0, 0, NULL));
  r = stor_repo_verify (repo, ids ? (const char *const *)ids->pdata : NULL,
                        on_verify_progress, c, cancel, error);
  if (!r)
    return FALSE;
  agent_metrics_repo_verify (c->agent->metrics, req->repo,
                             r->bad->len + r->bad_manifests->len);
  drover_message (NULL, job, NULL,
                  "verify of repository %s: %u backups, %" G_GUINT64_FORMAT
                  " chunks checked, %u bad chunks, %u bad manifests",
                  req->repo, r->backups, r->chunks, r->bad->len,
                  r->bad_manifests->len);
  *final
      = progress_new (PROTO_STOR_PHASE_COMPLETED, r->chunks, r->chunks, NULL);
  (*final)->verify = verify_msg (r);
  return TRUE;
}

static gboolean
maint_call_run (AgentStream *stream, gpointer data, GError **error)
{
  MaintCall *c = data;
  Drover__V1__StorageProgress *final = NULL;

  c->stream = stream;
  if (maint_run (c, &final, error))
    {
      agent_stream_push (stream, (ProtobufCMessage *) final);
      return TRUE;
    }
  drover_message (NULL, c->req->job_id[0] ? c->req->job_id : NULL, NULL,
                  "%s of repository %s: %s", c->gc ? "gc" : "verify",
                  c->req->repo, (*error)->message);
  agent_stream_push (
      stream, (ProtobufCMessage *)progress_new (PROTO_STOR_PHASE_FAILED, 0, 0,
                                                (*error)->message));
  return FALSE;
}

static void
maint_call_free (gpointer data)
{
  MaintCall *c = data;

  agent_unref (c->agent);
  g_free (c);
}

static void
start (ProtoServerCall *call, const ProtobufCMessage *req, gpointer data,
       gboolean gc)
{
  MaintCall *c = g_new0 (MaintCall, 1);

  c->agent = agent_ref (data);
  c->req = (const void *)req;
  c->gc = gc;
  agent_stream_start (call, c->agent->ctx, gc ? "repo-gc" : "backup-verify",
                      maint_call_run, c, maint_call_free);
}

void
agent_backup_verify (ProtoServerCall *call, const ProtobufCMessage *req,
                     gpointer data)
{
  start (call, req, data, FALSE);
}

void
agent_backup_gc (ProtoServerCall *call, const ProtobufCMessage *req,
                 gpointer data)
{
  start (call, req, data, TRUE);
}
