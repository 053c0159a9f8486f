/* droverctl vm list and vm show. */
#include "cli-vm.h"

#include <stdio.h>
#include <string.h>

/* Width of the key column in the show output. */
#define KV_WIDTH 15

static void add_vm_row (CliTable *table, const Drover__V1__Vm *vm);

int
cli_vm_list (Ctl *ctl, int argc, char **argv)
{
  static const char *const headers[]
      = { "NAME",    "HOST",  "STATE",      ">VCPUS",
          ">MEMORY", ">CPU%", ">SNAPSHOTS", NULL };
  static const char *const template_headers[]
      = { "TEMPLATE", "HOST", ">VCPUS", ">MEMORY", ">DISK", NULL };
  g_autoptr (CliTable) table2 = NULL;
  guint n_templates = 0;
  Drover__V1__ListVmsRequest req = DROVER__V1__LIST_VMS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (CliTable) table = NULL;
  const Drover__V1__ListVmsReply *reply;
  int rc;

  if ((rc
       = ctl_list (ctl, "vm list",
                   "List VMs. STATE is libvirt's on the VM's host, or "
                   "creating, missing (its host reported without it) or "
                   "unknown (its host is down). Templates are listed apart "
                   "after the VMs.",
                   DROVER_SCHED_METHOD_LIST_VMS, &req.base, argc, argv, &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__ListVmsReply *)msg;
  table = cli_table_new (headers);
  for (size_t i = 0; i < reply->n_vms; i++)
    {
      const Drover__V1__Vm *vm = reply->vms[i];

      if (vm->template_)
        n_templates++;
      else
        add_vm_row (table, vm);
    }
  rc = ctl_print_table (table);
  if (n_templates == 0)
    return rc;
  /* Templates are no VMs to run: a table of their own. */
  table2 = cli_table_new (template_headers);
  for (size_t i = 0; i < reply->n_vms; i++)
    {
      const Drover__V1__Vm *vm = reply->vms[i];
      const Drover__V1__VmSpec *spec = vm->spec;

      if (!vm->template_)
        continue;
      cli_table_add_take (
          table2, g_strdup (spec ? spec->name : "?"), g_strdup (vm->host),
          spec ? g_strdup_printf ("%u", spec->vcpus) : NULL,
          spec ? proto_format_size (spec->memory) : NULL,
          spec && spec->disk ? proto_format_size (spec->disk) : NULL);
    }
  printf ("\nTemplates (clone them: droverctl vm clone TEMPLATE NEW):\n");
  return ctl_print_table (table2);
}

/* A row of the VM table for VM. */
static void
add_vm_row (CliTable *table, const Drover__V1__Vm *vm)
{
  {
    const Drover__V1__VmSpec *spec = vm->spec;
    const char *name
        = spec ? spec->name : (vm->status ? vm->status->name : "?");
    char cpu[G_ASCII_DTOSTR_BUF_SIZE] = "-";

    if (vm->status != NULL && g_str_equal (vm->state, PROTO_VM_RUNNING))
      g_ascii_formatd (cpu, sizeof cpu, "%.1f", vm->status->cpu_percent);
    cli_table_add_take (
        table, g_strdup (name), g_strdup (vm->host), g_strdup (vm->state),
        spec ? g_strdup_printf ("%u", spec->vcpus) : NULL,
        spec ? proto_format_size (spec->memory) : NULL, g_strdup (cpu),
        vm->snapshots ? g_strdup_printf ("%u", vm->snapshots) : NULL);
  }
}

int
cli_vm_show (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[]
      = { { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
          { NULL } };
  Drover__V1__GetVmRequest req = DROVER__V1__GET_VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__VmReply *reply;
  const Drover__V1__Vm *vm;
  const Drover__V1__VmSpec *spec;
  const Drover__V1__VmStatus *st;
  const char *name;
  int rc = 0;

  if ((rc = cli_vm_parse ("vm show NAME [--json]",
                          "Show one VM: its spec, state and the last stats its "
                          "host reported.",
                          entries, argc, argv, &name))
      >= 0)
    return rc;
  req.name = (char *)name;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_GET_VM, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__VmReply *)msg;
  vm = reply->vm;
  if (json)
    return cli_vm_print_json (vm);
  if (vm == NULL)
    {
      ctl_print_error ("the scheduler returned no VM for '%s'", name);
      return CTL_EXIT_FAILURE;
    }
  spec = vm->spec;
  st = vm->status;
  ctl_kv (KV_WIDTH, "name", spec ? spec->name : name);
  ctl_kv (KV_WIDTH, "host", vm->host);
  ctl_kv (KV_WIDTH, "state", vm->state);
  if (vm->template_)
    ctl_kv (KV_WIDTH, "template", "yes: never started; clone it");
  ctl_kv_take (KV_WIDTH, "snapshots", g_strdup_printf ("%u", vm->snapshots));
  ctl_kv (KV_WIDTH, "current-snap", vm->current_snapshot);
  ctl_kv (KV_WIDTH, "labels", vm->labels[0] ? vm->labels : "(none)");
  if (spec != NULL)
    {
      ctl_kv_take (KV_WIDTH, "vcpus", g_strdup_printf ("%u", spec->vcpus));
      ctl_kv_take (KV_WIDTH, "memory", proto_format_size (spec->memory));
      ctl_kv_take (KV_WIDTH, "disk",
                   spec->disk ? proto_format_size (spec->disk)
                              : g_strdup ("none"));
      ctl_kv (KV_WIDTH, "accel", spec->accel);
      ctl_kv (KV_WIDTH, "kernel", spec->kernel);
      ctl_kv (KV_WIDTH, "image", spec->image);
      if (spec->cloud_init_user_data.len > 0)
        ctl_kv_take (KV_WIDTH, "cloud-init",
                     g_strdup_printf ("%zu bytes of user-data",
                                      spec->cloud_init_user_data.len));
      ctl_kv (KV_WIDTH, "initrd", spec->initrd);
      ctl_kv (KV_WIDTH, "cmdline", spec->cmdline);
      for (gsize i = 0; i < spec->n_nics; i++)
        {
          const Drover__V1__VmNic *nic = spec->nics[i];
          g_autoptr (GString) addrs = g_string_new (NULL);

          /* A repeated string is a counted array, not NULL-terminated. */
          for (gsize a = 0; st != NULL && a < st->n_nic_addresses; a++)
            if (g_ascii_strcasecmp (st->nic_addresses[a]->mac, nic->mac) == 0)
              for (gsize k = 0; k < st->nic_addresses[a]->n_addresses; k++)
                g_string_append_printf (addrs, " %s",
                                        st->nic_addresses[a]->addresses[k]);
          ctl_kv_take (KV_WIDTH, i == 0 ? "nics" : "",
                       g_strdup_printf ("%s network %s bridge %s%s%s", nic->mac,
                                        nic->network, nic->bridge,
                                        addrs->len ? " addresses" : "",
                                        addrs->str));
        }
    }
  if (st != NULL)
    {
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      ctl_kv (KV_WIDTH, "uuid", st->uuid);
      ctl_kv (KV_WIDTH, "libvirt-state", st->state);
      g_ascii_formatd (buf, sizeof buf, "%.1f", st->cpu_percent);
      ctl_kv_take (KV_WIDTH, "cpu", g_strconcat (buf, "%", NULL));
      g_ascii_formatd (buf, sizeof buf, "%.3f s", st->cpu_time_ns / 1e9);
      ctl_kv (KV_WIDTH, "cpu-time", buf);
      /* The agent's measurement (QEMU page sampling, every 30 s). */
      if (st->dirty_rate_measured)
        {
          g_autofree char *rate = proto_format_size (
              (guint64)MAX (st->dirty_rate_bytes_per_second, 0));

          ctl_kv_take (KV_WIDTH, "dirty-rate",
                       g_strdup_printf ("%s/s (measured %u s before the "
                                        "report)",
                                        rate, st->dirty_rate_age_s));
        }
      else
        ctl_kv (KV_WIDTH, "dirty-rate", "unknown (not measured yet)");
      if (st->has_disk)
        {
          ctl_kv_take (KV_WIDTH, "disk-read",
                       proto_format_size (st->disk_rd_bytes));
          ctl_kv_take (KV_WIDTH, "disk-written",
                       proto_format_size (st->disk_wr_bytes));
        }
      if (st->has_net)
        {
          ctl_kv_take (KV_WIDTH, "net-rx",
                       proto_format_size (st->net_rx_bytes));
          ctl_kv_take (KV_WIDTH, "net-tx",
                       proto_format_size (st->net_tx_bytes));
        }
    }
  ctl_kv_take (KV_WIDTH, "updated", cli_format_time (vm->updated_ms));
  return CTL_EXIT_OK;
}
