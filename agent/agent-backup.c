/* Backups of a VM on this host into a repository (issue 14): the calls
 * and the engine.
 *
 * CreateBackup runs on a worker thread and streams StorageProgress. It
 * takes the VM's claim, asks the repository for the VM's newest backup
 * and libvirt for that backup's checkpoint: both there, the backup is
 * incremental from it; otherwise it is full, and says so (job note and
 * a warning in the log). libvirt's pull-mode job (agent-backup-job.c)
 * exports the instant of the new checkpoint over NBD; the read loop
 * (agent-backup-read.c) feeds the repository's writer chunk by chunk;
 * the manifest is committed only when every chunk is in. The libvirt job
 * is ended on every path; after a good backup the older checkpoints go.
 *
 * A bitmap found lying (a sampled clean chunk that differs) fails the
 * backup and leaves the mark DATA/backup/VM/full-next: the next backup of
 * the VM is full whatever libvirt says, and a good one removes the mark.
 *
 * Repositories are named on the wire; their paths come from the agent's
 * --backup-repo NAME=PATH options only.
 */
#include "agent-backup-private.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#define FULL_NEXT_MARK "full-next"

/* --- repositories (--backup-repo) ---------------------------------------- */

gboolean
agent_backup_repos_check (char **repos, GError **error)
{
  g_autoptr (GHashTable) seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; repos && repos[i]; i++)
    {
      g_auto (GStrv) kv = g_strsplit (repos[i], "=", 2);
      g_autoptr (GError) local = NULL;

      if (!kv[0] || !kv[1] || !proto_name_validate ("repository", kv[0], &local)
          || !g_path_is_absolute (kv[1]))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "backup repository %s is not NAME=/absolute/path%s%s",
                       repos[i], local ? ": " : "",
                       local ? local->message : "");
          return FALSE;
        }
      if (g_hash_table_contains (seen, kv[0]))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "backup repository %s is given twice", kv[0]);
          return FALSE;
        }
      g_hash_table_add (seen, g_strdup (kv[0]));
    }
  return TRUE;
}

/* --- progress --------------------------------------------------------------
 */

typedef struct
{
  Agent *agent;
  const Drover__V1__AgentBackupRequest *req; /* owned by the call */
  gboolean restore;
  AgentStream *stream; /* worker only */
  char *note;          /* sent with every message once set */
  char *backup_id;     /* once the repository named it */
  gint64 last_push_us;
  gboolean held; /* the backup-hold-reading fault point held it once */
} BackupCall;

/* A progress message of CALL in PHASE. */
static Drover__V1__StorageProgress *
progress_new (BackupCall *call, const char *phase, const AgentBackupStats *st,
              const char *error_msg, const char *backup_id)
{
  Drover__V1__StorageProgress *m = g_new0 (Drover__V1__StorageProgress, 1);

  drover__v1__storage_progress__init (m);
  m->phase = proto_msg_strdup (phase);
  m->error = proto_msg_strdup (error_msg ? error_msg : "");
  m->note = proto_msg_strdup (call->note ? call->note : "");
  m->backup_id = proto_msg_strdup (backup_id ? backup_id : "");
  m->eta_s = -1;
  if (st)
    {
      m->total = st->to_read;
      m->processed = st->bytes_read;
      m->bytes_new = st->bytes_new;
      m->throughput = st->rate;
      m->eta_s = st->eta_s;
    }
  return m;
}

static void
push (BackupCall *call, const char *phase, const AgentBackupStats *st,
      const char *error_msg, const char *backup_id)
{
  agent_stream_push (call->stream, (ProtobufCMessage *)progress_new (
                                       call, phase, st, error_msg, backup_id));
}

/* The final message of a good backup or restore: backup BACKUP_ID of
 * REPO as its manifest says, and DOM's status (a restore; may be NULL). */
static void
push_completed (BackupCall *call, const AgentBackupStats *st, StorRepo *repo,
                const char *backup_id, virDomainPtr dom)
{
  Drover__V1__StorageProgress *m
      = progress_new (call, PROTO_STOR_PHASE_COMPLETED, st, NULL, backup_id);
  g_autoptr (GError) local = NULL;
  g_autoptr (StorRepoManifest) manifest
      = stor_repo_manifest_load (repo, backup_id, &local);

  if (manifest)
    m->backup = agent_backup_msg (manifest, call->req->repo);
  else
    drover_warning (call->req->vm, call->req->job_id, NULL,
                    "backup %s: cannot read it back: %s", backup_id,
                    local->message);
  if (dom)
    m->vm = agent_vm_status_from_domain (dom, NULL);
  agent_stream_push (call->stream, (ProtobufCMessage *)m);
}

/* How long the backup-hold-reading fault point holds a backup. */
#define BACKUP_HOLD_S 4

/* Each chunk reports; the stream carries at most ~4 messages a second. */
static void
on_progress (const AgentBackupStats *st, gpointer data)
{
  BackupCall *call = data;
  gint64 now = g_get_monotonic_time ();

  /* Fault point (tests): killed as by kill -9 once data is flowing. */
  if (st->bytes_read > 0 && agent_fault ("backup-crash-reading"))
    {
      g_printerr ("fault: backup-crash-reading: killing the agent\n");
      kill (getpid (), SIGKILL);
      pause ();
    }
  /* Fault point (tests): the backup stands still once for a few seconds,
   * data flowing, so that a test can act while its job runs. */
  if (!call->held && !call->restore && st->bytes_read > 0
      && agent_fault ("backup-hold-reading"))
    {
      call->held = TRUE;
      g_usleep (BACKUP_HOLD_S * G_USEC_PER_SEC);
    }

  if (now - call->last_push_us < 250 * 1000 && st->bytes_read < st->to_read)
    return;
  call->last_push_us = now;
  push (call, PROTO_STOR_PHASE_READING, st, NULL, NULL);
}

/* --- the backup ------------------------------------------------------------
 */

static char *
full_next_mark (Agent *agent, const char *vm)
{
  g_autofree char *dir = agent_backup_dir (agent, vm, NULL);

  return dir ? g_build_filename (dir, FULL_NEXT_MARK, NULL) : NULL;
}

static void
fall_back (BackupCall *call, const char *vm, const char *parent,
           const char *why)
{
  g_free (call->note);
  call->note = g_strdup_printf ("full backup: %s", why);
  drover_warning (vm, call->req->job_id, NULL,
                  "backup: FULL instead of incremental from %s: %s", parent,
                  why);
}

/* The parent backup's id and checkpoint (in *CHECKPOINT) when the
 * backup can be incremental; NULL (CALL's note set and a warning logged
 * when a parent was expected) when it must be full. */
static char *
choose_parent (BackupCall *call, virDomainPtr dom, StorRepo *repo,
               const char *vm, char **checkpoint, GError **error)
{
  g_autoptr (GPtrArray) list = stor_repo_list (repo, vm, NULL, error);
  g_autofree char *mark = full_next_mark (call->agent, vm);
  const StorRepoManifest *m;
  const char *why = NULL;

  *checkpoint = NULL;
  if (!list)
    return NULL;
  if (call->req->full || list->len == 0)
    return NULL;
  m = list->pdata[0];
  if (mark && g_file_test (mark, G_FILE_TEST_EXISTS))
    why = "the last backup found the dirty bitmap lying";
  else if (!m->checkpoint
           || !g_str_has_prefix (m->checkpoint, AGENT_BACKUP_CHECKPOINT_PREFIX))
    why = "the parent backup records no Drover checkpoint";
  else if (!agent_backup_checkpoint_exists (dom, m->checkpoint))
    why = "the parent backup's checkpoint is gone from libvirt";
  if (why)
    {
      fall_back (call, vm, m->id, why);
      return NULL;
    }
  *checkpoint = g_strdup (m->checkpoint);
  return g_strdup (m->id);
}

/* The repository's writer for VM's new backup: incremental from *PARENT
 * when that works, else full (*PARENT cleared, the note says why). */
static StorRepoWriter *
begin_writer (BackupCall *call, virDomainPtr dom, StorRepo *repo,
              const char *vm, char **parent, char **parent_cp, GError **error)
{
  g_autofree char *domxml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  char uuid[VIR_UUID_STRING_BUFLEN];
  g_autoptr (GError) local = NULL;
  StorRepoWriter *w;

  if (!domxml || virDomainGetUUIDString (dom, uuid) < 0)
    {
      agent_libvirt_error (error, "cannot read the definition of VM %s", vm);
      return NULL;
    }
  w = stor_repo_writer_begin (repo, vm, uuid, domxml, *parent, &local);
  if (w || !*parent)
    {
      if (!w)
        g_propagate_error (error, g_steal_pointer (&local));
      return w;
    }
  fall_back (call, vm, *parent, local->message);
  g_clear_pointer (parent, g_free);
  g_clear_pointer (parent_cp, g_free);
  return stor_repo_writer_begin (repo, vm, uuid, domxml, NULL, error);
}

/* The stopped VM's disk (DOM), served read-only by qemu-nbd (*PID) on
 * *SOCK and opened. */
static AgentBackupNbd *
open_stopped (BackupCall *call, virDomainPtr dom, const char *vm, GPid *pid,
              char **sock, GError **error)
{
  g_autofree char *domxml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  g_autofree char *disk = domxml ? agent_clone_xml_disk (domxml) : NULL;
  g_autofree char *dir = agent_backup_dir (call->agent, vm, error);

  if (!dir)
    return NULL;
  if (!disk)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s has no disk to back up", vm);
      return NULL;
    }
  if (!agent_backup_mkdir (dir, error))
    return NULL;
  *sock = g_build_filename (dir, AGENT_BACKUP_READ_SOCKET, NULL);
  if (!agent_backup_qemu_nbd_start (disk, *sock, TRUE, pid, error))
    return NULL;
  return agent_backup_nbd_open (*sock, NULL, NULL, error);
}

/* A stopped VM's backup is full (no libvirt job to export a bitmap
 * with); when an incremental could have been taken, the note says why
 * it is not. */
static void
note_stopped (BackupCall *call, StorRepo *repo, const char *vm)
{
  g_autoptr (GPtrArray) list = stor_repo_list (repo, vm, NULL, NULL);

  if (call->req->full || !list || list->len == 0)
    return;
  g_free (call->note);
  call->note = g_strdup ("full backup: the VM is stopped, and a stopped VM's "
                         "backup is full");
}

static gboolean
backup_run (BackupCall *call, AgentBackupJob *j, virConnectPtr conn,
            virDomainPtr dom, const char *vm, StorRepo *repo, GError **error)
{
  const char *job = call->req->job_id;
  gboolean running = virDomainIsActive (dom) == 1;
  g_autofree char *parent = NULL, *parent_cp = NULL, *sock = NULL;
  g_autofree char *mark = full_next_mark (call->agent, vm);
  g_autoptr (StorRepoWriter) w = NULL;
  AgentBackupNbd *nbd = NULL;
  AgentBackupSink sink = { 0 };
  AgentBackupStats st = { 0 };
  gboolean lied = FALSE, ok = FALSE, app;
  GPid pid = 0;

  if (running)
    parent = choose_parent (call, dom, repo, vm, &parent_cp, error);
  else
    note_stopped (call, repo, vm);
  if (!parent && error && *error)
    return FALSE;
  w = begin_writer (call, dom, repo, vm, &parent, &parent_cp, error);
  if (!w)
    return FALSE;
  call->backup_id = g_strdup (stor_repo_writer_id (w));
  push (call, PROTO_STOR_PHASE_PREPARING, NULL, NULL, NULL);
  if (running
      && (!agent_backup_job_init (j, call->agent, conn, dom, vm, job,
                                  call->backup_id, error)
          || !agent_backup_job_begin (j, parent_cp, error)))
    return FALSE;
  if (agent_fault ("backup-fail-reading"))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "fault: backup-fail-reading");
      return FALSE;
    }
  if (running)
    nbd = agent_backup_nbd_open (j->sock, AGENT_BACKUP_DISK,
                                 parent_cp ? AGENT_BACKUP_BITMAP : NULL, error);
  else
    nbd = open_stopped (call, dom, vm, &pid, &sock, error);
  /* A stopped VM's disk is at rest, as its shutdown left it: it is as
   * consistent as that shutdown, which Drover cannot tell. */
  app = running && j->quiesced;
  sink.w = w;
  if (nbd
      && stor_repo_writer_add_disk (
          w, AGENT_BACKUP_DISK, agent_backup_nbd_size (nbd), &sink.disk, error)
      && agent_backup_read_disk (
          nbd, parent_cp != NULL, 0, &agent_backup_sink_ops, &sink, on_progress,
          call, &st, &lied, agent_stream_get_cancellable (call->stream), error)
      && stor_repo_writer_commit (w, running ? j->checkpoint : NULL,
                                  app ? STOR_REPO_CONSISTENCY_APPLICATION
                                      : STOR_REPO_CONSISTENCY_CRASH,
                                  error))
    ok = TRUE;
  g_clear_pointer (&nbd, agent_backup_nbd_free);
  agent_backup_qemu_nbd_stop (&pid);
  if (sock)
    (void)g_unlink (sock);
  agent_metrics_backup (call->agent->metrics,
                        parent_cp ? "incremental" : "full", ok, st.bytes_read,
                        st.bytes_new);
  if (!ok)
    g_prefix_error (error, "backup %s of VM %s: ", call->backup_id, vm);
  if (lied && mark && !g_file_set_contents (mark, "", 0, NULL))
    drover_warning (vm, job, NULL, "backup: cannot write %s", mark);
  if (!ok)
    return FALSE;
  if (mark)
    (void)g_unlink (mark);
  drover_message (vm, job, NULL,
                  "backup %s: %s%s, %" G_GUINT64_FORMAT
                  " bytes read, %" G_GUINT64_FORMAT " new, %s%s",
                  call->backup_id, parent ? "incremental from " : "full",
                  parent ? parent : "", st.bytes_read, st.bytes_new,
                  app ? "application-consistent" : "crash-consistent",
                  running ? "" : ", of the stopped VM");
  push_completed (call, &st, repo, call->backup_id, NULL);
  return TRUE;
}

/* RestoreBackup: the disk of the new VM TARGET_VM from backup ID. */
static gboolean
restore_call_run (BackupCall *call, GError **error)
{
  const Drover__V1__AgentBackupRequest *req = call->req;
  Agent *agent = call->agent;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (StorRepo) repo = NULL;
  g_autoptr (virDomain) dom = NULL;
  GCancellable *cancellable = agent_stream_get_cancellable (call->stream);
  const char *job = req->job_id && *req->job_id ? req->job_id : NULL;
  AgentBackupStats st = { 0 };
  gboolean ok = FALSE;

  if (!proto_name_validate ("VM", req->target_vm, error)
      || !stor_repo_id_validate (req->backup_id, error))
    goto fail;
  repo = agent_backup_repos_lookup (agent, req->repo, error);
  if (!repo)
    goto fail;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    goto fail;
  push (call, PROTO_STOR_PHASE_PREPARING, NULL, NULL, NULL);
  if (req->in_place)
    {
      /* The VM's claim keeps a start and every other operation out. */
      if (!agent_vm_claim (agent, req->target_vm, error))
        goto fail;
      dom = agent_vm_lookup (agent, conn, req->target_vm, error);
      ok = dom
           && agent_backup_restore_in_place (agent, dom, repo, req->backup_id,
                                             req->target_vm, cancellable,
                                             on_progress, call, &st, error);
      agent_vm_release (agent, req->target_vm);
    }
  else if (req->spec)
    {
      g_autoptr (Drover__V1__VmSpec) spec = proto_msg_copy (&req->spec->base);

      g_free (spec->name == protobuf_c_empty_string ? NULL : spec->name);
      spec->name = g_strdup (req->target_vm);
      dom = agent_backup_restore_vm (agent, conn, repo, req->backup_id, spec,
                                     req->start, cancellable, on_progress, call,
                                     &st, error);
      ok = dom != NULL;
      if (ok)
        agent_reporter_kick_from_thread (agent);
    }
  /* The disk alone. The claim keeps a CreateVm or an incoming migration
   * of that name out while the disk is written. */
  else if (agent_vm_claim (agent, req->target_vm, error))
    {
      ok = agent_backup_restore_run (agent, conn, repo, req->backup_id,
                                     req->target_vm, FALSE, cancellable,
                                     on_progress, call, &st, error);
      agent_vm_release (agent, req->target_vm);
    }
  agent_metrics_backup (agent->metrics, "restore", ok, st.bytes_read, 0);
  if (ok)
    {
      drover_message (req->target_vm, job, NULL,
                      "restored backup %s%s: %" G_GUINT64_FORMAT
                      " bytes written, %" G_GUINT64_FORMAT " chunks left holes",
                      req->backup_id, req->in_place ? " in place" : "",
                      st.bytes_read, st.hole_chunks);
      push_completed (call, &st, repo, req->backup_id, dom);
      return TRUE;
    }
fail:
  drover_message (req->target_vm, job, NULL, "restore of backup %s: %s",
                  req->backup_id, (*error)->message);
  push (call, PROTO_STOR_PHASE_FAILED, NULL, (*error)->message, NULL);
  return FALSE;
}

static gboolean
backup_call_run (AgentStream *stream, gpointer data, GError **error)
{
  BackupCall *call = data;
  const Drover__V1__AgentBackupRequest *req = call->req;
  Agent *agent = call->agent;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autoptr (StorRepo) repo = NULL;
  const char *job = req->job_id && *req->job_id ? req->job_id : NULL;
  AgentBackupJob j = { 0 };
  gboolean ok = FALSE;

  call->stream = stream;
  if (call->restore)
    return restore_call_run (call, error);
  if (!proto_name_validate ("VM", req->vm, error))
    goto fail;
  repo = agent_backup_repos_lookup (agent, req->repo, error);
  if (!repo)
    goto fail;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn || !agent_vm_claim (agent, req->vm, error))
    goto fail;
  dom = agent_vm_lookup (agent, conn, req->vm, error);
  if (dom)
    ok = backup_run (call, &j, conn, dom, req->vm, repo, error);
  agent_backup_job_end (&j, ok);
  agent_vm_release (agent, req->vm);
  if (ok)
    return TRUE;
fail:
  drover_message (req->vm, job, NULL, "backup: %s", (*error)->message);
  push (call, PROTO_STOR_PHASE_FAILED, NULL, (*error)->message,
        call->backup_id);
  return FALSE;
}

static void
backup_call_free (gpointer data)
{
  BackupCall *call = data;

  agent_unref (call->agent);
  g_free (call->note);
  g_free (call->backup_id);
  g_free (call);
}

static void
start (ProtoServerCall *call, const ProtobufCMessage *req, gpointer data,
       gboolean restore, const char *thread)
{
  Agent *agent = data;
  BackupCall *bc = g_new0 (BackupCall, 1);

  bc->agent = agent_ref (agent);
  bc->req = (const void *)req;
  bc->restore = restore;
  agent_stream_start (call, agent->ctx, thread, backup_call_run, bc,
                      backup_call_free);
}

void
agent_backup_create (ProtoServerCall *call, const ProtobufCMessage *req,
                     gpointer data)
{
  start (call, req, data, FALSE, "backup-create");
}

void
agent_backup_restore (ProtoServerCall *call, const ProtobufCMessage *req,
                      gpointer data)
{
  start (call, req, data, TRUE, "backup-restore");
}
