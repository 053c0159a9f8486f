/* droverctl events: the scheduler's event stream (WatchEvents). Without -f
 * the last N events and out; with -f it then follows until interrupted.
 * --json prints one JSON object per line (JSON Lines), flushed at once,
 * so that another program can follow it through a pipe. */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define CTL_EVENTS_DEFAULT_LAST 20

typedef struct
{
  gboolean json;
} EventsState;

/* The writer's indented JSON on one line: it escapes control characters
 * inside strings, so every raw newline is layout, as are the spaces of
 * indentation after it. */
static void
print_json_line (const ProtobufCMessage *msg)
{
  g_autoptr (ProtoJson) json = proto_json_new (TRUE);
  const char *text;
  g_autoptr (GString) line = g_string_new (NULL);

  proto_json_message (json, msg);
  text = proto_json_get (json);
  for (const char *p = text; *p; p++)
    {
      if (*p == '\n')
        {
          while (p[1] == ' ')
            p++;
          continue;
        }
      g_string_append_c (line, *p);
    }
  g_string_append_c (line, '\n');
  fputs (line->str, stdout);
}

static void
print_event_line (const Drover__V1__Event *ev)
{
  g_autoptr (GDateTime) t
      = g_date_time_new_from_unix_local (ev->time_ms / 1000);
  g_autofree char *when = t ? g_date_time_format (t, "%H:%M:%S") : NULL;
  g_autoptr (GString) subject = g_string_new (NULL);

  if (ev->vm[0] != '\0')
    g_string_append_printf (subject, "vm=%s ", ev->vm);
  if (ev->host[0] != '\0')
    g_string_append_printf (subject, "host=%s ", ev->host);
  if (ev->job_id[0] != '\0')
    g_string_append_printf (subject, "job=%.8s ", ev->job_id);
  if (ev->job != NULL && ev->job->migration != NULL
      && g_str_equal (ev->kind, "job.progress"))
    {
      /* A migration's progress line says more than its message. */
      g_autofree char *line = cli_migration_progress_line (ev->job, 0);

      printf ("%s  %-15s %s(%s) %s\n", when ? when : "-", ev->kind,
              subject->str, ev->job->kind, g_strstrip (line));
      return;
    }
  if (ev->job != NULL && ev->job->kind[0] != '\0')
    g_string_append_printf (subject, "(%s %d%%) ", ev->job->kind,
                            (int)(ev->job->progress * 100 + 0.5));
  printf ("%s  %-15s %s%s\n", when ? when : "-", ev->kind, subject->str,
          ev->message);
}

static gboolean
on_event (const ProtobufCMessage *msg, gpointer user_data)
{
  EventsState *st = user_data;
  const Drover__V1__Event *ev = (const void *)msg;

  if (st->json)
    print_json_line (msg);
  else
    print_event_line (ev);
  fflush (stdout);
  return TRUE;
}

int
ctl_cmd_events (Ctl *ctl, int argc, char **argv)
{
  gboolean follow = FALSE;
  gboolean json = FALSE;
  gint last = CTL_EVENTS_DEFAULT_LAST;
  const GOptionEntry entries[] = {
    { "follow", 'f', 0, G_OPTION_ARG_NONE, &follow,
      "Then follow new events until interrupted", NULL },
    { "last", 'n', 0, G_OPTION_ARG_INT, &last,
      "Start with the last N events the scheduler kept (default 20; 0 with "
      "-f: only new ones)",
      "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json,
      "One JSON object per line (JSON Lines)", NULL },
    { NULL }
  };
  const char *usage = "events [-f] [-n N] [--json]";
  Drover__V1__WatchEventsRequest req = DROVER__V1__WATCH_EVENTS_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  EventsState st = { 0 };
  ProtoClient *client;
  int rc;

  if ((rc = ctl_parse_options_only (
           "events", "[-f] [-n N] [--json]",
           "Show the cluster's events: VM lifecycle, hosts going up and "
           "down, jobs starting, progressing and ending. A reader that "
           "falls too far behind is dropped with a \"dropped\" event.",
           entries, argc, argv))
      >= 0)
    return rc;
  if (last < 0)
    return ctl_usage_error (usage, "--last must be 0 or more, got %d", last);
  client = ctl_client (ctl, &error);
  if (client == NULL)
    return ctl_fail (error);
  st.json = json;
  req.backlog = (guint)last;
  req.follow = follow;
  if (!proto_client_stream_sync (client, DROVER_SCHED_SERVICE,
                                 DROVER_SCHED_METHOD_WATCH_EVENTS, &req.base,
                                 on_event, &st, &error))
    return ctl_fail (error);
  return CTL_EXIT_OK;
}
