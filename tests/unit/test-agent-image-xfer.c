/* Image files between agents (agent-image-xfer.c), the receiver as a
 * hostile sender sees it: files arrive whole and equal, with holes for
 * zeros; a label with '/' or "..", a file past the cap, too many files,
 * a file the receiver will not place, an existing file, a stream that
 * stops early or carries bytes past its end: each refused, and nothing
 * (no file, no mark) is left. Over a real channel (MigDst listener, TLS
 * with scripts/pki certificates) the files come through and the token
 * admits only the source host's certificate. */
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-image-xfer.h"
#include "agent-private.h"
#include "stor.h"
#include "test-pki.h"

static char *pki;

typedef struct
{
  char *dir;     /* where the receiver puts files */
  char *src;     /* where the sender's files are */
  guint placed;  /* place calls */
  gboolean done; /* done called */
  gboolean done_ok;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->dir = g_dir_make_tmp ("test-xfer-dst-XXXXXX", &error);
  g_assert_no_error (error);
  f->src = g_dir_make_tmp ("test-xfer-src-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  test_rmtree (f->dir);
  test_rmtree (f->src);
  g_free (f->dir);
  g_free (f->src);
}

/* Files in F's receiving directory. */
static guint
count_files (Fixture *f)
{
  g_autoptr (GDir) d = g_dir_open (f->dir, 0, NULL);
  guint n = 0;

  while (d && g_dir_read_name (d))
    n++;
  return n;
}

/* The receiver's rule in these tests: "N.img" with N a number goes to
 * DIR/N.img; anything else is refused. */
static char *
place (const char *label, guint64 size, gpointer user_data, GError **error)
{
  Fixture *f = user_data;
  guint64 n;
  g_autofree char *num = NULL;
  g_autofree char *file = NULL;

  f->placed++;
  if (!g_str_has_suffix (label, ".img"))
    goto refuse;
  num = g_strndup (label, strlen (label) - 4);
  if (!g_ascii_string_to_unsigned (num, 10, 1, 9999, &n, NULL))
    goto refuse;
  file = g_strdup_printf ("%" G_GUINT64_FORMAT ".img", n);
  return g_build_filename (f->dir, file, NULL);

refuse:
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID, "no place for %s",
               label);
  return NULL;
}

static void
done (const char *job_id, const GPtrArray *paths, const GError *error,
      gpointer user_data)
{
  Fixture *f = user_data;

  f->done = TRUE;
  f->done_ok = paths != NULL && error == NULL;
}

static void
sink_init (AgentImageXferSink *sink, Fixture *f)
{
  memset (sink, 0, sizeof *sink);
  sink->place = place;
  sink->what = "VM test";
  sink->done = done;
  sink->user_data = f;
}

/* A file of SIZE bytes at F->src/NAME: data with a run of zeros in the
 * middle (a hole on the receiver). */
static char *
make_file (Fixture *f, const char *name, gsize size)
{
  g_autofree guint8 *buf = g_malloc (size);
  g_autoptr (GError) error = NULL;
  char *path = g_build_filename (f->src, name, NULL);

  for (gsize i = 0; i < size; i++)
    buf[i] = (guint8)(i * 7 + size);
  if (size > 512 * 1024)
    memset (buf + 128 * 1024, 0, 256 * 1024);
  g_file_set_contents (path, (char *)buf, size, &error);
  g_assert_no_error (error);
  return path;
}

static void
assert_same (const char *a, const char *b)
{
  g_autofree char *da = NULL, *db = NULL;
  gsize la, lb;

  g_assert_true (g_file_get_contents (a, &da, &la, NULL));
  g_assert_true (g_file_get_contents (b, &db, &lb, NULL));
  g_assert_cmpuint (la, ==, lb);
  g_assert_true (memcmp (da, db, la) == 0);
}

/* --- the sender on a thread, the receiver here -----------------------------
 */

typedef struct
{
  int fd;
  const AgentImageXferFile *files;
  guint n;
  gboolean ok;
  GError *error;
} Sender;

static gpointer
sender_thread (gpointer data)
{
  Sender *s = data;

  s->ok = agent_image_xfer_write (s->fd, s->files, s->n, NULL, NULL, NULL,
                                  &s->error);
  close (s->fd);
  return NULL;
}

/* Sends FILES through a socket pair; returns what the receiver wrote. */
static GPtrArray *
transfer (Fixture *f, const AgentImageXferFile *files, guint n,
          const AgentImageXferSink *sink, Sender *s, GError **error)
{
  int sv[2];
  GThread *t;
  GPtrArray *paths;

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  s->fd = sv[0];
  s->files = files;
  s->n = n;
  t = g_thread_new ("sender", sender_thread, s);
  paths = agent_image_xfer_read (sv[1], "job-1", sink, error);
  close (sv[1]);
  g_thread_join (t);
  return paths;
}

static void
test_roundtrip (Fixture *f, gconstpointer data)
{
  g_autofree char *a = make_file (f, "a", 3 * 1024 * 1024 + 17);
  g_autofree char *b = make_file (f, "b", 100);
  g_autofree char *c = make_file (f, "c", 0);
  AgentImageXferFile files[]
      = { { "1.img", a }, { "2.img", b }, { "30.img", c } };
  g_autofree char *got_a = g_build_filename (f->dir, "1.img", NULL);
  g_autofree char *mark = agent_disks_incoming_mark (got_a);
  g_autoptr (GPtrArray) paths = NULL;
  g_autoptr (GError) error = NULL;
  AgentImageXferSink sink;
  Sender s = { 0 };
  struct stat st;

  sink_init (&sink, f);
  paths = transfer (f, files, G_N_ELEMENTS (files), &sink, &s, &error);
  g_assert_no_error (error);
  g_assert_no_error (s.error);
  g_assert_true (s.ok);
  g_assert_true (f->done && f->done_ok);
  g_assert_cmpuint (paths->len, ==, 3);
  assert_same (a, got_a);
  assert_same (b, paths->pdata[1]);
  assert_same (c, paths->pdata[2]);
  /* The run of zeros became a hole. */
  g_assert_cmpint (stat (got_a, &st), ==, 0);
  g_assert_cmpint ((gint64)st.st_blocks * 512, <, (gint64)st.st_size);
  /* Marked until the caller decides. */
  g_assert_true (g_file_test (mark, G_FILE_TEST_EXISTS));
  agent_image_xfer_keep (paths);
  g_assert_false (g_file_test (mark, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (count_files (f), ==, 3);
  agent_image_xfer_discard (paths);
  g_assert_cmpuint (count_files (f), ==, 0);
}

/* Past the receiver's write-behind window (32 MiB) twice, ending inside
 * a third: every window written back early, the file still whole. */
static void
test_large (Fixture *f, gconstpointer data)
{
  g_autofree char *a = make_file (f, "a", 70 * 1024 * 1024 + 17);
  AgentImageXferFile files[] = { { "1.img", a } };
  g_autoptr (GPtrArray) paths = NULL;
  g_autoptr (GError) error = NULL;
  AgentImageXferSink sink;
  Sender s = { 0 };

  sink_init (&sink, f);
  paths = transfer (f, files, G_N_ELEMENTS (files), &sink, &s, &error);
  g_assert_no_error (error);
  g_assert_no_error (s.error);
  g_assert_true (s.ok && f->done && f->done_ok);
  g_assert_cmpuint (paths->len, ==, 1);
  assert_same (a, paths->pdata[0]);
  agent_image_xfer_discard (paths);
  g_assert_cmpuint (count_files (f), ==, 0);
}

static void
test_labels (void)
{
  const char *good[] = { "1.qcow2", "s1.mem", "A_b-c.9", NULL };
  const char *bad[]
      = { "", ".hidden", "../x", "a/b", "/abs", "a..b", "a b", "é", NULL };
  g_autofree char *longest = g_strnfill (AGENT_IMAGE_XFER_LABEL_MAX, 'a');
  g_autofree char *too_long = g_strnfill (AGENT_IMAGE_XFER_LABEL_MAX + 1, 'a');

  for (guint i = 0; good[i]; i++)
    g_assert_true (agent_image_xfer_label_valid (good[i]));
  for (guint i = 0; bad[i]; i++)
    g_assert_false (agent_image_xfer_label_valid (bad[i]));
  g_assert_true (agent_image_xfer_label_valid (longest));
  g_assert_false (agent_image_xfer_label_valid (too_long));
  g_assert_false (agent_image_xfer_label_valid (NULL));
}

/* --- a hostile sender: raw bytes --------------------------------------- */

static void
put_header (GByteArray *b, guint8 type, const char *label, guint64 size)
{
  guint32 magic = GUINT32_TO_LE (0x46584944u);
  guint16 ll = GUINT16_TO_LE (label ? strlen (label) : 0);
  guint64 sz = GUINT64_TO_LE (size);
  guint8 v[2] = { 1, type };

  g_byte_array_append (b, (guint8 *)&magic, 4);
  g_byte_array_append (b, v, 2);
  g_byte_array_append (b, (guint8 *)&ll, 2);
  g_byte_array_append (b, (guint8 *)&sz, 8);
  if (label)
    g_byte_array_append (b, (const guint8 *)label, strlen (label));
}

static void
put_file (GByteArray *b, const char *label, gsize size)
{
  put_header (b, 1, label, size);
  for (gsize i = 0; i < size; i++)
    g_byte_array_append (b, (const guint8 *)"x", 1);
}

/* Feeds BYTES (then EOF) to a receiver with SINK; asserts the refusal
 * mentions EXPECT and that nothing is left. */
static void
assert_refused (Fixture *f, GByteArray *bytes, const AgentImageXferSink *sink,
                const char *expect)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) paths = NULL;
  int sv[2];
  guint8 answer[3] = { 0 };

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  /* Small enough for the socket buffer: written before the reader runs. */
  g_assert_cmpint (write (sv[0], bytes->data, bytes->len), ==, bytes->len);
  shutdown (sv[0], SHUT_WR);
  f->done = FALSE;
  paths = agent_image_xfer_read (sv[1], "job-1", sink, &error);
  g_assert_null (paths);
  g_assert_nonnull (error);
  if (!strstr (error->message, expect))
    g_error ("'%s' does not say '%s'", error->message, expect);
  g_assert_true (f->done && !f->done_ok);
  /* The sender is told it was refused. */
  g_assert_cmpint (read (sv[0], answer, 3), ==, 3);
  g_assert_cmpint (answer[0], ==, 1);
  close (sv[0]);
  close (sv[1]);
  g_assert_cmpuint (count_files (f), ==, 0);
}

static void
test_hostile (Fixture *f, gconstpointer data)
{
  AgentImageXferSink sink;

  sink_init (&sink, f);
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    put_file (b, "1.img", 10);
    put_file (b, "../2.img", 10);
    put_header (b, 2, NULL, 2);
    assert_refused (f, b, &sink, "bare file name");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    put_file (b, "sub/2.img", 10);
    assert_refused (f, b, &sink, "bare file name");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    /* A label with a NUL in it: "1.img\0/x". */
    put_header (b, 1, "1.img//x", 1);
    b->data[16 + 5] = 0;
    assert_refused (f, b, &sink, "bare file name");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    put_file (b, "secret.txt", 10);
    assert_refused (f, b, &sink, "no place for secret.txt");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    /* A stream that stops in the middle of the second file. */
    put_file (b, "1.img", 100);
    put_header (b, 1, "2.img", 1000);
    g_byte_array_append (b, (const guint8 *)"abc", 3);
    assert_refused (f, b, &sink, "ended early");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    /* Every file whole, but no end record. */
    put_file (b, "1.img", 100);
    assert_refused (f, b, &sink, "ended early");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    put_file (b, "1.img", 100);
    put_header (b, 2, NULL, 5);
    assert_refused (f, b, &sink, "sender counts 5");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    put_file (b, "1.img", 100);
    put_header (b, 2, NULL, 1);
    g_byte_array_append (b, (const guint8 *)"z", 1);
    assert_refused (f, b, &sink, "after the end");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    put_file (b, "1.img", 10);
    b->data[0] ^= 1;
    assert_refused (f, b, &sink, "malformed");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    /* A size past the cap is refused before any byte is written: the
     * stream need not carry the bytes. */
    sink.max_bytes = 1000;
    put_file (b, "1.img", 600);
    put_header (b, 1, "2.img", 600);
    assert_refused (f, b, &sink, "cap of 1000 bytes");
    g_byte_array_set_size (b, 0);
    put_header (b, 1, "1.img", G_MAXUINT64);
    assert_refused (f, b, &sink, "cap of 1000 bytes");
    sink.max_bytes = 0;
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    /* No cap: the free space is. */
    put_header (b, 1, "1.img", G_MAXUINT64 / 2);
    assert_refused (f, b, &sink, "space");
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    sink.max_files = 2;
    put_file (b, "1.img", 1);
    put_file (b, "2.img", 1);
    put_file (b, "3.img", 1);
    put_header (b, 2, NULL, 3);
    assert_refused (f, b, &sink, "more than 2 files");
    sink.max_files = 0;
  }
  {
    g_autoptr (GByteArray) b = g_byte_array_new ();

    put_file (b, "1.img", 3);
    put_file (b, "01.img", 3); /* placed at the same path */
    put_header (b, 2, NULL, 2);
    assert_refused (f, b, &sink, "already exists");
  }
}

static gboolean
finish_refuses (const char *job_id, const GPtrArray *paths, gpointer user_data,
                GError **error)
{
  g_assert_cmpuint (paths->len, ==, 2);
  g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "the chain has no active image");
  return FALSE;
}

/* Every file came whole, but the receiver's last check refuses: nothing
 * stays and the sender is told why. */
static void
test_finish_refuses (Fixture *f, gconstpointer data)
{
  g_autofree char *a = make_file (f, "a", 1000);
  AgentImageXferFile files[] = { { "1.img", a }, { "2.img", a } };
  g_autoptr (GPtrArray) paths = NULL;
  g_autoptr (GError) error = NULL;
  AgentImageXferSink sink;
  Sender s = { 0 };

  sink_init (&sink, f);
  sink.finish = finish_refuses;
  paths = transfer (f, files, 2, &sink, &s, &error);
  g_assert_null (paths);
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
  g_assert_true (f->done && !f->done_ok);
  g_assert_false (s.ok);
  g_assert_nonnull (strstr (s.error->message, "no active image"));
  g_clear_error (&s.error);
  g_assert_cmpuint (count_files (f), ==, 0);
}

/* A file already there is refused, never overwritten, and stays. */
static void
test_no_overwrite (Fixture *f, gconstpointer data)
{
  g_autofree char *there = g_build_filename (f->dir, "7.img", NULL);
  g_autofree char *a = make_file (f, "a", 10);
  AgentImageXferFile files[] = { { "7.img", a } };
  g_autoptr (GPtrArray) paths = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *content = NULL;
  AgentImageXferSink sink;
  Sender s = { 0 };

  g_assert_true (g_file_set_contents (there, "mine", -1, NULL));
  sink_init (&sink, f);
  paths = transfer (f, files, 1, &sink, &s, &error);
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_assert_false (s.ok);
  if (!strstr (s.error->message, "refused"))
    g_error ("sender: %s", s.error->message);
  g_clear_error (&s.error);
  g_assert_true (g_file_get_contents (there, &content, NULL, NULL));
  g_assert_cmpstr (content, ==, "mine");
  g_assert_cmpuint (count_files (f), ==, 1);
}

/* An agent killed mid-transfer leaves a file and its mark: reclaim
 * removes both, and nothing without a mark. */
static void
test_reclaim (Fixture *f, gconstpointer data)
{
  g_autofree char *half = g_build_filename (f->dir, "1.img", NULL);
  g_autofree char *mark = agent_disks_incoming_mark (half);
  g_autofree char *kept = g_build_filename (f->dir, "2.img", NULL);

  g_assert_true (g_file_set_contents (mark, "job-1", -1, NULL));
  g_assert_true (g_file_set_contents (half, "half", -1, NULL));
  g_assert_true (g_file_set_contents (kept, "whole", -1, NULL));
  g_assert_true (agent_image_xfer_reclaim (half));
  g_assert_false (agent_image_xfer_reclaim (kept));
  g_assert_cmpuint (count_files (f), ==, 1);
  /* A mark alone (killed before the file was made). */
  g_assert_true (g_file_set_contents (mark, "job-1", -1, NULL));
  g_assert_true (agent_image_xfer_reclaim (half));
  g_assert_cmpuint (count_files (f), ==, 1);
}

/* --- over the channel --------------------------------------------------- */

typedef struct
{
  Fixture *f;
  AgentImageXferSink sink;
  GThread *thread;
  int fd;
  GPtrArray *paths;
} Receiver;

static gpointer
receiver_thread (gpointer data)
{
  Receiver *r = data;

  r->paths = agent_image_xfer_read (r->fd, "job-1", &r->sink, NULL);
  close (r->fd);
  return NULL;
}

static void
on_image (const char *job_id, int fd, gpointer user_data)
{
  Receiver *r = user_data;

  g_assert_cmpstr (job_id, ==, "job-1");
  g_assert_null (r->thread);
  r->fd = fd;
  r->thread = g_thread_new ("receiver", receiver_thread, r);
}

static void
test_channel (Fixture *f, gconstpointer data)
{
  g_autofree char *a_dir = g_build_filename (pki, "host-a", NULL);
  g_autofree char *b_dir = g_build_filename (pki, "host-b", NULL);
  g_autofree char *c_dir = g_build_filename (pki, "host-c", NULL);
  g_autoptr (MigChannelCreds) a_creds = mig_channel_creds_new (a_dir, NULL);
  g_autoptr (MigChannelCreds) b_creds = mig_channel_creds_new (b_dir, NULL);
  g_autoptr (MigChannelCreds) c_creds = mig_channel_creds_new (c_dir, NULL);
  g_autofree char *a = make_file (f, "a", 5 * 1024 * 1024);
  g_autofree char *b = make_file (f, "b", 4096);
  AgentImageXferFile files[] = { { "1.img", a }, { "2.img", b } };
  g_autoptr (GError) error = NULL;
  g_autoptr (MigDst) dst = NULL;
  g_autofree char *token = NULL, *address = NULL;
  MigDstConfig cfg = { 0 };
  Receiver r = { 0 };
  guint64 wire = 0;

  g_assert_true (a_creds && b_creds && c_creds);
  r.f = f;
  sink_init (&r.sink, f);
  cfg.creds = b_creds;
  cfg.address = "127.0.0.1";
  cfg.image = on_image;
  cfg.user_data = &r;
  dst = mig_dst_new (&cfg, &error);
  g_assert_no_error (error);
  address = g_strdup_printf ("127.0.0.1:%u", mig_dst_get_port (dst));
  token = mig_dst_expect_kinds (dst, "job-1", "host-a",
                                MIG_TOKEN_KIND (MIG_CHANNEL_KIND_IMAGE), 10000,
                                &error);
  g_assert_no_error (error);

  /* Another host's certificate may not use the token ... */
  g_assert_false (agent_image_xfer_send (c_creds, address, "host-b", token,
                                         MIG_COMPRESS_AUTO, files, 2, NULL,
                                         NULL, NULL, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  /* ... nor is the listener trusted when it is not the host named. */
  g_assert_false (agent_image_xfer_send (a_creds, address, "host-x", token,
                                         MIG_COMPRESS_AUTO, files, 2, NULL,
                                         NULL, NULL, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_null (r.thread);

  g_assert_true (agent_image_xfer_send (a_creds, address, "host-b", token,
                                        MIG_COMPRESS_ON, files, 2, NULL, NULL,
                                        NULL, &wire, &error));
  g_assert_no_error (error);
  g_thread_join (r.thread);
  g_assert_nonnull (r.paths);
  assert_same (a, r.paths->pdata[0]);
  assert_same (b, r.paths->pdata[1]);
  /* lz4 took the run of zeros. */
  g_assert_cmpuint (wire, >, 0);
  g_assert_cmpuint (wire, <, 5 * 1024 * 1024);
  agent_image_xfer_discard (r.paths);
  g_ptr_array_unref (r.paths);

  /* The token admits one image stream. */
  g_assert_false (agent_image_xfer_send (a_creds, address, "host-b", token,
                                         MIG_COMPRESS_AUTO, files, 2, NULL,
                                         NULL, NULL, NULL, &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH);
  mig_dst_forget (dst, "job-1", NULL, NULL);
}

/* The source dies mid-file: the channel breaks, the receiver sees its
 * stream end early and removes what it wrote. */
static void
test_channel_cut (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (MigDst) dst = NULL;
  g_autoptr (MigChannel) ch = NULL;
  g_autofree char *token = NULL;
  g_autoptr (GByteArray) b = g_byte_array_new ();
  MigDstConfig cfg = { 0 };
  Receiver r = { 0 };
  int sv[2];

  r.f = f;
  sink_init (&r.sink, f);
  cfg.address = "127.0.0.1";
  cfg.image = on_image;
  cfg.user_data = &r;
  dst = mig_dst_new (&cfg, &error);
  g_assert_no_error (error);
  token = mig_dst_expect_kinds (dst, "job-1", NULL,
                                MIG_TOKEN_KIND (MIG_CHANNEL_KIND_IMAGE), 10000,
                                &error);
  g_assert_no_error (error);
  /* An image token admits no memory stream. */
  g_assert_null (mig_channel_connect (NULL, "127.0.0.1", mig_dst_get_port (dst),
                                      MIG_CHANNEL_KIND_MEMORY, token, NULL,
                                      &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH);
  g_clear_error (&error);
  ch = mig_channel_connect (NULL, "127.0.0.1", mig_dst_get_port (dst),
                            MIG_CHANNEL_KIND_IMAGE, token, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
  g_assert_true (mig_channel_start (ch, sv[0], NULL, NULL, NULL, &error));
  put_header (b, 1, "1.img", 10 * 1024 * 1024);
  g_byte_array_set_size (b, b->len + 64 * 1024);
  memset (b->data + b->len - 64 * 1024, 'q', 64 * 1024);
  g_assert_cmpint (write (sv[1], b->data, b->len), ==, b->len);
  /* Until the first bytes are on the disk. */
  for (int i = 0; i < 200 && count_files (f) < 2; i++)
    g_usleep (10 * 1000);
  g_assert_cmpuint (count_files (f), ==, 2); /* file and mark */
  mig_channel_close (ch);
  close (sv[1]);
  for (int i = 0; i < 500 && !f->done; i++)
    g_usleep (10 * 1000);
  g_thread_join (r.thread);
  g_assert_true (f->done && !f->done_ok);
  g_assert_null (r.paths);
  g_assert_cmpuint (count_files (f), ==, 0);
  mig_dst_forget (dst, "job-1", NULL, NULL);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  static const char *const certs[][5] = {
    { "host", "host-a", "127.0.0.1", NULL },
    { "host", "host-b", "127.0.0.1", NULL },
    { "host", "host-c", "127.0.0.1", NULL },
  };
  int rc;

  g_test_init (&argc, &argv, NULL);
  pki = g_dir_make_tmp ("test-xfer-pki-XXXXXX", &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (certs); i++)
    test_pki (pki, certs[i]);
  g_test_add_func ("/image-xfer/labels", test_labels);
  g_test_add ("/image-xfer/roundtrip", Fixture, NULL, fixture_set_up,
              test_roundtrip, fixture_tear_down);
  g_test_add ("/image-xfer/large", Fixture, NULL, fixture_set_up, test_large,
              fixture_tear_down);
  g_test_add ("/image-xfer/hostile", Fixture, NULL, fixture_set_up,
              test_hostile, fixture_tear_down);
  g_test_add ("/image-xfer/finish-refuses", Fixture, NULL, fixture_set_up,
              test_finish_refuses, fixture_tear_down);
  g_test_add ("/image-xfer/no-overwrite", Fixture, NULL, fixture_set_up,
              test_no_overwrite, fixture_tear_down);
  g_test_add ("/image-xfer/reclaim", Fixture, NULL, fixture_set_up,
              test_reclaim, fixture_tear_down);
  g_test_add ("/image-xfer/channel", Fixture, NULL, fixture_set_up,
              test_channel, fixture_tear_down);
  g_test_add ("/image-xfer/channel-cut", Fixture, NULL, fixture_set_up,
              test_channel_cut, fixture_tear_down);
  rc = g_test_run ();
  test_rmtree (pki);
  g_free (pki);
  return rc;
}
