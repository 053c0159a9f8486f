/* The agent's error domain, and the one mapping from the errors the agent
 * answers calls with (its own, proto's, storage's and the migration
 * engine's) to a gRPC status. */
#include "agent-private.h"

#include <gio/gio.h>

#include "mig-migrate.h"
#include "stor.h"

G_DEFINE_QUARK (drover_agent_error, agent_error)

static ProtoStatus
agent_code_status (AgentError code)
{
  switch (code)
    {
    case AGENT_ERROR_INVALID:
      return PROTO_STATUS_INVALID_ARGUMENT;
    case AGENT_ERROR_NOT_FOUND:
    case AGENT_ERROR_NOT_DROVER:
      return PROTO_STATUS_NOT_FOUND;
    case AGENT_ERROR_EXISTS:
      return PROTO_STATUS_ALREADY_EXISTS;
    case AGENT_ERROR_PRECONDITION:
      return PROTO_STATUS_FAILED_PRECONDITION;
    case AGENT_ERROR_NO_RESOURCES:
      return PROTO_STATUS_RESOURCE_EXHAUSTED;
    case AGENT_ERROR_BUSY:
      return PROTO_STATUS_ABORTED;
    case AGENT_ERROR_UNAVAILABLE:
      return PROTO_STATUS_UNAVAILABLE;
    case AGENT_ERROR_FAILED:
      break;
    }
  return PROTO_STATUS_INTERNAL;
}

static ProtoStatus
stor_code_status (StorError code)
{
  switch (code)
    {
    case STOR_ERROR_INVALID_NAME:
      return PROTO_STATUS_INVALID_ARGUMENT;
    case STOR_ERROR_EXISTS:
      return PROTO_STATUS_FAILED_PRECONDITION;
    case STOR_ERROR_NO_SPACE:
      return PROTO_STATUS_RESOURCE_EXHAUSTED;
    /* The backup repository's (issue 14). */
    case STOR_ERROR_NOT_FOUND:
      return PROTO_STATUS_NOT_FOUND;
    case STOR_ERROR_CORRUPT:
      return PROTO_STATUS_DATA_LOSS;
    case STOR_ERROR_BUSY:
      return PROTO_STATUS_ABORTED;
    case STOR_ERROR_FAILED:
      break;
    }
  return PROTO_STATUS_INTERNAL;
}

/* MIG_ERROR holds MigError (mig.h), the channel's codes (from 100) and
 * the orchestration's (from 200): a plain int. */
static ProtoStatus
mig_code_status (int code)
{
  switch (code)
    {
    case MIG_ERROR_ABORTED:
      return PROTO_STATUS_ABORTED;
    case MIG_ERROR_INVALID:
      return PROTO_STATUS_INVALID_ARGUMENT;
    case MIG_ERROR_UNSUPPORTED:
      return PROTO_STATUS_FAILED_PRECONDITION;
    case MIG_ERROR_RPC_REFUSED:
      return PROTO_STATUS_PERMISSION_DENIED;
    case MIG_ERROR_CHANNEL_AUTH:
    case MIG_ERROR_AUTH:
      return PROTO_STATUS_UNAUTHENTICATED;
    default:
      return PROTO_STATUS_INTERNAL;
    }
}

ProtoStatus
agent_error_to_status (const GError *error)
{
  if (error->domain == PROTO_ERROR)
    return (ProtoStatus)error->code;
  if (error->domain == AGENT_ERROR)
    return agent_code_status ((AgentError)error->code);
  if (error->domain == STOR_ERROR)
    return stor_code_status ((StorError)error->code);
  if (error->domain == MIG_ERROR)
    return mig_code_status (error->code);
  /* A peer's certificate refused in a TLS handshake. */
  if (error->domain == G_TLS_ERROR
      && (error->code == G_TLS_ERROR_BAD_CERTIFICATE
          || error->code == G_TLS_ERROR_CERTIFICATE_REQUIRED))
    return PROTO_STATUS_UNAUTHENTICATED;
  return PROTO_STATUS_INTERNAL;
}
