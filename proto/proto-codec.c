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

/* --- counting repeated elements before unpacking ------------------------- */

/* protobuf-c allocates a struct for every element of a repeated message
 * field: an empty element costs two bytes on the wire and a few hundred
 * in memory. So the wire is walked first and the elements of repeated
 * fields (at any depth) are counted against PROTO_MAX_REPEATED. */

typedef struct
{
  const guint8 *p;
  const guint8 *end;
} Wire;

static gboolean
wire_varint (Wire *w, guint64 *v)
{
  *v = 0;
  for (guint shift = 0; shift < 64 && w->p < w->end; shift += 7)
    {
      guint8 b = *w->p++;

      *v |= (guint64)(b & 0x7f) << shift;
      if (!(b & 0x80))
        return TRUE;
    }
  return FALSE;
}

/* Elements in a packed run of LEN bytes of FIELD's type. */
static guint64
packed_elements (const ProtobufCFieldDescriptor *field, const guint8 *p,
                 guint64 len)
{
  guint64 n = 0;

  switch (field->type)
    {
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
      return len / 4;
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      return len / 8;
    default:
      /* Varints: one element per byte without the continuation bit. */
      for (guint64 i = 0; i < len; i++)
        n += (p[i] & 0x80) == 0;
      return n;
    }
}

/* Adds the repeated elements of the message DESC in W to *COUNT. FALSE
 * when the count passes the cap or nesting is too deep; malformed wire
 * data is left for protobuf-c to refuse (TRUE). */
static gboolean
count_repeated (const ProtobufCMessageDescriptor *desc, Wire w, guint depth,
                guint64 *count)
{
  if (depth > 32)
    return FALSE;
  while (w.p < w.end)
    {
      guint64 key, v;
      const ProtobufCFieldDescriptor *field;

      if (!wire_varint (&w, &key) || key >> 3 > G_MAXUINT32)
        return TRUE;
      field = protobuf_c_message_descriptor_get_field (desc, key >> 3);
      switch (key & 7)
        {
        case 0: /* varint */
          if (!wire_varint (&w, &v))
            return TRUE;
          break;
        case 1: /* 64-bit */
          if (w.end - w.p < 8)
            return TRUE;
          w.p += 8;
          break;
        case 5: /* 32-bit */
          if (w.end - w.p < 4)
            return TRUE;
          w.p += 4;
          break;
        case 2: /* length-delimited */
          if (!wire_varint (&w, &v) || v > (guint64)(w.end - w.p))
            return TRUE;
          if (field != NULL && field->type == PROTOBUF_C_TYPE_MESSAGE)
            {
              Wire sub = { w.p, w.p + v };

              if (!count_repeated (field->descriptor, sub, depth + 1, count))
                return FALSE;
            }
          else if (field != NULL && field->label == PROTOBUF_C_LABEL_REPEATED
                   && field->type != PROTOBUF_C_TYPE_STRING
                   && field->type != PROTOBUF_C_TYPE_BYTES)
            {
              /* A packed run of scalars. */
              *count += packed_elements (field, w.p, v);
              field = NULL;
            }
          w.p += v;
          break;
        default:
          return TRUE;
        }
      if (field != NULL && field->label == PROTOBUF_C_LABEL_REPEATED)
        (*count)++;
      if (*count > PROTO_MAX_REPEATED)
        return FALSE;
    }
  return TRUE;
}

ProtobufCMessage *
proto_unpack (const ProtobufCMessageDescriptor *desc, const guint8 *data,
              gsize len, gsize max_size, GError **error)
{
  static const guint8 empty[1];
  ProtobufCMessage *msg;
  guint64 repeated = 0;

  if (len > max_size)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED,
                   "%s message of %" G_GSIZE_FORMAT
                   " bytes exceeds the limit of %" G_GSIZE_FORMAT " bytes",
                   desc->short_name, len, max_size);
      return NULL;
    }
  if (data != NULL
      && !count_repeated (desc, (Wire){ data, data + len }, 0, &repeated))
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED,
                   "%s message has more than %d repeated elements or is "
                   "nested too deep",
                   desc->short_name, PROTO_MAX_REPEATED);
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
