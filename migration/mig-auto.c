/* MigAuto: decides, once per window, whether lz4 makes a channel's
 * transfer faster.
 *
 * Compression can only help when the output side is the bottleneck: it
 * trades our CPU for wire bytes. The measured TCG migration showed the
 * trap: QEMU produced data slower than loopback carries it, so the old
 * "wire bytes / time spent writing" link estimate measured QEMU, looked
 * slow, and lz4 ran on every link, stealing the CPU QEMU needed. So the
 * channel's out pump measures where it waits, in wall time minus its own
 * CPU time (TLS encryption and copying are work, not waiting), and hands
 * each window's figures to this policy:
 *   in_wait  - reading the local fd found no data (producer-limited);
 *   out_wait - writing to the peer blocked (full send buffer, slow or
 *              shaped link) or the token bucket made us sleep (the rate
 *              limit is the link then).
 * Backpressured = out_wait is at least MIG_AUTO_BLOCKED_MIN of the window
 * and at least twice in_wait. Only then, and with lz4 off, is the wire
 * rate of the window the raw rate L the path takes (the buffer was
 * drained all along); otherwise the wire rate is only a lower bound of L.
 * Backpressure alone does not say where the bottleneck is: the link, or
 * the receiver (the peer agent's TLS, the destination QEMU) reading
 * slower than the link carries. TCP says which: the kernel keeps how long
 * the connection had data in flight and how much of that the peer's
 * receive window was closed (TCP_INFO's busy and rwnd-limited times; a
 * shaped or slow network shows ~0, a slow reader most of the time). When
 * the receiver held us back for MIG_AUTO_RWND_BOUND of the window's
 * sending time, lz4 is not started: the wire is not what is short, and on
 * hosts where the agents share cores with QEMU the compressor's CPU only
 * slows the migration (measured on the unshaped loopback: text moved
 * faster raw). Where TCP cannot tell (no socket, an old kernel), and as a
 * second check, turning lz4 on is a trial that must pay: with lz4 on, the
 * payload rate has to beat L by MIG_AUTO_GAIN_OFF.
 *
 * Rules (mode AUTO):
 *   - OFF -> ON only when the demand exceeds the link: backpressured, or,
 *     with a configured link_rate hint, the payload rate reaches
 *     MIG_AUTO_CARRY x hint (the hint stands in for the measurement, of
 *     the receive window too); and, without a hint, the receiver did not
 *     hold the window back; and the sampled ratio >= MIG_AUTO_RATIO_ON;
 *     and gain() >= MIG_AUTO_GAIN_ON, which is off when lz4 is slower
 *     than about L*r.
 *   - ON -> OFF when the ratio falls below MIG_AUTO_RATIO_OFF (data turned
 *     incompressible: at once), or the gain with the current figures
 *     falls below MIG_AUTO_GAIN_OFF, or the payload rate is below
 *     MIG_AUTO_GAIN_OFF x L: the raw path would carry as much, because the
 *     producer, lz4 itself or the destination is the bottleneck, and lz4
 *     only burns CPU. If we were still backpressured (the destination, not
 *     the producer, is the bottleneck: a failed trial), lz4 stays off for
 *     MIG_AUTO_BACKOFF_MIN windows, doubling up to MIG_AUTO_BACKOFF_MAX
 *     while trials keep failing.
 *   - A switch needs MIG_AUTO_CONFIRM windows in a row that want it (a
 *     transient, e.g. the backlog queued before the channel started, is
 *     not enough), except the first decision (made on the hint before
 *     any window) and a ratio collapse; with the paired thresholds this
 *     keeps the decision from flapping at the edges.
 *   - While off, the channel still lz4s the first frame of each window
 *     (at most MIG_AUTO_SAMPLE_MAX bytes), so the ratio and lz4 speed
 *     stay current.
 * Without a hint and before any backpressured window L is unknown and lz4
 * stays off; the rate limit caps L.
 */
#include <string.h>

#include "mig-auto.h"

struct _MigAuto
{
  MigCompressMode mode;
  guint64 link_hint;  /* configured link_rate, 0 = measure */
  guint64 rate_limit; /* 0 = none */
  gboolean on;        /* the decision in force */
  gboolean decided;   /* first evaluation done */
  guint evaluations;
  guint streak;        /* windows in a row that disagreed with ON */
  guint backoff;       /* windows before lz4 may be tried again */
  guint backoff_len;   /* next backoff */
  double link;         /* estimated link wire bytes/s, 0 = unknown */
  double ratio, speed; /* of the last lz4 sample (0 = none yet) */
  gboolean have_times; /* busy_us, rwnd_us hold the transport's totals */
  guint64 busy_us, rwnd_us;
};

MigAuto *
mig_auto_new (MigCompressMode mode, guint64 link_rate, guint64 rate_limit)
{
  MigAuto *a = g_new0 (MigAuto, 1);

  a->mode = mode;
  a->link_hint = link_rate;
  a->rate_limit = rate_limit;
  return a;
}

void
mig_auto_free (MigAuto *a)
{
  g_free (a);
}

gboolean
mig_auto_window_full (const MigAuto *a, guint frames, gint64 elapsed_ns)
{
  guint want = a->evaluations < MIG_AUTO_SHORT_WINDOWS
                   ? MIG_AUTO_SHORT_WINDOW_FRAMES
                   : MIG_AUTO_WINDOW_FRAMES;

  return frames >= want || elapsed_ns >= MIG_AUTO_WINDOW_NS;
}

guint
mig_auto_get_evaluations (const MigAuto *a)
{
  return a->evaluations;
}

/* Payload speed-up lz4 brings when the link (L wire bytes/s) is the
 * bottleneck: 1/L seconds per byte raw against 1/cs + 1/(L*r) with lz4
 * (cs: lz4 speed, r: ratio). Counting lz4 time as if it could not overlap
 * with the link draining the socket buffer is pessimistic on purpose: on
 * 2 cores the CPU lz4 takes is taken from QEMU, TLS or the peer. It also
 * keeps lz4 off when it cannot keep up with L*r by a margin. */
static double
gain (double link, double cs, double ratio)
{
  if (link <= 0 || cs <= 0 || ratio <= 0)
    return 0;
  return (1.0 / link) / (1.0 / cs + 1.0 / (link * ratio));
}

/* Share of the window's sending time the receiver's window held us back,
 * from the transport's running totals; -1 when unknown or too short. */
static double
receiver_share (MigAuto *a, const MigAutoSample *s)
{
  double rwnd = -1;

  if (!s->have_send_times)
    return -1;
  if (a->have_times && s->busy_us >= a->busy_us + MIG_AUTO_RWND_MIN_US
      && s->rwnd_limited_us >= a->rwnd_us)
    rwnd = (double)(s->rwnd_limited_us - a->rwnd_us)
           / (double)(s->busy_us - a->busy_us);
  a->have_times = TRUE;
  a->busy_us = s->busy_us;
  a->rwnd_us = s->rwnd_limited_us;
  return rwnd;
}

void
mig_auto_evaluate (MigAuto *a, const MigAutoSample *s, MigAutoDecision *d)
{
  gboolean demand, want, receiver_bound, was_on = a->on;
  MigAutoReason why;

  memset (d, 0, sizeof *d);
  if (s->lz4_in > 0 && s->lz4_out > 0 && s->lz4_ns > 0)
    {
      a->ratio = (double)s->lz4_in / s->lz4_out;
      a->speed = s->lz4_in / (s->lz4_ns / 1e9);
    }
  d->ratio = a->ratio;
  d->compress_speed = a->speed;
  if (s->frames > 0 && s->window_ns > 0)
    {
      d->in_waiting = (double)s->in_wait_ns / s->window_ns;
      d->out_blocked = (double)s->out_wait_ns / s->window_ns;
      d->wire_rate = s->wire_bytes / (s->window_ns / 1e9);
      d->payload_rate = s->payload_bytes / (s->window_ns / 1e9);
    }
  d->backpressured = d->out_blocked >= MIG_AUTO_BLOCKED_MIN
                     && d->out_blocked >= 2 * d->in_waiting;
  d->rwnd_limited = receiver_share (a, s);
  /* A configured link_rate stands in for the measurement, this one too. */
  receiver_bound = a->link_hint == 0 && d->rwnd_limited >= MIG_AUTO_RWND_BOUND;

  if (a->link_hint > 0)
    a->link = a->link_hint;
  else if (d->backpressured && !a->on && !receiver_bound)
    a->link = d->wire_rate;
  else if (a->link > 0)
    a->link = MAX (a->link, d->wire_rate);
  if (a->rate_limit > 0 && a->link > a->rate_limit)
    a->link = a->rate_limit;
  d->link_rate = a->link;
  d->gain = gain (a->link, a->speed, a->ratio);
  if (a->link_hint > 0)
    demand = s->frames == 0 || d->payload_rate >= MIG_AUTO_CARRY * a->link;
  else
    demand = d->backpressured;

  /* What the window wants, and why. */
  if (a->mode == MIG_COMPRESS_ON)
    {
      want = TRUE; /* only the figures are of interest */
      why = MIG_AUTO_FORCED;
    }
  else if (!a->on)
    {
      want = FALSE;
      if (a->backoff > 0)
        why = MIG_AUTO_BACKING_OFF;
      else if (receiver_bound)
        why = MIG_AUTO_RECEIVER_BOUND;
      else if (!demand)
        why = MIG_AUTO_NO_DEMAND;
      else if (a->link <= 0)
        why = MIG_AUTO_LINK_UNKNOWN;
      else if (a->ratio < MIG_AUTO_RATIO_ON)
        why = MIG_AUTO_INCOMPRESSIBLE;
      else if (d->gain < MIG_AUTO_GAIN_ON)
        why = MIG_AUTO_TOO_SLOW;
      else
        {
          want = TRUE;
          why = MIG_AUTO_PAYS;
        }
    }
  else
    {
      want = FALSE;
      if (a->ratio < MIG_AUTO_RATIO_OFF)
        why = MIG_AUTO_INCOMPRESSIBLE;
      else if (d->gain < MIG_AUTO_GAIN_OFF)
        why = MIG_AUTO_TOO_SLOW;
      else if (d->payload_rate < MIG_AUTO_GAIN_OFF * a->link)
        why = MIG_AUTO_NOT_PAYING;
      else
        {
          want = TRUE;
          why = MIG_AUTO_PAYS;
        }
    }

  if (a->on && want)
    a->backoff_len = 0; /* it pays */
  if (a->backoff > 0)
    a->backoff--;
  if (want == a->on)
    a->streak = 0;
  else if (a->mode == MIG_COMPRESS_ON || !a->decided
           || a->ratio < MIG_AUTO_RATIO_OFF || ++a->streak >= MIG_AUTO_CONFIRM)
    {
      if (a->on && a->ratio >= MIG_AUTO_RATIO_OFF && d->backpressured)
        {
          /* A failed trial: blocked on the output although lz4 runs, so
           * the bottleneck is past the link. Wait before the next. (A
           * producer pause or a change of data is no verdict on lz4.) */
          a->backoff_len = CLAMP (a->backoff_len * 2, MIG_AUTO_BACKOFF_MIN,
                                  MIG_AUTO_BACKOFF_MAX);
          a->backoff = a->backoff_len;
        }
      a->on = want;
      a->streak = 0;
    }
  if (a->on == was_on && want != was_on)
    why = MIG_AUTO_CONFIRMING;

  a->decided = TRUE;
  a->evaluations++;
  d->compress = a->on;
  d->reason = why;
  d->backoff = a->backoff;
}

const char *
mig_auto_reason_to_string (MigAutoReason reason)
{
  switch (reason)
    {
    case MIG_AUTO_FORCED:
      return "forced";
    case MIG_AUTO_PAYS:
      return "pays";
    case MIG_AUTO_NO_DEMAND:
      return "no-demand";
    case MIG_AUTO_RECEIVER_BOUND:
      return "receiver-bound";
    case MIG_AUTO_LINK_UNKNOWN:
      return "link-unknown";
    case MIG_AUTO_INCOMPRESSIBLE:
      return "incompressible";
    case MIG_AUTO_TOO_SLOW:
      return "too-slow";
    case MIG_AUTO_NOT_PAYING:
      return "not-paying";
    case MIG_AUTO_BACKING_OFF:
      return "backing-off";
    case MIG_AUTO_CONFIRMING:
      return "confirming";
    }
  return "?";
}
