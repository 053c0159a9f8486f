/* In-process gRPC servers for the tests: a ProtoServer made from a table
 * of handlers, on 127.0.0.1 on a free port. Run it in a TestThread
 * (test-support.h) when the test calls it with blocking client calls. */
#pragma once

#include "proto.h"
#include "test-support.h"

/* One method of a test server: method index (DROVER_..._METHOD_...) and
 * its handler. */
typedef struct
{
  guint method;
  ProtoHandler handler;
} TestRpcMethod;

/* A service as a test serves it: METHODS of SERVICE, under the
 * authorization table AUTHZ (a method without a row is denied to all). */
typedef struct
{
  const ProtobufCServiceDescriptor *service;
  const TestRpcMethod *methods;
  gsize n_methods;
  const ProtoAuthzRule *authz;
  gsize n_authz;
} TestRpcService;

/* Serves SERVICE (every handler called with DATA) in CTX (NULL: the
 * thread default), with TLS (NULL: insecure). NULL with ERROR when it
 * does not start. Free with proto_server_free in CTX's thread. */
ProtoServer *test_rpc_server_new (const TestRpcService *service, gpointer data,
                                  GMainContext *ctx, const ProtoTls *tls,
                                  GError **error);

/* "127.0.0.1:PORT" of a started SERVER. Free with g_free. */
char *test_rpc_address (ProtoServer *server);

/* SERVICE served (handlers called with DATA, TLS NULL: insecure) in a
 * TestThread of its own, for tests that call it with blocking client
 * calls. */
typedef struct
{
  TestThread *thread;
  ProtoServer *server; /* lives in THREAD's context */
  int port;
  char *address; /* "127.0.0.1:PORT" */
  /* what it serves */
  TestRpcService service; /* a copy */
  gpointer data;
  const ProtoTls *tls;
} TestRpcServer;

/* Starts serving (the test fails if it cannot). SERVICE's tables and
 * TLS must live until test_rpc_server_stop. */
TestRpcServer *test_rpc_server_start (const TestRpcService *service,
                                      gpointer data, const ProtoTls *tls);

/* Frees the server in its own context (its open calls' cancel callbacks
 * run there), stops the thread and frees RS. */
void test_rpc_server_stop (TestRpcServer *rs);

/* The TLS material of WHO in the test PKI in PKI_DIR (PKI_DIR/WHO, as
 * scripts/pki made it); the test fails if it does not load. Free with
 * proto_tls_free. */
ProtoTls *test_rpc_tls (const char *pki_dir, const char *who);

/* Calls METHOD of SERVICE through CLIENT with REQUEST and iterates the
 * thread-default main context until the reply: the reply (caller frees),
 * or NULL with ERROR. */
gpointer test_rpc_call (ProtoClient *client,
                        const ProtobufCServiceDescriptor *service, guint method,
                        gconstpointer request, GError **error);
