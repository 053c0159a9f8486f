/* SIGHUP's work (agent_reload_tls) on an agent serving AgentService over
 * mutual TLS, certificates from scripts/pki: a certificate the CA revokes
 * is accepted until the agent reloads its TLS directory, refused after;
 * the migration channel gets the new material; a directory that does not
 * load changes nothing. */
#include <string.h>

#include "agent-fixture.h"

/* The agent and the test's clients share the thread and its main
 * context: a call is made, then the context iterated until its reply. */
typedef struct
{
  char *dir;
  char *pki;
  GMainContext *ctx;
  Agent *agent;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tls_dir = NULL;

  f->dir = g_dir_make_tmp ("drover-reload-XXXXXX", &error);
  g_assert_no_error (error);
  f->pki = g_build_filename (f->dir, "pki", NULL);
  test_pki (f->pki, (const char *[]){ "host", "h1", "127.0.0.1", NULL });
  test_pki (f->pki,
            (const char *[]){ "scheduler", "scheduler", "127.0.0.1", NULL });
  test_pki (f->pki,
            (const char *[]){ "scheduler", "spare", "127.0.0.1", NULL });
  tls_dir = g_build_filename (f->pki, "h1", NULL);
  f->agent = agent_fixture_start (f->dir, NULL, tls_dir, &f->ctx);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  agent_fixture_stop (f->agent, f->ctx, f->dir);
  g_free (f->pki);
  g_free (f->dir);
}

typedef struct
{
  gboolean done;
  GError *error;
} Reply;

static void
on_reply (const ProtobufCMessage *msg, const GError *error, gpointer data)
{
  Reply *r = data;

  r->error = error ? g_error_copy (error) : NULL;
  r->done = TRUE;
}

/* GetHostInfo with WHO's certificate; the status it ends with. */
static ProtoStatus
host_info_as (Fixture *f, const char *who)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (f->pki, who, NULL);
  g_autofree char *target
      = g_strdup_printf ("127.0.0.1:%d", agent_get_port (f->agent));
  g_autoptr (ProtoTls) tls = proto_tls_load (dir, &error);
  g_autoptr (ProtoClient) client = NULL;
  Drover__V1__Empty req = DROVER__V1__EMPTY__INIT;
  Reply r = { 0 };
  ProtoStatus status = PROTO_STATUS_OK;

  g_assert_no_error (error);
  client = proto_client_new (target, tls, PROTO_ROLE_HOST, f->ctx, &error);
  g_assert_no_error (error);
  proto_client_call (client, DROVER_AGENT_SERVICE,
                     DROVER_AGENT_METHOD_GET_HOST_INFO, &req.base, 20000,
                     on_reply, &r);
  while (!r.done)
    g_main_context_iteration (f->ctx, TRUE);
  if (r.error)
    {
      g_test_message ("%s: %s", who, r.error->message);
      status = r.error->domain == PROTO_ERROR ? (ProtoStatus)r.error->code
                                              : PROTO_STATUS_UNKNOWN;
      g_error_free (r.error);
    }
  return status;
}

/* What SIGHUP does (the agent's context is this thread's). */
static gboolean
reload (Fixture *f, GError **error)
{
  return agent_reload_tls (f->agent, error);
}

static void
test_revoked_after_reload (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentTls) before = agent_tls_get (f->agent);
  g_autoptr (AgentTls) after = NULL;
  g_autofree char *crl = g_build_filename (f->pki, "h1", "crl.pem", NULL);
  g_autofree char *key = g_build_filename (f->pki, "h1", "key.pem", NULL);
  g_autofree char *saved = NULL;

  g_assert_cmpint (host_info_as (f, "scheduler"), ==, PROTO_STATUS_OK);
  test_pki (f->pki, (const char *[]){ "--revoke", "scheduler", NULL });
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
  after = agent_tls_get (f->agent);
  g_assert_nonnull (after);
  g_assert_true (after->mig_creds != before->mig_creds);
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
