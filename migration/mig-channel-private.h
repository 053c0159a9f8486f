/* MigChannel internals shared by its source files (mig-channel*.c) and
 * its tests: the channel struct, the frame codec and frame I/O, the
 * server-side handshake, transport helpers. */
#pragma once

#include "mig-auto.h"
#include "mig-channel.h"

G_BEGIN_DECLS

/* --- frames and CRC32C (mig-channel-frame.c) ------------------------------ */

#define MIG_FRAME_MAGIC 0x43565244u /* "DRVC" little-endian */
#define MIG_FRAME_VERSION 1
#define MIG_FRAME_FLAG_COMPRESSED 0x0001u
#define MIG_ERROR_TEXT_MAX 1024 /* ERROR frame payload */

typedef enum
{
  MIG_FRAME_HELLO = 1, /* client -> server: kind u8 + token bytes */
  MIG_FRAME_OK = 2,    /* server -> client: HELLO accepted, empty */
  MIG_FRAME_ERROR = 3, /* either way: UTF-8 reason, then the sender closes */
  MIG_FRAME_DATA = 4,  /* stream bytes (lz4 if flag COMPRESSED) */
  MIG_FRAME_END = 5,   /* sender's local side reached EOF, empty */
  MIG_FRAME_ACK = 6,   /* every frame up to the peer's END checked and
                        * delivered; only now may the peer end cleanly */
  MIG_FRAME_PING = 7,  /* keepalive: nothing to send for a while, empty */
} MigFrameType;

#define MIG_FRAME_TYPE_LAST MIG_FRAME_PING

typedef struct
{
  guint8 type;
  guint8 version;
  guint16 flags;
  guint32 payload_len; /* bytes after decompression */
  guint32 wire_len;    /* bytes that follow the header */
  guint64 seq;
  guint32 crc; /* crc32c of the (decompressed) payload */
} MigFrameHeader;

/* Writes H into OUT (version and header crc filled in). */
void mig_frame_header_encode (const MigFrameHeader *h,
                              guint8 out[MIG_FRAME_HEADER_SIZE]);

/* Parses and checks IN: magic, header crc, version, type, flags, lengths
 * against MAX_LEN and EXPECTED_SEQ. Nothing is allocated; a bad header is
 * a MIG_ERROR_CHANNEL_PROTOCOL error. */
gboolean mig_frame_header_decode (const guint8 in[MIG_FRAME_HEADER_SIZE],
                                  guint64 expected_seq, guint32 max_len,
                                  MigFrameHeader *h, GError **error);

/* Checks the WIRE_LEN bytes of a frame body in WBUF against H (already
 * decoded): decompresses them into PBUF (H->payload_len bytes of room)
 * when H says they are lz4, then checks the payload's crc. *PAYLOAD
 * points at the payload, in WBUF or PBUF. A body that does not
 * decompress to exactly payload_len bytes or fails its crc is a
 * MIG_ERROR_CHANNEL_PROTOCOL error. Nothing is allocated. */
gboolean mig_frame_body_decode (const MigFrameHeader *h, guint8 *wbuf,
                                guint8 *pbuf, guint8 **payload, GError **error);

/* Table-driven crc32c (the fallback), exposed to test it against the
 * hardware path. */
guint32 mig_crc32c_sw (guint32 crc, const void *buf, gsize len);

/* --- the channel ---------------------------------------------------------- */

/* Tests: takes over the adaptive compression policy's inputs and
 * outputs (mig_channel_set_auto_hook()). */
typedef void (*MigChannelDecideFunc) (MigAuto *policy, MigAutoSample *sample,
                                      MigAutoDecision *decision,
                                      gpointer user_data);
typedef struct
{
  /* Called at the end of every window instead of mig_auto_evaluate
   * (POLICY, SAMPLE, DECISION), on the out pump. It may rewrite the
   * measured SAMPLE (synthetic figures), call mig_auto_evaluate() and
   * rewrite the DECISION it gets (a scripted policy); the channel then
   * applies DECISION. */
  MigChannelDecideFunc decide;
  /* Windows end by frame count only, never after MIG_AUTO_WINDOW_NS, so
   * that they hold the same frames however busy the machine is. */
  gboolean frames_only;
  gpointer user_data;
} MigChannelAutoHook;

/* mig-channel.c; the handshake (mig-channel-hello.c) fills in KIND. */
struct _MigChannel
{
  MigTransport *transport;
  MigChannelKind kind;
  GCancellable *cancel;
  int cancel_fd; /* pollable fd of CANCEL, for the local fd waits */

  GMutex write_lock; /* serialises frame writes; guards out_seq, end_sent */
  guint64 out_seq;   /* next sequence number we send */
  gboolean end_sent; /* our END is out: an ACK may come */
  guint64 in_seq;    /* next we expect; handshake, then in pump only */

  /* Set by mig_channel_start(), read-only afterwards. */
  int local_fd;
  MigChannelOptions opts;
  MigChannelDoneFunc done;
  gpointer done_data;
  GThread *out_thread, *in_thread; /* joined by close/free */
  MigChannelAutoHook auto_hook;    /* tests; set before the start */

  GMutex lock; /* guards everything below */
  GCond cond;
  GError *error;       /* first error, sticky */
  gboolean error_weak; /* ERROR is a write failure the peer may explain */
  guint running;       /* pumps still running */
  gboolean started, finished;
  MigChannelStats stats;
};

/* A channel over TRANSPORT (ownership taken), before its handshake. */
MigChannel *mig_channel_new (MigTransport *transport);

/* Tests: installs HOOK (copied) on a channel not started yet. */
void mig_channel_set_auto_hook (MigChannel *ch, const MigChannelAutoHook *hook);

/* Frame I/O over the channel's transport.
 *
 * Writes one frame: header (sequence number out_seq, then incremented)
 * and WIRE_LEN bytes of WIRE. Caller holds write_lock. */
gboolean mig_channel_write_frame (MigChannel *ch, MigFrameType type,
                                  guint16 flags, guint32 payload_len,
                                  guint32 crc, const void *wire,
                                  guint32 wire_len, GCancellable *cancellable,
                                  GError **error);

/* mig_channel_write_frame() of an uncompressed PAYLOAD. Caller holds
 * write_lock. */
gboolean mig_channel_write_simple (MigChannel *ch, MigFrameType type,
                                   const void *payload, guint32 len,
                                   GCancellable *cancellable, GError **error);

/* Reads and fully checks one frame of at most MAX_LEN bytes (sequence
 * number in_seq, then incremented). On success *PAYLOAD points at the
 * payload inside WBUF or PBUF (both MAX_LEN big); nothing of a bad frame
 * is returned. EOF is MIG_ERROR_CHANNEL_CLOSED. */
gboolean mig_channel_read_frame (MigChannel *ch, guint32 max_len,
                                 MigFrameHeader *h, guint8 *wbuf, guint8 *pbuf,
                                 guint8 **payload, GCancellable *cancellable,
                                 GError **error);

/* --- the local fd (mig-channel-local.c) ----------------------------------- */

/* Reads up to LEN bytes of the local fd (0 at its EOF), waiting as needed
 * and sending PING frames while it is quiet; -1 with ERROR when the fd
 * fails, the channel is cancelled, or (*PEER_FAILED set) a PING cannot
 * be sent. The out pump's. */
gssize mig_channel_local_read (MigChannel *ch, void *buf, gsize len,
                               gboolean *peer_failed, GError **error);
/* Writes all LEN bytes to the local fd, waiting as needed. The in
 * pump's. */
gboolean mig_channel_local_write_all (MigChannel *ch, const guint8 *buf,
                                      gsize len, GError **error);
/* Gives socket FD a send buffer that keeps a slow local reader fed. */
void mig_channel_local_sndbuf (int fd);

/* --- tokens (mig-channel-token.c) ----------------------------------------- */

/* A fresh one-time token: 32 random bytes from the kernel, in hex.
 * Owned by the caller. */
char *mig_token_new (void);

/* --- handshake (mig-channel-hello.c) -------------------------------------- */

/* Parses a HELLO frame's payload (LEN bytes): the stream kind and a
 * token of printable ASCII. FALSE (MIG_ERROR_CHANNEL_PROTOCOL "malformed
 * HELLO") for anything else. *TOKEN is the caller's to free. */
gboolean mig_hello_parse (const guint8 *payload, gsize len,
                          MigChannelKind *kind, char **token, GError **error);

/* Server side of the handshake on a fresh TRANSPORT (ownership taken)
 * from PEER: reads HELLO, asks AUTH, answers OK or ERROR. */
MigChannel *mig_channel_new_server (MigTransport *transport,
                                    const MigChannelPeer *peer,
                                    MigChannelAuthFunc auth, gpointer auth_data,
                                    GCancellable *cancellable, GError **error);

/* --- transports (mig-channel-transport.c, mig-channel-tls.c) -------------- */

/* Transport timeout for blocking I/O (0 = none), used around handshakes. */
void mig_transport_set_timeout (MigTransport *t, guint seconds);

/* The start of a transport around INNER (owned), such as the fault
 * transport: the mig_transport_wrapper_* ops pass a call on to INNER
 * unchanged, so a wrapper writes only the ops it changes. */
typedef struct
{
  MigTransport parent;
  MigTransport *inner;
} MigTransportWrapper;

gssize mig_transport_wrapper_read (MigTransport *t, void *buf, gsize len,
                                   GCancellable *cancellable, GError **error);
void mig_transport_wrapper_close (MigTransport *t);
void mig_transport_wrapper_set_timeout (MigTransport *t, guint seconds);
gboolean mig_transport_wrapper_send_times (MigTransport *t, guint64 *busy_us,
                                           guint64 *rwnd_limited_us);
/* Frees INNER (closed already: the wrapper's close reached it) and T. */
void mig_transport_wrapper_free (MigTransport *t);

/* TLS (GnuTLS on CONN's socket, TLS 1.3, mutual) as client of HOST, or
 * as server with TIMEOUT_S for each wait of the handshake; CONN is
 * referenced, CANCELLABLE cancels the handshake. */
MigTransport *mig_transport_tls_client (MigChannelCreds *creds,
                                        GSocketConnection *conn,
                                        const char *host,
                                        GCancellable *cancellable,
                                        GError **error);
MigTransport *mig_transport_tls_server (MigChannelCreds *creds,
                                        GSocketConnection *conn,
                                        guint timeout_s,
                                        GCancellable *cancellable,
                                        GError **error);
/* Who the peer of TLS transport T is (pointing into T, valid while it
 * lives). */
void mig_transport_tls_get_peer (MigTransport *t, MigChannelPeer *peer);

/* TCP_INFO's busy and receive-window-limited times of FD (FALSE if the
 * kernel has no such fields). */
gboolean mig_tcp_send_times (int fd, guint64 *busy_us,
                             guint64 *rwnd_limited_us);

/* Socket options every channel connection gets (TCP_NODELAY). */
void mig_channel_socket_tune (GSocket *socket);

G_END_DECLS
