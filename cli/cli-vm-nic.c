/* droverctl vm nic add|remove: NIC hot-plug (issue 13). */
#include "cli-vm.h"

#include <stdio.h>
#include <string.h>

static const char nic_usage_text[]
    = "Usage: droverctl vm nic SUBCOMMAND [ARGS...]\n"
      "\n"
      "  add VM NETWORK [--mac MAC] [--json]   a virtio NIC on NETWORK (live "
      "if VM runs)\n"
      "  remove VM MAC|NETWORK [--json]        unplug the NIC with MAC, or "
      "the one on NETWORK\n";

/* The VM's NICs after the change, one a line. */
static int
print_nics (const Drover__V1__VmReply *reply, gboolean json, const char *what)
{
  const Drover__V1__Vm *vm = reply->vm;

  if (json)
    return cli_vm_print_json (vm);
  printf ("%s\n", what);
  for (gsize i = 0; vm && vm->spec && i < vm->spec->n_nics; i++)
    printf ("  %s network %s bridge %s\n", vm->spec->nics[i]->mac,
            vm->spec->nics[i]->network, vm->spec->nics[i]->bridge);
  return CTL_EXIT_OK;
}

/* Positional VM and one more argument into *VM and *ARG, or a usage
 * error (returned). -1: go on. */
static int
two_args (const char *usage, int argc, char **argv, const char **vm,
          const char **arg)
{
  g_autoptr (GError) error = NULL;

  if (argc != 3)
    return ctl_usage_error (
        usage, argc < 3 ? "missing arguments" : "unexpected argument '%s'",
        argc > 3 ? argv[3] : "");
  if (!proto_name_validate ("VM", argv[1], &error))
    return ctl_usage_error (usage, "%s", error->message);
  *vm = argv[1];
  *arg = argv[2];
  return -1;
}

#define ADD_USAGE "vm nic add VM NETWORK [--mac MAC] [--json]"

static int
nic_add (Ctl *ctl, int argc, char **argv)
{
  g_autofree char *mac = NULL;
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "mac", 0, 0, G_OPTION_ARG_STRING, &mac,
            "The NIC's MAC (else the scheduler assigns one)", "MAC" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the VM as JSON",
            NULL },
          { NULL } };
  Drover__V1__NicRequest req = DROVER__V1__NIC_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *what = NULL;
  const char *vm, *net;
  guint8 octets[6];
  int rc;

  if ((rc = ctl_parse_options ("vm nic add", "VM NETWORK [--mac MAC] [--json]",
                               "Give a VM a virtio NIC on a network: live "
                               "and in its definition if it runs, else in "
                               "its definition.",
                               entries, &argc, &argv))
      >= 0)
    return rc;
  if ((rc = two_args (ADD_USAGE, argc, argv, &vm, &net)) >= 0)
    return rc;
  if (!proto_name_validate ("network", net, &error)
      || (mac != NULL && !proto_mac_parse (mac, octets, &error)))
    return ctl_usage_error (ADD_USAGE, "%s", error->message);
  req.name = (char *)vm;
  req.network = (char *)net;
  if (mac != NULL)
    req.mac = mac;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_ATTACH_NIC, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  what = g_strdup_printf ("added a NIC on network %s to VM %s; its NICs:", net,
                          vm);
  return print_nics ((const void *)msg, json, what);
}

#define REMOVE_USAGE "vm nic remove VM MAC|NETWORK [--json]"

static int
nic_remove (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the VM as JSON", NULL },
                                   { NULL } };
  Drover__V1__NicRequest req = DROVER__V1__NIC_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *what = NULL;
  const char *vm, *which;
  int rc;

  if ((rc = ctl_parse_options ("vm nic remove", "VM MAC|NETWORK [--json]",
                               "Unplug a VM's NIC, named by its MAC or by "
                               "its network (when the VM has one NIC "
                               "there). A VM may lose its last NIC.",
                               entries, &argc, &argv))
      >= 0)
    return rc;
  if ((rc = two_args (REMOVE_USAGE, argc, argv, &vm, &which)) >= 0)
    return rc;
  req.name = (char *)vm;
  /* A MAC has colons; a network name never does. */
  if (strchr (which, ':') != NULL)
    req.mac = (char *)which;
  else if (proto_name_validate ("network", which, &error))
    req.network = (char *)which;
  else
    return ctl_usage_error (REMOVE_USAGE, "%s", error->message);
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_DETACH_NIC, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  what = g_strdup_printf ("removed NIC %s from VM %s; its NICs:", which, vm);
  return print_nics ((const void *)msg, json, what);
}

int
cli_vm_nic (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "add", nic_add },
    { "remove", nic_remove },
    { NULL, NULL },
  };

  return ctl_dispatch (ctl, "vm nic", nic_usage_text, commands, argc, argv);
}
