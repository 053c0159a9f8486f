/* The agent's bridge discovery (issue 13) on a fake sysfs tree and with a
 * fake ovs-vsctl: which interfaces are bridges, of which kind, names
 * checked, each name once, the count capped, and a missing or failing
 * ovs-vsctl meaning no OVS bridges, never an error. */
#include "agent-private.h"
#include "test-support.h"

#include <glib/gstdio.h>
#include <string.h>

/* Makes ROOT/class/net/NAME, with a bridge directory if BRIDGE. */
static void
add_iface (const char *root, const char *name, gboolean bridge)
{
  g_autofree char *dir = g_build_filename (root, "class", "net", name,
                                           bridge ? "bridge" : "", NULL);

  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
}

/* An executable script at ROOT/NAME printing OUT and exiting with RC. */
static char *
fake_vsctl (const char *root, const char *name, const char *out, int rc)
{
  char *path = g_build_filename (root, name, NULL);
  g_autofree char *text = g_strdup_printf (
      "#!/bin/sh\n"
      "[ \"$1\" = --timeout=5 ] && [ \"$2\" = list-br ] || exit 3\n"
      "printf '%%s' '%s'\nexit %d\n",
      out, rc);
  g_autoptr (GError) error = NULL;

  g_assert_true (g_file_set_contents (path, text, -1, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (path, 0755), ==, 0);
  return path;
}

static void
free_bridges (Drover__V1__HostBridge **list)
{
  for (gsize i = 0; list[i] != NULL; i++)
    proto_msg_free (list[i]);
  g_free (list);
}

static void
test_sysfs (void)
{
  g_autofree char *root = test_tmp_dir_new ("drover-bridges-XXXXXX");
  Drover__V1__HostBridge **list;
  gsize n = 99;

  add_iface (root, "lo", FALSE);
  add_iface (root, "eth0", FALSE);
  add_iface (root, "virbr0", TRUE);
  add_iface (root, "br0", TRUE);
  add_iface (root, "abcdefghijklmnop", TRUE); /* 16: not a Linux name */
  add_iface (root, "br:1", TRUE);
  list = agent_bridges_collect (root, "", &n);
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmpstr (list[0]->name, ==, "br0");
  g_assert_cmpstr (list[0]->kind, ==, "linux");
  g_assert_cmpstr (list[1]->name, ==, "virbr0");
  g_assert_null (list[2]);
  free_bridges (list);

  /* No sysfs at all: none. */
  {
    g_autofree char *none = g_build_filename (root, "nowhere", NULL);

    list = agent_bridges_collect (none, "", &n);
    g_assert_cmpuint (n, ==, 0);
    g_assert_null (list[0]);
    free_bridges (list);
  }
  test_tmp_dir_remove (root);
}

static void
test_ovs (void)
{
  g_autofree char *root = test_tmp_dir_new ("drover-bridges-XXXXXX");
  g_autofree char *ok = NULL;
  g_autofree char *bad = NULL;
  g_autofree char *missing = g_build_filename (root, "no-vsctl", NULL);
  Drover__V1__HostBridge **list;
  gsize n = 0;

  add_iface (root, "br0", TRUE);
  /* An OVS bridge shows in class/net too, without a bridge directory. */
  add_iface (root, "ovsbr", FALSE);
  ok = fake_vsctl (root, "vsctl", "ovsbr\nint-br\n../x\n\nbr0\n", 0);
  bad = fake_vsctl (root, "vsctl-bad", "ovsbr\n", 1);

  list = agent_bridges_collect (root, ok, &n);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmpstr (list[0]->name, ==, "ovsbr");
  g_assert_cmpstr (list[0]->kind, ==, "ovs");
  g_assert_cmpstr (list[1]->name, ==, "int-br");
  g_assert_cmpstr (list[1]->kind, ==, "ovs");
  /* br0 is listed once, as OVS says (OVS answered first). */
  g_assert_cmpstr (list[2]->name, ==, "br0");
  g_assert_cmpstr (list[2]->kind, ==, "ovs");
  free_bridges (list);

  list = agent_bridges_collect (root, bad, &n);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpstr (list[0]->kind, ==, "linux");
  free_bridges (list);
  list = agent_bridges_collect (root, missing, &n);
  g_assert_cmpuint (n, ==, 1);
  free_bridges (list);
  test_tmp_dir_remove (root);
}

/* More bridges than a report may carry: the first PROTO_HOST_MAX_BRIDGES
 * by name. */
static void
test_cap (void)
{
  g_autofree char *root = test_tmp_dir_new ("drover-bridges-XXXXXX");
  Drover__V1__HostBridge **list;
  gsize n = 0;

  for (int i = 0; i < PROTO_HOST_MAX_BRIDGES + 10; i++)
    {
      g_autofree char *name = g_strdup_printf ("br%04d", i);

      add_iface (root, name, TRUE);
    }
  list = agent_bridges_collect (root, "", &n);
  g_assert_cmpuint (n, ==, PROTO_HOST_MAX_BRIDGES);
  g_assert_cmpstr (list[0]->name, ==, "br0000");
  free_bridges (list);
  test_tmp_dir_remove (root);
}

static void
test_name_ok (void)
{
  g_assert_true (agent_bridge_name_ok ("br-lan.10"));
  g_assert_true (agent_bridge_name_ok ("abcdefghijklmno"));
  g_assert_false (agent_bridge_name_ok (""));
  g_assert_false (agent_bridge_name_ok ("."));
  g_assert_false (agent_bridge_name_ok (".."));
  g_assert_false (agent_bridge_name_ok ("a/b"));
  g_assert_false (agent_bridge_name_ok ("a b"));
  g_assert_false (agent_bridge_name_ok ("abcdefghijklmnop"));
}

/* ovs-vsctl from PATH (the product's path): not run without ovsdb's
 * socket (OVS_RUNDIR/db.sock); its answer is kept, asked again after
 * agent_bridges_ovs_forget; a quick failure is not kept. A fake
 * ovs-vsctl counts its runs in ROOT/runs and prints ROOT/names. */
static void
test_ovs_cache (void)
{
  g_autofree char *root = test_tmp_dir_new ("drover-bridges-XXXXXX");
  g_autofree char *bin = g_build_filename (root, "bin", NULL);
  g_autofree char *vsctl = g_build_filename (bin, "ovs-vsctl", NULL);
  g_autofree char *names = g_build_filename (root, "names", NULL);
  g_autofree char *runs = g_build_filename (root, "runs", NULL);
  g_autofree char *rc = g_build_filename (root, "rc", NULL);
  g_autofree char *old_path = g_strdup (g_getenv ("PATH"));
  g_autofree char *sock = g_build_filename (root, "db.sock", NULL);
  g_autofree char *script = g_strdup_printf (
      "#!/bin/sh\n"
      "echo x >> '%s'\n"
      "[ \"$1\" = --timeout=5 ] && [ \"$2\" = list-br ] || exit 3\n"
      "cat '%s'\nexit $(cat '%s')\n",
      runs, names, rc);
  g_autofree char *count = NULL;
  Drover__V1__HostBridge **list;
  gsize n = 0;

  g_assert_cmpint (g_mkdir_with_parents (bin, 0755), ==, 0);
  g_assert_true (g_file_set_contents (vsctl, script, -1, NULL));
  g_assert_cmpint (g_chmod (vsctl, 0755), ==, 0);
  g_assert_true (g_file_set_contents (names, "ovsa\n", -1, NULL));
  g_assert_true (g_file_set_contents (rc, "0", -1, NULL));
  {
    g_autofree char *path
        = g_strconcat (bin, ":", old_path ? old_path : "/usr/bin:/bin", NULL);

    g_setenv ("PATH", path, TRUE);
  }
  agent_bridges_ovs_forget ();
  g_setenv ("OVS_RUNDIR", root, TRUE);

  /* No ovsdb socket: ovs-vsctl is not run. */
  list = agent_bridges_collect (root, NULL, &n);
  g_assert_cmpuint (n, ==, 0);
  free_bridges (list);
  g_assert_false (g_file_test (runs, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_set_contents (sock, "", -1, NULL));

  list = agent_bridges_collect (root, NULL, &n);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpstr (list[0]->name, ==, "ovsa");
  free_bridges (list);
  /* Kept: a new bridge is not seen, ovs-vsctl not run again. */
  g_assert_true (g_file_set_contents (names, "ovsa\novsb\n", -1, NULL));
  list = agent_bridges_collect (root, NULL, &n);
  g_assert_cmpuint (n, ==, 1);
  free_bridges (list);
  g_assert_true (g_file_get_contents (runs, &count, NULL, NULL));
  g_assert_cmpstr (count, ==, "x\n");
  g_clear_pointer (&count, g_free);
  /* Forgotten: asked again. */
  agent_bridges_ovs_forget ();
  list = agent_bridges_collect (root, NULL, &n);
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmpstr (list[1]->name, ==, "ovsb");
  free_bridges (list);
  /* A quick failure: no OVS bridges, and asked again each time. */
  agent_bridges_ovs_forget ();
  g_assert_true (g_file_set_contents (rc, "1", -1, NULL));
  for (int i = 0; i < 2; i++)
    {
      list = agent_bridges_collect (root, NULL, &n);
      g_assert_cmpuint (n, ==, 0);
      free_bridges (list);
    }
  g_assert_true (g_file_get_contents (runs, &count, NULL, NULL));
  g_assert_cmpstr (count, ==, "x\nx\nx\nx\n");
  agent_bridges_ovs_forget ();
  g_unsetenv ("OVS_RUNDIR");
  g_setenv ("PATH", old_path ? old_path : "/usr/bin:/bin", TRUE);
  test_tmp_dir_remove (root);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent-bridges/sysfs", test_sysfs);
  g_test_add_func ("/agent-bridges/ovs", test_ovs);
  g_test_add_func ("/agent-bridges/cap", test_cap);
  g_test_add_func ("/agent-bridges/ovs-cache", test_ovs_cache);
  g_test_add_func ("/agent-bridges/name-ok", test_name_ok);
  return g_test_run ();
}
