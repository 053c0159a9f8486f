/* Live migration driven by the agents (the part around QEMU's pre-copy).
 *
 * - MigCtl (mig-controller.c): the convergence policy. Pure: fed with job
 *   statistics samples, it records rounds and decides when to raise the
 *   downtime limit, when to force a switchover (pause) and when to abort.
 *   No libvirt, so it is unit-tested with synthetic sequences.
 * - mig_src_run (mig-src.c): the source side, the steps of one MigSrc:
 *   prepare, virDomainMigrateToURI3 on a thread, the controller loop,
 *   the results. A MigSrcForward (mig-src-forward.c) per unix socket in
 *   the host's namespace (libvirt control connection, QEMU memory
 *   stream and, for a VM with a local disk, QEMU's NBD stream of the
 *   disk copy) carries the connection accepted there to the destination
 *   agent over a MigChannel.
 * - MigDst (mig-dst.c): the destination side. A MigChannelListener that
 *   accepts the streams of expected migrations (one-time tokens bound to
 *   the job and the source host's certificate) and connects them to the
 *   local libvirtd socket (through a MigRpcFilter: only a migration's
 *   calls), the destination QEMU's incoming socket and its NBD socket.
 * - mig-libvirt.c: libvirt glue (errors, XML rewriting, job statistics)
 *   and the job's socket paths.
 *
 * Where each runs: mig_src_* on the source agent, mig_dst_* on the
 * destination agent; both agents run inside their host's mount namespace,
 * so the socket paths below are the host's own.
 */
#pragma once

#include <libvirt/libvirt.h>

#include "mig-channel.h"
#include "mig.h"

G_BEGIN_DECLS

/* Where libvirt lets QEMU create/connect its migration socket, and where
 * libvirtd listens, inside each host's namespace. */
#define MIG_QEMU_SOCK_DIR "/var/lib/libvirt/qemu"
#define MIG_CTL_SOCK_DIR "/run/libvirt"
#define MIG_LIBVIRT_SOCK "/run/libvirt/libvirt-sock"
#define MIG_SOCK_PREFIX "drover-mig-"
/* The one disk Drover gives a VM (agent-domain-xml.c), the only one a
 * migration copies. */
#define MIG_DISK_TARGET "vda"

#define MIG_INITIAL_DOWNTIME_MS 50
#define MIG_DEFAULT_DOWNTIME_STEPS 5
#define MIG_DEFAULT_STALL_ROUNDS 3
#define MIG_DEFAULT_TIMEOUT_PER_GIB_S 800
#define MIG_MIN_TIMEOUT_MS (10 * 1000)
#define MIG_MAX_TIMEOUT_MS (6 * 3600 * 1000)
#define MIG_POLL_MS 250
/* The throttle rung (issue 17). The default ceiling is 80 %: QEMU's
 * throttle sleeps a vCPU pct/(100-pct) x 10 ms per 10 ms it runs, so at
 * 80 % the guest stalls for 40 ms at a time (heartbeats stay far below
 * the 500 ms downtime limit) while its dirty rate falls to a fifth; at
 * 99 % it would sleep ~1 s at a time, a pause in all but name, and then
 * the forced switchover's single pause is the better rung. The first
 * raise is at least MIG_THROTTLE_MIN_PCT (below that TCG guests' dirty
 * rate hardly moves), each later one at least MIG_THROTTLE_MIN_STEP. */
#define MIG_DEFAULT_MAX_THROTTLE_PCT 80
#define MIG_MAX_THROTTLE_PCT 99
#define MIG_THROTTLE_MIN_PCT 20
#define MIG_THROTTLE_MIN_STEP 10
/* A raise gets this many rounds to show before the next on poor
 * progress (QEMU applies a new ceiling at its next throttle trigger,
 * after two bitmap syncs with a high dirty rate). */
#define MIG_THROTTLE_SETTLE_ROUNDS 2

/* The ladder's rungs, as the job and the summary name them. */
#define MIG_RUNG_PRECOPY "precopy"   /* the initial limit, nothing climbed */
#define MIG_RUNG_DOWNTIME "downtime" /* the downtime limit raised */
#define MIG_RUNG_THROTTLE "throttle" /* vCPUs throttled (auto-converge) */
#define MIG_RUNG_POSTCOPY                                                      \
  "postcopy" /* post-copy: the guest runs on the                               \
                destination, pages on demand */
#define MIG_RUNG_POSTCOPY_RECOVER                                              \
  "postcopy-recover" /* post-copy broke off: channels reconnected and the      \
                        migration resumed (one per attempt) */
#define MIG_RUNG_FORCED "forced" /* guest paused: forced switchover */
#define MIG_RUNG_ABORT "abort"   /* given up: VM stays on the source */

/* Post-copy recovery (mig-recover.c): after a break the source tries
 * MIG_RECOVER_ATTEMPTS times, waiting mig_recover_backoff_ms () before
 * each attempt. */
#define MIG_RECOVER_ATTEMPTS 4
typedef enum
{
  MIG_RECOVER_RETRY,     /* paused, post-copy failed: try (again) */
  MIG_RECOVER_SPENT,     /* every attempt made */
  MIG_RECOVER_NOT_PAUSED /* the source VM is not in a resumable state */
} MigRecoverVerdict;
/* The wait before attempt ATTEMPT (1-based): 1 s, doubling, at most 8 s. */
guint mig_recover_backoff_ms (guint attempt);
/* Whether to make another attempt after ATTEMPTS_DONE, the source
 * domain being in libvirt STATE with REASON (virDomainGetState). */
MigRecoverVerdict mig_recover_next (guint attempts_done, int state, int reason);

/* TRUE if JOB_ID can name sockets: 1-64 of [A-Za-z0-9_-]. */
gboolean mig_job_id_valid (const char *job_id);

/* "/var/lib/libvirt/qemu/drover-mig-JOB.sock" (memory stream, both hosts)
 * and "/run/libvirt/drover-mig-JOB-ctl.sock" (control, source only). */
char *mig_mem_sock_path (const char *job_id);
char *mig_ctl_sock_path (const char *job_id);
/* "/var/lib/libvirt/qemu/drover-mig-JOB-disk.sock": the NBD stream of a
 * disk copy. The destination QEMU's NBD server listens there in the
 * destination's namespace; the source QEMU connects to the same path in
 * the source's namespace, where the source agent listens. */
char *mig_disk_sock_path (const char *job_id);

/* Removes leftover drover-mig-* sockets in both directories (an agent
 * that starts has no migration running). Returns how many it removed. */
guint mig_sweep_sockets (void);

/* --- convergence controller (pure policy) --------------------------------- */

/* When the post-copy rung is used (issue 17). */
typedef enum
{
  MIG_POSTCOPY_NEVER = 0, /* no post-copy: a stall at the throttle's
                             ceiling forces the pause */
  MIG_POSTCOPY_AUTO,      /* post-copy instead of the forced pause */
  MIG_POSTCOPY_NOW,       /* post-copy once the first full pass is done */
} MigPostcopyMode;

/* Parses "never", "auto" or "now" (PROTO_MIG_POSTCOPY_*) into *MODE;
 * FALSE for anything else. */
gboolean mig_postcopy_mode_parse (const char *text, MigPostcopyMode *mode);

typedef struct
{
  guint32 initial_downtime_ms; /* first limit set (50) */
  guint32 max_downtime_ms;     /* raised in steps up to this
                                  (PROTO_MIG_DEFAULT_MAX_DOWNTIME_MS) */
  guint32 downtime_steps;      /* number of raises (5), one per round
                                * with poor progress */
  guint32 stall_rounds;        /* rounds without progress -> force (3) */
  guint64 timeout_ms;          /* abort after this (timeout_per_gib x RAM) */
  guint32 max_throttle_pct;    /* throttle rung's ceiling; 0 = no throttle
                                  rung (mig_ctl_config_init's default: the
                                  source sets it once auto-converge is
                                  armed) */
  MigPostcopyMode postcopy;    /* post-copy rung (NEVER unless the source
                                  started the migration able to switch) */
} MigCtlConfig;

/* Fills CONFIG from the request's knobs (0 = default) and the guest's
 * RAM: timeout = TIMEOUT_PER_GIB_S x RAM in GiB, clamped to
 * [MIG_MIN_TIMEOUT_MS, MIG_MAX_TIMEOUT_MS]. */
void mig_ctl_config_init (MigCtlConfig *config, guint64 ram_bytes,
                          guint32 max_downtime_ms, guint32 timeout_per_gib_s,
                          guint32 stall_rounds);

/* One poll of the migration job. */
typedef struct
{
  gint64 elapsed_ms; /* since the migration started */
  guint32 iteration; /* QEMU's pass over memory (1 = first full pass) */
  guint64 total;     /* memory bytes */
  guint64 processed;
  guint64 remaining;
  double dirty_rate; /* bytes/s */
  double throughput; /* bytes/s */
} MigCtlSample;

/* One pre-copy round as seen at its first sample. */
typedef struct
{
  guint32 iteration;
  guint64 remaining;
  double dirty_rate;
  double throughput;
  gint64 elapsed_ms;
} MigCtlRound;

typedef enum
{
  MIG_CTL_CONTINUE = 0,
  MIG_CTL_SET_DOWNTIME, /* set the limit to MigCtlDecision.downtime_ms */
  MIG_CTL_FORCE,        /* pause the guest so the last round completes */
  MIG_CTL_ABORT,        /* give up: cancel the job, VM stays on the source */
  MIG_CTL_THROTTLE,     /* throttle the vCPUs up to .throttle_pct */
  MIG_CTL_POSTCOPY, /* switch to post-copy (virDomainMigrateStartPostCopy) */
} MigCtlAction;

typedef struct
{
  MigCtlAction action;
  guint32 downtime_ms;  /* limit in force after this decision */
  guint32 throttle_pct; /* throttle ceiling in force after it (0 = none) */
  const char *reason;   /* static string for logs and errors */
} MigCtlDecision;

/* One rung climbed: which (MIG_RUNG_*), when, with what. */
typedef struct
{
  const char *rung;
  guint32 throttle_pct;
  guint32 downtime_ms;
  gint64 start_ms;
} MigCtlRung;

typedef struct _MigCtl MigCtl;

MigCtl *mig_ctl_new (const MigCtlConfig *config);
void mig_ctl_free (MigCtl *ctl);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigCtl, mig_ctl_free)

/* The limit to set before the migration starts. */
guint32 mig_ctl_initial_downtime (MigCtl *ctl);

/* Feeds one sample and returns what to do now. A new iteration records a
 * round, raises the limit by one step (until max) if the round made poor
 * progress (remaining not halved since the previous round and not
 * projected to converge within a few rounds) and checks for a stall:
 * remaining bytes at the start of STALL_ROUNDS consecutive rounds not
 * below the best seen -> THROTTLE while the throttle rung has room
 * (config.max_throttle_pct), else FORCE (once). Once the downtime steps
 * are spent, a round with poor progress also raises the throttle (at
 * most every MIG_THROTTLE_SETTLE_ROUNDS rounds). Elapsed >= timeout -> ABORT
 * (once; later calls CONTINUE). Samples without a running job (total == 0) only
 * count for the timeout. */
void mig_ctl_update (MigCtl *ctl, const MigCtlSample *sample,
                     MigCtlDecision *decision);

/* Tells the controller an iteration happened (libvirt's iteration event),
 * so rounds faster than the poll interval still count. */
void mig_ctl_note_iteration (MigCtl *ctl, guint32 iteration);

guint32 mig_ctl_get_downtime (MigCtl *ctl);
/* Records the abort rung (an abort the caller asked for); nothing once
 * post-copy has begun (there is no going back then). */
void mig_ctl_note_abort (MigCtl *ctl, gint64 elapsed_ms);
/* The switch to post-copy the controller asked for failed: the
 * controller forces the pause instead (returns the decision to apply). */
void mig_ctl_postcopy_failed (MigCtl *ctl, gint64 elapsed_ms,
                              MigCtlDecision *decision);
/* A post-copy recovery attempt starts: rung MIG_RUNG_POSTCOPY_RECOVER. */
void mig_ctl_note_recover (MigCtl *ctl, gint64 elapsed_ms);
/* TRUE once the controller switched to post-copy. */
gboolean mig_ctl_get_postcopy (MigCtl *ctl);
/* The throttle ceiling the controller set (0 = not throttling). */
guint32 mig_ctl_get_throttle (MigCtl *ctl);
/* The current rung (MIG_RUNG_*, static). */
const char *mig_ctl_get_rung (MigCtl *ctl);
/* Rungs climbed so far, in order (array of MigCtlRung, owned by CTL); a
 * rung lasts until the next one's start_ms or the end. */
const GArray *mig_ctl_get_rungs (MigCtl *ctl);
/* Throttle percentage that brings DIRTY_RATE (measured under CURRENT_PCT
 * of throttle) down to half of THROUGHPUT: 1 - (1 - cur) x T / 2D,
 * rounded up to 5 %, at least MIG_THROTTLE_MIN_PCT and CURRENT_PCT +
 * MIG_THROTTLE_MIN_STEP, at most CEILING. */
guint32 mig_ctl_throttle_for (double dirty_rate, double throughput,
                              guint32 current_pct, guint32 ceiling);
gboolean mig_ctl_get_forced (MigCtl *ctl);
gboolean mig_ctl_get_aborted (MigCtl *ctl);
/* Rounds recorded so far (array of MigCtlRound, owned by CTL). */
const GArray *mig_ctl_get_rounds (MigCtl *ctl);
/* Seconds to completion for SAMPLE: remaining / (throughput - dirty rate)
 * while that converges, remaining / throughput otherwise; -1 unknown. */
double mig_ctl_eta (const MigCtlSample *sample);

/* --- libvirt glue (mig-libvirt.c) ----------------------------------------- */

/* Sets ERROR (MIG_ERROR, CODE) from libvirt's last error of this thread,
 * prefixed by FORMAT. */
void mig_libvirt_error (GError **error, int code, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

/* Rewrites domain XML for the destination: the path of every
 * file-backed serial or console becomes NEW_CONSOLE, and the source of
 * every file disk NEW_DISK, its backingStore dropped (each only when
 * given). libxml2 tree edits only. */
char *mig_xml_rewrite (const char *xml, const char *new_console,
                       const char *new_disk, GError **error);
/* The same, and the source of every file cdrom (a cloud-init seed)
 * becomes NEW_SEED when given; without it cdroms are left as they are
 * (mig_xml_rewrite never gives them the disk's path). */
char *mig_xml_rewrite_seed (const char *xml, const char *new_console,
                            const char *new_disk, const char *new_seed,
                            GError **error);

/* Reads a job's statistics into SAMPLE (+ downtime/bytes when present).
 * Returns FALSE when no job is running (or on error). */
typedef struct
{
  int type; /* virDomainJobType */
  MigCtlSample sample;
  guint64 downtime_ms;    /* VIR_DOMAIN_JOB_DOWNTIME, 0 if absent */
  guint64 data_processed; /* VIR_DOMAIN_JOB_DATA_PROCESSED */
  guint64 time_elapsed_ms;
  guint64 disk_total;     /* VIR_DOMAIN_JOB_DISK_TOTAL (storage copy) */
  guint64 disk_processed; /* VIR_DOMAIN_JOB_DISK_PROCESSED */
  guint32 throttle_pct;   /* VIR_DOMAIN_JOB_AUTO_CONVERGE_THROTTLE */
} MigJobStats;
void mig_job_stats_parse (virTypedParameterPtr params, int nparams,
                          MigJobStats *stats);
gboolean mig_job_stats_get (virDomainPtr dom, unsigned int flags,
                            MigJobStats *stats);

/* --- source --------------------------------------------------------------- */

typedef struct
{
  const char *job_id;
  const char *channel_host; /* destination migration listener */
  guint16 channel_port;
  const char *dest_host; /* with TLS, the listener's certificate must be
                            this host's; NULL: any host */
  const char *token;
  MigChannelCreds *creds;  /* NULL: plain TCP (tests only) */
  gint qemu_uid, qemu_gid; /* QEMU's user and group: the memory and disk
                              sockets are 0660 root:qemu_gid and admit
                              root and qemu_uid; the control socket 0600
                              and root only (-1: root) */
  const char *dest_console_path;
  const char *dest_disk_path; /* NULL/"" = no disk; else MIG_DISK_TARGET
                                 is copied there (non-shared storage) */
  gboolean disk_incremental;  /* only the disk's top image is copied: the
                                 destination has its backing chain
                                 (VIR_MIGRATE_NON_SHARED_INC) */
  MigCompressMode compress;
  guint64 bandwidth_bps; /* channel rate limit, 0 = none */
  guint32 max_downtime_ms, timeout_per_gib_s, stall_rounds; /* 0 = default */
  guint32 initial_downtime_ms; /* first limit; 0 = MIG_INITIAL_DOWNTIME_MS */
  guint32 max_throttle_pct;    /* throttle rung's ceiling, 0 = default
                                  (MIG_DEFAULT_MAX_THROTTLE_PCT) */
  gboolean no_throttle;        /* no throttle rung: stall -> forced pause */
  MigPostcopyMode postcopy;    /* the post-copy rung (NEVER: none) */
  guint64 fault_cut_memory_at; /* tests: cut the memory stream at this many
                                  bytes written (0 = off) */
  const char *dest_seed_path;  /* NULL = no cdrom; else where the VM's
                                  cloud-init seed is on the destination
                                  (its agent made it; not copied) */
  guint fault_cut_postcopy_ms; /* tests: cut the memory stream this long
                                  after the switch to post-copy, once
                                  (0 = off) */
} MigSrcConfig;

typedef struct
{
  const char *phase; /* PROTO_MIG_PREPARING, _PRECOPY, _SWITCHOVER, then
                        one of the final _COMPLETED, _ABORTED, _FAILED */
  guint64 memory_total, memory_processed, memory_remaining;
  guint64 disk_total, disk_processed; /* storage copy, 0 without a disk */
  guint32 iteration;
  double dirty_rate, throughput, eta_s;
  guint32 downtime_limit_ms;
  gboolean forced_switchover;
  guint64 wire_bytes, payload_bytes;
  double compression_ratio;
  const char *compress_mode; /* PROTO_COMPRESS_LZ4 or PROTO_COMPRESS_OFF */
  const GArray *rounds;      /* MigCtlRound */
  const char *rung;          /* MIG_RUNG_*: the ladder's current rung */
  guint32 throttle_pct;      /* vCPU throttle QEMU applies now */
  const GArray *rungs;       /* MigCtlRung climbed so far */
  /* final */
  double total_s;
  guint64 downtime_ms, qemu_bytes;
  const char *error;
  gint64 elapsed_ms;
  gboolean final;
} MigProgress;

/* Called on the migration thread at least every 500 ms and once at the
 * end (final = TRUE). P and what it points to live only for the call. */
typedef void (*MigProgressFunc) (const MigProgress *p, gpointer user_data);

/* Migrates DOM (on CONN, the source's libvirtd) to the destination that
 * CONFIG names, blocking until the migration has ended. Returns TRUE when
 * the VM runs on the destination (and is undefined here); FALSE with
 * ERROR otherwise, and then the VM runs here (resumed if the controller
 * had paused it). Cancelling CANCEL aborts the libvirt job. Every socket
 * and forwarder it made is gone when it returns. */
gboolean mig_src_run (virConnectPtr conn, virDomainPtr dom,
                      const MigSrcConfig *config, GCancellable *cancel,
                      MigProgressFunc progress, gpointer user_data,
                      GError **error);

/* --- destination ---------------------------------------------------------- */

typedef struct _MigDst MigDst;

/* The control stream of JOB_ID has ended (libvirt on the source closed
 * its connection to our libvirtd: the migration is over, one way or the
 * other). ERROR is the channel's error or NULL; MIG_ERROR_RPC_REFUSED
 * when the stream carried a call that is not part of a migration. Runs
 * on a channel thread: hand real work to another thread. */
typedef void (*MigDstEndFunc) (const char *job_id, const GError *error,
                               gpointer user_data);

/* Checks what a migration JOB_ID brings in its Prepare3 and Finish3
 * calls: WHAT is "destination_xml" or "persistent_xml" (a domain),
 * "cookie" (libvirt's migration cookie, which may hold the persistent
 * domain) or "destination_name" (the name the domain gets here); VALUE is
 * the XML or the name. FALSE with ERROR refuses the call, and the control
 * stream ends before it reaches libvirtd. Runs on a channel thread. */
typedef gboolean (*MigDstCheckFunc) (const char *job_id, const char *what,
                                     const char *value, gpointer user_data,
                                     GError **error);

/* An image stream (MIG_CHANNEL_KIND_IMAGE) of JOB_ID was accepted: FD
 * (ownership passed) is the local end of its channel, a stream socket:
 * what the peer sends is read from it, the answer written to it. Runs
 * on a handshake thread: hand the work to another thread. */
typedef void (*MigDstStreamFunc) (const char *job_id, int fd,
                                  gpointer user_data);

typedef struct
{
  MigChannelCreds *creds;   /* NULL: plain TCP (tests only) */
  const char *address;      /* IP to listen on */
  guint16 port;             /* 0 = any */
  const char *libvirt_sock; /* NULL = MIG_LIBVIRT_SOCK */
  MigDstEndFunc ended;
  MigDstCheckFunc check;  /* NULL: domain XML and names unchecked */
  MigDstStreamFunc image; /* NULL: image streams are refused */
  gpointer user_data;
} MigDstConfig;

/* Listens for the streams of expected migrations. Each control stream
 * passes through a MigRpcFilter on its way to libvirtd: only the calls a
 * peer-to-peer migration makes, their parameters limited to the ones
 * Drover's migrations use (the memory and disk URIs naming this job's
 * sockets), their XML and names through CONFIG->check. */
MigDst *mig_dst_new (const MigDstConfig *config, GError **error);
guint16 mig_dst_get_port (MigDst *dst);

/* New connections handshake with CREDS from now on (a reload). */
void mig_dst_set_creds (MigDst *dst, MigChannelCreds *creds);

/* Expects migration JOB_ID from host SOURCE_HOST (with TLS, only a host
 * certificate with that CN may open its streams; NULL: any peer): returns
 * a fresh token (caller frees) that admits one control and one memory
 * stream within TTL_MS, and one disk stream (connected to
 * mig_disk_sock_path) when WITH_DISK. MIG_ERROR_INVALID for a job id
 * that is not valid or is expected already. */
char *mig_dst_expect (MigDst *dst, const char *job_id, const char *source_host,
                      gboolean with_disk, guint ttl_ms, GError **error);
/* mig_dst_expect () for the stream kinds in KINDS (MIG_TOKEN_KIND bits),
 * one stream of each: MIG_CHANNEL_KIND_IMAGE alone for a job that only
 * sends image files (MigDstConfig.image gets them). */
char *mig_dst_expect_kinds (MigDst *dst, const char *job_id,
                            const char *source_host, guint kinds, guint ttl_ms,
                            GError **error);
/* TRUE once a control stream of JOB_ID was accepted. */
gboolean mig_dst_started (MigDst *dst, const char *job_id);
/* Forgets JOB_ID: revokes its token, closes its channels (waiting for the
 * pumps) and removes its memory and disk socket paths. TOKEN, when
 * non-NULL, must match: FALSE with MIG_ERROR_AUTH on a mismatch. An
 * unknown job is fine (TRUE). */
gboolean mig_dst_forget (MigDst *dst, const char *job_id, const char *token,
                         GError **error);
/* Post-copy recovery: closes JOB_ID's broken streams and admits one
 * control and one memory stream with its token once more, for TTL_MS.
 * FALSE for an unknown job or one with a disk stream (no post-copy). */
gboolean mig_dst_rearm (MigDst *dst, const char *job_id, guint ttl_ms);
/* Stops listening, forgets every job. */
void mig_dst_free (MigDst *dst);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigDst, mig_dst_free)

G_END_DECLS
