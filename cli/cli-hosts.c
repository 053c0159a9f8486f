/* droverctl hosts */
#include "droverctl.h"

#include <stdio.h>

int
ctl_cmd_hosts (Ctl *ctl, int argc, char **argv)
{
  static const char *const headers[]
      = { "NAME",    "STATE",  "ADDRESS",   "ACCEL",      ">CPUS",
          ">VCPUS",  "MEMORY", ">FREE-MEM", ">DATA-FREE", ">VMS",
          "LIBVIRT", "QEMU",   "KVM",       NULL };
  Drover__V1__ListHostsRequest req = DROVER__V1__LIST_HOSTS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (CliTable) table = NULL;
  const Drover__V1__ListHostsReply *reply;
  int rc;

  if ((rc
       = ctl_list (ctl, "hosts", "List the hosts the scheduler knows.",
                   DROVER_SCHED_METHOD_LIST_HOSTS, &req.base, argc, argv, &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__ListHostsReply *)msg;
  table = cli_table_new (headers);
  for (size_t i = 0; i < reply->n_hosts; i++)
    {
      const Drover__V1__Host *h = reply->hosts[i];
      const Drover__V1__HostInfo *info = h->info;
      g_autofree char *used = proto_format_size (h->memory_used);
      /* Like the vCPUs: used of what VMs may have, and the overcommit. */
      g_autofree char *total = proto_format_size (
          h->memory_capacity ? h->memory_capacity
                             : (info ? info->memory_total : 0));

      if (info == NULL)
        {
          /* The scheduler always fills info; be robust anyway. */
          cli_table_add_take (table, g_strdup ("?"), g_strdup (h->state), NULL,
                              NULL, NULL, NULL, NULL, NULL, NULL,
                              g_strdup_printf ("%u", h->vm_count), NULL, NULL,
                              NULL);
          continue;
        }
      cli_table_add_take (
          table, g_strdup (info->name),
          h->maintenance && h->maintenance[0]
              ? g_strdup_printf ("%s, %s", h->state, h->maintenance)
              : g_strdup (h->state),
          g_strdup (info->address), g_strdup (info->accel),
          g_strdup_printf ("%u", info->cpus),
          /* The overcommit is a scheduler setting: say what the cap is. */
          h->vcpu_capacity
              ? g_strdup_printf ("%u/%u (x%.1f)", h->vcpus_used,
                                 h->vcpu_capacity, h->cpu_overcommit)
              : g_strdup_printf ("%u", h->vcpus_used),
          h->memory_capacity ? g_strdup_printf ("%s/%s (x%.1f)", used, total,
                                                h->memory_overcommit)
                             : g_strdup_printf ("%s/%s", used, total),
          proto_format_size (info->memory_free),
          proto_format_size (info->data_free),
          g_strdup_printf ("%u", h->vm_count), g_strdup (info->libvirt_version),
          g_strdup (info->qemu_version),
          g_strdup (info->kvm_usable ? "yes" : "no"));
    }
  return ctl_print_table (table);
}
