/* MigChannel handshake: the connecting side sends HELLO (stream kind and
 * one-time token) and waits for OK or ERROR; the accepting side reads
 * HELLO with small frames only (the peer is unknown until it is
 * accepted), checks it with the caller's callback and answers. The
 * channel comes out authenticated and unstarted.
 */
#include <string.h>

#include "mig-channel-private.h"

MigChannel *
mig_channel_new_client (MigTransport *transport, MigChannelKind kind,
                        const char *token, GCancellable *cancellable,
                        GError **error)
{
  g_autoptr (MigChannel) ch = mig_channel_new (transport);
  gsize token_len = strlen (token);
  guint8 hello[1 + MIG_TOKEN_MAX];
  guint8 wbuf[MIG_HELLO_MAX], pbuf[MIG_HELLO_MAX];
  guint8 *payload = NULL;
  MigFrameHeader h;
  gboolean ok;

  if (token_len == 0 || token_len > MIG_TOKEN_MAX)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH,
                   "token must be 1-%d bytes", MIG_TOKEN_MAX);
      return NULL;
    }
  ch->kind = kind;
  hello[0] = (guint8)kind;
  memcpy (hello + 1, token, token_len);

  mig_transport_set_timeout (transport, 10);
  g_mutex_lock (&ch->write_lock);
  ok = mig_channel_write_simple (ch, MIG_FRAME_HELLO, hello, 1 + token_len,
                                 cancellable, error);
  g_mutex_unlock (&ch->write_lock);
  if (!ok)
    {
      g_prefix_error (error, "channel HELLO: ");
      return NULL;
    }
  if (!mig_channel_read_frame (ch, MIG_HELLO_MAX, &h, wbuf, pbuf, &payload,
                               cancellable, error))
    {
      /* With TLS 1.3 the server checks our certificate after our side of
       * the handshake is done: a refusal shows up here as a reset. */
      if ((*error)->domain != MIG_ERROR)
        g_prefix_error (error, "channel HELLO: no answer (TLS client "
                               "certificate refused?): ");
      else
        g_prefix_error (error, "channel HELLO: ");
      return NULL;
    }
  if (h.type == MIG_FRAME_ERROR)
    {
      g_autofree char *text
          = g_utf8_make_valid ((char *)payload, h.payload_len);
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH,
                   "channel refused by peer: %s", text);
      return NULL;
    }
  if (h.type != MIG_FRAME_OK)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "channel HELLO: unexpected answer frame type %u", h.type);
      return NULL;
    }
  mig_transport_set_timeout (transport, 0);
  return g_steal_pointer (&ch);
}

MigChannel *
mig_channel_connect (MigChannelCreds *creds, const char *host, guint16 port,
                     MigChannelKind kind, const char *token,
                     GCancellable *cancellable, GError **error)
{
  MigTransport *t
      = mig_transport_connect (creds, host, port, cancellable, error);
  if (t == NULL)
    return NULL;
  return mig_channel_new_client (t, kind, token, cancellable, error);
}

static gboolean
token_is_sane (const guint8 *p, gsize len)
{
  if (len == 0 || len > MIG_TOKEN_MAX)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (p[i] < 0x21 || p[i] > 0x7e)
      return FALSE;
  return TRUE;
}

gboolean
mig_hello_parse (const guint8 *payload, gsize len, MigChannelKind *kind,
                 char **token, GError **error)
{
  if (len < 2 || payload[0] < MIG_CHANNEL_KIND_CONTROL
      || payload[0] > MIG_CHANNEL_KIND_LAST
      || !token_is_sane (payload + 1, len - 1))
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "malformed HELLO");
      return FALSE;
    }
  *kind = payload[0];
  *token = g_strndup ((const char *)payload + 1, len - 1);
  return TRUE;
}

MigChannel *
mig_channel_new_server (MigTransport *transport, const MigChannelPeer *peer,
                        MigChannelAuthFunc auth, gpointer auth_data,
                        GCancellable *cancellable, GError **error)
{
  g_autoptr (MigChannel) ch = mig_channel_new (transport);
  guint8 wbuf[MIG_HELLO_MAX], pbuf[MIG_HELLO_MAX];
  guint8 *payload = NULL;
  g_autofree char *token = NULL;
  g_autoptr (GError) refusal = NULL;
  MigFrameHeader h;
  gboolean ok;

  /* Until HELLO is accepted the peer is unknown: small frames only. */
  if (!mig_channel_read_frame (ch, MIG_HELLO_MAX, &h, wbuf, pbuf, &payload,
                               cancellable, error))
    {
      g_prefix_error (error, "channel HELLO: ");
      return NULL;
    }
  if (h.type != MIG_FRAME_HELLO)
    g_set_error (&refusal, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                 "malformed HELLO");
  else if (mig_hello_parse (payload, h.payload_len, &ch->kind, &token, &refusal)
           && !auth (ch->kind, token, peer, auth_data, &refusal))
    g_assert (refusal != NULL);

  g_mutex_lock (&ch->write_lock);
  if (refusal != NULL)
    mig_channel_write_simple (ch, MIG_FRAME_ERROR, refusal->message,
                              strlen (refusal->message), cancellable, NULL);
  ok = refusal != NULL
       || mig_channel_write_simple (ch, MIG_FRAME_OK, "", 0, cancellable,
                                    error);
  g_mutex_unlock (&ch->write_lock);
  if (refusal != NULL)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&refusal),
                                  "channel HELLO refused: ");
      return NULL;
    }
  if (!ok)
    return NULL;
  mig_transport_set_timeout (transport, 0);
  return g_steal_pointer (&ch);
}
