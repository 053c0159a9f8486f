/* The schedule engine (see sched-schedules.h): firing slots, starting
 * runs within the limits, following their jobs, retrying, pruning. The
 * RPC handlers and the checks of a schedule are in sched-schedule-rpc.c.
 */
#include "sched-schedules-private.h"

#include <string.h>

#include "sched-repos.h"
#include "stor-repo.h"

#define TICK_MS 1000
/* A run whose VM's host is down waits this long after its slot, trying
 * every HOST_RETRY_S, before that counts as a failure. */
#define HOST_GRACE_MS 60000
#define HOST_RETRY_S 5
/* Attempts of one slot of one VM before the slot is given up. */
#define MAX_ATTEMPTS 3

/* One run started: its job, and the run it came from (owned). */
typedef struct
{
  char *job_id;
  SchedDrRun *run;
} Started;

static void
started_free (Started *st)
{
  g_free (st->job_id);
  sched_dr_run_free (st->run);
  g_free (st);
}

static char *
vm_key (const char *schedule, const char *vm)
{
  return g_strconcat (schedule, "/", vm, NULL);
}

const Drover__V1__ScheduleVm *
sched_schedule_vm_state (SchedSchedules *s, const char *schedule,
                         const char *vm)
{
  g_autofree char *key = vm_key (schedule, vm);

  return g_hash_table_lookup (s->vm_states, key);
}

Drover__V1__ScheduleVm *
sched_schedule_vm_state_ensure (SchedSchedules *s, const char *schedule,
                                const char *vm)
{
  char *key = vm_key (schedule, vm);
  Drover__V1__ScheduleVm *st = g_hash_table_lookup (s->vm_states, key);

  if (st)
    {
      g_free (key);
      return st;
    }
  st = g_new0 (Drover__V1__ScheduleVm, 1);
  drover__v1__schedule_vm__init (st);
  st->schedule = g_strdup (schedule);
  st->vm = g_strdup (vm);
  /* Strings the message owns, so that setters may free them. */
  st->last_good = g_strdup ("");
  st->last_error = g_strdup ("");
  st->drill_vm = g_strdup ("");
  st->last_drill = g_strdup ("");
  st->last_drill_backup = g_strdup ("");
  st->last_drill_error = g_strdup ("");
  g_hash_table_insert (s->vm_states, key, st);
  return st;
}

void
sched_schedule_vm_state_save (SchedSchedules *s,
                              const Drover__V1__ScheduleVm *st)
{
  g_autoptr (SchedScheduleVmRow) row = sched_schedule_vm_row_new (st);
  g_autoptr (GError) error = NULL;

  if (!sched_store_put_schedule_vm (s->svc->store, row, &error))
    drover_warning (st->vm, NULL, NULL,
                    "schedule %s: cannot store what it keeps of the VM: %s",
                    st->schedule, error->message);
}

void
sched_schedule_set_str (char **field, const char *value)
{
  if (*field != protobuf_c_empty_string)
    g_free (*field);
  *field = g_strdup (value ? value : "");
}

/* Counts a run of SCHEDULE for VM, and keeps it in the store: OK resets
 * its failures in a row and, when GOOD names the copy it made (taken at
 * GOOD_MS), makes that the newest good one. */
static void
note_vm_result (SchedSchedules *s, const char *schedule, const char *vm,
                gboolean ok, const char *error_msg, const char *good,
                gint64 good_ms)
{
  Drover__V1__ScheduleVm *st = sched_schedule_vm_state_ensure (s, schedule, vm);

  if (ok)
    {
      st->failures_in_row = 0;
      sched_schedule_set_str (&st->last_error, NULL);
      if (good && *good)
        {
          sched_schedule_set_str (&st->last_good, good);
          st->last_good_ms = good_ms;
          st->good_since_drill++;
        }
    }
  else
    {
      st->failures_in_row++;
      sched_schedule_set_str (&st->last_error, error_msg);
    }
  sched_schedule_vm_state_save (s, st);
}

void
sched_schedule_forget_vms (SchedSchedules *s, const char *schedule)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *prefix = g_strconcat (schedule, "/", NULL);
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init (&it, s->vm_states);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (g_str_has_prefix (key, prefix))
      {
        if (!sched_store_delete_schedule_vm (s->svc->store, key, &error))
          {
            drover_warning (NULL, NULL, NULL,
                            "schedule %s: cannot forget its runs of %s: %s",
                            schedule, (const char *)key + strlen (prefix),
                            error->message);
            g_clear_error (&error);
          }
        g_hash_table_iter_remove (&it);
      }
}

SchedSchedules *
sched_schedules_new (SchedService *svc, guint per_host, guint per_repo)
{
  SchedSchedules *s = g_new0 (SchedSchedules, 1);
  SchedDrLimits limits
      = { per_host ? per_host : SCHED_SCHEDULES_DEFAULT_PER_HOST,
          per_repo ? per_repo : SCHED_SCHEDULES_DEFAULT_PER_REPO };

  s->svc = svc;
  s->queue = sched_dr_queue_new (&limits);
  s->started = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                      (GDestroyNotify)started_free);
  s->prunes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                     (GDestroyNotify)g_ptr_array_unref);
  s->vm_states
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, proto_msg_free);
  s->drills = sched_drills_new_table ();
  s->tz = g_time_zone_new_local ();
  return s;
}

void
sched_schedules_stop (SchedSchedules *s)
{
  if (s->tick)
    {
      g_source_destroy (s->tick);
      g_clear_pointer (&s->tick, g_source_unref);
    }
}

void
sched_schedules_free (SchedSchedules *s)
{
  if (!s)
    return;
  sched_schedules_stop (s);
  sched_dr_queue_free (s->queue);
  g_hash_table_destroy (s->started);
  g_hash_table_destroy (s->prunes);
  sched_drills_free_table (s->drills);
  g_hash_table_destroy (s->vm_states);
  g_time_zone_unref (s->tz);
  g_free (s);
}

gint64
sched_schedules_now_ms (SchedSchedules *s)
{
  return sched_registry_now (s->svc->registry);
}

gint64
sched_schedule_next_slot (SchedSchedules *s, const Drover__V1__Schedule *spec,
                          gint64 after_ms)
{
  g_autoptr (SchedCalendar) cal = NULL;
  gint64 t;

  if (spec->every_s > 0)
    {
      /* Slots on a grid from the schedule's creation: the same slots
       * whatever the scheduler's restarts. */
      gint64 period = spec->every_s * 1000;
      gint64 k = (after_ms - spec->created_ms) / period + 1;

      return spec->created_ms + MAX (k, 1) * period;
    }
  cal = sched_calendar_parse (spec->at, NULL);
  t = cal ? sched_calendar_next (cal, after_ms / 1000, s->tz) : -1;
  return t < 0 ? 0 : t * 1000;
}

void
sched_schedule_set_error (Drover__V1__Schedule *spec, const char *text)
{
  /* An unpacked message's empty strings are protobuf-c's shared one,
   * never to be freed. */
  if (spec->last_error != NULL
      && spec->last_error != (char *)protobuf_c_empty_string)
    g_free (spec->last_error);
  spec->last_error = g_strdup (text ? text : "");
}

gboolean
sched_schedule_matches (const Drover__V1__Schedule *spec, const SchedVm *vm)
{
  if (vm->template)
    return FALSE;
  for (gsize i = 0; i < spec->n_select; i++)
    {
      const char *sel = spec->select[i];

      if (g_str_has_prefix (sel, "host:"))
        {
          if (strcmp (sel + 5, vm->host) == 0)
            return TRUE;
        }
      else if (g_str_has_prefix (sel, "label:"))
        {
          if (sched_labels_has (vm->labels, sel + 6))
            return TRUE;
        }
      else if (g_str_has_prefix (sel, "group:"))
        {
          if (sched_labels_in_group (vm->labels, sel + 6))
            return TRUE;
        }
      else if (g_pattern_match_simple (sel, vm->name))
        return TRUE;
    }
  return FALSE;
}

GPtrArray *
sched_schedule_matched (SchedSchedules *s, const Drover__V1__Schedule *spec)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) vms
      = sched_store_list_vms (s->svc->store, NULL, &error);
  GPtrArray *out
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_vm_free);

  for (guint i = 0; vms && i < vms->len; i++)
    if (sched_schedule_matches (spec, vms->pdata[i])
        && !sched_drills_is_scratch (s, ((SchedVm *)vms->pdata[i])->name))
      g_ptr_array_add (out, g_steal_pointer (&vms->pdata[i]));
  return out;
}

gboolean
sched_schedule_save (SchedSchedules *s, const Drover__V1__Schedule *spec,
                     GError **error)
{
  g_autoptr (SchedScheduleRow) row = sched_schedule_row_new (spec);

  return sched_store_put_schedule (s->svc->store, row, error);
}

guint
sched_schedule_running (SchedSchedules *s, const char *name)
{
  GHashTableIter it;
  gpointer v;
  guint n = 0;

  g_hash_table_iter_init (&it, s->started);
  while (g_hash_table_iter_next (&it, NULL, &v))
    n += strcmp (((Started *)v)->run->schedule, name) == 0;
  return n;
}

void
sched_schedule_enqueue (SchedSchedules *s, const Drover__V1__Schedule *spec,
                        gint64 slot_ms, gboolean now)
{
  g_autoptr (GPtrArray) vms = sched_schedule_matched (s, spec);
  g_autofree char *repo = NULL;

  /* A backup into "the only repository" counts against that one's limit
   * (when it cannot be told, the run's own start says why). */
  if (strcmp (spec->action, SCHED_SCHEDULE_BACKUP) == 0 && !spec->repo[0])
    repo = sched_repos_resolve (s->svc, "", NULL);
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      /* A VM still waiting from the last slot runs once, for this one. */
      sched_dr_queue_add (s->queue, spec->name, vm->name, vm->host,
                          repo ? repo : spec->repo, slot_ms / 1000,
                          now ? 0 : spec->window_s, 0, -1);
    }
}

/* Fires SPEC's slot if it has come; stores the next slot first. */
static void
fire_due (SchedSchedules *s, Drover__V1__Schedule *spec, gint64 now)
{
  g_autoptr (GError) error = NULL;
  gint64 slot = spec->next_run_ms;

  if (spec->paused || slot <= 0 || slot > now)
    return;
  spec->last_slot_ms = slot;
  spec->next_run_ms = sched_schedule_next_slot (s, spec, now);
  if (!sched_schedule_save (s, spec, &error))
    {
      /* Not stored: do not fire, or a restart would fire it again. */
      drover_warning (NULL, NULL, NULL, "schedule %s: cannot store: %s",
                      spec->name, error->message);
      spec->next_run_ms = slot;
      return;
    }
  sched_schedule_enqueue (s, spec, slot, FALSE);
}

static const char *
host_now (const char *vm, gpointer data)
{
  SchedSchedules *s = data;
  g_autoptr (SchedVm) row = sched_store_get_vm (s->svc->store, vm, NULL);

  /* The name lives in the hash of hosts seen this tick. */
  if (!row)
    return NULL;
  if (!g_hash_table_contains (s->tick_hosts, row->host))
    g_hash_table_add (s->tick_hosts, g_strdup (row->host));
  return g_hash_table_lookup (s->tick_hosts, row->host);
}

static Drover__V1__Schedule *
load (SchedSchedules *s, const char *name)
{
  g_autoptr (SchedScheduleRow) row
      = sched_store_get_schedule (s->svc->store, name, NULL);

  return row ? proto_msg_copy (&row->spec->base) : NULL;
}

/* Counts RUN's end (its job JOB_ID, NULL when none started); a good one
 * made the copy GOOD at GOOD_MS (NULL: not known). NEXT says what comes
 * of a failed one (its retry, or that its slot was given up). */
static void
count_result (SchedSchedules *s, const SchedDrRun *run, const char *job_id,
              gboolean ok, const char *error_msg, const char *next,
              const char *good, gint64 good_ms)
{
  g_autoptr (Drover__V1__Schedule) spec = load (s, run->schedule);
  g_autoptr (GError) error = NULL;
  g_autofree char *job
      = job_id ? g_strdup_printf (" (job %s)", job_id) : g_strdup ("");

  sched_metrics_schedule_run (s->svc->metrics, spec ? spec->action : "", ok);
  if (ok)
    sched_events_emit (s->svc->events, SCHED_EVENT_SCHEDULE_RUN, run->vm,
                       run->host, PROTO_JOB_DONE, NULL,
                       "schedule %s: run done%s", run->schedule, job);
  else
    sched_events_emit (s->svc->events, SCHED_EVENT_SCHEDULE_RUN, run->vm,
                       run->host, PROTO_JOB_FAILED, NULL,
                       "schedule %s: run failed%s (%s): %s", run->schedule, job,
                       next ? next : "not retried", error_msg);
  if (!spec) /* deleted while it ran */
    return;
  note_vm_result (s, run->schedule, run->vm, ok, error_msg, good, good_ms);
  if (ok)
    {
      spec->runs_ok++;
      spec->failures_in_row = 0;
    }
  else
    {
      spec->runs_failed++;
      spec->failures_in_row++;
      g_autofree char *text = g_strdup_printf ("%s: %s", run->vm, error_msg);

      sched_schedule_set_error (spec, text);
    }
  if (!sched_schedule_save (s, spec, &error))
    drover_warning (NULL, NULL, NULL, "schedule %s: cannot store: %s",
                    spec->name, error->message);
}

/* RUN (its job JOB_ID, NULL when none started) failed with MSG: again
 * after a backoff, or given up. */
static void
run_failed (SchedSchedules *s, SchedDrRun *run, const char *job_id,
            const char *msg, gint64 now)
{
  g_autoptr (Drover__V1__Schedule) spec = load (s, run->schedule);
  /* A deleted schedule starts nothing new, its retries neither. */
  gboolean again = spec != NULL && run->attempts + 1 < MAX_ATTEMPTS;
  gint64 wait = sched_dr_backoff (run->attempts + 1);
  g_autofree char *next
      = spec == NULL ? g_strdup ("its schedule was deleted: not retried")
        : again
            ? g_strdup_printf ("attempt %u of %d; again in %" G_GINT64_FORMAT
                               " s unless its next slot comes first",
                               run->attempts + 1, MAX_ATTEMPTS, wait)
            : g_strdup_printf ("attempt %u of %d; the slot is given up",
                               run->attempts + 1, MAX_ATTEMPTS);

  count_result (s, run, job_id, FALSE, msg, next, NULL, 0);
  drover_warning (run->vm, job_id, NULL,
                  "schedule %s: run of slot %" G_GINT64_FORMAT
                  " failed (%s): %s",
                  run->schedule, run->slot, next, msg);
  if (again)
    sched_dr_queue_add (s->queue, run->schedule, run->vm, run->host, run->repo,
                        run->slot, 0, run->attempts + 1, now / 1000 + wait);
}

/* The snapshots of VM made by SPEC beyond its keep rules, oldest last,
 * queued for deletion. */
static void
plan_prune (SchedSchedules *s, const Drover__V1__Schedule *spec, const char *vm)
{
  g_autoptr (GPtrArray) snaps
      = sched_store_list_snapshots (s->svc->store, vm, NULL);
  g_autofree char *prefix = g_strconcat (spec->name, "-", NULL);
  g_autoptr (GArray) times = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  StorRepoKeep keep = { 0 };
  const char **plan;
  GPtrArray *doomed;

  if (!snaps || !spec->keep)
    return;
  keep = (StorRepoKeep){ spec->keep->last,    spec->keep->hourly,
                         spec->keep->daily,   spec->keep->weekly,
                         spec->keep->monthly, spec->keep->yearly };
  if (!keep.last && !keep.hourly && !keep.daily && !keep.weekly && !keep.monthly
      && !keep.yearly)
    return; /* no rules: keep everything */
  for (guint i = 0; i < snaps->len; i++)
    {
      const SchedSnapshot *snap = snaps->pdata[i];
      gint64 t = snap->created_ms / 1000;

      if (!g_str_has_prefix (snap->name, prefix))
        continue;
      g_array_append_val (times, t);
      g_ptr_array_add (names, snap->name);
    }
  plan = stor_repo_prune_plan ((const gint64 *)times->data, times->len, &keep);
  doomed = g_hash_table_lookup (s->prunes, vm);
  for (guint i = 0; i < names->len; i++)
    if (plan[i] == NULL)
      {
        if (!doomed)
          {
            doomed = g_ptr_array_new_with_free_func (g_free);
            g_hash_table_insert (s->prunes, g_strdup (vm), doomed);
          }
        if (!g_ptr_array_find_with_equal_func (doomed, names->pdata[i],
                                               g_str_equal, NULL))
          g_ptr_array_add (doomed, g_strdup (names->pdata[i]));
      }
  g_free (plan);
}

/* After a success: SPEC's keep rules on VM's copies. Backups are pruned
 * by the repository's host (sched_repos_prune_start); snapshots here. */
static void
retain (SchedSchedules *s, const Drover__V1__Schedule *spec, const char *vm)
{
  const Drover__V1__KeepRules *k = spec->keep;
  g_autoptr (GError) error = NULL;

  if (strcmp (spec->action, SCHED_SCHEDULE_SNAPSHOT) == 0)
    {
      plan_prune (s, spec, vm);
      return;
    }
  if (!k
      || !(k->last || k->hourly || k->daily || k->weekly || k->monthly
           || k->yearly))
    return; /* no rules: keep everything */
  if (!sched_repos_prune_start (s->svc, spec->repo, vm, k, &error))
    drover_warning (vm, NULL, NULL,
                    "schedule %s: cannot prune the VM's backups now: %s",
                    spec->name, error->message);
}

/* One deletion of a pruned snapshot per VM that is idle. */
static void
prune_step (SchedSchedules *s)
{
  GHashTableIter it;
  gpointer key, value;

  g_hash_table_iter_init (&it, s->prunes);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      GPtrArray *doomed = value;
      g_autoptr (GError) error = NULL;
      g_autoptr (SchedJob) job = NULL;
      gboolean exists = FALSE;

      if (doomed->len == 0)
        {
          g_hash_table_iter_remove (&it);
          continue;
        }
      if (!sched_snapshots_idle (s->svc, key))
        continue;
      /* Gone already (deleted by hand): nothing to do. */
      if (sched_snapshots_exists (s->svc, key, doomed->pdata[0], &exists)
          && exists
          && !sched_snapshots_submit_delete (s->svc, key, doomed->pdata[0],
                                             &job, &error))
        drover_warning (key, NULL, NULL,
                        "schedule retention: cannot delete snapshot %s: %s",
                        (const char *)doomed->pdata[0], error->message);
      g_ptr_array_remove_index (doomed, 0);
    }
}

/* The snapshot a run of SCHEDULE for SLOT (unix time) makes:
 * SCHEDULE-YYYYMMDD-HHMMSS, the slot in UTC. */
static char *
snapshot_name (const char *schedule, gint64 slot)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (slot);
  g_autofree char *stamp = g_date_time_format (dt, "%Y%m%d-%H%M%S");

  return g_strdup_printf ("%s-%s", schedule, stamp);
}

/* Starts RUN's job (*JOB_ID); FALSE with ERROR when it could not start.
 * TRUE with *JOB_ID NULL: the slot's copy exists already, nothing to do. */
static gboolean
start_run (SchedSchedules *s, SchedDrRun *run, char **job_id, GError **error)
{
  g_autoptr (Drover__V1__Schedule) spec = load (s, run->schedule);
  g_autofree char *name = NULL;
  g_autofree char *what = NULL;
  g_autoptr (SchedJob) job = NULL;
  gboolean exists = FALSE;

  if (!spec)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                   "schedule '%s' was deleted", run->schedule);
      return FALSE;
    }
  if (strcmp (spec->action, SCHED_SCHEDULE_BACKUP) == 0)
    {
      Drover__V1__CreateBackupRequest req
          = DROVER__V1__CREATE_BACKUP_REQUEST__INIT;

      req.vm = run->vm;
      req.repo = spec->repo;
      if (!sched_backups_create (s->svc, &req, &job, error))
        return FALSE;
      *job_id = g_strdup (job->id);
      return TRUE;
    }
  name = snapshot_name (spec->name, run->slot);
  /* A retry of a slot whose run was cut off (its agent killed) after the
   * snapshot was taken: the agent's recovery recorded it, so the slot is
   * done; no job (*JOB_ID stays NULL). */
  if (run->attempts > 0
      && sched_snapshots_exists (s->svc, run->vm, name, &exists) && exists)
    return TRUE;
  what = g_strdup_printf ("schedule %s", spec->name);
  if (!sched_snapshots_submit (s->svc, run->vm, name, FALSE, FALSE, what, &job,
                               error))
    return FALSE;
  *job_id = g_strdup (job->id);
  return TRUE;
}

/* After a good backup of VM: a drill when SPEC asks for one every so
 * many. */
static void
drill_if_due (SchedSchedules *s, const Drover__V1__Schedule *spec,
              const char *vm)
{
  const Drover__V1__ScheduleVm *st
      = sched_schedule_vm_state (s, spec->name, vm);
  g_autoptr (GError) error = NULL;

  if (spec->drill_every == 0 || st == NULL
      || st->good_since_drill < spec->drill_every
      || strcmp (spec->action, SCHED_SCHEDULE_BACKUP) != 0
      || (st->drill_vm && st->drill_vm[0]))
    return;
  if (sched_drill_begin (s, spec, vm, &error) == NULL)
    drover_warning (vm, NULL, NULL, "schedule %s: drill not started: %s",
                    spec->name, error->message);
}

/* Follows the started runs' jobs to their ends. */
static void
follow (SchedSchedules *s, gint64 now)
{
  GHashTableIter it;
  gpointer value;

  g_hash_table_iter_init (&it, s->started);
  while (g_hash_table_iter_next (&it, NULL, &value))
    {
      Started *st = value;
      g_autoptr (GError) error = NULL;
      g_autoptr (SchedJob) job
          = sched_store_get_job (s->svc->store, st->job_id, &error);
      g_autoptr (Drover__V1__Schedule) spec = NULL;
      gboolean ok;

      if (job && strcmp (job->state, PROTO_JOB_DONE) != 0
          && strcmp (job->state, PROTO_JOB_FAILED) != 0)
        continue;
      ok = job && strcmp (job->state, PROTO_JOB_DONE) == 0;
      sched_dr_queue_finished (s->queue, st->run);
      if (ok)
        {
          /* A backup's job names it; a snapshot is named after its
           * slot (start_run). */
          const Drover__V1__Backup *b
              = job->storage ? job->storage->backup : NULL;
          g_autofree char *snap
              = snapshot_name (st->run->schedule, st->run->slot);

          if (b && b->id[0])
            count_result (s, st->run, st->job_id, TRUE, NULL, NULL, b->id,
                          b->start_s * 1000);
          else
            count_result (s, st->run, st->job_id, TRUE, NULL, NULL, snap,
                          job->updated_ms);
          if ((spec = load (s, st->run->schedule)) != NULL)
            {
              retain (s, spec, st->run->vm);
              drill_if_due (s, spec, st->run->vm);
            }
        }
      else
        run_failed (s, st->run, st->job_id,
                    job ? (job->error[0] ? job->error : "the job failed")
                        : error->message,
                    now);
      g_hash_table_iter_remove (&it);
    }
}

static gboolean
tick (gpointer data)
{
  SchedSchedules *s = data;
  gint64 now = sched_schedules_now_ms (s);
  g_autoptr (GPtrArray) rows = NULL;
  g_autoptr (GPtrArray) taken = NULL;
  g_autoptr (GError) error = NULL;

  follow (s, now);
  rows = sched_store_list_schedules (s->svc->store, &error);
  for (guint i = 0; rows && i < rows->len; i++)
    fire_due (s, ((SchedScheduleRow *)rows->pdata[i])->spec, now);
  s->tick_hosts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  taken = sched_dr_queue_take_due (s->queue, now / 1000, host_now, s);
  for (guint i = 0; i < taken->len; i++)
    {
      SchedDrRun *run = g_steal_pointer (&taken->pdata[i]);
      g_autoptr (GError) start_error = NULL;
      char *job_id = NULL;

      if (!start_run (s, run, &job_id, &start_error))
        {
          sched_dr_queue_finished (s->queue, run);
          if (g_error_matches (start_error, SCHED_ERROR,
                               SCHED_ERROR_UNAVAILABLE)
              && now - run->slot * 1000 < HOST_GRACE_MS)
            {
              /* Its host is down, perhaps only for now (a scheduler that
               * has just started has not heard from the agents yet):
               * try again shortly, not counted as a failure. */
              sched_dr_queue_add (s->queue, run->schedule, run->vm, run->host,
                                  run->repo, run->slot, 0, run->attempts,
                                  now / 1000 + HOST_RETRY_S);
              sched_dr_run_free (run);
              continue;
            }
          run_failed (s, run, NULL, start_error->message, now);
          sched_dr_run_free (run);
          continue;
        }
      if (job_id == NULL)
        {
          g_autofree char *snap = snapshot_name (run->schedule, run->slot);
          g_autoptr (Drover__V1__Schedule) spec = NULL;

          sched_dr_queue_finished (s->queue, run);
          count_result (s, run, NULL, TRUE, NULL, NULL, snap, now);
          if ((spec = load (s, run->schedule)) != NULL)
            retain (s, spec, run->vm);
          sched_dr_run_free (run);
          continue;
        }
      Started *st = g_new0 (Started, 1);
      st->job_id = job_id;
      st->run = run;
      g_hash_table_replace (s->started, st->job_id, st);
    }
  g_ptr_array_set_free_func (taken, NULL);
  g_clear_pointer (&s->tick_hosts, g_hash_table_unref);
  prune_step (s);
  sched_drills_tick (s, now);
  return G_SOURCE_CONTINUE;
}

gboolean
sched_schedules_start (SchedSchedules *s, GError **error)
{
  g_autoptr (GPtrArray) rows
      = sched_store_list_schedules (s->svc->store, error);
  g_autoptr (GPtrArray) vms
      = rows ? sched_store_list_schedule_vms (s->svc->store, error) : NULL;

  if (!vms)
    return FALSE;
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedScheduleVmRow *row = vms->pdata[i];

      g_hash_table_replace (s->vm_states, g_strdup (row->key),
                            proto_msg_copy (&row->state->base));
    }
  sched_drills_recover (s);
  s->tick = g_timeout_source_new (TICK_MS);
  g_source_set_callback (s->tick, tick, s, NULL);
  g_source_attach (s->tick, s->svc->ctx);
  return TRUE;
}
