/* MigChannelListener: accepts peer agents' channels.
 *
 * One accept thread (blocking accept, cancellable) and one short-lived
 * thread per connection for TLS + HELLO, so a slow or hostile client
 * cannot hold up others. Until its HELLO is accepted a peer is unknown:
 * at most max_handshakes connections are handshaking at once (more are
 * closed as they come), and each handshake must finish within its
 * timeout as a whole (a timer thread cancels it then), not only between
 * two bytes.
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

  GMainContext *timer_ctx; /* handshake deadlines, run by timer_thread */
  GMainLoop *timer_loop;
  GThread *timer_thread;

  GMutex lock; /* guards handshakes and config.creds */
  GCond cond;
  guint handshakes; /* handshake threads still running */
};

typedef struct
{
  MigChannelListener *l;
  GSocketConnection *conn;
  GCancellable *cancel; /* this handshake: the listener's or the deadline */
} Handshake;

static gboolean
auth_with_tokens (MigChannelKind kind, const char *token,
                  const MigChannelPeer *peer, gpointer user_data,
                  GError **error)
{
  return mig_token_table_consume (user_data, kind, token, peer, NULL, error);
}

static gboolean
on_deadline (gpointer data)
{
  g_cancellable_cancel (data);
  return G_SOURCE_REMOVE;
}

static gboolean
quit_timer (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static void
cancel_handshake (GCancellable *listener_cancel, gpointer data)
{
  g_cancellable_cancel (data);
}

static gpointer
timer_thread (gpointer data)
{
  MigChannelListener *l = data;

  g_main_context_push_thread_default (l->timer_ctx);
  g_main_loop_run (l->timer_loop);
  g_main_context_pop_thread_default (l->timer_ctx);
  return NULL;
}

static void
refuse (MigChannelListener *l, GError *error, const char *peer)
{
  g_prefix_error (&error, "channel from %s: ", peer);
  if (l->config.refused != NULL)
    l->config.refused (error, l->config.user_data);
  g_error_free (error);
}

/* TLS and HELLO on one connection, within the handshake timeout. */
static MigChannel *
handshake (Handshake *hs, MigChannelCreds *creds, GError **error)
{
  MigChannelListener *l = hs->l;
  MigChannelPeer peer = { FALSE, PROTO_ROLE_NONE, NULL, NULL };
  MigTransport *transport;

  if (creds != NULL)
    {
      transport = mig_transport_tls_server (
          creds, hs->conn, l->config.handshake_timeout_s, hs->cancel, error);
      if (transport == NULL)
        {
          g_prefix_error (error, "TLS handshake: ");
          return NULL;
        }
      mig_transport_tls_get_peer (transport, &peer);
    }
  else
    transport = mig_transport_socket_new (G_IO_STREAM (hs->conn));
  if (l->config.wrap != NULL)
    transport = l->config.wrap (transport, l->config.user_data);
  mig_transport_set_timeout (transport, l->config.handshake_timeout_s);
  /* PEER points into the TLS transport, which the handshake owns. */
  return mig_channel_new_server (
      transport, &peer,
      l->config.auth != NULL ? l->config.auth : auth_with_tokens,
      l->config.auth != NULL ? l->config.user_data : l->config.tokens,
      hs->cancel, error);
}

static gpointer
handshake_thread (gpointer data)
{
  Handshake *hs = data;
  MigChannelListener *l = hs->l;
  g_autoptr (GSocketAddress) remote = NULL;
  g_autoptr (MigChannelCreds) creds = NULL;
  g_autofree char *peer = NULL;
  GSource *deadline;
  gulong cancel_id;
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

  g_mutex_lock (&l->lock);
  if (l->config.creds != NULL)
    creds = mig_channel_creds_ref (l->config.creds);
  g_mutex_unlock (&l->lock);
  cancel_id = g_cancellable_connect (l->cancel, G_CALLBACK (cancel_handshake),
                                     hs->cancel, NULL);
  deadline = g_timeout_source_new_seconds (l->config.handshake_timeout_s);
  g_source_set_callback (deadline, on_deadline, g_object_ref (hs->cancel),
                         g_object_unref);
  g_source_attach (deadline, l->timer_ctx);

  mig_channel_socket_tune (g_socket_connection_get_socket (hs->conn));
  g_socket_set_timeout (g_socket_connection_get_socket (hs->conn),
                        l->config.handshake_timeout_s);
  ch = handshake (hs, creds, &error);

  g_source_destroy (deadline);
  g_source_unref (deadline);
  g_cancellable_disconnect (l->cancel, cancel_id);
  /* Cancelled, and not by the listener: by the deadline. */
  if (ch == NULL && g_cancellable_is_cancelled (hs->cancel)
      && !g_cancellable_is_cancelled (l->cancel))
    {
      /* Whichever wait noticed it, the handshake ran out of time. */
      g_clear_error (&error);
      g_set_error (&error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                   "handshake not done within %u s",
                   l->config.handshake_timeout_s);
    }
  if (ch == NULL)
    refuse (l, error, peer);
  else
    l->config.accept (ch, l->config.user_data);

  g_object_unref (hs->conn);
  g_object_unref (hs->cancel);
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
      gboolean busy;

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
      g_mutex_lock (&l->lock);
      busy = l->handshakes >= l->config.max_handshakes;
      if (!busy)
        l->handshakes++;
      g_mutex_unlock (&l->lock);
      if (busy)
        {
          g_autoptr (GError) refusal
              = g_error_new (MIG_ERROR, MIG_ERROR_CHANNEL_AUTH,
                             "%u connections are handshaking already; closed",
                             l->config.max_handshakes);

          g_io_stream_close (G_IO_STREAM (conn), NULL, NULL);
          g_object_unref (conn);
          refuse (l, g_steal_pointer (&refusal), "a peer");
          continue;
        }
      hs = g_new0 (Handshake, 1);
      hs->l = l;
      hs->conn = conn;
      hs->cancel = g_cancellable_new ();
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
  if (l->config.max_handshakes == 0)
    l->config.max_handshakes = MIG_LISTENER_MAX_HANDSHAKES;
  l->cancel = g_cancellable_new ();
  l->timer_ctx = g_main_context_new ();
  l->timer_loop = g_main_loop_new (l->timer_ctx, FALSE);
  l->timer_thread = g_thread_new ("mig-chan-timer", timer_thread, l);
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
mig_channel_listener_set_creds (MigChannelListener *l, MigChannelCreds *creds)
{
  MigChannelCreds *old;

  g_mutex_lock (&l->lock);
  old = l->config.creds;
  l->config.creds = creds ? mig_channel_creds_ref (creds) : NULL;
  g_mutex_unlock (&l->lock);
  mig_channel_creds_unref (old);
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
  if (l->timer_thread != NULL)
    {
      GSource *quit = g_idle_source_new ();

      /* From the loop itself, so that a loop not running yet stops too. */
      g_source_set_callback (quit, quit_timer, l->timer_loop, NULL);
      g_source_attach (quit, l->timer_ctx);
      g_source_unref (quit);
      g_thread_join (l->timer_thread);
    }
  g_clear_pointer (&l->timer_loop, g_main_loop_unref);
  g_clear_pointer (&l->timer_ctx, g_main_context_unref);
  g_clear_object (&l->listener);
  g_clear_object (&l->cancel);
  mig_channel_creds_unref (l->config.creds);
  g_free (l->address);
  g_mutex_clear (&l->lock);
  g_cond_clear (&l->cond);
  g_free (l);
}
