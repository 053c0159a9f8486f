/* One name for each string the wire carries as a state, kind or phase.
 *
 * drover.proto keeps these fields as strings (so the JSON droverctl prints
 * and old clients stay as they are); this header is the one place their
 * values are spelled. Scheduler, agents, the migration engine and the CLI
 * all use these, never literals. No dependencies: any module may include
 * it. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Job.kind */
#define PROTO_JOB_KIND_CREATE "create"
#define PROTO_JOB_KIND_DELETE "delete"
#define PROTO_JOB_KIND_MIGRATE "migrate"
/* Lifecycle commands leave a job too, so the job list shows them. */
#define PROTO_JOB_KIND_START "start"
#define PROTO_JOB_KIND_STOP "stop"
#define PROTO_JOB_KIND_DESTROY "destroy"
/* Snapshots and clones (issue 12). */
#define PROTO_JOB_KIND_SNAPSHOT_CREATE "snapshot-create"
#define PROTO_JOB_KIND_SNAPSHOT_REVERT "snapshot-revert"
#define PROTO_JOB_KIND_SNAPSHOT_DELETE "snapshot-delete"
#define PROTO_JOB_KIND_CLONE "clone"
#define PROTO_JOB_KIND_DRAIN "drain" /* vm "", source_host the host */
/* Backup repositories (issue 14): vm "", source_host the host doing it. */
#define PROTO_JOB_KIND_VERIFY "verify"
#define PROTO_JOB_KIND_GC "gc"
/* The balancer carrying out a plan (issue 15): vm "", its message lists
 * the migration jobs it started. */
#define PROTO_JOB_KIND_BALANCE "balance"
/* Backups (issue 14): a backup of the VM, a restore (vm: the new VM,
 * or the VM restored in place). */
#define PROTO_JOB_KIND_BACKUP "backup"
#define PROTO_JOB_KIND_RESTORE "restore"

/* Job.state. A job only moves forward: queued -> running -> done | failed. */
#define PROTO_JOB_QUEUED "queued"
#define PROTO_JOB_RUNNING "running"
#define PROTO_JOB_DONE "done"
#define PROTO_JOB_FAILED "failed"

/* Host.state */
#define PROTO_HOST_UP "up"
#define PROTO_HOST_DOWN "down"

/* Vm.state and VmStatus.state: libvirt's domain states as the agent
 * reports them, plus two the scheduler adds. */
#define PROTO_VM_NOSTATE "nostate"
#define PROTO_VM_RUNNING "running"
#define PROTO_VM_BLOCKED "blocked"
#define PROTO_VM_PAUSED "paused"
#define PROTO_VM_SHUTDOWN "shutdown" /* shutting down */
#define PROTO_VM_SHUTOFF "shutoff"
#define PROTO_VM_CRASHED "crashed"
#define PROTO_VM_PMSUSPENDED "pmsuspended"
#define PROTO_VM_UNKNOWN "unknown"   /* the agent reported no state */
#define PROTO_VM_CREATING "creating" /* placed, the agent is creating it */
#define PROTO_VM_MISSING "missing"   /* its host stopped reporting it */

/* MigrationProgress.phase. Phases only move forward, in this order; the
 * last three are final. */
#define PROTO_MIG_QUEUED "queued"
#define PROTO_MIG_PREPARING "preparing"
#define PROTO_MIG_PRECOPY "precopy"
#define PROTO_MIG_SWITCHOVER "switchover"
#define PROTO_MIG_COMPLETED "completed"
#define PROTO_MIG_ABORTED "aborted"
#define PROTO_MIG_FAILED "failed"

/* StorageProgress.phase: preparing, then the operation's own phases
 * (writing memory, merging, copying, ...), then one final phase. */
#define PROTO_STOR_PHASE_PREPARING "preparing"
#define PROTO_STOR_PHASE_FREEZING "freezing"   /* guest agent quiesce */
#define PROTO_STOR_PHASE_OVERLAY "overlay"     /* disk-only: new overlay */
#define PROTO_STOR_PHASE_MEMORY "memory"       /* writing RAM and devices */
#define PROTO_STOR_PHASE_RESTORING "restoring" /* revert: memory state back */
#define PROTO_STOR_PHASE_MERGING "merging"     /* delete: block commit/pull */
#define PROTO_STOR_PHASE_COPYING "copying"     /* full clone */
#define PROTO_STOR_PHASE_READING "reading"     /* backup: disk into repo */
#define PROTO_STOR_PHASE_SENDING "sending"     /* full clone to another host */
#define PROTO_STOR_PHASE_VERIFYING "verifying" /* rehashing chunks */
#define PROTO_STOR_PHASE_COLLECTING "collecting" /* gc: mark and sweep */
#define PROTO_STOR_PHASE_COMPLETED "completed"
#define PROTO_STOR_PHASE_FAILED "failed"

/* CloneVmRequest.mode */
#define PROTO_CLONE_LINKED "linked"
#define PROTO_CLONE_FULL "full"

/* MigrationParams.compress, and MigrationProgress.compress_mode (what
 * "auto" chose: lz4 or off). */
/* When a migration may switch to post-copy (issue 17): MigrationParams
 * .postcopy and VmSpec.migration_postcopy. */
#define PROTO_MIG_POSTCOPY_AUTO "auto"
#define PROTO_MIG_POSTCOPY_NEVER "never"
#define PROTO_MIG_POSTCOPY_NOW "now"
/* Rungs of the ladder the scheduler names (MigrationRung.rung). */
#define PROTO_MIG_RUNG_POSTCOPY "postcopy"
#define PROTO_MIG_RUNG_POSTCOPY_RECOVER "postcopy-recover"
#define PROTO_MIG_RUNG_ABORT "abort"
#define PROTO_COMPRESS_AUTO "auto"
#define PROTO_COMPRESS_ON "on"
#define PROTO_COMPRESS_OFF "off"
#define PROTO_COMPRESS_LZ4 "lz4"

/* VmSpec.accel and HostInfo.accel. */
#define PROTO_ACCEL_KVM "kvm"
#define PROTO_ACCEL_TCG "tcg"

/* MigrationParams.max_downtime_ms when 0: the limit the convergence
 * controller may raise the downtime to, and what the cost model assumes. */
#define PROTO_MIG_DEFAULT_MAX_DOWNTIME_MS 500

/* Limits of a VmSpec, the same on the scheduler and the agents. */
#define PROTO_VM_MIN_VCPUS 1
#define PROTO_VM_MAX_VCPUS 512
#define PROTO_VM_MIN_MEMORY (32 * G_GUINT64_CONSTANT (1024) * 1024)

/* TRUE for completed, aborted and failed. */
static inline gboolean
proto_mig_phase_is_final (const char *phase)
{
  return phase != NULL
         && (g_str_equal (phase, PROTO_MIG_COMPLETED)
             || g_str_equal (phase, PROTO_MIG_ABORTED)
             || g_str_equal (phase, PROTO_MIG_FAILED));
}

/* TRUE for done and failed. */
static inline gboolean
proto_job_state_is_final (const char *state)
{
  return state != NULL
         && (g_str_equal (state, PROTO_JOB_DONE)
             || g_str_equal (state, PROTO_JOB_FAILED));
}

G_END_DECLS
