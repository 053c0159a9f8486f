/* Garbage collection of the backup repository: mark the chunks every
 * manifest (and every running writer's parent) refers to, sweep the
 * others that nobody touched recently. Safe while backups run; the
 * argument is in docs/backup-format.md ("Garbage collection"). */
#include "stor-repo-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* Suffix a chunk file carries while gc decides whether to remove it. */
#define SWEEP_SUFFIX ".gc"

void
stor_repo_gc_result_free (StorRepoGcResult *result)
{
  if (!result)
    return;
  g_clear_pointer (&result->stale_writers, g_ptr_array_unref);
  g_free (result);
}

/* Marks the chunks of every manifest not in SEEN yet; TRUE in *NEW when
 * there was one. A manifest that cannot be read stops gc: its chunks
 * cannot be told from garbage. */
static gboolean
mark_manifests (StorRepo *repo, GHashTable *seen, GHashTable *marks,
                gboolean *found_new, GError **error)
{
  g_autoptr (GPtrArray) ids = stor_repo_backup_ids (repo, NULL, error);

  *found_new = FALSE;
  if (!ids)
    return FALSE;
  for (guint i = 0; i < ids->len; i++)
    {
      const char *id = g_ptr_array_index (ids, i);
      g_autoptr (StorRepoManifest) m = NULL;
      g_autoptr (GError) local = NULL;

      if (g_hash_table_contains (seen, id))
        continue;
      m = stor_repo_manifest_load (repo, id, &local);
      if (!m && g_error_matches (local, STOR_ERROR, STOR_ERROR_NOT_FOUND))
        continue; /* deleted meanwhile */
      if (!m)
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                      "gc stopped, nothing swept: ");
          return FALSE;
        }
      stor_repo_uses_add (marks, m, FALSE);
      g_hash_table_add (seen, g_strdup (id));
      *found_new = TRUE;
    }
  return TRUE;
}

/* Sweeps one candidate chunk PATH (unmarked, mtime older than CUTOFF
 * when listed). The rename closes the race with a writer that touches
 * it meanwhile: a touch before the rename shows in the renamed file's
 * mtime (gc puts it back); a touch after it finds no file, and the
 * writer stores the chunk anew. */
static void
sweep_one (const char *path, gint64 cutoff, StorRepoGcResult *res)
{
  g_autofree char *aside = g_strconcat (path, SWEEP_SUFFIX, NULL);
  struct stat st;

  if (g_rename (path, aside) < 0)
    return;
  stor_repo_step ("gc-sweeping");
  if (stat (aside, &st) < 0)
    return;
  if (st.st_mtime >= cutoff)
    {
      /* In use after all. If a writer stored it again meanwhile, this
       * replaces it with the same bytes. */
      g_rename (aside, path);
      res->chunks_kept_recent++;
      return;
    }
  if (g_unlink (aside) == 0)
    {
      res->chunks_swept++;
      res->bytes_freed += (guint64)st.st_blocks * 512;
    }
}

static gboolean
sweep_chunks (StorRepo *repo, GHashTable *marks, gint64 cutoff,
              StorRepoGcResult *res, GCancellable *cancellable, GError **error)
{
  g_autofree char *chunks = stor_repo_sub (repo, "chunks", NULL);

  for (guint i = 0; i < 256; i++)
    {
      char sub[3];
      g_autofree char *dirpath = NULL;
      g_autoptr (GDir) dir = NULL;
      const char *name;

      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        return FALSE;
      g_snprintf (sub, sizeof sub, "%02x", i);
      dirpath = g_build_filename (chunks, sub, NULL);
      dir = g_dir_open (dirpath, 0, error);
      if (!dir)
        return FALSE;
      while ((name = g_dir_read_name (dir)))
        {
          g_autofree char *path = g_build_filename (dirpath, name, NULL);
          g_autofree char *base = g_strdup (name);
          StorRepoDigest digest;
          struct stat st;

          if (g_str_has_suffix (name, SWEEP_SUFFIX))
            {
              /* A gc killed mid-sweep left it aside: put it back, then
               * judge it as any other. Only an unreferenced chunk is
               * ever set aside; a writer that needed it since found no
               * file and stored it anew: that copy (its mtime recent)
               * stays, and the old one goes (link, not rename, so it
               * never replaces a new copy). Another gc's sweep_one in
               * flight just finds it gone. */
              g_autofree char *aside = g_steal_pointer (&path);

              base[strlen (base) - strlen (SWEEP_SUFFIX)] = '\0';
              path = g_build_filename (dirpath, base, NULL);
              if (link (aside, path) < 0 && errno != EEXIST)
                continue;
              g_unlink (aside);
            }
          if (!stor_repo_digest_parse (base, &digest)
              || g_hash_table_contains (marks, &digest))
            continue;
          if (stat (path, &st) < 0)
            continue;
          if (st.st_mtime >= cutoff)
            res->chunks_kept_recent++;
          else
            sweep_one (path, cutoff, res);
        }
    }
  return TRUE;
}

/* Removes temp files nobody has written for STOR_REPO_TMP_STALE_S. */
static void
sweep_tmp (StorRepo *repo, gint64 now, StorRepoGcResult *res)
{
  g_autofree char *dirpath = stor_repo_sub (repo, "tmp", NULL);
  g_autoptr (GDir) dir = g_dir_open (dirpath, 0, NULL);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    {
      g_autofree char *path = g_build_filename (dirpath, name, NULL);
      GStatBuf st;

      if (g_stat (path, &st) == 0 && now - st.st_mtime > STOR_REPO_TMP_STALE_S
          && g_unlink (path) == 0)
        res->tmp_removed++;
    }
}

StorRepoGcResult *
stor_repo_gc (StorRepo *repo, gint64 margin_s, GCancellable *cancellable,
              GError **error)
{
  g_autoptr (StorRepoGcResult) res = g_new0 (StorRepoGcResult, 1);
  g_autoptr (GHashTable) marks = stor_repo_uses_new ();
  g_autoptr (GHashTable) seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GPtrArray) writers = NULL;
  gint64 start = g_get_real_time () / G_USEC_PER_SEC;
  gint64 oldest = start;
  gboolean found_new = TRUE;

  res->stale_writers = g_ptr_array_new_with_free_func (g_free);
  /* Writers first: one that registers after this has a start time after
   * START, so the cutoff below spares everything it touches. */
  writers = stor_repo_writers (repo, res->stale_writers, error);
  if (!writers)
    {
      g_prefix_error (error, "gc stopped, nothing swept: ");
      return NULL;
    }
  for (guint i = 0; i < writers->len; i++)
    {
      StorRepoWriterInfo *w = g_ptr_array_index (writers, i);
      g_autoptr (StorRepoManifest) parent = NULL;

      oldest = MIN (oldest, w->start);
      /* Its parent's chunks will be in its manifest without a put:
       * stor_repo_delete keeps the parent while it runs; mark them in
       * case the parent is renamed aside for a delete right now. */
      if (w->parent
          && (parent = stor_repo_manifest_load (repo, w->parent, NULL)))
        {
          stor_repo_uses_add (marks, parent, FALSE);
          g_hash_table_add (seen, g_strdup (parent->id));
        }
    }
  /* Until no new manifest appears: one committed while we marked
   * refers to chunks we must not miss. */
  while (found_new)
    {
      if (g_cancellable_set_error_if_cancelled (cancellable, error)
          || !mark_manifests (repo, seen, marks, &found_new, error))
        return NULL;
    }
  res->chunks_marked = g_hash_table_size (marks);
  stor_repo_step ("gc-marked");
  if (!sweep_chunks (repo, marks, oldest - margin_s, res, cancellable, error))
    return NULL;
  sweep_tmp (repo, start, res);
  stor_repo_state_write (repo, "gc", "time", start, "freed", res->bytes_freed,
                         NULL);
  return g_steal_pointer (&res);
}
