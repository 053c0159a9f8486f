/* SchedEvents (stream, backlog, bounded queues, job events), SchedLogins
 * (tokens and sessions), sched_imbalance and the dashboard's JSON. */
#include "sched-dashboard.h"

#include <math.h>
#include <string.h>

/* --- a fake sink -------------------------------------------------------- */

typedef struct
{
  GPtrArray *events; /* copies of what was sent */
  guint queued;      /* what the "stream" still holds */
  gboolean draining; /* a reader that keeps up: queued stays 0 */
  gboolean gone;     /* send fails */
  int finished;      /* 0 no, 1 finished, 2 finished as dropped */
} Sink;

static gboolean
sink_send (gpointer target, const Drover__V1__Event *event)
{
  Sink *s = target;

  if (s->gone)
    return FALSE;
  g_ptr_array_add (s->events, proto_msg_copy (&event->base));
  if (!s->draining)
    s->queued++;
  return TRUE;
}

static guint
sink_queued (gpointer target)
{
  return ((Sink *)target)->queued;
}

static void
sink_finish (gpointer target, gboolean dropped)
{
  Sink *s = target;

  g_assert_cmpint (s->finished, ==, 0);
  s->finished = dropped ? 2 : 1;
}

static const SchedEventsSinkOps sink_ops
    = { sink_send, sink_queued, sink_finish };

static void
sink_init (Sink *s, gboolean draining)
{
  memset (s, 0, sizeof *s);
  s->events = g_ptr_array_new_with_free_func (proto_msg_free);
  s->draining = draining;
}

static void
sink_clear (Sink *s)
{
  g_ptr_array_unref (s->events);
}

static const Drover__V1__Event *
sink_event (Sink *s, guint i)
{
  g_assert_cmpuint (i, <, s->events->len);
  return s->events->pdata[i];
}

/* Initialises S and subscribes it to EVENTS, without a backlog. */
static SchedEventsSink *
sink_subscribe (Sink *s, SchedEvents *events, gboolean draining)
{
  sink_init (s, draining);
  return sched_events_subscribe (events, &sink_ops, s, 0);
}

/* S got COUNT events so far, the last of KIND; returns that one. */
static const Drover__V1__Event *
assert_last_event (Sink *s, guint count, const char *kind)
{
  const Drover__V1__Event *last;

  g_assert_cmpuint (s->events->len, ==, count);
  last = sink_event (s, count - 1);
  g_assert_cmpstr (last->kind, ==, kind);
  return last;
}

static gint64 fake_now = 1000000;

static gint64
fake_clock (gpointer data)
{
  return fake_now;
}

static void
emit_n (SchedEvents *events, guint n)
{
  for (guint i = 0; i < n; i++)
    sched_events_emit (events, SCHED_EVENT_VM_STATE, "vm1", "host1", "running",
                       "paused", "event %u", i);
}

/* --- the stream --------------------------------------------------------- */

static void
test_publish_and_backlog (void)
{
  /* Sinks are declared before the events in every test here, so that
   * they outlive its cleanup (which finishes each reader still
   * subscribed). */
  Sink a, b;
  g_autoptr (SchedEvents) events = sched_events_new (100, fake_clock, NULL);

  sink_init (&a, TRUE);
  sink_init (&b, TRUE);
  /* Publishing into NULL is fine and does nothing. */
  sched_events_emit (NULL, SCHED_EVENT_HOST_UP, NULL, "h", NULL, NULL, "x");

  emit_n (events, 5);
  g_assert_nonnull (sched_events_subscribe (events, &sink_ops, &a, 0));
  g_assert_cmpuint (a.events->len, ==, 0);
  g_assert_nonnull (sched_events_subscribe (events, &sink_ops, &b, 3));
  /* The backlog: the last three, in order. */
  g_assert_cmpuint (b.events->len, ==, 3);
  g_assert_cmpuint (sink_event (&b, 0)->seq, ==, 3);
  g_assert_cmpuint (sink_event (&b, 2)->seq, ==, 5);
  g_assert_cmpstr (sink_event (&b, 2)->message, ==, "event 4");

  fake_now += 5;
  sched_events_vm_state (events, "vm2", "host2", "shutoff", "running");
  /* No change, no event. */
  sched_events_vm_state (events, "vm2", "host2", "running", "running");
  g_assert_cmpuint (a.events->len, ==, 1);
  g_assert_cmpuint (b.events->len, ==, 4);
  g_assert_cmpuint (sink_event (&a, 0)->seq, ==, 6);
  g_assert_cmpint (sink_event (&a, 0)->time_ms, ==, fake_now);
  g_assert_cmpstr (sink_event (&a, 0)->kind, ==, SCHED_EVENT_VM_STATE);
  g_assert_cmpstr (sink_event (&a, 0)->vm, ==, "vm2");
  g_assert_cmpstr (sink_event (&a, 0)->state, ==, "running");
  g_assert_cmpstr (sink_event (&a, 0)->old_state, ==, "shutoff");
  g_assert_cmpuint (sched_events_n_sinks (events), ==, 2);

  /* The backlog is bounded. */
  emit_n (events, SCHED_EVENTS_BACKLOG + 10);
  {
    Sink c;

    sink_init (&c, TRUE);
    sched_events_replay (events, &sink_ops, &c, G_MAXUINT);
    /* ... and a replay never exceeds a queue's bound either. */
    g_assert_cmpuint (c.events->len, ==, 100);
    g_assert_cmpuint (sink_event (&c, 99)->seq, ==,
                      6 + SCHED_EVENTS_BACKLOG + 10);
    sink_clear (&c);
  }

  sched_events_stop (events);
  g_assert_cmpint (a.finished, ==, 1);
  g_assert_cmpint (b.finished, ==, 1);
  g_assert_cmpuint (sched_events_n_sinks (events), ==, 0);
  g_assert_null (sched_events_subscribe (events, &sink_ops, &a, 0));
  sink_clear (&a);
  sink_clear (&b);
}

static void
test_slow_reader_dropped (void)
{
  Sink slow, fast;
  g_autoptr (SchedEvents) events = sched_events_new (10, fake_clock, NULL);
  const Drover__V1__Event *last;

  sink_subscribe (&slow, events, FALSE);
  sink_subscribe (&fast, events, TRUE);

  /* Ten fill the slow one's queue; the next 25 it misses. */
  emit_n (events, 35);
  g_assert_cmpuint (slow.events->len, ==, 10);
  g_assert_cmpuint (fast.events->len, ==, 35);
  g_assert_cmpint (slow.finished, ==, 0);

  /* It reads its queue: at the next event it is dropped with the count. */
  slow.queued = 0;
  emit_n (events, 1);
  g_assert_cmpint (slow.finished, ==, 2);
  g_assert_cmpuint (slow.events->len, ==, 11);
  last = sink_event (&slow, 10);
  g_assert_cmpstr (last->kind, ==, SCHED_EVENT_DROPPED);
  g_assert_cmpuint (last->missed, ==, 26);
  g_assert_nonnull (strstr (last->message, "missed 26 events"));
  g_assert_cmpuint (sched_events_n_sinks (events), ==, 1);
  g_assert_cmpuint (sched_events_n_dropped (events), ==, 1);
  /* The other reader saw everything. */
  g_assert_cmpuint (fast.events->len, ==, 36);
  sink_clear (&slow);
  sink_clear (&fast);
}

static void
test_stalled_reader_ended (void)
{
  Sink stalled, gone;
  g_autoptr (SchedEvents) events = sched_events_new (4, fake_clock, NULL);

  sink_subscribe (&stalled, events, FALSE);
  sink_subscribe (&gone, events, TRUE);

  emit_n (events, 6);
  g_assert_cmpint (stalled.finished, ==, 0);
  /* A reader that never reads again is ended after LAG_MAX_MS, its
   * "dropped" event queued behind the rest. */
  fake_now += SCHED_EVENTS_LAG_MAX_MS;
  gone.gone = TRUE;
  emit_n (events, 1);
  g_assert_cmpint (stalled.finished, ==, 2);
  g_assert_cmpstr (sink_event (&stalled, stalled.events->len - 1)->kind, ==,
                   SCHED_EVENT_DROPPED);
  g_assert_cmpuint (sink_event (&stalled, stalled.events->len - 1)->missed, ==,
                    3);
  /* A reader that went away is finished, not dropped. */
  g_assert_cmpint (gone.finished, ==, 1);
  g_assert_cmpuint (sched_events_n_sinks (events), ==, 0);
  sink_clear (&stalled);
  sink_clear (&gone);
}

static void
test_unsubscribe (void)
{
  Sink s;
  g_autoptr (SchedEvents) events = sched_events_new (0, fake_clock, NULL);
  SchedEventsSink *sink;

  sink = sink_subscribe (&s, events, TRUE);
  sched_events_unsubscribe (events, sink);
  emit_n (events, 2);
  g_assert_cmpuint (s.events->len, ==, 0);
  g_assert_cmpint (s.finished, ==, 0);
  sink_clear (&s);
}

static void
test_job_events (void)
{
  Sink s;
  g_autoptr (SchedEvents) events = sched_events_new (0, fake_clock, NULL);
  g_autoptr (SchedJob) job
      = sched_job_new (PROTO_JOB_KIND_MIGRATE, "vm1", PROTO_JOB_QUEUED, 0);
  const Drover__V1__Event *e;

  sink_subscribe (&s, events, TRUE);
  sched_events_job (events, job);
  e = assert_last_event (&s, 1, SCHED_EVENT_JOB_STARTED);
  g_assert_cmpstr (e->job_id, ==, job->id);
  g_assert_cmpstr (e->job->kind, ==, PROTO_JOB_KIND_MIGRATE);

  /* A state change goes out at once... */
  g_free (job->state);
  job->state = g_strdup (PROTO_JOB_RUNNING);
  sched_events_job (events, job);
  e = assert_last_event (&s, 2, SCHED_EVENT_JOB_PROGRESS);
  g_assert_cmpstr (e->old_state, ==, PROTO_JOB_QUEUED);
  /* ... progress at most once a period. */
  job->progress = 0.5;
  sched_events_job (events, job);
  g_assert_cmpuint (s.events->len, ==, 2);
  fake_now += SCHED_EVENTS_PROGRESS_PERIOD_MS;
  sched_events_job (events, job);
  g_assert_cmpuint (s.events->len, ==, 3);
  g_assert_cmpfloat (sink_event (&s, 2)->job->progress, ==, 0.5);
  /* The end always. */
  g_free (job->state);
  job->state = g_strdup (PROTO_JOB_DONE);
  sched_events_job (events, job);
  e = assert_last_event (&s, 4, SCHED_EVENT_JOB_ENDED);
  g_assert_cmpstr (e->state, ==, PROTO_JOB_DONE);
  sink_clear (&s);
}

/* --- logins ------------------------------------------------------------- */

static void
test_logins (void)
{
  g_autoptr (SchedLogins) logins = sched_logins_new (fake_clock, NULL);
  g_autofree char *token = NULL;
  g_autofree char *other = NULL;
  g_autofree char *session = NULL;
  g_autofree char *late = NULL;
  gint64 expires = 0;
  ProtoRole role = 0;
  const char *name = NULL;

  token = sched_logins_new_token (logins, PROTO_ROLE_OPERATOR, "alice", 0,
                                  &expires);
  g_assert_cmpuint (strlen (token), ==, 64);
  g_assert_cmpint (expires, ==, fake_now + SCHED_DASHBOARD_TOKEN_TTL_S * 1000);
  g_assert_null (sched_logins_redeem (logins, "nope"));
  g_assert_null (sched_logins_redeem (logins, NULL));
  session = sched_logins_redeem (logins, token);
  g_assert_nonnull (session);
  g_assert_cmpstr (session, !=, token);
  /* One use only. */
  g_assert_null (sched_logins_redeem (logins, token));
  g_assert_true (sched_logins_session (logins, session, &role, &name));
  g_assert_cmpint (role, ==, PROTO_ROLE_OPERATOR);
  g_assert_cmpstr (name, ==, "alice");
  g_assert_false (sched_logins_session (logins, token, &role, &name));

  /* A token used after its lifetime opens nothing; the cap holds. */
  other = sched_logins_new_token (logins, PROTO_ROLE_OPERATOR, "bob", 99999,
                                  &expires);
  g_assert_cmpint (expires, ==,
                   fake_now + SCHED_DASHBOARD_TOKEN_TTL_MAX_S * 1000);
  fake_now += SCHED_DASHBOARD_TOKEN_TTL_MAX_S * 1000;
  late = sched_logins_redeem (logins, other);
  g_assert_null (late);
  /* Sessions expire too. */
  fake_now += SCHED_DASHBOARD_SESSION_TTL_S * 1000;
  g_assert_false (sched_logins_session (logins, session, &role, &name));
}

static void
test_logins_bounded (void)
{
  g_autoptr (SchedLogins) logins = sched_logins_new (fake_clock, NULL);
  g_autofree char *first
      = sched_logins_new_token (logins, PROTO_ROLE_OPERATOR, "a", 0, NULL);
  g_autofree char *session = NULL;

  for (guint i = 0; i < SCHED_DASHBOARD_MAX_TOKENS; i++)
    g_free (sched_logins_new_token (logins, PROTO_ROLE_OPERATOR, "a", 0, NULL));
  /* The oldest went to make room. */
  g_assert_null (sched_logins_redeem (logins, first));
  for (guint i = 0; i < SCHED_DASHBOARD_MAX_SESSIONS + 5; i++)
    g_free (sched_logins_new_session (logins, PROTO_ROLE_VIEWER, "v"));
  session = sched_logins_new_session (logins, PROTO_ROLE_VIEWER, "v");
  {
    ProtoRole role;
    const char *name;

    g_assert_true (sched_logins_session (logins, session, &role, &name));
    g_assert_cmpint (role, ==, PROTO_ROLE_VIEWER);
  }
}

/* --- imbalance ---------------------------------------------------------- */

static SchedHost *
host (const char *name, guint cpus, guint64 memory, const char *state)
{
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;

  info.name = (char *)name;
  info.cpus = cpus;
  info.memory_total = memory;
  return sched_host_new (&info, state, 0);
}

static SchedVm *
vm (const char *name, const char *on, guint vcpus, guint64 memory)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;

  spec.name = (char *)name;
  spec.vcpus = vcpus;
  spec.memory = memory;
  return sched_vm_new (&spec, on, "running", NULL, 0);
}

static void
test_imbalance (void)
{
  SchedPolicy policy = { 1.0, 0 };
  g_autoptr (GPtrArray) hosts
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_host_free);
  g_autoptr (GPtrArray) vms
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_vm_free);

  g_ptr_array_add (hosts, host ("a", 4, 4096, PROTO_HOST_UP));
  /* One host: nothing to balance. */
  g_assert_cmpfloat (sched_imbalance (&policy, hosts, vms), ==, 0);
  g_ptr_array_add (hosts, host ("b", 4, 4096, PROTO_HOST_UP));
  g_ptr_array_add (hosts, host ("c", 4, 4096, PROTO_HOST_DOWN));
  g_assert_cmpfloat (sched_imbalance (&policy, hosts, vms), ==, 0);
  /* Same load on both: balanced. */
  g_ptr_array_add (vms, vm ("x", "a", 2, 1024));
  g_ptr_array_add (vms, vm ("y", "b", 2, 1024));
  g_assert_cmpfloat_with_epsilon (sched_imbalance (&policy, hosts, vms), 0,
                                  1e-12);
  /* a: cpu 1.0, mem 0.5; b: cpu 0.5, mem 0.25: the CPU loads vary by
   * .0625, the memory loads by .015625. */
  g_ptr_array_add (vms, vm ("z", "a", 2, 1024));
  g_assert_cmpfloat_with_epsilon (sched_imbalance (&policy, hosts, vms),
                                  sqrt ((0.0625 + 0.015625) / 2), 1e-9);
  /* VMs on a down host count for nobody. */
  g_ptr_array_add (vms, vm ("w", "c", 4, 4096));
  g_assert_cmpfloat_with_epsilon (sched_imbalance (&policy, hosts, vms),
                                  sqrt ((0.0625 + 0.015625) / 2), 1e-9);
}

/* --- JSON ---------------------------------------------------------------- */

static void
test_event_json (void)
{
  Drover__V1__Event ev = DROVER__V1__EVENT__INIT;
  Drover__V1__Job job = DROVER__V1__JOB__INIT;
  Drover__V1__MigrationProgress mig = DROVER__V1__MIGRATION_PROGRESS__INIT;
  Drover__V1__MigrationRound rounds[2] = { DROVER__V1__MIGRATION_ROUND__INIT,
                                           DROVER__V1__MIGRATION_ROUND__INIT };
  Drover__V1__MigrationRound *round_ptrs[2] = { &rounds[0], &rounds[1] };
  g_autofree char *text = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonObject *obj, *jobj, *mobj;
  JsonArray *arr;

  ev.seq = 42;
  ev.time_ms = G_GINT64_CONSTANT (1796358504462);
  ev.kind = (char *)SCHED_EVENT_JOB_PROGRESS;
  /* Invalid UTF-8 from an agent must not break the document. */
  ev.message = (char *)"bad \xff byte and \"quotes\"\n";
  job.id = (char *)"j1";
  job.progress = 0.5;
  job.migration = &mig;
  mig.phase = (char *)"precopy";
  mig.memory_remaining = G_GUINT64_CONSTANT (1) << 40;
  mig.eta_s = INFINITY;
  rounds[0].iteration = 1;
  rounds[1].iteration = 2;
  mig.n_rounds = 2;
  mig.rounds = round_ptrs;
  ev.job = &job;

  text = sched_dashboard_event_json (&ev);
  /* One line: server-sent events end a message at a newline. */
  g_assert_null (strchr (text, '\n'));
  g_assert_true (json_parser_load_from_data (parser, text, -1, NULL));
  obj = json_node_get_object (json_parser_get_root (parser));
  g_assert_cmpint (json_object_get_int_member (obj, "seq"), ==, 42);
  g_assert_cmpint (json_object_get_int_member (obj, "time_ms"), ==,
                   G_GINT64_CONSTANT (1796358504462));
  g_assert_cmpstr (json_object_get_string_member (obj, "kind"), ==,
                   SCHED_EVENT_JOB_PROGRESS);
  g_assert_true (g_str_has_prefix (
      json_object_get_string_member (obj, "message"), "bad "));
  g_assert_cmpstr (json_object_get_string_member (obj, "vm"), ==, "");
  jobj = json_object_get_object_member (obj, "job");
  g_assert_cmpfloat (json_object_get_double_member (jobj, "progress"), ==, 0.5);
  g_assert_true (json_object_get_null_member (jobj, "prediction"));
  mobj = json_object_get_object_member (jobj, "migration");
  g_assert_cmpint (json_object_get_int_member (mobj, "memory_remaining"), ==,
                   G_GINT64_CONSTANT (1) << 40);
  g_assert_true (json_object_get_null_member (mobj, "eta_s"));
  arr = json_object_get_array_member (mobj, "rounds");
  g_assert_cmpuint (json_array_get_length (arr), ==, 2);
  g_assert_cmpint (json_object_get_int_member (
                       json_array_get_object_element (arr, 1), "iteration"),
                   ==, 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-events/publish-and-backlog",
                   test_publish_and_backlog);
  g_test_add_func ("/sched-events/slow-reader-dropped",
                   test_slow_reader_dropped);
  g_test_add_func ("/sched-events/stalled-reader-ended",
                   test_stalled_reader_ended);
  g_test_add_func ("/sched-events/unsubscribe", test_unsubscribe);
  g_test_add_func ("/sched-events/job-events", test_job_events);
  g_test_add_func ("/sched-logins/tokens-and-sessions", test_logins);
  g_test_add_func ("/sched-logins/bounded", test_logins_bounded);
  g_test_add_func ("/sched-imbalance/stddev", test_imbalance);
  g_test_add_func ("/sched-dashboard/event-json", test_event_json);
  return g_test_run ();
}
