/* SchedMigrator: the scheduler's live-migration orchestrator
 * (sched-migrator.c). The service owns one; whatever decides to move a VM
 * (MigrateVm, later the balancer, drain and DR schedules) calls
 * sched_migrator_submit. Main context only, like the rest of the service. */
#pragma once

#include "sched-store.h"

G_BEGIN_DECLS

typedef struct _SchedMigrator SchedMigrator;

/* A migrator for SVC (borrowed: its store, registry, agent clients and job
 * board). LINK_BANDWIDTH is what the cost model assumes in bytes/s;
 * MAX_OUT / MAX_IN limit concurrent migrations per host (0 = defaults,
 * SCHED_DEFAULT_LINK_BANDWIDTH and SCHED_DEFAULT_MAX_MIGRATIONS). */
SchedMigrator *sched_migrator_new (SchedService *svc, guint64 link_bandwidth,
                                   guint max_out, guint max_in);
/* MIGRATOR must not be NULL (see sched-private.h). */
void sched_migrator_free (SchedMigrator *migrator);

/* Starts live-migrating VM to host TO (NULL or "" = the best other host)
 * with PARAMS (NULL = defaults). Checks the names and PARAMS
 * (SCHED_ERROR_INVALID or PROTO_ERROR), that the VM exists
 * (SCHED_ERROR_NOT_FOUND), is running, is not migrating already
 * (_PRECONDITION) and that its host is known and up (_UNAVAILABLE); picks
 * the destination (errors of sched_migration_pick_dest) and runs the cost
 * model (_PRECONDITION if it predicts no convergence and PARAMS->strict).
 * Then creates the job and starts the migration, or queues it behind the
 * per-host limits. *JOB is a copy of the job as stored at return (running,
 * queued, or already failed if the first step failed at once); the caller
 * frees it. The migration goes on from agent call completions in the main
 * context. After sched_migrator_stop it fails with _UNAVAILABLE. */
gboolean sched_migrator_submit (SchedMigrator *migrator, const char *vm,
                                const char *to,
                                const Drover__V1__MigrationParams *params,
                                SchedJob **job, GError **error);

/* The job of VM's migration in progress (queued or running), borrowed;
 * NULL if it is not migrating. */
const SchedJob *sched_migrator_find (SchedMigrator *migrator, const char *vm);

/* Appends to VMS (SchedVm) each migrating VM on its destination as a
 * reservation ("creating": its memory, vCPUs and disk count there). */
void sched_migrator_add_reservations (SchedMigrator *migrator, GPtrArray *vms);

/* Cancels the migration of job ID (CancelJob): a queued one fails at
 * once; a running one is aborted (its MigrateOut call is cancelled, which
 * makes the source agent abort and leave the VM running there; the job
 * fails when the call has ended, or PrepareIncoming's completion ends it)
 * and says it was cancelled. SCHED_ERROR_NOT_FOUND if no migration of
 * that job is in progress, _PRECONDITION during the switchover. Cancelling
 * twice is fine. */
gboolean sched_migrator_cancel (SchedMigrator *migrator, const char *id,
                                GError **error);

/* Fails the queued migrations and refuses new ones. Running ones end when
 * their agent calls are cancelled. Idempotent. */
void sched_migrator_stop (SchedMigrator *migrator);

G_END_DECLS
