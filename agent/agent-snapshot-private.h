/* What the agent's snapshot files share: agent-snapshot.c (the calls,
 * paths, the tree's I/O, progress), agent-snap-create.c,
 * agent-snap-revert.c, agent-snap-delete.c and agent-snap-recover.c.
 * Nothing else includes this. */
#pragma once

#include "agent-private.h"
#include "agent-snaptree.h"

G_BEGIN_DECLS

/* How often a libvirt job (snapshot, block job) is looked at. */
#define AGENT_SNAP_POLL_MS 200
/* A block job that makes no progress for this long is abandoned. */
#define AGENT_SNAP_JOB_WAIT_S (30 * 60)
/* Room a new overlay needs at the least. */
#define AGENT_SNAP_OVERLAY_SPACE (1024 * 1024)

typedef enum
{
  AGENT_SNAP_KIND_CREATE,
  AGENT_SNAP_KIND_REVERT,
  AGENT_SNAP_KIND_DELETE,
} AgentSnapKind;

/* One streamed call. */
typedef struct
{
  Agent *agent;
  const Drover__V1__AgentSnapshotRequest *req; /* owned by the call */
  AgentSnapKind kind;
  AgentStream *stream; /* worker only */
} AgentSnapCall;

/* What an operation works on: the VM, claimed, and its connection. */
typedef struct
{
  Agent *agent;
  virConnectPtr conn;
  virDomainPtr dom;
  const char *vm;
  const char *job;     /* may be NULL (recovery) */
  AgentSnapCall *call; /* NULL: no progress to report */
} AgentSnapCtx;

/* --- agent-snapshot.c ---------------------------------------------------- */

/* Fault point (tests): the agent kills itself (SIGKILL) at step NAME.
 * (A step that fails instead: agent_fault_fail.) */
void agent_snap_crash_point (const char *name);
/* Image N of the VM (0: its base disk), and snapshot SNAP's memory file
 * (free with g_free; NULL for a name the paths refuse). */
char *agent_snap_image_path (AgentSnapCtx *c, guint n);
char *agent_snap_memory_path (AgentSnapCtx *c, const char *snap);
gboolean agent_snap_is_active (virDomainPtr dom);
/* The persistent definition (the truth for the tree and the disk). */
char *agent_snap_config_xml (AgentSnapCtx *c, GError **error);
/* The tree recorded in the persistent definition. */
AgentSnapTree *agent_snap_read_tree (AgentSnapCtx *c, GError **error);
/* The disk the running QEMU uses (LIVE: live XML), or the defined one. */
char *agent_snap_disk_source (AgentSnapCtx *c, gboolean live);
/* Records T in the domain's metadata (live too when it runs). */
gboolean agent_snap_write_tree (AgentSnapCtx *c, const AgentSnapTree *t,
                                GError **error);
/* Redefines the (stopped) domain with tree T and, when DISK is given,
 * its disk on that image: one atomic step in libvirt. */
gboolean agent_snap_define_with (AgentSnapCtx *c, const AgentSnapTree *t,
                                 const char *disk, GError **error);
/* After libvirt moved a running VM's disk: the persistent definition
 * names T's active image too (redefined only if libvirt did not). */
void agent_snap_sync_config_disk (AgentSnapCtx *c, const AgentSnapTree *t);
/* DATA/snapshots/VM, made if missing, QEMU's group may enter it. */
gboolean agent_snap_make_dir (AgentSnapCtx *c, GError **error);
/* The tree of C's VM (in *TREE, owned by the caller) once what an earlier
 * run left pending is finished, and its snapshot NAME (owned by the
 * tree); NULL with ERROR, *TREE untouched, when either fails. Reports
 * the "preparing" phase. */
AgentSnap *agent_snap_lookup (AgentSnapCtx *c, const char *name,
                              AgentSnapTree **tree, GError **error);
/* T without its pending record. */
void agent_snap_clear_op (AgentSnapTree *t);
/* Progress of the call C serves (none without one); FINAL: the tree and
 * the VM's status at the end. */
void agent_snap_push (AgentSnapCtx *c, const char *phase, guint64 total,
                      guint64 processed, const char *error_msg,
                      const AgentSnapTree *final);

/* --- the operations (each on the claimed VM of C) ------------------------ */

/* agent-snap-create.c. */
gboolean agent_snap_create (AgentSnapCtx *c, GError **error);
/* Finishes a create whose disk switch happened: T gets its snapshot. */
void agent_snap_create_commit_tree (AgentSnapTree *t);

/* agent-snap-revert.c. */
gboolean agent_snap_revert (AgentSnapCtx *c, GError **error);
/* After the define: the VM on the new overlay; starts it, drops the old
 * overlay, clears the record. */
gboolean agent_snap_revert_finish (AgentSnapCtx *c, AgentSnapTree *t,
                                   GError **error);

/* agent-snap-delete.c. */
gboolean agent_snap_delete (AgentSnapCtx *c, GError **error);
/* Merges the images T's delete record names, for a delete started now
 * or resumed at start-up. */
gboolean agent_snap_delete_run (AgentSnapCtx *c, AgentSnapTree *t,
                                GError **error);

/* agent-snap-recover.c. Finishes or rolls back the operation T records
 * (T updated and written). TRUE when nothing is pending any more. */
gboolean agent_snap_recover (AgentSnapCtx *c, AgentSnapTree *t, GError **error);

G_END_DECLS
