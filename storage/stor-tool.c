/* The external tool the storage library drives (qemu-img): run
 * synchronously with its error text kept for the operator, and the one
 * way a new image is made (refusals first, no partial file left). */
#include "stor-private.h"

#include <glib/gstdio.h>
#include <string.h>

gboolean
stor_run_tool (const char *const *argv, const char *what, char **out,
               GError **error)
{
  g_autofree char *err_out = NULL;
  g_autoptr (GError) local = NULL;
  int status = 0;

  if (!g_spawn_sync (NULL, (char **)argv, NULL,
                     G_SPAWN_SEARCH_PATH
                         | (out ? 0 : G_SPAWN_STDOUT_TO_DEV_NULL),
                     NULL, NULL, out, &err_out, &status, &local))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED, "cannot run %s: %s",
                   argv[0], local->message);
      return FALSE;
    }
  if (!g_spawn_check_wait_status (status, &local))
    {
      g_strstrip (err_out);
      g_set_error (error, STOR_ERROR,
                   strstr (err_out, "No space left") ? STOR_ERROR_NO_SPACE
                                                     : STOR_ERROR_FAILED,
                   "%s failed (%s)%s%s", what, local->message,
                   *err_out ? ": " : "", err_out);
      if (out != NULL)
        g_clear_pointer (out, g_free);
      return FALSE;
    }
  return TRUE;
}

gboolean
stor_image_make (const char *path, const char *noun, const char *what,
                 guint64 need, const char *const *argv, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *command = g_strdup_printf ("qemu-img create %s", path);

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_EXISTS, "%s %s already exists",
                   noun, path);
      return FALSE;
    }
  if (!stor_space_check (dir, need, what, error))
    return FALSE;
  if (!stor_run_tool (argv, command, NULL, error))
    {
      /* qemu-img may have written part of the file: take it away again. */
      (void)g_unlink (path);
      return FALSE;
    }
  return TRUE;
}
