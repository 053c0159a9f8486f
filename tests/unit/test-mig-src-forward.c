/* The sockets the source agent makes for a migration are not for anyone
 * on the host: the control socket is root's only (libvirtd), the memory
 * and disk sockets root's and QEMU's group's, and a process that is not
 * root or QEMU's user cannot have its connection carried even if it got
 * one. Needs root (to give sockets away and to become other users). */
#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mig-src-private.h"

#define QEMU_UID 65534 /* nobody plays QEMU */
#define QEMU_GID 4242
#define OTHER_UID 65533

typedef struct
{
  GMutex lock;
  guint errors; /* streams the forwarder tried to carry and could not */
} Seen;

static void
on_error (const GError *error, gpointer data)
{
  Seen *seen = data;

  g_mutex_lock (&seen->lock);
  seen->errors++;
  g_mutex_unlock (&seen->lock);
}

/* In a child process running as UID: connects to PATH and reads until
 * EOF. Exit status: 0 read EOF, 1 connect refused by the file mode, 2
 * anything else. */
static int
connect_as (uid_t uid, const char *path)
{
  pid_t pid = fork ();
  int status = 0;

  g_assert_cmpint (pid, >=, 0);
  if (pid == 0)
    {
      struct sockaddr_un sa = { .sun_family = AF_UNIX };
      int fd;
      char c;

      if (setgid (uid) < 0 || setuid (uid) < 0)
        _exit (2);
      strcpy (sa.sun_path, path);
      fd = socket (AF_UNIX, SOCK_STREAM, 0);
      if (connect (fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        _exit (errno == EACCES ? 1 : 2);
      _exit (read (fd, &c, 1) == 0 ? 0 : 2);
    }
  g_assert_cmpint (waitpid (pid, &status, 0), ==, pid);
  g_assert_true (WIFEXITED (status));
  return WEXITSTATUS (status);
}

static void
assert_owner (const char *path, mode_t mode, gid_t gid)
{
  struct stat st;

  g_assert_cmpint (stat (path, &st), ==, 0);
  g_assert_true (S_ISSOCK (st.st_mode));
  g_assert_cmpint (st.st_mode & 07777, ==, mode);
  g_assert_cmpuint (st.st_uid, ==, 0);
  g_assert_cmpuint (st.st_gid, ==, gid);
}

static void
test_socket_modes (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GCancellable) stop = g_cancellable_new ();
  g_autofree char *dir = NULL, *ctl = NULL, *mem = NULL;
  MigSrcConfig config = { 0 };
  MigSrcForwardConfig fc = { 0 };
  MigSrcForward *control, *memory;
  MigChannelStats stats;
  Seen seen = { 0 };

  if (geteuid () != 0)
    {
      g_test_skip ("needs root to give sockets away and to switch users");
      return;
    }
  dir = g_dir_make_tmp ("test-mig-src-forward-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (dir, 0755), ==, 0);
  ctl = g_build_filename (dir, "ctl.sock", NULL);
  mem = g_build_filename (dir, "mem.sock", NULL);
  g_mutex_init (&seen.lock);
  config.job_id = "j1";
  config.channel_host = "127.0.0.1";
  config.channel_port = 1; /* nobody listens: a carried stream fails */
  config.token = "t";
  config.qemu_uid = QEMU_UID;
  config.qemu_gid = QEMU_GID;
  fc.config = &config;
  fc.vm = "vm";
  fc.t0 = g_get_monotonic_time ();
  fc.stop = stop;
  fc.error_func = on_error;
  fc.user_data = &seen;
  control = mig_src_forward_new (&fc, MIG_CHANNEL_KIND_CONTROL, g_strdup (ctl),
                                 FALSE, &error);
  g_assert_no_error (error);
  memory = mig_src_forward_new (&fc, MIG_CHANNEL_KIND_MEMORY, g_strdup (mem),
                                FALSE, &error);
  g_assert_no_error (error);

  assert_owner (ctl, 0600, 0);
  assert_owner (mem, 0660, QEMU_GID);
  /* A local user who is not QEMU's cannot even connect. */
  g_assert_cmpint (connect_as (OTHER_UID, ctl), ==, 1);
  g_assert_cmpint (connect_as (OTHER_UID, mem), ==, 1);

  /* Had one connected anyway (before the mode was set), the stream is
   * not carried: the connection is closed, nothing goes out. */
  g_assert_cmpint (g_chmod (mem, 0666), ==, 0);
  g_assert_cmpint (g_chmod (ctl, 0666), ==, 0);
  g_assert_cmpint (connect_as (OTHER_UID, mem), ==, 0);
  g_assert_cmpint (connect_as (QEMU_UID, ctl), ==, 0);
  g_assert_false (mig_src_forward_get_stats (memory, &stats));
  g_mutex_lock (&seen.lock);
  g_assert_cmpuint (seen.errors, ==, 0);
  g_mutex_unlock (&seen.lock);

  /* QEMU's user may: its stream is carried (and fails, nobody listens
   * on the destination port). */
  g_assert_cmpint (connect_as (QEMU_UID, mem), ==, 0);
  g_mutex_lock (&seen.lock);
  g_assert_cmpuint (seen.errors, ==, 1);
  g_mutex_unlock (&seen.lock);

  g_cancellable_cancel (stop);
  mig_src_forward_free (control);
  mig_src_forward_free (memory);
  g_assert_false (g_file_test (ctl, G_FILE_TEST_EXISTS));
  g_rmdir (dir);
  g_mutex_clear (&seen.lock);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mig/src-forward/socket-modes", test_socket_modes);
  return g_test_run ();
}
