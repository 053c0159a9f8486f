/* The operators' VM calls of drover.v1.SchedulerService: ListHosts,
 * ListVms and GetVm answer from the store; CreateVm places the VM and
 * asks the chosen host's agent to create it; Start/Stop/DestroyVm,
 * ReadConsole and DeleteVm go to the VM's agent (SchedAgents); MigrateVm
 * and CancelJob hand over to the migrator. Start, stop and destroy leave
 * a job each (kind start/stop/destroy), so the job list shows them, and a
 * stop that had to destroy the VM says so. Every handler finishes its call
 * exactly once: at once for errors found here, else in the agent call's
 * completion.
 *
 * Decisions worth knowing:
 * - VMs in state "creating" refuse lifecycle commands and deletion
 *   (FAILED_PRECONDITION) until their create finishes.
 * - DeleteVm of a VM whose host is unknown to the store, or that is
 *   "missing" while its host is down, only removes the record: there is
 *   no agent that could have it. If the host is down and the VM was last
 *   seen there, it is UNAVAILABLE (deleting the record would leave a VM
 *   that gets adopted again when the host returns). An agent answering
 *   NOT_FOUND to DeleteVm counts as success.
 * - GetVm answers from the store (agents report every interval); it does
 *   not need the host to be up.
 * - A VM migrating refuses start/stop/destroy/delete (FAILED_PRECONDITION).
 * - ListVms and GetVm show a VM whose host is down as "unknown" (the
 *   record keeps its last report until the host reports again).
 */
#include "sched-balancer.h"
#include "sched-nics.h"

#include <string.h>

/* Fills the (initialised) Vm message MSG_OUT with VM's memory, borrowed
 * (a SchedMsgFill). HOSTS (SchedHost, may be NULL) are the known hosts: a
 * VM whose host is down shows "unknown", whatever it last reported, until
 * its host reports again (the record keeps the last report). */
static void
vm_msg (gconstpointer row, gpointer msg_out, gpointer hosts)
{
  const SchedVm *vm = row;
  Drover__V1__Vm *msg = msg_out;
  const SchedHost *host = hosts ? sched_host_find (hosts, vm->host) : NULL;

  msg->spec = vm->spec;
  msg->host = vm->host;
  msg->state = vm->state;
  if (host != NULL && strcmp (host->state, PROTO_HOST_UP) != 0)
    msg->state = (char *)PROTO_VM_UNKNOWN;
  msg->status = vm->status;
  msg->updated_ms = vm->updated_ms;
  msg->template_ = vm->template != 0;
  msg->current_snapshot = vm->current_snapshot;
  msg->snapshots = (uint32_t)MAX (vm->snapshots, 0);
  msg->labels = vm->labels ? vm->labels : (char *)"";
}

void
sched_vm_msg (const SchedVm *vm, Drover__V1__Vm *msg)
{
  vm_msg (vm, msg, NULL);
}

static void
reply_vm (ProtoServerCall *call, const SchedVm *vm)
{
  Drover__V1__VmReply reply = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm msg;

  drover__v1__vm__init (&msg);
  vm_msg (vm, &msg, NULL);
  reply.vm = &msg;
  proto_server_call_reply (call, &reply.base);
}

static gint64
now_ms (SchedService *svc)
{
  return sched_registry_now (svc->registry);
}

/* Fails CALL and returns TRUE if VM NAME is migrating. */
static gboolean
refuse_if_migrating (SchedService *svc, ProtoServerCall *call, const char *name)
{
  const SchedJob *job = sched_migrator_find (svc->migrator, name);

  if (job == NULL)
    return FALSE;
  proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                          "VM '%s' is migrating to host '%s' (job %s)", name,
                          job->dest_host, job->id);
  return TRUE;
}

/* --- queries ----------------------------------------------------------- */

/* Fills the (initialised) Host message MSG_OUT with HOST's memory,
 * borrowed, and the usage of the VMS (GPtrArray of SchedVm) placed on it
 * (a SchedMsgFill). */
void
sched_host_msg (gconstpointer row, gpointer msg_out, gpointer vms)
{
  const SchedHost *host = row;
  Drover__V1__Host *msg = msg_out;
  guint count, vcpus;
  guint64 memory;

  sched_host_usage (host->name, vms, &count, &vcpus, &memory, NULL);
  msg->info = host->info;
  msg->state = host->state;
  msg->last_seen_ms = host->last_seen_ms;
  msg->vm_count = count;
  msg->vcpus_used = vcpus;
  msg->memory_used = memory;
  msg->maintenance = host->maintenance;
}

/* What ListHosts fills a host's message from. */
typedef struct
{
  SchedService *svc;
  GPtrArray *vms;
} HostsFill;

/* sched_host_msg, and what the policy and the load window say of the host
 * (issue 15): its overcommit ratios, capacities and CPU load. */
static void
host_msg_capacity (gconstpointer row, gpointer msg_out, gpointer user_data)
{
  const HostsFill *fill = user_data;
  const SchedPolicy *policy = &fill->svc->policy;
  const SchedHost *host = row;
  Drover__V1__Host *msg = msg_out;

  sched_host_msg (row, msg_out, fill->vms);
  msg->cpu_overcommit = policy->cpu_overcommit;
  msg->memory_overcommit = policy->memory_overcommit;
  msg->vcpu_capacity = sched_policy_vcpu_cap (policy, host->info->cpus);
  msg->memory_capacity
      = sched_policy_memory_cap (policy, host->info->memory_total);
  sched_load_host (sched_balancer_load (fill->svc->balancer), host->name,
                   &msg->cpu_load, NULL);
}

void
sched_vm_handle_list_hosts (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  Drover__V1__ListHostsReply reply = DROVER__V1__LIST_HOSTS_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (svc->store, &error);
  g_autoptr (GPtrArray) vms = NULL;
  HostsFill fill = { svc, NULL };

  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, &error);
  fill.vms = vms;
  sched_call_reply_rows (call, &reply.base, vms ? hosts : NULL,
                         host_msg_capacity, &fill, error);
}

void
sched_vm_handle_list_vms (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  Drover__V1__ListVmsReply reply = DROVER__V1__LIST_VMS_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) vms = sched_store_list_vms (svc->store, NULL, &error);
  g_autoptr (GPtrArray) hosts = NULL;

  if (vms != NULL)
    hosts = sched_store_list_hosts (svc->store, &error);
  sched_call_reply_rows (call, &reply.base, hosts ? vms : NULL, vm_msg, hosts,
                         error);
}

void
sched_vm_handle_get (ProtoServerCall *call, const ProtobufCMessage *request,
                     gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__GetVmRequest *req = (const void *)request;
  Drover__V1__VmReply reply = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm msg;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (GPtrArray) hosts = NULL;

  if (!proto_name_validate ("VM", req->name, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  vm = sched_store_get_vm (svc->store, req->name, &error);
  if (vm == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  hosts = sched_store_list_hosts (svc->store, &error);
  if (hosts == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  drover__v1__vm__init (&msg);
  vm_msg (vm, &msg, hosts);
  reply.vm = &msg;
  proto_server_call_reply (call, &reply.base);
}

/* --- CreateVm ---------------------------------------------------------- */

static void
create_done (const ProtobufCMessage *reply, const GError *error,
             gpointer user_data)
{
  g_autoptr (SchedPending) p = user_data;
  SchedService *svc = p->svc;
  const Drover__V1__AgentVmReply *agent = (const void *)reply;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = sched_store_get_vm (svc->store, p->vm, &local);
  g_autofree char *msg = NULL;

  if (error != NULL)
    {
      msg = g_strdup_printf ("host '%s': %s", p->host, error->message);
      drover_message (p->vm, p->job->id, p->host, "creating the VM failed: %s",
                      error->message);
      /* Only our own reservation goes: a report may have moved the VM. */
      if (vm != NULL && strcmp (vm->host, p->host) == 0
          && strcmp (vm->state, PROTO_VM_CREATING) == 0
          && !sched_store_delete_vm (svc->store, p->vm, &local))
        drover_warning (p->vm, p->job->id, NULL, "%s", local->message);
      sched_jobs_set (svc->jobs, p->job, PROTO_JOB_FAILED, p->job->progress,
                      NULL, msg);
      sched_agents_call_fail (p->call, p->host, error);
      return;
    }

  if (vm == NULL)
    {
      /* Cannot happen while creating VMs refuse deletion; the host's next
       * report adopts the VM. */
      sched_jobs_set (svc->jobs, p->job, PROTO_JOB_DONE, 1.0,
                      "created, record lost", NULL);
      proto_server_call_fail (p->call, PROTO_STATUS_ABORTED,
                              "VM '%s' was created on host '%s' but "
                              "its record went away meanwhile",
                              p->vm, p->host);
      return;
    }
  if (agent->vm != NULL)
    {
      sched_registry_vm_changed (svc->registry, vm->name, p->host,
                                 agent->fresh_report_seq);
      sched_vm_set_status (vm, agent->vm);
      sched_vm_set_state (vm, agent->vm->state[0] ? agent->vm->state
                                                  : PROTO_VM_UNKNOWN);
    }
  else if (strcmp (vm->state, PROTO_VM_CREATING) == 0)
    sched_vm_set_state (vm, PROTO_VM_UNKNOWN);
  vm->updated_ms = now_ms (svc);
  if (!sched_store_put_vm (svc->store, vm, &local))
    drover_warning (p->vm, p->job->id, NULL, "%s", local->message);
  drover_message (p->vm, p->job->id, p->host, "VM created");
  sched_events_emit (svc->events, SCHED_EVENT_VM_CREATED, p->vm, p->host,
                     vm->state, NULL, "created on host %s", p->host);
  msg = g_strdup_printf ("created on host %s", p->host);
  sched_jobs_set (svc->jobs, p->job, PROTO_JOB_DONE, 1.0, msg, NULL);
  reply_vm (p->call, vm);
}

void
sched_vm_handle_create (ProtoServerCall *call, const ProtobufCMessage *request,
                        gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__CreateVmRequest *req = (const void *)request;
  Drover__V1__AgentCreateVmRequest agent_req
      = DROVER__V1__AGENT_CREATE_VM_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) existing = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *chosen = NULL;
  g_autofree char *msg = NULL;
  SchedJob *job;
  ProtoClient *client;
  gint64 now = now_ms (svc);

  if (!proto_vm_spec_check (req->spec, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  if (req->host[0] != '\0' && !proto_name_validate ("host", req->host, &error))
    {
      sched_call_fail (call, error);
      return;
    }

  existing = sched_store_get_vm (svc->store, req->spec->name, &error);
  if (existing != NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_ALREADY_EXISTS,
                              "VM '%s' already exists (on host '%s')",
                              existing->name, existing->host);
      return;
    }
  if (!g_error_matches (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    {
      sched_call_fail (call, error);
      return;
    }
  g_clear_error (&error);

  hosts = sched_store_list_hosts (svc->store, &error);
  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, &error);
  if (vms == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  /* The NICs: networks resolved, MACs checked or assigned. */
  spec = proto_msg_copy (&req->spec->base);
  if (!sched_nics_prepare (svc->store, spec, vms, NULL, FALSE, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  sched_migrator_add_reservations (svc->migrator, vms);
  chosen = sched_place (&svc->policy, hosts, vms, spec, req->host, &error);
  if (chosen == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  /* Without either the guest has nothing to boot and QEMU spins on an
   * empty machine. Checked after placement, so that a VM that fits
   * nowhere hears that first. */
  if (req->spec->kernel[0] == '\0' && req->spec->disk == 0
      && req->spec->image[0] == '\0')
    {
      proto_server_call_fail (call, PROTO_STATUS_INVALID_ARGUMENT,
                              "VM '%s' has nothing to boot: give a kernel "
                              "(--kernel, with --initrd and --cmdline), an "
                              "image (--image) or a disk (--disk SIZE)",
                              req->spec->name);
      return;
    }
  host = sched_store_get_host (svc->store, chosen, &error);
  if (host == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  client = sched_agents_client (svc->agents, host, &error);
  if (client == NULL)
    {
      sched_call_fail (call, error);
      return;
    }

  /* The "creating" row is the reservation that later placements see. */
  vm = sched_vm_new (spec, chosen, PROTO_VM_CREATING, NULL, now);
  if (!sched_store_put_vm (svc->store, vm, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  job = sched_job_new (PROTO_JOB_KIND_CREATE, vm->name, PROTO_JOB_RUNNING, now);
  msg = g_strdup_printf ("creating on host %s", chosen);
  sched_jobs_set (svc->jobs, job, PROTO_JOB_RUNNING, 0.1, msg, NULL);
  drover_message (vm->name, job->id, chosen, "VM placed");

  agent_req.spec = spec;
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_CREATE_VM,
                     &agent_req.base, SCHED_AGENT_CREATE_TIMEOUT_MS,
                     create_done,
                     sched_pending_new (svc, call, vm->name, chosen, job));
}

/* --- StartVm, StopVm, DestroyVm, ReadConsole --------------------------- */

/* A stopped VM NAME holds no capacity: starting it needs room on its
 * host (sched_check_start_room). An unknown VM passes (the forward says
 * so). */
static gboolean
start_room (SchedService *svc, const char *name, GError **error)
{
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (svc->store, error);
  g_autoptr (GPtrArray) vms = NULL;

  if (hosts == NULL
      || (vms = sched_store_list_vms (svc->store, NULL, error)) == NULL)
    return FALSE;
  sched_migrator_add_reservations (svc->migrator, vms);
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      if (strcmp (vm->name, name) == 0)
        return sched_check_start_room (&svc->policy, hosts, vms, vm, error);
    }
  return TRUE;
}

/* What a lifecycle job of KIND says once the agent answered; FORCED is
 * the agent's word that a stop had to destroy the VM. Caller frees. */
static char *
lifecycle_outcome (const SchedPending *p, const char *kind, gboolean forced)
{
  if (strcmp (kind, PROTO_JOB_KIND_START) == 0)
    return g_strdup_printf ("started on host %s", p->host);
  if (strcmp (kind, PROTO_JOB_KIND_DESTROY) == 0)
    return g_strdup_printf ("destroyed (forced off) on host %s", p->host);
  if (!forced)
    return g_strdup_printf ("shut down by the guest on host %s", p->host);
  if (p->force)
    return g_strdup_printf ("forced off (--force: destroyed without a guest "
                            "shutdown) on host %s",
                            p->host);
  return g_strdup_printf ("forced off: the guest did not shut down within "
                          "the grace period, destroyed on host %s",
                          p->host);
}

static void
lifecycle_done (const ProtobufCMessage *reply, const GError *error,
                gpointer user_data)
{
  g_autoptr (SchedPending) p = user_data;
  SchedService *svc = p->svc;
  const Drover__V1__AgentVmReply *agent = (const void *)reply;
  Drover__V1__VmReply out = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm vm_out;
  Drover__V1__Job job_out;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autofree char *outcome = NULL;

  if (error != NULL)
    {
      g_autofree char *msg
          = g_strdup_printf ("host '%s': %s", p->host, error->message);

      sched_jobs_set (svc->jobs, p->job, PROTO_JOB_FAILED, p->job->progress,
                      NULL, msg);
      sched_agents_call_fail (p->call, p->host, error);
      return;
    }

  outcome = lifecycle_outcome (p, p->job->kind, agent->forced);
  drover_message (p->vm, p->job->id, p->host, "VM %s", outcome);
  sched_jobs_set (svc->jobs, p->job, PROTO_JOB_DONE, 1.0, outcome, NULL);
  vm = sched_store_get_vm (svc->store, p->vm, &local);
  if (vm == NULL)
    {
      proto_server_call_fail (p->call, PROTO_STATUS_NOT_FOUND,
                              "VM '%s' was deleted meanwhile", p->vm);
      return;
    }
  if (agent->vm != NULL && strcmp (vm->host, p->host) == 0)
    {
      sched_registry_vm_changed (svc->registry, vm->name, p->host,
                                 agent->fresh_report_seq);
      sched_vm_set_status (vm, agent->vm);
      if (agent->vm->state[0] != '\0')
        {
          sched_events_vm_state (svc->events, vm->name, vm->host, vm->state,
                                 agent->vm->state);
          sched_vm_set_state (vm, agent->vm->state);
        }
      vm->updated_ms = now_ms (svc);
      if (!sched_store_put_vm (svc->store, vm, &local))
        drover_warning (p->vm, NULL, NULL, "%s", local->message);
    }
  drover__v1__vm__init (&vm_out);
  vm_msg (vm, &vm_out, NULL);
  sched_job_msg (p->job, &job_out);
  out.vm = &vm_out;
  out.job = &job_out;
  proto_server_call_reply (p->call, &out.base);
}

/* Forwards a lifecycle command for VM NAME to its agent, unless the VM is
 * migrating, with a job of KIND that records it (FORCE: a stop asked for
 * --force). */
static void
lifecycle (SchedService *svc, ProtoServerCall *call, const char *name,
           const char *kind, gboolean force, guint agent_method,
           const ProtobufCMessage *request, gint64 timeout_ms)
{
  SchedPending *p;
  g_autofree char *msg = NULL;
  g_autoptr (GError) error = NULL;

  if (refuse_if_migrating (svc, call, name))
    return;
  if (strcmp (kind, PROTO_JOB_KIND_START) == 0
      && (!sched_snapshots_check_start (svc, name, &error)
          || !start_room (svc, name, &error)))
    {
      sched_call_fail (call, error);
      return;
    }
  p = sched_agents_forward (svc->agents, svc, call, name, agent_method, request,
                            timeout_ms, lifecycle_done);
  if (p == NULL)
    return;
  p->force = force;
  p->job = sched_job_new (kind, p->vm, PROTO_JOB_RUNNING, now_ms (svc));
  msg = g_strdup_printf ("%s on host %s",
                         strcmp (kind, PROTO_JOB_KIND_START) == 0 ? "starting"
                         : strcmp (kind, PROTO_JOB_KIND_STOP) == 0
                             ? "stopping"
                             : "destroying",
                         p->host);
  sched_jobs_set (svc->jobs, p->job, PROTO_JOB_RUNNING, 0.1, msg, NULL);
}

void
sched_vm_handle_start (ProtoServerCall *call, const ProtobufCMessage *request,
                       gpointer user_data)
{
  const Drover__V1__VmRequest *req = (const void *)request;

  lifecycle (user_data, call, req->name, PROTO_JOB_KIND_START, FALSE,
             DROVER_AGENT_METHOD_START_VM, request,
             SCHED_AGENT_CALL_TIMEOUT_MS);
}

void
sched_vm_handle_stop (ProtoServerCall *call, const ProtobufCMessage *request,
                      gpointer user_data)
{
  const Drover__V1__StopVmRequest *req = (const void *)request;

  lifecycle (user_data, call, req->name, PROTO_JOB_KIND_STOP, req->force,
             DROVER_AGENT_METHOD_STOP_VM, request,
             SCHED_AGENT_CALL_TIMEOUT_MS + SCHED_AGENT_STOP_EXTRA_MS
                 + req->timeout_ms);
}

void
sched_vm_handle_destroy (ProtoServerCall *call, const ProtobufCMessage *request,
                         gpointer user_data)
{
  const Drover__V1__VmRequest *req = (const void *)request;

  lifecycle (user_data, call, req->name, PROTO_JOB_KIND_DESTROY, TRUE,
             DROVER_AGENT_METHOD_DESTROY_VM, request,
             SCHED_AGENT_CALL_TIMEOUT_MS);
}

static void
console_done (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  g_autoptr (SchedPending) p = user_data;

  if (error != NULL)
    {
      sched_agents_call_fail (p->call, p->host, error);
      return;
    }
  proto_server_call_reply (p->call, reply);
}

void
sched_vm_handle_read_console (ProtoServerCall *call,
                              const ProtobufCMessage *request,
                              gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__ConsoleRequest *req = (const void *)request;

  sched_agents_forward (svc->agents, svc, call, req->name,
                        DROVER_AGENT_METHOD_READ_CONSOLE, request,
                        SCHED_AGENT_CALL_TIMEOUT_MS, console_done);
}

/* --- DeleteVm ---------------------------------------------------------- */

gboolean
sched_vm_forget (SchedService *svc, const char *name, const char *job_id,
                 const char *how, GError **error)
{
  /* Its snapshots go with it (their files went with the VM). */
  if (!sched_store_delete_vm (svc->store, name, error)
      || !sched_store_delete_snapshots (svc->store, name, error))
    return FALSE;
  sched_registry_forget_vm (svc->registry, name);
  drover_message (name, job_id, NULL, "VM deleted (%s)", how);
  sched_events_emit (svc->events, SCHED_EVENT_VM_DELETED, name, NULL, NULL,
                     NULL, "deleted (%s)", how);
  return TRUE;
}

/* Removes VM NAME's record and ends JOB and CALL successfully. */
static void
delete_record (SchedService *svc, ProtoServerCall *call, SchedJob *job,
               const char *name, const char *how)
{
  Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;
  g_autoptr (GError) error = NULL;

  if (!sched_vm_forget (svc, name, job->id, how, &error))
    {
      sched_jobs_set (svc->jobs, job, PROTO_JOB_FAILED, job->progress, NULL,
                      error->message);
      sched_call_fail (call, error);
      return;
    }
  sched_jobs_set (svc->jobs, job, PROTO_JOB_DONE, 1.0, how, NULL);
  proto_server_call_reply (call, &empty.base);
}

static void
delete_done (const ProtobufCMessage *reply, const GError *error,
             gpointer user_data)
{
  g_autoptr (SchedPending) p = user_data;

  if (error != NULL
      && !g_error_matches (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND))
    {
      g_autofree char *msg
          = g_strdup_printf ("host '%s': %s", p->host, error->message);

      sched_jobs_set (p->svc->jobs, p->job, PROTO_JOB_FAILED, p->job->progress,
                      NULL, msg);
      sched_agents_call_fail (p->call, p->host, error);
      return;
    }
  delete_record (p->svc, p->call, p->job, p->vm,
                 error ? "the host did not have it" : "deleted on its host");
}

void
sched_vm_handle_delete (ProtoServerCall *call, const ProtobufCMessage *request,
                        gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__DeleteVmRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autofree char *msg = NULL;
  ProtoClient *client;
  gboolean missing;

  if (refuse_if_migrating (svc, call, req->name))
    return;
  if (!sched_agents_lookup_vm (svc->agents, req->name, TRUE, &vm, &host, &error)
      || !sched_snapshots_check_delete (svc, req->name, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  missing = strcmp (vm->state, PROTO_VM_MISSING) == 0;
  if (host != NULL && strcmp (host->state, PROTO_HOST_UP) != 0 && !missing)
    {
      proto_server_call_fail (call, PROTO_STATUS_UNAVAILABLE,
                              "host '%s' is down", host->name);
      return;
    }

  job = sched_job_new (PROTO_JOB_KIND_DELETE, vm->name, PROTO_JOB_RUNNING,
                       now_ms (svc));
  if (host == NULL || strcmp (host->state, PROTO_HOST_UP) != 0)
    {
      delete_record (svc, call, job, vm->name,
                     host == NULL ? "its host is unknown"
                                  : "missing, its host is down");
      return;
    }

  client = sched_agents_client (svc->agents, host, &error);
  if (client == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  msg = g_strdup_printf ("deleting on host %s", host->name);
  sched_jobs_set (svc->jobs, job, PROTO_JOB_RUNNING, 0.1, msg, NULL);
  sched_agents_call (
      svc->agents, client, DROVER_AGENT_METHOD_DELETE_VM, request,
      SCHED_AGENT_CALL_TIMEOUT_MS + SCHED_AGENT_STOP_EXTRA_MS, delete_done,
      sched_pending_new (svc, call, vm->name, host->name,
                         g_steal_pointer (&job)));
}

/* --- MigrateVm --------------------------------------------------------- */

/* Answers at once with the job (see sched_migrator_submit); the migration
 * goes on from agent call completions. */
void
sched_vm_handle_migrate (ProtoServerCall *call, const ProtobufCMessage *request,
                         gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__MigrateVmRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  Drover__V1__Job msg;

  if (!sched_migrator_submit (svc->migrator, req->name, req->to_host,
                              req->params, &job, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  sched_job_msg (job, &msg);
  proto_server_call_reply (call, &msg.base);
}

/* --- CancelJob --------------------------------------------------------- */

/* Only a migration can stop halfway: create, delete and the lifecycle
 * commands are one agent call each and end on their own. The reply is
 * the job as it stands after the cancel: a queued migration has failed
 * already, a running one fails once its source agent has aborted. */
void
sched_vm_handle_cancel_job (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__CancelJobRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  Drover__V1__Job msg;

  if (req->id[0] == '\0' || strlen (req->id) > 64)
    {
      proto_server_call_fail (call, PROTO_STATUS_INVALID_ARGUMENT,
                              "give the id of a job (droverctl jobs)");
      return;
    }
  job = sched_store_get_job (svc->store, req->id, &error);
  if (job == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  if (proto_job_state_is_final (job->state))
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "job %s is already %s: nothing to cancel",
                              job->id, job->state);
      return;
    }
  if (g_str_has_prefix (job->kind, "snapshot-")
      || strcmp (job->kind, PROTO_JOB_KIND_CLONE) == 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "job %s (%s of VM '%s') cannot be cancelled: "
                              "the host finishes or rolls back a snapshot or "
                              "clone on its own; only migrations can be "
                              "cancelled",
                              job->id, job->kind, job->vm);
      return;
    }
  if (strcmp (job->kind, PROTO_JOB_KIND_MIGRATE) != 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "job %s (%s of VM '%s') cannot be cancelled: "
                              "it is a single call to the VM's host and "
                              "ends on its own; only migrations can be "
                              "cancelled",
                              job->id, job->kind, job->vm);
      return;
    }
  if (!sched_migrator_cancel (svc->migrator, job->id, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  g_clear_pointer (&job, sched_job_free);
  job = sched_store_get_job (svc->store, req->id, &error);
  if (job == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  sched_job_msg (job, &msg);
  proto_server_call_reply (call, &msg.base);
}
