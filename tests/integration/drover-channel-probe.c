/* drover-channel-probe: a hostile peer for the attack tests. It speaks the
 * agents' migration channel with the credentials it is given, so that a
 * test can present a token with the wrong certificate, present it twice,
 * or carry a local program's libvirt connection through a control stream
 * that was accepted.
 *
 *   drover-channel-probe --tls-dir DIR --connect IP:PORT --kind KIND
 *                        --token TOKEN [--unix PATH]
 *
 * Without --unix it only says whether the HELLO was accepted. With --unix
 * it then listens on PATH, takes one connection (e.g. virsh's) and carries
 * it through the channel until either side ends.
 * Prints "hello: accepted" or "hello: refused: MESSAGE", and with --unix
 * "stream: ended" or "stream: failed: MESSAGE". Exit status: 0 accepted
 * (and, with --unix, the stream ended cleanly), 3 refused, 4 the stream
 * failed, 2 usage, 1 anything else. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mig-channel.h"

static int
unix_accept_one (const char *path, GError **error)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int lfd, fd;

  if (strlen (path) >= sizeof sa.sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "socket path too long: %s", path);
      return -1;
    }
  strcpy (sa.sun_path, path);
  lfd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink (path);
  if (lfd < 0 || bind (lfd, (struct sockaddr *)&sa, sizeof sa) < 0
      || listen (lfd, 1) < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "cannot listen on %s: %s", path, g_strerror (errno));
      if (lfd >= 0)
        close (lfd);
      return -1;
    }
  printf ("listening: %s\n", path);
  fflush (stdout);
  fd = accept4 (lfd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0)
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                 "accept on %s: %s", path, g_strerror (errno));
  close (lfd);
  unlink (path);
  return fd;
}

int
main (int argc, char **argv)
{
  g_autofree char *tls_dir = NULL, *connect = NULL, *kind_name = NULL;
  g_autofree char *token = NULL, *unix_path = NULL;
  GOptionEntry entries[] = {
    { "tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &tls_dir, "Certificate", "DIR" },
    { "connect", 0, 0, G_OPTION_ARG_STRING, &connect, "Listener", "IP:PORT" },
    { "kind", 0, 0, G_OPTION_ARG_STRING, &kind_name, "Stream kind",
      "control|memory|disk" },
    { "token", 0, 0, G_OPTION_ARG_STRING, &token, "HELLO token", "TOKEN" },
    { "unix", 0, 0, G_OPTION_ARG_FILENAME, &unix_path,
      "Carry one connection to this unix socket", "PATH" },
    { NULL }
  };
  g_autoptr (GOptionContext) opts = g_option_context_new ("- channel probe");
  g_autoptr (MigChannelCreds) creds = NULL;
  g_autoptr (MigChannel) ch = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *host = NULL;
  const char *colon;
  MigChannelKind kind;
  guint64 port;
  int fd;

  g_option_context_add_main_entries (opts, entries, NULL);
  if (!g_option_context_parse (opts, &argc, &argv, &error) || !tls_dir
      || !connect || !kind_name || !token
      || (colon = strrchr (connect, ':')) == NULL
      || !g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &port, NULL))
    {
      fprintf (stderr, "usage: drover-channel-probe --tls-dir DIR --connect "
                       "IP:PORT --kind KIND --token TOKEN [--unix PATH]\n");
      return 2;
    }
  if (strcmp (kind_name, "control") == 0)
    kind = MIG_CHANNEL_KIND_CONTROL;
  else if (strcmp (kind_name, "memory") == 0)
    kind = MIG_CHANNEL_KIND_MEMORY;
  else if (strcmp (kind_name, "disk") == 0)
    kind = MIG_CHANNEL_KIND_DISK;
  else
    return 2;
  host = g_strndup (connect, colon - connect);
  creds = mig_channel_creds_new (tls_dir, &error);
  if (creds == NULL)
    {
      fprintf (stderr, "drover-channel-probe: %s\n", error->message);
      return 1;
    }
  ch = mig_channel_connect (creds, host, (guint16)port, kind, token, NULL,
                            &error);
  if (ch == NULL)
    {
      printf ("hello: refused: %s\n", error->message);
      return 3;
    }
  printf ("hello: accepted\n");
  fflush (stdout);
  if (unix_path == NULL)
    return 0;
  fd = unix_accept_one (unix_path, &error);
  if (fd < 0 || !mig_channel_start (ch, fd, NULL, NULL, NULL, &error)
      || !mig_channel_wait (ch, &error))
    {
      printf ("stream: failed: %s\n", error->message);
      return 4;
    }
  printf ("stream: ended\n");
  return 0;
}
