/* The migrator's pure parts: destination choice, the cost model's
 * prediction, what past migrations say about the link, and job progress
 * wording. No store, no network, no clock: the unit tests drive them
 * directly. */
#include "sched-private.h"

#include "mig-model.h"

#include <math.h>
#include <string.h>

/* --- cost model -------------------------------------------------------- */

double
sched_migration_dirty_rate (const SchedVm *vm,
                            const Drover__V1__MigrationProgress *last)
{
  double ram = (double)vm->spec->memory;
  double activity = 1.0;
  double rate;

  /* The agent measures the VM every 30 s on the host it runs on, so its
   * figure is newer than the VM's last migration (which ended before the
   * VM ran there) except within one interval of a failed one. A measured
   * 0 is below page sampling's resolution: the last migration's figure
   * or the default say more. */
  if (vm->status != NULL && vm->status->dirty_rate_measured
      && isfinite (vm->status->dirty_rate_bytes_per_second)
      && vm->status->dirty_rate_bytes_per_second > 0)
    return vm->status->dirty_rate_bytes_per_second;
  if (last != NULL)
    {
      double seen = last->dirty_rate;

      for (size_t i = 0; i < last->n_rounds; i++)
        if (last->rounds[i] != NULL)
          seen = MAX (seen, last->rounds[i]->dirty_rate);
      if (isfinite (seen) && seen > 0)
        return seen;
    }

  /* cpu_percent is 100 per busy vCPU; an idle guest dirties little. */
  if (vm->status != NULL && isfinite (vm->status->cpu_percent))
    {
      guint vcpus = MAX (vm->spec->vcpus, 1);

      activity = CLAMP (vm->status->cpu_percent / (100.0 * vcpus), 0.1, 1.0);
    }
  rate = ram * SCHED_MIG_DIRTY_FRACTION * activity;
  return MIN (rate, SCHED_MIG_DIRTY_CAP);
}

gboolean
sched_migration_predict (const SchedVm *vm,
                         const Drover__V1__MigrationParams *params,
                         double dirty_rate, double link_bandwidth,
                         double setup_s, Drover__V1__MigrationPrediction *out,
                         GError **error)
{
  MigModelInput in;
  MigModelResult res;
  g_autoptr (GError) local = NULL;
  double bandwidth = link_bandwidth;

  /* A channel rate limit below the link is what the data will see. */
  if (params != NULL && params->bandwidth_bps > 0
      && (!(bandwidth > 0) || (double)params->bandwidth_bps < bandwidth))
    bandwidth = (double)params->bandwidth_bps;

  mig_model_input_init (&in);
  in.ram_bytes = vm->spec->memory;
  if (vm->status != NULL)
    in.touched_bytes = vm->status->memory_rss;
  in.dirty_rate = dirty_rate;
  in.bandwidth = bandwidth;
  in.compression_ratio = 1.0;
  in.setup_ms = (guint32)CLAMP (setup_s * 1000.0, 0.0, 600000.0);
  in.downtime_limit_ms = params != NULL && params->max_downtime_ms > 0
                             ? params->max_downtime_ms
                             : PROTO_MIG_DEFAULT_MAX_DOWNTIME_MS;
  if (!mig_model_predict (&in, &res, &local))
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID, "VM '%s': %s",
                   vm->name, local->message);
      return FALSE;
    }

  drover__v1__migration_prediction__init (out);
  out->converges = res.converges;
  out->rounds = res.rounds;
  out->total_s = res.total_s;
  out->downtime_ms = res.downtime_ms;
  out->bytes_sent = res.bytes_sent;
  out->bytes_wire = res.bytes_wire;
  out->dirty_rate = dirty_rate;
  out->bandwidth = bandwidth;
  return TRUE;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

/* What past migrations say about the data path: the best throughput a
 * completed migration reached (what the channel and QEMU together
 * sustain; on TCG hosts far below the link) and the fixed cost around
 * the copy (prepare, connect, QEMU start, finish). The median of the
 * last SCHED_MIG_LEARN_SAMPLES completed migrations, so one outlier does
 * not swing the estimate. Without history: DEFAULT_BW and
 * SCHED_MIG_DEFAULT_SETUP_S. */
void
sched_migration_learn_link (GPtrArray *jobs, double default_bw,
                            double *bandwidth, double *setup_s)
{
  double bws[SCHED_MIG_LEARN_SAMPLES], setups[SCHED_MIG_LEARN_SAMPLES];
  const SchedJob *picked[SCHED_MIG_LEARN_SAMPLES] = { NULL };
  guint n = 0;

  *bandwidth = default_bw;
  *setup_s = SCHED_MIG_DEFAULT_SETUP_S;

  /* The most recent completed migrations, newest first. */
  for (guint k = 0; k < SCHED_MIG_LEARN_SAMPLES; k++)
    {
      const SchedJob *best = NULL;

      for (guint i = 0; jobs != NULL && i < jobs->len; i++)
        {
          const SchedJob *job = jobs->pdata[i];
          gboolean used = FALSE;

          if (strcmp (job->kind, PROTO_JOB_KIND_MIGRATE) != 0
              || strcmp (job->state, PROTO_JOB_DONE) != 0
              || job->migration == NULL || job->migration->qemu_bytes == 0
              || !(job->migration->total_s > 0))
            continue;
          for (guint j = 0; j < k; j++)
            used |= picked[j] == job;
          if (!used && (best == NULL || job->updated_ms > best->updated_ms))
            best = job;
        }
      if (best == NULL)
        break;
      picked[k] = best;

      const Drover__V1__MigrationProgress *m = best->migration;
      double tp = m->throughput;

      for (size_t r = 0; r < m->n_rounds; r++)
        if (m->rounds[r] != NULL && isfinite (m->rounds[r]->throughput))
          tp = MAX (tp, m->rounds[r]->throughput);
      if (!(tp > 0) || !isfinite (tp))
        continue;
      bws[n] = tp;
      setups[n] = MAX (0.0, m->total_s - (double)m->qemu_bytes / tp
                                - m->downtime_ms / 1000.0);
      n++;
    }
  if (n == 0)
    return;
  qsort (bws, n, sizeof bws[0], cmp_double);
  qsort (setups, n, sizeof setups[0], cmp_double);
  /* Never above the configured link: the history may come from a faster
   * path than this migration's. */
  *bandwidth = default_bw > 0 ? MIN (bws[n / 2], default_bw) : bws[n / 2];
  *setup_s = setups[n / 2];
}

/* --- destination ------------------------------------------------------- */

char *
sched_migration_pick_dest (const SchedPolicy *policy, GPtrArray *hosts,
                           GPtrArray *vms, const SchedVm *vm, const char *to,
                           GError **error)
{
  const SchedHost *source = sched_host_find (hosts, vm->host);
  Drover__V1__VmSpec spec = *vm->spec;
  g_autoptr (GPtrArray) others = NULL;
  g_autoptr (GError) local = NULL;
  char *chosen;

  /* A running guest can only continue under the accelerator it has. */
  if (spec.accel[0] == '\0' && source != NULL && source->info->accel[0] != '\0')
    spec.accel = source->info->accel;

  if (to != NULL && to[0] != '\0')
    {
      if (sched_host_find (hosts, to) == NULL)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                       "no host named '%s'", to);
          return NULL;
        }
      if (strcmp (to, vm->host) == 0)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                       "VM '%s' is already on host '%s'", vm->name, to);
          return NULL;
        }
      return sched_place (policy, hosts, vms, &spec, to, error);
    }

  /* Not g_ptr_array_copy: that would inherit the free function. */
  others = g_ptr_array_sized_new (hosts->len);
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *host = hosts->pdata[i];

      if (strcmp (host->name, vm->host) != 0)
        g_ptr_array_add (others, hosts->pdata[i]);
    }
  if (others->len == 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY,
                   "no host but '%s' is registered: nowhere to move VM '%s'",
                   vm->host, vm->name);
      return NULL;
    }
  chosen = sched_place (policy, others, vms, &spec, NULL, &local);
  if (chosen == NULL)
    {
      g_set_error (error, local->domain, local->code,
                   "cannot migrate VM '%s' away from host '%s': %s", vm->name,
                   vm->host, local->message);
      return NULL;
    }
  return chosen;
}

/* --- progress ---------------------------------------------------------- */

double
sched_migration_fraction (const Drover__V1__MigrationProgress *p)
{
  const char *phase = p->phase;

  if (strcmp (phase, PROTO_MIG_QUEUED) == 0)
    return 0.0;
  if (strcmp (phase, PROTO_MIG_PREPARING) == 0)
    return 0.02;
  if (strcmp (phase, PROTO_MIG_SWITCHOVER) == 0)
    return 0.97;
  if (strcmp (phase, PROTO_MIG_COMPLETED) == 0)
    return 1.0;
  if (strcmp (phase, PROTO_MIG_ABORTED) == 0
      || strcmp (phase, PROTO_MIG_FAILED) == 0)
    return -1.0;
  /* Pre-copy (and anything unknown): memory already sent and not dirtied
   * again. Later rounds re-send pages, so "processed" can pass the total;
   * "remaining" cannot. */
  if (p->memory_total == 0)
    return 0.05;
  return 0.05
         + 0.9
               * (1.0
                  - (double)MIN (p->memory_remaining, p->memory_total)
                        / (double)p->memory_total);
}

char *
sched_migration_describe (const Drover__V1__MigrationProgress *p,
                          const char *dest)
{
  const char *phase = p->phase;

  if (strcmp (phase, PROTO_MIG_PREPARING) == 0)
    return g_strdup_printf ("preparing host %s", dest);
  if (strcmp (phase, PROTO_MIG_SWITCHOVER) == 0)
    return g_strdup_printf ("switching over to host %s%s", dest,
                            p->forced_switchover ? " (forced)" : "");
  if (strcmp (phase, PROTO_MIG_COMPLETED) == 0)
    return g_strdup_printf (
        "migrated to host %s in %.1f s, downtime %" G_GUINT64_FORMAT " ms",
        dest, p->total_s, p->downtime_ms);
  if (strcmp (phase, PROTO_MIG_ABORTED) == 0
      || strcmp (phase, PROTO_MIG_FAILED) == 0)
    return g_strdup_printf ("%s: %s", phase,
                            p->error[0] ? p->error : "no reason given");
  if (strcmp (phase, PROTO_MIG_PRECOPY) == 0)
    {
      g_autofree char *sent = proto_format_size_brief (p->memory_processed);
      g_autofree char *total = proto_format_size_brief (p->memory_total);
      g_autofree char *left = proto_format_size_brief (p->memory_remaining);

      return g_strdup_printf ("pre-copy round %u: %s of %s sent, %s left",
                              p->iteration, sent, total, left);
    }
  return g_strdup_printf ("%s", phase[0] ? phase : "migrating");
}
