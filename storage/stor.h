/* libdrover-storage: VM disk images on the agent's data directory. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define STOR_ERROR (stor_error_quark ())
GQuark stor_error_quark (void);

typedef enum
{
  STOR_ERROR_FAILED,       /* qemu-img or the filesystem failed */
  STOR_ERROR_INVALID_NAME, /* name fails proto_name_validate */
  STOR_ERROR_EXISTS,       /* refusing to overwrite an existing image */
  STOR_ERROR_NO_SPACE,     /* not enough free space for the image */
} StorError;

/* Free space every new image must leave room for, on top of its qcow2
 * metadata: qcow2 is sparse, so this is a floor, not a reservation. */
#define STOR_MIN_FREE_SPACE (64 * 1024 * 1024)

/* Path of VM NAME's disk: DATA_DIR/disks/NAME.qcow2. Fails with
 * STOR_ERROR_INVALID_NAME when NAME is not a valid VM name (so it cannot
 * contain '/' or ".."). Free with g_free. */
char *stor_disk_path (const char *data_dir, const char *name, GError **error);

/* Creates a qcow2 image of SIZE bytes (virtual) at PATH by running
 * `qemu-img create -f qcow2 -q PATH SIZE`. Refuses an existing PATH and a
 * filesystem with less free space than STOR_MIN_FREE_SPACE plus the
 * image's metadata. On failure nothing is left at PATH. */
gboolean stor_disk_create (const char *path, guint64 size, GError **error);

/* Removes the image at PATH. A missing file is not an error. */
gboolean stor_disk_remove (const char *path, GError **error);

/* Space the filesystem holding DIR needs for a new image of SIZE bytes:
 * STOR_MIN_FREE_SPACE plus an estimate of its qcow2 metadata. */
guint64 stor_disk_space_needed (guint64 size);

/* Capacity and space available to unprivileged users of the filesystem
 * holding DIR (statvfs). Either out pointer may be NULL. */
gboolean stor_fs_space (const char *dir, guint64 *total, guint64 *avail,
                        GError **error);

G_END_DECLS
