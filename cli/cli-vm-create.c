/* droverctl vm create: a VM from a kernel or an image, with NICs. */
#include "cli-vm.h"

#include <stdio.h>
#include <string.h>

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

int
cli_vm_create (Ctl *ctl, int argc, char **argv)
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

  if ((rc = cli_vm_parse (
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
    return cli_vm_print_json (reply->vm);
  printf ("created VM %s on %s\n", name,
          reply->vm != NULL && reply->vm->host[0] ? reply->vm->host
                                                  : "(unplaced)");
  return CTL_EXIT_OK;
}
