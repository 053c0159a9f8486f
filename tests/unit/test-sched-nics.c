/* VM NICs in the scheduler (issue 13): filling a spec's NICs from the
 * networks, MAC checks and assignment (unique, 02:44:52, new ones for a
 * clone), the VMs on a network, and placement on the spec's networks. */
#include "sched-networks.h"
#include "sched-nics.h"
#include "test-sched.h"
#include "test-support.h"

#include <sqlite3.h>
#include <string.h>

static const SchedPolicy policy = {
  .cpu_overcommit = 4.0,
  .memory_reserve = 256 * MiB,
};

/* SPEC with NICs on NETS (NULL-ended), MACs MACS (NULL entries: none). */
static Drover__V1__VmSpec *
spec_with (const char *name, const char *const *nets, const char *const *macs)
{
  Drover__V1__VmSpec base = test_vm_spec (name, 1, GiB, 0, NULL);
  Drover__V1__VmSpec *spec = proto_msg_copy (&base.base);
  gsize n = g_strv_length ((char **)nets);

  spec->nics = g_new0 (Drover__V1__VmNic *, n + 1);
  for (gsize i = 0; i < n; i++)
    {
      Drover__V1__VmNic nic = DROVER__V1__VM_NIC__INIT;

      nic.network = (char *)nets[i];
      nic.mac = (char *)(macs && macs[i] ? macs[i] : "");
      nic.bridge = (char *)"evil/wire";
      nic.vlan = 99;
      spec->nics[i] = proto_msg_copy (&nic.base);
    }
  spec->n_nics = n;
  return spec;
}

static void
put_network (SchedStore *store, const char *name, const char *bridge,
             guint vlan, guint mtu)
{
  Drover__V1__Network net = DROVER__V1__NETWORK__INIT;
  g_autoptr (SchedNetworkRow) row = NULL;
  g_autoptr (GError) error = NULL;

  net.name = (char *)name;
  net.bridge = (char *)bridge;
  net.vlan = vlan;
  net.mtu = mtu;
  row = sched_network_row_new (&net);
  g_assert_true (sched_store_put_network (store, row, &error));
  g_assert_no_error (error);
}

static void
test_prepare (void)
{
  g_autofree char *dir = test_tmp_dir_new ("drover-sched-nics-XXXXXX");
  g_autoptr (GError) error = NULL;
  SchedStore *store = sched_store_open_sqlite (dir, &error);
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (Drover__V1__VmSpec) a = NULL;
  g_autoptr (Drover__V1__VmSpec) b = NULL;
  g_autoptr (Drover__V1__VmSpec) clone = NULL;
  g_autoptr (Drover__V1__VmSpec) bad = NULL;
  g_autofree char *users = NULL;

  g_assert_no_error (error);
  put_network (store, "lan", "br0", 0, 1400);
  put_network (store, "dmz", "ovs0", 12, 0);

  /* Given MACs are lower-cased; missing ones assigned; bridge, VLAN and
   * MTU from the network, whatever the wire said. */
  a = spec_with ("a", (const char *[]){ "lan", "dmz", NULL },
                 (const char *[]){ "02:AA:00:00:00:01", NULL });
  g_assert_true (sched_nics_prepare (store, a, vms, NULL, FALSE, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (a->nics[0]->mac, ==, "02:aa:00:00:00:01");
  g_assert_cmpstr (a->nics[0]->bridge, ==, "br0");
  g_assert_cmpuint (a->nics[0]->vlan, ==, 0);
  g_assert_cmpuint (a->nics[0]->mtu, ==, 1400);
  g_assert_true (g_str_has_prefix (a->nics[1]->mac, "02:44:52:"));
  g_assert_cmpuint (strlen (a->nics[1]->mac), ==, 17);
  g_assert_cmpstr (a->nics[1]->bridge, ==, "ovs0");
  g_assert_cmpuint (a->nics[1]->vlan, ==, 12);
  g_ptr_array_add (vms, sched_vm_new (a, "h1", "running", NULL, 0));

  /* A MAC in use, in any case, is refused, naming the VM. */
  b = spec_with ("b", (const char *[]){ "lan", NULL },
                 (const char *[]){ "02:aa:00:00:00:01", NULL });
  g_assert_false (sched_nics_prepare (store, b, vms, NULL, FALSE, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_EXISTS);
  g_assert_nonnull (strstr (error->message, "already used by VM 'a'"));
  g_clear_error (&error);
  /* ... but not against the VM itself (a hot-plug re-checks its NICs). */
  g_assert_true (sched_nics_prepare (store, b, vms, "a", FALSE, &error));
  g_assert_no_error (error);

  /* An unknown network. */
  bad = spec_with ("c", (const char *[]){ "lan", "nosuch", NULL }, NULL);
  g_assert_false (sched_nics_prepare (store, bad, vms, NULL, FALSE, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "no network named 'nosuch'"));
  g_clear_error (&error);

  /* A clone: same networks, new MACs. */
  clone = proto_msg_copy (&a->base);
  g_assert_true (sched_nics_prepare (store, clone, vms, NULL, TRUE, &error));
  g_assert_no_error (error);
  for (guint i = 0; i < 2; i++)
    {
      g_assert_cmpstr (clone->nics[i]->network, ==, a->nics[i]->network);
      g_assert_cmpstr (clone->nics[i]->mac, !=, a->nics[i]->mac);
      g_assert_null (sched_nics_mac_user (vms, clone->nics[i]->mac, NULL));
    }

  users = sched_nics_vms_on (vms, "dmz");
  g_assert_cmpstr (users, ==, "a");
  g_assert_null (sched_nics_vms_on (vms, "other"));
  sched_store_close (store);
  test_tmp_dir_remove (dir);
}

/* A fresh MAC is never one in use: with all but one of a tiny space
 * taken the generator still finds a free one or says it found none. */
static void
test_new_mac_unique (void)
{
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GHashTable) seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < 200; i++)
    {
      char mac[PROTO_MAC_TEXT_LEN + 1];
      g_autofree char *name = g_strdup_printf ("v%u", i);
      g_autoptr (Drover__V1__VmSpec) spec = NULL;

      g_assert_true (sched_nics_new_mac (vms, NULL, mac, &error));
      g_assert_false (g_hash_table_contains (seen, mac));
      g_hash_table_add (seen, g_strdup (mac));
      spec = spec_with (name, (const char *[]){ "lan", NULL },
                        (const char *[]){ mac, NULL });
      g_ptr_array_add (vms, sched_vm_new (spec, "h1", "running", NULL, 0));
    }
}

/* sched_place takes the networks from the spec's NICs. */
static void
test_place_from_spec (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (Drover__V1__VmSpec) spec
      = spec_with ("web", (const char *[]){ "lan", NULL }, NULL);
  Drover__V1__HostInfo i1 = test_host_info ("h1", 8, 8 * GiB, 100 * GiB, "tcg");
  Drover__V1__HostInfo i2 = test_host_info ("h2", 8, 8 * GiB, 100 * GiB, "tcg");
  Drover__V1__HostBridge br = DROVER__V1__HOST_BRIDGE__INIT;
  Drover__V1__HostBridge *list[1] = { &br };
  g_autoptr (GError) error = NULL;
  g_autofree char *chosen = NULL;

  br.name = (char *)"br0";
  br.kind = (char *)"linux";
  i2.bridges = list;
  i2.n_bridges = 1;
  g_ptr_array_add (hosts, sched_host_new (&i1, PROTO_HOST_UP, 0));
  g_ptr_array_add (hosts, sched_host_new (&i2, PROTO_HOST_UP, 0));
  g_free (spec->nics[0]->bridge);
  spec->nics[0]->bridge = g_strdup ("br0");
  spec->nics[0]->vlan = 0;
  chosen = sched_place (&policy, hosts, vms, spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h2");
  g_clear_pointer (&chosen, g_free);
  /* Pinned to a host without the bridge: FAILED_PRECONDITION naming the
   * network. */
  chosen = sched_place (&policy, hosts, vms, spec, "h1", &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
  g_assert_nonnull (strstr (error->message, "network lan"));
}

static gint64
sql_count (const char *dir, const char *sql)
{
  g_autofree char *path = g_build_filename (dir, "drover.db", NULL);
  sqlite3 *db = NULL;
  sqlite3_stmt *stmt = NULL;
  gint64 n;

  g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), ==,
                   SQLITE_OK);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  n = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  sqlite3_close (db);
  return n;
}

/* Schema 9: the vm_nics rows follow the VM's row; a MAC stored twice is
 * refused and changes nothing; a schema 8 database upgrades. */
static void
test_store_table (void)
{
  g_autofree char *dir = test_tmp_dir_new ("drover-sched-nics-XXXXXX");
  g_autoptr (GError) error = NULL;
  SchedStore *store = sched_store_open_sqlite (dir, &error);
  g_autoptr (Drover__V1__VmSpec) a = spec_with (
      "a", (const char *[]){ "lan", "dmz", NULL },
      (const char *[]){ "02:44:52:00:00:01", "02:44:52:00:00:02", NULL });
  g_autoptr (Drover__V1__VmSpec) b
      = spec_with ("b", (const char *[]){ "lan", NULL },
                   (const char *[]){ "02:44:52:00:00:02", NULL });
  g_autoptr (SchedVm) va = sched_vm_new (a, "h1", "running", NULL, 0);
  g_autoptr (SchedVm) vb = sched_vm_new (b, "h1", "running", NULL, 0);
  g_autoptr (SchedVm) got = NULL;
  gint64 version = 0;

  g_assert_no_error (error);
  g_assert_true (
      sched_store_sqlite_pragma (store, "user_version", &version, &error));
  g_assert_cmpint (version, >=, 10);
  g_assert_true (sched_store_put_vm (store, va, &error));
  g_assert_no_error (error);
  g_assert_cmpint (
      sql_count (dir, "SELECT count(*) FROM vm_nics WHERE vm = 'a'"), ==, 2);
  g_assert_false (sched_store_put_vm (store, vb, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  got = sched_store_get_vm (store, "b", &error);
  g_assert_null (got);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_clear_error (&error);
  /* Put again with one NIC: the rows follow. */
  va->spec->n_nics = 1;
  g_assert_true (sched_store_put_vm (store, va, &error));
  va->spec->n_nics = 2;
  g_assert_cmpint (sql_count (dir, "SELECT count(*) FROM vm_nics"), ==, 1);
  g_assert_true (sched_store_put_vm (store, vb, &error));
  g_assert_true (sched_store_delete_vm (store, "a", &error));
  g_assert_no_error (error);
  g_assert_cmpint (sql_count (dir, "SELECT count(*) FROM vm_nics"), ==, 1);
  sched_store_close (store);

  /* A schema 9 file (no vm_nics, no labels) upgrades in place. */
  {
    g_autofree char *path = g_build_filename (dir, "drover.db", NULL);
    sqlite3 *db = NULL;

    g_assert_cmpint (sqlite3_open (path, &db), ==, SQLITE_OK);
    g_assert_cmpint (sqlite3_exec (db,
                                   "DROP TABLE vm_nics; "
                                   "ALTER TABLE vms DROP COLUMN labels; "
                                   "PRAGMA user_version = 9;",
                                   NULL, NULL, NULL),
                     ==, SQLITE_OK);
    sqlite3_close (db);
  }
  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  g_clear_pointer (&got, sched_vm_free);
  got = sched_store_get_vm (store, "b", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (got->spec->n_nics, ==, 1);
  g_assert_true (sched_store_put_vm (store, got, &error));
  g_assert_cmpint (sql_count (dir, "SELECT count(*) FROM vm_nics"), ==, 1);
  sched_store_close (store);
  test_tmp_dir_remove (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-nics/prepare", test_prepare);
  g_test_add_func ("/sched-nics/new-mac-unique", test_new_mac_unique);
  g_test_add_func ("/sched-nics/place-from-spec", test_place_from_spec);
  g_test_add_func ("/sched-nics/store-table", test_store_table);
  return g_test_run ();
}
