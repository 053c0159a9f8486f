/* AgentBackupNbd: a disk read over NBD, only where it matters.
 *
 * Each chunk is first asked about (NBD_CMD_BLOCK_STATUS): base:allocation
 * gives the extents that read as zeros, and for an incremental the dirty
 * bitmap context gives the changed ones. The server may answer for less
 * than was asked and each context separately, so the question is repeated
 * from the point both answers cover. A chunk is then read without its
 * zero extents, which never cross the socket.
 */
#include "agent-backup-nbd.h"

#include <errno.h>
#include <libnbd.h>
#include <string.h>

#include "agent.h"

#define BASE_ALLOCATION "base:allocation"
/* In a dirty-bitmap context, flag 1 marks a dirty extent. */
#define BITMAP_DIRTY 1

struct _AgentBackupNbd
{
  struct nbd_handle *h;
  guint64 size;
  char *bitmap; /* NULL: a full read */

  /* The chunk last classified: its zero extents (pairs of guint64: disk
   * offset, length, ascending) and whether the bitmap marks any of it. */
  gboolean have_cur;
  guint64 cur;
  GArray *zeros;
  gboolean dirty;
};

static void
nbd_error (GError **error, const char *what)
{
  const char *msg = nbd_get_error ();

  g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "%s: %s", what,
               msg ? msg : "unknown NBD error");
}

AgentBackupNbd *
agent_backup_nbd_open (const char *socket_path, const char *export,
                       const char *bitmap, GError **error)
{
  g_autoptr (AgentBackupNbd) n = g_new0 (AgentBackupNbd, 1);
  int64_t size;

  n->zeros = g_array_new (FALSE, FALSE, sizeof (guint64));
  n->h = nbd_create ();
  if (!n->h)
    {
      nbd_error (error, "cannot make an NBD handle");
      return NULL;
    }
  if ((export && nbd_set_export_name (n->h, export) < 0)
      || nbd_add_meta_context (n->h, BASE_ALLOCATION) < 0
      || (bitmap && nbd_add_meta_context (n->h, bitmap) < 0))
    {
      nbd_error (error, "cannot set up the NBD handle");
      return NULL;
    }
  if (nbd_connect_unix (n->h, socket_path) < 0)
    {
      g_autofree char *what
          = g_strdup_printf ("cannot read the disk over NBD (%s)", socket_path);
      nbd_error (error, what);
      return NULL;
    }
  if (nbd_can_meta_context (n->h, BASE_ALLOCATION) != 1)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the NBD server does not say where the disk's holes are");
      return NULL;
    }
  /* An incremental without its bitmap would have to read everything and
   * call it changed: the caller decides that, never this reader. */
  if (bitmap && nbd_can_meta_context (n->h, bitmap) != 1)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the NBD server does not offer the dirty bitmap %s", bitmap);
      return NULL;
    }
  size = nbd_get_size (n->h);
  if (size < 0)
    {
      nbd_error (error, "cannot read the disk's size over NBD");
      return NULL;
    }
  n->size = (guint64)size;
  n->bitmap = g_strdup (bitmap);
  return g_steal_pointer (&n);
}

void
agent_backup_nbd_free (AgentBackupNbd *n)
{
  if (!n)
    return;
  if (n->h)
    {
      (void)nbd_shutdown (n->h, 0);
      nbd_close (n->h);
    }
  g_array_unref (n->zeros);
  g_free (n->bitmap);
  g_free (n);
}

guint64
agent_backup_nbd_size (AgentBackupNbd *n)
{
  return n->size;
}

guint64
agent_backup_nbd_chunks (AgentBackupNbd *n)
{
  return (n->size + AGENT_BACKUP_CHUNK - 1) / AGENT_BACKUP_CHUNK;
}

gsize
agent_backup_nbd_chunk_len (AgentBackupNbd *n, guint64 index)
{
  guint64 off = index * AGENT_BACKUP_CHUNK;

  return off >= n->size ? 0 : MIN (AGENT_BACKUP_CHUNK, n->size - off);
}

/* One block-status question: what each context says from POS on. */
typedef struct
{
  AgentBackupNbd *n;
  guint64 end;          /* of the chunk */
  guint64 alloc_cover;  /* base:allocation answered up to here */
  guint64 bitmap_cover; /* the bitmap answered up to here */
} StatusWalk;

static int
on_extents (void *data, const char *context, uint64_t offset, uint32_t *entries,
            size_t nr_entries, int *error)
{
  StatusWalk *w = data;
  gboolean alloc = strcmp (context, BASE_ALLOCATION) == 0;
  guint64 *cover;
  guint64 pos = offset;

  if (alloc)
    cover = &w->alloc_cover;
  else if (w->n->bitmap && strcmp (context, w->n->bitmap) == 0)
    cover = &w->bitmap_cover;
  else
    return 0;
  for (size_t i = 0; i + 1 < nr_entries && pos < w->end; i += 2)
    {
      guint64 from = MAX (pos, *cover);
      guint64 to = MIN (pos + entries[i], w->end);

      if (to > from)
        {
          if (alloc && (entries[i + 1] & LIBNBD_STATE_ZERO))
            {
              guint64 *last = w->n->zeros->len ? &g_array_index (
                                  w->n->zeros, guint64, w->n->zeros->len - 2)
                                               : NULL;

              /* Adjacent zero extents are one. */
              if (last && last[0] + last[1] == from)
                last[1] += to - from;
              else
                {
                  guint64 pair[2] = { from, to - from };
                  g_array_append_vals (w->n->zeros, pair, 2);
                }
            }
          else if (!alloc && (entries[i + 1] & BITMAP_DIRTY))
            w->n->dirty = TRUE;
          *cover = to;
        }
      pos += entries[i];
    }
  (void)error;
  return 0;
}

gboolean
agent_backup_nbd_classify (AgentBackupNbd *n, guint64 index,
                           AgentBackupChunkKind *kind, GError **error)
{
  guint64 off = index * AGENT_BACKUP_CHUNK;
  gsize len = agent_backup_nbd_chunk_len (n, index);
  StatusWalk w = { n, off + len, off, n->bitmap ? off : off + len };
  guint64 zero_bytes = 0;

  g_array_set_size (n->zeros, 0);
  n->dirty = FALSE;
  n->have_cur = FALSE;
  while (MIN (w.alloc_cover, w.bitmap_cover) < w.end)
    {
      guint64 pos = MIN (w.alloc_cover, w.bitmap_cover);
      guint64 before = w.alloc_cover + w.bitmap_cover;
      nbd_extent_callback cb = { on_extents, &w, NULL };

      if (nbd_block_status (n->h, w.end - pos, pos, cb, 0) < 0)
        {
          g_autofree char *what = g_strdup_printf (
              "cannot ask where chunk %" G_GUINT64_FORMAT " has data", index);
          nbd_error (error, what);
          return FALSE;
        }
      /* A server that answers nothing for a range would loop forever. */
      if (w.alloc_cover + w.bitmap_cover == before)
        {
          g_set_error (
              error, AGENT_ERROR, AGENT_ERROR_FAILED,
              "the NBD server gave no extents for chunk %" G_GUINT64_FORMAT,
              index);
          return FALSE;
        }
    }
  for (guint i = 0; i < n->zeros->len; i += 2)
    zero_bytes += g_array_index (n->zeros, guint64, i + 1);
  if (zero_bytes == len)
    *kind = AGENT_BACKUP_CHUNK_HOLE;
  else if (n->bitmap && !n->dirty)
    *kind = AGENT_BACKUP_CHUNK_CLEAN;
  else
    *kind = AGENT_BACKUP_CHUNK_DATA;
  n->cur = index;
  n->have_cur = TRUE;
  return TRUE;
}

/* A range is read as requests of this size, several in flight. One
 * large request costs the server (QEMU) a fresh bounce buffer that it
 * faults in page by page; small ones overlapping on the same connection
 * were ten times faster in tests/bench/backup (docs/benchmarks.md). */
#define READ_REQUEST (128 * 1024)
#define READ_IN_FLIGHT 16

static int
on_read_done (void *user_data, int *error)
{
  int *failed = user_data;

  if (*error && !*failed)
    *failed = *error;
  return 1; /* retire the command */
}

/* Waits until no request of N is in flight, so that none writes into a
 * buffer the caller is about to reuse or free. */
static void
drain (AgentBackupNbd *n)
{
  while (nbd_aio_in_flight (n->h) > 0 && nbd_poll (n->h, -1) >= 0)
    ;
}

static gboolean
pread_range (AgentBackupNbd *n, guint8 *dst, guint64 off, guint64 len,
             guint64 index, GError **error)
{
  guint64 issued = 0;
  int failed = 0;
  g_autofree char *what = NULL;

  while ((issued < len && !failed) || nbd_aio_in_flight (n->h) > 0)
    {
      while (issued < len && !failed
             && nbd_aio_in_flight (n->h) < READ_IN_FLIGHT)
        {
          guint64 l = MIN (READ_REQUEST, len - issued);
          nbd_completion_callback cb = { on_read_done, &failed, NULL };

          if (nbd_aio_pread (n->h, dst + issued, l, off + issued, cb, 0) < 0)
            goto fail;
          issued += l;
        }
      if (nbd_poll (n->h, -1) < 0)
        goto fail;
    }
  if (!failed)
    return TRUE;
  errno = failed;
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
               "cannot read chunk %" G_GUINT64_FORMAT " over NBD: %s", index,
               g_strerror (failed));
  return FALSE;

fail:
  what = g_strdup_printf ("cannot read chunk %" G_GUINT64_FORMAT " over NBD",
                          index);
  nbd_error (error, what);
  drain (n);
  return FALSE;
}

gboolean
agent_backup_nbd_read (AgentBackupNbd *n, guint64 index, guint8 *buf,
                       gsize *len, guint64 *read, GError **error)
{
  guint64 off = index * AGENT_BACKUP_CHUNK;
  guint64 pos = off;
  AgentBackupChunkKind kind;

  *len = agent_backup_nbd_chunk_len (n, index);
  *read = 0;
  if (!(n->have_cur && n->cur == index)
      && !agent_backup_nbd_classify (n, index, &kind, error))
    return FALSE;
  for (guint i = 0; i < n->zeros->len; i += 2)
    {
      guint64 zoff = g_array_index (n->zeros, guint64, i);
      guint64 zlen = g_array_index (n->zeros, guint64, i + 1);

      if (!pread_range (n, buf + (pos - off), pos, zoff - pos, index, error))
        return FALSE;
      *read += zoff - pos;
      memset (buf + (zoff - off), 0, zlen);
      pos = zoff + zlen;
    }
  if (!pread_range (n, buf + (pos - off), pos, off + *len - pos, index, error))
    return FALSE;
  *read += off + *len - pos;
  return TRUE;
}
