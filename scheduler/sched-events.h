/* SchedEvents: the scheduler's event stream (sched-events.c).
 *
 * Everything that changes in the cluster (VM lifecycle, hosts, jobs) is
 * published here as a drover.v1.Event: stamped with a sequence number and
 * the time, kept in a bounded backlog, and handed to every subscriber (a
 * WatchEvents stream, a dashboard's server-sent event stream). Each
 * subscriber has a bounded queue: one that falls SCHED_EVENTS_QUEUE_MAX
 * events behind gets nothing more, and once it has read what was queued
 * (or after SCHED_EVENTS_LAG_MAX_MS) its stream ends with a "dropped"
 * event that says how many it missed. A slow reader so never holds more
 * than its queue in the scheduler's memory, nor slows anyone else down.
 *
 * The registry publishes while it reconciles a report, inside the
 * report's transaction: if the store then fails to commit, events may
 * have told of changes that did not stick (the host's next report states
 * them again). Events are news, the store is the record.
 *
 * Runs in the service's main context (no locks). Publishing into a NULL
 * SchedEvents does nothing, so the objects that publish work without one
 * (unit tests).
 */
#pragma once

#include "sched-store.h"

G_BEGIN_DECLS

/* Event kinds (Event.kind). */
#define SCHED_EVENT_VM_CREATED "vm.created"
#define SCHED_EVENT_VM_STATE "vm.state"
#define SCHED_EVENT_VM_MOVED "vm.moved"
#define SCHED_EVENT_VM_MISSING "vm.missing"
#define SCHED_EVENT_VM_DELETED "vm.deleted"
#define SCHED_EVENT_VM_CLONED "vm.cloned"
#define SCHED_EVENT_VM_TEMPLATE "vm.template"
/* NIC hot-plug (issue 13); the MAC and network are in the message. */
#define SCHED_EVENT_VM_NIC_ADDED "vm.nic_added"
#define SCHED_EVENT_VM_NIC_REMOVED "vm.nic_removed"
#define SCHED_EVENT_SNAPSHOT_CREATED "snapshot.created"
#define SCHED_EVENT_SNAPSHOT_REVERTED "snapshot.reverted"
#define SCHED_EVENT_SNAPSHOT_DELETED "snapshot.deleted"
/* Backup repositories (issue 14); the repository's name is in the
 * message. */
#define SCHED_EVENT_REPO_ADDED "repo.added"
#define SCHED_EVENT_BACKUP_VERIFIED "backup.verified"
#define SCHED_EVENT_BACKUP_PRUNED "backup.pruned"
#define SCHED_EVENT_REPO_GC "repo.gc"
#define SCHED_EVENT_SCHEDULE_CREATED "schedule.created"
#define SCHED_EVENT_SCHEDULE_DELETED "schedule.deleted"
#define SCHED_EVENT_SCHEDULE_RUN "schedule.run"
#define SCHED_EVENT_SCHEDULE_DRILL "schedule.drill"
#define SCHED_EVENT_VM_LABELS "vm.labels"
#define SCHED_EVENT_VM_MIGRATION "vm.migration"
#define SCHED_EVENT_BACKUP_CREATED "backup.created"
#define SCHED_EVENT_BACKUP_FAILED "backup.failed"
#define SCHED_EVENT_BACKUP_RESTORED "backup.restored"
#define SCHED_EVENT_IMAGE_IMPORTED "image.imported"
#define SCHED_EVENT_IMAGE_DELETED "image.deleted"
#define SCHED_EVENT_HOST_REGISTERED "host.registered"
#define SCHED_EVENT_HOST_UP "host.up"
#define SCHED_EVENT_HOST_DOWN "host.down"
#define SCHED_EVENT_HOST_MAINTENANCE "host.maintenance"
#define SCHED_EVENT_JOB_STARTED "job.started"
#define SCHED_EVENT_JOB_PROGRESS "job.progress"
#define SCHED_EVENT_JOB_ENDED "job.ended"
#define SCHED_EVENT_MIGRATION_RUNG "migration.rung"
#define SCHED_EVENT_DROPPED "dropped"

/* Events kept for a new subscriber's backlog. */
#define SCHED_EVENTS_BACKLOG 1000
/* Events a subscriber may have queued before it is dropped (default). */
#define SCHED_EVENTS_QUEUE_MAX 1024
/* A dropped subscriber that does not read its queue empty within this
 * long is ended anyway (its "dropped" event waits behind the queue). */
#define SCHED_EVENTS_LAG_MAX_MS 10000
/* At most one job.progress event per job this often. */
#define SCHED_EVENTS_PROGRESS_PERIOD_MS 1000

typedef struct _SchedEvents SchedEvents;
typedef struct _SchedEventsSink SchedEventsSink;

/* What the events object needs of a subscriber's stream. */
typedef struct
{
  /* Queues EVENT (borrowed) on the stream; FALSE if the reader has gone. */
  gboolean (*send) (gpointer target, const Drover__V1__Event *event);
  /* Events queued on the stream and not yet written. */
  guint (*queued) (gpointer target);
  /* Ends the stream after what is queued. DROPPED: the reader fell
   * behind (its last event is a "dropped" one); otherwise the scheduler
   * is stopping or the reader has gone. The sink is forgotten before. */
  void (*finish) (gpointer target, gboolean dropped);
} SchedEventsSinkOps;

/* CLOCK (unix ms; the service's is its registry's) stamps events;
 * QUEUE_MAX 0 means SCHED_EVENTS_QUEUE_MAX. */
SchedEvents *sched_events_new (guint queue_max, gint64 (*clock) (gpointer),
                               gpointer clock_data);
void sched_events_free (SchedEvents *events);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedEvents, sched_events_free)

/* Ends every subscriber's stream (ops->finish, not dropped). Later
 * subscriptions are refused. */
void sched_events_stop (SchedEvents *events);

/* Publishes EVENT (borrowed; seq and time_ms are set on a copy). */
void sched_events_publish (SchedEvents *events, const Drover__V1__Event *event);

/* Publishes an event of KIND about VM, HOST (either may be NULL), with
 * STATE and OLD_STATE (may be NULL) and a message from FORMAT. */
void sched_events_emit (SchedEvents *events, const char *kind, const char *vm,
                        const char *host, const char *state,
                        const char *old_state, const char *format, ...)
    G_GNUC_PRINTF (7, 8);

/* VM moved from OLD_STATE to STATE on HOST: a vm.state event, unless the
 * state did not change. */
void sched_events_vm_state (SchedEvents *events, const char *vm,
                            const char *host, const char *old_state,
                            const char *state);

/* JOB changed (sched_jobs_update): job.started the first time a job is
 * seen, job.ended once it is over, job.progress otherwise, at most every
 * SCHED_EVENTS_PROGRESS_PERIOD_MS per job unless its state changed. */
void sched_events_job (SchedEvents *events, const SchedJob *job);

/* Subscribes OPS/TARGET: first the last BACKLOG events kept (at most the
 * queue bound), then every new one. NULL if the events object is
 * stopped. The sink lives until ops->finish runs or _unsubscribe. */
SchedEventsSink *sched_events_subscribe (SchedEvents *events,
                                         const SchedEventsSinkOps *ops,
                                         gpointer target, guint backlog);
/* Forgets SINK without finishing it (its reader went away). */
void sched_events_unsubscribe (SchedEvents *events, SchedEventsSink *sink);

/* Sends the last BACKLOG events kept to OPS/TARGET (no subscription). */
void sched_events_replay (SchedEvents *events, const SchedEventsSinkOps *ops,
                          gpointer target, guint backlog);

/* Subscribers now, and how many were dropped so far. */
guint sched_events_n_sinks (SchedEvents *events);
guint64 sched_events_n_dropped (SchedEvents *events);

/* WatchEvents; USER_DATA is the SchedEvents. */
void sched_events_handle_watch (ProtoServerCall *call,
                                const ProtobufCMessage *request,
                                gpointer user_data);

G_END_DECLS
