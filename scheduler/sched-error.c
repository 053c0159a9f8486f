/* The error domain of libdrover-scheduler and its one mapping onto gRPC
 * status codes, used wherever a handler fails a call. */
#include "sched-private.h"

/* An underscored name: the formatter would put spaces into a dashed one,
 * which the macro stringifies. */
G_DEFINE_QUARK (drover_sched_error, sched_error)

ProtoStatus
sched_error_to_status (const GError *error)
{
  if (error == NULL)
    return PROTO_STATUS_OK;
  if (error->domain == PROTO_ERROR)
    return error->code;
  if (error->domain != SCHED_ERROR)
    return PROTO_STATUS_INTERNAL;
  switch ((SchedError)error->code)
    {
    case SCHED_ERROR_NOT_FOUND:
      return PROTO_STATUS_NOT_FOUND;
    case SCHED_ERROR_EXISTS:
      return PROTO_STATUS_ALREADY_EXISTS;
    case SCHED_ERROR_INVALID:
      return PROTO_STATUS_INVALID_ARGUMENT;
    case SCHED_ERROR_NO_CAPACITY:
      return PROTO_STATUS_RESOURCE_EXHAUSTED;
    case SCHED_ERROR_PRECONDITION:
      return PROTO_STATUS_FAILED_PRECONDITION;
    case SCHED_ERROR_UNAVAILABLE:
      return PROTO_STATUS_UNAVAILABLE;
    case SCHED_ERROR_CORRUPT:
      return PROTO_STATUS_DATA_LOSS;
    case SCHED_ERROR_STORE:
    case SCHED_ERROR_FAILED:
    default:
      return PROTO_STATUS_INTERNAL;
    }
}

void
sched_call_fail (ProtoServerCall *call, const GError *error)
{
  proto_server_call_fail (call, sched_error_to_status (error), "%s",
                          error->message);
}
