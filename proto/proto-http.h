/* ProtoHttp: the daemons' small HTTP server (libsoup-3), for /metrics and
 * the scheduler's dashboard.
 *
 * It runs in the GMainContext that is thread-default when it is created.
 * It never blocks that context on a client: bodies are refused before they
 * are read when they are larger than the server takes, and a handler that
 * answers later (a server-sent event stream) pauses its message.
 *
 * With TLS it serves HTTPS with the component's certificate and asks for,
 * but does not require, a client certificate: a handler may then learn the
 * client's role and name from it (proto_http_peer_identity), checked
 * against the CA and CRL like any gRPC caller's.
 */
#pragma once

#include <libsoup/soup.h>

#include "proto-metrics.h"
#include "proto.h"

G_BEGIN_DECLS

/* Largest request body any handler gets (bigger: 413 before reading it). */
#define PROTO_HTTP_MAX_BODY (64 * 1024)

typedef struct _ProtoHttp ProtoHttp;

/* Handles a request for a path registered with proto_http_add_handler. */
typedef void (*ProtoHttpHandler) (ProtoHttp *http, SoupServerMessage *msg,
                                  const char *path, GHashTable *query,
                                  gpointer user_data);

ProtoHttp *proto_http_new (void);
void proto_http_free (ProtoHttp *http);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ProtoHttp, proto_http_free)

/* Serves PATH (and, when PATH ends in '/', everything below it) with
 * HANDLER. Other paths get 404, methods other than GET and HEAD 405 unless
 * the handler is registered with proto_http_add_post_handler. */
void proto_http_add_handler (ProtoHttp *http, const char *path,
                             ProtoHttpHandler handler, gpointer user_data);
void proto_http_add_post_handler (ProtoHttp *http, const char *path,
                                  ProtoHttpHandler handler, gpointer user_data);

/* /metrics: METRICS rendered at each request (METRICS is borrowed). */
void proto_http_serve_metrics (ProtoHttp *http, const char *path,
                               ProtoMetrics *metrics);

/* Listens on ADDR ("127.0.0.1:9100"; port 0 picks one, see _get_port).
 * TLS NULL: plain HTTP; otherwise HTTPS with TLS->cert_pem/key_pem, and
 * client certificates checked against TLS->ca_pem/crl_pem when offered. */
gboolean proto_http_listen (ProtoHttp *http, const char *addr,
                            const ProtoTls *tls, GError **error);
/* The port HTTP listens on; -1 for NULL (no server), so that an owner
 * whose server is optional can ask without checking. */
int proto_http_get_port (ProtoHttp *http);

/* The role and name of the client certificate of MSG, if one was offered
 * and is valid (chain, time, revocation); FALSE otherwise. */
gboolean proto_http_peer_identity (ProtoHttp *http, SoupServerMessage *msg,
                                   ProtoRole *role, char **name);

/* Answers MSG with STATUS and a plain-text BODY. */
void proto_http_reply_text (SoupServerMessage *msg, guint status,
                            const char *body);

G_END_DECLS
