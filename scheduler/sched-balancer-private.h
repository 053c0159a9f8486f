/* Private to the balancer loop (sched-balancer.c) and its RPCs
 * (sched-balancer-rpc.c). */
#pragma once

#include "sched-balancer.h"

G_BEGIN_DECLS

/* A move planned, started or over. Shared by the balancer's list and the
 * balance job that started it (reference counted). */
typedef struct
{
  char *vm, *from, *to;
  double benefit, predicted_s, predicted_downtime_ms, measured_s;
  guint64 predicted_bytes;
  char *job_id;       /* NULL: not started */
  const char *result; /* "", running, done, failed */
  char *error;
  gint64 started_ms;
} Move;

/* A VM a plan could not consider. */
typedef struct
{
  char *vm, *host;
  const char *reason; /* static */
} Held;

/* A plan: its moves and the imbalance before and after. */
typedef struct
{
  GPtrArray *moves; /* Move */
  GArray *held;     /* Held, by VM name */
  double before, after;
  char *note;
  gint64 time_ms;
} Plan;

/* A balance job and the moves it started. */
typedef struct
{
  SchedJob *job;
  GPtrArray *moves; /* Move */
} Apply;

typedef struct
{
  gint64 time_ms;
  double imbalance;
  guint moves;
  SchedBalanceMode mode;
} Tick;

struct _SchedBalancer
{
  SchedService *svc;
  SchedBalanceMode mode;
  gboolean mode_given; /* on the command line: it wins over the store's */
  guint interval_s;
  double threshold;
  gint64 cooldown_ms;
  double link_bandwidth;
  SchedLoad *load;
  GHashTable *last_moved; /* VM -> gint64 * */
  GArray *history;        /* Tick, oldest first */
  GPtrArray *moves;       /* Move, oldest first */
  GPtrArray *applies;     /* Apply, not over */
  Plan *plan;             /* recommend: the last tick's; may be NULL */
  gint64 next_tick_ms;    /* monotonic */
  GSource *timer;
  ProtoMetric *imbalance_gauge, *moves_total;
};

/* Frees PLAN. */
void sched_balancer_plan_free (Plan *plan);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Plan, sched_balancer_plan_free)

/* A plan of the cluster as it is now; NULL with ERROR if the store fails. */
Plan *sched_balancer_plan_now (SchedBalancer *b, GError **error);

/* Starts PLAN's moves: a balance job (returned, a copy the caller frees)
 * whose message lists their migration jobs. Each VM that was asked to
 * move cools down, whether it moved or not. */
SchedJob *sched_balancer_apply_plan (SchedBalancer *b, Plan *plan);

/* The balance job in progress, or NULL. */
const SchedJob *sched_balancer_applying (SchedBalancer *b);

/* Records a tick (or an apply) that measured IMBALANCE and started MOVES
 * moves: the history and the imbalance gauge. */
void sched_balancer_record (SchedBalancer *b, double imbalance, guint moves);

G_END_DECLS
