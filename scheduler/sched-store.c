/* SchedStore: the generic store API. Every call dispatches through the
 * backend's ops table (SchedStoreOps, sched-store.h); the put, get and
 * delete calls of each table are generated in sched-store.h. The backends
 * are sched-store-sqlite.c and whatever comes next (one file each). The
 * writes also tell the counts (sched-store-counts.c) what they did. */
#include "sched-store.h"

void
sched_store_close (SchedStore *store)
{
  if (store == NULL)
    return;
  g_clear_pointer (&store->counts, sched_store_counts_free);
  store->ops->close (store);
}

gboolean
sched_store_put (SchedStore *store, SchedTable table, gconstpointer row,
                 GError **error)
{
  gboolean ok = store->ops->put (store, table, row, error);

  sched_store_counts_put (store->counts, table, row, ok);
  return ok;
}

gboolean
sched_store_remove (SchedStore *store, SchedTable table, const char *key,
                    GError **error)
{
  gboolean ok = store->ops->remove (store, table, key, error);

  sched_store_counts_remove (store->counts, table, key, ok);
  return ok;
}

GPtrArray *
sched_store_list_hosts (SchedStore *store, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_HOSTS, NULL, error);
}

GPtrArray *
sched_store_list_vms (SchedStore *store, const char *host, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_VMS, host, error);
}

GPtrArray *
sched_store_list_jobs (SchedStore *store, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_JOBS, NULL, error);
}

GPtrArray *
sched_store_list_repos (SchedStore *store, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_REPOS, NULL, error);
}

GPtrArray *
sched_store_list_networks (SchedStore *store, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_NETWORKS, NULL, error);
}

GPtrArray *
sched_store_list_schedule_vms (SchedStore *store, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_SCHEDULE_VMS, NULL, error);
}

GPtrArray *
sched_store_list_schedules (SchedStore *store, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_SCHEDULES, NULL, error);
}

GPtrArray *
sched_store_list_snapshots (SchedStore *store, const char *vm, GError **error)
{
  return store->ops->list (store, SCHED_TABLE_SNAPSHOTS, vm, error);
}

gboolean
sched_store_delete_snapshots (SchedStore *store, const char *vm, GError **error)
{
  return store->ops->remove_snapshots (store, vm, error);
}

gboolean
sched_store_replace_snapshots (SchedStore *store, const char *vm,
                               Drover__V1__Snapshot *const *snaps, gsize n,
                               const char *current, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) row = NULL;

  if (!sched_store_begin (store, SCHED_STORE_SYNC_FULL, error))
    return FALSE;
  if (!store->ops->remove_snapshots (store, vm, error))
    goto fail;
  for (gsize i = 0; i < n; i++)
    {
      g_autoptr (SchedSnapshot) snap = sched_snapshot_new (vm, snaps[i]);

      if (!sched_store_put_snapshot (store, snap, error))
        goto fail;
    }
  row = sched_store_get_vm (store, vm, &local);
  if (row == NULL
      && !g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      goto fail;
    }
  if (row != NULL)
    {
      g_free (row->current_snapshot);
      row->current_snapshot = g_strdup (current ? current : "");
      row->snapshots = (gint64)n;
      if (!sched_store_put_vm (store, row, error))
        goto fail;
    }
  if (sched_store_commit (store, error))
    return TRUE;
fail:
  sched_store_rollback (store);
  return FALSE;
}

GPtrArray *
sched_store_list_jobs_after (SchedStore *store, gint64 after_ms,
                             const char *after_id, guint limit, GError **error)
{
  return store->ops->list_jobs_after (store, after_ms, after_id, limit, error);
}

gboolean
sched_store_prune_jobs (SchedStore *store, gint64 before_ms, guint keep,
                        guint *n_deleted, GError **error)
{
  guint n = 0;
  gboolean ok = store->ops->prune_jobs (store, before_ms, keep, &n, error);

  /* The backend deleted rows it does not name: count the jobs again. */
  if (!ok || n > 0)
    sched_store_counts_forget (store->counts, SCHED_TABLE_JOBS);
  if (n_deleted != NULL)
    *n_deleted = n;
  return ok;
}

gboolean
sched_store_begin (SchedStore *store, SchedStoreSync sync, GError **error)
{
  gboolean ok = store->ops->begin (store, sync, error);

  /* A count first asked for inside the transaction must know of it. */
  if (store->counts == NULL)
    store->counts = sched_store_counts_new ();
  sched_store_counts_begin (store->counts, ok);
  return ok;
}

gboolean
sched_store_commit (SchedStore *store, GError **error)
{
  gboolean ok = store->ops->commit (store, error);

  sched_store_counts_commit (store->counts, ok);
  return ok;
}

void
sched_store_rollback (SchedStore *store)
{
  store->ops->rollback (store);
  sched_store_counts_rollback (store->counts);
}
