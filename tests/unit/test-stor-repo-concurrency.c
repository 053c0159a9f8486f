/* stor-repo, concurrency: gc while a backup runs, delete of a running
 * incremental's parent, recovery after a killed agent, several threads
 * and processes writing at once. */
#include "test-stor-repo.h"

static void
test_gc (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StorRepoGcResult) res = NULL;
  g_autofree guint8 *kept = random_data (CHUNK, 40);
  g_autofree guint8 *orphan = random_data (CHUNK, 41);
  g_autofree guint8 *fresh = random_data (CHUNK, 42);
  g_autofree guint8 *reused = random_data (CHUNK, 43);
  g_autofree char *id = NULL;
  StorRepoDigest dk, dorphan, dfresh, dreused;
  StorRepoWriter *w;

  w = begin (f, NULL, CHUNK);
  put (w, 0, kept, CHUNK);
  id = commit (w);
  stor_repo_writer_free (w);
  stor_repo_digest (kept, CHUNK, &dk);
  g_assert_true (stor_repo_chunk_put (f->repo, orphan, CHUNK, &dorphan, NULL,
                                      NULL, &error));
  g_assert_true (stor_repo_chunk_put (f->repo, reused, CHUNK, &dreused, NULL,
                                      NULL, &error));
  age_chunk (f, &dk, 7200);
  age_chunk (f, &dorphan, 7200);
  age_chunk (f, &dreused, 7200);

  /* A backup in progress writes FRESH and re-uses REUSED (old and
   * unreferenced until then): gc must spare both. */
  w = begin (f, NULL, 2 * (guint64)CHUNK);
  put (w, 0, fresh, CHUNK);
  put (w, 1, reused, CHUNK);
  stor_repo_digest (fresh, CHUNK, &dfresh);
  res = stor_repo_gc (f->repo, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (res->chunks_marked, ==, 1);
  g_assert_cmpuint (res->chunks_swept, ==, 1);
  g_assert_cmpuint (res->bytes_freed, >, 0);
  g_assert_true (chunk_exists (f, &dk));
  g_assert_false (chunk_exists (f, &dorphan));
  g_assert_true (chunk_exists (f, &dfresh));
  g_assert_true (chunk_exists (f, &dreused));
  g_clear_pointer (&res, stor_repo_gc_result_free);

  /* Once the writer is gone and its chunks are old, unreferenced ones
   * go; referenced ones never. */
  stor_repo_writer_abort (w);
  stor_repo_writer_free (w);
  age_chunk (f, &dfresh, 7200);
  age_chunk (f, &dreused, 7200);
  res = stor_repo_gc (f->repo, 3600, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (res->chunks_swept, ==, 2);
  g_assert_true (chunk_exists (f, &dk));
  g_assert_false (chunk_exists (f, &dfresh));
  g_clear_pointer (&res, stor_repo_gc_result_free);

  /* The margin: an unreferenced chunk younger than it stays. */
  g_assert_true (stor_repo_chunk_put (f->repo, orphan, CHUNK, &dorphan, NULL,
                                      NULL, &error));
  age_chunk (f, &dorphan, 600);
  res = stor_repo_gc (f->repo, 3600, NULL, &error);
  g_assert_cmpuint (res->chunks_swept, ==, 0);
  g_assert_cmpuint (res->chunks_kept_recent, ==, 1);
  g_assert_true (chunk_exists (f, &dorphan));
  g_clear_pointer (&res, stor_repo_gc_result_free);

  /* A writer that started 3 hours ago put a chunk an hour ago: older
   * than gc's start, but not than the writer's, so it stays. */
  {
    g_autofree char *name
        = g_strdup_printf ("%s~%d~web-20260101T000000Z-000001.json",
                           f->repo->host, (int)getpid ());
    g_autofree char *reg = stor_repo_sub (f->repo, "writers", name, NULL);
    g_autofree char *text = g_strdup_printf (
        "{\"host\": \"%s\", \"pid\": %d, \"start\": %" G_GINT64_FORMAT
        ", \"backup\": \"web-20260101T000000Z-000001\", \"parent\": null}",
        f->repo->host, (int)getpid (),
        g_get_real_time () / G_USEC_PER_SEC - 3 * 3600);

    g_assert_true (g_file_set_contents (reg, text, -1, NULL));
    age_chunk (f, &dorphan, 3600);
    res = stor_repo_gc (f->repo, 0, NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (res->chunks_swept, ==, 0);
    g_assert_true (chunk_exists (f, &dorphan));
    g_clear_pointer (&res, stor_repo_gc_result_free);
    g_assert_cmpint (g_unlink (reg), ==, 0);
  }

  /* A manifest gc cannot read stops it before any sweep. */
  {
    g_autofree char *bad = stor_repo_sub (
        f->repo, "backups", "web-20260101T000000Z-abcdef.json", NULL);
    g_assert_true (g_file_set_contents (bad, "{", -1, NULL));
    age_chunk (f, &dorphan, 7200);
    g_assert_null (stor_repo_gc (f->repo, 0, NULL, &error));
    g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
    g_assert_nonnull (strstr (error->message, "nothing swept"));
    g_assert_true (chunk_exists (f, &dorphan));
  }
}

static void
test_delete_busy (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *a = random_data (CHUNK, 50);
  g_autofree char *full = NULL;
  StorRepoWriter *w = begin (f, NULL, CHUNK);

  put (w, 0, a, CHUNK);
  full = commit (w);
  stor_repo_writer_free (w);
  /* A running incremental on FULL keeps it. */
  w = begin (f, full, CHUNK);
  g_assert_false (stor_repo_delete (f->repo, full, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_BUSY);
  g_clear_error (&error);
  g_assert_cmpuint (count_sub (f, "backups"), ==, 1);
  g_assert_cmpuint (count_sub (f, "tmp"), ==, 0);
  stor_repo_writer_free (w);
  g_assert_true (stor_repo_delete (f->repo, full, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (count_sub (f, "backups"), ==, 0);
  g_assert_false (stor_repo_delete (f->repo, full, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_false (stor_repo_delete (f->repo, "../drover-repository", &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
}

/* A registration silent for two days whose process is gone is stale: gc
 * reports it and does not let its old start time hold chunks forever;
 * temp files older than a day go too. */
static void
test_gc_stale (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StorRepoGcResult) res = NULL;
  g_autofree guint8 *orphan = random_data (CHUNK, 80);
  g_autofree char *name = g_strdup_printf (
      "%s~%d~web-20260101T000000Z-000002.json", f->repo->host, 0x7ffffff0);
  g_autofree char *reg = stor_repo_sub (f->repo, "writers", name, NULL);
  g_autofree char *text = g_strdup_printf (
      "{\"host\": \"%s\", \"pid\": %d, \"start\": %" G_GINT64_FORMAT
      ", \"backup\": \"web-20260101T000000Z-000002\", \"parent\": null}",
      f->repo->host, 0x7ffffff0,
      g_get_real_time () / G_USEC_PER_SEC - 3 * 86400);
  g_autofree char *old_tmp
      = stor_repo_sub (f->repo, "tmp", "elsewhere~1~0000.chunk", NULL);
  g_autofree char *new_tmp
      = stor_repo_sub (f->repo, "tmp", "elsewhere~1~0001.chunk", NULL);
  struct timespec ts[2];
  StorRepoDigest d;

  g_assert_true (
      stor_repo_chunk_put (f->repo, orphan, CHUNK, &d, NULL, NULL, &error));
  age_chunk (f, &d, 7200);
  g_assert_true (g_file_set_contents (reg, text, -1, NULL));
  g_assert_true (g_file_set_contents (old_tmp, "x", -1, NULL));
  g_assert_true (g_file_set_contents (new_tmp, "x", -1, NULL));
  clock_gettime (CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= 2 * 86400;
  ts[1] = ts[0];
  g_assert_cmpint (utimensat (AT_FDCWD, reg, ts, 0), ==, 0);
  g_assert_cmpint (utimensat (AT_FDCWD, old_tmp, ts, 0), ==, 0);

  res = stor_repo_gc (f->repo, 0, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (res->stale_writers->len, ==, 1);
  g_assert_nonnull (
      strstr (g_ptr_array_index (res->stale_writers, 0), "000002"));
  g_assert_cmpuint (res->chunks_swept, ==, 1);
  g_assert_false (chunk_exists (f, &d));
  g_assert_cmpuint (res->tmp_removed, ==, 1);
  g_assert_false (g_file_test (old_tmp, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (new_tmp, G_FILE_TEST_EXISTS));
}

static void
test_recover (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *host = NULL;
  g_autofree char *dead_tmp = NULL;
  g_autofree char *dead_w = NULL;
  g_autofree char *other = NULL;
  g_autofree char *name = NULL;
  StorRepoWriter *w = begin (f, NULL, CHUNK);
  guint removed = 0;

  /* A process of this host that is gone (pid 0x7ffffff0 is not a
   * process), and one of another host: only the first is ours to
   * clean. */
  host = g_strdup (f->repo->host);
  name = g_strdup_printf ("%s~%d~0000.chunk", host, 0x7ffffff0);
  dead_tmp = stor_repo_sub (f->repo, "tmp", name, NULL);
  g_free (name);
  name = g_strdup_printf ("%s~%d~web-20260101T000000Z-000000.json", host,
                          0x7ffffff0);
  dead_w = stor_repo_sub (f->repo, "writers", name, NULL);
  other = stor_repo_sub (f->repo, "tmp", "elsewhere~1~0000.chunk", NULL);
  g_assert_true (g_file_set_contents (dead_tmp, "x", -1, NULL));
  g_assert_true (g_file_set_contents (dead_w, "{}", -1, NULL));
  g_assert_true (g_file_set_contents (other, "x", -1, NULL));
  g_assert_true (stor_repo_recover (f->repo, &removed, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (removed, ==, 2);
  g_assert_false (g_file_test (dead_tmp, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (dead_w, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (other, G_FILE_TEST_EXISTS));
  /* Our own running writer stays. */
  g_assert_cmpuint (count_sub (f, "writers"), ==, 1);
  stor_repo_writer_free (w);
}

typedef struct
{
  StorRepoWriter *w;
  guint8 **data; /* chunk I's bytes */
  guint n;
  gint next; /* next chunk to put, shared */
} PutJob;

static gpointer
put_thread (gpointer data)
{
  PutJob *job = data;
  gint i;

  while ((i = g_atomic_int_add (&job->next, 1)) < (gint)job->n)
    put (job->w, i, job->data[i], CHUNK);
  return NULL;
}

/* Four threads put into one writer; the same data appears at several
 * indexes (dedup racing with itself), and each restores right. */
static void
test_threads (Fixture *f, gconstpointer data)
{
  const guint n = 24;
  g_autofree guint8 **chunks = g_new0 (guint8 *, n);
  g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  PutJob job = { NULL, chunks, n, 0 };
  GThread *threads[4];
  g_autofree char *id = NULL;

  for (guint i = 0; i < n; i++)
    {
      /* 8 distinct chunks, each three times. */
      chunks[i] = random_data (CHUNK, 70 + i % 8);
      g_ptr_array_add (owned, chunks[i]);
    }
  job.w = begin (f, NULL, (guint64)n * CHUNK);
  for (guint t = 0; t < G_N_ELEMENTS (threads); t++)
    threads[t] = g_thread_new ("put", put_thread, &job);
  for (guint t = 0; t < G_N_ELEMENTS (threads); t++)
    g_thread_join (threads[t]);
  id = commit (job.w);
  stor_repo_writer_free (job.w);
  assert_counts (f, 1, 0, 8, 0);
  for (guint i = 0; i < n; i++)
    assert_chunk (f, id, i, chunks[i], CHUNK);
}

/* Two processes store the same chunks at once (two agents on one
 * repository): every chunk whole, once, no temp file left. */
static void
test_processes (Fixture *f, gconstpointer data)
{
  const guint n = 6;
  pid_t pids[2];

  for (guint p = 0; p < G_N_ELEMENTS (pids); p++)
    {
      pids[p] = fork ();
      g_assert_cmpint (pids[p], >=, 0);
      if (pids[p] == 0)
        {
          for (guint i = 0; i < n; i++)
            {
              g_autofree guint8 *buf = random_data (CHUNK, 90 + i);
              StorRepoDigest d;

              if (!stor_repo_chunk_put (f->repo, buf, CHUNK, &d, NULL, NULL,
                                        NULL))
                _exit (1);
            }
          _exit (0);
        }
    }
  for (guint p = 0; p < G_N_ELEMENTS (pids); p++)
    {
      int status = 0;

      g_assert_cmpint (waitpid (pids[p], &status, 0), ==, pids[p]);
      g_assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    }
  assert_counts (f, 0, 0, n, 0);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree guint8 *buf = random_data (CHUNK, 90 + i);
      g_autoptr (GBytes) back = NULL;
      StorRepoDigest d;

      stor_repo_digest (buf, CHUNK, &d);
      back = stor_repo_chunk_get (f->repo, &d, CHUNK, &error);
      g_assert_no_error (error);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn)                                                          \
  g_test_add ("/stor-repo-concurrency/" path, Fixture, NULL, setup, fn,        \
              teardown)
  ADD ("gc", test_gc);
  ADD ("delete-busy", test_delete_busy);
  ADD ("gc-stale", test_gc_stale);
  ADD ("recover", test_recover);
  ADD ("threads", test_threads);
  ADD ("processes", test_processes);
  return g_test_run ();
}
