/* The repository (storage/stor-repo.h) as the backup engine uses it:
 * opened (and made, the first time) from an --backup-repo path, the
 * writer behind the read loop's sink. Which repositories there are is
 * agent-backup-repos.c's. */
#include "agent-backup-private.h"

#include <string.h>

StorRepo *
agent_backup_repo_open (const char *path, GError **error)
{
  g_autofree char *format = g_build_filename (path, "drover-repository", NULL);

  /* No format file: a new directory, an empty one, or one whose init
   * was cut short (a killed agent), which init finishes; init refuses
   * anything else, and open then says why. Two agents sharing the mount
   * may both try: both finish the same layout, or the loser's init
   * fails on the directory the winner filled, and its open then works. */
  if (!g_file_test (format, G_FILE_TEST_EXISTS))
    (void)stor_repo_init (path, NULL);
  return stor_repo_open (path, error);
}

/* Called from the read loop's workers, several at once: the writer's
 * put is thread-safe. */
static gboolean
sink_put (gpointer data, guint64 index, const guint8 *buf, gsize len,
          GError **error)
{
  AgentBackupSink *s = data;

  return stor_repo_writer_put (s->w, s->disk, index, buf, len, error);
}

static guint64
sink_added (gpointer data)
{
  AgentBackupSink *s = data;
  guint64 added = 0;

  stor_repo_writer_totals (s->w, NULL, &added, NULL);
  return added;
}

static gboolean
sink_hole (gpointer data, guint64 index, gsize len, GError **error)
{
  AgentBackupSink *s = data;

  return stor_repo_writer_put_hole (s->w, s->disk, index, error);
}

/* An incremental's chunks start as the parent's: nothing to do. */
static gboolean
sink_reuse (gpointer data, guint64 index, GError **error)
{
  return TRUE;
}

static gboolean
sink_parent_digest (gpointer data, guint64 index, StorRepoDigest *digest,
                    gboolean *hole, GError **error)
{
  AgentBackupSink *s = data;
  const StorRepoManifest *m = stor_repo_writer_parent (s->w);
  const StorRepoDisk *disk
      = m ? stor_repo_manifest_disk (m, AGENT_BACKUP_DISK) : NULL;
  const StorRepoChunkRef *ref;

  if (!disk || index >= disk->chunks->len)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the parent backup has no chunk %" G_GUINT64_FORMAT
                   " of disk " AGENT_BACKUP_DISK,
                   index);
      return FALSE;
    }
  ref = &g_array_index (disk->chunks, StorRepoChunkRef, index);
  *hole = ref->hole;
  *digest = ref->digest;
  return TRUE;
}

const AgentBackupSinkOps agent_backup_sink_ops
    = { sink_put, sink_hole, sink_reuse, sink_parent_digest, sink_added };
