/* A ProtoServer made from a table of handlers. */
#include "test-rpc.h"

ProtoServer *
test_rpc_server_new (const TestRpcService *service, gpointer data,
                     GMainContext *ctx, const ProtoTls *tls, GError **error)
{
  g_autoptr (ProtoServer) server = proto_server_new (ctx);

  for (gsize i = 0; i < service->n_methods; i++)
    proto_server_add_method (server, service->service,
                             service->methods[i].method,
                             service->methods[i].handler, data);
  proto_server_set_authz (server, service->service, service->authz,
                          service->n_authz);
  if (!proto_server_start (server, "127.0.0.1:0", tls, error))
    return NULL;
  return g_steal_pointer (&server);
}

char *
test_rpc_address (ProtoServer *server)
{
  return g_strdup_printf ("127.0.0.1:%d", proto_server_get_port (server));
}

static gboolean
serve (gpointer data, GError **error)
{
  TestRpcServer *rs = data;

  rs->server
      = test_rpc_server_new (&rs->service, rs->data, NULL, rs->tls, error);
  if (!rs->server)
    return FALSE;
  rs->port = proto_server_get_port (rs->server);
  rs->address = test_rpc_address (rs->server);
  return TRUE;
}

static void
close_server (gpointer data)
{
  TestRpcServer *rs = data;

  g_clear_pointer (&rs->server, proto_server_free);
}

TestRpcServer *
test_rpc_server_start (const TestRpcService *service, gpointer data,
                       const ProtoTls *tls)
{
  TestRpcServer *rs = g_new0 (TestRpcServer, 1);

  rs->service = *service;
  rs->data = data;
  rs->tls = tls;
  rs->thread = test_thread_start ("test-server", serve, close_server, rs);
  return rs;
}

void
test_rpc_server_stop (TestRpcServer *rs)
{
  test_thread_stop (rs->thread);
  g_free (rs->address);
  g_free (rs);
}

ProtoTls *
test_rpc_tls (const char *pki_dir, const char *who)
{
  g_autofree char *dir = g_build_filename (pki_dir, who, NULL);
  g_autoptr (GError) error = NULL;
  ProtoTls *tls = proto_tls_load (dir, &error);

  g_assert_no_error (error);
  return tls;
}

typedef struct
{
  gboolean done;
  ProtobufCMessage *reply;
  GError *error;
} CallResult;

static void
call_replied (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  CallResult *r = user_data;

  r->done = TRUE;
  r->reply = reply ? proto_msg_copy (reply) : NULL;
  r->error = error ? g_error_copy (error) : NULL;
}

gpointer
test_rpc_call (ProtoClient *client, const ProtobufCServiceDescriptor *service,
               guint method, gconstpointer request, GError **error)
{
  CallResult r = { 0 };

  proto_client_call (client, service, method, request, 30000, call_replied, &r);
  while (!r.done)
    g_main_context_iteration (NULL, TRUE);
  if (r.error != NULL)
    g_propagate_error (error, r.error);
  return r.reply;
}
