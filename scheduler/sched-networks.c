/* Networks (issue 13, first slice): the checks of a network and of the
 * bridges hosts report, which hosts can offer a network (placement's
 * filter), and the RPCs CreateNetwork, ListNetworks, GetNetwork and
 * DeleteNetwork. See sched-networks.h. */
#include "sched-networks.h"
#include "sched-nics.h"

#include <string.h>

static gboolean invalid (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error_literal (error, SCHED_ERROR, SCHED_ERROR_INVALID, msg);
  return FALSE;
}

gboolean
sched_network_bridge_name_check (const char *name, GError **error)
{
  gsize len = name ? strlen (name) : 0;

  if (len == 0 || len > PROTO_BRIDGE_NAME_MAX)
    return invalid (error, "a bridge name is 1-%d characters",
                    PROTO_BRIDGE_NAME_MAX);
  if (strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
    return invalid (error, "'%s' is not a bridge name", name);
  for (gsize i = 0; i < len; i++)
    {
      unsigned char c = (unsigned char)name[i];

      /* Interface names are bytes, but nothing here needs more than
       * printable ASCII, and anything else would reach logs and XML. */
      if (c == '/' || c == ':' || c <= ' ' || c >= 0x7f)
        {
          g_autofree char *shown = g_strescape (name, NULL);

          return invalid (error,
                          "bridge name '%s': no '/', ':', whitespace or "
                          "non-printable characters",
                          shown);
        }
    }
  return TRUE;
}

gboolean
sched_host_bridges_check (const Drover__V1__HostInfo *info, GError **error)
{
  if (info->n_bridges > PROTO_HOST_MAX_BRIDGES)
    return invalid (error, "host '%s' reports %zu bridges, at most %d",
                    info->name, info->n_bridges, PROTO_HOST_MAX_BRIDGES);
  for (gsize i = 0; i < info->n_bridges; i++)
    {
      const Drover__V1__HostBridge *br = info->bridges[i];

      if (br == NULL || !sched_network_bridge_name_check (br->name, error))
        {
          if (br == NULL)
            invalid (error, "host '%s': an empty bridge", info->name);
          else
            g_prefix_error (error, "host '%s': ", info->name);
          return FALSE;
        }
      if (strcmp (br->kind, SCHED_NETWORK_KIND_LINUX) != 0
          && strcmp (br->kind, SCHED_NETWORK_KIND_OVS) != 0)
        return invalid (error, "host '%s': bridge '%s' is of no known kind",
                        info->name, br->name);
      for (gsize j = 0; j < i; j++)
        if (strcmp (info->bridges[j]->name, br->name) == 0)
          return invalid (error, "host '%s' reports bridge '%s' twice",
                          info->name, br->name);
    }
  return TRUE;
}

Drover__V1__Network *
sched_network_check (const Drover__V1__Network *spec, GError **error)
{
  Drover__V1__Network *out;

  if (spec == NULL)
    {
      invalid (error, "network missing");
      return NULL;
    }
  if (!proto_name_validate ("network", spec->name, error))
    return NULL;
  if (!sched_network_bridge_name_check (spec->bridge, error))
    {
      g_prefix_error (error, "network '%s': ", spec->name);
      return NULL;
    }
  if (spec->vlan > SCHED_NETWORK_VLAN_MAX)
    {
      invalid (error, "network '%s': VLAN %u is not 1-%d (0 = none)",
               spec->name, spec->vlan, SCHED_NETWORK_VLAN_MAX);
      return NULL;
    }
  if (spec->mtu != 0
      && (spec->mtu < SCHED_NETWORK_MTU_MIN
          || spec->mtu > SCHED_NETWORK_MTU_MAX))
    {
      invalid (error, "network '%s': MTU %u is not %d-%d (0 = the bridge's)",
               spec->name, spec->mtu, SCHED_NETWORK_MTU_MIN,
               SCHED_NETWORK_MTU_MAX);
      return NULL;
    }
  out = g_new0 (Drover__V1__Network, 1);
  drover__v1__network__init (out);
  out->name = proto_msg_strdup (spec->name);
  out->bridge = proto_msg_strdup (spec->bridge);
  out->vlan = spec->vlan;
  out->mtu = spec->mtu;
  return out;
}

const char *
sched_host_bridge_kind (const SchedHost *host, const char *bridge)
{
  if (host == NULL || host->info == NULL)
    return NULL;
  for (gsize i = 0; i < host->info->n_bridges; i++)
    if (strcmp (host->info->bridges[i]->name, bridge) == 0)
      return host->info->bridges[i]->kind;
  return NULL;
}

gboolean
sched_networks_host_has (const SchedHost *host, const Drover__V1__Network *net)
{
  const char *kind = sched_host_bridge_kind (host, net->bridge);

  if (kind == NULL)
    return FALSE;
  return net->vlan == 0 || strcmp (kind, SCHED_NETWORK_KIND_OVS) == 0;
}

char *
sched_networks_misfit (const SchedHost *host, GPtrArray *nets)
{
  for (guint i = 0; nets != NULL && i < nets->len; i++)
    {
      const Drover__V1__Network *net = nets->pdata[i];

      if (sched_networks_host_has (host, net))
        continue;
      if (sched_host_bridge_kind (host, net->bridge) == NULL)
        return g_strdup_printf ("no bridge '%s' (network %s)", net->bridge,
                                net->name);
      return g_strdup_printf ("bridge '%s' is no Open vSwitch bridge, "
                              "network %s needs VLAN %u",
                              net->bridge, net->name, net->vlan);
    }
  return NULL;
}

char **
sched_network_fill_hosts (Drover__V1__Network *net, GPtrArray *hosts)
{
  GPtrArray *lacking = g_ptr_array_new ();

  for (gsize i = 0; i < net->n_hosts; i++)
    proto_msg_free (net->hosts[i]);
  g_free (net->hosts);
  net->n_hosts = hosts->len;
  net->hosts = g_new0 (Drover__V1__NetworkHost *, hosts->len + 1);
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *host = hosts->pdata[i];
      Drover__V1__NetworkHost *nh = g_new0 (Drover__V1__NetworkHost, 1);
      const char *kind = sched_host_bridge_kind (host, net->bridge);

      drover__v1__network_host__init (nh);
      nh->host = proto_msg_strdup (host->name);
      nh->kind = proto_msg_strdup (kind);
      nh->usable = sched_networks_host_has (host, net);
      net->hosts[i] = nh;
      if (!nh->usable)
        g_ptr_array_add (lacking, g_strdup (host->name));
    }
  g_ptr_array_add (lacking, NULL);
  return (char **)g_ptr_array_free (lacking, FALSE);
}

/* --- the RPCs ---------------------------------------------------------- */

/* NET with its hosts filled in from the store's hosts; the hosts lacking
 * it in *LACKING if not NULL. FALSE if the hosts could not be read. */
static gboolean
with_hosts (SchedService *svc, Drover__V1__Network *net, char ***lacking,
            GError **error)
{
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (svc->store, error);
  char **names;

  if (hosts == NULL)
    return FALSE;
  names = sched_network_fill_hosts (net, hosts);
  if (lacking)
    *lacking = names;
  else
    g_strfreev (names);
  return TRUE;
}

/* Network NAME as stored (a copy), or NULL with NOT_FOUND. */
static Drover__V1__Network *
get (SchedService *svc, const char *name, GError **error)
{
  g_autoptr (SchedNetworkRow) row = NULL;

  if (!proto_name_validate ("network", name, error))
    return NULL;
  row = sched_store_get_network (svc->store, name, NULL);
  if (row == NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                   "no network named '%s'", name);
      return NULL;
    }
  return proto_msg_copy (&row->spec->base);
}

void
sched_networks_handle_create (ProtoServerCall *call,
                              const ProtobufCMessage *request,
                              gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Network) net
      = sched_network_check ((const void *)request, &error);
  g_autoptr (SchedNetworkRow) old = NULL;
  g_autoptr (SchedNetworkRow) row = NULL;
  g_autoptr (GPtrArray) all = NULL;
  g_auto (GStrv) lacking = NULL;
  Drover__V1__CreateNetworkReply reply = DROVER__V1__CREATE_NETWORK_REPLY__INIT;

  if (net && (old = sched_store_get_network (svc->store, net->name, NULL)))
    g_set_error (&error, SCHED_ERROR, SCHED_ERROR_EXISTS, "network '%s' exists",
                 net->name);
  if (net && !error
      && (all = sched_store_list_networks (svc->store, &error)) != NULL
      && all->len >= SCHED_NETWORK_MAX)
    g_set_error (&error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY,
                 "there are %u networks already, at most %d", all->len,
                 SCHED_NETWORK_MAX);
  if (error)
    {
      sched_call_fail (call, error);
      return;
    }
  net->created_ms = g_get_real_time () / 1000;
  row = sched_network_row_new (net);
  if (!sched_store_put_network (svc->store, row, &error)
      || !with_hosts (svc, net, &lacking, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  drover_message (NULL, NULL, NULL,
                  "network %s created: bridge %s, VLAN %u, MTU %u; %u "
                  "host(s) lack it",
                  net->name, net->bridge, net->vlan, net->mtu,
                  g_strv_length (lacking));
  reply.network = net;
  reply.n_hosts_lacking = g_strv_length (lacking);
  reply.hosts_lacking = lacking;
  proto_server_call_reply (call, &reply.base);
}

void
sched_networks_handle_list (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) rows = sched_store_list_networks (svc->store, &error);
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) nets = NULL;
  Drover__V1__ListNetworksReply reply = DROVER__V1__LIST_NETWORKS_REPLY__INIT;

  (void)request;
  if (rows)
    hosts = sched_store_list_hosts (svc->store, &error);
  if (!hosts)
    {
      sched_call_fail (call, error);
      return;
    }
  nets = g_ptr_array_new_with_free_func (proto_msg_free);
  for (guint i = 0; i < rows->len; i++)
    {
      Drover__V1__Network *net
          = proto_msg_copy (&((SchedNetworkRow *)rows->pdata[i])->spec->base);

      g_strfreev (sched_network_fill_hosts (net, hosts));
      g_ptr_array_add (nets, net);
    }
  reply.n_networks = nets->len;
  reply.networks = (Drover__V1__Network **)nets->pdata;
  proto_server_call_reply (call, &reply.base);
}

void
sched_networks_handle_get (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Network) net
      = get (svc, ((const Drover__V1__NetworkRequest *)request)->name, &error);

  if (!net || !with_hosts (svc, net, NULL, &error))
    sched_call_fail (call, error);
  else
    proto_server_call_reply (call, &net->base);
}

void
sched_networks_handle_delete (ProtoServerCall *call,
                              const ProtobufCMessage *request,
                              gpointer user_data)
{
  SchedService *svc = user_data;
  const char *name = ((const Drover__V1__NetworkRequest *)request)->name;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Network) net = get (svc, name, &error);
  Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;

  g_autoptr (GPtrArray) vms = NULL;
  g_autofree char *users = NULL;

  if (net != NULL)
    vms = sched_store_list_vms (svc->store, NULL, &error);
  if (vms == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  /* A network that VMs' NICs are on stays until they leave it. */
  users = sched_nics_vms_on (vms, name);
  if (users != NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "network %s is in use by VM(s) %s: remove "
                              "their NICs (droverctl vm nic remove) or the "
                              "VMs first",
                              name, users);
      return;
    }
  if (!sched_store_delete_network (svc->store, name, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  drover_message (NULL, NULL, NULL, "network %s deleted", name);
  proto_server_call_reply (call, &empty.base);
}
