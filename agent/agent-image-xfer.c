/* Image files over an image stream: the sender, the receiver and the
 * format between them (see agent-image-xfer.h).
 *
 * The receiver trusts nothing it reads: a label is checked before the
 * sink sees it, the count and every size against the caps before a byte
 * of the file is written, each size against the free space, and a file
 * must arrive whole (a stream that ends early, or has bytes past the end
 * record, is refused). Whatever it made is removed before it answers a
 * refusal, so the sender's error means "nothing is left there".
 */
#include "agent-image-xfer.h"
#include "agent-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stor.h"

#define XFER_MAGIC 0x46584944u /* "DIXF" little endian */
#define XFER_VERSION 1
#define XFER_TYPE_FILE 1
#define XFER_TYPE_END 2
#define XFER_HEADER_SIZE 16
#define XFER_CHUNK (1024 * 1024)
#define XFER_HOLE_BLOCK (64 * 1024) /* zero blocks this big become holes */
#define XFER_WRITE_BEHIND (32 * 1024 * 1024) /* bytes between write-backs */
#define XFER_MSG_MAX 1024                    /* bytes of a refusal */

typedef struct
{
  guint8 type;
  guint16 label_len;
  guint64 size;
} XferHeader;

gboolean
agent_image_xfer_label_valid (const char *label)
{
  gsize len = label ? strlen (label) : 0;

  if (len == 0 || len > AGENT_IMAGE_XFER_LABEL_MAX || label[0] == '.'
      || strstr (label, "..") != NULL)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isalnum (label[i]) && !strchr ("._-", label[i]))
      return FALSE;
  return TRUE;
}

/* --- bytes on the socket ----------------------------------------------- */

static gboolean
write_all (int fd, const void *buf, gsize len, GError **error)
{
  const guint8 *p = buf;

  while (len > 0)
    {
      gssize n = send (fd, p, len, MSG_NOSIGNAL);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          /* UNAVAILABLE: the receiver is gone, maybe having said why. */
          g_set_error (error, AGENT_ERROR,
                       errno == EPIPE || errno == ECONNRESET
                           ? AGENT_ERROR_UNAVAILABLE
                           : AGENT_ERROR_FAILED,
                       "image stream: cannot send: %s", g_strerror (errno));
          return FALSE;
        }
      p += n;
      len -= n;
    }
  return TRUE;
}

/* Reads exactly LEN bytes; an early end is a short stream. */
static gboolean
read_all (int fd, void *buf, gsize len, GError **error)
{
  guint8 *p = buf;

  while (len > 0)
    {
      gssize n = read (fd, p, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "image stream: cannot read: %s", g_strerror (errno));
          return FALSE;
        }
      if (n == 0)
        {
          g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                               "image stream ended early (the sender "
                               "stopped or the channel broke)");
          return FALSE;
        }
      p += n;
      len -= n;
    }
  return TRUE;
}

static void
header_pack (guint8 *b, guint8 type, guint16 label_len, guint64 size)
{
  guint32 magic = GUINT32_TO_LE (XFER_MAGIC);
  guint16 ll = GUINT16_TO_LE (label_len);
  guint64 sz = GUINT64_TO_LE (size);

  memcpy (b, &magic, 4);
  b[4] = XFER_VERSION;
  b[5] = type;
  memcpy (b + 6, &ll, 2);
  memcpy (b + 8, &sz, 8);
}

static gboolean
header_read (int fd, XferHeader *h, GError **error)
{
  guint8 b[XFER_HEADER_SIZE];
  guint32 magic;
  guint16 ll;
  guint64 sz;

  if (!read_all (fd, b, sizeof b, error))
    return FALSE;
  memcpy (&magic, b, 4);
  memcpy (&ll, b + 6, 2);
  memcpy (&sz, b + 8, 8);
  h->type = b[5];
  h->label_len = GUINT16_FROM_LE (ll);
  h->size = GUINT64_FROM_LE (sz);
  if (GUINT32_FROM_LE (magic) != XFER_MAGIC || b[4] != XFER_VERSION
      || (h->type != XFER_TYPE_FILE && h->type != XFER_TYPE_END)
      || h->label_len > AGENT_IMAGE_XFER_LABEL_MAX)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "image stream: malformed header");
      return FALSE;
    }
  return TRUE;
}

/* --- sender -------------------------------------------------------------- */

/* The receiver's answer after the end record. */
static gboolean
read_answer (int fd, GError **error)
{
  guint8 b[3];
  guint16 len;
  g_autofree char *msg = NULL;
  g_autoptr (GError) local = NULL;

  if (!read_all (fd, b, sizeof b, &local))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the receiving host went away before it had every file "
                   "(%s)",
                   local->message);
      return FALSE;
    }
  memcpy (&len, b + 1, 2);
  len = MIN (GUINT16_FROM_LE (len), XFER_MSG_MAX);
  msg = g_malloc0 (len + 1);
  if (len && !read_all (fd, msg, len, error))
    return FALSE;
  if (b[0] == 0)
    return TRUE;
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
               "the receiving host refused the files: %s",
               g_utf8_validate (msg, -1, NULL) ? msg : "(unreadable)");
  return FALSE;
}

static gboolean
send_file (int fd, int in, const char *label, guint64 size, guint8 *buf,
           guint64 *sent, guint64 total, GCancellable *cancellable,
           AgentImageXferProgressFunc progress, gpointer user_data,
           GError **error)
{
  guint8 h[XFER_HEADER_SIZE];
  guint64 left = size;

  header_pack (h, XFER_TYPE_FILE, strlen (label), size);
  if (!write_all (fd, h, sizeof h, error)
      || !write_all (fd, label, strlen (label), error))
    return FALSE;
  while (left > 0)
    {
      gssize n = read (in, buf, MIN (left, XFER_CHUNK));

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "cannot read %s: %s", label,
                       n == 0 ? "it shrank while being sent"
                              : g_strerror (errno));
          return FALSE;
        }
      if (g_cancellable_set_error_if_cancelled (cancellable, error)
          || !write_all (fd, buf, n, error))
        return FALSE;
      left -= n;
      *sent += n;
      if (progress)
        progress (*sent, total, user_data);
    }
  return TRUE;
}

gboolean
agent_image_xfer_write (int fd, const AgentImageXferFile *files, guint n,
                        GCancellable *cancellable,
                        AgentImageXferProgressFunc progress, gpointer user_data,
                        GError **error)
{
  g_autofree int *fds = g_new (int, MAX (n, 1));
  g_autofree guint64 *sizes = g_new0 (guint64, MAX (n, 1));
  g_autofree guint8 *buf = NULL;
  guint8 h[XFER_HEADER_SIZE];
  guint64 total = 0, sent = 0;
  g_autoptr (GError) local = NULL, refusal = NULL;
  gboolean ok = TRUE;
  guint opened = 0;

  if (n > AGENT_IMAGE_XFER_FILES_MAX)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "%u files are more than one transfer carries", n);
      return FALSE;
    }
  /* Every file opened (and its size known) before the first byte goes. */
  for (; opened < n && ok; opened++)
    {
      struct stat st;

      if (!agent_image_xfer_label_valid (files[opened].label))
        {
          g_set_error (&local, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "'%s' is not a file label", files[opened].label);
          ok = FALSE;
          break;
        }
      fds[opened] = open (files[opened].path, O_RDONLY | O_CLOEXEC);
      if (fds[opened] < 0 || fstat (fds[opened], &st) < 0)
        {
          g_set_error (&local, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "cannot open %s: %s", files[opened].path,
                       g_strerror (errno));
          if (fds[opened] >= 0)
            close (fds[opened]);
          ok = FALSE;
          break;
        }
      sizes[opened] = st.st_size;
      total += st.st_size;
    }
  buf = g_malloc (XFER_CHUNK);
  for (guint i = 0; ok && i < n; i++)
    ok = send_file (fd, fds[i], files[i].label, sizes[i], buf, &sent, total,
                    cancellable, progress, user_data, &local);
  for (guint i = 0; i < opened; i++)
    close (fds[i]);
  header_pack (h, XFER_TYPE_END, 0, n);
  if (ok && write_all (fd, h, sizeof h, &local))
    {
      (void)shutdown (fd, SHUT_WR);
      return read_answer (fd, error);
    }
  /* A receiver that refused a file stops reading: its answer says why. */
  if (g_error_matches (local, AGENT_ERROR, AGENT_ERROR_UNAVAILABLE)
      && !read_answer (fd, &refusal) && strstr (refusal->message, "refused"))
    g_propagate_error (error, g_steal_pointer (&refusal));
  else if (local)
    g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

gboolean
agent_image_xfer_send (MigChannelCreds *creds, const char *address,
                       const char *dest_host, const char *token,
                       MigCompressMode compress,
                       const AgentImageXferFile *files, guint n,
                       GCancellable *cancellable,
                       AgentImageXferProgressFunc progress, gpointer user_data,
                       guint64 *wire_bytes, GError **error)
{
  g_autofree char *host = NULL;
  g_autoptr (MigTransport) t = NULL;
  g_autoptr (MigChannel) ch = NULL;
  g_autoptr (GError) ch_error = NULL;
  MigChannelOptions opts;
  MigChannelStats stats;
  guint16 port;
  int sv[2];
  gboolean ok;

  if (!agent_migration_split_address (address, &host, &port) || port == 0
      || !token || !*token)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "an image transfer needs a channel address "
                           "host:port and a token");
      return FALSE;
    }
  t = mig_transport_connect_host (creds, host, port, creds ? dest_host : NULL,
                                  cancellable, error);
  if (!t)
    return FALSE;
  ch = mig_channel_new_client (g_steal_pointer (&t), MIG_CHANNEL_KIND_IMAGE,
                               token, cancellable, error);
  if (!ch)
    return FALSE;
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot make a socket pair: %s", g_strerror (errno));
      return FALSE;
    }
  mig_channel_options_init (&opts);
  opts.compress = compress;
  if (!mig_channel_start (ch, sv[0], &opts, NULL, NULL, error))
    {
      close (sv[1]);
      return FALSE;
    }
  ok = agent_image_xfer_write (sv[1], files, n, cancellable, progress,
                               user_data, error);
  close (sv[1]);
  if (!ok)
    mig_channel_close (ch);
  /* A broken channel explains a failed write better than EPIPE does. */
  if (!mig_channel_wait (ch, &ch_error) && ok)
    {
      g_propagate_error (error, g_steal_pointer (&ch_error));
      ok = FALSE;
    }
  mig_channel_get_stats (ch, &stats);
  if (wire_bytes)
    *wire_bytes = stats.wire_out;
  return ok;
}

/* --- receiver ------------------------------------------------------------ */

static void
answer (int fd, const GError *error)
{
  const char *msg = error ? error->message : "";
  gsize len = MIN (strlen (msg), XFER_MSG_MAX);
  guint16 ll = GUINT16_TO_LE ((guint16)len);
  guint8 b[3] = { error ? 1 : 0 };

  memcpy (b + 1, &ll, 2);
  if (write_all (fd, b, sizeof b, NULL) && len)
    (void)write_all (fd, msg, len, NULL);
  (void)shutdown (fd, SHUT_WR);
}

static gboolean
is_zero (const guint8 *b, gsize len)
{
  return len == 0 || (b[0] == 0 && memcmp (b, b + 1, len - 1) == 0);
}

/* Writes LEN bytes of BUF at the current offset of OUT, leaving holes for
 * zero blocks (the file is sized with ftruncate at the end). */
static gboolean
write_sparse (int out, const guint8 *buf, gsize len, const char *path,
              GError **error)
{
  for (gsize off = 0; off < len;)
    {
      gsize n = MIN (XFER_HOLE_BLOCK, len - off);

      if (is_zero (buf + off, n))
        {
          if (lseek (out, n, SEEK_CUR) < 0)
            goto fail;
          off += n;
          continue;
        }
      while (n > 0)
        {
          gssize w = write (out, buf + off, n);

          if (w < 0 && errno == EINTR)
            continue;
          if (w < 0)
            goto fail;
          off += w;
          n -= w;
        }
    }
  return TRUE;

fail:
  g_set_error (error, STOR_ERROR,
               errno == ENOSPC ? STOR_ERROR_NO_SPACE : STOR_ERROR_FAILED,
               "cannot write %s: %s", path, g_strerror (errno));
  return FALSE;
}

static gboolean
fsync_dir (const char *path, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  gboolean ok = fd >= 0 && fsync (fd) == 0;

  if (!ok)
    g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED, "cannot sync %s: %s",
                 dir, g_strerror (errno));
  if (fd >= 0)
    close (fd);
  return ok;
}

/* Write-behind: the window of OUT just written, [START, END), goes to the
 * disk now. Left to the fsync at the end, the whole image was written
 * after its last byte came (0.7-0.9 s of a 2-3 s transfer of 1 GiB here);
 * this way the disk writes while the stream still comes. Nothing waits
 * for it (waiting for the window before stalled the stream on a busy
 * disk): the fsync at the end still makes it durable and reports a
 * write-back error. */
static gboolean
write_behind (int out, guint64 start, guint64 end, const char *path,
              GError **error)
{
  if (sync_file_range (out, start, end - start, SYNC_FILE_RANGE_WRITE) == 0)
    return TRUE;
  /* A file system without it: the fsync does it all, as before. */
  if (errno == EINVAL || errno == ENOSYS)
    return TRUE;
  g_set_error (error, STOR_ERROR,
               errno == ENOSPC ? STOR_ERROR_NO_SPACE : STOR_ERROR_FAILED,
               "cannot write %s: %s", path, g_strerror (errno));
  return FALSE;
}

/* Receives the data of one file into PATH (its mark written first). */
static gboolean
receive_file (int fd, const char *job_id, const char *path, guint64 size,
              guint8 *buf, GPtrArray *made, GError **error)
{
  g_autofree char *mark = agent_disks_incoming_mark (path);
  g_autofree char *dir = g_path_get_dirname (path);
  guint64 left = size, flushed = 0;
  int out;
  gboolean ok = TRUE;

  if (!stor_space_check (dir, size, path, error))
    return FALSE;
  if (g_file_test (path, G_FILE_TEST_EXISTS)
      || g_file_test (mark, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_EXISTS,
                   "%s already exists here", path);
      return FALSE;
    }
  if (!g_file_set_contents_full (mark, job_id, -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;
  out = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED, "cannot create %s: %s",
                   path, g_strerror (errno));
      (void)g_unlink (mark);
      return FALSE;
    }
  /* From now on the caller's cleanup removes it (and its mark). */
  g_ptr_array_add (made, g_strdup (path));
  while (ok && left > 0)
    {
      gsize n = MIN (left, XFER_CHUNK);

      ok = read_all (fd, buf, n, error)
           && write_sparse (out, buf, n, path, error);
      left -= n;
      if (ok && size - left - flushed >= XFER_WRITE_BEHIND)
        {
          ok = write_behind (out, flushed, size - left, path, error);
          flushed = size - left;
        }
    }
  if (ok && (ftruncate (out, size) < 0 || fsync (out) < 0))
    {
      g_set_error (error, STOR_ERROR,
                   errno == ENOSPC ? STOR_ERROR_NO_SPACE : STOR_ERROR_FAILED,
                   "cannot write %s: %s", path, g_strerror (errno));
      ok = FALSE;
    }
  close (out);
  return ok;
}

static gboolean
receive_all (int fd, const char *job_id, const AgentImageXferSink *sink,
             GPtrArray *made, GError **error)
{
  guint max_files = sink->max_files
                        ? MIN (sink->max_files, AGENT_IMAGE_XFER_FILES_MAX)
                        : AGENT_IMAGE_XFER_FILES_MAX;
  g_autofree guint8 *buf = g_malloc (XFER_CHUNK);
  guint64 total = 0;
  guint8 extra;

  for (;;)
    {
      XferHeader h;
      char label[AGENT_IMAGE_XFER_LABEL_MAX + 1] = { 0 };
      g_autofree char *path = NULL;

      if (!header_read (fd, &h, error))
        return FALSE;
      if (h.type == XFER_TYPE_END)
        {
          if (h.size != made->len || h.label_len)
            {
              g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "image stream: %u files came, the sender counts "
                           "%" G_GUINT64_FORMAT,
                           made->len, h.size);
              return FALSE;
            }
          break;
        }
      if (made->len >= max_files)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "%s: more than %u files", sink->what, max_files);
          return FALSE;
        }
      if (!read_all (fd, label, h.label_len, error))
        return FALSE;
      if (strlen (label) != h.label_len
          || !agent_image_xfer_label_valid (label))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "%s: a file label must be a bare file name of "
                       "[A-Za-z0-9._-]",
                       sink->what);
          return FALSE;
        }
      total += h.size;
      if (sink->max_bytes
          && (h.size > sink->max_bytes || total > sink->max_bytes))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "%s: %s would take the transfer past its cap of "
                       "%" G_GUINT64_FORMAT " bytes",
                       sink->what, label, sink->max_bytes);
          return FALSE;
        }
      path = sink->place (label, h.size, sink->user_data, error);
      if (!path)
        return FALSE;
      if (!g_path_is_absolute (path))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "%s: no place for %s", sink->what, label);
          return FALSE;
        }
      if (!receive_file (fd, job_id, path, h.size, buf, made, error))
        return FALSE;
    }
  /* Nothing may follow the end record. */
  if (read (fd, &extra, 1) != 0)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "image stream: bytes after the end record");
      return FALSE;
    }
  for (guint i = 0; i < made->len; i++)
    if (!fsync_dir (made->pdata[i], error))
      return FALSE;
  return !sink->finish || sink->finish (job_id, made, sink->user_data, error);
}

GPtrArray *
agent_image_xfer_read (int fd, const char *job_id,
                       const AgentImageXferSink *sink, GError **error)
{
  g_autoptr (GPtrArray) made = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) local = NULL;

  if (!receive_all (fd, job_id, sink, made, &local))
    {
      agent_image_xfer_discard (made);
      if (sink->done)
        sink->done (job_id, NULL, local, sink->user_data);
      answer (fd, local);
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (sink->done)
    sink->done (job_id, made, NULL, sink->user_data);
  answer (fd, NULL);
  return g_steal_pointer (&made);
}

/* --- what was received --------------------------------------------------- */

void
agent_image_xfer_keep (const GPtrArray *paths)
{
  for (guint i = 0; paths && i < paths->len; i++)
    {
      g_autofree char *mark = agent_disks_incoming_mark (paths->pdata[i]);

      (void)g_unlink (mark);
    }
}

void
agent_image_xfer_discard (const GPtrArray *paths)
{
  for (guint i = 0; paths && i < paths->len; i++)
    {
      g_autofree char *mark = agent_disks_incoming_mark (paths->pdata[i]);

      /* The mark goes last: it is what finds a file left behind. */
      if (g_unlink (paths->pdata[i]) == 0 || errno == ENOENT)
        (void)g_unlink (mark);
    }
}

gboolean
agent_image_xfer_reclaim (const char *path)
{
  g_autofree char *mark = agent_disks_incoming_mark (path);

  if (!g_file_test (mark, G_FILE_TEST_EXISTS))
    return FALSE;
  if (g_unlink (path) < 0 && errno != ENOENT)
    return FALSE;
  return g_unlink (mark) == 0;
}
