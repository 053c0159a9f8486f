/* Reading the repository back: restore's chunk reads, verify (every
 * chunk a set of backups needs, rehashed once) and status. */
#include "stor-repo-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

gboolean
stor_repo_disk_read (StorRepo *repo, const StorRepoDisk *disk, guint64 index,
                     GBytes **data, GError **error)
{
  const StorRepoChunkRef *r;

  *data = NULL;
  if (index >= disk->chunks->len)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "disk %s has no chunk %" G_GUINT64_FORMAT, disk->target,
                   index);
      return FALSE;
    }
  r = &g_array_index (disk->chunks, StorRepoChunkRef, index);
  if (r->hole)
    return TRUE;
  *data = stor_repo_chunk_get (repo, &r->digest,
                               stor_repo_chunk_length (disk, index), error);
  if (!*data)
    {
      g_prefix_error (error, "disk %s, chunk %" G_GUINT64_FORMAT ": ",
                      disk->target, index);
      return FALSE;
    }
  return TRUE;
}

static void
chunk_use_free (StorRepoChunkUse *use)
{
  g_clear_pointer (&use->ids, g_ptr_array_unref);
  g_free (use);
}

GHashTable *
stor_repo_uses_new (void)
{
  return stor_repo_digest_table_new ((GDestroyNotify)chunk_use_free);
}

guint64
stor_repo_uses_add (GHashTable *uses, const StorRepoManifest *m,
                    gboolean with_ids)
{
  guint64 data_bytes = 0;

  for (guint i = 0; i < m->disks->len; i++)
    {
      const StorRepoDisk *d = g_ptr_array_index (m->disks, i);

      for (guint j = 0; j < d->chunks->len; j++)
        {
          const StorRepoChunkRef *r
              = &g_array_index (d->chunks, StorRepoChunkRef, j);
          StorRepoChunkUse *use;

          if (r->hole)
            continue;
          data_bytes += stor_repo_chunk_length (d, j);
          use = g_hash_table_lookup (uses, &r->digest);
          if (!use)
            {
              use = g_new0 (StorRepoChunkUse, 1);
              use->length = stor_repo_chunk_length (d, j);
              if (with_ids)
                use->ids = g_ptr_array_new_with_free_func (g_free);
              g_hash_table_insert (
                  uses, g_memdup2 (&r->digest, sizeof r->digest), use);
            }
          /* Chunks of one backup come together: a repeat is the last. */
          if (use->ids
              && (use->ids->len == 0
                  || strcmp (g_ptr_array_index (use->ids, use->ids->len - 1),
                             m->id)
                         != 0))
            g_ptr_array_add (use->ids, g_strdup (m->id));
        }
    }
  return data_bytes;
}

void
stor_repo_verify_result_free (StorRepoVerifyResult *result)
{
  if (!result)
    return;
  g_clear_pointer (&result->bad, g_ptr_array_unref);
  g_clear_pointer (&result->bad_manifests, g_ptr_array_unref);
  g_free (result);
}

static void
bad_chunk_free (StorRepoBadChunk *bad)
{
  g_free (bad->message);
  g_clear_pointer (&bad->backups, g_ptr_array_unref);
  g_free (bad);
}

/* What the rehashing threads share. */
typedef struct
{
  StorRepo *repo;
  GPtrArray *keys; /* StorRepoDigest *, the chunks to check */
  GPtrArray *uses; /* StorRepoChunkUse *, same order */
  GCancellable *cancellable;
  gint next; /* next index to take (atomic) */
  GMutex lock;
  /* Guarded by LOCK: */
  StorRepoVerifyResult *res;
  guint64 done;
  StorRepoProgressFunc progress;
  gpointer user_data;
} Rehash;

static gpointer
rehash_thread (gpointer data)
{
  Rehash *r = data;
  gint i;

  while ((i = g_atomic_int_add (&r->next, 1)) < (gint)r->keys->len
         && !g_cancellable_is_cancelled (r->cancellable))
    {
      const StorRepoDigest *key = g_ptr_array_index (r->keys, i);
      StorRepoChunkUse *use = g_ptr_array_index (r->uses, i);
      g_autoptr (GError) local = NULL;
      g_autoptr (GBytes) bytes
          = stor_repo_chunk_get (r->repo, key, use->length, &local);
      g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&r->lock);

      if (bytes)
        r->res->bytes += g_bytes_get_size (bytes);
      else
        {
          StorRepoBadChunk *bad = g_new0 (StorRepoBadChunk, 1);

          stor_repo_digest_hex (key, bad->digest);
          bad->message = g_strdup (local->message);
          bad->missing
              = g_error_matches (local, STOR_ERROR, STOR_ERROR_NOT_FOUND);
          bad->backups = g_steal_pointer (&use->ids);
          g_ptr_array_add (r->res->bad, bad);
        }
      r->res->chunks++;
      if (r->progress)
        r->progress (++r->done, r->keys->len, r->user_data);
    }
  return NULL;
}

/* Reads and rehashes every chunk of USES into RES, on one thread per
 * CPU (at most 8): hashing is the cost, and chunks are independent. */
static gboolean
rehash_all (StorRepo *repo, GHashTable *uses, StorRepoVerifyResult *res,
            StorRepoProgressFunc progress, gpointer user_data,
            GCancellable *cancellable, GError **error)
{
  Rehash r = { repo, g_ptr_array_new (), g_ptr_array_new (), cancellable, 0 };
  guint n = CLAMP (g_get_num_processors (), 1, 8);
  g_autofree GThread **threads = g_new0 (GThread *, n);
  GHashTableIter iter;
  gpointer key, value;

  g_mutex_init (&r.lock);
  r.res = res;
  r.progress = progress;
  r.user_data = user_data;
  g_hash_table_iter_init (&iter, uses);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      g_ptr_array_add (r.keys, key);
      g_ptr_array_add (r.uses, value);
    }
  for (guint t = 0; t < n; t++)
    threads[t] = g_thread_new ("stor-verify", rehash_thread, &r);
  for (guint t = 0; t < n; t++)
    g_thread_join (threads[t]);
  g_ptr_array_unref (r.keys);
  g_ptr_array_unref (r.uses);
  g_mutex_clear (&r.lock);
  return !g_cancellable_set_error_if_cancelled (cancellable, error);
}

StorRepoVerifyResult *
stor_repo_verify (StorRepo *repo, const char *const *ids,
                  StorRepoProgressFunc progress, gpointer user_data,
                  GCancellable *cancellable, GError **error)
{
  g_autoptr (StorRepoVerifyResult) res = g_new0 (StorRepoVerifyResult, 1);
  g_autoptr (GHashTable) uses = stor_repo_uses_new ();
  g_autoptr (GPtrArray) all = NULL;

  res->bad = g_ptr_array_new_with_free_func ((GDestroyNotify)bad_chunk_free);
  res->bad_manifests = g_ptr_array_new_with_free_func (g_free);
  if (ids)
    {
      for (guint i = 0; ids[i]; i++)
        {
          g_autoptr (StorRepoManifest) m
              = stor_repo_manifest_load (repo, ids[i], error);

          if (!m)
            return NULL;
          stor_repo_uses_add (uses, m, TRUE);
          res->backups++;
        }
    }
  else
    {
      g_autoptr (GPtrArray) bad = NULL;

      all = stor_repo_list (repo, NULL, &bad, error);
      if (!all)
        return NULL;
      g_ptr_array_extend_and_steal (res->bad_manifests, g_steal_pointer (&bad));
      for (guint i = 0; i < all->len; i++)
        stor_repo_uses_add (uses, g_ptr_array_index (all, i), TRUE);
      res->backups = all->len;
    }

  if (!rehash_all (repo, uses, res, progress, user_data, cancellable, error))
    return NULL;
  /* The record is a convenience for status: failing to write it does
   * not undo the verify. */
  stor_repo_state_write (repo, "verify", "time",
                         g_get_real_time () / G_USEC_PER_SEC, "bad",
                         res->bad->len, NULL);
  return g_steal_pointer (&res);
}

/* Adds the allocated bytes of every file under DIR to *TOTAL. */
static void
du (const char *dir, guint64 *total)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d && (name = g_dir_read_name (d)))
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      struct stat st;

      if (lstat (path, &st) < 0)
        continue;
      *total += (guint64)st.st_blocks * 512;
      if (S_ISDIR (st.st_mode))
        du (path, total);
    }
}

gboolean
stor_repo_status (StorRepo *repo, StorRepoStatus *status, GError **error)
{
  g_autoptr (GPtrArray) all = stor_repo_list (repo, NULL, NULL, error);
  g_autofree char *chunks = stor_repo_sub (repo, "chunks", NULL);
  g_autoptr (GHashTable) uses = stor_repo_uses_new ();

  if (!all)
    return FALSE;
  memset (status, 0, sizeof *status);
  status->backups = all->len;
  for (guint i = 0; i < all->len; i++)
    status->logical_bytes
        += stor_repo_uses_add (uses, g_ptr_array_index (all, i), FALSE);
  for (guint i = 0; i < 256; i++)
    {
      char sub[3];
      g_autofree char *dirpath = NULL;
      g_autoptr (GDir) dir = NULL;
      const char *name;

      g_snprintf (sub, sizeof sub, "%02x", i);
      dirpath = g_build_filename (chunks, sub, NULL);
      dir = g_dir_open (dirpath, 0, NULL);
      while (dir && (name = g_dir_read_name (dir)))
        {
          StorRepoDigest digest;
          guint64 raw = 0, file = 0;

          /* A chunk whose header is bad is counted by verify, not here. */
          if (!stor_repo_digest_parse (name, &digest)
              || !stor_repo_chunk_sizes (repo, &digest, &raw, &file, NULL))
            continue;
          status->chunks++;
          status->raw_bytes += raw;
          status->stored_bytes += file;
        }
    }
  du (repo->path, &status->disk_bytes);
  if (status->raw_bytes)
    status->dedup_ratio = (double)status->logical_bytes / status->raw_bytes;
  if (status->stored_bytes)
    status->compression_ratio
        = (double)status->raw_bytes / status->stored_bytes;
  status->last_verify = stor_repo_state_read (repo, "verify", "time");
  status->last_gc = stor_repo_state_read (repo, "gc", "time");
  status->last_gc_freed = stor_repo_state_read (repo, "gc", "freed");
  return TRUE;
}
