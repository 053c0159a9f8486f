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
  STOR_ERROR_CORRUPT,      /* a repository file failed a check (stor-repo.h) */
  STOR_ERROR_NOT_FOUND,    /* no such backup or chunk */
  STOR_ERROR_BUSY,         /* a running backup needs it */
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

/* --- image chains ------------------------------------------------------ */

/* Snapshots and their images live apart from the VM's first image:
 * DATA/snapshots/VM/N.qcow2 (overlays, N a number the agent allocates)
 * and DATA/snapshots/VM/SNAP.mem (memory state of snapshot SNAP). The
 * VM's first image stays DATA/disks/VM.qcow2 (see docs/storage.md). */

/* One image of a chain, as qemu-img reports it. */
typedef struct
{
  char *path;           /* as qemu-img names it (absolute for ours) */
  char *backing;        /* the image it is an overlay on; NULL: a base */
  char *format;         /* "qcow2", "raw", ... */
  guint64 virtual_size; /* bytes the guest sees */
  guint64 actual_size;  /* bytes allocated on disk */
} StorImage;

void stor_image_free (StorImage *image);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorImage, stor_image_free)

/* Most images a chain may have: a longer one is refused (a loop or a
 * hostile file, not something Drover made). */
#define STOR_CHAIN_MAX 256

/* The chain of the image at PATH, top (PATH itself) first, its base
 * last: `qemu-img info --backing-chain --output=json -U` (-U: images a
 * running QEMU holds are read too). A GPtrArray of StorImage, or NULL
 * with STOR_ERROR_FAILED. */
GPtrArray *stor_chain_read (const char *path, GError **error);

/* Parses qemu-img's JSON (TEXT) as stor_chain_read does; for tests. */
GPtrArray *stor_chain_parse (const char *text, GError **error);

/* DATA_DIR/snapshots/VM: fails with STOR_ERROR_INVALID_NAME for a VM
 * name proto_name_validate refuses. Free with g_free. */
char *stor_snapshot_dir (const char *data_dir, const char *vm, GError **error);
/* DATA_DIR/snapshots/VM/N.qcow2: overlay number N (N > 0). */
char *stor_snapshot_image_path (const char *data_dir, const char *vm, guint N,
                                GError **error);
/* DATA_DIR/snapshots/VM/SNAP.mem: the memory state of snapshot SNAP
 * (snapshot names follow the VM name rules). */
char *stor_snapshot_memory_path (const char *data_dir, const char *vm,
                                 const char *snap, GError **error);

/* Refuses (STOR_ERROR_NO_SPACE, naming WHAT and DIR) when the filesystem
 * of DIR has less than STOR_MIN_FREE_SPACE + NEED bytes available. */
gboolean stor_space_check (const char *dir, guint64 need, const char *what,
                           GError **error);

/* Creates a qcow2 overlay at PATH on the qcow2 image BACKING
 * (`qemu-img create -f qcow2 -F qcow2 -b BACKING PATH`): the guest sees
 * BACKING's data until it writes. Refuses an existing PATH
 * (STOR_ERROR_EXISTS), a missing BACKING and too little free space; on
 * failure nothing is left at PATH. */
gboolean stor_overlay_create (const char *path, const char *backing,
                              GError **error);

/* Writes the data of the overlay TOP into its backing image
 * (`qemu-img commit`); TOP is left as it was, still an overlay on a
 * backing file that now holds its data. Only for images no QEMU runs
 * on. Checks the free space the commit may need first. */
gboolean stor_image_commit (const char *top, GError **error);

/* Makes BACKING (NULL: none) the backing file of the qcow2 image PATH.
 * Safe mode (UNSAFE FALSE) copies into PATH whatever the guest would see
 * differently, so its content stays the same; unsafe mode only rewrites
 * the header, for a BACKING whose content equals the old one. Only for
 * images no QEMU runs on. */
gboolean stor_image_rebase (const char *path, const char *backing,
                            gboolean unsafe, GError **error);

/* Bytes PATH occupies on disk (allocated blocks); 0 for a missing file. */
guint64 stor_file_allocated (const char *path);

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
gboolean stor_copy_measure (const char *src, guint64 *required, GError **error);

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
