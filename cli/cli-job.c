/* droverctl jobs, job watch */
#include "droverctl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

static char *
format_progress (double p)
{
  if (!isfinite (p) || p < 0)
    p = 0;
  if (p > 1)
    p = 1;
  return g_strdup_printf ("%d%%", (int) floor (p * 100 + 0.5));
}

int
ctl_cmd_jobs (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { NULL }
  };
  static const char *const headers[] = {
    "ID", "KIND", "VM", "STATE", ">PROGRESS", ">AGE", "MESSAGE", NULL
  };
  Drover__V1__ListJobsRequest req = DROVER__V1__LIST_JOBS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CliTable) table = NULL;
  g_autofree char *text = NULL;
  const Drover__V1__ListJobsReply *reply;
  int rc;

  if ((rc = ctl_parse_options ("jobs", "[--json]", "List jobs.", entries,
                               &argc, &argv)) >= 0)
    return rc;
  if (argc > 1)
    return ctl_usage_error ("jobs [--json]", "unexpected argument '%s'", argv[1]);
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_LIST_JOBS, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__ListJobsReply *) msg;
  if (json) {
    ctl_print_message_json (msg);
    return CTL_EXIT_OK;
  }
  table = cli_table_new (headers);
  for (size_t i = 0; i < reply->n_jobs; i++) {
    const Drover__V1__Job *job = reply->jobs[i];
    const char *text_msg = job->error[0] ? job->error : job->message;
    cli_table_add_take (table, g_strdup (job->id), g_strdup (job->kind),
                        g_strdup (job->vm), g_strdup (job->state),
                        format_progress (job->progress),
                        ctl_format_age (job->created_ms),
                        g_strdup (text_msg));
  }
  text = cli_table_render (table);
  fputs (text, stdout);
  return CTL_EXIT_OK;
}

/* What job watch remembers between stream messages. */
typedef struct {
  char *state;
  char *message;
  char *error;
  int percent;
  guint n_seen;
} WatchState;

static gboolean
on_job (const ProtobufCMessage *msg, gpointer user_data)
{
  WatchState *ws = user_data;
  const Drover__V1__Job *job = (const Drover__V1__Job *) msg;
  g_autofree char *progress = format_progress (job->progress);
  int percent = atoi (progress);

  /* One line per change of state, message or whole percent. */
  if (ws->n_seen == 0 || g_strcmp0 (ws->state, job->state) != 0 ||
      g_strcmp0 (ws->message, job->message) != 0 || ws->percent != percent) {
    printf ("job %s (%s %s): %s %s%s%s\n", job->id, job->kind,
            job->vm[0] ? job->vm : "-", job->state, progress,
            job->message[0] ? " " : "", job->message);
    fflush (stdout);
  }
  ws->n_seen++;
  ws->percent = percent;
  g_free (ws->state);
  ws->state = g_strdup (job->state);
  g_free (ws->message);
  ws->message = g_strdup (job->message);
  g_free (ws->error);
  ws->error = g_strdup (job->error);
  /* Finished jobs end the watch even if the server keeps the stream. */
  return !(g_str_equal (job->state, "done") || g_str_equal (job->state, "failed"));
}

int
ctl_cmd_job (Ctl *ctl, int argc, char **argv)
{
  const char *usage = "job watch ID";
  Drover__V1__WatchJobRequest req = DROVER__V1__WATCH_JOB_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  WatchState ws = { 0 };
  ProtoClient *client;
  int rc;

  if ((rc = ctl_parse_options ("job", "watch ID", "Follow a job until it ends; "
                               "exit 0 if it is done, 1 if it failed.",
                               NULL, &argc, &argv)) >= 0)
    return rc;
  if (argc < 2)
    return ctl_usage_error (usage, "missing job subcommand");
  if (!g_str_equal (argv[1], "watch"))
    return ctl_usage_error (usage, "unknown job subcommand '%s'", argv[1]);
  if (argc < 3)
    return ctl_usage_error (usage, "missing job id");
  if (argc > 3)
    return ctl_usage_error (usage, "unexpected argument '%s'", argv[3]);
  if (argv[2][0] == '\0' || strlen (argv[2]) > 128)
    return ctl_usage_error (usage, "bad job id");

  client = ctl_client (ctl, &error);
  if (client == NULL)
    return ctl_fail (error);
  req.id = argv[2];
  if (!proto_client_stream_sync (client, DROVER_SCHED_SERVICE,
                                 DROVER_SCHED_METHOD_WATCH_JOB, &req.base,
                                 on_job, &ws, &error)) {
    rc = ctl_fail (error);
  } else if (g_strcmp0 (ws.state, "done") == 0) {
    rc = CTL_EXIT_OK;
  } else if (g_strcmp0 (ws.state, "failed") == 0) {
    ctl_print_error ("job %s failed: %s", argv[2],
                     ws.error && *ws.error ? ws.error
                     : ws.message && *ws.message ? ws.message : "no reason given");
    rc = CTL_EXIT_FAILURE;
  } else {
    ctl_print_error ("job %s: stream ended with the job %s", argv[2],
                     ws.state ? ws.state : "never reported");
    rc = CTL_EXIT_FAILURE;
  }
  g_free (ws.state);
  g_free (ws.message);
  g_free (ws.error);
  return rc;
}
