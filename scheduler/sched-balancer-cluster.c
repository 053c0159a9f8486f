/* sched_balance_cluster_build: what a balancer tick plans on (see
 * sched-balancer.h). Pure: the store's rows, the load window and the
 * clock come in as arguments, so the unit tests check the filtering on
 * synthetic rows. */
#include "sched-balancer.h"
#include "sched-networks.h"
#include "sched-nics.h"

#include <string.h>

/* From IN's jobs: the VMs with a job not over (BUSY: any kind), those
 * that started a migration within the cool-down (COOLING: whoever asked
 * for it, and it holds across a scheduler restart), and each VM's last
 * finished migration's progress (LAST_MIG: its dirty rate, which the
 * agent's newer measurement in the VM's status overrides). */
static void
scan_jobs (const SchedBalanceInput *in, GHashTable *busy, GHashTable *cooling,
           GHashTable *last_mig)
{
  for (guint i = 0; in->jobs != NULL && i < in->jobs->len; i++)
    {
      const SchedJob *job = in->jobs->pdata[i];
      gboolean mig = strcmp (job->kind, PROTO_JOB_KIND_MIGRATE) == 0;

      if (job->vm == NULL || job->vm[0] == '\0')
        continue;
      if (!proto_job_state_is_final (job->state))
        g_hash_table_add (busy, job->vm);
      if (mig && in->now_ms - job->created_ms < in->cooldown_ms)
        g_hash_table_add (cooling, job->vm);
      /* Jobs are listed by creation: the last one wins. */
      if (mig && proto_job_state_is_final (job->state)
          && job->migration != NULL)
        g_hash_table_insert (last_mig, job->vm, job->migration);
    }
}

/* Why VM may not move, or NULL. HOST_IN_SERVICE: its host's. */
static const char *
vm_unmovable (const SchedBalanceInput *in, const SchedVm *vm,
              gboolean host_in_service, GHashTable *busy, GHashTable *cooling)
{
  const gint64 *moved;

  if (strcmp (vm->state, PROTO_VM_RUNNING) != 0)
    return "not running";
  if (!host_in_service)
    return "its host is out of service";
  if (g_hash_table_contains (busy, vm->name))
    return "a job runs on it";
  moved
      = in->last_moved ? g_hash_table_lookup (in->last_moved, vm->name) : NULL;
  if (g_hash_table_contains (cooling, vm->name)
      || (moved != NULL && in->now_ms - *moved < in->cooldown_ms))
    return "cooling down after a move";
  return NULL;
}

/* For a VM with NICs (SPEC), a flag per host of UP (N of them): it has
 * every network the NICs are on, as placement and migrate --to ask
 * (sched_networks_misfit). NULL for a VM without NICs: any host. */
static gboolean *
hosts_with_networks (const Drover__V1__VmSpec *spec, const SchedHost **up,
                     guint n)
{
  GPtrArray *nets = sched_nics_networks (spec);
  gboolean *ok;

  if (nets == NULL)
    return NULL;
  ok = g_new0 (gboolean, MAX (n, 1));
  for (guint h = 0; h < n; h++)
    {
      g_autofree char *misfit = sched_networks_misfit (up[h], nets);

      ok[h] = misfit == NULL;
    }
  sched_nics_networks_free (nets);
  return ok;
}

static void
fill_vm (const SchedBalanceInput *in, const SchedVm *vm, guint host,
         GHashTable *last_mig, SchedBalanceVm *out)
{
  double cores = 0;
  guint64 rss = 0;

  out->name = vm->name;
  out->host = host;
  out->vcpus = vm->spec->vcpus;
  out->memory = vm->spec->memory;
  if (in->load == NULL || !sched_load_vm (in->load, vm->name, &cores, &rss))
    {
      cores = vm->status ? vm->status->cpu_percent / 100.0 : 0;
      rss = vm->status ? vm->status->memory_rss : 0;
    }
  out->cpu_cores = cores;
  /* Before the first report that says, the VM may use all it has. */
  out->memory_used = rss > 0 ? MIN (rss, vm->spec->memory) : vm->spec->memory;
  out->touched = rss > 0 ? MIN (rss, vm->spec->memory) : 0;
  /* The agent's measurement (its last report), else the last migration's,
   * else the cost model's default. */
  out->dirty_rate = sched_migration_dirty_rate (
      vm, g_hash_table_lookup (last_mig, vm->name));
}

void
sched_balance_cluster_build (const SchedBalanceInput *in,
                             SchedBalanceCluster *cluster, GHashTable *why)
{
  g_autoptr (GHashTable) index = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) busy = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) cooling = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) last_mig = g_hash_table_new (g_str_hash, g_str_equal);
  g_autofree const SchedHost **up
      = g_new0 (const SchedHost *, MAX (in->hosts->len, 1));
  guint n = 0;

  *cluster = (SchedBalanceCluster){ 0 };
  cluster->hosts = g_new0 (SchedBalanceHost, MAX (in->hosts->len, 1));
  cluster->vms = g_new0 (SchedBalanceVm, MAX (in->vms->len, 1));
  for (guint i = 0; i < in->hosts->len; i++)
    {
      const SchedHost *host = in->hosts->pdata[i];
      SchedBalanceHost *h = &cluster->hosts[n];

      if (strcmp (host->state, PROTO_HOST_UP) != 0)
        continue;
      h->name = host->name;
      h->cpus = host->info->cpus;
      h->vcpu_cap = sched_policy_vcpu_cap (in->policy, host->info->cpus);
      h->memory_cap
          = sched_policy_memory_cap (in->policy, host->info->memory_total);
      h->in_service = host->maintenance[0] == '\0';
      up[n] = host;
      g_hash_table_insert (index, host->name, GUINT_TO_POINTER (n + 1));
      n++;
    }
  cluster->n_hosts = n;
  scan_jobs (in, busy, cooling, last_mig);
  for (guint i = 0; i < in->vms->len; i++)
    {
      const SchedVm *vm = in->vms->pdata[i];
      guint h = GPOINTER_TO_UINT (g_hash_table_lookup (index, vm->host));
      SchedBalanceVm *out = &cluster->vms[cluster->n_vms];
      const char *no;

      if (h == 0 || !sched_vm_holds_capacity (vm))
        continue;
      fill_vm (in, vm, h - 1, last_mig, out);
      out->hosts_ok = hosts_with_networks (vm->spec, up, n);
      no = vm_unmovable (in, vm, cluster->hosts[h - 1].in_service, busy,
                         cooling);
      out->movable = no == NULL;
      /* The VM's own row comes before a migration's reservation of it,
       * and says more ("a job runs on it", not "not running"). */
      if (no != NULL && why != NULL && !g_hash_table_contains (why, vm->name))
        g_hash_table_insert (why, vm->name, (gpointer)no);
      cluster->n_vms++;
    }
}

void
sched_balance_cluster_clear (SchedBalanceCluster *cluster)
{
  for (guint i = 0; i < cluster->n_vms; i++)
    g_free ((gpointer)cluster->vms[i].hosts_ok);
  g_free (cluster->hosts);
  g_free (cluster->vms);
  *cluster = (SchedBalanceCluster){ 0 };
}
