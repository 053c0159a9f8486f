/* The balancer loop (see sched-balancer.h).
 *
 * One timer, once a second, follows the moves in flight (each a migration
 * job: when it ends, its measured time is recorded next to the predicted
 * one, and the balance job that started it ends with its last move) and,
 * once an interval, runs a tick: it builds the cluster, measures the
 * imbalance (kept in a short history and the drover_scheduler_imbalance
 * gauge) and plans. In recommend mode the plan is kept for status; in
 * auto mode its moves start, unless moves of an earlier plan are still
 * under way (a plan made on a cluster in motion would count the VMs
 * in flight twice). ApplyBalance does what an auto tick does, once. */
#include "sched-balancer.h"
#include "sched-balancer-private.h"

#include <string.h>

#define BALANCE_TICK_MS 1000
/* Ticks and moves kept for status. */
#define BALANCE_HISTORY 60
#define BALANCE_MOVES_KEPT 50

static void
move_free (Move *m)
{
  g_free (m->vm);
  g_free (m->from);
  g_free (m->to);
  g_free (m->job_id);
  g_free (m->error);
}

static void
move_unref (gpointer m)
{
  g_rc_box_release_full (m, (GDestroyNotify)move_free);
}

static void
held_clear (Held *h)
{
  g_free (h->vm);
  g_free (h->host);
}

static gint
held_by_name (gconstpointer a, gconstpointer b)
{
  return strcmp (((const Held *)a)->vm, ((const Held *)b)->vm);
}

void
sched_balancer_plan_free (Plan *plan)
{
  g_ptr_array_unref (plan->moves);
  g_array_unref (plan->held);
  g_free (plan->note);
  g_free (plan);
}

static void
apply_free (gpointer data)
{
  Apply *a = data;

  sched_job_free (a->job);
  g_ptr_array_unref (a->moves);
  g_free (a);
}

const char *
sched_balance_mode_name (SchedBalanceMode mode)
{
  static const char *const names[] = { "off", "recommend", "auto" };

  return names[mode];
}

gboolean
sched_balance_mode_parse (const char *text, SchedBalanceMode *mode,
                          GError **error)
{
  for (SchedBalanceMode m = SCHED_BALANCE_OFF; m <= SCHED_BALANCE_AUTO; m++)
    if (g_strcmp0 (text, sched_balance_mode_name (m)) == 0)
      {
        *mode = m;
        return TRUE;
      }
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "balance mode '%s': must be off, recommend or auto",
               text ? text : "");
  return FALSE;
}

SchedBalancer *
sched_balancer_new (SchedService *svc, const SchedConfig *config)
{
  static const char *const result[] = { "result", NULL };
  SchedBalancer *b = g_new0 (SchedBalancer, 1);
  SchedBalanceParams defaults;
  ProtoMetrics *registry = sched_metrics_registry (svc->metrics);

  sched_balance_params_init (&defaults);
  b->svc = svc;
  b->mode_given
      = config->balance_mode != NULL
        && sched_balance_mode_parse (config->balance_mode, &b->mode, NULL);
  b->interval_s = config->balance_interval_s ? config->balance_interval_s
                                             : SCHED_BALANCE_DEFAULT_INTERVAL_S;
  b->threshold = config->balance_threshold > 0 ? config->balance_threshold
                                               : defaults.threshold;
  b->cooldown_ms = 1000
                   * (gint64)(config->balance_cooldown_s
                                  ? config->balance_cooldown_s
                                  : SCHED_BALANCE_DEFAULT_COOLDOWN_S);
  b->link_bandwidth = config->link_bandwidth ? (double)config->link_bandwidth
                                             : SCHED_DEFAULT_LINK_BANDWIDTH;
  b->load = sched_load_new (0);
  b->last_moved
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  b->history = g_array_new (FALSE, FALSE, sizeof (Tick));
  b->moves = g_ptr_array_new_with_free_func (move_unref);
  b->applies = g_ptr_array_new_with_free_func (apply_free);
  b->imbalance_gauge = proto_metrics_declare (
      registry, "drover_scheduler_imbalance",
      "How unevenly the hosts in service are loaded (0 = evenly): the "
      "balancer's measure at its last tick",
      PROTO_METRIC_GAUGE, NULL, NULL, 0);
  b->moves_total = proto_metrics_declare (
      registry, "drover_balance_moves_total",
      "Moves the balancer made that ended, by result (done, failed)",
      PROTO_METRIC_COUNTER, result, NULL, 0);
  proto_metric_add (b->moves_total, (const char *const[]){ PROTO_JOB_DONE }, 0);
  proto_metric_add (b->moves_total, (const char *const[]){ PROTO_JOB_FAILED },
                    0);
  return b;
}

void
sched_balancer_stop (SchedBalancer *b)
{
  if (b->timer != NULL)
    {
      g_source_destroy (b->timer);
      g_source_unref (g_steal_pointer (&b->timer));
    }
}

void
sched_balancer_free (SchedBalancer *b)
{
  if (b == NULL)
    return;
  sched_balancer_stop (b);
  sched_load_free (b->load);
  g_hash_table_unref (b->last_moved);
  g_array_unref (b->history);
  g_ptr_array_unref (b->moves);
  g_ptr_array_unref (b->applies);
  g_clear_pointer (&b->plan, sched_balancer_plan_free);
  g_free (b);
}

void
sched_balancer_report (SchedBalancer *b, const Drover__V1__HostInfo *info,
                       Drover__V1__VmStatus *const *vms, gsize n_vms)
{
  sched_load_report (b->load, sched_registry_now (b->svc->registry), info, vms,
                     n_vms);
}

SchedLoad *
sched_balancer_load (SchedBalancer *b)
{
  return b->load;
}

/* --- planning ------------------------------------------------------------ */

/* The VMs of CLUSTER that WHY says may not move, into PLAN->held. */
static void
plan_held (Plan *plan, const SchedBalanceCluster *cluster, GHashTable *why)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  plan->held = g_array_new (FALSE, FALSE, sizeof (Held));
  g_array_set_clear_func (plan->held, (GDestroyNotify)held_clear);
  for (guint i = 0; i < cluster->n_vms; i++)
    {
      const SchedBalanceVm *vm = &cluster->vms[i];
      Held h;

      if (vm->movable || !g_hash_table_add (seen, (gpointer)vm->name))
        continue;
      h.vm = g_strdup (vm->name);
      h.host = g_strdup (cluster->hosts[vm->host].name);
      h.reason = g_hash_table_lookup (why, vm->name);
      g_array_append_val (plan->held, h);
    }
  g_array_sort (plan->held, held_by_name);
}

/* A plan of the cluster as it is now; NULL with ERROR if the store fails. */
Plan *
sched_balancer_plan_now (SchedBalancer *b, GError **error)
{
  SchedService *svc = b->svc;
  g_autoptr (GPtrArray) hosts = NULL, vms = NULL, jobs = NULL;
  g_autoptr (GArray) planned = NULL;
  g_autoptr (GHashTable) why = g_hash_table_new (g_str_hash, g_str_equal);
  SchedBalanceInput in = { 0 };
  SchedBalanceCluster cluster;
  SchedBalanceParams params;
  double setup_s, after;
  Plan *plan;

  if ((hosts = sched_store_list_hosts (svc->store, error)) == NULL
      || (vms = sched_store_list_vms (svc->store, NULL, error)) == NULL
      || (jobs = sched_store_list_jobs (svc->store, error)) == NULL)
    return NULL;
  sched_migrator_add_reservations (svc->migrator, vms);
  in = (SchedBalanceInput){ .policy = &svc->policy,
                            .hosts = hosts,
                            .vms = vms,
                            .jobs = jobs,
                            .load = b->load,
                            .last_moved = b->last_moved,
                            .now_ms = sched_registry_now (svc->registry),
                            .cooldown_ms = b->cooldown_ms };
  sched_balance_cluster_build (&in, &cluster, why);
  sched_balance_params_init (&params);
  /* A threshold below the defaults' target or gain would never plan, or
   * never stop: scale them with it. */
  params.threshold = b->threshold;
  params.target = MIN (params.target, b->threshold / 2);
  params.min_gain = MIN (params.min_gain, b->threshold / 4);
  sched_migration_learn_link (jobs, b->link_bandwidth, &params.bandwidth,
                              &setup_s);
  params.setup_ms = (guint32)(setup_s * 1000);
  planned = sched_balance_plan (&cluster, &params, &after);

  plan = g_new0 (Plan, 1);
  plan->moves = g_ptr_array_new_with_free_func (move_unref);
  plan->before = sched_balance_imbalance (&cluster);
  plan->after = after;
  plan->time_ms = in.now_ms;
  plan_held (plan, &cluster, why);
  for (guint i = 0; i < planned->len; i++)
    {
      const SchedBalanceMove *pm
          = &g_array_index (planned, SchedBalanceMove, i);
      Move *m = g_rc_box_new0 (Move);

      m->vm = g_strdup (cluster.vms[pm->vm].name);
      m->from = g_strdup (cluster.hosts[pm->from].name);
      m->to = g_strdup (cluster.hosts[pm->to].name);
      m->benefit = pm->gain;
      m->predicted_s = pm->cost_s;
      m->predicted_bytes = pm->bytes;
      m->predicted_downtime_ms = pm->downtime_ms;
      m->result = "";
      g_ptr_array_add (plan->moves, m);
    }
  if (planned->len == 0)
    plan->note = plan->before <= b->threshold
                     ? g_strdup_printf ("imbalance %.3f is at or below the "
                                        "threshold %.3f",
                                        plan->before, b->threshold)
                     : g_strdup_printf ("imbalance %.3f is above the threshold "
                                        "%.3f, but no move that may be made "
                                        "lowers it enough",
                                        plan->before, b->threshold);
  sched_balance_cluster_clear (&cluster);
  return plan;
}

/* --- moves in flight ----------------------------------------------------- */

static void
move_end (SchedBalancer *b, Move *m, const char *result, const char *error)
{
  SchedService *svc = b->svc;

  m->result = result;
  g_free (m->error);
  m->error = g_strdup (error ? error : "");
  proto_metric_add (b->moves_total, (const char *const[]){ result }, 1);
  sched_events_emit (svc->events, SCHED_EVENT_BALANCE_MOVE, m->vm, m->to,
                     result, "running",
                     "balancer: %s -> %s %s%s%s (predicted %.1f s, measured "
                     "%.1f s)",
                     m->from, m->to, result, error ? ": " : "",
                     error ? error : "", m->predicted_s, m->measured_s);
}

/* Looks at M's migration job: ended -> done or failed, with its time. */
static void
move_follow (SchedBalancer *b, Move *m)
{
  SchedService *svc = b->svc;
  const SchedJob *live = sched_migrator_find (svc->migrator, m->vm);
  g_autoptr (SchedJob) job = NULL;

  if (strcmp (m->result, PROTO_JOB_RUNNING) != 0
      || (live != NULL && strcmp (live->id, m->job_id) == 0))
    return;
  job = sched_store_get_job (svc->store, m->job_id, NULL);
  if (job == NULL)
    {
      move_end (b, m, PROTO_JOB_FAILED, "its migration job is gone");
      return;
    }
  if (!proto_job_state_is_final (job->state))
    return; /* the store lags the migrator by a moment */
  m->measured_s = job->migration && job->migration->total_s > 0
                      ? job->migration->total_s
                      : (job->updated_ms - job->created_ms) / 1000.0;
  if (strcmp (job->state, PROTO_JOB_DONE) == 0)
    move_end (b, m, PROTO_JOB_DONE, NULL);
  else
    move_end (b, m, PROTO_JOB_FAILED, job->error[0] ? job->error : "failed");
}

/* "vm a host1 -> host2 (job X); ..." for A's moves. */
static char *
apply_text (const Apply *a)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < a->moves->len; i++)
    {
      const Move *m = a->moves->pdata[i];

      g_string_append_printf (out, "%sVM %s %s -> %s ", out->len ? "; " : "",
                              m->vm, m->from, m->to);
      if (m->job_id != NULL)
        g_string_append_printf (out, "(job %s, %s)", m->job_id, m->result);
      else
        g_string_append_printf (out, "(not started: %s)", m->error);
    }
  return g_string_free (out, FALSE);
}

/* Updates A's job; TRUE once every move of it has ended. */
static gboolean
apply_follow (SchedBalancer *b, Apply *a)
{
  guint over = 0, failed = 0;
  g_autofree char *text = apply_text (a);
  g_autofree char *msg = NULL;

  for (guint i = 0; i < a->moves->len; i++)
    {
      const Move *m = a->moves->pdata[i];

      over += strcmp (m->result, PROTO_JOB_RUNNING) != 0;
      failed += strcmp (m->result, PROTO_JOB_FAILED) == 0;
    }
  msg = g_strdup_printf ("%u of %u move(s) over: %s", over, a->moves->len,
                         text);
  if (over < a->moves->len)
    {
      if (g_strcmp0 (msg, a->job->message) != 0)
        sched_jobs_set (b->svc->jobs, a->job, PROTO_JOB_RUNNING,
                        (double)over / a->moves->len, msg, NULL);
      return FALSE;
    }
  sched_jobs_set (
      b->svc->jobs, a->job, failed ? PROTO_JOB_FAILED : PROTO_JOB_DONE, 1.0,
      msg, failed ? "some moves failed; their VMs stay where they were" : NULL);
  return TRUE;
}

/* Starts PLAN's moves: a balance job (returned, a copy the caller frees)
 * whose message lists their migration jobs. Each VM that was asked to
 * move cools down, whether it moved or not. */
SchedJob *
sched_balancer_apply_plan (SchedBalancer *b, Plan *plan)
{
  SchedService *svc = b->svc;
  Drover__V1__MigrationParams params = DROVER__V1__MIGRATION_PARAMS__INIT;
  gint64 now = sched_registry_now (svc->registry);
  Apply *a = g_new0 (Apply, 1);

  /* What the planner priced must hold: no migration that would not
   * converge. */
  params.strict = TRUE;
  a->job = sched_job_new (PROTO_JOB_KIND_BALANCE, "", PROTO_JOB_RUNNING, now);
  a->moves = g_ptr_array_new_with_free_func (move_unref);
  for (guint i = 0; i < plan->moves->len; i++)
    {
      Move *m = plan->moves->pdata[i];
      g_autoptr (SchedJob) job = NULL;
      g_autoptr (GError) error = NULL;

      m->started_ms = now;
      g_hash_table_replace (b->last_moved, g_strdup (m->vm),
                            g_memdup2 (&now, sizeof now));
      if (sched_migrator_submit (svc->migrator, m->vm, m->to, &params, &job,
                                 &error))
        {
          m->job_id = g_strdup (job->id);
          m->result = PROTO_JOB_RUNNING;
          sched_events_emit (svc->events, SCHED_EVENT_BALANCE_MOVE, m->vm,
                             m->to, PROTO_JOB_RUNNING, NULL,
                             "balancer: moving from %s to %s (job %s; benefit "
                             "%.3f, predicted %.1f s)",
                             m->from, m->to, job->id, m->benefit,
                             m->predicted_s);
        }
      else
        move_end (b, m, PROTO_JOB_FAILED, error->message);
      drover_message (m->vm, a->job->id, m->from, "balancer: move to %s: %s",
                      m->to, m->job_id ? m->job_id : error->message);
      g_ptr_array_add (a->moves, g_rc_box_acquire (m));
      g_ptr_array_add (b->moves, g_rc_box_acquire (m));
    }
  while (b->moves->len > BALANCE_MOVES_KEPT)
    g_ptr_array_remove_index (b->moves, 0);
  if (plan->moves->len == 0)
    sched_jobs_set (svc->jobs, a->job, PROTO_JOB_DONE, 1.0, plan->note, NULL);
  else
    sched_jobs_set (svc->jobs, a->job, PROTO_JOB_RUNNING, 0,
                    "starting the moves", NULL);
  if (plan->moves->len == 0 || apply_follow (b, a))
    {
      SchedJob *copy = sched_job_copy (a->job);

      apply_free (a);
      return copy;
    }
  g_ptr_array_add (b->applies, a);
  return sched_job_copy (a->job);
}

/* The balance job in progress, or NULL. */
const SchedJob *
sched_balancer_applying (SchedBalancer *b)
{
  return b->applies->len ? ((Apply *)b->applies->pdata[0])->job : NULL;
}

/* --- the tick ------------------------------------------------------------ */

void
sched_balancer_record (SchedBalancer *b, double imbalance, guint moves)
{
  Tick t = { sched_registry_now (b->svc->registry), imbalance, moves, b->mode };

  g_array_append_val (b->history, t);
  if (b->history->len > BALANCE_HISTORY)
    g_array_remove_index (b->history, 0);
  proto_metric_set (b->imbalance_gauge, NULL, imbalance);
}

static void
balance_tick (SchedBalancer *b)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Plan) plan = NULL;
  g_autoptr (SchedJob) job = NULL;

  if (b->mode == SCHED_BALANCE_OFF)
    return;
  if (b->mode == SCHED_BALANCE_AUTO && sched_balancer_applying (b) != NULL)
    return; /* the next tick plans on the cluster once they have moved */
  plan = sched_balancer_plan_now (b, &error);
  if (plan == NULL)
    {
      g_warning ("balancer: %s", error->message);
      return;
    }
  sched_balancer_record (b, plan->before, plan->moves->len);
  if (b->mode == SCHED_BALANCE_RECOMMEND)
    {
      g_clear_pointer (&b->plan, sched_balancer_plan_free);
      b->plan = g_steal_pointer (&plan);
      return;
    }
  if (plan->moves->len > 0)
    job = sched_balancer_apply_plan (b, plan);
}

static gboolean
timer_cb (gpointer data)
{
  SchedBalancer *b = data;
  gint64 now = g_get_monotonic_time () / 1000;

  for (guint i = 0; i < b->moves->len; i++)
    move_follow (b, b->moves->pdata[i]);
  for (guint i = 0; i < b->applies->len;)
    if (apply_follow (b, b->applies->pdata[i]))
      g_ptr_array_remove_index (b->applies, i);
    else
      i++;
  if (now >= b->next_tick_ms)
    {
      b->next_tick_ms = now + (gint64)b->interval_s * 1000;
      balance_tick (b);
    }
  return G_SOURCE_CONTINUE;
}

gboolean
sched_balancer_start (SchedBalancer *b, GError **error)
{
  SchedStore *store = b->svc->store;
  g_autofree char *stored = NULL;

  if (b->mode_given)
    {
      if (!sched_store_put_setting (store, SCHED_BALANCE_MODE_SETTING,
                                    sched_balance_mode_name (b->mode), error))
        return FALSE;
    }
  else if (!sched_store_get_setting (store, SCHED_BALANCE_MODE_SETTING, &stored,
                                     error))
    return FALSE;
  else if (stored != NULL && !sched_balance_mode_parse (stored, &b->mode, NULL))
    g_warning ("balancer: stored mode '%s' unknown; off", stored);
  g_message (
      "balancer: %s, every %u s, threshold %.3f, cool-down %" G_GINT64_FORMAT
      " s",
      sched_balance_mode_name (b->mode), b->interval_s, b->threshold,
      b->cooldown_ms / 1000);
  /* The first tick after one interval: the load window needs reports. */
  b->next_tick_ms
      = g_get_monotonic_time () / 1000 + (gint64)b->interval_s * 1000;
  b->timer = g_timeout_source_new (BALANCE_TICK_MS);
  g_source_set_callback (b->timer, timer_cb, b, NULL);
  g_source_attach (b->timer, b->svc->ctx);
  return TRUE;
}
