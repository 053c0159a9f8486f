/* Chunks of the backup repository: content-addressed files under
 * chunks/XX/HASH, each a 16-byte header and a payload (lz4 or raw).
 * Header, little-endian: magic "DRCK", version 1, flags (bit 0: lz4),
 * two zero bytes, raw length (u32), stored length (u32). */
#include "stor-repo-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <lz4.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK_MAGIC "DRCK"
#define CHUNK_VERSION 1
#define CHUNK_FLAG_LZ4 0x01
#define CHUNK_HEADER 16

void
stor_repo_digest (const void *data, gsize len, StorRepoDigest *digest)
{
  struct sha256_ctx ctx;

  sha256_init (&ctx);
  sha256_update (&ctx, len, data);
  sha256_digest (&ctx, STOR_REPO_DIGEST_SIZE, digest->bytes);
}

char *
stor_repo_digest_hex (const StorRepoDigest *digest,
                      char hex[STOR_REPO_DIGEST_HEX])
{
  static const char xd[] = "0123456789abcdef";

  for (guint i = 0; i < STOR_REPO_DIGEST_SIZE; i++)
    {
      hex[2 * i] = xd[digest->bytes[i] >> 4];
      hex[2 * i + 1] = xd[digest->bytes[i] & 0xf];
    }
  hex[2 * STOR_REPO_DIGEST_SIZE] = '\0';
  return hex;
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

gboolean
stor_repo_digest_parse (const char *hex, StorRepoDigest *digest)
{
  if (!hex || strlen (hex) != 2 * STOR_REPO_DIGEST_SIZE)
    return FALSE;
  for (guint i = 0; i < STOR_REPO_DIGEST_SIZE; i++)
    {
      int hi = hex_value (hex[2 * i]), lo = hex_value (hex[2 * i + 1]);

      if (hi < 0 || lo < 0)
        return FALSE;
      digest->bytes[i] = (hi << 4) | lo;
    }
  return TRUE;
}

gboolean
stor_repo_is_zero (const void *data, gsize len)
{
  const guint8 *p = data;

  /* Compare the first 16 bytes, then the buffer with itself shifted by
   * 16: memcmp is vectorised, a byte loop is not. */
  for (gsize i = 0; i < len && i < 16; i++)
    if (p[i])
      return FALSE;
  return len <= 16 || memcmp (p, p + 16, len - 16) == 0;
}

char *
stor_repo_chunk_path (StorRepo *repo, const StorRepoDigest *digest)
{
  char hex[STOR_REPO_DIGEST_HEX];
  char sub[3];

  stor_repo_digest_hex (digest, hex);
  memcpy (sub, hex, 2);
  sub[2] = '\0';
  return stor_repo_sub (repo, "chunks", sub, hex, NULL);
}

static void
put_le32 (guint8 *p, guint32 v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, 4);
}

static guint32
get_le32 (const guint8 *p)
{
  guint32 v;

  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

gboolean
stor_repo_chunk_put (StorRepo *repo, const void *data, gsize len,
                     StorRepoDigest *digest, gboolean *is_new, guint64 *stored,
                     GError **error)
{
  g_autofree char *path = NULL;
  g_autofree char *tmp = NULL;
  g_autofree guint8 *buf = NULL;
  char hex[STOR_REPO_DIGEST_HEX];
  int bound, clen;
  gsize payload;

  if (is_new)
    *is_new = FALSE;
  if (stored)
    *stored = 0;
  if (len == 0 || len > STOR_REPO_CHUNK_SIZE)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "a chunk holds 1 to %d bytes, not %" G_GSIZE_FORMAT,
                   STOR_REPO_CHUNK_SIZE, len);
      return FALSE;
    }

  stor_repo_digest (data, len, digest);
  path = stor_repo_chunk_path (repo, digest);
  /* Present already: touch it, which both answers "is it there" in one
   * call and tells a running gc it is in use (docs/backup-format.md). */
  if (utimensat (AT_FDCWD, path, NULL, 0) == 0)
    return TRUE;
  if (errno != ENOENT)
    {
      stor_repo_errno (error, errno, "touch chunk", path);
      return FALSE;
    }

  bound = LZ4_compressBound ((int)len);
  buf = g_malloc (CHUNK_HEADER + MAX ((gsize)bound, len));
  clen = LZ4_compress_default (data, (char *)buf + CHUNK_HEADER, (int)len,
                               bound);
  memcpy (buf, CHUNK_MAGIC, 4);
  buf[4] = CHUNK_VERSION;
  buf[5] = 0;
  buf[6] = buf[7] = 0;
  if (clen > 0 && (gsize)clen < len)
    {
      buf[5] = CHUNK_FLAG_LZ4;
      payload = clen;
    }
  else
    {
      memcpy (buf + CHUNK_HEADER, data, len);
      payload = len;
    }
  put_le32 (buf + 8, (guint32)len);
  put_le32 (buf + 12, (guint32)payload);

  tmp = stor_repo_tmp_path (repo, "chunk");
  if (!stor_repo_write_file (tmp, path, buf, CHUNK_HEADER + payload, error))
    {
      g_prefix_error (
          error, "cannot store chunk %s: ", stor_repo_digest_hex (digest, hex));
      return FALSE;
    }
  if (is_new)
    *is_new = TRUE;
  if (stored)
    *stored = CHUNK_HEADER + payload;
  return TRUE;
}

static gboolean
corrupt (GError **error, const char *hex, const char *why)
{
  g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT, "chunk %s is corrupt: %s",
               hex, why);
  return FALSE;
}

/* Checks a chunk file's header HDR against the file's SIZE; the raw
 * and stored lengths in *RAW and *STORED. */
static gboolean
header_check (const guint8 *hdr, guint64 size, const char *hex, guint32 *raw,
              guint32 *stored, gboolean *lz4, GError **error)
{
  if (memcmp (hdr, CHUNK_MAGIC, 4) != 0)
    return corrupt (error, hex, "bad magic");
  if (hdr[4] != CHUNK_VERSION)
    return corrupt (error, hex, "unknown version");
  if ((hdr[5] & ~CHUNK_FLAG_LZ4) || hdr[6] || hdr[7])
    return corrupt (error, hex, "unknown flags");
  *lz4 = hdr[5] & CHUNK_FLAG_LZ4;
  *raw = get_le32 (hdr + 8);
  *stored = get_le32 (hdr + 12);
  if (*raw == 0 || *raw > STOR_REPO_CHUNK_SIZE)
    return corrupt (error, hex, "raw length out of range");
  if (*lz4 ? (*stored == 0 || *stored >= *raw
              || *stored > (guint32)LZ4_compressBound ((int)*raw))
           : *stored != *raw)
    return corrupt (error, hex, "stored length out of range");
  if (size != CHUNK_HEADER + (guint64)*stored)
    return corrupt (error, hex, "file size does not match its header");
  return TRUE;
}

/* Opens chunk DIGEST and checks its header; the open fd in *FD. */
static gboolean
chunk_open (StorRepo *repo, const StorRepoDigest *digest, const char *hex,
            int *fd, guint32 *raw, guint32 *stored, gboolean *lz4,
            guint64 *size, GError **error)
{
  g_autofree char *path = stor_repo_chunk_path (repo, digest);
  guint8 hdr[CHUNK_HEADER];
  struct stat st;

  *fd = open (path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0)
    {
      int saved = errno;
      g_set_error (error, STOR_ERROR,
                   saved == ENOENT ? STOR_ERROR_NOT_FOUND : STOR_ERROR_FAILED,
                   "chunk %s is %s: %s", hex,
                   saved == ENOENT ? "missing" : "unreadable",
                   g_strerror (saved));
      return FALSE;
    }
  if (fstat (*fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_size < CHUNK_HEADER
      || !stor_repo_read_exact (*fd, hdr, CHUNK_HEADER)
      || !header_check (hdr, st.st_size, hex, raw, stored, lz4, error))
    {
      if (error && !*error)
        corrupt (error, hex, "truncated header");
      close (*fd);
      *fd = -1;
      return FALSE;
    }
  *size = st.st_size;
  return TRUE;
}

/* The raw data of a chunk from its checked header's RAW, STORED and LZ4
 * and its PAYLOAD (STORED bytes), checked against DIGEST and LENGTH (0:
 * any). Takes PAYLOAD. */
static GBytes *
payload_decode (guint8 *payload, guint32 raw, guint32 stored, gboolean lz4,
                const StorRepoDigest *digest, const char *hex, gsize length,
                GError **error)
{
  g_autofree guint8 *owned = payload;
  g_autofree guint8 *raw_buf = NULL;
  StorRepoDigest check;

  if (lz4)
    {
      raw_buf = g_malloc (raw);
      if (LZ4_decompress_safe ((const char *)payload, (char *)raw_buf,
                               (int)stored, (int)raw)
          != (int)raw)
        {
          corrupt (error, hex, "lz4 data does not decompress to its length");
          return NULL;
        }
    }
  else
    raw_buf = g_steal_pointer (&owned);
  stor_repo_digest (raw_buf, raw, &check);
  if (memcmp (check.bytes, digest->bytes, STOR_REPO_DIGEST_SIZE) != 0)
    {
      corrupt (error, hex, "its data does not match its SHA-256");
      return NULL;
    }
  if (length && length != raw)
    {
      corrupt (error, hex, "its length is not the one the backup expects");
      return NULL;
    }
  return g_bytes_new_take (g_steal_pointer (&raw_buf), raw);
}

GBytes *
stor_repo_chunk_decode (const guint8 *file, gsize len,
                        const StorRepoDigest *digest, gsize length,
                        GError **error)
{
  char hex[STOR_REPO_DIGEST_HEX];
  guint32 raw = 0, stored = 0;
  gboolean lz4 = FALSE;

  stor_repo_digest_hex (digest, hex);
  if (len < CHUNK_HEADER)
    {
      corrupt (error, hex, "truncated header");
      return NULL;
    }
  if (!header_check (file, len, hex, &raw, &stored, &lz4, error))
    return NULL;
  return payload_decode (g_memdup2 (file + CHUNK_HEADER, stored), raw, stored,
                         lz4, digest, hex, length, error);
}

GBytes *
stor_repo_chunk_get (StorRepo *repo, const StorRepoDigest *digest, gsize length,
                     GError **error)
{
  char hex[STOR_REPO_DIGEST_HEX];
  g_autofree guint8 *payload = NULL;
  guint32 raw = 0, stored = 0;
  gboolean lz4 = FALSE, ok;
  guint64 size;
  int fd;

  stor_repo_digest_hex (digest, hex);
  if (!chunk_open (repo, digest, hex, &fd, &raw, &stored, &lz4, &size, error))
    return NULL;
  /* Both lengths are capped by header_check: allocation is bounded. */
  payload = g_malloc (stored);
  ok = stor_repo_read_exact (fd, payload, stored);
  close (fd);
  if (!ok)
    {
      corrupt (error, hex, "truncated payload");
      return NULL;
    }
  return payload_decode (g_steal_pointer (&payload), raw, stored, lz4, digest,
                         hex, length, error);
}

gboolean
stor_repo_chunk_sizes (StorRepo *repo, const StorRepoDigest *digest,
                       guint64 *raw_len, guint64 *file_len, GError **error)
{
  char hex[STOR_REPO_DIGEST_HEX];
  guint32 raw = 0, stored = 0;
  gboolean lz4 = FALSE;
  int fd;

  stor_repo_digest_hex (digest, hex);
  if (!chunk_open (repo, digest, hex, &fd, &raw, &stored, &lz4, file_len,
                   error))
    return FALSE;
  close (fd);
  *raw_len = raw;
  return TRUE;
}
