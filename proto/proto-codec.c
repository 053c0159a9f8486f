/* libdrover-proto: protobuf-c messages <-> bytes and gRPC byte buffers. */
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

#include "proto-private.h"

/* The packed size of MSG, or FALSE with RESOURCE_EXHAUSTED when it is
 * over PROTO_MAX_MESSAGE_SIZE. */
static gboolean
packed_size (const ProtobufCMessage *msg, gsize *size, GError **error)
{
  *size = protobuf_c_message_get_packed_size (msg);
  if (*size <= PROTO_MAX_MESSAGE_SIZE)
    return TRUE;
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED,
               "%s message of %" G_GSIZE_FORMAT
               " bytes exceeds the limit of %d bytes",
               msg->descriptor->short_name, *size, PROTO_MAX_MESSAGE_SIZE);
  return FALSE;
}

GBytes *
proto_pack (const ProtobufCMessage *msg, GError **error)
{
  gsize size;
  guint8 *buf;

  if (!packed_size (msg, &size, error))
    return NULL;
  buf = g_malloc (size ? size : 1);
  protobuf_c_message_pack (msg, buf);
  return g_bytes_new_take (buf, size);
}

ProtobufCMessage *
proto_unpack (const ProtobufCMessageDescriptor *desc, const guint8 *data,
              gsize len, gsize max_size, GError **error)
{
  static const guint8 empty[1];
  ProtobufCMessage *msg;

  if (len > max_size)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED,
                   "%s message of %" G_GSIZE_FORMAT
                   " bytes exceeds the limit of %" G_GSIZE_FORMAT " bytes",
                   desc->short_name, len, max_size);
      return NULL;
    }
  msg = protobuf_c_message_unpack (desc, NULL, len, data ? data : empty);
  if (!msg)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "malformed %s message (%" G_GSIZE_FORMAT " bytes)",
                   desc->short_name, len);
      return NULL;
    }
  return msg;
}

char *
proto_method_path (const ProtobufCServiceDescriptor *service,
                   guint method_index)
{
  if (method_index >= service->n_methods)
    return NULL;
  return g_strdup_printf ("/%s/%s", service->name,
                          service->methods[method_index].name);
}

grpc_byte_buffer *
proto_buffer_pack (const ProtobufCMessage *msg, GError **error)
{
  gsize size;
  grpc_slice slice;
  grpc_byte_buffer *buf;

  if (!packed_size (msg, &size, error))
    return NULL;
  slice = grpc_slice_malloc (size);
  protobuf_c_message_pack (msg, GRPC_SLICE_START_PTR (slice));
  buf = grpc_raw_byte_buffer_create (&slice, 1);
  grpc_slice_unref (slice);
  return buf;
}

ProtobufCMessage *
proto_buffer_unpack (const ProtobufCMessageDescriptor *desc,
                     grpc_byte_buffer *buf, GError **error)
{
  grpc_byte_buffer_reader reader;
  grpc_slice slice;
  ProtobufCMessage *msg;

  /* gRPC enforces the same cap on the wire; check again before copying,
   * the peer is not trusted. */
  if (grpc_byte_buffer_length (buf) > PROTO_MAX_MESSAGE_SIZE)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED,
                   "%s message of %zu bytes exceeds the limit of %d bytes",
                   desc->short_name, grpc_byte_buffer_length (buf),
                   PROTO_MAX_MESSAGE_SIZE);
      return NULL;
    }
  if (!grpc_byte_buffer_reader_init (&reader, buf))
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "cannot read %s message", desc->short_name);
      return NULL;
    }
  slice = grpc_byte_buffer_reader_readall (&reader);
  grpc_byte_buffer_reader_destroy (&reader);
  msg = proto_unpack (desc, GRPC_SLICE_START_PTR (slice),
                      GRPC_SLICE_LENGTH (slice), PROTO_MAX_MESSAGE_SIZE, error);
  grpc_slice_unref (slice);
  return msg;
}

const char *
proto_status_name (int status)
{
  static const char *const names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
  };

  if (status >= 0 && status < (int)G_N_ELEMENTS (names))
    return names[status];
  return "UNKNOWN";
}

GError *
proto_status_to_error (grpc_status_code status, grpc_slice details)
{
  gsize len = GRPC_SLICE_LENGTH (details);
  g_autofree char *msg = NULL;

  if (status == GRPC_STATUS_OK)
    return NULL;
  /* Details come from the peer: keep them bounded and valid UTF-8. */
  len = MIN (len, 4096);
  if (len > 0)
    msg = g_utf8_make_valid ((const char *)GRPC_SLICE_START_PTR (details), len);
  else
    msg = g_strdup (proto_status_name (status));
  return g_error_new_literal (PROTO_ERROR, status, msg);
}
