/* Networks (issue 13): the checks of a network and of a host's bridges,
 * which hosts can offer a network, the placement filter, and the store's
 * upgrade from schema 7 (no networks table) that keeps every row. */
#include "sched-networks.h"
#include "test-sched.h"
#include "test-support.h"

#include <sqlite3.h>
#include <string.h>

static const SchedPolicy policy = {
  .cpu_overcommit = 4.0,
  .memory_reserve = 256 * MiB,
};

static Drover__V1__Network
network (const char *name, const char *bridge, guint32 vlan, guint32 mtu)
{
  Drover__V1__Network net = DROVER__V1__NETWORK__INIT;

  net.name = (char *)name;
  net.bridge = (char *)bridge;
  net.vlan = vlan;
  net.mtu = mtu;
  return net;
}

static void
assert_invalid (Drover__V1__Network net, const char *part)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Network) out = sched_network_check (&net, &error);

  g_assert_null (out);
  g_assert_nonnull (error);
  if (strstr (error->message, part) == NULL)
    g_error ("'%s' does not say '%s'", error->message, part);
}

static void
test_check (void)
{
  g_autoptr (GError) error = NULL;
  Drover__V1__Network in = network ("lan-1", "br0", 4094, 9000);
  g_autoptr (Drover__V1__Network) out = NULL;

  in.created_ms = 77;
  out = sched_network_check (&in, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (out->name, ==, "lan-1");
  g_assert_cmpstr (out->bridge, ==, "br0");
  g_assert_cmpuint (out->vlan, ==, 4094);
  g_assert_cmpuint (out->mtu, ==, 9000);
  g_assert_cmpint (out->created_ms, ==, 0);
  g_clear_pointer (&out, proto_msg_free);
  in = network ("x", "abcdefghijklmno", 1, 68);
  out = sched_network_check (&in, &error);
  g_assert_no_error (error);

  assert_invalid (network ("Bad", "br0", 0, 0), "network");
  assert_invalid (network ("", "br0", 0, 0), "network");
  assert_invalid (network ("a/b", "br0", 0, 0), "network");
  assert_invalid (network ("lan", "a/b", 0, 0), "no '/'");
  assert_invalid (network ("lan", "", 0, 0), "1-15");
  assert_invalid (network ("lan", "abcdefghijklmnop", 0, 0), "1-15");
  assert_invalid (network ("lan", ".", 0, 0), "not a bridge name");
  assert_invalid (network ("lan", "..", 0, 0), "not a bridge name");
  assert_invalid (network ("lan", "br 0", 0, 0), "whitespace");
  assert_invalid (network ("lan", "br\t0", 0, 0), "whitespace");
  assert_invalid (network ("lan", "br0\xc3\xa9", 0, 0), "non-printable");
  assert_invalid (network ("lan", "br0", 4095, 0), "VLAN 4095");
  assert_invalid (network ("lan", "br0", 5000, 0), "VLAN 5000");
  assert_invalid (network ("lan", "br0", 0, 67), "MTU 67");
  assert_invalid (network ("lan", "br0", 0, 65536), "MTU 65536");
}

/* A host NAME, up, with BRIDGES (name, kind pairs ended by NULL). */
static void
add_host (GPtrArray *hosts, const char *name, const char *const *bridges)
{
  Drover__V1__HostInfo info
      = test_host_info (name, 8, 8 * GiB, 100 * GiB, PROTO_ACCEL_TCG);
  Drover__V1__HostBridge br[8];
  Drover__V1__HostBridge *list[8];
  gsize n = 0;

  for (; bridges[2 * n] != NULL; n++)
    {
      drover__v1__host_bridge__init (&br[n]);
      br[n].name = (char *)bridges[2 * n];
      br[n].kind = (char *)bridges[2 * n + 1];
      list[n] = &br[n];
    }
  info.bridges = list;
  info.n_bridges = n;
  g_ptr_array_add (hosts, sched_host_new (&info, PROTO_HOST_UP, 0));
}

static void
test_host_bridges_check (void)
{
  Drover__V1__HostInfo info = test_host_info ("h", 1, GiB, GiB, "tcg");
  Drover__V1__HostBridge a = DROVER__V1__HOST_BRIDGE__INIT;
  Drover__V1__HostBridge b = DROVER__V1__HOST_BRIDGE__INIT;
  Drover__V1__HostBridge *list[] = { &a, &b };
  g_autoptr (GError) error = NULL;

  a.name = (char *)"br0";
  a.kind = (char *)"linux";
  b.name = (char *)"ovs0";
  b.kind = (char *)"ovs";
  info.bridges = list;
  info.n_bridges = 2;
  g_assert_true (sched_host_bridges_check (&info, &error));
  g_assert_no_error (error);
  b.name = (char *)"br0";
  g_assert_false (sched_host_bridges_check (&info, &error));
  g_assert_nonnull (strstr (error->message, "twice"));
  g_clear_error (&error);
  b.name = (char *)"ovs0";
  b.kind = (char *)"LINUX";
  g_assert_false (sched_host_bridges_check (&info, &error));
  g_clear_error (&error);
  b.kind = (char *)"ovs";
  a.name = (char *)"../x";
  g_assert_false (sched_host_bridges_check (&info, &error));
  g_clear_error (&error);
  a.name = (char *)"br0";
  info.n_bridges = PROTO_HOST_MAX_BRIDGES + 1;
  g_assert_false (sched_host_bridges_check (&info, &error));
  g_assert_nonnull (strstr (error->message, "at most"));
}

/* Which hosts have a network: any bridge of its name, and for a VLAN only
 * an Open vSwitch one; the hosts that lack it are listed. */
static void
test_host_has (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  Drover__V1__Network plain = network ("plain", "br0", 0, 0);
  Drover__V1__Network tagged = network ("tagged", "br0", 10, 0);
  g_autoptr (Drover__V1__Network) copy = NULL;
  g_auto (GStrv) lacking = NULL;

  add_host (hosts, "h1", (const char *[]){ "br0", "linux", NULL });
  add_host (hosts, "h2", (const char *[]){ "br0", "ovs", NULL });
  add_host (hosts, "h3", (const char *[]){ "br1", "linux", NULL });
  g_assert_true (sched_networks_host_has (hosts->pdata[0], &plain));
  g_assert_true (sched_networks_host_has (hosts->pdata[1], &plain));
  g_assert_false (sched_networks_host_has (hosts->pdata[2], &plain));
  g_assert_false (sched_networks_host_has (hosts->pdata[0], &tagged));
  g_assert_true (sched_networks_host_has (hosts->pdata[1], &tagged));
  g_assert_false (sched_networks_host_has (hosts->pdata[2], &tagged));

  copy = proto_msg_copy (&tagged.base);
  lacking = sched_network_fill_hosts (copy, hosts);
  g_assert_cmpuint (g_strv_length (lacking), ==, 2);
  g_assert_cmpstr (lacking[0], ==, "h1");
  g_assert_cmpstr (lacking[1], ==, "h3");
  g_assert_cmpuint (copy->n_hosts, ==, 3);
  g_assert_cmpstr (copy->hosts[0]->kind, ==, "linux");
  g_assert_false (copy->hosts[0]->usable);
  g_assert_cmpstr (copy->hosts[1]->kind, ==, "ovs");
  g_assert_true (copy->hosts[1]->usable);
  g_assert_cmpstr (copy->hosts[2]->kind, ==, "");
  /* Filled again: replaced, not appended. */
  g_strfreev (sched_network_fill_hosts (copy, hosts));
  g_assert_cmpuint (copy->n_hosts, ==, 3);
}

/* Placement puts a VM that needs networks only on hosts with every one of
 * them, says why not per host, and without networks is as before. */
static void
test_placement (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GPtrArray) nets = g_ptr_array_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("web", 1, GiB, 0, NULL);
  Drover__V1__Network front = network ("front", "br0", 0, 0);
  Drover__V1__Network back = network ("back", "ovs0", 20, 0);
  g_autoptr (GError) error = NULL;
  g_autofree char *chosen = NULL;

  /* h1 would win on free capacity (h2 and h3 run a VM each). */
  add_host (hosts, "h1", (const char *[]){ NULL });
  add_host (hosts, "h2",
            (const char *[]){ "br0", "linux", "ovs0", "linux", NULL });
  add_host (hosts, "h3",
            (const char *[]){ "br0", "linux", "ovs0", "ovs", NULL });
  test_sched_add_vm (vms, "x", "h2", "running", 1, GiB, 0);
  test_sched_add_vm (vms, "y", "h3", "running", 2, 2 * GiB, 0);

  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);
  chosen = sched_place_on_networks (&policy, hosts, vms, &spec, NULL, nets,
                                    &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);

  g_ptr_array_add (nets, &front);
  chosen = sched_place_on_networks (&policy, hosts, vms, &spec, NULL, nets,
                                    &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h2");
  g_clear_pointer (&chosen, g_free);

  g_ptr_array_add (nets, &back);
  chosen = sched_place_on_networks (&policy, hosts, vms, &spec, NULL, nets,
                                    &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h3");
  g_clear_pointer (&chosen, g_free);

  /* Pinned where a network is missing: refused, saying which. */
  chosen = sched_place_on_networks (&policy, hosts, vms, &spec, "h2", nets,
                                    &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
  g_assert_nonnull (strstr (error->message, "no Open vSwitch bridge"));
  g_clear_error (&error);

  /* Nowhere: each host's reason. */
  g_ptr_array_remove_index (hosts, 2);
  chosen = sched_place_on_networks (&policy, hosts, vms, &spec, NULL, nets,
                                    &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_nonnull (strstr (error->message, "h1: no bridge 'br0'"));
  g_assert_nonnull (strstr (error->message, "h2: bridge 'ovs0'"));
}

static void
exec_sql (const char *dir, const char *sql)
{
  g_autofree char *path = g_build_filename (dir, "drover.db", NULL);
  sqlite3 *db = NULL;
  char *msg = NULL;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  if (sqlite3_exec (db, sql, NULL, NULL, &msg) != SQLITE_OK)
    g_error ("%s: %s", sql, msg);
  sqlite3_close (db);
}

/* A schema 7 database (today's without the tables 8 and later add:
 * networks, schedule_vms, vm_nics) upgrades in place: its rows stay, the
 * networks and schedule_vms tables work. */
static void
test_store_upgrade (void)
{
  g_autofree char *dir = test_tmp_dir_new ("drover-sched-net-XXXXXX");
  g_autoptr (GError) error = NULL;
  SchedStore *store = sched_store_open_sqlite (dir, &error);
  Drover__V1__HostInfo info
      = test_host_info ("h1", 8, 8 * GiB, 100 * GiB, PROTO_ACCEL_TCG);
  Drover__V1__Schedule sched = DROVER__V1__SCHEDULE__INIT;
  Drover__V1__Network net = network ("lan", "br0", 7, 1500);
  g_autoptr (SchedHost) host = sched_host_new (&info, PROTO_HOST_UP, 5);
  g_autoptr (SchedScheduleRow) srow = NULL;
  g_autoptr (SchedNetworkRow) nrow = NULL;
  g_autoptr (GPtrArray) rows = NULL;

  g_assert_no_error (error);
  sched.name = (char *)"nightly";
  sched.action = (char *)"snapshot";
  sched.every_s = 3600;
  srow = sched_schedule_row_new (&sched);
  g_assert_true (sched_store_put_host (store, host, &error));
  g_assert_true (sched_store_put_schedule (store, srow, &error));
  g_assert_no_error (error);
  sched_store_close (store);
  exec_sql (dir, "DROP TABLE networks; DROP TABLE schedule_vms;"
                 " DROP TABLE vm_nics; ALTER TABLE vms DROP COLUMN labels;"
                 " PRAGMA user_version = 7;");

  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  g_clear_pointer (&host, sched_host_free);
  host = sched_store_get_host (store, "h1", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (host->info->cpus, ==, 8);
  g_clear_pointer (&srow, sched_schedule_row_free);
  srow = sched_store_get_schedule (store, "nightly", &error);
  g_assert_no_error (error);
  g_assert_cmpint (srow->spec->every_s, ==, 3600);
  rows = sched_store_list_networks (store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rows->len, ==, 0);

  nrow = sched_network_row_new (&net);
  g_assert_true (sched_store_put_network (store, nrow, &error));
  g_assert_no_error (error);
  {
    Drover__V1__ScheduleVm st = DROVER__V1__SCHEDULE_VM__INIT;
    g_autoptr (SchedScheduleVmRow) vrow = NULL;
    g_autoptr (GPtrArray) vrows = NULL;
    const SchedScheduleVmRow *got;

    st.schedule = (char *)"nightly";
    st.vm = (char *)"web-1";
    st.last_good = (char *)"web-1-20261205T010203Z-abcdef";
    st.last_good_ms = 1764896523000;
    st.failures_in_row = 2;
    vrow = sched_schedule_vm_row_new (&st);
    g_assert_cmpstr (vrow->key, ==, "nightly/web-1");
    g_assert_true (sched_store_put_schedule_vm (store, vrow, &error));
    g_assert_no_error (error);
    vrows = sched_store_list_schedule_vms (store, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (vrows->len, ==, 1);
    got = vrows->pdata[0];
    g_assert_cmpstr (got->state->last_good, ==, st.last_good);
    g_assert_cmpint (got->state->last_good_ms, ==, st.last_good_ms);
    g_assert_cmpuint (got->state->failures_in_row, ==, 2);
  }
  sched_store_close (store);

  /* Reopened at version 8: nothing to do, the network is there. */
  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  g_clear_pointer (&nrow, sched_network_row_free);
  nrow = sched_store_get_network (store, "lan", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (nrow->spec->bridge, ==, "br0");
  g_assert_cmpuint (nrow->spec->vlan, ==, 7);
  g_assert_cmpuint (nrow->spec->mtu, ==, 1500);
  g_assert_true (sched_store_delete_network (store, "lan", &error));
  g_clear_pointer (&nrow, sched_network_row_free);
  nrow = sched_store_get_network (store, "lan", &error);
  g_assert_null (nrow);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  sched_store_close (store);
  test_tmp_dir_remove (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-networks/check", test_check);
  g_test_add_func ("/sched-networks/host-bridges-check",
                   test_host_bridges_check);
  g_test_add_func ("/sched-networks/host-has", test_host_has);
  g_test_add_func ("/sched-networks/placement", test_placement);
  g_test_add_func ("/sched-networks/store-upgrade", test_store_upgrade);
  return g_test_run ();
}
