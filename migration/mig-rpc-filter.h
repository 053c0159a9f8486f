/* MigRpcFilter: what the destination lets through the libvirt control
 * stream of a migration.
 *
 * The source's libvirtd drives a peer-to-peer migration by calling the
 * destination's libvirtd over the control stream the agents carry. That
 * stream ends at the destination's root libvirtd, so a peer holding a
 * valid token could otherwise call anything there (define a domain,
 * read files through a storage pool, ...). The filter reads the libvirt
 * RPC packet headers in the source-to-destination direction and admits
 * only the calls a peer-to-peer migration makes, plus keepalive; anything
 * else ends the stream. The domain XML a migration brings (the
 * "destination_xml" parameter of Prepare3 and Finish3, and the domains in
 * their cookies) goes to a check the caller provides, so that paths in it
 * are the destination's own; so does every other parameter of those two
 * calls (their URIs name sockets the destination QEMU creates).
 *
 * Wire format (libvirt's src/rpc/virnetprotocol.x): each packet is a
 * 4-byte big-endian length that counts itself, then a header of six
 * 4-byte big-endian fields (program, version, procedure, type, serial,
 * status), then the XDR body.
 *
 * Pure code: bytes in, a verdict out. No sockets, no libvirt.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MIG_RPC_REMOTE_PROGRAM 0x20008086u
#define MIG_RPC_REMOTE_VERSION 1u
#define MIG_RPC_KEEPALIVE_PROGRAM 0x6b656570u
#define MIG_RPC_KEEPALIVE_VERSION 1u
#define MIG_RPC_KEEPALIVE_PING 1
#define MIG_RPC_KEEPALIVE_PONG 2

/* Message types (virNetMessageType). */
#define MIG_RPC_TYPE_CALL 0
#define MIG_RPC_TYPE_MESSAGE 2

/* The remote program's procedures a peer-to-peer migration calls on the
 * destination (libvirt's src/remote/remote_protocol.x). Seen on the
 * destination's control stream with libvirt 9.0, migrating with and
 * without a disk copy (VIR_MIGRATE_LIVE | PEER2PEER | PERSIST_DEST |
 * UNDEFINE_SOURCE [| NON_SHARED_DISK]), in this order: AUTH_LIST,
 * SUPPORTS_FEATURE, CONNECT_OPEN, SUPPORTS_FEATURE (twice),
 * REGISTER_CLOSE_CALLBACK, SUPPORTS_FEATURE (three times), PREPARE3_PARAMS,
 * FINISH3_PARAMS, UNREGISTER_CLOSE_CALLBACK, CONNECT_CLOSE; and the
 * keepalive program's PING and PONG, which the source's libvirtd uses on
 * that connection once it has been idle for its keepalive interval. */
#define MIG_RPC_PROC_CONNECT_OPEN 1
#define MIG_RPC_PROC_CONNECT_CLOSE 2
#define MIG_RPC_PROC_CONNECT_SUPPORTS_FEATURE 60
#define MIG_RPC_PROC_AUTH_LIST 66
#define MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS 303
#define MIG_RPC_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS 306
#define MIG_RPC_PROC_CONNECT_REGISTER_CLOSE_CALLBACK 360
#define MIG_RPC_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK 361

/* Packets longer than this are refused: migration calls carry a cookie
 * and a domain XML, far below it. */
#define MIG_RPC_MAX_PACKET (4 * 1024 * 1024)

/* Checks an XML document a migration call brings: WHAT is
 * "destination_xml" or "persistent_xml" (a domain, from Prepare3's
 * parameters) or "cookie" (libvirt's migration cookie of Prepare3 or
 * Finish3, which may hold the persistent domain definition). FALSE with
 * ERROR refuses the call (and so ends the stream). XML is NUL-terminated
 * and at most MIG_RPC_MAX_PACKET long. */
typedef gboolean (*MigRpcXmlCheckFunc) (const char *what, const char *xml,
                                        gpointer user_data, GError **error);

typedef struct _MigRpcFilter MigRpcFilter;

/* Checks one typed parameter of Prepare3 or Finish3 (CALL is "Prepare3"
 * or "Finish3"): NAME, its virTypedParameterType TYPE and, for a string,
 * VALUE (NUL-terminated; NULL for other types). Called for every
 * parameter, before the XML check of the XML ones. FALSE with ERROR
 * refuses the call (and so ends the stream). */
typedef gboolean (*MigRpcParamCheckFunc) (const char *call, const char *name,
                                          int type, const char *value,
                                          gpointer user_data, GError **error);

/* CHECK may be NULL (tests): then the XML of migration calls is not
 * checked. */
MigRpcFilter *mig_rpc_filter_new (MigRpcXmlCheckFunc check, gpointer user_data);
/* Adds a check of every parameter of the migration calls (none by
 * default). */
void mig_rpc_filter_set_param_check (MigRpcFilter *filter,
                                     MigRpcParamCheckFunc check,
                                     gpointer user_data);
void mig_rpc_filter_free (MigRpcFilter *filter);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (MigRpcFilter, mig_rpc_filter_free)

/* Feeds LEN more bytes of the source-to-destination stream and appends
 * to OUT what may be passed on to libvirtd now. A packet's bytes are held
 * until its header has been read and, for Prepare3 and Finish3, until
 * its whole body has been checked, so nothing of a refused packet ever
 * reaches libvirtd. FALSE with ERROR (MIG_ERROR_RPC_REFUSED, naming the
 * program and procedure) once a packet is refused; after that every call
 * fails the same way. */
gboolean mig_rpc_filter_feed (MigRpcFilter *filter, const guint8 *buf,
                              gsize len, GByteArray *out, GError **error);

/* Packets admitted so far (for logs and tests). */
guint64 mig_rpc_filter_get_packets (MigRpcFilter *filter);

G_END_DECLS
