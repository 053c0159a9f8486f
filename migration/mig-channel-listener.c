/* MigChannelListener: accepts peer agents' channels.
 *
 * One accept thread (blocking accept, cancellable) and one short-lived
 * thread per connection for TLS + HELLO, so a slow or hostile client
 * cannot hold up others; each handshake has a timeout. No GMainContext is
 * needed.
 */
#include "mig-channel-private.h"

struct _MigChannelListener
{
  MigChannelListenerConfig config; /* creds referenced, address copied */
  char *address;
  GSocketListener *listener;
  guint16 port;
  GCancellable *cancel;
  GThread *accept_thread;

  GMutex lock; /* guards handshakes */
  GCond cond;
  guint handshakes; /* handshake threads still running */
};

typedef struct
{
  MigChannelListener *l;
  GSocketConnection *conn;
} Handshake;

static gboolean
auth_with_tokens (MigChannelKind kind, const char *token, gpointer user_data,
                  GError **error)
{
  return mig_token_table_consume (user_data, kind, token, error);
}

static void
refuse (MigChannelListener *l, GError *error, const char *peer)
{
  g_prefix_error (&error, "channel from %s: ", peer);
  if (l->config.refused != NULL)
    l->config.refused (error, l->config.user_data);
  g_error_free (error);
}

static gpointer
handshake_thread (gpointer data)
{
  Handshake *hs = data;
  MigChannelListener *l = hs->l;
  GSocket *socket = g_socket_connection_get_socket (hs->conn);
  g_autoptr (GSocketAddress) remote = NULL;
  g_autofree char *peer = NULL;
  MigTransport *transport;
  MigChannel *ch;
  GError *error = NULL;

  remote = g_socket_connection_get_remote_address (hs->conn, NULL);
  if (remote != NULL && G_IS_INET_SOCKET_ADDRESS (remote))
    {
      g_autofree char *ip = g_inet_address_to_string (
          g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (remote)));
      peer = g_strdup_printf (
          "%s:%u", ip,
          g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (remote)));
    }
  else
    peer = g_strdup ("unknown peer");

  mig_channel_socket_tune (socket);
  g_socket_set_timeout (socket, l->config.handshake_timeout_s);
  if (l->config.creds != NULL)
    {
      transport = mig_transport_tls_server (l->config.creds, hs->conn,
                                            l->config.handshake_timeout_s,
                                            l->cancel, &error);
      if (transport == NULL)
        {
          g_prefix_error (&error, "TLS handshake: ");
          refuse (l, error, peer);
          goto out;
        }
    }
  else
    transport = mig_transport_socket_new (G_IO_STREAM (hs->conn));
  if (l->config.wrap != NULL)
    transport = l->config.wrap (transport, l->config.user_data);
  mig_transport_set_timeout (transport, l->config.handshake_timeout_s);
  ch = mig_channel_new_server (
      transport, l->config.auth != NULL ? l->config.auth : auth_with_tokens,
      l->config.auth != NULL ? l->config.user_data : l->config.tokens,
      l->cancel, &error);
  if (ch == NULL)
    {
      refuse (l, error, peer);
      goto out;
    }
  l->config.accept (ch, l->config.user_data);

out:
  g_object_unref (hs->conn);
  g_free (hs);
  g_mutex_lock (&l->lock);
  l->handshakes--;
  g_cond_broadcast (&l->cond);
  g_mutex_unlock (&l->lock);
  return NULL;
}

static gpointer
accept_thread (gpointer data)
{
  MigChannelListener *l = data;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      GSocketConnection *conn
          = g_socket_listener_accept (l->listener, NULL, l->cancel, &error);
      Handshake *hs;

      if (conn == NULL)
        {
          if (g_cancellable_is_cancelled (l->cancel))
            break;
          /* EMFILE and friends: report, back off, keep serving. */
          if (l->config.refused != NULL)
            l->config.refused (error, l->config.user_data);
          g_usleep (50 * 1000);
          continue;
        }
      hs = g_new0 (Handshake, 1);
      hs->l = l;
      hs->conn = conn;
      g_mutex_lock (&l->lock);
      l->handshakes++;
      g_mutex_unlock (&l->lock);
      g_thread_unref (g_thread_new ("mig-chan-hs", handshake_thread, hs));
    }
  return NULL;
}

MigChannelListener *
mig_channel_listener_new (const MigChannelListenerConfig *config,
                          GError **error)
{
  g_autoptr (MigChannelListener) l = g_new0 (MigChannelListener, 1);
  g_autoptr (GSocketAddress) addr = NULL;
  g_autoptr (GSocketAddress) effective = NULL;

  g_return_val_if_fail (config->accept != NULL, NULL);
  g_return_val_if_fail (config->auth != NULL || config->tokens != NULL, NULL);

  g_mutex_init (&l->lock);
  g_cond_init (&l->cond);
  l->config = *config;
  l->address
      = g_strdup (config->address != NULL ? config->address : "127.0.0.1");
  l->config.address = l->address;
  if (l->config.creds != NULL)
    mig_channel_creds_ref (l->config.creds);
  if (l->config.handshake_timeout_s == 0)
    l->config.handshake_timeout_s = 10;
  l->cancel = g_cancellable_new ();
  l->listener = g_socket_listener_new ();

  addr = g_inet_socket_address_new_from_string (l->address, config->port);
  if (addr == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "bad listen address %s", l->address);
      return NULL;
    }
  if (!g_socket_listener_add_address (l->listener, addr, G_SOCKET_TYPE_STREAM,
                                      G_SOCKET_PROTOCOL_TCP, NULL, &effective,
                                      error))
    {
      g_prefix_error (error, "listening on %s:%u: ", l->address, config->port);
      return NULL;
    }
  l->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (effective));
  l->accept_thread = g_thread_new ("mig-chan-accept", accept_thread, l);
  return g_steal_pointer (&l);
}

guint16
mig_channel_listener_get_port (MigChannelListener *l)
{
  return l->port;
}

void
mig_channel_listener_free (MigChannelListener *l)
{
  if (l == NULL)
    return;
  g_cancellable_cancel (l->cancel);
  if (l->accept_thread != NULL)
    g_thread_join (l->accept_thread);
  if (l->listener != NULL)
    g_socket_listener_close (l->listener);
  g_mutex_lock (&l->lock);
  while (l->handshakes > 0)
    g_cond_wait (&l->cond, &l->lock);
  g_mutex_unlock (&l->lock);
  g_clear_object (&l->listener);
  g_clear_object (&l->cancel);
  mig_channel_creds_unref (l->config.creds);
  g_free (l->address);
  g_mutex_clear (&l->lock);
  g_cond_clear (&l->cond);
  g_free (l);
}
