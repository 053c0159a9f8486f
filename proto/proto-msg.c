/* Freeing, copying and checking protobuf-c messages, shared by every
 * component that builds or keeps them. */
#include <string.h>

#include "proto.h"

void
proto_msg_free (gpointer msg)
{
  if (msg != NULL)
    protobuf_c_message_free_unpacked (msg, NULL);
}

gpointer
proto_msg_copy (const ProtobufCMessage *msg)
{
  g_autofree guint8 *buf = NULL;
  gsize len;

  if (msg == NULL)
    return NULL;
  len = protobuf_c_message_get_packed_size (msg);
  buf = g_malloc (MAX (len, 1));
  protobuf_c_message_pack (msg, buf);
  /* Our own freshly packed bytes: unpacking cannot fail but for OOM. */
  return protobuf_c_message_unpack (msg->descriptor, NULL, len, buf);
}

char *
proto_msg_strdup (const char *str)
{
  if (str == NULL || *str == '\0')
    return (char *)protobuf_c_empty_string;
  return g_strdup (str);
}

gboolean
proto_vm_spec_check (const Drover__V1__VmSpec *spec, GError **error)
{
  if (spec == NULL)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                           "VM spec missing");
      return FALSE;
    }
  if (!proto_name_validate ("VM", spec->name, error))
    return FALSE;
  if (spec->vcpus < PROTO_VM_MIN_VCPUS || spec->vcpus > PROTO_VM_MAX_VCPUS)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "VM %s: vcpus must be %d-%d, not %u", spec->name,
                   PROTO_VM_MIN_VCPUS, PROTO_VM_MAX_VCPUS, spec->vcpus);
      return FALSE;
    }
  if (spec->memory < PROTO_VM_MIN_MEMORY)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "VM %s: memory must be at least 32 MiB", spec->name);
      return FALSE;
    }
  if (spec->accel != NULL && spec->accel[0] != '\0'
      && strcmp (spec->accel, PROTO_ACCEL_KVM) != 0
      && strcmp (spec->accel, PROTO_ACCEL_TCG) != 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "VM %s: accel must be kvm, tcg or empty", spec->name);
      return FALSE;
    }
  if ((spec->kernel == NULL || spec->kernel[0] == '\0')
      && ((spec->initrd != NULL && spec->initrd[0] != '\0')
          || (spec->cmdline != NULL && spec->cmdline[0] != '\0')))
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "VM %s: an initrd or a kernel command line needs a kernel",
                   spec->name);
      return FALSE;
    }
  /* Images (issue 13). */
  if (spec->image != NULL && spec->image[0] != '\0'
      && !proto_name_validate ("image", spec->image, error))
    {
      g_prefix_error (error, "VM %s: ", spec->name);
      return FALSE;
    }
  if (spec->cloud_init_user_data.len > PROTO_CLOUD_INIT_MAX)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "VM %s: cloud-init user-data is %zu bytes, at most %d",
                   spec->name, spec->cloud_init_user_data.len,
                   PROTO_CLOUD_INIT_MAX);
      return FALSE;
    }
  if (spec->cloud_init_user_data.len > 0 && spec->disk == 0
      && (spec->image == NULL || spec->image[0] == '\0'))
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "VM %s: cloud-init needs a disk (--image or --disk)",
                   spec->name);
      return FALSE;
    }
  return proto_vm_nics_check (spec, error);
}
