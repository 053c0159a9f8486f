/* ProtoHttp: libsoup-3's server with the limits and checks every Drover
 * endpoint wants. See proto-http.h. */
#include "proto-http.h"

#include <string.h>

struct _ProtoHttp
{
  SoupServer *server;
  ProtoTrust *trust; /* NULL without TLS */
  GHashTable *posts; /* paths whose handlers take POST */
  int port;
};

typedef struct
{
  ProtoHttp *http;
  ProtoHttpHandler handler;
  gpointer user_data;
  gboolean post;
} Route;

ProtoHttp *
proto_http_new (void)
{
  ProtoHttp *http = g_new0 (ProtoHttp, 1);

  http->posts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return http;
}

void
proto_http_free (ProtoHttp *http)
{
  if (http == NULL)
    return;
  if (http->server != NULL)
    {
      soup_server_disconnect (http->server);
      g_object_unref (http->server);
    }
  proto_trust_unref (http->trust);
  g_hash_table_unref (http->posts);
  g_free (http);
}

void
proto_http_reply_text (SoupServerMessage *msg, guint status, const char *body)
{
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "text/plain; charset=utf-8",
                                    SOUP_MEMORY_COPY, body, strlen (body));
}

/* Runs after a request's headers, before its body is read: refuses what
 * no handler would take, so a huge body is never buffered. Setting the
 * status here makes libsoup answer at once without reading the body. */
static void
got_headers (SoupServerMessage *msg, gpointer user_data)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  goffset len = soup_message_headers_get_content_length (h);
  SoupEncoding enc = soup_message_headers_get_encoding (h);

  if (len > PROTO_HTTP_MAX_BODY
      || (enc != SOUP_ENCODING_CONTENT_LENGTH && enc != SOUP_ENCODING_NONE))
    {
      proto_http_reply_text (msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE,
                             "request body too large\n");
      soup_message_headers_append (
          soup_server_message_get_response_headers (msg), "Connection",
          "close");
      /* And should any of it be read, none of it is kept. */
      soup_message_body_set_accumulate (
          soup_server_message_get_request_body (msg), FALSE);
    }
}

/* A client certificate the TLS library cannot verify (GLib's database
 * has no CRL, and the client may be of another CA) does not end the
 * handshake: who the client is, if anyone, is decided per request by
 * proto_http_peer_identity with the cluster's CA and CRL. */
static gboolean
accept_certificate (SoupServerMessage *msg, GTlsCertificate *cert,
                    GTlsCertificateFlags errors, gpointer user_data)
{
  return TRUE;
}

static void
request_started (SoupServer *server, SoupServerMessage *msg, gpointer user_data)
{
  g_signal_connect (msg, "got-headers", G_CALLBACK (got_headers), NULL);
  g_signal_connect (msg, "accept-certificate", G_CALLBACK (accept_certificate),
                    NULL);
}

static void
route_cb (SoupServer *server, SoupServerMessage *msg, const char *path,
          GHashTable *query, gpointer user_data)
{
  Route *r = user_data;
  const char *method = soup_server_message_get_method (msg);

  if (soup_server_message_get_status (msg) != 0
      && soup_server_message_get_status (msg) != SOUP_STATUS_OK)
    return; /* got_headers answered already */
  if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0
      && !(r->post && strcmp (method, "POST") == 0))
    {
      proto_http_reply_text (msg, SOUP_STATUS_METHOD_NOT_ALLOWED,
                             "method not allowed\n");
      return;
    }
  r->handler (r->http, msg, path, query, r->user_data);
}

static void
not_found_cb (SoupServer *server, SoupServerMessage *msg, const char *path,
              GHashTable *query, gpointer user_data)
{
  if (soup_server_message_get_status (msg) != 0
      && soup_server_message_get_status (msg) != SOUP_STATUS_OK)
    return;
  proto_http_reply_text (msg, SOUP_STATUS_NOT_FOUND, "not found\n");
}

static void
ensure_server (ProtoHttp *http)
{
  if (http->server != NULL)
    return;
  http->server = soup_server_new ("server-header", "drover", NULL);
  g_signal_connect (http->server, "request-started",
                    G_CALLBACK (request_started), http);
  soup_server_add_handler (http->server, NULL, not_found_cb, http, NULL);
}

static void
add_route (ProtoHttp *http, const char *path, ProtoHttpHandler handler,
           gpointer user_data, gboolean post)
{
  Route *r = g_new0 (Route, 1);

  ensure_server (http);
  r->http = http;
  r->handler = handler;
  r->user_data = user_data;
  r->post = post;
  soup_server_add_handler (http->server, path, route_cb, r, g_free);
}

void
proto_http_add_handler (ProtoHttp *http, const char *path,
                        ProtoHttpHandler handler, gpointer user_data)
{
  add_route (http, path, handler, user_data, FALSE);
}

void
proto_http_add_post_handler (ProtoHttp *http, const char *path,
                             ProtoHttpHandler handler, gpointer user_data)
{
  add_route (http, path, handler, user_data, TRUE);
}

static void
metrics_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
            GHashTable *query, gpointer user_data)
{
  char *text = proto_metrics_render (user_data);

  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "text/plain; version=0.0.4",
                                    SOUP_MEMORY_TAKE, text, strlen (text));
}

void
proto_http_serve_metrics (ProtoHttp *http, const char *path,
                          ProtoMetrics *metrics)
{
  proto_http_add_handler (http, path, metrics_cb, metrics);
}

gboolean
proto_http_listen (ProtoHttp *http, const char *addr, const ProtoTls *tls,
                   GError **error)
{
  g_autoptr (GSocketConnectable) conn = NULL;
  g_autoptr (GSocketAddressEnumerator) en = NULL;
  g_autoptr (GSocketAddress) sa = NULL;
  g_autoptr (GSList) uris = NULL;
  SoupServerListenOptions opts = 0;

  ensure_server (http);
  conn = g_network_address_parse (addr, 0, error);
  if (conn == NULL)
    return FALSE;
  en = g_socket_connectable_enumerate (conn);
  sa = g_socket_address_enumerator_next (en, NULL, error);
  if (sa == NULL)
    {
      if (error != NULL && *error == NULL)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     "%s is not an address", addr);
      return FALSE;
    }
  if (tls != NULL)
    {
      g_autofree char *pem
          = g_strconcat (tls->cert_pem, "\n", tls->key_pem, NULL);
      g_autoptr (GTlsCertificate) cert
          = g_tls_certificate_new_from_pem (pem, -1, error);

      if (cert == NULL)
        return FALSE;
      http->trust = proto_trust_new (tls->ca_pem, tls->crl_pem, error);
      if (http->trust == NULL)
        return FALSE;
      /* Clients may offer a certificate (see accept_certificate). */
      g_object_set (http->server, "tls-certificate", cert, "tls-auth-mode",
                    G_TLS_AUTHENTICATION_REQUESTED, NULL);
      opts |= SOUP_SERVER_LISTEN_HTTPS;
    }
  if (!soup_server_listen (http->server, sa, opts, error))
    {
      g_prefix_error (error, "cannot listen on %s: ", addr);
      return FALSE;
    }
  uris = soup_server_get_uris (http->server);
  http->port = uris ? g_uri_get_port (uris->data) : 0;
  g_slist_free_full (g_steal_pointer (&uris), (GDestroyNotify)g_uri_unref);
  return TRUE;
}

int
proto_http_get_port (ProtoHttp *http)
{
  return http != NULL ? http->port : -1;
}

gboolean
proto_http_peer_identity (ProtoHttp *http, SoupServerMessage *msg,
                          ProtoRole *role, char **name)
{
  GTlsCertificate *cert = soup_server_message_get_tls_peer_certificate (msg);
  g_autofree char *pem = NULL;

  if (http->trust == NULL || cert == NULL)
    return FALSE;
  g_object_get (cert, "certificate-pem", &pem, NULL);
  return pem != NULL
         && proto_trust_identify (http->trust, pem, strlen (pem), role, name,
                                  NULL);
}
