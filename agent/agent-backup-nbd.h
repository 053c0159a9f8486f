/* AgentBackupNbd: reads a disk exported over NBD (libvirt's pull-mode
 * backup, or qemu-nbd) chunk by chunk, asking the server first which
 * chunks matter: base:allocation says where the holes are, and for an
 * incremental the qemu:dirty-bitmap context says which chunks changed.
 * Knows nothing of libvirt or of the repository. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Backups cut disks in chunks of this size, aligned to disk offsets (the
 * repository's format, docs/backup-format.md: STOR_REPO_CHUNK_SIZE). */
#define AGENT_BACKUP_CHUNK (4 * 1024 * 1024)

typedef enum
{
  AGENT_BACKUP_CHUNK_HOLE,  /* reads as zeros: recorded, not stored */
  AGENT_BACKUP_CHUNK_CLEAN, /* incremental: unchanged since the parent */
  AGENT_BACKUP_CHUNK_DATA,  /* to be read and stored */
} AgentBackupChunkKind;

typedef struct _AgentBackupNbd AgentBackupNbd;

/* Connects to the NBD server on unix socket SOCKET_PATH, export EXPORT
 * (NULL: the default one), read-only. BITMAP (NULL: a full read) is the
 * dirty bitmap context, "qemu:dirty-bitmap:backup-vda"; a server that does
 * not offer it is an error, never a silent full read. */
AgentBackupNbd *agent_backup_nbd_open (const char *socket_path,
                                       const char *export, const char *bitmap,
                                       GError **error);
void agent_backup_nbd_free (AgentBackupNbd *n);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentBackupNbd, agent_backup_nbd_free)

/* The export's size in bytes, and its number of chunks (the last may be
 * short). */
guint64 agent_backup_nbd_size (AgentBackupNbd *n);
guint64 agent_backup_nbd_chunks (AgentBackupNbd *n);
/* Length of chunk INDEX. */
gsize agent_backup_nbd_chunk_len (AgentBackupNbd *n, guint64 index);

/* What chunk INDEX is: a hole when every byte of it reads as zeros, clean
 * when an incremental's bitmap marks none of it dirty, data otherwise. */
gboolean agent_backup_nbd_classify (AgentBackupNbd *n, guint64 index,
                                    AgentBackupChunkKind *kind, GError **error);

/* Reads chunk INDEX into BUF (at least AGENT_BACKUP_CHUNK bytes); the
 * extents base:allocation calls zero are not read. *LEN: its length;
 * *READ: the bytes that crossed the socket. */
gboolean agent_backup_nbd_read (AgentBackupNbd *n, guint64 index, guint8 *buf,
                                gsize *len, guint64 *read, GError **error);

/* TRUE when LEN bytes at BUF are all zero. */
gboolean agent_backup_is_zero (const guint8 *buf, gsize len);

G_END_DECLS
