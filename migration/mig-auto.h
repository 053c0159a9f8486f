/* MigAuto: the adaptive-lz4 policy of a MigChannel (MIG_COMPRESS_AUTO).
 *
 * Pure: no sockets, no clock, no locks. The channel's out pump measures
 * each window of frames it sends (MigAutoSample: bytes, time blocked on
 * either side, an lz4 sample, the transport's TCP figures) and feeds it
 * in; the policy answers whether the next frames go out lz4-compressed
 * and why (MigAutoDecision). How it decides is described in mig-auto.c.
 * One policy per channel direction, used from the out pump only.
 */
#pragma once

#include "mig-channel.h"

G_BEGIN_DECLS

/* Windows: a decision after this many frames or this long, whichever
 * comes first; the first MIG_AUTO_SHORT_WINDOWS windows are only
 * MIG_AUTO_SHORT_WINDOW_FRAMES long (the first sample may be a small,
 * cold-cache frame). */
#define MIG_AUTO_WINDOW_FRAMES 64
#define MIG_AUTO_SHORT_WINDOWS 4
#define MIG_AUTO_SHORT_WINDOW_FRAMES 8
#define MIG_AUTO_WINDOW_NS (100 * G_GINT64_CONSTANT (1000000))
/* While off, the first frame of each window is still lz4'd, this much of
 * it at most, so that the ratio and lz4 speed stay current. */
#define MIG_AUTO_SAMPLE_MAX (64 * 1024)

/* Decision thresholds, paired for hysteresis. */
#define MIG_AUTO_RATIO_ON 1.2    /* payload/lz4 bytes needed to turn on */
#define MIG_AUTO_RATIO_OFF 1.15  /* ... and below which it turns off */
#define MIG_AUTO_GAIN_ON 1.15    /* predicted speed-up needed to turn on */
#define MIG_AUTO_GAIN_OFF 1.05   /* ... and below which it turns off */
#define MIG_AUTO_BLOCKED_MIN 0.3 /* share of a window blocked on the peer */
#define MIG_AUTO_RWND_BOUND 0.25 /* share of sending time the receiver held */
/* Sending time a window's receiver share needs (the kernel counts in
 * jiffies). */
#define MIG_AUTO_RWND_MIN_US 8000
#define MIG_AUTO_CARRY 0.9       /* hint: demand reaches the link at L*this */
#define MIG_AUTO_CONFIRM 2       /* windows in a row that must agree */
#define MIG_AUTO_BACKOFF_MIN 8   /* windows off after lz4 did not pay, ... */
#define MIG_AUTO_BACKOFF_MAX 128 /* ... doubling per failed try up to this */

/* What the channel measured over one window. The first decision comes
 * before any frame is sent: FRAMES is 0 then and only the lz4 sample of
 * the first frame counts. */
typedef struct
{
  gint64 window_ns;         /* wall time since the previous decision */
  guint frames;             /* DATA frames sent in the window */
  guint64 payload_bytes;    /* their payload */
  guint64 wire_bytes;       /* their bytes on the wire, headers included */
  gint64 in_wait_ns;        /* blocked reading the local fd (no data yet) */
  gint64 out_wait_ns;       /* blocked writing to the peer or sleeping for
                               the rate limit */
  guint64 lz4_in;           /* bytes lz4 was given (0 = no sample) */
  guint64 lz4_out;          /* ... and what it made of them */
  gint64 lz4_ns;            /* thread CPU time lz4 took for them */
  gboolean have_send_times; /* the two totals below are known */
  guint64 busy_us;          /* the connection's TCP_INFO busy time and */
  guint64 rwnd_limited_us;  /* receive-window-limited time, totals */
} MigAutoSample;

typedef enum
{
  MIG_AUTO_FORCED,         /* mode ON: always lz4, figures only */
  MIG_AUTO_PAYS,           /* the link is the bottleneck and lz4 makes the
                              transfer faster */
  MIG_AUTO_NO_DEMAND,      /* the link is not the bottleneck: not blocked
                              on the peer, or below the hint */
  MIG_AUTO_RECEIVER_BOUND, /* blocked by the receiver's window, not the
                              link: lz4 would only spend CPU */
  MIG_AUTO_LINK_UNKNOWN,   /* no hint and no backpressured window yet */
  MIG_AUTO_INCOMPRESSIBLE, /* the sampled ratio is too low */
  MIG_AUTO_TOO_SLOW,       /* lz4 is too slow for this link to gain */
  MIG_AUTO_NOT_PAYING,     /* lz4 ran but the payload moved no faster
                              than the raw link carries */
  MIG_AUTO_BACKING_OFF,    /* after a failed trial: waiting to try again */
  MIG_AUTO_CONFIRMING,     /* wants to switch, waiting for
                              MIG_AUTO_CONFIRM windows that agree */
} MigAutoReason;

typedef struct
{
  gboolean compress;    /* lz4 for the frames until the next decision */
  MigAutoReason reason; /* why */
  /* The figures it used. */
  double ratio;          /* payload/lz4 bytes of the last sample */
  double compress_speed; /* lz4 input bytes/s of the last sample */
  double link_rate;      /* link wire bytes/s (0 = unknown) */
  double gain;           /* predicted speed-up with lz4 */
  double payload_rate;   /* payload bytes/s of the window */
  double wire_rate;      /* wire bytes/s of the window */
  double out_blocked;    /* share of the window blocked on the output */
  double in_waiting;     /* ... and waiting for local input */
  double rwnd_limited;   /* share of its sending time the receiver's
                            window held us back (-1 = unknown) */
  gboolean backpressured;
  guint backoff; /* windows before lz4 may be tried again */
} MigAutoDecision;

typedef struct _MigAuto MigAuto;

/* A policy for MODE (ON or AUTO; ON only keeps the figures current)
 * with the channel's link_rate hint (bytes/s, 0 = measure) and
 * rate_limit (0 = none), which caps the link. */
MigAuto *mig_auto_new (MigCompressMode mode, guint64 link_rate,
                       guint64 rate_limit);
void mig_auto_free (MigAuto *a);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigAuto, mig_auto_free)

/* TRUE when a window of FRAMES frames that has lasted ELAPSED_NS is
 * complete and its sample is due. */
gboolean mig_auto_window_full (const MigAuto *a, guint frames,
                               gint64 elapsed_ns);

/* Feeds the sample of one window and fills DECISION. */
void mig_auto_evaluate (MigAuto *a, const MigAutoSample *sample,
                        MigAutoDecision *decision);

/* Decisions made so far. */
guint mig_auto_get_evaluations (const MigAuto *a);

/* "pays", "receiver-bound", ...: for logs and tests. */
const char *mig_auto_reason_to_string (MigAutoReason reason);

G_END_DECLS
