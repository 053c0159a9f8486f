/* MigAuto, the adaptive-lz4 policy, fed with synthetic window samples:
 * no sockets, no clock, the same answers on any machine.
 *
 * The scenarios are the ones the channel meets: a network-bound sender
 * (a slow or shaped link, or the channel's own rate limit), a receiver
 * that holds the sender back through its TCP window, a producer slower
 * than the link, data that does not compress, lz4 that did not pay, and a
 * configured link-rate hint.
 */
#include <glib.h>
#include <string.h>

#include "mig-auto.h"

#define MB 1e6
#define SAMPLE (64 * 1024) /* lz4 sample bytes per window */

/* One window as the channel would measure it. */
typedef struct
{
  gboolean first;  /* the first decision: no frame sent yet */
  double mbs;      /* payload MB/s over the window */
  double in_wait;  /* share of the window blocked on local input */
  double out_wait; /* ... and blocked on the peer or the rate limit */
  double ratio;    /* payload/lz4 bytes of the sample; 0 = no sample */
  double lz4_mbs;  /* lz4 speed; 0 = 500 MB/s */
  double rwnd;     /* share of the sending time the receiver's window
                      held us back */
  gboolean no_tcp; /* the transport has no TCP figures */
  double ms;       /* window length; 0 = 100 ms */
} Win;

typedef struct
{
  MigAuto *a;
  gboolean on;                 /* the decision in force */
  guint64 busy_us, rwnd_us;    /* the connection's running TCP totals */
  guint64 payload, compressed; /* bytes sent, and sent compressed */
} Feed;

static void
feed_init (Feed *f, MigCompressMode mode, double link_mbs, double limit_mbs)
{
  memset (f, 0, sizeof *f);
  f->a = mig_auto_new (mode, (guint64)(link_mbs * MB),
                       (guint64)(limit_mbs * MB));
}

static void
feed_clear (Feed *f)
{
  g_clear_pointer (&f->a, mig_auto_free);
}

static MigAutoDecision
feed (Feed *f, Win w)
{
  MigAutoSample s = { 0 };
  MigAutoDecision d;
  double secs = (w.ms > 0 ? w.ms : 100) / 1000;
  double payload = w.first ? 0 : w.mbs * MB * secs;
  double lz4_speed = (w.lz4_mbs > 0 ? w.lz4_mbs : 500) * MB;

  s.window_ns = (gint64)(secs * 1e9);
  s.frames = w.first ? 0 : 64;
  s.payload_bytes = (guint64)payload;
  /* Compressed frames take less of the wire. */
  s.wire_bytes = (guint64)(f->on && w.ratio > 1 ? payload / w.ratio : payload);
  s.in_wait_ns = (gint64)(w.in_wait * s.window_ns);
  s.out_wait_ns = (gint64)(w.out_wait * s.window_ns);
  if (w.ratio > 0)
    {
      s.lz4_in = SAMPLE;
      s.lz4_out = (guint64)(SAMPLE / w.ratio);
      s.lz4_ns = (gint64)(SAMPLE / lz4_speed * 1e9);
    }
  if (!w.no_tcp)
    {
      /* Data in flight all window long. */
      guint64 busy = (guint64)(secs * 1e6);
      f->busy_us += busy;
      f->rwnd_us += (guint64)(w.rwnd * busy);
      s.have_send_times = TRUE;
      s.busy_us = f->busy_us;
      s.rwnd_limited_us = f->rwnd_us;
    }
  mig_auto_evaluate (f->a, &s, &d);
  f->payload += s.payload_bytes;
  if (f->on)
    f->compressed += s.payload_bytes;
  f->on = d.compress;
  return d;
}

/* Feeds W N times; returns the last decision. */
static MigAutoDecision
feed_n (Feed *f, Win w, guint n)
{
  MigAutoDecision d = { 0 };

  for (guint i = 0; i < n; i++)
    d = feed (f, w);
  return d;
}

/* Fails unless decision D is ON (compress or not) for reason WHY. */
static void
assert_decision (MigAutoDecision d, gboolean on, MigAutoReason why)
{
  g_assert_cmpstr (mig_auto_reason_to_string (d.reason), ==,
                   mig_auto_reason_to_string (why));
  g_assert_cmpint (d.compress, ==, on);
}

/* Windows of text (lz4 ratio 3) the sender spends blocked on the wire,
 * which carries 10 MB/s: a slow link, or the channel's rate limit. */
static const Win net_text
    = { .mbs = 10, .in_wait = 0.05, .out_wait = 0.8, .ratio = 3 };
static const Win net_random
    = { .mbs = 10, .in_wait = 0.05, .out_wait = 0.8, .ratio = 1.0 };
/* ... and with lz4 on, the payload moves at 2.5 times that. */
static const Win net_text_paying
    = { .mbs = 25, .in_wait = 0.05, .out_wait = 0.8, .ratio = 3 };
static const Win first_text = { .first = TRUE, .ratio = 3 };
static const Win first_random = { .first = TRUE, .ratio = 1.0 };

/* A policy that a network-bound sender of text has turned on. */
static void
feed_init_on (Feed *f)
{
  feed_init (f, MIG_COMPRESS_AUTO, 0, 0);
  feed (f, first_text);
  feed_n (f, net_text, MIG_AUTO_CONFIRM);
  g_assert_true (f->on);
}

/* --- network-bound: lz4 goes on ------------------------------------------- */

static void
test_network_bound_turns_on (void)
{
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  /* Before any window the link is unknown and nothing says it is short. */
  d = feed (&f, first_text);
  assert_decision (d, FALSE, MIG_AUTO_NO_DEMAND);
  g_assert_cmpfloat (d.link_rate, ==, 0);
  g_assert_cmpfloat_with_epsilon (d.ratio, 3, 0.01);

  /* Blocked on the wire: the window's wire rate is the link. One window
   * is a transient, the second confirms. */
  d = feed (&f, net_text);
  assert_decision (d, FALSE, MIG_AUTO_CONFIRMING);
  g_assert_true (d.backpressured);
  g_assert_cmpfloat_with_epsilon (d.link_rate, 10 * MB, 1);
  g_assert_cmpfloat (d.gain, >=, MIG_AUTO_GAIN_ON);
  d = feed (&f, net_text);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);

  /* With lz4 the payload moves at twice the link: it pays, it stays. */
  d = feed_n (&f, net_text_paying, 20);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);
  /* The wire rate of a compressed window (8.3 MB/s) is no link figure. */
  g_assert_cmpfloat_with_epsilon (d.link_rate, 10 * MB, 1);
  g_assert_cmpfloat_with_epsilon (d.ratio, 3, 0.01);
  g_assert_cmpfloat (d.rwnd_limited, ==, 0);
  g_assert_cmpuint (mig_auto_get_evaluations (f.a), ==, 23);
  feed_clear (&f);
}

/* The channel's rate limit caps the link estimate. */
static void
test_rate_limit_caps_link (void)
{
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 0, 8);
  feed (&f, first_text);
  d = feed_n (&f, net_text, 2);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);
  g_assert_cmpfloat_with_epsilon (d.link_rate, 8 * MB, 1);
  feed_clear (&f);
}

/* Without TCP figures (no socket, an old kernel) backpressure alone
 * decides. */
static void
test_network_bound_without_tcp (void)
{
  Feed f;
  Win w = net_text;
  MigAutoDecision d;

  w.no_tcp = TRUE;
  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  feed (&f, (Win){ .first = TRUE, .ratio = 3, .no_tcp = TRUE });
  d = feed_n (&f, w, 2);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);
  g_assert_cmpfloat (d.rwnd_limited, ==, -1);
  feed_clear (&f);
}

/* --- reasons to stay off -------------------------------------------------- */

/* Blocked as much, but by the receiver's closed window, not the wire: it
 * never starts, not even as a trial, and the link stays unknown. */
static void
test_receiver_bound_stays_off (void)
{
  Feed f;
  Win w = net_text;
  MigAutoDecision d;

  w.rwnd = 0.6;
  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  feed (&f, first_text);
  for (guint i = 0; i < 50; i++)
    {
      d = feed (&f, w);
      assert_decision (d, FALSE, MIG_AUTO_RECEIVER_BOUND);
    }
  g_assert_true (d.backpressured);
  g_assert_cmpfloat_with_epsilon (d.rwnd_limited, 0.6, 0.01);
  g_assert_cmpfloat (d.link_rate, ==, 0);
  g_assert_cmpfloat_with_epsilon (d.ratio, 3,
                                  0.01); /* it would have compressed well */

  /* At the bound: still the receiver. Below it: the wire. */
  w.rwnd = MIG_AUTO_RWND_BOUND;
  assert_decision (feed (&f, w), FALSE, MIG_AUTO_RECEIVER_BOUND);
  w.rwnd = 0.1;
  assert_decision (feed (&f, w), FALSE, MIG_AUTO_CONFIRMING);
  assert_decision (feed (&f, w), TRUE, MIG_AUTO_PAYS);
  feed_clear (&f);
}

/* The receiver's share needs MIG_AUTO_RWND_MIN_US of sending time in the
 * window (the kernel counts in jiffies); shorter windows say nothing. */
static void
test_receiver_share_needs_time (void)
{
  Feed f;
  Win w = net_text;
  MigAutoDecision d;

  w.rwnd = 0.9;
  w.ms = 5; /* 5 ms of sending time */
  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  feed (&f, first_text);
  d = feed (&f, w);
  g_assert_cmpfloat (d.rwnd_limited, ==, -1);
  assert_decision (d, FALSE, MIG_AUTO_CONFIRMING);
  feed_clear (&f);
}

/* Throttled, but random data: off, although the link was measured. */
static void
test_incompressible_stays_off (void)
{
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 0, 10);
  feed (&f, first_random);
  d = feed_n (&f, net_random, 30);
  assert_decision (d, FALSE, MIG_AUTO_INCOMPRESSIBLE);
  g_assert_cmpfloat (d.ratio, <, 1.1);
  g_assert_cmpfloat (d.link_rate, >, 0);
  g_assert_cmpuint (f.compressed, ==, 0);
  feed_clear (&f);
}

/* The producer is the bottleneck: the sender mostly waits for local
 * input. Raw, whatever the output does: fast, rate-limited well above
 * the producer, or slower than the local socket but still faster than
 * the producer (writes take 40% of the window: the old "bytes / time in
 * writes" estimate saw a slow link there and turned lz4 on). */
static void
test_producer_bound_stays_off (void)
{
  static const struct
  {
    double limit_mbs;
    Win w;
  } cases[] = {
    { 0, { .mbs = 8, .in_wait = 0.9, .out_wait = 0.02, .ratio = 3 } },
    { 100, { .mbs = 8, .in_wait = 0.9, .out_wait = 0.05, .ratio = 3 } },
    { 0, { .mbs = 8, .in_wait = 0.55, .out_wait = 0.4, .ratio = 3 } },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      Feed f;
      MigAutoDecision d;

      feed_init (&f, MIG_COMPRESS_AUTO, 0, cases[i].limit_mbs);
      feed (&f, first_text);
      for (guint k = 0; k < 20; k++)
        {
          d = feed (&f, cases[i].w);
          assert_decision (d, FALSE, MIG_AUTO_NO_DEMAND);
        }
      g_assert_false (d.backpressured);
      g_assert_cmpfloat (d.ratio, >, 1.5); /* still sampled while off */
      g_assert_cmpuint (mig_auto_get_evaluations (f.a), ==, 21);
      feed_clear (&f);
    }
}

/* lz4 slower than the link carries its output: no gain. */
static void
test_lz4_too_slow (void)
{
  Feed f;
  Win w = { .mbs = 100, .out_wait = 0.8, .ratio = 3, .lz4_mbs = 60 };
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  feed (&f, (Win){ .first = TRUE, .ratio = 3, .lz4_mbs = 60 });
  d = feed_n (&f, w, 10);
  assert_decision (d, FALSE, MIG_AUTO_TOO_SLOW);
  g_assert_cmpfloat (d.gain, <, MIG_AUTO_GAIN_ON);
  feed_clear (&f);
}

/* --- lz4 on, then off ----------------------------------------------------- */

/* Turns on; the data turns incompressible: off at once, no backoff (a
 * change of data is no verdict on lz4), on again when it compresses. */
static void
test_ratio_collapse (void)
{
  Feed f;
  MigAutoDecision d;

  feed_init_on (&f);
  d = feed (&f, net_random);
  assert_decision (d, FALSE, MIG_AUTO_INCOMPRESSIBLE);
  g_assert_cmpuint (d.backoff, ==, 0);
  assert_decision (feed (&f, net_text), FALSE, MIG_AUTO_CONFIRMING);
  assert_decision (feed (&f, net_text), TRUE, MIG_AUTO_PAYS);
  feed_clear (&f);
}

/* lz4 runs, the sender is still blocked on the output, yet the payload
 * moves no faster than the raw link: the bottleneck is past the link.
 * A failed trial: off for MIG_AUTO_BACKOFF_MIN windows, then it may try
 * again; each further failure doubles the wait up to
 * MIG_AUTO_BACKOFF_MAX; a trial that pays resets it. */
static void
test_backs_off_after_failed_trial (void)
{
  /* lz4 on, the wire full, the payload no faster than raw. */
  Win stuck = { .mbs = 10, .in_wait = 0.05, .out_wait = 0.8, .ratio = 3 };
  guint expect[] = { 8, 16, 32, 64, 128, 128 };
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  feed (&f, first_text);
  for (guint t = 0; t < G_N_ELEMENTS (expect); t++)
    {
      guint off_windows = 0;

      /* Off -> on (two windows), then the trial fails (two windows). */
      while (!(d = feed (&f, net_text)).compress)
        {
          g_assert_cmpuint (++off_windows, <=, expect[t] + 2);
          if (t > 0 && off_windows <= expect[t - 1])
            assert_decision (d, FALSE, MIG_AUTO_BACKING_OFF);
        }
      if (t > 0)
        g_assert_cmpuint (off_windows, ==, expect[t - 1] + 1);
      assert_decision (feed (&f, stuck), TRUE, MIG_AUTO_CONFIRMING);
      d = feed (&f, stuck);
      assert_decision (d, FALSE, MIG_AUTO_NOT_PAYING);
      g_assert_cmpuint (d.backoff, ==, expect[t]);
    }

  /* Past the backoff a trial that pays resets it. */
  while (!(d = feed (&f, net_text)).compress)
    ;
  d = feed_n (&f, net_text_paying, 3);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);
  feed (&f, stuck);
  d = feed (&f, stuck);
  assert_decision (d, FALSE, MIG_AUTO_NOT_PAYING);
  g_assert_cmpuint (d.backoff, ==, MIG_AUTO_BACKOFF_MIN);
  feed_clear (&f);
}

/* On, and the producer pauses (not blocked on the output): off, but no
 * verdict on lz4, so no backoff. */
static void
test_producer_pause_no_backoff (void)
{
  Win pause = { .mbs = 2, .in_wait = 0.9, .out_wait = 0.02, .ratio = 3 };
  Feed f;
  MigAutoDecision d;

  feed_init_on (&f);
  d = feed_n (&f, pause, 2);
  assert_decision (d, FALSE, MIG_AUTO_NOT_PAYING);
  g_assert_cmpuint (d.backoff, ==, 0);
  feed_clear (&f);
}

/* A switch needs MIG_AUTO_CONFIRM windows in a row that want it: a
 * window that disagrees starts the count again, both ways. */
static void
test_confirmation_windows (void)
{
  Win idle = { .mbs = 10, .in_wait = 0.9, .out_wait = 0.02, .ratio = 3 };
  Feed f;
  MigAutoDecision d;

  g_assert_cmpint (MIG_AUTO_CONFIRM, ==, 2);
  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  feed (&f, first_text);
  assert_decision (feed (&f, net_text), FALSE, MIG_AUTO_CONFIRMING);
  assert_decision (feed (&f, idle), FALSE, MIG_AUTO_NO_DEMAND);
  assert_decision (feed (&f, net_text), FALSE, MIG_AUTO_CONFIRMING);
  assert_decision (feed (&f, net_text), TRUE, MIG_AUTO_PAYS);
  /* On -> off the same way (the producer slowed: no backoff). */
  assert_decision (feed (&f, idle), TRUE, MIG_AUTO_CONFIRMING);
  assert_decision (feed (&f, net_text_paying), TRUE, MIG_AUTO_PAYS);
  assert_decision (feed (&f, idle), TRUE, MIG_AUTO_CONFIRMING);
  d = feed (&f, idle);
  assert_decision (d, FALSE, MIG_AUTO_NOT_PAYING);
  g_assert_cmpuint (d.backoff, ==, 0);
  feed_clear (&f);
}

/* --- the link-rate hint --------------------------------------------------- */

/* A slow link given as a hint: the first decision, before any window,
 * turns lz4 on for text at once, and it stays on while the payload
 * reaches the hint; random data stays raw; a hint far faster than lz4
 * keeps text raw. */
static void
test_link_hint (void)
{
  Win text = { .mbs = 12, .in_wait = 0.1, .out_wait = 0.1, .ratio = 3 };
  Win random = { .mbs = 6, .in_wait = 0.1, .out_wait = 0.1, .ratio = 1.0 };
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 5, 0);
  d = feed (&f, first_text);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);
  g_assert_cmpfloat (d.link_rate, ==, 5 * MB);
  d = feed_n (&f, text, 10);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);
  feed_clear (&f);

  feed_init (&f, MIG_COMPRESS_AUTO, 5, 0);
  d = feed (&f, first_random);
  assert_decision (d, FALSE, MIG_AUTO_INCOMPRESSIBLE);
  d = feed_n (&f, random, 10);
  assert_decision (d, FALSE, MIG_AUTO_INCOMPRESSIBLE);
  feed_clear (&f);

  /* 1 TB/s: lz4 can only slow it down. */
  feed_init (&f, MIG_COMPRESS_AUTO, 1e6, 0);
  d = feed (&f, first_text);
  assert_decision (d, FALSE, MIG_AUTO_TOO_SLOW);
  /* ... and no payload rate comes near it. */
  d = feed_n (&f, (Win){ .mbs = 800, .ratio = 3 }, 5);
  assert_decision (d, FALSE, MIG_AUTO_NO_DEMAND);
  g_assert_cmpuint (f.compressed, ==, 0);
  feed_clear (&f);
}

/* With a hint the demand is the payload rate against it (the hint stands
 * in for measuring the link and the receiver): below MIG_AUTO_CARRY x
 * hint lz4 stays off; on, below MIG_AUTO_GAIN_OFF x hint it goes off. */
static void
test_link_hint_demand (void)
{
  Win slow = { .mbs = 4, .in_wait = 0.9, .ratio = 3 };
  Win fast = { .mbs = 12, .out_wait = 0.8, .ratio = 3, .rwnd = 0.9 };
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 5, 0);
  feed (&f, first_text);
  d = feed_n (&f, slow, 2);
  assert_decision (d, FALSE, MIG_AUTO_NOT_PAYING);
  d = feed (&f, slow);
  assert_decision (d, FALSE, MIG_AUTO_NO_DEMAND);
  /* The receiver's share does not count against the hint. */
  assert_decision (feed (&f, fast), FALSE, MIG_AUTO_CONFIRMING);
  d = feed (&f, fast);
  assert_decision (d, TRUE, MIG_AUTO_PAYS);
  g_assert_cmpfloat (d.rwnd_limited, >, 0.8);
  feed_clear (&f);
}

/* The data turns compressible mid-stream (random, then text) on a slow
 * link given as a hint: lz4 goes on after MIG_AUTO_CONFIRM text windows;
 * and back (text, then random): off at the first random window. */
static void
test_link_hint_follows_data (void)
{
  Win text = { .mbs = 12, .ratio = 3 };
  Win random = { .mbs = 12, .ratio = 1.0 };
  Feed f;

  feed_init (&f, MIG_COMPRESS_AUTO, 5, 0);
  assert_decision (feed (&f, first_random), FALSE, MIG_AUTO_INCOMPRESSIBLE);
  feed_n (&f, random, 5);
  assert_decision (feed (&f, text), FALSE, MIG_AUTO_CONFIRMING);
  assert_decision (feed (&f, text), TRUE, MIG_AUTO_PAYS);
  feed_n (&f, text, 5);
  assert_decision (feed (&f, random), FALSE, MIG_AUTO_INCOMPRESSIBLE);
  assert_decision (feed_n (&f, random, 5), FALSE, MIG_AUTO_INCOMPRESSIBLE);
  feed_clear (&f);
}

/* --- mode ON, windows, figures -------------------------------------------- */

static void
test_mode_on (void)
{
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_ON, 0, 0);
  d = feed (&f, (Win){ .mbs = 100, .in_wait = 0.9, .ratio = 1.0 });
  assert_decision (d, TRUE, MIG_AUTO_FORCED);
  d = feed (&f, (Win){ .mbs = 100, .in_wait = 0.9, .ratio = 2.5 });
  assert_decision (d, TRUE, MIG_AUTO_FORCED);
  g_assert_cmpfloat_with_epsilon (d.ratio, 2.5, 0.01);
  g_assert_cmpfloat (d.in_waiting, ==, 0.9);
  feed_clear (&f);
}

static void
test_windows (void)
{
  Feed f;

  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  /* Short windows at first, then MIG_AUTO_WINDOW_FRAMES; never longer
   * than MIG_AUTO_WINDOW_NS. */
  for (guint i = 0; i < MIG_AUTO_SHORT_WINDOWS; i++)
    {
      g_assert_false (mig_auto_window_full (f.a, 7, 0));
      g_assert_true (mig_auto_window_full (f.a, 8, 0));
      g_assert_true (mig_auto_window_full (f.a, 1, MIG_AUTO_WINDOW_NS));
      feed (&f, net_text);
    }
  g_assert_false (mig_auto_window_full (f.a, 8, 0));
  g_assert_false (mig_auto_window_full (f.a, MIG_AUTO_WINDOW_FRAMES - 1,
                                        MIG_AUTO_WINDOW_NS - 1));
  g_assert_true (mig_auto_window_full (f.a, MIG_AUTO_WINDOW_FRAMES, 0));
  g_assert_true (mig_auto_window_full (f.a, 1, MIG_AUTO_WINDOW_NS));
  feed_clear (&f);
}

/* A window without an lz4 sample keeps the last ratio and speed. */
static void
test_figures_kept (void)
{
  Feed f;
  MigAutoDecision d;

  feed_init (&f, MIG_COMPRESS_AUTO, 0, 0);
  feed (&f, (Win){ .first = TRUE, .ratio = 2, .lz4_mbs = 400 });
  d = feed (&f, (Win){ .mbs = 10, .in_wait = 0.5 });
  g_assert_cmpfloat_with_epsilon (d.ratio, 2, 0.01);
  g_assert_cmpfloat_with_epsilon (d.compress_speed, 400 * MB, 1e4);
  g_assert_cmpfloat_with_epsilon (d.payload_rate, 10 * MB, 1);
  g_assert_cmpfloat_with_epsilon (d.in_waiting, 0.5, 1e-6);
  feed_clear (&f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/mig-auto/network-bound/turns-on",
                   test_network_bound_turns_on);
  g_test_add_func ("/mig-auto/network-bound/rate-limit-caps-link",
                   test_rate_limit_caps_link);
  g_test_add_func ("/mig-auto/network-bound/without-tcp",
                   test_network_bound_without_tcp);
  g_test_add_func ("/mig-auto/off/receiver-bound",
                   test_receiver_bound_stays_off);
  g_test_add_func ("/mig-auto/off/receiver-share-needs-time",
                   test_receiver_share_needs_time);
  g_test_add_func ("/mig-auto/off/incompressible",
                   test_incompressible_stays_off);
  g_test_add_func ("/mig-auto/off/producer-bound",
                   test_producer_bound_stays_off);
  g_test_add_func ("/mig-auto/off/lz4-too-slow", test_lz4_too_slow);
  g_test_add_func ("/mig-auto/switch/ratio-collapse", test_ratio_collapse);
  g_test_add_func ("/mig-auto/switch/backs-off",
                   test_backs_off_after_failed_trial);
  g_test_add_func ("/mig-auto/switch/producer-pause",
                   test_producer_pause_no_backoff);
  g_test_add_func ("/mig-auto/switch/confirmation", test_confirmation_windows);
  g_test_add_func ("/mig-auto/hint/slow-fast-random", test_link_hint);
  g_test_add_func ("/mig-auto/hint/demand", test_link_hint_demand);
  g_test_add_func ("/mig-auto/hint/follows-data", test_link_hint_follows_data);
  g_test_add_func ("/mig-auto/mode-on", test_mode_on);
  g_test_add_func ("/mig-auto/windows", test_windows);
  g_test_add_func ("/mig-auto/figures-kept", test_figures_kept);
  return g_test_run ();
}
