/* The image directory: the kernels and initrds VMs may boot
 * (--image-dir, default DATA/images; a shared mount works for a cluster).
 * A VM names one by a path relative to it or an absolute path that lies
 * inside it once links are resolved; anything else would let whoever
 * creates or migrates a VM make QEMU (root, or its own user) read any
 * file of the host. */
#include "agent-private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* PATH resolved (links, "..") when it exists, else NULL. */
static char *
resolve (const char *path)
{
  char *real = realpath (path, NULL);
  char *out = real ? g_strdup (real) : NULL;

  free (real);
  return out;
}

static gboolean
inside (const char *dir, const char *real)
{
  gsize n = strlen (dir);

  return strncmp (real, dir, n) == 0 && real[n] == '/';
}

gboolean
agent_image_contains (Agent *agent, const char *path)
{
  g_autofree char *real = NULL;

  if (!path || !g_path_is_absolute (path))
    return FALSE;
  real = resolve (path);
  return real && inside (agent->image_dir, real);
}

char *
agent_image_resolve (Agent *agent, const char *what, const char *path,
                     GError **error)
{
  g_autofree char *joined = NULL, *real = NULL;
  struct stat st;

  joined = g_path_is_absolute (path)
               ? g_strdup (path)
               : g_build_filename (agent->image_dir, path, NULL);
  real = resolve (joined);
  if (!real || !inside (agent->image_dir, real))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "%s '%s' is not a file in the image directory %s", what,
                   path, agent->image_dir);
      return NULL;
    }
  if (stat (real, &st) < 0 || !S_ISREG (st.st_mode) || access (real, R_OK) < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "%s '%s' in the image directory %s is not a readable file",
                   what, path, agent->image_dir);
      return NULL;
    }
  return g_steal_pointer (&real);
}
