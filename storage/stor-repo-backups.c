/* The backups of a repository: listing the manifests in backups/ and
 * deleting one without pulling it from under a running incremental. */
#include "stor-repo-private.h"

#include <errno.h>
#include <glib/gstdio.h>

GPtrArray *
stor_repo_backup_ids (StorRepo *repo, GPtrArray *bad, GError **error)
{
  g_autofree char *dirpath = stor_repo_sub (repo, "backups", NULL);
  g_autoptr (GDir) dir = g_dir_open (dirpath, 0, error);
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (!dir)
    return NULL;
  while ((name = g_dir_read_name (dir)))
    {
      g_autofree char *id = NULL;

      if (!g_str_has_suffix (name, ".json"))
        {
          if (bad)
            g_ptr_array_add (bad, g_strdup_printf ("%s/%s: not a manifest name",
                                                   dirpath, name));
          continue;
        }
      id = g_strndup (name, strlen (name) - strlen (".json"));
      if (!stor_repo_id_validate (id, NULL))
        {
          if (bad)
            g_ptr_array_add (bad,
                             g_strdup_printf ("%s/%s: not a valid backup id",
                                              dirpath, name));
          continue;
        }
      g_ptr_array_add (ids, g_steal_pointer (&id));
    }
  return g_steal_pointer (&ids);
}

static int
newest_first (gconstpointer pa, gconstpointer pb)
{
  const StorRepoManifest *a = *(StorRepoManifest *const *)pa;
  const StorRepoManifest *b = *(StorRepoManifest *const *)pb;

  if (a->start_time != b->start_time)
    return a->start_time < b->start_time ? 1 : -1;
  return -strcmp (a->id, b->id);
}

GPtrArray *
stor_repo_list (StorRepo *repo, const char *vm, GPtrArray **bad, GError **error)
{
  g_autoptr (GPtrArray) bad_list = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) ids = stor_repo_backup_ids (repo, bad_list, error);
  g_autoptr (GPtrArray) out = NULL;
  g_autofree char *prefix = vm ? g_strconcat (vm, "-", NULL) : NULL;

  if (!ids)
    return NULL;
  out = g_ptr_array_new_with_free_func (
      (GDestroyNotify)stor_repo_manifest_free);
  for (guint i = 0; i < ids->len; i++)
    {
      const char *id = g_ptr_array_index (ids, i);
      g_autoptr (GError) local = NULL;
      StorRepoManifest *m;

      /* The id starts with the VM's name: skip other VMs unread (the
       * loaded manifest's vm is checked against its id). */
      if (prefix
          && (!g_str_has_prefix (id, prefix)
              || strlen (id) != strlen (prefix) + 23))
        continue;
      m = stor_repo_manifest_load (repo, id, &local);
      if (!m)
        {
          /* Deleted while we listed: not an error. */
          if (!g_error_matches (local, STOR_ERROR, STOR_ERROR_NOT_FOUND))
            g_ptr_array_add (bad_list, g_strdup (local->message));
          continue;
        }
      g_ptr_array_add (out, m);
    }
  g_ptr_array_sort (out, newest_first);
  if (bad)
    *bad = g_steal_pointer (&bad_list);
  return g_steal_pointer (&out);
}

/* Race with a writer beginning an incremental on ID (timeline):
 *   writer: register (parent ID)  -> load ID's manifest
 *   delete: rename ID away        -> list writers -> unlink or restore
 * If the writer loaded the manifest before the rename, its registration
 * was written before too, so delete sees it and puts ID back. If it
 * loads after the rename, it finds no parent and fails (the caller then
 * does a full). Either way no running writer refers to a deleted
 * backup's chunks, which gc may sweep. */
gboolean
stor_repo_delete (StorRepo *repo, const char *id, GError **error)
{
  g_autofree char *file = NULL;
  g_autofree char *path = NULL;
  g_autofree char *aside = NULL;
  g_autofree char *kind = NULL;
  g_autoptr (GPtrArray) writers = NULL;

  if (!stor_repo_id_validate (id, error))
    return FALSE;
  file = g_strconcat (id, ".json", NULL);
  path = stor_repo_sub (repo, "backups", file, NULL);
  /* The id in the name: a killed prune's leftover is judged by it at
   * recovery (stor_repo_recover). */
  kind = g_strconcat (id, ".deleting", NULL);
  aside = stor_repo_tmp_path (repo, kind);
  if (g_rename (path, aside) < 0)
    {
      int saved = errno;

      if (saved == ENOENT)
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_NOT_FOUND,
                       "no backup %s in repository %s", id, repo->path);
          return FALSE;
        }
      return stor_repo_errno (error, saved, "delete backup", path);
    }
  stor_repo_step ("prune-deleting");
  writers = stor_repo_writers (repo, NULL, error);
  for (guint i = 0; writers && i < writers->len; i++)
    {
      StorRepoWriterInfo *w = g_ptr_array_index (writers, i);

      if (w->parent && strcmp (w->parent, id) == 0)
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_BUSY,
                       "cannot delete backup %s: backup %s (host %s) is "
                       "being made on top of it",
                       id, w->backup, w->host);
          g_clear_pointer (&writers, g_ptr_array_unref);
          break;
        }
    }
  if (!writers)
    {
      /* Busy, or the writers could not be read: put it back. */
      g_rename (aside, path);
      return FALSE;
    }
  if (g_unlink (aside) < 0)
    return stor_repo_errno (error, errno, "remove", aside);
  return TRUE;
}
