/* droverctl vm: the subcommand table, the lifecycle verbs (start, stop,
 * destroy, delete), clone, template and label. create, list/show, console
 * and nic have their own files (cli-vm-*.c). */
#include "cli-vm.h"

#include <stdio.h>
#include <string.h>

static const char vm_usage_text[]
    = "Usage: droverctl vm SUBCOMMAND [ARGS...]\n"
      "\n"
      "  create NAME --vcpus N --memory SIZE [--disk SIZE] [--kernel K "
      "--initrd I\n"
      "         --cmdline C] [--image IMG [--cloud-init FILE]] [--host H]\n"
      "         [--accel kvm|tcg] [--net NETWORK[,mac=MAC]]... [--json]\n"
      "  list [--json]\n"
      "  show NAME [--json]\n"
      "  start NAME\n"
      "  stop NAME [--force] [--timeout S]\n"
      "  destroy NAME\n"
      "  delete NAME [--force]\n"
      "  console NAME [-f] [--tail BYTES]\n"
      "  clone SRC NEW [--linked|--full] [--from-snapshot S] [--host H] "
      "[--start]\n"
      "        [--detach] [--json]\n"
      "  template NAME [--json]\n"
      "  label NAME KEY=VALUE... KEY-... [--json]   set and remove labels\n"
      "  nic add VM NETWORK [--mac MAC] [--json]\n"
      "  nic remove VM MAC|NETWORK [--json]\n"
      "  set NAME --migration-postcopy auto|never [--json]\n"
      "\n"
      "Sizes: bytes or a number with K, M, G or T (binary units): 512M, "
      "1.5G.\n";

/* Checks that ARGV holds exactly one positional argument, a valid VM
 * name, and returns it; or prints the error and sets *RC. */
static const char *
one_name (const char *usage, int argc, char **argv, int *rc)
{
  g_autoptr (GError) error = NULL;

  if (argc < 2)
    {
      *rc = ctl_usage_error (usage, "missing VM name");
      return NULL;
    }
  if (argc > 2)
    {
      *rc = ctl_usage_error (usage, "unexpected argument '%s'", argv[2]);
      return NULL;
    }
  if (!proto_name_validate ("VM", argv[1], &error))
    {
      *rc = ctl_usage_error (usage, "%s", error->message);
      return NULL;
    }
  return argv[1];
}

/* Parses the options of the verb that USAGE ("vm SUB PARAMS") describes,
 * then its one VM name into *NAME. Returns -1 to go on, or the exit
 * code to return at once. */
int
cli_vm_parse (const char *usage, const char *summary,
              const GOptionEntry *entries, int argc, char **argv,
              const char **name)
{
  int rc;

  if ((rc = ctl_parse_usage (usage, summary, entries, &argc, &argv)) >= 0)
    return rc;
  if ((*name = one_name (usage, argc, argv, &rc)) == NULL)
    return rc;
  return -1;
}

/* The --json output of a call that returns a VM: the VM, or null. */
int
cli_vm_print_json (const Drover__V1__Vm *vm)
{
  if (vm != NULL)
    ctl_print_message_json (&vm->base);
  else
    fputs ("null\n", stdout);
  return CTL_EXIT_OK;
}

/* --- lifecycle --------------------------------------------------------- */

/* "stopped VM web-1 (state: shutoff): forced off: ... [job ID]": the
 * job's outcome says how (a stop that had to destroy the VM says so). */
static void
print_lifecycle (const char *done_verb, const char *name,
                 const Drover__V1__VmReply *reply)
{
  printf ("%s VM %s (state: %s)", done_verb, name,
          reply->vm != NULL && reply->vm->state[0] ? reply->vm->state
                                                   : "unknown");
  if (reply->job != NULL && reply->job->message[0] != '\0')
    printf (": %s [job %s]", reply->job->message, reply->job->id);
  putchar ('\n');
}

static int
vm_simple (Ctl *ctl, const char *sub, const char *summary, guint method,
           const char *done_verb, int argc, char **argv)
{
  Drover__V1__VmRequest req = DROVER__V1__VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *usage = g_strdup_printf ("vm %s NAME", sub);
  const char *name;
  int rc = 0;

  if ((rc = cli_vm_parse (usage, summary, NULL, argc, argv, &name)) >= 0)
    return rc;
  req.name = (char *)name;
  msg = ctl_call (ctl, method, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  print_lifecycle (done_verb, name, (const Drover__V1__VmReply *)msg);
  return CTL_EXIT_OK;
}

static int
vm_stop (Ctl *ctl, int argc, char **argv)
{
  gboolean force = FALSE;
  int timeout_s = 0;
  const GOptionEntry entries[]
      = { { "force", 0, 0, G_OPTION_ARG_NONE, &force,
            "Destroy at once instead of a graceful shutdown", NULL },
          { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s,
            "Grace period before forcing (default: the agent's)", "S" },
          { NULL } };
  Drover__V1__StopVmRequest req = DROVER__V1__STOP_VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const char *name;
  int rc = 0;

  if ((rc = cli_vm_parse ("vm stop NAME [--force] [--timeout S]",
                          "Shut a VM down: ask the guest (ACPI) and wait "
                          "the grace period, then force it off. The "
                          "output and the job list (kind stop) say "
                          "whether it had to be forced.",
                          entries, argc, argv, &name))
      >= 0)
    return rc;
  if (timeout_s < 0 || timeout_s > 24 * 3600)
    return ctl_usage_error ("vm stop NAME [--force] [--timeout S]",
                            "--timeout must be between 0 and 86400 seconds");
  req.name = (char *)name;
  req.force = force;
  req.timeout_ms = (uint32_t)timeout_s * 1000;
  /* The call lasts as long as the grace period: give it room. */
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_STOP_VM, &req.base,
                  ((gint64)timeout_s + 30) * 1000, &error);
  if (msg == NULL)
    return ctl_fail (error);
  print_lifecycle ("stopped", name, (const Drover__V1__VmReply *)msg);
  return CTL_EXIT_OK;
}

static int
vm_delete (Ctl *ctl, int argc, char **argv)
{
  gboolean force = FALSE;
  const GOptionEntry entries[] = { { "force", 0, 0, G_OPTION_ARG_NONE, &force,
                                     "Destroy a running VM first", NULL },
                                   { NULL } };
  Drover__V1__DeleteVmRequest req = DROVER__V1__DELETE_VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const char *name;
  int rc = 0;

  if ((rc = cli_vm_parse ("vm delete NAME [--force]",
                          "Delete a VM and its disk (a delete job).", entries,
                          argc, argv, &name))
      >= 0)
    return rc;
  req.name = (char *)name;
  req.force = force;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_DELETE_VM, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  printf ("deleted VM %s\n", name);
  return CTL_EXIT_OK;
}

/* --- clone, template --------------------------------------------------- */

#define CLONE_USAGE                                                            \
  "vm clone SRC NEW [--linked|--full] [--from-snapshot S] [--host H] "         \
  "[--start] [--detach] [--json]"

static int
vm_clone (Ctl *ctl, int argc, char **argv)
{
  gboolean linked = FALSE, full = FALSE, start = FALSE, detach = FALSE,
           json = FALSE;
  g_autofree char *from = NULL;
  g_autofree char *host = NULL;
  const GOptionEntry entries[]
      = { { "linked", 0, 0, G_OPTION_ARG_NONE, &linked,
            "A qcow2 overlay on SRC's image, which becomes a protected base "
            "(the default for a template)",
            NULL },
          { "full", 0, 0, G_OPTION_ARG_NONE, &full,
            "An independent copy (the default for a VM)", NULL },
          { "from-snapshot", 0, 0, G_OPTION_ARG_STRING, &from,
            "Clone the disk as it was in this snapshot of SRC", "S" },
          { "host", 0, 0, G_OPTION_ARG_STRING, &host,
            "Where the clone goes (default: SRC's host); another host "
            "takes a full clone, sent over the agents' channel",
            "H" },
          { "start", 0, 0, G_OPTION_ARG_NONE, &start,
            "Start the clone once it is made", NULL },
          { "detach", 0, 0, G_OPTION_ARG_NONE, &detach,
            "Print the job and return at once", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job as JSON", NULL },
          { NULL } };
  Drover__V1__CloneVmRequest req = DROVER__V1__CLONE_VM_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autofree char *what = NULL;
  const char *mode = "";
  int rc = 0;

  if ((rc = ctl_parse_options (
           "vm clone", strchr (&CLONE_USAGE[3], ' ') + 1,
           "Make a new VM from SRC's disk: a new UUID, new MAC addresses, "
           "its own console log and disk. Linked clones share SRC's image "
           "as a read-only base and take seconds; full clones copy it. "
           "Follows the job; Ctrl-C stops following, not the clone.",
           entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 2)
    return ctl_usage_error (CLONE_USAGE, "missing source VM name");
  if (argc < 3)
    return ctl_usage_error (CLONE_USAGE, "missing the new VM's name");
  if (argc > 3)
    return ctl_usage_error (CLONE_USAGE, "unexpected argument '%s'", argv[3]);
  if (!proto_name_validate ("VM", argv[1], &error)
      || !proto_name_validate ("VM", argv[2], &error))
    return ctl_usage_error (CLONE_USAGE, "%s", error->message);
  if (from != NULL && !proto_name_validate ("snapshot", from, &error))
    return ctl_usage_error (CLONE_USAGE, "--from-snapshot: %s", error->message);
  if (host != NULL && !proto_name_validate ("host", host, &error))
    return ctl_usage_error (CLONE_USAGE, "--host: %s", error->message);
  if (!cli_clone_mode (linked, full, &mode, &error))
    return ctl_usage_error (CLONE_USAGE, "%s", error->message);
  req.source = argv[1];
  req.name = argv[2];
  req.mode = (char *)mode;
  req.from_snapshot = from ? from : (char *)"";
  req.host = host ? host : (char *)"";
  req.start = start;
  what = g_strdup_printf (
      "cloning %s into %s%s%s", argv[1], argv[2], mode[0] ? " as a " : "",
      mode[0] ? (linked ? "linked clone" : "full copy") : "");
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_CLONE_VM, &req.base,
                                what, detach, json);
}

static int
vm_template (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the VM as JSON", NULL },
                                   { NULL } };
  Drover__V1__VmRequest req = DROVER__V1__VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__VmReply *reply;
  const char *name;
  int rc = 0;

  if ((rc = cli_vm_parse (
           "vm template NAME [--json]",
           "Make a stopped VM a template: its image becomes a protected, "
           "read-only base; it is never started again, only cloned (its "
           "clones are linked by default). There is no way back.",
           entries, argc, argv, &name))
      >= 0)
    return rc;
  req.name = (char *)name;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_MAKE_TEMPLATE, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__VmReply *)msg;
  if (json)
    return cli_vm_print_json (reply->vm);
  printf ("VM %s is now a template; clone it with: droverctl vm clone %s "
          "NEW\n",
          name, name);
  return CTL_EXIT_OK;
}

/* --- label ------------------------------------------------------------- */

#define LABEL_USAGE "vm label NAME KEY=VALUE... KEY-... [--json]"

static int
vm_label (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the VM as JSON", NULL },
                                   { NULL } };
  Drover__V1__SetVmLabelsRequest req = DROVER__V1__SET_VM_LABELS_REQUEST__INIT;
  g_autoptr (GPtrArray) set = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) remove = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__VmReply *reply;
  int rc;

  if ((rc = ctl_parse_options (
           "vm label", "NAME KEY=VALUE... KEY-... [--json]",
           "Set labels (KEY=VALUE) and remove them (KEY-) on a VM; schedules "
           "select VMs by label (--select label:KEY=VALUE).",
           entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 3)
    return ctl_usage_error (LABEL_USAGE, "give a VM and at least one label");
  if (!proto_name_validate ("VM", argv[1], &error))
    return ctl_usage_error (LABEL_USAGE, "%s", error->message);
  for (int i = 2; i < argc; i++)
    {
      gsize len = strlen (argv[i]);

      if (strchr (argv[i], '=') == NULL && len > 1 && argv[i][len - 1] == '-')
        g_ptr_array_add (remove, g_strndup (argv[i], len - 1));
      else
        g_ptr_array_add (set, g_strdup (argv[i]));
    }
  req.name = argv[1];
  req.n_set = set->len;
  req.set = (char **)set->pdata;
  req.n_remove = remove->len;
  req.remove = (char **)remove->pdata;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_SET_VM_LABELS, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__VmReply *)msg;
  if (json)
    return cli_vm_print_json (reply->vm);
  printf ("VM %s labels: %s\n", argv[1],
          reply->vm && reply->vm->labels[0] ? reply->vm->labels : "(none)");
  return CTL_EXIT_OK;
}

/* --- dispatch ---------------------------------------------------------- */

static int
vm_start (Ctl *ctl, int argc, char **argv)
{
  return vm_simple (ctl, "start",
                    "Start a stopped VM on its host. The job list records "
                    "the start (kind start).",
                    DROVER_SCHED_METHOD_START_VM, "started", argc, argv);
}

static int
vm_destroy (Ctl *ctl, int argc, char **argv)
{
  return vm_simple (ctl, "destroy",
                    "Force a VM off at once (like pulling the plug; the VM "
                    "stays defined and can be started again). The job "
                    "list records it (kind destroy).",
                    DROVER_SCHED_METHOD_DESTROY_VM, "destroyed", argc, argv);
}

int
ctl_cmd_vm (Ctl *ctl, int argc, char **argv)
{
  /* clang-format off */
  static const CtlCommand commands[] = {
    { "create", cli_vm_create },
    { "list", cli_vm_list },
    { "show", cli_vm_show },
    { "start", vm_start },
    { "destroy", vm_destroy },
    { "stop", vm_stop },
    { "delete", vm_delete },
    { "console", cli_vm_console },
    { "clone", vm_clone },
    { "template", vm_template },
    { "nic", cli_vm_nic },
    { "label", vm_label },
    { "set", cli_vm_set },
    { NULL, NULL },
  };
  /* clang-format on */

  return ctl_dispatch (ctl, "vm", vm_usage_text, commands, argc, argv);
}
