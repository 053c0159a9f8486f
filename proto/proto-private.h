/* libdrover-proto internals shared by the glue's .c files and its tests. */
#pragma once

#include <grpc/grpc.h>

#include "proto.h"

G_BEGIN_DECLS

/* --- completion queue thread -> GMainContext ----------------------------- */

typedef struct _ProtoTag ProtoTag;
typedef void (*ProtoTagFunc) (ProtoTag *tag, gboolean ok);

/* The tag of every gRPC operation: FUNC runs in the queue's main context
 * with the operation's success flag. A tag with FUNC NULL is a "wait tag":
 * the queue thread marks it done (under the queue lock) and wakes
 * proto_cq_wait() instead of going through the main context. */
struct _ProtoTag
{
  ProtoTagFunc func;
  gpointer data;
  /* wait tags only, guarded by the ProtoCq lock */
  gboolean done;
  gboolean ok;
};

typedef struct _ProtoCq ProtoCq;

/* Creates a completion queue and the thread draining it into CTX. */
ProtoCq *proto_cq_new (GMainContext *ctx, const char *thread_name);
grpc_completion_queue *proto_cq_get (ProtoCq *cq);
GMainContext *proto_cq_get_context (ProtoCq *cq);
/* Queues TAG->func (TAG, OK) to run in the main context as if gRPC had
 * completed an operation (used for errors found before a batch starts). */
void proto_cq_post (ProtoCq *cq, ProtoTag *tag, gboolean ok);
/* Blocks the calling thread until the wait tag TAG completes. */
gboolean proto_cq_wait (ProtoCq *cq, ProtoTag *tag);
/* Shuts the queue down, waits until gRPC has completed every pending
 * operation and joins the thread. Must run in the context's thread. */
void proto_cq_shutdown (ProtoCq *cq);
/* Runs every event not yet dispatched by the main context, in order, in
 * the calling thread (after proto_cq_shutdown, so nobody adds more from
 * gRPC; callbacks may still post). */
void proto_cq_flush (ProtoCq *cq);
/* Frees a queue that has been shut down and flushed. */
void proto_cq_free (ProtoCq *cq);

/* --- codec helpers ------------------------------------------------------- */

/* "/drover.v1.SchedulerService/ListHosts"; NULL if METHOD_INDEX is out of
 * range. */
char *proto_method_path (const ProtobufCServiceDescriptor *service,
                         guint method_index);
/* Packs MSG into a gRPC byte buffer (NULL + ERROR if it is too large). */
grpc_byte_buffer *proto_buffer_pack (const ProtobufCMessage *msg,
                                     GError **error);
/* Reads BUF (capped at PROTO_MAX_MESSAGE_SIZE) and unpacks it as DESC. */
ProtobufCMessage *proto_buffer_unpack (const ProtobufCMessageDescriptor *desc,
                                       grpc_byte_buffer *buf, GError **error);
/* Status + details from gRPC as a GError (NULL for OK). */
GError *proto_status_to_error (grpc_status_code status, grpc_slice details);
const char *proto_status_name (int status);

/* Channel / server arguments shared by both sides (message size caps,
 * keepalive). Returned array is static. */
const grpc_channel_args *proto_channel_args (gboolean server);

/* Reference on gRPC for every live server / client, so a caller that
 * forgot proto_init() still works. */
void proto_ref_grpc (void);
void proto_unref_grpc (void);

/* --- test hooks ---------------------------------------------------------- */

/* Unary call sending REQUEST as raw bytes (no size check on our side) to
 * PATH, for tests that must put an oversized or garbage message on the
 * wire. Returns the raw reply bytes. Channel send cap is lifted only if
 * the client was made with proto_client_new_unlimited(). */
GBytes *proto_client_call_raw_sync (ProtoClient *client, const char *path,
                                    GBytes *request, gint64 timeout_ms,
                                    GError **error);
/* Like proto_client_new() but without the client-side send size cap. */
ProtoClient *proto_client_new_unlimited (const char *target,
                                         const ProtoTls *tls, GMainContext *ctx,
                                         GError **error);

G_END_DECLS
