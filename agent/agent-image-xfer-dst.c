/* AgentImageXfers: the image streams this agent expects.
 *
 * A job registers a sink (agent_image_xfer_expect or _register); when the
 * migration listener accepts the job's image stream (MigDstConfig.image,
 * agent-mig-dst.c) a thread of the job reads it with agent_image_xfer_read
 * and the sink's done reports the result. One stream per job: the token
 * admits one, and a second one finds the job taken and is closed.
 * agent_image_xfer_forget closes the stream (through mig_dst_forget, so a
 * transfer still running ends with an early end and removes its files)
 * and joins the thread before the sink's data is freed.
 */
#include "agent-image-xfer.h"
#include "agent-private.h"

#include <string.h>
#include <unistd.h>

typedef struct
{
  char *job_id;
  AgentImageXferSink sink; /* what is a copy */
  GThread *thread;         /* once the stream came */
  int fd;
} Expected;

struct _AgentImageXfers
{
  GMutex lock;
  GHashTable *jobs; /* job id -> Expected */
};

static void
expected_free (Expected *e)
{
  if (e->thread)
    g_thread_join (e->thread);
  if (e->sink.destroy)
    e->sink.destroy (e->sink.user_data);
  g_free ((char *)e->sink.what);
  g_free (e->job_id);
  g_free (e);
}

AgentImageXfers *
agent_image_xfers_new (void)
{
  AgentImageXfers *x = g_new0 (AgentImageXfers, 1);

  g_mutex_init (&x->lock);
  x->jobs = g_hash_table_new (g_str_hash, g_str_equal);
  return x;
}

void
agent_image_xfers_free (AgentImageXfers *x)
{
  GHashTableIter it;
  gpointer value;

  if (!x)
    return;
  /* The listener is gone: every stream is closed, the threads end. */
  g_hash_table_iter_init (&it, x->jobs);
  while (g_hash_table_iter_next (&it, NULL, &value))
    expected_free (value);
  g_hash_table_destroy (x->jobs);
  g_mutex_clear (&x->lock);
  g_free (x);
}

static gpointer
receive_thread (gpointer data)
{
  Expected *e = data;
  g_autoptr (GPtrArray) paths = NULL;
  g_autoptr (GError) error = NULL;

  paths = agent_image_xfer_read (e->fd, e->job_id, &e->sink, &error);
  if (!paths)
    drover_message (NULL, e->job_id, NULL, "image transfer for %s: %s",
                    e->sink.what, error->message);
  close (e->fd);
  return NULL;
}

void
agent_image_xfers_accept (AgentImageXfers *x, const char *job_id, int fd)
{
  Expected *e;
  gboolean taken = FALSE;

  g_mutex_lock (&x->lock);
  e = g_hash_table_lookup (x->jobs, job_id);
  if (e && !e->thread)
    {
      e->fd = fd;
      e->thread = g_thread_new ("image-xfer", receive_thread, e);
      taken = TRUE;
    }
  g_mutex_unlock (&x->lock);
  if (!taken)
    close (fd);
}

static gboolean
xfers_add (AgentImageXfers *x, const char *job_id,
           const AgentImageXferSink *sink, GError **error)
{
  Expected *e;

  g_mutex_lock (&x->lock);
  if (g_hash_table_contains (x->jobs, job_id))
    {
      g_mutex_unlock (&x->lock);
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "image transfer %s is already expected here", job_id);
      return FALSE;
    }
  e = g_new0 (Expected, 1);
  e->job_id = g_strdup (job_id);
  e->sink = *sink;
  e->sink.what = g_strdup (sink->what ? sink->what : job_id);
  e->fd = -1;
  g_hash_table_insert (x->jobs, e->job_id, e);
  g_mutex_unlock (&x->lock);
  return TRUE;
}

static AgentImageXfers *
xfers_of (Agent *agent, GError **error)
{
  AgentImageXfers *x
      = agent->mig_dst ? agent_mig_dst_get_xfers (agent->mig_dst) : NULL;

  if (!x)
    g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_UNAVAILABLE,
                         "this agent takes no image transfers");
  return x;
}

gboolean
agent_image_xfer_register (Agent *agent, const char *job_id,
                           const AgentImageXferSink *sink, GError **error)
{
  AgentImageXfers *x = xfers_of (agent, error);

  if (!x)
    return FALSE;
  if (!mig_job_id_valid (job_id) || !sink->place)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "an image transfer needs a job id of 1-64 "
                           "characters of [A-Za-z0-9_-] and a place "
                           "function");
      return FALSE;
    }
  return xfers_add (x, job_id, sink, error);
}

gboolean
agent_image_xfer_expect (Agent *agent, const char *job_id,
                         const char *source_host,
                         const AgentImageXferSink *sink, guint ttl_ms,
                         char **token, char **channel_address, GError **error)
{
  MigDst *dst;
  g_autoptr (GError) local = NULL;

  if (!agent_image_xfer_register (agent, job_id, sink, error))
    return FALSE;
  dst = agent_mig_dst_get_dst (agent->mig_dst);
  *token = mig_dst_expect_kinds (dst, job_id, source_host,
                                 MIG_TOKEN_KIND (MIG_CHANNEL_KIND_IMAGE),
                                 ttl_ms, &local);
  if (!*token)
    {
      Expected *e;
      AgentImageXfers *x = agent_mig_dst_get_xfers (agent->mig_dst);

      g_mutex_lock (&x->lock);
      e = g_hash_table_lookup (x->jobs, job_id);
      g_hash_table_steal (x->jobs, job_id);
      g_mutex_unlock (&x->lock);
      e->sink.destroy = NULL; /* the caller keeps its data on failure */
      expected_free (e);
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                           local->message);
      return FALSE;
    }
  *channel_address = g_strdup (agent_mig_dst_get_address (agent->mig_dst));
  return TRUE;
}

void
agent_image_xfer_forget (Agent *agent, const char *job_id)
{
  AgentImageXfers *x = xfers_of (agent, NULL);
  Expected *e;

  if (!x)
    return;
  g_mutex_lock (&x->lock);
  e = g_hash_table_lookup (x->jobs, job_id);
  if (e)
    g_hash_table_steal (x->jobs, job_id);
  g_mutex_unlock (&x->lock);
  if (!e)
    return;
  /* Closes the channel: a reader still running sees its input end. */
  mig_dst_forget (agent_mig_dst_get_dst (agent->mig_dst), job_id, NULL, NULL);
  expected_free (e);
}
