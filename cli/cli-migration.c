/* Migration progress lines and the end-of-migration summary, shared by
 * `droverctl migrate` and `droverctl job watch`. Pure text formatting. */
#include "cli.h"

#include "proto.h"

#include <math.h>
#include <string.h>

char *
cli_format_rate (double bytes_per_second)
{
  g_autofree char *size = NULL;

  if (!isfinite (bytes_per_second) || bytes_per_second < 0)
    bytes_per_second = 0;
  size = proto_format_size ((guint64)llround (bytes_per_second));
  return g_strdup_printf ("%s/s", size);
}

char *
cli_format_duration (double s)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  guint64 whole;

  if (!isfinite (s) || s < 0)
    return g_strdup ("-");
  if (s < 1.0)
    return g_strdup_printf ("%dms", (int)llround (s * 1000));
  if (s < 60.0)
    {
      g_ascii_formatd (buf, sizeof buf, "%.1f", s);
      return g_strdup_printf ("%ss", buf);
    }
  whole = (guint64)llround (s);
  if (whole < 3600)
    return g_strdup_printf ("%" G_GUINT64_FORMAT "m%02" G_GUINT64_FORMAT "s",
                            whole / 60, whole % 60);
  return g_strdup_printf ("%" G_GUINT64_FORMAT "h%02" G_GUINT64_FORMAT "m",
                          whole / 3600, whole / 60 % 60);
}

/* Memory QEMU is done with, 0..1: sent, or found to be zero pages (which
 * cost a flag each, not a page), and not dirtied again. QEMU's
 * memory_remaining is what it still has to deal with; memory_processed
 * counts only the bytes it sent, resends included, so it is no measure
 * of how far the copy is. */
static double
done_fraction (const Drover__V1__MigrationProgress *p)
{
  if (p->memory_total == 0)
    return 0;
  return 1.0
         - (double)MIN (p->memory_remaining, p->memory_total)
               / (double)p->memory_total;
}

static void
append_bar (GString *line, double frac, guint bar_width)
{
  guint filled = (guint)floor (CLAMP (frac, 0.0, 1.0) * bar_width + 1e-9);

  if (bar_width == 0)
    return;
  g_string_append_c (line, '[');
  for (guint i = 0; i < bar_width; i++)
    g_string_append_c (line, i < filled ? '#' : '-');
  g_string_append (line, "]  ");
}

/* "disk 64.0 MiB of 256.0 MiB" for a VM whose disk is copied. */
static void
append_disk (GString *line, const Drover__V1__MigrationProgress *p)
{
  g_autofree char *copied = proto_format_size (p->disk_processed);
  g_autofree char *total = proto_format_size (p->disk_total);

  g_string_append_printf (line, "disk %s of %s", copied, total);
}

char *
cli_migration_dirty_text (const Drover__V1__MigrationProgress *p)
{
  /* QEMU measures the dirty rate only at a bitmap sync: through the first
   * round it reads 0, which is "not measured yet", not "idle". */
  if (!(p->dirty_rate > 0) && p->iteration <= 1)
    return g_strdup ("-");
  return cli_format_rate (p->dirty_rate);
}

char *
cli_migration_progress_line (const Drover__V1__Job *job, guint bar_width)
{
  const Drover__V1__MigrationProgress *p = job->migration;
  GString *line = g_string_new (NULL);
  gboolean precopy, switchover, completed;

  if (strcmp (job->state, PROTO_JOB_QUEUED) == 0 || p == NULL
      || strcmp (p->phase, PROTO_MIG_QUEUED) == 0)
    {
      g_string_append (line,
                       strcmp (job->state, PROTO_JOB_QUEUED) == 0 || p != NULL
                           ? "queued"
                           : job->state);
      if (job->message[0] != '\0')
        g_string_append_printf (line, ": %s", job->message);
      return g_string_free (line, FALSE);
    }

  /* A VM with a disk copies it before the memory moves. */
  if (strcmp (p->phase, PROTO_MIG_PREPARING) == 0 && p->disk_total > 0)
    {
      double frac = (double)MIN (p->disk_processed, p->disk_total)
                    / (double)p->disk_total;

      /* The disk copied is not the migration done: never 100 % here. */
      append_bar (line, frac, bar_width);
      g_string_append_printf (line, "%3d%%  ",
                              MIN ((int)floor (frac * 100), 99));
      append_disk (line, p);
      g_string_append (line, " copied, memory next");
      return g_string_free (line, FALSE);
    }

  precopy = strcmp (p->phase, PROTO_MIG_PRECOPY) == 0;
  switchover = strcmp (p->phase, PROTO_MIG_SWITCHOVER) == 0;
  completed = strcmp (p->phase, PROTO_MIG_COMPLETED) == 0;
  if (precopy || switchover || completed)
    {
      double frac = completed ? 1.0 : done_fraction (p);
      g_autofree char *done = NULL;
      g_autofree char *total = proto_format_size (p->memory_total);
      g_autofree char *sent = proto_format_size (p->memory_processed);
      int percent = (int)floor (frac * 100);

      /* Nothing is 100 % before the VM runs on the destination. */
      if (!completed)
        percent = MIN (percent, 99);
      done = proto_format_size (
          completed
              ? p->memory_total
              : p->memory_total - MIN (p->memory_remaining, p->memory_total));
      append_bar (line, frac, bar_width);
      g_string_append_printf (line, "%3d%%  memory %s of %s done, %s sent",
                              percent, done, total, sent);
      if (p->disk_total > 0)
        {
          g_string_append (line, ", ");
          append_disk (line, p);
        }
      if (precopy)
        {
          g_autofree char *dirty = cli_migration_dirty_text (p);
          g_autofree char *bps = cli_format_rate (p->throughput);
          g_autofree char *eta = cli_format_duration (p->eta_s);

          g_string_append_printf (line,
                                  "  round %u  dirty %s  sending %s  ETA %s",
                                  p->iteration, dirty, bps, eta);
          /* The ladder's rung once the controller climbed one. */
          if (strcmp (p->rung, "throttle") == 0)
            g_string_append_printf (line, "  throttle %u%%", p->throttle_pct);
          else if (strcmp (p->rung, "downtime") == 0)
            g_string_append_printf (line, "  limit %ums", p->downtime_limit_ms);
        }
      else if (switchover && strcmp (p->rung, "postcopy") == 0)
        g_string_append (line, "  post-copy: running on the destination, "
                               "pages on demand");
      else if (switchover && strcmp (p->rung, "postcopy-recover") == 0)
        g_string_append (line, "  post-copy broke off: reconnecting and "
                               "resuming");
      else if (switchover)
        g_string_append_printf (line, "  switching over%s",
                                p->forced_switchover ? " (forced)" : "");
      else
        g_string_append (line, "  completed");
      return g_string_free (line, FALSE);
    }

  /* preparing, aborted, failed or something newer: the scheduler's
   * message says it best; the phase if there is none. */
  g_string_append (line, job->message[0] ? job->message
                         : p->phase[0]   ? p->phase
                                         : job->state);
  return g_string_free (line, FALSE);
}

char *
cli_migration_prediction (const Drover__V1__MigrationPrediction *pred)
{
  g_autofree char *dur = cli_format_duration (pred->total_s);
  g_autofree char *sent = proto_format_size (pred->bytes_sent);
  g_autofree char *dirty = cli_format_rate (pred->dirty_rate);
  g_autofree char *bw = cli_format_rate (pred->bandwidth);

  return g_strdup_printf ("%s in %u round%s, ~%s, downtime ~%.0f ms, %s to "
                          "send (assuming dirty %s over %s)",
                          pred->converges ? "converges"
                                          : "DOES NOT CONVERGE "
                                            "(forced switchover)",
                          pred->rounds, pred->rounds == 1 ? "" : "s", dur,
                          pred->downtime_ms, sent, dirty, bw);
}

char *
cli_migration_summary (const Drover__V1__Job *job)
{
  const Drover__V1__MigrationProgress *p = job->migration;
  const Drover__V1__MigrationPrediction *pred = job->prediction;
  GString *out = g_string_new (NULL);
  gboolean done = strcmp (job->state, PROTO_JOB_DONE) == 0;

  if (done)
    g_string_append_printf (out, "migrated %s: %s -> %s\n", job->vm,
                            job->source_host, job->dest_host);
  else
    g_string_append_printf (out, "migration of %s (%s -> %s) %s: %s\n", job->vm,
                            job->source_host, job->dest_host, job->state,
                            job->error[0]     ? job->error
                            : job->message[0] ? job->message
                                              : "no reason given");
  /* Failed while queued or preparing: there is nothing to measure. */
  if (p == NULL
      || (p->iteration == 0 && p->n_rounds == 0 && p->qemu_bytes == 0
          && p->wire_bytes == 0 && p->memory_processed == 0))
    return g_string_free (out, FALSE);

  {
    double total_s = p->total_s > 0 ? p->total_s : p->elapsed_ms / 1000.0;
    g_autofree char *actual = cli_format_duration (total_s);

    g_string_append_printf (out, "  total time    %s", actual);
    if (pred != NULL)
      {
        g_autofree char *predicted = cli_format_duration (pred->total_s);
        g_string_append_printf (out, " (predicted %s)", predicted);
      }
    g_string_append_c (out, '\n');
  }
  g_string_append_printf (
      out, "  downtime      %" G_GUINT64_FORMAT " ms (QEMU)", p->downtime_ms);
  if (pred != NULL)
    g_string_append_printf (out, " (predicted %.0f ms)", pred->downtime_ms);
  g_string_append_c (out, '\n');
  {
    guint rounds = MAX (p->iteration, (guint)p->n_rounds);

    g_string_append_printf (out, "  rounds        %u", rounds);
    if (pred != NULL)
      g_string_append_printf (out, " (predicted %u)", pred->rounds);
    if (p->forced_switchover)
      g_string_append (out, ", forced switchover");
    g_string_append_c (out, '\n');
  }
  /* The ladder: each rung climbed and the time spent on it. */
  for (size_t i = 0; i < p->n_rungs; i++)
    {
      const Drover__V1__MigrationRung *r = p->rungs[i];
      g_autofree char *spent = NULL;

      if (r == NULL)
        continue;
      spent = cli_format_duration (r->duration_ms / 1000.0);
      if (i == 0)
        g_string_append (out, "  time per rung");
      else
        g_string_append (out, "               ");
      if (strcmp (r->rung, "throttle") == 0)
        g_string_append_printf (out, " throttle %u%%: %s\n", r->throttle_pct,
                                spent);
      else if (strcmp (r->rung, "downtime") == 0)
        g_string_append_printf (out, " downtime limit raised (to %u ms): %s\n",
                                r->downtime_limit_ms, spent);
      else if (strcmp (r->rung, "forced") == 0)
        g_string_append_printf (out, " forced pause: %s\n", spent);
      else if (strcmp (r->rung, "postcopy") == 0)
        g_string_append_printf (out, " post-copy: %s\n", spent);
      else if (strcmp (r->rung, "postcopy-recover") == 0)
        g_string_append_printf (out, " post-copy recovery attempt: %s\n",
                                spent);
      else
        g_string_append_printf (out, " %s: %s\n", r->rung, spent);
    }
  {
    /* Three counts that measure different things: the memory QEMU sent
     * (zero pages cost a flag, not a page), the disk the copy went
     * through (every block counts, unallocated ones too, though they
     * travel as a "zeroes" note), and what the channel carried from QEMU
     * and put on the wire after compression. */
    guint64 mem_sent = p->memory_processed;
    g_autofree char *mem = NULL;
    g_autofree char *payload = proto_format_size (p->payload_bytes);
    g_autofree char *wire = proto_format_size (p->wire_bytes);
    double ratio = p->compression_ratio;
    gboolean lz4 = g_strcmp0 (p->compress_mode, PROTO_COMPRESS_LZ4) == 0;

    if (mem_sent == 0)
      mem_sent = p->qemu_bytes > p->disk_processed
                     ? p->qemu_bytes - p->disk_processed
                     : p->qemu_bytes;
    mem = proto_format_size (mem_sent);
    g_string_append_printf (out, "  memory sent   %s by QEMU", mem);
    if (pred != NULL)
      {
        g_autofree char *predicted = proto_format_size (pred->bytes_sent);
        g_string_append_printf (out, " (predicted %s)", predicted);
      }
    g_string_append (out, "; zero pages cost nothing\n");
    if (p->disk_total > 0)
      {
        g_autofree char *copied = proto_format_size (p->disk_processed);
        g_autofree char *total = proto_format_size (p->disk_total);
        g_autofree char *qemu = proto_format_size (p->qemu_bytes);

        g_string_append_printf (out,
                                "  disk copied   %s of %s; unallocated blocks "
                                "travel as a note\n"
                                "  QEMU counted  %s (memory sent + disk "
                                "copied)\n",
                                copied, total, qemu);
      }
    if (!(ratio > 0) && p->wire_bytes > 0)
      ratio = (double)p->payload_bytes / (double)p->wire_bytes;
    g_string_append_printf (out, "  channel       %s from QEMU, %s on the wire",
                            payload, wire);
    if (lz4)
      g_string_append_printf (out, " (lz4: %.2fx smaller)\n",
                              ratio > 0 ? ratio : 1.0);
    else
      g_string_append (out, " (not compressed)\n");
  }
  return g_string_free (out, FALSE);
}

void
cli_interrupt_text (const char *id, const char *kind, char *buf, gsize size)
{
  /* Only migrations can be cancelled; a snapshot or clone job runs to its
   * end on the host. */
  gboolean cancellable
      = g_str_equal (kind, "migration") || g_str_equal (kind, "job");

  g_snprintf (buf, size,
              "droverctl: interrupted: the %s job %s goes on on the "
              "scheduler (this command only followed it).\n"
              "  follow it again:  droverctl job watch %s\n"
              "%s%s%s",
              kind, id, id,
              cancellable ? "  cancel it:        droverctl job cancel " : "",
              cancellable ? id : "", cancellable ? "\n" : "");
}
