/* MigCtl: the convergence policy, fed with synthetic job statistics. */
#include <glib.h>
#include <string.h>

#include "mig-migrate.h"

#define MiB (1024ull * 1024ull)
#define GiB (1024ull * MiB)

static MigCtl *
new_ctl (guint32 max_downtime, guint32 stall_rounds, guint64 timeout_ms)
{
  MigCtlConfig c;

  mig_ctl_config_init (&c, 1 * GiB, max_downtime, 0, stall_rounds);
  if (timeout_ms)
    c.timeout_ms = timeout_ms;
  return mig_ctl_new (&c);
}

/* One poll with the given rates (bytes/s). */
static MigCtlDecision
feed_rates (MigCtl *ctl, gint64 ms, guint32 iteration, guint64 remaining,
            double dirty_rate, double throughput)
{
  MigCtlSample s = { ms,        iteration,  1 * GiB,   1 * GiB - remaining,
                     remaining, dirty_rate, throughput };
  MigCtlDecision d;

  mig_ctl_update (ctl, &s, &d);
  return d;
}

/* A guest that dirties almost as fast as the link sends: a round only
 * shaves a little off and the projection never converges. */
static MigCtlDecision
feed (MigCtl *ctl, gint64 ms, guint32 iteration, guint64 remaining)
{
  return feed_rates (ctl, ms, iteration, remaining, 90 * MiB, 100 * MiB);
}

static void
test_config_defaults (void)
{
  MigCtlConfig c;

  mig_ctl_config_init (&c, 2 * GiB, 0, 0, 0);
  g_assert_cmpuint (c.max_downtime_ms, ==, 500);
  g_assert_cmpuint (c.initial_downtime_ms, ==, 50);
  g_assert_cmpuint (c.stall_rounds, ==, 3);
  g_assert_cmpuint (c.timeout_ms, ==, 1600 * 1000);
  /* 256 MiB at 800 s/GiB is 200 s. */
  mig_ctl_config_init (&c, 256 * MiB, 0, 0, 0);
  g_assert_cmpuint (c.timeout_ms, ==, 200 * 1000);
  /* Tiny guests still get the minimum, huge ones the maximum. */
  mig_ctl_config_init (&c, 64 * MiB, 0, 1, 0);
  g_assert_cmpuint (c.timeout_ms, ==, MIG_MIN_TIMEOUT_MS);
  mig_ctl_config_init (&c, 4096 * GiB, 0, 0, 0);
  g_assert_cmpuint (c.timeout_ms, ==, MIG_MAX_TIMEOUT_MS);
  /* A maximum below the usual start starts there. */
  mig_ctl_config_init (&c, GiB, 30, 0, 0);
  g_assert_cmpuint (c.initial_downtime_ms, ==, 30);
}

static void
test_downtime_steps (void)
{
  g_autoptr (MigCtl) ctl = new_ctl (500, 100, 0);
  guint32 expect[] = { 140, 230, 320, 410, 500 };
  MigCtlDecision d;

  g_assert_cmpuint (mig_ctl_initial_downtime (ctl), ==, 50);
  /* No job yet, then the first pass: nothing to do. */
  d = feed (ctl, 0, 0, 0);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  d = feed (ctl, 250, 1, 900 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  g_assert_cmpuint (d.downtime_ms, ==, 50);
  /* Same iteration again: still nothing. */
  d = feed (ctl, 500, 1, 800 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  /* Each round with poor progress raises by one step (remaining falls by
   * a tenth, dirty rate close to throughput). */
  for (guint i = 0; i < G_N_ELEMENTS (expect); i++)
    {
      d = feed (ctl, 750 + 250 * i, 2 + i, (500 - 50 * i) * MiB);
      g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
      g_assert_cmpuint (d.downtime_ms, ==, expect[i]);
    }
  /* At the maximum it stays. */
  d = feed (ctl, 3000, 8, 10 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  g_assert_cmpuint (mig_ctl_get_downtime (ctl), ==, 500);
  g_assert_false (mig_ctl_get_forced (ctl));
  /* Rounds: iterations 1..6 and 8, each once. */
  g_assert_cmpuint (mig_ctl_get_rounds (ctl)->len, ==, 7);
  g_assert_cmpuint (
      g_array_index (mig_ctl_get_rounds (ctl), MigCtlRound, 0).remaining, ==,
      900 * MiB);
}

static void
test_skipped_iterations (void)
{
  g_autoptr (MigCtl) ctl = new_ctl (500, 100, 0);
  MigCtlDecision d;

  feed (ctl, 0, 1, 900 * MiB);
  /* Three rounds between two polls with poor progress: one step (the
   * progress is judged between the two samples). */
  d = feed (ctl, 250, 4, 850 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  g_assert_cmpuint (d.downtime_ms, ==, 140);
  /* An iteration event ahead of the stats counts as a new round too. */
  mig_ctl_note_iteration (ctl, 5);
  d = feed (ctl, 500, 4, 800 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  g_assert_cmpuint (d.downtime_ms, ==, 230);
  g_assert_cmpuint (mig_ctl_get_rounds (ctl)->len, ==, 3);
}

static void
test_geometric_never_raises (void)
{
  g_autoptr (MigCtl) ctl = new_ctl (500, 3, 0);
  guint64 remaining = 900 * MiB;

  /* Halving every round: QEMU's own limit converges, keep it. */
  for (guint it = 1; it <= 12; it++)
    {
      MigCtlDecision d
          = feed_rates (ctl, it * 250, it, remaining, 8 * MiB, 100 * MiB);
      g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
      g_assert_cmpuint (d.downtime_ms, ==, 50);
      remaining /= 2;
    }
  g_assert_cmpuint (mig_ctl_get_downtime (ctl), ==, 50);
  g_assert_false (mig_ctl_get_forced (ctl));
}

static void
test_projection_keeps_limit (void)
{
  g_autoptr (MigCtl) ctl = new_ctl (500, 3, 0);
  MigCtlDecision d;

  feed_rates (ctl, 0, 1, 900 * MiB, 30 * MiB, 100 * MiB);
  d = feed_rates (ctl, 250, 2, 120 * MiB, 30 * MiB, 100 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  /* Down by only a sixth, but at 30% dirtied per round 100 MiB fits
   * under 100 MiB/s x 50 ms in about 2.5 rounds: good progress. */
  d = feed_rates (ctl, 500, 3, 100 * MiB, 30 * MiB, 100 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  g_assert_cmpuint (mig_ctl_get_downtime (ctl), ==, 50);
  /* The same fall with the guest dirtying at 70%: ~8 rounds, raise. */
  d = feed_rates (ctl, 750, 4, 85 * MiB, 70 * MiB, 100 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  g_assert_cmpuint (d.downtime_ms, ==, 140);
  /* A projection that converges does not excuse a round that did not
   * fall at all. */
  d = feed_rates (ctl, 1000, 5, 90 * MiB, 10 * MiB, 100 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  g_assert_cmpuint (d.downtime_ms, ==, 230);
  /* Already under throughput x limit: converges now. */
  d = feed_rates (ctl, 1250, 6, 20 * MiB, 90 * MiB, 100 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  g_assert_cmpuint (mig_ctl_get_downtime (ctl), ==, 230);
}

static void
test_stall_forces_switchover (void)
{
  g_autoptr (MigCtl) ctl = new_ctl (500, 3, 0);
  MigCtlDecision d;

  feed (ctl, 0, 1, 900 * MiB);
  d = feed (ctl, 250, 2, 300 * MiB); /* good progress: no raise */
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  d = feed (ctl, 500, 3, 310 * MiB); /* no progress 1 */
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  d = feed (ctl, 750, 4, 299 * MiB); /* new best: counter resets */
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  d = feed (ctl, 1000, 5, 299 * MiB); /* 1 */
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  d = feed (ctl, 1250, 6, 350 * MiB); /* 2 */
  g_assert_cmpint (d.action, !=, MIG_CTL_FORCE);
  g_assert_false (mig_ctl_get_forced (ctl));
  d = feed (ctl, 1500, 7, 320 * MiB); /* 3: stalled */
  g_assert_cmpint (d.action, ==, MIG_CTL_FORCE);
  g_assert_cmpuint (d.downtime_ms, ==, 500);
  g_assert_nonnull (d.reason);
  g_assert_true (mig_ctl_get_forced (ctl));
  /* Forced once only. */
  d = feed (ctl, 1750, 8, 400 * MiB);
  g_assert_cmpint (d.action, !=, MIG_CTL_FORCE);
}

/* With the throttle rung armed, a stall throttles first, the throttle
 * climbs on rounds with poor progress up to the ceiling, and only a
 * stall at the ceiling forces the switchover. */
static void
test_throttle_rung (void)
{
  MigCtlConfig c;
  g_autoptr (MigCtl) ctl = NULL;
  MigCtlDecision d;
  const GArray *rungs;
  guint32 it = 1, last = 0;
  gint64 ms = 0;

  mig_ctl_config_init (&c, 1 * GiB, 500, 0, 3);
  g_assert_cmpuint (c.max_throttle_pct, ==, 0); /* off until armed */
  c.max_throttle_pct = 80;
  ctl = mig_ctl_new (&c);
  g_assert_cmpstr (mig_ctl_get_rung (ctl), ==, MIG_RUNG_PRECOPY);
  feed (ctl, ms, it++, 900 * MiB);
  /* Stuck at 300 MiB: downtime steps, then the throttle, never forced
   * before the ceiling. */
  for (guint n = 0; n < 40 && !mig_ctl_get_forced (ctl); n++)
    {
      ms += 1000;
      d = feed_rates (ctl, ms, it++, 300 * MiB, 100 * MiB, 100 * MiB);
      if (d.action == MIG_CTL_THROTTLE)
        {
          g_assert_cmpuint (d.throttle_pct, >, last);
          g_assert_cmpuint (d.throttle_pct, <=, 80);
          g_assert_cmpuint (d.throttle_pct, >=, MIG_THROTTLE_MIN_PCT);
          g_assert_cmpuint (d.downtime_ms, ==, 500);
          last = d.throttle_pct;
        }
      if (d.action == MIG_CTL_FORCE)
        g_assert_cmpuint (mig_ctl_get_throttle (ctl), ==, 80);
    }
  g_assert_true (mig_ctl_get_forced (ctl));
  g_assert_cmpuint (last, ==, 80);
  rungs = mig_ctl_get_rungs (ctl);
  g_assert_cmpuint (rungs->len, >=, 3);
  g_assert_cmpstr (g_array_index (rungs, MigCtlRung, 0).rung, ==,
                   MIG_RUNG_DOWNTIME);
  g_assert_cmpstr (g_array_index (rungs, MigCtlRung, 1).rung, ==,
                   MIG_RUNG_THROTTLE);
  g_assert_cmpstr (g_array_index (rungs, MigCtlRung, rungs->len - 1).rung, ==,
                   MIG_RUNG_FORCED);
  for (guint i = 1; i < rungs->len; i++)
    g_assert_cmpint (g_array_index (rungs, MigCtlRung, i).start_ms, >=,
                     g_array_index (rungs, MigCtlRung, i - 1).start_ms);
  mig_ctl_note_abort (ctl, ms);
  g_assert_cmpstr (mig_ctl_get_rung (ctl), ==, MIG_RUNG_ABORT);
}

/* AUTO: the stall at the throttle's ceiling switches to post-copy
 * instead of the forced pause; after it nothing is decided, not even
 * the timeout's abort, and an abort the caller asks for is no rung. */
static void
test_postcopy_auto (void)
{
  MigCtlConfig c;
  g_autoptr (MigCtl) ctl = NULL;
  MigCtlDecision d = { 0 };
  const GArray *rungs;
  guint32 it = 1;
  gint64 ms = 0;
  gboolean switched = FALSE;

  mig_ctl_config_init (&c, 1 * GiB, 500, 0, 3);
  g_assert_cmpint (c.postcopy, ==, MIG_POSTCOPY_NEVER);
  c.max_throttle_pct = 80;
  c.postcopy = MIG_POSTCOPY_AUTO;
  c.timeout_ms = 60 * 1000;
  ctl = mig_ctl_new (&c);
  feed (ctl, ms, it++, 900 * MiB);
  for (guint n = 0; n < 40 && !switched; n++)
    {
      ms += 1000;
      d = feed_rates (ctl, ms, it++, 300 * MiB, 100 * MiB, 100 * MiB);
      g_assert_cmpint (d.action, !=, MIG_CTL_FORCE);
      if (d.action == MIG_CTL_POSTCOPY)
        {
          g_assert_cmpuint (mig_ctl_get_throttle (ctl), ==, 80);
          switched = TRUE;
        }
    }
  g_assert_true (switched);
  g_assert_true (mig_ctl_get_postcopy (ctl));
  g_assert_false (mig_ctl_get_forced (ctl));
  g_assert_cmpstr (mig_ctl_get_rung (ctl), ==, MIG_RUNG_POSTCOPY);
  /* Past the timeout, stalled: still nothing to do. */
  d = feed_rates (ctl, 120 * 1000, it++, 300 * MiB, 100 * MiB, 100 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  g_assert_false (mig_ctl_get_aborted (ctl));
  mig_ctl_note_abort (ctl, 121 * 1000);
  g_assert_cmpstr (mig_ctl_get_rung (ctl), ==, MIG_RUNG_POSTCOPY);
  rungs = mig_ctl_get_rungs (ctl);
  g_assert_cmpstr (g_array_index (rungs, MigCtlRung, rungs->len - 1).rung, ==,
                   MIG_RUNG_POSTCOPY);
  g_assert_cmpstr (g_array_index (rungs, MigCtlRung, rungs->len - 2).rung, ==,
                   MIG_RUNG_THROTTLE);
}

/* NOW: the switch comes with the second pass, whatever the progress;
 * NEVER (the default) keeps the forced pause; a failed switch falls
 * back to it. */
static void
test_postcopy_now_and_fallback (void)
{
  MigCtlConfig c;
  g_autoptr (MigCtl) now = NULL;
  g_autoptr (MigCtl) never = NULL;
  MigCtlDecision d;
  const GArray *rungs;
  gboolean forced = FALSE;

  mig_ctl_config_init (&c, 1 * GiB, 500, 0, 3);
  c.postcopy = MIG_POSTCOPY_NOW;
  now = mig_ctl_new (&c);
  d = feed (now, 0, 1, 900 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  d = feed (now, 500, 1, 500 * MiB); /* same pass */
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  d = feed_rates (now, 1000, 2, 10 * MiB, 1 * MiB, 100 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_POSTCOPY);
  g_assert_cmpstr (mig_ctl_get_rung (now), ==, MIG_RUNG_POSTCOPY);
  d = feed (now, 2000, 3, 10 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  /* The switch failed: the pause instead, recorded as its rung. */
  mig_ctl_postcopy_failed (now, 2100, &d);
  g_assert_cmpint (d.action, ==, MIG_CTL_FORCE);
  g_assert_cmpuint (d.downtime_ms, ==, 500);
  g_assert_true (mig_ctl_get_forced (now));
  g_assert_false (mig_ctl_get_postcopy (now));
  rungs = mig_ctl_get_rungs (now);
  g_assert_cmpstr (g_array_index (rungs, MigCtlRung, rungs->len - 1).rung, ==,
                   MIG_RUNG_FORCED);
  d = feed (now, 3000, 4, 10 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);

  mig_ctl_config_init (&c, 1 * GiB, 500, 0, 3);
  never = mig_ctl_new (&c);
  feed (never, 0, 1, 900 * MiB);
  for (guint i = 2; i < 20 && !forced; i++)
    {
      d = feed (never, i * 1000, i, 300 * MiB);
      g_assert_cmpint (d.action, !=, MIG_CTL_POSTCOPY);
      forced = d.action == MIG_CTL_FORCE;
    }
  g_assert_true (forced);
}

static void
test_postcopy_mode_parse (void)
{
  MigPostcopyMode m = MIG_POSTCOPY_NOW;

  g_assert_true (mig_postcopy_mode_parse ("never", &m));
  g_assert_cmpint (m, ==, MIG_POSTCOPY_NEVER);
  g_assert_true (mig_postcopy_mode_parse ("auto", &m));
  g_assert_cmpint (m, ==, MIG_POSTCOPY_AUTO);
  g_assert_true (mig_postcopy_mode_parse ("now", &m));
  g_assert_cmpint (m, ==, MIG_POSTCOPY_NOW);
  g_assert_false (mig_postcopy_mode_parse ("", &m));
  g_assert_false (mig_postcopy_mode_parse ("on", &m));
  g_assert_false (mig_postcopy_mode_parse ("NOW", &m));
  g_assert_false (mig_postcopy_mode_parse (NULL, &m));
  g_assert_cmpint (m, ==, MIG_POSTCOPY_NOW);
}

/* The percentage from the figures: dirty 100, sent 100 MiB/s -> 50 %;
 * already at 50 % and still dirtying at the link rate -> 75 %; a small
 * need still takes the minimum; the ceiling caps. */
static void
test_throttle_for (void)
{
  g_assert_cmpuint (mig_ctl_throttle_for (100, 100, 0, 80), ==, 50);
  g_assert_cmpuint (mig_ctl_throttle_for (100, 100, 50, 80), ==, 75);
  g_assert_cmpuint (mig_ctl_throttle_for (100, 190, 0, 80), ==, 20);
  g_assert_cmpuint (mig_ctl_throttle_for (0, 0, 0, 80), ==, 20);
  g_assert_cmpuint (mig_ctl_throttle_for (0, 0, 75, 80), ==, 80);
  g_assert_cmpuint (mig_ctl_throttle_for (1000, 10, 0, 99), ==, 99);
}

static void
test_converging_never_forced (void)
{
  g_autoptr (MigCtl) ctl = new_ctl (500, 2, 0);
  guint64 remaining = 1 * GiB;

  for (guint it = 1; it <= 30; it++)
    {
      MigCtlDecision d = feed (ctl, it * 250, it, remaining);
      g_assert_cmpint (d.action, !=, MIG_CTL_FORCE);
      g_assert_cmpint (d.action, !=, MIG_CTL_ABORT);
      remaining = remaining * 9 / 10;
    }
  g_assert_false (mig_ctl_get_forced (ctl));
}

static void
test_timeout_aborts (void)
{
  g_autoptr (MigCtl) ctl = new_ctl (500, 3, 5000);
  MigCtlDecision d;

  d = feed (ctl, 1000, 1, 900 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  d = feed (ctl, 4999, 2, 800 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_SET_DOWNTIME);
  d = feed (ctl, 5000, 3, 700 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_ABORT);
  g_assert_nonnull (d.reason);
  g_assert_true (mig_ctl_get_aborted (ctl));
  /* Decided once; afterwards nothing more. */
  d = feed (ctl, 6000, 4, 10 * MiB);
  g_assert_cmpint (d.action, ==, MIG_CTL_CONTINUE);
  /* Even a job that never started times out. */
  {
    g_autoptr (MigCtl) c2 = new_ctl (500, 3, 5000);
    MigCtlSample s = { 5001, 0, 0, 0, 0, 0, 0 };
    mig_ctl_update (c2, &s, &d);
    g_assert_cmpint (d.action, ==, MIG_CTL_ABORT);
  }
}

static void
test_eta (void)
{
  MigCtlSample s = { 0, 2, GiB, 0, 100 * MiB, 10 * MiB, 60 * MiB };

  g_assert_cmpfloat_with_epsilon (mig_ctl_eta (&s), 2.0, 1e-9);
  s.dirty_rate = 80 * MiB; /* not converging: lower bound */
  g_assert_cmpfloat_with_epsilon (mig_ctl_eta (&s), 100.0 / 60.0, 1e-9);
  s.throughput = 0;
  g_assert_cmpfloat (mig_ctl_eta (&s), <, 0);
  s.remaining = 0;
  g_assert_cmpfloat (mig_ctl_eta (&s), ==, 0);
}

static void
test_xml_rewrite (void)
{
  const char *xml
      = "<domain type='qemu'><name>vm1</name><devices>"
        "<disk type='file' device='disk'><source file='/a/disks/vm1.qcow2'/>"
        "<target dev='vda'/></disk>"
        "<serial type='file'><source path='/a/console/vm1.log' append='on'/>"
        "<target port='0'/></serial>"
        "<console type='file'><source path='/a/console/vm1.log'/>"
        "<target type='serial' port='0'/></console>"
        "<serial type='pty'><source path='/dev/pts/3'/></serial>"
        "</devices></domain>";
  g_autoptr (GError) error = NULL;
  g_autofree char *out = mig_xml_rewrite (xml, "/b/console/vm1.log",
                                          "/b/disks/vm1.qcow2", &error);

  g_assert_no_error (error);
  g_assert_null (strstr (out, "/a/console"));
  g_assert_null (strstr (out, "/a/disks"));
  g_assert_nonnull (strstr (out, "path=\"/b/console/vm1.log\" append=\"on\""));
  g_assert_nonnull (strstr (out, "file=\"/b/disks/vm1.qcow2\""));
  g_assert_nonnull (strstr (out, "/dev/pts/3")); /* not a file device */
  g_assert_null (mig_xml_rewrite ("<nope/>", "/x", NULL, &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_INVALID);
}

static void
test_job_ids (void)
{
  g_autofree char *mem = mig_mem_sock_path ("job-1");
  g_autofree char *ctl = mig_ctl_sock_path ("job-1");

  g_assert_true (mig_job_id_valid ("a1-B_2"));
  g_assert_false (mig_job_id_valid (""));
  g_assert_false (mig_job_id_valid ("../x"));
  g_assert_false (mig_job_id_valid ("a b"));
  g_assert_cmpstr (mem, ==, "/var/lib/libvirt/qemu/drover-mig-job-1.sock");
  g_assert_cmpstr (ctl, ==, "/run/libvirt/drover-mig-job-1-ctl.sock");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mig/ctl/config-defaults", test_config_defaults);
  g_test_add_func ("/mig/ctl/downtime-steps", test_downtime_steps);
  g_test_add_func ("/mig/ctl/skipped-iterations", test_skipped_iterations);
  g_test_add_func ("/mig/ctl/geometric-never-raises",
                   test_geometric_never_raises);
  g_test_add_func ("/mig/ctl/projection-keeps-limit",
                   test_projection_keeps_limit);
  g_test_add_func ("/mig/ctl/stall-forces-switchover",
                   test_stall_forces_switchover);
  g_test_add_func ("/mig/ctl/converging-never-forced",
                   test_converging_never_forced);
  g_test_add_func ("/mig/ctl/timeout-aborts", test_timeout_aborts);
  g_test_add_func ("/mig/ctl/throttle-rung", test_throttle_rung);
  g_test_add_func ("/mig/ctl/throttle-for", test_throttle_for);
  g_test_add_func ("/mig/ctl/postcopy-auto", test_postcopy_auto);
  g_test_add_func ("/mig/ctl/postcopy-now-and-fallback",
                   test_postcopy_now_and_fallback);
  g_test_add_func ("/mig/ctl/postcopy-mode-parse", test_postcopy_mode_parse);
  g_test_add_func ("/mig/ctl/eta", test_eta);
  g_test_add_func ("/mig/xml/rewrite", test_xml_rewrite);
  g_test_add_func ("/mig/job-ids", test_job_ids);
  return g_test_run ();
}
