/* MigChannel: carries one bidirectional byte stream between a local fd and
 * a peer agent. See mig-channel.h for the frame format.
 *
 * Threads: one pump per direction, blocking I/O.
 *   out pump: read(local) -> [lz4] -> crc -> token bucket -> writev(peer)
 *   in pump:  read(peer) header+body -> check -> [unlz4] -> crc -> write(local)
 * The first error sticks (later ones are consequences), cancels the other
 * pump and shuts the transport down; the last pump to exit closes the
 * local fd and reports completion once.
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

/* Auto compression re-evaluates after this many frames or this long. */
#define AUTO_WINDOW_FRAMES 64
#define AUTO_WINDOW_NS (100 * G_GINT64_CONSTANT (1000000))
#define AUTO_SAMPLE_MAX (64 * 1024) /* bytes lz4'd to probe when off */
/* Decision thresholds, paired for hysteresis (see auto_evaluate()). */
#define AUTO_RATIO_ON 1.2    /* payload/lz4 bytes needed to turn on */
#define AUTO_RATIO_OFF 1.15  /* ... and below which it turns off */
#define AUTO_GAIN_ON 1.15    /* predicted speed-up needed to turn on */
#define AUTO_GAIN_OFF 1.05   /* ... and below which it turns off */
#define AUTO_BLOCKED_MIN 0.3 /* share of a window blocked on the peer */
#define AUTO_RWND_BOUND 0.25 /* share of sending time the receiver held */
#define AUTO_RWND_MIN_US                                                       \
  8000                       /* sending time a window's share needs (the       \
                                kernel counts in jiffies) */
#define AUTO_CARRY 0.9       /* hint: demand reaches the link at L*this */
#define AUTO_CONFIRM 2       /* windows in a row that must agree to switch */
#define AUTO_BACKOFF_MIN 8   /* windows off after lz4 did not pay, ... */
#define AUTO_BACKOFF_MAX 128 /* ... doubling per failed try up to this */

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
}

/* ---- local fd I/O ----------------------------------------------------- */

/* Waits until FD is ready for EVENTS or the channel is cancelled. */
static gboolean
wait_local (MigChannel *ch, short events, GError **error)
{
  struct pollfd p[2]
      = { { ch->local_fd, events, 0 }, { ch->cancel_fd, POLLIN, 0 } };

  for (;;)
    {
      if (poll (p, 2, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL, "poll: %s",
                       g_strerror (errno));
          return FALSE;
        }
      if (p[1].revents != 0)
        return !g_cancellable_set_error_if_cancelled (ch->cancel, error);
      return TRUE;
    }
}

static gssize
local_read (MigChannel *ch, void *buf, gsize len, GError **error)
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
          if (!wait_local (ch, POLLIN, error))
            return -1;
          continue;
        }
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL,
                   "reading local socket: %s", g_strerror (errno));
      return -1;
    }
}

static gboolean
local_write_all (MigChannel *ch, const guint8 *buf, gsize len, GError **error)
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
          if (!wait_local (ch, POLLOUT, error))
            return FALSE;
          continue;
        }
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_LOCAL,
                   "writing local socket: %s", g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* ---- completion ------------------------------------------------------- */

/* Records how a pump ended (ERROR NULL = clean; ownership taken). WEAK
 * marks a transport write failure: the connection broke under the out
 * pump, and the in pump is about to read why (the peer's ERROR frame, a
 * truncated frame, EOF), which then replaces it. */
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

/* Records how a pump ended (ERROR NULL = clean; ownership taken). */
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

/* ---- out pump: local -> peer ------------------------------------------ */

typedef struct
{
  gboolean on;
  gboolean decided; /* first evaluation done */
  guint evaluations;
  guint streak;      /* windows in a row that disagreed with ON */
  guint backoff;     /* windows before lz4 may be tried again */
  guint backoff_len; /* next backoff */
  double link;       /* estimated link wire bytes/s, 0 = unknown */
  gint64 win_start;  /* ns */
  guint win_frames;
  guint64 s_in, s_out; /* lz4 input/output bytes sampled in the window */
  gint64 s_ns;         /* time spent in lz4 */
  guint64 p_bytes;     /* payload bytes sent in the window */
  guint64 w_bytes;     /* wire bytes written in the window */
  gint64 in_wait_ns;   /* blocked waiting for local input */
  gint64 out_wait_ns;  /* blocked on the peer or the rate limit */
  gboolean have_times; /* busy_us, rwnd_us hold the transport's totals */
  guint64 busy_us, rwnd_us;
} AutoState;

/* Payload speed-up lz4 brings when the link (L wire bytes/s) is the
 * bottleneck: 1/L seconds per byte raw against 1/cs + 1/(L*r) with lz4
 * (cs: lz4 speed, r: ratio). Counting lz4 time as if it could not overlap
 * with the link draining the socket buffer is pessimistic on purpose: on
 * 2 cores the CPU lz4 takes is taken from QEMU, TLS or the peer. It also
 * keeps lz4 off when it cannot keep up with L*r by a margin. */
static double
auto_gain (double link, double cs, double ratio)
{
  if (link <= 0 || cs <= 0 || ratio <= 0)
    return 0;
  return (1.0 / link) / (1.0 / cs + 1.0 / (link * ratio));
}

/* Decides, once per window, whether lz4 makes the transfer faster.
 *
 * Compression can only help when the output side is the bottleneck: it
 * trades our CPU for wire bytes. The measured TCG migration showed the
 * trap: QEMU produced data slower than loopback carries it, so the old
 * "wire bytes / time spent writing" link estimate measured QEMU, looked
 * slow, and lz4 ran on every link, stealing the CPU QEMU needed. So the
 * out pump measures where it waits, in wall time minus its own CPU time
 * (TLS encryption and copying are work, not waiting):
 *   in_wait  - reading the local fd found no data (producer-limited);
 *   out_wait - writing to the peer blocked (full send buffer, slow or
 *              shaped link) or the token bucket made us sleep (the rate
 *              limit is the link then).
 * Backpressured = out_wait is at least AUTO_BLOCKED_MIN of the window and
 * at least twice in_wait. Only then, and with lz4 off, is the wire rate
 * of the window the raw rate L the path takes (the buffer was drained
 * all along); otherwise the wire rate is only a lower bound of L.
 * Backpressure alone does not say where the bottleneck is: the link, or
 * the receiver (the peer agent's TLS, the destination QEMU) reading
 * slower than the link carries. TCP says which: the kernel keeps how long
 * the connection had data in flight and how much of that the peer's
 * receive window was closed (TCP_INFO's busy and rwnd-limited times; a
 * shaped or slow network shows ~0, a slow reader most of the time). When
 * the receiver held us back for AUTO_RWND_BOUND of the window's sending
 * time, lz4 is not started: the wire is not what is short, and on hosts
 * where the agents share cores with QEMU the compressor's CPU only slows
 * the migration (measured on the unshaped loopback: text moved faster
 * raw). Where TCP cannot tell (no socket, an old kernel), and as a second
 * check, turning lz4 on is a trial that must pay: with lz4 on, the
 * payload rate has to beat L by AUTO_GAIN_OFF.
 *
 * Rules (mode AUTO):
 *   - OFF -> ON only when the demand exceeds the link: backpressured, or,
 *     with a configured link_rate hint, the payload rate reaches
 *     AUTO_CARRY x hint (the hint stands in for the measurement, of the
 *     receive window too); and, without a hint, the receiver did not
 *     hold the window back; and the sampled ratio >= AUTO_RATIO_ON; and
 *     auto_gain() >= AUTO_GAIN_ON, which is off when lz4 is slower than
 *     about L*r.
 *   - ON -> OFF when the ratio falls below AUTO_RATIO_OFF (data turned
 *     incompressible: at once), or the gain with the current figures falls
 *     below AUTO_GAIN_OFF, or the payload rate is below AUTO_GAIN_OFF x L:
 *     the raw path would carry as much, because the producer, lz4 itself
 *     or the destination is the bottleneck, and lz4 only burns CPU. If we
 *     were still backpressured (the destination, not the producer, is the
 *     bottleneck: a failed trial), lz4 stays off for AUTO_BACKOFF_MIN
 *     windows, doubling up to AUTO_BACKOFF_MAX while trials keep failing.
 *   - A switch needs AUTO_CONFIRM windows in a row that want it (a
 *     transient, e.g. the backlog queued before the channel started, is
 *     not enough), except the first decision (made on the hint before
 *     any window) and a ratio collapse; with the paired thresholds this
 *     keeps the decision from flapping at the edges.
 *   - While off, the first frame of each window is still sampled (at most
 *     AUTO_SAMPLE_MAX bytes), so the ratio and lz4 speed stay current.
 * Without a hint and before any backpressured window L is unknown and lz4
 * stays off; the rate limit caps L. */
static void
auto_evaluate (MigChannel *ch, AutoState *a, gint64 now)
{
  double ratio = 0, cs = 0, link, gain, fin = 0, fout = 0, wire_rate = 0;
  double payload_rate = 0, rwnd = -1;
  gint64 win = now - a->win_start;
  gboolean backpressured, demand, want, receiver_bound;
  guint64 busy_us = 0, rwnd_us = 0;

  g_mutex_lock (&ch->lock);
  ratio = ch->stats.ratio;
  cs = ch->stats.compress_speed;
  g_mutex_unlock (&ch->lock);

  if (a->s_in > 0 && a->s_out > 0 && a->s_ns > 0)
    {
      ratio = (double)a->s_in / a->s_out;
      cs = a->s_in / (a->s_ns / 1e9);
    }
  if (a->win_frames > 0 && win > 0)
    {
      fin = (double)a->in_wait_ns / win;
      fout = (double)a->out_wait_ns / win;
      wire_rate = a->w_bytes / (win / 1e9);
      payload_rate = a->p_bytes / (win / 1e9);
    }
  backpressured = fout >= AUTO_BLOCKED_MIN && fout >= 2 * fin;
  if (ch->transport->ops->send_times != NULL
      && ch->transport->ops->send_times (ch->transport, &busy_us, &rwnd_us))
    {
      if (a->have_times && busy_us >= a->busy_us + AUTO_RWND_MIN_US
          && rwnd_us >= a->rwnd_us)
        rwnd = (double)(rwnd_us - a->rwnd_us) / (double)(busy_us - a->busy_us);
      a->have_times = TRUE;
      a->busy_us = busy_us;
      a->rwnd_us = rwnd_us;
    }
  /* A configured link_rate stands in for the measurement, this one too. */
  receiver_bound = ch->opts.link_rate == 0 && rwnd >= AUTO_RWND_BOUND;

  if (ch->opts.link_rate > 0)
    a->link = ch->opts.link_rate;
  else if (backpressured && !a->on && !receiver_bound)
    a->link = wire_rate;
  else if (a->link > 0)
    a->link = MAX (a->link, wire_rate);
  if (ch->opts.rate_limit > 0 && a->link > ch->opts.rate_limit)
    a->link = ch->opts.rate_limit;
  link = a->link;
  gain = auto_gain (link, cs, ratio);
  if (ch->opts.link_rate > 0)
    demand = a->win_frames == 0 || payload_rate >= AUTO_CARRY * link;
  else
    demand = backpressured;

  if (ch->opts.compress == MIG_COMPRESS_ON)
    want = TRUE; /* only the figures are of interest */
  else if (!a->on)
    want = a->backoff == 0 && demand && !receiver_bound && link > 0
           && ratio >= AUTO_RATIO_ON && gain >= AUTO_GAIN_ON;
  else
    want = ratio >= AUTO_RATIO_OFF && gain >= AUTO_GAIN_OFF
           && payload_rate >= AUTO_GAIN_OFF * link;
  if (a->on && want)
    a->backoff_len = 0; /* it pays */
  if (a->backoff > 0)
    a->backoff--;
  if (want == a->on)
    a->streak = 0;
  else if (ch->opts.compress == MIG_COMPRESS_ON || !a->decided
           || ratio < AUTO_RATIO_OFF || ++a->streak >= AUTO_CONFIRM)
    {
      if (a->on && ratio >= AUTO_RATIO_OFF && backpressured)
        {
          /* A failed trial: blocked on the output although lz4 runs, so
           * the bottleneck is past the link. Wait before the next. (A
           * producer pause or a change of data is no verdict on lz4.) */
          a->backoff_len
              = CLAMP (a->backoff_len * 2, AUTO_BACKOFF_MIN, AUTO_BACKOFF_MAX);
          a->backoff = a->backoff_len;
        }
      a->on = want;
      a->streak = 0;
    }

  g_debug ("channel auto: %s ratio %.2f lz4 %.0f MB/s link %.0f MB/s "
           "wire %.0f MB/s payload %.0f MB/s blocked out %.2f in %.2f "
           "receiver-limited %.2f backoff %u",
           a->on ? "lz4" : "raw", ratio, cs / 1e6, link / 1e6, wire_rate / 1e6,
           payload_rate / 1e6, fout, fin, rwnd, a->backoff);

  a->decided = TRUE;
  a->evaluations++;
  a->win_start = now;
  a->win_frames = 0;
  a->s_in = a->s_out = a->w_bytes = a->p_bytes = 0;
  a->s_ns = a->in_wait_ns = a->out_wait_ns = 0;

  g_mutex_lock (&ch->lock);
  ch->stats.compressing = a->on;
  ch->stats.ratio = ratio;
  ch->stats.compress_speed = cs;
  ch->stats.link_rate = link;
  ch->stats.out_blocked = fout;
  ch->stats.in_waiting = fin;
  ch->stats.rwnd_limited = rwnd;
  ch->stats.decisions++;
  g_mutex_unlock (&ch->lock);
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

static gpointer
out_pump (gpointer data)
{
  MigChannel *ch = data;
  gsize chunk = ch->opts.chunk_size;
  g_autofree guint8 *buf = g_malloc (chunk);
  /* Touched now so page faults do not count as lz4 time in the first
   * sample. */
  g_autofree guint8 *zbuf = g_malloc0 (LZ4_compressBound ((int)chunk));
  GError *error = NULL;
  gboolean weak = FALSE;
  AutoState a = { 0 };
  Bucket b = { 0 };

  if (ch->opts.rate_limit > 0)
    {
      b.rate = ch->opts.rate_limit;
      /* 50 ms worth of burst keeps short stalls from losing bandwidth. */
      b.burst = MAX (b.rate / 20, 64 * 1024);
      b.tokens = b.burst;
      b.last = now_ns ();
    }
  a.win_start = now_ns ();

  for (;;)
    {
      /* Auto: wall time minus own CPU time = time blocked (see
       * auto_evaluate()). */
      gboolean measure = ch->opts.compress != MIG_COMPRESS_OFF;
      gint64 r0 = measure ? now_ns () : 0;
      gint64 rc0 = measure ? thread_cpu_ns () : 0;
      gssize n = local_read (ch, buf, chunk, &error);
      const guint8 *wire = buf;
      guint32 wire_len;
      guint16 flags = 0;
      guint32 crc;
      gint64 t0, t1, wc0 = 0;
      gboolean ok;

      if (measure && n > 0)
        {
          gint64 blocked = (now_ns () - r0) - (thread_cpu_ns () - rc0);
          a.in_wait_ns += MAX (blocked, 0);
        }

      if (n < 0)
        {
          if (error->domain == MIG_ERROR)
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

      if (ch->opts.compress != MIG_COMPRESS_OFF)
        {
          gboolean use
              = ch->opts.compress == MIG_COMPRESS_ON || a.on || !a.decided;
          /* When off, auto still lz4s a slice of the first frame of each
           * window to learn whether the data turned compressible. */
          gsize in = use ? (gsize)n : MIN ((gsize)n, AUTO_SAMPLE_MAX);
          gboolean sample = use || a.win_frames == 0;
          if (use || sample)
            {
              gint64 c0 = thread_cpu_ns ();
              int z
                  = LZ4_compress_fast ((const char *)buf, (char *)zbuf, (int)in,
                                       LZ4_compressBound ((int)chunk), 1);
              gint64 c1 = thread_cpu_ns ();
              if (sample)
                {
                  a.s_in += in;
                  a.s_out += z > 0 ? (guint64)z : in;
                  a.s_ns += MAX (c1 - c0, 1);
                }
              if (ch->opts.compress == MIG_COMPRESS_AUTO && !a.decided)
                {
                  auto_evaluate (ch, &a, now_ns ());
                  use = a.on;
                }
              if (use && z > 0 && (gsize)z < (gsize)n)
                {
                  wire = zbuf;
                  wire_len = (guint32)z;
                  flags = MIG_FRAME_FLAG_COMPRESSED;
                }
            }
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
          a.out_wait_ns += MAX (blocked, 0);
          a.w_bytes += MIG_FRAME_HEADER_SIZE + wire_len;
          a.p_bytes += n;
          a.win_frames++;
          /* Short windows at first: the first sample may be a small,
           * cold-cache frame. */
          if (a.win_frames >= (a.evaluations < 4 ? 8 : AUTO_WINDOW_FRAMES)
              || t1 - a.win_start >= AUTO_WINDOW_NS)
            auto_evaluate (ch, &a, t1);
        }
    }
  if (error != NULL)
    g_prefix_error (&error, "sending to peer: ");
  pump_finish (ch, error, weak);
  return NULL;
}

/* ---- in pump: peer -> local ------------------------------------------- */

/* Ends when the peer's END has been delivered (and ACKed) and the peer
 * has ACKed ours: a clean end means both sides checked every byte. */
static gpointer
in_pump (gpointer data)
{
  MigChannel *ch = data;
  g_autofree guint8 *wbuf = g_malloc (MIG_FRAME_MAX);
  g_autofree guint8 *pbuf = g_malloc (MIG_FRAME_MAX);
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
          break;
        }
      if (h.type == MIG_FRAME_DATA && !got_end)
        {
          if (!local_write_all (ch, payload, h.payload_len, &error))
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

/* ---- lifecycle -------------------------------------------------------- */

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

static void
local_sndbuf (int fd)
{
  int size = MIG_LOCAL_SNDBUF;

  if (setsockopt (fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0
      && errno != ENOTSOCK)
    (void)setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

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
  local_sndbuf (local_fd);
  ch->local_fd = local_fd;
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

void
mig_channel_get_stats (MigChannel *ch, MigChannelStats *stats)
{
  g_mutex_lock (&ch->lock);
  *stats = ch->stats;
  g_mutex_unlock (&ch->lock);
}

gboolean
mig_channel_get_compressing (MigChannel *ch, double *ratio)
{
  gboolean on;

  g_mutex_lock (&ch->lock);
  on = ch->opts.compress == MIG_COMPRESS_ON
       || (ch->opts.compress == MIG_COMPRESS_AUTO && ch->stats.compressing);
  if (ratio != NULL)
    *ratio = ch->stats.ratio;
  g_mutex_unlock (&ch->lock);
  return on;
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
