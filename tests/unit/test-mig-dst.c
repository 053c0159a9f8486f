/* MigDst and its listener over real sockets, as a hostile peer sees
 * them: the token's stream must come from the source host's certificate
 * (roles and CN from scripts/pki), the control stream passes only a
 * migration's libvirt calls (a fake libvirtd records what reaches it),
 * Prepare3's parameters must name this job's sockets, a job id is
 * expected once; the listener caps handshakes and times a handshake as a
 * whole; an established channel fails when its peer falls silent. */
#include <gio/gunixsocketaddress.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mig-channel-private.h"
#include "mig-migrate.h"
#include "mig-rpc-filter.h"
#include "test-pki.h"

static char *pki;

static MigChannelCreds *
creds_of (const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (pki, name, NULL);
  MigChannelCreds *creds = mig_channel_creds_new (dir, &error);

  g_assert_no_error (error);
  return creds;
}

static void
make_pki (void)
{
  static const char *const certs[][5] = {
    { "host", "host-a", "127.0.0.1", NULL },
    { "host", "host-b", "127.0.0.1", NULL },
    { "host", "host-c", "127.0.0.1", NULL },
    { "operator", "ops", NULL },
    { "--revoke", "host-c", NULL },
    /* After the revocation: the CRL is our CA's, not the foreign one's. */
    { "--foreign", "host", "intruder", "127.0.0.1", NULL },
  };
  g_autoptr (GError) error = NULL;

  pki = g_dir_make_tmp ("test-mig-dst-XXXXXX", &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (certs); i++)
    test_pki (pki, certs[i]);
}

/* --- a fake libvirtd: records what reaches it ----------------------------- */

typedef struct
{
  char *path;
  GSocket *socket;
  GThread *thread;
  GMutex lock;
  GCond cond;
  GByteArray *got; /* lock: bytes of the latest connection */
  gboolean eof;    /* lock: ... and it has ended */
  guint conns;     /* lock */
  gboolean stop;   /* lock: libvirtd_free's wake-up connection */
} Libvirtd;

static gpointer
libvirtd_thread (gpointer data)
{
  Libvirtd *l = data;

  for (;;)
    {
      g_autoptr (GSocket) s = g_socket_accept (l->socket, NULL, NULL);
      guint8 buf[4096];
      gssize n;

      gboolean stop;

      if (!s)
        return NULL;
      g_mutex_lock (&l->lock);
      stop = l->stop;
      g_mutex_unlock (&l->lock);
      if (stop)
        return NULL;
      g_mutex_lock (&l->lock);
      g_byte_array_set_size (l->got, 0);
      l->eof = FALSE;
      l->conns++;
      g_mutex_unlock (&l->lock);
      while ((n = g_socket_receive (s, (char *)buf, sizeof buf, NULL, NULL))
             > 0)
        {
          g_mutex_lock (&l->lock);
          g_byte_array_append (l->got, buf, n);
          g_cond_broadcast (&l->cond);
          g_mutex_unlock (&l->lock);
        }
      g_mutex_lock (&l->lock);
      l->eof = TRUE;
      g_cond_broadcast (&l->cond);
      g_mutex_unlock (&l->lock);
    }
}

static Libvirtd *
libvirtd_new (void)
{
  Libvirtd *l = g_new0 (Libvirtd, 1);
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GError) error = NULL;

  l->path = g_build_filename (pki, "libvirt-sock", NULL);
  l->got = g_byte_array_new ();
  g_mutex_init (&l->lock);
  g_cond_init (&l->cond);
  l->socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                            G_SOCKET_PROTOCOL_DEFAULT, &error);
  addr = g_unix_socket_address_new (l->path);
  g_assert_true (g_socket_bind (l->socket, addr, TRUE, &error));
  g_assert_true (g_socket_listen (l->socket, &error));
  l->thread = g_thread_new ("fake-libvirtd", libvirtd_thread, l);
  return l;
}

/* Waits (at most 20 s) until the latest connection got LEN bytes, or
 * ended when EOF. */
static void
libvirtd_wait (Libvirtd *l, guint len, gboolean eof)
{
  gint64 until = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  g_mutex_lock (&l->lock);
  while ((l->got->len < len || (eof && !l->eof))
         && g_cond_wait_until (&l->cond, &l->lock, until))
    ;
  g_assert_cmpuint (l->got->len, >=, len);
  g_assert_true (!eof || l->eof);
  g_mutex_unlock (&l->lock);
}

/* Closing the listening socket does not wake a thread about to poll it
 * (it would wait forever on the closed descriptor): the thread is woken
 * by one last connection, which it takes as the order to stop. */
static void
libvirtd_free (Libvirtd *l)
{
  g_autoptr (GSocket) wake
      = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                      G_SOCKET_PROTOCOL_DEFAULT, NULL);
  g_autoptr (GSocketAddress) addr = g_unix_socket_address_new (l->path);

  g_mutex_lock (&l->lock);
  l->stop = TRUE;
  g_mutex_unlock (&l->lock);
  g_assert_nonnull (wake);
  g_assert_true (g_socket_connect (wake, addr, NULL, NULL));
  g_thread_join (l->thread);
  g_socket_close (l->socket, NULL);
  g_object_unref (l->socket);
  unlink (l->path);
  g_free (l->path);
  g_byte_array_unref (l->got);
  g_free (l);
}

/* --- libvirt RPC packets, built field by field ---------------------------- */

static void
xdr_u32 (GByteArray *b, guint32 v)
{
  guint32 be = GUINT32_TO_BE (v);

  g_byte_array_append (b, (guint8 *)&be, 4);
}

static void
xdr_str (GByteArray *b, const char *s)
{
  static const guint8 pad[3];
  guint32 n = strlen (s);

  xdr_u32 (b, n);
  g_byte_array_append (b, (const guint8 *)s, n);
  g_byte_array_append (b, pad, (4 - n % 4) % 4);
}

/* A remote program call PROC; with NAMES/VALUES (string parameters),
 * a Prepare3 or Finish3 body with an empty cookie. */
static GByteArray *
call_packet (guint32 proc, const char *const *names, const char *const *values)
{
  GByteArray *b = g_byte_array_new ();
  guint32 n = names ? g_strv_length ((char **)names) : 0;

  xdr_u32 (b, 0); /* length, below */
  xdr_u32 (b, MIG_RPC_REMOTE_PROGRAM);
  xdr_u32 (b, MIG_RPC_REMOTE_VERSION);
  xdr_u32 (b, proc);
  xdr_u32 (b, MIG_RPC_TYPE_CALL);
  xdr_u32 (b, 1); /* serial */
  xdr_u32 (b, 0); /* status */
  if (names)
    {
      xdr_u32 (b, n);
      for (guint32 i = 0; i < n; i++)
        {
          xdr_str (b, names[i]);
          xdr_u32 (b, VIR_TYPED_PARAM_STRING);
          xdr_str (b, values[i]);
        }
      xdr_u32 (b, 0); /* cookie */
      xdr_u32 (b, 0); /* flags */
    }
  *(guint32 *)b->data = GUINT32_TO_BE (b->len);
  return b;
}

/* --- the destination ------------------------------------------------------ */

typedef struct
{
  Libvirtd *libvirtd;
  MigDst *dst;
  GMutex lock;
  GCond cond;
  GError *ended; /* lock: the control stream's end */
  gboolean ended_set;
  GPtrArray *checked; /* lock: "job what value" */
} Dst;

static void
on_ended (const char *job_id, const GError *error, gpointer data)
{
  Dst *d = data;

  g_mutex_lock (&d->lock);
  g_clear_error (&d->ended);
  d->ended = error ? g_error_copy (error) : NULL;
  d->ended_set = TRUE;
  g_cond_broadcast (&d->cond);
  g_mutex_unlock (&d->lock);
}

static gboolean
on_check (const char *job_id, const char *what, const char *value,
          gpointer data, GError **error)
{
  Dst *d = data;

  g_mutex_lock (&d->lock);
  g_ptr_array_add (d->checked,
                   g_strdup_printf ("%s %s %s", job_id, what, value));
  g_mutex_unlock (&d->lock);
  if (strstr (value, "evil"))
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                           "an evil domain");
      return FALSE;
    }
  return TRUE;
}

static Dst *
dst_new (void)
{
  g_autoptr (MigChannelCreds) creds = creds_of ("host-b");
  g_autoptr (GError) error = NULL;
  Dst *d = g_new0 (Dst, 1);
  MigDstConfig cfg = { 0 };

  g_mutex_init (&d->lock);
  g_cond_init (&d->cond);
  d->checked = g_ptr_array_new_with_free_func (g_free);
  d->libvirtd = libvirtd_new ();
  cfg.creds = creds;
  cfg.address = "127.0.0.1";
  cfg.libvirt_sock = d->libvirtd->path;
  cfg.ended = on_ended;
  cfg.check = on_check;
  cfg.user_data = d;
  d->dst = mig_dst_new (&cfg, &error);
  g_assert_no_error (error);
  return d;
}

static void
dst_free (Dst *d)
{
  mig_dst_free (d->dst);
  libvirtd_free (d->libvirtd);
  g_clear_error (&d->ended);
  g_ptr_array_unref (d->checked);
  g_free (d);
}

/* Waits (at most 20 s) for the control stream's end; returns its error. */
static const GError *
dst_ended (Dst *d)
{
  gint64 until = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  g_mutex_lock (&d->lock);
  while (!d->ended_set && g_cond_wait_until (&d->cond, &d->lock, until))
    ;
  g_assert_true (d->ended_set);
  g_mutex_unlock (&d->lock);
  return d->ended;
}

static MigChannel *
connect_as (Dst *d, const char *who, MigChannelKind kind, const char *token,
            GError **error)
{
  g_autoptr (MigChannelCreds) creds = creds_of (who);

  return mig_channel_connect (creds, "127.0.0.1", mig_dst_get_port (d->dst),
                              kind, token, NULL, error);
}

/* The token admits streams from the source host's certificate only. */
static void
test_source_host_only (void)
{
  Dst *d = dst_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *token
      = mig_dst_expect (d->dst, "j1", "host-a", FALSE, 60000, &error);
  static const struct
  {
    const char *who, *says;
  } wrong[] = {
    { "host-b", "not from host host-b" },
    { "ops", "not from operator ops" },
    { "host-c", NULL },   /* revoked: refused in the handshake */
    { "intruder", NULL }, /* another CA's */
  };
  MigChannel *ch;

  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (wrong); i++)
    {
      ch = connect_as (d, wrong[i].who, MIG_CHANNEL_KIND_CONTROL, token,
                       &error);
      g_assert_null (ch);
      g_assert_nonnull (error);
      g_test_message ("%s: %s", wrong[i].who, error->message);
      if (wrong[i].says && !strstr (error->message, wrong[i].says))
        g_error ("'%s' does not say '%s'", error->message, wrong[i].says);
      g_clear_error (&error);
    }
  /* None of that used the token up. */
  g_assert_false (mig_dst_started (d->dst, "j1"));
  ch = connect_as (d, "host-a", MIG_CHANNEL_KIND_CONTROL, token, &error);
  g_assert_no_error (error);
  g_assert_true (mig_dst_started (d->dst, "j1"));
  mig_channel_free (ch);
  /* Replayed, even by the right host: refused. */
  g_assert_null (
      connect_as (d, "host-a", MIG_CHANNEL_KIND_CONTROL, token, &error));
  g_assert_nonnull (strstr (error->message, "already used"));
  dst_free (d);
}

/* A control stream from SOURCE with JOB's token, started on a local
 * socket pair; *LOCAL is the end to write libvirt packets into. */
static MigChannel *
control_stream (Dst *d, const char *job, int *local)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *token
      = mig_dst_expect (d->dst, job, "host-a", FALSE, 60000, &error);
  MigChannel *ch;
  int sv[2];

  g_assert_no_error (error);
  ch = connect_as (d, "host-a", MIG_CHANNEL_KIND_CONTROL, token, &error);
  g_assert_no_error (error);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  g_assert_true (mig_channel_start (ch, sv[0], NULL, NULL, NULL, &error));
  *local = sv[1];
  return ch;
}

static void
send_packet (int fd, GByteArray *pkt)
{
  g_assert_cmpint (write (fd, pkt->data, pkt->len), ==, pkt->len);
  g_byte_array_unref (pkt);
}

/* Stops the stream and checks how it ended: refused, saying SAYS. */
static void
assert_refused (Dst *d, MigChannel *ch, int local, const char *says)
{
  g_autoptr (GError) error = NULL;
  const GError *ended;

  g_assert_false (mig_channel_wait (ch, &error));
  g_test_message ("source side: %s", error->message);
  g_assert_nonnull (strstr (error->message, says));
  ended = dst_ended (d);
  g_assert_error (ended, MIG_ERROR, MIG_ERROR_RPC_REFUSED);
  g_assert_nonnull (strstr (ended->message, says));
  close (local);
  mig_channel_free (ch);
}

/* A call that is not part of a migration closes the stream; libvirtd
 * never sees a byte of it. */
static void
test_control_refuses_other_calls (void)
{
  Dst *d = dst_new ();
  int local;
  MigChannel *ch = control_stream (d, "j1", &local);
  GByteArray *open = call_packet (MIG_RPC_PROC_AUTH_LIST, NULL, NULL);
  guint open_len = open->len;

  send_packet (local, open);
  libvirtd_wait (d->libvirtd, open_len, FALSE);
  /* virConnectListAllDomains: what `virsh list` calls. */
  send_packet (local, call_packet (273, NULL, NULL));
  assert_refused (d, ch, local,
                  "remote procedure 273 is not part of a "
                  "migration");
  libvirtd_wait (d->libvirtd, open_len, TRUE);
  g_assert_cmpuint (d->libvirtd->got->len, ==, open_len);
  dst_free (d);
}

/* Prepare3's parameters: its URIs must name this job's sockets, only
 * Drover's parameters, its domain XML through the caller's check. */
static void
test_control_checks_prepare (void)
{
  g_autofree char *mem1 = mig_mem_sock_path ("j1");
  g_autofree char *uri1 = g_strconcat ("unix://", mem1, NULL);
  const char *evil_names[] = { "destination_xml", "migrate_uri", NULL };
  const char *evil_values[] = { "<domain>evil</domain>", uri1, NULL };
  const char *uri_names[] = { "migrate_uri", NULL };
  const char *uri_values[] = { "unix:///etc/libvirt-sock", NULL };
  const char *other_names[] = { "listen_address", NULL };
  const char *other_values[] = { "0.0.0.0", NULL };
  const struct
  {
    const char *job;
    const char *const *names, *const *values;
    const char *says;
  } cases[] = {
    { "j1", evil_names, evil_values, "an evil domain" },
    { "j2", uri_names, uri_values, "is not 'unix:///var/lib/libvirt" },
    { "j3", other_names, other_values, "not a parameter Drover's" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      Dst *d = dst_new ();
      int local;
      MigChannel *ch = control_stream (d, cases[i].job, &local);

      send_packet (local,
                   call_packet (MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS,
                                cases[i].names, cases[i].values));
      assert_refused (d, ch, local, cases[i].says);
      g_assert_cmpuint (d->libvirtd->got->len, ==, 0);
      if (i == 0)
        {
          g_assert_cmpuint (d->checked->len, ==, 1);
          g_assert_cmpstr (d->checked->pdata[0], ==,
                           "j1 destination_xml <domain>evil</domain>");
        }
      dst_free (d);
    }
}

static void
test_job_once (void)
{
  Dst *d = dst_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *first
      = mig_dst_expect (d->dst, "j1", "host-a", TRUE, 60000, &error);

  g_assert_no_error (error);
  g_assert_null (mig_dst_expect (d->dst, "j1", "host-a", TRUE, 60000, &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (mig_dst_forget (d->dst, "j1", "not-its-token", &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_AUTH);
  g_clear_error (&error);
  g_assert_true (mig_dst_forget (d->dst, "j1", first, &error));
  g_clear_pointer (&first, g_free);
  first = mig_dst_expect (d->dst, "j1", "host-a", TRUE, 60000, &error);
  g_assert_no_error (error);
  dst_free (d);
}

/* --- the listener: caps and timeouts -------------------------------------- */

typedef struct
{
  MigChannelListener *listener;
  MigTokenTable *tokens;
  MigChannelOptions opts; /* for accepted channels */
  GMutex lock;
  GCond cond;
  GPtrArray *refusals;  /* lock: GError */
  MigChannel *accepted; /* lock, started */
  GError *done_error;   /* lock */
  gboolean done;        /* lock */
} Server;

static void
srv_refused (const GError *error, gpointer data)
{
  Server *s = data;

  g_mutex_lock (&s->lock);
  g_ptr_array_add (s->refusals, g_error_copy (error));
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

static void
srv_done (MigChannel *ch, const GError *error, gpointer data)
{
  Server *s = data;

  g_mutex_lock (&s->lock);
  s->done_error = error ? g_error_copy (error) : NULL;
  s->done = TRUE;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

static void
srv_accept (MigChannel *ch, gpointer data)
{
  Server *s = data;
  int sv[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  g_assert_true (mig_channel_start (ch, sv[0], &s->opts, srv_done, s, NULL));
  g_mutex_lock (&s->lock);
  s->accepted = ch;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

static Server *
server_new (guint max_handshakes, guint timeout_s)
{
  g_autoptr (GError) error = NULL;
  Server *s = g_new0 (Server, 1);
  MigChannelListenerConfig cfg = { 0 };

  g_mutex_init (&s->lock);
  g_cond_init (&s->cond);
  s->refusals = g_ptr_array_new_with_free_func ((GDestroyNotify)g_error_free);
  s->tokens = mig_token_table_new ();
  mig_channel_options_init (&s->opts);
  cfg.tokens = s->tokens;
  cfg.accept = srv_accept;
  cfg.refused = srv_refused;
  cfg.user_data = s;
  cfg.max_handshakes = max_handshakes;
  cfg.handshake_timeout_s = timeout_s;
  s->listener = mig_channel_listener_new (&cfg, &error);
  g_assert_no_error (error);
  return s;
}

static void
server_free (Server *s)
{
  mig_channel_listener_free (s->listener);
  mig_channel_free (s->accepted);
  mig_token_table_free (s->tokens);
  g_ptr_array_unref (s->refusals);
  g_clear_error (&s->done_error);
  g_free (s);
}

/* Waits (at most 30 s) for a refusal; returns the first. */
static const GError *
server_refusal (Server *s)
{
  gint64 until = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  g_mutex_lock (&s->lock);
  while (s->refusals->len == 0 && g_cond_wait_until (&s->cond, &s->lock, until))
    ;
  g_assert_cmpuint (s->refusals->len, >, 0);
  g_mutex_unlock (&s->lock);
  return s->refusals->pdata[0];
}

static GSocketConnection *
raw_connect (Server *s)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GError) error = NULL;
  GSocketConnection *conn;

  g_socket_client_set_enable_proxy (client, FALSE);
  conn = g_socket_client_connect_to_host (
      client, "127.0.0.1", mig_channel_listener_get_port (s->listener), NULL,
      &error);
  g_assert_no_error (error);
  return conn;
}

/* Past MAX connections handshaking at once, a connection is closed as it
 * comes. */
static void
test_listener_caps_handshakes (void)
{
  Server *s = server_new (2, 60);
  GSocketConnection *conn[3];
  const GError *refusal;
  char byte;

  for (guint i = 0; i < G_N_ELEMENTS (conn); i++)
    conn[i] = raw_connect (s);
  refusal = server_refusal (s);
  g_test_message ("%s", refusal->message);
  g_assert_nonnull (strstr (refusal->message, "handshaking already"));
  /* The third was closed: it reads EOF. */
  g_assert_cmpint (
      g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (conn[2])),
                           &byte, 1, NULL, NULL),
      ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (conn); i++)
    g_object_unref (conn[i]);
  server_free (s);
}

/* A peer that trickles its HELLO a byte at a time, each in time for the
 * wait between two bytes, is cut when the handshake as a whole runs out
 * of time. */
static void
test_listener_handshake_deadline (void)
{
  Server *s = server_new (0, 1);
  GSocketConnection *conn = raw_connect (s);
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (conn));
  guint8 hdr[MIG_FRAME_HEADER_SIZE];
  MigFrameHeader h
      = { .type = MIG_FRAME_HELLO, .payload_len = 65, .wire_len = 65 };
  gboolean refused = FALSE;

  mig_frame_header_encode (&h, hdr);
  for (guint i = 0; i < sizeof hdr && !refused; i++)
    {
      g_output_stream_write (out, hdr + i, 1, NULL, NULL);
      g_usleep (200 * 1000);
      g_mutex_lock (&s->lock);
      refused = s->refusals->len > 0;
      g_mutex_unlock (&s->lock);
    }
  g_assert_true (refused);
  g_assert_error (server_refusal (s), G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  g_object_unref (conn);
  server_free (s);
}

/* An established channel whose peer sends nothing, not even keepalives,
 * fails; with keepalives it stays. */
static void
test_channel_idle (void)
{
  for (guint keepalive = 0; keepalive < 2; keepalive++)
    {
      Server *s = server_new (0, 10);
      g_autofree char *token
          = mig_token_table_issue (s->tokens, MIG_CHANNEL_KIND_MEMORY, 10000);
      g_autoptr (GError) error = NULL;
      MigChannelOptions opts;
      MigChannel *client;
      int sv[2];

      s->opts.idle_timeout_s = keepalive ? 6 : 1;
      client = mig_channel_connect (
          NULL, "127.0.0.1", mig_channel_listener_get_port (s->listener),
          MIG_CHANNEL_KIND_MEMORY, token, NULL, &error);
      g_assert_no_error (error);
      mig_channel_options_init (&opts);
      opts.keepalive_s = keepalive;
      opts.idle_timeout_s = 0;
      g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
      g_assert_true (
          mig_channel_start (client, sv[0], &opts, NULL, NULL, &error));
      if (keepalive)
        {
          /* Idle both ways for longer than the timeout. */
          g_usleep (8 * G_USEC_PER_SEC);
          g_mutex_lock (&s->lock);
          g_assert_false (s->done);
          g_mutex_unlock (&s->lock);
        }
      else
        {
          gint64 until = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

          g_mutex_lock (&s->lock);
          while (!s->done && g_cond_wait_until (&s->cond, &s->lock, until))
            ;
          g_assert_true (s->done);
          g_assert_nonnull (s->done_error);
          g_test_message ("%s", s->done_error->message);
          g_assert_nonnull (
              strstr (s->done_error->message, "no frame for 1 s"));
          g_mutex_unlock (&s->lock);
        }
      mig_channel_free (client);
      close (sv[1]);
      server_free (s);
    }
}

int
main (int argc, char **argv)
{
  int rc;

  g_test_init (&argc, &argv, NULL);
  proto_init ();
  make_pki ();
  g_test_add_func ("/mig/dst/source-host-only", test_source_host_only);
  g_test_add_func ("/mig/dst/control-refuses-other-calls",
                   test_control_refuses_other_calls);
  g_test_add_func ("/mig/dst/control-checks-prepare",
                   test_control_checks_prepare);
  g_test_add_func ("/mig/dst/job-once", test_job_once);
  g_test_add_func ("/mig/listener/caps-handshakes",
                   test_listener_caps_handshakes);
  g_test_add_func ("/mig/listener/handshake-deadline",
                   test_listener_handshake_deadline);
  g_test_add_func ("/mig/channel/idle", test_channel_idle);
  rc = g_test_run ();
  test_rmtree (pki);
  return rc;
}
