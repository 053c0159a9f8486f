/* stor-repo: the backup repository in a temporary directory: chunks,
 * writers and manifests, restore reads, verify and status, a full disk
 * (injected write failure) and hostile chunk files. */
#include "test-stor-repo.h"

static void
test_open (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_strdup (stor_repo_path (f->repo));
  g_autofree char *format
      = g_build_filename (path, STOR_REPO_FORMAT_FILE, NULL);
  g_autofree char *plain = g_build_filename (f->dir, "plain", NULL);
  StorRepo *other;

  /* Not empty: refused. */
  g_assert_false (stor_repo_init (path, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);
  /* Not a repository, or another version: refused, saying so. */
  g_assert_cmpint (g_mkdir (plain, 0755), ==, 0);
  g_assert_null (stor_repo_open (plain, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "not a Drover backup repository"));
  g_clear_error (&error);
  g_assert_true (
      g_file_set_contents (format, "drover-backup-repository 2\n", -1, NULL));
  g_assert_null (stor_repo_open (path, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "repository 2"));
  g_clear_error (&error);
  g_assert_true (g_file_set_contents (format, STOR_REPO_FORMAT_LINE, -1, NULL));
  other = stor_repo_open (path, &error);
  g_assert_no_error (error);
  stor_repo_free (other);
}

/* The steps the hook saw (stor_repo_set_step_hook). */
static GString *steps_seen;

static void
record_step (const char *step)
{
  g_string_append_printf (steps_seen, "%s;", step);
}

/* What an init killed before its format file leaves: the subdirectories,
 * the first N chunk directories, the format file's temp file. */
static void
half_init (const char *path, guint n)
{
  const char *subs[] = { "chunks", "backups", "tmp", "writers", "state" };
  g_autofree char *tmp = g_build_filename (path, "tmp", "h~1~00.format", NULL);

  g_assert_cmpint (g_mkdir (path, 0755), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (subs); i++)
    {
      g_autofree char *sub = g_build_filename (path, subs[i], NULL);

      g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
    }
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *name = g_strdup_printf ("%02x", i);
      g_autofree char *sub = g_build_filename (path, "chunks", name, NULL);

      g_assert_cmpint (g_mkdir (sub, 0755), ==, 0);
    }
  g_assert_true (g_file_set_contents (tmp, "drover", -1, NULL));
}

/* An init cut short (a killed agent) is finished by the next one; a
 * directory holding anything more is still refused, and left as it was. */
static void
test_init_interrupted (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *half = g_build_filename (f->dir, "half", NULL);
  g_autofree char *other = g_build_filename (f->dir, "other", NULL);
  g_autofree char *stray
      = g_build_filename (other, "chunks", "01", "stray", NULL);
  g_autofree char *manifest
      = g_build_filename (other, "backups", "x.json", NULL);
  g_autofree char *other_format
      = g_build_filename (other, STOR_REPO_FORMAT_FILE, NULL);
  g_autofree char *last = g_build_filename (half, "chunks", "ff", NULL);
  StorRepo *repo;

  steps_seen = g_string_new (NULL);
  stor_repo_set_step_hook (record_step);
  half_init (half, 17);
  g_assert_null (stor_repo_open (half, &error));
  g_clear_error (&error);
  g_assert_true (stor_repo_init (half, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (steps_seen->str, ==, "init-dirs;");
  g_assert_true (g_file_test (last, G_FILE_TEST_IS_DIR));
  repo = stor_repo_open (half, &error);
  g_assert_no_error (error);
  stor_repo_free (repo);
  /* Made now: a second init refuses it. */
  g_assert_false (stor_repo_init (half, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);

  /* A file in a chunk directory, or a manifest: not an init's leftovers. */
  half_init (other, 2);
  g_assert_true (g_file_set_contents (stray, "x", -1, NULL));
  g_assert_false (stor_repo_init (other, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_cmpint (g_unlink (stray), ==, 0);
  g_assert_true (g_file_set_contents (manifest, "{}", -1, NULL));
  g_assert_false (stor_repo_init (other, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_false (g_file_test (other_format, G_FILE_TEST_EXISTS));
  stor_repo_set_step_hook (NULL);
  g_string_free (steps_seen, TRUE);
}

/* Sets backup ID's manifest aside as a prune killed after its rename
 * leaves it (tmp/HOST~PID~X.ID.deleting, PID a process that is gone);
 * returns its path there. */
static char *
kill_prune (Fixture *f, const char *id)
{
  g_autofree char *json = g_strconcat (id, ".json", NULL);
  g_autofree char *from = stor_repo_sub (f->repo, "backups", json, NULL);
  g_autofree char *name = NULL;
  char *to;
  pid_t pid = fork ();

  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    _exit (0);
  g_assert_cmpint (waitpid (pid, NULL, 0), ==, pid);
  name = g_strdup_printf ("%s~%d~0123abcd.%s.deleting", f->repo->host, (int)pid,
                          id);
  to = stor_repo_sub (f->repo, "tmp", name, NULL);
  g_assert_cmpint (g_rename (from, to), ==, 0);
  return to;
}

/* A prune killed mid-delete: at recovery the manifest it set aside goes
 * back when a running backup uses it as its parent, else it goes. */
static void
test_recover_killed_prune (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *buf = text_data (CHUNK, 7);
  g_autofree char *b1 = NULL, *b2 = NULL, *aside1 = NULL, *aside2 = NULL;
  StorRepoWriter *w = begin (f, NULL, CHUNK);
  StorRepoWriter *running;
  guint removed = 0;

  put (w, 0, buf, CHUNK);
  b1 = commit (w);
  stor_repo_writer_free (w);
  g_usleep (1100 * 1000); /* ids carry the second */
  w = begin (f, b1, CHUNK);
  b2 = commit (w);
  stor_repo_writer_free (w);
  /* A backup running on top of b2 (this process: alive). */
  running = begin (f, b2, CHUNK);
  aside1 = kill_prune (f, b1);
  aside2 = kill_prune (f, b2);
  assert_counts (f, 0, 1, 1, 2);
  g_assert_true (stor_repo_recover (f->repo, &removed, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (removed, ==, 1);
  g_assert_false (g_file_test (aside1, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (aside2, G_FILE_TEST_EXISTS));
  assert_counts (f, 1, 1, 1, 0);
  assert_chunk (f, b2, 0, buf, CHUNK);
  stor_repo_writer_abort (running);
  stor_repo_writer_free (running);
}

static void
test_chunk_roundtrip (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *rnd = random_data (CHUNK, 1);
  g_autofree guint8 *txt = text_data (CHUNK, 2);
  g_autofree guint8 *tail = random_data (1000, 3);
  g_autoptr (GBytes) back = NULL;
  StorRepoDigest d1, d2, d3, again;
  gboolean is_new = FALSE;
  guint64 stored = 0;

  /* Random data is stored raw (lz4 would not make it smaller). */
  g_assert_true (
      stor_repo_chunk_put (f->repo, rnd, CHUNK, &d1, &is_new, &stored, &error));
  g_assert_no_error (error);
  g_assert_true (is_new);
  g_assert_cmpuint (stored, ==, CHUNK + 16);
  /* The same data again: one file, nothing stored. */
  g_assert_true (stor_repo_chunk_put (f->repo, rnd, CHUNK, &again, &is_new,
                                      &stored, &error));
  g_assert_false (is_new);
  g_assert_cmpuint (stored, ==, 0);
  g_assert_cmpmem (d1.bytes, 32, again.bytes, 32);
  g_assert_cmpuint (count_sub (f, "chunks"), ==, 1);
  /* Compressible data is stored compressed. */
  g_assert_true (
      stor_repo_chunk_put (f->repo, txt, CHUNK, &d2, &is_new, &stored, &error));
  g_assert_true (is_new);
  g_assert_cmpuint (stored, <, CHUNK / 10);
  /* A short last chunk. */
  g_assert_true (
      stor_repo_chunk_put (f->repo, tail, 1000, &d3, NULL, NULL, &error));
  g_assert_cmpuint (count_sub (f, "chunks"), ==, 3);
  g_assert_cmpuint (count_sub (f, "tmp"), ==, 0);

  back = stor_repo_chunk_get (f->repo, &d1, CHUNK, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), rnd,
                   CHUNK);
  g_clear_pointer (&back, g_bytes_unref);
  back = stor_repo_chunk_get (f->repo, &d2, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), txt,
                   CHUNK);
  g_clear_pointer (&back, g_bytes_unref);
  back = stor_repo_chunk_get (f->repo, &d3, 1000, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (g_bytes_get_data (back, NULL), g_bytes_get_size (back), tail,
                   1000);
  g_clear_pointer (&back, g_bytes_unref);
  /* The wrong expected length is refused. */
  g_assert_null (stor_repo_chunk_get (f->repo, &d3, 999, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
}

static void
assert_corrupt (Fixture *f, const StorRepoDigest *digest, const char *why)
{
  g_autoptr (GError) error = NULL;
  char hex[STOR_REPO_DIGEST_HEX];

  g_assert_null (stor_repo_chunk_get (f->repo, digest, 0, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
  g_assert_nonnull (
      strstr (error->message, stor_repo_digest_hex (digest, hex)));
  g_assert_nonnull (strstr (error->message, why));
}

static void
test_chunk_hostile (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *txt = text_data (CHUNK, 5);
  g_autofree guint8 *rnd = random_data (4096, 6);
  g_autofree char *path = NULL;
  StorRepoDigest dt, dr, missing;
  char hex[STOR_REPO_DIGEST_HEX];
  const guint8 huge[4] = { 0xff, 0xff, 0xff, 0xff };
  guint8 byte;

  g_assert_true (
      stor_repo_chunk_put (f->repo, txt, CHUNK, &dt, NULL, NULL, &error));
  g_assert_true (
      stor_repo_chunk_put (f->repo, rnd, 4096, &dr, NULL, NULL, &error));
  g_assert_no_error (error);

  /* One flipped byte of raw data: the hash says so. */
  byte = rnd[100] ^ 0x01;
  patch_chunk (f, &dr, 16 + 100, &byte, 1);
  assert_corrupt (f, &dr, "SHA-256");
  /* Lengths out of range are refused before anything is allocated. */
  patch_chunk (f, &dr, 8, huge, 4);
  assert_corrupt (f, &dr, "raw length");
  patch_chunk (f, &dt, 12, huge, 4);
  assert_corrupt (f, &dt, "stored length");
  patch_chunk (f, &dt, 0, "XXXX", 4);
  assert_corrupt (f, &dt, "magic");
  /* A truncated header. */
  path = stor_repo_chunk_path (f->repo, &dt);
  g_assert_true (g_file_set_contents (path, "DRCK\1", 5, NULL));
  assert_corrupt (f, &dt, "header");
  /* A missing chunk is named. */
  memset (&missing, 0x5a, sizeof missing);
  g_assert_null (stor_repo_chunk_get (f->repo, &missing, 0, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NOT_FOUND);
  g_assert_nonnull (
      strstr (error->message, stor_repo_digest_hex (&missing, hex)));
}

static void
test_backup_full_incremental (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  guint64 size = 3 * (guint64)CHUNK + 512; /* 4 chunks, the last short */
  g_autofree guint8 *a = random_data (CHUNK, 10);
  g_autofree guint8 *b = text_data (CHUNK, 11);
  g_autofree guint8 *c = random_data (CHUNK, 12);
  g_autofree guint8 *zero = g_malloc0 (CHUNK);
  g_autofree guint8 *tail = random_data (512, 13);
  g_autofree char *full = NULL;
  g_autofree char *incr = NULL;
  g_autoptr (StorRepoManifest) m = NULL;
  g_autoptr (GPtrArray) list = NULL;
  StorRepoWriter *w;
  guint64 rd = 0, nw = 0, st = 0;

  /* Full: chunk 0 data, 1 zero (a hole, not stored), 2 never read (a
   * hole), 3 the short tail. */
  w = begin (f, NULL, size);
  put (w, 0, a, CHUNK);
  put (w, 1, zero, CHUNK);
  put (w, 3, tail, 512);
  /* Wrong length and out-of-range index are refused. */
  g_assert_false (stor_repo_writer_put (w, 0, 3, a, CHUNK, &error));
  g_clear_error (&error);
  g_assert_false (stor_repo_writer_put (w, 0, 4, a, CHUNK, &error));
  g_clear_error (&error);
  /* Nothing visible before commit. */
  assert_counts (f, 0, 1, -1, -1);
  stor_repo_writer_totals (w, &rd, &nw, &st);
  g_assert_cmpuint (rd, ==, 2 * (guint64)CHUNK + 512);
  g_assert_cmpuint (nw, ==, CHUNK + 512);
  full = commit (w);
  stor_repo_writer_free (w);
  assert_counts (f, 1, 0, 2, 0);

  /* Incremental: chunk 1 and 2 changed; 0 and 3 come from the parent. */
  w = begin (f, full, size);
  g_assert_nonnull (stor_repo_writer_parent (w));
  put (w, 1, b, CHUNK);
  put (w, 2, c, CHUNK);
  incr = commit (w);
  stor_repo_writer_free (w);

  m = stor_repo_manifest_load (f->repo, incr, &error);
  g_assert_no_error (error);
  g_assert_cmpint (m->kind, ==, STOR_REPO_KIND_INCREMENTAL);
  g_assert_cmpstr (m->parent, ==, full);
  g_assert_cmpstr (m->checkpoint, ==, "ck-1");
  g_assert_cmpstr (m->domain_xml, ==, XML);
  g_assert_cmpuint (m->bytes_read, ==, 2 * (guint64)CHUNK);

  /* Each restores on its own. */
  assert_chunk (f, full, 0, a, CHUNK);
  assert_chunk (f, full, 1, NULL, 0);
  assert_chunk (f, full, 2, NULL, 0);
  assert_chunk (f, full, 3, tail, 512);
  assert_chunk (f, incr, 0, a, CHUNK);
  assert_chunk (f, incr, 1, b, CHUNK);
  assert_chunk (f, incr, 2, c, CHUNK);
  assert_chunk (f, incr, 3, tail, 512);

  list = stor_repo_list (f->repo, "web", NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 2);
  g_clear_pointer (&list, g_ptr_array_unref);
  list = stor_repo_list (f->repo, "db", NULL, &error);
  g_assert_cmpuint (list->len, ==, 0);

  /* An incremental on a disk of another size cannot be made. */
  w = stor_repo_writer_begin (f->repo, "web", UUID, XML, incr, &error);
  g_assert_no_error (error);
  g_assert_false (stor_repo_writer_add_disk (w, "vda", size * 2, NULL, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);
  stor_repo_writer_free (w);
  g_assert_cmpuint (count_sub (f, "writers"), ==, 0);
  /* Nor one on a missing parent, or another VM's. */
  g_assert_null (stor_repo_writer_begin (
      f->repo, "web", UUID, XML, "web-20260101T000000Z-000000", &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (
      stor_repo_writer_begin (f->repo, "db", UUID, XML, incr, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_cmpuint (count_sub (f, "writers"), ==, 0);
}

static void
test_abort (Fixture *f, gconstpointer data)
{
  g_autofree guint8 *a = random_data (CHUNK, 20);
  StorRepoWriter *w = begin (f, NULL, CHUNK);

  put (w, 0, a, CHUNK);
  stor_repo_writer_abort (w);
  stor_repo_writer_free (w);
  /* No manifest, registration or temp file; the chunk stays for gc. */
  assert_counts (f, 0, 0, 1, 0);
  /* Freed without commit: aborted too. */
  w = begin (f, NULL, CHUNK);
  stor_repo_writer_free (w);
  assert_counts (f, 0, 0, -1, -1);
}

static void
test_no_space (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *a = random_data (CHUNK, 30);
  g_autofree guint8 *b = random_data (CHUNK, 31);
  StorRepoDigest d;
  StorRepoWriter *w;

  /* The disk fills up at a chunk: clear error, no temp file, no chunk. */
  stor_repo_fail_writes (ENOSPC);
  g_assert_false (
      stor_repo_chunk_put (f->repo, a, CHUNK, &d, NULL, NULL, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NO_SPACE);
  g_clear_error (&error);
  stor_repo_fail_writes (0);
  assert_counts (f, 0, 0, 0, 0);

  /* ... or at the manifest: no manifest, no registration left. */
  w = begin (f, NULL, 2 * (guint64)CHUNK);
  put (w, 0, a, CHUNK);
  stor_repo_fail_writes (ENOSPC);
  g_assert_false (stor_repo_writer_put (w, 0, 1, b, CHUNK, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NO_SPACE);
  g_clear_error (&error);
  g_assert_false (
      stor_repo_writer_commit (w, NULL, STOR_REPO_CONSISTENCY_CRASH, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NO_SPACE);
  stor_repo_fail_writes (0);
  stor_repo_writer_free (w);
  assert_counts (f, 0, 0, 1, 0);
}

static void
count_progress (guint64 done, guint64 total, gpointer user_data)
{
  guint *calls = user_data;

  g_assert_cmpuint (done, <=, total);
  g_assert_cmpuint (done, ==, ++*calls);
}

static void
test_verify_status (Fixture *f, gconstpointer data)
{
  guint calls = 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (StorRepoVerifyResult) res = NULL;
  g_autofree guint8 *shared = random_data (CHUNK, 60);
  g_autofree guint8 *own = text_data (CHUNK, 61);
  g_autofree char *b1 = NULL;
  g_autofree char *b2 = NULL;
  g_autofree char *path = NULL;
  StorRepoStatus st;
  StorRepoDigest ds, dn;
  StorRepoBadChunk *bad;
  char hex[STOR_REPO_DIGEST_HEX];
  StorRepoWriter *w;
  guint8 byte;

  w = begin (f, NULL, 2 * (guint64)CHUNK);
  put (w, 0, shared, CHUNK);
  b1 = commit (w);
  stor_repo_writer_free (w);
  w = begin (f, NULL, 2 * (guint64)CHUNK);
  put (w, 0, shared, CHUNK);
  put (w, 1, own, CHUNK);
  b2 = commit (w);
  stor_repo_writer_free (w);

  g_assert_true (stor_repo_status (f->repo, &st, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (st.backups, ==, 2);
  g_assert_cmpuint (st.chunks, ==, 2);
  g_assert_cmpuint (st.logical_bytes, ==, 3 * (guint64)CHUNK);
  g_assert_cmpuint (st.raw_bytes, ==, 2 * (guint64)CHUNK);
  g_assert_cmpfloat_with_epsilon (st.dedup_ratio, 1.5, 1e-9);
  g_assert_cmpfloat (st.compression_ratio, >, 1.5);
  g_assert_cmpint (st.last_verify, ==, 0);

  res = stor_repo_verify (f->repo, NULL, count_progress, &calls, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (calls, ==, 2);
  g_assert_cmpuint (res->backups, ==, 2);
  g_assert_cmpuint (res->chunks, ==, 2); /* the shared one once */
  g_assert_cmpuint (res->bad->len, ==, 0);
  g_clear_pointer (&res, stor_repo_verify_result_free);

  /* Corrupt the shared chunk, remove the other. */
  stor_repo_digest (shared, CHUNK, &ds);
  stor_repo_digest (own, CHUNK, &dn);
  byte = shared[CHUNK - 1] ^ 0x80;
  patch_chunk (f, &ds, 16 + CHUNK - 1, &byte, 1);
  path = stor_repo_chunk_path (f->repo, &dn);
  g_assert_cmpint (g_unlink (path), ==, 0);
  res = stor_repo_verify (f->repo, NULL, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (res->bad->len, ==, 2);
  for (guint i = 0; i < res->bad->len; i++)
    {
      bad = g_ptr_array_index (res->bad, i);
      if (strcmp (bad->digest, stor_repo_digest_hex (&ds, hex)) == 0)
        {
          g_assert_false (bad->missing);
          g_assert_cmpuint (bad->backups->len, ==, 2);
        }
      else
        {
          g_assert_cmpstr (bad->digest, ==, stor_repo_digest_hex (&dn, hex));
          g_assert_true (bad->missing);
          g_assert_cmpuint (bad->backups->len, ==, 1);
          g_assert_cmpstr (g_ptr_array_index (bad->backups, 0), ==, b2);
        }
    }
  g_clear_pointer (&res, stor_repo_verify_result_free);
  /* A cancelled verify is an error, not a clean result. */
  {
    g_autoptr (GCancellable) cancel = g_cancellable_new ();

    g_cancellable_cancel (cancel);
    g_assert_null (
        stor_repo_verify (f->repo, NULL, NULL, NULL, cancel, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
    g_clear_error (&error);
  }
  /* Verify of one backup checks only its chunks. */
  {
    const char *ids[] = { b1, NULL };

    res = stor_repo_verify (f->repo, ids, NULL, NULL, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (res->chunks, ==, 1);
    g_assert_cmpuint (res->bad->len, ==, 1);
  }
  g_assert_true (stor_repo_status (f->repo, &st, &error));
  g_assert_cmpint (st.last_verify, >, 0);
  /* A restore that needs the corrupt chunk fails naming it. */
  {
    g_autoptr (StorRepoManifest) m
        = stor_repo_manifest_load (f->repo, b1, &error);
    g_autoptr (GBytes) bytes = NULL;

    g_assert_false (stor_repo_disk_read (
        f->repo, stor_repo_manifest_disk (m, "vda"), 0, &bytes, &error));
    g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
    g_assert_nonnull (strstr (error->message, stor_repo_digest_hex (&ds, hex)));
  }
}

/* Put throughput of 4 MiB chunks, printed for the report (not asserted:
 * the machine is shared). */
static void
test_throughput (Fixture *f, gconstpointer data)
{
  const guint n = 16;
  const char *kinds[] = { "random", "compressible" };

  for (guint k = 0; k < 2; k++)
    {
      g_autoptr (GPtrArray) bufs = g_ptr_array_new_with_free_func (g_free);
      gint64 t0, t1;

      for (guint i = 0; i < n; i++)
        g_ptr_array_add (bufs, k ? text_data (CHUNK, 1000 + i)
                                 : random_data (CHUNK, 1000 + i));
      t0 = g_get_monotonic_time ();
      for (guint i = 0; i < n; i++)
        {
          g_autoptr (GError) error = NULL;
          StorRepoDigest d;

          g_assert_true (stor_repo_chunk_put (f->repo, bufs->pdata[i], CHUNK,
                                              &d, NULL, NULL, &error));
        }
      t1 = g_get_monotonic_time ();
      g_test_message ("put of %u 4 MiB %s chunks: %.0f MB/s", n, kinds[k],
                      (double)n * CHUNK / (t1 - t0));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn)                                                          \
  g_test_add ("/stor-repo/" path, Fixture, NULL, setup, fn, teardown)
  ADD ("open", test_open);
  ADD ("init-interrupted", test_init_interrupted);
  ADD ("recover-killed-prune", test_recover_killed_prune);
  ADD ("chunk-roundtrip", test_chunk_roundtrip);
  ADD ("chunk-hostile", test_chunk_hostile);
  ADD ("backup-full-incremental", test_backup_full_incremental);
  ADD ("abort", test_abort);
  ADD ("no-space", test_no_space);
  ADD ("verify-status", test_verify_status);
  ADD ("throughput", test_throughput);
  return g_test_run ();
}
