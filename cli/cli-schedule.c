/* droverctl schedule: disaster-recovery schedules (issue 16). */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>

#include "sched-calendar.h"

static const char schedule_usage_text[]
    = "Usage: droverctl schedule SUBCOMMAND [ARGS...]\n"
      "\n"
      "  create NAME --select S [--select S ...] --action snapshot|backup\n"
      "         (--every DURATION | --at CALENDAR) [--keep-last N]\n"
      "         [--keep-hourly N] [--keep-daily N] [--keep-weekly N]\n"
      "         [--keep-monthly N] [--keep-yearly N] [--repo R]\n"
      "         [--rpo DURATION] [--window DURATION] [--paused]\n"
      "         [--drill-every N] [--drill-ready REGEX|agent]\n"
      "         [--drill-timeout DURATION] [--json]\n"
      "  list [--json]\n"
      "  show NAME [--json]\n"
      "  pause NAME | resume NAME | delete NAME | run-now NAME\n"
      "  drill NAME [--vm VM] [--json]   restore drills now (backups)\n"
      "\n"
      "Selectors: VM names, globs of them (web-*), host:NAME, group:NAME\n"
      "(the VMs labelled group=NAME), label:KEY=VALUE. Durations:\n"
      "90s, 15m, 1h30m, 2d, 1w. Calendars: hourly, daily, weekly, monthly,\n"
      "'Mon..Fri 02:30', '*-*-01 03:00', '*:0/15' (the scheduler's local\n"
      "time).\n";

#define KV_WIDTH 16

static char *
when_text (const Drover__V1__Schedule *s)
{
  g_autofree char *every = NULL;

  if (s->at[0])
    return g_strdup_printf ("at %s", s->at);
  every = sched_duration_format (s->every_s);
  return g_strdup_printf ("every %s", every);
}

static char *
keep_text (const Drover__V1__KeepRules *k)
{
  GString *out = g_string_new (NULL);
  const struct
  {
    const char *name;
    guint n;
  } rules[]
      = { { "last", k ? k->last : 0 },       { "hourly", k ? k->hourly : 0 },
          { "daily", k ? k->daily : 0 },     { "weekly", k ? k->weekly : 0 },
          { "monthly", k ? k->monthly : 0 }, { "yearly", k ? k->yearly : 0 } };

  for (guint i = 0; i < G_N_ELEMENTS (rules); i++)
    if (rules[i].n)
      g_string_append_printf (out, "%s%s %u", out->len ? ", " : "",
                              rules[i].name, rules[i].n);
  if (out->len == 0)
    g_string_append (out, "everything");
  return g_string_free (out, FALSE);
}

static char *
join (char **items, gsize n)
{
  g_autofree char **v = g_new0 (char *, n + 1);

  for (gsize i = 0; i < n; i++)
    v[i] = items[i];
  return n ? g_strjoinv (", ", v) : g_strdup ("(none)");
}

static void
print_schedule (const Drover__V1__Schedule *s)
{
  ctl_kv (KV_WIDTH, "name", s->name);
  ctl_kv (KV_WIDTH, "action", s->action);
  ctl_kv_take (KV_WIDTH, "when", when_text (s));
  ctl_kv_take (KV_WIDTH, "select", join (s->select, s->n_select));
  ctl_kv_take (KV_WIDTH, "matches", join (s->matched, s->n_matched));
  ctl_kv_take (KV_WIDTH, "keep", keep_text (s->keep));
  if (s->repo[0])
    ctl_kv (KV_WIDTH, "repository", s->repo);
  ctl_kv_take (KV_WIDTH, "rpo", sched_duration_format (MAX (s->rpo_s, 1)));
  ctl_kv_take (KV_WIDTH, "start window",
               s->window_s ? sched_duration_format (s->window_s)
                           : g_strdup ("none"));
  ctl_kv (KV_WIDTH, "state", s->paused ? "paused" : "active");
  ctl_kv_take (KV_WIDTH, "next run",
               s->paused || !s->next_run_ms ? g_strdup ("-")
                                            : cli_format_time (s->next_run_ms));
  ctl_kv_take (KV_WIDTH, "last slot",
               s->last_slot_ms ? cli_format_time (s->last_slot_ms)
                               : g_strdup ("never"));
  ctl_kv_take (KV_WIDTH, "runs",
               g_strdup_printf ("%u done, %u failed, %u running", s->runs_ok,
                                s->runs_failed, s->running));
  ctl_kv_take (KV_WIDTH, "failures in row",
               g_strdup_printf ("%u", s->failures_in_row));
  if (s->last_error[0])
    ctl_kv (KV_WIDTH, "last error", s->last_error);
  if (strcmp (s->action, "backup") == 0)
    {
      g_autofree char *every
          = s->drill_every
                ? g_strdup_printf ("every %u good backups", s->drill_every)
                : g_strdup ("when asked (schedule drill)");
      g_autofree char *timeout = sched_duration_format (
          s->drill_timeout_s ? s->drill_timeout_s : 600);

      if (strcmp (s->drill_ready, "agent") == 0)
        ctl_kv_take (KV_WIDTH, "drills",
                     g_strdup_printf ("%s; ready when its guest agent "
                                      "answers, within %s",
                                      every, timeout));
      else
        ctl_kv_take (
            KV_WIDTH, "drills",
            g_strdup_printf (
                "%s; ready on /%s/ within %s", every,
                s->drill_ready[0] ? s->drill_ready : "login:", timeout));
    }
}

/* Exactly one positional argument, the schedule's name. */
static int
name_arg (const char *usage, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;

  if (argc < 2)
    return ctl_usage_error (usage, "missing schedule name");
  if (argc > 2)
    return ctl_usage_error (usage, "unexpected argument '%s'", argv[2]);
  if (!proto_name_validate ("schedule", argv[1], &error))
    return ctl_usage_error (usage, "%s", error->message);
  return -1;
}

/* Prints MSG, a Schedule, as JSON or as key: value lines. */
static int
print_reply (ProtobufCMessage *msg, gboolean json)
{
  if (json)
    ctl_print_message_json (msg);
  else
    print_schedule ((const Drover__V1__Schedule *)msg);
  return CTL_EXIT_OK;
}

#define CREATE_USAGE                                                           \
  "schedule create NAME --select S --action snapshot|backup (--every D | "     \
  "--at CAL) [--keep-... N] [--repo R] [--rpo D] [--window D] [--json]"

static int
schedule_create (Ctl *ctl, int argc, char **argv)
{
  g_auto (GStrv) select = NULL;
  g_autofree char *action = NULL, *every = NULL, *at = NULL, *repo = NULL;
  g_autofree char *rpo = NULL, *window = NULL;
  g_autofree char *drill_ready = NULL, *drill_timeout = NULL;
  gint keep[6] = { 0 };
  gint drill_every = 0;
  gboolean paused = FALSE, json = FALSE;
  const GOptionEntry entries[] = {
    { "select", 0, 0, G_OPTION_ARG_STRING_ARRAY, &select,
      "VMs: a name, a glob, host:NAME, group:NAME, label:K=V (repeatable)",
      "S" },
    { "action", 0, 0, G_OPTION_ARG_STRING, &action, "snapshot or backup",
      "ACTION" },
    { "every", 0, 0, G_OPTION_ARG_STRING, &every, "Fire every DURATION",
      "DURATION" },
    { "at", 0, 0, G_OPTION_ARG_STRING, &at, "Fire at a calendar expression",
      "CALENDAR" },
    { "keep-last", 0, 0, G_OPTION_ARG_INT, &keep[0], "Keep the last N", "N" },
    { "keep-hourly", 0, 0, G_OPTION_ARG_INT, &keep[1], "Keep N hourly", "N" },
    { "keep-daily", 0, 0, G_OPTION_ARG_INT, &keep[2], "Keep N daily", "N" },
    { "keep-weekly", 0, 0, G_OPTION_ARG_INT, &keep[3], "Keep N weekly", "N" },
    { "keep-monthly", 0, 0, G_OPTION_ARG_INT, &keep[4], "Keep N monthly", "N" },
    { "keep-yearly", 0, 0, G_OPTION_ARG_INT, &keep[5], "Keep N yearly", "N" },
    { "repo", 0, 0, G_OPTION_ARG_STRING, &repo, "Backups: the repository",
      "R" },
    { "rpo", 0, 0, G_OPTION_ARG_STRING, &rpo,
      "Recovery point objective (default: two periods)", "DURATION" },
    { "window", 0, 0, G_OPTION_ARG_STRING, &window,
      "Spread starts over this (default: a quarter period, at most 10m)",
      "DURATION" },
    { "paused", 0, 0, G_OPTION_ARG_NONE, &paused, "Create it paused", NULL },
    { "drill-every", 0, 0, G_OPTION_ARG_INT, &drill_every,
      "Backups: a restore drill every N good backups of a VM", "N" },
    { "drill-ready", 0, 0, G_OPTION_ARG_STRING, &drill_ready,
      "A drill's scratch VM is ready when its console shows a line "
      "matching this (default: login:), or with the literal value agent "
      "when its QEMU guest agent answers guest-ping",
      "REGEX|agent" },
    { "drill-timeout", 0, 0, G_OPTION_ARG_STRING, &drill_timeout,
      "A drill fails when not ready this long after the restore began "
      "(default 10m)",
      "DURATION" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print it as JSON", NULL },
    { NULL },
  };
  Drover__V1__Schedule req = DROVER__V1__SCHEDULE__INIT;
  Drover__V1__KeepRules rules = DROVER__V1__KEEP_RULES__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = ctl_parse_options ("schedule create",
                               "NAME --select S --action A (--every D | --at "
                               "CAL) [OPTIONS]",
                               "Create a snapshot or backup schedule.", entries,
                               &argc, &argv))
          >= 0
      || (rc = name_arg (CREATE_USAGE, argc, argv)) >= 0)
    return rc;
  if (!select)
    return ctl_usage_error (CREATE_USAGE, "give at least one --select");
  if (!action)
    return ctl_usage_error (CREATE_USAGE, "give --action snapshot|backup");
  if ((every != NULL) == (at != NULL))
    return ctl_usage_error (CREATE_USAGE, "give exactly one of --every, --at");
  for (guint i = 0; i < G_N_ELEMENTS (keep); i++)
    if (keep[i] < 0)
      return ctl_usage_error (CREATE_USAGE, "keep counts are 0 or more");
  if (drill_every < 0)
    return ctl_usage_error (CREATE_USAGE, "--drill-every is 0 or more");
  if (drill_timeout
      && !sched_duration_parse (drill_timeout, &req.drill_timeout_s, &error))
    return ctl_usage_error (CREATE_USAGE, "%s", error->message);
  if ((every && !sched_duration_parse (every, &req.every_s, &error))
      || (rpo && !sched_duration_parse (rpo, &req.rpo_s, &error))
      || (window && !sched_duration_parse (window, &req.window_s, &error)))
    return ctl_usage_error (CREATE_USAGE, "%s", error->message);
  if (at)
    {
      g_autoptr (SchedCalendar) cal = sched_calendar_parse (at, &error);

      if (!cal)
        return ctl_usage_error (CREATE_USAGE, "%s", error->message);
    }
  req.name = argv[1];
  req.n_select = g_strv_length (select);
  req.select = select;
  req.action = action;
  req.at = at ? at : (char *)"";
  req.repo = repo ? repo : (char *)"";
  rules.last = keep[0];
  rules.hourly = keep[1];
  rules.daily = keep[2];
  rules.weekly = keep[3];
  rules.monthly = keep[4];
  rules.yearly = keep[5];
  req.keep = &rules;
  req.paused = paused;
  req.drill_every = drill_every;
  req.drill_ready = drill_ready ? drill_ready : (char *)"";
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_CREATE_SCHEDULE, &req.base, 0,
                  &error);
  if (!msg)
    return ctl_fail (error);
  return print_reply (msg, json);
}

static int
schedule_list (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print them as JSON", NULL },
    { NULL },
  };
  static const char *const headers[]
      = { "NAME",  "ACTION",   "WHEN", "VMS",    "KEEP",
          "STATE", "NEXT RUN", "OK",   "FAILED", NULL };
  Drover__V1__ListSchedulesRequest req
      = DROVER__V1__LIST_SCHEDULES_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__ListSchedulesReply *reply;
  g_autoptr (CliTable) table = NULL;
  int rc;

  if ((rc = ctl_parse_options ("schedule list", "[--json]",
                               "List the schedules.", entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc > 1)
    return ctl_usage_error ("schedule list [--json]",
                            "unexpected argument '%s'", argv[1]);
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_LIST_SCHEDULES, &req.base, 0,
                  &error);
  if (!msg)
    return ctl_fail (error);
  if (json)
    {
      ctl_print_message_json (msg);
      return CTL_EXIT_OK;
    }
  reply = (const void *)msg;
  table = cli_table_new (headers);
  for (gsize i = 0; i < reply->n_schedules; i++)
    {
      const Drover__V1__Schedule *s = reply->schedules[i];

      cli_table_add_take (
          table, g_strdup (s->name), g_strdup (s->action), when_text (s),
          g_strdup_printf ("%zu", s->n_matched), keep_text (s->keep),
          g_strdup (s->paused ? "paused" : "active"),
          s->paused || !s->next_run_ms ? g_strdup ("-")
                                       : cli_format_time (s->next_run_ms),
          g_strdup_printf ("%u", s->runs_ok),
          g_strdup_printf ("%u", s->runs_failed), NULL);
    }
  return ctl_print_table (table);
}

/* show, pause, resume, delete, run-now: NAME, and a call. */
static int
schedule_simple (Ctl *ctl, int argc, char **argv, const char *sub,
                 const char *summary)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print it as JSON", NULL },
    { NULL },
  };
  g_autofree char *verb = g_strdup_printf ("schedule %s", sub);
  g_autofree char *usage = g_strdup_printf ("schedule %s NAME [--json]", sub);
  Drover__V1__ScheduleRequest req = DROVER__V1__SCHEDULE_REQUEST__INIT;
  Drover__V1__SetSchedulePausedRequest pause
      = DROVER__V1__SET_SCHEDULE_PAUSED_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = ctl_parse_options (verb, "NAME [--json]", summary, entries, &argc,
                               &argv))
          >= 0
      || (rc = name_arg (usage, argc, argv)) >= 0)
    return rc;
  req.name = pause.name = argv[1];
  if (strcmp (sub, "show") == 0)
    msg = ctl_call (ctl, DROVER_SCHED_METHOD_GET_SCHEDULE, &req.base, 0,
                    &error);
  else if (strcmp (sub, "pause") == 0 || strcmp (sub, "resume") == 0)
    {
      pause.paused = strcmp (sub, "pause") == 0;
      msg = ctl_call (ctl, DROVER_SCHED_METHOD_SET_SCHEDULE_PAUSED, &pause.base,
                      0, &error);
    }
  else if (strcmp (sub, "run-now") == 0)
    msg = ctl_call (ctl, DROVER_SCHED_METHOD_RUN_SCHEDULE, &req.base, 0,
                    &error);
  else
    msg = ctl_call (ctl, DROVER_SCHED_METHOD_DELETE_SCHEDULE, &req.base, 0,
                    &error);
  if (!msg)
    return ctl_fail (error);
  if (strcmp (sub, "delete") == 0)
    {
      if (json)
        ctl_print_message_json (msg);
      else
        printf ("schedule %s deleted (its running jobs finish)\n", argv[1]);
      return CTL_EXIT_OK;
    }
  if (!json && strcmp (sub, "show") != 0)
    {
      const Drover__V1__Schedule *s = (const void *)msg;

      if (strcmp (sub, "run-now") == 0)
        printf ("schedule %s: %zu VM(s) queued to run now\n", s->name,
                s->n_matched);
      else
        printf ("schedule %s is %s\n", s->name,
                s->paused ? "paused" : "active");
      return CTL_EXIT_OK;
    }
  return print_reply (msg, json);
}

static int
schedule_show (Ctl *ctl, int argc, char **argv)
{
  return schedule_simple (ctl, argc, argv, "show", "Show a schedule.");
}

static int
schedule_pause (Ctl *ctl, int argc, char **argv)
{
  return schedule_simple (ctl, argc, argv, "pause",
                          "Pause a schedule: nothing new starts.");
}

static int
schedule_resume (Ctl *ctl, int argc, char **argv)
{
  return schedule_simple (ctl, argc, argv, "resume",
                          "Resume a schedule from its next slot.");
}

static int
schedule_delete (Ctl *ctl, int argc, char **argv)
{
  return schedule_simple (ctl, argc, argv, "delete",
                          "Delete a schedule (what it made stays).");
}

static int
schedule_run_now (Ctl *ctl, int argc, char **argv)
{
  return schedule_simple (ctl, argc, argv, "run-now",
                          "Run a schedule for every VM it selects, now.");
}

#define DRILL_USAGE "schedule drill NAME [--vm VM] [--json]"

static int
schedule_drill (Ctl *ctl, int argc, char **argv)
{
  g_autofree char *vm = NULL;
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "vm", 0, 0, G_OPTION_ARG_STRING, &vm, "Only this VM", "VM" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the reply as JSON", NULL },
    { NULL },
  };
  Drover__V1__DrillScheduleRequest req
      = DROVER__V1__DRILL_SCHEDULE_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__DrillScheduleReply *reply;
  int rc;

  if ((rc = ctl_parse_options (
           "schedule drill", "NAME [--vm VM] [--json]",
           "Restore the newest backup the schedule made of each VM it "
           "selects (or of VM) into a scratch VM, boot it and wait for its "
           "readiness line; droverctl dr report shows the results.",
           entries, &argc, &argv))
          >= 0
      || (rc = name_arg (DRILL_USAGE, argc, argv)) >= 0)
    return rc;
  if (vm && !proto_name_validate ("VM", vm, &error))
    return ctl_usage_error (DRILL_USAGE, "%s", error->message);
  req.name = argv[1];
  req.vm = vm ? vm : (char *)"";
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_DRILL_SCHEDULE, &req.base, 0,
                  &error);
  if (!msg)
    return ctl_fail (error);
  if (json)
    {
      ctl_print_message_json (msg);
      return CTL_EXIT_OK;
    }
  reply = (const void *)msg;
  if (reply->n_drills == 0)
    printf ("schedule %s selects no VM now\n", argv[1]);
  for (gsize i = 0; i < reply->n_drills; i++)
    {
      const Drover__V1__DrillStarted *d = reply->drills[i];

      if (d->scratch_vm[0])
        printf ("VM %s: drill started: backup %s into scratch VM %s\n", d->vm,
                d->backup, d->scratch_vm);
      else
        printf ("VM %s: no drill: %s\n", d->vm, d->message);
    }
  return CTL_EXIT_OK;
}

int
ctl_cmd_schedule (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "create", schedule_create },
    { "list", schedule_list },
    { "show", schedule_show },
    { "pause", schedule_pause },
    { "resume", schedule_resume },
    { "delete", schedule_delete },
    { "run-now", schedule_run_now },
    { "drill", schedule_drill },
    { NULL, NULL },
  };

  return ctl_dispatch (ctl, "schedule", schedule_usage_text, commands, argc,
                       argv);
}
