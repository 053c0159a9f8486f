/* bench-channel: MigChannel throughput against a raw loopback TCP socket
 * measured in the same run.
 *
 *   raw: producer -> TCP -> consumer
 *   fwd: producer -> unix -> copy -> TCP -> copy -> unix -> consumer
 *        (a naive forwarder: the topology the channel has, no framing)
 *   fwd tls=yes: the same forwarder over the channel's TLS transport,
 *        writing 256 KiB at a time as the channel does (no frames, no CRC,
 *        no lz4): what TLS and the topology cost, so the channel's own
 *        overhead is the gap between this and the channel with TLS
 *   channel: producer -> unix -> MigChannel -> TCP(+TLS) -> MigChannel
 *        -> unix -> consumer
 *
 * Prints one line per case:
 *   channel: mode=off tls=yes data=random rate=none MB/s=... vs raw=0.93x
 * MB is 10^6 bytes of payload (what the producer wrote).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mig-channel-private.h"
#include "mig-channel.h"
#include "test-support.h"

#define BUF_LEN (4 * 1024 * 1024)
#define IO_LEN (256 * 1024)

static GBytes *data_random, *data_text;

/* --- producer / consumer / copier threads --------------------------------- */

typedef struct
{
  int fd;
  GBytes *data;
  guint64 len;
} Producer;

static gpointer
producer_thread (gpointer p_)
{
  Producer *p = p_;
  gsize blen;
  const guint8 *buf = g_bytes_get_data (p->data, &blen);
  guint64 left = p->len;
  gsize at = 0;

  while (left > 0)
    {
      gsize n = MIN ((guint64)IO_LEN, left);
      gssize w;
      if (at + n > blen)
        at = 0;
      w = send (p->fd, buf + at, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        g_error ("producer: %s", g_strerror (errno));
      left -= w;
      at += w;
    }
  shutdown (p->fd, SHUT_WR);
  return NULL;
}

static gpointer
consumer_thread (gpointer fdp)
{
  int fd = GPOINTER_TO_INT (fdp);
  g_autofree guint8 *buf = g_malloc (IO_LEN);
  guint64 total = 0;

  for (;;)
    {
      gssize n = read (fd, buf, IO_LEN);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        g_error ("consumer: %s", g_strerror (errno));
      if (n == 0)
        break;
      total += n;
    }
  return g_memdup2 (&total, sizeof total);
}

typedef struct
{
  int from, to;
} Copier;

/* Sends all N bytes of BUF to FD; WHO names the thread in the error. */
static void
send_all (int fd, const guint8 *buf, gssize n, const char *who)
{
  gssize off = 0;

  while (off < n)
    {
      gssize w = send (fd, buf + off, n - off, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        g_error ("%s: %s", who, g_strerror (errno));
      off += w;
    }
}

static gpointer
copier_thread (gpointer c_)
{
  Copier *c = c_;
  g_autofree guint8 *buf = g_malloc (IO_LEN);

  for (;;)
    {
      gssize n = read (c->from, buf, IO_LEN);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      send_all (c->to, buf, n, "copier");
    }
  shutdown (c->to, SHUT_WR);
  return NULL;
}

static void
tcp_pair (int sv[2])
{
  struct sockaddr_in addr
      = { .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t alen = sizeof addr;
  int l = socket (AF_INET, SOCK_STREAM, 0);

  if (l < 0 || bind (l, (struct sockaddr *)&addr, sizeof addr) < 0
      || listen (l, 1) < 0
      || getsockname (l, (struct sockaddr *)&addr, &alen) < 0)
    g_error ("listen: %s", g_strerror (errno));
  sv[0] = socket (AF_INET, SOCK_STREAM, 0);
  if (connect (sv[0], (struct sockaddr *)&addr, sizeof addr) < 0)
    g_error ("connect: %s", g_strerror (errno));
  sv[1] = accept (l, NULL, NULL);
  if (sv[1] < 0)
    g_error ("accept: %s", g_strerror (errno));
  close (l);
}

/* Runs producer on SRC and consumer on DST; returns seconds. */
static double
run_pipe (int src, int dst, GBytes *data, guint64 len)
{
  Producer p = { src, data, len };
  gint64 t0 = g_get_monotonic_time ();
  GThread *pt = g_thread_new ("producer", producer_thread, &p);
  GThread *ct
      = g_thread_new ("consumer", consumer_thread, GINT_TO_POINTER (dst));
  guint64 *got = g_thread_join (ct);
  double secs = (g_get_monotonic_time () - t0) / 1e6;

  g_thread_join (pt);
  if (*got != len)
    g_error ("consumer got %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT, *got,
             len);
  g_free (got);
  return secs;
}

static double
bench_raw (GBytes *data, guint64 len)
{
  int sv[2];
  double secs;

  tcp_pair (sv);
  secs = run_pipe (sv[0], sv[1], data, len);
  close (sv[0]);
  close (sv[1]);
  return secs;
}

static double
bench_fwd (GBytes *data, guint64 len)
{
  int in[2], out[2], tcp[2];
  Copier c1, c2;
  GThread *t1, *t2;
  double secs;

  socketpair (AF_UNIX, SOCK_STREAM, 0, in);
  socketpair (AF_UNIX, SOCK_STREAM, 0, out);
  tcp_pair (tcp);
  c1 = (Copier){ in[1], tcp[0] };
  c2 = (Copier){ tcp[1], out[1] };
  t1 = g_thread_new ("fwd1", copier_thread, &c1);
  t2 = g_thread_new ("fwd2", copier_thread, &c2);
  secs = run_pipe (in[0], out[0], data, len);
  g_thread_join (t1);
  g_thread_join (t2);
  for (int i = 0; i < 2; i++)
    {
      close (in[i]);
      close (out[i]);
      close (tcp[i]);
    }
  return secs;
}

/* --- forwarder over the channel's TLS transport --------------------------- */

typedef struct
{
  int fd;
  MigTransport *t;
} TlsCopier;

/* unix FD -> TLS */
static gpointer
tls_send_thread (gpointer c_)
{
  TlsCopier *c = c_;
  g_autofree guint8 *buf = g_malloc (IO_LEN);
  g_autoptr (GError) error = NULL;

  for (;;)
    {
      gssize n = read (c->fd, buf, IO_LEN);
      GOutputVector v = { buf, 0 };
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      v.size = (gsize)n;
      if (!c->t->ops->writev_all (c->t, &v, 1, NULL, &error))
        g_error ("tls forwarder: %s", error->message);
    }
  c->t->ops->close (c->t);
  return NULL;
}

/* TLS -> unix FD, IO_LEN at a time as the channel writes a frame (a TLS
 * read returns one 16 KiB record) */
static gpointer
tls_recv_thread (gpointer c_)
{
  TlsCopier *c = c_;
  g_autofree guint8 *buf = g_malloc (IO_LEN);
  gboolean eof = FALSE;

  while (!eof)
    {
      gssize n = 0;
      while (n < IO_LEN)
        {
          gssize r = c->t->ops->read (c->t, buf + n, IO_LEN - n, NULL, NULL);
          if (r <= 0)
            {
              eof = TRUE;
              break;
            }
          n += r;
        }
      send_all (c->fd, buf, n, "tls forwarder");
    }
  shutdown (c->fd, SHUT_WR);
  return NULL;
}

typedef struct
{
  MigChannelCreds *creds;
  GSocketConnection *conn;
  MigTransport *t;
  GError *error;
} TlsServer;

static gpointer
tls_server_thread (gpointer s_)
{
  TlsServer *s = s_;
  s->t = mig_transport_tls_server (s->creds, s->conn, 10, NULL, &s->error);
  return NULL;
}

static GSocketConnection *
conn_from_fd (int fd)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocket) sock = g_socket_new_from_fd (fd, &error);

  if (sock == NULL)
    g_error ("socket: %s", error->message);
  return g_socket_connection_factory_create_connection (sock);
}

static double
bench_fwd_tls (MigChannelCreds *creds, GBytes *data, guint64 len)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketConnection) cconn = NULL;
  g_autoptr (GSocketConnection) sconn = NULL;
  int in[2], out[2], tcp[2];
  TlsServer srv = { creds, NULL, NULL, NULL };
  TlsCopier c1, c2;
  MigTransport *client;
  GThread *st, *t1, *t2;
  double secs;

  socketpair (AF_UNIX, SOCK_STREAM, 0, in);
  socketpair (AF_UNIX, SOCK_STREAM, 0, out);
  tcp_pair (tcp);
  cconn = conn_from_fd (tcp[0]);
  sconn = conn_from_fd (tcp[1]);
  srv.conn = sconn;
  st = g_thread_new ("tls-hs", tls_server_thread, &srv);
  client = mig_transport_tls_client (creds, cconn, "127.0.0.1", NULL, &error);
  g_thread_join (st);
  if (client == NULL || srv.t == NULL)
    g_error ("TLS handshake: %s", error ? error->message : srv.error->message);
  c1 = (TlsCopier){ in[1], client };
  c2 = (TlsCopier){ out[1], srv.t };
  t1 = g_thread_new ("fwd1", tls_send_thread, &c1);
  t2 = g_thread_new ("fwd2", tls_recv_thread, &c2);
  secs = run_pipe (in[0], out[0], data, len);
  g_thread_join (t1);
  g_thread_join (t2);
  client->ops->free (client);
  srv.t->ops->free (srv.t);
  for (int i = 0; i < 2; i++)
    {
      close (in[i]);
      close (out[i]);
    }
  return secs;
}

/* --- channel -------------------------------------------------------------- */

typedef struct
{
  GMutex lock;
  GCond cond;
  MigChannel *accepted;
} Accept;

static void
on_accept (MigChannel *ch, gpointer data)
{
  Accept *a = data;
  g_mutex_lock (&a->lock);
  a->accepted = ch;
  g_cond_signal (&a->cond);
  g_mutex_unlock (&a->lock);
}

static double
bench_channel (MigChannelCreds *creds, const MigChannelOptions *opts,
               GBytes *data, guint64 len, MigChannelStats *stats)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MigTokenTable) tokens = mig_token_table_new ();
  g_autoptr (MigChannelListener) listener = NULL;
  g_autoptr (MigChannel) client = NULL;
  g_autoptr (MigChannel) server = NULL;
  g_autofree char *token = NULL;
  MigChannelListenerConfig cfg = { 0 };
  Accept a = { 0 };
  int src[2], dst[2];
  double secs;

  cfg.creds = creds;
  cfg.tokens = tokens;
  cfg.accept = on_accept;
  cfg.user_data = &a;
  listener = mig_channel_listener_new (&cfg, &error);
  if (listener == NULL)
    g_error ("%s", error->message);
  token = mig_token_table_issue (tokens, MIG_CHANNEL_KIND_MEMORY, 10000);
  client = mig_channel_connect (creds, "127.0.0.1",
                                mig_channel_listener_get_port (listener),
                                MIG_CHANNEL_KIND_MEMORY, token, NULL, &error);
  if (client == NULL)
    g_error ("%s", error->message);
  g_mutex_lock (&a.lock);
  while (a.accepted == NULL)
    g_cond_wait (&a.cond, &a.lock);
  server = a.accepted;
  g_mutex_unlock (&a.lock);

  socketpair (AF_UNIX, SOCK_STREAM, 0, src);
  socketpair (AF_UNIX, SOCK_STREAM, 0, dst);
  /* The destination side sends nothing back. */
  shutdown (dst[0], SHUT_WR);
  if (!mig_channel_start (client, src[1], opts, NULL, NULL, &error)
      || !mig_channel_start (server, dst[1], opts, NULL, NULL, &error))
    g_error ("%s", error->message);
  secs = run_pipe (src[0], dst[0], data, len);
  if (!mig_channel_wait (client, &error) || !mig_channel_wait (server, &error))
    g_error ("channel: %s", error->message);
  mig_channel_get_stats (client, stats);
  close (src[0]);
  close (dst[0]);
  return secs;
}

static const char cert_script[]
    = "set -e\n"
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "-nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=bench-ca "
      "-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null\n"
      "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "-keyout key.pem -out req.csr -subj /CN=bench 2>/dev/null\n"
      "printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
      "extendedKeyUsage=serverAuth,clientAuth\\n' > ext.cnf\n"
      "openssl x509 -req -in req.csr -CA ca.pem -CAkey ca-key.pem "
      "-CAcreateserial -days 2 -out cert.pem -extfile ext.cnf 2>/dev/null\n";

static MigChannelCreds *
make_creds (char **dir_out)
{
  g_autoptr (GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", cert_script, NULL };
  char *dir = test_tmp_dir_new ("bench-channel-XXXXXX");
  MigChannelCreds *creds;
  int status = 0;

  if (!g_spawn_sync (dir, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                     NULL, NULL, &status, &error)
      || !g_spawn_check_wait_status (status, &error))
    g_error ("making certificates: %s", error->message);
  creds = mig_channel_creds_new (dir, &error);
  if (creds == NULL)
    g_error ("%s", error->message);
  *dir_out = dir;
  return creds;
}

static const char *
mode_name (MigCompressMode m)
{
  return m == MIG_COMPRESS_OFF ? "off" : m == MIG_COMPRESS_ON ? "on" : "auto";
}

int
main (int argc, char **argv)
{
  gint64 size_mib = 1024, limited_mib = 512;
  double rate_gbit = 1.0;
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- MigChannel bench");
  GOptionEntry entries[]
      = { { "size", 's', 0, G_OPTION_ARG_INT64, &size_mib,
            "MiB per case (default 1024)", "MIB" },
          { "limited-size", 'l', 0, G_OPTION_ARG_INT64, &limited_mib,
            "MiB per rate-limited case (default 512)", "MIB" },
          { "rate", 'r', 0, G_OPTION_ARG_DOUBLE, &rate_gbit,
            "rate limit in Gbit/s for the limited cases (default 1)", "GBIT" },
          { NULL } };
  g_autoptr (GError) error = NULL;
  g_autofree char *certdir = NULL;
  g_autoptr (MigChannelCreds) creds = NULL;
  guint64 len, llen, rate;
  double raw_mbs, tls_fwd_mbs, secs;
  struct
  {
    MigCompressMode mode;
    gboolean tls;
    gboolean text;
    gboolean limited;
  } cases[] = {
    { MIG_COMPRESS_OFF, TRUE, FALSE, FALSE },
    { MIG_COMPRESS_OFF, FALSE, FALSE, FALSE },
    { MIG_COMPRESS_AUTO, TRUE, TRUE, FALSE },
    { MIG_COMPRESS_AUTO, TRUE, FALSE, FALSE },
    { MIG_COMPRESS_OFF, TRUE, TRUE, TRUE },
    { MIG_COMPRESS_AUTO, TRUE, TRUE, TRUE },
    { MIG_COMPRESS_AUTO, TRUE, FALSE, TRUE },
  };

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      g_printerr ("%s\n", error->message);
      return 2;
    }
  len = (guint64)size_mib << 20;
  llen = (guint64)limited_mib << 20;
  rate = (guint64)(rate_gbit * 1e9 / 8);
  data_random = test_data_new (TEST_DATA_RANDOM, BUF_LEN, 42);
  data_text = test_data_new (TEST_DATA_TEXT, BUF_LEN, 42);
  creds = make_creds (&certdir);

  secs = bench_raw (data_random, len);
  raw_mbs = len / secs / 1e6;
  printf (
      "channel: mode=raw tls=no data=random rate=none size=%" G_GINT64_FORMAT
      "MiB MB/s=%.0f vs raw=1.00x\n",
      size_mib, raw_mbs);
  fflush (stdout);
  secs = bench_fwd (data_random, len);
  printf (
      "channel: mode=fwd tls=no data=random rate=none size=%" G_GINT64_FORMAT
      "MiB MB/s=%.0f vs raw=%.2fx (naive unix->tcp->unix forwarder)\n",
      size_mib, len / secs / 1e6, len / secs / 1e6 / raw_mbs);
  fflush (stdout);
  secs = bench_fwd_tls (creds, data_random, len);
  tls_fwd_mbs = len / secs / 1e6;
  printf (
      "channel: mode=fwd tls=yes data=random rate=none size=%" G_GINT64_FORMAT
      "MiB MB/s=%.0f vs raw=%.2fx (the forwarder over the channel's TLS "
      "transport, 256 KiB writes)\n",
      size_mib, len / secs / 1e6, len / secs / 1e6 / raw_mbs);
  fflush (stdout);

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      MigChannelOptions opts;
      MigChannelStats st;
      guint64 n = cases[i].limited ? llen : len;
      double mbs;
      g_autofree char *rate_s = NULL;
      g_autofree char *vs_fwd = NULL;

      mig_channel_options_init (&opts);
      opts.compress = cases[i].mode;
      if (cases[i].limited)
        opts.rate_limit = rate;
      secs = bench_channel (cases[i].tls ? creds : NULL, &opts,
                            cases[i].text ? data_text : data_random, n, &st);
      mbs = n / secs / 1e6;
      rate_s = cases[i].limited ? g_strdup_printf ("%.3gGbit", rate_gbit)
                                : g_strdup ("none");
      /* The channel's own cost: against the TLS forwarder where both
       * carry the same bytes over the same transport. */
      vs_fwd = cases[i].tls && !cases[i].limited
                   ? g_strdup_printf (" vs tls-fwd=%.2fx", mbs / tls_fwd_mbs)
                   : g_strdup ("");
      printf ("channel: mode=%s tls=%s data=%s rate=%s size=%" G_GUINT64_FORMAT
              "MiB MB/s=%.0f vs raw=%.2fx%s wire/payload=%.2f lz4=%s"
              " lz4-frames=%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "\n",
              mode_name (cases[i].mode), cases[i].tls ? "yes" : "no",
              cases[i].text ? "text" : "random", rate_s, n >> 20, mbs,
              mbs / raw_mbs, vs_fwd,
              (double)st.wire_out / MAX (st.payload_out, 1),
              st.compressing ? "on" : "off", st.compressed_frames_out,
              st.frames_out);
      fflush (stdout);
    }

  test_tmp_dir_remove (certdir);
  return 0;
}
