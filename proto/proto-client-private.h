/* What ProtoClient's files share: proto-client.c (the client, unary
 * calls) and proto-client-stream.c (server-streaming calls). Nothing
 * else includes this. */
#pragma once

#include <grpc/grpc.h>

#include "proto-private.h"

G_BEGIN_DECLS

struct _ProtoClient
{
  char *target;
  grpc_channel *channel;
  ProtoCq *cq;
  GHashTable *calls; /* grpc_call * of async calls in flight (set) */
  gboolean closing;
};

/* Everything a client call's batches point at; must live until the
 * batches complete. */
typedef struct
{
  grpc_call *call;
  grpc_byte_buffer *send_buf;
  grpc_byte_buffer *recv_buf;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_status_code status;
  grpc_slice details;
} ProtoCallState;

/* ST ready for a call's batches; _clear frees what they left in it. */
void proto_call_state_init (ProtoCallState *st);
void proto_call_state_clear (ProtoCallState *st);
/* A call of CLIENT's channel on CQ to PATH (TIMEOUT_MS <= 0: no
 * deadline). */
grpc_call *proto_client_create_call (ProtoClient *client,
                                     grpc_completion_queue *cq,
                                     const char *path, gint64 timeout_ms);
/* Fills OPS (returns how many): send the request and half-close; with
 * WITH_REPLY also receive the reply and the status (a unary call in one
 * batch). */
size_t proto_call_ops (ProtoCallState *st, grpc_op *ops, gboolean with_reply);
/* One op receiving the status, or the next message, into ST. */
void proto_recv_status_op (ProtoCallState *st, grpc_op *op);
void proto_recv_message_op (ProtoCallState *st, grpc_op *op);
/* METHOD_INDEX is one of SERVICE's and REQUEST its input type; else
 * FALSE with ERROR. */
gboolean proto_check_method (const ProtobufCServiceDescriptor *service,
                             guint method_index,
                             const ProtobufCMessage *request, GError **error);
/* The common start of an asynchronous call on the client's queue:
 * checks the method, packs REQUEST into ST->send_buf, creates ST->call;
 * *OUTPUT the reply type, *PATH the method's path (caller frees). FALSE
 * with ERROR when the call cannot start. */
gboolean proto_client_begin (ProtoClient *client,
                             const ProtobufCServiceDescriptor *service,
                             guint method_index,
                             const ProtobufCMessage *request, gint64 timeout_ms,
                             ProtoCallState *st,
                             const ProtobufCMessageDescriptor **output,
                             char **path, GError **error);
/* A private queue for a blocking call, and its end (drained first). */
grpc_completion_queue *proto_pluck_cq_new (void);
void proto_pluck_cq_free (grpc_completion_queue *cq);
/* Runs one batch of CALL on CQ and waits for it. */
gboolean proto_pluck_batch (grpc_completion_queue *cq, grpc_call *call,
                            const grpc_op *ops, size_t n, GError **error);

G_END_DECLS
