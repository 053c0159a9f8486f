/* mig-relay: one migration stream by hand, for attack tests.
 *
 *   mig-relay --tls-dir DIR --to HOST:PORT --peer-host NAME --token TOKEN
 *             [--kind control|memory|disk] --socket PATH
 *
 * Listens on unix socket PATH and carries the first connection made
 * there to a destination agent's migration listener, as a source agent
 * would: a MigChannel of KIND with TOKEN (from PrepareIncoming), over TLS
 * with the certificate in DIR, to a listener whose certificate must be
 * host NAME's. With a control stream, `virsh -c
 * 'qemu+unix:///system?socket=PATH' list` then talks to the destination's
 * libvirtd through the destination's filter, which refuses it. Exits 0
 * when the stream ended cleanly, 1 with the channel's error on stderr
 * (e.g. "peer aborted the stream: libvirt control stream: remote
 * procedure 273 is not part of a migration"), 2 on bad arguments. */
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig-channel.h"

static const char *const kinds[] = { NULL, "control", "memory", "disk" };

int
main (int argc, char **argv)
{
  g_autofree char *tls_dir = NULL, *to = NULL, *peer_host = NULL;
  g_autofree char *token = NULL, *kind_name = NULL, *path = NULL;
  GOptionEntry entries[]
      = { { "tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &tls_dir, "Our certificate",
            "DIR" },
          { "to", 0, 0, G_OPTION_ARG_STRING, &to, "Migration listener",
            "HOST:PORT" },
          { "peer-host", 0, 0, G_OPTION_ARG_STRING, &peer_host,
            "Host the listener's certificate must name", "NAME" },
          { "token", 0, 0, G_OPTION_ARG_STRING, &token, "From PrepareIncoming",
            "TOKEN" },
          { "kind", 0, 0, G_OPTION_ARG_STRING, &kind_name,
            "control (default), memory or disk", "KIND" },
          { "socket", 0, 0, G_OPTION_ARG_FILENAME, &path,
            "Unix socket to listen on", "PATH" },
          { NULL } };
  g_autoptr (GOptionContext) opts
      = g_option_context_new ("- one migration stream");
  g_autoptr (GError) error = NULL;
  g_autoptr (MigChannelCreds) creds = NULL;
  g_autoptr (GSocket) listener = NULL, local = NULL;
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (MigTransport) transport = NULL;
  g_autoptr (MigChannel) channel = NULL;
  MigChannelKind kind = MIG_CHANNEL_KIND_CONTROL;
  const char *colon;
  guint64 port;

  g_option_context_add_main_entries (opts, entries, NULL);
  if (!g_option_context_parse (opts, &argc, &argv, &error) || !tls_dir || !to
      || !token || !path || !(colon = strrchr (to, ':'))
      || !g_ascii_string_to_unsigned (colon + 1, 10, 1, 65535, &port, NULL))
    {
      g_printerr ("mig-relay: --tls-dir, --to HOST:PORT, --token and "
                  "--socket are required\n");
      return 2;
    }
  for (guint k = MIG_CHANNEL_KIND_CONTROL;
       kind_name && k < G_N_ELEMENTS (kinds); k++)
    if (strcmp (kind_name, kinds[k]) == 0)
      kind = k;
  creds = mig_channel_creds_new (tls_dir, &error);
  if (!creds)
    goto fail;
  listener = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                           G_SOCKET_PROTOCOL_DEFAULT, &error);
  (void)g_unlink (path);
  addr = g_unix_socket_address_new (path);
  if (!listener || !g_socket_bind (listener, addr, FALSE, &error)
      || !g_socket_listen (listener, &error))
    goto fail;
  g_print ("listening on %s\n", path);
  local = g_socket_accept (listener, NULL, &error);
  if (!local)
    goto fail;
  {
    g_autofree char *host = g_strndup (to, colon - to);

    transport = mig_transport_connect_host (creds, host, port, peer_host, NULL,
                                            &error);
  }
  channel = transport ? mig_channel_new_client (g_steal_pointer (&transport),
                                                kind, token, NULL, &error)
                      : NULL;
  if (!channel
      || !mig_channel_start (channel, dup (g_socket_get_fd (local)), NULL, NULL,
                             NULL, &error)
      || !mig_channel_wait (channel, &error))
    goto fail;
  (void)g_unlink (path);
  return 0;

fail:
  (void)g_unlink (path);
  g_printerr ("mig-relay: %s\n", error->message);
  return 1;
}
