/* libdrover-proto: protobuf-c messages over gRPC core, driven from a GLib
 * main context.
 *
 * One completion-queue thread per ProtoServer / ProtoClient blocks in
 * grpc_completion_queue_next() and hands every event to the GMainContext
 * given at creation (an idle GSource per event). All callbacks below run
 * in that context, never in the gRPC thread.
 *
 * Messages are protobuf-c messages; methods are named by the service
 * descriptor protoc-c generates plus the method index (the
 * DROVER_*_METHOD_* constants below), which gives the wire path
 * "/drover.v1.<Service>/<Method>" and the message types.
 */
#pragma once

#include <glib.h>
#include <protobuf-c/protobuf-c.h>

#include "drover.pb-c.h"
#include "proto-metrics.h"
#include "proto-names.h"

G_BEGIN_DECLS

/* Errors carry the gRPC status code (grpc_status_code values) as code. */
#define PROTO_ERROR (proto_error_quark ())
GQuark proto_error_quark (void);

/* Same numbers as grpc_status_code, so callers need not include grpc.h. */
typedef enum
{
  PROTO_STATUS_OK = 0,
  PROTO_STATUS_CANCELLED = 1,
  PROTO_STATUS_UNKNOWN = 2,
  PROTO_STATUS_INVALID_ARGUMENT = 3,
  PROTO_STATUS_DEADLINE_EXCEEDED = 4,
  PROTO_STATUS_NOT_FOUND = 5,
  PROTO_STATUS_ALREADY_EXISTS = 6,
  PROTO_STATUS_PERMISSION_DENIED = 7,
  PROTO_STATUS_RESOURCE_EXHAUSTED = 8,
  PROTO_STATUS_FAILED_PRECONDITION = 9,
  PROTO_STATUS_ABORTED = 10,
  PROTO_STATUS_OUT_OF_RANGE = 11,
  PROTO_STATUS_UNIMPLEMENTED = 12,
  PROTO_STATUS_INTERNAL = 13,
  PROTO_STATUS_UNAVAILABLE = 14,
  PROTO_STATUS_DATA_LOSS = 15,
  PROTO_STATUS_UNAUTHENTICATED = 16,
} ProtoStatus;

/* Largest message either side accepts or sends (4 MiB). A larger one is
 * refused before it is unpacked. */
#define PROTO_MAX_MESSAGE_SIZE (4 * 1024 * 1024)
/* Most elements of repeated fields, at every depth together, that one
 * decoded message may hold (each becomes a struct in memory). */
#define PROTO_MAX_REPEATED 65536
/* Networks (issue 13): the bridges a host reports at most, and the
 * longest bridge name (a Linux interface name, IFNAMSIZ less the NUL). */
#define PROTO_HOST_MAX_BRIDGES 256
#define PROTO_BRIDGE_NAME_MAX 15
/* Images (issue 13): the images a host reports at most, the largest
 * piece of an upload, the largest image, and the largest cloud-init
 * user-data. */
#define PROTO_HOST_MAX_IMAGES 256
#define PROTO_IMAGE_CHUNK_MAX (1024 * 1024)
#define PROTO_IMAGE_MAX_SIZE (G_GUINT64_CONSTANT (1) << 40)
#define PROTO_CLOUD_INIT_MAX (64 * 1024)
/* NICs a VM has at most (VmSpec.nics). */
#define PROTO_VM_MAX_NICS 8
/* "02:d7:00:12:34:56": a MAC address's text form, without the NUL. */
#define PROTO_MAC_TEXT_LEN 17

/* Method indexes into the generated service descriptors, in .proto order. */
enum
{
  DROVER_SCHED_METHOD_REGISTER_HOST,
  DROVER_SCHED_METHOD_REPORT_HOST,
  DROVER_SCHED_METHOD_LIST_HOSTS,
  DROVER_SCHED_METHOD_LIST_VMS,
  DROVER_SCHED_METHOD_GET_VM,
  DROVER_SCHED_METHOD_CREATE_VM,
  DROVER_SCHED_METHOD_START_VM,
  DROVER_SCHED_METHOD_STOP_VM,
  DROVER_SCHED_METHOD_DESTROY_VM,
  DROVER_SCHED_METHOD_DELETE_VM,
  DROVER_SCHED_METHOD_READ_CONSOLE,
  DROVER_SCHED_METHOD_LIST_JOBS,
  DROVER_SCHED_METHOD_WATCH_JOB,
  DROVER_SCHED_METHOD_CANCEL_JOB,
  DROVER_SCHED_METHOD_MIGRATE_VM,
  DROVER_SCHED_METHOD_WATCH_EVENTS,
  DROVER_SCHED_METHOD_CREATE_DASHBOARD_TOKEN,
  DROVER_SCHED_METHOD_CREATE_SNAPSHOT,
  DROVER_SCHED_METHOD_LIST_SNAPSHOTS,
  DROVER_SCHED_METHOD_REVERT_SNAPSHOT,
  DROVER_SCHED_METHOD_DELETE_SNAPSHOT,
  DROVER_SCHED_METHOD_CLONE_VM,
  DROVER_SCHED_METHOD_MAKE_TEMPLATE,
  DROVER_SCHED_METHOD_DRAIN_HOST,
  DROVER_SCHED_METHOD_UNDRAIN_HOST,
  DROVER_SCHED_METHOD_ADD_REPO,
  DROVER_SCHED_METHOD_LIST_REPOS,
  DROVER_SCHED_METHOD_GET_REPO_STATUS,
  DROVER_SCHED_METHOD_GC_REPO,
  DROVER_SCHED_METHOD_VERIFY_BACKUPS,
  DROVER_SCHED_METHOD_PRUNE_BACKUPS,

  DROVER_SCHED_METHOD_CREATE_BACKUP,
  DROVER_SCHED_METHOD_LIST_BACKUPS,
  DROVER_SCHED_METHOD_GET_BACKUP,
  DROVER_SCHED_METHOD_RESTORE_BACKUP,

  DROVER_SCHED_METHOD_PLAN_BALANCE,
  DROVER_SCHED_METHOD_APPLY_BALANCE,
  DROVER_SCHED_METHOD_GET_BALANCE_STATUS,
  DROVER_SCHED_METHOD_SET_BALANCE_MODE,

  DROVER_SCHED_METHOD_CREATE_SCHEDULE,
  DROVER_SCHED_METHOD_LIST_SCHEDULES,
  DROVER_SCHED_METHOD_GET_SCHEDULE,
  DROVER_SCHED_METHOD_SET_SCHEDULE_PAUSED,
  DROVER_SCHED_METHOD_DELETE_SCHEDULE,
  DROVER_SCHED_METHOD_RUN_SCHEDULE,
  DROVER_SCHED_METHOD_GET_DR_REPORT,
  DROVER_SCHED_METHOD_DRILL_SCHEDULE,
  DROVER_SCHED_METHOD_SET_VM_LABELS,

  DROVER_SCHED_METHOD_CREATE_NETWORK,
  DROVER_SCHED_METHOD_LIST_NETWORKS,
  DROVER_SCHED_METHOD_GET_NETWORK,
  DROVER_SCHED_METHOD_DELETE_NETWORK,

  DROVER_SCHED_METHOD_IMPORT_IMAGE,
  DROVER_SCHED_METHOD_LIST_IMAGES,
  DROVER_SCHED_METHOD_DELETE_IMAGE,
  DROVER_SCHED_METHOD_ATTACH_NIC,
  DROVER_SCHED_METHOD_DETACH_NIC,
  DROVER_SCHED_METHOD_SET_VM_MIGRATION,
  DROVER_SCHED_N_METHODS
};
enum
{
  DROVER_AGENT_METHOD_CREATE_VM,
  DROVER_AGENT_METHOD_START_VM,
  DROVER_AGENT_METHOD_STOP_VM,
  DROVER_AGENT_METHOD_DESTROY_VM,
  DROVER_AGENT_METHOD_DELETE_VM,
  DROVER_AGENT_METHOD_READ_CONSOLE,
  DROVER_AGENT_METHOD_GET_HOST_INFO,
  DROVER_AGENT_METHOD_PREPARE_INCOMING,
  DROVER_AGENT_METHOD_MIGRATE_OUT,
  DROVER_AGENT_METHOD_CANCEL_INCOMING,
  DROVER_AGENT_METHOD_CREATE_SNAPSHOT,
  DROVER_AGENT_METHOD_LIST_SNAPSHOTS,
  DROVER_AGENT_METHOD_REVERT_SNAPSHOT,
  DROVER_AGENT_METHOD_DELETE_SNAPSHOT,
  DROVER_AGENT_METHOD_CLONE_VM,
  DROVER_AGENT_METHOD_MAKE_TEMPLATE,
  DROVER_AGENT_METHOD_PREPARE_CLONE_IN,
  DROVER_AGENT_METHOD_CLONE_OUT,
  DROVER_AGENT_METHOD_COMMIT_CLONE_IN,
  DROVER_AGENT_METHOD_ABORT_CLONE_IN,
  DROVER_AGENT_METHOD_CREATE_BACKUP,
  DROVER_AGENT_METHOD_RESTORE_BACKUP,
  DROVER_AGENT_METHOD_ATTACH_REPO,
  DROVER_AGENT_METHOD_GET_REPO_STATUS,
  DROVER_AGENT_METHOD_VERIFY_BACKUPS,
  DROVER_AGENT_METHOD_PRUNE_BACKUPS,
  DROVER_AGENT_METHOD_GC_REPO,
  DROVER_AGENT_METHOD_LIST_BACKUPS,
  DROVER_AGENT_METHOD_GET_BACKUP,
  DROVER_AGENT_METHOD_IMPORT_IMAGE,
  DROVER_AGENT_METHOD_LIST_IMAGES,
  DROVER_AGENT_METHOD_DELETE_IMAGE,
  DROVER_AGENT_METHOD_ATTACH_NIC,
  DROVER_AGENT_METHOD_DETACH_NIC,
  DROVER_AGENT_METHOD_PING_GUEST_AGENT,
  DROVER_AGENT_N_METHODS
};
#define DROVER_SCHED_SERVICE (&drover__v1__scheduler_service__descriptor)
#define DROVER_AGENT_SERVICE (&drover__v1__agent_service__descriptor)

/* Process-wide setup: routes gRPC's own logging into GLib logging and
 * calls grpc_init(). Call once before anything else here; safe to call
 * more than once. proto_shutdown() undoes it. */
void proto_init (void);
void proto_shutdown (void);

/* --- TLS --------------------------------------------------------------- */

/* PEM material read from DIR/ca.pem, DIR/cert.pem, DIR/key.pem and, when
 * present, DIR/crl.pem (certificates the CA revoked). */
typedef struct
{
  char *ca_pem;
  char *cert_pem;
  char *key_pem;
  char *crl_pem; /* NULL without crl.pem */
} ProtoTls;

/* Loads the files; fails with G_FILE_ERROR naming a missing one (crl.pem
 * may be missing). */
ProtoTls *proto_tls_load (const char *dir, GError **error);
ProtoTls *proto_tls_copy (const ProtoTls *tls);
void proto_tls_free (ProtoTls *tls);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ProtoTls, proto_tls_free)

/* --- identities --------------------------------------------------------- */

/* A certificate's subject says who a peer is: O (organization) is its
 * role, CN its name (a host's name for role host). Roles are bits so that
 * an authorization rule can name several. */
typedef enum
{
  PROTO_ROLE_NONE = 0,
  PROTO_ROLE_HOST = 1 << 0,      /* an agent, acting for the host in its CN */
  PROTO_ROLE_SCHEDULER = 1 << 1, /* the scheduler */
  PROTO_ROLE_OPERATOR = 1 << 2,  /* droverctl: may change things */
  PROTO_ROLE_VIEWER = 1 << 3,    /* droverctl: may only look */
} ProtoRole;
#define PROTO_ROLES_ALL                                                        \
  (PROTO_ROLE_HOST | PROTO_ROLE_SCHEDULER | PROTO_ROLE_OPERATOR                \
   | PROTO_ROLE_VIEWER)

/* "host", "scheduler", "operator", "viewer"; "none" and "any" (all). */
const char *proto_role_to_string (ProtoRole role);
/* PROTO_ROLE_NONE for anything but the four names. */
ProtoRole proto_role_from_string (const char *name);
/* "operator, viewer" for a mask; "none" for 0. Free with g_free. */
char *proto_roles_describe (guint roles);

/* The CA certificates and revocation list a component trusts, compiled
 * once; reference counted, usable from any thread. */
typedef struct _ProtoTrust ProtoTrust;

/* From PEM text. CRL_PEM may be NULL; a CRL not issued by one of the CAs
 * is refused. PROTO_STATUS_INVALID_ARGUMENT naming the file. */
ProtoTrust *proto_trust_new (const char *ca_pem, const char *crl_pem,
                             GError **error);
ProtoTrust *proto_trust_ref (ProtoTrust *trust);
void proto_trust_unref (ProtoTrust *trust);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ProtoTrust, proto_trust_unref)

/* Who the certificate PEM (LEN bytes) belongs to: it must chain to one of
 * TRUST's CAs, be valid now and not be revoked; its subject must have one
 * O naming a role and one CN. Sets *ROLE and *NAME (the CN; caller frees).
 * PROTO_STATUS_UNAUTHENTICATED (revoked, untrusted, no CN or O) or
 * PERMISSION_DENIED (an O that is no role) saying why. */
gboolean proto_trust_identify (ProtoTrust *trust, const char *pem, gsize len,
                               ProtoRole *role, char **name, GError **error);

/* --- message codec ----------------------------------------------------- */

/* Packs MSG into a newly allocated buffer. Fails with
 * PROTO_STATUS_RESOURCE_EXHAUSTED if it would exceed PROTO_MAX_MESSAGE_SIZE. */
GBytes *proto_pack (const ProtobufCMessage *msg, GError **error);

/* Unpacks DATA as DESC. Refuses data longer than MAX_SIZE, or holding
 * more than PROTO_MAX_REPEATED repeated elements, before unpacking it
 * (PROTO_STATUS_RESOURCE_EXHAUSTED) and reports truncated or malformed
 * input as PROTO_STATUS_INVALID_ARGUMENT.
 * Free the result with protobuf_c_message_free_unpacked (msg, NULL). */
ProtobufCMessage *proto_unpack (const ProtobufCMessageDescriptor *desc,
                                const guint8 *data, gsize len, gsize max_size,
                                GError **error);

/* --- server ------------------------------------------------------------ */

typedef struct _ProtoServer ProtoServer;
typedef struct _ProtoServerCall ProtoServerCall;

/* Called in the server's main context for every incoming call of a
 * registered method. REQUEST is owned by the call and lives until the
 * call is finished. The handler (or anything it hands CALL to) must
 * eventually finish the call exactly once with proto_server_call_reply()
 * or proto_server_call_fail() / proto_server_call_finish(). It may do so
 * later, after going back to the main loop. */
typedef void (*ProtoHandler) (ProtoServerCall *call,
                              const ProtobufCMessage *request,
                              gpointer user_data);

/* CTX NULL means the thread-default main context at creation. */
ProtoServer *proto_server_new (GMainContext *ctx);

/* One row of a server's authorization table: the roles that may call
 * method METHOD_INDEX. */
typedef struct
{
  guint method_index;
  guint roles; /* ProtoRole bits */
} ProtoAuthzRule;

/* The server's authorization table for SERVICE (before start; the rules
 * are copied). Every call is checked against it before its request is
 * read: a method without a row is denied to everyone, a role not in its
 * row is denied; both end PERMISSION_DENIED naming the role and are
 * logged. On an insecure server a peer has every role. */
void proto_server_set_authz (ProtoServer *server,
                             const ProtobufCServiceDescriptor *service,
                             const ProtoAuthzRule *rules, gsize n_rules);

/* Counts every call the server ends in METRICS (borrowed; it must outlive
 * the server), before start: drover_grpc_server_handled_total{method,code}
 * and drover_grpc_server_handling_seconds{method}, from the call's arrival
 * to its status. METHOD is "Service/Method" for registered methods and
 * "unknown" for any other path, so a client cannot make new series. */
void proto_server_set_metrics (ProtoServer *server, ProtoMetrics *metrics);

/* Registers HANDLER for method METHOD_INDEX of SERVICE. Before start.
 * HANDLER NULL: a method declared but not built yet; its calls are
 * authorized like any other, then end UNIMPLEMENTED. */
void proto_server_add_method (ProtoServer *server,
                              const ProtobufCServiceDescriptor *service,
                              guint method_index, ProtoHandler handler,
                              gpointer user_data);

/* The two services' tables (proto-authz.c). */
extern const ProtoAuthzRule proto_sched_authz[];
extern const gsize proto_sched_authz_len;
extern const ProtoAuthzRule proto_agent_authz[];
extern const gsize proto_agent_authz_len;

/* The table as text, one line per method of SERVICE in .proto order:
 * "SchedulerService/ListVms operator,viewer", or "... -" for a method no
 * role may call. What a daemon's --print-authz prints. Free with g_free. */
char *proto_authz_describe (const ProtobufCServiceDescriptor *service,
                            const ProtoAuthzRule *rules, gsize n_rules);

/* Binds ADDR ("127.0.0.1:7400"; port 0 picks one, see _get_port) and
 * starts serving. TLS NULL serves insecure; otherwise mutual TLS: clients
 * must present a certificate signed by TLS->ca_pem and not revoked by
 * TLS->crl_pem, whose subject names a role (see ProtoRole). */
gboolean proto_server_start (ProtoServer *server, const char *addr,
                             const ProtoTls *tls, GError **error);
int proto_server_get_port (ProtoServer *server);

/* Replaces the certificate, key, CA and CRL of a TLS server: new
 * handshakes use the new certificate, every call from now on is checked
 * against the new CA and CRL, and connections already open stay. FALSE
 * with ERROR (and nothing changed) when TLS does not make a usable trust. */
gboolean proto_server_reload_tls (ProtoServer *server, const ProtoTls *tls,
                                  GError **error);

/* Shuts the server down, cancelling open calls (their cancel callbacks
 * run, inside this function), and waits for gRPC to let go. Idempotent.
 * Call it (and _free) in the server's main context thread. Calls a handler
 * still holds stay valid: finishing them afterwards only frees them. */
void proto_server_stop (ProtoServer *server);
void proto_server_free (ProtoServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ProtoServer, proto_server_free)

/* Unary: sends REPLY and status OK, then frees CALL. */
void proto_server_call_reply (ProtoServerCall *call,
                              const ProtobufCMessage *reply);
/* Ends CALL with a non-OK status and a message, then frees CALL. */
void proto_server_call_fail (ProtoServerCall *call, ProtoStatus status,
                             const char *format, ...) G_GNUC_PRINTF (3, 4);
/* Ends CALL with the status and message of ERROR (PROTO_ERROR codes are
 * used as they are; any other domain becomes INTERNAL). */
void proto_server_call_fail_error (ProtoServerCall *call, const GError *error);

/* Server streaming: queues MSG for sending (messages go out in order,
 * one write in flight at a time). Returns FALSE if the client has gone
 * away; the call must still be finished. */
gboolean proto_server_call_send (ProtoServerCall *call,
                                 const ProtobufCMessage *msg);
/* Ends a stream after the queued messages are sent, then frees CALL. */
void proto_server_call_finish (ProtoServerCall *call, ProtoStatus status,
                               const char *message);

/* Called once, in the main context, if the client cancels or goes away
 * before the call is finished. The call must still be finished. */
void proto_server_call_set_cancel_func (ProtoServerCall *call, GFunc func,
                                        gpointer user_data);
gboolean proto_server_call_is_cancelled (ProtoServerCall *call);
/* Messages of a stream sent but not yet written to the transport (the
 * one being written included): a reader that does not keep up makes it
 * grow, so a sender can bound it. */
guint proto_server_call_get_queued (ProtoServerCall *call);

/* The caller's role and name (its certificate's O and CN). On an
 * insecure server the role is PROTO_ROLES_ALL and the name NULL. */
ProtoRole proto_server_call_get_peer_role (ProtoServerCall *call);
const char *proto_server_call_get_peer_name (ProtoServerCall *call);
/* "ipv4:127.0.0.1:34567" */
const char *proto_server_call_get_peer (ProtoServerCall *call);

/* --- client ------------------------------------------------------------ */

typedef struct _ProtoClient ProtoClient;
typedef struct _ProtoClientStream ProtoClientStream;

/* A channel to TARGET ("127.0.0.1:7400"). TLS NULL is insecure; otherwise
 * the client presents TLS->cert_pem and verifies the server against
 * TLS->ca_pem (certificates carry IP SANs for loopback addresses) and
 * TLS->crl_pem, and the server's certificate must name one of
 * SERVER_ROLES (ProtoRole bits): an agent talks only to a scheduler, the
 * scheduler only to hosts. Connecting is lazy: errors surface on the
 * first call. CTX NULL means the thread-default main context at
 * creation. */
ProtoClient *proto_client_new (const char *target, const ProtoTls *tls,
                               guint server_roles, GMainContext *ctx,
                               GError **error);
/* The same, and the server's certificate must also name SERVER_NAME (its
 * CN): the scheduler talks to host X's agent only if that agent is X. */
ProtoClient *proto_client_new_for (const char *target, const ProtoTls *tls,
                                   guint server_roles, const char *server_name,
                                   GMainContext *ctx, GError **error);
/* Cancels the asynchronous calls and streams still in flight; their
 * callbacks run inside this function with CANCELLED. Call it in the
 * client's main context thread (asynchronous calls are started there too;
 * the blocking calls may be used from any thread). */
void proto_client_free (ProtoClient *client);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ProtoClient, proto_client_free)
const char *proto_client_get_target (ProtoClient *client);

/* Completion of an asynchronous unary call, in the client's context.
 * Exactly one of REPLY and ERROR is non-NULL. Both are owned by the
 * library and freed after the callback returns. */
typedef void (*ProtoReplyFunc) (const ProtobufCMessage *reply,
                                const GError *error, gpointer user_data);

/* Starts a unary call. TIMEOUT_MS <= 0 means no deadline. */
void proto_client_call (ProtoClient *client,
                        const ProtobufCServiceDescriptor *service,
                        guint method_index, const ProtobufCMessage *request,
                        gint64 timeout_ms, ProtoReplyFunc callback,
                        gpointer user_data);

/* Blocking unary call for tools (droverctl, tests): iterates nothing,
 * does not need a running main loop. Returns the reply (free with
 * protobuf_c_message_free_unpacked) or NULL with ERROR set. */
ProtobufCMessage *
proto_client_call_sync (ProtoClient *client,
                        const ProtobufCServiceDescriptor *service,
                        guint method_index, const ProtobufCMessage *request,
                        gint64 timeout_ms, GError **error);

/* Server-streaming call. ON_MESSAGE runs for each message (owned by the
 * library); ON_END runs exactly once at the end, with ERROR NULL for a
 * clean end (status OK). Both run in the client's context. The stream
 * frees itself after ON_END. */
typedef void (*ProtoStreamMessageFunc) (const ProtobufCMessage *msg,
                                        gpointer user_data);
typedef void (*ProtoStreamEndFunc) (const GError *error, gpointer user_data);
ProtoClientStream *
proto_client_stream (ProtoClient *client,
                     const ProtobufCServiceDescriptor *service,
                     guint method_index, const ProtobufCMessage *request,
                     ProtoStreamMessageFunc on_message,
                     ProtoStreamEndFunc on_end, gpointer user_data);
/* Cancels the stream; ON_END still runs (with CANCELLED), later, from the
 * main loop. Not allowed once ON_END has run (the stream is freed). */
void proto_client_stream_cancel (ProtoClientStream *stream);

/* Blocking server-streaming call for tools: calls ON_MESSAGE for each
 * message until the stream ends; returns FALSE with ERROR on a non-OK end.
 * ON_MESSAGE returning FALSE cancels the stream (and this returns TRUE). */
typedef gboolean (*ProtoStreamSyncFunc) (const ProtobufCMessage *msg,
                                         gpointer user_data);
gboolean proto_client_stream_sync (ProtoClient *client,
                                   const ProtobufCServiceDescriptor *service,
                                   guint method_index,
                                   const ProtobufCMessage *request,
                                   ProtoStreamSyncFunc on_message,
                                   gpointer user_data, GError **error);

/* --- messages ---------------------------------------------------------- */

/* Frees a protobuf-c message: one unpacked by protobuf-c, or one built
 * field by field with g_malloc (GLib allocates with malloc). NULL is
 * fine. */
void proto_msg_free (gpointer msg);

/* Deep copy of MSG through pack and unpack; NULL for NULL. Free the copy
 * with proto_msg_free. */
gpointer proto_msg_copy (const ProtobufCMessage *msg);

/* A string for a field of a message built by hand: NULL and "" become
 * protobuf-c's shared empty string (which proto_msg_free leaves alone),
 * anything else a g_strdup. */
char *proto_msg_strdup (const char *str);

#define PROTO_MSG_AUTOPTR(T) G_DEFINE_AUTOPTR_CLEANUP_FUNC (T, proto_msg_free)
PROTO_MSG_AUTOPTR (ProtobufCMessage)
PROTO_MSG_AUTOPTR (Drover__V1__Empty)
PROTO_MSG_AUTOPTR (Drover__V1__HostInfo)
PROTO_MSG_AUTOPTR (Drover__V1__VmSpec)
PROTO_MSG_AUTOPTR (Drover__V1__VmNic)
PROTO_MSG_AUTOPTR (Drover__V1__VmStatus)
PROTO_MSG_AUTOPTR (Drover__V1__Host)
PROTO_MSG_AUTOPTR (Drover__V1__Vm)
PROTO_MSG_AUTOPTR (Drover__V1__Job)
PROTO_MSG_AUTOPTR (Drover__V1__MigrationParams)
PROTO_MSG_AUTOPTR (Drover__V1__MigrationPrediction)
PROTO_MSG_AUTOPTR (Drover__V1__MigrationRound)
PROTO_MSG_AUTOPTR (Drover__V1__MigrationProgress)
PROTO_MSG_AUTOPTR (Drover__V1__MigrateVmRequest)
PROTO_MSG_AUTOPTR (Drover__V1__PrepareIncomingRequest)
PROTO_MSG_AUTOPTR (Drover__V1__PrepareIncomingReply)
PROTO_MSG_AUTOPTR (Drover__V1__MigrateOutRequest)
PROTO_MSG_AUTOPTR (Drover__V1__CancelIncomingRequest)
PROTO_MSG_AUTOPTR (Drover__V1__RegisterHostRequest)
PROTO_MSG_AUTOPTR (Drover__V1__RegisterHostReply)
PROTO_MSG_AUTOPTR (Drover__V1__ReportHostRequest)
PROTO_MSG_AUTOPTR (Drover__V1__ReportHostReply)
PROTO_MSG_AUTOPTR (Drover__V1__ListHostsRequest)
PROTO_MSG_AUTOPTR (Drover__V1__ListHostsReply)
PROTO_MSG_AUTOPTR (Drover__V1__ListVmsRequest)
PROTO_MSG_AUTOPTR (Drover__V1__ListVmsReply)
PROTO_MSG_AUTOPTR (Drover__V1__GetVmRequest)
PROTO_MSG_AUTOPTR (Drover__V1__CreateVmRequest)
PROTO_MSG_AUTOPTR (Drover__V1__VmRequest)
PROTO_MSG_AUTOPTR (Drover__V1__StopVmRequest)
PROTO_MSG_AUTOPTR (Drover__V1__DeleteVmRequest)
PROTO_MSG_AUTOPTR (Drover__V1__VmReply)
PROTO_MSG_AUTOPTR (Drover__V1__ConsoleRequest)
PROTO_MSG_AUTOPTR (Drover__V1__ConsoleChunk)
PROTO_MSG_AUTOPTR (Drover__V1__WatchJobRequest)
PROTO_MSG_AUTOPTR (Drover__V1__ListJobsRequest)
PROTO_MSG_AUTOPTR (Drover__V1__ListJobsReply)
PROTO_MSG_AUTOPTR (Drover__V1__AgentCreateVmRequest)
PROTO_MSG_AUTOPTR (Drover__V1__AgentVmReply)

/* --- helpers shared by daemons and the CLI ------------------------------ */

/* TRUE if NAME is a valid VM or host name: 1-63 characters of [a-z0-9-].
 * Sets PROTO_STATUS_INVALID_ARGUMENT with a message saying why not. */
gboolean proto_name_validate (const char *what, const char *name,
                              GError **error);

/* Checks what every component requires of a VmSpec: present, a valid
 * name, PROTO_VM_MIN/MAX_VCPUS, at least PROTO_VM_MIN_MEMORY, accel empty,
 * "kvm" or "tcg", and an initrd or command line only with a kernel.
 * PROTO_STATUS_INVALID_ARGUMENT saying what is wrong. */
gboolean proto_vm_spec_check (const Drover__V1__VmSpec *spec, GError **error);

/* Parses TEXT as a MAC address, six hex octets separated by ':' (either
 * case), into OUT. FALSE with PROTO_STATUS_INVALID_ARGUMENT saying why
 * (malformed, multicast, or all zeros). (proto-nic.c) */
gboolean proto_mac_parse (const char *text, guint8 out[6], GError **error);
/* OCTETS as "xx:xx:xx:xx:xx:xx", lower case, into BUF. */
void proto_mac_format (const guint8 octets[6],
                       char buf[PROTO_MAC_TEXT_LEN + 1]);
/* Checks SPEC's NICs as they arrive from the wire: at most
 * PROTO_VM_MAX_NICS, each with a network name (VM name rules), a MAC that
 * proto_mac_parse accepts or none, a bridge name (1-15 characters, no
 * '/', whitespace or control characters, not "." or "..") or none, VLAN
 * 0-4094, MTU 0 or 68-65535, no MAC twice. Called by proto_vm_spec_check. */
gboolean proto_vm_nics_check (const Drover__V1__VmSpec *spec, GError **error);

/* Parses a size: a whole or decimal number with an optional unit K, M,
 * G or T (powers of 1024, either case), optionally followed by "i" and
 * "B" ("512M", "1.5G", "64KiB", "1GB"), or plain bytes ("4096", "4096B").
 * 0 is a size. The result must be a whole number of bytes that fits in
 * 64 bits. Errors are PROTO_STATUS_INVALID_ARGUMENT and start with WHAT
 * ("--memory: ..."). */
gboolean proto_parse_size (const char *what, const char *text, guint64 *out,
                           GError **error);

/* "1023 B", "1.0 KiB", "512.0 MiB": one decimal from KiB up, for tables.
 * Free with g_free. */
char *proto_format_size (guint64 bytes);
/* "1.0 KiB", "1.5 GiB", "512 MiB": like ls -h (one decimal below ten),
 * for messages. Free with g_free. */
char *proto_format_size_brief (guint64 bytes);

/* Milliseconds since the Unix epoch. */
gint64 proto_now_ms (void);

/* --- logging ------------------------------------------------------------ */

/* Structured GLib logging with the object a message is about as fields:
 * DROVER_VM, DROVER_JOB, DROVER_HOST. Journald keeps them as fields; on
 * stderr the writer proto_log_install() sets up appends them to the
 * message ("... [vm=web1 job=5f2c]"). Any of VM, JOB and HOST may be NULL
 * (or "") and is then left out. */
void proto_log (const char *domain, GLogLevelFlags level, const char *vm,
                const char *job, const char *host, const char *format, ...)
    G_GNUC_PRINTF (6, 7);

#define DROVER_LOG(level, vm, job, host, ...)                                  \
  proto_log (G_LOG_DOMAIN, (level), (vm), (job), (host), __VA_ARGS__)
#define drover_message(vm, job, host, ...)                                     \
  DROVER_LOG (G_LOG_LEVEL_MESSAGE, vm, job, host, __VA_ARGS__)
#define drover_info(vm, job, host, ...)                                        \
  DROVER_LOG (G_LOG_LEVEL_INFO, vm, job, host, __VA_ARGS__)
#define drover_debug(vm, job, host, ...)                                       \
  DROVER_LOG (G_LOG_LEVEL_DEBUG, vm, job, host, __VA_ARGS__)
#define drover_warning(vm, job, host, ...)                                     \
  DROVER_LOG (G_LOG_LEVEL_WARNING, vm, job, host, __VA_ARGS__)

/* Installs the daemons' log writer (once per process, before anything
 * logs): journald when stderr is the journal, otherwise GLib's default
 * text format with the Drover fields appended to the message. */
void proto_log_install (void);

G_END_DECLS
