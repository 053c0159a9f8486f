/* MigChannel internals shared by its source files and its tests
 * (frame codec, software crc32c, server-side handshake). */
#pragma once

#include "mig-channel.h"

G_BEGIN_DECLS

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
} MigFrameType;

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

/* Table-driven crc32c (the fallback), exposed to test it against the
 * hardware path. */
guint32 mig_crc32c_sw (guint32 crc, const void *buf, gsize len);

/* Server side of the handshake on a fresh TRANSPORT (ownership taken):
 * reads HELLO, asks AUTH, answers OK or ERROR. */
MigChannel *mig_channel_new_server (MigTransport *transport,
                                    MigChannelAuthFunc auth, gpointer auth_data,
                                    GCancellable *cancellable, GError **error);

/* Transport timeout for blocking I/O (0 = none), used around handshakes. */
void mig_transport_set_timeout (MigTransport *t, guint seconds);

/* TLS (GnuTLS on CONN's socket, TLS 1.3, mutual) as client of HOST, or
 * as server with TIMEOUT_S for the handshake; CONN is referenced. */
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

/* TCP_INFO's busy and receive-window-limited times of FD (FALSE if the
 * kernel has no such fields). */
gboolean mig_tcp_send_times (int fd, guint64 *busy_us,
                             guint64 *rwnd_limited_us);

/* Socket options every channel connection gets (TCP_NODELAY). */
void mig_channel_socket_tune (GSocket *socket);

G_END_DECLS
