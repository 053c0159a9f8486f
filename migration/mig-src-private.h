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
