/* The balancer's planner on synthetic clusters with known answers. */
#include <math.h>
#include <string.h>

#include "sched-balance.h"

#define GIB (1024.0 * 1024 * 1024)

/* Room for small clusters built in each test. */
typedef struct
{
  SchedBalanceHost hosts[16];
  SchedBalanceVm vms[128];
  SchedBalanceRule groups[4];
  SchedBalanceCluster c;
} Fixture;

static void
fixture_init (Fixture *f, guint n_hosts)
{
  memset (f, 0, sizeof *f);
  g_assert_cmpuint (n_hosts, <=, G_N_ELEMENTS (f->hosts));
  for (guint h = 0; h < n_hosts; h++)
    f->hosts[h] = (SchedBalanceHost){
      .name = "h",
      .cpus = 4,
      .vcpu_cap = 16,
      .memory_cap = (guint64)(16 * GIB),
      .in_service = TRUE,
    };
  f->c.hosts = f->hosts;
  f->c.n_hosts = n_hosts;
  f->c.vms = f->vms;
  f->c.groups = f->groups;
}

/* Adds a movable 1-vCPU VM using CPU cores and MEM_GIB of its RAM_GIB. */
static guint
add_vm (Fixture *f, const char *name, guint host, double cpu, double mem_gib,
        double ram_gib, double dirty_rate)
{
  guint i = f->c.n_vms++;

  g_assert_cmpuint (f->c.n_vms, <=, G_N_ELEMENTS (f->vms));
  f->vms[i] = (SchedBalanceVm){
    .name = name,
    .host = host,
    .vcpus = 1,
    .memory = (guint64)(ram_gib * GIB),
    .cpu_cores = cpu,
    .memory_used = (guint64)(mem_gib * GIB),
    .dirty_rate = dirty_rate,
    .movable = TRUE,
  };
  return i;
}

static GArray *
plan (Fixture *f, double *after)
{
  SchedBalanceParams p;

  sched_balance_params_init (&p);
  return sched_balance_plan (&f->c, &p, after);
}

static const SchedBalanceMove *
move_at (GArray *moves, guint i)
{
  g_assert_cmpuint (i, <, moves->len);
  return &g_array_index (moves, SchedBalanceMove, i);
}

/* Two VMs with the same load on a busy host: the one with less RAM (the
 * cheaper migration) goes first, to the idle host. */
static void
test_cheapest_first (void)
{
  Fixture f;
  g_autoptr (GArray) moves = NULL;
  double before, after;
  guint small;

  fixture_init (&f, 2);
  add_vm (&f, "big", 0, 1.5, 1, 8, 1e6);
  small = add_vm (&f, "small", 0, 1.5, 1, 1, 1e6);
  before = sched_balance_imbalance (&f.c);
  moves = plan (&f, &after);
  g_assert_cmpuint (moves->len, >=, 1);
  g_assert_cmpuint (move_at (moves, 0)->vm, ==, small);
  g_assert_cmpuint (move_at (moves, 0)->to, ==, 1);
  g_assert_cmpfloat (after, <, before);
  /* One move already evens out two equal VMs: no second one. */
  g_assert_cmpuint (moves->len, ==, 1);
  g_assert_cmpfloat (move_at (moves, 0)->cost_s, >, 0);
}

/* Same benefit, same RAM: the VM that dirties less memory moves. */
static void
test_hot_vm_passed_over (void)
{
  Fixture f;
  g_autoptr (GArray) moves = NULL;
  guint cool;

  fixture_init (&f, 2);
  add_vm (&f, "hot", 0, 1.5, 1, 2, 60e6);
  cool = add_vm (&f, "cool", 0, 1.5, 1, 2, 1e6);
  moves = plan (&f, NULL);
  g_assert_cmpuint (moves->len, ==, 1);
  g_assert_cmpuint (move_at (moves, 0)->vm, ==, cool);
}

/* Two-VM clusters in which nothing may move: a VM whose migration would
 * never converge stays whatever it gains, and nothing moves while the
 * imbalance is under the threshold. */
static void
test_nothing_moves (void)
{
  static const struct
  {
    guint host_b;
    double cpu_a, cpu_b, dirty_rate;
  } cases[] = {
    { 0, 2, 2, 500e6 },   /* never converges */
    { 1, 0.5, 0.4, 1e6 }, /* under the threshold */
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      Fixture f;
      g_autoptr (GArray) moves = NULL;

      fixture_init (&f, 2);
      add_vm (&f, "a", 0, cases[i].cpu_a, 1, 2, cases[i].dirty_rate);
      add_vm (&f, "b", cases[i].host_b, cases[i].cpu_b, 1, 2,
              cases[i].dirty_rate);
      moves = plan (&f, NULL);
      g_assert_cmpuint (moves->len, ==, 0);
    }
}

/* g1 is the cheapest VM of the busy host and h1 the idlest host, but
 * h1 holds g2 of the same anti-affinity group. */
static void
build_group_case (Fixture *f, SchedBalanceRule rule, guint *g1)
{
  fixture_init (f, 3);
  f->groups[0] = rule;
  f->c.n_groups = 1;
  *g1 = add_vm (f, "g1", 0, 1.5, 1, 1, 1e6);
  add_vm (f, "x1", 0, 1, 1, 4, 1e6);
  add_vm (f, "x2", 0, 1, 1, 4, 1e6);
  f->vms[add_vm (f, "g2", 1, 0.1, 1, 1, 1e6)].group = 1;
  add_vm (f, "y", 2, 1.0, 1, 4, 1e6);
  f->vms[*g1].group = 1;
}

static void
test_anti_affinity (void)
{
  Fixture f;
  g_autoptr (GArray) free_moves = NULL;
  g_autoptr (GArray) moves = NULL;
  guint g1;

  /* Without the rule g1 goes to h1: the case does test the rule. */
  build_group_case (&f, SCHED_BALANCE_RULE_NONE, &g1);
  free_moves = plan (&f, NULL);
  g_assert_cmpuint (move_at (free_moves, 0)->vm, ==, g1);
  g_assert_cmpuint (move_at (free_moves, 0)->to, ==, 1);

  build_group_case (&f, SCHED_BALANCE_RULE_ANTI_AFFINITY, &g1);
  moves = plan (&f, NULL);
  g_assert_cmpuint (moves->len, >=, 1);
  for (guint i = 0; i < moves->len; i++)
    g_assert_false (move_at (moves, i)->vm == g1
                    && move_at (moves, i)->to == 1);
  sched_balance_apply (&f.c, moves);
  g_assert_cmpuint (f.vms[g1].host, !=, 1);
}

static void
test_affinity (void)
{
  Fixture f;
  g_autoptr (GArray) moves = NULL;
  guint g1;

  build_group_case (&f, SCHED_BALANCE_RULE_AFFINITY, &g1);
  moves = plan (&f, NULL);
  for (guint i = 0; i < moves->len; i++)
    g_assert_cmpstr (f.vms[move_at (moves, i)->vm].name, !=, "g1");
  g_assert_cmpuint (moves->len, >=, 1);
}

/* The idle host has no memory left for the VM: it goes elsewhere. */
static void
test_capacity (void)
{
  Fixture f;
  g_autoptr (GArray) moves = NULL;

  fixture_init (&f, 3);
  add_vm (&f, "a", 0, 2, 1, 2, 1e6);
  add_vm (&f, "b", 0, 2, 1, 2, 1e6);
  add_vm (&f, "c", 2, 1, 1, 2, 1e6);
  f.hosts[1].memory_cap = (guint64)(1 * GIB);
  moves = plan (&f, NULL);
  g_assert_cmpuint (moves->len, >=, 1);
  for (guint i = 0; i < moves->len; i++)
    g_assert_cmpuint (move_at (moves, i)->to, !=, 1);
}

/* VMs with NICs move only to hosts that have all their networks
 * (hosts_ok): the idle host lacks a bridge, so one of them goes to the
 * host that has it, not there; with no such host, they stay (issue 13). */
static void
test_networks (void)
{
  Fixture f;
  g_autoptr (GArray) moves = NULL;
  g_autoptr (GArray) none = NULL;
  const gboolean only_h2[] = { TRUE, FALSE, TRUE };
  const gboolean nowhere[] = { TRUE, FALSE, FALSE };

  fixture_init (&f, 3);
  add_vm (&f, "a", 0, 2, 1, 2, 1e6);
  add_vm (&f, "b", 0, 2, 1, 2, 1e6);
  add_vm (&f, "c", 2, 1, 1, 2, 1e6);
  f.vms[0].hosts_ok = f.vms[1].hosts_ok = only_h2;
  moves = plan (&f, NULL);
  g_assert_cmpuint (moves->len, >=, 1);
  g_assert_cmpuint (move_at (moves, 0)->vm, <=, 1);
  for (guint i = 0; i < moves->len; i++)
    if (move_at (moves, i)->vm <= 1)
      g_assert_cmpuint (move_at (moves, i)->to, ==, 2);

  f.vms[0].hosts_ok = f.vms[1].hosts_ok = nowhere;
  none = plan (&f, NULL);
  for (guint i = 0; i < none->len; i++)
    g_assert_cmpuint (move_at (none, i)->vm, ==, 2);
}

/* Pinned VMs and hosts out of service take no part. */
static void
test_unmovable_and_out_of_service (void)
{
  Fixture f;
  g_autoptr (GArray) moves = NULL;

  fixture_init (&f, 3);
  add_vm (&f, "a", 0, 2, 1, 2, 1e6);
  add_vm (&f, "b", 0, 2, 1, 2, 1e6);
  f.vms[0].movable = FALSE;
  f.hosts[1].in_service = FALSE; /* draining: never a target */
  add_vm (&f, "c", 2, 0.2, 1, 2, 1e6);
  moves = plan (&f, NULL);
  g_assert_cmpuint (moves->len, ==, 1);
  g_assert_cmpuint (move_at (moves, 0)->vm, ==, 1);
  g_assert_cmpuint (move_at (moves, 0)->to, ==, 2);
}

/* 200 rounds of a noisy cluster, balanced every round with a cool-down
 * of 10 rounds after each move: it settles, and no VM ever goes back to
 * a host it left (no ping-pong). */
static void
test_simulation_no_ping_pong (void)
{
  Fixture f;
  double base[60];
  guint cooling[60] = { 0 }, left[60], moves_total = 0, late_moves = 0;
  GRand *rand = g_rand_new_with_seed (7);

  fixture_init (&f, 8);
  for (guint i = 0; i < 60; i++)
    {
      base[i] = g_rand_double_range (rand, 0.05, 0.6);
      add_vm (&f, "v", i % 3, base[i], g_rand_double_range (rand, 0.2, 1.5), 2,
              g_rand_double_range (rand, 1e5, 2e7));
      left[i] = G_MAXUINT;
    }
  for (guint round = 0; round < 200; round++)
    {
      g_autoptr (GArray) moves = NULL;

      for (guint i = 0; i < 60; i++)
        {
          /* +-15 % noise around each VM's own level. */
          f.vms[i].cpu_cores = base[i] * g_rand_double_range (rand, 0.85, 1.15);
          f.vms[i].movable = cooling[i] == 0;
          if (cooling[i] > 0)
            cooling[i]--;
        }
      moves = plan (&f, NULL);
      for (guint m = 0; m < moves->len; m++)
        {
          const SchedBalanceMove *mv = move_at (moves, m);

          g_assert_cmpuint (mv->to, !=, left[mv->vm]);
          left[mv->vm] = mv->from;
          cooling[mv->vm] = 10;
        }
      sched_balance_apply (&f.c, moves);
      moves_total += moves->len;
      if (round >= 50)
        late_moves += moves->len;
    }
  g_test_message ("%u moves, %u after round 50, imbalance %.3f", moves_total,
                  late_moves, sched_balance_imbalance (&f.c));
  g_assert_cmpuint (moves_total, >, 0);
  g_assert_cmpfloat (sched_balance_imbalance (&f.c), <=, 0.10);
  /* Settled: noise alone no longer moves anything. */
  g_assert_cmpuint (late_moves, ==, 0);
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/balance/cheapest-first", test_cheapest_first);
  g_test_add_func ("/balance/hot-vm-passed-over", test_hot_vm_passed_over);
  g_test_add_func ("/balance/nothing-moves", test_nothing_moves);
  g_test_add_func ("/balance/anti-affinity", test_anti_affinity);
  g_test_add_func ("/balance/affinity", test_affinity);
  g_test_add_func ("/balance/capacity", test_capacity);
  g_test_add_func ("/balance/networks", test_networks);
  g_test_add_func ("/balance/unmovable-and-out-of-service",
                   test_unmovable_and_out_of_service);
  g_test_add_func ("/balance/simulation-no-ping-pong",
                   test_simulation_no_ping_pong);
  return g_test_run ();
}
