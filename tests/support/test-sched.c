/* The scheduler's rows and store for the tests. */
#include "test-sched.h"

#include <sqlite3.h>

Drover__V1__HostInfo
test_host_info (const char *name, guint cpus, guint64 memory, guint64 data,
                const char *accel)
{
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;

  info.name = (char *)name;
  info.address = (char *)"127.0.0.2:7500";
  info.cpus = cpus;
  info.memory_total = memory;
  info.memory_free = memory;
  info.data_total = data;
  info.data_free = data;
  info.accel = (char *)accel;
  return info;
}

Drover__V1__VmSpec
test_vm_spec (const char *name, guint vcpus, guint64 memory, guint64 disk,
              const char *accel)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;

  spec.name = (char *)name;
  spec.vcpus = vcpus;
  spec.memory = memory;
  spec.disk = disk;
  if (accel)
    spec.accel = (char *)accel;
  return spec;
}

SchedVm *
test_sched_vm_new (const char *name, const char *host, const char *state,
                   guint vcpus, guint64 memory, guint64 disk)
{
  Drover__V1__VmSpec spec = test_vm_spec (name, vcpus, memory, disk, NULL);

  return sched_vm_new (&spec, host, state, NULL, 0);
}

SchedService *
test_sched_service_new (char **dir, SchedConfig *config, const ProtoTls *tls)
{
  g_autoptr (GError) error = NULL;
  SchedService *svc;

  *dir = test_tmp_dir_new ("drover-sched-svc-XXXXXX");
  config->state_dir = *dir;
  config->cpu_overcommit = SCHED_DEFAULT_CPU_OVERCOMMIT;
  config->memory_reserve = SCHED_DEFAULT_MEMORY_RESERVE;
  svc = sched_service_new (config, tls, &error);
  g_assert_no_error (error);
  return svc;
}

void
test_sched_put_host (SchedService *svc, const char *name, const char *address)
{
  Drover__V1__HostInfo info
      = test_host_info (name, 8, 8 * GiB, 100 * GiB, PROTO_ACCEL_TCG);
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (GError) error = NULL;

  info.address = (char *)address;
  host = sched_host_new (&info, PROTO_HOST_UP,
                         sched_registry_now (svc->registry));
  g_assert_true (sched_store_put_host (svc->store, host, &error));
  g_assert_no_error (error);
}

void
test_sched_put_vm (SchedService *svc, const char *name, const char *host,
                   const char *state, guint vcpus, guint64 memory, guint64 disk)
{
  g_autoptr (SchedVm) vm
      = test_sched_vm_new (name, host, state, vcpus, memory, disk);
  g_autoptr (GError) error = NULL;

  g_assert_true (sched_store_put_vm (svc->store, vm, &error));
  g_assert_no_error (error);
}

SchedVm *
test_sched_stored_vm (SchedService *svc, const char *name)
{
  g_autoptr (GError) error = NULL;
  SchedVm *vm = sched_store_get_vm (svc->store, name, &error);

  g_assert_no_error (error);
  return vm;
}

GPtrArray *
test_sched_hosts_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)sched_host_free);
}

GPtrArray *
test_sched_vms_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)sched_vm_free);
}

void
test_sched_add_host (GPtrArray *hosts, const char *name, const char *state,
                     guint cpus, guint64 memory, guint64 data,
                     const char *accel)
{
  Drover__V1__HostInfo info = test_host_info (name, cpus, memory, data, accel);

  g_ptr_array_add (hosts, sched_host_new (&info, state, 0));
}

void
test_sched_add_vm (GPtrArray *vms, const char *name, const char *host,
                   const char *state, guint vcpus, guint64 memory, guint64 disk)
{
  g_ptr_array_add (vms,
                   test_sched_vm_new (name, host, state, vcpus, memory, disk));
}

/* --- store ---------------------------------------------------------------- */

SchedStore *
test_sched_store_open_sql (const char *dir, const char *sql)
{
  g_autofree char *path = g_build_filename (dir, "drover.db", NULL);
  g_autoptr (GError) error = NULL;
  SchedStore *store;
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, sql, NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  return store;
}

static gint64
fake_clock (gpointer data)
{
  return ((TestSchedStore *)data)->now;
}

static void
open_store (TestSchedStore *f)
{
  g_autoptr (GError) error = NULL;

  f->store = sched_store_open_sqlite (f->dir, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->store);
  f->reg = sched_registry_new (f->store, TEST_SCHED_INTERVAL_MS, fake_clock, f);
}

static void
close_store (TestSchedStore *f)
{
  g_clear_pointer (&f->reg, sched_registry_free);
  g_clear_pointer (&f->store, sched_store_close);
}

void
test_sched_store_setup (TestSchedStore *f, gconstpointer data)
{
  f->now = 1000000;
  f->dir = test_tmp_dir_new ("drover-sched-XXXXXX");
  open_store (f);
}

void
test_sched_store_teardown (TestSchedStore *f, gconstpointer data)
{
  close_store (f);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
}

void
test_sched_store_restart (TestSchedStore *f)
{
  close_store (f);
  open_store (f);
}

SchedJob *
test_sched_wait_job (SchedStore *store, const char *id)
{
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      SchedJob *job = sched_store_get_job (store, id, &error);

      g_assert_no_error (error);
      if (proto_job_state_is_final (job->state))
        return job;
      sched_job_free (job);
      g_main_context_iteration (NULL, TRUE);
    }
}
