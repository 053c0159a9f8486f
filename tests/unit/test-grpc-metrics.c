/* The gRPC server's metrics: every call it ends counts under its method
 * ("Service/Method") and status code, with its handling time; methods it
 * does not serve count as "unknown", refused ones under their method. A
 * real server on 127.0.0.1 in its own thread, called with blocking calls. */
#include <string.h>

#include "proto-private.h"
#include "test-support.h"

typedef struct
{
  ProtoMetrics *metrics;
  ProtoServer *server;
  char *address;
} Fixture;

static void
list_hosts (ProtoServerCall *call, const ProtobufCMessage *request,
            gpointer user_data)
{
  Drover__V1__ListHostsReply reply = DROVER__V1__LIST_HOSTS_REPLY__INIT;

  proto_server_call_reply (call, &reply.base);
}

static void
get_vm (ProtoServerCall *call, const ProtobufCMessage *request,
        gpointer user_data)
{
  proto_server_call_fail (call, PROTO_STATUS_NOT_FOUND, "no such VM");
}

/* ListHosts and GetVm are served; ListVms is served but no role may call
 * it; nothing else is served. */
static gboolean
serve (gpointer data, GError **error)
{
  Fixture *f = data;
  const ProtoAuthzRule authz[] = {
    { DROVER_SCHED_METHOD_LIST_HOSTS, PROTO_ROLES_ALL },
    { DROVER_SCHED_METHOD_GET_VM, PROTO_ROLES_ALL },
    { DROVER_SCHED_METHOD_LIST_VMS, 0 },
  };

  f->server = proto_server_new (NULL);
  proto_server_add_method (f->server, DROVER_SCHED_SERVICE,
                           DROVER_SCHED_METHOD_LIST_HOSTS, list_hosts, f);
  proto_server_add_method (f->server, DROVER_SCHED_SERVICE,
                           DROVER_SCHED_METHOD_GET_VM, get_vm, f);
  proto_server_add_method (f->server, DROVER_SCHED_SERVICE,
                           DROVER_SCHED_METHOD_LIST_VMS, list_hosts, f);
  proto_server_set_authz (f->server, DROVER_SCHED_SERVICE, authz,
                          G_N_ELEMENTS (authz));
  proto_server_set_metrics (f->server, f->metrics);
  if (!proto_server_start (f->server, "127.0.0.1:0", NULL, error))
    return FALSE;
  f->address
      = g_strdup_printf ("127.0.0.1:%d", proto_server_get_port (f->server));
  return TRUE;
}

static void
stop (gpointer data)
{
  Fixture *f = data;

  g_clear_pointer (&f->server, proto_server_free);
}

/* Calls METHOD (an empty request) and returns the status it ended with. */
static ProtoStatus
call (ProtoClient *client, guint method)
{
  Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;
  Drover__V1__ListHostsRequest hosts = DROVER__V1__LIST_HOSTS_REQUEST__INIT;
  Drover__V1__ListVmsRequest vms = DROVER__V1__LIST_VMS_REQUEST__INIT;
  Drover__V1__GetVmRequest vm = DROVER__V1__GET_VM_REQUEST__INIT;
  const ProtobufCMessage *req
      = method == DROVER_SCHED_METHOD_LIST_HOSTS ? &hosts.base
        : method == DROVER_SCHED_METHOD_LIST_VMS ? &vms.base
        : method == DROVER_SCHED_METHOD_GET_VM   ? &vm.base
                                                 : &empty.base;
  g_autoptr (GError) error = NULL;
  ProtobufCMessage *reply = proto_client_call_sync (
      client, DROVER_SCHED_SERVICE, method, req, 10000, &error);

  if (reply != NULL)
    {
      protobuf_c_message_free_unpacked (reply, NULL);
      return PROTO_STATUS_OK;
    }
  g_assert_true (error->domain == PROTO_ERROR);
  return error->code;
}

static gboolean
has_line (const char *text, const char *line)
{
  g_autofree char *needle = g_strconcat ("\n", line, "\n", NULL);

  return strstr (text, needle) != NULL;
}

static void
test_counts (void)
{
  Fixture f = { 0 };
  TestThread *t;
  g_autoptr (ProtoClient) client = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;

  f.metrics = proto_metrics_new ();
  t = test_thread_start ("grpc-metrics", serve, stop, &f);
  client = proto_client_new (f.address, NULL, PROTO_ROLES_ALL, NULL, &error);
  g_assert_no_error (error);

  g_assert_cmpint (call (client, DROVER_SCHED_METHOD_LIST_HOSTS), ==,
                   PROTO_STATUS_OK);
  g_assert_cmpint (call (client, DROVER_SCHED_METHOD_LIST_HOSTS), ==,
                   PROTO_STATUS_OK);
  g_assert_cmpint (call (client, DROVER_SCHED_METHOD_GET_VM), ==,
                   PROTO_STATUS_NOT_FOUND);
  g_assert_cmpint (call (client, DROVER_SCHED_METHOD_LIST_VMS), ==,
                   PROTO_STATUS_PERMISSION_DENIED);
  /* Registered nowhere: a method this server lacks, and a path of the
   * client's choosing. */
  for (guint i = 0; i < 2; i++)
    {
      g_autoptr (GBytes) none = g_bytes_new_static ("", 0);
      g_autoptr (GBytes) raw = proto_client_call_raw_sync (
          client,
          i == 0 ? "/drover.v1.SchedulerService/CreateVm" : "/evil\"{x}/Method",
          none, 10000, &error);

      g_assert_null (raw);
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_UNIMPLEMENTED);
      g_clear_error (&error);
    }

  text = proto_metrics_render (f.metrics);
  g_assert_true (has_line (text, "drover_grpc_server_handled_total{method="
                                 "\"SchedulerService/ListHosts\",code=\"OK\"} "
                                 "2"));
  g_assert_true (has_line (text, "drover_grpc_server_handled_total{method="
                                 "\"SchedulerService/GetVm\",code=\"NOT_"
                                 "FOUND\"} 1"));
  g_assert_true (has_line (text, "drover_grpc_server_handled_total{method="
                                 "\"SchedulerService/ListVms\",code="
                                 "\"PERMISSION_DENIED\"} 1"));
  g_assert_true (
      has_line (text, "drover_grpc_server_handled_total{method=\"unknown\","
                      "code=\"UNIMPLEMENTED\"} 2"));
  g_assert_true (has_line (text, "drover_grpc_server_handling_seconds_count{"
                                 "method=\"SchedulerService/ListHosts\"} 2"));
  g_assert_true (has_line (text, "drover_grpc_server_handling_seconds_bucket{"
                                 "method=\"SchedulerService/ListHosts\",le="
                                 "\"+Inf\"} 2"));
  g_assert_null (strstr (text, "evil"));
  g_assert_null (strstr (text, "CreateVm"));

  g_clear_pointer (&client, proto_client_free);
  test_thread_stop (t);
  g_free (f.address);
  proto_metrics_free (f.metrics);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/proto/grpc-metrics/counts", test_counts);
  return g_test_run ();
}
