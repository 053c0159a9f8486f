/* The backup engine's read loop: every chunk of a disk exported over NBD
 * into a sink (the repository's writer), reading only what a full or an
 * incremental backup needs, with a sample check of the dirty bitmap. */
#pragma once

#include <gio/gio.h>

#include "agent-backup-nbd.h"
#include "stor-repo.h"

G_BEGIN_DECLS

/* Where the chunks go, in disk order, each chunk exactly once. */
typedef struct
{
  /* Chunk INDEX has the LEN bytes at DATA; *ADDED: the bytes the
   * repository did not have yet (0 for a chunk it had). */
  gboolean (*put) (gpointer sink, guint64 index, const guint8 *data, gsize len,
                   guint64 *added, GError **error);
  /* Chunk INDEX (LEN bytes) reads as zeros. */
  gboolean (*hole) (gpointer sink, guint64 index, gsize len, GError **error);
  /* Chunk INDEX is the parent backup's (incremental only). */
  gboolean (*reuse) (gpointer sink, guint64 index, GError **error);
  /* The parent's chunk INDEX: its SHA-256 in DIGEST, or *HOLE. */
  gboolean (*parent_digest) (gpointer sink, guint64 index,
                             StorRepoDigest *digest, gboolean *hole,
                             GError **error);
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

/* Called after each chunk (and once at the start). */
typedef void (*AgentBackupProgressFunc) (const AgentBackupStats *stats,
                                         gpointer user_data);

/* Reads disk N into the sink; INCREMENTAL: N offers a dirty bitmap and
 * the sink a parent. SAMPLE: clean chunks to check (the larger of 2 and
 * 1 % when 0; G_MAXUINT64 checks all). On a bitmap that lied, ERROR says
 * which chunk and *LIED is set. Stops between chunks once CANCELLABLE
 * (may be NULL) is cancelled. */
gboolean agent_backup_read_disk (AgentBackupNbd *n, gboolean incremental,
                                 guint64 sample, const AgentBackupSinkOps *ops,
                                 gpointer sink,
                                 AgentBackupProgressFunc progress,
                                 gpointer progress_data,
                                 AgentBackupStats *stats, gboolean *lied,
                                 GCancellable *cancellable, GError **error);

G_END_DECLS
