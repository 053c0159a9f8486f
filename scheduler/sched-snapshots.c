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
 * This file holds the object, the checks, the create, revert and delete
 * handlers, ListSnapshots and the refresh after a report; a job's course
 * from launch to end (SnapOp) is in sched-snap-op.c, CloneVm and
 * MakeTemplate in sched-clones.c. Templates take no snapshots and are
 * never started.
 */
#include "sched-snapshots-private.h"

#include <string.h>

/* Longest snapshot description accepted. */
#define SCHED_SNAP_DESCRIPTION_MAX 1024

SchedSnapshots *
sched_snapshots_new (SchedService *svc)
{
  SchedSnapshots *s = g_new0 (SchedSnapshots, 1);

  s->svc = svc;
  s->busy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  s->ops = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                  (GDestroyNotify)sched_snap_op_free);
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

gboolean
sched_snapshots_submit_delete (SchedService *svc, const char *vm,
                               const char *name, SchedJob **job, GError **error)
{
  return submit (svc->snapshots, PROTO_JOB_KIND_SNAPSHOT_DELETE, vm, name,
                 FALSE, FALSE, NULL, FALSE, job, error);
}

gboolean
sched_snapshots_idle (SchedService *svc, const char *vm)
{
  return sched_snap_check_idle (svc->snapshots, vm, NULL);
}

gboolean
sched_snapshots_exists (SchedService *svc, const char *vm, const char *name,
                        gboolean *exists)
{
  return sched_snap_exists (svc->store, vm, name, exists, NULL);
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

/* RevertSnapshot and DeleteSnapshot: a job KIND on REQUEST's snapshot
 * (a SnapshotRequest; PAUSED: a revert leaves the VM paused). */
static void
handle_snapshot_job (ProtoServerCall *call, const ProtobufCMessage *request,
                     SchedService *svc, const char *kind, gboolean paused)
{
  const Drover__V1__SnapshotRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;

  submit (svc->snapshots, kind, req->vm, req->name, FALSE, FALSE, NULL, paused,
          &job, &error);
  sched_snap_reply_job (call, job, error);
}

void
sched_snap_handle_revert (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  handle_snapshot_job (call, request, user_data, PROTO_JOB_KIND_SNAPSHOT_REVERT,
                       ((const Drover__V1__SnapshotRequest *)request)->paused);
}

void
sched_snap_handle_delete (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  handle_snapshot_job (call, request, user_data, PROTO_JOB_KIND_SNAPSHOT_DELETE,
                       FALSE);
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
      sched_snap_refresh_start (s, client, status->name, host);
    }
}

/* Asks HOST (through CLIENT) for VM's tree, unless that is in flight. */
void
sched_snap_refresh_start (SchedSnapshots *s, ProtoClient *client,
                          const char *vm, const char *host)
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
