/* The load window (see sched-load.h). */
#include "sched-load.h"

#include <math.h>

/* An exponentially weighted moving average over time. */
typedef struct
{
  double value;
  gboolean set;
} Avg;

typedef struct
{
  guint64 cpu_ns; /* cpu_time_ns at the last report */
  gint64 last_ms; /* when that report was made */
  gint64 seen_ms; /* the last report that showed it, by any host */
  Avg cpu;        /* cores */
  Avg rss;        /* bytes */
} VmLoad;

typedef struct
{
  gint64 last_ms;
  Avg cpu; /* cores used by its VMs / its CPUs */
  Avg mem; /* bytes in use */
} HostLoad;

struct _SchedLoad
{
  gint64 window_ms;
  gint64 pruned_ms;  /* when VMs were last pruned */
  GHashTable *vms;   /* name -> VmLoad */
  GHashTable *hosts; /* name -> HostLoad */
};

SchedLoad *
sched_load_new (gint64 window_ms)
{
  SchedLoad *load = g_new0 (SchedLoad, 1);

  load->window_ms = window_ms > 0 ? window_ms : SCHED_LOAD_DEFAULT_WINDOW_MS;
  load->vms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  load->hosts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return load;
}

void
sched_load_free (SchedLoad *load)
{
  if (load == NULL)
    return;
  g_hash_table_unref (load->vms);
  g_hash_table_unref (load->hosts);
  g_free (load);
}

/* Folds SAMPLE, DT_MS after the previous one, into AVG: a sample weighs
 * by the time it stands for, so ten reports a second and one every ten
 * seconds give the same average. */
static void
avg_add (Avg *avg, double sample, gint64 dt_ms, gint64 window_ms)
{
  double alpha;

  if (!avg->set)
    {
      avg->value = sample;
      avg->set = TRUE;
      return;
    }
  if (dt_ms <= 0)
    return;
  alpha = 1.0 - exp (-(double)dt_ms / (double)window_ms);
  avg->value += alpha * (sample - avg->value);
}

/* Whatever no host has reported for a window goes; at most every tenth of
 * a window, so that a report does not walk every VM. */
static void
prune (SchedLoad *load, gint64 now_ms)
{
  GHashTableIter it;
  VmLoad *v;

  if (now_ms - load->pruned_ms < load->window_ms / 10)
    return;
  load->pruned_ms = now_ms;
  g_hash_table_iter_init (&it, load->vms);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *)&v))
    if (now_ms - v->seen_ms > load->window_ms)
      g_hash_table_iter_remove (&it);
}

/* VM STATUS's CPU sample (cores) in a report made at NOW_MS. */
static double
vm_cpu_sample (VmLoad *v, const Drover__V1__VmStatus *status, gint64 now_ms)
{
  double cores;

  /* A first sight, a restarted guest (its CPU time starts again) or two
   * reports in the same millisecond: no delta, the agent's own figure. */
  if (v->last_ms == 0 || status->cpu_time_ns < v->cpu_ns
      || now_ms <= v->last_ms)
    cores = status->cpu_percent / 100.0;
  else
    cores = (double)(status->cpu_time_ns - v->cpu_ns) / 1e6
            / (double)(now_ms - v->last_ms);
  return MAX (cores, 0.0);
}

void
sched_load_report (SchedLoad *load, gint64 now_ms,
                   const Drover__V1__HostInfo *info,
                   Drover__V1__VmStatus *const *vms, gsize n_vms)
{
  HostLoad *h = g_hash_table_lookup (load->hosts, info->name);
  double cores = 0;
  gint64 host_dt;

  if (h == NULL)
    {
      h = g_new0 (HostLoad, 1);
      g_hash_table_insert (load->hosts, g_strdup (info->name), h);
    }
  host_dt = h->last_ms ? now_ms - h->last_ms : 0;
  if (h->last_ms != 0 && host_dt < 0)
    return; /* older than what was taken: reports are in order per host */
  for (gsize i = 0; i < n_vms; i++)
    {
      const Drover__V1__VmStatus *status = vms[i];
      VmLoad *v = g_hash_table_lookup (load->vms, status->name);
      double sample;

      if (v == NULL)
        {
          v = g_new0 (VmLoad, 1);
          g_hash_table_insert (load->vms, g_strdup (status->name), v);
        }
      sample = vm_cpu_sample (v, status, now_ms);
      avg_add (&v->cpu, sample, v->last_ms ? now_ms - v->last_ms : 0,
               load->window_ms);
      if (status->memory_rss > 0)
        avg_add (&v->rss, (double)status->memory_rss,
                 v->last_ms ? now_ms - v->last_ms : 0, load->window_ms);
      v->cpu_ns = status->cpu_time_ns;
      v->last_ms = MAX (v->last_ms, now_ms);
      v->seen_ms = now_ms;
      cores += sample;
    }
  avg_add (&h->cpu, info->cpus ? cores / info->cpus : 0, host_dt,
           load->window_ms);
  avg_add (&h->mem,
           info->memory_total > info->memory_free
               ? (double)(info->memory_total - info->memory_free)
               : 0,
           host_dt, load->window_ms);
  h->last_ms = now_ms;
  prune (load, now_ms);
}

gboolean
sched_load_vm (SchedLoad *load, const char *vm, double *cpu_cores,
               guint64 *memory_rss)
{
  const VmLoad *v = g_hash_table_lookup (load->vms, vm);

  if (v == NULL)
    return FALSE;
  if (cpu_cores)
    *cpu_cores = v->cpu.value;
  if (memory_rss)
    *memory_rss = (guint64)v->rss.value;
  return TRUE;
}

gboolean
sched_load_host (SchedLoad *load, const char *host, double *cpu_load,
                 guint64 *memory_used)
{
  const HostLoad *h = g_hash_table_lookup (load->hosts, host);

  if (h == NULL)
    return FALSE;
  if (cpu_load)
    *cpu_load = h->cpu.value;
  if (memory_used)
    *memory_used = (guint64)h->mem.value;
  return TRUE;
}

void
sched_load_forget_vm (SchedLoad *load, const char *vm)
{
  g_hash_table_remove (load->vms, vm);
}
