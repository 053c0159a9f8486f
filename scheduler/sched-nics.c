/* VM NICs (issue 13): filling a VM spec's NICs from the networks, and
 * the MACs (see sched-nics.h). */
#include "sched-nics.h"

#include <string.h>

#include "sched-networks.h"

#define NEW_MAC_TRIES 256

const SchedVm *
sched_nics_mac_user (GPtrArray *vms, const char *mac, const char *self)
{
  for (guint i = 0; vms != NULL && i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      if (self != NULL && strcmp (vm->name, self) == 0)
        continue;
      for (gsize n = 0; n < vm->spec->n_nics; n++)
        if (g_ascii_strcasecmp (vm->spec->nics[n]->mac, mac) == 0)
          return vm;
    }
  return NULL;
}

static gboolean
spec_has_mac (const Drover__V1__VmSpec *spec, const char *mac)
{
  for (gsize n = 0; spec != NULL && n < spec->n_nics; n++)
    if (g_ascii_strcasecmp (spec->nics[n]->mac, mac) == 0)
      return TRUE;
  return FALSE;
}

gboolean
sched_nics_new_mac (GPtrArray *vms, const Drover__V1__VmSpec *spec,
                    char buf[PROTO_MAC_TEXT_LEN + 1], GError **error)
{
  for (guint t = 0; t < NEW_MAC_TRIES; t++)
    {
      guint32 r = g_random_int ();
      guint8 octets[6] = { SCHED_NIC_MAC_PREFIX0, SCHED_NIC_MAC_PREFIX1,
                           SCHED_NIC_MAC_PREFIX2, (guint8)(r >> 16),
                           (guint8)(r >> 8),      (guint8)r };

      proto_mac_format (octets, buf);
      if (!spec_has_mac (spec, buf)
          && sched_nics_mac_user (vms, buf, NULL) == NULL)
        return TRUE;
    }
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_FAILED,
               "found no unused MAC address in %d tries", NEW_MAC_TRIES);
  return FALSE;
}

static void
set_str (char **field, const char *value)
{
  if (*field != protobuf_c_empty_string)
    g_free (*field);
  *field = proto_msg_strdup (value);
}

gboolean
sched_nics_prepare (SchedStore *store, Drover__V1__VmSpec *spec, GPtrArray *vms,
                    const char *self, gboolean new_macs, GError **error)
{
  /* Given MACs first, so an assigned one cannot take a given one. */
  for (gsize i = 0; i < spec->n_nics; i++)
    {
      Drover__V1__VmNic *nic = spec->nics[i];
      g_autoptr (SchedNetworkRow) row = NULL;
      g_autoptr (GError) local = NULL;
      const SchedVm *user;

      row = sched_store_get_network (store, nic->network, &local);
      if (row == NULL)
        {
          if (g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
            g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                         "VM '%s': no network named '%s' (droverctl network "
                         "list)",
                         spec->name, nic->network);
          else
            g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      set_str (&nic->bridge, row->spec->bridge);
      nic->vlan = row->spec->vlan;
      nic->mtu = row->spec->mtu;
      if (new_macs || nic->mac[0] == '\0')
        {
          set_str (&nic->mac, "");
          continue;
        }
      {
        g_autofree char *lower = g_ascii_strdown (nic->mac, -1);
        set_str (&nic->mac, lower);
      }
      user = sched_nics_mac_user (vms, nic->mac, self);
      if (user != NULL)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_EXISTS,
                       "VM '%s': MAC %s is already used by VM '%s'", spec->name,
                       nic->mac, user->name);
          return FALSE;
        }
    }
  for (gsize i = 0; i < spec->n_nics; i++)
    {
      Drover__V1__VmNic *nic = spec->nics[i];
      char mac[PROTO_MAC_TEXT_LEN + 1];

      if (nic->mac[0] != '\0')
        continue;
      if (!sched_nics_new_mac (vms, spec, mac, error))
        return FALSE;
      set_str (&nic->mac, mac);
    }
  return TRUE;
}

char *
sched_nics_vms_on (GPtrArray *vms, const char *network)
{
  GString *names = NULL;

  for (guint i = 0; vms != NULL && i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      for (gsize n = 0; n < vm->spec->n_nics; n++)
        if (strcmp (vm->spec->nics[n]->network, network) == 0)
          {
            if (names == NULL)
              names = g_string_new (vm->name);
            else
              g_string_append_printf (names, ", %s", vm->name);
            break;
          }
    }
  return names ? g_string_free (names, FALSE) : NULL;
}

GPtrArray *
sched_nics_networks (const Drover__V1__VmSpec *spec)
{
  GPtrArray *nets;

  if (spec == NULL || spec->n_nics == 0)
    return NULL;
  nets = g_ptr_array_new ();
  for (gsize n = 0; n < spec->n_nics; n++)
    {
      const Drover__V1__VmNic *nic = spec->nics[n];
      Drover__V1__Network *net = g_new (Drover__V1__Network, 1);

      /* Borrowed strings: freed with g_free on the struct only. */
      *net = (Drover__V1__Network)DROVER__V1__NETWORK__INIT;
      net->name = nic->network;
      net->bridge = nic->bridge;
      net->vlan = nic->vlan;
      g_ptr_array_add (nets, net);
    }
  return nets;
}

void
sched_nics_networks_free (GPtrArray *nets)
{
  if (nets == NULL)
    return;
  for (guint i = 0; i < nets->len; i++)
    g_free (nets->pdata[i]);
  g_ptr_array_unref (nets);
}
