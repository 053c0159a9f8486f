/* agent_error_to_status: the one mapping from the errors the agent
 * answers calls with to gRPC status, for every domain it sees. */
#include "agent-private.h"
#include "mig-migrate.h"
#include "stor.h"

static void
test_to_status (void)
{
  const struct
  {
    GQuark domain;
    int code;
    ProtoStatus status;
  } cases[] = {
    { AGENT_ERROR, AGENT_ERROR_FAILED, PROTO_STATUS_INTERNAL },
    { AGENT_ERROR, AGENT_ERROR_INVALID, PROTO_STATUS_INVALID_ARGUMENT },
    { AGENT_ERROR, AGENT_ERROR_NOT_FOUND, PROTO_STATUS_NOT_FOUND },
    { AGENT_ERROR, AGENT_ERROR_EXISTS, PROTO_STATUS_ALREADY_EXISTS },
    { AGENT_ERROR, AGENT_ERROR_PRECONDITION, PROTO_STATUS_FAILED_PRECONDITION },
    { AGENT_ERROR, AGENT_ERROR_NO_RESOURCES, PROTO_STATUS_RESOURCE_EXHAUSTED },
    { AGENT_ERROR, AGENT_ERROR_BUSY, PROTO_STATUS_ABORTED },
    { AGENT_ERROR, AGENT_ERROR_UNAVAILABLE, PROTO_STATUS_UNAVAILABLE },
    { AGENT_ERROR, AGENT_ERROR_NOT_DROVER, PROTO_STATUS_NOT_FOUND },
    { STOR_ERROR, STOR_ERROR_FAILED, PROTO_STATUS_INTERNAL },
    { STOR_ERROR, STOR_ERROR_INVALID_NAME, PROTO_STATUS_INVALID_ARGUMENT },
    { STOR_ERROR, STOR_ERROR_EXISTS, PROTO_STATUS_FAILED_PRECONDITION },
    { STOR_ERROR, STOR_ERROR_NO_SPACE, PROTO_STATUS_RESOURCE_EXHAUSTED },
    { MIG_ERROR, MIG_ERROR_INVALID, PROTO_STATUS_INVALID_ARGUMENT },
    { MIG_ERROR, MIG_ERROR_ABORTED, PROTO_STATUS_ABORTED },
    { MIG_ERROR, MIG_ERROR_UNSUPPORTED, PROTO_STATUS_FAILED_PRECONDITION },
    { MIG_ERROR, MIG_ERROR_FAILED, PROTO_STATUS_INTERNAL },
    { MIG_ERROR, MIG_ERROR_AUTH, PROTO_STATUS_UNAUTHENTICATED },
    { MIG_ERROR, MIG_ERROR_CHANNEL_AUTH, PROTO_STATUS_UNAUTHENTICATED },
    { MIG_ERROR, MIG_ERROR_RPC_REFUSED, PROTO_STATUS_PERMISSION_DENIED },
    { G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE, PROTO_STATUS_UNAUTHENTICATED },
    { MIG_ERROR, MIG_ERROR_LOCAL, PROTO_STATUS_INTERNAL },
    { MIG_ERROR, MIG_ERROR_CHANNEL_CLOSED, PROTO_STATUS_INTERNAL },
    { G_IO_ERROR, G_IO_ERROR_NOT_FOUND, PROTO_STATUS_INTERNAL },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error
          = g_error_new_literal (cases[i].domain, cases[i].code, "x");

      g_assert_cmpint (agent_error_to_status (error), ==, cases[i].status);
    }
  /* PROTO_ERROR codes are gRPC status codes already. */
  for (int code = PROTO_STATUS_OK; code <= PROTO_STATUS_UNAUTHENTICATED; code++)
    {
      g_autoptr (GError) error = g_error_new_literal (PROTO_ERROR, code, "x");

      g_assert_cmpint (agent_error_to_status (error), ==, code);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/error/to-status", test_to_status);
  return g_test_run ();
}
