/* Disaster-recovery schedules at scale (issue 16), no VMs, no cluster:
 * VMS VMs on HOSTS simulated hosts, every VM in an hourly backup
 * schedule (SCHEDULES schedules of equal size, hourly calendar), run
 * through the scheduler's own run queue (sched-dr-queue.c) and calendar
 * (sched-calendar.c) for HOURS simulated hours in one-second ticks. Each
 * backup takes a seeded random 20-240 s. Two policies on the same
 * cluster:
 *
 *   drover     starts spread over a window (--window, default 600 s) by
 *              the VM's stable jitter, at most --per-host jobs at once per
 *              host and --per-repo per repository (ten repositories);
 *   naive      every VM at the top of the hour, no limits (what a cron
 *              line per VM does).
 *
 * Printed per policy: the scheduler's CPU time per simulated hour (the
 * queue, the calendar and the bookkeeping of this loop), runs made
 * against runs due, the most jobs at once on one host and into one
 * repository against the limits, the most starts in one second across
 * the cluster, and the delay from a run's slot to its start (p50, p99,
 * max).
 *
 * Usage: bench-schedules [--hosts N] [--vms N] [--hours H] [--window S]
 *                        [--per-host N] [--per-repo N] [--seed S] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched-calendar.h"
#include "sched-dr-queue.h"

#define N_REPOS 10

typedef struct
{
  guint hosts, vms, hours, schedules, seed;
  gint64 window;
  guint per_host, per_repo;
} Options;

typedef struct
{
  gint64 end;
  SchedDrRun *run;
} Running;

typedef struct
{
  double cpu_per_hour_ms;
  guint64 runs, due;
  guint peak_host, peak_repo, peak_starts;
  gint64 delay_p50, delay_p99, delay_max;
} Result;

static double
cpu_seconds (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static gint
cmp_i64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *)a, y = *(const gint64 *)b;

  return x < y ? -1 : x > y;
}

static gint
cmp_end (gconstpointer a, gconstpointer b, gpointer unused)
{
  const Running *x = a, *y = b;

  return x->end < y->end ? -1 : x->end > y->end;
}

static const char *
vm_host (const char *vm, gpointer data)
{
  GHashTable *where = data;

  return g_hash_table_lookup (where, vm);
}

static Result
simulate (const Options *o, gboolean spread)
{
  SchedDrLimits limits = { spread ? o->per_host : 0, spread ? o->per_repo : 0 };
  g_autoptr (SchedDrQueue) q = sched_dr_queue_new (&limits);
  g_autoptr (SchedCalendar) cal = sched_calendar_parse ("hourly", NULL);
  g_autoptr (GTimeZone) tz = g_time_zone_new_utc ();
  g_autoptr (GHashTable) where
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  /* Jobs at once per host and repository, as this loop counts them (the
   * queue's own counts are what it enforces; these check it). */
  g_autoptr (GHashTable) host_now
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GHashTable) repo_now
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GArray) delays = g_array_new (FALSE, FALSE, sizeof (gint64));
  GSequence *running = g_sequence_new (g_free);
  GRand *rand = g_rand_new_with_seed (o->seed);
  gint64 start = 1796083200; /* 2026-12-01T00:00:00Z, a whole hour */
  gint64 end = start + (gint64)o->hours * 3600;
  gint64 window = spread ? o->window : 0;
  Result r = { 0 };
  gint64 last_take = G_MININT64;
  double t0;

  /* VMs spread over hosts; each schedule takes a slice of the VMs. */
  for (guint i = 0; i < o->vms; i++)
    {
      g_autofree char *vm = g_strdup_printf ("vm-%05u", i);
      g_autofree char *sched = g_strdup_printf ("s-%03u", i % o->schedules);
      g_autofree char *repo = g_strdup_printf ("repo-%u", i % N_REPOS);
      char *host
          = g_strdup_printf ("host-%04u", g_rand_int_range (rand, 0, o->hosts));

      g_hash_table_replace (where, g_strdup (vm), host);
      sched_dr_queue_add (q, sched, vm, host, repo, start, window, 0, -1);
    }
  t0 = cpu_seconds ();
  for (gint64 now = start; now < end; now++)
    {
      g_autoptr (GPtrArray) taken = NULL;
      guint started = 0;
      gboolean freed = FALSE;
      gint64 due;

      /* Jobs that ended. */
      while (g_sequence_get_length (running) > 0)
        {
          GSequenceIter *it = g_sequence_get_begin_iter (running);
          Running *job = g_sequence_get (it);

          if (job->end > now)
            break;
          sched_dr_queue_finished (q, job->run);
          g_hash_table_replace (
              host_now, g_strdup (job->run->host),
              GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (
                                    host_now, job->run->host))
                                - 1));
          g_hash_table_replace (
              repo_now, g_strdup (job->run->repo),
              GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (
                                    repo_now, job->run->repo))
                                - 1));
          sched_dr_run_free (job->run);
          g_sequence_remove (it);
          freed = TRUE;
        }
      /* As the engine does: look again only when a place freed or a run
       * came due since the last look. */
      due = sched_dr_queue_next_due_after (q, last_take);
      if (!freed && (due < 0 || due > now))
        continue;
      last_take = now;
      taken = sched_dr_queue_take_due (q, now, vm_host, where);
      for (guint i = 0; i < taken->len; i++)
        {
          SchedDrRun *run = taken->pdata[i];
          Running *job = g_new0 (Running, 1);
          guint on_host, in_repo;
          gint64 next = sched_calendar_next (cal, run->slot, tz);
          gint64 delay = now - run->slot;

          /* The next slot of this VM, queued before this one runs: a run
           * late past its next slot is still one run, not two. */
          while (next >= 0 && next <= now)
            next = sched_calendar_next (cal, next, tz);
          sched_dr_queue_add (q, run->schedule, run->vm, run->host, run->repo,
                              next, window, 0, -1);
          g_array_append_val (delays, delay);
          on_host = GPOINTER_TO_UINT (g_hash_table_lookup (host_now, run->host))
                    + 1;
          in_repo = GPOINTER_TO_UINT (g_hash_table_lookup (repo_now, run->repo))
                    + 1;
          g_hash_table_replace (host_now, g_strdup (run->host),
                                GUINT_TO_POINTER (on_host));
          g_hash_table_replace (repo_now, g_strdup (run->repo),
                                GUINT_TO_POINTER (in_repo));
          r.peak_host = MAX (r.peak_host, on_host);
          r.peak_repo = MAX (r.peak_repo, in_repo);
          job->run = g_steal_pointer (&taken->pdata[i]);
          job->end = now + g_rand_int_range (rand, 20, 241);
          g_sequence_insert_sorted (running, job, cmp_end, NULL);
          started++;
        }
      g_ptr_array_set_free_func (taken, NULL);
      r.peak_starts = MAX (r.peak_starts, started);
      r.runs += started;
    }
  r.cpu_per_hour_ms = (cpu_seconds () - t0) * 1000.0 / o->hours;
  r.due = (guint64)o->vms * o->hours;
  g_array_sort (delays, cmp_i64);
  if (delays->len)
    {
      r.delay_p50 = g_array_index (delays, gint64, delays->len / 2);
      r.delay_p99 = g_array_index (delays, gint64, delays->len * 99 / 100);
      r.delay_max = g_array_index (delays, gint64, delays->len - 1);
    }
  /* Jobs still running at the end hold runs the host tables point into. */
  for (GSequenceIter *it = g_sequence_get_begin_iter (running);
       !g_sequence_iter_is_end (it); it = g_sequence_iter_next (it))
    sched_dr_run_free (((Running *)g_sequence_get (it))->run);
  g_sequence_free (running);
  g_rand_free (rand);
  return r;
}

int
main (int argc, char **argv)
{
  Options o = { .hosts = 1000,
                .vms = 10000,
                .hours = 24,
                .schedules = 100,
                .seed = 7,
                .window = 600,
                .per_host = 2,
                .per_repo = 64 };
  gint window = 600;
  const GOptionEntry entries[] = {
    { "hosts", 0, 0, G_OPTION_ARG_INT, &o.hosts, "Hosts", "N" },
    { "vms", 0, 0, G_OPTION_ARG_INT, &o.vms, "VMs", "N" },
    { "hours", 0, 0, G_OPTION_ARG_INT, &o.hours, "Simulated hours", "H" },
    { "schedules", 0, 0, G_OPTION_ARG_INT, &o.schedules, "Schedules", "N" },
    { "window", 0, 0, G_OPTION_ARG_INT, &window, "Start window", "S" },
    { "per-host", 0, 0, G_OPTION_ARG_INT, &o.per_host, "Jobs per host", "N" },
    { "per-repo", 0, 0, G_OPTION_ARG_INT, &o.per_repo, "Jobs per repository",
      "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT, &o.seed, "Random seed", "S" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
  g_autoptr (GError) error = NULL;
  Result res[2];
  const char *names[] = { "drover", "naive" };

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || o.hosts == 0
      || o.vms == 0 || o.hours == 0 || o.schedules == 0 || window < 0)
    {
      fprintf (stderr, "bench-schedules: %s\n",
               error ? error->message : "counts must be positive");
      return 2;
    }
  o.window = window;
  printf ("schedules: %u VMs on %u hosts, %u hourly schedules, %u simulated "
          "hours; jobs 20-240 s\n"
          "drover: window %" G_GINT64_FORMAT
          " s, at most %u per host and %u per repository (%d repositories)\n\n",
          o.vms, o.hosts, o.schedules, o.hours, o.window, o.per_host,
          o.per_repo, N_REPOS);
  res[0] = simulate (&o, TRUE);
  res[1] = simulate (&o, FALSE);
  printf ("%-8s %14s %16s %10s %10s %12s %22s\n", "policy", "cpu/hour",
          "runs/due", "peak/host", "peak/repo", "peak starts",
          "start delay p50/p99/max");
  for (guint i = 0; i < 2; i++)
    printf ("%-8s %11.1f ms %8" G_GUINT64_FORMAT "/%-7" G_GUINT64_FORMAT
            " %10u %10u %9u/s %8" G_GINT64_FORMAT "/%" G_GINT64_FORMAT
            "/%" G_GINT64_FORMAT " s\n",
            names[i], res[i].cpu_per_hour_ms, res[i].runs, res[i].due,
            res[i].peak_host, res[i].peak_repo, res[i].peak_starts,
            res[i].delay_p50, res[i].delay_p99, res[i].delay_max);
  printf ("\nlimits held: per host %s (%u <= %u), per repository %s "
          "(%u <= %u); every run made: %s; peak starts %.0fx lower than "
          "naive\n",
          res[0].peak_host <= o.per_host ? "yes" : "NO", res[0].peak_host,
          o.per_host, res[0].peak_repo <= o.per_repo ? "yes" : "NO",
          res[0].peak_repo, o.per_repo,
          res[0].runs + o.vms >= res[0].due ? "yes" : "NO",
          (double)res[1].peak_starts / MAX (res[0].peak_starts, 1));
  return res[0].peak_host <= o.per_host && res[0].peak_repo <= o.per_repo ? 0
                                                                          : 1;
}
