/* SchedSchedules: disaster-recovery schedules (issue 16). A schedule
 * names VMs (names, globs, host:NAME), an action (a snapshot; a backup
 * once the scheduler can start one), when it fires (every DURATION, or
 * at a calendar expression, sched-calendar.h) and what it keeps.
 *
 * Each second the engine fires the schedules whose next slot has come:
 * every VM the selectors match then gets a run in the run queue
 * (sched-dr-queue.h), due at the slot plus its stable jitter, and the
 * schedule's next slot (after now: a scheduler that was down runs a
 * missed slot once, not once per slot missed) is stored before any job
 * starts. Runs start within the limits per host, each as an ordinary job
 * (a snapshot named SCHEDULE-YYYYMMDD-HHMMSS); a run that fails is
 * retried with backoff, three times per slot. After a success the VM's
 * snapshots of that schedule beyond its keep rules (Proxmox Backup
 * Server's rules, as backup prune) are deleted, one at a time when the
 * VM is idle; nothing is pruned after a failure, so the last good one
 * always stays. Main context only.
 */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

typedef struct _SchedSchedules SchedSchedules;

/* Runs at work at once on one host, and backups into one repository,
 * unless the scheduler is told otherwise (--dr-jobs-per-host/-repo). */
#define SCHED_SCHEDULES_DEFAULT_PER_HOST 2
#define SCHED_SCHEDULES_DEFAULT_PER_REPO 4

/* PER_HOST, PER_REPO: the limits (0: the defaults above). */
SchedSchedules *sched_schedules_new (SchedService *svc, guint per_host,
                                     guint per_repo);
void sched_schedules_free (SchedSchedules *s);
/* Loads the stored schedules and starts the one-second tick. */
gboolean sched_schedules_start (SchedSchedules *s, GError **error);
/* Stops the tick; jobs already started go on as jobs. */
void sched_schedules_stop (SchedSchedules *s);

/* Checks SPEC from the wire (names, selectors, action, exactly one of
 * every_s and at, keep counts, repository), fills in the defaults
 * (window, RPO) and returns a clean copy; NULL with SCHED_ERROR_INVALID
 * saying what is wrong. */
Drover__V1__Schedule *sched_schedule_check (const Drover__V1__Schedule *spec,
                                            GError **error);

/* The handlers (user data: the SchedService). */
SchedHandler sched_schedules_handle_create;
SchedHandler sched_schedules_handle_list;
SchedHandler sched_schedules_handle_get;
SchedHandler sched_schedules_handle_pause;
SchedHandler sched_schedules_handle_delete;
SchedHandler sched_schedules_handle_run;
SchedHandler sched_schedules_handle_report;
SchedHandler sched_schedules_handle_drill;

G_END_DECLS
