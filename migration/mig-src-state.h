/* MigSrc's state, shared by mig-src.c (the steps) and mig-src-recover.c
 * (post-copy recovery). */
#pragma once

#include "mig-src-private.h"

G_BEGIN_DECLS

enum
{
  FWD_CONTROL,
  FWD_MEMORY,
  FWD_DISK, /* only with a disk */
  N_FWD
};

/* Shared with libvirt's event thread; freed by the event's freecb. */
typedef struct
{
  gint ref_count;
  GMutex lock;
  guint32 iteration;  /* lock */
  gboolean completed; /* lock */
  MigJobStats final;  /* lock */
} Events;

/* The libvirt call, run on a thread of its own. */
typedef struct
{
  virDomainPtr dom;
  char *dconnuri;
  virTypedParameterPtr params;
  int nparams;
  unsigned int flags;
  GMutex lock;
  GCond cond;
  gboolean done; /* lock */
  int rc;
  GError *error;
} MigCall;

typedef struct
{
  virConnectPtr conn;
  virDomainPtr dom;
  const MigSrcConfig *config;
  const char *vm; /* the domain's name, for logs */
  GCancellable *cancel;
  MigProgressFunc progress;
  gpointer user_data;
  gint64 t0; /* monotonic us at the start */
  gboolean with_disk;

  MigCtl *ctl;          /* made by prepare once the VM is known */
  MigLadder ladder;     /* the rungs armed and applied */
  guint32 throttle_now; /* QEMU's current throttle, % */
  MigCall call;
  GThread *thread; /* running the call */
  Events *ev;
  int ev_iter, ev_done; /* event callback ids, -1 = none */

  GCancellable *stop; /* stops the forwarders */
  MigSrcForwardConfig fwd_config;
  MigSrcForward *fwd[N_FWD];
  GMutex lock;
  GError *channel_error; /* first stream error, lock */

  /* The control loop's state. */
  MigProgress p;
  const char *phase;
  MigJobStats last; /* last sample of a running job */
  gboolean have_last;
  gboolean abort_wanted, abort_sent, channels_cut;
  gint64 abort_sent_us;
  const char *abort_reason;
  gint64 postcopy_us;      /* monotonic: the switch to post-copy, 0 = none */
  gboolean fault_cut_done; /* the post-copy cut fault was applied */
} MigSrc;

/* mig-src.c's steps the recovery reuses. */
gpointer mig_src_call_thread (gpointer data);
gboolean mig_src_prepare_forwarders (MigSrc *src, GError **error);
void mig_src_control (MigSrc *src);
void mig_src_emit (MigSrc *src, const MigJobStats *js);

/* Post-copy recovery (mig-src-recover.c): after the libvirt call failed
 * in post-copy, reconnects the channels and resumes the migration with
 * VIR_MIGRATE_POSTCOPY_RESUME, a few times with backoff. TRUE once it
 * completed; FALSE with ERROR (plain words: the VM is paused on both
 * hosts) when every attempt failed. */
gboolean mig_src_recover (MigSrc *src, GError **error);

G_END_DECLS
