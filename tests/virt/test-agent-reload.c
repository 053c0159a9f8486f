/* SIGHUP's work (agent_reload_tls) on an agent serving AgentService over
 * mutual TLS, certificates from scripts/pki: a certificate the CA revokes
 * is accepted until the agent reloads its TLS directory, refused after;
 * the migration channel gets the new material; a directory that does not
 * load changes nothing. */
#include <string.h>

#include "agent-private.h"

typedef struct
{
  char *dir;
  char *pki;
  GMainContext *ctx;
  GMainLoop *loop;
  GThread *thread;
  Agent *agent;
  GMutex lock;
  GCond cond;
  int port; /* lock; -1 when start failed */
} Fixture;

static void
pki (Fixture *f, const char *const *args)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *script = g_build_filename (
      g_getenv ("DROVER_TEST_DATA"), "..", "..", "scripts", "pki", NULL);
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_auto (GStrv) argv = NULL;
  int status = 0;

  g_strv_builder_add (b, script);
  g_strv_builder_add (b, f->pki);
  g_strv_builder_addv (b, (const char **)args);
  argv = g_strv_builder_end (b);
  g_spawn_sync (NULL, argv, NULL,
                G_SPAWN_STDOUT_TO_DEV_NULL | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                NULL, NULL, NULL, &status, &error);
  g_assert_no_error (error);
  g_spawn_check_wait_status (status, &error);
  g_assert_no_error (error);
}

static gpointer
agent_thread (gpointer data)
{
  Fixture *f = data;
  g_autoptr (GError) error = NULL;
  g_autofree char *tls_dir = g_build_filename (f->pki, "h1", NULL);
  AgentConfig config = { 0 };
  int port = -1;

  g_main_context_push_thread_default (f->ctx);
  config.name = (char *)"h1";
  config.listen = (char *)"127.0.0.1:0";
  config.libvirt_uri = (char *)"test:///default";
  config.accel = AGENT_ACCEL_TCG;
  config.data_dir = f->dir;
  config.tls_dir = tls_dir;
  f->agent = agent_new (&config, f->ctx, &error);
  g_assert_no_error (error);
  if (agent_start (f->agent, &error))
    port = agent_get_port (f->agent);
  g_assert_no_error (error);
  g_mutex_lock (&f->lock);
  f->port = port;
  g_cond_signal (&f->cond);
  g_mutex_unlock (&f->lock);
  g_main_loop_run (f->loop);
  agent_stop (f->agent);
  g_clear_pointer (&f->agent, agent_unref);
  while (g_main_context_iteration (f->ctx, FALSE))
    ;
  g_main_context_pop_thread_default (f->ctx);
  return NULL;
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("drover-reload-XXXXXX", &error);
  g_assert_no_error (error);
  f->pki = g_build_filename (f->dir, "pki", NULL);
  pki (f, (const char *[]){ "host", "h1", "127.0.0.1", NULL });
  pki (f, (const char *[]){ "scheduler", "scheduler", "127.0.0.1", NULL });
  pki (f, (const char *[]){ "scheduler", "spare", "127.0.0.1", NULL });
  f->ctx = g_main_context_new ();
  f->loop = g_main_loop_new (f->ctx, FALSE);
  g_mutex_init (&f->lock);
  g_cond_init (&f->cond);
  f->thread = g_thread_new ("agent", agent_thread, f);
  g_mutex_lock (&f->lock);
  while (f->port == 0)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
  g_assert_cmpint (f->port, >, 0);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  const char *argv[] = { "rm", "-rf", f->dir, NULL };

  g_main_loop_quit (f->loop);
  g_thread_join (f->thread);
  g_main_loop_unref (f->loop);
  g_main_context_unref (f->ctx);
  g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                NULL, NULL, NULL, NULL);
  g_free (f->pki);
  g_free (f->dir);
}

/* GetHostInfo with WHO's certificate; the status it ends with. */
static ProtoStatus
host_info_as (Fixture *f, const char *who)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (f->pki, who, NULL);
  g_autofree char *target = g_strdup_printf ("127.0.0.1:%d", f->port);
  g_autoptr (ProtoTls) tls = proto_tls_load (dir, &error);
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_autoptr (ProtoClient) client = NULL;
  Drover__V1__Empty req = DROVER__V1__EMPTY__INIT;
  ProtobufCMessage *reply;

  g_assert_no_error (error);
  client = proto_client_new (target, tls, PROTO_ROLE_HOST, ctx, &error);
  g_assert_no_error (error);
  reply = proto_client_call_sync (client, DROVER_AGENT_SERVICE,
                                  DROVER_AGENT_METHOD_GET_HOST_INFO, &req.base,
                                  20000, &error);
  proto_msg_free (reply);
  if (!error)
    return PROTO_STATUS_OK;
  g_test_message ("%s: %s", who, error->message);
  return error->domain == PROTO_ERROR ? (ProtoStatus)error->code
                                      : PROTO_STATUS_UNKNOWN;
}

typedef struct
{
  Fixture *f;
  gboolean ok;
  GError *error;
  gboolean done;
} Reload;

static gboolean
reload_in_ctx (gpointer data)
{
  Reload *r = data;

  r->ok = agent_reload_tls (r->f->agent, &r->error);
  g_mutex_lock (&r->f->lock);
  r->done = TRUE;
  g_cond_broadcast (&r->f->cond);
  g_mutex_unlock (&r->f->lock);
  return G_SOURCE_REMOVE;
}

/* What SIGHUP does, in the agent's main context. */
static gboolean
reload (Fixture *f, GError **error)
{
  Reload r = { f };

  g_main_context_invoke (f->ctx, reload_in_ctx, &r);
  g_mutex_lock (&f->lock);
  while (!r.done)
    g_cond_wait (&f->cond, &f->lock);
  g_mutex_unlock (&f->lock);
  if (r.error)
    g_propagate_error (error, r.error);
  return r.ok;
}

static void
test_revoked_after_reload (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MigChannelCreds) before = agent_tls_get_mig_creds (f->agent);
  g_autoptr (MigChannelCreds) after = NULL;
  g_autofree char *crl = g_build_filename (f->pki, "h1", "crl.pem", NULL);
  g_autofree char *key = g_build_filename (f->pki, "h1", "key.pem", NULL);
  g_autofree char *saved = NULL;

  g_assert_cmpint (host_info_as (f, "scheduler"), ==, PROTO_STATUS_OK);
  pki (f, (const char *[]){ "--revoke", "scheduler", NULL });
  g_assert_true (g_file_test (crl, G_FILE_TEST_EXISTS));
  /* Read only on SIGHUP. */
  g_assert_cmpint (host_info_as (f, "scheduler"), ==, PROTO_STATUS_OK);

  /* A directory that does not load changes nothing. */
  g_assert_true (g_file_get_contents (key, &saved, NULL, NULL));
  g_assert_true (g_file_set_contents (key, "not a key", -1, NULL));
  g_assert_false (reload (f, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_cmpint (host_info_as (f, "scheduler"), ==, PROTO_STATUS_OK);
  g_assert_true (g_file_set_contents (key, saved, -1, NULL));

  g_assert_true (reload (f, &error));
  g_assert_no_error (error);
  g_assert_cmpint (host_info_as (f, "scheduler"), !=, PROTO_STATUS_OK);
  g_assert_cmpint (host_info_as (f, "spare"), ==, PROTO_STATUS_OK);
  /* New migration channels take the new material. */
  after = agent_tls_get_mig_creds (f->agent);
  g_assert_nonnull (after);
  g_assert_true (after != before);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  proto_init ();
  agent_libvirt_init ();
  g_test_add ("/agent/reload/revoked-after-reload", Fixture, NULL,
              fixture_set_up, test_revoked_after_reload, fixture_tear_down);
  return g_test_run ();
}
