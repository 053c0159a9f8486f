/* SchedStore (SQLite backend) against a real database file. */
#include "test-sched.h"

#include <glib/gstdio.h>
#include <string.h>

typedef TestSchedStore Fixture;

static SchedHost *
make_host (const char *name, const char *state, gint64 seen)
{
  Drover__V1__HostInfo info = test_host_info (name, 8, 16 * GiB, 0, "tcg");

  info.memory_free = 12 * GiB;
  info.data_free = 100 * GiB;
  return sched_host_new (&info, state, seen);
}

static SchedVm *
make_vm (const char *name, const char *host, const char *state)
{
  Drover__V1__VmSpec spec = test_vm_spec (name, 2, 512 * MiB, GiB, NULL);
  Drover__V1__VmStatus status = DROVER__V1__VM_STATUS__INIT;

  spec.kernel = (char *)"/boot/vmlinuz";
  spec.cmdline = (char *)"console=ttyS0";
  status.name = (char *)name;
  status.state = (char *)"running";
  status.vcpus = 2;
  status.cpu_percent = 12.5;
  status.spec = &spec;
  return sched_vm_new (&spec, host, state, &status, 1234);
}

static void
test_hosts (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedHost) a = make_host ("host-a", PROTO_HOST_UP, 100);
  g_autoptr (SchedHost) b = make_host ("host-b", PROTO_HOST_DOWN, 50);
  g_autoptr (SchedHost) got = NULL;
  g_autoptr (GPtrArray) list = NULL;

  g_assert_true (sched_store_put_host (f->store, b, &error));
  g_assert_no_error (error);
  g_assert_true (sched_store_put_host (f->store, a, &error));

  got = sched_store_get_host (f->store, "host-a", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->name, ==, "host-a");
  g_assert_cmpstr (got->address, ==, "127.0.0.2:7500");
  g_assert_cmpstr (got->state, ==, PROTO_HOST_UP);
  g_assert_cmpint (got->last_seen_ms, ==, 100);
  g_assert_cmpuint (got->info->cpus, ==, 8);
  g_assert_cmpuint (got->info->memory_total, ==, 16ull << 30);
  g_assert_cmpstr (got->info->accel, ==, "tcg");
  g_clear_pointer (&got, sched_host_free);

  /* Upsert replaces. */
  g_free (a->state);
  a->state = g_strdup (PROTO_HOST_DOWN);
  a->last_seen_ms = 200;
  a->info->cpus = 4;
  g_assert_true (sched_store_put_host (f->store, a, &error));
  got = sched_store_get_host (f->store, "host-a", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->state, ==, PROTO_HOST_DOWN);
  g_assert_cmpint (got->last_seen_ms, ==, 200);
  g_assert_cmpuint (got->info->cpus, ==, 4);

  list = sched_store_list_hosts (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_assert_cmpstr (((SchedHost *)list->pdata[0])->name, ==, "host-a");
  g_assert_cmpstr (((SchedHost *)list->pdata[1])->name, ==, "host-b");

  g_assert_null (sched_store_get_host (f->store, "nope", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (sched_store_delete_host (f->store, "host-b", &error));
  g_assert_true (sched_store_delete_host (f->store, "host-b", &error));
  g_assert_no_error (error);
  g_clear_pointer (&list, g_ptr_array_unref);
  list = sched_store_list_hosts (f->store, &error);
  g_assert_cmpuint (list->len, ==, 1);
}

static void
test_vms (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) v1 = make_vm ("vm-1", "host-a", "running");
  g_autoptr (SchedVm) v2 = make_vm ("vm-2", "host-b", PROTO_VM_CREATING);
  g_autoptr (SchedVm) v3 = make_vm ("vm-3", "host-a", "shutoff");
  g_autoptr (SchedVm) got = NULL;
  g_autoptr (GPtrArray) list = NULL;

  /* A VM without status (not reported yet) stores a NULL status. */
  g_clear_pointer (&v2->status, proto_msg_free);
  g_assert_true (sched_store_put_vm (f->store, v3, &error));
  g_assert_true (sched_store_put_vm (f->store, v1, &error));
  g_assert_true (sched_store_put_vm (f->store, v2, &error));
  g_assert_no_error (error);

  got = sched_store_get_vm (f->store, "vm-1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->host, ==, "host-a");
  g_assert_cmpstr (got->state, ==, "running");
  g_assert_cmpint (got->updated_ms, ==, 1234);
  g_assert_cmpstr (got->spec->name, ==, "vm-1");
  g_assert_cmpuint (got->spec->vcpus, ==, 2);
  g_assert_cmpuint (got->spec->memory, ==, 512ull << 20);
  g_assert_cmpstr (got->spec->kernel, ==, "/boot/vmlinuz");
  g_assert_nonnull (got->status);
  g_assert_cmpfloat (got->status->cpu_percent, ==, 12.5);
  g_assert_nonnull (got->status->spec);
  g_assert_cmpstr (got->status->spec->cmdline, ==, "console=ttyS0");
  g_clear_pointer (&got, sched_vm_free);

  got = sched_store_get_vm (f->store, "vm-2", &error);
  g_assert_no_error (error);
  g_assert_null (got->status);
  g_assert_cmpstr (got->state, ==, PROTO_VM_CREATING);
  g_clear_pointer (&got, sched_vm_free);

  list = sched_store_list_vms (f->store, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 3);
  g_assert_cmpstr (((SchedVm *)list->pdata[0])->name, ==, "vm-1");
  g_assert_cmpstr (((SchedVm *)list->pdata[2])->name, ==, "vm-3");
  g_clear_pointer (&list, g_ptr_array_unref);

  list = sched_store_list_vms (f->store, "host-a", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_clear_pointer (&list, g_ptr_array_unref);

  /* Move vm-3 and update its state. */
  g_free (v3->host);
  v3->host = g_strdup ("host-b");
  sched_vm_set_state (v3, PROTO_VM_MISSING);
  g_assert_true (sched_store_put_vm (f->store, v3, &error));
  list = sched_store_list_vms (f->store, "host-b", &error);
  g_assert_cmpuint (list->len, ==, 2);
  g_clear_pointer (&list, g_ptr_array_unref);

  g_assert_true (sched_store_delete_vm (f->store, "vm-1", &error));
  g_assert_null (sched_store_get_vm (f->store, "vm-1", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_clear_error (&error);
  list = sched_store_list_vms (f->store, "host-a", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 0);
}

static void
test_jobs (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) j1
      = sched_job_new ("create", "vm-1", PROTO_JOB_RUNNING, 10);
  g_autoptr (SchedJob) j2
      = sched_job_new ("delete", "vm-2", PROTO_JOB_QUEUED, 20);
  g_autoptr (SchedJob) got = NULL;
  g_autoptr (GPtrArray) list = NULL;

  g_assert_cmpstr (j1->id, !=, j2->id);
  g_assert_true (sched_store_put_job (f->store, j2, &error));
  g_assert_true (sched_store_put_job (f->store, j1, &error));
  g_assert_no_error (error);

  g_free (j1->state);
  j1->state = g_strdup (PROTO_JOB_FAILED);
  j1->progress = 0.5;
  g_free (j1->error);
  j1->error = g_strdup ("host 'h': boom");
  j1->updated_ms = 30;
  g_assert_true (sched_store_put_job (f->store, j1, &error));

  got = sched_store_get_job (f->store, j1->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->kind, ==, "create");
  g_assert_cmpstr (got->vm, ==, "vm-1");
  g_assert_cmpstr (got->state, ==, PROTO_JOB_FAILED);
  g_assert_cmpfloat (got->progress, ==, 0.5);
  g_assert_cmpstr (got->error, ==, "host 'h': boom");
  g_assert_cmpstr (got->message, ==, "");
  g_assert_cmpint (got->created_ms, ==, 10);
  g_assert_cmpint (got->updated_ms, ==, 30);

  list = sched_store_list_jobs (f->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  /* By creation time. */
  g_assert_cmpstr (((SchedJob *)list->pdata[0])->id, ==, j1->id);

  g_assert_null (sched_store_get_job (f->store, "no-such-job", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
}

static void
test_reopen (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedHost) host = make_host ("host-a", PROTO_HOST_UP, 77);
  g_autoptr (SchedVm) vm = make_vm ("vm-1", "host-a", "running");
  g_autoptr (SchedJob) job
      = sched_job_new ("create", "vm-1", PROTO_JOB_DONE, 5);
  g_autoptr (SchedHost) h = NULL;
  g_autoptr (SchedVm) v = NULL;
  g_autoptr (SchedJob) j = NULL;

  g_assert_true (sched_store_put_host (f->store, host, &error));
  g_assert_true (sched_store_put_vm (f->store, vm, &error));
  g_assert_true (sched_store_put_job (f->store, job, &error));
  g_assert_no_error (error);

  test_sched_store_restart (f);

  h = sched_store_get_host (f->store, "host-a", &error);
  g_assert_no_error (error);
  g_assert_cmpint (h->last_seen_ms, ==, 77);
  g_assert_cmpuint (h->info->memory_free, ==, 12ull << 30);
  v = sched_store_get_vm (f->store, "vm-1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (v->host, ==, "host-a");
  g_assert_cmpuint (v->spec->disk, ==, 1ull << 30);
  j = sched_store_get_job (f->store, job->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (j->state, ==, PROTO_JOB_DONE);
}

static void
test_transaction (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) v1 = make_vm ("vm-1", "host-a", "running");
  g_autoptr (SchedVm) v2 = make_vm ("vm-2", "host-a", "running");
  g_autoptr (GPtrArray) list = NULL;

  g_assert_true (sched_store_begin (f->store, SCHED_STORE_SYNC_FULL, &error));
  g_assert_true (sched_store_put_vm (f->store, v1, &error));
  sched_store_rollback (f->store);
  g_assert_no_error (error);

  g_assert_true (
      sched_store_begin (f->store, SCHED_STORE_SYNC_RESTATED, &error));
  g_assert_true (sched_store_put_vm (f->store, v2, &error));
  g_assert_true (sched_store_commit (f->store, &error));
  g_assert_no_error (error);

  test_sched_store_restart (f);
  list = sched_store_list_vms (f->store, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);
  g_assert_cmpstr (((SchedVm *)list->pdata[0])->name, ==, "vm-2");
}

static gint64
synchronous_level (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  gint64 value = -1;

  g_assert_true (
      sched_store_sqlite_pragma (f->store, "synchronous", &value, &error));
  g_assert_no_error (error);
  return value;
}

/* A report's transaction (RESTATED) commits without waiting for the
 * disk; everything else, before and after it, does (2 = FULL, 1 =
 * NORMAL), whether it commits or rolls back. */
static void
test_restated_sync (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) v1 = make_vm ("vm-1", "host-a", "running");

  g_assert_cmpint (synchronous_level (f), ==, 2);
  g_assert_true (
      sched_store_begin (f->store, SCHED_STORE_SYNC_RESTATED, &error));
  g_assert_cmpint (synchronous_level (f), ==, 1);
  g_assert_true (sched_store_put_vm (f->store, v1, &error));
  g_assert_true (sched_store_commit (f->store, &error));
  g_assert_no_error (error);
  g_assert_cmpint (synchronous_level (f), ==, 2);

  g_assert_true (
      sched_store_begin (f->store, SCHED_STORE_SYNC_RESTATED, &error));
  sched_store_rollback (f->store);
  g_assert_cmpint (synchronous_level (f), ==, 2);

  g_assert_true (sched_store_begin (f->store, SCHED_STORE_SYNC_FULL, &error));
  g_assert_cmpint (synchronous_level (f), ==, 2);
  g_assert_true (sched_store_commit (f->store, &error));
  g_assert_no_error (error);
}

static void
test_not_a_database (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = test_tmp_dir_new ("drover-store-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "drover.db", NULL);
  g_autoptr (SchedStore) store = NULL;
  /* Longer than SQLite's 100-byte header so it is read, not treated as
   * an empty file. */
  g_autofree char *junk = g_strnfill (4096, 'x');

  g_assert_true (g_file_set_contents (path, junk, -1, &error));
  store = sched_store_open_sqlite (dir, &error);
  g_assert_null (store);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, "not a database"));
  g_test_message ("error: %s", error->message);

  /* The file was not touched. */
  {
    g_autofree char *after = NULL;
    gsize len;
    g_assert_true (g_file_get_contents (path, &after, &len, NULL));
    g_assert_cmpuint (len, ==, 4096);
    g_assert_cmpint (memcmp (after, junk, 4096), ==, 0);
  }
  test_tmp_dir_remove (dir);
}

static void
test_foreign_database (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = test_tmp_dir_new ("drover-store-XXXXXX");
  g_autofree char *cmd = NULL;
  g_autofree char *path = g_build_filename (dir, "drover.db", NULL);
  g_autoptr (SchedStore) store = NULL;
  int status;

  cmd = g_strdup_printf ("sqlite3 %s 'CREATE TABLE hosts (x INTEGER)'", path);
  if (!g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL)
      || !g_spawn_check_wait_status (status, NULL))
    {
      g_test_skip ("no sqlite3 command");
      test_tmp_dir_remove (dir);
      return;
    }
  store = sched_store_open_sqlite (dir, &error);
  g_assert_null (store);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "not a Drover database"));
  test_tmp_dir_remove (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TEST_SCHED_STORE_ADD ("/store/hosts", test_hosts);
  TEST_SCHED_STORE_ADD ("/store/vms", test_vms);
  TEST_SCHED_STORE_ADD ("/store/jobs", test_jobs);
  TEST_SCHED_STORE_ADD ("/store/reopen", test_reopen);
  TEST_SCHED_STORE_ADD ("/store/transaction", test_transaction);
  TEST_SCHED_STORE_ADD ("/store/restated-sync", test_restated_sync);
  g_test_add_func ("/store/not-a-database", test_not_a_database);
  g_test_add_func ("/store/foreign-database", test_foreign_database);
  return g_test_run ();
}
