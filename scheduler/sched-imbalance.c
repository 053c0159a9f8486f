/* sched_imbalance: how unevenly the cluster is loaded (the dashboard's
 * chart; the balancer will reuse the same measure). */
#include "sched-dashboard.h"

#include <math.h>
#include <string.h>

double
sched_imbalance (const SchedPolicy *policy, GPtrArray *hosts, GPtrArray *vms)
{
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
      sched_host_usage (host->name, vms, NULL, &vcpus, &memory, NULL);
      cpu_cap = host->info->cpus * policy->cpu_overcommit;
      mem_cap
          = host->info->memory_total > policy->memory_reserve
                ? (double)(host->info->memory_total - policy->memory_reserve)
                : 0;
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
