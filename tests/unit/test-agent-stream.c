/* AgentStream over real gRPC on 127.0.0.1, without libvirt: a test
 * server serves MigrateOut with a stream whose worker does what the
 * request's job id says. Checks that messages arrive in the order they
 * were pushed, that the call ends after the last one with the worker's
 * status, that the client's cancel reaches the worker, and that the
 * worker runs off the main context and its data is freed once. */
#include <stdlib.h>
#include <string.h>

#include "agent-private.h"
#include "mig-migrate.h"
#include "test-rpc.h"

typedef struct
{
  TestRpcServer *rpc;
  GMainContext *ctx; /* the server's */
  GMutex lock;
  GCond cond;
  /* lock */
  guint freed;           /* worker data freed (in the main context) */
  gboolean wrong_thread; /* a worker ran on the main context's thread */
  gboolean saw_cancel;   /* a "wait-cancel" worker was cancelled */
} Server;

typedef struct
{
  Server *server;
  char *what; /* the request's job id */
} Work;

static void
work_free (gpointer data)
{
  Work *w = data;

  g_mutex_lock (&w->server->lock);
  if (g_main_context_get_thread_default () != w->server->ctx)
    w->server->wrong_thread = TRUE;
  w->server->freed++;
  g_cond_broadcast (&w->server->cond);
  g_mutex_unlock (&w->server->lock);
  g_free (w->what);
  g_free (w);
}

static ProtobufCMessage *
progress (guint32 iteration)
{
  Drover__V1__MigrationProgress *p = g_new0 (Drover__V1__MigrationProgress, 1);

  drover__v1__migration_progress__init (p);
  p->phase = proto_msg_strdup (PROTO_MIG_PRECOPY);
  p->iteration = iteration;
  return (ProtobufCMessage *)p;
}

static void
on_cancel (GCancellable *cancel, gpointer data)
{
  Server *s = data;

  g_mutex_lock (&s->lock);
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

/* "count:N": N messages, OK. "busy:N": N messages, then AGENT_ERROR_BUSY.
 * "mig": MIG_ERROR_UNSUPPORTED. "wait-cancel": one message, then waits
 * for the client's cancel. */
static gboolean
work_run (AgentStream *stream, gpointer data, GError **error)
{
  Work *w = data;
  Server *s = w->server;
  const char *colon = strchr (w->what, ':');
  guint n = colon ? (guint)atoi (colon + 1) : 0;

  g_mutex_lock (&s->lock);
  if (g_thread_self () == test_thread_get_thread (s->rpc->thread))
    s->wrong_thread = TRUE;
  g_mutex_unlock (&s->lock);
  for (guint i = 0; i < n; i++)
    agent_stream_push (stream, progress (i));
  if (g_str_has_prefix (w->what, "busy:"))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_BUSY, "busy after %u", n);
      return FALSE;
    }
  if (strcmp (w->what, "mig") == 0)
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_UNSUPPORTED, "no");
      return FALSE;
    }
  if (strcmp (w->what, "wait-cancel") == 0)
    {
      GCancellable *cancel = agent_stream_get_cancellable (stream);
      gulong id
          = g_cancellable_connect (cancel, G_CALLBACK (on_cancel), s, NULL);

      agent_stream_push (stream, progress (0));
      g_mutex_lock (&s->lock);
      while (!g_cancellable_is_cancelled (cancel))
        g_cond_wait (&s->cond, &s->lock);
      s->saw_cancel = TRUE;
      g_mutex_unlock (&s->lock);
      g_cancellable_disconnect (cancel, id);
      return !g_cancellable_set_error_if_cancelled (cancel, error);
    }
  return TRUE;
}

static void
handle_migrate_out (ProtoServerCall *call, const ProtobufCMessage *msg,
                    gpointer data)
{
  const Drover__V1__MigrateOutRequest *req = (const void *)msg;
  Work *w = g_new0 (Work, 1);

  w->server = data;
  w->what = g_strdup (req->job_id);
  agent_stream_start (call, w->server->ctx, "test-stream", work_run, w,
                      work_free);
}

static const TestRpcMethod methods[] = {
  { DROVER_AGENT_METHOD_MIGRATE_OUT, handle_migrate_out },
};

static Server *
server_start (void)
{
  const TestRpcService service = {
    DROVER_AGENT_SERVICE,  methods, G_N_ELEMENTS (methods), proto_agent_authz,
    proto_agent_authz_len,
  };
  Server *s = g_new0 (Server, 1);

  g_mutex_init (&s->lock);
  g_cond_init (&s->cond);
  s->rpc = test_rpc_server_start (&service, s, NULL);
  s->ctx = test_thread_get_context (s->rpc->thread);
  return s;
}

static void
server_stop (Server *s)
{
  test_rpc_server_stop (s->rpc);
  g_mutex_clear (&s->lock);
  g_cond_clear (&s->cond);
  g_free (s);
}

/* Blocks until the worker data of FREED streams has been freed. */
static void
wait_freed (Server *s, guint freed)
{
  g_mutex_lock (&s->lock);
  while (s->freed < freed)
    g_cond_wait (&s->cond, &s->lock);
  g_assert_cmpuint (s->freed, ==, freed);
  g_assert_false (s->wrong_thread);
  g_mutex_unlock (&s->lock);
}

typedef struct
{
  GArray *iterations; /* guint32 */
  gboolean cancel;    /* cancel after the first message */
} Received;

static gboolean
on_message (const ProtobufCMessage *msg, gpointer data)
{
  Received *r = data;
  const Drover__V1__MigrationProgress *p = (const void *)msg;

  g_array_append_val (r->iterations, p->iteration);
  return !r->cancel;
}

/* Calls MigrateOut with job id WHAT; returns the iterations received. */
static GArray *
call (Server *s, const char *what, gboolean cancel, GError **error)
{
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_autoptr (ProtoClient) client = NULL;
  Drover__V1__MigrateOutRequest req = DROVER__V1__MIGRATE_OUT_REQUEST__INIT;
  Received r = { g_array_new (FALSE, FALSE, sizeof (guint32)), cancel };

  client = proto_client_new (s->rpc->address, NULL, PROTO_ROLES_ALL, ctx, NULL);
  g_assert_nonnull (client);
  req.job_id = (char *)what;
  (void)proto_client_stream_sync (client, DROVER_AGENT_SERVICE,
                                  DROVER_AGENT_METHOD_MIGRATE_OUT, &req.base,
                                  on_message, &r, error);
  return r.iterations;
}

static void
assert_in_order (GArray *iterations, guint n)
{
  g_assert_cmpuint (iterations->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpuint (g_array_index (iterations, guint32, i), ==, i);
}

static void
test_order_and_end (void)
{
  /* Every message pushed arrives, in order, and only then the end: OK, or
   * the status and message of the worker's error. */
  const struct
  {
    const char *what;
    guint n;
    ProtoStatus status;
    const char *message;
  } cases[] = {
    { "count:2000", 2000, PROTO_STATUS_OK, NULL },
    { "count:0", 0, PROTO_STATUS_OK, NULL },
    { "busy:300", 300, PROTO_STATUS_ABORTED, "busy after 300" },
    { "mig", 0, PROTO_STATUS_FAILED_PRECONDITION, "no" },
  };
  Server *s = server_start ();

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GArray) got = call (s, cases[i].what, FALSE, &error);

      assert_in_order (got, cases[i].n);
      if (cases[i].status == PROTO_STATUS_OK)
        g_assert_no_error (error);
      else
        {
          g_assert_error (error, PROTO_ERROR, (gint)cases[i].status);
          g_assert_cmpstr (error->message, ==, cases[i].message);
        }
    }
  wait_freed (s, G_N_ELEMENTS (cases));
  server_stop (s);
}

static void
test_cancel (void)
{
  Server *s = server_start ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) got = call (s, "wait-cancel", TRUE, &error);

  /* The worker blocks until the cancel reaches it: returning at all
   * proves it did. */
  g_assert_no_error (error);
  g_assert_cmpuint (got->len, ==, 1);
  wait_freed (s, 1);
  g_mutex_lock (&s->lock);
  g_assert_true (s->saw_cancel);
  g_mutex_unlock (&s->lock);
  server_stop (s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  proto_init ();
  g_test_add_func ("/agent/stream/order-and-end", test_order_and_end);
  g_test_add_func ("/agent/stream/cancel", test_cancel);
  return g_test_run ();
}
