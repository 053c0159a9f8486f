/* droverctl dr report: how fresh every scheduled VM's last good copy is
 * against its schedule's RPO; exit 1 when any is not ok, so that
 * monitoring can run it (issue 16). */
#include "droverctl.h"

#include <stdio.h>

#include "sched-calendar.h"

static const char dr_usage_text[]
    = "Usage: droverctl dr SUBCOMMAND [ARGS...]\n"
      "\n"
      "  report [--json]   per VM and schedule: the last good copy, its age\n"
      "                    against the RPO, the last restore drill and the\n"
      "                    recovery time it measured; exit 1 if any VM is\n"
      "                    outside its RPO\n";

/* The DRILL column: one under way, else the last one's result and age. */
static char *
drill_text (const Drover__V1__DrVm *v, const Drover__V1__DrReport *r)
{
  g_autofree char *age = NULL;

  if (v->drill_vm[0])
    return g_strdup ("running");
  if (!v->last_drill[0])
    return g_strdup ("-");
  age = sched_duration_format (MAX ((r->time_ms - v->last_drill_ms) / 1000, 1));
  return g_strdup_printf ("%s %s ago", v->last_drill, age);
}

static int
dr_report (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print it as JSON", NULL },
    { NULL },
  };
  static const char *const headers[]
      = { "VM",  "HOST",  "SCHEDULE", "ACTION", "LAST GOOD", "AGE",
          "RPO", "STATE", "FAILURES", "DRILL",  "RECOVERY",  NULL };
  Drover__V1__DrReportRequest req = DROVER__V1__DR_REPORT_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__DrReport *r;
  g_autoptr (CliTable) table = NULL;
  int rc;

  if ((rc = ctl_parse_options ("dr report", "[--json]",
                               "How fresh each scheduled VM's copies are.",
                               entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc > 1)
    return ctl_usage_error ("dr report [--json]", "unexpected argument '%s'",
                            argv[1]);
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_GET_DR_REPORT, &req.base, 0, &error);
  if (!msg)
    return ctl_fail (error);
  r = (const void *)msg;
  if (json)
    ctl_print_message_json (msg);
  else
    {
      table = cli_table_new (headers);
      for (gsize i = 0; i < r->n_vms; i++)
        {
          const Drover__V1__DrVm *v = r->vms[i];
          gint64 age_s = (r->time_ms - v->last_good_ms) / 1000;

          cli_table_add_take (
              table, g_strdup (v->vm), g_strdup (v->host),
              g_strdup (v->schedule), g_strdup (v->action),
              g_strdup (v->last_good[0] ? v->last_good : "-"),
              v->last_good_ms ? sched_duration_format (MAX (age_s, 1))
                              : g_strdup ("-"),
              sched_duration_format (MAX (v->rpo_s, 1)), g_strdup (v->state),
              g_strdup_printf ("%u", v->failures_in_row), drill_text (v, r),
              v->recovery_ms ? g_strdup_printf ("%.1fs", v->recovery_ms / 1e3)
                             : g_strdup ("-"),
              NULL);
        }
      ctl_print_table (table);
      if (r->outside_rpo)
        fprintf (stderr, "droverctl: %u VM(s) not within their RPO\n",
                 r->outside_rpo);
    }
  return r->outside_rpo ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

int
ctl_cmd_dr (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "report", dr_report },
    { NULL, NULL },
  };

  return ctl_dispatch (ctl, "dr", dr_usage_text, commands, argc, argv);
}
