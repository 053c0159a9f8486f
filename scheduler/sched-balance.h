/* The balancer's planner: which VMs to move where so that the cluster's
 * load evens out, each move priced by the migration cost model. Pure
 * code over plain arrays (no store, no clock, no gRPC), so that the unit
 * tests and the simulation benchmark drive it on synthetic clusters of
 * any size; the scheduler fills the arrays from its store and reports.
 *
 * Imbalance is the measure the dashboard charts (sched_imbalance): the
 * root mean square of the standard deviations, over the hosts in
 * service, of normalised CPU load (cores used / host CPUs) and memory
 * load (bytes used / bytes VMs may use). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* What a placement group asks of its members. */
typedef enum
{
  SCHED_BALANCE_RULE_NONE,
  SCHED_BALANCE_RULE_ANTI_AFFINITY, /* members on different hosts */
  SCHED_BALANCE_RULE_AFFINITY,      /* members together */
} SchedBalanceRule;

typedef struct
{
  const char *name;
  guint cpus;          /* host CPUs: the CPU load's denominator */
  double vcpu_cap;     /* vCPUs it may carry: cpus x the CPU overcommit */
  guint64 memory_cap;  /* bytes VMs may use: total less the reserve */
  gboolean in_service; /* up, not draining, not in maintenance: counted
                        * in the imbalance and may receive VMs */
} SchedBalanceHost;

typedef struct
{
  const char *name;
  guint host;          /* index into the hosts */
  guint vcpus;         /* allocated: what capacity counts */
  guint64 memory;      /* allocated RAM, bytes */
  double cpu_cores;    /* CPU used, in cores, over the load window */
  guint64 memory_used; /* resident bytes, over the load window */
  guint64 touched;     /* RAM that holds data (0: all of it) */
  double dirty_rate;   /* bytes dirtied a second, over the load window */
  gboolean movable;    /* FALSE: stopped, pinned, cooling down after a
                        * move, or a snapshot, backup or migration job
                        * runs on it */
  guint group;         /* 0: none; G: rule groups[G - 1] */
  /* NULL: any host may take it; else one flag per host: it has every
   * network the VM's NICs are on (the VM moves only to those). */
  const gboolean *hosts_ok;
} SchedBalanceVm;

typedef struct
{
  SchedBalanceHost *hosts;
  guint n_hosts;
  SchedBalanceVm *vms;
  guint n_vms;
  const SchedBalanceRule *groups;
  guint n_groups;
} SchedBalanceCluster;

typedef struct
{
  double threshold;   /* plan nothing while the imbalance is at or below */
  double target;      /* stop planning once at or below this */
  double min_gain;    /* a move must lower the imbalance by this much: with
                       * the threshold, what keeps noise from moving VMs */
  guint max_moves;    /* moves in one plan (cluster-wide limit) */
  guint max_per_host; /* moves into or out of one host in one plan */
  guint sources;      /* the most loaded hosts whose VMs are considered */
  guint candidates;   /* the least loaded hosts tried as destinations */
  double bandwidth;   /* link bytes a second, for the cost model */
  guint32 downtime_limit_ms;
  guint32 setup_ms;     /* the fixed cost of any migration (preparing the
                         * destination, starting QEMU): what makes many tiny
                         * moves dearer than one that does the same */
  gboolean ignore_cost; /* the cost-blind policy (a benchmark baseline):
                         * the largest gain, whatever the move costs */
} SchedBalanceParams;

/* Defaults: threshold 0.10, target 0.05, min gain 0.002, 8 moves a plan,
 * 2 per host, 16 sources, 16 candidates, 100 MB/s, 300 ms downtime, 1 s
 * setup. */
void sched_balance_params_init (SchedBalanceParams *params);

typedef struct
{
  guint vm;
  guint from, to;     /* host indices */
  double gain;        /* imbalance before the move less after it */
  double cost_s;      /* the model's migration time */
  guint64 bytes;      /* the model's bytes on the wire */
  double downtime_ms; /* the model's pause */
} SchedBalanceMove;

/* The cluster's imbalance now (0 with fewer than two hosts in service). */
double sched_balance_imbalance (const SchedBalanceCluster *cluster);

/* Plans moves for CLUSTER (left unchanged): greedily, each step the move
 * with the most gain per predicted second (or the most gain, with
 * ignore_cost) among the VMs of the most loaded hosts and the least
 * loaded destinations that have room, offer the VM's networks (hosts_ok)
 * and keep every rule. A VM moves at
 * most once in a plan; one whose migration the model says would not
 * converge never moves; a member of an affinity group is left where its
 * group is. Returns a GArray of SchedBalanceMove (empty: nothing worth
 * doing) and, if AFTER is given, the imbalance once they are made. */
GArray *sched_balance_plan (const SchedBalanceCluster *cluster,
                            const SchedBalanceParams *params, double *after);

/* Makes the MOVES in CLUSTER (each VM's host), as the simulation does. */
void sched_balance_apply (SchedBalanceCluster *cluster, const GArray *moves);

G_END_DECLS
