/* AgentSnapTree: the snapshot tree of one VM, kept in its domain's
 * metadata (agent-snaptree.c). Internal to the agent. */
#pragma once

#include "agent-private.h"

G_BEGIN_DECLS

/* Namespace of the metadata element holding the tree. */
#define AGENT_SNAP_XMLNS "https://drover.dev/xmlns/snapshots/1"
#define AGENT_SNAP_XMLNS_PREFIX "drover-snap"
/* Most snapshots one VM may have; longest description (bytes). */
#define AGENT_SNAP_MAX 64
#define AGENT_SNAP_MAX_DESCRIPTION 1024

/* One snapshot. IMAGE names the image frozen by it: 0 is the VM's first
 * image (DATA/disks/VM.qcow2), N > 0 DATA/snapshots/VM/N.qcow2. */
typedef struct
{
  char *name;
  char *parent; /* "" = a root */
  gint64 created_ms;
  char *description;
  char *vm_state;
  gboolean memory;
  gboolean quiesced;
  guint image;
} AgentSnap;

/* An operation in progress, recorded before it changes any disk, so an
 * agent killed halfway can finish or roll it back at start. */
typedef enum
{
  AGENT_SNAP_OP_NONE,
  AGENT_SNAP_OP_CREATE, /* snap: the new one (not in the tree yet); image:
                           the new overlay */
  AGENT_SNAP_OP_REVERT, /* snap: the target; image: the new overlay; old:
                           the image the VM ran on */
  AGENT_SNAP_OP_DELETE, /* snap: the one going (still in the tree) */
} AgentSnapOp;

typedef struct
{
  GPtrArray *snaps; /* AgentSnap, parents before children */
  char *current;    /* "" = the VM runs on no snapshot */
  guint active;     /* the image the VM runs on */
  guint next;       /* the next overlay number (> every one used) */

  AgentSnapOp op;
  AgentSnap *op_snap; /* CREATE: the snapshot to add; others: a copy */
  guint op_image;
  guint op_old;
  gboolean op_running; /* the VM ran when the operation began */
  gboolean op_paused;  /* revert: leave it paused */
} AgentSnapTree;

void agent_snap_free (AgentSnap *snap);
AgentSnap *agent_snap_copy (const AgentSnap *snap);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentSnap, agent_snap_free)

/* An empty tree: no snapshot, the VM on image 0. */
AgentSnapTree *agent_snaptree_new (void);
void agent_snaptree_free (AgentSnapTree *tree);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentSnapTree, agent_snaptree_free)

/* The tree in domain XML DOMXML: an empty one when the domain has no
 * tree element; NULL with AGENT_ERROR_INVALID for one that breaks the
 * rules (bad names, too many, unknown parents, image numbers past
 * next). */
AgentSnapTree *agent_snaptree_from_domain_xml (const char *domxml,
                                               GError **error);
/* The tree element alone (no namespace declaration), as
 * virDomainSetMetadata takes it. Free with g_free. */
char *agent_snaptree_to_xml (const AgentSnapTree *tree);
/* DOMXML with the tree replaced by TREE and, when DISK_PATH is given, the
 * source of disk vda set to DISK_PATH (its backingStore dropped, libvirt
 * reads the chain from the image). NULL with AGENT_ERROR_INVALID when
 * DOMXML does not parse or has no such disk. */
char *agent_snaptree_edit_domain_xml (const char *domxml,
                                      const AgentSnapTree *tree,
                                      const char *disk_path, GError **error);
/* The source file of disk vda in DOMXML, or NULL. */
char *agent_snaptree_disk_source (const char *domxml);

AgentSnap *agent_snaptree_find (const AgentSnapTree *tree, const char *name);
/* The snapshot that froze IMAGE, or NULL. */
AgentSnap *agent_snaptree_by_image (const AgentSnapTree *tree, guint image);

G_END_DECLS
