/* What the agent's backup files share: agent-backup.c (the call, the
 * engine), agent-backup-job.c (libvirt's checkpoint and pull-mode backup
 * job) and agent-backup-nbd.c (reading the export). Nothing else
 * includes this. */
#pragma once

#include "agent-backup-nbd.h"
#include "agent-backup-read.h"
#include "agent-private.h"

G_BEGIN_DECLS

/* Checkpoints Drover makes are named this prefix and the backup's id;
 * the newest is the next incremental's parent, the others are deleted. */
#define AGENT_BACKUP_CHECKPOINT_PREFIX "drover-bk-"
/* The disk Drover VMs have (agent-domain-xml.c) and libvirt's name of the
 * export's bitmap for an incremental backup of it. */
#define AGENT_BACKUP_DISK "vda"
#define AGENT_BACKUP_BITMAP "qemu:dirty-bitmap:backup-" AGENT_BACKUP_DISK

/* One backup's libvirt side, on the claimed VM. */
typedef struct
{
  Agent *agent;
  virConnectPtr conn;
  virDomainPtr dom;
  const char *vm;
  const char *job; /* may be NULL */
  char *dir;       /* DATA/backup/VM: the NBD socket and the scratch file */
  char *sock;
  char *scratch;
  char *checkpoint; /* drover-bk-ID, made with the job */
  gboolean begun;   /* libvirt's backup job runs: end it */
  gboolean quiesced;
} AgentBackupJob;

/* --- agent-backup-job.c ------------------------------------------------- */

/* DATA/backup/VM (VM validated; NULL with ERROR otherwise). */
char *agent_backup_dir (Agent *agent, const char *vm, GError **error);
/* Makes directory DIR (and its parents), 0750. */
gboolean agent_backup_mkdir (const char *dir, GError **error);
/* "drover-bk-ID" (free with g_free). */
char *agent_backup_checkpoint_name (const char *backup_id);
/* TRUE when DOM has libvirt checkpoint NAME. */
gboolean agent_backup_checkpoint_exists (virDomainPtr dom, const char *name);

/* Prepares J for VM's backup ID (paths; nothing made yet). */
gboolean agent_backup_job_init (AgentBackupJob *j, Agent *agent,
                                virConnectPtr conn, virDomainPtr dom,
                                const char *vm, const char *job,
                                const char *backup_id, GError **error);
/* Creates checkpoint drover-bk-ID together with a pull-mode backup job
 * whose NBD server listens on J->sock; incremental from checkpoint
 * PARENT when given. Guest filesystems are frozen around it when a
 * guest agent answers (J->quiesced). */
gboolean agent_backup_job_begin (AgentBackupJob *j, const char *parent,
                                 GError **error);
/* Ends libvirt's job and removes the socket and scratch file. After a
 * good backup (OK) deletes the VM's other drover-bk-* checkpoints (J's
 * is the next parent); after a failed one the checkpoint the job made,
 * so that the last good backup's stays the parent. Safe to call in any
 * state, more than once; frees J's strings. */
void agent_backup_job_end (AgentBackupJob *j, gboolean ok);

/* --- agent-backup-repo.c: the repository (storage/stor-repo.h) ---------- */

/* Opens the repository at PATH, making it first when the directory is
 * missing or empty (a repository given to an agent for the first time). */
StorRepo *agent_backup_repo_open (const char *path, GError **error);

/* The engine's sink: disk DISK of writer W. */
typedef struct
{
  StorRepoWriter *w;
  guint disk;
} AgentBackupSink;
extern const AgentBackupSinkOps agent_backup_sink_ops;

/* At start: what writers of this host left in each repository. */
void agent_backup_repos_recover (Agent *agent);

/* --- agent-backup-restore.c ---------------------------------------------- */

/* Starts qemu-nbd serving the qcow2 IMAGE (READ_ONLY, or writable) on
 * unix socket SOCK, and waits until it listens; its process in *PID. */
gboolean agent_backup_qemu_nbd_start (const char *image, const char *sock,
                                      gboolean read_only, GPid *pid,
                                      GError **error);
/* Ends the qemu-nbd of *PID (0: none), and clears it. */
/* Whether a unix socket listens at PATH (qemu-nbd binds before it
 * listens: a connect in between is refused). */
gboolean agent_backup_socket_listening (const char *path);
void agent_backup_qemu_nbd_stop (GPid *pid);

/* Writes disk vda of backup BACKUP_ID of REPO into the new qcow2 IMAGE
 * (missing), through qemu-nbd serving it on SOCK; holes are not
 * written. On failure IMAGE is removed. */
gboolean agent_backup_restore_image (StorRepo *repo, const char *backup_id,
                                     const char *image, const char *sock,
                                     GCancellable *cancellable,
                                     AgentBackupProgressFunc progress,
                                     gpointer data, AgentBackupStats *st,
                                     GError **error);
/* A stopped VM's disk is served read-only by qemu-nbd here (in
 * DATA/backup/VM) while it is backed up. */
#define AGENT_BACKUP_READ_SOCKET "read.sock"
/* A restore in place writes here (in DATA/backup/VM) first. */
#define AGENT_BACKUP_RESTORE_ASIDE "restore-aside.qcow2"

/* Restores backup BACKUP_ID of repository REPO to the new disk
 * DATA/disks/TARGET.qcow2 (TARGET validated; no VM or disk of that name
 * may exist), sparsely. On failure no file of it stays. KEEP_MARK: on
 * success the disk's .incoming mark stays, for the caller to remove once
 * a domain owns the disk. */
gboolean agent_backup_restore_run (Agent *agent, virConnectPtr conn,
                                   StorRepo *repo, const char *backup_id,
                                   const char *target, gboolean keep_mark,
                                   GCancellable *cancellable,
                                   AgentBackupProgressFunc progress,
                                   gpointer data, AgentBackupStats *st,
                                   GError **error);

/* Restores backup BACKUP_ID as the new VM REQUESTED (its name, vcpus,
 * memory, disk size = the backup's, kernel...): admitted here (name
 * claimed, memory), disk written, domain defined on it, started when
 * START. The domain, or NULL with ERROR: then nothing of the VM stays
 * (domain, disk, console log). */
virDomainPtr agent_backup_restore_vm (Agent *agent, virConnectPtr conn,
                                      StorRepo *repo, const char *backup_id,
                                      const Drover__V1__VmSpec *requested,
                                      gboolean start, GCancellable *cancellable,
                                      AgentBackupProgressFunc progress,
                                      gpointer data, AgentBackupStats *st,
                                      GError **error);
/* Replaces the disk of the stopped VM VM (DOM, claimed by the caller)
 * with backup BACKUP_ID of that VM: written aside, renamed over the disk
 * only once complete. Refuses a running VM and a VM not on its own plain
 * disk (AGENT_ERROR_PRECONDITION). On failure the disk is as it was. */
gboolean agent_backup_restore_in_place (
    Agent *agent, virDomainPtr dom, StorRepo *repo, const char *backup_id,
    const char *vm, GCancellable *cancellable, AgentBackupProgressFunc progress,
    gpointer data, AgentBackupStats *st, GError **error);

/* --- agent-backup.c, agent-backup-list.c ---------------------------------- */

/* The Backup message of manifest M of repository REPO (the VM's spec
 * from its domain XML's Drover metadata, NULL when it has none). Free
 * with proto_msg_free. */
Drover__V1__Backup *agent_backup_msg (const StorRepoManifest *m,
                                      const char *repo);

G_END_DECLS
