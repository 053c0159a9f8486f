/* The balancer's inputs, pure: the load window fed with synthetic reports
 * (a spike does not move the average, a sustained load does, whatever the
 * report interval), the cluster a tick plans on (which VMs count, which
 * may move and why not) and the setting that keeps the balancer's mode
 * across restarts. */
#include "test-sched.h"

#include "sched-balancer.h"
#include "sched-networks.h"

#include <string.h>

#define WINDOW_MS (5 * 60 * 1000)

/* Feeds host H (CPUS) reports every STEP_MS from *NOW_MS for DURATION_MS,
 * its one VM "v" using CORES; *CPU_NS is the VM's CPU time so far. */
static void
feed (SchedLoad *load, const char *h, guint cpus, gint64 *now_ms,
      gint64 step_ms, gint64 duration_ms, double cores, guint64 *cpu_ns)
{
  Drover__V1__HostInfo info = test_host_info (h, cpus, 8 * GiB, 0, "tcg");
  Drover__V1__VmStatus st = DROVER__V1__VM_STATUS__INIT;
  Drover__V1__VmStatus *vms[] = { &st };

  info.memory_free = 6 * GiB;
  st.name = (char *)"v";
  st.memory_rss = 100 * MiB;
  for (gint64 t = 0; t < duration_ms; t += step_ms)
    {
      *now_ms += step_ms;
      *cpu_ns += (guint64)(cores * step_ms * 1e6);
      st.cpu_time_ns = *cpu_ns;
      st.cpu_percent = cores * 100;
      sched_load_report (load, *now_ms, &info, vms, 1);
    }
}

static double
vm_cores (SchedLoad *load)
{
  double cores = -1;

  g_assert_true (sched_load_vm (load, "v", &cores, NULL));
  return cores;
}

static void
test_spike (void)
{
  g_autoptr (SchedLoad) load = sched_load_new (WINDOW_MS);
  gint64 now = 1000000;
  guint64 ns = 0;
  double host = 0;
  guint64 used = 0, rss = 0;

  g_assert_false (sched_load_vm (load, "v", NULL, NULL));
  feed (load, "h1", 2, &now, 1000, 20 * 60 * 1000, 1.0, &ns);
  g_assert_cmpfloat_with_epsilon (vm_cores (load), 1.0, 0.01);
  g_assert_true (sched_load_host (load, "h1", &host, &used));
  g_assert_cmpfloat_with_epsilon (host, 0.5, 0.01);
  g_assert_cmpuint (used, ==, 2 * GiB);
  g_assert_true (sched_load_vm (load, "v", NULL, &rss));
  g_assert_cmpuint (rss, ==, 100 * MiB);
  /* Ten seconds at four cores: the average hardly moves. */
  feed (load, "h1", 2, &now, 1000, 10 * 1000, 4.0, &ns);
  g_assert_cmpfloat (vm_cores (load), <, 1.15);
  /* Back to one core, then a sustained four: the average follows. */
  feed (load, "h1", 2, &now, 1000, 10 * 60 * 1000, 1.0, &ns);
  feed (load, "h1", 2, &now, 1000, 25 * 60 * 1000, 4.0, &ns);
  g_assert_cmpfloat_with_epsilon (vm_cores (load), 4.0, 0.05);
  g_assert_true (sched_load_host (load, "h1", &host, NULL));
  g_assert_cmpfloat_with_epsilon (host, 2.0, 0.03);
}

/* The same load reported every second or every 10 s averages the same. */
static void
test_interval (void)
{
  g_autoptr (SchedLoad) fast = sched_load_new (WINDOW_MS);
  g_autoptr (SchedLoad) slow = sched_load_new (WINDOW_MS);
  gint64 t1 = 0, t2 = 0;
  guint64 n1 = 0, n2 = 0;

  feed (fast, "h1", 4, &t1, 1000, 60 * 1000, 0.5, &n1);
  feed (slow, "h1", 4, &t2, 10000, 60 * 1000, 0.5, &n2);
  feed (fast, "h1", 4, &t1, 1000, 3 * 60 * 1000, 2.0, &n1);
  feed (slow, "h1", 4, &t2, 10000, 3 * 60 * 1000, 2.0, &n2);
  g_assert_cmpfloat_with_epsilon (vm_cores (fast), vm_cores (slow), 0.05);
  /* Three minutes of a five-minute window: 0.5 + 1.5 (1 - e^-0.6). */
  g_assert_cmpfloat_with_epsilon (vm_cores (fast), 1.177, 0.01);
}

/* A first sight or a restarted guest (CPU time back to ~0): the agent's
 * cpu_percent, not a huge or negative delta. */
static void
test_first_and_restart (void)
{
  g_autoptr (SchedLoad) load = sched_load_new (1000);
  Drover__V1__HostInfo info = test_host_info ("h1", 2, 8 * GiB, 0, "tcg");
  Drover__V1__VmStatus st = DROVER__V1__VM_STATUS__INIT;
  Drover__V1__VmStatus *vms[] = { &st };

  st.name = (char *)"v";
  st.cpu_time_ns = 500ull * 1000000000;
  st.cpu_percent = 30;
  sched_load_report (load, 1000, &info, vms, 1);
  g_assert_cmpfloat_with_epsilon (vm_cores (load), 0.3, 1e-9);
  st.cpu_time_ns = 1000000; /* restarted */
  st.cpu_percent = 30;
  sched_load_report (load, 1000000, &info, vms, 1);
  g_assert_cmpfloat_with_epsilon (vm_cores (load), 0.3, 1e-9);
  /* Not reported for a window: forgotten. */
  sched_load_report (load, 1000000 + 10 * 1000, &info, NULL, 0);
  g_assert_false (sched_load_vm (load, "v", NULL, NULL));
}

static void
add_job (GPtrArray *jobs, const char *kind, const char *vm, const char *state,
         gint64 created_ms)
{
  SchedJob *job = sched_job_new (kind, vm, state, created_ms);

  g_ptr_array_add (jobs, job);
}

static const SchedBalanceVm *
find_vm (const SchedBalanceCluster *c, const char *name, const char *host)
{
  for (guint i = 0; i < c->n_vms; i++)
    if (strcmp (c->vms[i].name, name) == 0
        && (host == NULL || strcmp (c->hosts[c->vms[i].host].name, host) == 0))
      return &c->vms[i];
  return NULL;
}

/* 2x CPU overcommit, 1 GiB reserve, 1.5x memory overcommit. */
static const SchedPolicy policy = { .cpu_overcommit = 2.0,
                                    .memory_reserve = GiB,
                                    .memory_overcommit = 1.5 };

static void
test_candidates (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GPtrArray) jobs
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_job_free);
  g_autoptr (GHashTable) moved
      = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  g_autoptr (GHashTable) why = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (SchedLoad) load = sched_load_new (WINDOW_MS);
  const gint64 now = 100 * 60 * 1000, min = 60 * 1000;
  SchedBalanceInput in
      = { &policy, hosts, vms, jobs, load, moved, now, 10 * min };
  SchedBalanceCluster c;
  gint64 when = now - min;
  guint64 ns = 0;
  gint64 t = now - 10 * min;

  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 4, 9 * GiB, 0, "tcg");
  test_sched_add_host (hosts, "h2", PROTO_HOST_UP, 4, 9 * GiB, 0, "tcg");
  test_sched_add_host (hosts, "h3", PROTO_HOST_DOWN, 4, 9 * GiB, 0, "tcg");
  sched_host_set_maintenance (hosts->pdata[1], SCHED_HOST_DRAINING);
  test_sched_add_vm (vms, "v", "h1", PROTO_VM_RUNNING, 1, GiB, 0);
  test_sched_add_vm (vms, "snap", "h1", PROTO_VM_RUNNING, 1, GiB, 0);
  test_sched_add_vm (vms, "recent", "h1", PROTO_VM_RUNNING, 1, GiB, 0);
  test_sched_add_vm (vms, "migrated", "h1", PROTO_VM_RUNNING, 1, GiB, 0);
  test_sched_add_vm (vms, "old", "h1", PROTO_VM_RUNNING, 1, GiB, 0);
  test_sched_add_vm (vms, "off", "h1", PROTO_VM_SHUTOFF, 1, GiB, 0);
  test_sched_add_vm (vms, "paused", "h1", PROTO_VM_PAUSED, 1, GiB, 0);
  test_sched_add_vm (vms, "new", "h1", PROTO_VM_CREATING, 2, GiB, 0);
  test_sched_add_vm (vms, "drained", "h2", PROTO_VM_RUNNING, 1, GiB, 0);
  test_sched_add_vm (vms, "gone", "h3", PROTO_VM_RUNNING, 1, GiB, 0);
  /* Migrating from h1, and its reservation on the destination (which
   * comes after its row, as the migrator appends it). */
  test_sched_add_vm (vms, "moving", "h1", PROTO_VM_RUNNING, 1, GiB, 0);
  test_sched_add_vm (vms, "moving", "h2", PROTO_VM_CREATING, 1, GiB, 0);
  add_job (jobs, PROTO_JOB_KIND_MIGRATE, "moving", PROTO_JOB_RUNNING,
           now - 20 * min);
  add_job (jobs, PROTO_JOB_KIND_SNAPSHOT_CREATE, "snap", PROTO_JOB_RUNNING,
           now - min);
  add_job (jobs, PROTO_JOB_KIND_MIGRATE, "migrated", PROTO_JOB_DONE,
           now - 2 * min);
  add_job (jobs, PROTO_JOB_KIND_MIGRATE, "old", PROTO_JOB_DONE, now - 30 * min);
  g_hash_table_insert (moved, (gpointer) "recent",
                       g_memdup2 (&when, sizeof when));
  feed (load, "h1", 4, &t, 1000, 10 * min, 1.5, &ns);

  sched_balance_cluster_build (&in, &c, why);
  g_assert_cmpuint (c.n_hosts, ==, 2);
  g_assert_cmpstr (c.hosts[0].name, ==, "h1");
  g_assert_true (c.hosts[0].in_service);
  g_assert_false (c.hosts[1].in_service);
  g_assert_cmpfloat (c.hosts[0].vcpu_cap, ==, 8);
  g_assert_cmpuint (c.hosts[0].memory_cap, ==, 12 * GiB);
  /* Counted: what holds capacity on an up host; not "off" nor "gone". */
  g_assert_cmpuint (c.n_vms, ==, 10);
  g_assert_null (find_vm (&c, "off", NULL));
  g_assert_null (find_vm (&c, "gone", NULL));
  g_assert_true (find_vm (&c, "v", "h1")->movable);
  g_assert_true (find_vm (&c, "old", "h1")->movable);
  g_assert_cmpfloat_with_epsilon (find_vm (&c, "v", NULL)->cpu_cores, 1.5,
                                  0.01);
  g_assert_cmpuint (find_vm (&c, "v", NULL)->memory_used, ==, 100 * MiB);
  /* Not reported yet: all its memory counts. */
  g_assert_cmpuint (find_vm (&c, "old", NULL)->memory_used, ==, GiB);
  g_assert_cmpstr (g_hash_table_lookup (why, "snap"), ==, "a job runs on it");
  g_assert_cmpstr (g_hash_table_lookup (why, "recent"), ==,
                   "cooling down after a move");
  g_assert_cmpstr (g_hash_table_lookup (why, "migrated"), ==,
                   "cooling down after a move");
  g_assert_cmpstr (g_hash_table_lookup (why, "paused"), ==, "not running");
  g_assert_cmpstr (g_hash_table_lookup (why, "new"), ==, "not running");
  g_assert_cmpstr (g_hash_table_lookup (why, "drained"), ==,
                   "its host is out of service");
  g_assert_false (find_vm (&c, "snap", NULL)->movable);
  g_assert_false (find_vm (&c, "drained", NULL)->movable);
  /* The VM's own row says why, not its reservation ("not running"). */
  g_assert_cmpstr (g_hash_table_lookup (why, "moving"), ==, "a job runs on it");
  g_assert_false (find_vm (&c, "moving", "h1")->movable);
  g_assert_false (find_vm (&c, "moving", "h2")->movable);
  g_assert_cmpuint (g_hash_table_size (why), ==, 7);
  sched_balance_cluster_clear (&c);

  /* Once the cool-down is over, they may move again. */
  in.now_ms = now + 10 * min;
  g_hash_table_remove_all (why);
  sched_balance_cluster_build (&in, &c, why);
  g_assert_true (find_vm (&c, "recent", NULL)->movable);
  g_assert_true (find_vm (&c, "migrated", NULL)->movable);
  sched_balance_cluster_clear (&c);
}

/* A host NAME, up, 4 CPUs, with bridge BRIDGE (NULL: none) of KIND. */
static void
add_bridged_host (GPtrArray *hosts, const char *name, const char *bridge,
                  const char *kind)
{
  Drover__V1__HostInfo info = test_host_info (name, 4, 9 * GiB, 0, "tcg");
  Drover__V1__HostBridge br = DROVER__V1__HOST_BRIDGE__INIT;
  Drover__V1__HostBridge *list[] = { &br };

  br.name = (char *)bridge;
  br.kind = (char *)kind;
  info.bridges = list;
  info.n_bridges = bridge != NULL ? 1 : 0;
  g_ptr_array_add (hosts, sched_host_new (&info, PROTO_HOST_UP, 0));
}

/* Gives VM one NIC on network NET (bridge BRIDGE, VLAN). */
static void
add_nic (SchedVm *vm, const char *net, const char *bridge, guint vlan)
{
  Drover__V1__VmNic nic = DROVER__V1__VM_NIC__INIT;

  nic.network = (char *)net;
  nic.bridge = (char *)bridge;
  nic.vlan = vlan;
  nic.mac = (char *)"02:44:52:00:00:01";
  vm->spec->nics = g_new0 (Drover__V1__VmNic *, 2);
  vm->spec->nics[0] = proto_msg_copy (&nic.base);
  vm->spec->n_nics = 1;
}

/* Networks (issue 13): the planner moves a VM with NICs only to hosts
 * that have its networks, as placement does. h1 is loaded, h2 idle
 * without the bridge, h3 has it (but as a Linux bridge: no VLANs), h4
 * idle with it: "web" goes to h4 or h3, never h2; "tagged" (a VLAN) only
 * to an Open vSwitch bridge, which no other host has: it stays. */
static void
test_networks (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (SchedLoad) load = sched_load_new (WINDOW_MS);
  g_autoptr (GArray) moves = NULL;
  const gint64 now = 100 * 60 * 1000, min = 60 * 1000;
  SchedBalanceInput in = { &policy, hosts, vms, NULL, load, NULL, now, min };
  SchedBalanceParams params;
  SchedBalanceCluster c;
  Drover__V1__VmStatus st = DROVER__V1__VM_STATUS__INIT;
  const SchedBalanceVm *web, *tagged, *plain;

  add_bridged_host (hosts, "h1", "ovs0", SCHED_NETWORK_KIND_OVS);
  add_bridged_host (hosts, "h2", NULL, NULL);
  add_bridged_host (hosts, "h3", "br0", SCHED_NETWORK_KIND_LINUX);
  add_bridged_host (hosts, "h4", "br0", SCHED_NETWORK_KIND_LINUX);
  test_sched_add_vm (vms, "web", "h1", PROTO_VM_RUNNING, 2, GiB, 0);
  test_sched_add_vm (vms, "tagged", "h1", PROTO_VM_RUNNING, 2, GiB, 0);
  test_sched_add_vm (vms, "plain", "h1", PROTO_VM_RUNNING, 2, GiB, 0);
  add_nic (vms->pdata[0], "lan", "br0", 0);
  add_nic (vms->pdata[1], "vlan12", "ovs0", 12);
  st.cpu_percent = 190;
  for (guint i = 0; i < vms->len; i++)
    sched_vm_set_status (vms->pdata[i], &st);

  sched_balance_cluster_build (&in, &c, NULL);
  g_assert_cmpuint (c.n_hosts, ==, 4);
  web = find_vm (&c, "web", NULL);
  tagged = find_vm (&c, "tagged", NULL);
  plain = find_vm (&c, "plain", NULL);
  g_assert_nonnull (web->hosts_ok);
  g_assert_false (web->hosts_ok[1]);
  g_assert_true (web->hosts_ok[2] && web->hosts_ok[3]);
  g_assert_nonnull (tagged->hosts_ok);
  g_assert_true (tagged->hosts_ok[0]);
  g_assert_false (tagged->hosts_ok[1] || tagged->hosts_ok[2]
                  || tagged->hosts_ok[3]);
  g_assert_null (plain->hosts_ok);

  sched_balance_params_init (&params);
  params.bandwidth = 1e9; /* busy guests: a fast link, so they converge */
  moves = sched_balance_plan (&c, &params, NULL);
  g_assert_cmpuint (moves->len, >=, 2);
  for (guint i = 0; i < moves->len; i++)
    {
      const SchedBalanceMove *m = &g_array_index (moves, SchedBalanceMove, i);
      const char *vm = c.vms[m->vm].name;

      g_assert_cmpstr (vm, !=, "tagged");
      if (strcmp (vm, "web") == 0)
        g_assert_cmpuint (m->to, !=, 1);
    }
  sched_balance_cluster_clear (&c);
}

static void
test_mode_setting (TestSchedStore *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *value = NULL;
  SchedBalanceMode mode = SCHED_BALANCE_AUTO;

  g_assert_true (sched_store_get_setting (f->store, SCHED_BALANCE_MODE_SETTING,
                                          &value, &error));
  g_assert_no_error (error);
  g_assert_null (value);
  g_assert_true (sched_store_put_setting (f->store, SCHED_BALANCE_MODE_SETTING,
                                          "recommend", &error));
  g_assert_true (sched_store_put_setting (f->store, SCHED_BALANCE_MODE_SETTING,
                                          "auto", &error));
  test_sched_store_restart (f);
  g_assert_true (sched_store_get_setting (f->store, SCHED_BALANCE_MODE_SETTING,
                                          &value, &error));
  g_assert_cmpstr (value, ==, "auto");
  g_assert_true (sched_balance_mode_parse ("off", &mode, &error));
  g_assert_cmpint (mode, ==, SCHED_BALANCE_OFF);
  g_assert_false (sched_balance_mode_parse ("on", &mode, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_assert_cmpint (mode, ==, SCHED_BALANCE_OFF);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched/load/spike", test_spike);
  g_test_add_func ("/sched/load/interval", test_interval);
  g_test_add_func ("/sched/load/first-and-restart", test_first_and_restart);
  g_test_add_func ("/sched/balancer/candidates", test_candidates);
  g_test_add_func ("/sched/balancer/networks", test_networks);
  TEST_SCHED_STORE_ADD ("/sched/balancer/mode-setting", test_mode_setting);
  return g_test_run ();
}
