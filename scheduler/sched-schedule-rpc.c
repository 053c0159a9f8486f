/* The schedules' RPCs (CreateSchedule, ListSchedules, GetSchedule,
 * SetSchedulePaused, DeleteSchedule, RunSchedule) and the checks of a
 * schedule from the wire. The engine is sched-schedules.c. */
#include "sched-schedules-private.h"

#include <string.h>

static gboolean invalid (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error_literal (error, SCHED_ERROR, SCHED_ERROR_INVALID, msg);
  return FALSE;
}

/* A selector: a VM name or glob ([a-z0-9-] with * and ?), host:NAME,
 * group:NAME (the VMs labelled group=NAME) or label:KEY=VALUE. */
static gboolean
check_selector (const char *sel, GError **error)
{
  if (strlen (sel) == 0 || strlen (sel) > SCHED_SCHEDULE_SELECT_MAX_LEN)
    return invalid (error, "a selector is 1-%d characters",
                    SCHED_SCHEDULE_SELECT_MAX_LEN);
  if (g_str_has_prefix (sel, "host:"))
    return proto_name_validate ("host", sel + 5, error);
  if (g_str_has_prefix (sel, "label:"))
    return sched_labels_check_pair (sel + 6, error);
  if (g_str_has_prefix (sel, "group:"))
    return sched_labels_check_group (sel + 6, error);
  if (strspn (sel, "abcdefghijklmnopqrstuvwxyz0123456789-*?") != strlen (sel))
    return invalid (error,
                    "selector '%s': a VM name or a glob of one (a-z, 0-9, -, "
                    "* and ?), host:NAME, group:NAME or label:KEY=VALUE",
                    sel);
  return TRUE;
}

/* Restore drills: backups only, a readiness pattern that compiles, a
 * sane timeout. */
static gboolean
check_drill (const Drover__V1__Schedule *spec, GError **error)
{
  g_autoptr (GRegex) re = NULL;
  g_autoptr (GError) local = NULL;

  if ((spec->drill_every || spec->drill_ready[0] || spec->drill_timeout_s)
      && strcmp (spec->action, SCHED_SCHEDULE_BACKUP) != 0)
    {
      invalid (error,
               "schedule '%s': drills restore backups: --drill-every, "
               "--drill-ready and --drill-timeout need --action backup",
               spec->name);
      return FALSE;
    }
  if (strlen (spec->drill_ready) > SCHED_SCHEDULE_DRILL_READY_MAX)
    {
      invalid (error,
               "schedule '%s': the readiness pattern is longer than %d "
               "characters",
               spec->name, SCHED_SCHEDULE_DRILL_READY_MAX);
      return FALSE;
    }
  if (spec->drill_ready[0]
      && (re = g_regex_new (spec->drill_ready, G_REGEX_MULTILINE, 0, &local))
             == NULL)
    {
      invalid (error, "schedule '%s': readiness pattern '%s': %s", spec->name,
               spec->drill_ready, local->message);
      return FALSE;
    }
  if (spec->drill_timeout_s != 0
      && (spec->drill_timeout_s < SCHED_SCHEDULE_DRILL_MIN_TIMEOUT_S
          || spec->drill_timeout_s > SCHED_SCHEDULE_DRILL_MAX_TIMEOUT_S))
    {
      invalid (error,
               "schedule '%s': the drill timeout is %d s to %d s, not "
               "%" G_GINT64_FORMAT " s",
               spec->name, SCHED_SCHEDULE_DRILL_MIN_TIMEOUT_S,
               SCHED_SCHEDULE_DRILL_MAX_TIMEOUT_S, spec->drill_timeout_s);
      return FALSE;
    }
  return TRUE;
}

Drover__V1__Schedule *
sched_schedule_check (const Drover__V1__Schedule *spec, GError **error)
{
  g_autoptr (Drover__V1__Schedule) out = NULL;
  gint64 period_s;

  if (!proto_name_validate ("schedule", spec->name, error))
    return NULL;
  if (strlen (spec->name) > SCHED_SCHEDULE_NAME_MAX)
    {
      invalid (error, "schedule name '%s' is longer than %d characters",
               spec->name, SCHED_SCHEDULE_NAME_MAX);
      return NULL;
    }
  if (spec->n_select == 0 || spec->n_select > SCHED_SCHEDULE_MAX_SELECT)
    {
      invalid (error, "schedule '%s': give 1-%d selectors (--select)",
               spec->name, SCHED_SCHEDULE_MAX_SELECT);
      return NULL;
    }
  for (gsize i = 0; i < spec->n_select; i++)
    if (!check_selector (spec->select[i], error))
      return NULL;
  if (strcmp (spec->action, SCHED_SCHEDULE_SNAPSHOT) != 0
      && strcmp (spec->action, SCHED_SCHEDULE_BACKUP) != 0)
    {
      invalid (error, "schedule '%s': action '%s' is not snapshot or backup",
               spec->name, spec->action);
      return NULL;
    }
  if ((spec->every_s > 0) == (spec->at[0] != '\0'))
    {
      invalid (error, "schedule '%s': give exactly one of --every and --at",
               spec->name);
      return NULL;
    }
  if (spec->every_s < 0
      || (spec->every_s > 0 && spec->every_s < SCHED_SCHEDULE_MIN_EVERY_S))
    {
      invalid (error, "schedule '%s': --every is at least %ds", spec->name,
               SCHED_SCHEDULE_MIN_EVERY_S);
      return NULL;
    }
  if (spec->at[0])
    {
      g_autoptr (SchedCalendar) cal = sched_calendar_parse (spec->at, error);
      g_autoptr (GTimeZone) tz = g_time_zone_new_local ();
      gint64 now = g_get_real_time () / G_USEC_PER_SEC, a, b;

      if (!cal)
        {
          g_set_error_literal (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                               (*error)->message);
          return NULL;
        }
      a = sched_calendar_next (cal, now, tz);
      b = a > 0 ? sched_calendar_next (cal, a, tz) : -1;
      if (a < 0)
        {
          invalid (error, "schedule '%s': calendar '%s' never fires",
                   spec->name, spec->at);
          return NULL;
        }
      period_s = b > a ? b - a : 86400;
    }
  else
    period_s = spec->every_s;
  if (spec->repo[0] && strcmp (spec->action, SCHED_SCHEDULE_BACKUP) != 0)
    {
      invalid (error, "schedule '%s': --repo is for backups", spec->name);
      return NULL;
    }
  if (spec->repo[0] && !proto_name_validate ("repository", spec->repo, error))
    return NULL;
  if (spec->rpo_s < 0 || spec->window_s < 0 || spec->window_s > period_s)
    {
      invalid (error,
               "schedule '%s': the RPO and the window are positive, the "
               "window at most one period",
               spec->name);
      return NULL;
    }
  if (!check_drill (spec, error))
    return NULL;
  out = proto_msg_copy (&spec->base);
  if (!out->keep)
    {
      out->keep = g_new0 (Drover__V1__KeepRules, 1);
      drover__v1__keep_rules__init (out->keep);
    }
  if (out->window_s == 0)
    out->window_s = MIN (period_s / 4, SCHED_SCHEDULE_MAX_WINDOW_S);
  if (out->rpo_s == 0)
    out->rpo_s = 2 * period_s;
  /* What the scheduler keeps is its own. */
  out->paused = spec->paused;
  out->next_run_ms = out->last_slot_ms = 0;
  out->runs_ok = out->runs_failed = out->failures_in_row = 0;
  sched_schedule_set_error (out, NULL);
  return g_steal_pointer (&out);
}

/* SPEC as a reply: with the VMs it selects and its running jobs. */
static void
reply_schedule (ProtoServerCall *call, SchedSchedules *s,
                Drover__V1__Schedule *spec)
{
  g_autoptr (GPtrArray) vms = sched_schedule_matched (s, spec);

  for (gsize i = 0; i < spec->n_matched; i++)
    g_free (spec->matched[i]);
  g_free (spec->matched);
  spec->n_matched = vms->len;
  spec->matched = g_new0 (char *, vms->len + 1);
  for (guint i = 0; i < vms->len; i++)
    spec->matched[i] = g_strdup (((SchedVm *)vms->pdata[i])->name);
  spec->running = sched_schedule_running (s, spec->name);
  proto_server_call_reply (call, &spec->base);
}

static Drover__V1__Schedule *
get (SchedService *svc, const char *name, GError **error)
{
  g_autoptr (SchedScheduleRow) row = NULL;

  if (!proto_name_validate ("schedule", name, error))
    return NULL;
  row = sched_store_get_schedule (svc->store, name, error);
  return row ? proto_msg_copy (&row->spec->base) : NULL;
}

void
sched_schedules_handle_create (ProtoServerCall *call,
                               const ProtobufCMessage *request,
                               gpointer user_data)
{
  SchedService *svc = user_data;
  SchedSchedules *s = svc->schedules;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Schedule) spec
      = sched_schedule_check ((const void *)request, &error);
  g_autoptr (SchedScheduleRow) old = NULL;
  gint64 now = sched_schedules_now_ms (s);

  if (spec && (old = sched_store_get_schedule (svc->store, spec->name, NULL)))
    g_set_error (&error, SCHED_ERROR, SCHED_ERROR_EXISTS,
                 "schedule '%s' exists", spec->name);
  if (error)
    {
      sched_call_fail (call, error);
      return;
    }
  spec->created_ms = now;
  spec->next_run_ms = sched_schedule_next_slot (s, spec, now);
  if (!sched_schedule_save (s, spec, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  sched_events_emit (svc->events, SCHED_EVENT_SCHEDULE_CREATED, NULL, NULL,
                     NULL, NULL, "schedule %s created: %s of %zu selector(s)",
                     spec->name, spec->action, spec->n_select);
  reply_schedule (call, s, spec);
}

void
sched_schedules_handle_list (ProtoServerCall *call,
                             const ProtobufCMessage *request,
                             gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) rows = sched_store_list_schedules (svc->store, &error);
  Drover__V1__ListSchedulesReply reply = DROVER__V1__LIST_SCHEDULES_REPLY__INIT;
  g_autoptr (GPtrArray) specs = NULL;

  if (!rows)
    {
      sched_call_fail (call, error);
      return;
    }
  specs = g_ptr_array_new_with_free_func (proto_msg_free);
  for (guint i = 0; i < rows->len; i++)
    {
      Drover__V1__Schedule *spec
          = proto_msg_copy (&((SchedScheduleRow *)rows->pdata[i])->spec->base);
      g_autoptr (GPtrArray) vms = sched_schedule_matched (svc->schedules, spec);

      spec->n_matched = vms->len;
      spec->matched = g_new0 (char *, vms->len + 1);
      for (guint j = 0; j < vms->len; j++)
        spec->matched[j] = g_strdup (((SchedVm *)vms->pdata[j])->name);
      spec->running = sched_schedule_running (svc->schedules, spec->name);
      g_ptr_array_add (specs, spec);
    }
  reply.n_schedules = specs->len;
  reply.schedules = (Drover__V1__Schedule **)specs->pdata;
  proto_server_call_reply (call, &reply.base);
}

void
sched_schedules_handle_get (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Schedule) spec
      = get (svc, ((const Drover__V1__ScheduleRequest *)request)->name, &error);

  if (!spec)
    sched_call_fail (call, error);
  else
    reply_schedule (call, svc->schedules, spec);
}

void
sched_schedules_handle_pause (ProtoServerCall *call,
                              const ProtobufCMessage *request,
                              gpointer user_data)
{
  SchedService *svc = user_data;
  SchedSchedules *s = svc->schedules;
  const Drover__V1__SetSchedulePausedRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Schedule) spec = get (svc, req->name, &error);

  if (spec && spec->paused != req->paused)
    {
      spec->paused = req->paused;
      /* Resumed: from the next slot on, not the ones missed meanwhile. */
      if (!spec->paused)
        spec->next_run_ms
            = sched_schedule_next_slot (s, spec, sched_schedules_now_ms (s));
      if (sched_schedule_save (s, spec, &error) && spec->paused)
        sched_dr_queue_remove (s->queue, spec->name, NULL);
    }
  if (error)
    sched_call_fail (call, error);
  else
    reply_schedule (call, s, spec);
}

void
sched_schedules_handle_delete (ProtoServerCall *call,
                               const ProtobufCMessage *request,
                               gpointer user_data)
{
  SchedService *svc = user_data;
  const char *name = ((const Drover__V1__ScheduleRequest *)request)->name;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Schedule) spec = get (svc, name, &error);
  Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;

  /* Its queued runs go; its running jobs finish as jobs. */
  if (!spec || !sched_store_delete_schedule (svc->store, name, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  sched_dr_queue_remove (svc->schedules->queue, name, NULL);
  sched_schedule_forget_vms (svc->schedules, name);
  sched_events_emit (svc->events, SCHED_EVENT_SCHEDULE_DELETED, NULL, NULL,
                     NULL, NULL, "schedule %s deleted", name);
  proto_server_call_reply (call, &empty.base);
}

void
sched_schedules_handle_run (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  SchedSchedules *s = svc->schedules;
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Schedule) spec
      = get (svc, ((const Drover__V1__ScheduleRequest *)request)->name, &error);

  if (!spec)
    {
      sched_call_fail (call, error);
      return;
    }
  /* Now, once, whatever its slots; a run already queued is replaced. */
  sched_schedule_enqueue (s, spec, sched_schedules_now_ms (s) / 1000 * 1000,
                          TRUE);
  reply_schedule (call, s, spec);
}
