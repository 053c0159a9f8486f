/* SchedSnapshots: snapshots, clones and templates on the scheduler's side
 * (issue 12): the inventory, the jobs, and the calls to the VM's agent.
 *
 * The agent holding a VM keeps its snapshot tree (in the domain's Drover
 * metadata, so it travels with the VM); the scheduler keeps a copy in the
 * store's snapshots table for listings, replaced whole by the tree each
 * finished operation returns (StorageProgress.snapshots), and refreshed
 * from the agent's ListSnapshots when a report's count or current
 * snapshot disagrees with the copy (an agent that restarted, a VM that
 * moved).
 *
 * CreateSnapshot, RevertSnapshot, DeleteSnapshot and CloneVm are jobs:
 * the handler checks everything it can, creates the job, answers with it
 * at once and opens the agent's StorageProgress stream; each progress
 * message is copied into Job.storage and Job.progress, and the stream's
 * end finishes the job done or failed with the agent's error. At most one
 * such job runs per VM (a clone counts for its source), and none while
 * the VM migrates. MakeTemplate is a single agent call.
 *
 * CloneVm and MakeTemplate are in sched-clones.c. Templates take no
 * snapshots and are never started.
 */
#include "sched-snapshots-private.h"

#include <string.h>

/* Longest snapshot description accepted. */
#define SCHED_SNAP_DESCRIPTION_MAX 1024
/* A job's progress reaches the store at most this often (and at every
 * phase change); watchers see every message. */
#define SCHED_SNAP_STORE_INTERVAL_MS 1000

static void
snap_op_free (SnapOp *op)
{
  sched_job_free (op->job);
  g_free (op->op);
  g_free (op->vm);
  g_free (op->host);
  g_free (op->name);
  g_free (op->linked);
  g_free (op->dest_host);
  proto_msg_free (op->remote);
  g_free (op);
}

SchedSnapshots *
sched_snapshots_new (SchedService *svc)
{
  SchedSnapshots *s = g_new0 (SchedSnapshots, 1);

  s->svc = svc;
  s->busy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  s->ops = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                  (GDestroyNotify)snap_op_free);
  s->refreshes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return s;
}

void
sched_snapshots_stop (SchedSnapshots *s)
{
  s->stopped = TRUE;
}

void
sched_snapshots_free (SchedSnapshots *s)
{
  g_hash_table_unref (s->busy);
  g_hash_table_unref (s->ops);
  g_hash_table_unref (s->refreshes);
  g_free (s);
}

gint64
sched_snap_now_ms (SchedSnapshots *s)
{
  return sched_registry_now (s->svc->registry);
}

const SchedJob *
sched_snapshots_busy (SchedSnapshots *s, const char *vm)
{
  SnapOp *op = g_hash_table_lookup (s->busy, vm);

  return op ? op->job : NULL;
}

/* --- checks ------------------------------------------------------------ */

/* The VM may start a storage job: not migrating, no other storage job. */
gboolean
sched_snap_check_idle (SchedSnapshots *s, const char *vm, GError **error)
{
  const SchedJob *job = sched_migrator_find (s->svc->migrator, vm);
  SnapOp *op = NULL;

  if (job != NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is migrating (job %s); wait or cancel it", vm,
                   job->id);
      return FALSE;
    }
  if (g_hash_table_lookup_extended (s->busy, vm, NULL, (gpointer *)&op))
    {
      if (op == NULL)
        g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                     "VM '%s' is being made a template; try again when that "
                     "is done",
                     vm);
      else
        g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                     "VM '%s' is busy with a %s job (job %s); one storage "
                     "operation at a time: wait for it (droverctl job watch "
                     "%s)",
                     vm, op->job->kind, op->job->id, op->job->id);
      return FALSE;
    }
  return TRUE;
}

/* The linked clones of BASE recorded in the store (names, sorted), or
 * NULL with ERROR. */
static GPtrArray *
clones_of (SchedStore *store, const char *base, GError **error)
{
  g_autoptr (GPtrArray) vms = sched_store_list_vms (store, NULL, error);
  g_autoptr (GPtrArray) names = NULL;

  if (vms == NULL)
    return NULL;
  names = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      if (strcmp (vm->base, base) == 0)
        g_ptr_array_add (names, g_strdup (vm->name));
    }
  return g_steal_pointer (&names);
}

/* "c1, c2, c3" of NAMES (at most 10 named, then "..."). Caller frees. */
static char *
join_names (GPtrArray *names)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < names->len && i < 10; i++)
    g_string_append_printf (out, "%s%s", i ? ", " : "",
                            (const char *)names->pdata[i]);
  if (names->len > 10)
    g_string_append (out, ", ...");
  return g_string_free (out, FALSE);
}

gboolean
sched_snapshots_check_start (SchedService *svc, const char *name,
                             GError **error)
{
  g_autoptr (SchedVm) vm = sched_store_get_vm (svc->store, name, NULL);

  if (vm != NULL && vm->template)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is a template: a template is never started; "
                   "clone it (droverctl vm clone %s NEW) and start the clone",
                   name, name);
      return FALSE;
    }
  return TRUE;
}

gboolean
sched_snapshots_check_delete (SchedService *svc, const char *name,
                              GError **error)
{
  g_autoptr (GPtrArray) clones = clones_of (svc->store, name, error);
  g_autofree char *list = NULL;

  if (clones == NULL)
    return FALSE;
  if (clones->len == 0)
    return sched_snap_check_idle (svc->snapshots, name, error);
  list = join_names (clones);
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
               "VM '%s' is the base of %u linked clone%s: %s; delete them "
               "first",
               name, clones->len, clones->len == 1 ? "" : "s", list);
  return FALSE;
}

gboolean
sched_snapshots_check_migrate (SchedService *svc, const SchedVm *vm,
                               GError **error)
{
  g_autoptr (GPtrArray) clones = NULL;
  const SchedJob *job;

  if (vm->template)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is a template: it stays on its host with the "
                   "clones based on it",
                   vm->name);
      return FALSE;
    }
  if (vm->base[0] != '\0')
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is a linked clone of '%s': a linked clone stays "
                   "on its base's host",
                   vm->name, vm->base);
      return FALSE;
    }
  clones = clones_of (svc->store, vm->name, error);
  if (clones == NULL)
    return FALSE;
  if (clones->len > 0)
    {
      g_autofree char *list = join_names (clones);

      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is the base of linked clones (%s): it stays on "
                   "its host",
                   vm->name, list);
      return FALSE;
    }
  if (g_hash_table_contains (svc->snapshots->busy, vm->name))
    {
      job = sched_snapshots_busy (svc->snapshots, vm->name);
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is busy with a %s (job %s); migrate it afterwards",
                   vm->name, job ? job->kind : "template",
                   job ? job->id : "none");
      return FALSE;
    }
  return TRUE;
}

/* A snapshot name and the VM it belongs to, or the error. */
static gboolean
check_names (const char *vm, const char *name, GError **error)
{
  return proto_name_validate ("VM", vm, error)
         && proto_name_validate ("snapshot", name, error);
}

/* The VM NAME, its host (up) and a client for it, for a command. */
ProtoClient *
sched_snap_lookup (SchedSnapshots *s, const char *name, SchedVm **vm_out,
                   SchedHost **host_out, GError **error)
{
  SchedService *svc = s->svc;

  if (s->stopped)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                   "the scheduler is shutting down");
      return NULL;
    }
  if (!sched_agents_lookup_vm (svc->agents, name, FALSE, vm_out, host_out,
                               error)
      || !sched_host_check_up (*host_out, error))
    return NULL;
  return sched_agents_client (svc->agents, *host_out, error);
}

/* TRUE if snapshot NAME of VM is in the store; FALSE and ERROR on a store
 * failure. */
gboolean
sched_snap_exists (SchedStore *store, const char *vm, const char *name,
                   gboolean *exists, GError **error)
{
  g_autofree char *key = sched_snapshot_key (vm, name);
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedSnapshot) snap
      = sched_store_get_snapshot (store, key, &local);

  *exists = snap != NULL;
  if (snap == NULL
      && !g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return TRUE;
}

/* --- the job's course -------------------------------------------------- */

/* 0..1 of P; negative when unknown (keep the last value). */
static double
fraction (const Drover__V1__StorageProgress *p)
{
  if (strcmp (p->phase, PROTO_STOR_PHASE_COMPLETED) == 0)
    return 1.0;
  if (p->total > 0)
    return 0.05 + 0.9 * MIN (1.0, (double)p->processed / (double)p->total);
  if (strcmp (p->phase, PROTO_STOR_PHASE_PREPARING) == 0)
    return 0.02;
  return -1;
}

char *
sched_snapshots_describe (const char *kind, const char *name,
                          const Drover__V1__StorageProgress *p)
{
  g_autoptr (GString) out = g_string_new (NULL);

  if (strcmp (kind, PROTO_JOB_KIND_CLONE) == 0)
    g_string_append_printf (out, "clone %s: %s", name, p->phase);
  else
    g_string_append_printf (out, "snapshot %s: %s", name, p->phase);
  if (p->total > 0)
    {
      g_autofree char *done = proto_format_size_brief (p->processed);
      g_autofree char *total = proto_format_size_brief (p->total);

      g_string_append_printf (out, " %s of %s (%.0f%%)", done, total,
                              100.0 * (double)p->processed / (double)p->total);
    }
  if (p->throughput > 0)
    {
      g_autofree char *rate = proto_format_size_brief ((guint64)p->throughput);

      g_string_append_printf (out, ", %s/s", rate);
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static void
on_progress (const ProtobufCMessage *msg, gpointer user_data)
{
  SnapOp *op = user_data;
  SchedSnapshots *s = op->owner;
  const Drover__V1__StorageProgress *p = (const void *)msg;
  gboolean phase_changed, store;
  double f = fraction (p);
  gint64 now = sched_snap_now_ms (s);

  if (op->remote != NULL)
    f = sched_clones_remote_fraction (op, p, f);

  phase_changed = op->job->storage == NULL
                  || g_strcmp0 (op->job->storage->phase, p->phase) != 0;
  proto_msg_free (op->job->storage);
  op->job->storage = proto_msg_copy (msg);
  if (f >= 0)
    op->job->progress = MAX (op->job->progress, MIN (f, 0.99));
  g_free (op->job->message);
  op->job->message = sched_snapshots_describe (op->job->kind, op->name, p);
  store = phase_changed
          || now - op->last_store_ms >= SCHED_SNAP_STORE_INTERVAL_MS;
  if (store)
    op->last_store_ms = now;
  sched_jobs_update (s->svc->jobs, op->job, store);
}

static void refresh_start (SchedSnapshots *s, ProtoClient *client,
                           const char *vm, const char *host);

/* TRUE if the tree of P has snapshot NAME. */
static gboolean
tree_has (const Drover__V1__StorageProgress *p, const char *name)
{
  for (gsize i = 0; i < p->n_snapshots; i++)
    if (strcmp (p->snapshots[i]->name, name) == 0)
      return TRUE;
  return FALSE;
}

/* Stores the tree and the VM of the final progress P of OP. FALSE if the
 * tree contradicts what was done (a host that sent no tree): then the
 * stored one is kept and should be read from the host again. */
static gboolean
record_result (SnapOp *op, const Drover__V1__StorageProgress *p)
{
  SchedService *svc = op->owner->svc;
  gboolean clone = strcmp (op->job->kind, PROTO_JOB_KIND_CLONE) == 0;
  const char *vm_name = clone ? op->name : op->vm;
  const char *at = op->dest_host ? op->dest_host : op->host;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  const char *current = "";
  gboolean consistent = TRUE;

  if (p->vm != NULL && !clone)
    current = p->vm->current_snapshot;
  for (gsize i = 0; i < p->n_snapshots; i++)
    if (p->snapshots[i]->current)
      current = p->snapshots[i]->name;
  /* A clone has no snapshots of its own yet; an op on a VM states its
   * whole tree (none left is an empty tree), which must show what was
   * done. */
  if (!clone
      && tree_has (p, op->name)
             == (strcmp (op->job->kind, PROTO_JOB_KIND_SNAPSHOT_DELETE) == 0))
    {
      drover_message (vm_name, op->job->id, op->host,
                      "the host's final tree does not show the %s of "
                      "snapshot %s: reading the tree again",
                      op->job->kind, op->name);
      consistent = FALSE;
    }
  else if (!clone
           && !sched_store_replace_snapshots (svc->store, vm_name, p->snapshots,
                                              p->n_snapshots, current, &error))
    {
      drover_warning (vm_name, op->job->id, NULL, "snapshots not stored: %s",
                      error->message);
      g_clear_error (&error);
    }
  vm = sched_store_get_vm (svc->store, vm_name, &error);
  if (vm == NULL)
    return consistent;
  if (p->vm != NULL && strcmp (vm->host, at) == 0)
    {
      sched_vm_set_status (vm, p->vm);
      if (p->vm->state[0] != '\0')
        {
          if (!clone)
            sched_events_vm_state (svc->events, vm->name, vm->host, vm->state,
                                   p->vm->state);
          sched_vm_set_state (vm, p->vm->state);
        }
    }
  else if (clone && strcmp (vm->state, PROTO_VM_CREATING) == 0)
    sched_vm_set_state (vm, PROTO_VM_UNKNOWN);
  vm->updated_ms = sched_snap_now_ms (op->owner);
  if (!sched_store_put_vm (svc->store, vm, &error))
    drover_warning (vm_name, op->job->id, NULL, "%s", error->message);
  return consistent;
}

/* The outcome of a successful OP for its job and event. Caller frees. */
static char *
outcome (const SnapOp *op)
{
  const char *kind = op->job->kind;

  if (strcmp (kind, PROTO_JOB_KIND_SNAPSHOT_CREATE) == 0)
    return g_strdup_printf ("snapshot %s of VM %s created on host %s", op->name,
                            op->vm, op->host);
  if (strcmp (kind, PROTO_JOB_KIND_SNAPSHOT_REVERT) == 0)
    return g_strdup_printf ("VM %s reverted to snapshot %s on host %s", op->vm,
                            op->name, op->host);
  if (strcmp (kind, PROTO_JOB_KIND_SNAPSHOT_DELETE) == 0)
    return g_strdup_printf ("snapshot %s of VM %s deleted on host %s", op->name,
                            op->vm, op->host);
  if (op->dest_host)
    return g_strdup_printf ("VM %s cloned from %s (full) on host %s to host %s",
                            op->name, op->vm, op->host, op->dest_host);
  return g_strdup_printf ("VM %s cloned from %s (%s) on host %s", op->name,
                          op->vm, op->linked ? "linked" : "full", op->host);
}

static const char *
event_kind (const char *job_kind)
{
  if (strcmp (job_kind, PROTO_JOB_KIND_SNAPSHOT_CREATE) == 0)
    return SCHED_EVENT_SNAPSHOT_CREATED;
  if (strcmp (job_kind, PROTO_JOB_KIND_SNAPSHOT_REVERT) == 0)
    return SCHED_EVENT_SNAPSHOT_REVERTED;
  if (strcmp (job_kind, PROTO_JOB_KIND_SNAPSHOT_DELETE) == 0)
    return SCHED_EVENT_SNAPSHOT_DELETED;
  return SCHED_EVENT_VM_CLONED;
}

void
sched_snap_finish (SnapOp *op, gboolean ok, const char *error_msg)
{
  SchedSnapshots *s = op->owner;
  SchedService *svc = s->svc;
  gboolean clone = strcmp (op->job->kind, PROTO_JOB_KIND_CLONE) == 0;
  double seconds = (g_get_monotonic_time () - op->started_us) / 1e6;
  g_autofree char *id = g_strdup (op->job->id);
  g_autofree char *refresh_vm = NULL;
  g_autofree char *refresh_host = NULL;

  sched_metrics_snapshot_op (svc->metrics, op->op, ok, seconds);
  if (ok)
    {
      g_autofree char *text = outcome (op);

      if (!record_result (op, op->job->storage))
        {
          refresh_vm = g_strdup (op->vm);
          refresh_host = g_strdup (op->host);
        }
      const char *at = op->dest_host ? op->dest_host : op->host;

      drover_message (clone ? op->name : op->vm, op->job->id, at, "%s", text);
      if (clone)
        sched_events_emit (svc->events, SCHED_EVENT_VM_CREATED, op->name, at,
                           NULL, NULL, "cloned from %s", op->vm);
      sched_events_emit (svc->events, event_kind (op->job->kind),
                         clone ? op->name : op->vm, at, NULL, NULL, "%s", text);
      sched_jobs_set (svc->jobs, op->job, PROTO_JOB_DONE, 1.0, text, NULL);
    }
  else
    {
      drover_message (clone ? op->name : op->vm, op->job->id, op->host,
                      "%s failed: %s", op->job->kind, error_msg);
      if (clone)
        {
          /* Only our own reservation goes: a report may have adopted the
           * VM meanwhile (the agent made it after all). */
          g_autoptr (GError) error = NULL;
          g_autoptr (SchedVm) vm
              = sched_store_get_vm (svc->store, op->name, NULL);

          if (vm != NULL && strcmp (vm->state, PROTO_VM_CREATING) == 0
              && !sched_store_delete_vm (svc->store, op->name, &error))
            drover_warning (op->name, op->job->id, NULL, "%s", error->message);
        }
      sched_jobs_set (svc->jobs, op->job, PROTO_JOB_FAILED, op->job->progress,
                      NULL, error_msg);
    }
  g_hash_table_remove (s->busy, op->vm);
  g_hash_table_remove (s->ops, id);
  if (refresh_vm != NULL && !s->stopped)
    {
      g_autoptr (GError) error = NULL;
      ProtoClient *client
          = sched_agents_client_up (svc->agents, refresh_host, NULL, &error);

      if (client != NULL)
        refresh_start (s, client, refresh_vm, refresh_host);
    }
}

static void
on_end (const GError *error, gpointer user_data)
{
  SnapOp *op = user_data;
  const Drover__V1__StorageProgress *last = op->job->storage;
  g_autofree char *msg = NULL;

  op->stream = NULL;
  /* Completed is completed, even if the stream broke after saying so. */
  if (last != NULL && strcmp (last->phase, PROTO_STOR_PHASE_COMPLETED) == 0)
    {
      if (op->remote)
        sched_clones_remote_sent (op, TRUE, NULL);
      else
        sched_snap_finish (op, TRUE, NULL);
      return;
    }
  if (last != NULL && strcmp (last->phase, PROTO_STOR_PHASE_FAILED) == 0)
    msg = g_strdup_printf ("host '%s': %s", op->host,
                           last->error[0] ? last->error : "no reason given");
  else if (op->owner->stopped)
    msg = g_strdup ("the scheduler stopped during the job; the VM is as its "
                    "host reports it");
  else if (error != NULL)
    msg = g_strdup_printf ("host '%s': %s", op->host, error->message);
  else
    msg = g_strdup_printf ("host '%s' ended the job without a final state",
                           op->host);
  if (op->remote)
    sched_clones_remote_sent (op, FALSE, msg);
  else
    sched_snap_finish (op, FALSE, msg);
}

/* Starts OP: its job is stored, the VM marked busy, the stream opened with
 * REQUEST on agent METHOD through CLIENT. */
void
sched_snap_launch (SchedSnapshots *s, SnapOp *op, ProtoClient *client,
                   guint method, const ProtobufCMessage *request,
                   const char *first_message)
{
  sched_snap_begin (s, op, first_message);
  sched_snap_stream (s, op, client, method, request);
}

void
sched_snap_stream (SchedSnapshots *s, SnapOp *op, ProtoClient *client,
                   guint method, const ProtobufCMessage *request)
{
  op->stream = sched_agents_stream (s->svc->agents, client, method, request,
                                    on_progress, on_end, op);
}

void
sched_snap_begin (SchedSnapshots *s, SnapOp *op, const char *first_message)
{
  op->owner = s;
  op->started_us = g_get_monotonic_time ();
  op->last_store_ms = sched_snap_now_ms (s);
  g_hash_table_insert (s->ops, g_strdup (op->job->id), op);
  g_hash_table_insert (s->busy, g_strdup (op->vm), op);
  sched_jobs_set (s->svc->jobs, op->job, PROTO_JOB_RUNNING, 0.01, first_message,
                  NULL);
  drover_message (op->vm, op->job->id, op->host, "%s", first_message);
}

SnapOp *
sched_snap_op_new (SchedSnapshots *s, const char *kind, const char *op_label,
                   const char *vm, const char *host, const char *name,
                   const char *job_vm)
{
  SnapOp *op = g_new0 (SnapOp, 1);

  op->job
      = sched_job_new (kind, job_vm, PROTO_JOB_RUNNING, sched_snap_now_ms (s));
  op->op = g_strdup (op_label);
  op->vm = g_strdup (vm);
  op->host = g_strdup (host);
  op->name = g_strdup (name);
  return op;
}

/* --- create, revert, delete -------------------------------------------- */

/* What create, revert and delete check and start: KIND of snapshot NAME of
 * VM. CREATE: the name must be new, else it must exist. */
static gboolean
submit (SchedSnapshots *s, const char *kind, const char *vm_name,
        const char *name, gboolean memory, gboolean quiesce,
        const char *description, gboolean paused, SchedJob **job_out,
        GError **error)
{
  gboolean create = strcmp (kind, PROTO_JOB_KIND_SNAPSHOT_CREATE) == 0;
  Drover__V1__AgentSnapshotRequest req
      = DROVER__V1__AGENT_SNAPSHOT_REQUEST__INIT;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autofree char *first = NULL;
  ProtoClient *client;
  gboolean exists;
  guint method;
  SnapOp *op;

  if (description == NULL)
    description = "";
  if (!check_names (vm_name, name, error))
    return FALSE;
  if (strlen (description) > SCHED_SNAP_DESCRIPTION_MAX)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "the description of snapshot '%s' is %zu bytes; at most "
                   "%d",
                   name, strlen (description), SCHED_SNAP_DESCRIPTION_MAX);
      return FALSE;
    }
  client = sched_snap_lookup (s, vm_name, &vm, &host, error);
  if (client == NULL)
    return FALSE;
  if (vm->template)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is a template: templates have no snapshots "
                   "(clone it and snapshot the clone)",
                   vm_name);
      return FALSE;
    }
  if (!sched_snap_check_idle (s, vm_name, error)
      || !sched_snap_exists (s->svc->store, vm_name, name, &exists, error))
    return FALSE;
  if (create && exists)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_EXISTS,
                   "VM '%s' already has a snapshot '%s'", vm_name, name);
      return FALSE;
    }
  if (!create && !exists)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                   "VM '%s' has no snapshot '%s' (droverctl snapshot list %s)",
                   vm_name, name, vm_name);
      return FALSE;
    }

  if (create)
    {
      method = DROVER_AGENT_METHOD_CREATE_SNAPSHOT;
      op = sched_snap_op_new (s, kind, "create", vm_name, host->name, name,
                              vm_name);
      first = g_strdup_printf ("snapshot %s: starting on host %s", name,
                               host->name);
    }
  else if (strcmp (kind, PROTO_JOB_KIND_SNAPSHOT_REVERT) == 0)
    {
      method = DROVER_AGENT_METHOD_REVERT_SNAPSHOT;
      op = sched_snap_op_new (s, kind, "revert", vm_name, host->name, name,
                              vm_name);
      first = g_strdup_printf ("snapshot %s: reverting on host %s", name,
                               host->name);
    }
  else
    {
      method = DROVER_AGENT_METHOD_DELETE_SNAPSHOT;
      op = sched_snap_op_new (s, kind, "delete", vm_name, host->name, name,
                              vm_name);
      first = g_strdup_printf ("snapshot %s: deleting on host %s", name,
                               host->name);
    }
  req.job_id = op->job->id;
  req.vm = (char *)vm_name;
  req.name = (char *)name;
  req.memory = memory;
  req.quiesce = quiesce;
  req.description = (char *)description;
  req.paused = paused;
  req.created_ms = op->job->created_ms;
  sched_snap_launch (s, op, client, method, &req.base, first);
  *job_out = sched_job_copy (op->job);
  return TRUE;
}

gboolean
sched_snapshots_submit (SchedService *svc, const char *vm, const char *name,
                        gboolean memory, gboolean quiesce,
                        const char *description, SchedJob **job, GError **error)
{
  return submit (svc->snapshots, PROTO_JOB_KIND_SNAPSHOT_CREATE, vm, name,
                 memory, quiesce, description, FALSE, job, error);
}

/* Replies to CALL with the job, or fails it with ERROR. */
void
sched_snap_reply_job (ProtoServerCall *call, SchedJob *job, const GError *error)
{
  Drover__V1__Job msg;

  if (job == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  sched_job_msg (job, &msg);
  proto_server_call_reply (call, &msg.base);
}

void
sched_snap_handle_create (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__CreateSnapshotRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;

  sched_snapshots_submit (svc, req->vm, req->name, req->memory, req->quiesce,
                          req->description, &job, &error);
  sched_snap_reply_job (call, job, error);
}

void
sched_snap_handle_revert (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__SnapshotRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;

  submit (svc->snapshots, PROTO_JOB_KIND_SNAPSHOT_REVERT, req->vm, req->name,
          FALSE, FALSE, NULL, req->paused, &job, &error);
  sched_snap_reply_job (call, job, error);
}

void
sched_snap_handle_delete (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__SnapshotRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;

  submit (svc->snapshots, PROTO_JOB_KIND_SNAPSHOT_DELETE, req->vm, req->name,
          FALSE, FALSE, NULL, FALSE, &job, &error);
  sched_snap_reply_job (call, job, error);
}

/* --- ListSnapshots ----------------------------------------------------- */

/* Appends ROWS[I] and, depth first, its children (in creation order) to
 * OUT. */
static void
add_subtree (GPtrArray *rows, guint i, GHashTable *placed, GPtrArray *out)
{
  const SchedSnapshot *snap = rows->pdata[i];

  if (!g_hash_table_add (placed, snap->name))
    return;
  g_ptr_array_add (out, (gpointer)snap);
  for (guint j = 0; j < rows->len; j++)
    {
      const SchedSnapshot *c = rows->pdata[j];

      if (strcmp (c->info->parent, snap->name) == 0)
        add_subtree (rows, j, placed, out);
    }
}

GPtrArray *
sched_snapshots_tree_order (GPtrArray *rows)
{
  g_autoptr (GHashTable) names = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) placed = g_hash_table_new (g_str_hash, g_str_equal);
  GPtrArray *out = g_ptr_array_new ();

  for (guint i = 0; i < rows->len; i++)
    g_hash_table_add (names, ((SchedSnapshot *)rows->pdata[i])->name);
  /* Roots: no parent, or a parent the tree does not have. */
  for (guint i = 0; i < rows->len; i++)
    {
      const SchedSnapshot *snap = rows->pdata[i];

      if (!g_hash_table_contains (names, snap->info->parent))
        add_subtree (rows, i, placed, out);
    }
  /* A cycle (a corrupt tree) has no root: list it anyway. */
  for (guint i = 0; i < rows->len; i++)
    add_subtree (rows, i, placed, out);
  return out;
}

void
sched_snap_handle_list (ProtoServerCall *call, const ProtobufCMessage *request,
                        gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__ListSnapshotsRequest *req = (const void *)request;
  Drover__V1__ListSnapshotsReply reply = DROVER__V1__LIST_SNAPSHOTS_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (GPtrArray) rows = NULL;
  g_autoptr (GPtrArray) order = NULL;
  g_autofree Drover__V1__Snapshot *msgs = NULL;
  g_autofree Drover__V1__Snapshot **ptrs = NULL;
  g_autoptr (GPtrArray) children = g_ptr_array_new_with_free_func (g_free);

  if (!proto_name_validate ("VM", req->vm, &error)
      || (vm = sched_store_get_vm (svc->store, req->vm, &error)) == NULL
      || (rows = sched_store_list_snapshots (svc->store, req->vm, &error))
             == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  order = sched_snapshots_tree_order (rows);
  msgs = g_new0 (Drover__V1__Snapshot, order->len);
  ptrs = g_new0 (Drover__V1__Snapshot *, order->len);
  for (guint i = 0; i < order->len; i++)
    {
      const SchedSnapshot *snap = order->pdata[i];
      char **kids = g_new0 (char *, order->len + 1);
      gsize n_kids = 0;

      msgs[i] = *snap->info;
      for (guint j = 0; j < order->len; j++)
        {
          const SchedSnapshot *c = order->pdata[j];

          if (strcmp (c->info->parent, snap->name) == 0)
            kids[n_kids++] = c->name;
        }
      g_ptr_array_add (children, kids);
      msgs[i].children = kids;
      msgs[i].n_children = n_kids;
      msgs[i].current = strcmp (snap->name, vm->current_snapshot) == 0;
      ptrs[i] = &msgs[i];
    }
  reply.snapshots = ptrs;
  reply.n_snapshots = order->len;
  reply.current = vm->current_snapshot;
  proto_server_call_reply (call, &reply.base);
}

/* --- the inventory after an agent restart ------------------------------ */

typedef struct
{
  SchedSnapshots *owner;
  char *vm;
  char *host;
} Refresh;

static void
refresh_done (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  Refresh *r = user_data;
  const Drover__V1__ListSnapshotsReply *list = (const void *)reply;
  SchedService *svc = r->owner->svc;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = NULL;

  if (error != NULL)
    drover_debug (r->vm, NULL, r->host, "ListSnapshots: %s", error->message);
  else if (!r->owner->stopped && !g_hash_table_contains (r->owner->busy, r->vm)
           && (vm = sched_store_get_vm (svc->store, r->vm, NULL)) != NULL
           && strcmp (vm->host, r->host) == 0
           && !sched_store_replace_snapshots (
               svc->store, r->vm, list->snapshots, list->n_snapshots,
               list->current, &local))
    drover_warning (r->vm, NULL, r->host, "snapshots not stored: %s",
                    local->message);
  g_hash_table_remove (r->owner->refreshes, r->vm);
  g_free (r->vm);
  g_free (r->host);
  g_free (r);
}

void
sched_snapshots_after_report (SchedService *svc, const char *host,
                              Drover__V1__VmStatus *const *vms, gsize n_vms)
{
  SchedSnapshots *s = svc->snapshots;
  ProtoClient *client = NULL;

  if (s == NULL || s->stopped)
    return;
  for (gsize i = 0; i < n_vms; i++)
    {
      const Drover__V1__VmStatus *status = vms[i];
      g_autoptr (SchedVm) vm = NULL;
      g_autoptr (GError) error = NULL;

      /* Most VMs have no snapshots and are no templates: no store read. */
      if (status == NULL
          || (status->snapshots == 0 && status->current_snapshot[0] == '\0'
              && !status->template_))
        continue;
      if (g_hash_table_contains (s->busy, status->name)
          || g_hash_table_contains (s->refreshes, status->name))
        continue;
      vm = sched_store_get_vm (svc->store, status->name, NULL);
      if (vm == NULL || strcmp (vm->host, host) != 0)
        continue;
      if (status->template_ && !vm->template)
        {
          /* The agent's record wins: it protects the base. */
          vm->template = 1;
          if (!sched_store_put_vm (svc->store, vm, &error))
            drover_warning (vm->name, NULL, host, "%s", error->message);
          g_clear_error (&error);
        }
      if ((gint64)status->snapshots == vm->snapshots
          && strcmp (status->current_snapshot, vm->current_snapshot) == 0)
        continue;
      if (client == NULL
          && (client = sched_agents_client_up (svc->agents, host, NULL, &error))
                 == NULL)
        return;
      refresh_start (s, client, status->name, host);
    }
}

/* Asks HOST (through CLIENT) for VM's tree, unless that is in flight. */
static void
refresh_start (SchedSnapshots *s, ProtoClient *client, const char *vm,
               const char *host)
{
  Drover__V1__ListSnapshotsRequest req
      = DROVER__V1__LIST_SNAPSHOTS_REQUEST__INIT;
  Refresh *r;

  if (!g_hash_table_add (s->refreshes, g_strdup (vm)))
    return;
  r = g_new0 (Refresh, 1);
  r->owner = s;
  r->vm = g_strdup (vm);
  r->host = g_strdup (host);
  req.vm = (char *)vm;
  sched_agents_call (s->svc->agents, client, DROVER_AGENT_METHOD_LIST_SNAPSHOTS,
                     &req.base, SCHED_AGENT_CALL_TIMEOUT_MS, refresh_done, r);
}
