/* AttachNic and DetachNic (issue 13): NIC hot-plug, forwarded to the VM's
 * agent. The scheduler resolves the NIC (network, bridge, VLAN, MTU, a
 * checked or assigned MAC) and checks that the VM's host has the network;
 * the agent changes the domain (live when it runs, and its definition)
 * and its Drover metadata, and replies with the VM's status, whose spec
 * the scheduler then keeps. Removing a VM's last NIC is allowed: a VM
 * without NICs is a valid VM (it was one before issue 13). */
#include "sched-nics.h"

#include <string.h>

#include "sched-events.h"
#include "sched-networks.h"

static gboolean
has_mac (const Drover__V1__VmSpec *spec, const char *mac)
{
  for (gsize i = 0; spec != NULL && i < spec->n_nics; i++)
    if (g_ascii_strcasecmp (spec->nics[i]->mac, mac) == 0)
      return TRUE;
  return FALSE;
}

/* vm.nic_added / vm.nic_removed for what differs from OLD to NEW. */
static void
emit_changes (SchedService *svc, const SchedVm *vm,
              const Drover__V1__VmSpec *old, const Drover__V1__VmSpec *new)
{
  for (gsize i = 0; i < new->n_nics; i++)
    if (!has_mac (old, new->nics[i]->mac))
      {
        drover_message (vm->name, NULL, vm->host, "NIC %s added on network %s",
                        new->nics[i]->mac, new->nics[i]->network);
        sched_events_emit (
            svc->events, SCHED_EVENT_VM_NIC_ADDED, vm->name, vm->host,
            vm->state, NULL, "NIC %s on network %s (bridge %s)",
            new->nics[i]->mac, new->nics[i]->network, new->nics[i]->bridge);
      }
  for (gsize i = 0; i < old->n_nics; i++)
    if (!has_mac (new, old->nics[i]->mac))
      {
        drover_message (vm->name, NULL, vm->host,
                        "NIC %s removed from network %s", old->nics[i]->mac,
                        old->nics[i]->network);
        sched_events_emit (svc->events, SCHED_EVENT_VM_NIC_REMOVED, vm->name,
                           vm->host, vm->state, NULL, "NIC %s on network %s",
                           old->nics[i]->mac, old->nics[i]->network);
      }
}

static void
nic_done (const ProtobufCMessage *reply, const GError *error,
          gpointer user_data)
{
  g_autoptr (SchedPending) p = user_data;
  SchedService *svc = p->svc;
  const Drover__V1__AgentVmReply *agent = (const void *)reply;
  Drover__V1__VmReply out = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm vm_out;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = NULL;

  if (error != NULL)
    {
      sched_agents_call_fail (p->call, p->host, error);
      return;
    }
  vm = sched_store_get_vm (svc->store, p->vm, &local);
  if (vm == NULL)
    {
      proto_server_call_fail (p->call, PROTO_STATUS_NOT_FOUND,
                              "VM '%s' was deleted meanwhile", p->vm);
      return;
    }
  if (agent->vm != NULL && agent->vm->spec != NULL
      && strcmp (vm->host, p->host) == 0)
    {
      Drover__V1__VmSpec *spec = proto_msg_copy (&agent->vm->spec->base);

      /* The migration defaults are the scheduler's, not in the domain. */
      if (vm->spec->migration_postcopy[0] != '\0'
          && spec->migration_postcopy[0] == '\0')
        spec->migration_postcopy
            = proto_msg_strdup (vm->spec->migration_postcopy);
      emit_changes (svc, vm, vm->spec, spec);
      proto_msg_free (vm->spec);
      vm->spec = spec;
      sched_vm_set_status (vm, agent->vm);
      if (!sched_store_put_vm (svc->store, vm, &local))
        drover_warning (p->vm, NULL, NULL, "%s", local->message);
    }
  drover__v1__vm__init (&vm_out);
  sched_vm_msg (vm, &vm_out);
  out.vm = &vm_out;
  proto_server_call_reply (p->call, &out.base);
}

/* The VM REQ names, if NIC changes may go to it now; else fails CALL. */
static SchedVm *
nic_vm (SchedService *svc, ProtoServerCall *call,
        const Drover__V1__NicRequest *req)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  const SchedJob *job;

  if (!proto_name_validate ("VM", req->name, &error))
    {
      sched_call_fail (call, error);
      return NULL;
    }
  vm = sched_store_get_vm (svc->store, req->name, &error);
  if (vm == NULL)
    {
      sched_call_fail (call, error);
      return NULL;
    }
  job = sched_migrator_find (svc->migrator, vm->name);
  if (job != NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' is migrating to host '%s' (job %s)",
                              vm->name, job->dest_host, job->id);
      return NULL;
    }
  if (strcmp (vm->state, PROTO_VM_CREATING) == 0
      || strcmp (vm->state, PROTO_VM_MISSING) == 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' is %s", vm->name, vm->state);
      return NULL;
    }
  return g_steal_pointer (&vm);
}

void
sched_nics_handle_attach (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__NicRequest *req = (const void *)request;
  Drover__V1__AgentNicRequest agent_req = DROVER__V1__AGENT_NIC_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autofree char *misfit = NULL;
  Drover__V1__VmNic *nic;
  GPtrArray *nets;
  guint8 mac[6];

  if (!proto_name_validate ("network", req->network, &error)
      || (req->mac[0] != '\0' && !proto_mac_parse (req->mac, mac, &error)))
    {
      sched_call_fail (call, error);
      return;
    }
  vm = nic_vm (svc, call, req);
  if (vm == NULL)
    return;
  if (vm->spec->n_nics >= PROTO_VM_MAX_NICS)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' has %d NICs, the most it may have",
                              vm->name, PROTO_VM_MAX_NICS);
      return;
    }
  vms = sched_store_list_vms (svc->store, NULL, &error);
  if (vms == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  spec = proto_msg_copy (&vm->spec->base);
  nic = g_new0 (Drover__V1__VmNic, 1);
  drover__v1__vm_nic__init (nic);
  nic->network = g_strdup (req->network);
  nic->mac = proto_msg_strdup (req->mac);
  spec->nics = g_renew (Drover__V1__VmNic *, spec->nics, spec->n_nics + 1);
  spec->nics[spec->n_nics++] = nic;
  if (!sched_nics_prepare (svc->store, spec, vms, vm->name, FALSE, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  /* The VM's host must offer the network. */
  host = sched_store_get_host (svc->store, vm->host, &error);
  if (host == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  nets = g_ptr_array_new ();
  {
    Drover__V1__Network net = DROVER__V1__NETWORK__INIT;

    net.name = nic->network;
    net.bridge = nic->bridge;
    net.vlan = nic->vlan;
    g_ptr_array_add (nets, &net);
    misfit = sched_networks_misfit (host, nets);
  }
  g_ptr_array_unref (nets);
  if (misfit != NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "host '%s' of VM '%s' cannot offer network %s: "
                              "%s",
                              vm->host, vm->name, nic->network, misfit);
      return;
    }
  agent_req.name = vm->name;
  agent_req.nic = nic;
  sched_agents_forward (svc->agents, svc, call, vm->name,
                        DROVER_AGENT_METHOD_ATTACH_NIC, &agent_req.base,
                        SCHED_AGENT_CALL_TIMEOUT_MS, nic_done);
}

void
sched_nics_handle_detach (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__NicRequest *req = (const void *)request;
  Drover__V1__AgentNicRequest agent_req = DROVER__V1__AGENT_NIC_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  Drover__V1__VmNic *found = NULL;
  guint on_network = 0;
  guint8 mac[6];

  if ((req->mac[0] == '\0') == (req->network[0] == '\0'))
    {
      proto_server_call_fail (call, PROTO_STATUS_INVALID_ARGUMENT,
                              "give the NIC's MAC or its network (one of "
                              "them)");
      return;
    }
  if ((req->mac[0] != '\0' && !proto_mac_parse (req->mac, mac, &error))
      || (req->network[0] != '\0'
          && !proto_name_validate ("network", req->network, &error)))
    {
      sched_call_fail (call, error);
      return;
    }
  vm = nic_vm (svc, call, req);
  if (vm == NULL)
    return;
  for (gsize i = 0; i < vm->spec->n_nics; i++)
    {
      Drover__V1__VmNic *nic = vm->spec->nics[i];

      if (req->mac[0] != '\0' ? g_ascii_strcasecmp (nic->mac, req->mac) == 0
                              : strcmp (nic->network, req->network) == 0)
        {
          found = nic;
          on_network++;
        }
    }
  if (found == NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_NOT_FOUND,
                              "VM '%s' has no NIC %s %s", vm->name,
                              req->mac[0] ? "with MAC" : "on network",
                              req->mac[0] ? req->mac : req->network);
      return;
    }
  if (on_network > 1)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' has %u NICs on network %s: name the "
                              "one to remove by its MAC",
                              vm->name, on_network, req->network);
      return;
    }
  agent_req.name = vm->name;
  agent_req.nic = found;
  sched_agents_forward (svc->agents, svc, call, vm->name,
                        DROVER_AGENT_METHOD_DETACH_NIC, &agent_req.base,
                        SCHED_AGENT_CALL_TIMEOUT_MS, nic_done);
}
