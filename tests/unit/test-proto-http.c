/* ProtoHttp: the daemons' HTTP server answers what it serves, refuses the
 * rest with the right status, survives hostile requests, and tells a
 * client certificate's role over HTTPS. A real libsoup client talks to it
 * over loopback; the server runs in its own thread and context. */
#include "proto-http.h"

#include <string.h>

typedef struct
{
  GThread *thread;
  GMainContext *ctx;
  GMainLoop *loop;
  ProtoHttp *http;
  ProtoMetrics *metrics;
  ProtoTls *tls;
  int port;
  GMutex lock;
  GCond cond;
  gboolean ready;
} Server;

/* Echoes the caller's identity: "role name", or "anonymous". */
static void
whoami (ProtoHttp *http, SoupServerMessage *msg, const char *path,
        GHashTable *query, gpointer user_data)
{
  g_autofree char *name = NULL;
  g_autofree char *body = NULL;
  ProtoRole role;

  if (proto_http_peer_identity (http, msg, &role, &name))
    body = g_strdup_printf ("%s %s", proto_role_to_string (role), name);
  else
    body = g_strdup ("anonymous");
  proto_http_reply_text (msg, SOUP_STATUS_OK, body);
}

static gpointer
server_thread (gpointer data)
{
  Server *s = data;
  g_autoptr (GError) error = NULL;

  g_main_context_push_thread_default (s->ctx);
  s->http = proto_http_new ();
  proto_http_serve_metrics (s->http, "/metrics", s->metrics);
  proto_http_add_handler (s->http, "/whoami", whoami, s);
  g_assert_true (proto_http_listen (s->http, "127.0.0.1:0", s->tls, &error));
  g_assert_no_error (error);
  g_mutex_lock (&s->lock);
  s->port = proto_http_get_port (s->http);
  s->ready = TRUE;
  g_cond_signal (&s->cond);
  g_mutex_unlock (&s->lock);
  g_main_loop_run (s->loop);
  g_clear_pointer (&s->http, proto_http_free);
  g_main_context_pop_thread_default (s->ctx);
  return NULL;
}

static Server *
server_start (ProtoTls *tls)
{
  Server *s = g_new0 (Server, 1);
  static const char *const labels[] = { "vm", NULL };
  ProtoMetric *g;

  s->tls = tls;
  s->metrics = proto_metrics_new ();
  g = proto_metrics_declare (s->metrics, "drover_vm_vcpus", "vCPUs of a VM.",
                             PROTO_METRIC_GAUGE, labels, NULL, 0);
  proto_metric_set (g, (const char *const[]){ "web1", NULL }, 2);
  g_mutex_init (&s->lock);
  g_cond_init (&s->cond);
  s->ctx = g_main_context_new ();
  s->loop = g_main_loop_new (s->ctx, FALSE);
  s->thread = g_thread_new ("http", server_thread, s);
  g_mutex_lock (&s->lock);
  while (!s->ready)
    g_cond_wait (&s->cond, &s->lock);
  g_mutex_unlock (&s->lock);
  return s;
}

static gboolean
quit_cb (gpointer loop)
{
  g_main_loop_quit (loop);
  return G_SOURCE_REMOVE;
}

static void
server_stop (Server *s)
{
  GSource *src = g_idle_source_new ();

  g_source_set_callback (src, quit_cb, s->loop, NULL);
  g_source_attach (src, s->ctx);
  g_source_unref (src);
  g_thread_join (s->thread);
  g_main_loop_unref (s->loop);
  g_main_context_unref (s->ctx);
  proto_metrics_free (s->metrics);
  proto_tls_free (s->tls);
  g_mutex_clear (&s->lock);
  g_cond_clear (&s->cond);
  g_free (s);
}

/* One request; returns the status and sets *BODY. */
static guint
request (SoupSession *session, const char *method, const char *uri,
         const char *header, gsize header_len, GBytes *body_in, char **body)
{
  g_autoptr (SoupMessage) msg = soup_message_new (method, uri);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) out = NULL;

  g_assert_nonnull (msg);
  if (header != NULL)
    {
      g_autofree char *value = g_strnfill (header_len, 'x');

      soup_message_headers_append (soup_message_get_request_headers (msg),
                                   header, value);
    }
  if (body_in != NULL)
    soup_message_set_request_body_from_bytes (msg, "application/octet-stream",
                                              body_in);
  out = soup_session_send_and_read (session, msg, NULL, &error);
  if (body)
    *body
        = out ? g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out))
              : NULL;
  if (out == NULL)
    return 0; /* the server closed the connection */
  return soup_message_get_status (msg);
}

/* A client that never looks for a proxy (loopback only, no WPAD). */
static SoupSession *
test_session (void)
{
  return soup_session_new_with_options ("proxy-resolver", NULL, NULL);
}

static void
test_plain (void)
{
  Server *s = server_start (NULL);
  g_autoptr (SoupSession) session = test_session ();
  g_autofree char *base = g_strdup_printf ("http://127.0.0.1:%d", s->port);
  g_autofree char *metrics = g_strconcat (base, "/metrics", NULL);
  g_autofree char *nope = g_strconcat (base, "/nope/../../etc", NULL);
  g_autofree char *body = NULL;
  g_autoptr (GBytes) big = NULL;
  guint status;

  status = request (session, "GET", metrics, NULL, 0, NULL, &body);
  g_assert_cmpuint (status, ==, SOUP_STATUS_OK);
  g_assert_nonnull (strstr (body, "drover_vm_vcpus{vm=\"web1\"} 2\n"));
  g_clear_pointer (&body, g_free);

  status = request (session, "GET", nope, NULL, 0, NULL, NULL);
  g_assert_cmpuint (status, ==, SOUP_STATUS_NOT_FOUND);
  status = request (session, "POST", metrics, NULL, 0,
                    g_bytes_new_static ("x", 1), NULL);
  g_assert_cmpuint (status, ==, SOUP_STATUS_METHOD_NOT_ALLOWED);
  /* A body larger than any handler takes: refused before it is read. */
  big = g_bytes_new_take (g_malloc0 (4 * 1024 * 1024), 4 * 1024 * 1024);
  status = request (session, "POST", metrics, NULL, 0, big, NULL);
  if (status != SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE && status != 0)
    g_error ("4 MiB body: status %u", status);
  /* A huge header: refused (or the connection dropped), never served. */
  status = request (session, "GET", metrics, "X-Junk", 256 * 1024, NULL, NULL);
  g_assert_cmpuint (status, !=, SOUP_STATUS_OK);
  /* ...and the server keeps serving. */
  status = request (session, "GET", metrics, NULL, 0, NULL, &body);
  g_assert_cmpuint (status, ==, SOUP_STATUS_OK);
  server_stop (s);
}

static char *pki_dir;

/* scripts/pki's certificates: a server (role host) and an operator. */
static ProtoTls *
pki_tls (const char *role, const char *name, const char *ip)
{
  g_autofree char *script = g_build_filename (
      g_getenv ("DROVER_TEST_DATA"), "..", "..", "scripts", "pki", NULL);
  g_autofree char *dir = g_build_filename (pki_dir, name, NULL);
  g_autoptr (GError) error = NULL;
  const char *argv[] = { script, pki_dir, role, name, ip, NULL };
  int status;
  ProtoTls *tls;

  g_assert_true (g_spawn_sync (NULL, (char **)argv, NULL,
                               G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                               NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  tls = proto_tls_load (dir, &error);
  g_assert_no_error (error);
  return tls;
}

static gboolean
accept_any (SoupMessage *msg, GTlsCertificate *cert,
            GTlsCertificateFlags errors, gpointer data)
{
  return TRUE; /* the test's own CA; the server is what is tested */
}

static void
test_tls_identity (void)
{
  g_autoptr (GError) error = NULL;
  Server *s;
  g_autoptr (ProtoTls) op = NULL;
  g_autofree char *uri = NULL;
  g_autofree char *body = NULL;
  g_autofree char *pem = NULL;
  g_autoptr (GTlsCertificate) cert = NULL;
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GBytes) out = NULL;

  pki_dir = g_dir_make_tmp ("drover-http-pki-XXXXXX", &error);
  g_assert_no_error (error);
  s = server_start (pki_tls ("host", "srv", "127.0.0.1"));
  op = pki_tls ("operator", "op", NULL);
  uri = g_strdup_printf ("https://127.0.0.1:%d/whoami", s->port);

  /* Without a client certificate: served, but anonymous. */
  {
    g_autoptr (SoupSession) session = test_session ();
    g_autoptr (SoupMessage) m = soup_message_new ("GET", uri);
    g_autoptr (GBytes) b = NULL;

    g_signal_connect (m, "accept-certificate", G_CALLBACK (accept_any), NULL);
    b = soup_session_send_and_read (session, m, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpmem (g_bytes_get_data (b, NULL), g_bytes_get_size (b),
                     "anonymous", 9);
  }
  /* With the operator's certificate: the server knows who it is. */
  pem = g_strconcat (op->cert_pem, "\n", op->key_pem, NULL);
  cert = g_tls_certificate_new_from_pem (pem, -1, &error);
  g_assert_no_error (error);
  {
    g_autoptr (SoupSession) session = test_session ();

    msg = soup_message_new ("GET", uri);
    g_signal_connect (msg, "accept-certificate", G_CALLBACK (accept_any), NULL);
    soup_message_set_tls_client_certificate (msg, cert);
    out = soup_session_send_and_read (session, msg, NULL, &error);
    g_assert_no_error (error);
    body = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
    g_assert_cmpstr (body, ==, "operator op");
  }
  server_stop (s);
  {
    g_autofree char *cmd = g_strdup_printf ("rm -rf %s", pki_dir);

    g_assert_true (g_spawn_command_line_sync (cmd, NULL, NULL, NULL, NULL));
  }
  g_free (pki_dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/proto/http/plain", test_plain);
  g_test_add_func ("/proto/http/tls-identity", test_tls_identity);
  return g_test_run ();
}
