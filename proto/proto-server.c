/* libdrover-proto: ProtoServer, a gRPC server whose handlers run in a
 * GMainContext.
 *
 * Every call goes through grpc_server_request_call() (no registered
 * methods), so unknown methods reach us too and get UNIMPLEMENTED instead
 * of waiting for their deadline: PROTO_SERVER_SLOTS requests are kept
 * posted, and each call that arrives becomes a ProtoServerCall
 * (proto-server-call.c). This file holds the server: its methods and
 * their authorization rows, metrics, TLS and its reload, start and stop. */
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "proto-server-private.h"

static void
proto_method_free (gpointer data)
{
  ProtoMethod *m = data;

  g_free (m->path);
  g_free (m->label);
  g_free (m);
}

static void proto_server_slot_done (ProtoTag *tag, gboolean ok);

static void
proto_server_slot_request (ProtoSlot *slot)
{
  ProtoServer *server = slot->server;
  grpc_completion_queue *cq = proto_cq_get (server->cq);
  grpc_call_error err;

  slot->call = NULL;
  grpc_call_details_init (&slot->details);
  grpc_metadata_array_init (&slot->md);
  slot->tag.func = proto_server_slot_done;
  slot->tag.data = slot;
  err = grpc_server_request_call (server->server, &slot->call, &slot->details,
                                  &slot->md, cq, cq, &slot->tag);
  slot->active = err == GRPC_CALL_OK;
  if (!slot->active)
    {
      g_debug ("grpc_server_request_call: error %d", err);
      grpc_call_details_destroy (&slot->details);
      grpc_metadata_array_destroy (&slot->md);
    }
}

static void
proto_server_slot_done (ProtoTag *tag, gboolean ok)
{
  ProtoSlot *slot = tag->data;
  ProtoServer *server = slot->server;
  grpc_call *gcall = g_steal_pointer (&slot->call);
  char *path = NULL;

  slot->active = FALSE;
  if (ok && gcall)
    path = grpc_slice_to_c_string (slot->details.method);
  grpc_call_details_destroy (&slot->details);
  grpc_metadata_array_destroy (&slot->md);
  if (!server->stopping)
    proto_server_slot_request (slot);

  if (gcall && (server->stopping || !ok))
    grpc_call_unref (gcall);
  else if (gcall)
    proto_server_call_start (server, gcall, path);
  gpr_free (path);
}

/* --- server -------------------------------------------------------------- */

ProtoServer *
proto_server_new (GMainContext *ctx)
{
  ProtoServer *server = g_new0 (ProtoServer, 1);

  proto_ref_grpc ();
  server->ctx
      = ctx ? g_main_context_ref (ctx) : g_main_context_ref_thread_default ();
  server->methods = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                           proto_method_free);
  server->authz = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_mutex_init (&server->tls_lock);
  server->calls = g_hash_table_new (NULL, NULL);
  for (guint i = 0; i < PROTO_SERVER_SLOTS; i++)
    server->slots[i].server = server;
  return server;
}

void
proto_server_add_method (ProtoServer *server,
                         const ProtobufCServiceDescriptor *service,
                         guint method_index, ProtoHandler handler,
                         gpointer user_data)
{
  ProtoMethod *m;

  g_return_if_fail (server != NULL && !server->started);
  g_return_if_fail (method_index < service->n_methods);
  m = g_new0 (ProtoMethod, 1);
  m->path = proto_method_path (service, method_index);
  m->label = g_strdup_printf ("%s/%s", service->short_name,
                              service->methods[method_index].name);
  m->input = service->methods[method_index].input;
  m->handler = handler;
  m->user_data = user_data;
  g_hash_table_replace (server->methods, m->path, m);
}

void
proto_server_set_metrics (ProtoServer *server, ProtoMetrics *metrics)
{
  static const char *const handled_labels[] = { "method", "code", NULL };
  static const char *const handling_labels[] = { "method", NULL };

  g_return_if_fail (server != NULL && !server->started);
  server->handled = proto_metrics_declare (
      metrics, "drover_grpc_server_handled_total",
      "gRPC calls the server ended, by method and status code",
      PROTO_METRIC_COUNTER, handled_labels, NULL, 0);
  server->handling = proto_metrics_declare (
      metrics, "drover_grpc_server_handling_seconds",
      "Time from a gRPC call's arrival to its status, by method",
      PROTO_METRIC_HISTOGRAM, handling_labels, proto_metrics_duration_buckets,
      proto_metrics_duration_buckets_len);
}

void
proto_server_set_authz (ProtoServer *server,
                        const ProtobufCServiceDescriptor *service,
                        const ProtoAuthzRule *rules, gsize n_rules)
{
  g_return_if_fail (server != NULL && !server->started);
  for (gsize i = 0; i < n_rules; i++)
    {
      char *path = proto_method_path (service, rules[i].method_index);

      g_return_if_fail (path != NULL);
      g_hash_table_replace (server->authz, path,
                            GUINT_TO_POINTER (rules[i].roles));
    }
}

/* gRPC asks at start and at every new handshake whether the certificate
 * changed (gRPC threads). */
static grpc_ssl_certificate_config_reload_status
proto_server_fetch_cert (void *data, grpc_ssl_server_certificate_config **out)
{
  ProtoServer *server = data;
  g_autoptr (ProtoTls) tls = NULL;

  g_mutex_lock (&server->tls_lock);
  tls = g_steal_pointer (&server->tls_next);
  g_mutex_unlock (&server->tls_lock);
  if (tls == NULL)
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  /* gRPC copies the strings. */
  grpc_ssl_pem_key_cert_pair pair = { tls->key_pem, tls->cert_pem };
  *out = grpc_ssl_server_certificate_config_create (tls->ca_pem, &pair, 1);
  return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
}

gboolean
proto_server_reload_tls (ProtoServer *server, const ProtoTls *tls,
                         GError **error)
{
  ProtoTrust *trust;

  g_return_val_if_fail (server != NULL && tls != NULL, FALSE);
  if (!server->secure)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_FAILED_PRECONDITION,
                           "the server runs without TLS");
      return FALSE;
    }
  trust = proto_trust_new (tls->ca_pem, tls->crl_pem, error);
  if (trust == NULL)
    return FALSE;
  proto_trust_unref (server->trust);
  server->trust = trust;
  g_mutex_lock (&server->tls_lock);
  proto_tls_free (server->tls_next);
  server->tls_next = proto_tls_copy (tls);
  g_mutex_unlock (&server->tls_lock);
  return TRUE;
}

gboolean
proto_server_start (ProtoServer *server, const char *addr, const ProtoTls *tls,
                    GError **error)
{
  grpc_server_credentials *creds;

  g_return_val_if_fail (server != NULL && !server->started, FALSE);
  if (tls)
    {
      server->trust = proto_trust_new (tls->ca_pem, tls->crl_pem, error);
      if (server->trust == NULL)
        return FALSE;
      server->secure = TRUE;
      server->tls_next = proto_tls_copy (tls);
    }
  server->cq = proto_cq_new (server->ctx, "drover-grpc-srv");
  server->server = grpc_server_create (proto_channel_args (TRUE), NULL);
  grpc_server_register_completion_queue (server->server,
                                         proto_cq_get (server->cq), NULL);
  if (tls)
    creds = grpc_ssl_server_credentials_create_with_options (
        grpc_ssl_server_credentials_create_options_using_config_fetcher (
            GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
            proto_server_fetch_cert, server));
  else
    creds = grpc_insecure_server_credentials_create ();
  server->port = grpc_server_add_http2_port (server->server, addr, creds);
  grpc_server_credentials_release (creds);
  if (server->port <= 0)
    {
      /* Never started and no listener: plain destroy is allowed. */
      grpc_server_destroy (g_steal_pointer (&server->server));
      g_clear_pointer (&server->cq, proto_cq_free);
      server->port = 0;
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNAVAILABLE,
                   "cannot listen on %s%s", addr,
                   tls ? " (address in use, or bad TLS certificate/key)"
                       : " (address in use?)");
      return FALSE;
    }
  grpc_server_start (server->server);
  server->started = TRUE;
  for (guint i = 0; i < PROTO_SERVER_SLOTS; i++)
    proto_server_slot_request (&server->slots[i]);
  return TRUE;
}

int
proto_server_get_port (ProtoServer *server)
{
  return server->port;
}

void
proto_server_stop (ProtoServer *server)
{
  GHashTableIter iter;
  gpointer key;

  if (!server || !server->started || server->stopping)
    return;
  server->stopping = TRUE;
  /* Timeline: shutdown refuses new calls and fails the pending requests;
   * cancelling all calls stops open streams from holding it up; the
   * queue thread wakes us on the shutdown tag (it does not need the main
   * loop, which we are blocking). Then the queue drains, and the events
   * the main loop has not dispatched run here, in order: close tags with
   * cancel callbacks, failed requests. */
  server->shutdown_tag.func = NULL;
  server->shutdown_tag.done = FALSE;
  grpc_server_shutdown_and_notify (server->server, proto_cq_get (server->cq),
                                   &server->shutdown_tag);
  grpc_server_cancel_all_calls (server->server);
  proto_cq_wait (server->cq, &server->shutdown_tag);
  proto_cq_shutdown (server->cq);
  server->cq_dead = TRUE;
  proto_cq_flush (server->cq);

  /* Calls whose handlers have not finished them yet outlive the server:
   * detach them; finishing them later only frees them. */
  g_hash_table_iter_init (&iter, server->calls);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    {
      proto_server_call_detach (key);
      g_hash_table_iter_remove (&iter);
    }
  grpc_server_destroy (g_steal_pointer (&server->server));
  g_clear_pointer (&server->cq, proto_cq_free);
}

void
proto_server_free (ProtoServer *server)
{
  if (!server)
    return;
  proto_server_stop (server);
  g_hash_table_destroy (server->calls);
  g_hash_table_destroy (server->methods);
  g_hash_table_destroy (server->authz);
  proto_trust_unref (server->trust);
  proto_tls_free (server->tls_next);
  g_mutex_clear (&server->tls_lock);
  g_main_context_unref (server->ctx);
  g_free (server);
  proto_unref_grpc ();
}
