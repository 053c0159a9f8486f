/* The disk images of this host (DATA/disks/NAME.qcow2) that no VM holds.
 *
 * Every file a later cleanup depends on is recorded before it is made:
 * PrepareIncoming writes DISK.incoming before it creates the empty image
 * an incoming migration fills, and the mark goes once the migration is
 * decided. An agent killed anywhere in between leaves either a mark
 * alone (removed here) or a marked image (removed when the VM did not
 * arrive, kept when it did). At start, with libvirt connected, the agent
 * also removes orphan images: those of VMs libvirt does not know here
 * (a CreateVm or a migration away cut short), since nothing else would,
 * and a VM of that name could never be made or migrated here again.
 */
#include "agent-private.h"

#include <glib/gstdio.h>
#include <string.h>

#include "stor.h"

#define DISK_SUFFIX ".qcow2"
#define MARK_SUFFIX ".qcow2.incoming"

char *
agent_disks_incoming_mark (const char *disk_path)
{
  return g_strconcat (disk_path, ".incoming", NULL);
}

/* TRUE when libvirt says it has no domain NAME (not when it cannot
 * tell). */
static gboolean
no_domain (virConnectPtr conn, const char *name, gboolean *persistent)
{
  g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);
  virErrorPtr err;

  if (dom)
    {
      *persistent = virDomainIsPersistent (dom) == 1;
      return FALSE;
    }
  *persistent = FALSE;
  err = virGetLastError ();
  return err && err->code == VIR_ERR_NO_DOMAIN;
}

void
agent_disks_reclaim_incoming (virConnectPtr conn, const char *name,
                              const char *disk_path)
{
  g_autofree char *mark = agent_disks_incoming_mark (disk_path);
  gboolean persistent;

  if (!g_file_test (mark, G_FILE_TEST_EXISTS))
    return;
  if (!g_file_test (disk_path, G_FILE_TEST_EXISTS))
    {
      /* Killed between the mark and the image. */
      (void)g_unlink (mark);
      return;
    }
  if (!no_domain (conn, name, &persistent))
    {
      /* Arrived, or a transient one: a half-made incoming VM, not
       * decided yet. */
      if (persistent)
        (void)g_unlink (mark);
      return;
    }
  if (stor_disk_remove (disk_path, NULL))
    {
      (void)g_unlink (mark);
      drover_message (name, NULL, NULL,
                      "removed %s, left by an unfinished incoming migration",
                      disk_path);
    }
}

/* The VM name of FILE in the disk directory when it ends in SUFFIX. */
static char *
name_of (const char *file, const char *suffix)
{
  g_autofree char *name = NULL;

  if (!g_str_has_suffix (file, suffix))
    return NULL;
  name = g_strndup (file, strlen (file) - strlen (suffix));
  return proto_name_validate ("VM", name, NULL) ? g_steal_pointer (&name)
                                                : NULL;
}

/* Removes the image of VM NAME if libvirt knows no such VM and no
 * operation holds the name. */
static void
reclaim_orphan (Agent *agent, virConnectPtr conn, const char *name)
{
  g_autofree char *path = stor_disk_path (agent->config.data_dir, name, NULL);
  g_autofree char *mark = agent_disks_incoming_mark (path);
  g_autoptr (GError) error = NULL;
  gboolean persistent;

  if (g_file_test (mark, G_FILE_TEST_EXISTS)
      || !agent_vm_claim (agent, name, NULL))
    return;
  if (no_domain (conn, name, &persistent))
    {
      if (stor_disk_remove (path, &error))
        drover_message (name, NULL, NULL,
                        "removed orphan disk image %s: no VM of that name "
                        "here",
                        path);
      else
        drover_message (name, NULL, NULL, "%s", error->message);
    }
  agent_vm_release (agent, name);
}

void
agent_disks_reclaim (Agent *agent, virConnectPtr conn)
{
  g_autoptr (GDir) dir = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *file;

  if (!g_atomic_int_compare_and_exchange (&agent->reclaimed, FALSE, TRUE))
    return;
  dir = g_dir_open (agent->disk_dir, 0, NULL);
  while (dir && (file = g_dir_read_name (dir)))
    g_ptr_array_add (names, g_strdup (file));
  /* Marks first: what they decide is not an orphan. */
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *name = name_of (names->pdata[i], MARK_SUFFIX);
      g_autofree char *path = NULL;

      /* Not a migration being prepared or decided right now. */
      if (!name || !agent_vm_claim (agent, name, NULL))
        continue;
      path = stor_disk_path (agent->config.data_dir, name, NULL);
      if (path)
        agent_disks_reclaim_incoming (conn, name, path);
      agent_vm_release (agent, name);
    }
  for (guint i = 0; i < names->len; i++)
    {
      g_autofree char *name = name_of (names->pdata[i], DISK_SUFFIX);

      if (name)
        reclaim_orphan (agent, conn, name);
    }
}
