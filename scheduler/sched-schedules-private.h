/* What the schedule engine (sched-schedules.c) and its RPC handlers
 * (sched-schedule-rpc.c) share. Nothing else includes this. */
#pragma once

#include "sched-calendar.h"
#include "sched-dr-queue.h"
#include "sched-schedules.h"

G_BEGIN_DECLS

PROTO_MSG_AUTOPTR (Drover__V1__Schedule)

#define SCHED_SCHEDULE_SNAPSHOT "snapshot"
#define SCHED_SCHEDULE_BACKUP "backup"
/* Runs of schedules at once on one host. */
#define SCHED_SCHEDULES_PER_HOST 2
/* The longest schedule name: its snapshots are NAME-YYYYMMDD-HHMMSS. */
#define SCHED_SCHEDULE_NAME_MAX 40
/* Selectors per schedule, and the length of one. */
#define SCHED_SCHEDULE_MAX_SELECT 64
#define SCHED_SCHEDULE_SELECT_MAX_LEN 128
/* The shortest period, and the default start window at most. */
#define SCHED_SCHEDULE_MIN_EVERY_S 5
#define SCHED_SCHEDULE_MAX_WINDOW_S 600

struct _SchedSchedules
{
  SchedService *svc;      /* borrowed; owns this */
  SchedDrQueue *queue;    /* runs waiting to start */
  GHashTable *started;    /* job id (the Started's) -> Started, owned */
  GHashTable *prunes;     /* VM -> GPtrArray of snapshot names to delete */
  GHashTable *vm_states;  /* "schedule/vm" -> Drover__V1__ScheduleVm,
                           * owned: the store's schedule_vms, cached */
  GHashTable *tick_hosts; /* during a tick: host names the queue borrows */
  GTimeZone *tz;          /* calendars read the local wall clock */
  GSource *tick;
};

gint64 sched_schedules_now_ms (SchedSchedules *s);
/* What is kept of VM's runs of SCHEDULE: its newest good copy and its
 * failures in a row, as stored (NULL: no run ended yet). */
const Drover__V1__ScheduleVm *sched_schedule_vm_state (SchedSchedules *s,
                                                       const char *schedule,
                                                       const char *vm);
/* Forgets what is kept of SCHEDULE's VMs (it was deleted). */
void sched_schedule_forget_vms (SchedSchedules *s, const char *schedule);
/* SPEC's first slot after AFTER_MS (ms); 0 when its calendar has none. */
gint64 sched_schedule_next_slot (SchedSchedules *s,
                                 const Drover__V1__Schedule *spec,
                                 gint64 after_ms);
/* Replaces SPEC's last error with TEXT (NULL: none). */
void sched_schedule_set_error (Drover__V1__Schedule *spec, const char *text);
/* Does SPEC select VM (never a template)? */
gboolean sched_schedule_matches (const Drover__V1__Schedule *spec,
                                 const SchedVm *vm);
/* The VMs (SchedVm) SPEC selects now. */
GPtrArray *sched_schedule_matched (SchedSchedules *s,
                                   const Drover__V1__Schedule *spec);
gboolean sched_schedule_save (SchedSchedules *s,
                              const Drover__V1__Schedule *spec, GError **error);
/* SPEC's runs whose jobs run now. */
guint sched_schedule_running (SchedSchedules *s, const char *name);
/* Queues a run of every VM SPEC selects for SLOT_MS: spread over its
 * window, or NOW: due at once. */
void sched_schedule_enqueue (SchedSchedules *s,
                             const Drover__V1__Schedule *spec, gint64 slot_ms,
                             gboolean now);

G_END_DECLS
