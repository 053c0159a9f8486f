/* droverctl balance plan|apply|status|mode: the balancer (issue 15). */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>

static const char balance_usage_text[]
    = "Usage: droverctl balance SUBCOMMAND [ARGS...]\n"
      "\n"
      "  plan [--json]             the moves the balancer would make now, "
      "with\n"
      "                            their benefit and predicted cost\n"
      "  apply [--wait] [--json]   carry out a fresh plan (a job of kind "
      "balance)\n"
      "  status [--json]           mode, imbalance now and its history, the "
      "last\n"
      "                            moves with predicted against measured "
      "time\n"
      "  mode off|recommend|auto [--json]\n"
      "                            set the balancer's mode (kept across "
      "restarts)\n";

/* A table of MOVES: planned (no job yet) or made. */
static int
print_moves (Drover__V1__BalanceMove *const *moves, size_t n, gboolean made)
{
  static const char *const plan_headers[]
      = { "VM",         "FROM",   "TO",        ">BENEFIT",
          ">PREDICTED", ">BYTES", ">DOWNTIME", NULL };
  static const char *const made_headers[]
      = { "VM",        "FROM",    "TO",  "RESULT", ">PREDICTED",
          ">MEASURED", "STARTED", "JOB", NULL };
  g_autoptr (CliTable) table
      = cli_table_new (made ? made_headers : plan_headers);

  for (size_t i = 0; i < n; i++)
    {
      const Drover__V1__BalanceMove *m = moves[i];

      if (!made)
        cli_table_add_take (
            table, g_strdup (m->vm), g_strdup (m->from_host),
            g_strdup (m->to_host), g_strdup_printf ("%.3f", m->benefit),
            cli_format_duration (m->predicted_s),
            proto_format_size (m->predicted_bytes),
            g_strdup_printf ("%.0f ms", m->predicted_downtime_ms));
      else
        cli_table_add_take (
            table, g_strdup (m->vm), g_strdup (m->from_host),
            g_strdup (m->to_host),
            m->error[0] ? g_strdup_printf ("%s: %s", m->result, m->error)
                        : g_strdup (m->result),
            cli_format_duration (m->predicted_s),
            m->measured_s > 0 ? cli_format_duration (m->measured_s)
                              : g_strdup ("-"),
            ctl_format_age (m->started_ms),
            g_strdup (m->job_id[0] ? m->job_id : "-"));
    }
  return ctl_print_table (table);
}

static void
print_plan (const Drover__V1__BalancePlan *plan)
{
  printf ("imbalance %.3f", plan->imbalance_before);
  if (plan->n_moves > 0)
    printf (" -> %.3f after %zu move(s)\n", plan->imbalance_after,
            plan->n_moves);
  else
    printf ("; nothing to move: %s\n", plan->note);
  if (plan->n_moves > 0)
    print_moves (plan->moves, plan->n_moves, FALSE);
  for (size_t i = 0; i < plan->n_held; i++)
    printf ("%s %s on %s: %s\n", i ? "     " : "held:", plan->held[i]->vm,
            plan->held[i]->host, plan->held[i]->reason);
}

static int
balance_plan (Ctl *ctl, int argc, char **argv)
{
  Drover__V1__PlanBalanceRequest req = DROVER__V1__PLAN_BALANCE_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  int rc;

  if ((rc = ctl_list (
           ctl, "balance plan", "Show the moves the balancer would make now.",
           DROVER_SCHED_METHOD_PLAN_BALANCE, &req.base, argc, argv, &msg))
      >= 0)
    return rc;
  print_plan ((const Drover__V1__BalancePlan *)msg);
  return CTL_EXIT_OK;
}

static int
balance_apply (Ctl *ctl, int argc, char **argv)
{
  gboolean wait = FALSE, json = FALSE;
  const GOptionEntry entries[] = {
    { "wait", 0, 0, G_OPTION_ARG_NONE, &wait,
      "Follow the job until its moves have ended (Ctrl-C stops following, "
      "not the moves)",
      NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the job as JSON", NULL },
    { NULL },
  };
  Drover__V1__PlanBalanceRequest req = DROVER__V1__PLAN_BALANCE_REQUEST__INIT;
  int rc;

  if ((rc = ctl_parse_options_only ("balance apply", "[--wait] [--json]",
                                    "Carry out a fresh balancing plan.",
                                    entries, argc, argv))
      >= 0)
    return rc;
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_APPLY_BALANCE,
                                &req.base, "balancing", !wait, json);
}

static void
print_status (const Drover__V1__BalanceStatus *st)
{
  g_autoptr (GString) history = g_string_new (NULL);

  ctl_kv (11, "mode", st->mode);
  ctl_kv_take (11, "interval", g_strdup_printf ("%u s", st->interval_s));
  ctl_kv_take (11, "threshold", g_strdup_printf ("%.3f", st->threshold));
  ctl_kv_take (11, "cool-down", g_strdup_printf ("%u s", st->cooldown_s));
  ctl_kv_take (11, "imbalance", g_strdup_printf ("%.3f", st->imbalance));
  /* The last ten ticks, oldest first: enough to see a trend. */
  for (size_t i = st->n_history > 10 ? st->n_history - 10 : 0;
       i < st->n_history; i++)
    g_string_append_printf (history, "%s%.3f", history->len ? " " : "",
                            st->history[i]->imbalance);
  ctl_kv (11, "history", history->str);
  if (st->plan != NULL)
    {
      printf ("\nplan (%s):\n", st->mode);
      print_plan (st->plan);
    }
  if (st->n_moves > 0)
    {
      printf ("\nlast moves:\n");
      print_moves (st->moves, st->n_moves, TRUE);
    }
}

static int
balance_status (Ctl *ctl, int argc, char **argv)
{
  Drover__V1__BalanceStatusRequest req
      = DROVER__V1__BALANCE_STATUS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  int rc;

  if ((rc = ctl_list (ctl, "balance status",
                      "Show the balancer's mode, the imbalance and the last "
                      "moves.",
                      DROVER_SCHED_METHOD_GET_BALANCE_STATUS, &req.base, argc,
                      argv, &msg))
      >= 0)
    return rc;
  print_status ((const Drover__V1__BalanceStatus *)msg);
  return CTL_EXIT_OK;
}

#define MODE_USAGE "balance mode off|recommend|auto [--json]"

static int
balance_mode (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the status as JSON",
      NULL },
    { NULL },
  };
  Drover__V1__SetBalanceModeRequest req
      = DROVER__V1__SET_BALANCE_MODE_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc
       = ctl_parse_options ("balance mode", "off|recommend|auto [--json]",
                            "Set the balancer's mode.", entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 2)
    return ctl_usage_error (MODE_USAGE, "missing mode");
  if (argc > 2)
    return ctl_usage_error (MODE_USAGE, "unexpected argument '%s'", argv[2]);
  if (strcmp (argv[1], "off") != 0 && strcmp (argv[1], "recommend") != 0
      && strcmp (argv[1], "auto") != 0)
    return ctl_usage_error (
        MODE_USAGE, "mode '%s': must be off, recommend or auto", argv[1]);
  req.mode = argv[1];
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_SET_BALANCE_MODE, &req.base, 0,
                  &error);
  if (msg == NULL)
    return ctl_fail (error);
  if (json)
    ctl_print_message_json (msg);
  else
    printf ("balance mode %s\n", argv[1]);
  return CTL_EXIT_OK;
}

int
ctl_cmd_balance (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "plan", balance_plan },
    { "apply", balance_apply },
    { "status", balance_status },
    { "mode", balance_mode },
    { NULL, NULL },
  };

  return ctl_dispatch (ctl, "balance", balance_usage_text, commands, argc,
                       argv);
}
