/* SchedJobs: the job board. Every change of a job goes through here: it
 * is stamped, stored, and sent to the WatchJob streams open on it; a job
 * that is over ends those streams. ListJobs and WatchJob read the board.
 *
 * The store is the record (ListJobs and a new WatchJob read it); a
 * migration's progress reaches watchers at once but the store less often
 * (sched_jobs_update with STORE FALSE), and always once the job is over.
 *
 * The table is bounded: finished jobs go once they are older than the
 * retention or beyond the newest max_jobs finished ones (sched_jobs_prune,
 * whenever a job ends and on the service's timer); queued and running
 * jobs always stay. ListJobs answers a page at a time, in creation order;
 * its page token names the last job of the page (creation time and id),
 * so pruning or new jobs between pages neither repeat nor skip any.
 */
#include "sched-private.h"

#include <string.h>

/* A job id is a UUID; anything much longer is not one of ours. */
#define SCHED_JOB_ID_MAX 64

struct _SchedJobs
{
  SchedStore *store;       /* borrowed */
  SchedRegistry *registry; /* borrowed: its clock stamps updates */
  gint64 retention_ms;     /* finished jobs older than this go */
  guint max_jobs;          /* finished jobs kept at most */
  GHashTable *watchers;    /* job id -> GPtrArray of ProtoServerCall */
  SchedEvents *events;     /* borrowed; NULL: none */
};

void
sched_jobs_set_events (SchedJobs *jobs, SchedEvents *events)
{
  jobs->events = events;
}

SchedJobs *
sched_jobs_new (SchedStore *store, SchedRegistry *registry, gint64 retention_ms,
                guint max_jobs)
{
  SchedJobs *jobs = g_new0 (SchedJobs, 1);

  jobs->store = store;
  jobs->registry = registry;
  jobs->retention_ms
      = retention_ms > 0 ? retention_ms : SCHED_DEFAULT_JOB_RETENTION_MS;
  jobs->max_jobs = max_jobs > 0 ? max_jobs : SCHED_DEFAULT_MAX_JOBS;
  jobs->watchers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify)g_ptr_array_unref);
  return jobs;
}

void
sched_jobs_free (SchedJobs *jobs)
{
  sched_jobs_stop (jobs);
  g_hash_table_unref (jobs->watchers);
  g_free (jobs);
}

void
sched_job_msg (const SchedJob *job, Drover__V1__Job *msg)
{
  drover__v1__job__init (msg);
  msg->id = job->id;
  msg->kind = job->kind;
  msg->vm = job->vm;
  msg->state = job->state;
  msg->progress = job->progress;
  msg->message = job->message;
  msg->error = job->error;
  msg->created_ms = job->created_ms;
  msg->updated_ms = job->updated_ms;
  msg->source_host = job->source_host ? job->source_host : (char *)"";
  msg->dest_host = job->dest_host ? job->dest_host : (char *)"";
  msg->migration = job->migration;
  msg->prediction = job->prediction;
  msg->storage = job->storage;
}

guint
sched_jobs_prune (SchedJobs *jobs)
{
  g_autoptr (GError) error = NULL;
  gint64 before = sched_registry_now (jobs->registry) - jobs->retention_ms;
  guint n = 0;

  if (!sched_store_prune_jobs (jobs->store, before, jobs->max_jobs, &n, &error))
    drover_warning (NULL, NULL, NULL, "old jobs not pruned: %s",
                    error->message);
  else if (n > 0)
    drover_debug (NULL, NULL, NULL, "pruned %u finished jobs", n);
  return n;
}

/* JOB is over (and stored): its watch streams end, and the table sheds
 * what the retention no longer keeps. */
static void
jobs_ended (SchedJobs *jobs, const SchedJob *job)
{
  GPtrArray *calls = g_hash_table_lookup (jobs->watchers, job->id);

  if (calls != NULL)
    {
      for (guint i = 0; i < calls->len; i++)
        proto_server_call_finish (calls->pdata[i], PROTO_STATUS_OK, NULL);
      g_hash_table_remove (jobs->watchers, job->id);
    }
  sched_jobs_prune (jobs);
}

void
sched_jobs_update (SchedJobs *jobs, SchedJob *job, gboolean store)
{
  g_autoptr (GError) error = NULL;
  gboolean over = proto_job_state_is_final (job->state);
  GPtrArray *calls;
  Drover__V1__Job msg;

  job->updated_ms = sched_registry_now (jobs->registry);
  if ((store || over) && !sched_store_put_job (jobs->store, job, &error))
    drover_warning (job->vm, job->id, NULL, "job not stored: %s",
                    error->message);

  sched_events_job (jobs->events, job);
  calls = g_hash_table_lookup (jobs->watchers, job->id);
  if (calls != NULL)
    {
      sched_job_msg (job, &msg);
      for (guint i = 0; i < calls->len; i++)
        proto_server_call_send (calls->pdata[i], &msg.base);
    }
  if (over)
    jobs_ended (jobs, job);
}

void
sched_jobs_set (SchedJobs *jobs, SchedJob *job, const char *state,
                double progress, const char *message, const char *error)
{
  g_free (job->state);
  job->state = g_strdup (state);
  job->progress = progress;
  if (message != NULL)
    {
      g_free (job->message);
      job->message = g_strdup (message);
    }
  if (error != NULL)
    {
      g_free (job->error);
      job->error = g_strdup (error);
    }
  sched_jobs_update (jobs, job, TRUE);
}

void
sched_jobs_stop (SchedJobs *jobs)
{
  GHashTableIter iter;
  GPtrArray *calls;

  /* Finishing a call that a stopped server has detached only frees it,
   * so this is safe on either side of proto_server_stop. */
  g_hash_table_iter_init (&iter, jobs->watchers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&calls))
    for (guint i = 0; i < calls->len; i++)
      proto_server_call_finish (calls->pdata[i], PROTO_STATUS_UNAVAILABLE,
                                "the scheduler is shutting down");
  g_hash_table_remove_all (jobs->watchers);
}

/* --- ListJobs and WatchJob --------------------------------------------- */

/* sched_job_msg as a SchedMsgFill. */
static void
job_msg (gconstpointer row, gpointer msg, gpointer user_data)
{
  sched_job_msg (row, msg);
}

char *
sched_jobs_page_token (const SchedJob *last)
{
  return g_strdup_printf ("%" G_GINT64_FORMAT "/%s", last->created_ms,
                          last->id);
}

gboolean
sched_jobs_parse_page_token (const char *token, gint64 *after_ms,
                             char **after_id, GError **error)
{
  const char *slash = token ? strchr (token, '/') : NULL;
  const char *p = token;
  const char *id;
  guint64 ms = 0;
  gboolean negative = FALSE;
  gsize n_digits = 0;

  if (slash == NULL)
    goto bad;
  /* -?[0-9]{1,18} '/' [0-9a-f-]{1,SCHED_JOB_ID_MAX}: what
   * sched_jobs_page_token writes, and nothing else. */
  if (*p == '-')
    {
      negative = TRUE;
      p++;
    }
  for (; p < slash; p++, n_digits++)
    {
      if (!g_ascii_isdigit (*p) || n_digits >= 18)
        goto bad;
      ms = ms * 10 + (guint64)(*p - '0');
    }
  id = slash + 1;
  if (n_digits == 0 || id[0] == '\0' || strlen (id) > SCHED_JOB_ID_MAX)
    goto bad;
  for (p = id; *p; p++)
    if (!(g_ascii_isdigit (*p) || (*p >= 'a' && *p <= 'f') || *p == '-'))
      goto bad;
  *after_ms = negative ? -(gint64)ms : (gint64)ms;
  *after_id = g_strdup (id);
  return TRUE;

bad:
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "bad page token (give the next_page_token of a previous "
               "reply, or none for the first page)");
  return FALSE;
}

void
sched_jobs_handle_list (ProtoServerCall *call, const ProtobufCMessage *request,
                        gpointer user_data)
{
  SchedJobs *jobs = user_data;
  const Drover__V1__ListJobsRequest *req = (const void *)request;
  Drover__V1__ListJobsReply reply = DROVER__V1__LIST_JOBS_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) page = NULL;
  g_autofree char *after_id = NULL;
  g_autofree char *next = NULL;
  gint64 after_ms = 0;
  guint size = req->page_size == 0 ? SCHED_JOBS_PAGE_DEFAULT
                                   : MIN (req->page_size, SCHED_JOBS_PAGE_MAX);

  if (req->page_token[0] == '\0'
      || sched_jobs_parse_page_token (req->page_token, &after_ms, &after_id,
                                      &error))
    page = sched_store_list_jobs_after (jobs->store, after_ms, after_id,
                                        size + 1, &error);
  /* One more than the page says whether another page follows. */
  if (page != NULL && page->len > size)
    {
      g_ptr_array_set_size (page, size);
      next = sched_jobs_page_token (page->pdata[size - 1]);
      reply.next_page_token = next;
    }
  sched_call_reply_rows (call, &reply.base, page, job_msg, NULL, error);
}

static void
watch_cancelled (gpointer data, gpointer user_data)
{
  ProtoServerCall *call = data;
  SchedJobs *jobs = user_data;
  GHashTableIter iter;
  GPtrArray *calls;

  g_hash_table_iter_init (&iter, jobs->watchers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&calls))
    if (g_ptr_array_remove (calls, call))
      {
        if (calls->len == 0)
          g_hash_table_iter_remove (&iter);
        break;
      }
  proto_server_call_finish (call, PROTO_STATUS_CANCELLED, "cancelled");
}

void
sched_jobs_handle_watch (ProtoServerCall *call, const ProtobufCMessage *request,
                         gpointer user_data)
{
  SchedJobs *jobs = user_data;
  const Drover__V1__WatchJobRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  GPtrArray *calls;
  Drover__V1__Job msg;

  if (strlen (req->id) > SCHED_JOB_ID_MAX)
    {
      proto_server_call_fail (call, PROTO_STATUS_INVALID_ARGUMENT,
                              "job id too long");
      return;
    }
  job = sched_store_get_job (jobs->store, req->id, &error);
  if (job == NULL)
    {
      sched_call_fail (call, error);
      return;
    }

  sched_job_msg (job, &msg);
  proto_server_call_send (call, &msg.base);
  if (proto_job_state_is_final (job->state))
    {
      proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
      return;
    }

  calls = g_hash_table_lookup (jobs->watchers, job->id);
  if (calls == NULL)
    {
      calls = g_ptr_array_new ();
      g_hash_table_insert (jobs->watchers, g_strdup (job->id), calls);
    }
  g_ptr_array_add (calls, call);
  proto_server_call_set_cancel_func (call, watch_cancelled, jobs);
}
