/* Clones and templates on this host (issue 12).
 *
 * Not built yet: every method answers UNIMPLEMENTED. */
#include "agent-private.h"

void
agent_clone_vm (ProtoServerCall *call, const ProtobufCMessage *req,
                gpointer data)
{
  proto_server_call_fail (call, PROTO_STATUS_UNIMPLEMENTED,
                          "clones are not built yet");
}

ProtobufCMessage *
agent_clone_make_template (Agent *agent, virConnectPtr conn, virDomainPtr dom,
                           const ProtobufCMessage *request, GError **error)
{
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNIMPLEMENTED,
               "templates are not built yet");
  return NULL;
}
