/* libdrover-proto: ProtoClient, a gRPC channel to one server, and its
 * unary calls, asynchronous (completion in the client's GMainContext) and
 * blocking (own pluck queue, no main loop); with the batch plumbing its
 * server-streaming calls (proto-client-stream.c) share. */
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>

#include "proto-client-private.h"

/* --- shared batch plumbing ------------------------------------------------ */

void
proto_call_state_init (ProtoCallState *st)
{
  memset (st, 0, sizeof *st);
  grpc_metadata_array_init (&st->initial_md);
  grpc_metadata_array_init (&st->trailing_md);
  st->status = GRPC_STATUS_UNKNOWN;
  st->details = grpc_empty_slice ();
}

void
proto_call_state_clear (ProtoCallState *st)
{
  g_clear_pointer (&st->call, grpc_call_unref);
  g_clear_pointer (&st->send_buf, grpc_byte_buffer_destroy);
  g_clear_pointer (&st->recv_buf, grpc_byte_buffer_destroy);
  grpc_metadata_array_destroy (&st->initial_md);
  grpc_metadata_array_destroy (&st->trailing_md);
  grpc_slice_unref (st->details);
  st->details = grpc_empty_slice ();
}

static gpr_timespec
proto_deadline (gint64 timeout_ms)
{
  if (timeout_ms <= 0)
    return gpr_inf_future (GPR_CLOCK_MONOTONIC);
  return gpr_time_add (gpr_now (GPR_CLOCK_MONOTONIC),
                       gpr_time_from_millis (timeout_ms, GPR_TIMESPAN));
}

grpc_call *
proto_client_create_call (ProtoClient *client, grpc_completion_queue *cq,
                          const char *path, gint64 timeout_ms)
{
  grpc_slice method = grpc_slice_from_copied_string (path);
  grpc_call *call;

  call = grpc_channel_create_call (client->channel, NULL,
                                   GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                   proto_deadline (timeout_ms), NULL);
  grpc_slice_unref (method);
  return call;
}

/* Ops that send the request and half-close; with WITH_REPLY also receive
 * the reply and the status (a unary call in one batch). */
size_t
proto_call_ops (ProtoCallState *st, grpc_op *ops, gboolean with_reply)
{
  size_t n = 0;

  memset (ops, 0, 6 * sizeof *ops);
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = st->send_buf;
  ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[n++].data.recv_initial_metadata.recv_initial_metadata = &st->initial_md;
  if (with_reply)
    {
      ops[n].op = GRPC_OP_RECV_MESSAGE;
      ops[n++].data.recv_message.recv_message = &st->recv_buf;
      ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
      ops[n].data.recv_status_on_client.trailing_metadata = &st->trailing_md;
      ops[n].data.recv_status_on_client.status = &st->status;
      ops[n++].data.recv_status_on_client.status_details = &st->details;
    }
  return n;
}

void
proto_recv_status_op (ProtoCallState *st, grpc_op *op)
{
  memset (op, 0, sizeof *op);
  op->op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  op->data.recv_status_on_client.trailing_metadata = &st->trailing_md;
  op->data.recv_status_on_client.status = &st->status;
  op->data.recv_status_on_client.status_details = &st->details;
}

void
proto_recv_message_op (ProtoCallState *st, grpc_op *op)
{
  memset (op, 0, sizeof *op);
  op->op = GRPC_OP_RECV_MESSAGE;
  op->data.recv_message.recv_message = &st->recv_buf;
}

gboolean
proto_check_method (const ProtobufCServiceDescriptor *service,
                    guint method_index, const ProtobufCMessage *request,
                    GError **error)
{
  if (method_index >= service->n_methods)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "%s has no method %u", service->name, method_index);
      return FALSE;
    }
  if (request->descriptor != service->methods[method_index].input)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "%s/%s takes %s, not %s", service->name,
                   service->methods[method_index].name,
                   service->methods[method_index].input->short_name,
                   request->descriptor->short_name);
      return FALSE;
    }
  return TRUE;
}

/* --- client -------------------------------------------------------------- */

/* What the verify callback of a TLS channel needs: the trust and the
 * roles the server may have. Owned by gRPC's credentials (destruct). */
typedef struct
{
  ProtoTrust *trust;
  guint server_roles;
  char *server_name; /* NULL: any name */
  char *target;
} ProtoServerCheck;

static void
proto_server_check_free (void *data)
{
  ProtoServerCheck *check = data;

  proto_trust_unref (check->trust);
  g_free (check->server_name);
  g_free (check->target);
  g_free (check);
}

/* Runs in a gRPC thread after the TLS handshake verified the chain and
 * the target name: the server's certificate must not be revoked and must
 * name one of the expected roles. Non-zero refuses the connection (calls
 * then fail UNAVAILABLE; the reason goes to the log). */
static int
proto_server_check_cb (const char *target_name, const char *peer_pem,
                       void *data)
{
  ProtoServerCheck *check = data;
  g_autoptr (GError) error = NULL;
  g_autofree char *name = NULL;
  ProtoRole role = PROTO_ROLE_NONE;

  if (!proto_trust_identify (check->trust, peer_pem,
                             peer_pem ? strlen (peer_pem) : 0, &role, &name,
                             &error))
    {
      g_message ("refusing server %s: %s", check->target, error->message);
      return 1;
    }
  if ((role & check->server_roles) == 0)
    {
      g_autofree char *want = proto_roles_describe (check->server_roles);

      g_message ("refusing server %s: its certificate (%s) has role %s, "
                 "expected %s",
                 check->target, name, proto_role_to_string (role), want);
      return 1;
    }
  if (check->server_name != NULL && strcmp (name, check->server_name) != 0)
    {
      g_message ("refusing server %s: its certificate names %s, expected %s",
                 check->target, name, check->server_name);
      return 1;
    }
  return 0;
}

static ProtoClient *
proto_client_new_full (const char *target, const ProtoTls *tls,
                       guint server_roles, const char *server_name,
                       GMainContext *ctx, gboolean unlimited, GError **error)
{
  ProtoClient *client;
  grpc_channel_credentials *creds;
  const grpc_channel_args *args = proto_channel_args (FALSE);
  g_autofree grpc_arg *copy = NULL;
  grpc_channel_args copy_args;
  ProtoTrust *trust;

  if (!target || !*target)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                           "empty target address");
      return NULL;
    }
  if (unlimited)
    {
      copy = g_memdup2 (args->args, args->num_args * sizeof (grpc_arg));
      for (size_t i = 0; i < args->num_args; i++)
        if (strcmp (copy[i].key, GRPC_ARG_MAX_SEND_MESSAGE_LENGTH) == 0)
          copy[i].value.integer = -1;
      copy_args.num_args = args->num_args;
      copy_args.args = copy;
      args = &copy_args;
    }

  trust = tls ? proto_trust_new (tls->ca_pem, tls->crl_pem, error) : NULL;
  if (tls && trust == NULL)
    return NULL;
  proto_ref_grpc ();
  if (tls)
    {
      grpc_ssl_pem_key_cert_pair pair = { tls->key_pem, tls->cert_pem };
      grpc_ssl_verify_peer_options verify = { 0 };
      ProtoServerCheck *check;

      check = g_new0 (ProtoServerCheck, 1);
      check->trust = trust;
      check->server_roles = server_roles;
      check->server_name = g_strdup (server_name);
      check->target = g_strdup (target);
      verify.verify_peer_callback = proto_server_check_cb;
      verify.verify_peer_callback_userdata = check;
      verify.verify_peer_destruct = proto_server_check_free;
      /* The server is checked against TARGET's host: an IP literal such
       * as 127.0.0.1 must appear as an IP SAN in its certificate, which
       * gRPC 1.51 matches (tsi_ssl_peer_matches_name). The callback then
       * checks revocation and the role. */
      creds
          = grpc_ssl_credentials_create_ex (tls->ca_pem, &pair, &verify, NULL);
    }
  else
    creds = grpc_insecure_credentials_create ();
  client = g_new0 (ProtoClient, 1);
  client->target = g_strdup (target);
  client->calls = g_hash_table_new (NULL, NULL);
  client->channel = grpc_channel_create (target, creds, args);
  grpc_channel_credentials_release (creds);
  client->cq = proto_cq_new (ctx, "drover-grpc-cli");
  return client;
}

ProtoClient *
proto_client_new (const char *target, const ProtoTls *tls, guint server_roles,
                  GMainContext *ctx, GError **error)
{
  return proto_client_new_full (target, tls, server_roles, NULL, ctx, FALSE,
                                error);
}

ProtoClient *
proto_client_new_for (const char *target, const ProtoTls *tls,
                      guint server_roles, const char *server_name,
                      GMainContext *ctx, GError **error)
{
  return proto_client_new_full (target, tls, server_roles, server_name, ctx,
                                FALSE, error);
}

ProtoClient *
proto_client_new_unlimited (const char *target, const ProtoTls *tls,
                            GMainContext *ctx, GError **error)
{
  return proto_client_new_full (target, tls, PROTO_ROLES_ALL, NULL, ctx, TRUE,
                                error);
}

const char *
proto_client_get_target (ProtoClient *client)
{
  return client->target;
}

void
proto_client_free (ProtoClient *client)
{
  GHashTableIter iter;
  gpointer key;

  if (!client)
    return;
  /* Cancel what is in flight; the completions (and so the callbacks,
   * with CANCELLED) run in proto_cq_flush below, before we return. */
  client->closing = TRUE;
  g_hash_table_iter_init (&iter, client->calls);
  while (g_hash_table_iter_next (&iter, &key, NULL))
    grpc_call_cancel (key, NULL);
  grpc_channel_destroy (client->channel);
  proto_cq_shutdown (client->cq);
  proto_cq_flush (client->cq);
  proto_cq_free (client->cq);
  g_hash_table_destroy (client->calls);
  g_free (client->target);
  g_free (client);
  proto_unref_grpc ();
}

/* The common start of an asynchronous call on the client's queue: checks
 * METHOD_INDEX against REQUEST, packs REQUEST into ST->send_buf and creates
 * ST->call (TIMEOUT_MS <= 0: no deadline). Sets *OUTPUT (the reply type)
 * and *PATH (caller frees). FALSE with ERROR when the call cannot start:
 * a wrong method or message, a closing client, an oversized request. */
gboolean
proto_client_begin (ProtoClient *client,
                    const ProtobufCServiceDescriptor *service,
                    guint method_index, const ProtobufCMessage *request,
                    gint64 timeout_ms, ProtoCallState *st,
                    const ProtobufCMessageDescriptor **output, char **path,
                    GError **error)
{
  if (!proto_check_method (service, method_index, request, error))
    return FALSE;
  *output = service->methods[method_index].output;
  *path = proto_method_path (service, method_index);
  if (client->closing)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_CANCELLED,
                           "client closed");
      return FALSE;
    }
  st->send_buf = proto_buffer_pack (request, error);
  if (st->send_buf == NULL)
    return FALSE;
  st->call = proto_client_create_call (client, proto_cq_get (client->cq), *path,
                                       timeout_ms);
  return TRUE;
}

/* --- asynchronous unary --------------------------------------------------- */

typedef struct
{
  ProtoClient *client;
  ProtoTag tag;
  ProtoCallState st;
  const ProtobufCMessageDescriptor *output;
  GError *error; /* failed before the batch started */
  ProtoReplyFunc callback;
  gpointer user_data;
} ProtoUnary;

static void
proto_unary_done (ProtoTag *tag, gboolean ok)
{
  ProtoUnary *u = tag->data;
  GError *error = g_steal_pointer (&u->error);
  ProtobufCMessage *reply = NULL;

  if (u->st.call)
    g_hash_table_remove (u->client->calls, u->st.call);
  if (!error && !ok)
    error = g_error_new_literal (PROTO_ERROR, PROTO_STATUS_CANCELLED,
                                 "call failed");
  if (!error)
    error = proto_status_to_error (u->st.status, u->st.details);
  if (!error && !u->st.recv_buf)
    error = g_error_new_literal (PROTO_ERROR, PROTO_STATUS_INTERNAL,
                                 "no reply message");
  if (!error)
    reply = proto_buffer_unpack (u->output, u->st.recv_buf, &error);
  u->callback (reply, error, u->user_data);
  if (reply)
    protobuf_c_message_free_unpacked (reply, NULL);
  g_clear_error (&error);
  proto_call_state_clear (&u->st);
  g_free (u);
}

void
proto_client_call (ProtoClient *client,
                   const ProtobufCServiceDescriptor *service,
                   guint method_index, const ProtobufCMessage *request,
                   gint64 timeout_ms, ProtoReplyFunc callback,
                   gpointer user_data)
{
  ProtoUnary *u = g_new0 (ProtoUnary, 1);
  g_autofree char *path = NULL;
  grpc_op ops[6];
  size_t n;
  grpc_call_error err;

  u->client = client;
  u->callback = callback;
  u->user_data = user_data;
  u->tag.func = proto_unary_done;
  u->tag.data = u;
  proto_call_state_init (&u->st);

  if (!proto_client_begin (client, service, method_index, request, timeout_ms,
                           &u->st, &u->output, &path, &u->error))
    goto fail;
  n = proto_call_ops (&u->st, ops, TRUE);
  err = grpc_call_start_batch (u->st.call, ops, n, &u->tag, NULL);
  if (err != GRPC_CALL_OK)
    {
      g_set_error (&u->error, PROTO_ERROR, PROTO_STATUS_INTERNAL,
                   "cannot start call %s (error %d)", path, err);
      goto fail;
    }
  g_hash_table_add (client->calls, u->st.call);
  return;

fail:
  /* Report from the main loop, like any completion. */
  proto_cq_post (client->cq, &u->tag, TRUE);
}

/* --- blocking unary ------------------------------------------------------- */

grpc_completion_queue *
proto_pluck_cq_new (void)
{
  return grpc_completion_queue_create_for_pluck (NULL);
}

void
proto_pluck_cq_free (grpc_completion_queue *cq)
{
  grpc_completion_queue_shutdown (cq);
  while (grpc_completion_queue_pluck (cq, NULL,
                                      gpr_inf_future (GPR_CLOCK_REALTIME), NULL)
             .type
         != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy (cq);
}

/* Runs one batch and waits for it. */
gboolean
proto_pluck_batch (grpc_completion_queue *cq, grpc_call *call,
                   const grpc_op *ops, size_t n, GError **error)
{
  int marker;
  grpc_call_error err = grpc_call_start_batch (call, ops, n, &marker, NULL);
  grpc_event ev;

  if (err != GRPC_CALL_OK)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INTERNAL,
                   "cannot start call (error %d)", err);
      return FALSE;
    }
  ev = grpc_completion_queue_pluck (cq, &marker,
                                    gpr_inf_future (GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* Unary call on a private queue; takes ST->send_buf. Leaves the reply
 * buffer in ST->recv_buf. */
static gboolean
proto_unary_sync (ProtoClient *client, const char *path, ProtoCallState *st,
                  gint64 timeout_ms, GError **error)
{
  grpc_completion_queue *cq = proto_pluck_cq_new ();
  grpc_op ops[6];
  size_t n;
  gboolean ok;
  GError *status_error;

  st->call = proto_client_create_call (client, cq, path, timeout_ms);
  n = proto_call_ops (st, ops, TRUE);
  ok = proto_pluck_batch (cq, st->call, ops, n, error);
  g_clear_pointer (&st->call, grpc_call_unref);
  proto_pluck_cq_free (cq);
  if (!ok)
    {
      if (error && !*error)
        g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_CANCELLED,
                             "call failed");
      return FALSE;
    }
  status_error = proto_status_to_error (st->status, st->details);
  if (status_error)
    {
      g_propagate_error (error, status_error);
      return FALSE;
    }
  if (!st->recv_buf)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_INTERNAL,
                           "no reply message");
      return FALSE;
    }
  return TRUE;
}

ProtobufCMessage *
proto_client_call_sync (ProtoClient *client,
                        const ProtobufCServiceDescriptor *service,
                        guint method_index, const ProtobufCMessage *request,
                        gint64 timeout_ms, GError **error)
{
  ProtoCallState st;
  g_autofree char *path = NULL;
  ProtobufCMessage *reply = NULL;

  if (!proto_check_method (service, method_index, request, error))
    return NULL;
  path = proto_method_path (service, method_index);
  proto_call_state_init (&st);
  st.send_buf = proto_buffer_pack (request, error);
  if (st.send_buf && proto_unary_sync (client, path, &st, timeout_ms, error))
    reply = proto_buffer_unpack (service->methods[method_index].output,
                                 st.recv_buf, error);
  proto_call_state_clear (&st);
  return reply;
}

GBytes *
proto_client_call_raw_sync (ProtoClient *client, const char *path,
                            GBytes *request, gint64 timeout_ms, GError **error)
{
  ProtoCallState st;
  GBytes *reply = NULL;
  grpc_slice slice = grpc_slice_from_copied_buffer (
      g_bytes_get_data (request, NULL), g_bytes_get_size (request));

  proto_call_state_init (&st);
  st.send_buf = grpc_raw_byte_buffer_create (&slice, 1);
  grpc_slice_unref (slice);
  if (proto_unary_sync (client, path, &st, timeout_ms, error))
    {
      grpc_byte_buffer_reader reader;

      if (grpc_byte_buffer_reader_init (&reader, st.recv_buf))
        {
          grpc_slice all = grpc_byte_buffer_reader_readall (&reader);

          reply = g_bytes_new (GRPC_SLICE_START_PTR (all),
                               GRPC_SLICE_LENGTH (all));
          grpc_slice_unref (all);
          grpc_byte_buffer_reader_destroy (&reader);
        }
      else
        g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_INTERNAL,
                             "cannot read reply");
    }
  proto_call_state_clear (&st);
  return reply;
}
