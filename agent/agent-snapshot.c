/* Snapshots of a VM on this host (issue 12): create, list, revert,
 * delete.
 *
 * Not built yet: every method answers UNIMPLEMENTED. */
#include "agent-private.h"

static void
unbuilt (ProtoServerCall *call)
{
  proto_server_call_fail (call, PROTO_STATUS_UNIMPLEMENTED,
                          "snapshots are not built yet");
}

void
agent_snapshot_create (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  unbuilt (call);
}

void
agent_snapshot_revert (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  unbuilt (call);
}

void
agent_snapshot_delete (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  unbuilt (call);
}

ProtobufCMessage *
agent_snapshot_list (Agent *agent, const AgentCaller *caller,
                     const ProtobufCMessage *request, GError **error)
{
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_UNIMPLEMENTED,
               "snapshots are not built yet");
  return NULL;
}
