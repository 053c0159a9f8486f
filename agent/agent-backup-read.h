/* The backup engine's read loop: every chunk of a disk exported over NBD
 * into a sink (the repository's writer), reading only what a full or an
 * incremental backup needs, with a sample check of the dirty bitmap. */
#pragma once

#include <gio/gio.h>

#include "agent-backup-nbd.h"
#include "stor-repo.h"

G_BEGIN_DECLS

/* Chunks held in memory at once by a read (4 MiB each): read and waiting
 * for a worker, or being put. */
#define AGENT_BACKUP_READ_BUFFERS 8

/* Where the chunks go, each chunk exactly once. PUT is called from the
 * read loop's worker threads, several at once and in any order (it is
 * where hashing, compressing and writing happen); every other op from
 * the caller's thread, in disk order. */
typedef struct
{
  /* Chunk INDEX has the LEN bytes at DATA. Thread-safe. */
  gboolean (*put) (gpointer sink, guint64 index, const guint8 *data, gsize len,
                   GError **error);
  /* Chunk INDEX (LEN bytes) reads as zeros. */
  gboolean (*hole) (gpointer sink, guint64 index, gsize len, GError **error);
  /* Chunk INDEX is the parent backup's (incremental only). */
  gboolean (*reuse) (gpointer sink, guint64 index, GError **error);
  /* The parent's chunk INDEX: its SHA-256 in DIGEST, or *HOLE. */
  gboolean (*parent_digest) (gpointer sink, guint64 index,
                             StorRepoDigest *digest, gboolean *hole,
                             GError **error);
  /* Bytes the sink's puts added to the repository so far (a chunk it
   * already had adds 0). Thread-safe. */
  guint64 (*added) (gpointer sink);
} AgentBackupSinkOps;

typedef struct
{
  guint64 disk_size;
  guint64 chunks;
  guint64 data_chunks;  /* read and stored */
  guint64 hole_chunks;  /* recorded only */
  guint64 clean_chunks; /* the parent's */
  guint64 sampled;      /* clean chunks read and compared */
  guint64 to_read;      /* bytes the data chunks span (the progress total) */
  guint64 bytes_read;   /* bytes that crossed the NBD socket */
  guint64 bytes_new;    /* bytes new to the repository */
  gint64 started_us;    /* monotonic */
  double rate;          /* bytes read per second so far */
  double eta_s;         /* -1: unknown */
} AgentBackupStats;

/* Progress of a backup's read (or a restore's write). The read loop
 * calls it once at the start, after each chunk but the last, and once
 * more when every chunk is in the sink, always from the caller's
 * thread. */
typedef void (*AgentBackupProgressFunc) (const AgentBackupStats *stats,
                                         gpointer user_data);

/* Reads disk N into the sink; INCREMENTAL: N offers a dirty bitmap and
 * the sink a parent. SAMPLE: clean chunks to check (the larger of 2 and
 * 1 % when 0; G_MAXUINT64 checks all). On a bitmap that lied, ERROR says
 * which chunk and *LIED is set. Stops between chunks once CANCELLABLE
 * (may be NULL) is cancelled.
 *
 * Reading overlaps storing: while this thread reads the next chunks over
 * NBD, up to two workers per CPU put the ones already read, with at most
 * AGENT_BACKUP_READ_BUFFERS chunks in memory. Whatever fails first (a
 * read, a put, the sink, a cancel) is the error returned; the other
 * chunks in flight are dropped, and on return no worker runs and no
 * buffer is left. */
gboolean agent_backup_read_disk (AgentBackupNbd *n, gboolean incremental,
                                 guint64 sample, const AgentBackupSinkOps *ops,
                                 gpointer sink,
                                 AgentBackupProgressFunc progress,
                                 gpointer progress_data,
                                 AgentBackupStats *stats, gboolean *lied,
                                 GCancellable *cancellable, GError **error);

G_END_DECLS
