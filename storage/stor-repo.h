/* libdrover-storage: the backup repository (issue 14).
 *
 * A repository is a directory, local or on a shared mount every host sees,
 * into which several agents write at once with no lock on the hot path.
 * Disk data is cut in fixed STOR_REPO_CHUNK_SIZE chunks aligned to disk
 * offsets; each chunk is stored once, named by the SHA-256 of its raw
 * data. Each backup is a manifest naming its chunks. The on-disk format,
 * the concurrency model and the gc safety argument are in
 * docs/backup-format.md.
 *
 * Everything read from a repository is untrusted: lengths are capped
 * before allocation, every chunk's hash is checked on read, manifests are
 * validated field by field. Errors are in the STOR_ERROR domain (stor.h):
 * STOR_ERROR_NO_SPACE when the filesystem is full (ENOSPC/EDQUOT; nothing
 * half-made is left), STOR_ERROR_CORRUPT for a chunk, manifest or format
 * file that fails a check (the message names it: the chunk's hex digest,
 * the manifest's path), STOR_ERROR_NOT_FOUND for a missing chunk or
 * backup, STOR_ERROR_BUSY for a backup a running writer needs,
 * STOR_ERROR_INVALID_NAME for a bad backup id or VM name,
 * STOR_ERROR_FAILED for anything else.
 *
 * Threads: a StorRepo is immutable once open; every function taking one
 * may be called from any thread. A StorRepoWriter's put functions are
 * thread-safe; begin, add_disk, commit, abort and free are one caller's.
 * Every function blocks on file I/O: worker threads only. */
#pragma once

#include "stor.h"

G_BEGIN_DECLS

/* Chunks are cut at these disk offsets; only the last chunk of a disk
 * may be shorter. */
#define STOR_REPO_CHUNK_SIZE (4 * 1024 * 1024)
#define STOR_REPO_DIGEST_SIZE 32 /* SHA-256 */
#define STOR_REPO_DIGEST_HEX 65  /* 64 hex digits and the NUL */

/* Caps on what a manifest may hold; a manifest beyond any is refused. */
#define STOR_REPO_MAX_DISKS 64
#define STOR_REPO_MAX_DISK_SIZE (G_GUINT64_CONSTANT (16) << 40) /* 16 TiB */
#define STOR_REPO_MAX_XML (1024 * 1024)                         /* domain XML */
#define STOR_REPO_MAX_MANIFEST (512 * 1024 * 1024)              /* file bytes */
#define STOR_REPO_MAX_ID 96 /* a backup id, see stor_repo_id_validate */

/* gc never sweeps a chunk touched less than this long before the oldest
 * running writer started (or before gc started): covers clock skew
 * between the hosts sharing the repository. */
#define STOR_REPO_GC_MARGIN_S (60 * 60)
/* A writer registration older than this whose process is gone is stale:
 * gc ignores it (and reports it) instead of honouring it forever. */
#define STOR_REPO_WRITER_STALE_S (24 * 60 * 60)

typedef struct _StorRepo StorRepo;

/* --- the repository ---------------------------------------------------- */

/* Makes a new repository at PATH: the directory (created if missing; an
 * existing one must be empty) with its format file and subdirectories.
 * A directory holding only what an init cut short left (subdirectories,
 * empty chunk directories, the format file's temp file; no format file)
 * is finished. Refuses anything else (STOR_ERROR_EXISTS). */
gboolean stor_repo_init (const char *path, GError **error);

/* Opens the repository at PATH: checks its format file and refuses
 * anything that is not a Drover repository of the version this code
 * writes (STOR_ERROR_CORRUPT naming PATH and what it found). Free with
 * stor_repo_free. */
StorRepo *stor_repo_open (const char *path, GError **error);
void stor_repo_free (StorRepo *repo);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorRepo, stor_repo_free)

/* The repository's directory, as given to stor_repo_open. */
const char *stor_repo_path (StorRepo *repo);

/* Removes what a writer of this host left behind when its process died
 * (a killed agent): its registration in writers/ and its temp files in
 * tmp/. Writers of other hosts and of live processes are left alone.
 * Chunks it wrote stay for gc. The agent calls it at start. */
gboolean stor_repo_recover (StorRepo *repo, guint *removed, GError **error);

/* Test hook: called with the name of a step where a crash test may stop
 * the process: "init-dirs" (stor_repo_init made the subdirectories, not
 * yet the format file), "gc-marked" (gc has marked, not yet swept),
 * "gc-sweeping" (gc has set a chunk aside, not yet
 * removed it), "prune-deleting" (stor_repo_delete has set a manifest
 * aside, not yet removed it). Process-wide; NULL removes it. */
typedef void (*StorRepoStepHook) (const char *step);
void stor_repo_set_step_hook (StorRepoStepHook hook);

/* --- chunks ------------------------------------------------------------ */

typedef struct
{
  guint8 bytes[STOR_REPO_DIGEST_SIZE];
} StorRepoDigest;

/* SHA-256 (nettle) of LEN bytes at DATA into *DIGEST. */
void stor_repo_digest (const void *data, gsize len, StorRepoDigest *digest);
/* DIGEST in lower-case hex into HEX (STOR_REPO_DIGEST_HEX bytes);
 * returns HEX. */
char *stor_repo_digest_hex (const StorRepoDigest *digest,
                            char hex[STOR_REPO_DIGEST_HEX]);
/* Parses 64 lower-case hex digits; FALSE for anything else. */
gboolean stor_repo_digest_parse (const char *hex, StorRepoDigest *digest);

/* TRUE when all LEN bytes at DATA are zero: such a chunk is recorded as a
 * hole and never stored. */
gboolean stor_repo_is_zero (const void *data, gsize len);

/* Stores LEN (1..STOR_REPO_CHUNK_SIZE) bytes at DATA as a chunk: lz4
 * when that is smaller, else raw; temp file, fsync, rename into
 * chunks/XX/HASH, fsync of the directory, so it is durable on return. A
 * chunk already present is not written again; its mtime is touched (that
 * is what keeps a running gc from sweeping it). *DIGEST gets the chunk's
 * name; *IS_NEW whether this call stored it; *STORED the bytes it added
 * to the repository (0 when not new). IS_NEW and STORED may be NULL. An
 * all-zero chunk is stored like any other here: writers skip it (see
 * stor_repo_writer_put). */
gboolean stor_repo_chunk_put (StorRepo *repo, const void *data, gsize len,
                              StorRepoDigest *digest, gboolean *is_new,
                              guint64 *stored, GError **error);

/* Reads chunk DIGEST: checks its header (lengths capped before anything
 * is allocated), decompresses, checks the raw length against LENGTH
 * (0: any) and the SHA-256 against DIGEST. A missing chunk is
 * STOR_ERROR_NOT_FOUND, a bad one STOR_ERROR_CORRUPT; both name the
 * chunk's hex digest. Returns the raw data. */
GBytes *stor_repo_chunk_get (StorRepo *repo, const StorRepoDigest *digest,
                             gsize length, GError **error);

/* Path of chunk DIGEST: REPO/chunks/XX/HASH. Free with g_free. */
char *stor_repo_chunk_path (StorRepo *repo, const StorRepoDigest *digest);

/* --- manifests --------------------------------------------------------- */

typedef enum
{
  STOR_REPO_KIND_FULL,
  STOR_REPO_KIND_INCREMENTAL, /* has a parent; still complete on its own */
} StorRepoKind;

typedef enum
{
  STOR_REPO_CONSISTENCY_CRASH,       /* as if the power was cut */
  STOR_REPO_CONSISTENCY_APPLICATION, /* guest filesystems were frozen */
} StorRepoConsistency;

/* One chunk of a disk. Its raw length is not stored: chunk I of a disk
 * of SIZE bytes holds MIN (CHUNK_SIZE, SIZE - I * CHUNK_SIZE) bytes. */
typedef struct
{
  gboolean hole; /* TRUE: all zeros, nothing stored, DIGEST unused */
  StorRepoDigest digest;
} StorRepoChunkRef;

typedef struct
{
  char *target;   /* "vda": 1-32 characters of a-z and 0-9 */
  guint64 size;   /* virtual size in bytes, > 0 */
  GArray *chunks; /* StorRepoChunkRef, stor_repo_n_chunks (size) of them */
} StorRepoDisk;

typedef struct
{
  char *id;          /* see stor_repo_id_validate */
  char *vm;          /* VM name (proto_name_validate) */
  char *vm_uuid;     /* 36-character libvirt UUID */
  char *domain_xml;  /* the VM's definition, <= STOR_REPO_MAX_XML */
  char *checkpoint;  /* libvirt checkpoint name; NULL: none */
  char *parent;      /* backup id; NULL for a full */
  StorRepoKind kind; /* INCREMENTAL exactly when PARENT is set */
  StorRepoConsistency consistency;
  gint64 start_time;    /* seconds since the epoch */
  gint64 end_time;      /* seconds since the epoch, >= start_time */
  guint64 bytes_read;   /* data the backup fed to the repository */
  guint64 bytes_new;    /* raw bytes of the chunks it added */
  guint64 bytes_stored; /* bytes on disk of the chunks it added */
  GPtrArray *disks;     /* StorRepoDisk, 1..STOR_REPO_MAX_DISKS */
} StorRepoManifest;

void stor_repo_manifest_free (StorRepoManifest *manifest);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorRepoManifest, stor_repo_manifest_free)

/* Chunks of a disk of SIZE bytes: SIZE / CHUNK_SIZE rounded up. */
guint64 stor_repo_n_chunks (guint64 size);
/* Raw length of chunk INDEX of DISK (the last one may be shorter). */
gsize stor_repo_chunk_length (const StorRepoDisk *disk, guint64 index);
/* DISK TARGET of MANIFEST, or NULL. */
const StorRepoDisk *stor_repo_manifest_disk (const StorRepoManifest *manifest,
                                             const char *target);
/* Bytes the disks of MANIFEST hold (sum of the sizes): its logical size. */
guint64 stor_repo_manifest_logical (const StorRepoManifest *manifest);

/* A backup id is VM-YYYYmmddTHHMMSSZ-XXXXXX: the VM's name, the start
 * time in UTC and six random hex digits, so ids are unique, never contain
 * '/' or "..", and sort by time within a VM. Checked on every id that
 * comes from the outside or from the repository
 * (STOR_ERROR_INVALID_NAME). */
gboolean stor_repo_id_validate (const char *id, GError **error);
/* A new id for VM started at TIME (seconds since the epoch). */
char *stor_repo_id_new (const char *vm, gint64 time);

/* Manifest MANIFEST as the JSON written to the repository. */
char *stor_repo_manifest_to_json (const StorRepoManifest *manifest,
                                  gsize *length);
/* Parses and validates a manifest's JSON (hostile input: every cap
 * above, every count against the disk sizes); WHAT names it in errors
 * (STOR_ERROR_CORRUPT). For tests and fuzzers; stor_repo_manifest_load
 * is the way to read one. */
StorRepoManifest *stor_repo_manifest_parse (const char *data, gsize length,
                                            const char *what, GError **error);

/* Backup ID: REPO/backups/ID.json, size-capped, parsed and validated; its
 * id field must be ID. STOR_ERROR_NOT_FOUND when there is none. */
StorRepoManifest *stor_repo_manifest_load (StorRepo *repo, const char *id,
                                           GError **error);

/* The backups of VM (NULL: all), newest first (start time, then id). A
 * manifest that fails to load is left out and its error message added to
 * *BAD (a GPtrArray of strings, may be NULL): one bad file does not hide
 * the others. GPtrArray of StorRepoManifest. */
GPtrArray *stor_repo_list (StorRepo *repo, const char *vm, GPtrArray **bad,
                           GError **error);

/* Deletes backup ID's manifest (its chunks stay until gc). Refuses
 * (STOR_ERROR_BUSY, naming the writer) while a running writer uses ID as
 * its parent, since that writer's manifest will refer to ID's chunks.
 * STOR_ERROR_NOT_FOUND when there is no backup ID. */
gboolean stor_repo_delete (StorRepo *repo, const char *id, GError **error);

/* --- writing a backup -------------------------------------------------- */

/* The order that makes a backup safe, which this API enforces: begin
 * (registers the writer, so gc leaves its chunks alone), add every disk,
 * put chunks (each durable when put returns), then commit, which writes
 * the manifest atomically (temp, fsync, rename, directory fsync). No
 * manifest exists before commit; abort, a failure or a crash leaves
 * none. */
typedef struct _StorRepoWriter StorRepoWriter;

/* Begins backup of VM (VM_UUID, its DOMAIN_XML) with id
 * stor_repo_id_new (VM, now). PARENT NULL: a full backup; else the id of
 * an earlier backup of the same VM, whose manifest is loaded (an
 * incremental; fails when PARENT is missing, corrupt or of another VM,
 * and the caller then does a full). Registers the writer in writers/. */
StorRepoWriter *stor_repo_writer_begin (StorRepo *repo, const char *vm,
                                        const char *vm_uuid,
                                        const char *domain_xml,
                                        const char *parent, GError **error);

/* The new backup's id. */
const char *stor_repo_writer_id (StorRepoWriter *writer);
/* The parent's manifest (an incremental), or NULL (a full). Owned by the
 * writer: for comparing sampled clean chunks with the parent's refs. */
const StorRepoManifest *stor_repo_writer_parent (StorRepoWriter *writer);

/* Adds disk TARGET of SIZE bytes; its number (0, 1, ...) in *INDEX. In a
 * full backup every chunk starts as a hole: put the chunks that hold
 * data. In an incremental every chunk starts as the parent's chunk of
 * the disk with the same TARGET, which must have the same SIZE
 * (otherwise this fails and the caller does a full): put the chunks
 * that changed. At most STOR_REPO_MAX_DISKS. */
gboolean stor_repo_writer_add_disk (StorRepoWriter *writer, const char *target,
                                    guint64 size, guint *index, GError **error);

/* Puts chunk INDEX of disk DISK: DATA holds its LEN bytes, which must be
 * exactly stor_repo_chunk_length. An all-zero chunk becomes a hole
 * (nothing stored); any other is stored with stor_repo_chunk_put. The
 * backup's totals grow: bytes read by LEN, bytes new and stored by what
 * the chunk added. Thread-safe: several threads may put at once. */
gboolean stor_repo_writer_put (StorRepoWriter *writer, guint disk,
                               guint64 index, const void *data, gsize len,
                               GError **error);
/* Records chunk INDEX of disk DISK as a hole (known zero or unallocated)
 * without reading it. Thread-safe. */
gboolean stor_repo_writer_put_hole (StorRepoWriter *writer, guint disk,
                                    guint64 index, GError **error);

/* Totals so far (any pointer may be NULL). Thread-safe. */
void stor_repo_writer_totals (StorRepoWriter *writer, guint64 *bytes_read,
                              guint64 *bytes_new, guint64 *bytes_stored);

/* Ends the backup: writes its manifest (CHECKPOINT may be NULL) with end
 * time now, then removes the writer's registration. Call only once every
 * put has returned. On failure (STOR_ERROR_NO_SPACE for a full disk) no
 * manifest is left and the writer is aborted. Either way the writer is
 * done: free it. */
gboolean stor_repo_writer_commit (StorRepoWriter *writer,
                                  const char *checkpoint,
                                  StorRepoConsistency consistency,
                                  GError **error);
/* Ends the backup without a manifest: removes the registration and the
 * writer's temp files; the chunks it put stay until gc. */
void stor_repo_writer_abort (StorRepoWriter *writer);
/* Frees WRITER, aborting it first if it was neither committed nor
 * aborted. */
void stor_repo_writer_free (StorRepoWriter *writer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorRepoWriter, stor_repo_writer_free)

/* --- restoring --------------------------------------------------------- */

/* Chunk INDEX of DISK (from a loaded manifest): *DATA NULL for a hole
 * (stor_repo_chunk_length zeros, to be left unwritten), else its raw
 * bytes, read with stor_repo_chunk_get (hash checked; a missing or
 * corrupt chunk fails naming it). Thread-safe: restore may read chunks in
 * parallel. */
gboolean stor_repo_disk_read (StorRepo *repo, const StorRepoDisk *disk,
                              guint64 index, GBytes **data, GError **error);

/* --- verify ------------------------------------------------------------ */

/* Called with chunks checked so far and the total to check. */
typedef void (*StorRepoProgressFunc) (guint64 done, guint64 total,
                                      gpointer user_data);

/* A chunk that is missing or corrupt, and the backups that need it. */
typedef struct
{
  char digest[STOR_REPO_DIGEST_HEX];
  char *message;      /* the error stor_repo_chunk_get gave */
  gboolean missing;   /* TRUE: not there; FALSE: corrupt */
  GPtrArray *backups; /* ids (strings) of the backups that refer to it */
} StorRepoBadChunk;

typedef struct
{
  guint backups;            /* backups checked */
  guint64 chunks;           /* distinct chunks checked */
  guint64 bytes;            /* raw bytes rehashed */
  GPtrArray *bad;           /* StorRepoBadChunk */
  GPtrArray *bad_manifests; /* strings: manifests that failed to load */
} StorRepoVerifyResult;

void stor_repo_verify_result_free (StorRepoVerifyResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorRepoVerifyResult,
                               stor_repo_verify_result_free)

/* Rehashes every chunk the backups IDS (NULL: all) need, each once even
 * when shared, and reports every missing or corrupt one with the backups
 * it affects. Returns NULL with an error only when verify could not run
 * (a bad id, an unknown backup, CANCELLABLE); bad chunks are in the
 * result, not an error. Records the time in the repository's state for
 * stor_repo_status. Chunks are rehashed on one thread per CPU; PROGRESS
 * (may be NULL) is called from those threads, one call at a time. */
StorRepoVerifyResult *stor_repo_verify (StorRepo *repo, const char *const *ids,
                                        StorRepoProgressFunc progress,
                                        gpointer user_data,
                                        GCancellable *cancellable,
                                        GError **error);

/* --- status ------------------------------------------------------------ */

typedef struct
{
  guint64 disk_bytes;   /* bytes the repository's files occupy */
  guint64 chunks;       /* distinct chunks */
  guint64 raw_bytes;    /* raw bytes of those chunks */
  guint64 stored_bytes; /* their file sizes */
  guint backups;
  guint64
      logical_bytes; /* data bytes (holes not counted) all manifests refer to */
  double dedup_ratio;       /* logical_bytes / raw_bytes (0 when empty) */
  double compression_ratio; /* raw_bytes / stored_bytes (0 when empty) */
  gint64 last_verify;       /* seconds since the epoch; 0: never */
  gint64 last_gc;           /* seconds since the epoch; 0: never */
  guint64 last_gc_freed;    /* bytes the last gc freed */
} StorRepoStatus;

gboolean stor_repo_status (StorRepo *repo, StorRepoStatus *status,
                           GError **error);

/* --- prune ------------------------------------------------------------- */

/* How many to keep per rule; 0: the rule is off. All 0 keeps everything
 * (prune refuses to delete every backup by mistake). */
typedef struct
{
  guint last, hourly, daily, weekly, monthly, yearly;
} StorRepoKeep;

/* The pure prune decision: TIMES holds N backup start times (seconds
 * since the epoch, any order). Returns N reasons, one per time: NULL
 * for "remove", else the rule that keeps it ("keep-last", "keep-hourly",
 * "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly", or "keep-
 * all" when every count is 0). Periods are in UTC, weeks ISO 8601 weeks.
 * Rules are applied in that order, as Proxmox Backup Server does (see
 * docs/backup-format.md). Free the array (not the strings) with g_free. */
const char **stor_repo_prune_plan (const gint64 *times, guint n,
                                   const StorRepoKeep *keep);

/* One backup of a prune: its manifest's id, start time and why it is
 * kept (NULL: removed). */
typedef struct
{
  char *id;
  gint64 time;
  const char *reason;
} StorRepoPruneItem;

/* Applies the plan to VM's backups: newest first, every backup with its
 * decision; unless DRY_RUN, deletes the removed ones (stor_repo_delete;
 * one that cannot be deleted, e.g. the parent of a running backup, fails
 * the prune after the others are done, naming it). GPtrArray of
 * StorRepoPruneItem. */
GPtrArray *stor_repo_prune (StorRepo *repo, const char *vm,
                            const StorRepoKeep *keep, gboolean dry_run,
                            GError **error);

/* --- gc ---------------------------------------------------------------- */

typedef struct
{
  guint64 chunks_marked;      /* distinct chunks the manifests refer to */
  guint64 chunks_swept;       /* chunk files removed */
  guint64 bytes_freed;        /* their sizes */
  guint64 chunks_kept_recent; /* unreferenced, but too new to sweep */
  guint tmp_removed;          /* stale temp files removed */
  GPtrArray *stale_writers;   /* strings: registrations gc ignored */
} StorRepoGcResult;

void stor_repo_gc_result_free (StorRepoGcResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorRepoGcResult, stor_repo_gc_result_free)

/* Mark and sweep, safe while backups run: marks the chunks of every
 * manifest and of the parents of running writers, and sweeps the
 * unmarked chunks whose mtime is older than min (gc start, start of the
 * oldest running writer) - MARGIN_S seconds (STOR_REPO_GC_MARGIN_S in
 * production; tests pass 0). Removes temp files older than a day.
 * Records its time and what it freed in the repository's state. */
StorRepoGcResult *stor_repo_gc (StorRepo *repo, gint64 margin_s,
                                GCancellable *cancellable, GError **error);

G_END_DECLS
