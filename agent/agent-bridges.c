/* The bridges of this host (issue 13), reported with the host's info each
 * report: Linux bridges are the interfaces under SYSFS/class/net that have
 * a "bridge" directory; Open vSwitch bridges are what `ovs-vsctl
 * list-br` prints, asked only when that program exists. Anything that
 * fails here (no sysfs, no OVS, a stuck ovsdb) means fewer bridges, never
 * an error: a host without bridges still runs VMs without networks.
 *
 * ovs-vsctl is a fork and a database round trip (up to its 5 s timeout
 * when ovsdb is stuck), and reports come every few seconds: on the
 * product's path (ovs-vsctl from PATH) its answer is kept for
 * OVS_CACHE_S seconds, and agent_bridges_ovs_forget drops it at once
 * (a NIC attach that finds a bridge missing). A quick failure (no ovsdb
 * at all) is not kept: OVS started after the agent is seen at the next
 * report. Without ovsdb's socket (OVS_RUNDIR/db.sock, where ovs-vsctl
 * looks by default) ovs-vsctl is not run at all: a fork per report on
 * every host that has OVS installed but not running was not free (it
 * slowed a sanitizer build's agents measurably). */
#include "agent-private.h"

#include <string.h>

#define OVS_VSCTL_TIMEOUT_S 5
#define OVS_CACHE_S 30
/* A failure that took at least this long (a timeout) is kept too. */
#define OVS_SLOW_FAILURE_US (G_USEC_PER_SEC / 2)

/* The last answer of ovs-vsctl from PATH: the bridge names (NULL: none
 * kept) and when they were asked, monotonic. */
static GMutex ovs_cache_lock;

/* The sysfs root when agent_bridges_collect gets none: /sys unless a
 * unit test set another (agent_bridges_set_sysfs_root). */
static char *sysfs_root;

void
agent_bridges_set_sysfs_root (const char *root)
{
  g_free (sysfs_root);
  sysfs_root = g_strdup (root);
}

static GStrv ovs_cache_names;
static gint64 ovs_cache_at;

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

/* The names OVS_VSCTL list-br prints (at most PROTO_HOST_MAX_BRIDGES
 * lines), or NULL when it cannot be run or fails. */
static GStrv
ovs_list (const char *ovs_vsctl)
{
  g_autofree char *timeout
      = g_strdup_printf ("--timeout=%d", OVS_VSCTL_TIMEOUT_S);
  const char *argv[] = { ovs_vsctl, timeout, "list-br", NULL };
  g_autofree char *stdout_buf = NULL;
  g_auto (GStrv) lines = NULL;
  g_autoptr (GStrvBuilder) names = g_strv_builder_new ();
  int status = 0;

  if (!g_spawn_sync (NULL, (char **)argv, NULL,
                     G_SPAWN_STDERR_TO_DEV_NULL | G_SPAWN_CLOEXEC_PIPES, NULL,
                     NULL, &stdout_buf, NULL, &status, NULL)
      || !g_spawn_check_wait_status (status, NULL) || stdout_buf == NULL)
    return NULL;
  lines = g_strsplit (stdout_buf, "\n", PROTO_HOST_MAX_BRIDGES + 1);
  for (guint i = 0; lines[i] != NULL && i < PROTO_HOST_MAX_BRIDGES; i++)
    {
      const char *name = g_strstrip (lines[i]);

      if (name[0] != '\0')
        g_strv_builder_add (names, name);
    }
  return g_strv_builder_end (names);
}

static void
add_ovs (GPtrArray *out, char *const *names)
{
  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    add (out, names[i], "ovs");
}

/* Whether ovsdb-server's default socket is there to be asked. */
static gboolean
ovsdb_socket_exists (void)
{
  const char *rundir = g_getenv ("OVS_RUNDIR");
  g_autofree char *sock = g_build_filename (
      rundir && rundir[0] ? rundir : "/var/run/openvswitch", "db.sock", NULL);

  return g_file_test (sock, G_FILE_TEST_EXISTS);
}

/* ovs-vsctl from PATH, through the cache. */
static void
collect_ovs_cached (GPtrArray *out, const char *ovs_vsctl)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&ovs_cache_lock);
  gint64 now = g_get_monotonic_time ();

  if (ovs_cache_at == 0
      || now - ovs_cache_at >= (gint64)OVS_CACHE_S * G_USEC_PER_SEC)
    {
      g_auto (GStrv) names = ovs_list (ovs_vsctl);
      gint64 after = g_get_monotonic_time ();

      g_strfreev (ovs_cache_names);
      ovs_cache_names = NULL;
      ovs_cache_at = 0;
      if (names != NULL || after - now >= OVS_SLOW_FAILURE_US)
        {
          ovs_cache_names = g_steal_pointer (&names);
          ovs_cache_at = MAX (after, 1);
        }
      else
        return;
    }
  add_ovs (out, ovs_cache_names);
}

void
agent_bridges_ovs_forget (void)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&ovs_cache_lock);

  g_strfreev (ovs_cache_names);
  ovs_cache_names = NULL;
  ovs_cache_at = 0;
}

Drover__V1__HostBridge **
agent_bridges_collect (const char *sysfs, const char *ovs_vsctl, gsize *n)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new ();
  g_autofree char *found = NULL;

  /* Open vSwitch first: its bridges also show under class/net, though
   * without a "bridge" directory, and a name is one kind only. */
  if (ovs_vsctl == NULL)
    {
      /* The product's path: cached. */
      found = g_find_program_in_path ("ovs-vsctl");
      if (found != NULL && ovsdb_socket_exists ())
        collect_ovs_cached (out, found);
    }
  else if (ovs_vsctl[0] != '\0'
           && g_file_test (ovs_vsctl, G_FILE_TEST_IS_EXECUTABLE))
    {
      g_auto (GStrv) names = ovs_list (ovs_vsctl);

      add_ovs (out, names);
    }
  collect_linux (out, sysfs ? sysfs : sysfs_root ? sysfs_root : "/sys");
  *n = out->len;
  g_ptr_array_add (out, NULL);
  return (Drover__V1__HostBridge **)g_ptr_array_free (g_steal_pointer (&out),
                                                      FALSE);
}
