/* droverctl jobs (every page of ListJobs), job watch, job cancel */
#include "droverctl.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static char *
format_progress (double p)
{
  if (!isfinite (p) || p < 0)
    p = 0;
  if (p > 1)
    p = 1;
  return g_strdup_printf ("%d%%", (int)floor (p * 100 + 0.5));
}

/* Jobs asked for per ListJobs call; the scheduler caps pages at 1000. */
#define CTL_JOBS_PAGE_SIZE 500

/* Every job, following ListJobs' pages: the replies (ListJobsReply), which
 * own the jobs, in order; NULL with ERROR. */
static GPtrArray *
list_all_jobs (Ctl *ctl, GError **error)
{
  g_autoptr (GPtrArray) pages = g_ptr_array_new_with_free_func (proto_msg_free);
  const char *token = "";

  for (;;)
    {
      Drover__V1__ListJobsRequest req = DROVER__V1__LIST_JOBS_REQUEST__INIT;
      const Drover__V1__ListJobsReply *reply;

      req.page_size = CTL_JOBS_PAGE_SIZE;
      req.page_token = (char *)token;
      reply = (const void *)ctl_call (ctl, DROVER_SCHED_METHOD_LIST_JOBS,
                                      &req.base, 0, error);
      if (reply == NULL)
        return NULL;
      g_ptr_array_add (pages, (gpointer)reply);
      if (reply->next_page_token[0] == '\0')
        return g_steal_pointer (&pages);
      /* Each page must move on, or this would never end. */
      if (strcmp (reply->next_page_token, token) == 0)
        {
          g_set_error (error, PROTO_ERROR, PROTO_STATUS_INTERNAL,
                       "ListJobs returned the same page token twice");
          return NULL;
        }
      token = reply->next_page_token;
    }
}

int
ctl_cmd_jobs (Ctl *ctl, int argc, char **argv)
{
  static const char *const headers[]
      = { "ID", "KIND", "VM", "STATE", ">PROGRESS", ">AGE", "MESSAGE", NULL };
  gboolean json = FALSE;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) pages = NULL;
  g_autoptr (CliTable) table = cli_table_new (headers);
  g_autoptr (ProtoJson) out = proto_json_new (TRUE);
  int rc;

  if ((rc = ctl_parse_json_only ("jobs",
                                 "List every job (create, delete, start, "
                                 "stop, destroy, migrate, snapshot-*, clone, "
                                 "drain, balance, backup, restore, verify, "
                                 "gc): queued, running, done or failed, "
                                 "with what happened.",
                                 argc, argv, &json))
      >= 0)
    return rc;
  pages = list_all_jobs (ctl, &error);
  if (pages == NULL)
    return ctl_fail (error);

  /* One listing of every page: {"jobs": [...]} as one reply would be. */
  proto_json_begin_object (out);
  proto_json_key (out, "jobs");
  proto_json_begin_array (out);
  for (guint p = 0; p < pages->len; p++)
    {
      const Drover__V1__ListJobsReply *reply = pages->pdata[p];

      for (size_t i = 0; i < reply->n_jobs; i++)
        {
          const Drover__V1__Job *job = reply->jobs[i];
          const char *text_msg = job->error[0] ? job->error : job->message;

          proto_json_message (out, &job->base);
          cli_table_add_take (table, g_strdup (job->id), g_strdup (job->kind),
                              g_strdup (job->vm), g_strdup (job->state),
                              format_progress (job->progress),
                              ctl_format_age (job->created_ms),
                              g_strdup (text_msg));
        }
    }
  proto_json_end_array (out);
  proto_json_end_object (out);
  if (!json)
    return ctl_print_table (table);
  ctl_print_json (out);
  return CTL_EXIT_OK;
}

/* What an interrupted watch prints: the job goes on without us, and how
 * to follow or cancel it. Written before the watch starts, so that the
 * handler only calls async-signal-safe functions. */
static char interrupt_text[512];
static volatile sig_atomic_t interrupt_line_open;

/* What a job watch remembers between stream messages. */
typedef struct
{
  gboolean json;
  gboolean tty;
  gboolean migration;  /* a migrate job: progress bar and summary */
  gboolean storage;    /* a snapshot-* or clone job: progress bar */
  gboolean line_open;  /* a TTY progress line is drawn, no newline yet */
  gint64 last_line_us; /* monotonic time of the last progress line */
  char *last_text;     /* not a TTY: the last progress line printed */
  int percent;
  guint n_seen;
  const char *kind;       /* "migration" or "job", for the Ctrl-C text */
  ProtobufCMessage *last; /* copy of the last Job */
} WatchState;

static ProtobufCMessage *
copy_message (const ProtobufCMessage *msg)
{
  gsize len = protobuf_c_message_get_packed_size (msg);
  g_autofree guint8 *buf = g_malloc (MAX (len, 1));

  protobuf_c_message_pack (msg, buf);
  return protobuf_c_message_unpack (msg->descriptor, NULL, len, buf);
}

static gboolean
job_over (const Drover__V1__Job *job)
{
  return proto_job_state_is_final (job->state);
}

/* Not a TTY: a line that says nothing new is printed again only after
 * this long, to show the job is still alive. */
#define CTL_PROGRESS_REPEAT_US (10 * G_USEC_PER_SEC)

/* One progress line for JOB from LINE_OF: on a TTY redrawn in place
 * (the summary follows on its own lines), else printed at most once a
 * second, and at once when CHANGED or when the job is over; the same line
 * again (a phase waiting on a host) at most every CTL_PROGRESS_REPEAT_US. */
static void
show_progress (WatchState *ws, const Drover__V1__Job *job,
               char *(*line_of) (const Drover__V1__Job *job, guint bar_width),
               gboolean changed)
{
  gint64 now = g_get_monotonic_time ();
  g_autofree char *line = NULL;

  if (ws->json)
    return;
  if (ws->tty)
    {
      struct winsize ws_size = { 0 };

      line = line_of (job, 24);
      /* A wrapped line cannot be redrawn with \r: cut it to the terminal. */
      if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws_size) == 0 && ws_size.ws_col > 1
          && strlen (line) >= ws_size.ws_col)
        line[ws_size.ws_col - 1] = '\0';
      printf ("\r%s\033[K", line);
      ws->line_open = TRUE;
      interrupt_line_open = TRUE;
    }
  else if (changed || job_over (job)
           || now - ws->last_line_us >= G_USEC_PER_SEC)
    {
      line = line_of (job, 0);
      if (g_strcmp0 (line, ws->last_text) == 0 && !job_over (job)
          && now - ws->last_line_us < CTL_PROGRESS_REPEAT_US)
        return;
      printf ("%s\n", line);
      ws->last_line_us = now;
      g_free (ws->last_text);
      ws->last_text = g_strdup (line);
    }
  fflush (stdout);
}

/* A migration: a progress bar, and its first line at once. */
static void
show_migration (WatchState *ws, const Drover__V1__Job *job)
{
  show_progress (ws, job, cli_migration_progress_line, ws->n_seen == 0);
}

/* A snapshot or clone job: one progress line, and every phase change. */
static void
show_storage (WatchState *ws, const Drover__V1__Job *job)
{
  const Drover__V1__Job *prev = (const Drover__V1__Job *)ws->last;
  gboolean phase_changed
      = prev == NULL || (prev->storage == NULL) != (job->storage == NULL)
        || (prev->storage != NULL
            && g_strcmp0 (prev->storage->phase, job->storage->phase) != 0);

  show_progress (ws, job, cli_storage_progress_line, phase_changed);
}

static void
show_plain (WatchState *ws, const Drover__V1__Job *job)
{
  const Drover__V1__Job *prev = (const Drover__V1__Job *)ws->last;
  g_autofree char *progress = format_progress (job->progress);
  int percent = atoi (progress);

  /* One line per change of state, message or whole percent. */
  if (!ws->json
      && (prev == NULL || g_strcmp0 (prev->state, job->state) != 0
          || g_strcmp0 (prev->message, job->message) != 0
          || ws->percent != percent))
    {
      printf ("job %s (%s %s): %s %s%s%s\n", job->id, job->kind,
              job->vm[0] ? job->vm : "-", job->state, progress,
              job->message[0] ? " " : "", job->message);
      fflush (stdout);
    }
  ws->percent = percent;
}

static gboolean
on_job (const ProtobufCMessage *msg, gpointer user_data)
{
  WatchState *ws = user_data;
  const Drover__V1__Job *job = (const Drover__V1__Job *)msg;

  if (ws->n_seen == 0)
    {
      ws->migration = g_str_equal (job->kind, PROTO_JOB_KIND_MIGRATE);
      ws->storage = g_str_has_prefix (job->kind, "snapshot-")
                    || g_str_equal (job->kind, PROTO_JOB_KIND_CLONE)
                    || g_str_equal (job->kind, PROTO_JOB_KIND_BACKUP)
                    || g_str_equal (job->kind, PROTO_JOB_KIND_RESTORE);
    }
  if (ws->migration)
    show_migration (ws, job);
  else if (ws->storage)
    show_storage (ws, job);
  else
    show_plain (ws, job);
  ws->n_seen++;
  if (ws->last != NULL)
    protobuf_c_message_free_unpacked (ws->last, NULL);
  ws->last = copy_message (msg);
  /* Finished jobs end the watch even if the server keeps the stream. */
  return !job_over (job);
}

/* --- Ctrl-C while following a job ------------------------------------- */

static void
on_interrupt (int sig)
{
  ssize_t n G_GNUC_UNUSED;

  if (interrupt_line_open)
    n = write (STDOUT_FILENO, "\n", 1);
  n = write (STDERR_FILENO, interrupt_text, strlen (interrupt_text));
  _exit (128 + sig);
}

static void
watch_catch_interrupt (const char *id, const char *kind)
{
  struct sigaction sa = { 0 };

  cli_interrupt_text (id, kind, interrupt_text, sizeof interrupt_text);
  sa.sa_handler = on_interrupt;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, NULL);
  sigaction (SIGTERM, &sa, NULL);
}

int
ctl_watch_job (Ctl *ctl, const char *id, const char *kind, gboolean json)
{
  Drover__V1__WatchJobRequest req = DROVER__V1__WATCH_JOB_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  WatchState ws = { 0 };
  const Drover__V1__Job *job;
  ProtoClient *client;
  gboolean ok;
  int rc;

  client = ctl_client (ctl, &error);
  if (client == NULL)
    return ctl_fail (error);
  ws.json = json;
  ws.tty = isatty (STDOUT_FILENO);
  ws.kind = kind;
  req.id = (char *)id;
  watch_catch_interrupt (id, kind);
  ok = proto_client_stream_sync (client, DROVER_SCHED_SERVICE,
                                 DROVER_SCHED_METHOD_WATCH_JOB, &req.base,
                                 on_job, &ws, &error);
  signal (SIGINT, SIG_DFL);
  signal (SIGTERM, SIG_DFL);
  if (ws.line_open)
    {
      fputc ('\n', stdout);
      fflush (stdout);
    }
  job = (const Drover__V1__Job *)ws.last;
  if (json && job != NULL)
    ctl_print_message_json (ws.last);
  else if (ws.migration && job != NULL && job_over (job))
    {
      g_autofree char *summary = cli_migration_summary (job);
      fputs (summary, stdout);
    }
  else if (ws.storage && job != NULL && g_str_equal (job->state, PROTO_JOB_DONE)
           && (g_str_equal (job->kind, PROTO_JOB_KIND_BACKUP)
               || g_str_equal (job->kind, PROTO_JOB_KIND_RESTORE)))
    {
      g_autofree char *summary = ctl_backup_summary (job);
      fputs (summary, stdout);
    }
  else if (ws.storage && job != NULL && ws.tty
           && g_str_equal (job->state, PROTO_JOB_DONE))
    printf ("%s\n", job->message);

  if (!ok)
    {
      rc = ctl_fail (error);
    }
  else if (job != NULL && g_str_equal (job->state, PROTO_JOB_DONE))
    {
      rc = CTL_EXIT_OK;
    }
  else if (job != NULL && g_str_equal (job->state, PROTO_JOB_FAILED))
    {
      ctl_print_error ("job %s failed: %s", id,
                       job->error[0]     ? job->error
                       : job->message[0] ? job->message
                                         : "no reason given");
      rc = CTL_EXIT_FAILURE;
    }
  else
    {
      ctl_print_error ("job %s: stream ended with the job %s", id,
                       job ? job->state : "never reported");
      rc = CTL_EXIT_FAILURE;
    }
  if (ws.last != NULL)
    protobuf_c_message_free_unpacked (ws.last, NULL);
  g_free (ws.last_text);
  return rc;
}

/* --- job cancel --------------------------------------------------------- */

/* Keeps a copy of the last Job of a WatchJob stream; ends at a final one. */
static gboolean
on_job_quiet (const ProtobufCMessage *msg, gpointer user_data)
{
  ProtobufCMessage **last = user_data;

  if (*last != NULL)
    protobuf_c_message_free_unpacked (*last, NULL);
  *last = copy_message (msg);
  return !job_over ((const Drover__V1__Job *)msg);
}

/* CancelJob, then (for a migration being aborted) waits until the job has
 * ended, so that the exit code says what happened: 0 cancelled, 1 the
 * scheduler refused or the job finished anyway. */
static int
job_cancel (Ctl *ctl, const char *id, gboolean json)
{
  Drover__V1__CancelJobRequest req = DROVER__V1__CANCEL_JOB_REQUEST__INIT;
  Drover__V1__WatchJobRequest wreq = DROVER__V1__WATCH_JOB_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  ProtobufCMessage *last = NULL;
  const Drover__V1__Job *job;
  ProtoClient *client;
  int rc;

  req.id = (char *)id;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_CANCEL_JOB, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  job = (const Drover__V1__Job *)msg;
  if (!job_over (job))
    {
      if (!json)
        {
          printf ("job %s: cancel requested, waiting for the %s to stop\n", id,
                  job->kind);
          fflush (stdout);
        }
      client = ctl_client (ctl, &error);
      wreq.id = (char *)id;
      if (client == NULL
          || !proto_client_stream_sync (
              client, DROVER_SCHED_SERVICE, DROVER_SCHED_METHOD_WATCH_JOB,
              &wreq.base, on_job_quiet, &last, &error))
        {
          if (last != NULL)
            protobuf_c_message_free_unpacked (last, NULL);
          return ctl_fail (error);
        }
      if (last != NULL)
        job = (const Drover__V1__Job *)last;
    }
  if (json)
    ctl_print_message_json (&job->base);
  if (g_str_equal (job->state, PROTO_JOB_FAILED))
    {
      if (!json)
        printf ("job %s (%s of %s) cancelled: %s\n", id, job->kind, job->vm,
                job->error[0] ? job->error : job->message);
      rc = CTL_EXIT_OK;
    }
  else
    {
      ctl_print_error ("job %s is %s: %s", id, job->state,
                       g_str_equal (job->state, PROTO_JOB_DONE)
                           ? "it finished before the cancel took effect"
                           : "the stream ended before it stopped");
      rc = CTL_EXIT_FAILURE;
    }
  if (last != NULL)
    protobuf_c_message_free_unpacked (last, NULL);
  return rc;
}

int
ctl_cmd_job (Ctl *ctl, int argc, char **argv)
{
  const char *usage = "job watch|cancel ID [--json]";
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job as JSON instead of progress", NULL },
          { NULL } };
  int rc;

  if ((rc = ctl_parse_options (
           "job", "watch|cancel ID [--json]",
           "watch: follow a job until it ends (a migration shows its "
           "progress and summary, a snapshot or clone its progress); exit "
           "0 if it is done, 1 if it failed. "
           "Ctrl-C stops following, not the job.\n"
           "cancel: cancel a job (operator). A queued migration is dropped; "
           "a running one is aborted and its VM stays running on the "
           "source; a finished job, a migration switching over and the "
           "single-call jobs (create, delete, start, stop, destroy) are "
           "refused. Waits until the job has stopped; exit 0 once it is "
           "cancelled.",
           entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 2)
    return ctl_usage_error (usage, "missing job subcommand (watch or cancel)");
  if (!g_str_equal (argv[1], "watch") && !g_str_equal (argv[1], "cancel"))
    return ctl_usage_error (usage, "unknown job subcommand '%s'", argv[1]);
  if (argc < 3)
    return ctl_usage_error (usage, "missing job id");
  if (argc > 3)
    return ctl_usage_error (usage, "unexpected argument '%s'", argv[3]);
  if (argv[2][0] == '\0' || strlen (argv[2]) > 128)
    return ctl_usage_error (usage, "bad job id");
  if (g_str_equal (argv[1], "cancel"))
    return job_cancel (ctl, argv[2], json);
  return ctl_watch_job (ctl, argv[2], "job", json);
}
