/* AgentStream: a server-streaming call fed by a worker thread.
 *
 * The worker pushes messages into a queue; an idle source in the main
 * context drains it into the call, so messages go out in the order they
 * were pushed and gRPC only ever sees the main context. When the worker
 * function returns, its end joins the queue behind the last message and
 * the drain that reaches it finishes the call and frees the stream.
 *
 * Timeline of a cancel: the client cancels -> the call's cancel function
 * runs in the main context -> the GCancellable is cancelled -> the worker
 * notices, returns -> the end is queued -> the main context finishes the
 * call (sends nothing more to a client that is gone) and frees the stream.
 * The cancel function never runs once finishing has begun (proto.h), so
 * the stream outlives every call of it.
 */
#include "agent-private.h"

#include <gio/gio.h>

struct _AgentStream
{
  /* Immutable after agent_stream_start. */
  ProtoServerCall *call; /* used in the main context only */
  GMainContext *ctx;
  GCancellable *cancel;
  AgentStreamFunc func;
  gpointer user_data;
  GDestroyNotify destroy;

  GMutex lock;
  GQueue queue;           /* ProtobufCMessage to send, lock */
  gboolean drain_pending; /* a drain source is attached, lock */
  gboolean ended;         /* FUNC returned, lock */
  ProtoStatus status;     /* lock, valid once ended */
  char *message;          /* lock, valid once ended */
};

static void
stream_free (AgentStream *stream)
{
  if (stream->destroy)
    stream->destroy (stream->user_data);
  g_queue_clear_full (&stream->queue, proto_msg_free);
  g_object_unref (stream->cancel);
  g_free (stream->message);
  g_mutex_clear (&stream->lock);
  g_main_context_unref (stream->ctx);
  g_free (stream);
}

/* Main context: sends what is queued; after the end, finishes. */
static gboolean
drain_cb (gpointer data)
{
  AgentStream *stream = data;
  gboolean ended;

  for (;;)
    {
      ProtobufCMessage *msg;

      g_mutex_lock (&stream->lock);
      msg = g_queue_pop_head (&stream->queue);
      ended = stream->ended;
      if (!msg)
        stream->drain_pending = FALSE;
      g_mutex_unlock (&stream->lock);
      if (!msg)
        break;
      (void)proto_server_call_send (stream->call, msg);
      proto_msg_free (msg);
    }
  /* ENDED was read under the lock that emptied the queue: nothing can
   * follow the end. */
  if (ended)
    {
      proto_server_call_finish (stream->call, stream->status, stream->message);
      stream_free (stream);
    }
  return G_SOURCE_REMOVE;
}

/* Any thread: queues MSG and/or the end, and makes sure a drain runs. */
static void
stream_queue (AgentStream *stream, ProtobufCMessage *msg, gboolean end,
              ProtoStatus status, const char *message)
{
  gboolean schedule;

  g_mutex_lock (&stream->lock);
  if (msg)
    g_queue_push_tail (&stream->queue, msg);
  if (end)
    {
      stream->ended = TRUE;
      stream->status = status;
      stream->message = g_strdup (message);
    }
  schedule = !stream->drain_pending;
  stream->drain_pending = TRUE;
  g_mutex_unlock (&stream->lock);
  if (schedule)
    {
      GSource *s = g_idle_source_new ();

      g_source_set_callback (s, drain_cb, stream, NULL);
      g_source_attach (s, stream->ctx);
      g_source_unref (s);
    }
}

void
agent_stream_push (AgentStream *stream, ProtobufCMessage *msg)
{
  g_return_if_fail (msg != NULL);
  stream_queue (stream, msg, FALSE, PROTO_STATUS_OK, NULL);
}

GCancellable *
agent_stream_get_cancellable (AgentStream *stream)
{
  return stream->cancel;
}

static gpointer
stream_thread (gpointer data)
{
  AgentStream *stream = data;
  g_autoptr (GError) error = NULL;

  if (stream->func (stream, stream->user_data, &error))
    stream_queue (stream, NULL, TRUE, PROTO_STATUS_OK, NULL);
  else if (error)
    stream_queue (stream, NULL, TRUE, agent_error_to_status (error),
                  error->message);
  else
    stream_queue (stream, NULL, TRUE, PROTO_STATUS_INTERNAL,
                  "failed without an error");
  return NULL;
}

static void
on_cancelled (gpointer call, gpointer user_data)
{
  AgentStream *stream = user_data;

  g_cancellable_cancel (stream->cancel);
}

void
agent_stream_start (ProtoServerCall *call, GMainContext *ctx,
                    const char *thread_name, AgentStreamFunc func,
                    gpointer user_data, GDestroyNotify destroy)
{
  AgentStream *stream = g_new0 (AgentStream, 1);

  stream->call = call;
  stream->ctx = g_main_context_ref (ctx);
  stream->cancel = g_cancellable_new ();
  stream->func = func;
  stream->user_data = user_data;
  stream->destroy = destroy;
  g_mutex_init (&stream->lock);
  g_queue_init (&stream->queue);
  proto_server_call_set_cancel_func (call, on_cancelled, stream);
  g_thread_unref (g_thread_new (thread_name, stream_thread, stream));
}
