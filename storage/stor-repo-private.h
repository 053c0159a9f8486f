/* Backup repository internals shared by the stor-repo*.c files. */
#pragma once

#include "stor-private.h"
#include "stor-repo.h"

/* The format file at the top of every repository, and its one line. */
#define STOR_REPO_FORMAT_FILE "drover-repository"
#define STOR_REPO_FORMAT_LINE "drover-backup-repository 1\n"

/* Temp files older than this are leftovers gc removes. */
#define STOR_REPO_TMP_STALE_S (24 * 60 * 60)

struct _StorRepo
{
  char *path;
  char *host; /* this host's name, safe in a file name */
};

/* A writer's registration in writers/, as read back. */
typedef struct
{
  char *file;   /* its path */
  char *host;   /* host that wrote it */
  gint64 pid;   /* process on that host */
  gint64 start; /* writer's start, seconds since the epoch */
  char *backup; /* the id it will commit */
  char *parent; /* its parent's id, or NULL */
  gint64 mtime; /* last sign of life (puts touch the file) */
} StorRepoWriterInfo;

void stor_repo_writer_info_free (StorRepoWriterInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorRepoWriterInfo, stor_repo_writer_info_free)

/* REPO/SUB/... (g_build_filename under the repository). */
char *stor_repo_sub (StorRepo *repo, const char *first,
                     ...) G_GNUC_NULL_TERMINATED;

/* A new unique temp path in REPO/tmp: HOST~PID~RANDOM.KIND, so that
 * recovery knows which host and process left it. */
char *stor_repo_tmp_path (StorRepo *repo, const char *kind);

/* Sets ERROR from errno value ERR for an operation on PATH:
 * STOR_ERROR_NO_SPACE for ENOSPC/EDQUOT, else STOR_ERROR_FAILED. Always
 * returns FALSE. */
gboolean stor_repo_errno (GError **error, int err, const char *doing,
                          const char *path);

/* Writes LEN bytes at DATA to the new file TMP, fsyncs it, renames it to
 * DEST and fsyncs DEST's directory. On failure TMP is removed and DEST
 * is as it was. */
gboolean stor_repo_write_file (const char *tmp, const char *dest,
                               const void *data, gsize len, GError **error);

/* Reads the file at PATH whole, refusing (STOR_ERROR_CORRUPT) one larger
 * than MAX before allocating; missing: STOR_ERROR_NOT_FOUND. */
gboolean stor_repo_read_capped (const char *path, gsize max, char **data,
                                gsize *len, GError **error);

/* Test hook: while ERR is not 0, every file write of the repository
 * fails with errno ERR (simulates a full disk without a small
 * filesystem). Process-wide. */
void stor_repo_fail_writes (int err);

/* Calls the step hook (stor_repo_set_step_hook) with STEP, if any. */
void stor_repo_step (const char *step);

/* Running writers' registrations (StorRepoWriterInfo); those stale
 * (STOR_REPO_WRITER_STALE_S without a sign of life and, on this host,
 * their process gone) go to STALE (may be NULL) instead. Unreadable
 * registrations are refused: a registration gc cannot read could be a
 * writer it must honour. */
GPtrArray *stor_repo_writers (StorRepo *repo, GPtrArray *stale, GError **error);

/* The ids of the manifests in backups/ (strings), unsorted. Files whose
 * names are not NAME.json with a valid id go to BAD (may be NULL) as
 * messages. */
GPtrArray *stor_repo_backup_ids (StorRepo *repo, GPtrArray *bad,
                                 GError **error);

/* State kept in REPO/state/NAME.json: a small JSON object of integers
 * (last verify, last gc). Missing or unreadable: zeros. */
gboolean stor_repo_state_write (StorRepo *repo, const char *name,
                                const char *key1, gint64 val1, const char *key2,
                                gint64 val2, GError **error);
gint64 stor_repo_state_read (StorRepo *repo, const char *name, const char *key);

/* Hash table keyed by StorRepoDigest (owned copies). */
GHashTable *stor_repo_digest_table_new (GDestroyNotify value_free);

/* Raw and file bytes of chunk DIGEST, from its checked header only (no
 * rehash): for status. */
gboolean stor_repo_chunk_sizes (StorRepo *repo, const StorRepoDigest *digest,
                                guint64 *raw_len, guint64 *file_len,
                                GError **error);

/* A disk of SIZE bytes whose chunks are all holes. */
StorRepoDisk *stor_repo_disk_new (const char *target, guint64 size);
/* An empty GPtrArray of StorRepoDisk that frees them. */
GPtrArray *stor_repo_disks_new (void);

/* How the manifests use one chunk: its raw length and, for verify, the
 * ids of the backups that refer to it (NULL when not asked for). */
typedef struct
{
  gsize length;
  GPtrArray *ids;
} StorRepoChunkUse;

/* Digest -> StorRepoChunkUse. */
GHashTable *stor_repo_uses_new (void);
/* Adds the chunks of M to USES (the backup's id to each one's ids when
 * WITH_IDS); returns the data bytes (holes not counted) M refers to. */
guint64 stor_repo_uses_add (GHashTable *uses, const StorRepoManifest *m,
                            gboolean with_ids);

/* Reads exactly LEN bytes from FD; FALSE on an error or early end. */
gboolean stor_repo_read_exact (int fd, guint8 *buf, gsize len);

/* Member NAME of OBJ when it is an integer, into *VALUE. */
gboolean stor_repo_json_int (JsonObject *obj, const char *name, gint64 *value);

/* Decodes a whole chunk file (FILE, LEN bytes) as stor_repo_chunk_get
 * does: header checks, lz4, hash against DIGEST, LENGTH (0: any). For
 * the fuzzer. */
GBytes *stor_repo_chunk_decode (const guint8 *file, gsize len,
                                const StorRepoDigest *digest, gsize length,
                                GError **error);

/* TRUE for a libvirt UUID: 36 characters, hex digits and four '-'. */
gboolean stor_repo_uuid_valid (const char *uuid);
