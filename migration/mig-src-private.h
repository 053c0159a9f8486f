/* The source side's parts, shared by mig-src.c and mig-src-forward.c. */
#pragma once

#include "mig-migrate.h"
#include "proto.h"

G_BEGIN_DECLS

/* Phase timestamps for finding where a migration's time goes
 * (G_MESSAGES_DEBUG=drover-mig): "+T ms WHAT" since T0 (monotonic us). */
#define MIG_SRC_PHASE(vm, job_id, t0, what)                                    \
  drover_debug ((vm), (job_id), NULL,                                          \
                "migration: +%" G_GINT64_FORMAT " ms %s",                      \
                (g_get_monotonic_time () - (t0)) / 1000, (what))

/* --- MigLadder: the ladder's rungs applied (mig-ladder.c) ----------------- */

/* Lives in the MigSrc; used on the migration's control thread only. */
typedef struct
{
  virDomainPtr dom;
  const char *vm, *job_id;
  gboolean throttle_armed;  /* auto-converge on, held at 1 % */
  MigPostcopyMode postcopy; /* armed: started with VIR_MIGRATE_POSTCOPY */
  gboolean paused;          /* the forced switchover paused the guest */
  gboolean in_postcopy;     /* switched: the guest runs on the destination */
} MigLadder;

/* Arms the rungs for a migration of DOM by config C before it starts:
 * the throttle (when QEMU takes it) and post-copy. FALSE with ERROR when
 * the post-copy asked for cannot be (a VM whose disk is copied along). */
gboolean mig_ladder_arm (MigLadder *l, const MigSrcConfig *c, virDomainPtr dom,
                         gboolean with_disk, GError **error);
/* The armed rungs into the controller's config. */
void mig_ladder_config (MigLadder *l, const MigSrcConfig *c, MigCtlConfig *cc);
/* The armed rungs' flags and parameters for virDomainMigrateToURI3. */
gboolean mig_ladder_add_params (MigLadder *l, unsigned int *flags,
                                virTypedParameterPtr *params, int *nparams,
                                int *maxparams, GError **error);
/* Applies the controller's decision D (made from sample S); TRUE when
 * the migration has entered its switchover: the guest paused, or
 * switched to post-copy. A failed switch to post-copy forces the pause
 * instead (CTL records it). */
gboolean mig_ladder_apply (MigLadder *l, MigCtl *ctl, const MigCtlDecision *d,
                           const MigCtlSample *s);
/* The error of a migration that failed in post-copy (HOST_ERROR: what
 * libvirt said at the break; ATTEMPTS recovery attempts made, the last
 * failing with LAST_ERROR): the VM is paused on both hosts. */
void mig_ladder_postcopy_error (MigLadder *l, const char *host_error,
                                guint attempts, const char *last_error,
                                GError **error);

/* --- MigSrcForward: one stream from a local socket to the destination ----- */

/* Listens on a unix socket in the host's namespace and carries the one
 * connection of its kind that libvirt or QEMU makes there to the
 * destination agent over a MigChannel (a second connection is refused:
 * the token admits one stream per kind). Threads: one accepting, one
 * connecting ahead (EARLY), the channel's pumps. */
typedef struct _MigSrcForward MigSrcForward;

/* Called with the error of a stream the forwarder could not carry (the
 * destination unreachable, HELLO refused) or that failed on the way; an
 * abort by mig_src_forward_cut() is none. Runs on a forwarder or pump
 * thread. */
typedef void (*MigSrcForwardErrorFunc) (const GError *error,
                                        gpointer user_data);

typedef struct
{
  const MigSrcConfig *config; /* destination, token, channel options */
  const char *vm;             /* for logs */
  gint64 t0;                  /* the migration's start, for logs */
  GCancellable *stop;         /* cancelled: stop accepting and connecting */
  MigSrcForwardErrorFunc error_func;
  gpointer user_data;
} MigSrcForwardConfig;

/* Listens on PATH (ownership taken; an old socket there is replaced)
 * for a stream of KIND. EARLY: connect to the destination now, so the
 * TLS handshake is done when the local side connects. CONFIG must
 * outlive the forwarder. */
MigSrcForward *mig_src_forward_new (const MigSrcForwardConfig *config,
                                    MigChannelKind kind, char *path,
                                    gboolean early, GError **error);

/* The socket's path. */
const char *mig_src_forward_get_path (MigSrcForward *fwd);

/* The byte counters of its channel; FALSE (STATS untouched) while no
 * stream was carried. */
gboolean mig_src_forward_get_stats (MigSrcForward *fwd, MigChannelStats *stats);

/* Aborts its channel, if there is one (waits for the pumps). */
void mig_src_forward_cut (MigSrcForward *fwd);

/* Waits until DEADLINE_US (monotonic) for its channel to end. TRUE if it
 * has, or if there is none. */
gboolean mig_src_forward_wait (MigSrcForward *fwd, gint64 deadline_us);

/* Stops accepting (the config's STOP must be cancelled), closes what was
 * connected ahead and removes the socket. The channel stays, for its
 * counters. */
void mig_src_forward_stop (MigSrcForward *fwd);

/* Stops and frees, channel included. NULL is fine. */
void mig_src_forward_free (MigSrcForward *fwd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigSrcForward, mig_src_forward_free)

G_END_DECLS
