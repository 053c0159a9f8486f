/* VM disk images: qcow2 files under DATA/disks, made by qemu-img. */
#include "stor-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sys/statvfs.h>
#include <unistd.h>

G_DEFINE_QUARK (drover_stor_error, stor_error)

char *
stor_disk_path (const char *data_dir, const char *name, GError **error)
{
  g_autofree char *file = NULL;

  /* The name check is what keeps the path inside DATA_DIR/disks. */
  if (!stor_name_check ("VM", name, error))
    return NULL;
  file = g_strconcat (name, ".qcow2", NULL);
  return g_build_filename (data_dir, "disks", file, NULL);
}

gboolean
stor_fs_space (const char *dir, guint64 *total, guint64 *avail, GError **error)
{
  struct statvfs st;

  if (statvfs (dir, &st) < 0)
    {
      int saved = errno;
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "cannot stat filesystem of %s: %s", dir, g_strerror (saved));
      return FALSE;
    }
  if (total)
    *total = (guint64)st.f_blocks * st.f_frsize;
  if (avail)
    *avail = (guint64)st.f_bavail * st.f_frsize;
  return TRUE;
}

guint64
stor_disk_space_needed (guint64 size)
{
  /* L2 tables take 8 bytes per 64 KiB cluster (size / 8192); refcounts
   * and headers fit in a generous extra MiB. */
  return STOR_MIN_FREE_SPACE + size / 8192 + 1024 * 1024;
}

gboolean
stor_disk_create (const char *path, guint64 size, GError **error)
{
  g_autofree char *size_str = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
  const char *argv[]
      = { "qemu-img", "create", "-f", "qcow2", "-q", path, size_str, NULL };

  if (size == 0)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "refusing to create an empty disk at %s", path);
      return FALSE;
    }
  return stor_image_make (path, "disk image", "a disk image",
                          stor_disk_space_needed (size) - STOR_MIN_FREE_SPACE,
                          argv, error);
}

gboolean
stor_disk_remove (const char *path, GError **error)
{
  if (g_unlink (path) < 0 && errno != ENOENT)
    {
      int saved = errno;
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "cannot remove disk image %s: %s", path, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}
