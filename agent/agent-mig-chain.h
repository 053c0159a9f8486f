/* A VM's snapshot chain in a live migration (agent-mig-chain.c: the
 * source's list of files; agent-mig-chain-dst.c: the destination's sink
 * for them). Internal to the agent. */
#pragma once

#include "agent-image-xfer.h"
#include "agent-private.h"

G_BEGIN_DECLS

/* What the source sends before the memory. */
typedef struct
{
  GArray *files;      /* AgentImageXferFile, in sending order */
  GPtrArray *strings; /* what FILES point to */
  guint active;       /* the image the VM runs on (goes by the NBD copy) */
} AgentMigChain;

/* The files of VM's chain, from its domain XML DOMXML (the tree) and the
 * images' headers here. AGENT_ERROR_PRECONDITION for a chain Drover
 * cannot carry (an operation half done, an image outside the VM's
 * directory). */
AgentMigChain *agent_mig_chain_collect (Agent *agent, const char *vm,
                                        const char *domxml, GError **error);
/* The path the VM's active image has on the destination, from the path
 * its first image has there (DEST_BASE: DATA/disks/VM.qcow2). */
char *agent_mig_chain_dest_disk (const AgentMigChain *chain, const char *vm,
                                 const char *dest_base, GError **error);
void agent_mig_chain_free (AgentMigChain *chain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentMigChain, agent_mig_chain_free)

/* The destination's sink for VM's chain, its first image at BASE_PATH
 * (made empty by PrepareIncoming), its disk DISK bytes and RAM MEMORY
 * bytes (the caps). */
typedef struct _AgentMigChainSink AgentMigChainSink;
AgentMigChainSink *agent_mig_chain_sink_new (Agent *agent, const char *vm,
                                             const char *base_path,
                                             guint64 disk, guint64 memory);
void agent_mig_chain_sink_free (AgentMigChainSink *sink);
/* Fills SINK (place, finish, caps) for the image stream. */
void agent_mig_chain_sink_init (AgentMigChainSink *chain,
                                AgentImageXferSink *sink);
/* The active overlay made here once the chain came, or NULL. */
char *agent_mig_chain_sink_active_path (AgentMigChainSink *sink);
/* The files that came (still marked), or NULL if none came whole. */
GPtrArray *agent_mig_chain_sink_steal_paths (AgentMigChainSink *sink);

G_END_DECLS
