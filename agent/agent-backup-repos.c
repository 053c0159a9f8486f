/* AgentRepos: the backup repositories this agent has open, by name
 * (issue 14).
 *
 * Two ways in, and only these two, since a path never comes from the
 * wire unchecked:
 * - --backup-repo NAME=PATH: the agent's own configuration, always there;
 * - AttachRepo (name, path) from the scheduler: accepted only when PATH,
 *   canonicalised (links resolved), lies inside one of the agent's
 *   --backup-repo-root directories. The operator who starts the agent
 *   decides where repositories may live; the wire only picks among them.
 *
 * Attached repositories live in memory: after a restart the scheduler
 * attaches them again when the agent registers (sched-repos.c).
 */
#include "agent-backup-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct _AgentRepos
{
  char **roots;      /* canonical --backup-repo-root dirs; immutable */
  GMutex lock;       /* guards paths */
  GHashTable *paths; /* name -> canonical path */
};

/* --- paths under the roots (pure but for the filesystem) ------------------ */

static gboolean
has_dotdot (const char *path)
{
  g_auto (GStrv) parts = g_strsplit (path, "/", -1);

  for (guint i = 0; parts[i]; i++)
    if (strcmp (parts[i], "..") == 0)
      return TRUE;
  return FALSE;
}

/* TRUE when canonical PATH is ROOT or lies below it (canonical too):
 * /srv/repo2 is not inside /srv/repo. */
static gboolean
inside (const char *root, const char *path)
{
  gsize len = strlen (root);

  if (len > 0 && root[len - 1] == '/')
    len--; /* the root "/" */
  return strncmp (root, path, len) == 0
         && (path[len] == '\0' || path[len] == '/');
}

/* PATH (absolute) with links resolved: realpath of the directory when it
 * exists, else realpath of its parent plus its last component. */
static char *
canonical (const char *path, GError **error)
{
  g_autofree char *trimmed = g_strdup (path);
  g_autofree char *parent = NULL, *base = NULL, *real_parent = NULL;
  char *real;
  gsize len = strlen (trimmed);

  while (len > 1 && trimmed[len - 1] == '/')
    trimmed[--len] = '\0';
  real = realpath (trimmed, NULL);
  if (real)
    return real;
  if (errno != ENOENT)
    {
      int saved = errno;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "backup repository path %s: %s", path, g_strerror (saved));
      return NULL;
    }
  parent = g_path_get_dirname (trimmed);
  base = g_path_get_basename (trimmed);
  real_parent = realpath (parent, NULL);
  if (!real_parent || strcmp (base, ".") == 0 || strcmp (base, "/") == 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "backup repository path %s: its parent directory %s does "
                   "not exist",
                   path, parent);
      return NULL;
    }
  return g_build_filename (real_parent, base, NULL);
}

char *
agent_backup_path_under_roots (const char *path, char *const *roots,
                               GError **error)
{
  g_autofree char *real = NULL;
  g_autofree char *list = NULL;

  if (!path || !g_path_is_absolute (path) || has_dotdot (path)
      || strlen (path) > AGENT_BACKUP_REPO_PATH_MAX)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "backup repository path %s is not an absolute path "
                   "without \"..\" of at most %d bytes",
                   path ? path : "(none)", AGENT_BACKUP_REPO_PATH_MAX);
      return NULL;
    }
  list = roots && roots[0] ? g_strjoinv (", ", (char **)roots) : NULL;
  if (!list)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED,
                   "backup repository path %s refused: this agent has no "
                   "--backup-repo-root, so it attaches no repository by path",
                   path);
      return NULL;
    }
  real = canonical (path, error);
  if (!real)
    return NULL;
  for (guint i = 0; roots[i]; i++)
    if (inside (roots[i], real))
      return g_steal_pointer (&real);
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED,
               "backup repository path %s (%s) is outside the repository "
               "roots of this agent (%s)",
               path, real, list);
  return NULL;
}

/* --- the registry ----------------------------------------------------------
 */

AgentRepos *
agent_repos_new (char **repos, char **roots, GError **error)
{
  g_autoptr (AgentRepos) r = g_new0 (AgentRepos, 1);
  guint n = roots ? g_strv_length (roots) : 0;

  agent_fault_storage_hook ();
  g_mutex_init (&r->lock);
  r->paths = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  /* NULL-terminated as it fills, so freeing it halfway is fine. */
  r->roots = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    {
      /* Made when missing, as the data directory is: only root and the
       * agent write repositories. */
      if (g_path_is_absolute (roots[i]))
        (void)g_mkdir_with_parents (roots[i], 0700);
      r->roots[i]
          = g_path_is_absolute (roots[i]) ? realpath (roots[i], NULL) : NULL;
      if (!r->roots[i] || !g_file_test (r->roots[i], G_FILE_TEST_IS_DIR))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "backup repository root %s is not an absolute path "
                       "to a directory (made when missing)",
                       roots[i]);
          return NULL;
        }
    }
  for (guint i = 0; repos && repos[i]; i++)
    {
      const char *eq = strchr (repos[i], '=');

      /* agent_backup_repos_check has checked the form. */
      g_hash_table_replace (r->paths, g_strndup (repos[i], eq - repos[i]),
                            g_strdup (eq + 1));
    }
  return g_steal_pointer (&r);
}

void
agent_repos_free (AgentRepos *r)
{
  g_strfreev (r->roots);
  g_hash_table_destroy (r->paths);
  g_mutex_clear (&r->lock);
  g_free (r);
}

/* NAME's path, or NULL. Caller frees. */
static char *
path_of (AgentRepos *r, const char *name)
{
  char *path;

  g_mutex_lock (&r->lock);
  path = g_strdup (g_hash_table_lookup (r->paths, name));
  g_mutex_unlock (&r->lock);
  return path;
}

StorRepo *
agent_backup_repos_lookup (Agent *agent, const char *name, GError **error)
{
  g_autofree char *path = NULL;

  if (!proto_name_validate ("repository", name, error))
    return NULL;
  path = path_of (agent->repos, name);
  if (!path)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "host %s has no backup repository named %s",
                   agent->config.name, name);
      return NULL;
    }
  return agent_backup_repo_open (path, error);
}

/* Sorts by the strings the elements point to. */
static gint
compare_names (gconstpointer a, gconstpointer b, gpointer data)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

char **
agent_backup_repos_names (Agent *agent)
{
  g_autofree const char **keys = NULL;
  g_auto (GStrv) names = NULL;
  guint n = 0;

  g_mutex_lock (&agent->repos->lock);
  keys
      = (const char **)g_hash_table_get_keys_as_array (agent->repos->paths, &n);
  names = g_new0 (char *, n + 1);
  for (guint i = 0; i < n; i++)
    names[i] = g_strdup (keys[i]);
  g_mutex_unlock (&agent->repos->lock);
  g_qsort_with_data (names, n, sizeof (char *), compare_names, NULL);
  return g_steal_pointer (&names);
}

static void
recover_one (const char *name, StorRepo *repo)
{
  g_autoptr (GError) error = NULL;
  guint removed = 0;

  if (!stor_repo_recover (repo, &removed, &error))
    drover_warning (NULL, NULL, NULL,
                    "backup repository %s (%s): cannot recover: %s", name,
                    stor_repo_path (repo), error->message);
  else if (removed)
    drover_message (NULL, NULL, NULL,
                    "backup repository %s (%s): removed %u leftovers of a "
                    "backup an earlier run left",
                    name, stor_repo_path (repo), removed);
}

/* How long AttachRepo waits for another host making the same repository:
 * the scheduler asks every host at once, and a directory another agent
 * is filling has its format file last. */
#define SETTLE_US (5 * G_USEC_PER_SEC)

static StorRepo *
open_settled (const char *path, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + SETTLE_US;

  for (;;)
    {
      g_autoptr (GError) local = NULL;
      StorRepo *repo = agent_backup_repo_open (path, &local);

      if (repo)
        return repo;
      if (g_get_monotonic_time () >= deadline)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      g_usleep (100 * 1000);
    }
}

gboolean
agent_backup_repos_attach (Agent *agent, const char *name, const char *path,
                           GError **error)
{
  AgentRepos *r = agent->repos;
  g_autofree char *real = NULL, *have = NULL;
  g_autoptr (StorRepo) repo = NULL;

  if (!proto_name_validate ("repository", name, error))
    return FALSE;
  real = agent_backup_path_under_roots (path, r->roots, error);
  if (!real)
    return FALSE;
  have = path_of (r, name);
  if (have && strcmp (have, real) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "host %s already has backup repository %s at %s, not %s",
                   agent->config.name, name, have, real);
      return FALSE;
    }
  repo = open_settled (real, error);
  if (!repo)
    {
      g_prefix_error (error, "backup repository %s at %s on host %s: ", name,
                      real, agent->config.name);
      return FALSE;
    }
  recover_one (name, repo);
  g_mutex_lock (&r->lock);
  g_hash_table_replace (r->paths, g_strdup (name), g_strdup (real));
  g_mutex_unlock (&r->lock);
  if (!have)
    {
      drover_message (NULL, NULL, NULL, "backup repository %s attached at %s",
                      name, real);
      agent_reporter_kick_from_thread (agent);
    }
  return TRUE;
}

void
agent_backup_repos_recover (Agent *agent)
{
  g_auto (GStrv) names = agent_backup_repos_names (agent);

  for (guint i = 0; names[i]; i++)
    {
      g_autofree char *path = path_of (agent->repos, names[i]);
      g_autoptr (StorRepo) repo = stor_repo_open (path, NULL);

      /* A repository not made yet has nothing to recover. */
      if (repo)
        recover_one (names[i], repo);
    }
}
