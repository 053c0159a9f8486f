/* libFuzzer target: every drover.v1 message type (all of drover.proto, in
 * its order, the migration ones included) through proto_unpack(), which
 * also counts repeated elements before unpacking. The first input byte
 * picks the type, the rest is the message.
 * Build: meson setup build-fuzz -Db_sanitize=address,undefined with
 * CC=clang (tests/fuzz/meson.build adds -fsanitize=fuzzer), then
 * build-fuzz/tests/fuzz/fuzz-proto-unpack [corpus dir]. */
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

static const ProtobufCMessageDescriptor *const descriptors[] = {
  &drover__v1__empty__descriptor,
  &drover__v1__host_info__descriptor,
  &drover__v1__vm_spec__descriptor,
  &drover__v1__vm_status__descriptor,
  &drover__v1__host__descriptor,
  &drover__v1__vm__descriptor,
  &drover__v1__job__descriptor,
  &drover__v1__migration_params__descriptor,
  &drover__v1__migration_prediction__descriptor,
  &drover__v1__migration_round__descriptor,
  &drover__v1__migration_progress__descriptor,
  &drover__v1__migrate_vm_request__descriptor,
  &drover__v1__prepare_incoming_request__descriptor,
  &drover__v1__prepare_incoming_reply__descriptor,
  &drover__v1__migrate_out_request__descriptor,
  &drover__v1__cancel_incoming_request__descriptor,
  &drover__v1__register_host_request__descriptor,
  &drover__v1__register_host_reply__descriptor,
  &drover__v1__report_host_request__descriptor,
  &drover__v1__report_host_reply__descriptor,
  &drover__v1__list_hosts_request__descriptor,
  &drover__v1__list_hosts_reply__descriptor,
  &drover__v1__list_vms_request__descriptor,
  &drover__v1__list_vms_reply__descriptor,
  &drover__v1__get_vm_request__descriptor,
  &drover__v1__create_vm_request__descriptor,
  &drover__v1__vm_request__descriptor,
  &drover__v1__stop_vm_request__descriptor,
  &drover__v1__delete_vm_request__descriptor,
  &drover__v1__vm_reply__descriptor,
  &drover__v1__console_request__descriptor,
  &drover__v1__console_chunk__descriptor,
  &drover__v1__watch_job_request__descriptor,
  &drover__v1__list_jobs_request__descriptor,
  &drover__v1__list_jobs_reply__descriptor,
  &drover__v1__agent_create_vm_request__descriptor,
  &drover__v1__agent_vm_reply__descriptor,
};

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  const ProtobufCMessageDescriptor *desc;
  ProtobufCMessage *msg;
  GError *error = NULL;

  if (size < 1)
    return 0;
  desc = descriptors[data[0] % G_N_ELEMENTS (descriptors)];
  msg = proto_unpack (desc, data + 1, size - 1, PROTO_MAX_MESSAGE_SIZE, &error);
  if (msg)
    {
      /* Whatever decodes must pack again within the cap. */
      GBytes *bytes = proto_pack (msg, NULL);

      g_assert (bytes != NULL);
      g_bytes_unref (bytes);
      protobuf_c_message_free_unpacked (msg, NULL);
    }
  else
    {
      g_assert (error != NULL && error->domain == PROTO_ERROR);
      g_error_free (error);
    }
  return 0;
}
