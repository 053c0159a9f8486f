/* Placement: filters, weight, pinning and the messages that explain a
 * refusal. Pure functions, no store. */
#include "sched-private.h"

#include <string.h>

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static const SchedPolicy policy = {
  .cpu_overcommit = 4.0,
  .memory_reserve = 256 * MiB,
};

static void
add_host (GPtrArray *hosts, const char *name, const char *state, guint cpus,
          guint64 memory, guint64 data_free, const char *accel)
{
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;

  info.name = (char *)name;
  info.address = (char *)"127.0.0.2:7500";
  info.cpus = cpus;
  info.memory_total = memory;
  info.memory_free = memory;
  info.data_total = data_free;
  info.data_free = data_free;
  info.accel = (char *)accel;
  g_ptr_array_add (hosts, sched_host_new (&info, state, 0));
}

static void
add_vm (GPtrArray *vms, const char *name, const char *host, const char *state,
        guint vcpus, guint64 memory, guint64 disk)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;

  spec.name = (char *)name;
  spec.vcpus = vcpus;
  spec.memory = memory;
  spec.disk = disk;
  g_ptr_array_add (vms, sched_vm_new (&spec, host, state, NULL, 0));
}

static Drover__V1__VmSpec
make_spec (const char *name, guint vcpus, guint64 memory, guint64 disk,
           const char *accel)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;

  spec.name = (char *)name;
  spec.vcpus = vcpus;
  spec.memory = memory;
  spec.disk = disk;
  spec.accel = (char *)accel;
  return spec;
}

static GPtrArray *
new_hosts (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)sched_host_free);
}

static GPtrArray *
new_vms (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)sched_vm_free);
}

static void
test_usage (void)
{
  g_autoptr (GPtrArray) vms = new_vms ();
  guint count, vcpus;
  guint64 memory, disk;

  add_vm (vms, "a", "h1", "running", 2, GiB, 10 * GiB);
  add_vm (vms, "b", "h1", PROTO_VM_CREATING, 1, 512 * MiB, 5 * GiB);
  add_vm (vms, "c", "h1", PROTO_VM_MISSING, 8, 8 * GiB, 0);
  add_vm (vms, "d", "h2", "shutoff", 4, 4 * GiB, 0);
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
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("web", 1, GiB, 0, "");
  g_autofree char *chosen = NULL;

  add_host (hosts, "h2", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB, "tcg");
  add_host (hosts, "h1", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB, "tcg");
  add_host (hosts, "h3", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB, "tcg");

  /* All equal: the smallest name wins, whatever the order given. */
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);

  /* Load h1 and h2: h3 is the emptiest. */
  add_vm (vms, "a", "h1", "running", 2, 2 * GiB, 0);
  add_vm (vms, "b", "h2", "running", 1, GiB, 0);
  chosen = sched_place (&policy, hosts, vms, &spec, "", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h3");
  g_clear_pointer (&chosen, g_free);

  /* Now h3 carries more than h2. */
  add_vm (vms, "c", "h3", "running", 4, 3 * GiB, 0);
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h2");
  g_clear_pointer (&chosen, g_free);

  /* A bigger host takes the next one: more free after placement. */
  add_host (hosts, "h0", PROTO_HOST_UP, 16, 64 * GiB, 100 * GiB, "tcg");
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_cmpstr (chosen, ==, "h0");
}

static void
test_memory_filter (void)
{
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("big", 1, GiB, 0, "");
  g_autofree char *chosen = NULL;

  /* 2 GiB - 256 MiB reserve - 1.5 GiB used = 256 MiB free. */
  add_host (hosts, "h1", PROTO_HOST_UP, 8, 2 * GiB, 100 * GiB, "tcg");
  add_vm (vms, "a", "h1", "running", 1, 1536 * MiB, 0);
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_cmpstr (error->message, ==,
                   "no host can run VM 'big': h1: not enough memory "
                   "(need 1.0 GiB, 256 MiB free)");
  g_clear_error (&error);

  /* Exactly filling the host is allowed. */
  spec.memory = 256 * MiB;
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);

  /* A host smaller than the reserve fits nothing. */
  add_host (hosts, "h0", PROTO_HOST_UP, 8, 128 * MiB, 100 * GiB, "tcg");
  spec.memory = 257 * MiB;
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_nonnull (strstr (error->message,
                            "h0: not enough memory (need 257 MiB, 0 B free)"));
}

static void
test_vcpu_filter (void)
{
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("cpu", 3, 64 * MiB, 0, "");
  g_autofree char *chosen = NULL;

  /* 2 CPUs x 4.0 = 8 vCPUs; 6 used. */
  add_host (hosts, "h1", PROTO_HOST_UP, 2, 64 * GiB, 100 * GiB, "tcg");
  add_vm (vms, "a", "h1", "running", 6, 64 * MiB, 0);
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_cmpstr (error->message, ==,
                   "no host can run VM 'cpu': h1: not enough vCPUs "
                   "(need 3, 2 of 8 free)");
  g_clear_error (&error);

  spec.vcpus = 2;
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);

  /* Overcommit 1.0: the same host has no room. */
  {
    SchedPolicy strict = { .cpu_overcommit = 1.0, .memory_reserve = 0 };
    spec.vcpus = 1;
    chosen = sched_place (&strict, hosts, vms, &spec, NULL, &error);
    g_assert_null (chosen);
    g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  }
}

static void
test_disk_filter (void)
{
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("disky", 1, 64 * MiB, 20 * GiB, "");
  g_autofree char *chosen = NULL;

  add_host (hosts, "h1", PROTO_HOST_UP, 4, 8 * GiB, 10 * GiB, "tcg");
  add_host (hosts, "h2", PROTO_HOST_UP, 4, 8 * GiB, 30 * GiB, "tcg");
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h2");
  g_clear_pointer (&chosen, g_free);

  /* A VM being created on h2 reserves 15 GiB of its disk. */
  add_vm (vms, "pending", "h2", PROTO_VM_CREATING, 1, 64 * MiB, 15 * GiB);
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_cmpstr (error->message, ==,
                   "no host can run VM 'disky': "
                   "h1: not enough disk (need 20 GiB, 10 GiB free); "
                   "h2: not enough disk (need 20 GiB, 15 GiB free)");
}

static void
test_accel_filter (void)
{
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("k", 1, 64 * MiB, 0, "kvm");
  g_autofree char *chosen = NULL;

  /* h1 would win on spread but runs TCG only. */
  add_host (hosts, "h1", PROTO_HOST_UP, 32, 64 * GiB, 100 * GiB, "tcg");
  add_host (hosts, "h2", PROTO_HOST_UP, 2, 4 * GiB, 100 * GiB, "kvm");
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h2");
  g_clear_pointer (&chosen, g_free);

  spec.accel = (char *)"";
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);

  spec.accel = (char *)"tcg";
  chosen = sched_place (&policy, hosts, vms, &spec, "h2", &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_cmpstr (
      error->message, ==,
      "host 'h2' cannot run VM 'k': accelerator is kvm, VM needs tcg");
}

static void
test_pin (void)
{
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("p", 1, GiB, 0, "");
  g_autofree char *chosen = NULL;

  add_host (hosts, "big", PROTO_HOST_UP, 32, 64 * GiB, 100 * GiB, "tcg");
  add_host (hosts, "small", PROTO_HOST_UP, 2, 2 * GiB, 100 * GiB, "tcg");
  add_host (hosts, "gone", PROTO_HOST_DOWN, 32, 64 * GiB, 100 * GiB, "tcg");

  /* Pinning overrides the weight. */
  chosen = sched_place (&policy, hosts, vms, &spec, "small", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "small");
  g_clear_pointer (&chosen, g_free);

  chosen = sched_place (&policy, hosts, vms, &spec, "nowhere", &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no host named 'nowhere'");
  g_clear_error (&error);

  chosen = sched_place (&policy, hosts, vms, &spec, "gone", &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
  g_assert_cmpstr (error->message, ==, "host 'gone' is down");
  g_clear_error (&error);

  spec.memory = 4 * GiB;
  chosen = sched_place (&policy, hosts, vms, &spec, "small", &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_cmpstr (error->message, ==,
                   "host 'small' cannot run VM 'p': not enough memory "
                   "(need 4.0 GiB, 1.8 GiB free)");
}

static void
test_full_cluster (void)
{
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("x", 1, GiB, 0, "");
  g_autofree char *chosen = NULL;

  /* host1: 1 GiB - 256 MiB reserve ... make 200 MiB free. */
  add_host (hosts, "host2", PROTO_HOST_DOWN, 8, 16 * GiB, 100 * GiB, "tcg");
  add_host (hosts, "host1", PROTO_HOST_UP, 8, 2 * GiB, 100 * GiB, "tcg");
  add_vm (vms, "fat", "host1", "running", 1, 2 * GiB - 256 * MiB - 200 * MiB,
          0);

  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_cmpstr (error->message, ==,
                   "no host can run VM 'x': host1: not enough memory "
                   "(need 1.0 GiB, 200 MiB free); host2: down");
  g_clear_error (&error);

  /* No hosts at all. */
  g_ptr_array_set_size (hosts, 0);
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_cmpstr (error->message, ==,
                   "no host can run VM 'x': no hosts are registered");
}

static void
test_creating_counts (void)
{
  g_autoptr (GPtrArray) hosts = new_hosts ();
  g_autoptr (GPtrArray) vms = new_vms ();
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = make_spec ("n", 1, GiB, 0, "");
  g_autofree char *chosen = NULL;

  /* Room for exactly one 1 GiB VM. */
  add_host (hosts, "h1", PROTO_HOST_UP, 8, GiB + 256 * MiB, 100 * GiB, "tcg");
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);

  /* Once that one is being created, a second does not fit... */
  add_vm (vms, "first", "h1", PROTO_VM_CREATING, 1, GiB, 0);
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_clear_error (&error);

  /* ...while a missing VM holds nothing. */
  sched_vm_set_state (vms->pdata[0], PROTO_VM_MISSING);
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
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
  return g_test_run ();
}
