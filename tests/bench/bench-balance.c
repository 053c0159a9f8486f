/* The balancer's planner on a simulated cluster (no VMs, no cluster):
 * from the same skewed start, Drover's cost-aware plan against two
 * baselines run in the same process on the same cluster:
 *
 *   threshold  in the style of oVirt's "evenly distributed" policy: while
 *              a host is above 80 % CPU, move its busiest VM to the least
 *              loaded host that stays under 80 % with it;
 *   cost-blind in the style of OpenStack Watcher's workload
 *              stabilisation: the same standard deviation as Drover's,
 *              each step the move that lowers it most, whatever the move
 *              costs (Drover's planner with ignore_cost).
 *
 * Every policy plans in rounds (a plan, then its moves made) until it is
 * at the target imbalance or has nothing left to do. Printed per policy:
 * migrations, GiB on the wire and migration seconds (the cost model's
 * predictions, the same model for all), the final imbalance, and the
 * time of each planning call (p50, p99).
 *
 * Usage: bench-balance [--hosts N] [--vms N] [--target X] [--seed S]
 * Targets (issue 15): Drover reaches the cost-blind policy's final
 * imbalance with at most half its bytes; planning p99 under 200 ms for
 * 1,000 hosts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mig-model.h"
#include "sched-balance.h"

#define GIB (1024.0 * 1024 * 1024)

typedef struct
{
  guint n_hosts, n_vms, seed;
  double target;
  double crowd;     /* share of the VMs that crowd the first twentieth */
  double bandwidth; /* the migration link, bytes a second */
} Options;

typedef struct
{
  const char *name;
  guint migrations;
  double bytes, seconds, final;
  GArray *plan_ms; /* double per planning call */
  GArray *path;    /* Point per round: where the policy got, at what cost */
} Result;

typedef struct
{
  double imbalance, bytes;
  guint migrations;
} Point;

static void
record (Result *res, double imbalance)
{
  Point pt = { imbalance, res->bytes, res->migrations };

  g_array_append_val (res->path, pt);
}

/* The first point of RES's path at or below LEVEL (NULL: never got
 * there). */
static const Point *
reached (const Result *res, double level)
{
  for (guint i = 0; i < res->path->len; i++)
    if (g_array_index (res->path, Point, i).imbalance <= level + 1e-9)
      return &g_array_index (res->path, Point, i);
  return NULL;
}

/* A log-normal draw with median MEDIAN and shape SIGMA. */
static double
lognormal (GRand *r, double median, double sigma)
{
  double u1 = g_rand_double_range (r, 1e-12, 1), u2 = g_rand_double (r);
  double z = sqrt (-2 * log (u1)) * cos (2 * G_PI * u2);

  return median * exp (sigma * z);
}

/* 1,000 hosts of 32 or 64 CPUs; VMs of 1-8 vCPUs and 2-32 GiB, CPU use
 * and dirty rates log-normal (most VMs idle-ish, a few hot). Placement
 * spread them evenly by allocation, as the scheduler does; then the load
 * drifted: the VMs of one host in ten got busy (four times the CPU), and
 * the first twentieth of the hosts took twice the VMs (an old placement
 * rule, a failed-over rack). */
static void
build_cluster (const Options *o, SchedBalanceCluster *c)
{
  GRand *r = g_rand_new_with_seed (o->seed);
  double *vcpus_on = g_new0 (double, o->n_hosts);
  double *mem_on = g_new0 (double, o->n_hosts);
  static const guint vcpu_choices[] = { 1, 2, 2, 4, 4, 8 };
  static const double ram_choices[] = { 2, 4, 4, 8, 8, 16, 32 };

  c->n_hosts = o->n_hosts;
  c->hosts = g_new0 (SchedBalanceHost, o->n_hosts);
  c->n_vms = o->n_vms;
  c->vms = g_new0 (SchedBalanceVm, o->n_vms);
  for (guint h = 0; h < o->n_hosts; h++)
    {
      guint cpus = h % 2 ? 64 : 32;

      c->hosts[h] = (SchedBalanceHost){
        .name = "host",
        .cpus = cpus,
        .vcpu_cap = cpus * 4.0,
        .memory_cap = (guint64)(cpus * 8 * GIB),
        .in_service = TRUE,
      };
    }
  for (guint i = 0; i < o->n_vms; i++)
    {
      SchedBalanceVm *vm = &c->vms[i];
      guint vcpus
          = vcpu_choices[g_rand_int_range (r, 0, G_N_ELEMENTS (vcpu_choices))];
      double ram
          = ram_choices[g_rand_int_range (r, 0, G_N_ELEMENTS (ram_choices))];
      double touched = g_rand_double_range (r, 0.3, 1.0);
      guint host;

      /* A full host passes the VM on. */
      host = g_rand_double (r) < o->crowd
                 ? g_rand_int_range (r, 0, MAX (1, o->n_hosts / 20))
                 : g_rand_int_range (r, 0, o->n_hosts);
      while (vcpus_on[host] + vcpus > c->hosts[host].vcpu_cap
             || mem_on[host] + ram * GIB > c->hosts[host].memory_cap)
        host = (host + 1) % o->n_hosts;
      vcpus_on[host] += vcpus;
      mem_on[host] += ram * GIB;
      *vm = (SchedBalanceVm){
        .name = "vm",
        .host = host,
        .vcpus = vcpus,
        .memory = (guint64)(ram * GIB),
        .cpu_cores = MIN (vcpus, vcpus * lognormal (r, 0.2, 0.8)
                                     * (host % 10 == 3 ? 4 : 1)),
        .memory_used = (guint64)(ram * touched * GIB),
        .touched = (guint64)(ram * touched * GIB),
        .dirty_rate = MIN (400e6, lognormal (r, 8e6, 1.2)),
        .movable = TRUE,
      };
    }
  g_free (vcpus_on);
  g_free (mem_on);
  g_rand_free (r);
}

static SchedBalanceCluster
copy_cluster (const SchedBalanceCluster *c)
{
  SchedBalanceCluster d = *c;

  d.hosts = g_memdup2 (c->hosts, sizeof *c->hosts * c->n_hosts);
  d.vms = g_memdup2 (c->vms, sizeof *c->vms * c->n_vms);
  return d;
}

static void
free_cluster (SchedBalanceCluster *c)
{
  g_free (c->hosts);
  g_free (c->vms);
}

static void
params_for (const Options *o, gboolean ignore_cost, SchedBalanceParams *p)
{
  sched_balance_params_init (p);
  p->threshold = o->target;
  p->target = o->target;
  p->min_gain = 1e-6; /* 1,000 hosts: one move changes little */
  p->max_moves = 64;
  p->max_per_host = 2;
  p->bandwidth = o->bandwidth;
  p->ignore_cost = ignore_cost;
}

static void
account (Result *res, const SchedBalanceMove *m)
{
  res->migrations++;
  res->bytes += (double)m->bytes;
  res->seconds += m->cost_s;
}

static void
run_planner (const Options *o, const SchedBalanceCluster *start,
             gboolean ignore_cost, Result *res)
{
  SchedBalanceCluster c = copy_cluster (start);
  SchedBalanceParams p;

  params_for (o, ignore_cost, &p);
  record (res, sched_balance_imbalance (&c));
  for (guint round = 0; round < 10000; round++)
    {
      gint64 t0 = g_get_monotonic_time ();
      g_autoptr (GArray) moves = sched_balance_plan (&c, &p, NULL);
      double ms = (g_get_monotonic_time () - t0) / 1000.0;

      g_array_append_val (res->plan_ms, ms);
      if (moves->len == 0)
        break;
      for (guint i = 0; i < moves->len; i++)
        account (res, &g_array_index (moves, SchedBalanceMove, i));
      sched_balance_apply (&c, moves);
      record (res, sched_balance_imbalance (&c));
    }
  res->final = sched_balance_imbalance (&c);
  free_cluster (&c);
}

/* oVirt-style: over-threshold hosts shed their busiest VM to the least
 * loaded host that stays under the threshold with it. */
static void
run_threshold (const Options *o, const SchedBalanceCluster *start, Result *res)
{
  SchedBalanceCluster c = copy_cluster (start);
  double *cpu = g_new0 (double, c.n_hosts);
  double *vcpus = g_new0 (double, c.n_hosts);
  double *mem = g_new0 (double, c.n_hosts);
  SchedBalanceParams p;
  const double limit = 0.80;

  params_for (o, FALSE, &p);
  for (guint i = 0; i < c.n_vms; i++)
    {
      cpu[c.vms[i].host] += c.vms[i].cpu_cores;
      vcpus[c.vms[i].host] += c.vms[i].vcpus;
      mem[c.vms[i].host] += (double)c.vms[i].memory;
    }
  for (gboolean moved = TRUE; moved;)
    {
      gint64 t0 = g_get_monotonic_time ();
      double ms;

      moved = FALSE;
      for (guint h = 0; h < c.n_hosts; h++)
        {
          guint best_vm = G_MAXUINT, best_to = G_MAXUINT;

          if (cpu[h] / c.hosts[h].cpus <= limit)
            continue;
          for (guint i = 0; i < c.n_vms; i++)
            if (c.vms[i].host == h
                && (best_vm == G_MAXUINT
                    || c.vms[i].cpu_cores > c.vms[best_vm].cpu_cores))
              best_vm = i;
          for (guint t = 0; best_vm != G_MAXUINT && t < c.n_hosts; t++)
            {
              const SchedBalanceVm *vm = &c.vms[best_vm];

              if (t == h || vcpus[t] + vm->vcpus > c.hosts[t].vcpu_cap
                  || mem[t] + (double)vm->memory > c.hosts[t].memory_cap
                  || (cpu[t] + vm->cpu_cores) / c.hosts[t].cpus > limit)
                continue;
              if (best_to == G_MAXUINT
                  || cpu[t] / c.hosts[t].cpus
                         < cpu[best_to] / c.hosts[best_to].cpus)
                best_to = t;
            }
          if (best_to != G_MAXUINT)
            {
              SchedBalanceVm *vm = &c.vms[best_vm];
              MigModelInput in;
              MigModelResult out;
              SchedBalanceMove m = { 0 };

              mig_model_input_init (&in);
              in.ram_bytes = vm->memory;
              in.touched_bytes = vm->touched;
              in.dirty_rate = vm->dirty_rate;
              in.bandwidth = p.bandwidth;
              if (!mig_model_predict (&in, &out, NULL))
                continue;
              m.bytes = out.bytes_wire;
              m.cost_s = out.total_s;
              account (res, &m);
              cpu[h] -= vm->cpu_cores;
              cpu[best_to] += vm->cpu_cores;
              vcpus[h] -= vm->vcpus;
              vcpus[best_to] += vm->vcpus;
              mem[h] -= (double)vm->memory;
              mem[best_to] += (double)vm->memory;
              vm->host = best_to;
              moved = TRUE;
            }
        }
      ms = (g_get_monotonic_time () - t0) / 1000.0;
      g_array_append_val (res->plan_ms, ms);
    }
  res->final = sched_balance_imbalance (&c);
  g_free (cpu);
  g_free (vcpus);
  g_free (mem);
  free_cluster (&c);
}

static gint
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

static double
percentile (GArray *values, double q)
{
  guint i;

  if (values->len == 0)
    return 0;
  g_array_sort (values, cmp_double);
  i = (guint)MIN (values->len - 1, floor (q * values->len));
  return g_array_index (values, double, i);
}

static void
print_result (const Result *r)
{
  printf ("%-11s %10u %10.1f %12.0f %9.4f %10.1f %10.1f\n", r->name,
          r->migrations, r->bytes / GIB, r->seconds, r->final,
          percentile (r->plan_ms, 0.5), percentile (r->plan_ms, 0.99));
}

int
main (int argc, char **argv)
{
  Options o = { .n_hosts = 1000,
                .n_vms = 20000,
                .seed = 1,
                .target = 0.05,
                .crowd = 0.1,
                .bandwidth = 1.25e9 };
  SchedBalanceCluster start = { 0 };
  Result res[3] = { { "drover" }, { "cost-blind" }, { "threshold" } };
  GOptionEntry entries[] = {
    { "hosts", 0, 0, G_OPTION_ARG_INT, &o.n_hosts, "hosts", "N" },
    { "vms", 0, 0, G_OPTION_ARG_INT, &o.n_vms, "VMs", "N" },
    { "seed", 0, 0, G_OPTION_ARG_INT, &o.seed, "random seed", "S" },
    { "target", 0, 0, G_OPTION_ARG_DOUBLE, &o.target, "target imbalance", "X" },
    { "crowd", 0, 0, G_OPTION_ARG_DOUBLE, &o.crowd,
      "share of the VMs crowding the first twentieth of the hosts", "F" },
    { "bandwidth", 0, 0, G_OPTION_ARG_DOUBLE, &o.bandwidth,
      "migration link in bytes a second (default 10 GbE)", "B" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
  g_autoptr (GError) error = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      fprintf (stderr, "bench-balance: %s\n", error->message);
      return 2;
    }
  if (o.n_hosts < 2 || o.n_vms < 1)
    {
      fprintf (stderr, "bench-balance: need 2 hosts and a VM at least\n");
      return 2;
    }
  build_cluster (&o, &start);
  printf ("cluster: %u hosts, %u VMs, imbalance %.4f, target %.4f\n", o.n_hosts,
          o.n_vms, sched_balance_imbalance (&start), o.target);
  for (guint i = 0; i < 3; i++)
    {
      res[i].plan_ms = g_array_new (FALSE, FALSE, sizeof (double));
      res[i].path = g_array_new (FALSE, FALSE, sizeof (Point));
    }
  run_planner (&o, &start, FALSE, &res[0]);
  run_planner (&o, &start, TRUE, &res[1]);
  run_threshold (&o, &start, &res[2]);
  printf ("%-11s %10s %10s %12s %9s %10s %10s\n", "policy", "migrations", "GiB",
          "mig-seconds", "final", "plan-p50ms", "plan-p99ms");
  for (guint i = 0; i < 3; i++)
    print_result (&res[i]);
  {
    /* Like with like: the bytes each needed to reach the imbalance both
     * reached. */
    double level = MAX (res[0].final, res[1].final);
    const Point *d = reached (&res[0], level), *b = reached (&res[1], level);

    if (d && b && b->bytes > 0)
      printf ("to imbalance %.4f (reached by both): drover %.0f GiB in %u "
              "migrations, cost-blind %.0f GiB in %u: bytes %.2fx (target "
              "<= 0.5x)\n",
              level, d->bytes / GIB, d->migrations, b->bytes / GIB,
              b->migrations, d->bytes / b->bytes);
  }
  printf ("drover planning p99: %.1f ms (target < 200 ms)\n",
          percentile (res[0].plan_ms, 0.99));
  for (guint i = 0; i < 3; i++)
    {
      g_array_unref (res[i].plan_ms);
      g_array_unref (res[i].path);
    }
  free_cluster (&start);
  return 0;
}
