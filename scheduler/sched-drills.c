/* Restore drills (issue 16): proof that a schedule's backups restore and
 * boot. A drill of VM takes the newest backup a schedule's runs made of
 * it, restores it into a scratch VM (another host than VM's when one has
 * room), waits for the scratch VM's console to show a line matching the
 * schedule's readiness pattern, and deletes the scratch VM and its disk.
 * It records passed (with the measured recovery time: the restore's
 * start to readiness), failed (the restore failed, or no readiness in
 * time) or skipped (no host with room, no backup yet) in what the store
 * keeps of the VM's runs (ScheduleVm), `dr report` shows it.
 *
 * Timeline, one drill (every step from the schedules' one-second tick or
 * an agent's answer, main context only):
 *   begin: ScheduleVm.drill_vm = SCRATCH, stored   -> RESTORING
 *   the restore job (sched_backups_restore_new) ends
 *     done                                          -> BOOTING
 *     failed (no VM was made)                       -> end: failed
 *   BOOTING: ReadConsole of SCRATCH each second
 *     a line matches the pattern                    -> CLEANING (passed)
 *   (with the readiness "agent": PingGuestAgent of SCRATCH each second
 *     its QEMU guest agent answers guest-ping       -> CLEANING (passed))
 *     DRILL_TIMEOUT_S pass                          -> CLEANING (failed)
 *   CLEANING: DeleteVm SCRATCH (force) on its host, its record forgotten
 *                                                   -> end: drill_vm = ""
 * The scratch VM's name is stored before anything is made, so a scheduler
 * that stops mid-drill finds it at its next start and deletes it (the
 * drill then counts as failed: it did not finish). A scratch VM never
 * carries a schedule's run: sched_schedule_matched leaves drills out.
 */
#include "sched-schedules-private.h"

#include <string.h>

/* Readiness: a login prompt, unless the schedule says otherwise. */
#define DRILL_DEFAULT_READY "login:"
/* The readiness that is no pattern: the guest agent answers guest-ping. */
#define DRILL_READY_AGENT "agent"
#define DRILL_DEFAULT_TIMEOUT_S 600
/* The console's tail that is searched each time. */
#define DRILL_CONSOLE_TAIL (64 * 1024)
/* How long the drill tries to delete the scratch VM (once a tick) before
 * it gives up on it: an agent still restoring it (its scheduler stopped
 * during the drill) refuses until its restore has ended, which under
 * load takes longer than a few tries. */
#define DRILL_CLEANUP_MS (120 * 1000)
/* A drill a stopped scheduler left: how long its scratch VM may take to
 * show up in a report (an agent may finish the restore after the
 * scheduler went) before the drill takes it that there is none. */
#define DRILL_ORPHAN_GRACE_MS (30 * 1000)

typedef enum
{
  DRILL_STARTING, /* the restore is being asked for */
  DRILL_RESTORING,
  DRILL_BOOTING,
  DRILL_CLEANING,
} DrillPhase;

struct _SchedDrill
{
  SchedSchedules *s;
  char *key; /* "schedule/vm" */
  char *schedule;
  char *vm;
  char *backup;
  char *scratch;
  char *host;    /* the scratch VM's, once restored */
  char *job_id;  /* the restore's */
  GRegex *ready; /* NULL: ready when the guest agent answers */
  gint64 timeout_ms;
  gint64 started_ms;
  gint64 ready_ms; /* started_ms to readiness (passed) */
  DrillPhase phase;
  gboolean in_flight;      /* an agent call or the restore's start pending */
  gint64 cleanup_since_ms; /* the first attempt to delete the scratch VM */
  gboolean recovered;      /* left by a scheduler that stopped */
  const char *result;      /* SCHED_DRILL_* once known */
  char *error;
};

static void
drill_free (SchedDrill *d)
{
  g_free (d->key);
  g_free (d->schedule);
  g_free (d->vm);
  g_free (d->backup);
  g_free (d->scratch);
  g_free (d->host);
  g_free (d->job_id);
  g_clear_pointer (&d->ready, g_regex_unref);
  g_free (d->error);
  g_free (d);
}

void
sched_drills_free_table (GHashTable *drills)
{
  g_hash_table_destroy (drills);
}

GHashTable *
sched_drills_new_table (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                (GDestroyNotify)drill_free);
}

static gboolean
stopped (SchedSchedules *s)
{
  return s->tick == NULL || s->svc->stopped;
}

gboolean
sched_drills_is_scratch (SchedSchedules *s, const char *vm)
{
  GHashTableIter it;
  gpointer value;

  g_hash_table_iter_init (&it, s->drills);
  while (g_hash_table_iter_next (&it, NULL, &value))
    if (strcmp (((SchedDrill *)value)->scratch, vm) == 0)
      return TRUE;
  return FALSE;
}

/* The drill is over: what it found goes into the store, an event, a
 * metric and the log, and it is forgotten. */
static void
drill_end (SchedDrill *d)
{
  SchedSchedules *s = d->s;
  g_autoptr (SchedScheduleRow) schedule
      = sched_store_get_schedule (s->svc->store, d->schedule, NULL);
  gint64 now = sched_schedules_now_ms (s);
  g_autofree char *text = NULL;

  if (d->result == NULL)
    d->result = SCHED_DRILL_FAILED;
  /* A schedule deleted meanwhile keeps nothing. */
  if (schedule != NULL)
    {
      Drover__V1__ScheduleVm *st
          = sched_schedule_vm_state_ensure (s, d->schedule, d->vm);

      sched_schedule_set_str (&st->drill_vm, NULL);
      sched_schedule_set_str (&st->last_drill, d->result);
      sched_schedule_set_str (&st->last_drill_backup, d->backup);
      sched_schedule_set_str (&st->last_drill_error, d->error);
      st->last_drill_ms = now;
      st->last_drill_ready_ms
          = strcmp (d->result, SCHED_DRILL_PASSED) == 0 ? d->ready_ms : 0;
      sched_schedule_vm_state_save (s, st);
    }
  sched_metrics_schedule_drill (s->svc->metrics, d->result,
                                d->ready_ms / 1000.0);
  if (strcmp (d->result, SCHED_DRILL_PASSED) == 0)
    text = g_strdup_printf ("schedule %s: drill passed: backup %s ready in "
                            "%.1f s in scratch VM %s on host %s",
                            d->schedule, d->backup, d->ready_ms / 1000.0,
                            d->scratch, d->host ? d->host : "-");
  else
    text = g_strdup_printf ("schedule %s: drill %s: backup %s: %s", d->schedule,
                            d->result, d->backup ? d->backup : "-",
                            d->error ? d->error : "no reason recorded");
  if (strcmp (d->result, SCHED_DRILL_PASSED) == 0)
    drover_message (d->vm, d->job_id, NULL, "%s", text);
  else
    drover_warning (d->vm, d->job_id, NULL, "%s", text);
  sched_events_emit (s->svc->events, SCHED_EVENT_SCHEDULE_DRILL, d->vm, d->host,
                     d->result, NULL, "%s", text);
  g_hash_table_remove (s->drills, d->key);
}

/* Sets the drill's outcome once: the first says what happened. */
static void
drill_outcome (SchedDrill *d, const char *result, const char *error)
{
  if (d->result != NULL)
    return;
  d->result = result;
  g_free (d->error);
  d->error = g_strdup (error);
}

/* The scratch VM goes: from the next tick on. */
static void
drill_clean (SchedDrill *d, const char *result, const char *error)
{
  drill_outcome (d, result, error);
  d->phase = DRILL_CLEANING;
}

static void
restore_started (SchedJob *job, const GError *error, gpointer user_data)
{
  SchedDrill *d = user_data;

  d->in_flight = FALSE;
  if (stopped (d->s))
    return; /* the next start cleans up (drill_vm is stored) */
  if (job == NULL)
    {
      g_autofree char *msg = g_strdup_printf (
          "restore: %s", error ? error->message : "did not start");

      /* No host has room for the scratch VM: not the backup's fault. */
      drill_outcome (
          d,
          g_error_matches (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY)
              ? SCHED_DRILL_SKIPPED
              : SCHED_DRILL_FAILED,
          msg);
      /* Nothing was made (a restore that does not start reserves
       * nothing), but a record may be: CLEANING checks. */
      d->phase = DRILL_CLEANING;
      return;
    }
  g_free (d->job_id);
  d->job_id = g_strdup (job->id);
  d->phase = DRILL_RESTORING;
}

SchedDrill *
sched_drill_begin (SchedSchedules *s, const Drover__V1__Schedule *spec,
                   const char *vm, GError **error)
{
  g_autofree char *key = g_strconcat (spec->name, "/", vm, NULL);
  Drover__V1__ScheduleVm *st;
  g_autoptr (SchedVm) row = NULL;
  g_autoptr (GRegex) ready = NULL;
  SchedDrill *d;
  guint32 tag = g_random_int ();

  if (strcmp (spec->action, SCHED_SCHEDULE_BACKUP) != 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "schedule '%s' takes snapshots: drills restore backups",
                   spec->name);
      return NULL;
    }
  if ((d = g_hash_table_lookup (s->drills, key)) != NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_EXISTS,
                   "a drill of VM '%s' is under way (scratch VM %s)", vm,
                   d->scratch);
      return NULL;
    }
  st = (Drover__V1__ScheduleVm *)sched_schedule_vm_state (s, spec->name, vm);
  if (st == NULL || st->last_good[0] == '\0')
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "schedule '%s' has made no backup of VM '%s' yet",
                   spec->name, vm);
      return NULL;
    }
  if (strcmp (spec->drill_ready, DRILL_READY_AGENT) != 0)
    {
      ready = g_regex_new (spec->drill_ready[0] ? spec->drill_ready
                                                : DRILL_DEFAULT_READY,
                           G_REGEX_MULTILINE, 0, error);
      if (ready == NULL)
        return NULL;
    }
  row = sched_store_get_vm (s->svc->store, vm, NULL);

  d = g_new0 (SchedDrill, 1);
  d->s = s;
  d->key = g_steal_pointer (&key);
  d->schedule = g_strdup (spec->name);
  d->vm = g_strdup (vm);
  d->backup = g_strdup (st->last_good);
  /* drill-VM-XXXXXX, within the 63 characters of a VM name. */
  d->scratch = g_strdup_printf ("drill-%.48s-%06x", vm, tag & 0xffffff);
  d->ready = g_steal_pointer (&ready);
  d->timeout_ms = 1000
                  * (spec->drill_timeout_s > 0 ? spec->drill_timeout_s
                                               : DRILL_DEFAULT_TIMEOUT_S);
  d->started_ms = sched_schedules_now_ms (s);
  d->phase = DRILL_STARTING;
  g_hash_table_insert (s->drills, d->key, d);

  /* Stored before anything is made: a scheduler that stops now finds it
   * at its next start. */
  st->good_since_drill = 0;
  sched_schedule_set_str (&st->drill_vm, d->scratch);
  sched_schedule_vm_state_save (s, st);
  drover_message (vm, NULL, NULL,
                  "schedule %s: drill: restoring backup %s as scratch VM %s",
                  spec->name, d->backup, d->scratch);

  d->in_flight = TRUE;
  {
    g_autoptr (GError) local = NULL;

    if (!sched_backups_restore_new (s->svc, spec->repo, d->backup, d->scratch,
                                    row ? row->host : NULL, restore_started, d,
                                    &local))
      {
        /* Nothing was asked: the drill ends here, failed, and says why. */
        d->in_flight = FALSE;
        g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                     "restore: %s", local->message);
        drill_outcome (d, SCHED_DRILL_FAILED, (*error)->message);
        drill_end (d);
        return NULL;
      }
  }
  return d;
}

/* --- BOOTING ------------------------------------------------------------ */

static void
console_read (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  SchedDrill *d = user_data;
  const Drover__V1__ConsoleChunk *chunk = (const void *)reply;
  g_autofree char *text = NULL;

  d->in_flight = FALSE;
  if (stopped (d->s) || d->phase != DRILL_BOOTING)
    return;
  if (error != NULL)
    return; /* asked again at the next tick, until the timeout */
  text = chunk->data.len
             ? g_strndup ((const char *)chunk->data.data, chunk->data.len)
             : g_strdup ("");
  if (g_regex_match (d->ready, text, 0, NULL))
    {
      d->ready_ms = sched_schedules_now_ms (d->s) - d->started_ms;
      drill_clean (d, SCHED_DRILL_PASSED, NULL);
    }
}

static void
agent_pinged (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  SchedDrill *d = user_data;

  d->in_flight = FALSE;
  if (stopped (d->s) || d->phase != DRILL_BOOTING)
    return;
  if (error != NULL)
    return; /* not yet: asked again at the next tick, until the timeout */
  d->ready_ms = sched_schedules_now_ms (d->s) - d->started_ms;
  drill_clean (d, SCHED_DRILL_PASSED, NULL);
}

static void
boot_step (SchedDrill *d, gint64 now)
{
  Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  ProtoClient *client;

  if (now - d->started_ms > d->timeout_ms)
    {
      g_autofree char *msg
          = d->ready ? g_strdup_printf (
                "scratch VM %s showed no line matching /%s/ within "
                "%" G_GINT64_FORMAT " s of the restore's start",
                d->scratch, g_regex_get_pattern (d->ready),
                d->timeout_ms / 1000)
                     : g_strdup_printf (
                         "the guest agent of scratch VM %s did not answer "
                         "within %" G_GINT64_FORMAT " s of the restore's start",
                         d->scratch, d->timeout_ms / 1000);

      drill_clean (d, SCHED_DRILL_FAILED, msg);
      return;
    }
  client = sched_agents_client_up (d->s->svc->agents, d->host, NULL, &error);
  if (client == NULL)
    return; /* its host may come back before the timeout */
  if (d->ready == NULL)
    {
      Drover__V1__VmRequest ping = DROVER__V1__VM_REQUEST__INIT;

      ping.name = d->scratch;
      d->in_flight = TRUE;
      sched_agents_call (d->s->svc->agents, client,
                         DROVER_AGENT_METHOD_PING_GUEST_AGENT, &ping.base,
                         SCHED_AGENT_CALL_TIMEOUT_MS, agent_pinged, d);
      return;
    }
  req.name = d->scratch;
  req.offset = -DRILL_CONSOLE_TAIL;
  req.max_bytes = DRILL_CONSOLE_TAIL;
  d->in_flight = TRUE;
  sched_agents_call (d->s->svc->agents, client,
                     DROVER_AGENT_METHOD_READ_CONSOLE, &req.base,
                     SCHED_AGENT_CALL_TIMEOUT_MS, console_read, d);
}

/* --- CLEANING ----------------------------------------------------------- */

/* The scratch VM is gone from its host (or never was): its record goes. */
static void
forget_scratch (SchedDrill *d, const char *how)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) row
      = sched_store_get_vm (d->s->svc->store, d->scratch, NULL);

  if (row != NULL
      && !sched_vm_forget (d->s->svc, d->scratch, NULL, how, &error))
    {
      g_autofree char *msg = g_strdup_printf (
          "%s%sthe record of scratch VM %s stays: %s", d->error ? d->error : "",
          d->error ? "; " : "", d->scratch, error->message);

      g_free (d->error);
      d->error = g_steal_pointer (&msg);
    }
  drill_end (d);
}

static void
deleted (const ProtobufCMessage *reply, const GError *error, gpointer user_data)
{
  SchedDrill *d = user_data;

  (void)reply;
  d->in_flight = FALSE;
  if (stopped (d->s))
    return;
  if (error == NULL
      || g_error_matches (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND))
    {
      forget_scratch (d, "the end of a restore drill");
      return;
    }
  if (sched_schedules_now_ms (d->s) - d->cleanup_since_ms >= DRILL_CLEANUP_MS)
    {
      g_autofree char *msg = g_strdup_printf (
          "%s%sscratch VM %s could not be deleted on host %s: %s "
          "(droverctl vm delete %s --force)",
          d->error ? d->error : "", d->error ? "; " : "", d->scratch, d->host,
          error->message, d->scratch);

      g_free (d->error);
      d->error = g_steal_pointer (&msg);
      drill_end (d);
    }
}

static void
clean_step (SchedDrill *d, gint64 now)
{
  Drover__V1__DeleteVmRequest req = DROVER__V1__DELETE_VM_REQUEST__INIT;
  g_autoptr (SchedVm) row
      = sched_store_get_vm (d->s->svc->store, d->scratch, NULL);
  g_autoptr (GError) error = NULL;
  ProtoClient *client;

  if (row == NULL)
    {
      /* Nothing was made, or it is gone already; unless an agent may
       * still be finishing the restore a stopped scheduler asked for. */
      if (d->recovered && now - d->started_ms < DRILL_ORPHAN_GRACE_MS)
        return;
      drill_end (d);
      return;
    }
  /* The restore job may still hold it (creating): wait for its end. */
  if (strcmp (row->state, PROTO_VM_CREATING) == 0)
    return;
  g_free (d->host);
  d->host = g_strdup (row->host);
  client = sched_agents_client_up (d->s->svc->agents, d->host, NULL, &error);
  if (client == NULL)
    return; /* tried again at the next tick */
  req.name = d->scratch;
  req.force = TRUE;
  if (d->cleanup_since_ms == 0)
    d->cleanup_since_ms = now;
  d->in_flight = TRUE;
  sched_agents_call (
      d->s->svc->agents, client, DROVER_AGENT_METHOD_DELETE_VM, &req.base,
      SCHED_AGENT_CALL_TIMEOUT_MS + SCHED_AGENT_STOP_EXTRA_MS, deleted, d);
}

/* --- the tick ----------------------------------------------------------- */

static void
restore_step (SchedDrill *d)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job
      = sched_store_get_job (d->s->svc->store, d->job_id, &error);
  g_autoptr (SchedVm) row = NULL;

  if (job == NULL)
    {
      drill_clean (d, SCHED_DRILL_FAILED, error->message);
      return;
    }
  if (strcmp (job->state, PROTO_JOB_FAILED) == 0)
    {
      g_autofree char *msg = g_strdup_printf (
          "restore: %s", job->error[0] ? job->error : "the job failed");

      drill_clean (d, SCHED_DRILL_FAILED, msg);
      return;
    }
  if (strcmp (job->state, PROTO_JOB_DONE) != 0)
    return;
  row = sched_store_get_vm (d->s->svc->store, d->scratch, NULL);
  if (row == NULL)
    {
      drill_clean (d, SCHED_DRILL_FAILED,
                   "the restored scratch VM has no record");
      return;
    }
  g_free (d->host);
  d->host = g_strdup (row->host);
  d->phase = DRILL_BOOTING;
}

/* TABLE's values, borrowed, in an array of their own. */
static GPtrArray *
values (GHashTable *table)
{
  GPtrArray *out = g_ptr_array_sized_new (g_hash_table_size (table));
  GHashTableIter it;
  gpointer value;

  g_hash_table_iter_init (&it, table);
  while (g_hash_table_iter_next (&it, NULL, &value))
    g_ptr_array_add (out, value);
  return out;
}

void
sched_drills_tick (SchedSchedules *s, gint64 now)
{
  g_autoptr (GPtrArray) all = values (s->drills);

  /* drill_end removes from the table: walk a copy. */
  for (guint i = 0; i < all->len; i++)
    {
      SchedDrill *d = all->pdata[i];

      if (d->in_flight)
        continue;
      switch (d->phase)
        {
        case DRILL_STARTING:
          break;
        case DRILL_RESTORING:
          restore_step (d);
          break;
        case DRILL_BOOTING:
          boot_step (d, now);
          break;
        case DRILL_CLEANING:
          clean_step (d, now);
          break;
        }
    }
}

void
sched_drills_recover (SchedSchedules *s)
{
  g_autoptr (GPtrArray) states = values (s->vm_states);

  for (guint i = 0; i < states->len; i++)
    {
      const Drover__V1__ScheduleVm *st = states->pdata[i];
      SchedDrill *d;

      if (st->drill_vm == NULL || st->drill_vm[0] == '\0')
        continue;
      d = g_new0 (SchedDrill, 1);
      d->s = s;
      d->key = g_strconcat (st->schedule, "/", st->vm, NULL);
      d->schedule = g_strdup (st->schedule);
      d->vm = g_strdup (st->vm);
      d->backup = g_strdup (st->last_good);
      d->scratch = g_strdup (st->drill_vm);
      d->started_ms = sched_schedules_now_ms (s);
      d->result = SCHED_DRILL_FAILED;
      d->recovered = TRUE;
      d->error = g_strdup ("the scheduler stopped during the drill (its "
                           "scratch VM is deleted at the next start)");
      d->phase = DRILL_CLEANING;
      g_hash_table_replace (s->drills, d->key, d);
    }
}

/* --- DrillSchedule ------------------------------------------------------ */

void
sched_schedules_handle_drill (ProtoServerCall *call,
                              const ProtobufCMessage *request,
                              gpointer user_data)
{
  SchedService *svc = user_data;
  SchedSchedules *s = svc->schedules;
  const Drover__V1__DrillScheduleRequest *req = (const void *)request;
  Drover__V1__DrillScheduleReply reply = DROVER__V1__DRILL_SCHEDULE_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedScheduleRow) row = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (proto_msg_free);

  if (!proto_name_validate ("schedule", req->name, &error)
      || (req->vm[0] != '\0' && !proto_name_validate ("VM", req->vm, &error))
      || (row = sched_store_get_schedule (svc->store, req->name, &error))
             == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  if (strcmp (row->spec->action, SCHED_SCHEDULE_BACKUP) != 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "schedule '%s' takes snapshots: drills restore "
                              "backups",
                              req->name);
      return;
    }
  if (stopped (s))
    {
      proto_server_call_fail (call, PROTO_STATUS_UNAVAILABLE,
                              "the scheduler is shutting down");
      return;
    }
  vms = sched_schedule_matched (s, row->spec);
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];
      Drover__V1__DrillStarted *one;
      g_autoptr (GError) local = NULL;
      SchedDrill *d;

      if (req->vm[0] != '\0' && strcmp (req->vm, vm->name) != 0)
        continue;
      one = g_new0 (Drover__V1__DrillStarted, 1);
      drover__v1__drill_started__init (one);
      one->vm = g_strdup (vm->name);
      d = sched_drill_begin (s, row->spec, vm->name, &local);
      if (d != NULL)
        {
          one->backup = g_strdup (d->backup);
          one->scratch_vm = g_strdup (d->scratch);
          one->message = g_strdup ("started");
        }
      else
        one->message = g_strdup (local->message);
      g_ptr_array_add (out, one);
    }
  if (req->vm[0] != '\0' && out->len == 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_NOT_FOUND,
                              "schedule '%s' does not select VM '%s'",
                              req->name, req->vm);
      return;
    }
  reply.n_drills = out->len;
  reply.drills = (Drover__V1__DrillStarted **)out->pdata;
  proto_server_call_reply (call, &reply.base);
}
