/* droverctl vm create|list|show|start|stop|destroy|delete|console|clone|
 * template */
#include "droverctl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char vm_usage_text[]
    = "Usage: droverctl vm SUBCOMMAND [ARGS...]\n"
      "\n"
      "  create NAME --vcpus N --memory SIZE [--disk SIZE] [--kernel K "
      "--initrd I\n"
      "         --cmdline C] [--image IMG [--cloud-init FILE]] [--host H]\n"
      "         [--accel kvm|tcg] [--net NETWORK[,mac=MAC]]... [--json]\n"
      "  list [--json]\n"
      "  show NAME [--json]\n"
      "  start NAME\n"
      "  stop NAME [--force] [--timeout S]\n"
      "  destroy NAME\n"
      "  delete NAME [--force]\n"
      "  console NAME [-f] [--tail BYTES]\n"
      "  clone SRC NEW [--linked|--full] [--from-snapshot S] [--host H] "
      "[--start]\n"
      "        [--detach] [--json]\n"
      "  template NAME [--json]\n"
      "  label NAME KEY=VALUE... KEY-... [--json]   set and remove labels\n"
      "  nic add VM NETWORK [--mac MAC] [--json]\n"
      "  nic remove VM MAC|NETWORK [--json]\n"
      "  set NAME --migration-postcopy auto|never [--json]\n"
      "\n"
      "Sizes: bytes or a number with K, M, G or T (binary units): 512M, "
      "1.5G.\n";

/* Checks that ARGV holds exactly one positional argument, a valid VM
 * name, and returns it; or prints the error and sets *RC. */
static const char *
one_name (const char *usage, int argc, char **argv, int *rc)
{
  g_autoptr (GError) error = NULL;

  if (argc < 2)
    {
      *rc = ctl_usage_error (usage, "missing VM name");
      return NULL;
    }
  if (argc > 2)
    {
      *rc = ctl_usage_error (usage, "unexpected argument '%s'", argv[2]);
      return NULL;
    }
  if (!proto_name_validate ("VM", argv[1], &error))
    {
      *rc = ctl_usage_error (usage, "%s", error->message);
      return NULL;
    }
  return argv[1];
}

/* Parses the options of the verb that USAGE ("vm SUB PARAMS") describes,
 * then its one VM name into *NAME. Returns -1 to go on, or the exit
 * code to return at once. */
static int
vm_parse (const char *usage, const char *summary, const GOptionEntry *entries,
          int argc, char **argv, const char **name)
{
  const char *params = strchr (usage + strlen ("vm "), ' ') + 1;
  g_autofree char *verb = g_strndup (usage, (gsize)(params - 1 - usage));
  int rc;

  if ((rc = ctl_parse_options (verb, params, summary, entries, &argc, &argv))
      >= 0)
    return rc;
  if ((*name = one_name (usage, argc, argv, &rc)) == NULL)
    return rc;
  return -1;
}

/* The --json output of a call that returns a VM: the VM, or null. */
static int
print_vm_json (const Drover__V1__Vm *vm)
{
  if (vm != NULL)
    ctl_print_message_json (&vm->base);
  else
    fputs ("null\n", stdout);
  return CTL_EXIT_OK;
}

/* Width of the key column in the show output. */
#define KV_WIDTH 15

/* --- create ------------------------------------------------------------ */

/* One --net NETWORK[,mac=MAC] into NIC (its strings point into TEXT,
 * which is cut); FALSE with a usage error in *ERROR. */
static gboolean
parse_net (char *text, Drover__V1__VmNic *nic, GError **error)
{
  char *comma = strchr (text, ',');
  guint8 mac[6];

  drover__v1__vm_nic__init (nic);
  if (comma != NULL)
    {
      *comma = '\0';
      if (!g_str_has_prefix (comma + 1, "mac="))
        {
          g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                       "--net %s: unknown option '%s' (only mac=MAC)", text,
                       comma + 1);
          return FALSE;
        }
      nic->mac = comma + 5;
      if (!proto_mac_parse (nic->mac, mac, error))
        {
          g_prefix_error (error, "--net %s: ", text);
          return FALSE;
        }
    }
  if (!proto_name_validate ("network", text, error))
    {
      g_prefix_error (error, "--net: ");
      return FALSE;
    }
  nic->network = text;
  return TRUE;
}

#define CREATE_USAGE                                                           \
  "vm create NAME --vcpus N --memory SIZE [--disk SIZE] "                      \
  "[--kernel K --initrd I --cmdline C] [--image IMG [--cloud-init FILE]] "     \
  "[--host H] [--accel kvm|tcg] [--net NETWORK[,mac=MAC]]... [--json]"

static int
vm_create (Ctl *ctl, int argc, char **argv)
{
  int vcpus = G_MININT; /* not given */
  g_autofree char *memory = NULL;
  g_autofree char *disk = NULL;
  g_autofree char *kernel = NULL;
  g_autofree char *initrd = NULL;
  g_autofree char *cmdline = NULL;
  g_autofree char *host = NULL;
  g_autofree char *accel = NULL;
  g_autofree char *image = NULL;
  g_autofree char *cloud_init = NULL;
  g_autofree char *user_data = NULL;
  gsize user_data_len = 0;
  g_auto (GStrv) nets = NULL;
  Drover__V1__VmNic nic_store[PROTO_VM_MAX_NICS];
  Drover__V1__VmNic *nic_ptrs[PROTO_VM_MAX_NICS];
  gboolean json = FALSE;
  const GOptionEntry entries[] = {
    { "net", 0, 0, G_OPTION_ARG_STRING_ARRAY, &nets,
      "A virtio NIC on this network, optionally with its MAC (repeatable; "
      "the scheduler assigns MACs not given)",
      "NETWORK[,mac=MAC]" },
    { "vcpus", 0, 0, G_OPTION_ARG_INT, &vcpus, "Virtual CPUs, 1-512 (required)",
      "N" },
    { "memory", 0, 0, G_OPTION_ARG_STRING, &memory, "Memory (512M, 1G, ...)",
      "SIZE" },
    { "disk", 0, 0, G_OPTION_ARG_STRING, &disk,
      "Disk: an empty qcow2 image of this size", "SIZE" },
    { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &kernel,
      "Kernel image on the host, inside the agent's image directory", "K" },
    { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &initrd, "Initrd on the host",
      "I" },
    { "cmdline", 0, 0, G_OPTION_ARG_STRING, &cmdline, "Kernel command line",
      "C" },
    { "host", 0, 0, G_OPTION_ARG_STRING, &host, "Place on this host", "H" },
    { "accel", 0, 0, G_OPTION_ARG_STRING, &accel,
      "Required accelerator: kvm or tcg", "ACCEL" },
    { "image", 0, 0, G_OPTION_ARG_STRING, &image,
      "Boot from a copy-on-write overlay of this image (droverctl image); "
      "--disk grows it",
      "IMG" },
    { "cloud-init", 0, 0, G_OPTION_ARG_FILENAME, &cloud_init,
      "Attach a cloud-init NoCloud seed with this user-data (at most 64 KiB)",
      "FILE" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the VM as JSON", NULL },
    { NULL }
  };
  Drover__V1__CreateVmRequest req = DROVER__V1__CREATE_VM_REQUEST__INIT;
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *kernel_abs = NULL;
  g_autofree char *initrd_abs = NULL;
  const Drover__V1__VmReply *reply;
  const char *name;
  guint64 mem_bytes = 0, disk_bytes = 0;
  int rc = 0;

  if ((rc = vm_parse (
           CREATE_USAGE,
           "Create and start a VM; the scheduler places it on a host with room "
           "unless --host. It needs something to boot: --kernel (with "
           "--initrd, --cmdline) or --disk; with neither it is refused.",
           entries, argc, argv, &name))
      >= 0)
    return rc;
  if (vcpus == G_MININT)
    return ctl_usage_error (CREATE_USAGE, "--vcpus N is required");
  if (vcpus < PROTO_VM_MIN_VCPUS || vcpus > PROTO_VM_MAX_VCPUS)
    return ctl_usage_error (CREATE_USAGE,
                            "--vcpus: %d is not valid: give a whole number of "
                            "virtual CPUs from %d to %d",
                            vcpus, PROTO_VM_MIN_VCPUS, PROTO_VM_MAX_VCPUS);
  if (memory == NULL)
    return ctl_usage_error (CREATE_USAGE, "--memory SIZE is required");
  if (!cli_parse_size ("--memory", memory, &mem_bytes, &error)
      || (disk != NULL
          && !cli_parse_size ("--disk", disk, &disk_bytes, &error)))
    return ctl_usage_error (CREATE_USAGE, "%s", error->message);
  if (accel != NULL && !g_str_equal (accel, "kvm")
      && !g_str_equal (accel, "tcg"))
    return ctl_usage_error (CREATE_USAGE,
                            "--accel must be kvm or tcg, not '%s'", accel);
  if (host != NULL && !proto_name_validate ("host", host, &error))
    return ctl_usage_error (CREATE_USAGE, "%s", error->message);
  if ((initrd != NULL || cmdline != NULL) && kernel == NULL)
    return ctl_usage_error (CREATE_USAGE,
                            "--initrd and --cmdline need --kernel");
  if (image != NULL && !proto_name_validate ("image", image, &error))
    return ctl_usage_error (CREATE_USAGE, "--image: %s", error->message);
  if (cloud_init != NULL)
    {
      if (!g_file_get_contents (cloud_init, &user_data, &user_data_len, &error))
        return ctl_usage_error (CREATE_USAGE, "--cloud-init: %s",
                                error->message);
      if (user_data_len > PROTO_CLOUD_INIT_MAX)
        return ctl_usage_error (
            CREATE_USAGE, "--cloud-init: %s is %zu bytes, at most %d",
            cloud_init, user_data_len, PROTO_CLOUD_INIT_MAX);
    }

  /* The agent resolves nothing against our working directory. */
  if (kernel != NULL)
    kernel_abs = g_canonicalize_filename (kernel, NULL);
  if (initrd != NULL)
    initrd_abs = g_canonicalize_filename (initrd, NULL);

  spec.name = (char *)name;
  spec.vcpus = (uint32_t)vcpus;
  spec.memory = mem_bytes;
  spec.disk = disk_bytes;
  if (kernel_abs)
    spec.kernel = kernel_abs;
  if (initrd_abs)
    spec.initrd = initrd_abs;
  if (cmdline)
    spec.cmdline = cmdline;
  if (accel)
    spec.accel = accel;
  if (image)
    spec.image = image;
  if (user_data)
    {
      spec.cloud_init_user_data.data = (guint8 *)user_data;
      spec.cloud_init_user_data.len = user_data_len;
    }
  if (nets != NULL && g_strv_length (nets) > PROTO_VM_MAX_NICS)
    return ctl_usage_error (CREATE_USAGE, "at most %d --net",
                            PROTO_VM_MAX_NICS);
  for (guint i = 0; nets != NULL && nets[i] != NULL; i++)
    {
      if (!parse_net (nets[i], &nic_store[i], &error))
        return ctl_usage_error (CREATE_USAGE, "%s", error->message);
      nic_ptrs[i] = &nic_store[i];
      spec.n_nics = i + 1;
    }
  spec.nics = nic_ptrs;
  req.spec = &spec;
  if (host)
    req.host = host;

  msg = ctl_call (ctl, DROVER_SCHED_METHOD_CREATE_VM, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__VmReply *)msg;
  if (json)
    return print_vm_json (reply->vm);
  printf ("created VM %s on %s\n", name,
          reply->vm != NULL && reply->vm->host[0] ? reply->vm->host
                                                  : "(unplaced)");
  return CTL_EXIT_OK;
}

/* --- list / show ------------------------------------------------------- */

static void add_vm_row (CliTable *table, const Drover__V1__Vm *vm);

static int
vm_list (Ctl *ctl, int argc, char **argv)
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

static int
vm_show (Ctl *ctl, int argc, char **argv)
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

  if ((rc = vm_parse ("vm show NAME [--json]",
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
    return print_vm_json (vm);
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
          g_autofree char *addrs = NULL;

          for (gsize a = 0; st != NULL && a < st->n_nic_addresses; a++)
            if (g_ascii_strcasecmp (st->nic_addresses[a]->mac, nic->mac) == 0)
              addrs
                  = g_strjoinv (" ", (char **)st->nic_addresses[a]->addresses);
          ctl_kv_take (KV_WIDTH, i == 0 ? "nics" : "",
                       g_strdup_printf ("%s network %s bridge %s%s%s", nic->mac,
                                        nic->network, nic->bridge,
                                        addrs && *addrs ? " addresses " : "",
                                        addrs && *addrs ? addrs : ""));
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

/* --- lifecycle --------------------------------------------------------- */

/* "stopped VM web-1 (state: shutoff): forced off: ... [job ID]": the
 * job's outcome says how (a stop that had to destroy the VM says so). */
static void
print_lifecycle (const char *done_verb, const char *name,
                 const Drover__V1__VmReply *reply)
{
  printf ("%s VM %s (state: %s)", done_verb, name,
          reply->vm != NULL && reply->vm->state[0] ? reply->vm->state
                                                   : "unknown");
  if (reply->job != NULL && reply->job->message[0] != '\0')
    printf (": %s [job %s]", reply->job->message, reply->job->id);
  putchar ('\n');
}

static int
vm_simple (Ctl *ctl, const char *sub, const char *summary, guint method,
           const char *done_verb, int argc, char **argv)
{
  Drover__V1__VmRequest req = DROVER__V1__VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *usage = g_strdup_printf ("vm %s NAME", sub);
  const char *name;
  int rc = 0;

  if ((rc = vm_parse (usage, summary, NULL, argc, argv, &name)) >= 0)
    return rc;
  req.name = (char *)name;
  msg = ctl_call (ctl, method, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  print_lifecycle (done_verb, name, (const Drover__V1__VmReply *)msg);
  return CTL_EXIT_OK;
}

static int
vm_stop (Ctl *ctl, int argc, char **argv)
{
  gboolean force = FALSE;
  int timeout_s = 0;
  const GOptionEntry entries[]
      = { { "force", 0, 0, G_OPTION_ARG_NONE, &force,
            "Destroy at once instead of a graceful shutdown", NULL },
          { "timeout", 0, 0, G_OPTION_ARG_INT, &timeout_s,
            "Grace period before forcing (default: the agent's)", "S" },
          { NULL } };
  Drover__V1__StopVmRequest req = DROVER__V1__STOP_VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const char *name;
  int rc = 0;

  if ((rc = vm_parse ("vm stop NAME [--force] [--timeout S]",
                      "Shut a VM down: ask the guest (ACPI) and wait "
                      "the grace period, then force it off. The "
                      "output and the job list (kind stop) say "
                      "whether it had to be forced.",
                      entries, argc, argv, &name))
      >= 0)
    return rc;
  if (timeout_s < 0 || timeout_s > 24 * 3600)
    return ctl_usage_error ("vm stop NAME [--force] [--timeout S]",
                            "--timeout must be between 0 and 86400 seconds");
  req.name = (char *)name;
  req.force = force;
  req.timeout_ms = (uint32_t)timeout_s * 1000;
  /* The call lasts as long as the grace period: give it room. */
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_STOP_VM, &req.base,
                  ((gint64)timeout_s + 30) * 1000, &error);
  if (msg == NULL)
    return ctl_fail (error);
  print_lifecycle ("stopped", name, (const Drover__V1__VmReply *)msg);
  return CTL_EXIT_OK;
}

static int
vm_delete (Ctl *ctl, int argc, char **argv)
{
  gboolean force = FALSE;
  const GOptionEntry entries[] = { { "force", 0, 0, G_OPTION_ARG_NONE, &force,
                                     "Destroy a running VM first", NULL },
                                   { NULL } };
  Drover__V1__DeleteVmRequest req = DROVER__V1__DELETE_VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const char *name;
  int rc = 0;

  if ((rc = vm_parse ("vm delete NAME [--force]",
                      "Delete a VM and its disk (a delete job).", entries, argc,
                      argv, &name))
      >= 0)
    return rc;
  req.name = (char *)name;
  req.force = force;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_DELETE_VM, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  printf ("deleted VM %s\n", name);
  return CTL_EXIT_OK;
}

/* --- clone, template --------------------------------------------------- */

#define CLONE_USAGE                                                            \
  "vm clone SRC NEW [--linked|--full] [--from-snapshot S] [--host H] "         \
  "[--start] [--detach] [--json]"

static int
vm_clone (Ctl *ctl, int argc, char **argv)
{
  gboolean linked = FALSE, full = FALSE, start = FALSE, detach = FALSE,
           json = FALSE;
  g_autofree char *from = NULL;
  g_autofree char *host = NULL;
  const GOptionEntry entries[]
      = { { "linked", 0, 0, G_OPTION_ARG_NONE, &linked,
            "A qcow2 overlay on SRC's image, which becomes a protected base "
            "(the default for a template)",
            NULL },
          { "full", 0, 0, G_OPTION_ARG_NONE, &full,
            "An independent copy (the default for a VM)", NULL },
          { "from-snapshot", 0, 0, G_OPTION_ARG_STRING, &from,
            "Clone the disk as it was in this snapshot of SRC", "S" },
          { "host", 0, 0, G_OPTION_ARG_STRING, &host,
            "Where the clone goes (default: SRC's host); another host "
            "takes a full clone, sent over the agents' channel",
            "H" },
          { "start", 0, 0, G_OPTION_ARG_NONE, &start,
            "Start the clone once it is made", NULL },
          { "detach", 0, 0, G_OPTION_ARG_NONE, &detach,
            "Print the job and return at once", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job as JSON", NULL },
          { NULL } };
  Drover__V1__CloneVmRequest req = DROVER__V1__CLONE_VM_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autofree char *what = NULL;
  const char *mode = "";
  int rc = 0;

  if ((rc = ctl_parse_options (
           "vm clone", strchr (&CLONE_USAGE[3], ' ') + 1,
           "Make a new VM from SRC's disk: a new UUID, new MAC addresses, "
           "its own console log and disk. Linked clones share SRC's image "
           "as a read-only base and take seconds; full clones copy it. "
           "Follows the job; Ctrl-C stops following, not the clone.",
           entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 2)
    return ctl_usage_error (CLONE_USAGE, "missing source VM name");
  if (argc < 3)
    return ctl_usage_error (CLONE_USAGE, "missing the new VM's name");
  if (argc > 3)
    return ctl_usage_error (CLONE_USAGE, "unexpected argument '%s'", argv[3]);
  if (!proto_name_validate ("VM", argv[1], &error)
      || !proto_name_validate ("VM", argv[2], &error))
    return ctl_usage_error (CLONE_USAGE, "%s", error->message);
  if (from != NULL && !proto_name_validate ("snapshot", from, &error))
    return ctl_usage_error (CLONE_USAGE, "--from-snapshot: %s", error->message);
  if (host != NULL && !proto_name_validate ("host", host, &error))
    return ctl_usage_error (CLONE_USAGE, "--host: %s", error->message);
  if (!cli_clone_mode (linked, full, &mode, &error))
    return ctl_usage_error (CLONE_USAGE, "%s", error->message);
  req.source = argv[1];
  req.name = argv[2];
  req.mode = (char *)mode;
  req.from_snapshot = from ? from : (char *)"";
  req.host = host ? host : (char *)"";
  req.start = start;
  what = g_strdup_printf (
      "cloning %s into %s%s%s", argv[1], argv[2], mode[0] ? " as a " : "",
      mode[0] ? (linked ? "linked clone" : "full copy") : "");
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_CLONE_VM, &req.base,
                                what, detach, json);
}

static int
vm_template (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the VM as JSON", NULL },
                                   { NULL } };
  Drover__V1__VmRequest req = DROVER__V1__VM_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__VmReply *reply;
  const char *name;
  int rc = 0;

  if ((rc = vm_parse (
           "vm template NAME [--json]",
           "Make a stopped VM a template: its image becomes a protected, "
           "read-only base; it is never started again, only cloned (its "
           "clones are linked by default). There is no way back.",
           entries, argc, argv, &name))
      >= 0)
    return rc;
  req.name = (char *)name;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_MAKE_TEMPLATE, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__VmReply *)msg;
  if (json)
    return print_vm_json (reply->vm);
  printf ("VM %s is now a template; clone it with: droverctl vm clone %s "
          "NEW\n",
          name, name);
  return CTL_EXIT_OK;
}

/* --- label ------------------------------------------------------------- */

#define LABEL_USAGE "vm label NAME KEY=VALUE... KEY-... [--json]"

static int
vm_label (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the VM as JSON", NULL },
                                   { NULL } };
  Drover__V1__SetVmLabelsRequest req = DROVER__V1__SET_VM_LABELS_REQUEST__INIT;
  g_autoptr (GPtrArray) set = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) remove = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__VmReply *reply;
  int rc;

  if ((rc = ctl_parse_options (
           "vm label", "NAME KEY=VALUE... KEY-... [--json]",
           "Set labels (KEY=VALUE) and remove them (KEY-) on a VM; schedules "
           "select VMs by label (--select label:KEY=VALUE).",
           entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 3)
    return ctl_usage_error (LABEL_USAGE, "give a VM and at least one label");
  if (!proto_name_validate ("VM", argv[1], &error))
    return ctl_usage_error (LABEL_USAGE, "%s", error->message);
  for (int i = 2; i < argc; i++)
    {
      gsize len = strlen (argv[i]);

      if (strchr (argv[i], '=') == NULL && len > 1 && argv[i][len - 1] == '-')
        g_ptr_array_add (remove, g_strndup (argv[i], len - 1));
      else
        g_ptr_array_add (set, g_strdup (argv[i]));
    }
  req.name = argv[1];
  req.n_set = set->len;
  req.set = (char **)set->pdata;
  req.n_remove = remove->len;
  req.remove = (char **)remove->pdata;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_SET_VM_LABELS, &req.base, 0, &error);
  if (msg == NULL)
    return ctl_fail (error);
  reply = (const Drover__V1__VmReply *)msg;
  if (json)
    return print_vm_json (reply->vm);
  printf ("VM %s labels: %s\n", argv[1],
          reply->vm && reply->vm->labels[0] ? reply->vm->labels : "(none)");
  return CTL_EXIT_OK;
}

/* --- console ----------------------------------------------------------- */

static volatile sig_atomic_t console_stop;

static void
on_stop_signal (int sig)
{
  console_stop = 1;
}

static gboolean
write_all (const guint8 *data, gsize len)
{
  /* stdout may be a pipe or a terminal: loop on short writes. */
  while (len > 0)
    {
      ssize_t n = write (STDOUT_FILENO, data, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return FALSE;
        }
      data += n;
      len -= (gsize)n;
    }
  return TRUE;
}

static int
vm_console (Ctl *ctl, int argc, char **argv)
{
  gboolean follow = FALSE;
  gint64 tail = -1;
  const GOptionEntry entries[]
      = { { "follow", 'f', 0, G_OPTION_ARG_NONE, &follow,
            "Keep printing new output until interrupted", NULL },
          { "tail", 0, 0, G_OPTION_ARG_INT64, &tail,
            "Start this many bytes before the end", "BYTES" },
          { NULL } };
  const char *usage = "vm console NAME [-f] [--tail BYTES]";
  Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
  const char *name;
  gint64 offset;
  int rc = 0;

  if ((rc = vm_parse (usage, "Print the VM's serial console log.", entries,
                      argc, argv, &name))
      >= 0)
    return rc;
  if (tail == 0 || tail < -1)
    return ctl_usage_error (usage, "--tail must be a positive number of bytes");
  offset = tail > 0 ? -tail : 0;

  if (follow)
    {
      struct sigaction sa = { 0 };
      /* No SA_RESTART: the poll sleep must end at once. */
      sa.sa_handler = on_stop_signal;
      sigemptyset (&sa.sa_mask);
      sigaction (SIGINT, &sa, NULL);
      sigaction (SIGTERM, &sa, NULL);
    }

  req.name = (char *)name;
  while (!console_stop)
    {
      g_autoptr (ProtobufCMessage) msg = NULL;
      g_autoptr (GError) error = NULL;
      const Drover__V1__ConsoleChunk *chunk;

      req.offset = offset;
      msg = ctl_call (ctl, DROVER_SCHED_METHOD_READ_CONSOLE, &req.base, 0,
                      &error);
      if (msg == NULL)
        {
          if (console_stop)
            break;
          return ctl_fail (error);
        }
      chunk = (const Drover__V1__ConsoleChunk *)msg;
      if (chunk->data.len > 0 && !write_all (chunk->data.data, chunk->data.len))
        {
          ctl_print_error ("writing to stdout: %s", g_strerror (errno));
          return CTL_EXIT_FAILURE;
        }
      if (chunk->next_offset > offset || offset < 0)
        offset = chunk->next_offset;
      if (chunk->data.len > 0 && offset < chunk->size)
        continue; /* more is already there */
      if (!follow)
        break;
      if (chunk->size < offset)
        offset = 0; /* the log was truncated (VM recreated): start over */
      /* Poll every 250 ms, waking early on a signal. */
      for (int i = 0; i < 5 && !console_stop; i++)
        g_usleep (50 * 1000);
    }
  return CTL_EXIT_OK;
}

/* --- dispatch ---------------------------------------------------------- */

static int
vm_start (Ctl *ctl, int argc, char **argv)
{
  return vm_simple (ctl, "start",
                    "Start a stopped VM on its host. The job list records "
                    "the start (kind start).",
                    DROVER_SCHED_METHOD_START_VM, "started", argc, argv);
}

static int
vm_destroy (Ctl *ctl, int argc, char **argv)
{
  return vm_simple (ctl, "destroy",
                    "Force a VM off at once (like pulling the plug; the VM "
                    "stays defined and can be started again). The job "
                    "list records it (kind destroy).",
                    DROVER_SCHED_METHOD_DESTROY_VM, "destroyed", argc, argv);
}

int
ctl_cmd_vm (Ctl *ctl, int argc, char **argv)
{
  /* clang-format off */
  static const CtlCommand commands[] = {
    { "create", vm_create },
    { "list", vm_list },
    { "show", vm_show },
    { "start", vm_start },
    { "destroy", vm_destroy },
    { "stop", vm_stop },
    { "delete", vm_delete },
    { "console", vm_console },
    { "clone", vm_clone },
    { "template", vm_template },
    { "nic", cli_vm_nic },
    { "label", vm_label },
    { "set", cli_vm_set },
    { NULL, NULL },
  };
  /* clang-format on */

  return ctl_dispatch (ctl, "vm", vm_usage_text, commands, argc, argv);
}
