/* SchedStore: the generic store API. Every call dispatches through the
 * backend's ops table (SchedStoreOps, sched-store.h); the backends are
 * sched-store-sqlite.c and whatever comes next (one file each). */
#include "sched-store.h"

void
sched_store_close (SchedStore *store)
{
  if (store != NULL)
    store->ops->close (store);
}

gboolean
sched_store_put_host (SchedStore *store, const SchedHost *host, GError **error)
{
  return store->ops->put_host (store, host, error);
}

SchedHost *
sched_store_get_host (SchedStore *store, const char *name, GError **error)
{
  return store->ops->get_host (store, name, error);
}

GPtrArray *
sched_store_list_hosts (SchedStore *store, GError **error)
{
  return store->ops->list_hosts (store, error);
}

gboolean
sched_store_delete_host (SchedStore *store, const char *name, GError **error)
{
  return store->ops->delete_host (store, name, error);
}

gboolean
sched_store_put_vm (SchedStore *store, const SchedVm *vm, GError **error)
{
  return store->ops->put_vm (store, vm, error);
}

SchedVm *
sched_store_get_vm (SchedStore *store, const char *name, GError **error)
{
  return store->ops->get_vm (store, name, error);
}

GPtrArray *
sched_store_list_vms (SchedStore *store, const char *host, GError **error)
{
  return store->ops->list_vms (store, host, error);
}

gboolean
sched_store_delete_vm (SchedStore *store, const char *name, GError **error)
{
  return store->ops->delete_vm (store, name, error);
}

gboolean
sched_store_put_job (SchedStore *store, const SchedJob *job, GError **error)
{
  return store->ops->put_job (store, job, error);
}

SchedJob *
sched_store_get_job (SchedStore *store, const char *id, GError **error)
{
  return store->ops->get_job (store, id, error);
}

GPtrArray *
sched_store_list_jobs (SchedStore *store, GError **error)
{
  return store->ops->list_jobs (store, error);
}

gboolean
sched_store_begin (SchedStore *store, GError **error)
{
  return store->ops->begin (store, error);
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
