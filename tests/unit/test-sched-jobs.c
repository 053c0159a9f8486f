/* The job table is bounded and read a page at a time: SchedJobs' pruning
 * (by age and count, never a job still running) with an injected clock,
 * the store's pages in creation order, the page token against hostile
 * input, and the SQLite connection's crash-consistency setting read back. */
#include "sched-private.h"

#include <glib/gstdio.h>
#include <string.h>

#define RETENTION_MS 1000
#define MAX_JOBS 3

typedef struct
{
  gint64 now;
  char *dir;
  SchedStore *store;
  SchedRegistry *reg;
  SchedJobs *jobs;
} Fixture;

static gint64
clock_of (gpointer fixture)
{
  return ((Fixture *)fixture)->now;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->now = 100000;
  f->dir = g_dir_make_tmp ("drover-jobs-XXXXXX", &error);
  g_assert_no_error (error);
  f->store = sched_store_open_sqlite (f->dir, &error);
  g_assert_no_error (error);
  f->reg = sched_registry_new (f->store, 1000, clock_of, f);
  f->jobs = sched_jobs_new (f->store, f->reg, RETENTION_MS, MAX_JOBS);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  const char *files[] = { "drover.db", "drover.db-wal", "drover.db-shm" };

  sched_jobs_free (f->jobs);
  sched_registry_free (f->reg);
  sched_store_close (f->store);
  for (gsize i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = g_build_filename (f->dir, files[i], NULL);
      g_unlink (path);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
}

/* Stores a job for VM in STATE, created at CREATED_MS and last updated at
 * UPDATED_MS, with id ID (NULL: a random one). Returns the id (caller
 * frees). */
static char *
put_job_id (Fixture *f, const char *id, const char *vm, const char *state,
            gint64 created_ms, gint64 updated_ms)
{
  g_autoptr (SchedJob) job
      = sched_job_new (PROTO_JOB_KIND_CREATE, vm, state, created_ms);
  g_autoptr (GError) error = NULL;

  if (id != NULL)
    {
      g_free (job->id);
      job->id = g_strdup (id);
    }
  job->updated_ms = updated_ms;
  g_assert_true (sched_store_put_job (f->store, job, &error));
  g_assert_no_error (error);
  return g_strdup (job->id);
}

static char *
put_job (Fixture *f, const char *vm, const char *state, gint64 created_ms,
         gint64 updated_ms)
{
  return put_job_id (f, NULL, vm, state, created_ms, updated_ms);
}

/* The VMs of the stored jobs in creation order, "a,b,c". */
static char *
stored_vms (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) all = sched_store_list_jobs (f->store, &error);
  g_autoptr (GString) out = g_string_new (NULL);

  g_assert_no_error (error);
  for (guint i = 0; i < all->len; i++)
    g_string_append_printf (out, "%s%s", i ? "," : "",
                            ((SchedJob *)all->pdata[i])->vm);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* --- pruning ----------------------------------------------------------- */

/* Finished jobs older than the retention go; queued and running ones stay
 * however old. */
static void
test_prune_age (Fixture *f, gconstpointer data)
{
  g_autofree char *vms = NULL;
  g_autofree char *id = NULL;

  g_free (put_job (f, "old-done", PROTO_JOB_DONE, 1, 10));
  g_free (put_job (f, "old-failed", PROTO_JOB_FAILED, 2, 20));
  g_free (put_job (f, "old-running", PROTO_JOB_RUNNING, 3, 30));
  g_free (put_job (f, "old-queued", PROTO_JOB_QUEUED, 4, 40));
  id = put_job (f, "recent", PROTO_JOB_DONE, 5, f->now - RETENTION_MS + 1);

  g_assert_cmpuint (sched_jobs_prune (f->jobs), ==, 2);
  vms = stored_vms (f);
  g_assert_cmpstr (vms, ==, "old-running,old-queued,recent");
  /* Nothing more to do until time passes. */
  g_assert_cmpuint (sched_jobs_prune (f->jobs), ==, 0);
  f->now += RETENTION_MS;
  g_assert_cmpuint (sched_jobs_prune (f->jobs), ==, 1);
}

/* Beyond MAX_JOBS finished jobs the least recently finished go, whenever a
 * job ends; running ones neither count nor go. */
static void
test_prune_count (Fixture *f, gconstpointer data)
{
  g_autoptr (SchedJob) ending = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *vms = NULL;
  g_autofree char *after = NULL;
  g_autofree char *running = put_job (f, "r1", PROTO_JOB_RUNNING, 1, 1);

  for (int i = 0; i < MAX_JOBS; i++)
    {
      g_autofree char *vm = g_strdup_printf ("d%d", i);

      g_free (put_job (f, vm, PROTO_JOB_DONE, 10 + i, f->now - 100 + i));
    }
  g_assert_cmpuint (sched_jobs_prune (f->jobs), ==, 0);

  /* The running job ends: now MAX_JOBS + 1 are finished, d0 (the least
   * recently updated) goes. */
  ending = sched_store_get_job (f->store, running, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ending->vm, ==, "r1");
  sched_jobs_set (f->jobs, ending, PROTO_JOB_FAILED, 0.5, NULL, "gone");
  vms = stored_vms (f);
  g_assert_cmpstr (vms, ==, "r1,d1,d2");

  /* A flood of jobs ending leaves MAX_JOBS finished ones. */
  for (int i = 0; i < 20; i++)
    {
      g_autoptr (SchedJob) job = sched_job_new (PROTO_JOB_KIND_DELETE, "flood",
                                                PROTO_JOB_RUNNING, f->now + i);

      f->now++;
      sched_jobs_set (f->jobs, job, PROTO_JOB_DONE, 1.0, "done", NULL);
    }
  after = stored_vms (f);
  g_assert_cmpstr (after, ==, "flood,flood,flood");
}

/* --- pages ------------------------------------------------------------- */

/* Every job exactly once, in creation order, page after page, even when
 * jobs come and go between the pages. */
static void
test_pages (Fixture *f, gconstpointer data)
{
  g_autoptr (GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;
  g_autofree char *first_id = NULL;
  g_autofree char *token = NULL;
  gint64 after_ms = 0;
  g_autofree char *after_id = NULL;
  guint pages = 0;

  /* Pairs of jobs share a creation time: the id breaks the tie, also
   * across the end of a page (v08 | v09). */
  for (int i = 0; i < 25; i++)
    {
      g_autofree char *vm = g_strdup_printf ("v%02d", i);
      g_autofree char *want = g_strdup_printf ("%08x", i);
      char *id = put_job_id (f, want, vm, PROTO_JOB_DONE, 1000 + i / 2, f->now);

      if (i == 0)
        first_id = id;
      else
        g_free (id);
    }

  for (;;)
    {
      g_autoptr (GPtrArray) page = sched_store_list_jobs_after (
          f->store, after_ms, after_id, 9, &error);
      SchedJob *last;

      g_assert_no_error (error);
      if (page->len == 0)
        break;
      pages++;
      for (guint i = 0; i < page->len; i++)
        g_ptr_array_add (seen, g_strdup (((SchedJob *)page->pdata[i])->vm));
      last = page->pdata[page->len - 1];
      /* The token round-trips. */
      g_free (token);
      token = sched_jobs_page_token (last);
      g_clear_pointer (&after_id, g_free);
      g_assert_true (
          sched_jobs_parse_page_token (token, &after_ms, &after_id, &error));
      g_assert_no_error (error);
      g_assert_cmpint (after_ms, ==, last->created_ms);
      g_assert_cmpstr (after_id, ==, last->id);
      if (pages == 1)
        {
          /* Between pages: the first job goes, a new one comes last. */
          g_assert_true (sched_store_delete_job (f->store, first_id, &error));
          g_free (
              put_job_id (f, "ffffffff", "v25", PROTO_JOB_DONE, 5000, f->now));
        }
    }
  g_assert_cmpuint (pages, ==, 3);
  g_assert_cmpuint (seen->len, ==, 26);
  for (guint i = 0; i < seen->len; i++)
    {
      g_autofree char *vm = g_strdup_printf ("v%02u", i);

      g_assert_cmpstr (seen->pdata[i], ==, vm);
    }
  /* NULL: from the first job. */
  {
    g_autoptr (GPtrArray) again
        = sched_store_list_jobs_after (f->store, 0, NULL, 1, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (again->len, ==, 1);
    g_assert_cmpstr (((SchedJob *)again->pdata[0])->vm, ==, "v01");
  }
}

/* Only what sched_jobs_page_token writes is a token. */
static void
test_page_token (void)
{
  g_autofree char *long_id = g_strnfill (65, 'a');
  g_autofree char *long_token = g_strconcat ("1/", long_id, NULL);
  g_autofree char *huge = g_strnfill (100000, '9');
  const struct
  {
    const char *token;
    gint64 ms;
    const char *id;
  } good[] = {
    { "0/a", 0, "a" },
    { "1700000000000/5b1e2c3d-0f00-4a6b-9c1d-2e3f4a5b6c7d", 1700000000000,
      "5b1e2c3d-0f00-4a6b-9c1d-2e3f4a5b6c7d" },
    { "-5/0", -5, "0" },
    { "999999999999999999/f", 999999999999999999, "f" },
  };
  const char *const bad[] = {
    "abc",
    "123",
    "123/",
    "/abc",
    "-/abc",
    "--1/a",
    "+1/a",
    " 1/a",
    "1 /a",
    "1/ a",
    "1/a ",
    "1/a\n",
    "0x10/a",
    "1//a",
    "1/a/b",
    "1/ABC",
    "1/g",
    "1/a;DROP TABLE jobs",
    "1/%",
    "1.5/a",
    "9999999999999999999/a",
    "99999999999999999999999/a",
    long_token,
    huge,
    "1/\xc3\xa9",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *id = NULL;
      gint64 ms = 42;

      g_assert_true (
          sched_jobs_parse_page_token (good[i].token, &ms, &id, &error));
      g_assert_no_error (error);
      g_assert_cmpint (ms, ==, good[i].ms);
      g_assert_cmpstr (id, ==, good[i].id);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *id = NULL;
      gint64 ms = 42;

      g_test_message ("'%.40s'", bad[i]);
      g_assert_false (sched_jobs_parse_page_token (bad[i], &ms, &id, &error));
      g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
      g_assert_null (id);
      g_assert_cmpint (ms, ==, 42);
    }
}

/* --- crash consistency ------------------------------------------------- */

/* The store's connection syncs every commit (synchronous=FULL, 2) in WAL
 * mode; the setting is per connection, so it is read on the store's own. */
static void
test_synchronous_full (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 value = -1;

  g_assert_true (
      sched_store_sqlite_pragma (f->store, "synchronous", &value, &error));
  g_assert_no_error (error);
  g_assert_cmpint (value, ==, 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/sched-jobs/prune/age", Fixture, NULL, fixture_setup,
              test_prune_age, fixture_teardown);
  g_test_add ("/sched-jobs/prune/count", Fixture, NULL, fixture_setup,
              test_prune_count, fixture_teardown);
  g_test_add ("/sched-jobs/pages", Fixture, NULL, fixture_setup, test_pages,
              fixture_teardown);
  g_test_add_func ("/sched-jobs/page-token", test_page_token);
  g_test_add ("/sched-jobs/synchronous-full", Fixture, NULL, fixture_setup,
              test_synchronous_full, fixture_teardown);
  return g_test_run ();
}
