/* GetDrReport (droverctl dr report): for each schedule and each VM it
 * selects, the newest copy the schedule made and its age against the
 * schedule's RPO. A VM whose host is down is "rpo-at-risk" (its copies
 * may be fine; the next ones cannot be made), one without any copy
 * "never", one whose newest copy is older than the RPO "outside-rpo".
 * A snapshot schedule's newest copy is read from the store's snapshots,
 * a backup schedule's from what its runs recorded (schedule_vms). */
#include "sched-schedules-private.h"

#include <string.h>

#define DR_OK "ok"
#define DR_OUTSIDE "outside-rpo"
#define DR_AT_RISK "rpo-at-risk"
#define DR_NEVER "never"

/* The newest snapshot of VM that SCHEDULE made: its time (0: none). */
static gint64
newest_copy (SchedSchedules *s, const char *schedule, const char *vm,
             char **name)
{
  g_autoptr (GPtrArray) snaps
      = sched_store_list_snapshots (s->svc->store, vm, NULL);
  g_autofree char *prefix = g_strconcat (schedule, "-", NULL);
  gint64 best = 0;

  for (guint i = 0; snaps && i < snaps->len; i++)
    {
      const SchedSnapshot *snap = snaps->pdata[i];

      if (g_str_has_prefix (snap->name, prefix) && snap->created_ms >= best)
        {
          best = snap->created_ms;
          g_free (*name);
          *name = g_strdup (snap->name);
        }
    }
  return best;
}

static Drover__V1__DrVm *
report_vm (SchedSchedules *s, const Drover__V1__Schedule *spec,
           const SchedVm *vm, gint64 now)
{
  Drover__V1__DrVm *out = g_new0 (Drover__V1__DrVm, 1);
  g_autoptr (SchedHost) host
      = sched_store_get_host (s->svc->store, vm->host, NULL);
  const Drover__V1__ScheduleVm *st
      = sched_schedule_vm_state (s, spec->name, vm->name);
  char *name = NULL;

  drover__v1__dr_vm__init (out);
  out->vm = g_strdup (vm->name);
  out->host = g_strdup (vm->host);
  out->schedule = g_strdup (spec->name);
  out->action = g_strdup (spec->action);
  out->rpo_s = spec->rpo_s;
  /* The snapshots are in the store (one deleted by hand is gone); the
   * repository's backups are not: the newest a run made is kept. */
  if (strcmp (spec->action, SCHED_SCHEDULE_BACKUP) == 0)
    {
      out->last_good_ms = st ? st->last_good_ms : 0;
      name = g_strdup (st ? st->last_good : "");
    }
  else
    out->last_good_ms = newest_copy (s, spec->name, vm->name, &name);
  out->last_good = name ? name : g_strdup ("");
  out->failures_in_row = st ? st->failures_in_row : 0;
  out->last_error = g_strdup (st ? st->last_error : "");
  out->last_drill = g_strdup (st ? st->last_drill : "");
  out->last_drill_ms = st ? st->last_drill_ms : 0;
  out->recovery_ms = st ? st->last_drill_ready_ms : 0;
  out->last_drill_error = g_strdup (st ? st->last_drill_error : "");
  out->drill_vm = g_strdup (st ? st->drill_vm : "");
  if (!host || !sched_host_check_up (host, NULL))
    out->state = g_strdup (DR_AT_RISK);
  else if (out->last_good_ms == 0)
    out->state = g_strdup (DR_NEVER);
  else if (now - out->last_good_ms > spec->rpo_s * 1000)
    out->state = g_strdup (DR_OUTSIDE);
  else
    out->state = g_strdup (DR_OK);
  return out;
}

void
sched_schedules_handle_report (ProtoServerCall *call,
                               const ProtobufCMessage *request,
                               gpointer user_data)
{
  SchedService *svc = user_data;
  SchedSchedules *s = svc->schedules;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) rows = sched_store_list_schedules (svc->store, &error);
  g_autoptr (GPtrArray) vms = g_ptr_array_new_with_free_func (proto_msg_free);
  Drover__V1__DrReport reply = DROVER__V1__DR_REPORT__INIT;
  gint64 now = sched_schedules_now_ms (s);

  if (!rows)
    {
      sched_call_fail (call, error);
      return;
    }
  for (guint i = 0; i < rows->len; i++)
    {
      const Drover__V1__Schedule *spec
          = ((SchedScheduleRow *)rows->pdata[i])->spec;
      g_autoptr (GPtrArray) matched = sched_schedule_matched (s, spec);

      for (guint j = 0; j < matched->len; j++)
        {
          Drover__V1__DrVm *v = report_vm (s, spec, matched->pdata[j], now);

          reply.outside_rpo += strcmp (v->state, DR_OK) != 0;
          g_ptr_array_add (vms, v);
        }
    }
  reply.n_vms = vms->len;
  reply.vms = (Drover__V1__DrVm **)vms->pdata;
  reply.time_ms = now;
  proto_server_call_reply (call, &reply.base);
}
