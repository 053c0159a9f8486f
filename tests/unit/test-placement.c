/* Placement: filters, weight, pinning and the messages that explain a
 * refusal. Pure functions, no store. */
#include "test-sched.h"

#include <string.h>

static const SchedPolicy policy = {
  .cpu_overcommit = 4.0,
  .memory_reserve = 256 * MiB,
};

/* Places SPEC (on PIN unless NULL) among HOSTS and VMS: it must land on
 * HOST. */
static void
assert_placed (GPtrArray *hosts, GPtrArray *vms, const Drover__V1__VmSpec *spec,
               const char *pin, const char *host)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *chosen
      = sched_place (&policy, hosts, vms, spec, pin, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, host);
}

/* Places SPEC (on PIN unless NULL) among HOSTS and VMS: it must be
 * refused with CODE and, unless NULL, exactly MESSAGE. */
static void
assert_refused (GPtrArray *hosts, GPtrArray *vms,
                const Drover__V1__VmSpec *spec, const char *pin, int code,
                const char *message)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *chosen
      = sched_place (&policy, hosts, vms, spec, pin, &error);

  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, code);
  if (message)
    g_assert_cmpstr (error->message, ==, message);
}

static void
test_usage (void)
{
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  guint count, vcpus;
  guint64 memory, disk;

  test_sched_add_vm (vms, "a", "h1", "running", 2, GiB, 10 * GiB);
  test_sched_add_vm (vms, "b", "h1", PROTO_VM_CREATING, 1, 512 * MiB, 5 * GiB);
  test_sched_add_vm (vms, "c", "h1", PROTO_VM_MISSING, 8, 8 * GiB, 0);
  test_sched_add_vm (vms, "d", "h2", "shutoff", 4, 4 * GiB, 0);
  sched_host_usage ("h1", vms, &count, &vcpus, &memory, &disk);
  g_assert_cmpuint (count, ==, 2);
  g_assert_cmpuint (vcpus, ==, 3);
  g_assert_cmpuint (memory, ==, GiB + 512 * MiB);
  /* Only the VM being created reserves disk. */
  g_assert_cmpuint (disk, ==, 5 * GiB);
}

static void
test_spread (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("web", 1, GiB, 0, "");

  test_sched_add_host (hosts, "h2", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_host (hosts, "h3", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB,
                       "tcg");

  /* All equal: the smallest name wins, whatever the order given. */
  assert_placed (hosts, vms, &spec, NULL, "h1");

  /* Load h1 and h2: h3 is the emptiest. */
  test_sched_add_vm (vms, "a", "h1", "running", 2, 2 * GiB, 0);
  test_sched_add_vm (vms, "b", "h2", "running", 1, GiB, 0);
  assert_placed (hosts, vms, &spec, "", "h3");

  /* Now h3 carries more than h2. */
  test_sched_add_vm (vms, "c", "h3", "running", 4, 3 * GiB, 0);
  assert_placed (hosts, vms, &spec, NULL, "h2");

  /* A bigger host takes the next one: more free after placement. */
  test_sched_add_host (hosts, "h0", PROTO_HOST_UP, 16, 64 * GiB, 100 * GiB,
                       "tcg");
  assert_placed (hosts, vms, &spec, NULL, "h0");
}

static void
test_memory_filter (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = test_vm_spec ("big", 1, GiB, 0, "");
  g_autofree char *chosen = NULL;

  /* 2 GiB - 256 MiB reserve - 1.5 GiB used = 256 MiB free. */
  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 8, 2 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_vm (vms, "a", "h1", "running", 1, 1536 * MiB, 0);
  assert_refused (hosts, vms, &spec, NULL, SCHED_ERROR_NO_CAPACITY,
                  "no host can run VM 'big': h1: not enough memory "
                  "(need 1.0 GiB, 256 MiB free)");

  /* Exactly filling the host is allowed. */
  spec.memory = 256 * MiB;
  assert_placed (hosts, vms, &spec, NULL, "h1");

  /* A host smaller than the reserve fits nothing. */
  test_sched_add_host (hosts, "h0", PROTO_HOST_UP, 8, 128 * MiB, 100 * GiB,
                       "tcg");
  spec.memory = 257 * MiB;
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_nonnull (strstr (error->message,
                            "h0: not enough memory (need 257 MiB, 0 B free)"));
}

static void
test_vcpu_filter (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = test_vm_spec ("cpu", 3, 64 * MiB, 0, "");
  g_autofree char *chosen = NULL;

  /* 2 CPUs x 4.0 = 8 vCPUs; 6 used. */
  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 2, 64 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_vm (vms, "a", "h1", "running", 6, 64 * MiB, 0);
  assert_refused (hosts, vms, &spec, NULL, SCHED_ERROR_NO_CAPACITY,
                  "no host can run VM 'cpu': h1: not enough vCPUs "
                  "(need 3, 2 of 8 free)");

  spec.vcpus = 2;
  assert_placed (hosts, vms, &spec, NULL, "h1");

  /* Overcommit 1.0: the same host has no room. */
  {
    SchedPolicy strict = { .cpu_overcommit = 1.0, .memory_reserve = 0 };
    spec.vcpus = 1;
    chosen = sched_place (&strict, hosts, vms, &spec, NULL, &error);
    g_assert_null (chosen);
    g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  }
}

/* Only VMs that run hold vCPUs and memory (issue 15): a stopped one keeps
 * its disk only; the memory overcommit scales what a host may carry. */
static void
test_stopped_and_overcommit (void)
{
  SchedPolicy tight = { .cpu_overcommit = 1.0, .memory_reserve = 0 };
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("new", 2, 2 * GiB, 0, "");
  g_autoptr (GError) error = NULL;
  g_autofree char *chosen = NULL;
  guint count, vcpus;
  guint64 memory, disk;

  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 2, 4 * GiB, 10 * GiB, "tcg");
  test_sched_add_vm (vms, "off", "h1", PROTO_VM_SHUTOFF, 2, 3 * GiB, GiB);
  test_sched_add_vm (vms, "dead", "h1", PROTO_VM_CRASHED, 2, 3 * GiB, GiB);
  sched_host_usage ("h1", vms, &count, &vcpus, &memory, &disk);
  g_assert_cmpuint (count, ==, 2);
  g_assert_cmpuint (vcpus, ==, 0);
  g_assert_cmpuint (memory, ==, 0);
  chosen = sched_place (&tight, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);

  /* Running (or paused) it holds them. */
  test_sched_add_vm (vms, "paused", "h1", PROTO_VM_PAUSED, 1, 3 * GiB, 0);
  chosen = sched_place (&tight, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_nonnull (strstr (error->message, "not enough vCPUs"));
  g_clear_error (&error);
  /* Starting a stopped VM takes room: "off" needs 2 vCPUs, 1 is free. */
  g_assert_false (
      sched_check_start_room (&tight, hosts, vms, vms->pdata[0], &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_cmpstr (error->message, ==,
                   "host 'h1' cannot start VM 'off': not enough vCPUs (need "
                   "2, 1 of 2 free) (a stopped VM holds no vCPUs or memory; "
                   "migrate or stop another VM first)");
  g_clear_error (&error);
  /* One that holds its capacity already passes. */
  g_assert_true (
      sched_check_start_room (&tight, hosts, vms, vms->pdata[2], &error));

  /* Room in vCPUs, not in memory (3 + 2 of 4 GiB), until memory may be
   * overcommitted 1.5 times (6 GiB). */
  tight.cpu_overcommit = 2.0;
  chosen = sched_place (&tight, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_nonnull (strstr (error->message, "not enough memory"));
  g_clear_error (&error);
  tight.memory_overcommit = 1.5;
  g_assert_cmpuint (sched_policy_memory_cap (&tight, 4 * GiB), ==, 6 * GiB);
  g_assert_cmpuint (sched_policy_vcpu_cap (&tight, 2), ==, 4);
  chosen = sched_place (&tight, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
}

static void
test_disk_filter (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("disky", 1, 64 * MiB, 20 * GiB, "");

  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 4, 8 * GiB, 10 * GiB, "tcg");
  test_sched_add_host (hosts, "h2", PROTO_HOST_UP, 4, 8 * GiB, 30 * GiB, "tcg");
  assert_placed (hosts, vms, &spec, NULL, "h2");

  /* A VM being created on h2 reserves 15 GiB of its disk. */
  test_sched_add_vm (vms, "pending", "h2", PROTO_VM_CREATING, 1, 64 * MiB,
                     15 * GiB);
  assert_refused (hosts, vms, &spec, NULL, SCHED_ERROR_NO_CAPACITY,
                  "no host can run VM 'disky': "
                  "h1: not enough disk (need 20 GiB, 10 GiB free); "
                  "h2: not enough disk (need 20 GiB, 15 GiB free)");
}

static void
test_accel_filter (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("k", 1, 64 * MiB, 0, "kvm");

  /* h1 would win on spread but runs TCG only. */
  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 32, 64 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_host (hosts, "h2", PROTO_HOST_UP, 2, 4 * GiB, 100 * GiB,
                       "kvm");
  assert_placed (hosts, vms, &spec, NULL, "h2");

  spec.accel = (char *)"";
  assert_placed (hosts, vms, &spec, NULL, "h1");

  spec.accel = (char *)"tcg";
  assert_refused (
      hosts, vms, &spec, "h2", SCHED_ERROR_NO_CAPACITY,
      "host 'h2' cannot run VM 'k': accelerator is kvm, VM needs tcg");
}

static void
test_pin (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("p", 1, GiB, 0, "");

  test_sched_add_host (hosts, "big", PROTO_HOST_UP, 32, 64 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_host (hosts, "small", PROTO_HOST_UP, 2, 2 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_host (hosts, "gone", PROTO_HOST_DOWN, 32, 64 * GiB, 100 * GiB,
                       "tcg");

  /* Pinning overrides the weight. */
  assert_placed (hosts, vms, &spec, "small", "small");

  assert_refused (hosts, vms, &spec, "nowhere", SCHED_ERROR_NOT_FOUND,
                  "no host named 'nowhere'");

  assert_refused (hosts, vms, &spec, "gone", SCHED_ERROR_PRECONDITION,
                  "host 'gone' is down");

  spec.memory = 4 * GiB;
  assert_refused (hosts, vms, &spec, "small", SCHED_ERROR_NO_CAPACITY,
                  "host 'small' cannot run VM 'p': not enough memory "
                  "(need 4.0 GiB, 1.8 GiB free)");
}

static void
test_full_cluster (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("x", 1, GiB, 0, "");

  /* host1: 1 GiB - 256 MiB reserve ... make 200 MiB free. */
  test_sched_add_host (hosts, "host2", PROTO_HOST_DOWN, 8, 16 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_host (hosts, "host1", PROTO_HOST_UP, 8, 2 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_vm (vms, "fat", "host1", "running", 1,
                     2 * GiB - 256 * MiB - 200 * MiB, 0);

  assert_refused (hosts, vms, &spec, NULL, SCHED_ERROR_NO_CAPACITY,
                  "no host can run VM 'x': host1: not enough memory "
                  "(need 1.0 GiB, 200 MiB free); host2: down");

  /* No hosts at all. */
  g_ptr_array_set_size (hosts, 0);
  assert_refused (hosts, vms, &spec, NULL, SCHED_ERROR_NO_CAPACITY,
                  "no host can run VM 'x': no hosts are registered");
}

static void
test_creating_counts (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("n", 1, GiB, 0, "");

  /* Room for exactly one 1 GiB VM. */
  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 8, GiB + 256 * MiB,
                       100 * GiB, "tcg");
  assert_placed (hosts, vms, &spec, NULL, "h1");

  /* Once that one is being created, a second does not fit... */
  test_sched_add_vm (vms, "first", "h1", PROTO_VM_CREATING, 1, GiB, 0);
  assert_refused (hosts, vms, &spec, NULL, SCHED_ERROR_NO_CAPACITY, NULL);

  /* ...while a missing VM holds nothing. */
  sched_vm_set_state (vms->pdata[0], PROTO_VM_MISSING);
  assert_placed (hosts, vms, &spec, NULL, "h1");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/placement/usage", test_usage);
  g_test_add_func ("/placement/spread", test_spread);
  g_test_add_func ("/placement/memory", test_memory_filter);
  g_test_add_func ("/placement/vcpus", test_vcpu_filter);
  g_test_add_func ("/placement/disk", test_disk_filter);
  g_test_add_func ("/placement/accel", test_accel_filter);
  g_test_add_func ("/placement/pin", test_pin);
  g_test_add_func ("/placement/full-cluster", test_full_cluster);
  g_test_add_func ("/placement/creating-counts", test_creating_counts);
  g_test_add_func ("/placement/stopped-and-overcommit",
                   test_stopped_and_overcommit);
  return g_test_run ();
}
