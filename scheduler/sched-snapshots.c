/* Snapshots, clones and templates on the scheduler's side (issue 12):
 * the inventory, the jobs, and the calls to the VM's agent.
 *
 * Not built yet: every method answers UNIMPLEMENTED. */
#include "sched-private.h"

static void
unbuilt (ProtoServerCall *call)
{
  proto_server_call_fail (call, PROTO_STATUS_UNIMPLEMENTED,
                          "snapshots and clones are not built yet");
}

void
sched_snap_handle_create (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  unbuilt (call);
}

void
sched_snap_handle_list (ProtoServerCall *call, const ProtobufCMessage *request,
                        gpointer user_data)
{
  unbuilt (call);
}

void
sched_snap_handle_revert (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  unbuilt (call);
}

void
sched_snap_handle_delete (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  unbuilt (call);
}

void
sched_snap_handle_clone (ProtoServerCall *call, const ProtobufCMessage *request,
                         gpointer user_data)
{
  unbuilt (call);
}

void
sched_snap_handle_template (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  unbuilt (call);
}
