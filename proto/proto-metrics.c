/* ProtoMetrics: families of series kept in memory, rendered on demand in
 * the Prometheus text format. See proto-metrics.h. */
#include "proto-metrics.h"

#include <math.h>
#include <string.h>

const double proto_metrics_duration_buckets[]
    = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
const gsize proto_metrics_duration_buckets_len
    = G_N_ELEMENTS (proto_metrics_duration_buckets);
const double proto_metrics_downtime_buckets[]
    = { 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10 };
const gsize proto_metrics_downtime_buckets_len
    = G_N_ELEMENTS (proto_metrics_downtime_buckets);

typedef struct
{
  char **label_values; /* NULL-terminated copy, as many as the labels */
  double value;        /* counter, gauge; histogram: sum */
  guint64 count;       /* histogram */
  guint64 *buckets;    /* histogram: per bound, not cumulative */
} Series;

struct _ProtoMetric
{
  ProtoMetrics *owner;
  char *name;
  char *help;
  ProtoMetricType type;
  char **label_names;
  guint n_labels;
  double *bounds;
  gsize n_bounds;
  GTree *series; /* joined label values -> Series */
};

struct _ProtoMetrics
{
  GMutex lock; /* guards every family's series */
  GPtrArray *families;
};

/* The series trees' order: their keys are label strings. */
static gint
compare_keys (gconstpointer a, gconstpointer b, gpointer user_data)
{
  (void)user_data;
  return strcmp (a, b);
}

static void
series_free (gpointer data)
{
  Series *s = data;

  g_strfreev (s->label_values);
  g_free (s->buckets);
  g_free (s);
}

static void
metric_free (gpointer data)
{
  ProtoMetric *m = data;

  g_free (m->name);
  g_free (m->help);
  g_strfreev (m->label_names);
  g_free (m->bounds);
  g_tree_unref (m->series);
  g_free (m);
}

ProtoMetrics *
proto_metrics_new (void)
{
  ProtoMetrics *metrics = g_new0 (ProtoMetrics, 1);

  g_mutex_init (&metrics->lock);
  metrics->families = g_ptr_array_new_with_free_func (metric_free);
  return metrics;
}

void
proto_metrics_free (ProtoMetrics *metrics)
{
  if (metrics == NULL)
    return;
  g_ptr_array_unref (metrics->families);
  g_mutex_clear (&metrics->lock);
  g_free (metrics);
}

static gboolean
valid_name (const char *name, gboolean colon)
{
  if (name == NULL
      || !(g_ascii_isalpha (name[0]) || name[0] == '_'
           || (colon && name[0] == ':')))
    return FALSE;
  for (const char *p = name + 1; *p; p++)
    if (!(g_ascii_isalnum (*p) || *p == '_' || (colon && *p == ':')))
      return FALSE;
  return TRUE;
}

ProtoMetric *
proto_metrics_declare (ProtoMetrics *metrics, const char *name,
                       const char *help, ProtoMetricType type,
                       const char *const *label_names, const double *buckets,
                       gsize n_buckets)
{
  ProtoMetric *m;

  g_return_val_if_fail (valid_name (name, TRUE), NULL);
  g_return_val_if_fail (type != PROTO_METRIC_HISTOGRAM || n_buckets > 0, NULL);
  g_mutex_lock (&metrics->lock);
  for (guint i = 0; i < metrics->families->len; i++)
    {
      m = metrics->families->pdata[i];
      if (strcmp (m->name, name) == 0)
        {
          g_mutex_unlock (&metrics->lock);
          return m;
        }
    }
  m = g_new0 (ProtoMetric, 1);
  m->owner = metrics;
  m->name = g_strdup (name);
  m->help = g_strdup (help);
  m->type = type;
  m->label_names = g_strdupv ((char **)label_names);
  if (m->label_names == NULL)
    m->label_names = g_new0 (char *, 1);
  m->n_labels = g_strv_length (m->label_names);
  for (guint i = 0; i < m->n_labels; i++)
    g_warn_if_fail (valid_name (m->label_names[i], FALSE));
  if (type == PROTO_METRIC_HISTOGRAM)
    {
      m->bounds = g_memdup2 (buckets, n_buckets * sizeof *buckets);
      m->n_bounds = n_buckets;
    }
  m->series = g_tree_new_full (compare_keys, NULL, g_free, series_free);
  g_ptr_array_add (metrics->families, m);
  g_mutex_unlock (&metrics->lock);
  return m;
}

/* The tree key of LABEL_VALUES: the values joined by a byte no label
 * value holds after escaping ('\x1f'). */
static char *
series_key (ProtoMetric *m, const char *const *label_values)
{
  GString *key = g_string_new (NULL);

  for (guint i = 0; i < m->n_labels; i++)
    {
      if (i > 0)
        g_string_append_c (key, '\x1f');
      g_string_append (key,
                       label_values && label_values[i] ? label_values[i] : "");
    }
  return g_string_free (key, FALSE);
}

/* The series for LABEL_VALUES, created if missing. Lock held. */
static Series *
series_get (ProtoMetric *m, const char *const *label_values)
{
  char *key = series_key (m, label_values);
  Series *s = g_tree_lookup (m->series, key);

  if (s != NULL)
    {
      g_free (key);
      return s;
    }
  s = g_new0 (Series, 1);
  s->label_values = g_new0 (char *, m->n_labels + 1);
  for (guint i = 0; i < m->n_labels; i++)
    s->label_values[i]
        = g_strdup (label_values && label_values[i] ? label_values[i] : "");
  if (m->type == PROTO_METRIC_HISTOGRAM)
    s->buckets = g_new0 (guint64, m->n_bounds);
  g_tree_insert (m->series, key, s);
  return s;
}

void
proto_metric_set (ProtoMetric *metric, const char *const *label_values,
                  double value)
{
  g_return_if_fail (metric->type == PROTO_METRIC_GAUGE);
  g_mutex_lock (&metric->owner->lock);
  series_get (metric, label_values)->value = value;
  g_mutex_unlock (&metric->owner->lock);
}

void
proto_metric_add (ProtoMetric *metric, const char *const *label_values,
                  double delta)
{
  g_return_if_fail (metric->type != PROTO_METRIC_HISTOGRAM);
  g_return_if_fail (metric->type != PROTO_METRIC_COUNTER || delta >= 0);
  g_mutex_lock (&metric->owner->lock);
  series_get (metric, label_values)->value += delta;
  g_mutex_unlock (&metric->owner->lock);
}

void
proto_metric_observe (ProtoMetric *metric, const char *const *label_values,
                      double value)
{
  Series *s;

  g_return_if_fail (metric->type == PROTO_METRIC_HISTOGRAM);
  g_mutex_lock (&metric->owner->lock);
  s = series_get (metric, label_values);
  s->count++;
  s->value += value;
  for (gsize i = 0; i < metric->n_bounds; i++)
    if (value <= metric->bounds[i])
      {
        s->buckets[i]++;
        break;
      }
  g_mutex_unlock (&metric->owner->lock);
}

void
proto_metric_remove (ProtoMetric *metric, const char *const *label_values)
{
  g_mutex_lock (&metric->owner->lock);
  if (label_values == NULL && metric->n_labels > 0)
    {
      g_tree_unref (metric->series);
      metric->series
          = g_tree_new_full (compare_keys, NULL, g_free, series_free);
    }
  else
    {
      g_autofree char *key = series_key (metric, label_values);

      g_tree_remove (metric->series, key);
    }
  g_mutex_unlock (&metric->owner->lock);
}

/* --- exposition ---------------------------------------------------------- */

/* TEXT with backslash and newline escaped; in a label value (QUOTE) the
 * double quote too, which HELP text keeps as it is. */
static void
append_escaped (GString *out, const char *text, gboolean quote)
{
  for (const char *p = text ? text : ""; *p; p++)
    if (*p == '\\')
      g_string_append (out, "\\\\");
    else if (*p == '"' && quote)
      g_string_append (out, "\\\"");
    else if (*p == '\n')
      g_string_append (out, "\\n");
    else
      g_string_append_c (out, *p);
}

/* A sample value the way Prometheus parses it: integers without an
 * exponent, NaN and the infinities by name. */
static void
append_value (GString *out, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (isnan (v))
    g_string_append (out, "NaN");
  else if (isinf (v))
    g_string_append (out, v > 0 ? "+Inf" : "-Inf");
  else if (v == floor (v) && fabs (v) < 1e15)
    g_string_append_printf (out, "%.0f", v);
  else
    {
      /* The shortest of 15 or 17 significant digits that reads back as
       * the same double: 0.1, not 0.10000000000000001. */
      g_ascii_formatd (buf, sizeof buf, "%.15g", v);
      if (g_ascii_strtod (buf, NULL) != v)
        g_ascii_formatd (buf, sizeof buf, "%.17g", v);
      g_string_append (out, buf);
    }
}

/* NAME{labels[,le="BOUND"]} VALUE\n */
static void
append_sample (GString *out, const ProtoMetric *m, const char *suffix,
               const Series *s, const char *le, double value)
{
  gboolean any = FALSE;

  g_string_append (out, m->name);
  g_string_append (out, suffix);
  for (guint i = 0; i < m->n_labels; i++)
    {
      g_string_append_printf (out, "%s%s=\"", any ? "," : "{",
                              m->label_names[i]);
      append_escaped (out, s->label_values[i], TRUE);
      g_string_append_c (out, '"');
      any = TRUE;
    }
  if (le != NULL)
    {
      g_string_append_printf (out, "%sle=\"%s\"", any ? "," : "{", le);
      any = TRUE;
    }
  if (any)
    g_string_append_c (out, '}');
  g_string_append_c (out, ' ');
  append_value (out, value);
  g_string_append_c (out, '\n');
}

typedef struct
{
  GString *out;
  const ProtoMetric *m;
} RenderCtx;

static gboolean
render_series (gpointer key, gpointer value, gpointer data)
{
  RenderCtx *ctx = data;
  const Series *s = value;
  guint64 cumulative = 0;

  if (ctx->m->type != PROTO_METRIC_HISTOGRAM)
    {
      append_sample (ctx->out, ctx->m, "", s, NULL, s->value);
      return FALSE;
    }
  for (gsize i = 0; i < ctx->m->n_bounds; i++)
    {
      char le[G_ASCII_DTOSTR_BUF_SIZE];
      GString *tmp = g_string_new (NULL);

      cumulative += s->buckets[i];
      append_value (tmp, ctx->m->bounds[i]);
      g_strlcpy (le, tmp->str, sizeof le);
      g_string_free (tmp, TRUE);
      append_sample (ctx->out, ctx->m, "_bucket", s, le, (double)cumulative);
    }
  append_sample (ctx->out, ctx->m, "_bucket", s, "+Inf", (double)s->count);
  append_sample (ctx->out, ctx->m, "_sum", s, NULL, s->value);
  append_sample (ctx->out, ctx->m, "_count", s, NULL, (double)s->count);
  return FALSE;
}

char *
proto_metrics_render (ProtoMetrics *metrics)
{
  static const char *const type_names[]
      = { [PROTO_METRIC_COUNTER] = "counter",
          [PROTO_METRIC_GAUGE] = "gauge",
          [PROTO_METRIC_HISTOGRAM] = "histogram" };
  GString *out = g_string_new (NULL);

  g_mutex_lock (&metrics->lock);
  for (guint i = 0; i < metrics->families->len; i++)
    {
      const ProtoMetric *m = metrics->families->pdata[i];
      RenderCtx ctx = { out, m };

      g_string_append_printf (out, "# HELP %s ", m->name);
      append_escaped (out, m->help, FALSE);
      g_string_append_printf (out, "\n# TYPE %s %s\n", m->name,
                              type_names[m->type]);
      g_tree_foreach (m->series, render_series, &ctx);
    }
  g_mutex_unlock (&metrics->lock);
  return g_string_free (out, FALSE);
}
