/* ProtoMetrics: the Prometheus text the daemons serve on /metrics. Checked
 * byte for byte, and by promtool (Debian's prometheus package) where it is
 * installed. */
#include "proto-metrics.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

static void
test_counter_gauge (void)
{
  g_autoptr (ProtoMetrics) m = proto_metrics_new ();
  static const char *const labels[] = { "method", NULL };
  static const char *const ok[] = { "ListVms", NULL };
  static const char *const bad[] = { "GetVm", NULL };
  ProtoMetric *reqs
      = proto_metrics_declare (m, "drover_requests_total", "Requests handled.",
                               PROTO_METRIC_COUNTER, labels, NULL, 0);
  ProtoMetric *up = proto_metrics_declare (m, "drover_up", "1 while serving.",
                                           PROTO_METRIC_GAUGE, NULL, NULL, 0);
  g_autofree char *text = NULL;

  /* The same name again is the same family. */
  g_assert_true (proto_metrics_declare (m, "drover_requests_total", "x",
                                        PROTO_METRIC_COUNTER, labels, NULL, 0)
                 == reqs);
  proto_metric_add (reqs, ok, 1);
  proto_metric_add (reqs, ok, 2);
  proto_metric_add (reqs, bad, 1);
  proto_metric_set (up, NULL, 1);
  text = proto_metrics_render (m);
  g_assert_cmpstr (text, ==,
                   "# HELP drover_requests_total Requests handled.\n"
                   "# TYPE drover_requests_total counter\n"
                   "drover_requests_total{method=\"GetVm\"} 1\n"
                   "drover_requests_total{method=\"ListVms\"} 3\n"
                   "# HELP drover_up 1 while serving.\n"
                   "# TYPE drover_up gauge\n"
                   "drover_up 1\n");
}

static void
test_escaping (void)
{
  g_autoptr (ProtoMetrics) m = proto_metrics_new ();
  static const char *const labels[] = { "vm", "host", NULL };
  static const char *const weird[] = { "a\"b\\c\nd", "h1", NULL };
  ProtoMetric *g
      = proto_metrics_declare (m, "drover_vm_memory_resident_bytes",
                               "Resident memory.\nOf the QEMU process, in "
                               "bytes (a \\ b).",
                               PROTO_METRIC_GAUGE, labels, NULL, 0);
  g_autofree char *text = NULL;

  proto_metric_set (g, weird, 1.5e9 + 0.25);
  proto_metric_set (g, (const char *const[]){ "x", "h2", NULL }, NAN);
  text = proto_metrics_render (m);
  g_assert_nonnull (strstr (
      text, "# HELP drover_vm_memory_resident_bytes Resident memory.\\nOf the "
            "QEMU process, in bytes (a \\\\ b).\n"));
  g_assert_nonnull (
      strstr (text, "{vm=\"a\\\"b\\\\c\\nd\",host=\"h1\"} 1500000000.25\n"));
  g_assert_nonnull (strstr (text, "{vm=\"x\",host=\"h2\"} NaN\n"));
}

static void
test_histogram (void)
{
  g_autoptr (ProtoMetrics) m = proto_metrics_new ();
  static const double bounds[] = { 0.1, 0.5, 1 };
  ProtoMetric *h = proto_metrics_declare (
      m, "drover_migration_downtime_seconds", "Pause of the guest.",
      PROTO_METRIC_HISTOGRAM, NULL, bounds, G_N_ELEMENTS (bounds));
  g_autofree char *text = NULL;

  proto_metric_observe (h, NULL, 0.05);
  proto_metric_observe (h, NULL, 0.1); /* on a bound: counts in it */
  proto_metric_observe (h, NULL, 0.7);
  proto_metric_observe (h, NULL, 3);
  text = proto_metrics_render (m);
  g_assert_cmpstr (
      text, ==,
      "# HELP drover_migration_downtime_seconds Pause of the guest.\n"
      "# TYPE drover_migration_downtime_seconds histogram\n"
      "drover_migration_downtime_seconds_bucket{le=\"0.1\"} 2\n"
      "drover_migration_downtime_seconds_bucket{le=\"0.5\"} 2\n"
      "drover_migration_downtime_seconds_bucket{le=\"1\"} 3\n"
      "drover_migration_downtime_seconds_bucket{le=\"+Inf\"} 4\n"
      "drover_migration_downtime_seconds_sum 3.85\n"
      "drover_migration_downtime_seconds_count 4\n");
}

static void
test_remove (void)
{
  g_autoptr (ProtoMetrics) m = proto_metrics_new ();
  static const char *const labels[] = { "vm", NULL };
  ProtoMetric *g = proto_metrics_declare (m, "drover_vm_vcpus", "vCPUs.",
                                          PROTO_METRIC_GAUGE, labels, NULL, 0);
  g_autofree char *text = NULL;
  g_autofree char *empty = NULL;

  proto_metric_set (g, (const char *const[]){ "a", NULL }, 1);
  proto_metric_set (g, (const char *const[]){ "b", NULL }, 2);
  proto_metric_remove (g, (const char *const[]){ "a", NULL });
  text = proto_metrics_render (m);
  g_assert_null (strstr (text, "vm=\"a\""));
  g_assert_nonnull (strstr (text, "drover_vm_vcpus{vm=\"b\"} 2\n"));
  proto_metric_remove (g, NULL);
  empty = proto_metrics_render (m);
  g_assert_null (strstr (empty, "vm=\"b\""));
  g_assert_nonnull (strstr (empty, "# TYPE drover_vm_vcpus gauge\n"));
}

/* promtool's own lint of what we render (naming conventions included). */
static void
test_promtool (void)
{
  g_autoptr (ProtoMetrics) m = proto_metrics_new ();
  static const char *const labels[] = { "method", "code", NULL };
  ProtoMetric *c = proto_metrics_declare (
      m, "drover_grpc_server_handled_total", "Calls finished.",
      PROTO_METRIC_COUNTER, labels, NULL, 0);
  ProtoMetric *h = proto_metrics_declare (
      m, "drover_grpc_server_handling_seconds", "Time to finish a call.",
      PROTO_METRIC_HISTOGRAM, (const char *const[]){ "method", NULL },
      proto_metrics_duration_buckets, proto_metrics_duration_buckets_len);
  g_autofree char *text = NULL;
  g_autofree char *promtool = g_find_program_in_path ("promtool");
  g_autofree char *out = NULL, *err = NULL, *path = NULL, *cmd = NULL;
  g_autoptr (GError) error = NULL;
  int fd, status = -1;

  if (promtool == NULL)
    {
      g_test_skip ("no promtool (Debian's prometheus package)");
      return;
    }
  proto_metric_add (c, (const char *const[]){ "ListVms", "OK", NULL }, 3);
  proto_metric_observe (h, (const char *const[]){ "ListVms", NULL }, 0.002);
  text = proto_metrics_render (m);
  fd = g_file_open_tmp ("drover-metrics-XXXXXX", &path, &error);
  g_assert_no_error (error);
  close (fd);
  g_assert_true (g_file_set_contents (path, text, -1, &error));
  cmd = g_strdup_printf ("sh -c 'promtool check metrics < %s'", path);
  g_assert_true (g_spawn_command_line_sync (cmd, &out, &err, &status, &error));
  g_assert_no_error (error);
  g_remove (path);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("promtool check metrics failed:\n%s%s\non:\n%s", out, err, text);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/proto/metrics/counter-gauge", test_counter_gauge);
  g_test_add_func ("/proto/metrics/escaping", test_escaping);
  g_test_add_func ("/proto/metrics/histogram", test_histogram);
  g_test_add_func ("/proto/metrics/remove", test_remove);
  g_test_add_func ("/proto/metrics/promtool", test_promtool);
  return g_test_run ();
}
