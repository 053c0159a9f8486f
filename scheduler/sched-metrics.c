/* SchedMetrics: the scheduler's Prometheus series.
 *
 * Counters and histograms grow as things happen (a report, a migration's
 * end); the gauges of how many hosts, VMs and jobs are in each state are
 * the store's own counts (sched_store_count), which follow every write, so
 * a scrape neither lists the store nor drifts from it. The scrape runs in
 * the service's main context, like every other reader of the store, and
 * never waits on an agent.
 */
#include "sched-private.h"

#include <string.h>

#include "proto-http.h"

struct _SchedMetrics
{
  ProtoMetrics *registry;
  ProtoMetric *reports, *hosts, *vms, *jobs, *migrations, *duration, *ratio;
  ProtoMetric *snap_ops, *snap_duration, *schedule_runs;
  ProtoMetric *drills, *drill_recovery;
  ProtoMetric *last_backup;
  GHashTable *last_backup_ms; /* VM name -> gint64 *, newest good backup */
  SchedEvents *events;        /* borrowed, while SINK is subscribed */
  SchedEventsSink *sink;      /* NULL unless watching */
  ProtoHttp *http;     /* main context; NULL until sched_metrics_listen */
  SchedStore *store;   /* borrowed, for the scrape's gauges */
  GPtrArray *job_keys; /* "kind\nstate" of every job_kinds x job_states */
};

/* Migrations take from a second (an idle small guest) to many minutes (a
 * large busy one over a slow link). */
static const double duration_buckets[]
    = { 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800 };

/* Snapshot operations take from a fraction of a second (a disk-only
 * snapshot, a linked clone) to many minutes (a merge, a full copy). */
static const double snap_duration_buckets[]
    = { 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800 };

/* Measured over predicted duration: 1 is a perfect prediction. */
static const double ratio_buckets[]
    = { 0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2, 3, 5, 10 };

/* The states every scrape shows (0 when none), so a state that empties
 * reads 0 rather than vanishing; a state or kind not listed here still
 * shows while something is in it. */
static const char *const host_states[]
    = { PROTO_HOST_UP "\n" SCHED_HOST_IN_SERVICE,
        PROTO_HOST_DOWN "\n" SCHED_HOST_IN_SERVICE };
static const char *const vm_states[]
    = { PROTO_VM_RUNNING,     PROTO_VM_BLOCKED, PROTO_VM_PAUSED,
        PROTO_VM_SHUTDOWN,    PROTO_VM_SHUTOFF, PROTO_VM_CRASHED,
        PROTO_VM_PMSUSPENDED, PROTO_VM_NOSTATE, PROTO_VM_UNKNOWN,
        PROTO_VM_CREATING,    PROTO_VM_MISSING };
static const char *const job_kinds[] = {
  PROTO_JOB_KIND_CREATE,          PROTO_JOB_KIND_DELETE,
  PROTO_JOB_KIND_MIGRATE,         PROTO_JOB_KIND_SNAPSHOT_CREATE,
  PROTO_JOB_KIND_SNAPSHOT_REVERT, PROTO_JOB_KIND_SNAPSHOT_DELETE,
  PROTO_JOB_KIND_CLONE,           PROTO_JOB_KIND_DRAIN,
};
static const char *const snap_ops[]
    = { "create", "revert", "delete", "clone", "template" };
static const char *const drill_results[]
    = { SCHED_DRILL_PASSED, SCHED_DRILL_FAILED, SCHED_DRILL_SKIPPED };
static const char *const mig_results[]
    = { PROTO_MIG_COMPLETED, PROTO_MIG_ABORTED, PROTO_MIG_FAILED };
static const char *const job_states[]
    = { PROTO_JOB_QUEUED, PROTO_JOB_RUNNING, PROTO_JOB_DONE, PROTO_JOB_FAILED };

SchedMetrics *
sched_metrics_new (void)
{
  static const char *const state[] = { "state", NULL };
  static const char *const kind_state[] = { "kind", "state", NULL };
  static const char *const state_service[] = { "state", "service", NULL };
  static const char *const result[] = { "result", NULL };
  static const char *const op_result[] = { "op", "result", NULL };
  static const char *const action_result[] = { "action", "result", NULL };
  static const char *const op[] = { "op", NULL };
  static const char *const vm_label[] = { "vm", NULL };
  SchedMetrics *m = g_new0 (SchedMetrics, 1);

  m->registry = proto_metrics_new ();
  m->reports = proto_metrics_declare (
      m->registry, "drover_scheduler_reports_total",
      "Host reports (ReportHost) the scheduler accepted", PROTO_METRIC_COUNTER,
      NULL, NULL, 0);
  m->hosts = proto_metrics_declare (
      m->registry, "drover_scheduler_hosts",
      "Hosts the scheduler knows, by state (up, down) and service "
      "(in-service, draining, maintenance)",
      PROTO_METRIC_GAUGE, state_service, NULL, 0);
  m->vms = proto_metrics_declare (m->registry, "drover_scheduler_vms",
                                  "VMs the scheduler knows, by state",
                                  PROTO_METRIC_GAUGE, state, NULL, 0);
  m->jobs = proto_metrics_declare (
      m->registry, "drover_scheduler_jobs",
      "Jobs the scheduler holds (finished ones until pruned), by kind and "
      "state",
      PROTO_METRIC_GAUGE, kind_state, NULL, 0);
  m->migrations = proto_metrics_declare (
      m->registry, "drover_migrations_total",
      "Migrations that ended, by result (completed, aborted, failed)",
      PROTO_METRIC_COUNTER, result, NULL, 0);
  m->duration = proto_metrics_declare (
      m->registry, "drover_migration_duration_seconds",
      "Duration of completed migrations, as their source measured it",
      PROTO_METRIC_HISTOGRAM, NULL, duration_buckets,
      G_N_ELEMENTS (duration_buckets));
  m->ratio = proto_metrics_declare (
      m->registry, "drover_migration_duration_predicted_ratio",
      "Measured over predicted duration of completed migrations (1 = the "
      "cost model was right)",
      PROTO_METRIC_HISTOGRAM, NULL, ratio_buckets,
      G_N_ELEMENTS (ratio_buckets));
  m->snap_ops = proto_metrics_declare (
      m->registry, "drover_snapshot_operations_total",
      "Snapshot, clone and template operations that ended, by op (create, "
      "revert, delete, clone, template) and result (done, failed)",
      PROTO_METRIC_COUNTER, op_result, NULL, 0);
  m->snap_duration = proto_metrics_declare (
      m->registry, "drover_snapshot_operation_duration_seconds",
      "Duration of snapshot, clone and template operations that succeeded, "
      "by op, from the scheduler's call to the agent's final answer",
      PROTO_METRIC_HISTOGRAM, op, snap_duration_buckets,
      G_N_ELEMENTS (snap_duration_buckets));
  m->schedule_runs = proto_metrics_declare (
      m->registry, "drover_schedule_runs_total",
      "Runs of disaster-recovery schedules that ended, by action (snapshot, "
      "backup) and result (done, failed; each failed attempt counts)",
      PROTO_METRIC_COUNTER, action_result, NULL, 0);
  m->drills = proto_metrics_declare (
      m->registry, "drover_schedule_drills_total",
      "Restore drills that ended, by result (passed, failed, skipped)",
      PROTO_METRIC_COUNTER, result, NULL, 0);
  m->drill_recovery = proto_metrics_declare (
      m->registry, "drover_schedule_drill_recovery_seconds",
      "Measured recovery time of the restore drills that passed: from the "
      "restore's start to the scratch VM's readiness line",
      PROTO_METRIC_HISTOGRAM, NULL, duration_buckets,
      G_N_ELEMENTS (duration_buckets));
  m->last_backup = proto_metrics_declare (
      m->registry, "drover_vm_last_backup_timestamp_seconds",
      "When the VM's newest good backup began (its data is from then), in "
      "seconds since the epoch; no series for a VM without one",
      PROTO_METRIC_GAUGE, vm_label, NULL, 0);
  m->last_backup_ms
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  for (gsize i = 0; i < G_N_ELEMENTS (drill_results); i++)
    proto_metric_add (m->drills, (const char *const[]){ drill_results[i] }, 0);
  /* Counters start at 0 rather than appearing with the first event. */
  for (gsize i = 0; i < G_N_ELEMENTS (snap_ops); i++)
    {
      proto_metric_add (
          m->snap_ops, (const char *const[]){ snap_ops[i], PROTO_JOB_DONE }, 0);
      proto_metric_add (m->snap_ops,
                        (const char *const[]){ snap_ops[i], PROTO_JOB_FAILED },
                        0);
    }
  proto_metric_add (m->reports, NULL, 0);
  for (gsize i = 0; i < G_N_ELEMENTS (mig_results); i++)
    proto_metric_add (m->migrations, (const char *const[]){ mig_results[i] },
                      0);
  m->job_keys = g_ptr_array_new_with_free_func (g_free);
  for (gsize k = 0; k < G_N_ELEMENTS (job_kinds); k++)
    for (gsize s = 0; s < G_N_ELEMENTS (job_states); s++)
      g_ptr_array_add (m->job_keys,
                       g_strconcat (job_kinds[k], "\n", job_states[s], NULL));
  return m;
}

void
sched_metrics_free (SchedMetrics *m)
{
  sched_metrics_stop (m);
  g_hash_table_unref (m->last_backup_ms);
  proto_metrics_free (m->registry);
  g_ptr_array_unref (m->job_keys);
  g_free (m);
}

ProtoMetrics *
sched_metrics_registry (SchedMetrics *m)
{
  return m->registry;
}

void
sched_metrics_report (SchedMetrics *m)
{
  proto_metric_add (m->reports, NULL, 1);
}

/* --- snapshots ----------------------------------------------------------- */

void
sched_metrics_schedule_run (SchedMetrics *m, const char *action, gboolean ok)
{
  proto_metric_add (
      m->schedule_runs,
      (const char *const[]){ action, ok ? PROTO_JOB_DONE : PROTO_JOB_FAILED },
      1);
}

void
sched_metrics_schedule_drill (SchedMetrics *m, const char *result,
                              double recovery_s)
{
  proto_metric_add (m->drills, (const char *const[]){ result }, 1);
  if (strcmp (result, SCHED_DRILL_PASSED) == 0)
    proto_metric_observe (m->drill_recovery, NULL, recovery_s);
}

void
sched_metrics_snapshot_op (SchedMetrics *m, const char *op, gboolean ok,
                           double seconds)
{
  proto_metric_add (
      m->snap_ops,
      (const char *const[]){ op, ok ? PROTO_JOB_DONE : PROTO_JOB_FAILED }, 1);
  /* Like migrations: a failure's time says when it failed. */
  if (ok)
    proto_metric_observe (m->snap_duration, (const char *const[]){ op },
                          seconds);
}

/* --- migrations ---------------------------------------------------------- */

const char *
sched_metrics_migration_result (const SchedJob *job, gboolean ok)
{
  if (ok)
    return PROTO_MIG_COMPLETED;
  if (job->migration != NULL
      && g_strcmp0 (job->migration->phase, PROTO_MIG_ABORTED) == 0)
    return PROTO_MIG_ABORTED;
  return PROTO_MIG_FAILED;
}

void
sched_metrics_migration_end (SchedMetrics *m, const SchedJob *job, gboolean ok)
{
  const char *result = sched_metrics_migration_result (job, ok);
  double measured;

  proto_metric_add (m->migrations, (const char *const[]){ result }, 1);
  /* Durations only of migrations that completed: a failure's time says
   * when it failed, not how long moving the VM takes. */
  if (!ok || job->migration == NULL || job->migration->total_s <= 0)
    return;
  measured = job->migration->total_s;
  proto_metric_observe (m->duration, NULL, measured);
  if (job->prediction != NULL && job->prediction->total_s > 0)
    proto_metric_observe (m->ratio, NULL, measured / job->prediction->total_s);
}

/* --- the newest good backup of each VM -------------------------------------
 *
 * From the scheduler's records: its backup jobs that succeeded, those in
 * the store when the watch begins, then each that ends (job.ended on the
 * event stream). A VM that is deleted loses its series. Pruning old jobs
 * does not take a series away while the process lives.
 */

void
sched_metrics_backup_done (SchedMetrics *m, const char *vm, gint64 began_ms)
{
  gint64 *known;

  if (vm == NULL || *vm == '\0' || began_ms <= 0)
    return;
  known = g_hash_table_lookup (m->last_backup_ms, vm);
  if (known != NULL && *known >= began_ms)
    return;
  if (known == NULL)
    {
      known = g_new (gint64, 1);
      g_hash_table_insert (m->last_backup_ms, g_strdup (vm), known);
    }
  *known = began_ms;
  proto_metric_set (m->last_backup, (const char *const[]){ vm },
                    began_ms / 1000.0);
}

void
sched_metrics_vm_gone (SchedMetrics *m, const char *vm)
{
  if (vm == NULL || !g_hash_table_remove (m->last_backup_ms, vm))
    return;
  proto_metric_remove (m->last_backup, (const char *const[]){ vm });
}

static gboolean
watch_send (gpointer target, const Drover__V1__Event *event)
{
  SchedMetrics *m = target;
  const Drover__V1__Job *job = event->job;

  if (g_strcmp0 (event->kind, SCHED_EVENT_VM_DELETED) == 0)
    sched_metrics_vm_gone (m, event->vm);
  else if (g_strcmp0 (event->kind, SCHED_EVENT_JOB_ENDED) == 0 && job != NULL
           && g_strcmp0 (job->kind, PROTO_JOB_KIND_BACKUP) == 0
           && g_strcmp0 (job->state, PROTO_JOB_DONE) == 0)
    sched_metrics_backup_done (m, job->vm, job->created_ms);
  return TRUE;
}

static guint
watch_queued (gpointer target)
{
  return 0; /* handled as it comes: never behind */
}

static void
watch_finish (gpointer target, gboolean dropped)
{
  SchedMetrics *m = target;

  m->sink = NULL;
  m->events = NULL;
}

static const SchedEventsSinkOps watch_ops = {
  watch_send,
  watch_queued,
  watch_finish,
};

gboolean
sched_metrics_watch (SchedMetrics *m, SchedStore *store, SchedEvents *events,
                     GError **error)
{
  g_autoptr (GPtrArray) jobs = sched_store_list_jobs (store, error);

  g_return_val_if_fail (m->sink == NULL, FALSE);
  if (jobs == NULL)
    return FALSE;
  for (guint i = 0; i < jobs->len; i++)
    {
      const SchedJob *job = jobs->pdata[i];

      if (strcmp (job->kind, PROTO_JOB_KIND_BACKUP) == 0
          && strcmp (job->state, PROTO_JOB_DONE) == 0)
        sched_metrics_backup_done (m, job->vm, job->created_ms);
    }
  /* No backlog: the store had every job that ended before now. */
  m->sink = sched_events_subscribe (events, &watch_ops, m, 0);
  m->events = m->sink ? events : NULL;
  return TRUE;
}

/* --- gauges from the store's counts -------------------------------------- */

/* The gauge of TABLE becomes COUNTS (sched_store_count's keys: the label
 * values, joined by '\n' for two labels), with the keys every scrape
 * shows at 0 when nothing is in them. Series of other keys go. */
static void
gauge_apply (SchedMetrics *m, SchedTable table, GHashTable *counts)
{
  ProtoMetric *metric;
  const char *const *always;
  gsize n_always;
  GHashTableIter iter;
  gpointer key, value;

  switch (table)
    {
    case SCHED_TABLE_HOSTS:
      metric = m->hosts;
      always = host_states;
      n_always = G_N_ELEMENTS (host_states);
      break;
    case SCHED_TABLE_VMS:
      metric = m->vms;
      always = vm_states;
      n_always = G_N_ELEMENTS (vm_states);
      break;
    case SCHED_TABLE_JOBS:
      metric = m->jobs;
      always = (const char *const *)m->job_keys->pdata;
      n_always = m->job_keys->len;
      break;
    default:
      g_return_if_reached ();
    }
  proto_metric_remove (metric, NULL);
  for (gsize i = 0; i < n_always; i++)
    if (!g_hash_table_contains (counts, always[i]))
      {
        g_auto (GStrv) labels = g_strsplit (always[i], "\n", 2);

        proto_metric_set (metric, (const char *const *)labels, 0);
      }
  g_hash_table_iter_init (&iter, counts);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      g_auto (GStrv) labels = g_strsplit (key, "\n", 2);

      proto_metric_set (metric, (const char *const *)labels,
                        GPOINTER_TO_UINT (value));
    }
}

void
sched_metrics_refresh (SchedMetrics *m, GPtrArray *hosts, GPtrArray *vms,
                       GPtrArray *jobs)
{
  GPtrArray *rows[] = { [SCHED_TABLE_HOSTS] = hosts,
                        [SCHED_TABLE_VMS] = vms,
                        [SCHED_TABLE_JOBS] = jobs };

  for (SchedTable t = 0; t < G_N_ELEMENTS (rows); t++)
    if (rows[t] != NULL)
      {
        g_autoptr (GHashTable) counts = sched_store_counts_of_rows (t, rows[t]);

        gauge_apply (m, t, counts);
      }
}

/* --- /metrics --------------------------------------------------------------
 */

static void
scrape_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
           GHashTable *query, gpointer user_data)
{
  static const SchedTable tables[]
      = { SCHED_TABLE_HOSTS, SCHED_TABLE_VMS, SCHED_TABLE_JOBS };
  SchedMetrics *m = user_data;
  char *text;

  for (gsize i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GHashTable) counts
          = sched_store_count (m->store, tables[i], &error);

      /* A table the store fails to count keeps the gauge of the last
       * scrape that counted it. */
      if (counts == NULL)
        g_warning ("metrics: %s", error->message);
      else
        gauge_apply (m, tables[i], counts);
    }
  text = proto_metrics_render (m->registry);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, "text/plain; version=0.0.4",
                                    SOUP_MEMORY_TAKE, text, strlen (text));
}

gboolean
sched_metrics_listen (SchedMetrics *m, SchedStore *store, const char *addr,
                      const ProtoTls *tls, GError **error)
{
  g_autoptr (ProtoHttp) http = proto_http_new ();

  g_return_val_if_fail (m->http == NULL, FALSE);
  m->store = store;
  proto_http_add_handler (http, "/metrics", scrape_cb, m);
  if (!proto_http_listen (http, addr, tls, error))
    {
      g_prefix_error (error, "metrics: ");
      return FALSE;
    }
  m->http = g_steal_pointer (&http);
  return TRUE;
}

int
sched_metrics_get_port (SchedMetrics *m)
{
  return proto_http_get_port (m->http);
}

void
sched_metrics_stop (SchedMetrics *m)
{
  if (m->sink != NULL)
    sched_events_unsubscribe (m->events, g_steal_pointer (&m->sink));
  m->events = NULL;
  g_clear_pointer (&m->http, proto_http_free);
}
