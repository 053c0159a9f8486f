/* libdrover-proto: a completion queue drained by its own thread, each
 * event handed to a GMainContext through an idle GSource.
 *
 * gRPC core offers no file descriptor to poll, so a thread blocks in
 * grpc_completion_queue_next(). g_main_context_invoke() is not used: it
 * runs the callback in place when the context is free, i.e. in the gRPC
 * thread. Events are kept in a list as well, so shutdown can run the ones
 * the main context has not dispatched yet (and nothing dangles). */
#include "proto-private.h"

typedef struct
{
  ProtoCq *cq;
  ProtoTag *tag;
  gboolean ok;
  GSource *source; /* owned by the context while attached */
  GList link;      /* in ProtoCq.pending */
} ProtoCqEvent;

struct _ProtoCq
{
  grpc_completion_queue *cq;
  GMainContext *ctx;
  GThread *thread;
  GMutex lock;
  GCond cond;
  GQueue pending; /* of ProtoCqEvent, oldest first; guarded by lock */
};

static gboolean
proto_cq_dispatch (gpointer data)
{
  ProtoCqEvent *ev = data;
  ProtoCq *cq = ev->cq;

  g_mutex_lock (&cq->lock);
  g_queue_unlink (&cq->pending, &ev->link);
  g_mutex_unlock (&cq->lock);
  ev->tag->func (ev->tag, ev->ok);
  g_free (ev);
  return G_SOURCE_REMOVE;
}

void
proto_cq_post (ProtoCq *cq, ProtoTag *tag, gboolean ok)
{
  ProtoCqEvent *ev = g_new0 (ProtoCqEvent, 1);

  ev->cq = cq;
  ev->tag = tag;
  ev->ok = ok;
  ev->link.data = ev;
  ev->source = g_idle_source_new ();
  g_source_set_priority (ev->source, G_PRIORITY_DEFAULT);
  g_source_set_callback (ev->source, proto_cq_dispatch, ev, NULL);
  g_source_set_static_name (ev->source, "drover-proto-event");
  /* Attach under the lock: the dispatch unlinks under it too, and flush
   * must find every event that is still attached. */
  g_mutex_lock (&cq->lock);
  g_queue_push_tail_link (&cq->pending, &ev->link);
  g_source_attach (ev->source, cq->ctx);
  g_source_unref (ev->source);
  g_mutex_unlock (&cq->lock);
}

static gpointer
proto_cq_thread (gpointer data)
{
  ProtoCq *cq = data;

  for (;;)
    {
      grpc_event ev = grpc_completion_queue_next (
          cq->cq, gpr_inf_future (GPR_CLOCK_REALTIME), NULL);
      ProtoTag *tag;

      if (ev.type == GRPC_QUEUE_SHUTDOWN)
        break;
      if (ev.type != GRPC_OP_COMPLETE)
        continue;
      tag = ev.tag;
      if (tag->func == NULL)
        {
          g_mutex_lock (&cq->lock);
          tag->done = TRUE;
          tag->ok = ev.success != 0;
          g_cond_broadcast (&cq->cond);
          g_mutex_unlock (&cq->lock);
          continue;
        }
      proto_cq_post (cq, tag, ev.success != 0);
    }
  return NULL;
}

ProtoCq *
proto_cq_new (GMainContext *ctx, const char *thread_name)
{
  ProtoCq *cq = g_new0 (ProtoCq, 1);

  cq->cq = grpc_completion_queue_create_for_next (NULL);
  cq->ctx
      = ctx ? g_main_context_ref (ctx) : g_main_context_ref_thread_default ();
  g_mutex_init (&cq->lock);
  g_cond_init (&cq->cond);
  g_queue_init (&cq->pending);
  cq->thread = g_thread_new (thread_name, proto_cq_thread, cq);
  return cq;
}

grpc_completion_queue *
proto_cq_get (ProtoCq *cq)
{
  return cq->cq;
}

GMainContext *
proto_cq_get_context (ProtoCq *cq)
{
  return cq->ctx;
}

gboolean
proto_cq_wait (ProtoCq *cq, ProtoTag *tag)
{
  gboolean ok;

  g_mutex_lock (&cq->lock);
  while (!tag->done)
    g_cond_wait (&cq->cond, &cq->lock);
  ok = tag->ok;
  g_mutex_unlock (&cq->lock);
  return ok;
}

void
proto_cq_shutdown (ProtoCq *cq)
{
  if (!cq->thread)
    return;
  grpc_completion_queue_shutdown (cq->cq);
  g_thread_join (cq->thread);
  cq->thread = NULL;
}

void
proto_cq_flush (ProtoCq *cq)
{
  for (;;)
    {
      ProtoCqEvent *ev;

      g_mutex_lock (&cq->lock);
      ev = g_queue_peek_head (&cq->pending);
      if (ev)
        {
          g_queue_unlink (&cq->pending, &ev->link);
          g_source_destroy (ev->source);
        }
      g_mutex_unlock (&cq->lock);
      if (!ev)
        break;
      ev->tag->func (ev->tag, ev->ok);
      g_free (ev);
    }
}

void
proto_cq_free (ProtoCq *cq)
{
  if (!cq)
    return;
  proto_cq_shutdown (cq);
  proto_cq_flush (cq);
  grpc_completion_queue_destroy (cq->cq);
  g_main_context_unref (cq->ctx);
  g_mutex_clear (&cq->lock);
  g_cond_clear (&cq->cond);
  g_free (cq);
}
