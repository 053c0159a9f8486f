/* The balancer's RPCs: PlanBalance, ApplyBalance, BalanceStatus and
 * SetBalanceMode (the loop is in sched-balancer.c). */
#include "sched-balancer-private.h"

#include <string.h>

/* A BalanceMove borrowing M's memory. */
static void
move_msg (const Move *m, Drover__V1__BalanceMove *msg)
{
  drover__v1__balance_move__init (msg);
  msg->vm = m->vm;
  msg->from_host = m->from;
  msg->to_host = m->to;
  msg->benefit = m->benefit;
  msg->predicted_s = m->predicted_s;
  msg->predicted_bytes = m->predicted_bytes;
  msg->predicted_downtime_ms = m->predicted_downtime_ms;
  msg->job_id = m->job_id ? m->job_id : (char *)"";
  msg->result = (char *)m->result;
  msg->measured_s = m->measured_s;
  msg->started_ms = m->started_ms;
  msg->error = m->error ? m->error : (char *)"";
}

/* MOVES (Move) as *N_OUT messages in *OUT (an array of pointers into
 * STORAGE, which the caller frees with it). */
static void
moves_msgs (GPtrArray *moves, Drover__V1__BalanceMove **storage,
            Drover__V1__BalanceMove ***out, size_t *n_out)
{
  *storage = g_new0 (Drover__V1__BalanceMove, MAX (moves->len, 1));
  *out = g_new0 (Drover__V1__BalanceMove *, MAX (moves->len, 1));
  for (guint i = 0; i < moves->len; i++)
    {
      move_msg (moves->pdata[i], &(*storage)[i]);
      (*out)[i] = &(*storage)[i];
    }
  *n_out = moves->len;
}

/* A BalancePlan borrowing PLAN's memory; free it with plan_msg_clear. */
static void
plan_msg (const Plan *plan, Drover__V1__BalancePlan *msg,
          Drover__V1__BalanceMove **storage)
{
  drover__v1__balance_plan__init (msg);
  moves_msgs (plan->moves, storage, &msg->moves, &msg->n_moves);
  msg->held = g_new0 (Drover__V1__BalanceHeld *, MAX (plan->held->len, 1));
  for (guint i = 0; i < plan->held->len; i++)
    {
      const Held *h = &g_array_index (plan->held, Held, i);
      Drover__V1__BalanceHeld *out = g_new0 (Drover__V1__BalanceHeld, 1);

      drover__v1__balance_held__init (out);
      out->vm = h->vm;
      out->host = h->host;
      out->reason = (char *)h->reason;
      msg->held[i] = out;
    }
  msg->n_held = plan->held->len;
  msg->imbalance_before = plan->before;
  msg->imbalance_after = plan->after;
  msg->note = plan->note ? plan->note : (char *)"";
  msg->time_ms = plan->time_ms;
}

/* Frees what plan_msg allocated (STORAGE: its moves). */
static void
plan_msg_clear (Drover__V1__BalancePlan *msg, Drover__V1__BalanceMove *storage)
{
  for (size_t i = 0; i < msg->n_held; i++)
    g_free (msg->held[i]);
  g_free (msg->held);
  g_free (msg->moves);
  g_free (storage);
}

void
sched_balance_handle_plan (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (Plan) plan = sched_balancer_plan_now (svc->balancer, &error);
  Drover__V1__BalanceMove *storage = NULL;
  Drover__V1__BalancePlan msg;

  if (plan == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  plan_msg (plan, &msg, &storage);
  proto_server_call_reply (call, &msg.base);
  plan_msg_clear (&msg, storage);
}

void
sched_balance_handle_apply (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  SchedBalancer *b = svc->balancer;
  g_autoptr (GError) error = NULL;
  g_autoptr (Plan) plan = NULL;
  g_autoptr (SchedJob) job = NULL;
  const SchedJob *busy = sched_balancer_applying (b);
  Drover__V1__Job msg;

  if (busy != NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "a balance is in progress (job %s): wait for "
                              "its moves to end",
                              busy->id);
      return;
    }
  plan = sched_balancer_plan_now (b, &error);
  if (plan == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  sched_balancer_record (b, plan->before, plan->moves->len);
  job = sched_balancer_apply_plan (b, plan);
  sched_job_msg (job, &msg);
  proto_server_call_reply (call, &msg.base);
}

static void
reply_status (ProtoServerCall *call, SchedBalancer *b)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Plan) now = sched_balancer_plan_now (b, &error);
  g_autofree Drover__V1__BalanceMove *moves = NULL;
  Drover__V1__BalanceMove *planned = NULL;
  g_autofree Drover__V1__BalanceTick *ticks = NULL;
  g_autofree Drover__V1__BalanceTick **tick_ptrs = NULL;
  Drover__V1__BalanceStatus msg = DROVER__V1__BALANCE_STATUS__INIT;
  Drover__V1__BalancePlan plan;

  if (now == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  msg.mode = (char *)sched_balance_mode_name (b->mode);
  msg.interval_s = b->interval_s;
  msg.threshold = b->threshold;
  msg.cooldown_s = b->cooldown_ms / 1000;
  msg.imbalance = now->before;
  ticks = g_new0 (Drover__V1__BalanceTick, MAX (b->history->len, 1));
  tick_ptrs = g_new0 (Drover__V1__BalanceTick *, MAX (b->history->len, 1));
  for (guint i = 0; i < b->history->len; i++)
    {
      const Tick *t = &g_array_index (b->history, Tick, i);

      drover__v1__balance_tick__init (&ticks[i]);
      ticks[i].time_ms = t->time_ms;
      ticks[i].imbalance = t->imbalance;
      ticks[i].moves = t->moves;
      ticks[i].mode = (char *)sched_balance_mode_name (t->mode);
      tick_ptrs[i] = &ticks[i];
    }
  msg.history = tick_ptrs;
  msg.n_history = b->history->len;
  moves_msgs (b->moves, &moves, &msg.moves, &msg.n_moves);
  if (b->plan != NULL)
    {
      plan_msg (b->plan, &plan, &planned);
      msg.plan = &plan;
    }
  proto_server_call_reply (call, &msg.base);
  g_free (msg.moves);
  if (msg.plan != NULL)
    plan_msg_clear (&plan, planned);
}

void
sched_balance_handle_status (ProtoServerCall *call,
                             const ProtobufCMessage *request,
                             gpointer user_data)
{
  SchedService *svc = user_data;

  reply_status (call, svc->balancer);
}

void
sched_balance_handle_mode (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  SchedBalancer *b = svc->balancer;
  const Drover__V1__SetBalanceModeRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  SchedBalanceMode mode;

  if (!sched_balance_mode_parse (req->mode, &mode, &error)
      || !sched_store_put_setting (svc->store, SCHED_BALANCE_MODE_SETTING,
                                   sched_balance_mode_name (mode), &error))
    {
      sched_call_fail (call, error);
      return;
    }
  if (mode != b->mode)
    drover_message (NULL, NULL, NULL, "balancer: mode %s (was %s)",
                    sched_balance_mode_name (mode),
                    sched_balance_mode_name (b->mode));
  b->mode = mode;
  if (mode != SCHED_BALANCE_RECOMMEND)
    g_clear_pointer (&b->plan, sched_balancer_plan_free);
  /* A new mode acts at the next second's timer, not an interval later. */
  b->next_tick_ms = 0;
  reply_status (call, b);
}
