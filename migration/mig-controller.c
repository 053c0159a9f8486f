/* MigCtl: the convergence policy of a pre-copy migration.
 *
 * QEMU switches over once the memory left fits in bandwidth x downtime
 * limit. The controller starts with a small limit (a short pause is
 * worth a few more rounds) and keeps it while rounds make good progress:
 * remaining memory at least halved since the previous round, or falling
 * and projected (from the round's dirty rate and throughput) to fit under
 * the limit within PROJECT_ROUNDS more rounds. Raising the limit there
 * would only buy a longer pause for a migration that converges anyway.
 * Only a round with poor progress raises the limit, one step, up to the
 * operator's maximum (Nova raises in steps to 500 ms), and when remaining
 * memory stops falling for stall_rounds rounds (KubeVirt's per-iteration
 * progress check) it climbs the next rung of the ladder (issue 17):
 * it throttles the guest's vCPUs (QEMU's auto-converge), to the
 * percentage that brings the measured dirty rate down to half the
 * measured throughput, and raises it again on further stalls (and, with
 * the downtime steps spent, on rounds with poor progress) up to a
 * ceiling; a stall at the ceiling (or with no throttle rung) switches to
 * post-copy when the migration may (MIG_POSTCOPY_AUTO; NOW switches as
 * soon as the first full pass is done), and otherwise forces the
 * switchover by pausing the guest. Once in post-copy the guest runs on
 * the destination: nothing more is decided, not even the timeout's
 * abort (the source no longer has the whole guest). A hard
 * timeout per GiB of RAM (Nova: 800 s/GiB) aborts: the VM stays on the
 * source. Pure policy: no libvirt here.
 */
#include "mig-migrate.h"
#include "proto-names.h"

#include <math.h>

/* A round converges "soon" if the projection reaches the limit within
 * this many further rounds. */
#define PROJECT_ROUNDS 3

struct _MigCtl
{
  MigCtlConfig config;
  guint32 downtime_ms;
  guint32 steps_done;
  guint32 last_iteration;  /* highest iteration counted */
  guint32 noted_iteration; /* highest from iteration events */
  guint64 prev_remaining;  /* remaining at the previous round's sample */
  guint64 best_remaining;  /* lowest remaining at a round start */
  gboolean have_best;
  guint32 no_progress; /* consecutive rounds without a new best */
  gboolean forced;
  gboolean aborted;
  gboolean postcopy;      /* switched: nothing more to decide */
  guint32 throttle_pct;   /* ceiling set, 0 = none */
  guint32 throttle_round; /* iteration of the last throttle raise */
  const char *rung;       /* MIG_RUNG_* */
  GArray *rounds;         /* MigCtlRound */
  GArray *rungs;          /* MigCtlRung */
};

static void
climb (MigCtl *ctl, const char *rung, gint64 elapsed_ms)
{
  MigCtlRung r
      = { rung, ctl->throttle_pct, ctl->downtime_ms, MAX (elapsed_ms, 0) };

  ctl->rung = rung;
  g_array_append_val (ctl->rungs, r);
}

void
mig_ctl_config_init (MigCtlConfig *config, guint64 ram_bytes,
                     guint32 max_downtime_ms, guint32 timeout_per_gib_s,
                     guint32 stall_rounds)
{
  double gib = (double)ram_bytes / (1024.0 * 1024.0 * 1024.0);
  double timeout;

  config->max_downtime_ms
      = max_downtime_ms ? max_downtime_ms : PROTO_MIG_DEFAULT_MAX_DOWNTIME_MS;
  config->initial_downtime_ms
      = MIN (MIG_INITIAL_DOWNTIME_MS, config->max_downtime_ms);
  config->downtime_steps = MIG_DEFAULT_DOWNTIME_STEPS;
  config->stall_rounds = stall_rounds ? stall_rounds : MIG_DEFAULT_STALL_ROUNDS;
  timeout
      = (timeout_per_gib_s ? timeout_per_gib_s : MIG_DEFAULT_TIMEOUT_PER_GIB_S)
        * gib * 1000.0;
  /* A tiny guest still needs a few seconds of setup; a huge one must
   * still end within hours. */
  config->timeout_ms = (guint64)CLAMP (timeout, (double)MIG_MIN_TIMEOUT_MS,
                                       (double)MIG_MAX_TIMEOUT_MS);
  config->max_throttle_pct = 0;
  config->postcopy = MIG_POSTCOPY_NEVER;
}

gboolean
mig_postcopy_mode_parse (const char *text, MigPostcopyMode *mode)
{
  if (g_strcmp0 (text, PROTO_MIG_POSTCOPY_NEVER) == 0)
    *mode = MIG_POSTCOPY_NEVER;
  else if (g_strcmp0 (text, PROTO_MIG_POSTCOPY_AUTO) == 0)
    *mode = MIG_POSTCOPY_AUTO;
  else if (g_strcmp0 (text, PROTO_MIG_POSTCOPY_NOW) == 0)
    *mode = MIG_POSTCOPY_NOW;
  else
    return FALSE;
  return TRUE;
}

MigCtl *
mig_ctl_new (const MigCtlConfig *config)
{
  MigCtl *ctl = g_new0 (MigCtl, 1);

  ctl->config = *config;
  if (ctl->config.downtime_steps == 0)
    ctl->config.downtime_steps = 1;
  if (ctl->config.stall_rounds == 0)
    ctl->config.stall_rounds = MIG_DEFAULT_STALL_ROUNDS;
  if (ctl->config.initial_downtime_ms > ctl->config.max_downtime_ms)
    ctl->config.initial_downtime_ms = ctl->config.max_downtime_ms;
  ctl->config.max_throttle_pct
      = MIN (ctl->config.max_throttle_pct, MIG_MAX_THROTTLE_PCT);
  ctl->downtime_ms = ctl->config.initial_downtime_ms;
  ctl->rung = MIG_RUNG_PRECOPY;
  ctl->rounds = g_array_new (FALSE, TRUE, sizeof (MigCtlRound));
  ctl->rungs = g_array_new (FALSE, TRUE, sizeof (MigCtlRung));
  return ctl;
}

void
mig_ctl_free (MigCtl *ctl)
{
  if (!ctl)
    return;
  g_array_unref (ctl->rounds);
  g_array_unref (ctl->rungs);
  g_free (ctl);
}

guint32
mig_ctl_initial_downtime (MigCtl *ctl)
{
  return ctl->config.initial_downtime_ms;
}

void
mig_ctl_note_iteration (MigCtl *ctl, guint32 iteration)
{
  ctl->noted_iteration = MAX (ctl->noted_iteration, iteration);
}

static guint32
downtime_at_step (const MigCtlConfig *c, guint32 step)
{
  guint64 span = c->max_downtime_ms - c->initial_downtime_ms;

  step = MIN (step, c->downtime_steps);
  return c->initial_downtime_ms + (guint32)(span * step / c->downtime_steps);
}

/* Rounds until REMAINING fits in throughput x LIMIT_MS if every round
 * sends what is left at the sample's throughput while the guest dirties
 * at its dirty rate (ratio dirty/throughput per round); G_MAXDOUBLE when
 * it does not converge or the figures are missing. */
static double
rounds_to_converge (const MigCtlSample *s, guint32 limit_ms)
{
  double threshold = s->throughput * limit_ms / 1000.0;
  double r;

  if (s->throughput <= 0)
    return G_MAXDOUBLE;
  if ((double)s->remaining <= threshold)
    return 0;
  r = s->dirty_rate / s->throughput;
  if (r >= 0.95)
    return G_MAXDOUBLE;
  if (r <= 0)
    return 1; /* nothing is dirtied: the next round sends the rest */
  return log (threshold / (double)s->remaining) / log (r);
}

/* TRUE if the round now sampled (S) makes good progress over the
 * previous one (PREV remaining): see the top of the file. */
static gboolean
good_progress (MigCtl *ctl, guint64 prev, const MigCtlSample *s)
{
  if (s->remaining * 2 <= prev)
    return TRUE;
  return s->remaining < prev
         && rounds_to_converge (s, ctl->downtime_ms) <= PROJECT_ROUNDS;
}

guint32
mig_ctl_throttle_for (double dirty_rate, double throughput, guint32 current_pct,
                      guint32 ceiling)
{
  double want = 1.0;
  guint32 pct;

  /* Throttled by cur, the guest dirties D = D0 (1 - cur); D0 (1 - p)
   * = T / 2 gives p = 1 - (1 - cur) T / 2D. Unknown figures: the
   * minimum step. */
  if (dirty_rate > 0 && throughput > 0)
    want = 1.0 - (1.0 - current_pct / 100.0) * throughput / (2.0 * dirty_rate);
  else
    want = 0;
  want = CLAMP (want, 0.0, 1.0);
  pct = (guint32)ceil (want * 20.0) * 5;
  pct = MAX (pct, MIG_THROTTLE_MIN_PCT);
  pct = MAX (pct, current_pct + MIG_THROTTLE_MIN_STEP);
  return MIN (pct, ceiling);
}

/* Switches to post-copy: the last rung, nothing is decided after it. */
static void
switch_postcopy (MigCtl *ctl, const MigCtlSample *s, MigCtlDecision *d,
                 const char *reason)
{
  ctl->postcopy = TRUE;
  climb (ctl, MIG_RUNG_POSTCOPY, s->elapsed_ms);
  d->action = MIG_CTL_POSTCOPY;
  d->reason = reason;
}

/* Raises the throttle one rung if there is room: TRUE with D filled. */
static gboolean
raise_throttle (MigCtl *ctl, const MigCtlSample *s, guint32 iteration,
                MigCtlDecision *d, const char *reason)
{
  guint32 pct;

  if (ctl->config.max_throttle_pct == 0
      || ctl->throttle_pct >= ctl->config.max_throttle_pct)
    return FALSE;
  pct = mig_ctl_throttle_for (s->dirty_rate, s->throughput, ctl->throttle_pct,
                              ctl->config.max_throttle_pct);
  ctl->throttle_pct = pct;
  ctl->throttle_round = iteration;
  ctl->no_progress = 0; /* the raise gets its rounds to show */
  /* The downtime steps are spent on this rung. */
  ctl->steps_done = ctl->config.downtime_steps;
  ctl->downtime_ms = ctl->config.max_downtime_ms;
  climb (ctl, MIG_RUNG_THROTTLE, s->elapsed_ms);
  d->action = MIG_CTL_THROTTLE;
  d->downtime_ms = ctl->downtime_ms;
  d->throttle_pct = pct;
  d->reason = reason;
  return TRUE;
}

void
mig_ctl_update (MigCtl *ctl, const MigCtlSample *s, MigCtlDecision *d)
{
  guint64 prev;
  guint32 iteration;
  guint32 new_rounds;

  d->action = MIG_CTL_CONTINUE;
  d->downtime_ms = ctl->downtime_ms;
  d->throttle_pct = ctl->throttle_pct;
  d->reason = NULL;

  if (ctl->aborted || ctl->postcopy)
    return;
  if (s->elapsed_ms >= 0 && (guint64)s->elapsed_ms >= ctl->config.timeout_ms)
    {
      ctl->aborted = TRUE;
      climb (ctl, MIG_RUNG_ABORT, s->elapsed_ms);
      d->action = MIG_CTL_ABORT;
      d->reason = "migration did not complete within its timeout";
      return;
    }
  if (s->total == 0 || s->iteration == 0)
    return;

  /* Rounds faster than the poll interval show up as a jump. */
  iteration = MAX (s->iteration, ctl->noted_iteration);
  if (iteration <= ctl->last_iteration)
    return;
  new_rounds = iteration - ctl->last_iteration;
  ctl->last_iteration = iteration;
  {
    MigCtlRound r = { iteration, s->remaining, s->dirty_rate, s->throughput,
                      s->elapsed_ms };
    g_array_append_val (ctl->rounds, r);
  }
  prev = ctl->prev_remaining;
  ctl->prev_remaining = s->remaining;
  /* The first full pass is done once QEMU is on its second. */
  if (ctl->config.postcopy == MIG_POSTCOPY_NOW && iteration >= 2)
    {
      switch_postcopy (ctl, s, d, "post-copy asked for after the first pass");
      return;
    }
  /* Iteration 1 is the first full pass: there is nothing to compare. */
  if (iteration == 1 || !ctl->have_best)
    {
      ctl->best_remaining = s->remaining;
      ctl->have_best = TRUE;
      return;
    }
  if (s->remaining < ctl->best_remaining)
    {
      ctl->best_remaining = s->remaining;
      ctl->have_best = TRUE;
      ctl->no_progress = 0;
    }
  else
    ctl->no_progress += new_rounds;

  if (!ctl->forced && ctl->no_progress >= ctl->config.stall_rounds)
    {
      if (raise_throttle (ctl, s, iteration, d,
                          "remaining memory stopped falling"))
        return;
      if (ctl->config.postcopy != MIG_POSTCOPY_NEVER)
        {
          switch_postcopy (ctl, s, d,
                           "remaining memory stopped falling with the "
                           "throttle spent");
          return;
        }
      ctl->forced = TRUE;
      ctl->steps_done = ctl->config.downtime_steps;
      ctl->downtime_ms = ctl->config.max_downtime_ms;
      climb (ctl, MIG_RUNG_FORCED, s->elapsed_ms);
      d->action = MIG_CTL_FORCE;
      d->downtime_ms = ctl->downtime_ms;
      d->reason = "remaining memory stopped falling";
      return;
    }
  if (ctl->steps_done < ctl->config.downtime_steps
      && !good_progress (ctl, prev, s))
    {
      ctl->steps_done++;
      ctl->downtime_ms = downtime_at_step (&ctl->config, ctl->steps_done);
      if (g_strcmp0 (ctl->rung, MIG_RUNG_DOWNTIME) != 0)
        climb (ctl, MIG_RUNG_DOWNTIME, s->elapsed_ms);
      else
        g_array_index (ctl->rungs, MigCtlRung, ctl->rungs->len - 1).downtime_ms
            = ctl->downtime_ms;
      d->action = MIG_CTL_SET_DOWNTIME;
      d->downtime_ms = ctl->downtime_ms;
      d->reason = "round with poor progress";
      return;
    }
  /* Steps spent and still poor: the throttle climbs, giving each raise
   * its rounds to show. */
  if (!ctl->forced && ctl->steps_done >= ctl->config.downtime_steps
      && !good_progress (ctl, prev, s)
      && (ctl->throttle_pct == 0
          || iteration >= ctl->throttle_round + MIG_THROTTLE_SETTLE_ROUNDS))
    (void)raise_throttle (ctl, s, iteration, d, "round with poor progress");
}

guint32
mig_ctl_get_downtime (MigCtl *ctl)
{
  return ctl->downtime_ms;
}

void
mig_ctl_note_abort (MigCtl *ctl, gint64 elapsed_ms)
{
  if (!ctl->postcopy && g_strcmp0 (ctl->rung, MIG_RUNG_ABORT) != 0)
    climb (ctl, MIG_RUNG_ABORT, elapsed_ms);
}

void
mig_ctl_postcopy_failed (MigCtl *ctl, gint64 elapsed_ms, MigCtlDecision *d)
{
  ctl->postcopy = FALSE;
  ctl->config.postcopy = MIG_POSTCOPY_NEVER;
  ctl->forced = TRUE;
  ctl->steps_done = ctl->config.downtime_steps;
  ctl->downtime_ms = ctl->config.max_downtime_ms;
  climb (ctl, MIG_RUNG_FORCED, elapsed_ms);
  d->action = MIG_CTL_FORCE;
  d->downtime_ms = ctl->downtime_ms;
  d->throttle_pct = ctl->throttle_pct;
  d->reason = "the switch to post-copy failed";
}

void
mig_ctl_note_recover (MigCtl *ctl, gint64 elapsed_ms)
{
  climb (ctl, MIG_RUNG_POSTCOPY_RECOVER, elapsed_ms);
}

gboolean
mig_ctl_get_postcopy (MigCtl *ctl)
{
  return ctl->postcopy;
}

guint32
mig_ctl_get_throttle (MigCtl *ctl)
{
  return ctl->throttle_pct;
}

const char *
mig_ctl_get_rung (MigCtl *ctl)
{
  return ctl->rung;
}

const GArray *
mig_ctl_get_rungs (MigCtl *ctl)
{
  return ctl->rungs;
}

gboolean
mig_ctl_get_forced (MigCtl *ctl)
{
  return ctl->forced;
}

gboolean
mig_ctl_get_aborted (MigCtl *ctl)
{
  return ctl->aborted;
}

const GArray *
mig_ctl_get_rounds (MigCtl *ctl)
{
  return ctl->rounds;
}

double
mig_ctl_eta (const MigCtlSample *s)
{
  if (s->total == 0)
    return -1;
  if (s->remaining == 0)
    return 0;
  if (s->throughput > s->dirty_rate * 1.05)
    return (double)s->remaining / (s->throughput - s->dirty_rate);
  if (s->throughput > 0)
    return (double)s->remaining / s->throughput;
  return -1;
}
