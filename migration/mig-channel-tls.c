/* TLS for MigChannel connections: GnuTLS straight on the TCP socket.
 *
 * Both ends are Drover agents with certificates from the cluster CA, so
 * the session is TLS 1.3 only, mutual, and verified by GnuTLS during the
 * handshake (the server's IP or name against the address dialled, the
 * client's chain against the CA, both against the CA's CRL). Then the
 * peer is identified with the credentials' ProtoTrust (O is the role, CN
 * the name), for the listener's token check and the client's check that
 * the server is the destination host. No session tickets and no automatic
 * key updates: either would make the receiving thread write, and the
 * two pumps use one session from two threads, one reading and one
 * writing, which GnuTLS allows for TLS.
 *
 * The pull and push functions wait with poll(2) on the socket and on the
 * caller's cancellable, with the transport's timeout, so a blocked pump
 * can always be woken. Errors keep GIO's domains (G_TLS_ERROR,
 * G_IO_ERROR) so callers need not know which TLS layer ran.
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "mig-channel-private.h"

/* AES-GCM first: every x86 host has AES-NI, and 128-bit keys are the
 * cheaper half of it. */
#define MIG_TLS_PRIORITY                                                       \
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"       \
  "+CHACHA20-POLY1305"

/* A frame header this small rides in the first record with the payload. */
#define MERGE_MAX 512
#define RECORD_MAX 16384
/* Records are at most 16 KiB: socket reads and writes batch them, one
 * system call for many records instead of two per record. */
#define IO_BUF (256 * 1024)

struct _MigChannelCreds
{
  gatomicrefcount ref;
  gnutls_certificate_credentials_t xcred; /* our cert + key, the CA, CRL */
  ProtoTrust *trust;                      /* who a peer is */
};

/* Loads PEM text WHAT into X with LOAD; FALSE with ERROR. */
static gboolean
load_pem (gnutls_certificate_credentials_t x, const char *what, const char *pem,
          GError **error)
{
  gnutls_datum_t d = { (unsigned char *)pem, (unsigned int)strlen (pem) };
  int rc = 0;

  if (strcmp (what, "ca.pem") == 0)
    rc = gnutls_certificate_set_x509_trust_mem (x, &d, GNUTLS_X509_FMT_PEM);
  else if (strcmp (what, "crl.pem") == 0)
    rc = gnutls_certificate_set_x509_crl_mem (x, &d, GNUTLS_X509_FMT_PEM);
  if (rc < 0 || (rc == 0 && strcmp (what, "ca.pem") == 0))
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                   "loading %s: %s", what,
                   rc == 0 ? "no certificate in it" : gnutls_strerror (rc));
      return FALSE;
    }
  return TRUE;
}

MigChannelCreds *
mig_channel_creds_new_tls (const ProtoTls *tls, GError **error)
{
  gnutls_certificate_credentials_t x = NULL;
  gnutls_datum_t cert = { (unsigned char *)tls->cert_pem,
                          (unsigned int)strlen (tls->cert_pem) };
  gnutls_datum_t key
      = { (unsigned char *)tls->key_pem, (unsigned int)strlen (tls->key_pem) };
  g_autoptr (ProtoTrust) trust = NULL;
  MigChannelCreds *creds;
  int rc;

  trust = proto_trust_new (tls->ca_pem, tls->crl_pem, error);
  if (!trust)
    return NULL;
  if (gnutls_certificate_allocate_credentials (&x) < 0)
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_MISC,
                   "cannot allocate TLS credentials");
      return NULL;
    }
  if (!load_pem (x, "ca.pem", tls->ca_pem, error)
      || (tls->crl_pem && !load_pem (x, "crl.pem", tls->crl_pem, error)))
    {
      gnutls_certificate_free_credentials (x);
      return NULL;
    }
  rc = gnutls_certificate_set_x509_key_mem (x, &cert, &key,
                                            GNUTLS_X509_FMT_PEM);
  if (rc < 0)
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                   "loading cert.pem with key.pem: %s", gnutls_strerror (rc));
      gnutls_certificate_free_credentials (x);
      return NULL;
    }
  creds = g_new0 (MigChannelCreds, 1);
  g_atomic_ref_count_init (&creds->ref);
  creds->xcred = x;
  creds->trust = g_steal_pointer (&trust);
  return creds;
}

MigChannelCreds *
mig_channel_creds_new (const char *dir, GError **error)
{
  static const char *const required[] = { "ca.pem", "cert.pem", "key.pem" };
  g_autoptr (ProtoTls) tls = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (required); i++)
    {
      g_autofree char *path = g_build_filename (dir, required[i], NULL);

      if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                       "TLS file %s is missing", path);
          return NULL;
        }
    }
  tls = proto_tls_load (dir, error);
  return tls ? mig_channel_creds_new_tls (tls, error) : NULL;
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
  gnutls_certificate_free_credentials (creds->xcred);
  proto_trust_unref (creds->trust);
  g_free (creds);
}

/* --- transport ------------------------------------------------------------ */

typedef struct
{
  MigTransport parent;
  GSocketConnection *conn; /* owns the fd */
  int fd;
  gnutls_session_t session;
  gint closed;     /* atomic */
  gint timeout_ms; /* atomic; 0 = none */
  /* Per direction: only the reading thread pulls and only the writing
   * thread pushes (no tickets, no key updates; see above). */
  GCancellable *rd_cancel, *wr_cancel;
  int rd_errno, wr_errno;
  guint8 *rbuf; /* read ahead: rbuf[rpos..rlen) not yet given to GnuTLS */
  gsize rpos, rlen;
  guint8 *wbuf; /* records written by GnuTLS, not yet sent */
  gsize wlen;
  gboolean batching; /* inside writev_all: push appends to wbuf */
  /* The peer's certificate as ProtoTrust reads it, after the handshake. */
  ProtoRole peer_role;
  char *peer_name;    /* NULL: not identified */
  char *peer_problem; /* why not, or NULL */
} TlsTransport;

/* Waits until FD is ready for EVENTS: 0, or an errno (ECANCELED,
 * ETIMEDOUT, poll's). */
static int
wait_fd (TlsTransport *tt, short events, GCancellable *cancellable)
{
  struct pollfd p[2] = { { tt->fd, events, 0 }, { -1, POLLIN, 0 } };
  GPollFD gp;
  int timeout = g_atomic_int_get (&tt->timeout_ms);
  nfds_t n = 1;
  int r, err = 0;

  if (g_cancellable_is_cancelled (cancellable))
    return ECANCELED;
  if (cancellable != NULL && g_cancellable_make_pollfd (cancellable, &gp))
    {
      p[1].fd = gp.fd;
      n = 2;
    }
  do
    r = poll (p, n, timeout > 0 ? timeout : -1);
  while (r < 0 && errno == EINTR);
  if (r < 0)
    err = errno;
  else if (r == 0)
    err = ETIMEDOUT;
  else if (n == 2 && p[1].revents != 0)
    err = ECANCELED;
  if (n == 2)
    g_cancellable_release_fd (cancellable);
  return err;
}

/* After a failed recv/send (errno set): 0 to try again (interrupted, or
 * the socket became ready for EVENTS), else the errno to report. */
static int
io_retry (TlsTransport *tt, short events, GCancellable *cancellable)
{
  int err = errno;

  if (err == EINTR)
    return 0;
  if (err == EAGAIN || err == EWOULDBLOCK)
    return wait_fd (tt, events, cancellable);
  return err;
}

static ssize_t
tls_pull (gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  TlsTransport *tt = ptr;

  if (tt->rbuf == NULL)
    tt->rbuf = g_malloc (IO_BUF);
  for (;;)
    {
      ssize_t n;
      int err;

      if (tt->rpos < tt->rlen)
        {
          gsize take = MIN (len, tt->rlen - tt->rpos);
          memcpy (buf, tt->rbuf + tt->rpos, take);
          tt->rpos += take;
          return (ssize_t)take;
        }
      n = recv (tt->fd, tt->rbuf, IO_BUF, MSG_DONTWAIT);
      if (n > 0)
        {
          tt->rpos = 0;
          tt->rlen = (gsize)n;
          continue;
        }
      if (n == 0)
        return 0;
      err = io_retry (tt, POLLIN, tt->rd_cancel);
      if (err == 0)
        continue;
      tt->rd_errno = err;
      gnutls_transport_set_errno (tt->session, err);
      return -1;
    }
}

/* Sends all of BUF straight to the socket, waiting as needed. */
static gboolean
send_raw (TlsTransport *tt, const guint8 *buf, gsize len)
{
  while (len > 0)
    {
      ssize_t n = send (tt->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
      int err;

      if (n >= 0)
        {
          buf += n;
          len -= n;
          continue;
        }
      err = io_retry (tt, POLLOUT, tt->wr_cancel);
      if (err == 0)
        continue;
      tt->wr_errno = err;
      return FALSE;
    }
  return TRUE;
}

static gboolean
flush_wbuf (TlsTransport *tt)
{
  gboolean ok = send_raw (tt, tt->wbuf, tt->wlen);
  tt->wlen = 0;
  return ok;
}

static ssize_t
tls_push (gnutls_transport_ptr_t ptr, const void *buf, size_t len)
{
  TlsTransport *tt = ptr;

  if (tt->batching && len <= IO_BUF)
    {
      if (tt->wlen + len > IO_BUF && !flush_wbuf (tt))
        {
          gnutls_transport_set_errno (tt->session, tt->wr_errno);
          return -1;
        }
      memcpy (tt->wbuf + tt->wlen, buf, len);
      tt->wlen += len;
      return (ssize_t)len;
    }
  if (!send_raw (tt, buf, len))
    {
      gnutls_transport_set_errno (tt->session, tt->wr_errno);
      return -1;
    }
  return (ssize_t)len;
}

/* Turns GnuTLS result RC (with the errno our pull/push saw, if any) into
 * a GError in GIO's terms. */
static void
set_tls_error (GError **error, int rc, int sys_errno, const char *what)
{
  if (sys_errno == ECANCELED)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED, "%s: cancelled",
                 what);
  else if (sys_errno == ETIMEDOUT)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%s: timed out",
                 what);
  else if (sys_errno != 0)
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (sys_errno), "%s: %s",
                 what, g_strerror (sys_errno));
  else if (rc == GNUTLS_E_PREMATURE_TERMINATION)
    g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_EOF,
                 "%s: TLS connection closed unexpectedly", what);
  else
    g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_MISC, "%s: %s", what,
                 gnutls_strerror (rc));
}

static gssize
tls_read (MigTransport *t, void *buf, gsize len, GCancellable *cancellable,
          GError **error)
{
  TlsTransport *tt = (TlsTransport *)t;

  tt->rd_cancel = cancellable;
  tt->rd_errno = 0;
  for (;;)
    {
      ssize_t n = gnutls_record_recv (tt->session, buf, len);

      if (n >= 0)
        return n;
      if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
        continue;
      set_tls_error (error, (int)n, tt->rd_errno, "TLS read");
      return -1;
    }
}

/* Sends LEN bytes as records, waiting as needed. */
static gboolean
send_all (TlsTransport *tt, const guint8 *p, gsize len, GError **error)
{
  while (len > 0)
    {
      ssize_t n = gnutls_record_send (tt->session, p, len);

      if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
        {
          /* GnuTLS keeps the record; finish sending it. */
          n = gnutls_record_send (tt->session, NULL, 0);
          if (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN)
            continue;
        }
      if (n < 0)
        {
          set_tls_error (error, (int)n, tt->wr_errno, "TLS write");
          return FALSE;
        }
      p += n;
      len -= n;
    }
  return TRUE;
}

static gboolean
tls_writev_all (MigTransport *t, GOutputVector *v, gsize n_vectors,
                GCancellable *cancellable, GError **error)
{
  TlsTransport *tt = (TlsTransport *)t;
  gsize i = 0, skip = 0;

  gboolean ok = FALSE;

  tt->wr_cancel = cancellable;
  tt->wr_errno = 0;
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;
  if (tt->wbuf == NULL)
    tt->wbuf = g_malloc (IO_BUF);
  tt->batching = TRUE;
  /* A frame header alone would cost a record (and a send) of its own. */
  if (n_vectors >= 2 && v[0].size <= MERGE_MAX)
    {
      guint8 first[RECORD_MAX];
      gsize take = MIN (v[1].size, sizeof first - v[0].size);

      memcpy (first, v[0].buffer, v[0].size);
      memcpy (first + v[0].size, v[1].buffer, take);
      if (!send_all (tt, first, v[0].size + take, error))
        goto out;
      i = 1;
      skip = take;
    }
  for (; i < n_vectors; i++, skip = 0)
    if (!send_all (tt, (const guint8 *)v[i].buffer + skip, v[i].size - skip,
                   error))
      goto out;
  ok = flush_wbuf (tt);
  if (!ok)
    set_tls_error (error, 0, tt->wr_errno, "TLS write");
out:
  tt->batching = FALSE;
  tt->wlen = 0;
  return ok;
}

static void
tls_close (MigTransport *t)
{
  TlsTransport *tt = (TlsTransport *)t;

  /* As for the plain socket transport: shut our sending side only, so the
   * peer reads everything we sent and then EOF; blocked reads here are
   * woken by the caller's cancellable. END and ACK frames mark a clean
   * end, so no close_notify. */
  if (g_atomic_int_compare_and_exchange (&tt->closed, 0, 1))
    (void)shutdown (tt->fd, SHUT_WR);
}

static void
tls_set_timeout (MigTransport *t, guint seconds)
{
  TlsTransport *tt = (TlsTransport *)t;
  g_atomic_int_set (&tt->timeout_ms, (gint)MIN (seconds, 3600u) * 1000);
}

static gboolean
tls_send_times (MigTransport *t, guint64 *busy_us, guint64 *rwnd_limited_us)
{
  TlsTransport *tt = (TlsTransport *)t;
  return mig_tcp_send_times (tt->fd, busy_us, rwnd_limited_us);
}

static void
tls_free (MigTransport *t)
{
  TlsTransport *tt = (TlsTransport *)t;

  gnutls_deinit (tt->session);
  g_clear_object (&tt->conn);
  g_free (tt->peer_name);
  g_free (tt->peer_problem);
  g_free (tt->rbuf);
  g_free (tt->wbuf);
  g_free (tt);
}

static const MigTransportOps tls_ops = {
  .name = "tls",
  .read = tls_read,
  .writev_all = tls_writev_all,
  .close = tls_close,
  .set_timeout = tls_set_timeout,
  .send_times = tls_send_times,
  .free = tls_free,
};

static const char *
verify_reason (gnutls_session_t session, gnutls_datum_t *out)
{
  unsigned status = gnutls_session_get_verify_cert_status (session);

  if (gnutls_certificate_verification_status_print (status, GNUTLS_CRT_X509,
                                                    out, 0)
      < 0)
    return "verification failed";
  return (const char *)out->data;
}

/* Reads who the peer is from its certificate (the handshake has checked
 * its chain already; ProtoTrust checks it again with the CRL and reads
 * O and CN). */
static void
identify_peer (TlsTransport *tt, MigChannelCreds *creds)
{
  const gnutls_datum_t *der;
  unsigned int n = 0;
  gnutls_datum_t pem = { NULL, 0 };
  g_autoptr (GError) error = NULL;

  der = gnutls_certificate_get_peers (tt->session, &n);
  if (der == NULL || n == 0
      || gnutls_pem_base64_encode2 ("CERTIFICATE", &der[0], &pem) < 0)
    {
      tt->peer_problem = g_strdup ("no peer certificate");
      return;
    }
  if (!proto_trust_identify (creds->trust, (const char *)pem.data, pem.size,
                             &tt->peer_role, &tt->peer_name, &error))
    tt->peer_problem = g_strdup (error->message);
  gnutls_free (pem.data);
}

static MigTransport *
tls_handshake (MigChannelCreds *creds, GSocketConnection *conn, gboolean server,
               const char *host, guint timeout_s, GCancellable *cancellable,
               GError **error)
{
  TlsTransport *tt = g_new0 (TlsTransport, 1);
  unsigned flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT)
                   | GNUTLS_NO_AUTO_REKEY | GNUTLS_NO_TICKETS;
  const char *who = server ? "client" : "server";
  int rc;

  tt->parent.ops = &tls_ops;
  tt->conn = g_object_ref (conn);
  tt->fd = g_socket_get_fd (g_socket_connection_get_socket (conn));
  if (gnutls_init (&tt->session, flags) < 0)
    {
      g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_MISC,
                   "cannot start a TLS session");
      g_object_unref (tt->conn);
      g_free (tt);
      return NULL;
    }
  if ((rc = gnutls_priority_set_direct (tt->session, MIG_TLS_PRIORITY, NULL))
          < 0
      || (rc = gnutls_credentials_set (tt->session, GNUTLS_CRD_CERTIFICATE,
                                       creds->xcred))
             < 0)
    {
      set_tls_error (error, rc, 0, "TLS setup");
      tls_free (&tt->parent);
      return NULL;
    }
  /* Both sides verify the peer during the handshake: the client checks
   * the server's certificate names HOST, the server requires a client
   * certificate; both chains must end at our CA. */
  if (server)
    gnutls_certificate_server_set_request (tt->session, GNUTLS_CERT_REQUIRE);
  gnutls_session_set_verify_cert (tt->session, server ? NULL : host, 0);
  gnutls_transport_set_ptr (tt->session, tt);
  gnutls_transport_set_pull_function (tt->session, tls_pull);
  gnutls_transport_set_push_function (tt->session, tls_push);
  tls_set_timeout (&tt->parent, timeout_s);
  tt->rd_cancel = tt->wr_cancel = cancellable;

  do
    rc = gnutls_handshake (tt->session);
  while (rc < 0 && !gnutls_error_is_fatal (rc));
  if (rc < 0)
    {
      if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR)
        {
          gnutls_datum_t out = { NULL, 0 };
          g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE,
                       "%s certificate rejected: %s", who,
                       verify_reason (tt->session, &out));
          gnutls_free (out.data);
        }
      else if (server && rc == GNUTLS_E_NO_CERTIFICATE_FOUND)
        g_set_error (error, G_TLS_ERROR, G_TLS_ERROR_CERTIFICATE_REQUIRED,
                     "client presented no certificate");
      else
        set_tls_error (error, rc, tt->rd_errno ? tt->rd_errno : tt->wr_errno,
                       "TLS handshake");
      tls_free (&tt->parent);
      return NULL;
    }
  tls_set_timeout (&tt->parent, 0);
  tt->rd_cancel = tt->wr_cancel = NULL;
  identify_peer (tt, creds);
  return &tt->parent;
}

MigTransport *
mig_transport_tls_client (MigChannelCreds *creds, GSocketConnection *conn,
                          const char *host, GCancellable *cancellable,
                          GError **error)
{
  return tls_handshake (creds, conn, FALSE, host, 10, cancellable, error);
}

MigTransport *
mig_transport_tls_server (MigChannelCreds *creds, GSocketConnection *conn,
                          guint timeout_s, GCancellable *cancellable,
                          GError **error)
{
  return tls_handshake (creds, conn, TRUE, NULL, timeout_s, cancellable, error);
}

void
mig_transport_tls_get_peer (MigTransport *t, MigChannelPeer *peer)
{
  TlsTransport *tt = (TlsTransport *)t;

  g_return_if_fail (t->ops == &tls_ops);
  peer->tls = TRUE;
  peer->role = tt->peer_name ? tt->peer_role : PROTO_ROLE_NONE;
  peer->name = tt->peer_name;
  peer->problem = tt->peer_problem;
}
