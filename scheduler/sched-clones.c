/* Clones and templates on the scheduler's side (issue 12), part of
 * SchedSnapshots (see sched-snap-op.c for the job's course).
 *
 * CloneVm is a storage job on the source VM: the new VM's record is made
 * at once, in state "creating" on the source's host (a reservation
 * placement sees, as CreateVm does), and a failed clone removes it. A
 * linked clone records its base (the source), which protects the base:
 * it cannot be deleted, started (a template) or migrated while clones use
 * it. MakeTemplate is one agent call on a stopped VM.
 *
 * A full clone to another host (--host H) is reserved on H and goes in
 * three steps, one job: PrepareCloneIn on H (which answers how to reach
 * its channel), CloneOut on the source's host (the stream whose progress
 * the job shows: copying, when the source's disk is a chain to flatten
 * first, then sending), CommitCloneIn on H (the domain is defined and
 * started there). A failure at any step after the first sends
 * AbortCloneIn to H, which takes everything of the clone away (a restart
 * of H's agent does the same from the clone's mark), and the reservation
 * goes with the failed job.
 */
#include "sched-nics.h"
#include "sched-snapshots-private.h"

#include <string.h>

/* --- CloneVm to another host ------------------------------------------- */

/* Sets the job's message to TEXT (a step of a clone to another host). */
static void
remote_step (SnapOp *op, const char *text)
{
  g_free (op->job->message);
  op->job->message = g_strdup (text);
  sched_jobs_update (op->owner->svc->jobs, op->job, TRUE);
  drover_message (op->name, op->job->id, op->dest_host, "%s", text);
}

static void
remote_abort_done (const ProtobufCMessage *reply, const GError *error,
                   gpointer user_data)
{
  char **what = user_data; /* clone, job, host */

  if (error != NULL)
    drover_message (what[0], what[1], what[2],
                    "the host did not take the failed clone away now (%s); "
                    "its agent does at its next start",
                    error->message);
  g_strfreev (what);
}

/* Asks the destination to take everything of OP's clone away. */
static void
remote_abort (SnapOp *op)
{
  SchedService *svc = op->owner->svc;
  g_autoptr (GError) error = NULL;
  ProtoClient *client
      = sched_agents_client_up (svc->agents, op->dest_host, NULL, &error);

  if (client == NULL)
    {
      drover_message (op->name, op->job->id, op->dest_host,
                      "cannot take the failed clone away now (%s); the "
                      "host's agent does at its next start",
                      error->message);
      return;
    }
  sched_agents_call (
      svc->agents, client, DROVER_AGENT_METHOD_ABORT_CLONE_IN,
      &op->remote->base, SCHED_AGENT_CALL_TIMEOUT_MS, remote_abort_done,
      g_strdupv ((char *[]){ op->name, op->job->id, op->dest_host, NULL }));
}

/* Fails OP: a step on HOST ended with ERROR; the destination drops what
 * it holds of the clone unless ABORT is FALSE (it failed itself and
 * cleaned up). */
static void
remote_fail (SnapOp *op, const char *host, const GError *error, gboolean abort)
{
  g_autofree char *msg = NULL;

  if (op->owner->stopped)
    msg = g_strdup ("the scheduler stopped during the job; the VM is as its "
                    "host reports it");
  else
    msg = g_strdup_printf ("host '%s': %s", host, error->message);
  if (abort && !op->owner->stopped)
    remote_abort (op);
  sched_snap_finish (op, FALSE, msg);
}

static void
remote_committed (const ProtobufCMessage *reply, const GError *error,
                  gpointer user_data)
{
  SnapOp *op = user_data;
  const Drover__V1__AgentVmReply *agent = (const void *)reply;

  if (error != NULL || op->owner->stopped)
    {
      remote_fail (op, op->dest_host, error, TRUE);
      return;
    }
  if (op->job->storage != NULL && agent->vm != NULL)
    {
      proto_msg_free (op->job->storage->vm);
      op->job->storage->vm = proto_msg_copy (&agent->vm->base);
    }
  sched_snap_finish (op, TRUE, NULL);
}

double
sched_clones_remote_fraction (SnapOp *op, const Drover__V1__StorageProgress *p,
                              double f)
{
  if (f < 0.05 || f >= 1.0)
    return f;
  if (strcmp (p->phase, PROTO_STOR_PHASE_COPYING) == 0)
    {
      op->flattened = TRUE;
      return 0.05 + (f - 0.05) / 2;
    }
  if (op->flattened && strcmp (p->phase, PROTO_STOR_PHASE_SENDING) == 0)
    return 0.5 + (f - 0.05) / 2;
  return f;
}

void
sched_clones_remote_sent (SnapOp *op, gboolean sent, const char *error_msg)
{
  SchedService *svc = op->owner->svc;
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  ProtoClient *client;

  if (!sent || op->owner->stopped)
    {
      if (!op->owner->stopped)
        remote_abort (op);
      sched_snap_finish (op, FALSE, error_msg);
      return;
    }
  client = sched_agents_client_up (svc->agents, op->dest_host, NULL, &error);
  if (client == NULL)
    {
      remote_fail (op, op->dest_host, error, FALSE);
      return;
    }
  text = g_strdup_printf ("clone %s: sent, defining it on host %s", op->name,
                          op->dest_host);
  remote_step (op, text);
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_COMMIT_CLONE_IN,
                     &op->remote->base, SCHED_AGENT_CALL_TIMEOUT_MS,
                     remote_committed, op);
}

static void
remote_prepared (const ProtobufCMessage *reply, const GError *error,
                 gpointer user_data)
{
  SnapOp *op = user_data;
  SchedService *svc = op->owner->svc;
  const Drover__V1__AgentCloneInReply *in = (const void *)reply;
  g_autoptr (GError) local = NULL;
  g_autofree char *text = NULL;
  Drover__V1__AgentCloneRequest *r = op->remote;
  ProtoClient *client;

  if (error != NULL || op->owner->stopped)
    {
      /* A failed prepare left nothing on the destination. */
      remote_fail (op, op->dest_host, error, error == NULL);
      return;
    }
  client = sched_agents_client_up (svc->agents, op->host, NULL, &local);
  if (client == NULL)
    {
      remote_fail (op, op->host, local, TRUE);
      return;
    }
  g_free (r->token == protobuf_c_empty_string ? NULL : r->token);
  r->token = proto_msg_strdup (in->token);
  g_free (r->channel_address == protobuf_c_empty_string ? NULL
                                                        : r->channel_address);
  r->channel_address = proto_msg_strdup (in->channel_address);
  text = g_strdup_printf ("clone %s: host %s is ready, host %s sends", op->name,
                          op->dest_host, op->host);
  remote_step (op, text);
  sched_snap_stream (op->owner, op, client, DROVER_AGENT_METHOD_CLONE_OUT,
                     &r->base);
}

/* The first step of OP: the destination prepares (DEST_CLIENT). */
static void
remote_prepare (SnapOp *op, ProtoClient *dest_client)
{
  g_autofree char *text = g_strdup_printf ("clone %s: preparing host %s",
                                           op->name, op->dest_host);

  remote_step (op, text);
  sched_agents_call (op->owner->svc->agents, dest_client,
                     DROVER_AGENT_METHOD_PREPARE_CLONE_IN, &op->remote->base,
                     SCHED_AGENT_CALL_TIMEOUT_MS, remote_prepared, op);
}

/* --- CloneVm ----------------------------------------------------------- */

gboolean
sched_snapshots_clone (SchedService *svc, const Drover__V1__CloneVmRequest *req,
                       SchedJob **job_out, GError **error)
{
  SchedSnapshots *s = svc->snapshots;
  Drover__V1__AgentCloneRequest agent = DROVER__V1__AGENT_CLONE_REQUEST__INIT;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) src = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (SchedVm) existing = NULL;
  g_autoptr (SchedVm) clone = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *uuid = NULL;
  g_autofree char *placed = NULL;
  g_autofree char *first = NULL;
  const char *mode = req->mode;
  ProtoClient *client, *dest_client = NULL;
  gboolean exists;
  const char *at;
  SnapOp *op;

  if (!proto_name_validate ("VM", req->source, error)
      || !proto_name_validate ("VM", req->name, error)
      || (req->from_snapshot[0] != '\0'
          && !proto_name_validate ("snapshot", req->from_snapshot, error))
      || (req->host[0] != '\0'
          && !proto_name_validate ("host", req->host, error)))
    return FALSE;
  if (mode[0] != '\0' && strcmp (mode, PROTO_CLONE_LINKED) != 0
      && strcmp (mode, PROTO_CLONE_FULL) != 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "clone mode '%.32s': give \"linked\" or \"full\"", mode);
      return FALSE;
    }
  if (strcmp (req->source, req->name) == 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "a clone needs a new name, not its source's ('%s')",
                   req->name);
      return FALSE;
    }
  client = sched_snap_lookup (s, req->source, &src, &host, error);
  if (client == NULL)
    return FALSE;
  existing = sched_store_get_vm (svc->store, req->name, &local);
  if (existing != NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_EXISTS,
                   "VM '%s' already exists (on host '%s')", existing->name,
                   existing->host);
      return FALSE;
    }
  if (!g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (mode[0] == '\0')
    mode = src->template ? PROTO_CLONE_LINKED : PROTO_CLONE_FULL;
  if (req->host[0] != '\0' && strcmp (req->host, src->host) != 0)
    {
      if (strcmp (mode, PROTO_CLONE_LINKED) == 0)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                       "a linked clone stays on its base's host: '%s' is on "
                       "host '%s', not '%s' (give --full to copy)",
                       src->name, src->host, req->host);
          return FALSE;
        }
      dest_client
          = sched_agents_client_up (svc->agents, req->host, NULL, error);
      if (dest_client == NULL)
        return FALSE;
    }
  at = dest_client ? req->host : src->host;
  if (req->from_snapshot[0] != '\0')
    {
      if (!sched_snap_exists (svc->store, src->name, req->from_snapshot,
                              &exists, error))
        return FALSE;
      if (!exists)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                       "VM '%s' has no snapshot '%s' (droverctl snapshot "
                       "list %s)",
                       src->name, req->from_snapshot, src->name);
          return FALSE;
        }
    }
  if (!sched_snap_check_idle (s, src->name, error))
    return FALSE;

  /* The clone is the source's twin but for its name: same size, same
   * kernel and command line, same accelerator. */
  spec = proto_msg_copy (&src->spec->base);
  g_free (spec->name);
  spec->name = g_strdup (req->name);
  hosts = sched_store_list_hosts (svc->store, error);
  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, error);
  if (vms == NULL)
    return FALSE;
  /* The clone's NICs are on the source's networks with new MACs. */
  if (!sched_nics_prepare (svc->store, spec, vms, NULL, TRUE, error))
    return FALSE;
  sched_migrator_add_reservations (svc->migrator, vms);
  placed = sched_place (&svc->policy, hosts, vms, spec, at, error);
  if (placed == NULL)
    return FALSE;

  clone
      = sched_vm_new (spec, at, PROTO_VM_CREATING, NULL, sched_snap_now_ms (s));
  if (strcmp (mode, PROTO_CLONE_LINKED) == 0)
    {
      g_free (clone->base);
      clone->base = g_strdup (src->name);
    }
  if (!sched_store_put_vm (svc->store, clone, error))
    return FALSE;

  uuid = g_uuid_string_random ();
  op = sched_snap_op_new (s, PROTO_JOB_KIND_CLONE, "clone", src->name,
                          src->host, req->name, req->name);
  if (strcmp (mode, PROTO_CLONE_LINKED) == 0)
    op->linked = g_strdup (src->name);
  agent.job_id = op->job->id;
  agent.source = src->name;
  agent.from_snapshot = req->from_snapshot;
  agent.spec = spec;
  agent.uuid = uuid;
  agent.mode = (char *)mode;
  agent.start = req->start;
  first = g_strdup_printf (
      "clone %s: %s clone of %s%s%s starting on host %s%s%s", req->name, mode,
      src->name, req->from_snapshot[0] ? " at snapshot " : "",
      req->from_snapshot, src->host, dest_client ? " to host " : "",
      dest_client ? req->host : "");
  if (dest_client)
    {
      agent.dest_host = req->host;
      agent.source_host = src->host;
      op->dest_host = g_strdup (req->host);
      op->remote = proto_msg_copy (&agent.base);
      sched_snap_begin (s, op, first);
      remote_prepare (op, dest_client);
    }
  else
    sched_snap_launch (s, op, client, DROVER_AGENT_METHOD_CLONE_VM, &agent.base,
                       first);
  *job_out = sched_job_copy (op->job);
  return TRUE;
}

void
sched_snap_handle_clone (ProtoServerCall *call, const ProtobufCMessage *request,
                         gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;

  sched_snapshots_clone (user_data, (const void *)request, &job, &error);
  sched_snap_reply_job (call, job, error);
}

/* --- MakeTemplate ------------------------------------------------------ */

typedef struct
{
  SchedService *svc;
  ProtoServerCall *call;
  char *vm;
  char *host;
  gint64 started_us;
} TemplateCall;

static void
template_done (const ProtobufCMessage *reply, const GError *error,
               gpointer user_data)
{
  TemplateCall *t = user_data;
  SchedService *svc = t->svc;
  const Drover__V1__AgentVmReply *agent = (const void *)reply;
  Drover__V1__VmReply out = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm msg;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = NULL;
  double seconds = (g_get_monotonic_time () - t->started_us) / 1e6;

  g_hash_table_remove (svc->snapshots->busy, t->vm);
  sched_metrics_snapshot_op (svc->metrics, "template", error == NULL, seconds);
  if (error != NULL)
    {
      sched_agents_call_fail (t->call, t->host, error);
      goto out;
    }
  vm = sched_store_get_vm (svc->store, t->vm, &local);
  if (vm == NULL)
    {
      proto_server_call_fail (t->call, PROTO_STATUS_NOT_FOUND,
                              "VM '%s' was deleted meanwhile", t->vm);
      goto out;
    }
  vm->template = 1;
  if (agent->vm != NULL && strcmp (vm->host, t->host) == 0)
    {
      sched_vm_set_status (vm, agent->vm);
      if (agent->vm->state[0] != '\0')
        sched_vm_set_state (vm, agent->vm->state);
    }
  vm->updated_ms = sched_snap_now_ms (svc->snapshots);
  if (!sched_store_put_vm (svc->store, vm, &local))
    {
      sched_call_fail (t->call, local);
      goto out;
    }
  drover_message (t->vm, NULL, t->host, "VM is now a template");
  sched_events_emit (svc->events, SCHED_EVENT_VM_TEMPLATE, t->vm, t->host,
                     vm->state, NULL, "now a template");
  drover__v1__vm__init (&msg);
  sched_vm_msg (vm, &msg);
  out.vm = &msg;
  proto_server_call_reply (t->call, &out.base);
out:
  g_free (t->vm);
  g_free (t->host);
  g_free (t);
}

void
sched_snap_handle_template (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  SchedSnapshots *s = svc->snapshots;
  const Drover__V1__VmRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  ProtoClient *client;
  TemplateCall *t;

  client = sched_snap_lookup (s, req->name, &vm, &host, &error);
  if (client == NULL || !sched_snap_check_idle (s, req->name, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  if (strcmp (vm->state, PROTO_VM_SHUTOFF) != 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' is %s: only a stopped VM becomes a "
                              "template (droverctl vm stop %s)",
                              vm->name, vm->state, vm->name);
      return;
    }
  if (vm->base[0] != '\0')
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' is a linked clone of '%s': make a full "
                              "clone of it the template instead",
                              vm->name, vm->base);
      return;
    }
  /* A template's image is a protected base: a chain under it would be
   * merged away by a later snapshot delete (and templates keep none). */
  if (vm->snapshots > 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' has %" G_GINT64_FORMAT
                              " snapshot(s): delete them first (droverctl "
                              "snapshot list %s), or make a full clone of it "
                              "the template",
                              vm->name, vm->snapshots, vm->name);
      return;
    }
  t = g_new0 (TemplateCall, 1);
  t->svc = svc;
  t->call = call;
  t->vm = g_strdup (vm->name);
  t->host = g_strdup (host->name);
  t->started_us = g_get_monotonic_time ();
  /* Busy with no job: nothing else starts on it until the agent answers. */
  g_hash_table_insert (s->busy, g_strdup (vm->name), NULL);
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_MAKE_TEMPLATE,
                     request, SCHED_AGENT_CALL_TIMEOUT_MS, template_done, t);
}
