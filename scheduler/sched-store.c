/* SchedStore: the generic store API. Every call dispatches through the
 * backend's ops table (SchedStoreOps, sched-store.h); the put, get and
 * delete calls of each table are generated in sched-store.h. The backends
 * are sched-store-sqlite.c and whatever comes next (one file each). */
#include "sched-store.h"

void
sched_store_close (SchedStore *store)
{
  if (store != NULL)
    store->ops->close (store);
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
sched_store_list_jobs_after (SchedStore *store, gint64 after_ms,
                             const char *after_id, guint limit, GError **error)
{
  return store->ops->list_jobs_after (store, after_ms, after_id, limit, error);
}

gboolean
sched_store_prune_jobs (SchedStore *store, gint64 before_ms, guint keep,
                        guint *n_deleted, GError **error)
{
  return store->ops->prune_jobs (store, before_ms, keep, n_deleted, error);
}

gboolean
sched_store_begin (SchedStore *store, SchedStoreSync sync, GError **error)
{
  return store->ops->begin (store, sync, error);
}

gboolean
sched_store_commit (SchedStore *store, GError **error)
{
  return store->ops->commit (store, error);
}

void
sched_store_rollback (SchedStore *store)
{
  store->ops->rollback (store);
}
