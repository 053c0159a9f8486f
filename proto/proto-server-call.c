/* ProtoServerCall: one call to a ProtoServer, from its arrival to its
 * status.
 *
 * Per call: RECV_CLOSE_ON_SERVER in its own batch (cancel detection), the
 * peer's certificate checked against the method's authorization row,
 * then RECV_MESSAGE and the handler, then writes one at a time, the last
 * one carrying the status.
 *
 * Lifetime: one "owner" reference held by the handler until it finishes
 * the call, plus one per batch in flight. The struct is freed when the
 * last goes; gRPC's call with it. A call the server stops under is
 * detached (proto_server_call_detach) and outlives it. */
#include <stdarg.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "proto-server-private.h"

struct _ProtoServerCall
{
  ProtoServer *server; /* NULL once the server stopped */
  grpc_call *call;     /* NULL once the server stopped */
  ProtoMethod *method; /* NULL for an unknown method */
  char *path;
  ProtobufCMessage *request;
  char *peer;
  char *peer_name;     /* the certificate's CN; NULL when insecure */
  ProtoRole peer_role; /* its O; PROTO_ROLES_ALL when insecure */
  gint64 started_us;   /* monotonic, arrival (handling time) */
  int refs;

  ProtoTag close_tag;
  int close_cancelled; /* written by gRPC */
  gboolean closed;
  gboolean cancelled;
  GFunc cancel_func;
  gpointer cancel_data;

  ProtoTag cancel_tag; /* late cancel notification, see set_cancel_func */

  ProtoTag recv_tag;
  grpc_byte_buffer *recv_buf;

  ProtoTag send_tag;
  grpc_byte_buffer *send_buf;
  grpc_slice status_details;
  gboolean status_in_batch;
  gboolean writing;
  gboolean write_failed;
  gboolean md_sent;
  GQueue queue;       /* GBytes waiting to be written */
  GError *send_error; /* a message could not be packed: ends the stream */

  gboolean finishing; /* the handler has finished the call */
  gboolean status_sent;
  ProtoStatus status;
  char *message;
};

static void proto_server_call_pump (ProtoServerCall *call);

static void
proto_server_call_unref (ProtoServerCall *call)
{
  if (--call->refs > 0)
    return;
  if (call->server)
    g_hash_table_remove (call->server->calls, call);
  if (call->call)
    grpc_call_unref (call->call);
  if (call->request)
    protobuf_c_message_free_unpacked (call->request, NULL);
  g_queue_clear_full (&call->queue, (GDestroyNotify)g_bytes_unref);
  g_clear_error (&call->send_error);
  g_free (call->path);
  g_free (call->peer);
  g_free (call->peer_name);
  g_free (call->message);
  g_free (call);
}

/* Starts OPS on CALL; TAG (one of CALL's) completes them, running FUNC
 * with CALL as its data. A started batch holds a reference on CALL. */
static gboolean
proto_server_call_batch (ProtoServerCall *call, const grpc_op *ops, size_t n,
                         ProtoTag *tag, ProtoTagFunc func)
{
  grpc_call_error err;

  tag->func = func;
  tag->data = call;
  if (!call->call || !call->server || call->server->cq_dead)
    return FALSE;
  err = grpc_call_start_batch (call->call, ops, n, tag, NULL);
  if (err != GRPC_CALL_OK)
    {
      g_debug ("grpc_call_start_batch on %s: error %d", call->path, err);
      return FALSE;
    }
  call->refs++;
  return TRUE;
}

/* --- cancel detection ---------------------------------------------------- */

/* Runs the cancel callback once, unless the handler is already finishing
 * the call. */
static void
proto_server_call_run_cancel_func (ProtoServerCall *call)
{
  GFunc func = call->cancel_func;

  if (call->finishing || func == NULL)
    return;
  call->cancel_func = NULL;
  func (call, call->cancel_data);
}

static void
proto_server_call_close_done (ProtoTag *tag, gboolean ok)
{
  ProtoServerCall *call = tag->data;

  call->closed = TRUE;
  if (call->close_cancelled || !ok)
    {
      call->cancelled = TRUE;
      proto_server_call_run_cancel_func (call);
    }
  proto_server_call_unref (call);
}

static void
proto_server_call_cancel_notify (ProtoTag *tag, gboolean ok)
{
  ProtoServerCall *call = tag->data;

  proto_server_call_run_cancel_func (call);
  proto_server_call_unref (call);
}

/* --- writes -------------------------------------------------------------- */

static void
proto_server_call_send_done (ProtoTag *tag, gboolean ok)
{
  ProtoServerCall *call = tag->data;

  call->writing = FALSE;
  g_clear_pointer (&call->send_buf, grpc_byte_buffer_destroy);
  if (call->status_in_batch)
    {
      grpc_slice_unref (call->status_details);
      call->status_in_batch = FALSE;
    }
  if (!ok)
    {
      /* The client has gone; nothing queued will reach it. */
      call->write_failed = TRUE;
      g_queue_clear_full (&call->queue, (GDestroyNotify)g_bytes_unref);
    }
  proto_server_call_pump (call);
  proto_server_call_unref (call);
}

static void
proto_server_call_pump (ProtoServerCall *call)
{
  grpc_op ops[3];
  size_t n = 0;
  GBytes *bytes;
  gboolean with_status;

  if (call->writing || call->status_sent)
    return;
  bytes = g_queue_pop_head (&call->queue);
  with_status = call->finishing && g_queue_is_empty (&call->queue);
  if (!bytes && !with_status)
    return;

  memset (ops, 0, sizeof ops);
  if (!call->md_sent)
    {
      ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
      ops[n].data.send_initial_metadata.count = 0;
      n++;
    }
  if (bytes)
    {
      grpc_slice slice = grpc_slice_from_copied_buffer (
          g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));

      call->send_buf = grpc_raw_byte_buffer_create (&slice, 1);
      grpc_slice_unref (slice);
      g_bytes_unref (bytes);
      ops[n].op = GRPC_OP_SEND_MESSAGE;
      ops[n].data.send_message.send_message = call->send_buf;
      n++;
    }
  if (with_status)
    {
      call->status_details
          = grpc_slice_from_copied_string (call->message ? call->message : "");
      call->status_in_batch = TRUE;
      ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
      ops[n].data.send_status_from_server.trailing_metadata_count = 0;
      ops[n].data.send_status_from_server.status
          = (grpc_status_code)call->status;
      ops[n].data.send_status_from_server.status_details
          = call->status == PROTO_STATUS_OK && !call->message
                ? NULL
                : &call->status_details;
      n++;
      call->status_sent = TRUE;
    }
  call->md_sent = TRUE;
  call->writing = TRUE;
  if (!proto_server_call_batch (call, ops, n, &call->send_tag,
                                proto_server_call_send_done))
    {
      /* Server stopped or call dead: drop everything, as a failed write. */
      call->writing = FALSE;
      call->write_failed = TRUE;
      g_clear_pointer (&call->send_buf, grpc_byte_buffer_destroy);
      if (call->status_in_batch)
        {
          grpc_slice_unref (call->status_details);
          call->status_in_batch = FALSE;
        }
      g_queue_clear_full (&call->queue, (GDestroyNotify)g_bytes_unref);
      if (call->finishing)
        call->status_sent = TRUE;
    }
}

/* --- metrics ------------------------------------------------------------- */

/* Counts CALL, ending with STATUS, in the server's metrics (if any). */
static void
proto_server_call_observe (ProtoServerCall *call, ProtoStatus status)
{
  ProtoServer *server = call->server;
  const char *method = call->method ? call->method->label : "unknown";
  const char *code = proto_status_name (status);

  if (server == NULL || server->handled == NULL)
    return;
  proto_metric_add (server->handled, (const char *const[]){ method, code }, 1);
  proto_metric_observe (server->handling, (const char *const[]){ method },
                        (double)(g_get_monotonic_time () - call->started_us)
                            / G_USEC_PER_SEC);
}

static void
proto_server_call_end (ProtoServerCall *call, ProtoStatus status, char *message)
{
  g_return_if_fail (!call->finishing);
  call->finishing = TRUE;
  if (status == PROTO_STATUS_OK && call->send_error)
    {
      status = call->send_error->code;
      g_free (message);
      message = g_strdup (call->send_error->message);
    }
  call->status = status;
  call->message = message;
  proto_server_call_observe (call, status);
  proto_server_call_pump (call);
  proto_server_call_unref (call); /* the handler's reference */
}

void
proto_server_call_reply (ProtoServerCall *call, const ProtobufCMessage *reply)
{
  g_autoptr (GError) error = NULL;
  GBytes *bytes;

  g_return_if_fail (call != NULL && !call->finishing);
  bytes = proto_pack (reply, &error);
  if (!bytes)
    {
      proto_server_call_end (call, error->code, g_strdup (error->message));
      return;
    }
  g_queue_push_tail (&call->queue, bytes);
  proto_server_call_end (call, PROTO_STATUS_OK, NULL);
}

void
proto_server_call_fail (ProtoServerCall *call, ProtoStatus status,
                        const char *format, ...)
{
  va_list ap;
  char *message;

  g_return_if_fail (call != NULL && !call->finishing);
  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);
  proto_server_call_end (call, status, message);
}

void
proto_server_call_fail_error (ProtoServerCall *call, const GError *error)
{
  ProtoStatus status = PROTO_STATUS_INTERNAL;

  g_return_if_fail (call != NULL && !call->finishing);
  if (error->domain == PROTO_ERROR && error->code > 0
      && error->code <= PROTO_STATUS_UNAUTHENTICATED)
    status = error->code;
  proto_server_call_end (call, status, g_strdup (error->message));
}

gboolean
proto_server_call_send (ProtoServerCall *call, const ProtobufCMessage *msg)
{
  GError *error = NULL;
  GBytes *bytes;

  g_return_val_if_fail (call != NULL && !call->finishing, FALSE);
  if (call->cancelled || call->write_failed || !call->call || call->send_error)
    return FALSE;
  bytes = proto_pack (msg, &error);
  if (!bytes)
    {
      /* Cannot go out: the stream ends with this error at finish. */
      call->send_error = error;
      return FALSE;
    }
  g_queue_push_tail (&call->queue, bytes);
  proto_server_call_pump (call);
  return !call->write_failed;
}

void
proto_server_call_finish (ProtoServerCall *call, ProtoStatus status,
                          const char *message)
{
  g_return_if_fail (call != NULL && !call->finishing);
  proto_server_call_end (call, status, g_strdup (message));
}

void
proto_server_call_set_cancel_func (ProtoServerCall *call, GFunc func,
                                   gpointer user_data)
{
  g_return_if_fail (call != NULL);
  call->cancel_func = func;
  call->cancel_data = user_data;
  /* The close event can be dispatched before the request one: a client
   * that cancels at once is already gone when the handler runs. Tell the
   * handler from the main loop, like any other cancellation. */
  if (func && call->cancelled && !call->finishing && call->server)
    {
      call->refs++;
      call->cancel_tag.func = proto_server_call_cancel_notify;
      call->cancel_tag.data = call;
      proto_cq_post (call->server->cq, &call->cancel_tag, TRUE);
    }
}

gboolean
proto_server_call_is_cancelled (ProtoServerCall *call)
{
  return call->cancelled || call->write_failed || !call->call;
}

guint
proto_server_call_get_queued (ProtoServerCall *call)
{
  return g_queue_get_length (&call->queue) + (call->writing ? 1 : 0);
}

ProtoRole
proto_server_call_get_peer_role (ProtoServerCall *call)
{
  return call->peer_role;
}

const char *
proto_server_call_get_peer_name (ProtoServerCall *call)
{
  return call->peer_name;
}

const char *
proto_server_call_get_peer (ProtoServerCall *call)
{
  return call->peer;
}

/* --- incoming calls ------------------------------------------------------ */

static void
proto_server_call_recv_done (ProtoTag *tag, gboolean ok)
{
  ProtoServerCall *call = tag->data;
  grpc_byte_buffer *buf = g_steal_pointer (&call->recv_buf);
  g_autoptr (GError) error = NULL;

  if (!ok || !buf || !call->server || call->server->stopping)
    {
      if (buf)
        grpc_byte_buffer_destroy (buf);
      if (ok && !buf && call->server && !call->server->stopping)
        proto_server_call_fail (call, PROTO_STATUS_INVALID_ARGUMENT,
                                "%s: missing request message", call->path);
      else
        {
          /* Cancelled before the handler saw it (or the server is going
           * away): end it without a handler. */
          proto_server_call_observe (call, PROTO_STATUS_CANCELLED);
          call->finishing = TRUE;
          call->status_sent = TRUE;
          proto_server_call_unref (call);
        }
      proto_server_call_unref (call);
      return;
    }
  call->request = proto_buffer_unpack (call->method->input, buf, &error);
  grpc_byte_buffer_destroy (buf);
  if (!call->request)
    proto_server_call_fail_error (call, error);
  else if (!call->method->handler)
    proto_server_call_fail (call, PROTO_STATUS_UNIMPLEMENTED,
                            "%s is not served yet", call->method->label);
  else
    call->method->handler (call, call->request, call->method->user_data);
  proto_server_call_unref (call);
}

/* The peer's certificate (PEM) from the call's auth context, or NULL. */
static char *
proto_call_peer_pem (grpc_call *gcall, gsize *len)
{
  grpc_auth_context *actx = grpc_call_auth_context (gcall);
  grpc_auth_property_iterator it;
  const grpc_auth_property *prop;
  char *pem = NULL;

  if (!actx)
    return NULL;
  it = grpc_auth_context_find_properties_by_name (
      actx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
  prop = grpc_auth_property_iterator_next (&it);
  if (prop && prop->value && prop->value_length > 0
      && prop->value_length <= 64 * 1024)
    {
      pem = g_strndup (prop->value, prop->value_length);
      *len = prop->value_length;
    }
  grpc_auth_context_release (actx);
  return pem;
}

/* Who CALL comes from, and whether its method's row lets that role in.
 * FALSE with the status to end it with. */
static gboolean
proto_server_call_authorize (ProtoServer *server, ProtoServerCall *call,
                             grpc_call *gcall, GError **error)
{
  gpointer roles;

  if (!server->secure)
    call->peer_role = PROTO_ROLES_ALL;
  else
    {
      gsize len = 0;
      g_autofree char *pem = proto_call_peer_pem (gcall, &len);

      if (!proto_trust_identify (server->trust, pem, len, &call->peer_role,
                                 &call->peer_name, error))
        {
          g_prefix_error (error, "%s: ", call->path);
          g_message ("refused %s from %s: %s", call->path, call->peer,
                     (*error)->message);
          return FALSE;
        }
    }
  if (!g_hash_table_lookup_extended (server->authz, call->path, NULL, &roles)
      || (GPOINTER_TO_UINT (roles) & call->peer_role) == 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED,
                   "%s: role %s may not call this method", call->path,
                   server->secure ? proto_role_to_string (call->peer_role)
                                  : "(insecure peer)");
      proto_log (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, NULL, NULL, call->peer_name,
                 "denied %s to %s %s from %s", call->path,
                 proto_role_to_string (call->peer_role),
                 call->peer_name ? call->peer_name : "", call->peer);
      return FALSE;
    }
  return TRUE;
}

void
proto_server_call_start (ProtoServer *server, grpc_call *gcall,
                         const char *path)
{
  ProtoServerCall *call = g_new0 (ProtoServerCall, 1);
  g_autoptr (GError) error = NULL;
  grpc_op op;
  char *peer;

  call->server = server;
  call->call = gcall;
  call->path = g_strdup (path);
  call->method = g_hash_table_lookup (server->methods, path);
  call->refs = 1;
  call->started_us = g_get_monotonic_time ();
  g_queue_init (&call->queue);
  peer = grpc_call_get_peer (gcall);
  call->peer = g_strdup (peer);
  gpr_free (peer);
  g_hash_table_add (server->calls, call);

  memset (&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &call->close_cancelled;
  if (!proto_server_call_batch (call, &op, 1, &call->close_tag,
                                proto_server_call_close_done))
    call->cancelled = TRUE;

  if (!call->method)
    {
      proto_server_call_fail (call, PROTO_STATUS_UNIMPLEMENTED,
                              "unknown method %s", path);
      return;
    }
  if (!proto_server_call_authorize (server, call, gcall, &error))
    {
      proto_server_call_fail_error (call, error);
      return;
    }

  memset (&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &call->recv_buf;
  if (!proto_server_call_batch (call, &op, 1, &call->recv_tag,
                                proto_server_call_recv_done))
    proto_server_call_fail (call, PROTO_STATUS_INTERNAL, "cannot read request");
}

/* The server stops before the handler finished CALL: it outlives the
 * server, and finishing it later only frees it. */
void
proto_server_call_detach (ProtoServerCall *call)
{
  call->server = NULL;
  call->cancelled = TRUE;
  g_clear_pointer (&call->call, grpc_call_unref);
  g_queue_clear_full (&call->queue, (GDestroyNotify)g_bytes_unref);
}
