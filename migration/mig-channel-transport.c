/* MigChannel transports (socket over GIOStream, fault injection), TLS
 * credentials and the client-side connect. */
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

/* ---- socket transport ------------------------------------------------- */

typedef struct
{
  MigTransport parent;
  GIOStream *stream; /* GSocketConnection or GTlsConnection over one */
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

static gboolean
socket_send_times (MigTransport *t, guint64 *busy_us, guint64 *rwnd_limited_us)
{
  SocketTransport *st = (SocketTransport *)t;
  struct tcp_info ti;
  socklen_t len = sizeof ti;

  if (st->socket == NULL)
    return FALSE;
  memset (&ti, 0, sizeof ti);
  /* Older kernels return a shorter struct without the chronos (4.10+). */
  if (getsockopt (g_socket_get_fd (st->socket), IPPROTO_TCP, TCP_INFO, &ti,
                  &len)
          < 0
      || len < offsetof (struct tcp_info, tcpi_rwnd_limited)
                   + sizeof ti.tcpi_rwnd_limited)
    return FALSE;
  *busy_us = ti.tcpi_busy_time;
  *rwnd_limited_us = ti.tcpi_rwnd_limited;
  return TRUE;
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

/* ---- fault transport -------------------------------------------------- */

typedef struct
{
  MigTransport parent;
  MigTransport *inner;
  MigFaultKind kind;
  guint64 offset;
  guint64 written; /* writes are serialised by the channel */
  gboolean fired;
} FaultTransport;

static gssize
fault_read (MigTransport *t, void *buf, gsize len, GCancellable *cancellable,
            GError **error)
{
  FaultTransport *ft = (FaultTransport *)t;
  return ft->inner->ops->read (ft->inner, buf, len, cancellable, error);
}

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
      return ft->inner->ops->writev_all (ft->inner, vectors, n_vectors,
                                         cancellable, error);
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
      if (k > 0
          && !ft->inner->ops->writev_all (ft->inner, &one, 1, cancellable,
                                          error))
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
      return ft->inner->ops->writev_all (ft->inner, &one, 1, cancellable,
                                         error);

    case MIG_FAULT_NONE:
    default:
      g_assert_not_reached ();
    }
}

static void
fault_close (MigTransport *t)
{
  FaultTransport *ft = (FaultTransport *)t;
  ft->inner->ops->close (ft->inner);
}

static void
fault_set_timeout (MigTransport *t, guint seconds)
{
  FaultTransport *ft = (FaultTransport *)t;
  mig_transport_set_timeout (ft->inner, seconds);
}

static gboolean
fault_send_times (MigTransport *t, guint64 *busy_us, guint64 *rwnd_limited_us)
{
  FaultTransport *ft = (FaultTransport *)t;
  return ft->inner->ops->send_times != NULL
         && ft->inner->ops->send_times (ft->inner, busy_us, rwnd_limited_us);
}

static void
fault_free (MigTransport *t)
{
  FaultTransport *ft = (FaultTransport *)t;
  ft->inner->ops->free (ft->inner);
  g_free (ft);
}

static const MigTransportOps fault_ops = {
  .name = "fault",
  .read = fault_read,
  .writev_all = fault_writev_all,
  .close = fault_close,
  .set_timeout = fault_set_timeout,
  .send_times = fault_send_times,
  .free = fault_free,
};

MigTransport *
mig_transport_fault_new (MigTransport *inner, MigFaultKind kind, guint64 offset)
{
  FaultTransport *ft = g_new0 (FaultTransport, 1);

  ft->parent.ops = &fault_ops;
  ft->inner = inner;
  ft->kind = kind;
  ft->offset = offset;
  return &ft->parent;
}

/* ---- credentials ------------------------------------------------------ */

struct _MigChannelCreds
{
  gatomicrefcount ref;
  GTlsCertificate *cert; /* ours, presented as client and server */
  GTlsDatabase *ca;      /* the only anchor trusted for peers */
};

MigChannelCreds *
mig_channel_creds_new (const char *dir, GError **error)
{
  g_autofree char *ca_path = g_build_filename (dir, "ca.pem", NULL);
  g_autofree char *cert_path = g_build_filename (dir, "cert.pem", NULL);
  g_autofree char *key_path = g_build_filename (dir, "key.pem", NULL);
  g_autoptr (GTlsCertificate) cert = NULL;
  g_autoptr (GTlsDatabase) ca = NULL;
  MigChannelCreds *creds;
  const char *paths[] = { ca_path, cert_path, key_path };

  if (!g_tls_backend_supports_tls (g_tls_backend_get_default ()))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "no TLS backend in GIO (install glib-networking)");
      return NULL;
    }
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    if (!g_file_test (paths[i], G_FILE_TEST_IS_REGULAR))
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                     "TLS file %s is missing", paths[i]);
        return NULL;
      }
  cert = g_tls_certificate_new_from_files (cert_path, key_path, error);
  if (cert == NULL)
    {
      g_prefix_error (error, "loading %s: ", cert_path);
      return NULL;
    }
  ca = g_tls_file_database_new (ca_path, error);
  if (ca == NULL)
    {
      g_prefix_error (error, "loading %s: ", ca_path);
      return NULL;
    }
  creds = g_new0 (MigChannelCreds, 1);
  g_atomic_ref_count_init (&creds->ref);
  creds->cert = g_steal_pointer (&cert);
  creds->ca = g_steal_pointer (&ca);
  return creds;
}

MigChannelCreds *
mig_channel_creds_ref (MigChannelCreds *creds)
{
  g_atomic_ref_count_inc (&creds->ref);
  return creds;
}

void
mig_channel_creds_unref (MigChannelCreds *creds)
{
  if (creds == NULL || !g_atomic_ref_count_dec (&creds->ref))
    return;
  g_clear_object (&creds->cert);
  g_clear_object (&creds->ca);
  g_free (creds);
}

/* A GTlsServerConnection hands every client certificate to
 * accept-certificate, even one that verified; accept exactly those the
 * database verified without any error. */
static gboolean
server_accept_certificate (GTlsConnection *conn, GTlsCertificate *peer,
                           GTlsCertificateFlags errors, gpointer user_data)
{
  GTlsCertificateFlags *seen = user_data;
  *seen = errors;
  return errors == 0;
}

static const char *
cert_flags_reason (GTlsCertificateFlags flags)
{
  if (flags & G_TLS_CERTIFICATE_UNKNOWN_CA)
    return "client certificate is not signed by our CA";
  if (flags & G_TLS_CERTIFICATE_EXPIRED)
    return "client certificate expired";
  if (flags & G_TLS_CERTIFICATE_NOT_ACTIVATED)
    return "client certificate not yet valid";
  if (flags & G_TLS_CERTIFICATE_REVOKED)
    return "client certificate revoked";
  return "client certificate rejected";
}

GIOStream *
mig_channel_creds_server_handshake (MigChannelCreds *creds, GIOStream *base,
                                    GCancellable *cancellable, GError **error)
{
  g_autoptr (GIOStream) tls = NULL;
  GTlsCertificateFlags seen = 0;
  gulong handler;
  gboolean ok;

  tls = G_IO_STREAM (g_tls_server_connection_new (base, creds->cert, error));
  if (tls == NULL)
    return NULL;
  /* Mutual TLS: the client must present a certificate from our CA. */
  g_object_set (tls, "authentication-mode", G_TLS_AUTHENTICATION_REQUIRED,
                NULL);
  g_tls_connection_set_database (G_TLS_CONNECTION (tls), creds->ca);
  handler = g_signal_connect (tls, "accept-certificate",
                              G_CALLBACK (server_accept_certificate), &seen);
  ok = g_tls_connection_handshake (G_TLS_CONNECTION (tls), cancellable, error);
  g_signal_handler_disconnect (tls, handler);
  if (!ok)
    {
      if (seen != 0)
        g_prefix_error (error, "%s (flags 0x%x): ", cert_flags_reason (seen),
                        seen);
      return NULL;
    }
  return g_steal_pointer (&tls);
}

/* ---- connect ---------------------------------------------------------- */

void
mig_channel_socket_tune (GSocket *socket)
{
  /* Control traffic is small request/response messages: no Nagle delay.
   * Bulk frames go out in one writev, so this costs nothing there. */
  g_socket_set_option (socket, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
}

MigTransport *
mig_transport_connect (MigChannelCreds *creds, const char *host, guint16 port,
                       GCancellable *cancellable, GError **error)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnectable) addr = g_network_address_new (host, port);
  g_autoptr (GSocketConnection) conn = NULL;
  g_autoptr (GIOStream) tls = NULL;

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

  tls = G_IO_STREAM (
      g_tls_client_connection_new (G_IO_STREAM (conn), addr, error));
  if (tls == NULL)
    return NULL;
  g_tls_connection_set_certificate (G_TLS_CONNECTION (tls), creds->cert);
  g_tls_connection_set_database (G_TLS_CONNECTION (tls), creds->ca);
  g_socket_set_timeout (g_socket_connection_get_socket (conn), 10);
  if (!g_tls_connection_handshake (G_TLS_CONNECTION (tls), cancellable, error))
    {
      g_prefix_error (error, "TLS handshake with %s:%u: ", host, port);
      return NULL;
    }
  g_socket_set_timeout (g_socket_connection_get_socket (conn), 0);
  return mig_transport_socket_new (tls);
}
