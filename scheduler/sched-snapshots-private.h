/* What SchedSnapshots' files share: sched-snapshots.c (the object, the
 * checks, create, revert, delete, list, the refresh after a report),
 * sched-snap-op.c (a storage job's course), sched-clones.c (CloneVm,
 * MakeTemplate) and sched-backups.c (backups and restores, issue 14).
 * Nothing else includes this. */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

/* One storage job in flight. */
typedef struct
{
  SchedSnapshots *owner;
  SchedJob *job; /* owned */
  char *op;      /* metrics label: create, revert, delete, clone */
  char *vm;      /* the VM (a clone: its source) */
  char *host;
  char *name;   /* the snapshot (a clone: the new VM) */
  char *linked; /* a linked clone: its base; else NULL */
  ProtoClientStream *stream;
  gint64 started_us; /* monotonic */
  gint64 last_store_ms;
  /* A full clone to another host (sched-clones.c): the destination and
   * the request its three steps share (owned); else NULL. */
  char *dest_host;
  Drover__V1__AgentCloneRequest *remote;
  gboolean flattened; /* the source copied the chain before sending */
  /* A restore as a new VM (NAME): like a clone, its record was reserved
   * (creating) and goes if the job fails. */
  gboolean new_vm;
} SnapOp;

struct _SchedSnapshots
{
  SchedService *svc;     /* borrowed; owns this */
  GHashTable *busy;      /* VM name -> SnapOp (borrowed; ops owns it) */
  GHashTable *ops;       /* job id -> SnapOp, owned */
  GHashTable *refreshes; /* VM names whose ListSnapshots is in flight */
  gboolean stopped;
};

/* The registry's clock, ms. */
gint64 sched_snap_now_ms (SchedSnapshots *s);
/* The VM may start a storage job: not migrating, no other storage job
 * (nor a template being made). */
gboolean sched_snap_check_idle (SchedSnapshots *s, const char *vm,
                                GError **error);
/* The VM NAME, its host (up) and a client for it, for a command. */
ProtoClient *sched_snap_lookup (SchedSnapshots *s, const char *name,
                                SchedVm **vm_out, SchedHost **host_out,
                                GError **error);
/* TRUE with *EXISTS when snapshot NAME of VM is (or is not) in the
 * store; FALSE and ERROR on a store failure. */
gboolean sched_snap_exists (SchedStore *store, const char *vm, const char *name,
                            gboolean *exists, GError **error);
/* A new storage job of KIND (job on JOB_VM) for the metrics label
 * OP_LABEL, on VM at HOST about NAME; not started. */
SnapOp *sched_snap_op_new (SchedSnapshots *s, const char *kind,
                           const char *op_label, const char *vm,
                           const char *host, const char *name,
                           const char *job_vm);
/* Starts OP: its job is stored, the VM marked busy, the stream opened
 * with REQUEST on agent METHOD through CLIENT. */
void sched_snap_launch (SchedSnapshots *s, SnapOp *op, ProtoClient *client,
                        guint method, const ProtobufCMessage *request,
                        const char *first_message);
/* Frees OP (and its job). */
void sched_snap_op_free (SnapOp *op);
/* Starts OP without a stream yet: its job is stored and running, the VM
 * marked busy. sched_snap_launch is this plus the stream. */
void sched_snap_begin (SchedSnapshots *s, SnapOp *op,
                       const char *first_message);
/* Opens OP's stream (begun) with REQUEST on agent METHOD through CLIENT:
 * its progress goes into the job, its end finishes OP. */
void sched_snap_stream (SchedSnapshots *s, SnapOp *op, ProtoClient *client,
                        guint method, const ProtobufCMessage *request);
/* OP ended (OK, or with ERROR_MSG): the job, the records, the metrics;
 * OP is freed. */
void sched_snap_finish (SnapOp *op, gboolean ok, const char *error_msg);
/* The stream of a clone to another host ended: SENT (the source sent
 * it all) or failed with ERROR_MSG; the clone's next step
 * (sched-clones.c). */
void sched_clones_remote_sent (SnapOp *op, gboolean sent,
                               const char *error_msg);
/* The job's progress (0..1, negative: unknown) of a clone to another
 * host for P, whose own fraction is F: a copy the source makes first
 * takes the first half, the sending the rest. */
double sched_clones_remote_fraction (SnapOp *op,
                                     const Drover__V1__StorageProgress *p,
                                     double f);
/* Asks HOST (through CLIENT) for VM's snapshot tree, to replace the
 * stored one, unless such a request is in flight. */
void sched_snap_refresh_start (SchedSnapshots *s, ProtoClient *client,
                               const char *vm, const char *host);
/* Replies to CALL with the job, or fails it with ERROR. */
void sched_snap_reply_job (ProtoServerCall *call, SchedJob *job,
                           const GError *error);

G_END_DECLS
