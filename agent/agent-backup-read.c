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
 *
 * Storing a chunk (SHA-256, lz4, a file written and fsynced) costs more
 * than reading it, so the two overlap: this thread classifies, reads and
 * records holes and clean chunks in disk order, and hands each data
 * chunk to a pool of workers (two per CPU) that put it. The writer
 * records chunks by index, so the order they land in does not matter.
 * Buffers come from a fixed set of AGENT_BACKUP_READ_BUFFERS: when all
 * are in use, reading waits for a worker to give one back, which keeps
 * memory bounded and the reader from racing ahead of the disk.
 *
 * Timeline of an error in a worker W while the reader is at chunk K:
 *   W: put fails -> first error set (later ones dropped), buffer back
 *   R: next buffer wait or next chunk sees the error, stops reading
 *   other workers: chunks not yet started are skipped, buffers back
 *   R: waits for the pool to drain, frees every buffer, returns W's error
 */
#include "agent-backup-read.h"

#include <string.h>

#include "agent.h"

/* The reader's chunks are the repository's. */
G_STATIC_ASSERT (AGENT_BACKUP_CHUNK == STOR_REPO_CHUNK_SIZE);

/* A worker spends part of each put waiting for its fsyncs (the chunk
 * file, then its directory): with two per CPU the CPUs keep hashing and
 * compressing meanwhile. tests/bench/backup, 1 GiB, four alternating
 * pairs: 1.6-2.9 s against 2.0-3.6 s with one per CPU, faster in each
 * pair. Memory stays bounded by the buffers, not the workers. */
#define WORKERS_PER_CPU 2

/* One read: the reader, the workers and what they share. */
typedef struct
{
  const AgentBackupSinkOps *ops;
  gpointer sink;
  GThreadPool *pool;
  guint8 *bufs[AGENT_BACKUP_READ_BUFFERS]; /* every buffer, freed at the end */
  guint n_bufs;                            /* allocated so far (reader only) */

  GMutex lock;
  GCond cond;
  /* Guarded by LOCK: */
  GPtrArray *free_bufs; /* buffers nobody uses */
  GError *error;        /* the first failure; later ones are dropped */
  guint64 data_chunks;  /* put by the workers */
} Pipeline;

/* A data chunk on its way to a worker. */
typedef struct
{
  guint64 index;
  guint8 *buf;
  gsize len;
} Job;

static void
pipeline_fail (Pipeline *p, GError *error)
{
  g_mutex_lock (&p->lock);
  if (!p->error)
    p->error = g_steal_pointer (&error);
  g_cond_broadcast (&p->cond);
  g_mutex_unlock (&p->lock);
  g_clear_error (&error);
}

static void
pipeline_give_back (Pipeline *p, guint8 *buf, gboolean stored)
{
  g_mutex_lock (&p->lock);
  g_ptr_array_add (p->free_bufs, buf);
  p->data_chunks += stored;
  g_cond_signal (&p->cond);
  g_mutex_unlock (&p->lock);
}

static gboolean
pipeline_failed (Pipeline *p)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&p->lock);

  return p->error != NULL;
}

static void
worker (gpointer data, gpointer user_data)
{
  g_autofree Job *job = data;
  Pipeline *p = user_data;
  GError *error = NULL;
  gboolean stored = FALSE;

  /* After a failure the chunks still queued are dropped, not stored. */
  if (!pipeline_failed (p))
    {
      stored = p->ops->put (p->sink, job->index, job->buf, job->len, &error);
      if (!stored)
        pipeline_fail (p, error);
    }
  pipeline_give_back (p, job->buf, stored);
}

/* A free buffer, or NULL once a failure is recorded. Waits while every
 * buffer is in use. */
static guint8 *
pipeline_take (Pipeline *p)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&p->lock);

  while (!p->error)
    {
      if (p->free_bufs->len)
        return g_ptr_array_steal_index_fast (p->free_bufs,
                                             p->free_bufs->len - 1);
      if (p->n_bufs < AGENT_BACKUP_READ_BUFFERS)
        {
          /* Allocated only when needed: a small disk uses few. */
          p->bufs[p->n_bufs] = g_malloc (AGENT_BACKUP_CHUNK);
          return p->bufs[p->n_bufs++];
        }
      g_cond_wait (&p->cond, &p->lock);
    }
  return NULL;
}

static gboolean
pipeline_init (Pipeline *p, const AgentBackupSinkOps *ops, gpointer sink,
               GError **error)
{
  memset (p, 0, sizeof *p);
  p->ops = ops;
  p->sink = sink;
  g_mutex_init (&p->lock);
  g_cond_init (&p->cond);
  p->free_bufs = g_ptr_array_new ();
  p->pool = g_thread_pool_new (
      worker, p, WORKERS_PER_CPU * MAX (1, g_get_num_processors ()), FALSE,
      error);
  return p->pool != NULL;
}

/* Waits for every queued chunk to be put (or dropped), then frees all. */
static void
pipeline_finish (Pipeline *p)
{
  if (p->pool)
    g_thread_pool_free (p->pool, FALSE, TRUE);
  for (guint i = 0; i < p->n_bufs; i++)
    g_free (p->bufs[i]);
  g_ptr_array_unref (p->free_bufs);
  g_clear_error (&p->error);
  g_cond_clear (&p->cond);
  g_mutex_clear (&p->lock);
}

/* Brings the workers' counts into S. */
static void
pipeline_sync (Pipeline *p, AgentBackupStats *s, guint64 added_before)
{
  g_mutex_lock (&p->lock);
  s->data_chunks = p->data_chunks;
  g_mutex_unlock (&p->lock);
  s->bytes_new = p->ops->added (p->sink) - added_before;
}

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

/* Reads data chunk INDEX into a free buffer and queues it for a worker;
 * one that reads as zeros is recorded as a hole here instead. FALSE
 * without ERROR: a worker failed (its error is the pipeline's). */
static gboolean
read_data (Pipeline *p, AgentBackupNbd *n, guint64 index, AgentBackupStats *s,
           GError **error)
{
  guint8 *buf = pipeline_take (p);
  Job *job;
  gsize len;
  guint64 read;

  if (!buf)
    return FALSE;
  if (!agent_backup_nbd_read (n, index, buf, &len, &read, error))
    {
      pipeline_give_back (p, buf, FALSE);
      return FALSE;
    }
  s->bytes_read += read;
  if (stor_repo_is_zero (buf, len))
    {
      pipeline_give_back (p, buf, FALSE);
      s->hole_chunks++;
      return p->ops->hole (p->sink, index, len, error);
    }
  job = g_new (Job, 1);
  *job = (Job){ index, buf, len };
  /* A pool that cannot start a thread still queues the job for the
   * threads it has: only the error needs reporting. */
  return g_thread_pool_push (p->pool, job, error);
}

/* The chunk loop, in disk order, feeding the pipeline. FALSE without
 * ERROR: a worker failed. */
static gboolean
read_chunks (Pipeline *p, AgentBackupNbd *n, const GArray *kinds,
             GHashTable *picked, guint8 *check_buf, AgentBackupStats *s,
             guint64 added_before, AgentBackupProgressFunc progress,
             gpointer progress_data, gboolean *lied, GCancellable *cancellable,
             GError **error)
{
  const AgentBackupSinkOps *ops = p->ops;

  for (guint64 i = 0; i < s->chunks; i++)
    {
      gint64 key = i;
      gboolean ok = TRUE;

      if (g_cancellable_set_error_if_cancelled (cancellable, error)
          || pipeline_failed (p))
        return FALSE;
      switch (g_array_index (kinds, guint8, i))
        {
        case AGENT_BACKUP_CHUNK_HOLE:
          s->hole_chunks++;
          ok = ops->hole (p->sink, i, agent_backup_nbd_chunk_len (n, i), error);
          break;
        case AGENT_BACKUP_CHUNK_CLEAN:
          if (g_hash_table_contains (picked, &key)
              && !check_clean (n, i, check_buf, ops, p->sink, s, lied, error))
            return FALSE;
          s->clean_chunks++;
          ok = ops->reuse (p->sink, i, error);
          break;
        default:
          ok = read_data (p, n, i, s, error);
          break;
        }
      if (!ok)
        return FALSE;
      if (i + 1 < s->chunks)
        {
          pipeline_sync (p, s, added_before);
          report (s, progress, progress_data);
        }
    }
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
  g_autofree guint8 *check_buf = NULL;
  GError *local = NULL;
  guint64 clean = 0, added_before;
  Pipeline p;
  gboolean ok;

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
  /* Sampled clean chunks are compared here, in order, not by workers. */
  if (g_hash_table_size (picked))
    check_buf = g_malloc (AGENT_BACKUP_CHUNK);
  added_before = ops->added (sink);
  if (!pipeline_init (&p, ops, sink, error))
    {
      pipeline_finish (&p);
      return FALSE;
    }
  /* The reader's own failure goes where the workers' go, so that the
   * first one wins and the chunks still queued are dropped. */
  if (!read_chunks (&p, n, kinds, picked, check_buf, s, added_before, progress,
                    progress_data, lied, cancellable, &local)
      && local)
    pipeline_fail (&p, local);
  /* Every worker done before the result is known: a put that fails
   * while the reader finishes still fails the read. */
  g_thread_pool_free (g_steal_pointer (&p.pool), FALSE, TRUE);
  pipeline_sync (&p, s, added_before);
  ok = !p.error;
  if (!ok)
    g_propagate_error (error, g_steal_pointer (&p.error));
  pipeline_finish (&p);
  if (ok)
    report (s, progress, progress_data);
  return ok;
}
