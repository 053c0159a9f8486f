/* The local side of a MigChannel: the fd of the libvirt or QEMU
 * connection the pumps carry. Non-blocking reads and writes that wait
 * with poll(2) on the fd and on the channel's cancellable; while the out
 * pump waits for something to send, it sends the peer a keepalive every
 * keepalive_s. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mig-channel-private.h"

/* Sends a PING: the local side had nothing for keepalive_s. */
static gboolean
send_ping (MigChannel *ch, GError **error)
{
  gboolean ok;

  g_mutex_lock (&ch->write_lock);
  ok = mig_channel_write_simple (ch, MIG_FRAME_PING, "", 0, ch->cancel, error);
  g_mutex_unlock (&ch->write_lock);
  if (ok)
    {
      g_mutex_lock (&ch->lock);
      ch->stats.wire_out += MIG_FRAME_HEADER_SIZE;
      g_mutex_unlock (&ch->lock);
    }
  else
    g_prefix_error (error, "sending keepalive: ");
  return ok;
}

/* Waits until FD is ready for EVENTS or the channel is cancelled. With
 * KEEPALIVE (the out pump), sends a PING whenever the wait reaches
 * opts.keepalive_s; a failure to send it sets *PEER_FAILED. */
static gboolean
wait_local (MigChannel *ch, short events, gboolean keepalive,
            gboolean *peer_failed, GError **error)
{
  struct pollfd p[2]
      = { { ch->local_fd, events, 0 }, { ch->cancel_fd, POLLIN, 0 } };
  int timeout = keepalive && ch->opts.keepalive_s > 0
                    ? (int)MIN (ch->opts.keepalive_s, 3600u) * 1000
                    : -1;

  for (;;)
    {
      int r = poll (p, 2, timeout);

      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL, "poll: %s",
                       g_strerror (errno));
          return FALSE;
        }
      if (r == 0)
        {
          if (send_ping (ch, error))
            continue;
          *peer_failed = TRUE;
          return FALSE;
        }
      if (p[1].revents != 0)
        return !g_cancellable_set_error_if_cancelled (ch->cancel, error);
      return TRUE;
    }
}

/* Reads from the local fd, sending keepalives while it is quiet; a
 * failure to send one sets *PEER_FAILED. */
gssize
mig_channel_local_read (MigChannel *ch, void *buf, gsize len,
                        gboolean *peer_failed, GError **error)
{
  for (;;)
    {
      gssize n = read (ch->local_fd, buf, len);
      if (n >= 0)
        return n;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          if (!wait_local (ch, POLLIN, TRUE, peer_failed, error))
            return -1;
          continue;
        }
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL,
                   "reading local socket: %s", g_strerror (errno));
      return -1;
    }
}

gboolean
mig_channel_local_write_all (MigChannel *ch, const guint8 *buf, gsize len,
                             GError **error)
{
  while (len > 0)
    {
      /* MSG_NOSIGNAL: a vanished local reader is an error, not SIGPIPE. */
      gssize n = send (ch->local_fd, buf, len, MSG_NOSIGNAL);
      if (n < 0 && errno == ENOTSOCK)
        n = write (ch->local_fd, buf, len);
      if (n >= 0)
        {
          buf += n;
          len -= n;
          continue;
        }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          if (!wait_local (ch, POLLOUT, FALSE, NULL, error))
            return FALSE;
          continue;
        }
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL,
                   "writing local socket: %s", g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* What the in pump writes to the local side waits in the socket's send
 * buffer until the local reader (the destination QEMU, the bottleneck of
 * a migration) takes it. The default (~208 KiB) holds less than one
 * frame, so QEMU ran dry whenever the pump was reading the next frame
 * from the peer; 4 MiB keeps it fed (unshaped link, random data: Drover
 * total / native total 1.19x -> 0.98x, means of 4 interleaved A/B runs).
 * Raising it past net.core.wmem_max needs CAP_NET_ADMIN; without it the
 * kernel caps the size, and a non-socket (a pipe in tests) is left
 * alone. */
#define MIG_LOCAL_SNDBUF (4 * 1024 * 1024)

void
mig_channel_local_sndbuf (int fd)
{
  int size = MIG_LOCAL_SNDBUF;

  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0
      && errno != ENOTSOCK)
    (void)setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}
