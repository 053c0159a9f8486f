/* The backup repository: its directory layout, open and recovery, and
 * the file helpers every part of it writes through (temp name, fsync,
 * rename, directory fsync). See docs/backup-format.md. */
#include "stor-repo-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* The subdirectories of a repository. chunks/00..ff are made by init so
 * that writers never race to make them. */
static const char *const subdirs[]
    = { "chunks", "backups", "tmp", "writers", "state", NULL };

static int fail_writes_errno;

void
stor_repo_fail_writes (int err)
{
  g_atomic_int_set (&fail_writes_errno, err);
}

static StorRepoStepHook step_hook;

void
stor_repo_set_step_hook (StorRepoStepHook hook)
{
  g_atomic_pointer_set (&step_hook, hook);
}

void
stor_repo_step (const char *step)
{
  StorRepoStepHook hook = g_atomic_pointer_get (&step_hook);

  if (hook)
    hook (step);
}

char *
stor_repo_sub (StorRepo *repo, const char *first, ...)
{
  va_list ap;
  g_autoptr (GPtrArray) parts = g_ptr_array_new ();
  const char *p;

  g_ptr_array_add (parts, repo->path);
  va_start (ap, first);
  for (p = first; p; p = va_arg (ap, const char *))
    g_ptr_array_add (parts, (gpointer)p);
  va_end (ap);
  g_ptr_array_add (parts, NULL);
  return g_build_filenamev ((char **)parts->pdata);
}

char *
stor_repo_tmp_path (StorRepo *repo, const char *kind)
{
  g_autofree char *name
      = g_strdup_printf ("%s~%d~%08x%08x.%s", repo->host, (int)getpid (),
                         g_random_int (), g_random_int (), kind);
  return stor_repo_sub (repo, "tmp", name, NULL);
}

gboolean
stor_repo_errno (GError **error, int err, const char *doing, const char *path)
{
  gboolean full = err == ENOSPC || err == EDQUOT;

  g_set_error (error, STOR_ERROR,
               full ? STOR_ERROR_NO_SPACE : STOR_ERROR_FAILED,
               "cannot %s %s: %s", doing, path, g_strerror (err));
  return FALSE;
}

/* Reads (WRITING FALSE) or writes exactly LEN bytes at BUF; on failure
 * the errno in *ERR (ENOSPC for a write that makes no progress, 0 for
 * an early end of file). */
static gboolean
io_exact (int fd, guint8 *buf, gsize len, gboolean writing, int *err)
{
  while (len > 0)
    {
      ssize_t n = writing ? write (fd, buf, len) : read (fd, buf, len);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          *err = n < 0 ? errno : writing ? ENOSPC : 0;
          return FALSE;
        }
      buf += n;
      len -= n;
    }
  return TRUE;
}

static gboolean
write_all (int fd, const void *data, gsize len, int *err)
{
  int inject = g_atomic_int_get (&fail_writes_errno);

  if (inject)
    {
      *err = inject;
      return FALSE;
    }
  return io_exact (fd, (guint8 *)data, len, TRUE, err);
}

gboolean
stor_repo_write_file (const char *tmp, const char *dest, const void *data,
                      gsize len, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (dest);
  int fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  int err = 0;

  if (fd < 0)
    return stor_repo_errno (error, errno, "create", tmp);
  if (!write_all (fd, data, len, &err))
    ;
  else if (fsync (fd) < 0)
    err = errno;
  if (close (fd) < 0 && !err)
    err = errno; /* NFS reports a full disk at close */
  if (!err && rename (tmp, dest) < 0)
    err = errno;
  if (err)
    {
      g_unlink (tmp);
      return stor_repo_errno (error, err, "write", dest);
    }
  return stor_fsync_path (dir, TRUE, error);
}

gboolean
stor_repo_read_exact (int fd, guint8 *buf, gsize len)
{
  int err = 0;

  return io_exact (fd, buf, len, FALSE, &err);
}

gboolean
stor_repo_read_capped (const char *path, gsize max, char **data, gsize *len,
                       GError **error)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  g_autofree char *buf = NULL;
  gboolean ok;

  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, STOR_ERROR,
                   saved == ENOENT ? STOR_ERROR_NOT_FOUND : STOR_ERROR_FAILED,
                   "cannot open %s: %s", path, g_strerror (saved));
      return FALSE;
    }
  if (fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || (guint64)st.st_size > max)
    {
      close (fd);
      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "%s is not a regular file of at most %" G_GSIZE_FORMAT
                   " bytes",
                   path, max);
      return FALSE;
    }
  buf = g_malloc (st.st_size + 1);
  ok = stor_repo_read_exact (fd, (guint8 *)buf, st.st_size);
  close (fd);
  if (!ok)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "%s changed size while being read", path);
      return FALSE;
    }
  buf[st.st_size] = '\0';
  *data = g_steal_pointer (&buf);
  *len = st.st_size;
  return TRUE;
}

/* The host name, with anything but [A-Za-z0-9.-] replaced: it goes into
 * file names. */
static char *
safe_host_name (void)
{
  char *host = g_strdup (g_get_host_name ());

  for (char *c = host; *c; c++)
    if (!g_ascii_isalnum (*c) && *c != '.' && *c != '-')
      *c = '_';
  return host;
}

/* TRUE when PATH is a directory (not a link) with nothing in it. */
static gboolean
dir_empty (const char *path)
{
  g_autoptr (GDir) dir = NULL;

  if (g_file_test (path, G_FILE_TEST_IS_SYMLINK)
      || !(dir = g_dir_open (path, 0, NULL)))
    return FALSE;
  return g_dir_read_name (dir) == NULL;
}

/* TRUE when PATH (no format file) holds only what an init cut short
 * (a killed agent) leaves, so that init may finish it. */
static gboolean
interrupted_init (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (!dir)
    return FALSE;
  while ((name = g_dir_read_name (dir)))
    {
      g_autofree char *sub = g_build_filename (path, name, NULL);
      g_autoptr (GDir) inner = NULL;
      const char *leaf;

      if (!g_strv_contains (subdirs, name)
          || g_file_test (sub, G_FILE_TEST_IS_SYMLINK)
          || !(inner = g_dir_open (sub, 0, NULL)))
        return FALSE;
      while ((leaf = g_dir_read_name (inner)))
        {
          g_autofree char *f = g_build_filename (sub, leaf, NULL);

          if (!strcmp (name, "chunks") && strlen (leaf) == 2
              && g_ascii_isxdigit (leaf[0]) && g_ascii_isxdigit (leaf[1])
              && !g_ascii_isupper (leaf[0]) && !g_ascii_isupper (leaf[1])
              && dir_empty (f))
            continue;
          if (!strcmp (name, "tmp") && g_str_has_suffix (leaf, ".format")
              && g_file_test (f, G_FILE_TEST_IS_REGULAR))
            continue;
          return FALSE;
        }
    }
  return TRUE;
}

/* mkdir that accepts a directory already there (an init finished by a
 * second try, or two hosts making the same repository at once). */
static gboolean
mkdir_once (const char *path, GError **error)
{
  if (g_mkdir (path, 0755) == 0
      || (errno == EEXIST && g_file_test (path, G_FILE_TEST_IS_DIR)
          && !g_file_test (path, G_FILE_TEST_IS_SYMLINK)))
    return TRUE;
  return stor_repo_errno (error, errno, "create", path);
}

gboolean
stor_repo_init (const char *path, GError **error)
{
  g_autofree char *format = NULL;
  g_autofree char *tmp = NULL;
  StorRepo repo = { (char *)path, NULL };

  if (g_mkdir_with_parents (path, 0755) < 0)
    return stor_repo_errno (error, errno, "create repository", path);
  format = g_build_filename (path, STOR_REPO_FORMAT_FILE, NULL);
  /* Empty, or what an init killed before its format file left (then
   * this one finishes it). Anything else is refused. */
  if (!interrupted_init (path))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_EXISTS,
                   "cannot create a repository in %s: it is not empty", path);
      return FALSE;
    }
  for (guint i = 0; subdirs[i]; i++)
    {
      g_autofree char *sub = g_build_filename (path, subdirs[i], NULL);

      if (!mkdir_once (sub, error))
        return FALSE;
    }
  for (guint i = 0; i < 256; i++)
    {
      char name[3];
      g_autofree char *sub = NULL;

      g_snprintf (name, sizeof name, "%02x", i);
      sub = g_build_filename (path, "chunks", name, NULL);
      if (!mkdir_once (sub, error))
        return FALSE;
    }
  stor_repo_step ("init-dirs");
  /* The format file last: a repository without it is not one, so an
   * interrupted init is refused by open rather than half-used, and
   * finished by the next init. */
  repo.host = safe_host_name ();
  tmp = stor_repo_tmp_path (&repo, "format");
  g_free (repo.host);
  return stor_repo_write_file (tmp, format, STOR_REPO_FORMAT_LINE,
                               strlen (STOR_REPO_FORMAT_LINE), error);
}

StorRepo *
stor_repo_open (const char *path, GError **error)
{
  g_autofree char *format
      = g_build_filename (path, STOR_REPO_FORMAT_FILE, NULL);
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr (GError) local = NULL;
  StorRepo *repo;

  if (!stor_repo_read_capped (format, 256, &text, &len, &local))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "%s is not a Drover backup repository: %s", path,
                   local->message);
      return NULL;
    }
  if (strcmp (text, STOR_REPO_FORMAT_LINE) != 0)
    {
      g_autofree char *cut = g_strndup (text, 64);
      g_autofree char *esc = g_strescape (cut, NULL);

      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "%s is not a repository this Drover can use: its format "
                   "file says '%s', expected '%.*s'",
                   path, esc, (int)strlen (STOR_REPO_FORMAT_LINE) - 1,
                   STOR_REPO_FORMAT_LINE);
      return NULL;
    }
  for (guint i = 0; subdirs[i]; i++)
    {
      g_autofree char *sub = g_build_filename (path, subdirs[i], NULL);

      if (!g_file_test (sub, G_FILE_TEST_IS_DIR))
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                       "repository %s has no %s directory", path, subdirs[i]);
          return NULL;
        }
    }
  repo = g_new0 (StorRepo, 1);
  repo->path = g_strdup (path);
  repo->host = safe_host_name ();
  return repo;
}

void
stor_repo_free (StorRepo *repo)
{
  if (!repo)
    return;
  g_free (repo->path);
  g_free (repo->host);
  g_free (repo);
}

const char *
stor_repo_path (StorRepo *repo)
{
  return repo->path;
}

/* --- writers' registrations -------------------------------------------- */

void
stor_repo_writer_info_free (StorRepoWriterInfo *info)
{
  if (!info)
    return;
  g_free (info->file);
  g_free (info->host);
  g_free (info->backup);
  g_free (info->parent);
  g_free (info);
}

/* TRUE when process PID runs: a zombie (a killed agent its parent has
 * not reaped yet) is as good as gone. */
static gboolean
pid_alive (gint64 pid)
{
  g_autofree char *stat_path = NULL;
  g_autofree char *text = NULL;
  const char *end;

  if (pid <= 0 || pid > G_MAXINT
      || (kill ((pid_t)pid, 0) < 0 && errno != EPERM))
    return FALSE;
  stat_path = g_strdup_printf ("/proc/%" G_GINT64_FORMAT "/stat", pid);
  if (!g_file_get_contents (stat_path, &text, NULL, NULL))
    return TRUE; /* no /proc: trust kill */
  /* "PID (COMM) STATE ...": COMM may hold anything, the last ')' ends it. */
  end = strrchr (text, ')');
  return !(end && end[1] == ' ' && (end[2] == 'Z' || end[2] == 'X'));
}

gboolean
stor_repo_json_int (JsonObject *obj, const char *name, gint64 *value)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_INT64)
    return FALSE;
  *value = json_node_get_int (node);
  return TRUE;
}

static StorRepoWriterInfo *
writer_info_read (const char *file, GError **error)
{
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (StorRepoWriterInfo) info = g_new0 (StorRepoWriterInfo, 1);
  JsonNode *root;
  JsonObject *obj;
  const char *host, *backup, *parent;
  GStatBuf st;

  if (!stor_repo_read_capped (file, 4096, &text, &len, error))
    return NULL;
  if (g_stat (file, &st) < 0)
    {
      stor_repo_errno (error, errno, "stat", file);
      return NULL;
    }
  if (!json_parser_load_from_data (parser, text, len, NULL)
      || !(root = json_parser_get_root (parser))
      || !JSON_NODE_HOLDS_OBJECT (root))
    goto bad;
  obj = json_node_get_object (root);
  host = stor_json_string (obj, "host");
  backup = stor_json_string (obj, "backup");
  parent = stor_json_string (obj, "parent");
  if (!host || !backup || !stor_repo_json_int (obj, "pid", &info->pid)
      || !stor_repo_json_int (obj, "start", &info->start)
      || !stor_repo_id_validate (backup, NULL)
      || (parent && !stor_repo_id_validate (parent, NULL)))
    goto bad;
  info->file = g_strdup (file);
  info->host = g_strdup (host);
  info->backup = g_strdup (backup);
  info->parent = g_strdup (parent);
  info->mtime = st.st_mtime;
  return g_steal_pointer (&info);

bad:
  g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
               "writer registration %s is not valid", file);
  return NULL;
}

GPtrArray *
stor_repo_writers (StorRepo *repo, GPtrArray *stale, GError **error)
{
  g_autofree char *dirpath = stor_repo_sub (repo, "writers", NULL);
  g_autoptr (GDir) dir = g_dir_open (dirpath, 0, error);
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (
      (GDestroyNotify)stor_repo_writer_info_free);
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  const char *name;

  if (!dir)
    return NULL;
  while ((name = g_dir_read_name (dir)))
    {
      g_autofree char *file = g_build_filename (dirpath, name, NULL);
      g_autoptr (GError) local = NULL;
      g_autoptr (StorRepoWriterInfo) info = NULL;
      gboolean quiet, gone;

      if (!g_str_has_suffix (name, ".json"))
        continue;
      info = writer_info_read (file, &local);
      if (!info && g_error_matches (local, STOR_ERROR, STOR_ERROR_NOT_FOUND))
        continue; /* it committed or aborted while we listed */
      if (!info)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return NULL;
        }
      quiet = now - info->mtime > STOR_REPO_WRITER_STALE_S;
      gone = strcmp (info->host, repo->host) != 0 || !pid_alive (info->pid);
      if (quiet && gone)
        {
          if (stale)
            g_ptr_array_add (
                stale, g_strdup_printf (
                           "%s (backup %s, host %s, pid %" G_GINT64_FORMAT ")",
                           file, info->backup, info->host, info->pid));
          continue;
        }
      g_ptr_array_add (out, g_steal_pointer (&info));
    }
  return g_steal_pointer (&out);
}

/* Parses a temp or registration name HOST~PID~... into its host and pid. */
static gboolean
parse_owner (const char *name, char **host, gint64 *pid)
{
  g_auto (GStrv) parts = g_strsplit (name, "~", 3);

  if (g_strv_length (parts) != 3
      || !g_ascii_string_to_signed (parts[1], 10, 1, G_MAXINT, pid, NULL))
    return FALSE;
  *host = g_strdup (parts[0]);
  return TRUE;
}

/* A manifest a killed prune set aside (tmp/HOST~PID~X.ID.deleting, see
 * stor_repo_delete) goes back to backups/ when a running writer uses
 * it as its parent (the delete would have put it back: gc marks a
 * running writer's parent through its manifest); TRUE when it did. */
static gboolean
restore_deleting (StorRepo *repo, const char *name, const char *file)
{
  const char *rand = strrchr (name, '~');
  const char *dot = rand ? strchr (rand, '.') : NULL;
  g_autofree char *id = NULL;
  g_autofree char *json = NULL;
  g_autofree char *dest = NULL;
  g_autoptr (GPtrArray) writers = NULL;

  if (!dot || !g_str_has_suffix (name, ".deleting"))
    return FALSE;
  id = g_strndup (dot + 1, strlen (dot + 1) - strlen (".deleting"));
  if (!stor_repo_id_validate (id, NULL))
    return FALSE;
  writers = stor_repo_writers (repo, NULL, NULL);
  for (guint i = 0; writers && i < writers->len; i++)
    {
      StorRepoWriterInfo *w = g_ptr_array_index (writers, i);

      if (w->parent && strcmp (w->parent, id) == 0)
        {
          json = g_strconcat (id, ".json", NULL);
          dest = stor_repo_sub (repo, "backups", json, NULL);
          /* link: never over a manifest of that name. */
          return link (file, dest) == 0 && g_unlink (file) == 0;
        }
    }
  return FALSE;
}

gboolean
stor_repo_recover (StorRepo *repo, guint *removed, GError **error)
{
  const char *dirs[] = { "writers", "tmp", NULL };
  guint count = 0;

  for (guint i = 0; dirs[i]; i++)
    {
      g_autofree char *dirpath = stor_repo_sub (repo, dirs[i], NULL);
      g_autoptr (GDir) dir = g_dir_open (dirpath, 0, error);
      const char *name;

      if (!dir)
        return FALSE;
      while ((name = g_dir_read_name (dir)))
        {
          g_autofree char *host = NULL;
          g_autofree char *file = NULL;
          gint64 pid = 0;

          if (!parse_owner (name, &host, &pid) || strcmp (host, repo->host) != 0
              || pid_alive (pid))
            continue;
          file = g_build_filename (dirpath, name, NULL);
          if (i == 1 && restore_deleting (repo, name, file))
            continue;
          if (g_unlink (file) < 0 && errno != ENOENT)
            return stor_repo_errno (error, errno, "remove", file);
          count++;
        }
    }
  if (removed)
    *removed = count;
  return TRUE;
}

/* --- state ------------------------------------------------------------- */

gboolean
stor_repo_state_write (StorRepo *repo, const char *name, const char *key1,
                       gint64 val1, const char *key2, gint64 val2,
                       GError **error)
{
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autofree char *dest = stor_repo_sub (repo, "state", file, NULL);
  g_autofree char *tmp = stor_repo_tmp_path (repo, "state");
  g_autofree char *text = g_strdup_printf ("{\"%s\": %" G_GINT64_FORMAT
                                           ", \"%s\": %" G_GINT64_FORMAT "}\n",
                                           key1, val1, key2, val2);

  return stor_repo_write_file (tmp, dest, text, strlen (text), error);
}

gint64
stor_repo_state_read (StorRepo *repo, const char *name, const char *key)
{
  g_autofree char *file = g_strconcat (name, ".json", NULL);
  g_autofree char *path = stor_repo_sub (repo, "state", file, NULL);
  g_autofree char *text = NULL;
  g_autoptr (JsonParser) parser = json_parser_new ();
  JsonNode *root;
  gsize len = 0;
  gint64 value = 0;

  if (!stor_repo_read_capped (path, 4096, &text, &len, NULL)
      || !json_parser_load_from_data (parser, text, len, NULL)
      || !(root = json_parser_get_root (parser))
      || !JSON_NODE_HOLDS_OBJECT (root)
      || !stor_repo_json_int (json_node_get_object (root), key, &value))
    return 0;
  return value;
}

/* --- digests as hash keys ---------------------------------------------- */

static guint
digest_hash (gconstpointer key)
{
  guint h;

  memcpy (&h, key, sizeof h); /* SHA-256 output is already uniform */
  return h;
}

static gboolean
digest_equal (gconstpointer a, gconstpointer b)
{
  return memcmp (a, b, STOR_REPO_DIGEST_SIZE) == 0;
}

GHashTable *
stor_repo_digest_table_new (GDestroyNotify value_free)
{
  return g_hash_table_new_full (digest_hash, digest_equal, g_free, value_free);
}
