/* The scheduler's backup repositories without agents: the repos table
 * (schema v5) and which repository and host a command goes to
 * (sched_repos_resolve, sched_repos_pick_host), from stored repositories
 * and what hosts report in HostInfo.backup_repos. */
#include "sched-repos.h"
#include "test-sched.h"

#include <string.h>

typedef struct
{
  char *dir;
  SchedService *svc;
} Fixture;

static void
setup (Fixture *f, gconstpointer data)
{
  SchedConfig config = { 0 };

  f->svc = test_sched_service_new (&f->dir, &config, NULL);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  sched_service_free (f->svc);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
}

/* Host NAME, STATE, reporting the N repositories REPOS. */
static void
put_host (Fixture *f, const char *name, const char *state,
          const char *const *repos, gsize n)
{
  Drover__V1__HostInfo info
      = test_host_info (name, 8, 8 * GiB, 100 * GiB, "tcg");
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (GError) error = NULL;

  info.address = (char *)"127.0.0.2:7401";
  info.n_backup_repos = n;
  info.backup_repos = (char **)repos;
  host = sched_host_new (&info, state, 0);
  g_assert_true (sched_store_put_host (f->svc->store, host, &error));
  g_assert_no_error (error);
}

static void
put_repo (Fixture *f, const char *name, const char *path)
{
  g_autoptr (SchedRepo) row = sched_repo_new (name, path, 1000);
  g_autoptr (GError) error = NULL;

  g_assert_true (sched_store_put_repo (f->svc->store, row, &error));
  g_assert_no_error (error);
}

static void
test_store (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedRepo) got = NULL;
  g_autoptr (GPtrArray) all = NULL;

  put_repo (f, "b", "/srv/b");
  put_repo (f, "a", "/srv/a");
  got = sched_store_get_repo (f->svc->store, "a", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (got->path, ==, "/srv/a");
  g_assert_cmpint (got->created_ms, ==, 1000);
  all = sched_store_list_repos (f->svc->store, &error);
  g_assert_cmpuint (all->len, ==, 2);
  g_assert_cmpstr (((SchedRepo *)all->pdata[0])->name, ==, "a");
  g_assert_true (sched_store_delete_repo (f->svc->store, "a", &error));
  g_assert_null (sched_store_get_repo (f->svc->store, "a", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
}

static void
test_resolve (Fixture *f, gconstpointer data)
{
  const char *const own[] = { "local" };
  const char *const both[] = { "local", "shared" };
  g_autoptr (GError) error = NULL;
  g_autofree char *name = NULL, *host = NULL;

  /* None yet: "" says how to add one. */
  g_assert_null (sched_repos_resolve (f->svc, "", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "repo add"));
  g_clear_error (&error);

  /* One a host reports on its own (--backup-repo), reported twice. */
  put_host (f, "h1", PROTO_HOST_UP, own, 1);
  put_host (f, "h2", PROTO_HOST_UP, own, 1);
  name = sched_repos_resolve (f->svc, "", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (name, ==, "local");
  g_clear_pointer (&name, g_free);

  /* A stored one too: "" is ambiguous now and says which there are. */
  put_repo (f, "shared", "/srv/shared");
  g_assert_null (sched_repos_resolve (f->svc, "", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "local, shared"));
  g_assert_nonnull (strstr (error->message, "--repo"));
  g_clear_error (&error);

  /* Stored but open nowhere: no host to send it to. */
  g_assert_false (sched_repos_pick_host (f->svc, "shared", &host, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE);
  g_assert_null (host);
  g_clear_error (&error);

  /* The first up host that reports it; a down one does not count. */
  put_host (f, "h1", PROTO_HOST_DOWN, both, 2);
  put_host (f, "h3", PROTO_HOST_UP, both, 2);
  g_assert_true (sched_repos_pick_host (f->svc, "shared", &host, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (host, ==, "h3");
  g_clear_pointer (&host, g_free);
  g_assert_true (sched_repos_pick_host (f->svc, "local", &host, &error));
  g_assert_cmpstr (host, ==, "h2");
  g_clear_pointer (&host, g_free);

  /* Unknown and malformed names. */
  g_assert_null (sched_repos_resolve (f->svc, "nosuch", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_assert_null (sched_repos_resolve (f->svc, "../etc", &error));
  g_assert_nonnull (error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/sched-repos/store", Fixture, NULL, setup, test_store, teardown);
  g_test_add ("/sched-repos/resolve", Fixture, NULL, setup, test_resolve,
              teardown);
  return g_test_run ();
}
