/* The VMs of this host as AgentService and the migration calls see them:
 * one operation per VM name at a time (Agent.busy), lookup of Drover
 * domains, the checks a spec must pass here and admission of a new VM.
 * Every function may run on any thread. */
#include "agent-private.h"

#include <string.h>

static void
set_not_found (Agent *agent, const char *name, GError **error)
{
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
               "no VM named '%s' on host '%s'", name, agent->config.name);
}

gboolean
agent_vm_claim (Agent *agent, const char *name, GError **error)
{
  gboolean ok;

  g_mutex_lock (&agent->lock);
  ok = !g_hash_table_contains (agent->busy, name);
  if (ok)
    g_hash_table_add (agent->busy, g_strdup (name));
  g_mutex_unlock (&agent->lock);
  if (!ok)
    g_set_error (error, AGENT_ERROR, AGENT_ERROR_BUSY,
                 "another operation on VM %s is in progress", name);
  return ok;
}

void
agent_vm_release (Agent *agent, const char *name)
{
  g_mutex_lock (&agent->lock);
  g_hash_table_remove (agent->busy, name);
  g_mutex_unlock (&agent->lock);
}

virDomainPtr
agent_vm_lookup (Agent *agent, virConnectPtr conn, const char *name,
                 GError **error)
{
  g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);
  g_autofree char *xml = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autoptr (GError) local = NULL;

  if (!dom)
    {
      agent_libvirt_error (&local, "cannot look up VM %s", name);
      if (local->code == AGENT_ERROR_NOT_FOUND)
        set_not_found (agent, name, error);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  xml = virDomainGetXMLDesc (dom, 0);
  if (!xml)
    {
      agent_libvirt_error (error, "cannot read the XML of VM %s", name);
      return NULL;
    }
  /* Foreign domains count as missing. */
  spec = agent_domain_xml_parse (xml, &local);
  if (!spec)
    {
      set_not_found (agent, name, error);
      return NULL;
    }
  return g_steal_pointer (&dom);
}

/* Replaces *FIELD (kernel or initrd WHAT) by the image it names. */
static gboolean
resolve_image (Agent *agent, const char *what, char **field, GError **error)
{
  g_autofree char *real = NULL;

  if (!*field || !**field)
    return TRUE;
  real = agent_image_resolve (agent, what, *field, error);
  if (!real)
    return FALSE;
  if (*field != protobuf_c_empty_string)
    g_free (*field);
  *field = proto_msg_strdup (real);
  return TRUE;
}

gboolean
agent_vm_check_nics (Agent *agent, Drover__V1__VmSpec *spec, GError **error)
{
  Drover__V1__HostBridge **bridges = NULL;
  gsize n = 0;
  gboolean ok = TRUE;

  if (spec->n_nics == 0)
    return TRUE;
  bridges = agent_bridges_collect (NULL, NULL, &n);
  for (gsize i = 0; ok && i < spec->n_nics; i++)
    {
      Drover__V1__VmNic *nic = spec->nics[i];
      const char *kind = NULL;

      for (gsize b = 0; b < n; b++)
        if (strcmp (bridges[b]->name, nic->bridge) == 0)
          kind = bridges[b]->kind;
      if (kind == NULL)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                       "VM %s: host %s has no bridge '%s' (network %s)",
                       spec->name, agent->config.name, nic->bridge,
                       nic->network);
          ok = FALSE;
          break;
        }
      /* Never the wire's word: what this host has. */
      nic->ovs = strcmp (kind, "ovs") == 0;
      if (nic->vlan > 0 && !nic->ovs)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                       "VM %s: bridge '%s' on host %s is no Open vSwitch "
                       "bridge: network %s needs VLAN %u",
                       spec->name, nic->bridge, agent->config.name,
                       nic->network, nic->vlan);
          ok = FALSE;
        }
    }
  for (gsize b = 0; b < n; b++)
    proto_msg_free (bridges[b]);
  g_free (bridges);
  return ok;
}

gboolean
agent_vm_check_spec (Agent *agent, Drover__V1__VmSpec *spec, GError **error)
{
  const char *accel = agent_accel_to_string (agent->accel);

  /* What every component requires; then what only this host can tell. */
  if (!proto_vm_spec_check (spec, error)
      || !resolve_image (agent, "kernel", &spec->kernel, error)
      || !resolve_image (agent, "initrd", &spec->initrd, error)
      || !agent_vm_check_nics (agent, spec, error))
    return FALSE;
  if (*spec->accel && strcmp (spec->accel, accel) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s needs accelerator %s but host %s runs guests with %s",
                   spec->name, spec->accel, agent->config.name, accel);
      return FALSE;
    }
  return TRUE;
}

Drover__V1__VmSpec *
agent_vm_spec_for_host (Agent *agent, const Drover__V1__VmSpec *requested,
                        GError **error)
{
  g_autoptr (Drover__V1__VmSpec) spec = proto_msg_copy (&requested->base);

  if (!agent_vm_check_spec (agent, spec, error))
    return NULL;
  /* Record the accelerator the VM actually runs with. */
  g_free (spec->accel == protobuf_c_empty_string ? NULL : spec->accel);
  spec->accel = proto_msg_strdup (agent_accel_to_string (agent->accel));
  return g_steal_pointer (&spec);
}

virDomainPtr
agent_vm_define (Agent *agent, virConnectPtr conn,
                 const Drover__V1__VmSpec *spec, const char *disk,
                 AgentDomainEditFunc edit, gpointer edit_data, const char *what,
                 GError **error)
{
  g_autofree char *console = agent_console_path (agent, spec->name);
  g_autofree char *xml
      = agent_domain_xml_build (spec, agent->accel, disk, console, error);
  g_autofree char *edited = NULL;
  virDomainPtr dom;

  if (xml && edit)
    edited = edit (xml, edit_data, error);
  if (!(edit ? edited : xml))
    return NULL;
  dom = virDomainDefineXMLFlags (conn, edit ? edited : xml,
                                 VIR_DOMAIN_DEFINE_VALIDATE);
  if (!dom)
    agent_libvirt_error (error, "cannot define %s %s", what, spec->name);
  return dom;
}

/* Refuses SPEC when its memory does not fit next to the running Drover
 * VMs. TCG guests allocate lazily, so this is the configured total, not
 * the kernel's free memory (which page cache keeps low). */
static gboolean
check_memory (Agent *agent, virConnectPtr conn, const Drover__V1__VmSpec *spec,
              GError **error)
{
  virNodeInfo node;
  virDomainPtr *doms = NULL;
  guint64 total, used = 0;
  int n;

  if (virNodeGetInfo (conn, &node) < 0)
    {
      agent_libvirt_error (error, "cannot read node info");
      return FALSE;
    }
  n = virConnectListAllDomains (conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0)
    {
      agent_libvirt_error (error, "cannot list domains");
      return FALSE;
    }
  for (int i = 0; i < n; i++)
    {
      g_autoptr (Drover__V1__VmStatus) status
          = agent_vm_status_from_domain (doms[i], NULL);

      if (status)
        used += status->memory;
      virDomainFree (doms[i]);
    }
  free (doms);
  /* Incoming migrations hold their memory from PrepareIncoming on. */
  used += agent_mig_dst_reserved_memory (agent->mig_dst);
  total = (guint64)node.memory * 1024;
  if (used > total || spec->memory > total - used)
    {
      g_autofree char *need
          = g_format_size_full (spec->memory, G_FORMAT_SIZE_IEC_UNITS);
      g_autofree char *left = g_format_size_full (
          used > total ? 0 : total - used, G_FORMAT_SIZE_IEC_UNITS);
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NO_RESOURCES,
                   "VM %s needs %s of memory but host %s has %s left",
                   spec->name, need, agent->config.name, left);
      return FALSE;
    }
  return TRUE;
}

gboolean
agent_vm_admit (Agent *agent, virConnectPtr conn,
                const Drover__V1__VmSpec *spec, GError **error)
{
  g_autoptr (virDomain) dom = NULL;

  if (!agent_vm_claim (agent, spec->name, error))
    return FALSE;
  dom = virDomainLookupByName (conn, spec->name);
  if (dom)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "a VM named '%s' already exists on host '%s'", spec->name,
                   agent->config.name);
      agent_vm_release (agent, spec->name);
      return FALSE;
    }
  if (!check_memory (agent, conn, spec, error))
    {
      agent_vm_release (agent, spec->name);
      return FALSE;
    }
  return TRUE;
}
