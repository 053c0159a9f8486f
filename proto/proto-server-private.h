/* What ProtoServer (proto-server.c) and ProtoServerCall
 * (proto-server-call.c) share. Nothing else includes this. */
#pragma once

#include <grpc/grpc.h>

#include "proto-private.h"

G_BEGIN_DECLS

/* Calls requested from gRPC ahead of time: how many new calls can arrive
 * between two turns of the main loop. */
#define PROTO_SERVER_SLOTS 8

typedef struct
{
  char *path;
  char *label; /* "Service/Method", the metrics' method label */
  const ProtobufCMessageDescriptor *input;
  ProtoHandler handler;
  gpointer user_data;
} ProtoMethod;

typedef struct
{
  ProtoServer *server;
  ProtoTag tag;
  gboolean active;
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
} ProtoSlot;

struct _ProtoServer
{
  GHashTable *methods; /* path -> ProtoMethod */
  GHashTable *authz;   /* path -> roles (GUINT_TO_POINTER), see set_authz */
  GMainContext *ctx;
  grpc_server *server;
  ProtoCq *cq;
  ProtoSlot slots[PROTO_SERVER_SLOTS];
  GHashTable *calls;     /* live ProtoServerCalls (set) */
  ProtoMetric *handled;  /* NULL without metrics; set before start */
  ProtoMetric *handling; /* histogram of the same calls */
  ProtoTag shutdown_tag;
  int port;
  gboolean started;
  gboolean stopping; /* no new calls are handed out */
  gboolean cq_dead;  /* the queue is shut down: no batch may start */

  /* TLS. The certificate fetcher runs in gRPC's threads, at each new
   * handshake; the rest in the main context. */
  gboolean secure;
  ProtoTrust *trust; /* main context: checks each call's certificate */
  GMutex tls_lock;
  ProtoTls *tls_next; /* tls_lock: for the fetcher, NULL when handed over */
};

/* Makes a call of SERVER for GCALL (now owned by it) to method PATH:
 * authorizes the peer, reads the request and hands it to the method's
 * handler, or ends it with UNIMPLEMENTED, PERMISSION_DENIED or the
 * like. */
void proto_server_call_start (ProtoServer *server, grpc_call *gcall,
                              const char *path);
/* SERVER stops with CALL not finished by its handler: CALL lets go of
 * the server and of gRPC's call; finishing it later only frees it. */
void proto_server_call_detach (ProtoServerCall *call);

G_END_DECLS
