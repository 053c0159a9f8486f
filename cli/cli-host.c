/* droverctl host drain|undrain: host maintenance. */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>

static const char host_usage_text[]
    = "Usage: droverctl host SUBCOMMAND [ARGS...]\n"
      "\n"
      "  drain HOST [--wait] [--stop-unmovable] [--json]\n"
      "      take HOST out of service and live-migrate its running VMs "
      "away;\n"
      "      it then enters maintenance (stopped VMs stay on it)\n"
      "  undrain HOST [--json]\n"
      "      return HOST to service (a drain in progress stops)\n";

/* Checks that *ARGV (after options) is exactly "SUB HOST". */
static int
host_args (const char *usage, int argc, char **argv)
{
  g_autoptr (GError) error = NULL;

  if (argc < 2)
    return ctl_usage_error (usage, "missing host name");
  if (argc > 2)
    return ctl_usage_error (usage, "unexpected argument '%s'", argv[2]);
  if (!proto_name_validate ("host", argv[1], &error))
    return ctl_usage_error (usage, "%s", error->message);
  return -1;
}

#define DRAIN_USAGE "host drain HOST [--wait] [--stop-unmovable] [--json]"

static int
host_drain (Ctl *ctl, int argc, char **argv)
{
  gboolean wait = FALSE, stop_unmovable = FALSE, json = FALSE;
  const GOptionEntry entries[] = {
    { "wait", 0, 0, G_OPTION_ARG_NONE, &wait,
      "Follow the drain until the host is empty (Ctrl-C stops following, "
      "not the drain)",
      NULL },
    { "stop-unmovable", 0, 0, G_OPTION_ARG_NONE, &stop_unmovable,
      "Shut down the running VMs that cannot move instead of leaving the "
      "drain incomplete",
      NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the job as JSON", NULL },
    { NULL },
  };
  Drover__V1__DrainHostRequest req = DROVER__V1__DRAIN_HOST_REQUEST__INIT;
  g_autofree char *what = NULL;
  int rc;

  if ((rc = ctl_parse_options ("host drain",
                               "HOST [--wait] [--stop-unmovable] [--json]",
                               "Take a host out of service and move its "
                               "running VMs away.",
                               entries, &argc, &argv))
          >= 0
      || (rc = host_args (DRAIN_USAGE, argc, argv)) >= 0)
    return rc;
  req.name = argv[1];
  req.stop_unmovable = stop_unmovable;
  what = g_strdup_printf ("draining host %s", argv[1]);
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_DRAIN_HOST, &req.base,
                                what, !wait, json);
}

#define UNDRAIN_USAGE "host undrain HOST [--json]"

static int
host_undrain (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the host as JSON", NULL },
    { NULL },
  };
  Drover__V1__HostRequest req = DROVER__V1__HOST_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = ctl_parse_options ("host undrain", "HOST [--json]",
                               "Return a drained host to service.", entries,
                               &argc, &argv))
          >= 0
      || (rc = host_args (UNDRAIN_USAGE, argc, argv)) >= 0)
    return rc;
  req.name = argv[1];
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_UNDRAIN_HOST, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  if (json)
    ctl_print_message_json (msg);
  else
    printf ("host %s is in service\n", argv[1]);
  return CTL_EXIT_OK;
}

int
ctl_cmd_host (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "drain", host_drain },
    { "undrain", host_undrain },
    { NULL, NULL },
  };

  return ctl_dispatch (ctl, "host", host_usage_text, commands, argc, argv);
}
