/* MigChannel: framing, crc32c, TLS + token handshake, compression modes
 * (the channel's side of adaptive lz4; the policy itself is tested in
 * test-mig-auto.c), faults and rate limit, over real loopback TCP.
 *
 * Each "app" stands for QEMU or libvirt on one host: it writes its data
 * into its end of a socketpair (the channel holds the other end), shuts
 * down its write side, and collects whatever arrives until EOF.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mig-channel-private.h"
#include "mig-migrate.h"
#include "test-support.h"

#define DATA_LEN (3 * 1024 * 1024 + 12345)
#define HELLO_WIRE (MIG_FRAME_HEADER_SIZE + 1 + 64)

static char *cert_root;
static MigChannelCreds *creds_a, *creds_b, *creds_foreign, *creds_lost;

/* --- certificates --------------------------------------------------------- */

static const char cert_script[]
    = "set -e\n"
      "gen_ca() {\n"
      "  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
      "\\\n"
      "    -nodes -keyout $1-key.pem -out $1.pem -days 2 -subj /CN=$1 \\\n"
      "    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null\n"
      "}\n"
      "gen_cert() { # dir signing-ca trusted-ca cn\n"
      "  mkdir -p $1\n"
      "  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
      "\\\n"
      "    -keyout $1/key.pem -out $1/req.csr -subj /CN=$4 2>/dev/null\n"
      "  printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
      "keyUsage=critical,digitalSignature\\n"
      "extendedKeyUsage=serverAuth,clientAuth\\n' > $1/ext.cnf\n"
      "  openssl x509 -req -in $1/req.csr -CA $2.pem -CAkey $2-key.pem \\\n"
      "    -CAcreateserial -days 2 -out $1/cert.pem -extfile $1/ext.cnf \\\n"
      "    2>/dev/null\n"
      "  cp $3.pem $1/ca.pem\n"
      "}\n"
      "gen_ca ca\n"
      "gen_ca foreign-ca\n"
      "gen_cert a ca ca host-a\n"
      "gen_cert b ca ca host-b\n"
      /* trusts our CA but holds a certificate from another one */
      "gen_cert foreign foreign-ca ca intruder\n"
      /* trusts only the foreign CA, so it rejects our servers */
      "gen_cert lost foreign-ca foreign-ca lost\n";

static MigChannelCreds *
load_creds (const char *name)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (cert_root, name, NULL);
  MigChannelCreds *creds = mig_channel_creds_new (dir, &error);
  g_assert_no_error (error);
  return creds;
}

static void
make_certs (void)
{
  g_autoptr (GError) error = NULL;
  const char *argv[] = { "/bin/sh", "-c", cert_script, NULL };
  int status = 0;

  cert_root = test_tmp_dir_new ("test-mig-channel-XXXXXX");
  g_spawn_sync (cert_root, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                NULL, NULL, &status, &error);
  g_assert_no_error (error);
  g_spawn_check_wait_status (status, &error);
  g_assert_no_error (error);
  creds_a = load_creds ("a");
  creds_b = load_creds ("b");
  creds_foreign = load_creds ("foreign");
  creds_lost = load_creds ("lost");
}

/* --- data ----------------------------------------------------------------- */

static char *
sha256 (const void *data, gsize len)
{
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, data, len);
}

/* --- apps on the local side ----------------------------------------------- */

typedef struct
{
  int fd;
  GBytes *send;     /* what the app writes */
  GByteArray *recv; /* what reached it */
  GThread *feeder, *consumer;
  gboolean shut; /* feeder shut down its write side */
  gboolean file; /* the channel reads SEND from a memory file instead
                    (every read a full chunk: the same frames on any
                    machine) and the app receives nothing */
} App;

static gpointer
feeder_thread (gpointer data)
{
  App *app = data;
  gsize len = 0;
  const guint8 *p = g_bytes_get_data (app->send, &len);

  while (len > 0)
    {
      gssize n = send (app->fd, p, MIN (len, 128 * 1024), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return NULL; /* channel went away: expected in fault tests */
      p += n;
      len -= n;
    }
  if (app->shut)
    shutdown (app->fd, SHUT_WR);
  return NULL;
}

static gpointer
consumer_thread (gpointer data)
{
  App *app = data;
  g_autofree guint8 *buf = g_malloc (256 * 1024);

  for (;;)
    {
      gssize n = read (app->fd, buf, 256 * 1024);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      g_byte_array_append (app->recv, buf, n);
    }
  return NULL;
}

/* Returns the channel's end of a fresh socketpair; the app gets the other.
 * A FILE app hands over a memory file holding SEND instead. */
static int
app_start (App *app, GBytes *send, gboolean shut)
{
  int sv[2];

  app->send = g_bytes_ref (send);
  app->recv = g_byte_array_new ();
  app->shut = shut;
  if (app->file)
    {
      gsize len = 0;
      const guint8 *p = g_bytes_get_data (send, &len);
      int fd = memfd_create ("app", MFD_CLOEXEC);

      g_assert_cmpint (fd, >=, 0);
      g_assert_cmpint (write (fd, p, len), ==, (gssize)len);
      g_assert_cmpint (lseek (fd, 0, SEEK_SET), ==, 0);
      app->fd = -1;
      return fd;
    }
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  app->fd = sv[1];
  app->feeder = g_thread_new ("feeder", feeder_thread, app);
  app->consumer = g_thread_new ("consumer", consumer_thread, app);
  return sv[0];
}

static void
app_join (App *app)
{
  if (app->file)
    return;
  g_thread_join (app->feeder);
  g_thread_join (app->consumer);
  close (app->fd);
}

static void
app_clear (App *app)
{
  g_bytes_unref (app->send);
  g_byte_array_unref (app->recv);
}

/* What arrived equals all of EXPECTED (FULL) or a prefix of it. */
static void
assert_received (App *app, GBytes *expected, gboolean full)
{
  gsize len = 0;
  const guint8 *p = g_bytes_get_data (expected, &len);

  if (full)
    {
      g_autofree char *want = sha256 (p, len);
      g_autofree char *got = sha256 (app->recv->data, app->recv->len);
      g_assert_cmpuint (app->recv->len, ==, len);
      g_assert_cmpstr (got, ==, want);
    }
  else
    {
      g_assert_cmpuint (app->recv->len, <, len);
      g_assert_true (app->recv->len == 0
                     || memcmp (app->recv->data, p, app->recv->len) == 0);
    }
}

/* --- server side ---------------------------------------------------------- */

typedef struct
{
  GMutex lock;
  GCond cond;
  MigChannel *accepted;
  GError *refused;
  guint n_accepted, n_refused;
  MigTokenTable *tokens;
  MigChannelListener *listener;
  guint16 port;
} Server;

static void
on_accept (MigChannel *ch, gpointer data)
{
  Server *s = data;
  g_mutex_lock (&s->lock);
  g_assert_null (s->accepted);
  s->accepted = ch;
  s->n_accepted++;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

static void
on_refused (const GError *error, gpointer data)
{
  Server *s = data;
  g_mutex_lock (&s->lock);
  if (s->refused == NULL)
    s->refused = g_error_copy (error);
  s->n_refused++;
  g_cond_broadcast (&s->cond);
  g_mutex_unlock (&s->lock);
}

static Server *
server_new_full (MigChannelCreds *creds, guint timeout_s)
{
  g_autoptr (GError) error = NULL;
  Server *s = g_new0 (Server, 1);
  MigChannelListenerConfig cfg = { 0 };

  g_mutex_init (&s->lock);
  g_cond_init (&s->cond);
  s->tokens = mig_token_table_new ();
  cfg.creds = creds;
  cfg.tokens = s->tokens;
  cfg.accept = on_accept;
  cfg.refused = on_refused;
  cfg.user_data = s;
  cfg.handshake_timeout_s = timeout_s;
  s->listener = mig_channel_listener_new (&cfg, &error);
  g_assert_no_error (error);
  s->port = mig_channel_listener_get_port (s->listener);
  g_assert_cmpuint (s->port, >, 0);
  return s;
}

static Server *
server_new (MigChannelCreds *creds)
{
  return server_new_full (creds, 0);
}

static void
server_free (Server *s)
{
  mig_channel_listener_free (s->listener);
  mig_channel_free (s->accepted);
  g_clear_error (&s->refused);
  mig_token_table_free (s->tokens);
  g_mutex_clear (&s->lock);
  g_cond_clear (&s->cond);
  g_free (s);
}

/* Waits for the next accepted channel (transfer full). */
static MigChannel *
server_take (Server *s)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  MigChannel *ch;

  g_mutex_lock (&s->lock);
  while (s->accepted == NULL
         && g_cond_wait_until (&s->cond, &s->lock, deadline))
    ;
  ch = g_steal_pointer (&s->accepted);
  g_mutex_unlock (&s->lock);
  g_assert_nonnull (ch);
  return ch;
}

/* Waits for the refusal of a connection and returns its error. */
static const GError *
server_refusal (Server *s)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_TIME_SPAN_SECOND;
  const GError *e;

  g_mutex_lock (&s->lock);
  while (s->refused == NULL && g_cond_wait_until (&s->cond, &s->lock, deadline))
    ;
  e = s->refused;
  g_mutex_unlock (&s->lock);
  g_assert_nonnull (e);
  return e;
}

/* A token of S for a stream of KIND, valid for 10 s. Free with g_free. */
static char *
server_token (Server *s, MigChannelKind kind)
{
  return mig_token_table_issue (s->tokens, kind, 10000);
}

/* Checks that S accepted ACCEPTED channels in all, then frees it. */
static void
server_done (Server *s, guint accepted)
{
  g_assert_cmpuint (s->n_accepted, ==, accepted);
  server_free (s);
}

/* Connects a stream of KIND with TOKEN to S as host a, which S must
 * accept; closes both ends. */
static void
assert_accepted (Server *s, MigChannelKind kind, const char *token)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MigChannel) client = mig_channel_connect (
      creds_a, "127.0.0.1", s->port, kind, token, NULL, &error);
  g_autoptr (MigChannel) accepted = NULL;

  g_assert_no_error (error);
  accepted = server_take (s);
  g_assert_cmpint (mig_channel_get_kind (accepted), ==, kind);
}

/* --- synthetic measurements for the adaptive policy ----------------------- */

/* Where the sender waits, as a test wants it seen on any machine: the
 * channel's own wall-clock figures of each window are replaced by these
 * (the bytes, frames and lz4 ratio stay the measured ones), then MigAuto
 * decides. Like a transport that reports being blocked, minus the
 * clock. */
typedef struct
{
  double link_mbs;     /* the path carries this many wire MB/s (0 = fast) */
  double producer_mbs; /* the producer makes this many payload MB/s */
  double in_wait;      /* share of each window waiting for local input */
  double out_wait;     /* ... and blocked on the peer or the rate limit */
  double rwnd;         /* receiver share of the sending time; <0: the
                          transport has no TCP figures */
} Scene;

#define SCENE_LZ4_MBS 500.0

/* A path the payload keeps busy: 50 MB/s of it, well above the hints. */
static const Scene scene_hint_kept_up
    = { .producer_mbs = 50, .in_wait = 0.1, .out_wait = 0.1 };
/* The sender blocked on a 10 MB/s wire (a slow link or the rate limit). */
static const Scene scene_network_bound
    = { .link_mbs = 10, .in_wait = 0.05, .out_wait = 0.8 };
/* As blocked, by a receiver that reads 16 MB/s: TCP says so. */
static const Scene scene_receiver_bound
    = { .link_mbs = 16, .in_wait = 0.05, .out_wait = 0.8, .rwnd = 0.7 };

typedef struct
{
  guint frames;         /* in the window that ended */
  gboolean compress;    /* the decision taken then */
  MigAutoSample sample; /* as measured */
} Window;

typedef struct
{
  const Scene *scene; /* NULL: MigAuto gets the measured figures */
  guint64 busy_us, rwnd_us;
  GArray *windows; /* Window, every decision in order */
} Synth;

static void
synth_decide (MigAuto *policy, MigAutoSample *s, MigAutoDecision *d,
              gpointer data)
{
  Synth *sy = data;
  const Scene *sc = sy->scene;
  Window w = { .frames = s->frames, .sample = *s };

  if (sc != NULL)
    {
      double secs = 1e-3; /* the first decision: before any frame */
      guint64 us;

      if (s->frames > 0)
        secs = MAX (sc->link_mbs > 0 ? s->wire_bytes / (sc->link_mbs * 1e6) : 0,
                    sc->producer_mbs > 0
                        ? s->payload_bytes / (sc->producer_mbs * 1e6)
                        : 0);
      s->window_ns = MAX ((gint64)(secs * 1e9), 1);
      s->in_wait_ns = (gint64)(sc->in_wait * s->window_ns);
      s->out_wait_ns = (gint64)(sc->out_wait * s->window_ns);
      if (s->lz4_in > 0)
        s->lz4_ns = MAX ((gint64)(s->lz4_in / (SCENE_LZ4_MBS * 1e6) * 1e9), 1);
      us = (guint64)(s->window_ns / 1000);
      sy->busy_us += us;
      sy->rwnd_us += (guint64)(MAX (sc->rwnd, 0) * us);
      s->have_send_times = sc->rwnd >= 0;
      s->busy_us = sy->busy_us;
      s->rwnd_limited_us = sy->rwnd_us;
    }
  mig_auto_evaluate (policy, s, d);
  w.compress = d->compress;
  g_array_append_val (sy->windows, w);
}

/* Installs the synthetic SCENE (or, NULL, a recorder of what the channel
 * measured) on CH. */
static void
synth_install (Synth *sy, MigChannel *ch, const Scene *scene)
{
  MigChannelAutoHook hook
      = { .decide = synth_decide, .frames_only = TRUE, .user_data = sy };

  sy->scene = scene;
  sy->windows = g_array_new (FALSE, TRUE, sizeof (Window));
  mig_channel_set_auto_hook (ch, &hook);
}

static void
synth_clear (Synth *sy)
{
  g_clear_pointer (&sy->windows, g_array_unref);
}

/* Frames sent while the decisions in force said lz4: window k's frames
 * went out under decision k - 1, the frames after the last window under
 * the last decision. */
static guint64
synth_frames_on (Synth *sy, guint64 frames_out)
{
  guint64 on_frames = 0, counted = 0;
  gboolean on = FALSE;

  for (guint i = 0; i < sy->windows->len; i++)
    {
      Window *w = &g_array_index (sy->windows, Window, i);
      if (on)
        on_frames += w->frames;
      counted += w->frames;
      on = w->compress;
    }
  g_assert_cmpuint (counted, <=, frames_out);
  return on_frames + (on ? frames_out - counted : 0);
}

/* --- a connected pair ----------------------------------------------------- */

typedef struct
{
  Server *server;
  MigChannel *client, *srv;
  App app_c, app_s; /* client-side and server-side apps */
  GError *err_c, *err_s;
  gboolean ok_c, ok_s;
  const Scene *scene; /* auto: synthetic measurements on both sides */
  gboolean record;    /* auto: record what the channels measured */
  Synth synth_c, synth_s;
} Pair;

typedef MigTransport *(*WrapFunc) (MigTransport *inner, gpointer data);

static void
pair_connect_wrapped (Pair *p, MigChannelCreds *server_creds,
                      MigChannelCreds *client_creds, MigFaultKind fault,
                      guint64 offset, WrapFunc wrap, gpointer wrap_data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *token = NULL;
  MigTransport *t;

  p->server = server_new (server_creds);
  token = mig_token_table_issue (p->server->tokens, MIG_CHANNEL_KIND_MEMORY,
                                 10000);
  t = mig_transport_connect (client_creds, "127.0.0.1", p->server->port, NULL,
                             &error);
  g_assert_no_error (error);
  if (fault != MIG_FAULT_NONE)
    t = mig_transport_fault_new (t, fault, offset);
  if (wrap != NULL)
    t = wrap (t, wrap_data);
  p->client = mig_channel_new_client (t, MIG_CHANNEL_KIND_MEMORY, token, NULL,
                                      &error);
  if (error != NULL)
    g_test_message ("server side: %s", server_refusal (p->server)->message);
  g_assert_no_error (error);
  p->srv = server_take (p->server);
  g_assert_cmpint (mig_channel_get_kind (p->srv), ==, MIG_CHANNEL_KIND_MEMORY);
}

static void
pair_connect (Pair *p, MigChannelCreds *server_creds,
              MigChannelCreds *client_creds, MigFaultKind fault, guint64 offset)
{
  pair_connect_wrapped (p, server_creds, client_creds, fault, offset, NULL,
                        NULL);
}

static void
pair_run (Pair *p, const MigChannelOptions *opts_c,
          const MigChannelOptions *opts_s, GBytes *to_server, GBytes *to_client)
{
  g_autoptr (GError) error = NULL;
  int fd;

  if (p->scene != NULL || p->record)
    {
      synth_install (&p->synth_c, p->client, p->scene);
      synth_install (&p->synth_s, p->srv, p->scene);
    }
  fd = app_start (&p->app_c, to_server, TRUE);
  mig_channel_start (p->client, fd, opts_c, NULL, NULL, &error);
  g_assert_no_error (error);
  fd = app_start (&p->app_s, to_client, TRUE);
  mig_channel_start (p->srv, fd, opts_s, NULL, NULL, &error);
  g_assert_no_error (error);

  app_join (&p->app_c);
  app_join (&p->app_s);
  p->ok_c = mig_channel_wait (p->client, &p->err_c);
  p->ok_s = mig_channel_wait (p->srv, &p->err_s);
}

static void
pair_clear (Pair *p)
{
  mig_channel_free (p->client);
  mig_channel_free (p->srv);
  server_free (p->server);
  app_clear (&p->app_c);
  app_clear (&p->app_s);
  g_clear_error (&p->err_c);
  g_clear_error (&p->err_s);
  synth_clear (&p->synth_c);
  synth_clear (&p->synth_s);
}

/* --- tests: crc and frame codec ------------------------------------------- */

static void
test_crc32c (void)
{
  g_autoptr (GBytes) data = test_data_new (TEST_DATA_RANDOM, 200000, 7);
  static const gsize long_lens[]
      = { 12287, 12288, 12289, 24576 + 77, 100000, 199990 };
  gint64 t0;
  double secs;
  const guint8 *p = g_bytes_get_data (data, NULL);

  /* The CRC32C check value. */
  g_assert_cmphex (mig_crc32c (0, "123456789", 9), ==, 0xE3069283);
  g_assert_cmphex (mig_crc32c_sw (0, "123456789", 9), ==, 0xE3069283);
  g_assert_cmphex (mig_crc32c (0, "", 0), ==, 0);

  for (gsize off = 0; off < 8; off++)
    for (gsize len = 0; len < 300; len += 7)
      g_assert_cmphex (mig_crc32c (0, p + off, len), ==,
                       mig_crc32c_sw (0, p + off, len));
  /* Long buffers take the three-lane path. */
  for (gsize off = 0; off < 8; off += 3)
    for (guint i = 0; i < G_N_ELEMENTS (long_lens); i++)
      g_assert_cmphex (mig_crc32c (0, p + off, long_lens[i]), ==,
                       mig_crc32c_sw (0, p + off, long_lens[i]));
  t0 = g_get_monotonic_time ();
  for (int i = 0; i < 500; i++)
    mig_crc32c (0, p, 200000);
  secs = (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("crc32c: %.1f GB/s", 500 * 200000 / secs / 1e9);
  /* Streaming: crc(a|b) == crc(crc(a), b). */
  g_assert_cmphex (mig_crc32c (mig_crc32c (0, p, 1001), p + 1001, 3095), ==,
                   mig_crc32c (0, p, 4096));
}

static void
test_frame_header (void)
{
  MigFrameHeader h = { .type = MIG_FRAME_DATA,
                       .flags = MIG_FRAME_FLAG_COMPRESSED,
                       .payload_len = 5000,
                       .wire_len = 1234,
                       .seq = 42,
                       .crc = 0xdeadbeef };
  MigFrameHeader out;
  guint8 buf[MIG_FRAME_HEADER_SIZE];
  g_autoptr (GError) error = NULL;

  mig_frame_header_encode (&h, buf);
  g_assert_true (
      mig_frame_header_decode (buf, 42, MIG_FRAME_MAX, &out, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (out.type, ==, h.type);
  g_assert_cmpuint (out.flags, ==, h.flags);
  g_assert_cmpuint (out.payload_len, ==, 5000);
  g_assert_cmpuint (out.wire_len, ==, 1234);
  g_assert_cmpuint (out.seq, ==, 42);
  g_assert_cmphex (out.crc, ==, 0xdeadbeef);

  /* Any flipped bit anywhere in the header is caught. */
  for (guint i = 0; i < sizeof buf; i++)
    {
      buf[i] ^= 0x01;
      g_assert_false (
          mig_frame_header_decode (buf, 42, MIG_FRAME_MAX, &out, &error));
      g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL);
      g_clear_error (&error);
      buf[i] ^= 0x01;
    }
  /* Wrong sequence number. */
  g_assert_false (
      mig_frame_header_decode (buf, 43, MIG_FRAME_MAX, &out, &error));
  g_assert_nonnull (strstr (error->message, "sequence"));
  g_clear_error (&error);
  /* Length above the cap. */
  g_assert_false (mig_frame_header_decode (buf, 42, 4096, &out, &error));
  g_assert_nonnull (strstr (error->message, "exceeds"));
  g_clear_error (&error);
  /* Compressed but not smaller: refused. */
  h.wire_len = 6000;
  mig_frame_header_encode (&h, buf);
  g_assert_false (
      mig_frame_header_decode (buf, 42, MIG_FRAME_MAX, &out, &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL);
}

/* --- tests: round trips --------------------------------------------------- */

typedef struct
{
  const char *path;
  gboolean tls;
  MigCompressMode mode;
  TestDataKind data;
} RoundTrip;

static void
test_round_trip (gconstpointer data)
{
  const RoundTrip *rt = data;
  g_autoptr (GBytes) up = test_data_new (rt->data, DATA_LEN, 1);
  g_autoptr (GBytes) down = test_data_new (rt->data, DATA_LEN / 2 + 7, 2);
  MigChannelOptions opts;
  MigChannelStats sc, ss;
  Pair p = { 0 };

  mig_channel_options_init (&opts);
  opts.compress = rt->mode;
  opts.link_rate = 2 * 1000 * 1000; /* auto: a slow link ... */
  pair_connect (&p, rt->tls ? creds_b : NULL, rt->tls ? creds_a : NULL,
                MIG_FAULT_NONE, 0);
  p.scene = &scene_hint_kept_up; /* ... that the data keeps busy */
  pair_run (&p, &opts, &opts, up, down);

  g_assert_no_error (p.err_c);
  g_assert_no_error (p.err_s);
  g_assert_true (p.ok_c && p.ok_s);
  assert_received (&p.app_s, up, TRUE);
  assert_received (&p.app_c, down, TRUE);

  mig_channel_get_stats (p.client, &sc);
  mig_channel_get_stats (p.srv, &ss);
  g_test_message ("frames %" G_GUINT64_FORMAT " lz4 %" G_GUINT64_FORMAT
                  " ratio %.2f lz4 %.0f MB/s link %.0f MB/s decisions %u",
                  sc.frames_out, sc.compressed_frames_out, sc.ratio,
                  sc.compress_speed / 1e6, sc.link_rate / 1e6, sc.decisions);
  g_assert_cmpuint (sc.payload_out, ==, DATA_LEN);
  g_assert_cmpuint (ss.payload_in, ==, DATA_LEN);
  g_assert_cmpuint (sc.payload_in, ==, DATA_LEN / 2 + 7);
  g_assert_cmpuint (sc.wire_out, ==, ss.wire_in + MIG_FRAME_HEADER_SIZE);
  g_assert_cmpuint (sc.frames_out, ==, ss.frames_in);
  g_assert_cmpuint (sc.compressed_frames_out, ==, ss.compressed_frames_in);
  if (rt->mode == MIG_COMPRESS_OFF || rt->data == TEST_DATA_RANDOM)
    g_assert_cmpuint (sc.compressed_frames_out, ==, 0);
  else
    {
      /* Text and zeros compress, so ON and AUTO (slow link) use lz4. */
      g_assert_cmpuint (sc.compressed_frames_out, >, 0);
      g_assert_cmpuint (sc.wire_out, <, sc.payload_out * 3 / 4);
    }
  if (rt->mode == MIG_COMPRESS_OFF)
    g_assert_cmpuint (sc.wire_out, ==,
                      sc.payload_out
                          + (sc.frames_out + 1) * MIG_FRAME_HEADER_SIZE);
  pair_clear (&p);
}

/* --- tests: auto compression ---------------------------------------------- */

/* The policy itself (when lz4 pays, when not, confirmation, backoff) is
 * tested in test-mig-auto.c. Here: that the channel measures each window
 * and does what the decisions say. The tests that make lz4 go on or off
 * feed the real policy synthetic timings (Scene) and read their input
 * from a memory file, so that they see the same frames, windows and
 * decisions on a busy machine as on an idle one. */

static GBytes *
concat (GBytes *a, GBytes *b)
{
  g_autoptr (GByteArray) all = g_byte_array_new ();

  g_byte_array_append (all, g_bytes_get_data (a, NULL), g_bytes_get_size (a));
  g_byte_array_append (all, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  return g_byte_array_free_to_bytes (g_steal_pointer (&all));
}

typedef struct
{
  guint64 link_rate;  /* hint, 0 = none */
  guint64 rate_limit; /* 0 = none */
  gsize chunk;        /* 0 = 32 KiB: several windows in a short run */
  gboolean socket;    /* input over a socketpair, not a memory file */
} AutoRun;

/* Sends UP one way with compress AUTO under SCENE (NULL: measured), on
 * plain TCP; checks it arrived whole and returns the client's stats and
 * the frames it sent while the decisions said lz4. */
static void
run_auto_scene (const Scene *scene, const AutoRun *run, GBytes *up,
                MigChannelStats *st, guint64 *frames_on)
{
  g_autoptr (GBytes) none = g_bytes_new (NULL, 0);
  MigChannelOptions opts;
  Pair p = { 0 };

  mig_channel_options_init (&opts);
  opts.compress = MIG_COMPRESS_AUTO;
  opts.link_rate = run->link_rate;
  opts.rate_limit = run->rate_limit;
  opts.chunk_size = run->chunk ? run->chunk : 32 * 1024;
  pair_connect (&p, NULL, NULL, MIG_FAULT_NONE, 0);
  p.scene = scene;
  p.record = TRUE;
  p.app_c.file = !run->socket;
  pair_run (&p, &opts, NULL, up, none);
  g_assert_no_error (p.err_c);
  g_assert_no_error (p.err_s);
  assert_received (&p.app_s, up, TRUE);
  mig_channel_get_stats (p.client, st);
  if (frames_on != NULL)
    *frames_on = synth_frames_on (&p.synth_c, st->frames_out);
  g_test_message ("lz4 %s, %" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT
                  " frames compressed, wire/payload %.2f, ratio %.2f, lz4 "
                  "%.0f MB/s, link %.1f MB/s, blocked out %.2f in %.2f, "
                  "receiver-limited %.2f, decisions %u",
                  st->compressing ? "on" : "off", st->compressed_frames_out,
                  st->frames_out, (double)st->wire_out / st->payload_out,
                  st->ratio, st->compress_speed / 1e6, st->link_rate / 1e6,
                  st->out_blocked, st->in_waiting, st->rwnd_limited,
                  st->decisions);
  pair_clear (&p);
}

/* Which of a run's frames lz4 must have compressed. */
typedef enum
{
  LZ4_NONE,
  LZ4_ALL,  /* every frame, each sent while the decisions said lz4 */
  LZ4_MOST, /* more than half, exactly those sent while they said lz4 */
} Lz4Share;

/* One run of auto compression (UP: LEN bytes of KIND, seed SEED) under
 * SCENE and RUN, and what the client's stats must show then. A bound of
 * 0 is not checked. */
typedef struct
{
  const char *path;
  const Scene *scene; /* NULL: measured */
  AutoRun run;
  TestDataKind kind;
  gsize len;
  guint seed;
  gboolean compressing; /* lz4 on at the end */
  Lz4Share lz4;
  double ratio_above, ratio_below;
  guint decisions;                 /* at least */
  guint wire_num, wire_den;        /* wire_out < payload_out * NUM / DEN */
  double link_above;               /* measured link rate > this */
  double link_at_most, link_below; /* ... <= and < these */
  gboolean link_measured;          /* ... > 0 */
  double rwnd_at_least, blocked_at_least;
} AutoCase;

static void
test_auto_case (gconstpointer data)
{
  const AutoCase *c = data;
  g_autoptr (GBytes) up = test_data_new (c->kind, c->len, c->seed);
  gboolean counted = c->lz4 != LZ4_NONE;
  MigChannelStats st;
  guint64 on = 0;

  run_auto_scene (c->scene, &c->run, up, &st, counted ? &on : NULL);
  if (c->compressing)
    g_assert_true (st.compressing);
  else
    g_assert_false (st.compressing);
  if (c->lz4 == LZ4_NONE)
    g_assert_cmpuint (st.compressed_frames_out, ==, 0);
  if (c->lz4 == LZ4_ALL)
    {
      g_assert_cmpuint (on, ==, st.frames_out);
      g_assert_cmpuint (st.compressed_frames_out, ==, st.frames_out);
    }
  if (c->lz4 == LZ4_MOST)
    {
      g_assert_cmpuint (st.compressed_frames_out, >, st.frames_out / 2);
      g_assert_cmpuint (st.compressed_frames_out, ==, on);
    }
  if (c->ratio_above > 0)
    g_assert_cmpfloat (st.ratio, >, c->ratio_above);
  if (c->ratio_below > 0)
    g_assert_cmpfloat (st.ratio, <, c->ratio_below);
  g_assert_cmpuint (st.decisions, >=, c->decisions);
  if (c->wire_den > 0)
    g_assert_cmpuint (st.wire_out, <,
                      st.payload_out * c->wire_num / c->wire_den);
  if (c->link_above > 0)
    g_assert_cmpfloat (st.link_rate, >, c->link_above);
  if (c->link_at_most > 0)
    g_assert_cmpfloat (st.link_rate, <=, c->link_at_most);
  if (c->link_below > 0)
    g_assert_cmpfloat (st.link_rate, <, c->link_below);
  if (c->link_measured)
    g_assert_cmpfloat (st.link_rate, >, 0);
  if (c->rwnd_at_least > 0)
    g_assert_cmpfloat (st.rwnd_limited, >=, c->rwnd_at_least);
  if (c->blocked_at_least > 0)
    g_assert_cmpfloat (st.out_blocked, >=, c->blocked_at_least);
}

/* The producer is slow (8 MB/s) and the output fast: the link is not the
 * bottleneck, so text is sent raw. Also with a rate limit well above
 * what the producer makes, and with a link that is slower than the local
 * socket but still faster than the producer (writes take 40% of the
 * time: the old "bytes / time in writes" estimate saw a 40 MB/s link and
 * turned lz4 on). */
static const Scene scene_slow_producer
    = { .producer_mbs = 8, .in_wait = 0.9, .out_wait = 0.02 };
static const Scene scene_slow_producer_limited
    = { .producer_mbs = 8, .in_wait = 0.9, .out_wait = 0.05 };
static const Scene scene_slow_producer_slowish
    = { .producer_mbs = 8, .in_wait = 0.55, .out_wait = 0.4 };

#define MB_S (1000 * 1000)

/* One row a case, as a table reads best. */
/* clang-format off */
static const AutoCase auto_cases[] = {
  /* A slow link given as a hint: text is compressed from the first
   * frame. */
  { "/mig-channel/auto/text-slow-link", &scene_hint_kept_up,
    { .link_rate = 5 * MB_S }, TEST_DATA_TEXT, DATA_LEN, 3,
    .compressing = TRUE, .lz4 = LZ4_ALL, .ratio_above = 1.5, .decisions = 1,
    .wire_num = 3, .wire_den = 4 },
  /* Random data with the same hint, as measured: never compressed. */
  { "/mig-channel/auto/random", NULL,
    { .link_rate = 5 * MB_S, .socket = TRUE, .chunk = MIG_CHANNEL_CHUNK_DEFAULT },
    TEST_DATA_RANDOM, DATA_LEN, 3, .lz4 = LZ4_NONE, .ratio_below = 1.1 },
  /* A link far faster than lz4 (1 TB/s), as measured: text is sent raw. */
  { "/mig-channel/auto/fast-link", NULL,
    { .link_rate = G_GUINT64_CONSTANT (1000000000000), .socket = TRUE,
      .chunk = MIG_CHANNEL_CHUNK_DEFAULT },
    TEST_DATA_TEXT, DATA_LEN, 3, .lz4 = LZ4_NONE, .ratio_above = 1.5 },
  /* Auto without a link_rate hint: only backpressure may turn lz4 on.
   * The channel's own rate limit is the bottleneck: text gets lz4, and
   * the link rate is the limit. */
  { "/mig-channel/auto/measured/rate-limited-text", &scene_network_bound,
    { .rate_limit = 10 * MB_S }, TEST_DATA_TEXT, 6 * 1024 * 1024, 11,
    .compressing = TRUE, .lz4 = LZ4_MOST, .ratio_above = 1.5,
    .wire_num = 4, .wire_den = 5, .link_above = 5e6, .link_at_most = 10e6 },
  /* A slow link (writes block) without any configured rate: same. */
  { "/mig-channel/auto/measured/slow-link-text", &scene_network_bound, { 0 },
    TEST_DATA_TEXT, 6 * 1024 * 1024, 11, .compressing = TRUE, .lz4 = LZ4_MOST,
    .wire_num = 4, .wire_den = 5, .link_above = 5e6, .link_below = 15e6 },
  /* The receiver is the bottleneck, the producer and the network are
   * fast: the sender is blocked, but by the peer's closed receive window
   * (TCP_INFO), not by the wire. lz4 would only spend CPU, so it is never
   * started, not even as a trial (it would have compressed well; the
   * sender was backpressured all along). That TCP reports such a
   * receiver is tested below (receiver-window). */
  { "/mig-channel/auto/measured/slow-receiver-text", &scene_receiver_bound,
    { 0 }, TEST_DATA_TEXT, 24 * 1024 * 1024, 11, .lz4 = LZ4_NONE,
    .ratio_above = 1.5, .rwnd_at_least = 0.25, .blocked_at_least = 0.3 },
  /* Throttled, but the data does not compress: lz4 stays off, although
   * the link was measured. */
  { "/mig-channel/auto/measured/rate-limited-random", &scene_network_bound,
    { .rate_limit = 10 * MB_S }, TEST_DATA_RANDOM, 2 * 1024 * 1024, 11,
    .lz4 = LZ4_NONE, .ratio_below = 1.1, .link_measured = TRUE },
  /* The slow producers (above); the ratio is still sampled while off. */
  { "/mig-channel/auto/measured/slow-producer-text", &scene_slow_producer,
    { 0 }, TEST_DATA_TEXT, 2 * 1024 * 1024, 11, .lz4 = LZ4_NONE,
    .ratio_above = 1.5, .decisions = 3 },
  { "/mig-channel/auto/measured/slow-producer-text-rate-limit",
    &scene_slow_producer_limited, { .rate_limit = 100 * MB_S },
    TEST_DATA_TEXT, 2 * 1024 * 1024, 11, .lz4 = LZ4_NONE,
    .ratio_above = 1.5, .decisions = 3 },
  { "/mig-channel/auto/measured/slow-producer-text-slowish-link",
    &scene_slow_producer_slowish, { 0 }, TEST_DATA_TEXT, 2 * 1024 * 1024, 11,
    .lz4 = LZ4_NONE, .ratio_above = 1.5, .decisions = 3 },
};
/* clang-format on */

/* The data changes character mid-stream (2 MiB of FIRST, 12 MiB of
 * SECOND) on a hinted slow link: auto follows it. */
static void
run_auto_switch (TestDataKind first, TestDataKind second, MigChannelStats *st,
                 guint64 *frames_on)
{
  g_autoptr (GBytes) a = test_data_new (first, 2 * 1024 * 1024, 4);
  g_autoptr (GBytes) b = test_data_new (second, 12 * 1024 * 1024, 5);
  g_autoptr (GBytes) up = concat (a, b);
  AutoRun run = { .link_rate = 5 * 1000 * 1000 };

  run_auto_scene (&scene_hint_kept_up, &run, up, st, frames_on);
  g_assert_cmpuint (st->decisions, >=, 3);
  g_assert_cmpuint (st->frames_out, ==, 14 * 1024 / 32);
}

static void
test_auto_backs_off (void)
{
  MigChannelStats st;
  guint64 on;

  run_auto_switch (TEST_DATA_TEXT, TEST_DATA_RANDOM, &st, &on);
  g_assert_cmpuint (st.compressed_frames_out, >, 0); /* was on for text */
  g_assert_false (st.compressing);                   /* off for random */
  g_assert_cmpuint (st.compressed_frames_out, <, st.frames_out / 2);
  /* Random frames do not shrink: sent raw even while lz4 was on. */
  g_assert_cmpuint (st.compressed_frames_out, <=, on);
}

static void
test_auto_turns_on (void)
{
  MigChannelStats st;
  guint64 on;

  run_auto_switch (TEST_DATA_RANDOM, TEST_DATA_TEXT, &st, &on);
  g_assert_true (st.compressing);
  g_assert_cmpuint (st.compressed_frames_out, >, st.frames_out / 2);
  /* Every frame sent while the decision said lz4, and no other. */
  g_assert_cmpuint (st.compressed_frames_out, ==, on);
}

/* --- what the channel measures -------------------------------------------- */

/* A link that blocks: every write sleeps as long as RATE bytes/s needs
 * to carry it (the writer blocks, as on a full send buffer). */
typedef struct
{
  MigTransportWrapper wrap;
  double rate;
} SlowTransport;

static gboolean
slow_writev_all (MigTransport *t, GOutputVector *vectors, gsize n_vectors,
                 GCancellable *cancellable, GError **error)
{
  SlowTransport *st = (SlowTransport *)t;
  MigTransport *inner = st->wrap.inner;
  gsize bytes = 0;

  for (gsize i = 0; i < n_vectors; i++)
    bytes += vectors[i].size;
  if (!inner->ops->writev_all (inner, vectors, n_vectors, cancellable, error))
    return FALSE;
  g_usleep ((gulong)(bytes / st->rate * 1e6));
  return TRUE;
}

static const MigTransportOps slow_ops = {
  .name = "slow",
  .read = mig_transport_wrapper_read,
  .writev_all = slow_writev_all,
  .close = mig_transport_wrapper_close,
  .set_timeout = mig_transport_wrapper_set_timeout,
  .free = mig_transport_wrapper_free,
};

static MigTransport *
slow_wrap (MigTransport *inner, gpointer data)
{
  SlowTransport *st = g_new0 (SlowTransport, 1);

  st->wrap.parent.ops = &slow_ops;
  st->wrap.inner = inner;
  st->rate = *(const double *)data;
  return &st->wrap.parent;
}

/* Time blocked on the peer counts as out_wait: through a slow link each
 * window shows at least the time its writes slept, however busy the
 * machine (a sleep only gets longer, and takes no CPU). The windows add
 * up to what was sent, and their waits never exceed them. */
static void
test_auto_measures_blocked (void)
{
  static const double rate = 20e6;
  g_autoptr (GBytes) up = test_data_new (TEST_DATA_TEXT, 2 * 1024 * 1024, 12);
  g_autoptr (GBytes) none = g_bytes_new (NULL, 0);
  MigChannelOptions opts;
  MigChannelStats st;
  guint64 frames = 0, payload = 0, wire = 0;
  Pair p = { 0 };

  mig_channel_options_init (&opts);
  opts.compress = MIG_COMPRESS_AUTO;
  opts.chunk_size = 32 * 1024;
  pair_connect_wrapped (&p, NULL, NULL, MIG_FAULT_NONE, 0, slow_wrap,
                        (gpointer)&rate);
  p.record = TRUE;
  p.app_c.file = TRUE;
  pair_run (&p, &opts, NULL, up, none);
  g_assert_no_error (p.err_c);
  g_assert_no_error (p.err_s);
  assert_received (&p.app_s, up, TRUE);
  mig_channel_get_stats (p.client, &st);

  g_assert_cmpuint (p.synth_c.windows->len, ==, st.decisions);
  g_assert_cmpuint (st.decisions, >=, MIG_AUTO_SHORT_WINDOWS);
  for (guint i = 0; i < p.synth_c.windows->len; i++)
    {
      const MigAutoSample *s
          = &g_array_index (p.synth_c.windows, Window, i).sample;
      /* g_usleep() of whole microseconds per frame. */
      double slept_ns = s->wire_bytes / rate * 1e9 - s->frames * 1000.0;

      g_assert_false (s->have_send_times); /* this transport has none */
      g_assert_cmpfloat ((double)s->out_wait_ns, >=, slept_ns);
      g_assert_cmpint (s->in_wait_ns + s->out_wait_ns, <=, s->window_ns);
      /* Each window lz4s a sample, but the one after the first
       * decision: its first frame was the first decision's sample. */
      if (i != 1)
        g_assert_cmpuint (s->lz4_in, >, 0);
      frames += s->frames;
      payload += s->payload_bytes;
      wire += s->wire_bytes;
    }
  g_assert_cmpuint (frames, <=, st.frames_out);
  g_assert_cmpuint (payload, <=, st.payload_out);
  g_assert_cmpuint (wire, <=, st.wire_out);
  g_assert_cmpuint (st.frames_out - frames, <, MIG_AUTO_WINDOW_FRAMES);
  pair_clear (&p);
}

/* A receiver that stops reading closes TCP's window: the sender's
 * TCP_INFO counts the stall as receive-window-limited, which is how the
 * channel tells a slow receiver from a slow link. The stall is wall
 * time, so the check holds on a busy machine. */
static void
test_auto_receiver_window (void)
{
  g_autoptr (GSocketListener) listener = g_socket_listener_new ();
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) c = NULL, s = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (MigTransport) t = NULL;
  static guint8 buf[64 * 1024];
  guint64 busy0 = 0, rwnd0 = 0, busy1 = 0, rwnd1 = 0;
  guint16 port;
  int fd;

  port = g_socket_listener_add_any_inet_port (listener, NULL, &error);
  g_assert_no_error (error);
  c = g_socket_client_connect_to_host (client, "127.0.0.1", port, NULL, &error);
  g_assert_no_error (error);
  s = g_socket_listener_accept (listener, NULL, NULL, &error);
  g_assert_no_error (error);
  t = mig_transport_socket_new (G_IO_STREAM (c));
  g_assert_nonnull (t->ops->send_times);

  /* Fill everything up to the receiver's closed window. */
  fd = g_socket_get_fd (g_socket_connection_get_socket (c));
  g_assert_cmpint (fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_NONBLOCK), ==,
                   0);
  while (write (fd, buf, sizeof buf) > 0)
    ;
  g_assert_cmpint (errno, ==, EAGAIN);
  g_assert_true (t->ops->send_times (t, &busy0, &rwnd0));
  g_usleep (200 * 1000);
  g_assert_true (t->ops->send_times (t, &busy1, &rwnd1));
  g_test_message ("stalled 200 ms: busy +%" G_GUINT64_FORMAT
                  " us, receiver-limited +%" G_GUINT64_FORMAT " us",
                  busy1 - busy0, rwnd1 - rwnd0);
  g_assert_cmpuint (rwnd1 - rwnd0, >=, 150 * 1000);
  g_assert_cmpuint (busy1 - busy0, >=, rwnd1 - rwnd0);
}

/* --- tests: faults -------------------------------------------------------- */

/* A fault the fault transport injects into the client's stream (compress
 * MODE), and how each side must end. */
typedef struct
{
  const char *path;
  MigFaultKind fault;
  guint64 offset;
  MigCompressMode mode;
  gint server_code;        /* MIG_ERROR code of the receiver */
  const char *server_says; /* in its message; NULL: not checked */
  gint client_code;        /* MIG_ERROR code of the sender; 0: not checked */
  const char *client_says; /* in its message; NULL: not checked */
  gboolean nothing_in;     /* the server's app got no byte at all */
} FaultCase;

static const FaultCase fault_cases[] = {
  /* Inside the first data frame's payload; the sender learns why from
   * the receiver's ERROR frame. */
  { "/mig-channel/fault/corrupt/off", MIG_FAULT_CORRUPT,
    HELLO_WIRE + MIG_FRAME_HEADER_SIZE + 1000, MIG_COMPRESS_OFF,
    MIG_ERROR_CHANNEL_PROTOCOL, "checksum mismatch", MIG_ERROR_CHANNEL_PEER,
    "frame" },
  { "/mig-channel/fault/corrupt/on", MIG_FAULT_CORRUPT,
    HELLO_WIRE + MIG_FRAME_HEADER_SIZE + 1000, MIG_COMPRESS_ON,
    MIG_ERROR_CHANNEL_PROTOCOL, NULL, MIG_ERROR_CHANNEL_PEER, "frame" },
  /* The length field of the first data frame. */
  { "/mig-channel/fault/corrupt-header", MIG_FAULT_CORRUPT, HELLO_WIRE + 9,
    MIG_COMPRESS_OFF, MIG_ERROR_CHANNEL_PROTOCOL, "header checksum",
    .nothing_in = TRUE },
  { "/mig-channel/fault/truncate", MIG_FAULT_TRUNCATE,
    HELLO_WIRE + MIG_FRAME_HEADER_SIZE + 5000, MIG_COMPRESS_OFF,
    MIG_ERROR_CHANNEL_CLOSED, "truncated frame body", MIG_ERROR_CHANNEL_FAULT,
    .nothing_in = TRUE },
  /* Cut between frames: the receiver sees a clean EOF but no END. */
  { "/mig-channel/fault/cut", MIG_FAULT_CUT, 1000000, MIG_COMPRESS_OFF,
    MIG_ERROR_CHANNEL_CLOSED, "before end of stream", MIG_ERROR_CHANNEL_FAULT },
};

static void
test_fault (gconstpointer data)
{
  const FaultCase *c = data;
  g_autoptr (GBytes) up = test_data_new (TEST_DATA_TEXT, DATA_LEN, 6);
  g_autoptr (GBytes) down = test_data_new (TEST_DATA_RANDOM, 100000, 7);
  MigChannelOptions opts;
  Pair p = { 0 };

  mig_channel_options_init (&opts);
  opts.compress = c->mode;
  pair_connect (&p, creds_b, creds_a, c->fault, c->offset);
  pair_run (&p, &opts, &opts, up, down);
  g_test_message ("client: %s", p.err_c ? p.err_c->message : "ok");
  g_test_message ("server: %s", p.err_s ? p.err_s->message : "ok");
  g_assert_false (p.ok_c);
  g_assert_false (p.ok_s);
  /* Never a corrupt byte: the server's app got a strict prefix. */
  assert_received (&p.app_s, up, FALSE);
  g_assert_error (p.err_s, MIG_ERROR, c->server_code);
  if (c->server_says)
    g_assert_nonnull (strstr (p.err_s->message, c->server_says));
  if (c->client_code)
    g_assert_error (p.err_c, MIG_ERROR, c->client_code);
  if (c->client_says)
    g_assert_nonnull (strstr (p.err_c->message, c->client_says));
  if (c->nothing_in)
    g_assert_cmpuint (p.app_s.recv->len, ==, 0);
  pair_clear (&p);
}

static MigTransport *
raw_hello (Server *s, const char *token)
{
  g_autoptr (GError) error = NULL;
  MigTransport *t
      = mig_transport_connect (NULL, "127.0.0.1", s->port, NULL, &error);
  guint8 hdr[MIG_FRAME_HEADER_SIZE], reply[MIG_FRAME_HEADER_SIZE];
  guint8 hello[1 + 64];
  MigFrameHeader h = {
    .type = MIG_FRAME_HELLO, .payload_len = 65, .wire_len = 65, .seq = 0
  };
  GOutputVector v[2] = { { hdr, sizeof hdr }, { hello, sizeof hello } };
  gsize got = 0;

  g_assert_no_error (error);
  g_assert_cmpuint (strlen (token), ==, 64);
  hello[0] = MIG_CHANNEL_KIND_MEMORY;
  memcpy (hello + 1, token, 64);
  h.crc = mig_crc32c (0, hello, sizeof hello);
  mig_frame_header_encode (&h, hdr);
  g_assert_true (t->ops->writev_all (t, v, 2, NULL, &error));
  g_assert_no_error (error);
  while (got < sizeof reply)
    {
      gssize n
          = t->ops->read (t, reply + got, sizeof reply - got, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n, >, 0);
      got += n;
    }
  g_assert_true (mig_frame_header_decode (reply, 0, 0, &h, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (h.type, ==, MIG_FRAME_OK);
  return t;
}

static void
raw_send_header (MigTransport *t, MigFrameType type, guint32 len, guint64 seq)
{
  g_autoptr (GError) error = NULL;
  guint8 hdr[MIG_FRAME_HEADER_SIZE];
  MigFrameHeader h
      = { .type = type, .payload_len = len, .wire_len = len, .seq = seq };
  GOutputVector v = { hdr, sizeof hdr };

  mig_frame_header_encode (&h, hdr);
  g_assert_true (t->ops->writev_all (t, &v, 1, NULL, &error));
  g_assert_no_error (error);
}

/* Runs the accepted channel of S against whatever T sent; checks that
 * the server explains itself in an ERROR frame and returns its error. */
static GError *
raw_run_server (Server *s, MigTransport *t, const char *why)
{
  g_autoptr (MigChannel) ch = server_take (s);
  g_autoptr (GBytes) none = g_bytes_new (NULL, 0);
  guint8 buf[MIG_FRAME_HEADER_SIZE + MIG_ERROR_TEXT_MAX + 1];
  g_autofree char *text = NULL;
  GError *error = NULL;
  MigFrameHeader h;
  App app = { 0 };
  int fd = app_start (&app, none, FALSE);
  gsize got = 0;

  mig_channel_start (ch, fd, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  /* Header first, then exactly its body: the server waits for us to
   * close after reading its ERROR. */
  for (gsize want = MIG_FRAME_HEADER_SIZE; got < want;)
    {
      gssize n = t->ops->read (t, buf + got, want - got, NULL, &error);
      g_assert_no_error (error);
      g_assert_cmpint (n, >, 0);
      got += n;
      if (got == MIG_FRAME_HEADER_SIZE)
        {
          g_assert_true (
              mig_frame_header_decode (buf, 1, MIG_ERROR_TEXT_MAX, &h, &error));
          want += h.wire_len;
        }
    }
  g_assert_cmpuint (h.type, ==, MIG_FRAME_ERROR);
  g_assert_cmpuint (got, ==, MIG_FRAME_HEADER_SIZE + h.wire_len);
  text = g_strndup ((char *)buf + MIG_FRAME_HEADER_SIZE, h.wire_len);
  g_assert_nonnull (strstr (text, why));
  mig_transport_free (t);

  g_assert_false (mig_channel_wait (ch, &error));
  app_join (&app);
  g_assert_cmpuint (app.recv->len, ==, 0);
  app_clear (&app);
  return error;
}

/* A data frame header a client sends right after its HELLO (length LEN,
 * sequence SEQ), which the server must refuse saying WHY. */
typedef struct
{
  const char *path;
  guint32 len;
  guint64 seq;
  const char *why;
  gboolean at_once; /* within 2 s: nothing read or allocated first */
} RawCase;

static const RawCase raw_cases[] = {
  /* 2 GiB announced. */
  { "/mig-channel/wire/oversized", 0x7fffffffu, 1, "exceeds", TRUE },
  /* A replayed or skipped frame. */
  { "/mig-channel/wire/bad-sequence", 0, 7, "sequence", FALSE },
};

static void
test_raw_frame (gconstpointer data)
{
  const RawCase *c = data;
  Server *s = server_new (NULL);
  g_autofree char *token = server_token (s, MIG_CHANNEL_KIND_MEMORY);
  MigTransport *t = raw_hello (s, token);
  g_autoptr (GError) error = NULL;
  gint64 t0 = g_get_monotonic_time ();

  raw_send_header (t, MIG_FRAME_DATA, c->len, c->seq);
  error = raw_run_server (s, t, c->why);
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL);
  g_assert_nonnull (strstr (error->message, c->why));
  if (c->at_once)
    g_assert_cmpint (g_get_monotonic_time () - t0, <, 2 * G_TIME_SPAN_SECOND);
  server_free (s);
}

static void
test_oversized_hello (void)
{
  Server *s = server_new (NULL);
  g_autoptr (GError) error = NULL;
  MigTransport *t
      = mig_transport_connect (NULL, "127.0.0.1", s->port, NULL, &error);
  const GError *refusal;

  g_assert_no_error (error);
  /* Before authentication even 64 KiB is too much. */
  raw_send_header (t, MIG_FRAME_HELLO, 65536, 0);
  refusal = server_refusal (s);
  g_assert_error (refusal, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL);
  g_assert_nonnull (strstr (refusal->message, "exceeds"));
  mig_transport_free (t);
  server_done (s, 0);
}

/* --- tests: authentication ------------------------------------------------ */

static void
assert_refused (Server *s, const char *token, MigChannelKind kind,
                const char *why)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MigChannel) ch = mig_channel_connect (
      creds_a, "127.0.0.1", s->port, kind, token, NULL, &error);
  const GError *refusal;

  g_assert_null (ch);
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH);
  g_assert_nonnull (strstr (error->message, why));
  refusal = server_refusal (s);
  g_assert_error (refusal, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH);
  g_assert_nonnull (strstr (refusal->message, why));
  g_mutex_lock (&s->lock);
  g_clear_error (&s->refused);
  g_mutex_unlock (&s->lock);
}

static void
test_auth_invalid_token (void)
{
  Server *s = server_new (creds_b);

  assert_refused (s, "0123456789abcdef", MIG_CHANNEL_KIND_MEMORY,
                  "unknown token");
  server_done (s, 0);
}

static void
test_auth_reused_token (void)
{
  Server *s = server_new (creds_b);
  g_autofree char *token = server_token (s, MIG_CHANNEL_KIND_CONTROL);

  g_assert_cmpuint (strlen (token), ==, 64);
  assert_accepted (s, MIG_CHANNEL_KIND_CONTROL, token);
  assert_refused (s, token, MIG_CHANNEL_KIND_CONTROL, "already used");
  server_done (s, 1);
}

static void
test_auth_expired_and_kind (void)
{
  Server *s = server_new (creds_b);
  g_autofree char *old
      = mig_token_table_issue (s->tokens, MIG_CHANNEL_KIND_MEMORY, 1);
  g_autofree char *ctl = server_token (s, MIG_CHANNEL_KIND_CONTROL);

  g_usleep (20 * 1000);
  assert_refused (s, old, MIG_CHANNEL_KIND_MEMORY, "expired");
  assert_refused (s, ctl, MIG_CHANNEL_KIND_MEMORY, "another stream kind");
  server_done (s, 0);
}

static void
test_auth_disk_kind (void)
{
  Server *s = server_new (creds_b);
  g_autofree char *disk = server_token (s, MIG_CHANNEL_KIND_DISK);
  g_autofree char *mem = server_token (s, MIG_CHANNEL_KIND_MEMORY);
  g_autoptr (GError) error = NULL;
  MigChannel *client;
  const GError *refusal;

  /* A disk token opens no memory stream, a memory token no disk stream. */
  assert_refused (s, disk, MIG_CHANNEL_KIND_MEMORY, "another stream kind");
  assert_refused (s, mem, MIG_CHANNEL_KIND_DISK, "another stream kind");
  g_assert_cmpuint (s->n_accepted, ==, 0);

  g_free (disk);
  disk = server_token (s, MIG_CHANNEL_KIND_DISK);
  assert_accepted (s, MIG_CHANNEL_KIND_DISK, disk);
  assert_refused (s, disk, MIG_CHANNEL_KIND_DISK, "already used");

  /* A kind past the last one is a malformed HELLO, whatever the token. */
  g_free (mem);
  mem = server_token (s, MIG_CHANNEL_KIND_MEMORY);
  client = mig_channel_connect (creds_a, "127.0.0.1", s->port,
                                (MigChannelKind)(MIG_CHANNEL_KIND_LAST + 1),
                                mem, NULL, &error);
  g_assert_null (client);
  g_assert_nonnull (error);
  refusal = server_refusal (s);
  g_assert_error (refusal, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL);
  g_assert_nonnull (strstr (refusal->message, "malformed HELLO"));
  server_done (s, 1);
}

/* A disk stream with TOKEN, which DST must refuse saying WHY. */
static void
assert_dst_refused (MigDst *dst, const char *token, const char *why)
{
  g_autoptr (GError) error = NULL;
  MigChannel *ch
      = mig_channel_connect (NULL, "127.0.0.1", mig_dst_get_port (dst),
                             MIG_CHANNEL_KIND_DISK, token, NULL, &error);

  g_assert_null (ch);
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH);
  g_assert_nonnull (strstr (error->message, why));
}

/* MigDst admits a disk stream only for a job expected with a disk. */
static void
test_dst_disk_token (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *no_disk = NULL, *with_disk = NULL;
  MigDstConfig cfg = { 0 };
  MigDst *dst;
  MigChannel *ch;

  cfg.address = "127.0.0.1";
  cfg.libvirt_sock = "/nonexistent/drover-test-libvirt-sock";
  dst = mig_dst_new (&cfg, &error);
  g_assert_no_error (error);
  no_disk = mig_dst_expect (dst, "test-no-disk", NULL, FALSE, 10000, &error);
  g_assert_no_error (error);
  with_disk = mig_dst_expect (dst, "test-disk", NULL, TRUE, 10000, &error);
  g_assert_no_error (error);

  assert_dst_refused (dst, no_disk, "no disk stream");

  /* Admitted (the local NBD socket is missing here, so the destination
   * drops the stream after the handshake), then used up. */
  ch = mig_channel_connect (NULL, "127.0.0.1", mig_dst_get_port (dst),
                            MIG_CHANNEL_KIND_DISK, with_disk, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (ch);
  mig_channel_free (ch);
  assert_dst_refused (dst, with_disk, "already used");

  g_assert_true (mig_dst_forget (dst, "test-disk", with_disk, &error));
  g_assert_no_error (error);
  mig_dst_free (dst);
}

/* --- tests: TLS ----------------------------------------------------------- */

/* A client the server's TLS refuses: one with a certificate of another
 * CA (the server says why), one that does not trust the server's (the
 * client says why), one without TLS. */
typedef struct
{
  const char *path;
  MigChannelCreds **creds;  /* the client's; NULL: plain */
  gboolean bad_certificate; /* the client refuses the server's */
  const char *server_says;  /* NULL: any refusal */
} TlsCase;

static const TlsCase tls_cases[] = {
  { "/mig-channel/tls/foreign-client", &creds_foreign, FALSE, "TLS handshake" },
  { "/mig-channel/tls/untrusted-server", &creds_lost, TRUE, NULL },
  { "/mig-channel/tls/plain-client", NULL, FALSE, NULL },
};

static void
test_tls_refused (gconstpointer data)
{
  const TlsCase *c = data;
  Server *s = server_new (creds_b);
  g_autofree char *token = server_token (s, MIG_CHANNEL_KIND_MEMORY);
  g_autoptr (GError) error = NULL;
  g_autoptr (MigChannel) ch = NULL;
  const GError *refusal;

  ch = mig_channel_connect (c->creds ? *c->creds : NULL, "127.0.0.1", s->port,
                            MIG_CHANNEL_KIND_MEMORY, token, NULL, &error);
  g_assert_null (ch);
  g_assert_nonnull (error);
  g_test_message ("client: %s", error->message);
  if (c->bad_certificate)
    g_assert_error (error, G_TLS_ERROR, G_TLS_ERROR_BAD_CERTIFICATE);
  refusal = server_refusal (s);
  g_test_message ("server: %s", refusal->message);
  if (c->server_says)
    {
      g_assert_true (refusal->domain == G_TLS_ERROR);
      g_assert_nonnull (strstr (refusal->message, c->server_says));
    }
  server_done (s, 0);
}

/* A client that connects and says nothing is dropped after the handshake
 * timeout, in TLS and in plain mode (both at once: the timeout is 1 s). */
static void
test_handshake_timeout (void)
{
  Server *s[2] = { server_new_full (NULL, 1), server_new_full (creds_b, 1) };
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  GSocketConnection *conn[2];
  gint64 t0 = g_get_monotonic_time ();

  for (int i = 0; i < 2; i++)
    {
      g_autoptr (GError) error = NULL;
      conn[i] = g_socket_client_connect_to_host (client, "127.0.0.1",
                                                 s[i]->port, NULL, &error);
      g_assert_no_error (error);
    }
  for (int i = 0; i < 2; i++)
    {
      const GError *refusal = server_refusal (s[i]);
      g_test_message ("server: %s", refusal->message);
      g_assert_error (refusal, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
      g_assert_cmpuint (s[i]->n_accepted, ==, 0);
    }
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 5 * G_TIME_SPAN_SECOND);
  for (int i = 0; i < 2; i++)
    {
      g_object_unref (conn[i]);
      server_free (s[i]);
    }
}

static void
test_creds_missing (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MigChannelCreds) creds = mig_channel_creds_new (cert_root, &error);

  /* cert_root has ca.pem but no cert.pem. */
  g_assert_null (creds);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

/* --- tests: local send buffer --------------------------------------------- */

/* The in pump may queue megabytes for a slow local reader (the
 * destination QEMU), not just one frame: with the kernel's default send
 * buffer (~208 KiB) this stalls far below 3 MiB. */
static void
test_local_sndbuf (void)
{
  const gsize len = 3 << 20;
  g_autoptr (GBytes) up = test_data_new (TEST_DATA_RANDOM, len, 3);
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *buf = g_malloc (1 << 20);
  Pair p = { 0 };
  int sv[2], queued = 0, fd;
  gsize got = 0;

  if (geteuid () != 0)
    {
      g_test_skip ("raising a send buffer past wmem_max needs root");
      return;
    }
  p.app_s.recv = g_byte_array_new ();
  pair_connect (&p, NULL, NULL, MIG_FAULT_NONE, 0);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  mig_channel_start (p.srv, sv[0], NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  fd = app_start (&p.app_c, up, TRUE);
  mig_channel_start (p.client, fd, NULL, NULL, NULL, &error);
  g_assert_no_error (error);

  /* Nobody reads sv[1] yet. */
  for (int i = 0; i < 250 && (gsize)queued < len; i++)
    {
      g_usleep (20 * 1000);
      g_assert_cmpint (ioctl (sv[1], FIONREAD, &queued), ==, 0);
    }
  g_test_message ("queued for the local reader: %d bytes", queued);
  g_assert_cmpint (queued, ==, (int)len);

  while (got < len)
    {
      gssize n = read (sv[1], buf + 0, 1 << 20);
      g_assert_cmpint (n, >, 0);
      g_assert_cmpmem (buf, n,
                       (const guint8 *)g_bytes_get_data (up, NULL) + got, n);
      got += n;
    }
  g_assert_cmpint (shutdown (sv[1], SHUT_WR), ==, 0);
  app_join (&p.app_c);
  g_assert_true (mig_channel_wait (p.client, &p.err_c));
  g_assert_true (mig_channel_wait (p.srv, &p.err_s));
  close (sv[1]);
  pair_clear (&p);
}

/* --- tests: rate limit and abort ------------------------------------------ */

static void
test_rate_limit (void)
{
  g_autoptr (GBytes) up = test_data_new (TEST_DATA_RANDOM, 4 * 1024 * 1024, 8);
  g_autoptr (GBytes) none = g_bytes_new (NULL, 0);
  MigChannelOptions opts;
  Pair p = { 0 };
  gint64 t0;
  double secs;

  mig_channel_options_init (&opts);
  opts.rate_limit = 8 * 1000 * 1000;
  pair_connect (&p, NULL, NULL, MIG_FAULT_NONE, 0);
  t0 = g_get_monotonic_time ();
  pair_run (&p, &opts, NULL, up, none);
  secs = (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("4 MiB at 8 MB/s took %.2f s", secs);
  g_assert_no_error (p.err_c);
  g_assert_no_error (p.err_s);
  assert_received (&p.app_s, up, TRUE);
  /* (4.19 MB - 0.4 MB burst) / 8 MB/s = 0.47 s; loose bound only. */
  g_assert_cmpfloat (secs, >, 0.3);
  pair_clear (&p);
}

static void
test_abort (void)
{
  g_autoptr (GBytes) some = test_data_new (TEST_DATA_TEXT, 100000, 9);
  g_autoptr (GError) error = NULL;
  Pair p = { 0 };
  int fd;

  pair_connect (&p, NULL, NULL, MIG_FAULT_NONE, 0);
  /* The apps never shut down: only close() can end this. */
  fd = app_start (&p.app_c, some, FALSE);
  mig_channel_start (p.client, fd, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  fd = app_start (&p.app_s, some, FALSE);
  mig_channel_start (p.srv, fd, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_usleep (50 * 1000);

  mig_channel_close (p.client);
  g_assert_false (mig_channel_wait (p.client, &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_ABORTED);
  g_clear_error (&error);
  g_assert_false (mig_channel_wait (p.srv, &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_CLOSED);
  app_join (&p.app_c);
  app_join (&p.app_s);
  pair_clear (&p);
}

int
main (int argc, char **argv)
{
  /* The round trips' modes and data, by the names in their paths. */
  static const struct
  {
    const char *name;
    int value;
  } modes[] = { { "off", MIG_COMPRESS_OFF },
                { "on", MIG_COMPRESS_ON },
                { "auto", MIG_COMPRESS_AUTO } },
    kinds[] = { { "random", TEST_DATA_RANDOM },
                { "text", TEST_DATA_TEXT },
                { "zero", TEST_DATA_ZERO } };
  g_autoptr (GPtrArray) cases = g_ptr_array_new_with_free_func (g_free);
  int ret;

  g_test_init (&argc, &argv, NULL);
  make_certs ();

  g_test_add_func ("/mig-channel/crc32c", test_crc32c);
  g_test_add_func ("/mig-channel/frame-header", test_frame_header);
  for (guint tls = 0; tls < 2; tls++)
    for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
      for (guint k = 0; k < G_N_ELEMENTS (kinds); k++)
        {
          RoundTrip *rt;
          if (!tls && kinds[k].value != TEST_DATA_TEXT)
            continue;
          rt = g_new0 (RoundTrip, 1);
          rt->tls = tls;
          rt->mode = modes[m].value;
          rt->data = kinds[k].value;
          g_ptr_array_add (cases, rt);
          g_ptr_array_add (cases,
                           g_strdup_printf ("/mig-channel/round-trip/%s/%s/%s",
                                            tls ? "tls" : "plain",
                                            modes[m].name, kinds[k].name));
          g_test_add_data_func (g_ptr_array_index (cases, cases->len - 1), rt,
                                test_round_trip);
        }
  for (guint i = 0; i < G_N_ELEMENTS (auto_cases); i++)
    g_test_add_data_func (auto_cases[i].path, &auto_cases[i], test_auto_case);
  g_test_add_func ("/mig-channel/auto/backs-off", test_auto_backs_off);
  g_test_add_func ("/mig-channel/auto/turns-on", test_auto_turns_on);
  g_test_add_func ("/mig-channel/auto/measured/blocked",
                   test_auto_measures_blocked);
  g_test_add_func ("/mig-channel/auto/measured/receiver-window",
                   test_auto_receiver_window);
  for (guint i = 0; i < G_N_ELEMENTS (fault_cases); i++)
    g_test_add_data_func (fault_cases[i].path, &fault_cases[i], test_fault);
  for (guint i = 0; i < G_N_ELEMENTS (raw_cases); i++)
    g_test_add_data_func (raw_cases[i].path, &raw_cases[i], test_raw_frame);
  g_test_add_func ("/mig-channel/wire/oversized-hello", test_oversized_hello);
  g_test_add_func ("/mig-channel/auth/invalid-token", test_auth_invalid_token);
  g_test_add_func ("/mig-channel/auth/reused-token", test_auth_reused_token);
  g_test_add_func ("/mig-channel/auth/expired-and-kind",
                   test_auth_expired_and_kind);
  g_test_add_func ("/mig-channel/auth/disk-kind", test_auth_disk_kind);
  g_test_add_func ("/mig-channel/dst/disk-token", test_dst_disk_token);
  for (guint i = 0; i < G_N_ELEMENTS (tls_cases); i++)
    g_test_add_data_func (tls_cases[i].path, &tls_cases[i], test_tls_refused);
  g_test_add_func ("/mig-channel/tls/creds-missing", test_creds_missing);
  g_test_add_func ("/mig-channel/local-sndbuf", test_local_sndbuf);
  g_test_add_func ("/mig-channel/handshake-timeout", test_handshake_timeout);
  g_test_add_func ("/mig-channel/rate-limit", test_rate_limit);
  g_test_add_func ("/mig-channel/abort", test_abort);

  ret = g_test_run ();
  mig_channel_creds_unref (creds_a);
  mig_channel_creds_unref (creds_b);
  mig_channel_creds_unref (creds_foreign);
  mig_channel_creds_unref (creds_lost);
  test_tmp_dir_remove (cert_root);
  g_free (cert_root);
  return ret;
}
