/* VM NICs (issue 13): MAC addresses and the checks of VmSpec.nics that
 * every component applies to a spec from the wire. */
#include <string.h>

#include "proto.h"

#define NIC_MTU_MIN 68
#define NIC_MTU_MAX 65535
#define NIC_VLAN_MAX 4094

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

gboolean
proto_mac_parse (const char *text, guint8 out[6], GError **error)
{
  guint8 octets[6];
  gboolean zero = TRUE;

  if (text == NULL || strlen (text) != PROTO_MAC_TEXT_LEN)
    goto malformed;
  for (guint i = 0; i < 6; i++)
    {
      int hi = hex_value (text[i * 3]);
      int lo = hex_value (text[i * 3 + 1]);

      if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':'))
        goto malformed;
      octets[i] = (guint8)(hi << 4 | lo);
      if (octets[i] != 0)
        zero = FALSE;
    }
  if (octets[0] & 0x01)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "MAC %s is a multicast address (the first octet's low bit "
                   "is set): a NIC needs a unicast one",
                   text);
      return FALSE;
    }
  if (zero)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                           "MAC 00:00:00:00:00:00 is not a usable address");
      return FALSE;
    }
  memcpy (out, octets, 6);
  return TRUE;

malformed:
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
               "MAC '%.32s%s' is malformed: give six hex octets separated "
               "by ':' (02:d7:00:12:34:56)",
               text ? text : "", text && strlen (text) > 32 ? "..." : "");
  return FALSE;
}

void
proto_mac_format (const guint8 octets[6], char buf[PROTO_MAC_TEXT_LEN + 1])
{
  g_snprintf (buf, PROTO_MAC_TEXT_LEN + 1, "%02x:%02x:%02x:%02x:%02x:%02x",
              octets[0], octets[1], octets[2], octets[3], octets[4], octets[5]);
}

/* A Linux interface name, as the bridges the agents report. */
static gboolean
bridge_name_ok (const char *name)
{
  gsize len = strlen (name);

  if (len == 0 || len > PROTO_BRIDGE_NAME_MAX || strcmp (name, ".") == 0
      || strcmp (name, "..") == 0)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (*p == '/' || *p == ':' || g_ascii_isspace (*p) || (guchar)*p < 0x20
        || (guchar)*p >= 0x7f)
      return FALSE;
  return TRUE;
}

gboolean
proto_vm_nics_check (const Drover__V1__VmSpec *spec, GError **error)
{
  if (spec->n_nics > PROTO_VM_MAX_NICS)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "VM %s: at most %d NICs, not %zu", spec->name,
                   PROTO_VM_MAX_NICS, spec->n_nics);
      return FALSE;
    }
  for (gsize i = 0; i < spec->n_nics; i++)
    {
      const Drover__V1__VmNic *nic = spec->nics[i];
      guint8 mac[6];

      if (nic == NULL)
        {
          g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                       "VM %s: NIC %zu missing", spec->name, i);
          return FALSE;
        }
      if (!proto_name_validate ("network", nic->network, error))
        {
          g_prefix_error (error, "VM %s: NIC %zu: ", spec->name, i);
          return FALSE;
        }
      if (nic->mac[0] != '\0' && !proto_mac_parse (nic->mac, mac, error))
        {
          g_prefix_error (error, "VM %s: NIC %zu: ", spec->name, i);
          return FALSE;
        }
      if (nic->bridge[0] != '\0' && !bridge_name_ok (nic->bridge))
        {
          g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                       "VM %s: NIC %zu: bridge name is not a valid interface "
                       "name",
                       spec->name, i);
          return FALSE;
        }
      if (nic->vlan > NIC_VLAN_MAX
          || (nic->mtu != 0
              && (nic->mtu < NIC_MTU_MIN || nic->mtu > NIC_MTU_MAX)))
        {
          g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                       "VM %s: NIC %zu: VLAN must be 0-%d and MTU 0 or "
                       "%d-%d",
                       spec->name, i, NIC_VLAN_MAX, NIC_MTU_MIN, NIC_MTU_MAX);
          return FALSE;
        }
      for (gsize j = 0; j < i && nic->mac[0] != '\0'; j++)
        if (g_ascii_strcasecmp (spec->nics[j]->mac, nic->mac) == 0)
          {
            g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                         "VM %s: MAC %s given to two NICs", spec->name,
                         nic->mac);
            return FALSE;
          }
    }
  return TRUE;
}
