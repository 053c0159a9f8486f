/* agent_error_to_status: the one mapping from the errors the agent
 * answers calls with to gRPC status, for every domain it sees. */
#include "agent-private.h"
#include "mig-migrate.h"
#include "stor.h"

static void
assert_status (GQuark domain, int code, ProtoStatus want)
{
  g_autoptr (GError) error = g_error_new_literal (domain, code, "x");

  g_assert_cmpint (agent_error_to_status (error), ==, want);
}

static void
test_agent (void)
{
  assert_status (AGENT_ERROR, AGENT_ERROR_FAILED, PROTO_STATUS_INTERNAL);
  assert_status (AGENT_ERROR, AGENT_ERROR_INVALID,
                 PROTO_STATUS_INVALID_ARGUMENT);
  assert_status (AGENT_ERROR, AGENT_ERROR_NOT_FOUND, PROTO_STATUS_NOT_FOUND);
  assert_status (AGENT_ERROR, AGENT_ERROR_EXISTS, PROTO_STATUS_ALREADY_EXISTS);
  assert_status (AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                 PROTO_STATUS_FAILED_PRECONDITION);
  assert_status (AGENT_ERROR, AGENT_ERROR_NO_RESOURCES,
                 PROTO_STATUS_RESOURCE_EXHAUSTED);
  assert_status (AGENT_ERROR, AGENT_ERROR_BUSY, PROTO_STATUS_ABORTED);
  assert_status (AGENT_ERROR, AGENT_ERROR_UNAVAILABLE,
                 PROTO_STATUS_UNAVAILABLE);
  assert_status (AGENT_ERROR, AGENT_ERROR_NOT_DROVER, PROTO_STATUS_NOT_FOUND);
}

static void
test_proto (void)
{
  /* PROTO_ERROR codes are gRPC status codes already. */
  for (int code = PROTO_STATUS_OK; code <= PROTO_STATUS_UNAUTHENTICATED; code++)
    assert_status (PROTO_ERROR, code, (ProtoStatus)code);
}

static void
test_stor (void)
{
  assert_status (STOR_ERROR, STOR_ERROR_FAILED, PROTO_STATUS_INTERNAL);
  assert_status (STOR_ERROR, STOR_ERROR_INVALID_NAME,
                 PROTO_STATUS_INVALID_ARGUMENT);
  assert_status (STOR_ERROR, STOR_ERROR_EXISTS,
                 PROTO_STATUS_FAILED_PRECONDITION);
  assert_status (STOR_ERROR, STOR_ERROR_NO_SPACE,
                 PROTO_STATUS_RESOURCE_EXHAUSTED);
}

static void
test_mig (void)
{
  assert_status (MIG_ERROR, MIG_ERROR_INVALID, PROTO_STATUS_INVALID_ARGUMENT);
  assert_status (MIG_ERROR, MIG_ERROR_ABORTED, PROTO_STATUS_ABORTED);
  assert_status (MIG_ERROR, MIG_ERROR_UNSUPPORTED,
                 PROTO_STATUS_FAILED_PRECONDITION);
  assert_status (MIG_ERROR, MIG_ERROR_FAILED, PROTO_STATUS_INTERNAL);
  assert_status (MIG_ERROR, MIG_ERROR_AUTH, PROTO_STATUS_INTERNAL);
  assert_status (MIG_ERROR, MIG_ERROR_LOCAL, PROTO_STATUS_INTERNAL);
  assert_status (MIG_ERROR, MIG_ERROR_CHANNEL_CLOSED, PROTO_STATUS_INTERNAL);
}

static void
test_other (void)
{
  assert_status (G_IO_ERROR, G_IO_ERROR_NOT_FOUND, PROTO_STATUS_INTERNAL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/error/agent", test_agent);
  g_test_add_func ("/agent/error/proto", test_proto);
  g_test_add_func ("/agent/error/stor", test_stor);
  g_test_add_func ("/agent/error/mig", test_mig);
  g_test_add_func ("/agent/error/other", test_other);
  return g_test_run ();
}
