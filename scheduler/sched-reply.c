/* What the list handlers share: a reply whose one repeated field holds a
 * message per row, each filled from its row. The field is found through
 * the reply's protobuf-c descriptor, so one function serves every list. */
#include "sched-private.h"

/* The one repeated field of message type DESC. */
static const ProtobufCFieldDescriptor *
repeated_field (const ProtobufCMessageDescriptor *desc)
{
  for (guint i = 0; i < desc->n_fields; i++)
    if (desc->fields[i].label == PROTOBUF_C_LABEL_REPEATED
        && desc->fields[i].type == PROTOBUF_C_TYPE_MESSAGE)
      return &desc->fields[i];
  g_return_val_if_reached (NULL);
}

void
sched_call_reply_rows (ProtoServerCall *call, ProtobufCMessage *reply,
                       GPtrArray *rows, SchedMsgFill fill, gpointer user_data,
                       const GError *error)
{
  const ProtobufCFieldDescriptor *field = repeated_field (reply->descriptor);
  const ProtobufCMessageDescriptor *item = field->descriptor;
  g_autoptr (GPtrArray) msgs = NULL;

  if (rows == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  msgs = g_ptr_array_new_full (rows->len, g_free);
  for (guint i = 0; i < rows->len; i++)
    {
      ProtobufCMessage *msg = g_malloc0 (item->sizeof_message);

      item->message_init (msg);
      fill (rows->pdata[i], msg, user_data);
      g_ptr_array_add (msgs, msg);
    }
  G_STRUCT_MEMBER (size_t, reply, field->quantifier_offset) = msgs->len;
  G_STRUCT_MEMBER (gpointer, reply, field->offset) = msgs->pdata;
  proto_server_call_reply (call, reply);
}
