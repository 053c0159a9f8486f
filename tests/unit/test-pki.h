/* What the agent and migration tests make on disk: certificates from
 * scripts/pki (O = role, CN = name, one CA, revocation) in a temporary
 * directory, removed with everything in it at the end. Header-only: each
 * test is a binary of its own. Tests find the repository through
 * $DROVER_TEST_DATA (their source directory). */
#pragma once

#include <glib.h>

/* Runs scripts/pki DIR ARGS... ("host", "h1", "127.0.0.1"; "--revoke",
 * "h1"; ...) and asserts it worked (failing with what it printed). */
static inline void
test_pki (const char *dir, const char *const *args)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *script = g_build_filename (
      g_getenv ("DROVER_TEST_DATA"), "..", "..", "scripts", "pki", NULL);
  g_autoptr (GStrvBuilder) b = g_strv_builder_new ();
  g_auto (GStrv) argv = NULL;
  g_autofree char *err = NULL;
  int status = 0;

  g_strv_builder_add (b, script);
  g_strv_builder_add (b, dir);
  g_strv_builder_addv (b, (const char **)args);
  argv = g_strv_builder_end (b);
  g_spawn_sync (NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, &error))
    g_error ("scripts/pki failed: %s: %s", error->message, err);
}

/* Removes DIR (a temporary directory) and everything in it. */
static inline void
test_rmtree (const char *dir)
{
  const char *argv[] = { "rm", "-rf", dir, NULL };

  g_assert_true (g_str_has_prefix (dir, g_get_tmp_dir ()));
  g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                NULL, NULL, NULL, NULL);
}
