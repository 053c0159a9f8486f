/* MigChannel: the agent-to-agent migration data path.
 *
 * During a migration the source QEMU (memory stream) and libvirt (control
 * connection) write into unix sockets owned by the source agent; the agents
 * carry each stream to the destination host over one MigChannel per stream.
 * A channel carries ONE bidirectional byte stream between a local fd and a
 * peer connection:
 *
 *   local fd --read--> [out pump: frame, crc32c, lz4?, rate limit] --> peer
 *   local fd <-write-- [in pump: check header, crc32c, unlz4]       <-- peer
 *
 * Transport: TCP with mutual TLS 1.3 (GnuTLS on the socket, records
 * batched per frame; mig-channel-tls.c), or plain TCP for tests, behind an ops
 * table (MigTransportOps) so a fault-injecting transport can be slid in. The
 * connecting side first sends HELLO with a one-time token and the stream kind;
 * the accepting side checks it with a callback (e.g. MigTokenTable) and answers
 * OK or ERROR.
 *
 * Frame: 32-byte little-endian header, then wire_len bytes:
 *   magic u32 | version u8 | type u8 | flags u16 | payload_len u32 |
 *   wire_len u32 | seq u64 | crc32c(payload) u32 | crc32c(header[0..28]) u32
 * Lengths are capped (MIG_FRAME_MAX) before anything is read or allocated;
 * a bad magic/version/header crc/sequence/length/payload crc is a sticky
 * stream error and no byte of a bad frame reaches the local fd.
 *
 * An established channel holds the peer to a rhythm: a side with nothing
 * to send sends a PING frame every keepalive_s, and a channel that
 * receives nothing for idle_timeout_s (or cannot send for as long) fails.
 * What the peer sends may pass a filter (MigChannelOptions.in_filter)
 * before it reaches the local fd: the destination's libvirt control
 * stream passes MigRpcFilter.
 */
#pragma once

#include <gio/gio.h>

#include "mig.h"
#include "proto.h"

G_BEGIN_DECLS

#define MIG_FRAME_HEADER_SIZE 32
#define MIG_FRAME_MAX (1024 * 1024) /* payload and wire length cap */
#define MIG_HELLO_MAX 4096          /* cap before authentication */
#define MIG_TOKEN_MAX 256           /* token bytes in HELLO */
#define MIG_CHANNEL_CHUNK_DEFAULT (256 * 1024)

typedef enum
{
  MIG_CHANNEL_KIND_CONTROL = 1, /* libvirt's migration control connection */
  MIG_CHANNEL_KIND_MEMORY = 2,  /* QEMU's memory stream */
  MIG_CHANNEL_KIND_DISK = 3,    /* QEMU's NBD stream (non-shared storage:
                                   drive-mirror into the destination QEMU's
                                   NBD server) */
  MIG_CHANNEL_KIND_IMAGE = 4,   /* read-only image files sent whole
                                   (agent-image-xfer.c): the destination
                                   agent names and writes them */
} MigChannelKind;

#define MIG_CHANNEL_KIND_LAST MIG_CHANNEL_KIND_IMAGE

/* "control", "memory", "disk", "image" (for logs and errors). */
const char *mig_channel_kind_to_string (MigChannelKind kind);

typedef enum
{
  MIG_COMPRESS_OFF = 0, /* passthrough */
  MIG_COMPRESS_ON,      /* lz4 every frame (raw if not smaller) */
  MIG_COMPRESS_AUTO,    /* lz4 only when it makes the transfer faster */
} MigCompressMode;

/* --- CRC32C (Castagnoli) -------------------------------------------------- */

/* CRC32C of LEN bytes, continuing from CRC (start with 0). Uses the SSE4.2
 * crc32 instruction when the CPU has it, a table otherwise. */
guint32 mig_crc32c (guint32 crc, const void *buf, gsize len);

/* --- Transport: pluggable byte pipe to the peer --------------------------- */

typedef struct _MigTransport MigTransport;

typedef struct
{
  const char *name;
  /* Reads up to LEN bytes: >0 bytes read, 0 on EOF, -1 with ERROR set. */
  gssize (*read) (MigTransport *t, void *buf, gsize len,
                  GCancellable *cancellable, GError **error);
  /* Writes every byte of the vectors or fails. */
  gboolean (*writev_all) (MigTransport *t, GOutputVector *vectors,
                          gsize n_vectors, GCancellable *cancellable,
                          GError **error);
  /* Ends our sending side: the peer reads EOF after what we sent, later
   * writes fail. Blocked reads are woken by cancelling their cancellable.
   * Idempotent; may be called from any thread. */
  void (*close) (MigTransport *t);
  /* Timeout in seconds for blocking I/O, 0 = none. Nullable. */
  void (*set_timeout) (MigTransport *t, guint seconds);
  /* Microseconds the connection has spent with data in flight and, of
   * those, held back by the peer's receive window (TCP_INFO's busy and
   * rwnd-limited times): the share says whether the network or the
   * receiver is what we wait for. FALSE if unknown. Nullable. */
  gboolean (*send_times) (MigTransport *t, guint64 *busy_us,
                          guint64 *rwnd_limited_us);
  void (*free) (MigTransport *t);
} MigTransportOps;

struct _MigTransport
{
  const MigTransportOps *ops;
};

/* Plain transport over a connected GIOStream (a GSocketConnection). Takes
 * a reference on STREAM. */
MigTransport *mig_transport_socket_new (GIOStream *stream);

typedef enum
{
  MIG_FAULT_NONE = 0,
  MIG_FAULT_CUT,      /* fail the write that would cross OFFSET */
  MIG_FAULT_TRUNCATE, /* write exactly OFFSET bytes, then fail (mid-frame) */
  MIG_FAULT_CORRUPT,  /* flip one bit of the byte at OFFSET, carry on */
} MigFaultKind;

/* Fault-injecting transport around INNER (ownership taken). OFFSET counts
 * bytes written through this transport, handshake included. A fired CUT
 * or TRUNCATE fails with MIG_ERROR_CHANNEL_FAULT, and so does every later
 * write; the channel then closes the connection, so the peer sees EOF. */
MigTransport *mig_transport_fault_new (MigTransport *inner, MigFaultKind kind,
                                       guint64 offset);

/* Frees T (closing it first); NULL is fine. */
void mig_transport_free (MigTransport *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigTransport, mig_transport_free)

/* --- TLS credentials and peers ------------------------------------------- */

typedef struct _MigChannelCreds MigChannelCreds;

/* From TLS (copied): its CA and CRL are the only trust for peers, its
 * certificate and key this host's, used as client and as server. Fails if
 * a PEM does not load. */
MigChannelCreds *mig_channel_creds_new_tls (const ProtoTls *tls,
                                            GError **error);
/* mig_channel_creds_new_tls () of DIR/ca.pem, DIR/cert.pem, DIR/key.pem
 * and DIR/crl.pem (optional); G_IO_ERROR_NOT_FOUND naming a file that is
 * missing. */
MigChannelCreds *mig_channel_creds_new (const char *dir, GError **error);
MigChannelCreds *mig_channel_creds_ref (MigChannelCreds *creds);
void mig_channel_creds_unref (MigChannelCreds *creds);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigChannelCreds, mig_channel_creds_unref)

/* Who is at the other end of a channel connection: the subject of the
 * certificate it presented, read with the credentials' ProtoTrust (chain,
 * validity, CRL; O is the role, CN the name). */
typedef struct
{
  gboolean tls;        /* FALSE: plain TCP (tests), nobody identified */
  ProtoRole role;      /* PROTO_ROLE_NONE when not identified */
  const char *name;    /* the CN; NULL when not identified */
  const char *problem; /* why not identified, or NULL */
} MigChannelPeer;

/* Connects to HOST:PORT over TCP and, unless CREDS is NULL (plain, tests
 * only), does a TLS handshake that checks the server's certificate against
 * CREDS' CA and HOST, presenting our own certificate. Returns a socket
 * transport (owned by the caller). */
MigTransport *mig_transport_connect (MigChannelCreds *creds, const char *host,
                                     guint16 port, GCancellable *cancellable,
                                     GError **error);
/* mig_transport_connect (), and with TLS the server's certificate must
 * also be a host certificate whose CN is PEER_HOST (NULL: any role and
 * name). MIG_ERROR_CHANNEL_AUTH when it is not. */
MigTransport *mig_transport_connect_host (MigChannelCreds *creds,
                                          const char *host, guint16 port,
                                          const char *peer_host,
                                          GCancellable *cancellable,
                                          GError **error);

/* --- Tokens: one-time HELLO credentials ----------------------------------- */

typedef struct _MigTokenTable MigTokenTable;

/* The bit of stream kind K in a token's kinds. */
#define MIG_TOKEN_KIND(k) (1u << (k))

MigTokenTable *mig_token_table_new (void);
void mig_token_table_free (MigTokenTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigTokenTable, mig_token_table_free)

/* Issues the token of migration JOB_ID (32 random bytes, hex; the caller
 * frees it): it admits one stream of each kind in KINDS (MIG_TOKEN_KIND
 * bits) within TTL_MS, over TLS only from a host certificate whose CN is
 * PEER (NULL: from anyone). MIG_ERROR_INVALID when JOB_ID has a token
 * already. It stays until mig_token_table_revoke (). */
char *mig_token_table_issue_job (MigTokenTable *table, const char *job_id,
                                 guint kinds, const char *peer, guint ttl_ms,
                                 GError **error);
/* A job-less token for one stream of KIND from anyone, valid once within
 * TTL_MS (tests and the channel bench). */
char *mig_token_table_issue (MigTokenTable *table, MigChannelKind kind,
                             guint ttl_ms);

/* Consumes TOKEN for a stream of KIND from PEER (NULL: unknown): fails
 * (MIG_ERROR_CHANNEL_AUTH) if it is unknown, expired, issued for other
 * kinds, already used for KIND, or bound to another peer. On success
 * *JOB_ID (nullable) is the token's job (NULL for a job-less one; caller
 * frees). Thread-safe. */
gboolean mig_token_table_consume (MigTokenTable *table, MigChannelKind kind,
                                  const char *token, const MigChannelPeer *peer,
                                  char **job_id, GError **error);
/* TRUE if tokens A and B are equal; compares without an early exit so
 * that timing does not leak a prefix. */
gboolean mig_token_equal (const char *a, const char *b);
/* TRUE once a stream of KIND was admitted with JOB_ID's token. */
gboolean mig_token_table_used (MigTokenTable *table, const char *job_id,
                               MigChannelKind kind);
/* Forgets JOB_ID's token; with TOKEN non-NULL only if it is that token
 * (FALSE, and nothing forgotten, otherwise). An unknown job is fine. */
/* Admits the streams of KINDS (MIG_TOKEN_KIND bits) of job JOB_ID's
 * token once more, for TTL_MS from now: a post-copy recovery reconnects
 * them. FALSE if the job has no token here. */
gboolean mig_token_table_rearm (MigTokenTable *table, const char *job_id,
                                guint kinds, guint ttl_ms);
gboolean mig_token_table_revoke (MigTokenTable *table, const char *job_id,
                                 const char *token);

/* --- Channel -------------------------------------------------------------- */

typedef struct _MigChannel MigChannel;

/* Passes LEN bytes the peer sent on their way to the local fd: appends
 * to OUT what may go on now (held bytes come out with later calls).
 * FALSE with ERROR ends the channel (the peer is told why); nothing more
 * reaches the local fd. Runs on the in pump. */
typedef gboolean (*MigChannelFilterFunc) (const guint8 *buf, gsize len,
                                          GByteArray *out, gpointer user_data,
                                          GError **error);

/* Keepalive and idle timeout on an established channel: a side with
 * nothing to send for MIG_CHANNEL_KEEPALIVE_S sends a PING frame; a
 * channel that receives no frame at all for MIG_CHANNEL_IDLE_TIMEOUT_S
 * (or cannot send for as long) fails. */
#define MIG_CHANNEL_KEEPALIVE_S 10
#define MIG_CHANNEL_IDLE_TIMEOUT_S 60

typedef struct
{
  MigCompressMode compress;
  guint64 rate_limit; /* outgoing wire bytes/s; 0 = unlimited */
  guint64 link_rate;  /* auto: link bytes/s if known; 0 = measure */
  gsize chunk_size;   /* local read size = max payload per frame */
  guint keepalive_s;  /* PING after this long with nothing to send; 0 = never */
  guint idle_timeout_s; /* fail after this long without a frame; 0 = never */
  MigChannelFilterFunc in_filter; /* nullable: peer -> local bytes */
  gpointer in_filter_data;
} MigChannelOptions;

/* Off, unlimited, measured link, 256 KiB chunks, keepalive every
 * MIG_CHANNEL_KEEPALIVE_S, idle timeout MIG_CHANNEL_IDLE_TIMEOUT_S, no
 * filter. */
void mig_channel_options_init (MigChannelOptions *opts);

typedef struct
{
  guint64 payload_out, wire_out, frames_out, compressed_frames_out;
  guint64 payload_in, wire_in, frames_in, compressed_frames_in;
  gboolean compressing;  /* current decision for outgoing frames */
  double ratio;          /* payload/lz4 bytes of the last sampled window */
  double compress_speed; /* lz4 input bytes/s of the last window */
  double link_rate;      /* link wire bytes/s the last auto decision used:
                            the configured link_rate, else measured while
                            backpressured (0 = unknown yet) */
  guint decisions;       /* auto evaluations so far */
  double out_blocked;    /* share of the last window the out pump was
                            blocked on the peer or the rate limit */
  double rwnd_limited;   /* share of the last window's sending time the
                            peer's receive window held us back (-1 =
                            unknown): the receiver, not the network, is
                            the bottleneck */
  double in_waiting;     /* ... and waiting for local input */
} MigChannelStats;

/* Called once when the channel has finished: ERROR is NULL for a clean end
 * (both directions reached END: each local side hit EOF and everything
 * before it was flushed), else the first error. Runs on a pump thread:
 * do not free the channel from it. */
typedef void (*MigChannelDoneFunc) (MigChannel *channel, const GError *error,
                                    gpointer user_data);

/* Client side: sends HELLO (KIND, TOKEN) over TRANSPORT (ownership taken,
 * also on failure) and waits for the answer. Returns an unstarted channel,
 * or NULL with the refusal or transport error. */
MigChannel *mig_channel_new_client (MigTransport *transport,
                                    MigChannelKind kind, const char *token,
                                    GCancellable *cancellable, GError **error);

/* mig_transport_connect() + mig_channel_new_client(). */
MigChannel *mig_channel_connect (MigChannelCreds *creds, const char *host,
                                 guint16 port, MigChannelKind kind,
                                 const char *token, GCancellable *cancellable,
                                 GError **error);

/* Starts both pump threads between LOCAL_FD (ownership taken, also on
 * failure; a stream socket normally) and the peer. OPTS may be NULL
 * (defaults). DONE may be NULL (use mig_channel_wait()). */
gboolean mig_channel_start (MigChannel *channel, int local_fd,
                            const MigChannelOptions *opts,
                            MigChannelDoneFunc done, gpointer user_data,
                            GError **error);

/* Blocks until the channel has finished; returns FALSE with a copy of the
 * first error unless it ended cleanly. */
gboolean mig_channel_wait (MigChannel *channel, GError **error);

/* Aborts a running channel (the result becomes MIG_ERROR_CHANNEL_ABORTED
 * unless it had already failed or finished) and waits for the pumps. */
void mig_channel_close (MigChannel *channel);

/* Stream kind announced in HELLO. */
MigChannelKind mig_channel_get_kind (MigChannel *channel);

/* Copies the byte counters and the compression decision. */
void mig_channel_get_stats (MigChannel *channel, MigChannelStats *stats);

/* Closes (aborting if running) and frees. NULL is fine. */
void mig_channel_free (MigChannel *channel);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigChannel, mig_channel_free)

/* --- Listener: accepting side --------------------------------------------- */

typedef struct _MigChannelListener MigChannelListener;

/* Checks a HELLO from PEER; FALSE with ERROR refuses it (the message
 * goes back to the peer). Called on a handshake thread. */
typedef gboolean (*MigChannelAuthFunc) (MigChannelKind kind, const char *token,
                                        const MigChannelPeer *peer,
                                        gpointer user_data, GError **error);
/* An authenticated, unstarted channel (transfer full), on a handshake
 * thread. */
typedef void (*MigChannelAcceptFunc) (MigChannel *channel, gpointer user_data);
/* A connection was refused (TLS, HELLO or auth failure). */
typedef void (*MigChannelRefusedFunc) (const GError *error, gpointer user_data);
/* Tests: wrap each accepted transport (fault injection). */
typedef MigTransport *(*MigTransportWrapFunc) (MigTransport *transport,
                                               gpointer user_data);

/* Connections a listener handshakes at once by default; more are closed
 * at once (a peer is unknown, and costs a thread, until its HELLO is
 * accepted). */
#define MIG_LISTENER_MAX_HANDSHAKES 8

typedef struct
{
  MigChannelCreds *creds;        /* NULL: plain TCP (tests only) */
  const char *address;           /* IP to bind; NULL = 127.0.0.1 */
  guint16 port;                  /* 0 = any free port */
  guint handshake_timeout_s;     /* 0 = 10 s: TLS + HELLO must finish in it,
                                    however slowly the peer trickles */
  guint max_handshakes;          /* 0 = MIG_LISTENER_MAX_HANDSHAKES */
  MigChannelAuthFunc auth;       /* NULL: mig_token_table_consume on TOKENS */
  MigTokenTable *tokens;         /* used when AUTH is NULL (not owned) */
  MigChannelAcceptFunc accept;   /* required */
  MigChannelRefusedFunc refused; /* nullable */
  MigTransportWrapFunc wrap;     /* nullable */
  gpointer user_data;
} MigChannelListenerConfig;

/* Listens on CONFIG->address:port and handshakes each connection on its
 * own thread. CONFIG is copied (creds referenced). */
MigChannelListener *
mig_channel_listener_new (const MigChannelListenerConfig *config,
                          GError **error);

/* The port actually bound. */
guint16 mig_channel_listener_get_port (MigChannelListener *listener);

/* New connections handshake with CREDS (referenced) from now on; those
 * already accepted keep theirs. */
void mig_channel_listener_set_creds (MigChannelListener *listener,
                                     MigChannelCreds *creds);

/* Stops accepting, waits for running handshakes, frees. */
void mig_channel_listener_free (MigChannelListener *listener);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigChannelListener, mig_channel_listener_free)

G_END_DECLS
