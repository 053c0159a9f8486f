/* Temporary directories for the tests. */
#include "test-support.h"

#include <glib/gstdio.h>

char *
test_tmp_dir_new (const char *template)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp (template, &error);

  g_assert_no_error (error);
  return dir;
}

static void
remove_tree (const char *path)
{
  g_autoptr (GDir) dir = NULL;
  const char *name;

  /* Not through links: only what the test made goes. */
  if (!g_file_test (path, G_FILE_TEST_IS_SYMLINK)
      && (dir = g_dir_open (path, 0, NULL)) != NULL)
    while ((name = g_dir_read_name (dir)) != NULL)
      {
        g_autofree char *child = g_build_filename (path, name, NULL);

        remove_tree (child);
      }
  g_remove (path);
}

void
test_tmp_dir_remove (const char *dir)
{
  if (!dir)
    return;
  g_assert_true (g_str_has_prefix (dir, g_get_tmp_dir ()));
  remove_tree (dir);
  g_assert_false (g_file_test (dir, G_FILE_TEST_EXISTS));
}
