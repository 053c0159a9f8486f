/* The runs of disaster-recovery schedules waiting to start (issue 16):
 * one per schedule and VM, due at the schedule's slot plus a fixed jitter
 * that spreads a hundred VMs of one schedule over a window instead of one
 * second, started earliest first within limits of concurrent jobs per
 * host and per repository. Pure code (no clock, no I/O): the scheduler's
 * schedule engine and the schedules benchmark drive it.
 */
#pragma once

#include <glib.h>

typedef struct
{
  guint per_host; /* jobs at once on one host (0: no limit) */
  guint per_repo; /* jobs at once into one repository (0: no limit) */
} SchedDrLimits;

typedef struct
{
  char *schedule;
  char *vm;
  char *host;     /* where the VM ran when the run was queued or taken */
  char *repo;     /* "" for a snapshot */
  gint64 slot;    /* the schedule's time for this run (seconds) */
  gint64 due;     /* slot + jitter, or a retry's time */
  guint attempts; /* failures of this slot so far */
} SchedDrRun;

void sched_dr_run_free (SchedDrRun *run);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedDrRun, sched_dr_run_free)

/* A fixed offset in [0, WINDOW_S) for VM in SCHEDULE: the same every
 * time (a VM keeps its place), spread evenly across VMs. */
gint64 sched_dr_jitter (const char *schedule, const char *vm, gint64 window_s);

/* How long to wait before attempt ATTEMPTS + 1 after ATTEMPTS failures:
 * 30 s, doubling, at most an hour. */
gint64 sched_dr_backoff (guint attempts);

typedef struct _SchedDrQueue SchedDrQueue;

SchedDrQueue *sched_dr_queue_new (const SchedDrLimits *limits);
void sched_dr_queue_free (SchedDrQueue *q);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedDrQueue, sched_dr_queue_free)

/* Queues the run of SCHEDULE for VM at SLOT, due at SLOT + the VM's
 * jitter within WINDOW_S, with ATTEMPTS failures behind it (then due at
 * DUE_OVERRIDE when >= 0, e.g. a retry's time). Replaces a queued run of
 * the same schedule and VM. */
void sched_dr_queue_add (SchedDrQueue *q, const char *schedule, const char *vm,
                         const char *host, const char *repo, gint64 slot,
                         gint64 window_s, guint attempts, gint64 due_override);

/* Drops the queued run of SCHEDULE for VM (VM NULL: every run of
 * SCHEDULE). Returns how many were dropped. */
guint sched_dr_queue_remove (SchedDrQueue *q, const char *schedule,
                             const char *vm);

/* Where VM runs now (NULL: unknown, keep the queued host). */
typedef const char *(*SchedDrHostFunc) (const char *vm, gpointer data);

/* The runs due at NOW that the limits let start, earliest first, each
 * taken out of the queue and counted as running on its host (as
 * HOST_OF says now, when given) and repository until
 * sched_dr_queue_finished. A run held back by a limit stays queued and
 * goes first when a place frees. The caller owns the runs. */
GPtrArray *sched_dr_queue_take_due (SchedDrQueue *q, gint64 now,
                                    SchedDrHostFunc host_of, gpointer data);

/* RUN (taken from Q) ended: its host and repository have a place again. */
void sched_dr_queue_finished (SchedDrQueue *q, const SchedDrRun *run);

/* The earliest due time queued, -1 when empty. */
gint64 sched_dr_queue_next_due (SchedDrQueue *q);
/* The earliest due time queued that is later than AFTER, -1 if none: a
 * caller whose last take_due was at AFTER and that saw no run finish
 * since has nothing to start before then. */
gint64 sched_dr_queue_next_due_after (SchedDrQueue *q, gint64 after);
guint sched_dr_queue_length (SchedDrQueue *q);
/* Jobs counted as running on HOST / into REPO. */
guint sched_dr_queue_running_on (SchedDrQueue *q, const char *host);
guint sched_dr_queue_running_into (SchedDrQueue *q, const char *repo);
