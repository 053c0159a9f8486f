/* sched_balance_plan: the greedy planner of sched-balance.h.
 *
 * The imbalance is kept as sums (of loads and of squared loads, per
 * dimension) so that pricing a candidate move is O(1): only the two hosts
 * it touches change. Each step looks at the VMs of the hosts furthest
 * above the mean and at the hosts furthest below it, which is where every
 * move that lowers the deviation starts and ends; on 1,000 hosts that is
 * a few hundred candidates a step instead of every VM times every host. */
#include "sched-balance.h"

#include <math.h>
#include <string.h>

#include "mig-model.h"

enum
{
  DIM_CPU,
  DIM_MEM,
  N_DIMS
};

typedef struct
{
  const SchedBalanceCluster *c;
  const SchedBalanceParams *p;
  double (*load)[N_DIMS]; /* per host, normalised */
  double *vcpus;          /* per host, allocated */
  double *memory;         /* per host, allocated bytes */
  guint *moves_at;        /* per host, moves in or out in this plan */
  GArray **on;            /* per host, indices of its VMs (guint) */
  gboolean *moved;        /* per VM */
  MigModelResult *cost;   /* per VM, once known */
  gboolean *cost_known;
  GHashTable *members; /* group x host -> VMs of the group there */
  double s1[N_DIMS], s2[N_DIMS];
  guint n; /* hosts in service */
} Plan;

void
sched_balance_params_init (SchedBalanceParams *params)
{
  *params = (SchedBalanceParams){
    .threshold = 0.10,
    .target = 0.05,
    .min_gain = 0.002,
    .max_moves = 8,
    .max_per_host = 2,
    .sources = 16,
    .candidates = 16,
    .bandwidth = 100e6,
    .downtime_limit_ms = 300,
    .setup_ms = 1000,
  };
}

static double
imbalance_of (const double s1[N_DIMS], const double s2[N_DIMS], guint n)
{
  double var = 0;

  if (n < 2)
    return 0;
  for (guint k = 0; k < N_DIMS; k++)
    {
      double mean = s1[k] / n;

      /* Rounding may make a variance a hair negative. */
      var += MAX (0.0, s2[k] / n - mean * mean);
    }
  return sqrt (var / N_DIMS);
}

/* What VM adds to the loads of host H. */
static void
vm_load (const SchedBalanceCluster *c, const SchedBalanceVm *vm, guint h,
         double out[N_DIMS])
{
  const SchedBalanceHost *host = &c->hosts[h];

  out[DIM_CPU] = host->cpus > 0 ? vm->cpu_cores / host->cpus : 0;
  out[DIM_MEM] = host->memory_cap > 0
                     ? (double)vm->memory_used / (double)host->memory_cap
                     : 0;
}

static gpointer
member_key (const Plan *pl, guint group, guint host)
{
  return GSIZE_TO_POINTER ((gsize)group * pl->c->n_hosts + host + 1);
}

static guint
members_at (const Plan *pl, guint group, guint host)
{
  return GPOINTER_TO_UINT (
      g_hash_table_lookup (pl->members, member_key (pl, group, host)));
}

static void
members_add (Plan *pl, guint group, guint host, int delta)
{
  gpointer key = member_key (pl, group, host);
  guint now = GPOINTER_TO_UINT (g_hash_table_lookup (pl->members, key));

  g_hash_table_insert (pl->members, key, GUINT_TO_POINTER (now + delta));
}

static void
plan_init (Plan *pl, const SchedBalanceCluster *c, const SchedBalanceParams *p)
{
  *pl = (Plan){ .c = c, .p = p };
  pl->load = g_malloc0_n (MAX (c->n_hosts, 1), sizeof *pl->load);
  pl->vcpus = g_new0 (double, c->n_hosts);
  pl->memory = g_new0 (double, c->n_hosts);
  pl->moves_at = g_new0 (guint, c->n_hosts);
  pl->on = g_new0 (GArray *, c->n_hosts);
  pl->moved = g_new0 (gboolean, c->n_vms);
  pl->cost = g_new0 (MigModelResult, c->n_vms);
  pl->cost_known = g_new0 (gboolean, c->n_vms);
  pl->members = g_hash_table_new (NULL, NULL);
  for (guint h = 0; h < c->n_hosts; h++)
    pl->on[h] = g_array_new (FALSE, FALSE, sizeof (guint));
  for (guint i = 0; i < c->n_vms; i++)
    {
      const SchedBalanceVm *vm = &c->vms[i];
      double add[N_DIMS];

      if (vm->host >= c->n_hosts)
        continue;
      vm_load (c, vm, vm->host, add);
      for (guint k = 0; k < N_DIMS; k++)
        pl->load[vm->host][k] += add[k];
      pl->vcpus[vm->host] += vm->vcpus;
      pl->memory[vm->host] += (double)vm->memory;
      g_array_append_val (pl->on[vm->host], i);
      if (vm->group > 0 && vm->group <= c->n_groups)
        members_add (pl, vm->group, vm->host, 1);
    }
  for (guint h = 0; h < c->n_hosts; h++)
    {
      if (!c->hosts[h].in_service)
        continue;
      pl->n++;
      for (guint k = 0; k < N_DIMS; k++)
        {
          pl->s1[k] += pl->load[h][k];
          pl->s2[k] += pl->load[h][k] * pl->load[h][k];
        }
    }
}

static void
plan_clear (Plan *pl)
{
  for (guint h = 0; h < pl->c->n_hosts; h++)
    g_array_unref (pl->on[h]);
  g_free (pl->on);
  g_free (pl->load);
  g_free (pl->vcpus);
  g_free (pl->memory);
  g_free (pl->moves_at);
  g_free (pl->moved);
  g_free (pl->cost);
  g_free (pl->cost_known);
  g_hash_table_unref (pl->members);
}

double
sched_balance_imbalance (const SchedBalanceCluster *cluster)
{
  Plan pl;
  double value;

  plan_init (&pl, cluster, NULL);
  value = imbalance_of (pl.s1, pl.s2, pl.n);
  plan_clear (&pl);
  return value;
}

/* The sums once VM has left FROM for TO. */
static void
sums_after (const Plan *pl, guint v, guint from, guint to, double s1[N_DIMS],
            double s2[N_DIMS])
{
  const SchedBalanceVm *vm = &pl->c->vms[v];
  double out[N_DIMS], in[N_DIMS];

  vm_load (pl->c, vm, from, out);
  vm_load (pl->c, vm, to, in);
  for (guint k = 0; k < N_DIMS; k++)
    {
      s1[k] = pl->s1[k];
      s2[k] = pl->s2[k];
      if (pl->c->hosts[from].in_service)
        {
          double a = pl->load[from][k], a2 = a - out[k];

          s1[k] += a2 - a;
          s2[k] += a2 * a2 - a * a;
        }
      if (pl->c->hosts[to].in_service)
        {
          double b = pl->load[to][k], b2 = b + in[k];

          s1[k] += b2 - b;
          s2[k] += b2 * b2 - b * b;
        }
    }
}

static const MigModelResult *
vm_cost (Plan *pl, guint v)
{
  const SchedBalanceVm *vm = &pl->c->vms[v];
  MigModelInput in;

  if (pl->cost_known[v])
    return &pl->cost[v];
  mig_model_input_init (&in);
  in.ram_bytes = MAX (vm->memory, 1);
  in.touched_bytes = MIN (vm->touched, in.ram_bytes);
  in.dirty_rate = MAX (vm->dirty_rate, 0);
  in.bandwidth = pl->p->bandwidth > 0 ? pl->p->bandwidth : 1;
  in.downtime_limit_ms = pl->p->downtime_limit_ms;
  in.setup_ms = pl->p->setup_ms;
  if (!mig_model_predict (&in, &pl->cost[v], NULL))
    pl->cost[v].converges = FALSE;
  pl->cost_known[v] = TRUE;
  return &pl->cost[v];
}

/* May VM go to host TO at all: room, networks, rules, limits. */
static gboolean
may_land (const Plan *pl, guint v, guint to)
{
  const SchedBalanceVm *vm = &pl->c->vms[v];
  const SchedBalanceHost *host = &pl->c->hosts[to];

  if (!host->in_service || to == vm->host
      || pl->moves_at[to] >= pl->p->max_per_host)
    return FALSE;
  if (vm->hosts_ok != NULL && !vm->hosts_ok[to])
    return FALSE;
  if (pl->vcpus[to] + vm->vcpus > host->vcpu_cap
      || pl->memory[to] + (double)vm->memory > (double)host->memory_cap)
    return FALSE;
  if (vm->group > 0 && vm->group <= pl->c->n_groups
      && pl->c->groups[vm->group - 1] == SCHED_BALANCE_RULE_ANTI_AFFINITY
      && members_at (pl, vm->group, to) > 0)
    return FALSE;
  return TRUE;
}

static gboolean
may_leave (const Plan *pl, guint v)
{
  const SchedBalanceVm *vm = &pl->c->vms[v];

  if (!vm->movable || pl->moved[v])
    return FALSE;
  /* A group that lives together moves together, not one VM at a time. */
  return !(vm->group > 0 && vm->group <= pl->c->n_groups
           && pl->c->groups[vm->group - 1] == SCHED_BALANCE_RULE_AFFINITY);
}

typedef struct
{
  guint host;
  double key; /* how far above (or below) the mean, summed over loads */
} Ranked;

static gint
by_key_desc (gconstpointer a, gconstpointer b)
{
  double x = ((const Ranked *)a)->key, y = ((const Ranked *)b)->key;

  return (x < y) - (x > y);
}

/* Hosts in service that may still take part in a move, furthest above
 * the mean first (ABOVE) or furthest below it first. Each load counts
 * only on its own side: a host with spare CPU and no spare memory is
 * neither a good source nor a good destination for memory. */
static GArray *
rank_hosts (const Plan *pl, gboolean above)
{
  GArray *ranked = g_array_new (FALSE, FALSE, sizeof (Ranked));

  for (guint h = 0; h < pl->c->n_hosts; h++)
    {
      Ranked r = { h, 0 };

      if (!pl->c->hosts[h].in_service || pl->moves_at[h] >= pl->p->max_per_host)
        continue;
      for (guint k = 0; k < N_DIMS; k++)
        {
          double d = pl->load[h][k] - pl->s1[k] / MAX (pl->n, 1);

          r.key += MAX (0.0, above ? d : -d);
        }
      g_array_append_val (ranked, r);
    }
  g_array_sort (ranked, by_key_desc);
  return ranked;
}

/* The best move of this step, or FALSE when none gains enough. */
static gboolean
best_move (Plan *pl, double now, SchedBalanceMove *best)
{
  g_autoptr (GArray) sources = rank_hosts (pl, TRUE);
  g_autoptr (GArray) targets = rank_hosts (pl, FALSE);
  guint n_src = MIN (pl->p->sources, sources->len);
  guint n_dst = MIN (pl->p->candidates, targets->len);
  double best_score = 0;
  gboolean found = FALSE;

  for (guint i = 0; i < n_src; i++)
    {
      guint from = g_array_index (sources, Ranked, i).host;
      GArray *on = pl->on[from];

      for (guint j = 0; j < on->len; j++)
        {
          guint v = g_array_index (on, guint, j);
          const MigModelResult *cost = NULL;

          if (!may_leave (pl, v))
            continue;
          for (guint d = 0; d < n_dst; d++)
            {
              guint to = g_array_index (targets, Ranked, d).host;
              double s1[N_DIMS], s2[N_DIMS], gain, score;

              if (to == from || !may_land (pl, v, to))
                continue;
              sums_after (pl, v, from, to, s1, s2);
              gain = now - imbalance_of (s1, s2, pl->n);
              if (gain < pl->p->min_gain)
                continue;
              if (cost == NULL)
                cost = vm_cost (pl, v);
              if (!cost->converges)
                break;
              score = pl->p->ignore_cost ? gain
                                         : gain / MAX (cost->total_s, 1e-3);
              if (!found || score > best_score
                  || (score == best_score && cost->bytes_wire < best->bytes))
                {
                  found = TRUE;
                  best_score = score;
                  *best = (SchedBalanceMove){
                    .vm = v,
                    .from = from,
                    .to = to,
                    .gain = gain,
                    .cost_s = cost->total_s,
                    .bytes = cost->bytes_wire,
                    .downtime_ms = cost->downtime_ms,
                  };
                }
            }
        }
    }
  return found;
}

/* Makes MOVE in the plan's sums and tables. */
static void
plan_take (Plan *pl, const SchedBalanceMove *move)
{
  const SchedBalanceVm *vm = &pl->c->vms[move->vm];
  double s1[N_DIMS], s2[N_DIMS], out[N_DIMS], in[N_DIMS];
  GArray *on = pl->on[move->from];

  sums_after (pl, move->vm, move->from, move->to, s1, s2);
  memcpy (pl->s1, s1, sizeof s1);
  memcpy (pl->s2, s2, sizeof s2);
  vm_load (pl->c, vm, move->from, out);
  vm_load (pl->c, vm, move->to, in);
  for (guint k = 0; k < N_DIMS; k++)
    {
      pl->load[move->from][k] -= out[k];
      pl->load[move->to][k] += in[k];
    }
  pl->vcpus[move->from] -= vm->vcpus;
  pl->vcpus[move->to] += vm->vcpus;
  pl->memory[move->from] -= (double)vm->memory;
  pl->memory[move->to] += (double)vm->memory;
  for (guint j = 0; j < on->len; j++)
    if (g_array_index (on, guint, j) == move->vm)
      {
        g_array_remove_index_fast (on, j);
        break;
      }
  g_array_append_val (pl->on[move->to], move->vm);
  if (vm->group > 0 && vm->group <= pl->c->n_groups)
    {
      members_add (pl, vm->group, move->from, -1);
      members_add (pl, vm->group, move->to, 1);
    }
  pl->moves_at[move->from]++;
  pl->moves_at[move->to]++;
  pl->moved[move->vm] = TRUE;
}

GArray *
sched_balance_plan (const SchedBalanceCluster *cluster,
                    const SchedBalanceParams *params, double *after)
{
  GArray *moves = g_array_new (FALSE, FALSE, sizeof (SchedBalanceMove));
  Plan pl;
  double now;

  plan_init (&pl, cluster, params);
  now = imbalance_of (pl.s1, pl.s2, pl.n);
  if (now > params->threshold)
    while (moves->len < params->max_moves && now > params->target)
      {
        SchedBalanceMove move;

        if (!best_move (&pl, now, &move))
          break;
        plan_take (&pl, &move);
        g_array_append_val (moves, move);
        now = imbalance_of (pl.s1, pl.s2, pl.n);
      }
  if (after)
    *after = now;
  plan_clear (&pl);
  return moves;
}

void
sched_balance_apply (SchedBalanceCluster *cluster, const GArray *moves)
{
  for (guint i = 0; i < moves->len; i++)
    {
      const SchedBalanceMove *move
          = &g_array_index (moves, SchedBalanceMove, i);

      cluster->vms[move->vm].host = move->to;
    }
}
