/* What the clone's files share: agent-clone.c (clones on one host, the
 * marks and the start-up cleanup), agent-clone-xml.c (the clone record in
 * a domain's metadata), agent-clone-template.c (MakeTemplate and the
 * users of a base) and agent-clone-remote.c (a full clone to another
 * host: both ends). Nothing else includes this. */
#pragma once

#include "agent-private.h"

G_BEGIN_DECLS

/* DATA/disks/NAME.qcow2.clone: while it exists, clone NAME is not
 * committed and a restart takes everything of NAME away again. */
#define AGENT_CLONE_MARK_SUFFIX ".qcow2.clone"
/* The namespace of the clone record in a domain's metadata. */
#define CLONE_XMLNS "https://drover.dev/xmlns/clone/1"
#define CLONE_XMLNS_PREFIX "drover-clone"
/* How long a hold fault point keeps the clone still (tests kill the
 * agent meanwhile). */
#define HOLD_MAX_S 120
/* How long clone-hold-sending keeps the sender still, once. */
#define HOLD_SENDING_S 10

/* What the source of a clone is and holds. */
typedef struct
{
  gboolean is_template;
  gboolean frozen;   /* DISK is a snapshot's image: nothing writes it */
  char *disk;        /* the image to clone, NULL: no disk */
  guint64 disk_size; /* from its spec */
} AgentCloneSource;

/* A clone stream in flight: CloneVm, CloneOut. */
typedef struct
{
  Agent *agent; /* a reference */
  const Drover__V1__AgentCloneRequest *req;
  AgentStream *stream;
  gint64 started_us;
  const char *phase; /* of the progress: PROTO_STOR_PHASE_COPYING, ... */
  gboolean held;     /* clone-hold-sending fired */
} AgentCloneOp;

/* Serves CALL (REQ, an AgentCloneRequest) with FUNC on a thread
 * THREAD_NAME, its data a new AgentCloneOp (phase copying). */
void agent_clone_op_start (ProtoServerCall *call, Agent *agent,
                           const ProtobufCMessage *req, const char *thread_name,
                           AgentStreamFunc func);
/* Opens OP's stream STREAM (a clone's request checked): starts its clock,
 * connects to libvirt and pushes the "preparing" progress. The
 * connection, or NULL with ERROR. */
virConnectPtr agent_clone_op_open (AgentCloneOp *op, AgentStream *stream,
                                   GError **error);
/* Claims REQ's source VM and reads it into SRC (agent_clone_claim_source,
 * agent_clone_read_source): on TRUE the caller holds the source's claim
 * and frees SRC->disk; on FALSE nothing is held. */
gboolean agent_clone_take_source (Agent *agent, virConnectPtr conn,
                                  const Drover__V1__AgentCloneRequest *req,
                                  AgentCloneSource *src, GError **error);
/* A StorCopyProgressFunc (data: the AgentCloneOp): pushes a progress
 * message of its phase (bytes, total, throughput since its start). */
void agent_clone_on_progress (guint64 processed, guint64 total,
                              gpointer user_data);
/* The mark of clone NAME (validated). Free with g_free. */
char *agent_clone_mark_path (Agent *agent, const char *name);
/* The VM names of the clone marks in the disk directory (validated). */
GPtrArray *agent_clone_list_marks (Agent *agent);
/* The value of attribute ATTR of DOMXML's clone record, or NULL. */
char *agent_clone_xml_attr (const char *domxml, const char *attr);
/* Makes PATH read-only for everyone: nothing may write a base. */
gboolean agent_clone_protect_base (const char *path, GError **error);
/* A new progress message in PHASE. */
Drover__V1__StorageProgress *agent_clone_progress_new (const char *phase);
/* What a clone request must hold before anything is looked at. */
gboolean agent_clone_check_request (const Drover__V1__AgentCloneRequest *req,
                                    GError **error);
/* Reads the source VM NAME (claimed) into SRC: the image a clone of it
 * (FROM_SNAPSHOT: of that snapshot, "" none) copies or links to. A running
 * VM that is no template is refused without a snapshot. SRC->disk is the
 * caller's to free. */
gboolean agent_clone_read_source (Agent *agent, virConnectPtr conn,
                                  const char *name, const char *from_snapshot,
                                  AgentCloneSource *src, GError **error);
/* Claims the source VM NAME, waiting a little for another operation to
 * let go. */
gboolean agent_clone_claim_source (Agent *agent, const char *name,
                                   GError **error);
/* Defines clone SPEC->name on DISK (NULL: no disk) with its console log
 * and REQ's identity (UUID, the record of its source, new MACs), linked
 * to BASE_IMAGE of REQ->source when BASE_IMAGE is not NULL, and starts it
 * when REQ->start. The domain, or NULL with ERROR (the caller rolls
 * back). */
virDomainPtr agent_clone_define (Agent *agent, virConnectPtr conn,
                                 const Drover__V1__VmSpec *spec,
                                 const char *disk,
                                 const Drover__V1__AgentCloneRequest *req,
                                 const char *base_image, GError **error);
/* The new VM's spec of REQ (checked, request and spec), with this host's
 * accelerator; NULL with ERROR. */
Drover__V1__VmSpec *agent_clone_spec (Agent *agent,
                                      const Drover__V1__AgentCloneRequest *req,
                                      GError **error);
/* INVALID_ARGUMENT unless the clone of REQ has the disk size of SRC. */
gboolean agent_clone_check_size (const Drover__V1__AgentCloneRequest *req,
                                 const AgentCloneSource *src, GError **error);
/* Writes the mark of clone NAME, holding SOURCE (mark before make: from
 * here on a restart takes NAME away again); its path in *MARK_OUT (may be
 * NULL). */
gboolean agent_clone_mark_write (Agent *agent, const char *name,
                                 const char *source, char **mark_out,
                                 GError **error);
/* Removes the clone mark MARK: the commit of a clone. */
gboolean agent_clone_commit_mark (const char *mark, GError **error);
/* Ends OP's stream STREAM that failed with ERROR: lets go of the source
 * (SOURCE_HELD: its claim is held), frees SRC->disk, pushes the "failed"
 * progress (a cancel becomes PROTO_STATUS_CANCELLED) and logs it for the
 * source VM and the job. FALSE, for the stream function to return. */
gboolean agent_clone_op_failed (AgentCloneOp *op, AgentStream *stream,
                                AgentCloneSource *src, gboolean source_held,
                                GError **error);

/* Checks that the file at PATH, received from another host, is what a
 * clone of SIZE bytes may run on: a qcow2 image of that virtual size with
 * no backing file and no external data file (a hostile sender could
 * otherwise point the clone at any file of this host). */
gboolean agent_clone_check_received (const char *path, guint64 size,
                                     GError **error);

G_END_DECLS
