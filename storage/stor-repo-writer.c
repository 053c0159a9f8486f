/* StorRepoWriter: one backup being written. It registers itself in
 * writers/ (so gc spares its chunks and delete spares its parent), takes
 * chunks from any number of threads, and commits the manifest last, when
 * every chunk it names is durable. */
#include "stor-repo-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

struct _StorRepoWriter
{
  StorRepo *repo; /* borrowed: outlives the writer */
  char *id;
  char *vm;
  char *vm_uuid;
  char *domain_xml;
  StorRepoManifest *parent; /* NULL: a full */
  char *registration;       /* writers/HOST~PID~ID.json */
  gint64 start;
  gboolean done; /* committed or aborted */

  GMutex lock;
  /* Guarded by LOCK: */
  GPtrArray *disks; /* StorRepoDisk */
  guint64 bytes_read, bytes_new, bytes_stored;
  gint64 last_touch; /* when the registration's mtime was last renewed */
};

static gboolean
register_writer (StorRepoWriter *w, GError **error)
{
  StorRepo *repo = w->repo;
  g_autofree char *name
      = g_strdup_printf ("%s~%d~%s.json", repo->host, (int)getpid (), w->id);
  g_autofree char *tmp = stor_repo_tmp_path (repo, "writer");
  g_autofree char *text = g_strdup_printf (
      "{\"host\": \"%s\", \"pid\": %d, \"start\": %" G_GINT64_FORMAT
      ", \"backup\": \"%s\", \"parent\": %s%s%s}\n",
      repo->host, (int)getpid (), w->start, w->id, w->parent ? "\"" : "",
      w->parent ? w->parent->id : "null", w->parent ? "\"" : "");

  w->registration = stor_repo_sub (repo, "writers", name, NULL);
  return stor_repo_write_file (tmp, w->registration, text, strlen (text),
                               error);
}

StorRepoWriter *
stor_repo_writer_begin (StorRepo *repo, const char *vm, const char *vm_uuid,
                        const char *domain_xml, const char *parent,
                        GError **error)
{
  g_autoptr (StorRepoWriter) w = NULL;
  StorRepoManifest *pm = NULL;

  if (!stor_name_check ("VM", vm, error))
    return NULL;
  if (!stor_repo_uuid_valid (vm_uuid) || !domain_xml
      || strlen (domain_xml) > STOR_REPO_MAX_XML
      || !g_utf8_validate (domain_xml, -1, NULL))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "cannot back up VM %s: bad UUID or domain XML (UTF-8, at "
                   "most %d bytes)",
                   vm, STOR_REPO_MAX_XML);
      return NULL;
    }
  if (parent && !stor_repo_id_validate (parent, error))
    return NULL;

  w = g_new0 (StorRepoWriter, 1);
  g_mutex_init (&w->lock);
  w->repo = repo;
  w->vm = g_strdup (vm);
  w->vm_uuid = g_strdup (vm_uuid);
  w->domain_xml = g_strdup (domain_xml);
  w->start = g_get_real_time () / G_USEC_PER_SEC;
  w->last_touch = w->start;
  w->id = stor_repo_id_new (vm, w->start);
  w->disks = stor_repo_disks_new ();
  if (parent)
    {
      /* Registered with the parent's id before the parent is read: the
       * order stor_repo_delete relies on. A placeholder manifest holds
       * the id until the real one is loaded. */
      pm = g_new0 (StorRepoManifest, 1);
      pm->id = g_strdup (parent);
      w->parent = pm;
    }
  if (!register_writer (w, error))
    {
      g_prefix_error (error, "cannot begin backup of VM %s: ", vm);
      g_clear_pointer (&w->registration, g_free); /* nothing to remove */
      w->done = TRUE;
      return NULL;
    }
  if (parent)
    {
      g_clear_pointer (&w->parent, stor_repo_manifest_free);
      w->parent = stor_repo_manifest_load (repo, parent, error);
      if (w->parent && strcmp (w->parent->vm, vm) != 0)
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                       "backup %s is of VM %s, not %s", parent, w->parent->vm,
                       vm);
          g_clear_pointer (&w->parent, stor_repo_manifest_free);
        }
      if (!w->parent)
        {
          g_prefix_error (error,
                          "cannot begin an incremental backup of VM %s: ", vm);
          return NULL; /* the autoptr aborts: registration removed */
        }
    }
  return g_steal_pointer (&w);
}

const char *
stor_repo_writer_id (StorRepoWriter *w)
{
  return w->id;
}

const StorRepoManifest *
stor_repo_writer_parent (StorRepoWriter *w)
{
  return w->parent;
}

gboolean
stor_repo_writer_add_disk (StorRepoWriter *w, const char *target, guint64 size,
                           guint *index, GError **error)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&w->lock);
  const StorRepoDisk *pd = NULL;
  StorRepoDisk *d;

  g_return_val_if_fail (!w->done, FALSE);
  for (guint i = 0; i < w->disks->len; i++)
    if (strcmp (((StorRepoDisk *)g_ptr_array_index (w->disks, i))->target,
                target)
        == 0)
      {
        g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                     "backup %s: disk %s added twice", w->id, target);
        return FALSE;
      }
  if (w->disks->len >= STOR_REPO_MAX_DISKS || size == 0
      || size > STOR_REPO_MAX_DISK_SIZE || !target || !*target
      || strlen (target) > 32
      || strspn (target, "abcdefghijklmnopqrstuvwxyz0123456789")
             != strlen (target))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "backup %s: cannot add disk '%s' of %" G_GUINT64_FORMAT
                   " bytes (a-z0-9 target, at most %d disks of at most 16 "
                   "TiB)",
                   w->id, target ? target : "", size, STOR_REPO_MAX_DISKS);
      return FALSE;
    }
  if (w->parent)
    {
      pd = stor_repo_manifest_disk (w->parent, target);
      if (!pd || pd->size != size)
        {
          g_set_error (
              error, STOR_ERROR, STOR_ERROR_FAILED,
              "backup %s: parent %s has no disk %s of %" G_GUINT64_FORMAT
              " bytes; an incremental backup cannot be made",
              w->id, w->parent->id, target, size);
          return FALSE;
        }
    }
  d = stor_repo_disk_new (target, size);
  if (pd)
    memcpy (d->chunks->data, pd->chunks->data,
            sizeof (StorRepoChunkRef) * pd->chunks->len);
  g_ptr_array_add (w->disks, d);
  if (index)
    *index = w->disks->len - 1;
  return TRUE;
}

/* Chunk slot INDEX of disk DISK, checking both and that LEN is its
 * length (LEN 0: any). Called with the lock held. */
static StorRepoChunkRef *
slot (StorRepoWriter *w, guint disk, guint64 index, gsize len, GError **error)
{
  StorRepoDisk *d;

  if (w->done || disk >= w->disks->len)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "backup %s: no disk %u (or the backup is over)", w->id,
                   disk);
      return NULL;
    }
  d = g_ptr_array_index (w->disks, disk);
  if (index >= d->chunks->len
      || (len && len != stor_repo_chunk_length (d, index)))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "backup %s: disk %s has no chunk %" G_GUINT64_FORMAT
                   " of %" G_GSIZE_FORMAT " bytes",
                   w->id, d->target, index, len);
      return NULL;
    }
  return &g_array_index (d->chunks, StorRepoChunkRef, index);
}

gboolean
stor_repo_writer_put (StorRepoWriter *w, guint disk, guint64 index,
                      const void *data, gsize len, GError **error)
{
  StorRepoChunkRef ref = { TRUE, { { 0 } } };
  StorRepoChunkRef *r;
  gboolean is_new = FALSE, touch;
  guint64 stored = 0;
  gint64 now;

  g_mutex_lock (&w->lock);
  r = slot (w, disk, index, len, error);
  g_mutex_unlock (&w->lock);
  if (!r)
    return FALSE;

  /* Hashing, compressing and writing happen outside the lock: that is
   * where the time goes, and what several threads share. */
  if (!stor_repo_is_zero (data, len))
    {
      if (!stor_repo_chunk_put (w->repo, data, len, &ref.digest, &is_new,
                                &stored, error))
        {
          g_prefix_error (error, "backup %s: ", w->id);
          return FALSE;
        }
      ref.hole = FALSE;
    }

  now = g_get_real_time () / G_USEC_PER_SEC;
  g_mutex_lock (&w->lock);
  /* Looked up again: add_disk may have grown the array meanwhile. */
  r = slot (w, disk, index, len, error);
  if (!r)
    {
      g_mutex_unlock (&w->lock);
      return FALSE;
    }
  *r = ref;
  w->bytes_read += len;
  if (is_new)
    {
      w->bytes_new += len;
      w->bytes_stored += stored;
    }
  /* A sign of life for gc, at most once a minute. */
  touch = now - w->last_touch >= 60;
  if (touch)
    w->last_touch = now;
  g_mutex_unlock (&w->lock);
  if (touch)
    utimensat (AT_FDCWD, w->registration, NULL, 0);
  return TRUE;
}

gboolean
stor_repo_writer_put_hole (StorRepoWriter *w, guint disk, guint64 index,
                           GError **error)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&w->lock);
  StorRepoChunkRef *r = slot (w, disk, index, 0, error);

  if (!r)
    return FALSE;
  r->hole = TRUE;
  memset (&r->digest, 0, sizeof r->digest);
  return TRUE;
}

void
stor_repo_writer_totals (StorRepoWriter *w, guint64 *bytes_read,
                         guint64 *bytes_new, guint64 *bytes_stored)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&w->lock);

  if (bytes_read)
    *bytes_read = w->bytes_read;
  if (bytes_new)
    *bytes_new = w->bytes_new;
  if (bytes_stored)
    *bytes_stored = w->bytes_stored;
}

gboolean
stor_repo_writer_commit (StorRepoWriter *w, const char *checkpoint,
                         StorRepoConsistency consistency, GError **error)
{
  g_autoptr (StorRepoManifest) m = g_new0 (StorRepoManifest, 1);
  g_autoptr (StorRepoManifest) check = NULL;
  g_autofree char *json = NULL;
  g_autofree char *file = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *tmp = NULL;
  gsize len = 0;

  g_return_val_if_fail (!w->done, FALSE);
  if (w->disks->len == 0)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "backup %s has no disk", w->id);
      stor_repo_writer_abort (w);
      return FALSE;
    }
  m->id = g_strdup (w->id);
  m->vm = g_strdup (w->vm);
  m->vm_uuid = g_strdup (w->vm_uuid);
  m->domain_xml = g_strdup (w->domain_xml);
  m->checkpoint = g_strdup (checkpoint);
  m->parent = w->parent ? g_strdup (w->parent->id) : NULL;
  m->kind = w->parent ? STOR_REPO_KIND_INCREMENTAL : STOR_REPO_KIND_FULL;
  m->consistency = consistency;
  m->start_time = w->start;
  m->end_time = MAX (w->start, g_get_real_time () / G_USEC_PER_SEC);
  stor_repo_writer_totals (w, &m->bytes_read, &m->bytes_new, &m->bytes_stored);
  m->disks = g_steal_pointer (&w->disks);
  w->disks = stor_repo_disks_new ();

  json = stor_repo_manifest_to_json (m, &len);
  /* What we write must read back: refuse here (a bad checkpoint name,
   * say) rather than leave a manifest nobody can load. */
  check = stor_repo_manifest_parse (json, len, m->id, error);
  if (!check)
    {
      stor_repo_writer_abort (w);
      return FALSE;
    }
  file = g_strconcat (w->id, ".json", NULL);
  dest = stor_repo_sub (w->repo, "backups", file, NULL);
  tmp = stor_repo_tmp_path (w->repo, "manifest");
  if (!stor_repo_write_file (tmp, dest, json, len, error))
    {
      /* The rename may have happened before the directory fsync failed:
       * the id is this writer's alone, so whatever is there is ours to
       * remove, and a failed commit leaves no manifest. */
      g_unlink (dest);
      g_prefix_error (error, "cannot commit backup %s of VM %s: ", w->id,
                      w->vm);
      stor_repo_writer_abort (w);
      return FALSE;
    }
  stor_repo_writer_abort (w); /* only unregisters now */
  return TRUE;
}

void
stor_repo_writer_abort (StorRepoWriter *w)
{
  if (w->done)
    return;
  w->done = TRUE;
  /* Every put removes its own temp file when it fails, so the
   * registration is all there is to undo; a process that dies leaves
   * its temp files to stor_repo_recover and gc. */
  if (w->registration)
    g_unlink (w->registration);
}

void
stor_repo_writer_free (StorRepoWriter *w)
{
  if (!w)
    return;
  stor_repo_writer_abort (w);
  g_free (w->id);
  g_free (w->vm);
  g_free (w->vm_uuid);
  g_free (w->domain_xml);
  g_free (w->registration);
  stor_repo_manifest_free (w->parent);
  g_clear_pointer (&w->disks, g_ptr_array_unref);
  g_mutex_clear (&w->lock);
  g_free (w);
}
