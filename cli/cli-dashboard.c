/* droverctl dashboard-token: a one-time login for the web dashboard. */
#include "droverctl.h"

#include <stdio.h>

int
ctl_cmd_dashboard_token (Ctl *ctl, int argc, char **argv)
{
  gint ttl_s = 0;
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "ttl", 0, 0, G_OPTION_ARG_INT, &ttl_s,
            "Seconds the token stays valid (default 300, at most 3600)", "S" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
          { NULL } };
  const char *usage = "dashboard-token [--ttl S] [--json]";
  Drover__V1__DashboardTokenRequest req
      = DROVER__V1__DASHBOARD_TOKEN_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__DashboardTokenReply *reply;
  int rc;

  if ((rc = ctl_parse_options_only (
           "dashboard-token", "[--ttl S] [--json]",
           "Print a one-time login token for the scheduler's web dashboard "
           "(open https://SCHEDULER-HTTP/?token=TOKEN once; operators only).",
           entries, argc, argv))
      >= 0)
    return rc;
  if (ttl_s < 0 || ttl_s > 3600)
    return ctl_usage_error (usage, "--ttl must be 1..3600 seconds, got %d",
                            ttl_s);
  req.ttl_s = (guint)ttl_s;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_CREATE_DASHBOARD_TOKEN, &req.base, 0,
                  &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const void *)msg;
  if (json)
    ctl_print_message_json (msg);
  else
    printf ("%s\n", reply->token);
  return CTL_EXIT_OK;
}
