/* SetVmMigration: a VM's migration defaults, kept in its spec (issue 17).
 *
 * VmSpec.migration_postcopy says whether a migration of the VM given no
 * --postcopy may switch to post-copy ("auto") or never does ("never", as
 * a VM without the setting). The spec is stored as a whole, so the store
 * needs nothing new; sched_migrator_submit reads the default. */
#include "sched-migration-settings.h"

#include <string.h>

gboolean
sched_migration_check_postcopy_default (const char *postcopy, GError **error)
{
  if (g_strcmp0 (postcopy, PROTO_MIG_POSTCOPY_AUTO) == 0
      || g_strcmp0 (postcopy, PROTO_MIG_POSTCOPY_NEVER) == 0)
    return TRUE;
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "migration post-copy default must be auto or never, not "
               "'%.32s'",
               postcopy ? postcopy : "");
  return FALSE;
}

void
sched_migration_handle_set_vm (ProtoServerCall *call,
                               const ProtobufCMessage *request,
                               gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__SetVmMigrationRequest *req = (const void *)request;
  Drover__V1__VmReply reply = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm msg;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;

  if (!proto_name_validate ("VM", req->name, &error)
      || !sched_migration_check_postcopy_default (req->postcopy, &error)
      || (vm = sched_store_get_vm (svc->store, req->name, &error)) == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  if (strcmp (vm->spec->migration_postcopy, req->postcopy) != 0)
    {
      char *old = vm->spec->migration_postcopy;

      /* protobuf-c's shared empty string is never freed. */
      vm->spec->migration_postcopy = proto_msg_strdup (req->postcopy);
      if (!sched_store_put_vm (svc->store, vm, &error))
        {
          sched_call_fail (call, error);
          if (old[0] != '\0')
            g_free (old);
          return;
        }
      drover_message (vm->name, NULL, NULL, "migration post-copy default: %s",
                      req->postcopy);
      sched_events_emit (svc->events, SCHED_EVENT_VM_MIGRATION, vm->name,
                         vm->host, req->postcopy,
                         old[0] ? old : PROTO_MIG_POSTCOPY_NEVER,
                         "migration post-copy default: %s", req->postcopy);
      if (old[0] != '\0')
        g_free (old);
    }
  drover__v1__vm__init (&msg);
  sched_vm_msg (vm, &msg);
  reply.vm = &msg;
  proto_server_call_reply (call, &reply.base);
}
