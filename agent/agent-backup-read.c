/* The backup engine's read loop.
 *
 * First every chunk is classified (block status only, no data): holes,
 * chunks the bitmap calls clean, and data. That gives the progress its
 * total before anything is read. Then, in disk order, holes are recorded,
 * clean chunks refer to the parent's, data chunks are read (their zero
 * extents are not) and handed over; a data chunk that turns out all zero
 * is recorded as a hole, so restores keep it sparse.
 *
 * A dirty bitmap can lie (a crash, a bug, a snapshot operation that lost
 * a bitmap): then the incremental would silently miss changes. So a few
 * chunks it calls clean, picked at random, are read and hashed anyway;
 * one that differs from the parent's fails the backup.
 */
#include "agent-backup-read.h"

#include <string.h>

#include "agent.h"

/* The reader's chunks are the repository's. */
G_STATIC_ASSERT (AGENT_BACKUP_CHUNK == STOR_REPO_CHUNK_SIZE);

static void
report (AgentBackupStats *s, AgentBackupProgressFunc progress, gpointer data)
{
  double elapsed = (g_get_monotonic_time () - s->started_us) / 1e6;

  s->rate = elapsed > 0 ? s->bytes_read / elapsed : 0;
  s->eta_s = s->rate > 0 && s->to_read >= s->bytes_read
                 ? (s->to_read - s->bytes_read) / s->rate
                 : -1;
  if (progress)
    progress (s, data);
}

/* Marks SAMPLE of the clean chunks in KINDS for checking (randomly). */
static GHashTable *
pick_sample (const GArray *kinds, guint64 clean, guint64 sample)
{
  GHashTable *picked
      = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr (GArray) pool = g_array_new (FALSE, FALSE, sizeof (gint64));

  if (sample == 0)
    sample = MAX (2, clean / 100);
  sample = MIN (sample, clean);
  for (guint i = 0; i < kinds->len; i++)
    if (g_array_index (kinds, guint8, i) == AGENT_BACKUP_CHUNK_CLEAN)
      {
        gint64 index = i;
        g_array_append_val (pool, index);
      }
  /* A partial Fisher-Yates shuffle: the first SAMPLE are the pick. */
  for (guint64 i = 0; i < sample; i++)
    {
      guint j = g_random_int_range (i, pool->len);
      gint64 t = g_array_index (pool, gint64, j);

      g_array_index (pool, gint64, j) = g_array_index (pool, gint64, i);
      g_array_index (pool, gint64, i) = t;
      g_hash_table_add (picked, g_memdup2 (&g_array_index (pool, gint64, i),
                                           sizeof (gint64)));
    }
  return picked;
}

/* Reads clean chunk INDEX and compares it with the parent's. */
static gboolean
check_clean (AgentBackupNbd *n, guint64 index, guint8 *buf,
             const AgentBackupSinkOps *ops, gpointer sink, AgentBackupStats *s,
             gboolean *lied, GError **error)
{
  StorRepoDigest want, have;
  gboolean parent_hole = FALSE, same;
  gsize len;
  guint64 read;

  if (!agent_backup_nbd_read (n, index, buf, &len, &read, error)
      || !ops->parent_digest (sink, index, &want, &parent_hole, error))
    return FALSE;
  s->bytes_read += read;
  s->sampled++;
  if (parent_hole)
    same = stor_repo_is_zero (buf, len);
  else
    {
      stor_repo_digest (buf, len, &have);
      same = memcmp (&want, &have, sizeof want) == 0;
    }
  if (!same)
    {
      *lied = TRUE;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the dirty bitmap calls chunk %" G_GUINT64_FORMAT
                   " (disk offset %" G_GUINT64_FORMAT
                   ") unchanged but it differs from the parent backup's: "
                   "the bitmap cannot be trusted, the next backup is full",
                   index, index * (guint64)AGENT_BACKUP_CHUNK);
      return FALSE;
    }
  return TRUE;
}

static gboolean
store_data (AgentBackupNbd *n, guint64 index, guint8 *buf,
            const AgentBackupSinkOps *ops, gpointer sink, AgentBackupStats *s,
            GError **error)
{
  gsize len;
  guint64 read, added = 0;

  if (!agent_backup_nbd_read (n, index, buf, &len, &read, error))
    return FALSE;
  s->bytes_read += read;
  if (stor_repo_is_zero (buf, len))
    {
      s->hole_chunks++;
      return ops->hole (sink, index, len, error);
    }
  if (!ops->put (sink, index, buf, len, &added, error))
    return FALSE;
  s->data_chunks++;
  s->bytes_new += added;
  return TRUE;
}

gboolean
agent_backup_read_disk (AgentBackupNbd *n, gboolean incremental, guint64 sample,
                        const AgentBackupSinkOps *ops, gpointer sink,
                        AgentBackupProgressFunc progress,
                        gpointer progress_data, AgentBackupStats *stats,
                        gboolean *lied, GCancellable *cancellable,
                        GError **error)
{
  AgentBackupStats *s = stats;
  g_autoptr (GArray) kinds = g_array_new (FALSE, FALSE, sizeof (guint8));
  g_autoptr (GHashTable) picked = NULL;
  g_autofree guint8 *buf = NULL;
  guint64 clean = 0;

  memset (s, 0, sizeof *s);
  *lied = FALSE;
  s->started_us = g_get_monotonic_time ();
  s->disk_size = agent_backup_nbd_size (n);
  s->chunks = agent_backup_nbd_chunks (n);
  for (guint64 i = 0; i < s->chunks; i++)
    {
      AgentBackupChunkKind kind;
      guint8 k;

      if (!agent_backup_nbd_classify (n, i, &kind, error))
        return FALSE;
      if (kind == AGENT_BACKUP_CHUNK_CLEAN && !incremental)
        kind = AGENT_BACKUP_CHUNK_DATA;
      k = kind;
      g_array_append_val (kinds, k);
      if (kind == AGENT_BACKUP_CHUNK_DATA)
        s->to_read += agent_backup_nbd_chunk_len (n, i);
      clean += kind == AGENT_BACKUP_CHUNK_CLEAN;
    }
  picked = pick_sample (kinds, clean, sample);
  s->to_read += g_hash_table_size (picked) * (guint64)AGENT_BACKUP_CHUNK;
  report (s, progress, progress_data);
  buf = g_malloc (AGENT_BACKUP_CHUNK);
  for (guint64 i = 0; i < s->chunks; i++)
    {
      gint64 key = i;
      gboolean ok = TRUE;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      switch (g_array_index (kinds, guint8, i))
        {
        case AGENT_BACKUP_CHUNK_HOLE:
          s->hole_chunks++;
          ok = ops->hole (sink, i, agent_backup_nbd_chunk_len (n, i), error);
          break;
        case AGENT_BACKUP_CHUNK_CLEAN:
          if (g_hash_table_contains (picked, &key)
              && !check_clean (n, i, buf, ops, sink, s, lied, error))
            return FALSE;
          s->clean_chunks++;
          ok = ops->reuse (sink, i, error);
          break;
        default:
          ok = store_data (n, i, buf, ops, sink, s, error);
          break;
        }
      if (!ok)
        return FALSE;
      report (s, progress, progress_data);
    }
  return TRUE;
}
