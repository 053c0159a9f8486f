/* NIC hot-plug (issue 13): AttachNic and DetachNic on one claimed VM.
 *
 * The NIC comes from the scheduler, checked again here (its fields, and
 * that this host has its bridge, of a kind that carries its VLAN). A
 * running VM gets the change live and in its definition, a stopped one in
 * its definition; then the Drover metadata (the spec the agent reports,
 * which the scheduler takes as what runs) is rewritten to match. */
#include "agent-private.h"

#include <string.h>

/* The spec recorded in DOM's metadata (the live one when running). */
static Drover__V1__VmSpec *
dom_spec (virDomainPtr dom, GError **error)
{
  g_autofree char *xml = virDomainGetXMLDesc (dom, 0);

  if (xml == NULL)
    {
      agent_libvirt_error (error, "cannot read the definition of VM %s",
                           virDomainGetName (dom));
      return NULL;
    }
  return agent_domain_xml_parse (xml, error);
}

static unsigned int
affect_flags (virDomainPtr dom)
{
  return VIR_DOMAIN_AFFECT_CONFIG
         | (virDomainIsActive (dom) == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0);
}

static gboolean
write_metadata (virDomainPtr dom, const Drover__V1__VmSpec *spec,
                GError **error)
{
  g_autofree char *meta = agent_domain_xml_metadata (spec, error);

  if (meta == NULL)
    return FALSE;
  if (virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, meta,
                            AGENT_DOMAIN_XMLNS_PREFIX, AGENT_DOMAIN_XMLNS,
                            affect_flags (dom))
      < 0)
    {
      agent_libvirt_error (error, "cannot record the NICs of VM %s",
                           spec->name);
      return FALSE;
    }
  return TRUE;
}

/* REQ's NIC, checked as a spec's NIC and against this host's bridges,
 * with ovs set from the host, in a one-NIC spec named after the VM. */
static Drover__V1__VmSpec *
checked_nic (Agent *agent, const Drover__V1__AgentNicRequest *req,
             GError **error)
{
  Drover__V1__VmSpec base = DROVER__V1__VM_SPEC__INIT;
  Drover__V1__VmNic *one[1];
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  guint8 mac[6];

  if (req->nic == NULL || req->nic->mac[0] == '\0'
      || !proto_mac_parse (req->nic->mac, mac, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s: a NIC needs a valid MAC", req->name);
      return NULL;
    }
  one[0] = req->nic;
  base.name = req->name;
  base.nics = one;
  base.n_nics = 1;
  spec = proto_msg_copy (&base.base);
  if (!proto_vm_nics_check (spec, error))
    return NULL;
  /* The Open vSwitch bridges are a kept answer up to 30 s old: a bridge
   * not in it is asked for again before the attach is refused. */
  if (!agent_vm_check_nics (agent, spec, NULL))
    {
      agent_bridges_ovs_forget ();
      if (!agent_vm_check_nics (agent, spec, error))
        return NULL;
    }
  return g_steal_pointer (&spec);
}

ProtobufCMessage *
agent_nic_attach (Agent *agent, virConnectPtr conn, virDomainPtr dom,
                  const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentNicRequest *req = (const void *)request;
  g_autoptr (Drover__V1__VmSpec) one = checked_nic (agent, req, error);
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *xml = NULL;
  Drover__V1__VmNic *nic;

  if (one == NULL || (spec = dom_spec (dom, error)) == NULL)
    return NULL;
  nic = one->nics[0];
  if (spec->n_nics >= PROTO_VM_MAX_NICS)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s has %d NICs already, the most it may have", req->name,
                   PROTO_VM_MAX_NICS);
      return NULL;
    }
  for (gsize i = 0; i < spec->n_nics; i++)
    if (g_ascii_strcasecmp (spec->nics[i]->mac, nic->mac) == 0)
      {
        g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                     "VM %s already has a NIC with MAC %s", req->name,
                     nic->mac);
        return NULL;
      }
  xml = agent_domain_xml_nic (req->name, nic, error);
  if (xml == NULL)
    return NULL;
  if (virDomainAttachDeviceFlags (dom, xml, affect_flags (dom)) < 0)
    {
      agent_libvirt_error (error, "cannot attach NIC %s to VM %s", nic->mac,
                           req->name);
      return NULL;
    }
  spec->nics = g_renew (Drover__V1__VmNic *, spec->nics, spec->n_nics + 1);
  spec->nics[spec->n_nics++] = g_steal_pointer (&one->nics[0]);
  one->n_nics = 0;
  if (!write_metadata (dom, spec, error))
    return NULL;
  return agent_vm_reply (dom, error);
}

ProtobufCMessage *
agent_nic_detach (Agent *agent, virConnectPtr conn, virDomainPtr dom,
                  const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentNicRequest *req = (const void *)request;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *xml = NULL;
  guint8 mac[6];
  gsize at = G_MAXSIZE;

  if (req->nic == NULL || !proto_mac_parse (req->nic->mac, mac, error))
    return NULL;
  spec = dom_spec (dom, error);
  if (spec == NULL)
    return NULL;
  for (gsize i = 0; i < spec->n_nics; i++)
    if (g_ascii_strcasecmp (spec->nics[i]->mac, req->nic->mac) == 0)
      at = i;
  if (at == G_MAXSIZE)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "VM %s has no NIC with MAC %s", req->name, req->nic->mac);
      return NULL;
    }
  /* libvirt finds the interface by its MAC; the rest is what we made.
   * ovs as the host has it, so the element matches. */
  {
    Drover__V1__VmNic nic = *spec->nics[at];
    g_autoptr (Drover__V1__VmSpec) one = NULL;
    Drover__V1__VmSpec base = DROVER__V1__VM_SPEC__INIT;
    Drover__V1__VmNic *p[1] = { &nic };

    base.name = req->name;
    base.nics = p;
    base.n_nics = 1;
    one = proto_msg_copy (&base.base);
    /* A bridge gone from the host: detach all the same (ovs FALSE). */
    if (!agent_vm_check_nics (agent, one, NULL))
      {
        one->nics[0]->ovs = FALSE;
        one->nics[0]->vlan = 0;
      }
    xml = agent_domain_xml_nic (req->name, one->nics[0], error);
  }
  if (xml == NULL)
    return NULL;
  if (virDomainDetachDeviceFlags (dom, xml, affect_flags (dom)) < 0)
    {
      agent_libvirt_error (error, "cannot detach NIC %s from VM %s",
                           req->nic->mac, req->name);
      return NULL;
    }
  proto_msg_free (spec->nics[at]);
  memmove (&spec->nics[at], &spec->nics[at + 1],
           (spec->n_nics - at - 1) * sizeof spec->nics[0]);
  spec->n_nics--;
  if (!write_metadata (dom, spec, error))
    return NULL;
  return agent_vm_reply (dom, error);
}
