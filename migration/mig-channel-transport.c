/* MigChannel transports (socket over GIOStream, fault injection) and the
 * client-side connect; TLS is in mig-channel-tls.c. */
#include <linux/tcp.h> /* struct tcp_info with the chrono fields */
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "mig-channel-private.h"

void
mig_transport_free (MigTransport *t)
{
  if (t == NULL)
    return;
  t->ops->close (t);
  t->ops->free (t);
}

void
mig_transport_set_timeout (MigTransport *t, guint seconds)
{
  if (t->ops->set_timeout != NULL)
    t->ops->set_timeout (t, seconds);
}

/* --- socket transport ----------------------------------------------------- */

typedef struct
{
  MigTransport parent;
  GIOStream *stream; /* a GSocketConnection */
  GSocket *socket;   /* the TCP socket underneath, for shutdown/timeout */
  gint closed;       /* atomic */
} SocketTransport;

static gssize
socket_read (MigTransport *t, void *buf, gsize len, GCancellable *cancellable,
             GError **error)
{
  SocketTransport *st = (SocketTransport *)t;
  return g_input_stream_read (g_io_stream_get_input_stream (st->stream), buf,
                              len, cancellable, error);
}

static gboolean
socket_writev_all (MigTransport *t, GOutputVector *vectors, gsize n_vectors,
                   GCancellable *cancellable, GError **error)
{
  SocketTransport *st = (SocketTransport *)t;
  return g_output_stream_writev_all (g_io_stream_get_output_stream (st->stream),
                                     vectors, n_vectors, NULL, cancellable,
                                     error);
}

static void
socket_close (MigTransport *t)
{
  SocketTransport *st = (SocketTransport *)t;

  /* shutdown(2), not g_io_stream_close(): it is safe while another thread
   * uses the stream. Only the sending side: the peer sees a clean EOF
   * after everything we sent, whereas a socket shut for reading answers
   * the peer's data in flight with a reset that can destroy our last
   * frames (an ERROR) before the peer reads them. Blocked reads are woken
   * by the caller's cancellable. No TLS close_notify is needed: END and
   * ACK frames mark a clean end. */
  if (g_atomic_int_compare_and_exchange (&st->closed, 0, 1)
      && st->socket != NULL)
    g_socket_shutdown (st->socket, FALSE, TRUE, NULL);
}

static void
socket_set_timeout (MigTransport *t, guint seconds)
{
  SocketTransport *st = (SocketTransport *)t;
  if (st->socket != NULL)
    g_socket_set_timeout (st->socket, seconds);
}

gboolean
mig_tcp_send_times (int fd, guint64 *busy_us, guint64 *rwnd_limited_us)
{
  struct tcp_info ti;
  socklen_t len = sizeof ti;

  memset (&ti, 0, sizeof ti);
  /* Older kernels return a shorter struct without the chronos (4.10+). */
  if (getsockopt (fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0
      || len < offsetof (struct tcp_info, tcpi_rwnd_limited)
                   + sizeof ti.tcpi_rwnd_limited)
    return FALSE;
  *busy_us = ti.tcpi_busy_time;
  *rwnd_limited_us = ti.tcpi_rwnd_limited;
  return TRUE;
}

static gboolean
socket_send_times (MigTransport *t, guint64 *busy_us, guint64 *rwnd_limited_us)
{
  SocketTransport *st = (SocketTransport *)t;

  if (st->socket == NULL)
    return FALSE;
  return mig_tcp_send_times (g_socket_get_fd (st->socket), busy_us,
                             rwnd_limited_us);
}

static void
socket_free (MigTransport *t)
{
  SocketTransport *st = (SocketTransport *)t;
  g_clear_object (&st->socket);
  g_clear_object (&st->stream);
  g_free (st);
}

static const MigTransportOps socket_ops = {
  .name = "socket",
  .read = socket_read,
  .writev_all = socket_writev_all,
  .close = socket_close,
  .set_timeout = socket_set_timeout,
  .send_times = socket_send_times,
  .free = socket_free,
};

static GSocket *
stream_get_socket (GIOStream *stream)
{
  while (stream != NULL)
    {
      if (G_IS_SOCKET_CONNECTION (stream))
        return g_socket_connection_get_socket (G_SOCKET_CONNECTION (stream));
      if (G_IS_TLS_CONNECTION (stream))
        {
          GIOStream *base = NULL;
          g_object_get (stream, "base-io-stream", &base, NULL);
          if (base != NULL)
            g_object_unref (base); /* still referenced by STREAM */
          stream = base;
          continue;
        }
      return NULL;
    }
  return NULL;
}

MigTransport *
mig_transport_socket_new (GIOStream *stream)
{
  SocketTransport *st = g_new0 (SocketTransport, 1);
  GSocket *socket = stream_get_socket (stream);

  st->parent.ops = &socket_ops;
  st->stream = g_object_ref (stream);
  st->socket = socket != NULL ? g_object_ref (socket) : NULL;
  return &st->parent;
}

/* --- transports around another one --------------------------------------- */

gssize
mig_transport_wrapper_read (MigTransport *t, void *buf, gsize len,
                            GCancellable *cancellable, GError **error)
{
  MigTransport *inner = ((MigTransportWrapper *)t)->inner;

  return inner->ops->read (inner, buf, len, cancellable, error);
}

void
mig_transport_wrapper_close (MigTransport *t)
{
  MigTransport *inner = ((MigTransportWrapper *)t)->inner;

  inner->ops->close (inner);
}

void
mig_transport_wrapper_set_timeout (MigTransport *t, guint seconds)
{
  mig_transport_set_timeout (((MigTransportWrapper *)t)->inner, seconds);
}

gboolean
mig_transport_wrapper_send_times (MigTransport *t, guint64 *busy_us,
                                  guint64 *rwnd_limited_us)
{
  MigTransport *inner = ((MigTransportWrapper *)t)->inner;

  return inner->ops->send_times != NULL
         && inner->ops->send_times (inner, busy_us, rwnd_limited_us);
}

void
mig_transport_wrapper_free (MigTransport *t)
{
  MigTransport *inner = ((MigTransportWrapper *)t)->inner;

  inner->ops->free (inner);
  g_free (t);
}

/* --- fault transport ------------------------------------------------------ */

typedef struct
{
  MigTransportWrapper wrap;
  MigFaultKind kind;
  guint64 offset;
  guint64 written; /* writes are serialised by the channel */
  gboolean fired;
} FaultTransport;

static guint8 *
flatten (GOutputVector *vectors, gsize n_vectors, gsize total)
{
  guint8 *flat = g_malloc (MAX (total, 1));
  gsize at = 0;

  for (gsize i = 0; i < n_vectors; i++)
    {
      memcpy (flat + at, vectors[i].buffer, vectors[i].size);
      at += vectors[i].size;
    }
  return flat;
}

static gboolean
fault_writev_all (MigTransport *t, GOutputVector *vectors, gsize n_vectors,
                  GCancellable *cancellable, GError **error)
{
  FaultTransport *ft = (FaultTransport *)t;
  MigTransport *inner = ft->wrap.inner;
  gsize total = 0;
  g_autofree guint8 *flat = NULL;
  GOutputVector one;
  gsize k;

  for (gsize i = 0; i < n_vectors; i++)
    total += vectors[i].size;

  if (ft->fired && ft->kind != MIG_FAULT_CORRUPT)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_FAULT,
                   "injected fault: connection already cut");
      return FALSE;
    }
  if (ft->fired || ft->kind == MIG_FAULT_NONE
      || ft->written + total <= ft->offset)
    {
      ft->written += total;
      return inner->ops->writev_all (inner, vectors, n_vectors, cancellable,
                                     error);
    }

  ft->fired = TRUE;
  k = ft->offset - ft->written; /* bytes of this write before the fault */
  switch (ft->kind)
    {
    case MIG_FAULT_CUT:
      /* The caller (the channel) closes the connection on this error, so
       * the peer sees EOF at a frame boundary. */
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_FAULT,
                   "injected fault: connection cut after %" G_GUINT64_FORMAT
                   " bytes",
                   ft->written);
      return FALSE;

    case MIG_FAULT_TRUNCATE:
      flat = flatten (vectors, n_vectors, total);
      one.buffer = flat;
      one.size = k;
      if (k > 0 && !inner->ops->writev_all (inner, &one, 1, cancellable, error))
        return FALSE;
      ft->written += k;
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_FAULT,
                   "injected fault: stream truncated after %" G_GUINT64_FORMAT
                   " bytes",
                   ft->written);
      return FALSE;

    case MIG_FAULT_CORRUPT:
      flat = flatten (vectors, n_vectors, total);
      flat[k] ^= 0x20;
      one.buffer = flat;
      one.size = total;
      ft->written += total;
      return inner->ops->writev_all (inner, &one, 1, cancellable, error);

    case MIG_FAULT_NONE:
    default:
      g_assert_not_reached ();
    }
}

static const MigTransportOps fault_ops = {
  .name = "fault",
  .read = mig_transport_wrapper_read,
  .writev_all = fault_writev_all,
  .close = mig_transport_wrapper_close,
  .set_timeout = mig_transport_wrapper_set_timeout,
  .send_times = mig_transport_wrapper_send_times,
  .free = mig_transport_wrapper_free,
};

MigTransport *
mig_transport_fault_new (MigTransport *inner, MigFaultKind kind, guint64 offset)
{
  FaultTransport *ft = g_new0 (FaultTransport, 1);

  ft->wrap.parent.ops = &fault_ops;
  ft->wrap.inner = inner;
  ft->kind = kind;
  ft->offset = offset;
  return &ft->wrap.parent;
}

/* --- connect -------------------------------------------------------------- */

void
mig_channel_socket_tune (GSocket *socket)
{
  /* Control traffic is small request/response messages: no Nagle delay.
   * Bulk frames go out in one writev, so this costs nothing there. */
  g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
}

MigTransport *
mig_transport_connect_host (MigChannelCreds *creds, const char *host,
                            guint16 port, const char *peer_host,
                            GCancellable *cancellable, GError **error)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnectable) addr = g_network_address_new (host, port);
  g_autoptr (GSocketConnection) conn = NULL;
  MigTransport *t;

  /* Agent to agent, always direct: no proxy lookup (libproxy, dconf). */
  g_socket_client_set_enable_proxy (client, FALSE);
  conn = g_socket_client_connect (client, addr, cancellable, error);
  if (conn == NULL)
    {
      g_prefix_error (error, "connecting to %s:%u: ", host, port);
      return NULL;
    }
  mig_channel_socket_tune (g_socket_connection_get_socket (conn));
  if (creds == NULL)
    return mig_transport_socket_new (G_IO_STREAM (conn));

  t = mig_transport_tls_client (creds, conn, host, cancellable, error);
  if (t == NULL)
    {
      g_prefix_error (error, "TLS handshake with %s:%u: ", host, port);
      return NULL;
    }
  if (peer_host)
    {
      MigChannelPeer peer;

      mig_transport_tls_get_peer (t, &peer);
      if (peer.role != PROTO_ROLE_HOST || g_strcmp0 (peer.name, peer_host) != 0)
        {
          g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH,
                       "%s:%u is not host %s: %s%s%s", host, port, peer_host,
                       peer.name ? proto_role_to_string (peer.role)
                                 : peer.problem,
                       peer.name ? " " : "", peer.name ? peer.name : "");
          mig_transport_free (t);
          return NULL;
        }
    }
  return t;
}

MigTransport *
mig_transport_connect (MigChannelCreds *creds, const char *host, guint16 port,
                       GCancellable *cancellable, GError **error)
{
  return mig_transport_connect_host (creds, host, port, NULL, cancellable,
                                     error);
}
