/* MigChannel: carries one bidirectional byte stream between a local fd and
 * a peer agent. See mig-channel.h for the frame format; the handshake is
 * in mig-channel-hello.c, frame I/O in mig-channel-frame.c, the local
 * fd's I/O (and the keepalives sent while it is quiet) in
 * mig-channel-local.c.
 *
 * Threads: one pump per direction, blocking I/O.
 *   out pump: read(local) -> [lz4] -> crc -> token bucket -> writev(peer)
 *   in pump:  read(peer) header+body -> check -> [unlz4] -> crc ->
 *             [in_filter] -> write(local)
 * With compression ON or AUTO the out pump measures each window of frames
 * and asks MigAuto (mig-auto.c) whether to lz4 the next ones. The first
 * error sticks (later ones are consequences) and cancels the other pump;
 * the last pump to exit closes the transport and the local fd and reports
 * completion once.
 */
#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mig-channel-private.h"

static gint64
now_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of this thread: lz4 speed must not count time the pump spent
 * preempted (2 cores, several pumps). */
static gint64
thread_cpu_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (gint64)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

MigChannel *
mig_channel_new (MigTransport *transport)
{
  MigChannel *ch = g_new0 (MigChannel, 1);

  ch->transport = transport;
  ch->cancel = g_cancellable_new ();
  ch->cancel_fd = g_cancellable_get_fd (ch->cancel);
  ch->local_fd = -1;
  ch->stats.rwnd_limited = -1;
  g_mutex_init (&ch->write_lock);
  g_mutex_init (&ch->lock);
  g_cond_init (&ch->cond);
  mig_channel_options_init (&ch->opts);
  return ch;
}

void
mig_channel_options_init (MigChannelOptions *opts)
{
  memset (opts, 0, sizeof *opts);
  opts->compress = MIG_COMPRESS_OFF;
  opts->chunk_size = MIG_CHANNEL_CHUNK_DEFAULT;
  opts->keepalive_s = MIG_CHANNEL_KEEPALIVE_S;
  opts->idle_timeout_s = MIG_CHANNEL_IDLE_TIMEOUT_S;
}

/* --- completion ----------------------------------------------------------- */

/* Makes ERROR the channel's result if it is the first (ownership taken).
 * WEAK marks a transport write failure: the connection broke under the
 * out pump, and the in pump is about to read why (the peer's ERROR frame,
 * a truncated frame, EOF), which then replaces it. Caller holds LOCK. */
static void
record_error (MigChannel *ch, GError *error, gboolean weak)
{
  if (error != NULL
      && (ch->error == NULL
          || (ch->error_weak && !weak
              && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))))
    {
      g_clear_error (&ch->error);
      ch->error = g_steal_pointer (&error);
      ch->error_weak = weak;
    }
  g_clear_error (&error);
}

/* Fails the channel with ERROR (ownership taken) and stops the out pump,
 * but leaves the connection open. */
static void
channel_fail (MigChannel *ch, GError *error)
{
  g_mutex_lock (&ch->lock);
  record_error (ch, error, FALSE);
  g_mutex_unlock (&ch->lock);
  g_cancellable_cancel (ch->cancel);
}

/* Best effort: tells the peer why we stop. The out pump may be in the
 * middle of a frame; give it a moment, but never wait on a writer that is
 * stuck on a peer that does not read (the connection is then cut). */
static gboolean
try_send_error (MigChannel *ch, const GError *why)
{
  char msg[MIG_ERROR_TEXT_MAX];
  gboolean sent;
  guint tries = 0;

  while (!g_mutex_trylock (&ch->write_lock))
    {
      if (++tries > 50)
        return FALSE;
      g_usleep (2000);
    }
  g_strlcpy (msg, why->message, sizeof msg);
  mig_transport_set_timeout (ch->transport, 2);
  sent = mig_channel_write_simple (ch, MIG_FRAME_ERROR, msg, strlen (msg), NULL,
                                   NULL);
  g_mutex_unlock (&ch->write_lock);
  return sent;
}

/* After sending ERROR: keep reading (and dropping) what the peer still
 * sends until it has read our ERROR and closed, so that closing first
 * does not reset the connection and destroy the ERROR in flight. */
static void
linger (MigChannel *ch, guint8 *buf)
{
  gint64 deadline = g_get_monotonic_time () + G_TIME_SPAN_SECOND;

  mig_transport_set_timeout (ch->transport, 1);
  while (g_get_monotonic_time () < deadline)
    if (ch->transport->ops->read (ch->transport, buf, MIG_FRAME_MAX, NULL, NULL)
        <= 0)
      break;
}

/* Records how a pump ended (ERROR NULL = clean; ownership taken; WEAK as
 * for record_error()); the last pump out closes the connection and the
 * local fd and reports completion. */
static void
pump_finish (MigChannel *ch, GError *error, gboolean weak)
{
  gboolean failed, last;

  g_mutex_lock (&ch->lock);
  record_error (ch, error, weak);
  last = --ch->running == 0;
  g_cond_broadcast (&ch->cond);
  if (ch->error_weak && !last)
    {
      /* Give the in pump a moment to read the peer's ERROR frame (or the
       * EOF) before cancelling it. */
      gint64 deadline = g_get_monotonic_time () + 2 * G_TIME_SPAN_SECOND;
      while (ch->running > 0
             && g_cond_wait_until (&ch->cond, &ch->lock, deadline))
        ;
    }
  failed = ch->error != NULL;
  g_mutex_unlock (&ch->lock);

  /* Cancelling wakes the other pump; the connection itself stays up until
   * both are out, so an in pump lingering after its ERROR is not cut. */
  if (failed)
    g_cancellable_cancel (ch->cancel);
  if (!last)
    return;
  ch->transport->ops->close (ch->transport);
  /* Closing the local fd tells the local side (QEMU, libvirt) at once. */
  close (ch->local_fd);
  ch->local_fd = -1;

  g_mutex_lock (&ch->lock);
  ch->finished = TRUE;
  g_cond_broadcast (&ch->cond);
  g_mutex_unlock (&ch->lock);
  if (ch->done != NULL)
    ch->done (ch, ch->error, ch->done_data);
}

/* --- out pump: local -> peer ---------------------------------------------- */

/* Adaptive compression (MIG_COMPRESS_ON and AUTO): the out pump measures
 * each window of frames and hands it to the policy (MigAuto, or a test's
 * decide function); the decision holds until the next window ends. */
typedef struct
{
  MigAuto *policy;
  MigAutoSample window; /* being measured */
  gint64 start;         /* ns, of the window */
  gboolean decided;     /* a first decision was made */
  gboolean on;          /* the decision in force */
} Auto;

static void
auto_decide (MigChannel *ch, Auto *a, gint64 now)
{
  MigAutoSample *w = &a->window;
  MigAutoDecision d;

  w->window_ns = now - a->start;
  w->have_send_times = ch->transport->ops->send_times != NULL
                       && ch->transport->ops->send_times (
                           ch->transport, &w->busy_us, &w->rwnd_limited_us);
  if (ch->auto_hook.decide != NULL)
    ch->auto_hook.decide (a->policy, w, &d, ch->auto_hook.user_data);
  else
    mig_auto_evaluate (a->policy, w, &d);

  g_debug ("channel auto: %s (%s) ratio %.2f lz4 %.0f MB/s link %.0f MB/s "
           "wire %.0f MB/s payload %.0f MB/s blocked out %.2f in %.2f "
           "receiver-limited %.2f backoff %u",
           d.compress ? "lz4" : "raw", mig_auto_reason_to_string (d.reason),
           d.ratio, d.compress_speed / 1e6, d.link_rate / 1e6,
           d.wire_rate / 1e6, d.payload_rate / 1e6, d.out_blocked, d.in_waiting,
           d.rwnd_limited, d.backoff);

  a->decided = TRUE;
  a->on = d.compress;
  a->start = now;
  memset (w, 0, sizeof *w);

  g_mutex_lock (&ch->lock);
  ch->stats.compressing = d.compress;
  ch->stats.ratio = d.ratio;
  ch->stats.compress_speed = d.compress_speed;
  ch->stats.link_rate = d.link_rate;
  ch->stats.out_blocked = d.out_blocked;
  ch->stats.in_waiting = d.in_waiting;
  ch->stats.rwnd_limited = d.rwnd_limited;
  ch->stats.decisions++;
  g_mutex_unlock (&ch->lock);
}

void
mig_channel_set_auto_hook (MigChannel *ch, const MigChannelAutoHook *hook)
{
  g_return_if_fail (!ch->started);
  ch->auto_hook = *hook;
}

typedef struct
{
  double rate;  /* bytes/s */
  double burst; /* bytes */
  double tokens;
  gint64 last; /* ns */
} Bucket;

/* Takes N wire bytes from the bucket, sleeping off any debt. */
static gboolean
bucket_take (MigChannel *ch, Bucket *b, gsize n, GError **error)
{
  gint64 now = now_ns ();

  b->tokens = MIN (b->burst, b->tokens + b->rate * (now - b->last) / 1e9);
  b->last = now;
  b->tokens -= n;
  if (b->tokens < 0)
    {
      double wait_s = -b->tokens / b->rate;
      struct timespec ts
          = { (time_t)wait_s, (long)((wait_s - (time_t)wait_s) * 1e9) };
      struct pollfd p = { ch->cancel_fd, POLLIN, 0 };
      if (ppoll (&p, 1, &ts, NULL) > 0)
        return !g_cancellable_set_error_if_cancelled (ch->cancel, error);
    }
  return TRUE;
}

/* Lz4s what the policy asks for of the frame in BUF (N bytes) into ZBUF
 * and adds it to the window's sample. Returns the compressed length to
 * send, or 0 to send BUF as it is. */
static gsize
auto_compress (MigChannel *ch, Auto *a, const guint8 *buf, gsize n,
               guint8 *zbuf, int zbuf_len)
{
  gboolean use = ch->opts.compress == MIG_COMPRESS_ON || a->on || !a->decided;
  /* When off, a slice of the first frame of each window is still lz4'd
   * to learn whether the data turned compressible. */
  gsize in = use ? n : MIN (n, MIG_AUTO_SAMPLE_MAX);
  gint64 c0;
  int z;

  if (!use && a->window.frames > 0)
    return 0;
  c0 = thread_cpu_ns ();
  z = LZ4_compress_fast ((const char *)buf, (char *)zbuf, (int)in, zbuf_len, 1);
  a->window.lz4_ns += MAX (thread_cpu_ns () - c0, 1);
  a->window.lz4_in += in;
  a->window.lz4_out += z > 0 ? (guint64)z : in;
  if (ch->opts.compress == MIG_COMPRESS_AUTO && !a->decided)
    {
      /* The first decision: on the hint and this frame, before it goes. */
      auto_decide (ch, a, now_ns ());
      use = a->on;
    }
  return use && z > 0 && (gsize)z < n ? (gsize)z : 0;
}

static gpointer
out_pump (gpointer data)
{
  MigChannel *ch = data;
  gsize chunk = ch->opts.chunk_size;
  int zbuf_len = LZ4_compressBound ((int)chunk);
  g_autofree guint8 *buf = g_malloc (chunk);
  /* Touched now so page faults do not count as lz4 time in the first
   * sample. */
  g_autofree guint8 *zbuf = g_malloc0 (zbuf_len);
  GError *error = NULL;
  gboolean weak = FALSE;
  Auto a = { 0 };
  Bucket b = { 0 };

  if (ch->opts.rate_limit > 0)
    {
      b.rate = ch->opts.rate_limit;
      /* 50 ms worth of burst keeps short stalls from losing bandwidth. */
      b.burst = MAX (b.rate / 20, 64 * 1024);
      b.tokens = b.burst;
      b.last = now_ns ();
    }
  if (ch->opts.compress != MIG_COMPRESS_OFF)
    {
      a.policy = mig_auto_new (ch->opts.compress, ch->opts.link_rate,
                               ch->opts.rate_limit);
      a.start = now_ns ();
    }

  for (;;)
    {
      /* With a policy: wall time minus own CPU time = time blocked (see
       * mig-auto.c). */
      gboolean measure = a.policy != NULL;
      gint64 r0 = measure ? now_ns () : 0;
      gint64 rc0 = measure ? thread_cpu_ns () : 0;
      gboolean ping_failed = FALSE;
      gssize n = mig_channel_local_read (ch, buf, chunk, &ping_failed, &error);
      const guint8 *wire = buf;
      guint32 wire_len;
      guint16 flags = 0;
      guint32 crc;
      gint64 t0, t1, wc0 = 0;
      gsize z;
      gboolean ok;

      if (measure && n > 0)
        {
          gint64 blocked = (now_ns () - r0) - (thread_cpu_ns () - rc0);
          a.window.in_wait_ns += MAX (blocked, 0);
        }

      if (n < 0)
        {
          /* A keepalive that could not go out is a write failure the
           * peer may explain, as for a DATA frame. */
          weak = ping_failed;
          if (!ping_failed && error->domain == MIG_ERROR)
            try_send_error (ch, error);
          break;
        }
      if (n == 0)
        {
          g_mutex_lock (&ch->write_lock);
          ok = mig_channel_write_simple (ch, MIG_FRAME_END, "", 0, ch->cancel,
                                         &error);
          ch->end_sent = ok;
          g_mutex_unlock (&ch->write_lock);
          if (ok)
            {
              g_mutex_lock (&ch->lock);
              ch->stats.wire_out += MIG_FRAME_HEADER_SIZE;
              g_mutex_unlock (&ch->lock);
            }
          weak = !ok;
          break;
        }
      wire_len = (guint32)n;
      crc = mig_crc32c (0, buf, n);
      z = measure ? auto_compress (ch, &a, buf, n, zbuf, zbuf_len) : 0;
      if (z > 0)
        {
          wire = zbuf;
          wire_len = (guint32)z;
          flags = MIG_FRAME_FLAG_COMPRESSED;
        }

      t0 = now_ns ();
      if (measure)
        wc0 = thread_cpu_ns ();
      if (b.rate > 0
          && !bucket_take (ch, &b, MIG_FRAME_HEADER_SIZE + wire_len, &error))
        break;
      g_mutex_lock (&ch->write_lock);
      ok = mig_channel_write_frame (ch, MIG_FRAME_DATA, flags, (guint32)n, crc,
                                    wire, wire_len, ch->cancel, &error);
      g_mutex_unlock (&ch->write_lock);
      if (!ok)
        {
          weak = !g_error_matches (error, MIG_ERROR, MIG_ERROR_CHANNEL_FAULT);
          break;
        }
      t1 = now_ns ();

      g_mutex_lock (&ch->lock);
      ch->stats.payload_out += n;
      ch->stats.wire_out += MIG_FRAME_HEADER_SIZE + wire_len;
      ch->stats.frames_out++;
      if (flags & MIG_FRAME_FLAG_COMPRESSED)
        ch->stats.compressed_frames_out++;
      g_mutex_unlock (&ch->lock);

      if (measure)
        {
          gint64 blocked = (t1 - t0) - (thread_cpu_ns () - wc0);
          a.window.out_wait_ns += MAX (blocked, 0);
          a.window.wire_bytes += MIG_FRAME_HEADER_SIZE + wire_len;
          a.window.payload_bytes += n;
          a.window.frames++;
          if (mig_auto_window_full (a.policy, a.window.frames,
                                    ch->auto_hook.frames_only ? 0
                                                              : t1 - a.start))
            auto_decide (ch, &a, t1);
        }
    }
  g_clear_pointer (&a.policy, mig_auto_free);
  if (error != NULL)
    g_prefix_error (&error, "sending to peer: ");
  pump_finish (ch, error, weak);
  return NULL;
}

/* --- in pump: peer -> local ----------------------------------------------- */

/* Ends when the peer's END has been delivered (and ACKed) and the peer
 * has ACKed ours: a clean end means both sides checked every byte. */
static gpointer
in_pump (gpointer data)
{
  MigChannel *ch = data;
  g_autofree guint8 *wbuf = g_malloc (MIG_FRAME_MAX);
  g_autofree guint8 *pbuf = g_malloc (MIG_FRAME_MAX);
  g_autoptr (GByteArray) filtered
      = ch->opts.in_filter ? g_byte_array_new () : NULL;
  gboolean got_end = FALSE, got_ack = FALSE;
  GError *error = NULL;

  while (!(got_end && got_ack))
    {
      MigFrameHeader h;
      guint8 *payload = NULL;
      gboolean ok;

      if (!mig_channel_read_frame (ch, MIG_FRAME_MAX, &h, wbuf, pbuf, &payload,
                                   ch->cancel, &error))
        {
          if (g_error_matches (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL))
            goto tell_peer;
          if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT))
            {
              /* After the peer's END only our local side can move on
               * (its EOF sends our END, which the peer ACKs): no
               * keepalive comes meanwhile, and none is owed. */
              g_mutex_lock (&ch->write_lock);
              ok = got_end && !ch->end_sent;
              g_mutex_unlock (&ch->write_lock);
              if (ok)
                {
                  g_clear_error (&error);
                  continue;
                }
              g_prefix_error (&error,
                              "no frame for %u s: ", ch->opts.idle_timeout_s);
            }
          break;
        }
      if (h.type == MIG_FRAME_PING)
        continue;
      if (h.type == MIG_FRAME_DATA && !got_end)
        {
          const guint8 *out = payload;
          gsize out_len = h.payload_len;

          if (filtered)
            {
              g_byte_array_set_size (filtered, 0);
              if (!ch->opts.in_filter (payload, h.payload_len, filtered,
                                       ch->opts.in_filter_data, &error))
                goto tell_peer;
              out = filtered->data;
              out_len = filtered->len;
            }
          if (!mig_channel_local_write_all (ch, out, out_len, &error))
            goto tell_peer;
          g_mutex_lock (&ch->lock);
          ch->stats.payload_in += h.payload_len;
          ch->stats.wire_in += MIG_FRAME_HEADER_SIZE + h.wire_len;
          ch->stats.frames_in++;
          if (h.flags & MIG_FRAME_FLAG_COMPRESSED)
            ch->stats.compressed_frames_in++;
          g_mutex_unlock (&ch->lock);
        }
      else if (h.type == MIG_FRAME_END && !got_end)
        {
          got_end = TRUE;
          /* Half-close: the local reader sees EOF, our out pump goes on. */
          if (shutdown (ch->local_fd, SHUT_WR) < 0 && errno != ENOTSOCK
              && errno != ENOTCONN)
            {
              g_set_error (&error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL,
                           "shutting down local socket: %s",
                           g_strerror (errno));
              goto tell_peer;
            }
          g_mutex_lock (&ch->write_lock);
          ok = mig_channel_write_simple (ch, MIG_FRAME_ACK, "", 0, ch->cancel,
                                         &error);
          g_mutex_unlock (&ch->write_lock);
          if (!ok)
            break;
        }
      else if (h.type == MIG_FRAME_ACK && !got_ack)
        {
          g_mutex_lock (&ch->write_lock);
          got_ack = ch->end_sent;
          g_mutex_unlock (&ch->write_lock);
          if (!got_ack)
            {
              g_set_error (&error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                           "ACK before our END");
              goto tell_peer;
            }
        }
      else if (h.type == MIG_FRAME_ERROR)
        {
          g_autofree char *text
              = g_utf8_make_valid ((char *)payload, h.payload_len);
          g_set_error (&error, MIG_ERROR, MIG_ERROR_CHANNEL_PEER,
                       "peer aborted the stream: %s", text);
          break;
        }
      else
        {
          g_set_error (&error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                       "unexpected frame type %u in stream%s", h.type,
                       got_end ? " after END" : "");
          goto tell_peer;
        }
    }
  if (error != NULL
      && !g_error_matches (error, MIG_ERROR, MIG_ERROR_CHANNEL_PEER))
    g_prefix_error (&error, "receiving from peer: ");
  pump_finish (ch, error, FALSE);
  return NULL;

tell_peer:
  /* We found the fault: say so, stop sending, let the peer read it. */
  if (try_send_error (ch, error))
    {
      g_prefix_error (&error, "receiving from peer: ");
      channel_fail (ch, g_steal_pointer (&error));
      linger (ch, wbuf);
    }
  else
    g_prefix_error (&error, "receiving from peer: ");
  pump_finish (ch, error, FALSE);
  return NULL;
}

/* --- lifecycle ------------------------------------------------------------ */

gboolean
mig_channel_start (MigChannel *ch, int local_fd, const MigChannelOptions *opts,
                   MigChannelDoneFunc done, gpointer user_data, GError **error)
{
  int flags;

  g_return_val_if_fail (!ch->started, FALSE);
  if (opts != NULL)
    ch->opts = *opts;
  if (ch->opts.chunk_size == 0)
    ch->opts.chunk_size = MIG_CHANNEL_CHUNK_DEFAULT;
  if (ch->opts.chunk_size > MIG_FRAME_MAX)
    {
      close (local_fd);
      g_set_error (error, MIG_ERROR, MIG_ERROR_INVALID,
                   "chunk size %" G_GSIZE_FORMAT " above the %d-byte frame "
                   "limit",
                   ch->opts.chunk_size, MIG_FRAME_MAX);
      return FALSE;
    }
  /* Non-blocking so a pump waiting on the local side can be cancelled. */
  flags = fcntl (local_fd, F_GETFL);
  if (flags < 0 || fcntl (local_fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL, "local fd %d: %s",
                   local_fd, g_strerror (errno));
      close (local_fd);
      return FALSE;
    }
  mig_channel_local_sndbuf (local_fd);
  ch->local_fd = local_fd;
  /* Both pumps wait on the peer at most this long (the idle timeout):
   * the peer sends keepalives while it has nothing else to send. */
  mig_transport_set_timeout (ch->transport, ch->opts.idle_timeout_s);
  ch->stats.compressing = ch->opts.compress == MIG_COMPRESS_ON;
  ch->done = done;
  ch->done_data = user_data;
  ch->started = TRUE;
  ch->running = 2;
  ch->out_thread = g_thread_new ("mig-chan-out", out_pump, ch);
  ch->in_thread = g_thread_new ("mig-chan-in", in_pump, ch);
  return TRUE;
}

gboolean
mig_channel_wait (MigChannel *ch, GError **error)
{
  gboolean ok;

  g_return_val_if_fail (ch->started, FALSE);
  g_mutex_lock (&ch->lock);
  while (!ch->finished)
    g_cond_wait (&ch->cond, &ch->lock);
  ok = ch->error == NULL;
  if (!ok)
    g_propagate_error (error, g_error_copy (ch->error));
  g_mutex_unlock (&ch->lock);
  return ok;
}

void
mig_channel_close (MigChannel *ch)
{
  if (!ch->started)
    {
      ch->transport->ops->close (ch->transport);
      return;
    }
  g_mutex_lock (&ch->lock);
  if (!ch->finished && ch->error == NULL)
    {
      g_set_error (&ch->error, MIG_ERROR, MIG_ERROR_CHANNEL_ABORTED,
                   "channel closed before the end of the stream");
      ch->error_weak = FALSE;
    }
  g_mutex_unlock (&ch->lock);
  g_cancellable_cancel (ch->cancel);
  ch->transport->ops->close (ch->transport);
  if (ch->out_thread != NULL)
    g_thread_join (g_steal_pointer (&ch->out_thread));
  if (ch->in_thread != NULL)
    g_thread_join (g_steal_pointer (&ch->in_thread));
}

MigChannelKind
mig_channel_get_kind (MigChannel *ch)
{
  return ch->kind;
}

const char *
mig_channel_kind_to_string (MigChannelKind kind)
{
  switch (kind)
    {
    case MIG_CHANNEL_KIND_CONTROL:
      return "control";
    case MIG_CHANNEL_KIND_MEMORY:
      return "memory";
    case MIG_CHANNEL_KIND_DISK:
      return "disk";
    case MIG_CHANNEL_KIND_IMAGE:
      return "image";
    }
  return "unknown";
}

void
mig_channel_get_stats (MigChannel *ch, MigChannelStats *stats)
{
  g_mutex_lock (&ch->lock);
  *stats = ch->stats;
  g_mutex_unlock (&ch->lock);
}

void
mig_channel_free (MigChannel *ch)
{
  if (ch == NULL)
    return;
  mig_channel_close (ch);
  mig_transport_free (ch->transport);
  g_cancellable_release_fd (ch->cancel);
  g_object_unref (ch->cancel);
  g_clear_error (&ch->error);
  g_mutex_clear (&ch->write_lock);
  g_mutex_clear (&ch->lock);
  g_cond_clear (&ch->cond);
  g_free (ch);
}
