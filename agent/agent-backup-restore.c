/* RestoreBackup: a backup in a repository becomes the disk of a new VM on
 * this host, DATA/disks/NEW.qcow2, written sparsely.
 *
 * The image is made empty by qemu-img (so it reads as zeros), then
 * qemu-nbd serves it on DATA/backup/NEW/restore.sock and every data chunk
 * is written over NBD; holes are never written and stay holes. Each chunk
 * is checked against its SHA-256 as the repository reads it: a chunk that
 * fails fails the restore, naming it.
 *
 * The disk is marked first (DISK.incoming, agent-disks.c): a restore that
 * fails removes image and mark, and an agent killed mid-restore finds the
 * marked image at its next start and removes it, as it does for an
 * incoming migration that never arrived. No half disk survives.
 *
 * A restore to a new VM keeps that mark until the domain is defined on
 * the disk (a persistent domain is what the start-up cleanup keeps), so
 * an agent killed in between leaves neither. A restore in place writes
 * the image aside (DATA/backup/VM/restore-aside.qcow2) and renames it
 * over the stopped VM's disk only once it is complete and flushed: a
 * failure or a kill before the rename leaves the VM's disk as it was.
 */
#include "agent-backup-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <libnbd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "stor.h"

#define RESTORE_SOCKET "restore.sock"
#define RESTORE_ASIDE AGENT_BACKUP_RESTORE_ASIDE
/* How long qemu-nbd may take to listen. */
#define NBD_START_WAIT_MS 10000

/* qemu-nbd serving IMAGE (qcow2, writable) on SOCK. */
typedef struct
{
  GPid pid;
  struct nbd_handle *h;
} Server;

/* How long qemu-nbd may take to exit on SIGTERM before it is killed.
 * Every writer flushes before it stops the server, so a kill loses
 * nothing; QEMU 7.2's qemu-nbd was seen to stay on after SIGTERM (about
 * one stop in ten under load: test-agent-backup-nbd hung in waitpid). */
#define NBD_STOP_WAIT_MS 5000

void
agent_backup_qemu_nbd_stop (GPid *pid)
{
  if (*pid > 0)
    {
      pid_t got = 0;

      kill (*pid, SIGTERM);
      for (int waited = 0; waited < NBD_STOP_WAIT_MS; waited += 20)
        {
          got = waitpid (*pid, NULL, WNOHANG);
          if (got != 0)
            break;
          g_usleep (20 * 1000);
        }
      if (got == 0)
        {
          g_message ("qemu-nbd (pid %d) still runs %d ms after SIGTERM; "
                     "killing it",
                     (int)*pid, NBD_STOP_WAIT_MS);
          kill (*pid, SIGKILL);
          (void)waitpid (*pid, NULL, 0);
        }
      g_spawn_close_pid (*pid);
      *pid = 0;
    }
}

/* qemu-nbd dies with the agent's thread that started it: a killed agent
 * leaves no server holding the image's lock. */
static void
die_with_parent (gpointer data)
{
  (void)data;
  (void)prctl (PR_SET_PDEATHSIG, SIGTERM);
}

/* Whether a socket listens at PATH, by /proc/net/unix (flag
 * __SO_ACCEPTCON): qemu-nbd binds its socket before it listens, and a
 * client that connects in between is refused. Not a probe connection:
 * qemu-nbd without --persistent exits after its first client. Where
 * /proc/net/unix cannot be read, the file's existence has to do. */
gboolean
agent_backup_socket_listening (const char *path)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return FALSE;
  if (!g_file_get_contents ("/proc/net/unix", &text, NULL, NULL))
    return TRUE;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 1; lines[i] != NULL; i++)
    {
      /* Num RefCount Protocol Flags Type St Inode Path: the path last, so
       * the line ends with " PATH" (a path may hold spaces). */
      const char *line = lines[i];
      gsize len = strlen (line), plen = strlen (path);
      g_auto (GStrv) f = NULL;

      if (len <= plen || line[len - plen - 1] != ' '
          || strcmp (line + len - plen, path) != 0)
        continue;
      f = g_strsplit (line, " ", 5);
      if (g_strv_length (f) == 5
          && (g_ascii_strtoull (f[3], NULL, 16) & 0x10000) != 0)
        return TRUE;
    }
  return FALSE;
}

gboolean
agent_backup_qemu_nbd_start (const char *image, const char *sock,
                             gboolean read_only, GPid *pid, GError **error)
{
  const char *argv[] = { "qemu-nbd", "-f", "qcow2", "--cache=writeback",
                         "-k",       sock, image,   read_only ? "-r" : NULL,
                         NULL };

  (void)g_unlink (sock);
  if (!g_spawn_async (NULL, (char **)argv, NULL,
                      G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD
                          | G_SPAWN_STDOUT_TO_DEV_NULL,
                      die_with_parent, NULL, pid, error))
    return FALSE;
  for (int waited = 0; !agent_backup_socket_listening (sock); waited += 20)
    {
      if (waited >= NBD_START_WAIT_MS || waitpid (*pid, NULL, WNOHANG) == *pid)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "qemu-nbd did not serve %s", image);
          return FALSE;
        }
      g_usleep (20 * 1000);
    }
  return TRUE;
}

static void
server_stop (Server *s)
{
  if (s->h)
    {
      (void)nbd_shutdown (s->h, 0);
      nbd_close (s->h);
      s->h = NULL;
    }
  agent_backup_qemu_nbd_stop (&s->pid);
}

static gboolean
server_start (Server *s, const char *image, const char *sock, GError **error)
{
  if (!agent_backup_qemu_nbd_start (image, sock, FALSE, &s->pid, error))
    return FALSE;
  s->h = nbd_create ();
  if (!s->h || nbd_connect_unix (s->h, sock) < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot write %s over NBD: %s", image,
                   nbd_get_error () ? nbd_get_error () : "unknown");
      return FALSE;
    }
  return TRUE;
}

/* Zero runs of this size inside a chunk are not written either: the
 * qcow2 cluster size, so they stay unallocated. */
#define ZERO_GRAIN (64 * 1024)

/* Writes the LEN bytes at BUF to OFF, skipping aligned all-zero grains;
 * *WRITTEN grows by what was written. */
static gboolean
write_sparse (Server *s, const guint8 *buf, gsize len, guint64 off,
              guint64 *written, const char *image, GError **error)
{
  gsize run = 0; /* start of the data run not written yet */

  for (gsize pos = 0;; pos += ZERO_GRAIN)
    {
      gsize end = MIN (pos, len); /* the run, if any, ends here */
      gsize n = pos < len ? MIN (ZERO_GRAIN, len - pos) : 0;

      if (n > 0 && !stor_repo_is_zero (buf + pos, n))
        continue;
      if (end > run
          && nbd_pwrite (s->h, buf + run, end - run, off + run, 0) < 0)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "cannot write to %s at %" G_GUINT64_FORMAT ": %s", image,
                       off + run,
                       nbd_get_error () ? nbd_get_error () : "unknown");
          return FALSE;
        }
      if (end > run)
        *written += end - run;
      if (pos >= len)
        return TRUE;
      run = pos + n;
    }
}

/* Writes every data chunk of DISK into the server's image. */
static gboolean
write_chunks (Server *s, StorRepo *repo, const StorRepoDisk *disk,
              const char *image, GCancellable *cancellable,
              AgentBackupStats *st, AgentBackupProgressFunc progress,
              gpointer data, GError **error)
{
  for (guint64 i = 0; i < disk->chunks->len; i++)
    {
      g_autoptr (GBytes) chunk = NULL;
      gsize len = 0;
      const guint8 *buf;

      if (g_cancellable_set_error_if_cancelled (cancellable, error)
          || !stor_repo_disk_read (repo, disk, i, &chunk, error))
        return FALSE;
      buf = chunk ? g_bytes_get_data (chunk, &len) : NULL;
      if (!chunk)
        st->hole_chunks++;
      else if (!write_sparse (s, buf, len, i * (guint64)AGENT_BACKUP_CHUNK,
                              &st->bytes_read, image, error))
        return FALSE;
      else
        st->data_chunks++;
      if (st->data_chunks > 0)
        agent_fault_crash ("restore-crash-writing");
      if (progress)
        progress (st, data);
    }
  if (nbd_flush (s->h, 0) < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot flush %s: %s", image,
                   nbd_get_error () ? nbd_get_error () : "unknown");
      return FALSE;
    }
  return TRUE;
}

/* TRUE when libvirt has no domain NAME here and no image of that name
 * exists. */
static gboolean
target_free (virConnectPtr conn, const char *name, const char *image,
             GError **error)
{
  g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);

  if (dom || g_file_test (image, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "a VM or disk named %s already exists here", name);
      return FALSE;
    }
  return TRUE;
}

gboolean
agent_backup_restore_image (StorRepo *repo, const char *backup_id,
                            const char *image, const char *sock,
                            GCancellable *cancellable,
                            AgentBackupProgressFunc progress, gpointer data,
                            AgentBackupStats *st, GError **error)
{
  g_autoptr (StorRepoManifest) m = NULL;
  const StorRepoDisk *disk;
  Server s = { 0 };
  gboolean ok;

  memset (st, 0, sizeof *st);
  st->started_us = g_get_monotonic_time ();
  m = stor_repo_manifest_load (repo, backup_id, error);
  if (!m)
    return FALSE;
  disk = stor_repo_manifest_disk (m, AGENT_BACKUP_DISK);
  if (!disk)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "backup %s has no disk " AGENT_BACKUP_DISK, backup_id);
      return FALSE;
    }
  st->disk_size = disk->size;
  st->chunks = disk->chunks->len;
  for (guint i = 0; i < disk->chunks->len; i++)
    if (!g_array_index (disk->chunks, StorRepoChunkRef, i).hole)
      st->to_read += stor_repo_chunk_length (disk, i);
  if (!stor_disk_create (image, disk->size, error))
    return FALSE;
  ok = server_start (&s, image, sock, error)
       && write_chunks (&s, repo, disk, image, cancellable, st, progress, data,
                        error);
  server_stop (&s);
  (void)g_unlink (sock);
  if (!ok)
    (void)g_unlink (image);
  return ok;
}

gboolean
agent_backup_restore_run (Agent *agent, virConnectPtr conn, StorRepo *repo,
                          const char *backup_id, const char *target,
                          gboolean keep_mark, GCancellable *cancellable,
                          AgentBackupProgressFunc progress, gpointer data,
                          AgentBackupStats *st, GError **error)
{
  g_autofree char *image = NULL, *mark = NULL, *dir = NULL, *sock = NULL;
  gboolean ok;

  memset (st, 0, sizeof *st);
  image = stor_disk_path (agent->config.data_dir, target, error);
  dir = image ? agent_backup_dir (agent, target, error) : NULL;
  if (!dir || !target_free (conn, target, image, error))
    return FALSE;
  sock = g_build_filename (dir, RESTORE_SOCKET, NULL);
  mark = agent_disks_incoming_mark (image);
  if (!agent_backup_mkdir (dir, error))
    return FALSE;
  if (!g_file_set_contents (mark, "", 0, error))
    return FALSE;
  ok = agent_backup_restore_image (repo, backup_id, image, sock, cancellable,
                                   progress, data, st, error)
       && agent_protect (agent, image, 0660, error);
  if (!ok)
    {
      g_prefix_error (error, "restore of backup %s to %s: ", backup_id, target);
      (void)g_unlink (image);
    }
  if (!ok || !keep_mark)
    (void)g_unlink (mark);
  return ok;
}

/* Backup BACKUP_ID must be of VM VM with a disk of SIZE bytes (0: any). */
static gboolean
check_backup (StorRepo *repo, const char *backup_id, const char *vm,
              guint64 size, GError **error)
{
  g_autoptr (StorRepoManifest) m
      = stor_repo_manifest_load (repo, backup_id, error);
  const StorRepoDisk *disk;

  if (!m)
    return FALSE;
  disk = stor_repo_manifest_disk (m, AGENT_BACKUP_DISK);
  if (vm && strcmp (m->vm, vm) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "backup %s is of VM %s, not of VM %s", backup_id, m->vm, vm);
      return FALSE;
    }
  if (!disk || (size && disk->size != size))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "backup %s has no disk " AGENT_BACKUP_DISK
                   " of %" G_GUINT64_FORMAT " bytes",
                   backup_id, size);
      return FALSE;
    }
  return TRUE;
}

virDomainPtr
agent_backup_restore_vm (Agent *agent, virConnectPtr conn, StorRepo *repo,
                         const char *backup_id,
                         const Drover__V1__VmSpec *requested, gboolean start,
                         GCancellable *cancellable,
                         AgentBackupProgressFunc progress, gpointer data,
                         AgentBackupStats *st, GError **error)
{
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autofree char *disk = NULL, *mark = NULL;
  const char *name = requested->name;

  memset (st, 0, sizeof *st);
  spec = agent_vm_spec_for_host (agent, requested, error);
  if (!spec || !check_backup (repo, backup_id, NULL, spec->disk, error)
      || !agent_vm_admit (agent, conn, spec, error))
    return NULL;
  if (!agent_backup_restore_run (agent, conn, repo, backup_id, name, TRUE,
                                 cancellable, progress, data, st, error))
    {
      agent_vm_release (agent, name);
      return NULL;
    }
  disk = stor_disk_path (agent->config.data_dir, name, NULL);
  mark = agent_disks_incoming_mark (disk);
  if (agent_console_prepare (agent, name, error))
    dom = agent_vm_define (agent, conn, spec, disk, NULL, NULL, "VM", error);
  if (dom && agent_fault_fail ("restore-fail-after-define", error))
    g_clear_pointer (&dom, virDomainFree);
  /* Defined: the disk is the VM's now. */
  if (dom)
    (void)g_unlink (mark);
  if (dom && start && virDomainCreate (dom) < 0)
    {
      agent_libvirt_error (error, "cannot start VM %s", name);
      g_clear_pointer (&dom, virDomainFree);
    }
  /* Its caller went away (a scheduler that stopped): nobody records the
   * VM, so it goes rather than turn up unasked. */
  if (dom && g_cancellable_set_error_if_cancelled (cancellable, error))
    g_clear_pointer (&dom, virDomainFree);
  if (!dom)
    {
      g_prefix_error (error, "restore of backup %s as VM %s: ", backup_id,
                      name);
      agent_clone_rollback (agent, conn, name);
      (void)g_unlink (mark);
    }
  agent_vm_release (agent, name);
  return g_steal_pointer (&dom);
}

/* Drops DOM's drover-bk-* checkpoints (metadata only: the bitmaps went
 * with the old image), so that the next backup is full. */
static void
forget_checkpoints (virDomainPtr dom, const char *vm)
{
  virDomainCheckpointPtr *cps = NULL;
  int n = virDomainListAllCheckpoints (dom, &cps, 0);

  for (int i = 0; i < n; i++)
    {
      const char *name = virDomainCheckpointGetName (cps[i]);

      if (name && g_str_has_prefix (name, AGENT_BACKUP_CHECKPOINT_PREFIX)
          && virDomainCheckpointDelete (
                 cps[i], VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY)
                 < 0)
        drover_warning (vm, NULL, NULL,
                        "restore: cannot forget checkpoint %s; the next "
                        "backup may fail once before it is full",
                        name);
      virDomainCheckpointFree (cps[i]);
    }
  g_free (cps);
}

gboolean
agent_backup_restore_in_place (Agent *agent, virDomainPtr dom, StorRepo *repo,
                               const char *backup_id, const char *vm,
                               GCancellable *cancellable,
                               AgentBackupProgressFunc progress, gpointer data,
                               AgentBackupStats *st, GError **error)
{
  g_autofree char *domxml = NULL, *disk = NULL, *image = NULL;
  g_autofree char *dir = NULL, *aside = NULL, *sock = NULL;
  gboolean ok;

  memset (st, 0, sizeof *st);
  if (virDomainIsActive (dom) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is running: a restore in place replaces the disk "
                   "of a stopped VM only; stop it first, or restore as a "
                   "new VM (--as NEW)",
                   vm);
      return FALSE;
    }
  domxml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  disk = domxml ? agent_clone_xml_disk (domxml) : NULL;
  image = stor_disk_path (agent->config.data_dir, vm, error);
  if (!image)
    return FALSE;
  /* A VM on a snapshot overlay or a linked clone's overlay would lose its
   * chain: only the plain disk is replaced. */
  if (!disk || strcmp (disk, image) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s runs on %s, not on its own plain disk (snapshots or "
                   "a linked clone): restore it as a new VM (--as NEW)",
                   vm, disk ? disk : "no disk");
      return FALSE;
    }
  if (!check_backup (repo, backup_id, vm, 0, error))
    return FALSE;
  dir = agent_backup_dir (agent, vm, error);
  if (!dir)
    return FALSE;
  if (!agent_backup_mkdir (dir, error))
    return FALSE;
  aside = g_build_filename (dir, RESTORE_ASIDE, NULL);
  sock = g_build_filename (dir, RESTORE_SOCKET, NULL);
  (void)g_unlink (aside);
  ok = agent_backup_restore_image (repo, backup_id, aside, sock, cancellable,
                                   progress, data, st, error)
       && agent_protect (agent, aside, 0660, error)
       && !agent_fault_fail ("restore-fail-before-rename", error);
  if (ok && g_rename (aside, image) < 0)
    {
      int saved = errno;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot move the restored image over %s: %s", image,
                   g_strerror (saved));
      ok = FALSE;
    }
  if (!ok)
    {
      g_prefix_error (
          error, "restore of backup %s in place of VM %s: ", backup_id, vm);
      (void)g_unlink (aside);
      return FALSE;
    }
  forget_checkpoints (dom, vm);
  return TRUE;
}
