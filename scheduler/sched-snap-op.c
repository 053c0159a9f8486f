/* SnapOp: one storage job in flight on the scheduler (issue 12), from its
 * launch to its end: a snapshot create, revert or delete, a clone, or a
 * backup or restore (issue 14, sched-backups.c).
 *
 * sched_snap_launch stores the job, marks the VM busy and opens the
 * agent's StorageProgress stream; each message is copied into Job.storage
 * and Job.progress (stored at every phase change and at most once a
 * second in between; watchers see every message). The stream's end
 * finishes the job: done with the tree and VM the agent sent last
 * (stored, events emitted, metrics counted), or failed with the agent's
 * error. A final tree that contradicts what was done is read again from
 * the host (sched_snap_refresh_start). The handlers that make SnapOps are
 * in sched-snapshots.c and sched-clones.c.
 */
#include "sched-snapshots-private.h"

#include <string.h>

/* A job's progress reaches the store at most this often (and at every
 * phase change); watchers see every message. */
#define SCHED_SNAP_STORE_INTERVAL_MS 1000

void
sched_snap_op_free (SnapOp *op)
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

double
sched_storage_fraction (const Drover__V1__StorageProgress *p)
{
  if (strcmp (p->phase, PROTO_STOR_PHASE_COMPLETED) == 0)
    return 1.0;
  if (p->total > 0)
    return 0.05 + 0.9 * MIN (1.0, (double)p->processed / (double)p->total);
  if (strcmp (p->phase, PROTO_STOR_PHASE_PREPARING) == 0)
    return 0.02;
  return -1;
}

/* A backup or a restore (issue 14): no snapshot tree; progress in bytes
 * read (written), new, and an ETA. */
static gboolean
is_backup (const char *kind)
{
  return strcmp (kind, PROTO_JOB_KIND_BACKUP) == 0
         || strcmp (kind, PROTO_JOB_KIND_RESTORE) == 0;
}

/* OP makes a new VM, whose record it reserved. */
static gboolean
makes_vm (const SnapOp *op)
{
  return strcmp (op->job->kind, PROTO_JOB_KIND_CLONE) == 0 || op->new_vm;
}

char *
sched_snapshots_describe (const char *kind, const char *name,
                          const Drover__V1__StorageProgress *p)
{
  g_autoptr (GString) out = g_string_new (NULL);

  if (strcmp (kind, PROTO_JOB_KIND_CLONE) == 0)
    g_string_append_printf (out, "clone %s: %s", name, p->phase);
  else if (is_backup (kind))
    g_string_append_printf (out, "%s of %s: %s", kind, name, p->phase);
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
  if (is_backup (kind) && p->bytes_new > 0)
    {
      g_autofree char *fresh = proto_format_size_brief (p->bytes_new);

      g_string_append_printf (out, ", %s new", fresh);
    }
  if (is_backup (kind) && p->eta_s >= 0 && p->total > p->processed)
    g_string_append_printf (out, ", ETA %.0fs", p->eta_s);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static void
on_progress (const ProtobufCMessage *msg, gpointer user_data)
{
  SnapOp *op = user_data;
  SchedSnapshots *s = op->owner;
  const Drover__V1__StorageProgress *p = (const void *)msg;
  gboolean phase_changed, store;
  double f = sched_storage_fraction (p);
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
  gboolean clone = makes_vm (op);
  gboolean treeless = clone || is_backup (op->job->kind);
  const char *vm_name = clone ? op->name : op->vm;
  const char *at = op->dest_host ? op->dest_host : op->host;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  const char *current = "";
  gboolean consistent = TRUE;

  if (p->vm != NULL && !treeless)
    current = p->vm->current_snapshot;
  for (gsize i = 0; i < p->n_snapshots; i++)
    if (p->snapshots[i]->current)
      current = p->snapshots[i]->name;
  /* A clone has no snapshots of its own yet; an op on a VM states its
   * whole tree (none left is an empty tree), which must show what was
   * done. */
  if (!treeless
      && tree_has (p, op->name)
             == (strcmp (op->job->kind, PROTO_JOB_KIND_SNAPSHOT_DELETE) == 0))
    {
      drover_message (vm_name, op->job->id, op->host,
                      "the host's final tree does not show the %s of "
                      "snapshot %s: reading the tree again",
                      op->job->kind, op->name);
      consistent = FALSE;
    }
  else if (!treeless
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

/* The outcome of a backup or restore OP: the backup its final message
 * names. Caller frees. */
static char *
backup_outcome (const SnapOp *op)
{
  const Drover__V1__StorageProgress *p = op->job->storage;
  const Drover__V1__Backup *b = p ? p->backup : NULL;
  const char *id = p && p->backup_id[0] ? p->backup_id : "?";
  g_autofree char *read = proto_format_size_brief (p ? p->processed : 0);
  g_autofree char *fresh = proto_format_size_brief (p ? p->bytes_new : 0);

  if (strcmp (op->job->kind, PROTO_JOB_KIND_RESTORE) == 0)
    return g_strdup_printf ("VM %s restored from backup %s%s on host %s (%s "
                            "written)",
                            op->name, id, op->new_vm ? "" : " in place",
                            op->host, read);
  return g_strdup_printf (
      "backup %s of VM %s taken on host %s: %s%s, %s, %s read, %s new", id,
      op->vm, op->host, b ? b->kind : "?",
      p && p->note[0] ? " (fell back to full)" : "",
      b ? b->consistency : "crash", read, fresh);
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
  if (is_backup (kind))
    return backup_outcome (op);
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
  if (strcmp (job_kind, PROTO_JOB_KIND_BACKUP) == 0)
    return SCHED_EVENT_BACKUP_CREATED;
  if (strcmp (job_kind, PROTO_JOB_KIND_RESTORE) == 0)
    return SCHED_EVENT_BACKUP_RESTORED;
  return SCHED_EVENT_VM_CLONED;
}

void
sched_snap_finish (SnapOp *op, gboolean ok, const char *error_msg)
{
  SchedSnapshots *s = op->owner;
  SchedService *svc = s->svc;
  gboolean clone = makes_vm (op);
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
        sched_events_emit (
            svc->events, SCHED_EVENT_VM_CREATED, op->name, at, NULL, NULL, "%s",
            op->new_vm ? "restored from a backup" : "cloned from a VM");
      sched_events_emit (svc->events, event_kind (op->job->kind),
                         clone ? op->name : op->vm, at, NULL, NULL, "%s", text);
      sched_jobs_set (svc->jobs, op->job, PROTO_JOB_DONE, 1.0, text, NULL);
    }
  else
    {
      drover_message (clone ? op->name : op->vm, op->job->id, op->host,
                      "%s failed: %s", op->job->kind, error_msg);
      if (is_backup (op->job->kind))
        sched_events_emit (svc->events, SCHED_EVENT_BACKUP_FAILED, op->vm,
                           op->host, NULL, NULL, "%s of VM %s failed: %s",
                           op->job->kind, op->vm, error_msg);
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
        sched_snap_refresh_start (s, client, refresh_vm, refresh_host);
    }
}

char *
sched_storage_failure (const Drover__V1__StorageProgress *last,
                       const GError *error, const char *host, gboolean stopped)
{
  if (last != NULL && strcmp (last->phase, PROTO_STOR_PHASE_FAILED) == 0)
    return g_strdup_printf ("host '%s': %s", host,
                            last->error[0] ? last->error : "no reason given");
  if (stopped)
    return g_strdup ("the scheduler stopped during the job; the VM is as its "
                     "host reports it");
  /* The stream broke before a final state: most often the agent died or
   * its host went away (gRPC says only "Socket closed"). */
  if (g_error_matches (error, PROTO_ERROR, PROTO_STATUS_UNAVAILABLE))
    return g_strdup_printf ("host '%s': its agent stopped answering during "
                            "the job (killed, or the connection broke: %s); "
                            "the job did not finish",
                            host, error->message);
  if (error != NULL)
    return g_strdup_printf ("host '%s': the connection to its agent broke "
                            "before the job ended (%s)",
                            host, error->message);
  return g_strdup_printf ("host '%s' ended the job without a final state",
                          host);
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
  msg = sched_storage_failure (last, error, op->host, op->owner->stopped);
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
  /* The host the job runs on, for job listings (a VM moves). */
  g_free (op->job->source_host);
  op->job->source_host = g_strdup (host ? host : "");
  op->op = g_strdup (op_label);
  op->vm = g_strdup (vm);
  op->host = g_strdup (host);
  op->name = g_strdup (name);
  return op;
}
