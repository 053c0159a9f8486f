/* SchedRegistry: registration, heartbeats, liveness with an injected
 * clock, and VM inventory reconciliation, over a real SQLite store. */
#include "test-sched.h"

#include <glib/gstdio.h>
#include <string.h>

#define INTERVAL TEST_SCHED_INTERVAL_MS

typedef TestSchedStore Fixture;

static Drover__V1__HostInfo
host_info (const char *name)
{
  return test_host_info (name, 4, 8 * GiB, 0, "tcg");
}

static SchedHost *
get_host (Fixture *f, const char *name)
{
  g_autoptr (GError) error = NULL;
  SchedHost *host = sched_store_get_host (f->store, name, &error);

  g_assert_no_error (error);
  return host;
}

static SchedVm *
get_vm (Fixture *f, const char *name)
{
  g_autoptr (GError) error = NULL;
  SchedVm *vm = sched_store_get_vm (f->store, name, &error);

  g_assert_no_error (error);
  return vm;
}

static void
assert_host_state (Fixture *f, const char *name, const char *state)
{
  g_autoptr (SchedHost) host = get_host (f, name);
  g_assert_cmpstr (host->state, ==, state);
}

static void
assert_vm (Fixture *f, const char *name, const char *host, const char *state)
{
  g_autoptr (SchedVm) vm = get_vm (f, name);
  g_assert_cmpstr (vm->host, ==, host);
  g_assert_cmpstr (vm->state, ==, state);
}

static void
do_register (Fixture *f, const char *name)
{
  g_autoptr (GError) error = NULL;
  Drover__V1__HostInfo info = host_info (name);

  g_assert_true (sched_registry_register (f->reg, &info, &error));
  g_assert_no_error (error);
}

/* Reports the VMs named in NAMES (NULL-terminated, "name:state"). Returns
 * the reregister flag. */
static gboolean
do_report (Fixture *f, const char *host, guint64 seq, const char *const *names)
{
  g_autoptr (GError) error = NULL;
  Drover__V1__HostInfo info = host_info (host);
  guint n = names ? g_strv_length ((char **)names) : 0;
  g_autofree Drover__V1__VmStatus *statuses = g_new0 (Drover__V1__VmStatus, n);
  g_autofree Drover__V1__VmSpec *specs = g_new0 (Drover__V1__VmSpec, n);
  g_autofree Drover__V1__VmStatus **ptrs
      = g_new0 (Drover__V1__VmStatus *, n + 1);
  g_autoptr (GPtrArray) strings = g_ptr_array_new_with_free_func (g_free);
  gboolean reregister = FALSE;

  for (guint i = 0; i < n; i++)
    {
      char **kv = g_strsplit (names[i], ":", 2);
      drover__v1__vm_status__init (&statuses[i]);
      drover__v1__vm_spec__init (&specs[i]);
      statuses[i].name = kv[0];
      statuses[i].state = kv[1];
      statuses[i].vcpus = 1;
      statuses[i].memory = 64ull << 20;
      specs[i].name = kv[0];
      specs[i].vcpus = 1;
      specs[i].memory = 64ull << 20;
      statuses[i].spec = &specs[i];
      ptrs[i] = &statuses[i];
      g_ptr_array_add (strings, kv[0]);
      g_ptr_array_add (strings, kv[1]);
      g_free (kv);
    }
  g_assert_true (
      sched_registry_report (f->reg, &info, ptrs, n, seq, &reregister, &error));
  g_assert_no_error (error);
  return reregister;
}

static guint
check (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  guint n = sched_registry_check_liveness (f->reg, &error);

  g_assert_no_error (error);
  return n;
}

static void
test_register (Fixture *f, gconstpointer data)
{
  g_autoptr (SchedHost) host = NULL;

  do_register (f, "h1");
  host = get_host (f, "h1");
  g_assert_cmpstr (host->state, ==, PROTO_HOST_UP);
  g_assert_cmpint (host->last_seen_ms, ==, f->now);
  g_assert_cmpstr (host->address, ==, "127.0.0.2:7500");
  g_assert_cmpuint (host->info->cpus, ==, 4);
  g_assert_cmpuint (sched_registry_get_report_interval (f->reg), ==, INTERVAL);
}

static void
test_report (Fixture *f, gconstpointer data)
{
  g_autoptr (SchedHost) host = NULL;

  do_register (f, "h1");
  f->now += 500;
  g_assert_false (do_report (f, "h1", 1, NULL));
  host = get_host (f, "h1");
  g_assert_cmpint (host->last_seen_ms, ==, f->now);
  g_assert_cmpstr (host->state, ==, PROTO_HOST_UP);
}

static void
test_reregister_unknown (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  /* Never registered: told to register, nothing stored. */
  g_assert_true (do_report (f, "stranger", 1, NULL));
  g_assert_null (sched_store_get_host (f->store, "stranger", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);

  /* Registered with the previous scheduler process only. */
  do_register (f, "h1");
  g_assert_false (do_report (f, "h1", 1, NULL));
  test_sched_store_restart (f);
  g_assert_true (do_report (f, "h1", 2, NULL));
  do_register (f, "h1");
  g_assert_false (do_report (f, "h1", 1, NULL));
}

static void
test_down_after_three_intervals (Fixture *f, gconstpointer data)
{
  do_register (f, "h1");
  do_register (f, "h2");

  /* h2 keeps reporting, h1 falls silent. */
  for (int i = 1; i <= 3; i++)
    {
      f->now += INTERVAL;
      do_report (f, "h2", i, NULL);
      g_assert_cmpuint (check (f), ==, 0);
      assert_host_state (f, "h1", PROTO_HOST_UP);
    }
  /* Exactly three intervals is still alive; one ms more is not. */
  f->now += 1;
  do_report (f, "h2", 4, NULL);
  g_assert_cmpuint (check (f), ==, 1);
  assert_host_state (f, "h1", PROTO_HOST_DOWN);
  assert_host_state (f, "h2", PROTO_HOST_UP);
  /* Turning down happens (and is logged) once. */
  f->now += INTERVAL;
  do_report (f, "h2", 5, NULL);
  g_assert_cmpuint (check (f), ==, 0);
}

static void
test_back_up (Fixture *f, gconstpointer data)
{
  do_register (f, "h1");
  f->now += 4 * INTERVAL;
  g_assert_cmpuint (check (f), ==, 1);
  assert_host_state (f, "h1", PROTO_HOST_DOWN);

  /* Its next report brings it back (it registered with this process). */
  g_assert_false (do_report (f, "h1", 1, NULL));
  assert_host_state (f, "h1", PROTO_HOST_UP);

  f->now += 4 * INTERVAL;
  g_assert_cmpuint (check (f), ==, 1);
  /* So does a new registration. */
  do_register (f, "h1");
  assert_host_state (f, "h1", PROTO_HOST_UP);
  g_assert_cmpuint (check (f), ==, 0);
}

static void
test_restart_deadline (Fixture *f, gconstpointer data)
{
  do_register (f, "h1");
  /* The scheduler is away for a long time, then restarts. */
  f->now += 100 * INTERVAL;
  test_sched_store_restart (f);

  /* Loaded hosts keep their state until the deadline from our start. */
  g_assert_cmpuint (check (f), ==, 0);
  assert_host_state (f, "h1", PROTO_HOST_UP);
  f->now += 3 * INTERVAL;
  g_assert_cmpuint (check (f), ==, 0);
  f->now += 1;
  g_assert_cmpuint (check (f), ==, 1);
  assert_host_state (f, "h1", PROTO_HOST_DOWN);
}

static void
test_adopt (Fixture *f, gconstpointer data)
{
  const char *const vms[] = { "web:running", "db:paused", NULL };
  g_autoptr (SchedVm) vm = NULL;

  do_register (f, "h1");
  do_report (f, "h1", 1, vms);
  assert_vm (f, "web", "h1", "running");
  assert_vm (f, "db", "h1", "paused");
  vm = get_vm (f, "web");
  g_assert_nonnull (vm->status);
  g_assert_cmpstr (vm->status->name, ==, "web");
  g_assert_cmpuint (vm->spec->memory, ==, 64ull << 20);
  g_assert_cmpint (vm->updated_ms, ==, f->now);
}

static void
test_missing (Fixture *f, gconstpointer data)
{
  const char *const both[] = { "web:running", "db:running", NULL };
  const char *const web[] = { "web:running", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) pending = NULL;
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;

  do_register (f, "h1");
  do_report (f, "h1", 1, both);

  /* A VM being created on h1 is not reported yet: it stays creating. */
  spec.name = (char *)"new";
  spec.vcpus = 1;
  spec.memory = 64ull << 20;
  pending = sched_vm_new (&spec, "h1", PROTO_VM_CREATING, NULL, f->now);
  g_assert_true (sched_store_put_vm (f->store, pending, &error));
  g_assert_no_error (error);

  f->now += INTERVAL;
  do_report (f, "h1", 2, web);
  assert_vm (f, "web", "h1", "running");
  assert_vm (f, "db", "h1", PROTO_VM_MISSING);
  assert_vm (f, "new", "h1", PROTO_VM_CREATING);

  /* It comes back. */
  do_report (f, "h1", 3, both);
  assert_vm (f, "db", "h1", "running");
}

static void
test_move (Fixture *f, gconstpointer data)
{
  const char *const vms[] = { "web:running", NULL };

  do_register (f, "h1");
  do_register (f, "h2");
  do_report (f, "h1", 1, vms);
  assert_vm (f, "web", "h1", "running");

  /* h2 reports it while h1 still has it: a host cannot take another's
   * VM by reporting it. */
  do_report (f, "h2", 1, vms);
  assert_vm (f, "web", "h1", "running");

  /* h1 lost it; then h2's report says where it went. */
  do_report (f, "h1", 2, NULL);
  assert_vm (f, "web", "h1", "missing");
  do_report (f, "h2", 2, vms);
  assert_vm (f, "web", "h2", "running");

  /* h1 no longer has it; it is not h1's to mark missing. */
  do_report (f, "h1", 3, NULL);
  assert_vm (f, "web", "h2", "running");
}

static void
test_stale_and_forgotten (Fixture *f, gconstpointer data)
{
  const char *const web[] = { "web:running", NULL };
  const char *const none[] = { NULL };
  g_autoptr (GError) error = NULL;

  do_register (f, "h1");
  do_report (f, "h1", 5, web);
  /* An older report (seq 4) arriving late changes nothing. */
  do_report (f, "h1", 4, none);
  assert_vm (f, "web", "h1", "running");

  /* Deleted by the operator; a report generated before the deletion
   * must not bring it back. */
  g_assert_true (sched_store_delete_vm (f->store, "web", &error));
  sched_registry_forget_vm (f->reg, "web");
  do_report (f, "h1", 6, web);
  g_assert_null (sched_store_get_vm (f->store, "web", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Long after, a VM of that name is a real one again. */
  f->now += 4 * INTERVAL;
  do_report (f, "h1", 7, web);
  assert_vm (f, "web", "h1", "running");
}

/* A command changed the VM (a stop, as the scheduler records from the
 * agent's reply): a report collected before the command ended, arriving
 * after it, does not set the old state back; the first report collected
 * after it does count, and from then on every report does. */
static void
test_report_before_command (Fixture *f, gconstpointer data)
{
  const char *const running[] = { "web:running", NULL };
  const char *const shutdown[] = { "web:shutdown", NULL };
  const char *const shutoff[] = { "web:shutoff", NULL };
  const char *const paused[] = { "web:paused", NULL };
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (GError) error = NULL;

  do_register (f, "h1");
  do_report (f, "h1", 1, running);
  /* The stop ended while report 2 was being collected: the agent says
   * reports from 3 on see it. */
  vm = get_vm (f, "web");
  sched_vm_set_state (vm, "shutoff");
  g_assert_true (sched_store_put_vm (f->store, vm, &error));
  sched_registry_vm_changed (f->reg, "web", "h1", 3);
  do_report (f, "h1", 2, shutdown);
  assert_vm (f, "web", "h1", "shutoff");
  do_report (f, "h1", 3, shutoff);
  assert_vm (f, "web", "h1", "shutoff");
  /* The mark is gone: any later report counts. */
  do_report (f, "h1", 4, paused);
  assert_vm (f, "web", "h1", "paused");

  /* An agent that restarted numbers from 1 again: its registration
   * clears the marks of the old process. */
  sched_registry_vm_changed (f->reg, "web", "h1", 100);
  do_register (f, "h1");
  do_report (f, "h1", 1, running);
  assert_vm (f, "web", "h1", "running");
}

static void
test_bad_names_ignored (Fixture *f, gconstpointer data)
{
  const char *const vms[]
      = { "Bad_Name:running", ":running", "ok:running", NULL };
  g_autoptr (GPtrArray) all = NULL;
  g_autoptr (GError) error = NULL;

  do_register (f, "h1");
  do_report (f, "h1", 1, vms);
  all = sched_store_list_vms (f->store, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 1);
  g_assert_cmpstr (((SchedVm *)all->pdata[0])->name, ==, "ok");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TEST_SCHED_STORE_ADD ("/registry/register", test_register);
  TEST_SCHED_STORE_ADD ("/registry/report", test_report);
  TEST_SCHED_STORE_ADD ("/registry/reregister-unknown",
                        test_reregister_unknown);
  TEST_SCHED_STORE_ADD ("/registry/down-after-three-intervals",
                        test_down_after_three_intervals);
  TEST_SCHED_STORE_ADD ("/registry/back-up", test_back_up);
  TEST_SCHED_STORE_ADD ("/registry/restart-deadline", test_restart_deadline);
  TEST_SCHED_STORE_ADD ("/registry/reconcile/adopt", test_adopt);
  TEST_SCHED_STORE_ADD ("/registry/reconcile/missing", test_missing);
  TEST_SCHED_STORE_ADD ("/registry/reconcile/move", test_move);
  TEST_SCHED_STORE_ADD ("/registry/reconcile/stale-and-forgotten",
                        test_stale_and_forgotten);
  TEST_SCHED_STORE_ADD ("/registry/reconcile/report-before-command",
                        test_report_before_command);
  TEST_SCHED_STORE_ADD ("/registry/reconcile/bad-names",
                        test_bad_names_ignored);
  return g_test_run ();
}
