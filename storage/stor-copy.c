/* Copies of VM disk images: a full, independent copy of a qcow2 chain
 * (qemu-img convert) and a linked copy (a qcow2 overlay on a base that is
 * never written again).
 *
 * Either result appears under its final name only when it is whole: it
 * is made as NAME.part, synced and renamed, and a failure or a cancel
 * removes NAME.part. An agent killed midway leaves at most NAME.part,
 * which its start-up cleanup removes. */
#include "stor-private.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* qemu-img's error text is for the operator; cap what we keep of it. */
#define STDERR_MAX (16 * 1024)

char *
stor_copy_temp_path (const char *dst)
{
  return g_strconcat (dst, ".part", NULL);
}

gboolean
stor_copy_measure (const char *src, guint64 *required, GError **error)
{
  const char *argv[]
      = { "qemu-img", "measure", "--output=json", "-O", "qcow2", "-f", "qcow2",
          src,        NULL };
  g_autofree char *out = NULL;
  g_autoptr (GRegex) re = NULL;
  g_autoptr (GMatchInfo) m = NULL;
  g_autofree char *num = NULL;

  if (!stor_run_tool (argv, "qemu-img measure", &out, error))
    {
      g_prefix_error (error, "cannot measure %s: ", src);
      return FALSE;
    }
  /* One flat JSON object of numbers: a regex is enough. */
  re = g_regex_new ("\"required\"\\s*:\\s*([0-9]+)", 0, 0, NULL);
  if (!g_regex_match (re, out, 0, &m) || !(num = g_match_info_fetch (m, 1))
      || !g_ascii_string_to_unsigned (num, 10, 0, G_MAXUINT64, required, NULL))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "cannot measure %s: qemu-img measure said nothing usable",
                   src);
      return FALSE;
    }
  return TRUE;
}

/* Refuses an existing DST and a filesystem with less than NEED bytes
 * plus STOR_MIN_FREE_SPACE available. */
static gboolean
check_target (const char *dst, guint64 need, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (dst);

  if (g_file_test (dst, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_EXISTS,
                   "disk image %s already exists", dst);
      return FALSE;
    }
  return stor_space_check (dir, need, "a copy", error);
}

gboolean
stor_fsync_path (const char *path, gboolean dir, GError **error)
{
  int fd = open (path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  int saved;

  if (fd >= 0 && fsync (fd) == 0)
    {
      close (fd);
      return TRUE;
    }
  saved = errno;
  if (fd >= 0)
    close (fd);
  g_set_error (error, STOR_ERROR,
               saved == ENOSPC || saved == EDQUOT ? STOR_ERROR_NO_SPACE
                                                  : STOR_ERROR_FAILED,
               "cannot sync %s: %s", path, g_strerror (saved));
  return FALSE;
}

/* Syncs TMP, renames it to DST and syncs their directory; removes TMP on
 * failure. */
static gboolean
commit_temp (const char *tmp, const char *dst, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (dst);

  if (!stor_fsync_path (tmp, FALSE, error))
    goto fail;
  /* link() rather than rename(): it refuses a DST that appeared
   * meanwhile instead of replacing it. */
  if (link (tmp, dst) < 0)
    {
      int saved = errno;

      g_set_error (error, STOR_ERROR,
                   saved == EEXIST ? STOR_ERROR_EXISTS : STOR_ERROR_FAILED,
                   "cannot move %s to %s: %s", tmp, dst, g_strerror (saved));
      goto fail;
    }
  (void)g_unlink (tmp);
  return stor_fsync_path (dir, TRUE, error);

fail:
  (void)g_unlink (tmp);
  return FALSE;
}

/* qemu-img dies with the thread that started it (which waits for it): an
 * agent killed midway leaves no copy still being written behind it. */
static void
die_with_parent (gpointer data)
{
  (void)prctl (PR_SET_PDEATHSIG, SIGKILL);
}

/* "    (12.34/100%)": the percentage, or -1. */
static double
parse_percent (const char *line)
{
  const char *p = strchr (line, '(');
  char *end = NULL;
  double v;

  if (!p)
    return -1;
  v = g_ascii_strtod (p + 1, &end);
  if (end == p + 1 || *end != '/')
    return -1;
  return CLAMP (v, 0.0, 100.0);
}

/* Reads qemu-img's progress lines ("\r"-separated) from STREAM until EOF
 * and reports each as bytes of TOTAL. */
static gboolean
follow_progress (GInputStream *stream, guint64 total, GCancellable *cancellable,
                 StorCopyProgressFunc progress, gpointer user_data,
                 GError **error)
{
  g_autoptr (GString) line = g_string_new (NULL);
  char buf[512];

  for (;;)
    {
      gssize n
          = g_input_stream_read (stream, buf, sizeof buf, cancellable, error);

      if (n < 0)
        return FALSE;
      if (n == 0)
        return TRUE;
      for (gssize i = 0; i < n; i++)
        {
          double pct;

          if (buf[i] != '\r' && buf[i] != '\n')
            {
              /* Progress lines are short; anything else is not one. */
              if (line->len < 128)
                g_string_append_c (line, buf[i]);
              continue;
            }
          pct = parse_percent (line->str);
          g_string_truncate (line, 0);
          if (pct >= 0 && progress)
            progress ((guint64)(total * (pct / 100.0)), total, user_data);
        }
    }
}

gboolean
stor_copy_full (const char *src, const char *dst, GCancellable *cancellable,
                StorCopyProgressFunc progress, gpointer user_data,
                GError **error)
{
  g_autofree char *tmp = stor_copy_temp_path (dst);
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GError) local = NULL;
  g_autofree char *err_out = NULL;
  guint64 total = 0;
  gsize err_len = 0;
  gboolean ok;

  if (!g_file_test (src, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "cannot copy %s: no such image", src);
      return FALSE;
    }
  if (!stor_copy_measure (src, &total, error)
      || !check_target (dst, total, error))
    return FALSE;
  /* A leftover of a copy killed earlier is not ours to keep. */
  (void)g_unlink (tmp);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                        | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_set_child_setup (launcher, die_with_parent, NULL, NULL);
  proc = g_subprocess_launcher_spawn (launcher, &local, "qemu-img", "convert",
                                      "-p", "-f", "qcow2", "-O", "qcow2", src,
                                      tmp, NULL);
  if (!proc)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "cannot run qemu-img: %s", local->message);
      return FALSE;
    }
  ok = follow_progress (g_subprocess_get_stdout_pipe (proc), total, cancellable,
                        progress, user_data, &local);
  if (!ok)
    {
      /* Cancelled (or the pipe broke): stop qemu-img before cleaning. */
      g_subprocess_force_exit (proc);
      (void)g_subprocess_wait (proc, NULL, NULL);
      (void)g_unlink (tmp);
      g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                  "copy of %s stopped: ", src);
      return FALSE;
    }
  err_out = g_malloc0 (STDERR_MAX + 1);
  (void)g_input_stream_read_all (g_subprocess_get_stderr_pipe (proc), err_out,
                                 STDERR_MAX, &err_len, NULL, NULL);
  if (!g_subprocess_wait_check (proc, NULL, &local))
    {
      (void)g_unlink (tmp);
      g_strchomp (err_out);
      g_set_error (error, STOR_ERROR,
                   strstr (err_out, "No space left") ? STOR_ERROR_NO_SPACE
                                                     : STOR_ERROR_FAILED,
                   "copy of %s to %s failed (%s)%s%s", src, dst, local->message,
                   *err_out ? ": " : "", err_out);
      return FALSE;
    }
  if (!commit_temp (tmp, dst, error))
    return FALSE;
  if (progress)
    progress (total, total, user_data);
  return TRUE;
}

gboolean
stor_copy_linked (const char *base, const char *dst, guint64 size,
                  GError **error)
{
  g_autofree char *tmp = stor_copy_temp_path (dst);
  g_autofree char *size_str = g_strdup_printf ("%" G_GUINT64_FORMAT, size);
  const char *argv[] = { "qemu-img", "create", "-q", "-f", "qcow2",  "-F",
                         "qcow2",    "-b",     base, tmp,  size_str, NULL };

  if (!g_path_is_absolute (base) || !g_file_test (base, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "cannot make an overlay on %s: no such image", base);
      return FALSE;
    }
  if (size == 0)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "refusing to make an empty overlay at %s", dst);
      return FALSE;
    }
  if (!check_target (dst, stor_disk_space_needed (size) - STOR_MIN_FREE_SPACE,
                     error))
    return FALSE;
  (void)g_unlink (tmp);
  if (!stor_run_tool (argv, "qemu-img create", NULL, error))
    {
      (void)g_unlink (tmp);
      g_prefix_error (error, "cannot make an overlay on %s: ", base);
      return FALSE;
    }
  return commit_temp (tmp, dst, error);
}
