/* ProtoClientStream: a server-streaming call of a ProtoClient, read
 * asynchronously (each message and the end delivered in the client's
 * GMainContext, cancel from the caller) or blocking (its own pluck
 * queue, no main loop). Unary calls and the client itself are in
 * proto-client.c. */
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/byte_buffer_reader.h>

#include "proto-client-private.h"

/* --- asynchronous server stream ------------------------------------------ */

struct _ProtoClientStream
{
  ProtoClient *client;
  ProtoCallState st;
  const ProtobufCMessageDescriptor *output;
  ProtoTag start_tag;
  ProtoTag recv_tag;
  ProtoTag status_tag;
  int pending; /* tags not yet completed */
  gboolean reading_done;
  gboolean user_cancelled;
  GError *error; /* first local error: failed start, bad message */
  ProtoStreamMessageFunc on_message;
  ProtoStreamEndFunc on_end;
  gpointer user_data;
};

static void proto_stream_read (ProtoClientStream *stream);

static void
proto_stream_maybe_end (ProtoClientStream *stream)
{
  GError *error;

  if (stream->pending > 0)
    return;
  if (stream->st.call)
    g_hash_table_remove (stream->client->calls, stream->st.call);
  if (stream->user_cancelled)
    {
      g_clear_error (&stream->error);
      error = g_error_new_literal (PROTO_ERROR, PROTO_STATUS_CANCELLED,
                                   "stream cancelled");
    }
  else if (stream->error)
    error = g_steal_pointer (&stream->error);
  else
    error = proto_status_to_error (stream->st.status, stream->st.details);
  stream->on_end (error, stream->user_data);
  g_clear_error (&error);
  proto_call_state_clear (&stream->st);
  g_free (stream);
}

static void
proto_stream_start_done (ProtoTag *tag, gboolean ok)
{
  ProtoClientStream *stream = tag->data;

  stream->pending--;
  g_clear_pointer (&stream->st.send_buf, grpc_byte_buffer_destroy);
  proto_stream_maybe_end (stream);
}

static void
proto_stream_status_done (ProtoTag *tag, gboolean ok)
{
  ProtoClientStream *stream = tag->data;

  stream->pending--;
  proto_stream_maybe_end (stream);
}

static void
proto_stream_recv_done (ProtoTag *tag, gboolean ok)
{
  ProtoClientStream *stream = tag->data;
  grpc_byte_buffer *buf = g_steal_pointer (&stream->st.recv_buf);

  stream->pending--;
  if (!ok || !buf)
    stream->reading_done = TRUE;
  else
    {
      GError *error = NULL;
      ProtobufCMessage *msg = proto_buffer_unpack (stream->output, buf, &error);

      if (!msg)
        {
          /* A bad message ends the stream with its error. */
          if (!stream->error)
            stream->error = error;
          else
            g_error_free (error);
          grpc_call_cancel (stream->st.call, NULL);
        }
      else
        {
          if (!stream->user_cancelled)
            stream->on_message (msg, stream->user_data);
          protobuf_c_message_free_unpacked (msg, NULL);
        }
      proto_stream_read (stream);
    }
  if (buf)
    grpc_byte_buffer_destroy (buf);
  proto_stream_maybe_end (stream);
}

static void
proto_stream_read (ProtoClientStream *stream)
{
  grpc_op op;

  /* While the client is being freed its queue is shut down: no new
   * batches; the status completes the stream. */
  if (stream->reading_done || stream->client->closing)
    {
      stream->reading_done = TRUE;
      return;
    }
  proto_recv_message_op (&stream->st, &op);
  if (grpc_call_start_batch (stream->st.call, &op, 1, &stream->recv_tag, NULL)
      != GRPC_CALL_OK)
    {
      stream->reading_done = TRUE;
      return;
    }
  stream->pending++;
}

ProtoClientStream *
proto_client_stream (ProtoClient *client,
                     const ProtobufCServiceDescriptor *service,
                     guint method_index, const ProtobufCMessage *request,
                     ProtoStreamMessageFunc on_message,
                     ProtoStreamEndFunc on_end, gpointer user_data)
{
  ProtoClientStream *stream = g_new0 (ProtoClientStream, 1);
  g_autofree char *path = NULL;
  grpc_op ops[6];
  size_t n;

  stream->client = client;
  stream->on_message = on_message;
  stream->on_end = on_end;
  stream->user_data = user_data;
  stream->start_tag
      = (ProtoTag){ .func = proto_stream_start_done, .data = stream };
  stream->recv_tag
      = (ProtoTag){ .func = proto_stream_recv_done, .data = stream };
  stream->status_tag
      = (ProtoTag){ .func = proto_stream_status_done, .data = stream };
  proto_call_state_init (&stream->st);

  if (!proto_client_begin (client, service, method_index, request, 0,
                           &stream->st, &stream->output, &path, &stream->error))
    goto fail;
  n = proto_call_ops (&stream->st, ops, FALSE);
  if (grpc_call_start_batch (stream->st.call, ops, n, &stream->start_tag, NULL)
      != GRPC_CALL_OK)
    {
      g_set_error (&stream->error, PROTO_ERROR, PROTO_STATUS_INTERNAL,
                   "cannot start stream %s", path);
      goto fail;
    }
  stream->pending++;
  g_hash_table_add (client->calls, stream->st.call);
  proto_recv_status_op (&stream->st, &ops[0]);
  if (grpc_call_start_batch (stream->st.call, ops, 1, &stream->status_tag, NULL)
      == GRPC_CALL_OK)
    stream->pending++;
  else
    {
      g_set_error (&stream->error, PROTO_ERROR, PROTO_STATUS_INTERNAL,
                   "cannot start stream %s", path);
      grpc_call_cancel (stream->st.call, NULL);
    }
  proto_stream_read (stream);
  return stream;

fail:
  /* The start tag doubles as the "ended early" event. */
  stream->pending++;
  proto_cq_post (client->cq, &stream->start_tag, FALSE);
  return stream;
}

void
proto_client_stream_cancel (ProtoClientStream *stream)
{
  g_return_if_fail (stream != NULL);
  stream->user_cancelled = TRUE;
  if (stream->st.call)
    grpc_call_cancel (stream->st.call, NULL);
}

/* --- blocking server stream ----------------------------------------------- */

gboolean
proto_client_stream_sync (ProtoClient *client,
                          const ProtobufCServiceDescriptor *service,
                          guint method_index, const ProtobufCMessage *request,
                          ProtoStreamSyncFunc on_message, gpointer user_data,
                          GError **error)
{
  g_autofree char *path = NULL;
  grpc_completion_queue *cq;
  ProtoCallState st;
  GError *local_error = NULL;
  gboolean stopped = FALSE;
  grpc_op ops[6];
  size_t n;

  if (!proto_check_method (service, method_index, request, error))
    return FALSE;
  path = proto_method_path (service, method_index);
  proto_call_state_init (&st);
  st.send_buf = proto_buffer_pack (request, error);
  if (!st.send_buf)
    {
      proto_call_state_clear (&st);
      return FALSE;
    }
  cq = proto_pluck_cq_new ();
  st.call = proto_client_create_call (client, cq, path, 0);
  n = proto_call_ops (&st, ops, FALSE);
  /* A failed start batch still leaves the status to collect below. */
  proto_pluck_batch (cq, st.call, ops, n, NULL);

  for (;;)
    {
      ProtobufCMessage *msg;

      proto_recv_message_op (&st, &ops[0]);
      if (!proto_pluck_batch (cq, st.call, ops, 1, NULL) || !st.recv_buf)
        break;
      msg = proto_buffer_unpack (service->methods[method_index].output,
                                 st.recv_buf, &local_error);
      g_clear_pointer (&st.recv_buf, grpc_byte_buffer_destroy);
      if (!msg)
        {
          grpc_call_cancel (st.call, NULL);
          break;
        }
      if (!on_message (msg, user_data))
        {
          stopped = TRUE;
          grpc_call_cancel (st.call, NULL);
          protobuf_c_message_free_unpacked (msg, NULL);
          break;
        }
      protobuf_c_message_free_unpacked (msg, NULL);
    }
  g_clear_pointer (&st.recv_buf, grpc_byte_buffer_destroy);
  proto_recv_status_op (&st, &ops[0]);
  if (!proto_pluck_batch (cq, st.call, ops, 1, NULL) && !local_error)
    local_error = g_error_new_literal (PROTO_ERROR, PROTO_STATUS_CANCELLED,
                                       "call failed");
  g_clear_pointer (&st.call, grpc_call_unref);
  proto_pluck_cq_free (cq);
  if (!local_error && !stopped)
    local_error = proto_status_to_error (st.status, st.details);
  proto_call_state_clear (&st);
  if (stopped)
    {
      g_clear_error (&local_error);
      return TRUE;
    }
  if (local_error)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }
  return TRUE;
}
