/* MigrateVm's pure parts: destination choice, the cost model's
 * prediction, job progress wording, and the per-host migration limits.
 * No store, no network, no clock: the unit tests drive them directly.
 */
#include "sched-private.h"

#include "mig-model.h"

#include <math.h>
#include <string.h>

/* --- cost model ---------------------------------------------------------- */

double
sched_migration_dirty_rate (const SchedVm *vm,
                            const Drover__V1__MigrationProgress *last)
{
  double ram = (double)vm->spec->memory;
  double activity = 1.0;
  double rate;

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

/* What past migrations say about the data path: the best throughput a
 * completed migration reached (what the channel and QEMU together
 * sustain; on TCG hosts far below the link) and the fixed cost around
 * the copy (prepare, connect, QEMU start, finish). The median of the
 * last SCHED_MIG_LEARN_SAMPLES completed migrations, so one outlier does
 * not swing the estimate. Without history: DEFAULT_BW and
 * SCHED_MIG_DEFAULT_SETUP_S. */
static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

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

/* --- destination --------------------------------------------------------- */

static const SchedHost *
find_host (GPtrArray *hosts, const char *name)
{
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *host = hosts->pdata[i];

      if (strcmp (host->name, name) == 0)
        return host;
    }
  return NULL;
}

char *
sched_migration_pick_dest (const SchedPolicy *policy, GPtrArray *hosts,
                           GPtrArray *vms, const SchedVm *vm, const char *to,
                           GError **error)
{
  const SchedHost *source = find_host (hosts, vm->host);
  Drover__V1__VmSpec spec = *vm->spec;
  g_autoptr (GPtrArray) others = NULL;
  g_autoptr (GError) local = NULL;
  char *chosen;

  /* A running guest can only continue under the accelerator it has. */
  if (spec.accel[0] == '\0' && source != NULL && source->info->accel[0] != '\0')
    spec.accel = source->info->accel;

  if (to != NULL && to[0] != '\0')
    {
      if (find_host (hosts, to) == NULL)
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

/* --- progress ------------------------------------------------------------ */

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

/* --- limits and queue ---------------------------------------------------- */

typedef struct
{
  char *id;
  char *source;
  char *dest;
  gboolean running;
} QueueEntry;

struct _SchedMigQueue
{
  guint max_out;
  guint max_in;
  GPtrArray *entries; /* QueueEntry, in arrival order */
};

static void
queue_entry_free (QueueEntry *e)
{
  g_free (e->id);
  g_free (e->source);
  g_free (e->dest);
  g_free (e);
}

SchedMigQueue *
sched_mig_queue_new (guint max_out, guint max_in)
{
  SchedMigQueue *q = g_new0 (SchedMigQueue, 1);

  q->max_out = MAX (max_out, 1);
  q->max_in = MAX (max_in, 1);
  q->entries
      = g_ptr_array_new_with_free_func ((GDestroyNotify)queue_entry_free);
  return q;
}

void
sched_mig_queue_free (SchedMigQueue *q)
{
  if (q == NULL)
    return;
  g_ptr_array_unref (q->entries);
  g_free (q);
}

static guint
count_running (SchedMigQueue *q, const char *host, gboolean out)
{
  guint n = 0;

  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (e->running && strcmp (out ? e->source : e->dest, host) == 0)
        n++;
    }
  return n;
}

guint
sched_mig_queue_running_out (SchedMigQueue *q, const char *host)
{
  return count_running (q, host, TRUE);
}

guint
sched_mig_queue_running_in (SchedMigQueue *q, const char *host)
{
  return count_running (q, host, FALSE);
}

/* Starts what may start; returns their ids. */
static GPtrArray *
queue_schedule (SchedMigQueue *q)
{
  GPtrArray *started = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) held_out = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) held_in = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (e->running)
        continue;
      if (!g_hash_table_contains (held_out, e->source)
          && !g_hash_table_contains (held_in, e->dest)
          && count_running (q, e->source, TRUE) < q->max_out
          && count_running (q, e->dest, FALSE) < q->max_in)
        {
          e->running = TRUE;
          g_ptr_array_add (started, g_strdup (e->id));
          continue;
        }
      /* First come first served on the hosts this one waits for. */
      g_hash_table_add (held_out, e->source);
      g_hash_table_add (held_in, e->dest);
    }
  return started;
}

gboolean
sched_mig_queue_add (SchedMigQueue *q, const char *id, const char *source,
                     const char *dest)
{
  QueueEntry *e = g_new0 (QueueEntry, 1);
  g_autoptr (GPtrArray) started = NULL;

  e->id = g_strdup (id);
  e->source = g_strdup (source);
  e->dest = g_strdup (dest);
  g_ptr_array_add (q->entries, e);
  started = queue_schedule (q);
  return e->running;
}

GPtrArray *
sched_mig_queue_remove (SchedMigQueue *q, const char *id)
{
  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (strcmp (e->id, id) == 0)
        {
          g_ptr_array_remove_index (q->entries, i);
          break;
        }
    }
  return queue_schedule (q);
}

guint
sched_mig_queue_position (SchedMigQueue *q, const char *id)
{
  guint pos = 0;

  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (e->running)
        continue;
      pos++;
      if (strcmp (e->id, id) == 0)
        return pos;
    }
  return 0;
}
