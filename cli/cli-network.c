/* droverctl network create|list|show|delete: networks, bridges that hosts
 * provide (issue 13). */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>

static const char network_usage_text[]
    = "Usage: droverctl network SUBCOMMAND [ARGS...]\n"
      "\n"
      "  create NAME --bridge BR [--vlan ID] [--mtu N] [--json]\n"
      "                               a network on bridge BR of the hosts "
      "(VLAN 1-4094\n"
      "                               needs an Open vSwitch bridge)\n"
      "  list [--json]                networks and the hosts that have their "
      "bridge\n"
      "  show NAME [--json]           a network and each host's bridge\n"
      "  delete NAME                  delete a network\n";

/* Parses SUB's options; exactly one positional argument, the network's
 * name, must follow. -1 to go on, else the exit code. */
static int
network_parse (const char *usage, const char *summary,
               const GOptionEntry *entries, int *argc, char ***argv)
{
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = ctl_parse_usage (usage, summary, entries, argc, argv)) >= 0)
    return rc;
  if (*argc < 2)
    return ctl_usage_error (usage, "missing network name");
  if (*argc > 2)
    return ctl_usage_error (usage, "unexpected argument '%s'", (*argv)[2]);
  if (!proto_name_validate ("network", (*argv)[1], &error))
    return ctl_usage_error (usage, "%s", error->message);
  return -1;
}

/* "h1 (linux), h2 (ovs)" for the hosts that can offer NET; "-" if none. */
static char *
usable_hosts (const Drover__V1__Network *net)
{
  GString *out = g_string_new (NULL);

  for (size_t i = 0; i < net->n_hosts; i++)
    if (net->hosts[i]->usable)
      g_string_append_printf (out, "%s%s (%s)", out->len ? ", " : "",
                              net->hosts[i]->host, net->hosts[i]->kind);
  if (out->len == 0)
    g_string_append (out, "-");
  return g_string_free (out, FALSE);
}

static char *
number_or (guint32 n, const char *none)
{
  return n ? g_strdup_printf ("%u", n) : g_strdup (none);
}

#define CREATE_USAGE                                                           \
  "network create NAME --bridge BR [--vlan ID] [--mtu N] [--json]"

static int
network_create (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  g_autofree char *bridge = NULL;
  int vlan = 0, mtu = 0;
  const GOptionEntry entries[] = {
    { "bridge", 0, 0, G_OPTION_ARG_STRING, &bridge,
      "The bridge's name on the hosts", "BR" },
    { "vlan", 0, 0, G_OPTION_ARG_INT, &vlan,
      "Tag the VMs' ports with VLAN ID (1-4094; Open vSwitch only)", "ID" },
    { "mtu", 0, 0, G_OPTION_ARG_INT, &mtu,
      "The VMs' NICs' MTU (68-65535; default the bridge's)", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the reply as JSON", NULL },
    { NULL }
  };
  Drover__V1__Network req = DROVER__V1__NETWORK__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  const Drover__V1__CreateNetworkReply *reply;
  int rc;

  if ((rc = network_parse (CREATE_USAGE,
                           "Create a network: VMs that need it run only on "
                           "hosts that have bridge BR (for a VLAN, as an Open "
                           "vSwitch bridge).",
                           entries, &argc, &argv))
      >= 0)
    return rc;
  if (bridge == NULL)
    return ctl_usage_error (CREATE_USAGE, "missing --bridge");
  /* The ranges are the scheduler's to check (sched_network_check). */
  if (vlan < 0 || mtu < 0)
    return ctl_usage_error (CREATE_USAGE, "--vlan and --mtu are not negative");
  req.name = argv[1];
  req.bridge = bridge;
  req.vlan = (guint32)vlan;
  req.mtu = (guint32)mtu;
  if ((rc = ctl_call_json (ctl, DROVER_SCHED_METHOD_CREATE_NETWORK, &req.base,
                           json, &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__CreateNetworkReply *)msg;
  printf ("network %s created on bridge %s\n", argv[1], bridge);
  if (reply->n_hosts_lacking > 0)
    {
      printf ("warning: %zu host(s) cannot offer it yet (no bridge %s%s):",
              reply->n_hosts_lacking, bridge,
              vlan ? ", or not an Open vSwitch one" : "");
      for (size_t i = 0; i < reply->n_hosts_lacking; i++)
        printf (" %s", reply->hosts_lacking[i]);
      printf ("\n");
    }
  return CTL_EXIT_OK;
}

static int
network_list (Ctl *ctl, int argc, char **argv)
{
  static const char *const headers[]
      = { "NAME", "BRIDGE", "VLAN", "MTU", "HOSTS", NULL };
  Drover__V1__ListNetworksRequest req = DROVER__V1__LIST_NETWORKS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (CliTable) table = cli_table_new (headers);
  const Drover__V1__ListNetworksReply *reply;
  int rc;

  if ((rc = ctl_list (ctl, "network list",
                      "List the networks and the hosts that can offer them.",
                      DROVER_SCHED_METHOD_LIST_NETWORKS, &req.base, argc, argv,
                      &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__ListNetworksReply *)msg;
  for (size_t i = 0; i < reply->n_networks; i++)
    {
      const Drover__V1__Network *n = reply->networks[i];

      cli_table_add_take (table, g_strdup (n->name), g_strdup (n->bridge),
                          number_or (n->vlan, "-"), number_or (n->mtu, "-"),
                          usable_hosts (n));
    }
  return ctl_print_table (table);
}

#define SHOW_USAGE "network show NAME [--json]"

static int
network_show (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the network as JSON", NULL },
                                   { NULL } };
  Drover__V1__NetworkRequest req = DROVER__V1__NETWORK_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  const Drover__V1__Network *n;
  const int w = 9;
  int rc;

  if ((rc = network_parse (SHOW_USAGE,
                           "Show a network and, for each host, whether it has "
                           "the bridge and of which kind.",
                           entries, &argc, &argv))
      >= 0)
    return rc;
  req.name = argv[1];
  if ((rc = ctl_call_json (ctl, DROVER_SCHED_METHOD_GET_NETWORK, &req.base,
                           json, &msg))
      >= 0)
    return rc;
  n = (const Drover__V1__Network *)msg;
  ctl_kv (w, "NAME", n->name);
  ctl_kv (w, "BRIDGE", n->bridge);
  ctl_kv_take (w, "VLAN", number_or (n->vlan, "none"));
  ctl_kv_take (w, "MTU", number_or (n->mtu, "the bridge's"));
  ctl_kv_take (w, "CREATED", cli_format_time (n->created_ms));
  for (size_t i = 0; i < n->n_hosts; i++)
    {
      const Drover__V1__NetworkHost *h = n->hosts[i];
      g_autofree char *key = g_strdup_printf ("HOST %s", h->host);

      ctl_kv_take (w, key,
                   h->usable    ? g_strdup_printf ("%s bridge", h->kind)
                   : h->kind[0] ? g_strdup_printf ("unusable: a %s bridge "
                                                   "cannot carry VLAN %u",
                                                   h->kind, n->vlan)
                                : g_strdup ("lacks the bridge"));
    }
  return CTL_EXIT_OK;
}

#define DELETE_USAGE "network delete NAME"

static int
network_delete (Ctl *ctl, int argc, char **argv)
{
  const GOptionEntry entries[] = { { NULL } };
  Drover__V1__NetworkRequest req = DROVER__V1__NETWORK_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = network_parse (DELETE_USAGE, "Delete a network.", entries, &argc,
                           &argv))
      >= 0)
    return rc;
  req.name = argv[1];
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_DELETE_NETWORK, &req.base, 0,
                  &error);
  if (msg == NULL)
    return ctl_fail (error);
  printf ("network %s deleted\n", argv[1]);
  return CTL_EXIT_OK;
}

int
ctl_cmd_network (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "create", network_create },
    { "list", network_list },
    { "show", network_show },
    { "delete", network_delete },
    { NULL, NULL },
  };

  return ctl_dispatch (ctl, "network", network_usage_text, commands, argc,
                       argv);
}
