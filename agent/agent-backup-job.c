/* The libvirt side of a backup: a checkpoint and a pull-mode backup job.
 *
 * virDomainBackupBegin makes checkpoint drover-bk-ID (a persistent dirty
 * bitmap in the qcow2 image) at the instant the job starts and exports
 * that instant over NBD on DATA/backup/VM/nbd.sock; the guest writes on,
 * QEMU copying the old data to the scratch file first. An incremental
 * names the parent backup's checkpoint, and the export then offers
 * qemu:dirty-bitmap:backup-vda: what changed since. The job runs until
 * it is ended (virDomainAbortJob ends a pull backup); that happens on
 * every path, and at start for the jobs a killed agent left.
 *
 * Only the newest checkpoint is kept: it is the next backup's parent.
 * A failed backup deletes the checkpoint it made, so the last good
 * backup's stays (libvirt merges a deleted checkpoint's bitmap into its
 * parent's, so no change is ever lost).
 */
#include "agent-backup-private.h"

#include <glib/gstdio.h>
#include <string.h>

#define SOCKET_NAME "nbd.sock"
#define SCRATCH_NAME "scratch-" AGENT_BACKUP_DISK ".qcow2"

char *
agent_backup_dir (Agent *agent, const char *vm, GError **error)
{
  if (!proto_name_validate ("VM", vm, error))
    return NULL;
  return g_build_filename (agent->config.data_dir, "backup", vm, NULL);
}

char *
agent_backup_checkpoint_name (const char *backup_id)
{
  return g_strconcat (AGENT_BACKUP_CHECKPOINT_PREFIX, backup_id, NULL);
}

gboolean
agent_backup_checkpoint_exists (virDomainPtr dom, const char *name)
{
  virDomainCheckpointPtr cp = virDomainCheckpointLookupByName (dom, name, 0);

  if (!cp)
    return FALSE;
  virDomainCheckpointFree (cp);
  return TRUE;
}

gboolean
agent_backup_job_init (AgentBackupJob *j, Agent *agent, virConnectPtr conn,
                       virDomainPtr dom, const char *vm, const char *job,
                       const char *backup_id, GError **error)
{
  memset (j, 0, sizeof *j);
  j->agent = agent;
  j->conn = conn;
  j->dom = dom;
  j->vm = vm;
  j->job = job;
  j->dir = agent_backup_dir (agent, vm, error);
  if (!j->dir)
    return FALSE;
  j->sock = g_build_filename (j->dir, SOCKET_NAME, NULL);
  j->scratch = g_build_filename (j->dir, SCRATCH_NAME, NULL);
  j->checkpoint = agent_backup_checkpoint_name (backup_id);
  return TRUE;
}

/* Removes what a job leaves in DIR (socket, scratch). */
static void
remove_leftovers (const char *dir)
{
  g_autofree char *sock = g_build_filename (dir, SOCKET_NAME, NULL);
  g_autofree char *scratch = g_build_filename (dir, SCRATCH_NAME, NULL);
  g_autofree char *restore = g_build_filename (dir, "restore.sock", NULL);
  g_autofree char *read
      = g_build_filename (dir, AGENT_BACKUP_READ_SOCKET, NULL);
  /* A restore in place killed before its rename: the VM's disk is
   * untouched, the half image goes. */
  g_autofree char *aside
      = g_build_filename (dir, AGENT_BACKUP_RESTORE_ASIDE, NULL);

  (void)g_unlink (sock);
  (void)g_unlink (scratch);
  (void)g_unlink (restore);
  (void)g_unlink (read);
  (void)g_unlink (aside);
}

gboolean
agent_backup_mkdir (const char *dir, GError **error)
{
  if (g_mkdir_with_parents (dir, 0750) < 0)
    {
      int saved = errno;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "cannot make %s: %s",
                   dir, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static gboolean
make_dir (AgentBackupJob *j, GError **error)
{
  g_autofree char *parent = g_path_get_dirname (j->dir);

  /* QEMU makes the socket and the scratch file here. */
  if (!agent_backup_mkdir (j->dir, error))
    return FALSE;
  return agent_protect (j->agent, parent, 0750, error)
         && agent_protect (j->agent, j->dir, 0770, error);
}

/* Freezes the guest's filesystems when a guest agent answers: the
 * backup is then application-consistent, else crash-consistent. */
static gboolean
freeze (AgentBackupJob *j)
{
  int n = virDomainFSFreeze (j->dom, NULL, 0, 0);

  if (n < 0)
    {
      virErrorPtr err = virGetLastError ();

      drover_info (j->vm, j->job, NULL,
                   "backup: no guest agent froze the filesystems (%s); the "
                   "backup is crash-consistent",
                   err && err->message ? err->message : "unknown");
      return FALSE;
    }
  return TRUE;
}

static void
thaw (AgentBackupJob *j)
{
  if (virDomainFSThaw (j->dom, NULL, 0, 0) < 0)
    {
      virErrorPtr err = virGetLastError ();

      drover_warning (j->vm, j->job, NULL,
                      "backup: cannot thaw the guest's filesystems: %s",
                      err && err->message ? err->message : "unknown");
    }
}

gboolean
agent_backup_job_begin (AgentBackupJob *j, const char *parent, GError **error)
{
  g_autofree char *incremental = NULL, *rest = NULL, *backup_xml = NULL;
  g_autofree char *cp_xml = NULL;
  gboolean frozen;
  int rc;

  if (strlen (j->sock) >= 100)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the backup socket path %s is too long for a unix socket; "
                   "use a shorter --data-dir",
                   j->sock);
      return FALSE;
    }
  if (!make_dir (j, error))
    return FALSE;
  remove_leftovers (j->dir);
  /* Escaped piecewise: the elements are ours, the names and paths text. */
  incremental
      = parent
            ? g_markup_printf_escaped ("<incremental>%s</incremental>", parent)
            : g_strdup ("");
  rest = g_markup_printf_escaped (
      "<server transport='unix' socket='%s'/>"
      "<disks><disk name='" AGENT_BACKUP_DISK "' backup='yes' type='file'>"
      "<scratch file='%s'/></disk></disks></domainbackup>",
      j->sock, j->scratch);
  backup_xml
      = g_strconcat ("<domainbackup mode='pull'>", incremental, rest, NULL);
  cp_xml = g_markup_printf_escaped (
      "<domaincheckpoint><name>%s</name><disks><disk name='" AGENT_BACKUP_DISK
      "' checkpoint='bitmap'/></disks></domaincheckpoint>",
      j->checkpoint);
  frozen = freeze (j);
  rc = virDomainBackupBegin (j->dom, backup_xml, cp_xml, 0);
  if (rc < 0)
    agent_libvirt_error (error, "cannot begin the backup of VM %s", j->vm);
  if (frozen)
    thaw (j);
  if (rc < 0)
    return FALSE;
  j->begun = TRUE;
  j->quiesced = frozen;
  return TRUE;
}

/* Ends DOM's backup job: the one this run began (BEGUN), or one libvirt
 * says runs. */
static void
end_libvirt_job (virDomainPtr dom, gboolean begun, const char *vm,
                 const char *job)
{
  if (!begun && !agent_domain_job_is (dom, VIR_DOMAIN_JOB_OPERATION_BACKUP))
    return;
  if (virDomainAbortJob (dom) < 0)
    {
      virErrorPtr err = virGetLastError ();

      drover_warning (vm, job, NULL, "backup: cannot end libvirt's job: %s",
                      err && err->message ? err->message : "unknown");
    }
}

static void
delete_checkpoint (virDomainPtr dom, const char *name, const char *vm,
                   const char *job)
{
  virDomainCheckpointPtr cp = virDomainCheckpointLookupByName (dom, name, 0);

  if (!cp)
    return;
  if (virDomainCheckpointDelete (cp, 0) < 0)
    {
      virErrorPtr err = virGetLastError ();

      drover_warning (vm, job, NULL, "backup: cannot delete checkpoint %s: %s",
                      name, err && err->message ? err->message : "unknown");
    }
  virDomainCheckpointFree (cp);
}

/* After a good backup: deletes every drover-bk-* checkpoint of J's VM but
 * J's own. Failures are logged; a stale checkpoint only costs QEMU a
 * bitmap. */
static void
prune_checkpoints (AgentBackupJob *j)
{
  virDomainCheckpointPtr *cps = NULL;
  int n = virDomainListAllCheckpoints (j->dom, &cps, 0);

  if (n < 0)
    {
      virErrorPtr err = virGetLastError ();

      drover_warning (j->vm, j->job, NULL,
                      "backup: cannot list the checkpoints: %s",
                      err && err->message ? err->message : "unknown");
      return;
    }
  for (int i = 0; i < n; i++)
    {
      const char *name = virDomainCheckpointGetName (cps[i]);

      if (name && g_str_has_prefix (name, AGENT_BACKUP_CHECKPOINT_PREFIX)
          && g_strcmp0 (name, j->checkpoint) != 0
          && virDomainCheckpointDelete (cps[i], 0) < 0)
        {
          virErrorPtr err = virGetLastError ();

          drover_warning (j->vm, j->job, NULL,
                          "backup: cannot delete checkpoint %s: %s", name,
                          err && err->message ? err->message : "unknown");
        }
      virDomainCheckpointFree (cps[i]);
    }
  g_free (cps);
}

void
agent_backup_job_end (AgentBackupJob *j, gboolean ok)
{
  if (j->begun)
    {
      end_libvirt_job (j->dom, TRUE, j->vm, j->job);
      j->begun = FALSE;
    }
  if (!ok && j->dom && j->checkpoint)
    delete_checkpoint (j->dom, j->checkpoint, j->vm, j->job);
  else if (ok && j->dom && j->checkpoint)
    prune_checkpoints (j);
  if (j->dir)
    remove_leftovers (j->dir);
  g_clear_pointer (&j->dir, g_free);
  g_clear_pointer (&j->sock, g_free);
  g_clear_pointer (&j->scratch, g_free);
  g_clear_pointer (&j->checkpoint, g_free);
}

void
agent_backup_reclaim (Agent *agent, virConnectPtr conn)
{
  g_autofree char *root
      = g_build_filename (agent->config.data_dir, "backup", NULL);
  g_autoptr (GDir) d = g_dir_open (root, 0, NULL);
  const char *vm;

  if (!d)
    return;
  while ((vm = g_dir_read_name (d)))
    {
      g_autofree char *dir = g_build_filename (root, vm, NULL);
      g_autoptr (virDomain) dom = virDomainLookupByName (conn, vm);

      /* Only a backup makes the directory, and no backup runs yet. */
      if (dom && virDomainIsActive (dom) == 1
          && agent_domain_job_is (dom, VIR_DOMAIN_JOB_OPERATION_BACKUP))
        {
          drover_message (vm, NULL, NULL,
                          "backup: ending the backup job an earlier run left");
          end_libvirt_job (dom, FALSE, vm, NULL);
        }
      remove_leftovers (dir);
    }
  agent_backup_repos_recover (agent);
}
