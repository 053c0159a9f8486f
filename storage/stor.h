/* libdrover-storage: VM disk images on the agent's data directory. */
#pragma once

#include <gio/gio.h> /* GCancellable (copies) */

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

/* --- copies (stor-copy.c) ---------------------------------------------- */

/* Called from the copying thread with bytes written so far and the total
 * expected (qemu-img measure's "required"; 0 when unknown). */
typedef void (*StorCopyProgressFunc) (guint64 processed, guint64 total,
                                      gpointer user_data);

/* DST.part: where a copy or an overlay is made before it is renamed to
 * DST, so that DST is either whole or absent. Crash recovery removes it.
 * Free with g_free. */
char *stor_copy_temp_path (const char *dst);

/* Bytes a full copy of the chain whose top image is SRC needs (qemu-img
 * measure's "required": allocated data plus metadata). */
gboolean stor_copy_measure (const char *src, guint64 *required,
                            GError **error);

/* Copies the qcow2 chain whose top image is SRC into one independent,
 * sparse qcow2 image DST (no backing file) with `qemu-img convert`,
 * reporting progress through PROGRESS (may be NULL). Refuses an existing
 * DST (STOR_ERROR_EXISTS) and a filesystem without room for the copy plus
 * STOR_MIN_FREE_SPACE (STOR_ERROR_NO_SPACE); a disk that fills up midway
 * is STOR_ERROR_NO_SPACE too. The copy is written to DST.part, synced and
 * renamed; on failure or when CANCELLABLE fires (G_IO_ERROR_CANCELLED)
 * neither DST nor DST.part is left. Blocks: worker threads only. */
gboolean stor_copy_full (const char *src, const char *dst,
                         GCancellable *cancellable,
                         StorCopyProgressFunc progress, gpointer user_data,
                         GError **error);

/* Makes DST a new qcow2 overlay of SIZE bytes (virtual) whose backing
 * file is BASE (an absolute path, qcow2): a linked copy that shares BASE's
 * data and writes only its own changes. BASE must never be written again
 * while DST exists. Same refusals, temp name and no-leftover rule as
 * stor_copy_full. */
gboolean stor_copy_linked (const char *base, const char *dst, guint64 size,
                           GError **error);

G_END_DECLS
