/* SchedDrains: host maintenance (sched-drain.c). `droverctl host drain H`
 * takes H out of service (no new placements, never a migration's
 * destination) and live-migrates every running VM away, most memory
 * first, through the migrator and its per-host limits; the host then
 * enters maintenance. A VM that cannot move is listed with the reason and
 * the drain ends incomplete (the host stays draining) unless the operator
 * asked to stop such VMs. Stopped VMs stay defined on the host (their
 * disks are there): Drover moves running VMs only. The drain is a job of
 * kind "drain"; it survives a scheduler restart (the host's state is in
 * the store, and the job resumes). Main context only. */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

typedef struct _SchedDrains SchedDrains;

/* Drains of SVC (borrowed: store, migrator, jobs, events, agents). */
SchedDrains *sched_drains_new (SchedService *svc);
void sched_drains_free (SchedDrains *drains);

/* Picks up the drains a previous process left running (hosts draining
 * with a drain job not over; recover() leaves those jobs running) and
 * starts the timer that drives every drain. */
gboolean sched_drains_start (SchedDrains *drains, GError **error);
/* Stops the timer; the drains' jobs stay running in the store for the
 * next process. */
void sched_drains_stop (SchedDrains *drains);

/* The internal entry point for a drain (DrainHost without a gRPC call:
 * the dashboard): drains host NAME as DrainHost does, or fails with
 * ERROR having changed nothing. *JOB is a copy of the drain's job as it
 * began (caller frees). */
gboolean sched_drains_submit (SchedService *svc, const char *name,
                              gboolean stop_unmovable, SchedJob **job,
                              GError **error);

/* DrainHost and UndrainHost (user data: the SchedService). */
SchedHandler sched_drain_handle_drain;
SchedHandler sched_drain_handle_undrain;

G_END_DECLS
