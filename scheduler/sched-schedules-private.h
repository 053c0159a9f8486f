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
/* The longest schedule name: its snapshots are NAME-YYYYMMDD-HHMMSS. */
#define SCHED_SCHEDULE_NAME_MAX 40
/* Selectors per schedule, and the length of one. */
#define SCHED_SCHEDULE_MAX_SELECT 64
#define SCHED_SCHEDULE_SELECT_MAX_LEN 128
/* The shortest period, and the default start window at most. */
#define SCHED_SCHEDULE_MIN_EVERY_S 5
#define SCHED_SCHEDULE_MAX_WINDOW_S 600
/* Restore drills: the readiness pattern's length, the timeout's range. */
#define SCHED_SCHEDULE_DRILL_READY_MAX 256
#define SCHED_SCHEDULE_DRILL_MIN_TIMEOUT_S 10
#define SCHED_SCHEDULE_DRILL_MAX_TIMEOUT_S 86400

struct _SchedSchedules
{
  SchedService *svc;      /* borrowed; owns this */
  SchedDrQueue *queue;    /* runs waiting to start */
  GHashTable *started;    /* job id (the Started's) -> Started, owned */
  GHashTable *prunes;     /* VM -> GPtrArray of snapshot names to delete */
  GHashTable *vm_states;  /* "schedule/vm" -> Drover__V1__ScheduleVm,
                           * owned: the store's schedule_vms, cached */
  GHashTable *tick_hosts; /* during a tick: host names the queue borrows */
  GHashTable *drills;     /* "schedule/vm" -> SchedDrill: restore drills
                           * under way (sched-drills.c) */
  GTimeZone *tz;          /* calendars read the local wall clock */
  GSource *tick;
};

gint64 sched_schedules_now_ms (SchedSchedules *s);
/* What is kept of VM's runs of SCHEDULE: its newest good copy and its
 * failures in a row, as stored (NULL: no run ended yet). */
const Drover__V1__ScheduleVm *sched_schedule_vm_state (SchedSchedules *s,
                                                       const char *schedule,
                                                       const char *vm);
/* The same, to change: made (empty) when there is none yet. Save it with
 * sched_schedule_vm_state_save. */
Drover__V1__ScheduleVm *sched_schedule_vm_state_ensure (SchedSchedules *s,
                                                        const char *schedule,
                                                        const char *vm);
void sched_schedule_vm_state_save (SchedSchedules *s,
                                   const Drover__V1__ScheduleVm *st);
/* Replaces the string *FIELD of a message with a copy of VALUE (NULL:
 * ""); the old one is freed unless it is protobuf-c's shared empty one. */
void sched_schedule_set_str (char **field, const char *value);
/* --- restore drills (sched-drills.c) --- */
typedef struct _SchedDrill SchedDrill;
/* The table of drills under way, for SchedSchedules.drills. */
GHashTable *sched_drills_new_table (void);
void sched_drills_free_table (GHashTable *drills);
/* Begins a drill of VM for SPEC (a backup schedule) from the newest
 * backup its runs made: the drill (owned by the table), or NULL with
 * ERROR saying why not (another drill of VM under way, no backup yet, a
 * bad readiness pattern, the restore could not be asked for: that last
 * one is recorded as a failed drill). */
SchedDrill *sched_drill_begin (SchedSchedules *s,
                               const Drover__V1__Schedule *spec, const char *vm,
                               GError **error);
/* Moves every drill on by a step (the schedules' tick). */
void sched_drills_tick (SchedSchedules *s, gint64 now);
/* At start: the drills a stopped scheduler left (ScheduleVm.drill_vm)
 * delete their scratch VMs and count as failed. */
void sched_drills_recover (SchedSchedules *s);
/* Is VM the scratch VM of a drill under way? */
gboolean sched_drills_is_scratch (SchedSchedules *s, const char *vm);
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
