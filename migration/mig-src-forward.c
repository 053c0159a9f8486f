/* MigSrcForward: carries one stream of a migration from a unix socket on
 * the source host to the destination agent.
 *
 * libvirtd (the peer-to-peer control connection) and QEMU (the memory
 * stream, the NBD stream of a disk copy) connect to sockets the source
 * agent listens on; the accept thread turns the one connection of the
 * socket's kind into a MigChannel to the destination's listener and
 * starts its pumps on a dup of the connection's fd. A connection to the
 * destination can be made ahead (early thread), so that the TCP and TLS
 * handshakes are not in the migration's critical path.
 *
 * The sockets are not for anyone on the host: the control socket is
 * root's only (0600: libvirtd connects), the memory and disk sockets
 * root's and QEMU's group's (0660), and a connection whose peer (its
 * SO_PEERCRED) is not root or, for those two, QEMU's user is closed
 * before it can take the stream.
 *
 * Threads: the accept thread owns USED and EARLY; LOCK guards the
 * channel and whether it ended, which the source's controller loop reads
 * and the channel's pumps set.
 */
#include "mig-src-private.h"

#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <sys/socket.h>
#include <unistd.h>

struct _MigSrcForward
{
  const MigSrcForwardConfig *config;
  MigChannelKind kind;
  char *path;
  GSocket *socket;
  GThread *thread;
  GThread *early_thread;
  MigTransport *early; /* joined early_thread's result; taken by carry */
  gboolean used;       /* a connection was accepted (accept thread) */

  GMutex lock; /* guards the fields below */
  GCond cond;
  MigChannel *channel; /* the stream carried, NULL before */
  gboolean ended;      /* ... and its pumps are done */
};

static void
report (MigSrcForward *fwd, const GError *error)
{
  fwd->config->error_func (error, fwd->config->user_data);
}

static void
on_channel_done (MigChannel *ch, const GError *error, gpointer user_data)
{
  MigSrcForward *fwd = user_data;

  if (error && !g_error_matches (error, MIG_ERROR, MIG_ERROR_CHANNEL_ABORTED))
    report (fwd, error);
  g_mutex_lock (&fwd->lock);
  fwd->ended = TRUE;
  g_cond_broadcast (&fwd->cond);
  g_mutex_unlock (&fwd->lock);
}

/* Opens the channel of FWD's kind over T (ownership taken). */
static MigChannel *
hello (MigSrcForward *fwd, MigTransport *t, GError **error)
{
  const MigSrcConfig *c = fwd->config->config;

  if (fwd->kind == MIG_CHANNEL_KIND_MEMORY && c->fault_cut_memory_at)
    t = mig_transport_fault_new (t, MIG_FAULT_CUT, c->fault_cut_memory_at);
  return mig_channel_new_client (t, fwd->kind, c->token, fwd->config->stop,
                                 error);
}

/* May the process at the other end of S use FWD's socket? Root always;
 * QEMU's user on the memory and disk sockets. */
static gboolean
peer_allowed (MigSrcForward *fwd, GSocket *s, uid_t *uid)
{
  const MigSrcConfig *c = fwd->config->config;
  struct ucred cred;
  socklen_t len = sizeof cred;

  if (getsockopt (g_socket_get_fd (s), SOL_SOCKET, SO_PEERCRED, &cred, &len)
      < 0)
    return FALSE;
  *uid = cred.uid;
  return cred.uid == 0
         || (fwd->kind != MIG_CHANNEL_KIND_CONTROL && c->qemu_uid >= 0
             && cred.uid == (uid_t)c->qemu_uid);
}

/* Carries one accepted local connection to the destination. */
static void
carry (MigSrcForward *fwd, GSocketConnection *conn)
{
  const MigSrcForwardConfig *fc = fwd->config;
  const MigSrcConfig *c = fc->config;
  g_autoptr (GError) error = NULL;
  MigTransport *t;
  MigChannel *ch;
  MigChannelOptions opts;
  int fd;

  if (fwd->used)
    {
      /* The token admits one stream per kind. */
      drover_debug (fc->vm, c->job_id, NULL,
                    "migration: refusing a second %s connection",
                    mig_channel_kind_to_string (fwd->kind));
      return;
    }
  fwd->used = TRUE;

  MIG_SRC_PHASE (fc->vm, c->job_id, fc->t0,
                 fwd->kind == MIG_CHANNEL_KIND_MEMORY    ? "memory accepted"
                 : fwd->kind == MIG_CHANNEL_KIND_CONTROL ? "control accepted"
                                                         : "disk accepted");
  if (fwd->early_thread)
    fwd->early = g_thread_join (g_steal_pointer (&fwd->early_thread));
  t = g_steal_pointer (&fwd->early);
  ch = t ? hello (fwd, t, &error) : NULL;
  /* The early connection can have gone (the listener drops one that
   * stays silent past its handshake timeout): one fresh try. */
  if (t && !ch && !g_error_matches (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH)
      && !g_cancellable_is_cancelled (fc->stop))
    {
      drover_debug (fc->vm, c->job_id, NULL,
                    "migration: early %s connection unusable (%s): "
                    "connecting again",
                    mig_channel_kind_to_string (fwd->kind), error->message);
      g_clear_error (&error);
      t = NULL;
    }
  if (!t)
    {
      t = mig_transport_connect_host (c->creds, c->channel_host,
                                      c->channel_port, c->dest_host, fc->stop,
                                      &error);
      ch = t ? hello (fwd, t, &error) : NULL;
    }
  if (!ch)
    {
      g_prefix_error (&error, "%s stream to %s:%u: ",
                      mig_channel_kind_to_string (fwd->kind), c->channel_host,
                      c->channel_port);
      report (fwd, error);
      return; /* closing CONN makes libvirt/QEMU fail at once */
    }
  mig_channel_options_init (&opts);
  opts.compress = c->compress;
  opts.rate_limit = c->bandwidth_bps;
  fd = dup (g_socket_get_fd (g_socket_connection_get_socket (conn)));
  g_mutex_lock (&fwd->lock);
  fwd->channel = ch;
  g_mutex_unlock (&fwd->lock);
  if (fd < 0
      || !mig_channel_start (ch, fd, &opts, on_channel_done, fwd, &error))
    {
      if (fd < 0)
        g_set_error (&error, MIG_ERROR, MIG_ERROR_LOCAL, "dup: %s",
                     g_strerror (errno));
      report (fwd, error);
      mig_channel_close (ch);
      /* No pump will say so. */
      g_mutex_lock (&fwd->lock);
      fwd->ended = TRUE;
      g_cond_broadcast (&fwd->cond);
      g_mutex_unlock (&fwd->lock);
    }
  else
    MIG_SRC_PHASE (fc->vm, c->job_id, fc->t0, "channel up");
}

static gpointer
accept_thread (gpointer data)
{
  MigSrcForward *fwd = data;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GSocket) s
          = g_socket_accept (fwd->socket, fwd->config->stop, &error);
      g_autoptr (GSocketConnection) conn = NULL;
      uid_t uid = G_MAXUINT;

      if (!s)
        {
          if (g_cancellable_is_cancelled (fwd->config->stop))
            break;
          g_usleep (20 * 1000);
          continue;
        }
      if (!peer_allowed (fwd, s, &uid))
        {
          drover_message (fwd->config->vm, fwd->config->config->job_id, NULL,
                          "migration: refused a connection from uid %u to "
                          "%s",
                          (guint)uid, fwd->path);
          continue;
        }
      g_socket_set_blocking (s, TRUE);
      conn = g_socket_connection_factory_create_connection (s);
      carry (fwd, conn);
    }
  return NULL;
}

/* Connects to the destination's listener (TCP + TLS) before anything
 * local asks for it; NULL if that fails (carry then tries again and
 * reports). */
static gpointer
early_thread (gpointer data)
{
  MigSrcForward *fwd = data;
  const MigSrcForwardConfig *fc = fwd->config;
  const MigSrcConfig *c = fc->config;
  g_autoptr (GError) error = NULL;
  MigTransport *t
      = mig_transport_connect_host (c->creds, c->channel_host, c->channel_port,
                                    c->dest_host, fc->stop, &error);

  if (!t)
    drover_debug (fc->vm, c->job_id, NULL, "migration: early %s connection: %s",
                  mig_channel_kind_to_string (fwd->kind), error->message);
  return t;
}

/* Owner root, group QEMU's, mode 0600 (control) or 0660. */
static gboolean
restrict_socket (MigSrcForward *fwd, GError **error)
{
  const MigSrcConfig *c = fwd->config->config;
  gboolean control = fwd->kind == MIG_CHANNEL_KIND_CONTROL;
  gid_t gid = control || c->qemu_gid < 0 ? 0 : (gid_t)c->qemu_gid;

  if ((geteuid () == 0 && chown (fwd->path, 0, gid) < 0)
      || g_chmod (fwd->path, control ? 0600 : 0660) < 0)
    {
      int saved = errno;
      g_set_error (error, MIG_ERROR, MIG_ERROR_LOCAL,
                   "cannot restrict %s to root and QEMU: %s", fwd->path,
                   g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

MigSrcForward *
mig_src_forward_new (const MigSrcForwardConfig *config, MigChannelKind kind,
                     char *path, gboolean early, GError **error)
{
  g_autoptr (MigSrcForward) fwd = g_new0 (MigSrcForward, 1);
  g_autoptr (GSocketAddress) addr = NULL;

  fwd->config = config;
  fwd->kind = kind;
  fwd->path = path;
  g_mutex_init (&fwd->lock);
  g_cond_init (&fwd->cond);
  (void)g_unlink (path);
  fwd->socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                              G_SOCKET_PROTOCOL_DEFAULT, error);
  if (!fwd->socket)
    return NULL;
  addr = g_unix_socket_address_new (path);
  if (!g_socket_bind (fwd->socket, addr, FALSE, error)
      || !g_socket_listen (fwd->socket, error))
    {
      g_prefix_error (error, "cannot listen on %s: ", path);
      return NULL;
    }
  /* libvirtd (root) connects to the control socket, QEMU (its own user,
   * root in the local cluster) to the others. A connection made before
   * the mode is set is refused by its peer's uid (peer_allowed). */
  if (!restrict_socket (fwd, error))
    return NULL;
  if (early)
    fwd->early_thread = g_thread_new ("mig-src-early", early_thread, fwd);
  fwd->thread = g_thread_new ("mig-src-accept", accept_thread, fwd);
  return g_steal_pointer (&fwd);
}

const char *
mig_src_forward_get_path (MigSrcForward *fwd)
{
  return fwd->path;
}

gboolean
mig_src_forward_get_stats (MigSrcForward *fwd, MigChannelStats *stats)
{
  gboolean carried;

  g_mutex_lock (&fwd->lock);
  carried = fwd->channel != NULL;
  if (carried)
    mig_channel_get_stats (fwd->channel, stats);
  g_mutex_unlock (&fwd->lock);
  return carried;
}

void
mig_src_forward_cut (MigSrcForward *fwd)
{
  MigChannel *ch;

  /* Closing joins the pumps, whose done callback takes the lock: close
   * outside it. The channel is only freed by mig_src_forward_free(). */
  g_mutex_lock (&fwd->lock);
  ch = fwd->channel;
  g_mutex_unlock (&fwd->lock);
  if (ch)
    mig_channel_close (ch);
}

gboolean
mig_src_forward_wait (MigSrcForward *fwd, gint64 deadline_us)
{
  gboolean ended;

  g_mutex_lock (&fwd->lock);
  while (fwd->channel && !fwd->ended
         && g_cond_wait_until (&fwd->cond, &fwd->lock, deadline_us))
    ;
  ended = !fwd->channel || fwd->ended;
  g_mutex_unlock (&fwd->lock);
  return ended;
}

void
mig_src_forward_stop (MigSrcForward *fwd)
{
  if (fwd->thread)
    g_thread_join (g_steal_pointer (&fwd->thread));
  /* Never carried: close what was made ahead (STOP is cancelled by now,
   * so a connect still running returns at once). */
  if (fwd->early_thread)
    fwd->early = g_thread_join (g_steal_pointer (&fwd->early_thread));
  g_clear_pointer (&fwd->early, mig_transport_free);
  if (fwd->socket)
    g_socket_close (fwd->socket, NULL);
  g_clear_object (&fwd->socket);
  if (fwd->path)
    (void)g_unlink (fwd->path);
}

void
mig_src_forward_free (MigSrcForward *fwd)
{
  if (!fwd)
    return;
  mig_src_forward_stop (fwd);
  mig_channel_free (fwd->channel);
  g_free (fwd->path);
  g_mutex_clear (&fwd->lock);
  g_cond_clear (&fwd->cond);
  g_free (fwd);
}
