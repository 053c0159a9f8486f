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
