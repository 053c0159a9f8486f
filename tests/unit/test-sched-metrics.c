/* SchedMetrics: the gauges counted from the store's rows, the migration
 * results and histograms, and /metrics served from a real store. */
#include <libsoup/soup.h>
#include <string.h>

#include "test-sched.h"

static char *
render (SchedMetrics *m)
{
  return proto_metrics_render (sched_metrics_registry (m));
}

static SchedJob *
job_new (const char *kind, const char *state)
{
  return sched_job_new (kind, "web1", state, 0);
}

static void
test_refresh (void)
{
  SchedMetrics *m = sched_metrics_new ();
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GPtrArray) jobs
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_job_free);
  g_autofree char *text = NULL;

  test_sched_add_host (hosts, "host1", PROTO_HOST_UP, 4, GiB, GiB, "tcg");
  test_sched_add_host (hosts, "host2", PROTO_HOST_UP, 4, GiB, GiB, "tcg");
  test_sched_add_host (hosts, "host3", PROTO_HOST_DOWN, 4, GiB, GiB, "tcg");
  test_sched_add_host (hosts, "host4", PROTO_HOST_UP, 4, GiB, GiB, "tcg");
  sched_host_set_maintenance (hosts->pdata[3], SCHED_HOST_DRAINING);
  test_sched_add_vm (vms, "a", "host1", PROTO_VM_RUNNING, 1, MiB, 0);
  test_sched_add_vm (vms, "b", "host1", PROTO_VM_MISSING, 1, MiB, 0);
  test_sched_add_vm (vms, "c", "host2", PROTO_VM_RUNNING, 1, MiB, 0);
  g_ptr_array_add (jobs, job_new (PROTO_JOB_KIND_MIGRATE, PROTO_JOB_RUNNING));
  g_ptr_array_add (jobs, job_new (PROTO_JOB_KIND_CREATE, PROTO_JOB_DONE));
  g_ptr_array_add (jobs, job_new (PROTO_JOB_KIND_CREATE, PROTO_JOB_DONE));
  /* A kind this file does not list still counts. */
  g_ptr_array_add (jobs, job_new ("backup", PROTO_JOB_QUEUED));
  sched_metrics_refresh (m, hosts, vms, jobs);
  text = render (m);
  test_assert_lines (
      text, "drover_scheduler_hosts{state=\"up\",service=\"in-service\"} 2",
      "drover_scheduler_hosts{state=\"down\",service=\"in-service\"} 1",
      "drover_scheduler_hosts{state=\"up\",service=\"draining\"} 1",
      "drover_scheduler_vms{state=\"running\"} 2",
      "drover_scheduler_vms{state=\"missing\"} 1",
      "drover_scheduler_vms{state=\"paused\"} 0",
      "drover_scheduler_jobs{kind=\"migrate\",state=\"running\"} 1",
      "drover_scheduler_jobs{kind=\"create\",state=\"done\"} 2",
      "drover_scheduler_jobs{kind=\"delete\",state=\"failed\"} 0",
      "drover_scheduler_jobs{kind=\"backup\",state=\"queued\"} 1", NULL);
  g_clear_pointer (&text, g_free);

  /* The next refresh replaces the counts; the backup job is gone. */
  g_ptr_array_set_size (jobs, 1);
  g_ptr_array_remove_index (hosts, 3);
  g_ptr_array_remove_index (hosts, 2);
  sched_metrics_refresh (m, hosts, NULL, jobs);
  text = render (m);
  test_assert_lines (
      text, "drover_scheduler_hosts{state=\"down\",service=\"in-service\"} 0",
      "drover_scheduler_vms{state=\"running\"} 2",
      "drover_scheduler_jobs{kind=\"create\",state=\"done\"} 0", NULL);
  g_assert_null (strstr (text, "kind=\"backup\""));
  sched_metrics_free (m);
}

static void
test_migration_end (void)
{
  SchedMetrics *m = sched_metrics_new ();
  g_autoptr (SchedJob) done = job_new (PROTO_JOB_KIND_MIGRATE, PROTO_JOB_DONE);
  g_autoptr (SchedJob) aborted
      = job_new (PROTO_JOB_KIND_MIGRATE, PROTO_JOB_FAILED);
  g_autoptr (SchedJob) failed
      = job_new (PROTO_JOB_KIND_MIGRATE, PROTO_JOB_FAILED);
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;
  Drover__V1__MigrationPrediction pred = DROVER__V1__MIGRATION_PREDICTION__INIT;
  g_autofree char *text = render (m);

  /* Every result reads 0 before the first migration. */
  test_assert_lines (text, "drover_migrations_total{result=\"completed\"} 0",
                     "drover_scheduler_reports_total 0", NULL);
  g_clear_pointer (&text, g_free);

  p.phase = (char *)PROTO_MIG_COMPLETED;
  p.total_s = 3.0;
  pred.total_s = 2.0;
  done->migration = proto_msg_copy (&p.base);
  done->prediction = proto_msg_copy (&pred.base);
  p.phase = (char *)PROTO_MIG_ABORTED;
  aborted->migration = proto_msg_copy (&p.base);
  g_assert_cmpstr (sched_metrics_migration_result (done, TRUE), ==,
                   PROTO_MIG_COMPLETED);
  g_assert_cmpstr (sched_metrics_migration_result (aborted, FALSE), ==,
                   PROTO_MIG_ABORTED);
  /* No progress at all (the destination refused): failed. */
  g_assert_cmpstr (sched_metrics_migration_result (failed, FALSE), ==,
                   PROTO_MIG_FAILED);

  sched_metrics_migration_end (m, done, TRUE);
  sched_metrics_migration_end (m, aborted, FALSE);
  sched_metrics_migration_end (m, failed, FALSE);
  sched_metrics_report (m);
  text = render (m);
  test_assert_lines (
      text, "drover_migrations_total{result=\"completed\"} 1",
      "drover_migrations_total{result=\"aborted\"} 1",
      "drover_migrations_total{result=\"failed\"} 1",
      "drover_scheduler_reports_total 1",
      /* Only the completed one has a duration: 3 s, 1.5 of the prediction. */
      "drover_migration_duration_seconds_count 1",
      "drover_migration_duration_seconds_sum 3",
      "drover_migration_duration_seconds_bucket{le=\"2\"} 0",
      "drover_migration_duration_seconds_bucket{le=\"5\"} 1",
      "drover_migration_duration_predicted_ratio_sum 1.5",
      "drover_migration_duration_predicted_ratio_bucket{le=\"1.25\"} 0",
      "drover_migration_duration_predicted_ratio_bucket{le=\"1.5\"} 1", NULL);
  sched_metrics_free (m);
}

/* --- /metrics over HTTP ----------------------------------------------------
 */

typedef struct
{
  char *uri;
  guint status;
  char *body;
  gboolean done;
} Scrape;

static gpointer
scrape_thread (gpointer data)
{
  Scrape *s = data;
  g_autoptr (SoupSession) session
      = soup_session_new_with_options ("proxy-resolver", NULL, NULL);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", s->uri);
  g_autoptr (GBytes) out
      = soup_session_send_and_read (session, msg, NULL, NULL);

  s->status = soup_message_get_status (msg);
  if (out != NULL)
    s->body = g_strndup (g_bytes_get_data (out, NULL), g_bytes_get_size (out));
  g_atomic_int_set (&s->done, TRUE);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* GET URI from another thread while this one serves. */
static void
scrape (Scrape *s, const char *uri)
{
  GThread *thread;

  memset (s, 0, sizeof *s);
  s->uri = g_strdup (uri);
  thread = g_thread_new ("scrape", scrape_thread, s);
  while (!g_atomic_int_get (&s->done))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (thread);
  g_free (s->uri);
}

static void
test_scrape (TestSchedStore *f, gconstpointer data)
{
  SchedMetrics *m = sched_metrics_new ();
  Drover__V1__HostInfo info = test_host_info ("host1", 4, GiB, GiB, "tcg");
  g_autoptr (GError) error = NULL;
  g_autofree char *uri = NULL;
  Scrape s;

  g_assert_true (sched_registry_register (f->reg, &info, &error));
  g_assert_true (
      sched_metrics_listen (m, f->store, "127.0.0.1:0", NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (sched_metrics_get_port (m), >, 0);
  uri = g_strdup_printf ("http://127.0.0.1:%d/metrics",
                         sched_metrics_get_port (m));
  scrape (&s, uri);
  g_assert_cmpuint (s.status, ==, 200);
  test_assert_lines (
      s.body, "drover_scheduler_hosts{state=\"up\",service=\"in-service\"} 1",
      NULL);
  g_free (s.body);

  /* Counted anew at each scrape. */
  g_assert_true (sched_registry_check_liveness (f->reg, &error) == 0);
  f->now += 10 * TEST_SCHED_INTERVAL_MS;
  g_assert_true (sched_registry_check_liveness (f->reg, &error) == 1);
  scrape (&s, uri);
  test_assert_lines (
      s.body, "drover_scheduler_hosts{state=\"down\",service=\"in-service\"} 1",
      NULL);
  g_free (s.body);

  g_clear_pointer (&uri, g_free);
  uri = g_strdup_printf ("http://127.0.0.1:%d/nothing",
                         sched_metrics_get_port (m));
  scrape (&s, uri);
  g_assert_cmpuint (s.status, ==, 404);
  g_free (s.body);
  sched_metrics_stop (m);
  g_assert_cmpint (sched_metrics_get_port (m), ==, -1);
  sched_metrics_free (m);
}

static gint64
events_clock (gpointer data)
{
  return 1000;
}

static SchedJob *
backup_job (const char *vm, const char *state, gint64 began_ms)
{
  return sched_job_new (PROTO_JOB_KIND_BACKUP, vm, state, began_ms);
}

/* drover_vm_last_backup_timestamp_seconds: the store's good backup jobs
 * when the watch begins, then backup jobs that end; failed ones and other
 * kinds do not count, an older one does not replace a newer, a VM that is
 * deleted loses its series, a VM without a backup has none. */
static void
test_last_backup (TestSchedStore *f, gconstpointer data)
{
  SchedMetrics *m = sched_metrics_new ();
  g_autoptr (SchedEvents) events = sched_events_new (0, events_clock, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  SchedJob *jobs[] = {
    backup_job ("web1", PROTO_JOB_DONE, 1700000000000),
    backup_job ("web1", PROTO_JOB_DONE, 1700000500000),
    backup_job ("web1", PROTO_JOB_FAILED, 1700000900000),
    backup_job ("db1", PROTO_JOB_RUNNING, 1700000100000),
    sched_job_new (PROTO_JOB_KIND_SNAPSHOT_CREATE, "app1", PROTO_JOB_DONE,
                   1700000200000),
  };

  for (gsize i = 0; i < G_N_ELEMENTS (jobs); i++)
    g_assert_true (sched_store_put_job (f->store, jobs[i], &error));
  g_assert_no_error (error);
  text = render (m);
  g_assert_null (strstr (text, "drover_vm_last_backup_timestamp_seconds{"));
  g_clear_pointer (&text, g_free);

  g_assert_true (sched_metrics_watch (m, f->store, events, &error));
  text = render (m);
  test_assert_lines (
      text, "# TYPE drover_vm_last_backup_timestamp_seconds gauge",
      "drover_vm_last_backup_timestamp_seconds{vm=\"web1\"} 1700000500", NULL);
  g_assert_null (strstr (text, "vm=\"db1\""));
  g_assert_null (strstr (text, "vm=\"app1\""));
  g_clear_pointer (&text, g_free);

  /* The running one ends well, then a failed newer one of web1, then an
   * older good one of web1 (a restart's late answer): only db1 moves. */
  g_free (jobs[3]->state);
  jobs[3]->state = g_strdup (PROTO_JOB_DONE);
  sched_events_job (events, jobs[3]);
  sched_events_job (events, jobs[2]);
  {
    g_autoptr (SchedJob) old
        = backup_job ("web1", PROTO_JOB_DONE, 1600000000000);

    sched_events_job (events, old);
  }
  text = render (m);
  test_assert_lines (
      text, "drover_vm_last_backup_timestamp_seconds{vm=\"db1\"} 1700000100",
      "drover_vm_last_backup_timestamp_seconds{vm=\"web1\"} 1700000500", NULL);
  g_clear_pointer (&text, g_free);

  /* A VM deleted: its series goes. */
  sched_events_emit (events, SCHED_EVENT_VM_DELETED, "web1", "host1", NULL,
                     NULL, "deleted");
  text = render (m);
  g_assert_null (strstr (text, "vm=\"web1\""));
  test_assert_lines (
      text, "drover_vm_last_backup_timestamp_seconds{vm=\"db1\"} 1700000100",
      NULL);
  g_clear_pointer (&text, g_free);

  /* Stopping lets go of the events. */
  sched_metrics_stop (m);
  {
    g_autoptr (SchedJob) late
        = backup_job ("late1", PROTO_JOB_DONE, 1700001000000);

    sched_events_job (events, late);
  }
  text = render (m);
  g_assert_null (strstr (text, "vm=\"late1\""));
  sched_metrics_free (m);
  for (gsize i = 0; i < G_N_ELEMENTS (jobs); i++)
    sched_job_free (jobs[i]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched/metrics/refresh", test_refresh);
  g_test_add_func ("/sched/metrics/migration-end", test_migration_end);
  g_test_add ("/sched/metrics/scrape", TestSchedStore, NULL,
              test_sched_store_setup, test_scrape, test_sched_store_teardown);
  g_test_add ("/sched/metrics/last-backup", TestSchedStore, NULL,
              test_sched_store_setup, test_last_backup,
              test_sched_store_teardown);
  return g_test_run ();
}
