/* agent-backup-nbd: a real qcow2 image (qemu-img, qemu-io) with a real
 * persistent dirty bitmap, exported by qemu-nbd on a unix socket, read
 * as a full and as an incremental backup reads it. */
#include <glib.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-backup-private.h"
#include "test-support.h"

#define MIB (1024 * 1024)

typedef struct
{
  char *dir;
  char *disk;
  char *sock;
  GPid nbd;
} Fixture;

static void
run (const char *const *argv)
{
  g_autofree char *out = NULL, *err = NULL;
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err, &status, NULL));
  if (!g_spawn_check_wait_status (status, NULL) || strstr (out, "failed"))
    g_error ("%s: %s%s", argv[0], out, err);
}

static void
qemu_io (Fixture *f, const char *cmd)
{
  const char *argv[] = { "qemu-io", "-f", "qcow2", "-c", cmd, f->disk, NULL };

  run (argv);
}

/* 5 chunks: 0 has 1 MiB of data, 1 is a hole, 2 is full, 3 gets 64 KiB
 * after the bitmap was added, 4 is a hole. */
static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  const char *create[]
      = { "qemu-img", "create", "-q", "-f", "qcow2", NULL, "20M", NULL };
  const char *bitmap[] = { "qemu-img", "bitmap", "--add", NULL, "bk0", NULL };
  /* Two clients at once (-e): a test opens a second connection. */
  const char *nbd[]
      = { "qemu-nbd", "--read-only", "--persistent", "-e",  "2",
          "-f",       "qcow2",       "-B",           "bk0", "-x",
          "vda",      "-k",          NULL,           NULL,  NULL };

  f->dir = test_tmp_dir_new ("drover-bk-nbd-XXXXXX");
  f->disk = g_build_filename (f->dir, "vm1.qcow2", NULL);
  f->sock = g_build_filename (f->dir, "nbd.sock", NULL);
  create[5] = f->disk;
  run (create);
  qemu_io (f, "write -P 0x11 0 1M");
  qemu_io (f, "write -P 0x22 8M 4M");
  bitmap[3] = f->disk;
  run (bitmap);
  qemu_io (f, "write -P 0x33 12M 64k");
  if (data)
    {
      /* A change the bitmap does not see: it lies about chunk 2. */
      const char *off[] = { "qemu-img", "bitmap", NULL, f->disk, "bk0", NULL };

      off[2] = "--disable";
      run (off);
      qemu_io (f, "write -P 0x44 9M 4k");
      off[2] = "--enable";
      run (off);
    }
  nbd[12] = f->sock;
  nbd[13] = f->disk;
  g_assert_true (g_spawn_async (NULL, (char **)nbd, NULL,
                                G_SPAWN_SEARCH_PATH | G_SPAWN_DO_NOT_REAP_CHILD,
                                NULL, NULL, &f->nbd, NULL));
  /* qemu-nbd binds before it listens: wait until it listens, not only
   * for the file (a connect in between is refused). */
  for (int i = 0; i < 200 && !agent_backup_socket_listening (f->sock); i++)
    g_usleep (50 * 1000);
  g_assert_true (agent_backup_socket_listening (f->sock));
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  kill (f->nbd, SIGTERM);
  (void)waitpid (f->nbd, NULL, 0);
  g_spawn_close_pid (f->nbd);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
  g_free (f->disk);
  g_free (f->sock);
}

static void
assert_kinds (AgentBackupNbd *n, const AgentBackupChunkKind *want)
{
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (agent_backup_nbd_size (n), ==, 20 * MIB);
  g_assert_cmpuint (agent_backup_nbd_chunks (n), ==, 5);
  for (guint i = 0; i < 5; i++)
    {
      AgentBackupChunkKind kind;

      g_assert_true (agent_backup_nbd_classify (n, i, &kind, &error));
      g_assert_no_error (error);
      g_assert_cmpint (kind, ==, want[i]);
    }
}

static void
test_full (Fixture *f, gconstpointer data)
{
  static const AgentBackupChunkKind want[]
      = { AGENT_BACKUP_CHUNK_DATA, AGENT_BACKUP_CHUNK_HOLE,
          AGENT_BACKUP_CHUNK_DATA, AGENT_BACKUP_CHUNK_DATA,
          AGENT_BACKUP_CHUNK_HOLE };
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentBackupNbd) n
      = agent_backup_nbd_open (f->sock, "vda", NULL, &error);
  g_autofree guint8 *buf = g_malloc (AGENT_BACKUP_CHUNK);
  gsize len;
  guint64 read;

  g_assert_no_error (error);
  assert_kinds (n, want);

  /* Chunk 0: only its megabyte of data crosses the socket. */
  memset (buf, 0xff, AGENT_BACKUP_CHUNK);
  g_assert_true (agent_backup_nbd_read (n, 0, buf, &len, &read, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (len, ==, AGENT_BACKUP_CHUNK);
  g_assert_cmpuint (read, ==, MIB);
  g_assert_cmpint (buf[0], ==, 0x11);
  g_assert_cmpint (buf[MIB - 1], ==, 0x11);
  g_assert_true (stor_repo_is_zero (buf + MIB, AGENT_BACKUP_CHUNK - MIB));
  g_assert_false (stor_repo_is_zero (buf, AGENT_BACKUP_CHUNK));

  /* Chunk 3: its 64 KiB, the rest zeros. */
  g_assert_true (agent_backup_nbd_read (n, 3, buf, &len, &read, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (read, ==, 64 * 1024);
  g_assert_cmpint (buf[0], ==, 0x33);
  g_assert_true (
      stor_repo_is_zero (buf + 64 * 1024, AGENT_BACKUP_CHUNK - 64 * 1024));

  /* Chunk 2, read without asking first: all of it. */
  g_autoptr (AgentBackupNbd) again
      = agent_backup_nbd_open (f->sock, "vda", NULL, &error);
  g_assert_no_error (error);
  g_assert_true (agent_backup_nbd_read (again, 2, buf, &len, &read, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (read, ==, AGENT_BACKUP_CHUNK);
  g_assert_cmpint (buf[AGENT_BACKUP_CHUNK - 1], ==, 0x22);
}

static void
test_incremental (Fixture *f, gconstpointer data)
{
  static const AgentBackupChunkKind want[]
      = { AGENT_BACKUP_CHUNK_CLEAN, AGENT_BACKUP_CHUNK_HOLE,
          AGENT_BACKUP_CHUNK_CLEAN, AGENT_BACKUP_CHUNK_DATA,
          AGENT_BACKUP_CHUNK_HOLE };
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentBackupNbd) n
      = agent_backup_nbd_open (f->sock, "vda", "qemu:dirty-bitmap:bk0", &error);

  g_assert_no_error (error);
  assert_kinds (n, want);
}

/* A bitmap the server does not offer is an error, never a full read. */
static void
test_missing_bitmap (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentBackupNbd) n = agent_backup_nbd_open (
      f->sock, "vda", "qemu:dirty-bitmap:gone", &error);

  g_assert_null (n);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "qemu:dirty-bitmap:gone"));
}

static void
test_no_server (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentBackupNbd) n = agent_backup_nbd_open (
      "/nonexistent/drover-nbd.sock", NULL, NULL, &error);

  g_assert_null (n);
  g_assert_nonnull (strstr (error->message, "/nonexistent/drover-nbd.sock"));
}

/* A sink that records what it is given, by chunk (puts come from the
 * read loop's workers in any order); the parent is the disk as the
 * fixture made it before the bitmap. FAIL_AT: a put of that chunk fails
 * (G_MAXUINT64: none). */
typedef struct
{
  GMutex lock;
  char *what[5]; /* per chunk, guarded by LOCK */
  guint calls;   /* guarded by LOCK */
  guint64 added; /* guarded by LOCK */
  guint64 fail_at;
} Sink;

static void
sink_init (Sink *s)
{
  memset (s, 0, sizeof *s);
  g_mutex_init (&s->lock);
  s->fail_at = G_MAXUINT64;
}

/* What S was given, in chunk order; frees S's records. */
static char *
sink_log (Sink *s)
{
  GString *log = g_string_new ("");

  for (guint i = 0; i < G_N_ELEMENTS (s->what); i++)
    if (s->what[i])
      {
        g_string_append_printf (log, "%u:%s ", i, s->what[i]);
        g_free (s->what[i]);
      }
  g_mutex_clear (&s->lock);
  return g_string_free (log, FALSE);
}

static void
sink_record (Sink *s, guint64 index, char *what)
{
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&s->lock);

  g_assert_cmpuint (index, <, G_N_ELEMENTS (s->what));
  /* Each chunk exactly once. */
  g_assert_null (s->what[index]);
  s->what[index] = what;
  s->calls++;
}

static gboolean
sink_put (gpointer data, guint64 index, const guint8 *buf, gsize len,
          GError **error)
{
  Sink *s = data;

  if (index == s->fail_at)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "no space for chunk %" G_GUINT64_FORMAT, index);
      return FALSE;
    }
  sink_record (s, index, g_strdup_printf ("put(%02x)", buf[0]));
  g_mutex_lock (&s->lock);
  s->added += len;
  g_mutex_unlock (&s->lock);
  return TRUE;
}

static gboolean
sink_hole (gpointer data, guint64 index, gsize len, GError **error)
{
  sink_record (data, index, g_strdup ("hole"));
  return TRUE;
}

static gboolean
sink_reuse (gpointer data, guint64 index, GError **error)
{
  sink_record (data, index, g_strdup ("reuse"));
  return TRUE;
}

static gboolean
sink_parent_digest (gpointer data, guint64 index, StorRepoDigest *digest,
                    gboolean *hole, GError **error)
{
  g_autofree guint8 *buf = g_malloc0 (AGENT_BACKUP_CHUNK);

  *hole = index != 0 && index != 2;
  if (index == 0)
    memset (buf, 0x11, MIB);
  else if (index == 2)
    memset (buf, 0x22, AGENT_BACKUP_CHUNK);
  stor_repo_digest (buf, AGENT_BACKUP_CHUNK, digest);
  return TRUE;
}

static guint64
sink_added (gpointer data)
{
  Sink *s = data;
  g_autoptr (GMutexLocker) locker = g_mutex_locker_new (&s->lock);

  return s->added;
}

static const AgentBackupSinkOps sink_ops
    = { sink_put, sink_hole, sink_reuse, sink_parent_digest, sink_added };

static void
count_progress (const AgentBackupStats *stats, gpointer data)
{
  (*(guint *)data)++;
}

/* A full read of the fixture's disk into a sink whose put of chunk
 * FAIL_AT fails (G_MAXUINT64: none): what it did in *LOG and ST. */
static gboolean
read_full (Fixture *f, guint64 fail_at, AgentBackupProgressFunc progress,
           gpointer data, GCancellable *cancel, char **log,
           AgentBackupStats *st, GError **error)
{
  g_autoptr (AgentBackupNbd) n
      = agent_backup_nbd_open (f->sock, "vda", NULL, error);
  Sink sink;
  gboolean lied = FALSE, ok;

  g_assert_nonnull (n);
  sink_init (&sink);
  sink.fail_at = fail_at;
  ok = agent_backup_read_disk (n, FALSE, 0, &sink_ops, &sink, progress, data,
                               st, &lied, cancel, error);
  g_assert_false (lied);
  *log = sink_log (&sink);
  return ok;
}

static void
test_read_full (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *log = NULL;
  AgentBackupStats st;
  guint reports = 0;

  g_assert_true (read_full (f, G_MAXUINT64, count_progress, &reports, NULL,
                            &log, &st, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (log, ==, "0:put(11) 1:hole 2:put(22) 3:put(33) 4:hole ");
  g_assert_cmpuint (st.bytes_new, ==, 3 * AGENT_BACKUP_CHUNK);
  g_assert_cmpuint (st.bytes_read, ==, MIB + 4 * MIB + 64 * 1024);
  g_assert_cmpuint (st.to_read, ==, 12 * MIB);
  g_assert_cmpuint (st.data_chunks, ==, 3);
  g_assert_cmpuint (st.hole_chunks, ==, 2);
  g_assert_cmpuint (reports, ==, 6);
}

/* An incremental read of the fixture's disk checking SAMPLE clean chunks:
 * what it did in *LOG and ST. */
static gboolean
read_incremental (Fixture *f, guint64 sample, char **log, AgentBackupStats *st,
                  gboolean *lied, GError **error)
{
  g_autoptr (AgentBackupNbd) n
      = agent_backup_nbd_open (f->sock, "vda", "qemu:dirty-bitmap:bk0", error);
  Sink sink;
  gboolean ok;

  g_assert_nonnull (n);
  sink_init (&sink);
  ok = agent_backup_read_disk (n, TRUE, sample, &sink_ops, &sink, NULL, NULL,
                               st, lied, NULL, error);
  *log = sink_log (&sink);
  return ok;
}

static void
test_read_incremental (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *log = NULL;
  AgentBackupStats st;
  gboolean lied;

  /* Every clean chunk checked: the bitmap told the truth. */
  g_assert_true (read_incremental (f, G_MAXUINT64, &log, &st, &lied, &error));
  g_assert_no_error (error);
  g_assert_false (lied);
  g_assert_cmpstr (log, ==, "0:reuse 1:hole 2:reuse 3:put(33) 4:hole ");
  g_assert_cmpuint (st.sampled, ==, 2);
  g_assert_cmpuint (st.clean_chunks, ==, 2);
}

static void
test_read_bitmap_lied (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *log = NULL;
  AgentBackupStats st;
  gboolean lied;

  /* The default sample is 2 chunks: both clean ones here. */
  g_assert_false (read_incremental (f, 0, &log, &st, &lied, &error));
  g_assert_true (lied);
  g_assert_nonnull (strstr (error->message, "chunk 2 "));
  g_assert_nonnull (strstr (error->message, "next backup is full"));
}

/* A put that fails (a full repository) fails the read with its own
 * error; chunks after it may or may not have been put meanwhile, but
 * never twice, and the read returns only when no worker runs. */
static void
test_read_put_fails (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *log = NULL;
  AgentBackupStats st;

  g_assert_false (read_full (f, 2, NULL, NULL, NULL, &log, &st, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  g_assert_cmpstr (error->message, ==, "no space for chunk 2");
  g_assert_true (g_str_has_prefix (log, "0:put(11) 1:hole "));
  g_assert_null (strstr (log, "2:"));
}

static void
cancel_after_first_chunk (const AgentBackupStats *stats, gpointer data)
{
  if (stats->bytes_read > 0)
    g_cancellable_cancel (data);
}

/* Cancelled after chunk 0: nothing after it reaches the sink. */
static void
test_read_cancel (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_autofree char *log = NULL;
  AgentBackupStats st;

  g_assert_false (read_full (f, G_MAXUINT64, cancel_after_first_chunk, cancel,
                             cancel, &log, &st, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  /* Chunk 0 was queued before the cancel: its put may have run. */
  g_assert_true (g_str_equal (log, "") || g_str_equal (log, "0:put(11) "));
}

/* Disk vda of the fixture into REPO (incremental from PARENT through the
 * bitmap when given): the new backup's id. */
static char *
back_up (Fixture *f, StorRepo *repo, const char *parent)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentBackupNbd) n = agent_backup_nbd_open (
      f->sock, "vda", parent ? "qemu:dirty-bitmap:bk0" : NULL, &error);
  g_autoptr (StorRepoWriter) w = stor_repo_writer_begin (
      repo, "vm1", "6a1f6f43-3f3e-4b4e-9a0e-0c5d8f2b7a11", "<domain/>", parent,
      &error);
  AgentBackupSink sink = { w };
  AgentBackupStats st;
  gboolean lied;

  g_assert_no_error (error);
  g_assert_true (stor_repo_writer_add_disk (w, "vda", agent_backup_nbd_size (n),
                                            &sink.disk, &error));
  g_assert_true (agent_backup_read_disk (n, parent != NULL, G_MAXUINT64,
                                         &agent_backup_sink_ops, &sink, NULL,
                                         NULL, &st, &lied, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (stor_repo_writer_commit (w, "drover-bk-t",
                                          STOR_REPO_CONSISTENCY_CRASH, &error));
  g_assert_no_error (error);
  return g_strdup (stor_repo_writer_id (w));
}

/* Backups through the repository's writer, restored through qemu-nbd:
 * the same data, holes kept, a corrupt chunk refused by name. */
static void
test_repo_round_trip (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (f->dir, "repo", NULL);
  g_autofree char *out = g_build_filename (f->dir, "restored.qcow2", NULL);
  g_autofree char *bad = g_build_filename (f->dir, "bad.qcow2", NULL);
  g_autofree char *sock = g_build_filename (f->dir, "restore.sock", NULL);
  g_autoptr (StorRepo) repo = agent_backup_repo_open (path, &error);
  g_autofree char *full = NULL, *inc = NULL, *chunk = NULL;
  g_autoptr (StorRepoManifest) m = NULL;
  const char *compare[]
      = { "qemu-img", "compare", "-U", "-q", f->disk, out, NULL };
  AgentBackupStats st;
  GStatBuf sb;

  g_assert_no_error (error);
  full = back_up (f, repo, NULL);
  inc = back_up (f, repo, full);
  g_assert_true (agent_backup_restore_image (repo, inc, out, sock, NULL, NULL,
                                             NULL, &st, &error));
  g_assert_no_error (error);
  run (compare);
  /* 5 MiB and 64 KiB of data, the rest holes. */
  g_assert_cmpuint (st.bytes_read, ==, 5 * MIB + 64 * 1024);
  g_assert_cmpint (g_stat (out, &sb), ==, 0);
  g_assert_cmpuint (sb.st_blocks * 512, <, 7 * MIB);
  g_assert_false (g_file_test (sock, G_FILE_TEST_EXISTS));

  /* Chunk 2's file gets a byte changed: the restore fails naming it and
   * leaves no image. */
  m = stor_repo_manifest_load (repo, inc, &error);
  g_assert_no_error (error);
  chunk = stor_repo_chunk_path (
      repo, &g_array_index (stor_repo_manifest_disk (m, "vda")->chunks,
                            StorRepoChunkRef, 2)
                 .digest);
  {
    g_autofree char *bytes = NULL;
    gsize len;

    g_assert_true (g_file_get_contents (chunk, &bytes, &len, NULL));
    bytes[len - 1] ^= 0x01;
    g_assert_true (g_file_set_contents (chunk, bytes, len, NULL));
  }
  g_assert_false (agent_backup_restore_image (repo, inc, bad, sock, NULL, NULL,
                                              NULL, &st, &error));
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, strrchr (chunk, '/') + 1));
  g_assert_false (g_file_test (bad, G_FILE_TEST_EXISTS));
}

/* A socket bound but not listening is not served yet (qemu-nbd's window
 * between bind and listen, where a client is refused); listening it is. */
static void
test_socket_listening (void)
{
  g_autofree char *dir = test_tmp_dir_new ("drover-bk-sock-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "s.sock", NULL);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_false (agent_backup_socket_listening (path));
  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  g_assert_cmpint (bind (fd, (struct sockaddr *)&addr, sizeof addr), ==, 0);
  g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_false (agent_backup_socket_listening (path));
  g_assert_cmpint (listen (fd, 1), ==, 0);
  g_assert_true (agent_backup_socket_listening (path));
  close (fd);
  (void)g_unlink (path);
  test_tmp_dir_remove (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/agent-backup-nbd/full", Fixture, NULL, fixture_set_up,
              test_full, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/incremental", Fixture, NULL, fixture_set_up,
              test_incremental, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/missing-bitmap", Fixture, NULL, fixture_set_up,
              test_missing_bitmap, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/read-full", Fixture, NULL, fixture_set_up,
              test_read_full, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/read-incremental", Fixture, NULL,
              fixture_set_up, test_read_incremental, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/read-bitmap-lied", Fixture, "lie",
              fixture_set_up, test_read_bitmap_lied, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/read-put-fails", Fixture, NULL, fixture_set_up,
              test_read_put_fails, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/read-cancel", Fixture, NULL, fixture_set_up,
              test_read_cancel, fixture_tear_down);
  g_test_add ("/agent-backup-nbd/repo-round-trip", Fixture, NULL,
              fixture_set_up, test_repo_round_trip, fixture_tear_down);
  g_test_add_func ("/agent-backup-nbd/no-server", test_no_server);
  g_test_add_func ("/agent-backup-nbd/socket-listening", test_socket_listening);
  return g_test_run ();
}
