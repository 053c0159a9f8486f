/* droverctl vm set: a VM's settings kept by the scheduler (issue 17: the
 * migration's post-copy default). */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>

#define SET_USAGE "vm set NAME --migration-postcopy auto|never [--json]"

int
cli_vm_set (Ctl *ctl, int argc, char **argv)
{
  g_autofree char *postcopy = NULL;
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "migration-postcopy", 0, 0, G_OPTION_ARG_STRING, &postcopy,
            "Post-copy for migrations of the VM given no --postcopy: auto "
            "(post-copy instead of the forced pause) or never (the default)",
            "auto|never" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the VM as JSON",
            NULL },
          { NULL } };
  Drover__V1__SetVmMigrationRequest req
      = DROVER__V1__SET_VM_MIGRATION_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__VmReply *reply;
  const char *now;
  int rc;

  if ((rc = ctl_parse_options (
           "vm set", SET_USAGE + strlen ("vm set "),
           "Change a VM's settings. --migration-postcopy: whether its "
           "migrations may switch to post-copy when pre-copy does not "
           "converge (droverctl migrate --postcopy overrides it).",
           entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc != 2)
    return ctl_usage_error (SET_USAGE, argc < 2 ? "missing VM name"
                                                : "unexpected argument");
  if (!proto_name_validate ("VM", argv[1], &error))
    return ctl_usage_error (SET_USAGE, "%s", error->message);
  if (postcopy == NULL)
    return ctl_usage_error (SET_USAGE, "nothing to set: give "
                                       "--migration-postcopy");
  if (!g_str_equal (postcopy, PROTO_MIG_POSTCOPY_AUTO)
      && !g_str_equal (postcopy, PROTO_MIG_POSTCOPY_NEVER))
    return ctl_usage_error (SET_USAGE,
                            "--migration-postcopy must be auto or never");
  req.name = argv[1];
  req.postcopy = postcopy;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_SET_VM_MIGRATION, &req.base, 0,
                  &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__VmReply *)msg;
  if (json)
    {
      if (reply->vm != NULL)
        ctl_print_message_json (&reply->vm->base);
      else
        fputs ("null\n", stdout);
      return CTL_EXIT_OK;
    }
  now = reply->vm && reply->vm->spec && reply->vm->spec->migration_postcopy[0]
            ? reply->vm->spec->migration_postcopy
            : PROTO_MIG_POSTCOPY_NEVER;
  printf ("VM %s migration post-copy default: %s\n", argv[1], now);
  return CTL_EXIT_OK;
}
