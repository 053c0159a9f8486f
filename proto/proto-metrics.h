/* ProtoMetrics: a registry of Prometheus metrics and its text exposition.
 *
 * Daemons keep their figures here as they learn them (an agent after each
 * poll of libvirt, the scheduler as reports and jobs arrive); a scrape only
 * renders what the registry holds, so it never waits on libvirt or on a
 * migration. Thread-safe: one lock per registry, held only to update or
 * render.
 *
 * Names follow Prometheus's conventions: one base unit per metric (seconds,
 * bytes), `_total` on counters, label values from a bounded set (host and
 * VM names, methods, results), never request data. The exposition is the
 * text format, version 0.0.4.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  PROTO_METRIC_COUNTER,
  PROTO_METRIC_GAUGE,
  PROTO_METRIC_HISTOGRAM,
} ProtoMetricType;

typedef struct _ProtoMetrics ProtoMetrics;
typedef struct _ProtoMetric ProtoMetric;

ProtoMetrics *proto_metrics_new (void);
void proto_metrics_free (ProtoMetrics *metrics);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ProtoMetrics, proto_metrics_free)

/* Declares a metric family: NAME ([a-zA-Z_:][a-zA-Z0-9_:]*), HELP, its
 * TYPE, the names of its labels (NULL-terminated, NULL for none) and, for
 * a histogram, its bucket upper bounds in increasing order (N_BUCKETS of
 * them; +Inf is added). Returns the family, owned by METRICS. Declaring
 * the same name again returns the first declaration. */
ProtoMetric *proto_metrics_declare (ProtoMetrics *metrics, const char *name,
                                    const char *help, ProtoMetricType type,
                                    const char *const *label_names,
                                    const double *buckets, gsize n_buckets);

/* The series of METRIC with LABEL_VALUES (as many as it has label names;
 * NULL when it has none) is created on first use. */
/* Gauge: sets the value. */
void proto_metric_set (ProtoMetric *metric, const char *const *label_values,
                       double value);
/* Counter or gauge: adds DELTA (a counter only goes up: DELTA >= 0). */
void proto_metric_add (ProtoMetric *metric, const char *const *label_values,
                       double delta);
/* Histogram: records one observation. */
void proto_metric_observe (ProtoMetric *metric, const char *const *label_values,
                           double value);
/* Removes the series with LABEL_VALUES (a VM that is gone), or with
 * LABEL_VALUES NULL every series of METRIC. */
void proto_metric_remove (ProtoMetric *metric, const char *const *label_values);

/* The whole registry in the Prometheus text format (families in the order
 * they were declared, series in label order). Free with g_free. */
char *proto_metrics_render (ProtoMetrics *metrics);

/* Buckets for durations from 5 ms to 60 s, and for migration downtimes
 * from 10 ms to 10 s. */
extern const double proto_metrics_duration_buckets[];
extern const gsize proto_metrics_duration_buckets_len;
extern const double proto_metrics_downtime_buckets[];
extern const gsize proto_metrics_downtime_buckets_len;

G_END_DECLS
