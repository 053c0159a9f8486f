/* agent_backup_path_under_roots: what AttachRepo lets the scheduler open.
 * Real directories and links in a temporary tree, since the check
 * resolves links. */
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent-private.h"

typedef struct
{
  char *tmp;  /* canonical */
  char *root; /* TMP/srv/repo */
  char *roots[2];
} Fixture;

static void
setup (Fixture *f, gconstpointer data)
{
  g_autofree char *t = g_dir_make_tmp ("drover-repos-XXXXXX", NULL);
  g_autofree char *outside = NULL, *link_out = NULL, *link_in = NULL;
  g_autofree char *repo2 = NULL;

  f->tmp = realpath (t, NULL);
  f->root = g_build_filename (f->tmp, "srv", "repo", NULL);
  g_assert_cmpint (g_mkdir_with_parents (f->root, 0700), ==, 0);
  repo2 = g_build_filename (f->tmp, "srv", "repo2", NULL);
  g_assert_cmpint (g_mkdir_with_parents (repo2, 0700), ==, 0);
  outside = g_build_filename (f->tmp, "elsewhere", NULL);
  g_assert_cmpint (g_mkdir_with_parents (outside, 0700), ==, 0);
  link_out = g_build_filename (f->root, "escape", NULL);
  g_assert_cmpint (symlink (outside, link_out), ==, 0);
  link_in = g_build_filename (f->tmp, "shortcut", NULL);
  g_assert_cmpint (symlink (f->root, link_in), ==, 0);
  f->roots[0] = f->root;
  f->roots[1] = NULL;
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", f->tmp);

  g_assert_cmpint (system (cmd), ==, 0);
  g_free (f->root);
  free (f->tmp);
}

/* PATH relative to the fixture's tree; EXPECT the canonical result
 * relative to it, or NULL for a refusal with CODE of DOMAIN. */
static void
check (Fixture *f, const char *path, const char *expect, GQuark domain,
       int code)
{
  g_autofree char *abs = g_strconcat (f->tmp, path, NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *got = agent_backup_path_under_roots (abs, f->roots, &error);

  if (expect)
    {
      g_autofree char *want = g_strconcat (f->tmp, expect, NULL);

      g_assert_no_error (error);
      g_assert_cmpstr (got, ==, want);
    }
  else
    {
      g_assert_null (got);
      g_assert_error (error, domain, code);
      /* The refusal names the path. */
      g_assert_nonnull (strstr (error->message, path));
    }
}

static void
test_inside (Fixture *f, gconstpointer data)
{
  check (f, "/srv/repo", "/srv/repo", 0, 0);
  check (f, "/srv/repo/", "/srv/repo", 0, 0);
  check (f, "/srv/repo//", "/srv/repo", 0, 0);
  /* Not there yet: its parent is, and inside. */
  check (f, "/srv/repo/shared", "/srv/repo/shared", 0, 0);
  check (f, "/srv/repo/shared/", "/srv/repo/shared", 0, 0);
  /* A link into the root is judged by where it leads. */
  check (f, "/shortcut/new", "/srv/repo/new", 0, 0);
}

static void
test_outside (Fixture *f, gconstpointer data)
{
  const GQuark P = PROTO_ERROR, A = AGENT_ERROR;
  const int DENIED = PROTO_STATUS_PERMISSION_DENIED;

  /* A prefix of the name is not a parent directory. */
  check (f, "/srv/repo2", NULL, P, DENIED);
  check (f, "/srv/repo2/x", NULL, P, DENIED);
  check (f, "/srv", NULL, P, DENIED);
  check (f, "/elsewhere", NULL, P, DENIED);
  /* Links out of the root. */
  check (f, "/srv/repo/escape", NULL, P, DENIED);
  check (f, "/srv/repo/escape/new", NULL, P, DENIED);
  /* ".." is refused whatever it would resolve to. */
  check (f, "/srv/repo/../repo", NULL, A, AGENT_ERROR_INVALID);
  check (f, "/srv/repo/..", NULL, A, AGENT_ERROR_INVALID);
  /* No parent to make it in. */
  check (f, "/srv/repo/a/b", NULL, A, AGENT_ERROR_INVALID);
}

static void
test_bad_input (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *longp = g_strnfill (AGENT_BACKUP_REPO_PATH_MAX + 1, 'a');
  char *none[] = { NULL };
  g_autofree char *in = g_build_filename (f->root, "x", NULL);

  longp[0] = '/';
  g_assert_null (agent_backup_path_under_roots ("srv/repo", f->roots, &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (agent_backup_path_under_roots (longp, f->roots, &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (agent_backup_path_under_roots (NULL, f->roots, &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
  g_clear_error (&error);
  /* No roots: nothing is attached by path. */
  g_assert_null (agent_backup_path_under_roots (in, none, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
}

static void
test_root_slash (void)
{
  g_autoptr (GError) error = NULL;
  char *roots[] = { (char *)"/", NULL };
  g_autofree char *got = agent_backup_path_under_roots ("/tmp/", roots, &error);

  g_assert_no_error (error);
  g_assert_nonnull (got);
  g_assert_true (g_str_has_prefix (got, "/"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/agent/backup-repos/inside", Fixture, NULL, setup, test_inside,
              teardown);
  g_test_add ("/agent/backup-repos/outside", Fixture, NULL, setup, test_outside,
              teardown);
  g_test_add ("/agent/backup-repos/bad-input", Fixture, NULL, setup,
              test_bad_input, teardown);
  g_test_add_func ("/agent/backup-repos/root-slash", test_root_slash);
  return g_test_run ();
}
