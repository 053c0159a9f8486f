/* The bridges of this host (issue 13), reported with the host's info each
 * report: Linux bridges are the interfaces under SYSFS/class/net that have
 * a "bridge" directory; Open vSwitch bridges are what `ovs-vsctl
 * list-br` prints, asked only when that program exists. Anything that
 * fails here (no sysfs, no OVS, a stuck ovsdb) means fewer bridges, never
 * an error: a host without bridges still runs VMs without networks. */
#include "agent-private.h"

#include <string.h>

#define OVS_VSCTL_TIMEOUT_S 5

/* A name an interface may have and the scheduler accepts: 1-15 printable
 * ASCII characters but '/', ':' and space, not "." or "..". */
gboolean
agent_bridge_name_ok (const char *name)
{
  gsize len = strlen (name);

  if (len == 0 || len > PROTO_BRIDGE_NAME_MAX || strcmp (name, ".") == 0
      || strcmp (name, "..") == 0)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char)name[i];

      if (c == '/' || c == ':' || c <= ' ' || c >= 0x7f)
        return FALSE;
    }
  return TRUE;
}

static gboolean
already (GPtrArray *out, const char *name)
{
  for (guint i = 0; i < out->len; i++)
    if (strcmp (((Drover__V1__HostBridge *)out->pdata[i])->name, name) == 0)
      return TRUE;
  return FALSE;
}

/* Adds NAME of KIND to OUT unless it is no valid name, is there already
 * or OUT is full. */
static void
add (GPtrArray *out, const char *name, const char *kind)
{
  Drover__V1__HostBridge *br;

  if (out->len >= PROTO_HOST_MAX_BRIDGES || !agent_bridge_name_ok (name)
      || already (out, name))
    return;
  br = g_new0 (Drover__V1__HostBridge, 1);
  drover__v1__host_bridge__init (br);
  br->name = proto_msg_strdup (name);
  br->kind = proto_msg_strdup (kind);
  g_ptr_array_add (out, br);
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

static void
collect_linux (GPtrArray *out, const char *sysfs)
{
  g_autofree char *dir_path = g_build_filename (sysfs, "class", "net", NULL);
  g_autoptr (GDir) dir = g_dir_open (dir_path, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (dir == NULL)
    return;
  /* Bounded: a host with thousands of interfaces reports the first
   * bridges by name, never an unbounded list. */
  while ((name = g_dir_read_name (dir)) != NULL && names->len < 65536)
    {
      g_autofree char *bridge
          = g_build_filename (dir_path, name, "bridge", NULL);

      if (agent_bridge_name_ok (name)
          && g_file_test (bridge, G_FILE_TEST_IS_DIR))
        g_ptr_array_add (names, g_strdup (name));
    }
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    add (out, names->pdata[i], "linux");
}

static void
collect_ovs (GPtrArray *out, const char *ovs_vsctl)
{
  g_autofree char *timeout
      = g_strdup_printf ("--timeout=%d", OVS_VSCTL_TIMEOUT_S);
  const char *argv[] = { ovs_vsctl, timeout, "list-br", NULL };
  g_autofree char *stdout_buf = NULL;
  g_auto (GStrv) lines = NULL;
  int status = 0;

  if (!g_spawn_sync (NULL, (char **)argv, NULL,
                     G_SPAWN_STDERR_TO_DEV_NULL | G_SPAWN_CLOEXEC_PIPES, NULL,
                     NULL, &stdout_buf, NULL, &status, NULL)
      || !g_spawn_check_wait_status (status, NULL) || stdout_buf == NULL)
    return;
  lines = g_strsplit (stdout_buf, "\n", PROTO_HOST_MAX_BRIDGES + 1);
  for (guint i = 0; lines[i] != NULL && i < PROTO_HOST_MAX_BRIDGES; i++)
    add (out, g_strstrip (lines[i]), "ovs");
}

Drover__V1__HostBridge **
agent_bridges_collect (const char *sysfs, const char *ovs_vsctl, gsize *n)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new ();
  g_autofree char *found = NULL;

  /* Open vSwitch first: its bridges also show under class/net, though
   * without a "bridge" directory, and a name is one kind only. */
  if (ovs_vsctl == NULL)
    ovs_vsctl = found = g_find_program_in_path ("ovs-vsctl");
  if (ovs_vsctl != NULL && ovs_vsctl[0] != '\0'
      && g_file_test (ovs_vsctl, G_FILE_TEST_IS_EXECUTABLE))
    collect_ovs (out, ovs_vsctl);
  collect_linux (out, sysfs ? sysfs : "/sys");
  *n = out->len;
  g_ptr_array_add (out, NULL);
  return (Drover__V1__HostBridge **)g_ptr_array_free (g_steal_pointer (&out),
                                                      FALSE);
}
