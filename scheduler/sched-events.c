/* SchedEvents: the event stream (see sched-events.h), and WatchEvents.
 *
 * A sink falls behind when its stream has SCHED_EVENTS_QUEUE_MAX events
 * queued that its reader has not taken. From then on it is "lagging": it
 * gets no more events, only a count of those it missed. Timeline of a
 * reader that stalls:
 *   publish ... queued reaches the bound  -> lagging, missed = 1
 *   publish ...                           -> missed++
 *   the reader drains its queue, or LAG_MAX_MS pass
 *                                         -> "dropped" (missed = N), finish
 * The check runs at every publish and on a timer that exists only while a
 * sink lags, so a quiet cluster still ends the stream.
 */
#include "sched-private.h"

#include <stdarg.h>
#include <string.h>

struct _SchedEventsSink
{
  const SchedEventsSinkOps *ops;
  gpointer target;
  gboolean lagging;
  guint64 missed;
  gint64 lagging_since_ms;
};

typedef struct
{
  char *state;         /* the last state an event told */
  gint64 last_emit_ms; /* of the last job.* event */
} JobSeen;

struct _SchedEvents
{
  guint queue_max;
  gint64 (*clock) (gpointer);
  gpointer clock_data;
  guint64 next_seq;
  GQueue backlog;     /* Drover__V1__Event *, oldest first */
  GPtrArray *sinks;   /* SchedEventsSink *, owned */
  GHashTable *jobs;   /* job id -> JobSeen: jobs not over yet */
  GSource *lag_timer; /* while a sink lags */
  guint64 n_dropped;
  gboolean stopped;
};

static void
job_seen_free (gpointer data)
{
  JobSeen *seen = data;

  g_free (seen->state);
  g_free (seen);
}

SchedEvents *
sched_events_new (guint queue_max, gint64 (*clock) (gpointer),
                  gpointer clock_data)
{
  SchedEvents *events = g_new0 (SchedEvents, 1);

  events->queue_max = queue_max > 0 ? queue_max : SCHED_EVENTS_QUEUE_MAX;
  events->clock = clock;
  events->clock_data = clock_data;
  events->next_seq = 1;
  g_queue_init (&events->backlog);
  events->sinks = g_ptr_array_new_with_free_func (g_free);
  events->jobs
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, job_seen_free);
  return events;
}

static void
lag_timer_stop (SchedEvents *events)
{
  if (events->lag_timer == NULL)
    return;
  g_source_destroy (events->lag_timer);
  g_clear_pointer (&events->lag_timer, g_source_unref);
}

void
sched_events_stop (SchedEvents *events)
{
  g_autoptr (GPtrArray) sinks = NULL;

  if (events->stopped)
    return;
  events->stopped = TRUE;
  lag_timer_stop (events);
  /* Forget them all first: a finish callback may not come back here. */
  sinks = g_steal_pointer (&events->sinks);
  events->sinks = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < sinks->len; i++)
    {
      SchedEventsSink *sink = sinks->pdata[i];

      sink->ops->finish (sink->target, FALSE);
    }
}

void
sched_events_free (SchedEvents *events)
{
  sched_events_stop (events);
  g_queue_clear_full (&events->backlog, (GDestroyNotify)proto_msg_free);
  g_ptr_array_unref (events->sinks);
  g_hash_table_unref (events->jobs);
  g_free (events);
}

guint
sched_events_n_sinks (SchedEvents *events)
{
  return events->sinks->len;
}

guint64
sched_events_n_dropped (SchedEvents *events)
{
  return events->n_dropped;
}

/* --- delivery ---------------------------------------------------------- */

/* Ends lagging SINK's stream with its "dropped" event and forgets it. */
static void
sink_drop (SchedEvents *events, SchedEventsSink *sink)
{
  Drover__V1__Event marker = DROVER__V1__EVENT__INIT;
  g_autofree char *message = NULL;
  guint i;

  marker.seq = events->next_seq - 1;
  marker.time_ms = events->clock (events->clock_data);
  marker.kind = (char *)SCHED_EVENT_DROPPED;
  marker.missed = sink->missed;
  message = g_strdup_printf ("this stream fell more than %u events behind "
                             "and missed %" G_GUINT64_FORMAT
                             " events; watch again to go on",
                             events->queue_max, sink->missed);
  marker.message = message;
  events->n_dropped++;
  if (g_ptr_array_find (events->sinks, sink, &i))
    g_ptr_array_steal_index (events->sinks, i);
  drover_message (
      NULL, NULL, NULL,
      "event stream dropped: its reader fell behind (%" G_GUINT64_FORMAT
      " events missed)",
      sink->missed);
  sink->ops->send (sink->target, &marker);
  sink->ops->finish (sink->target, TRUE);
  g_free (sink);
}

static gboolean lag_tick (gpointer user_data);

/* Drops the lagging sinks whose queue is empty or that lag too long;
 * keeps the timer only while some still lag. */
static void
check_lagging (SchedEvents *events)
{
  gint64 now = events->clock (events->clock_data);
  gboolean any = FALSE;

  for (guint i = 0; i < events->sinks->len;)
    {
      SchedEventsSink *sink = events->sinks->pdata[i];

      if (sink->lagging
          && (sink->ops->queued (sink->target) == 0
              || now - sink->lagging_since_ms >= SCHED_EVENTS_LAG_MAX_MS))
        {
          sink_drop (events, sink);
          continue;
        }
      any |= sink->lagging;
      i++;
    }
  if (!any)
    lag_timer_stop (events);
  else if (events->lag_timer == NULL)
    {
      events->lag_timer = g_timeout_source_new (250);
      g_source_set_callback (events->lag_timer, lag_tick, events, NULL);
      g_source_attach (events->lag_timer, g_main_context_get_thread_default ());
    }
}

static gboolean
lag_tick (gpointer user_data)
{
  SchedEvents *events = user_data;
  GSource *self = g_source_ref (events->lag_timer);
  gboolean again;

  check_lagging (events);
  /* check_lagging destroys the timer once nobody lags. */
  again = events->lag_timer == self;
  g_source_unref (self);
  return again ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Hands EVENT to SINK unless it lags or falls behind now. FALSE if the
 * reader has gone (the caller finishes and forgets it). */
static gboolean
sink_offer (SchedEvents *events, SchedEventsSink *sink,
            const Drover__V1__Event *event)
{
  if (sink->lagging)
    {
      sink->missed++;
      return TRUE;
    }
  if (sink->ops->queued (sink->target) >= events->queue_max)
    {
      sink->lagging = TRUE;
      sink->missed = 1;
      sink->lagging_since_ms = events->clock (events->clock_data);
      return TRUE;
    }
  return sink->ops->send (sink->target, event);
}

void
sched_events_publish (SchedEvents *events, const Drover__V1__Event *event)
{
  Drover__V1__Event *copy;

  if (events == NULL || events->stopped)
    return;
  copy = proto_msg_copy (&event->base);
  copy->seq = events->next_seq++;
  copy->time_ms = events->clock (events->clock_data);
  g_queue_push_tail (&events->backlog, copy);
  while (g_queue_get_length (&events->backlog) > SCHED_EVENTS_BACKLOG)
    proto_msg_free (g_queue_pop_head (&events->backlog));

  for (guint i = 0; i < events->sinks->len;)
    {
      SchedEventsSink *sink = events->sinks->pdata[i];

      if (sink_offer (events, sink, copy))
        {
          i++;
          continue;
        }
      g_ptr_array_steal_index (events->sinks, i);
      sink->ops->finish (sink->target, FALSE);
      g_free (sink);
    }
  check_lagging (events);
}

void
sched_events_emit (SchedEvents *events, const char *kind, const char *vm,
                   const char *host, const char *state, const char *old_state,
                   const char *format, ...)
{
  Drover__V1__Event event = DROVER__V1__EVENT__INIT;
  g_autofree char *message = NULL;
  va_list ap;

  if (events == NULL)
    return;
  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  event.kind = (char *)kind;
  event.vm = (char *)(vm ? vm : "");
  event.host = (char *)(host ? host : "");
  event.state = (char *)(state ? state : "");
  event.old_state = (char *)(old_state ? old_state : "");
  event.message = message;
  sched_events_publish (events, &event);
}

void
sched_events_vm_state (SchedEvents *events, const char *vm, const char *host,
                       const char *old_state, const char *state)
{
  if (g_strcmp0 (old_state, state) == 0)
    return;
  sched_events_emit (events, SCHED_EVENT_VM_STATE, vm, host, state, old_state,
                     "%s -> %s", old_state ? old_state : "-", state);
}

void
sched_events_job (SchedEvents *events, const SchedJob *job)
{
  Drover__V1__Event event = DROVER__V1__EVENT__INIT;
  Drover__V1__Job msg;
  JobSeen *seen;
  g_autofree char *old_state = NULL;
  gint64 now;
  gboolean over;

  if (events == NULL)
    return;
  now = events->clock (events->clock_data);
  over = proto_job_state_is_final (job->state);
  seen = g_hash_table_lookup (events->jobs, job->id);
  if (seen == NULL)
    event.kind = over ? (char *)SCHED_EVENT_JOB_ENDED
                      : (char *)SCHED_EVENT_JOB_STARTED;
  else if (over)
    event.kind = (char *)SCHED_EVENT_JOB_ENDED;
  else if (strcmp (seen->state, job->state) != 0
           || now - seen->last_emit_ms >= SCHED_EVENTS_PROGRESS_PERIOD_MS)
    event.kind = (char *)SCHED_EVENT_JOB_PROGRESS;
  else
    return;

  if (seen != NULL)
    old_state = g_steal_pointer (&seen->state);
  if (over)
    g_hash_table_remove (events->jobs, job->id);
  else
    {
      if (seen == NULL)
        {
          seen = g_new0 (JobSeen, 1);
          g_hash_table_insert (events->jobs, g_strdup (job->id), seen);
        }
      seen->state = g_strdup (job->state);
      seen->last_emit_ms = now;
    }

  sched_job_msg (job, &msg);
  event.vm = job->vm;
  event.host = job->dest_host ? job->dest_host : (char *)"";
  event.job_id = job->id;
  event.state = job->state;
  event.old_state = old_state ? old_state : (char *)"";
  event.message = job->error && job->error[0] ? job->error : job->message;
  event.job = &msg;
  sched_events_publish (events, &event);
}

/* --- subscribers ------------------------------------------------------- */

void
sched_events_replay (SchedEvents *events, const SchedEventsSinkOps *ops,
                     gpointer target, guint backlog)
{
  guint n = MIN (backlog, g_queue_get_length (&events->backlog));

  n = MIN (n, events->queue_max);
  for (GList *l = g_queue_peek_nth_link (
           &events->backlog, g_queue_get_length (&events->backlog) - n);
       l != NULL; l = l->next)
    if (!ops->send (target, l->data))
      break;
}

SchedEventsSink *
sched_events_subscribe (SchedEvents *events, const SchedEventsSinkOps *ops,
                        gpointer target, guint backlog)
{
  SchedEventsSink *sink;

  if (events->stopped)
    return NULL;
  sched_events_replay (events, ops, target, backlog);
  sink = g_new0 (SchedEventsSink, 1);
  sink->ops = ops;
  sink->target = target;
  g_ptr_array_add (events->sinks, sink);
  return sink;
}

void
sched_events_unsubscribe (SchedEvents *events, SchedEventsSink *sink)
{
  g_ptr_array_remove (events->sinks, sink);
}

/* --- WatchEvents ------------------------------------------------------- */

/* A WatchEvents stream: the sink's target. Freed when its call is
 * finished, by whoever finishes it. */
typedef struct
{
  SchedEvents *events;
  SchedEventsSink *sink;
  ProtoServerCall *call;
} Watch;

static gboolean
watch_send (gpointer target, const Drover__V1__Event *event)
{
  Watch *watch = target;

  return proto_server_call_send (watch->call, &event->base);
}

static guint
watch_queued (gpointer target)
{
  Watch *watch = target;

  return proto_server_call_get_queued (watch->call);
}

static void
watch_finish (gpointer target, gboolean dropped)
{
  Watch *watch = target;

  if (dropped)
    proto_server_call_finish (watch->call, PROTO_STATUS_RESOURCE_EXHAUSTED,
                              "event stream dropped: the reader fell behind");
  else if (proto_server_call_is_cancelled (watch->call))
    proto_server_call_finish (watch->call, PROTO_STATUS_CANCELLED, "cancelled");
  else
    proto_server_call_finish (watch->call, PROTO_STATUS_UNAVAILABLE,
                              "the scheduler is shutting down");
  g_free (watch);
}

static const SchedEventsSinkOps watch_ops = {
  watch_send,
  watch_queued,
  watch_finish,
};

static void
watch_cancelled (gpointer data, gpointer user_data)
{
  Watch *watch = user_data;

  /* Runs only for a call not finished yet: the sink is still subscribed. */
  sched_events_unsubscribe (watch->events, watch->sink);
  proto_server_call_finish (watch->call, PROTO_STATUS_CANCELLED, "cancelled");
  g_free (watch);
}

void
sched_events_handle_watch (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedEvents *events = user_data;
  const Drover__V1__WatchEventsRequest *req = (const void *)request;
  Watch *watch = g_new0 (Watch, 1);

  watch->events = events;
  watch->call = call;
  if (!req->follow)
    {
      sched_events_replay (events, &watch_ops, watch, req->backlog);
      proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
      g_free (watch);
      return;
    }
  watch->sink
      = sched_events_subscribe (events, &watch_ops, watch, req->backlog);
  if (watch->sink == NULL)
    {
      g_free (watch);
      proto_server_call_fail (call, PROTO_STATUS_UNAVAILABLE,
                              "the scheduler is shutting down");
      return;
    }
  proto_server_call_set_cancel_func (call, watch_cancelled, watch);
}
