/* Host inventory: what the agent tells the scheduler about its host. */
#include "agent-private.h"
#include "agent-disk-images.h"

#include <string.h>

#include "stor.h"

char *
agent_version_string (unsigned long version)
{
  return g_strdup_printf ("%lu.%lu.%lu", version / 1000000,
                          (version / 1000) % 1000, version % 1000);
}

/* host/cpu/model from the capabilities XML, or NULL. */
static char *
caps_cpu_model (virConnectPtr conn)
{
  g_autofree char *caps = virConnectGetCapabilities (conn);

  return agent_xml_string (caps, "/capabilities/host/cpu/model");
}

/* "model name" from /proc/cpuinfo, or NULL. */
static char *
cpuinfo_model (void)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (!g_file_get_contents ("/proc/cpuinfo", &text, NULL, NULL))
    return NULL;
  lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    {
      const char *colon;

      if (!g_str_has_prefix (lines[i], "model name"))
        continue;
      colon = strchr (lines[i], ':');
      if (colon)
        return g_strstrip (g_strdup (colon + 1));
    }
  return NULL;
}

Drover__V1__HostInfo *
agent_host_info_collect (virConnectPtr conn, const char *name,
                         const char *address, AgentAccel accel,
                         const char *data_dir, GError **error)
{
  g_autoptr (Drover__V1__HostInfo) info = g_new0 (Drover__V1__HostInfo, 1);
  virNodeInfo node;
  unsigned long long free_mem;
  unsigned long lib_version = 0, hv_version = 0;
  g_autofree char *model = NULL;
  guint64 total = 0, avail = 0;

  drover__v1__host_info__init (info);
  if (virNodeGetInfo (conn, &node) < 0)
    {
      agent_libvirt_error (error, "cannot read node info");
      return NULL;
    }
  free_mem = virNodeGetFreeMemory (conn);
  if (free_mem == 0 && virGetLastError ()
      && virGetLastError ()->code != VIR_ERR_OK)
    {
      agent_libvirt_error (error, "cannot read free memory");
      return NULL;
    }
  if (virConnectGetLibVersion (conn, &lib_version) < 0
      || virConnectGetVersion (conn, &hv_version) < 0)
    {
      agent_libvirt_error (error,
                           "cannot read libvirt and hypervisor versions");
      return NULL;
    }
  if (!stor_fs_space (data_dir, &total, &avail, error))
    return NULL;

  model = caps_cpu_model (conn);
  if (!model)
    model = cpuinfo_model ();

  info->name = proto_msg_strdup (name);
  info->address = proto_msg_strdup (address);
  info->cpus = node.cpus;
  info->cpu_model = proto_msg_strdup (model ? model : node.model);
  info->memory_total = (guint64)node.memory * 1024;
  info->memory_free = free_mem;
  info->kvm_usable = agent_kvm_usable ();
  info->accel
      = proto_msg_strdup (agent_accel_to_string (agent_accel_resolve (accel)));
  info->libvirt_version = agent_version_string (lib_version);
  info->qemu_version = agent_version_string (hv_version);
  info->data_total = total;
  info->data_free = avail;
  return g_steal_pointer (&info);
}

Drover__V1__HostInfo *
agent_host_info_for (Agent *agent, virConnectPtr conn, GError **error)
{
  Drover__V1__HostInfo *info
      = agent_host_info_collect (conn, agent->config.name, agent->config.listen,
                                 agent->accel, agent->config.data_dir, error);

  if (info)
    {
      info->backup_repos = agent_backup_repos_names (agent);
      info->n_backup_repos = g_strv_length (info->backup_repos);
      info->bridges = agent_bridges_collect (NULL, NULL, &info->n_bridges);
      info->images = agent_disk_images_collect (agent, &info->n_images);
    }
  return info;
}
