/* sched_imbalance: how unevenly the cluster is loaded (the dashboard's
 * chart; the balancer will reuse the same measure), and the grouping of
 * VMs by host that lets it and the dashboard's state find each host's
 * usage without a pass over every VM per host. */
#include "sched-dashboard.h"

#include <math.h>
#include <string.h>

GHashTable *
sched_vms_by_host (GPtrArray *vms)
{
  GHashTable *by_host = g_hash_table_new_full (
      g_str_hash, g_str_equal, NULL, (GDestroyNotify)g_ptr_array_unref);

  for (guint i = 0; i < vms->len; i++)
    {
      SchedVm *vm = vms->pdata[i];
      GPtrArray *on = g_hash_table_lookup (by_host, vm->host);

      if (on == NULL)
        {
          on = g_ptr_array_new ();
          g_hash_table_insert (by_host, vm->host, on);
        }
      g_ptr_array_add (on, vm);
    }
  return by_host;
}

double
sched_imbalance (const SchedPolicy *policy, GPtrArray *hosts, GPtrArray *vms)
{
  g_autoptr (GHashTable) by_host = sched_vms_by_host (vms);
  double sum[2] = { 0, 0 }, sum_sq[2] = { 0, 0 };
  guint n = 0;

  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *host = hosts->pdata[i];
      guint vcpus = 0;
      guint64 memory = 0;
      double cpu_cap, mem_cap, loads[2];

      if (strcmp (host->state, PROTO_HOST_UP) != 0)
        continue;
      sched_host_usage (host->name, g_hash_table_lookup (by_host, host->name),
                        NULL, &vcpus, &memory, NULL);
      cpu_cap = (double)sched_policy_vcpu_cap (policy, host->info->cpus);
      mem_cap
          = (double)sched_policy_memory_cap (policy, host->info->memory_total);
      /* A host with no capacity is full by definition. */
      loads[0] = cpu_cap > 0 ? vcpus / cpu_cap : 1.0;
      loads[1] = mem_cap > 0 ? memory / mem_cap : 1.0;
      for (guint k = 0; k < 2; k++)
        {
          sum[k] += loads[k];
          sum_sq[k] += loads[k] * loads[k];
        }
      n++;
    }
  if (n < 2)
    return 0;
  /* Population variances; rounding may make one a hair negative. */
  for (guint k = 0; k < 2; k++)
    sum_sq[k] = MAX (0.0, sum_sq[k] / n - (sum[k] / n) * (sum[k] / n));
  return sqrt ((sum_sq[0] + sum_sq[1]) / 2);
}
