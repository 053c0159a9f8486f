/* SchedBalancer: the balancer loop (sched-balancer.c) and what it plans
 * from (sched-balancer-cluster.c). Every interval it builds the planner's
 * cluster (sched-balance.h) from the store and the load window
 * (sched-load.h), plans, and by its mode does nothing (off), keeps the
 * plan for `droverctl balance plan` and status (recommend), or starts the
 * moves through the migrator (auto). Its mode is a setting in the store,
 * so a restart keeps what `droverctl balance mode` chose. Main context
 * only. */
#pragma once

#include "sched-balance.h"
#include "sched-load.h"
#include "sched-private.h"

G_BEGIN_DECLS

typedef enum
{
  SCHED_BALANCE_OFF,
  SCHED_BALANCE_RECOMMEND,
  SCHED_BALANCE_AUTO,
} SchedBalanceMode;

#define SCHED_BALANCE_DEFAULT_INTERVAL_S 60
#define SCHED_BALANCE_DEFAULT_COOLDOWN_S 600
/* The store's setting that keeps the mode across restarts. */
#define SCHED_BALANCE_MODE_SETTING "balance.mode"
/* The event of a move the balancer starts (state running) or that ends
 * (done, failed). */
#define SCHED_EVENT_BALANCE_MOVE "balance.move"

/* "off", "recommend", "auto". */
const char *sched_balance_mode_name (SchedBalanceMode mode);
/* TEXT as a mode; anything else is SCHED_ERROR_INVALID naming the
 * choices. */
gboolean sched_balance_mode_parse (const char *text, SchedBalanceMode *mode,
                                   GError **error);

/* --- the cluster a tick plans on (sched-balancer-cluster.c, pure) ------ */

/* What a tick knows. Rows are borrowed. */
typedef struct
{
  const SchedPolicy *policy;
  GPtrArray *hosts;       /* SchedHost */
  GPtrArray *vms;         /* SchedVm, with the migrator's reservations */
  GPtrArray *jobs;        /* SchedJob: every job the store holds */
  SchedLoad *load;        /* may be NULL: the last reports' figures */
  GHashTable *last_moved; /* VM -> gint64 * (ms): when the balancer last
                           * moved it (may be NULL) */
  gint64 now_ms;
  gint64 cooldown_ms;
} SchedBalanceInput;

/* Fills CLUSTER (its arrays allocated here, names borrowed from IN) with
 * the hosts that are up, and the VMs that use capacity on them: running
 * or paused ones, and those being created or arriving by migration. A VM
 * may move only if it runs, on a host in service, with no job of any kind
 * running on it (migration, snapshot, clone, backup, ...), and not within
 * its cool-down; WHY (may be NULL) gets VM name -> why it may not (static
 * strings; a VM's own row wins over a migration's reservation of it). Hosts
 * down are left out; draining or in maintenance they are counted as out of
 * service (neither source nor destination). A VM with NICs gets the hosts
 * that have all its networks (hosts_ok, as placement filters them; freed
 * by sched_balance_cluster_clear). */
void sched_balance_cluster_build (const SchedBalanceInput *in,
                                  SchedBalanceCluster *cluster,
                                  GHashTable *why);
void sched_balance_cluster_clear (SchedBalanceCluster *cluster);

/* --- the loop (sched-balancer.c) --------------------------------------- */

typedef struct _SchedBalancer SchedBalancer;

/* The balancer of SVC (borrowed) with CONFIG's settings (its mode is the
 * starting one unless the store has another: see sched_balancer_start). */
SchedBalancer *sched_balancer_new (SchedService *svc,
                                   const SchedConfig *config);
void sched_balancer_free (SchedBalancer *b);

/* Reads the mode: CONFIG's if it named one (and stores it), else the
 * stored one, else off. Starts the timer. */
gboolean sched_balancer_start (SchedBalancer *b, GError **error);
void sched_balancer_stop (SchedBalancer *b);

/* Feeds a host's report to the load window. */
void sched_balancer_report (SchedBalancer *b, const Drover__V1__HostInfo *info,
                            Drover__V1__VmStatus *const *vms, gsize n_vms);
/* The load window, for ListHosts (borrowed). */
SchedLoad *sched_balancer_load (SchedBalancer *b);

/* PlanBalance, ApplyBalance, GetBalanceStatus, SetBalanceMode (user data:
 * the SchedService). */
SchedHandler sched_balance_handle_plan;
SchedHandler sched_balance_handle_apply;
SchedHandler sched_balance_handle_status;
SchedHandler sched_balance_handle_mode;

G_END_DECLS
