/* Destination side of a live migration: the migration listener.
 *
 * PrepareIncoming registers an expected job with a one-time token. The
 * source agent then opens one MigChannel per stream with that token: the
 * control stream is connected to the local libvirtd socket (libvirt's
 * peer-to-peer connection from the source libvirtd), the memory stream to
 * /var/lib/libvirt/qemu/drover-mig-JOB.sock, where the destination QEMU
 * listens (libvirt started it with that incoming URI during Prepare), and
 * the disk stream of a VM with a local disk to .../drover-mig-JOB-disk.sock,
 * where the destination QEMU's NBD server listens (libvirt started it
 * with the disks URI during Prepare).
 *
 * The token admits exactly one stream of each kind before it expires; a
 * disk stream only when the job was expected with a disk.
 * MigChannelListener checks HELLO (auth) and hands the channel over
 * (accept) on the same handshake thread; the job matched in auth reaches
 * accept through a thread-local, since accept is not told the token.
 *
 * MigDst.lock guards the job table and each job's channel list and flags.
 * A job is freed only by mig_dst_forget(), after its channels are closed,
 * so channel callbacks may use it.
 */
#include "mig-channel-private.h"
#include "mig-migrate.h"
#include "proto.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct
{
  MigDst *dst;
  char *job_id; /* immutable */
  char *token;  /* immutable */
  gint64 expires_us;
  gboolean with_disk; /* immutable: a disk stream is admitted */
  gboolean used[MIG_CHANNEL_KIND_LAST + 1];
  GPtrArray *channels; /* MigChannel */
} Incoming;

struct _MigDst
{
  MigDstConfig config;
  char *libvirt_sock;
  MigChannelListener *listener;
  GMutex lock;
  GHashTable *jobs; /* job id -> Incoming */
};

/* Job id matched by auth, for accept on the same handshake thread. */
static GPrivate matched_job = G_PRIVATE_INIT (g_free);

static void
incoming_free (Incoming *inc)
{
  for (guint i = 0; i < inc->channels->len; i++)
    mig_channel_free (inc->channels->pdata[i]);
  g_ptr_array_unref (inc->channels);
  g_free (inc->job_id);
  g_free (inc->token);
  g_free (inc);
}

static Incoming *
find_token (MigDst *dst, const char *token)
{
  GHashTableIter it;
  gpointer value;

  g_hash_table_iter_init (&it, dst->jobs);
  while (g_hash_table_iter_next (&it, NULL, &value))
    {
      Incoming *inc = value;

      if (mig_token_equal (inc->token, token))
        return inc;
    }
  return NULL;
}

static gboolean
on_auth (MigChannelKind kind, const char *token, gpointer user_data,
         GError **error)
{
  MigDst *dst = user_data;
  Incoming *inc;
  const char *refusal = NULL;

  g_private_replace (&matched_job, NULL);
  g_mutex_lock (&dst->lock);
  inc = find_token (dst, token);
  if (!inc)
    refusal = "unknown migration token";
  else if (g_get_monotonic_time () > inc->expires_us)
    refusal = "migration token expired";
  else if (kind == MIG_CHANNEL_KIND_DISK && !inc->with_disk)
    refusal = "migration token admits no disk stream";
  else if (inc->used[kind])
    refusal = "migration token already used for this stream";
  else
    {
      inc->used[kind] = TRUE;
      g_private_replace (&matched_job, g_strdup (inc->job_id));
    }
  g_mutex_unlock (&dst->lock);
  if (refusal)
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH, refusal);
      return FALSE;
    }
  return TRUE;
}

static void
on_channel_done (MigChannel *ch, const GError *error, gpointer user_data)
{
  Incoming *inc = user_data;

  if (mig_channel_get_kind (ch) == MIG_CHANNEL_KIND_CONTROL
      && inc->dst->config.ended)
    inc->dst->config.ended (inc->job_id, error, inc->dst->config.user_data);
}

static int
connect_unix (const char *path, GError **error)
{
  struct sockaddr_un sa = { .sun_family = AF_UNIX };
  int fd;

  if (strlen (path) >= sizeof sa.sun_path)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_LOCAL, "path too long: %s",
                   path);
      return -1;
    }
  strcpy (sa.sun_path, path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect (fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    {
      int saved = errno;
      if (fd >= 0)
        close (fd);
      g_set_error (error, MIG_ERROR, MIG_ERROR_LOCAL,
                   "cannot connect to %s: %s", path, g_strerror (saved));
      return -1;
    }
  return fd;
}

static void
on_accept (MigChannel *ch, gpointer user_data)
{
  MigDst *dst = user_data;
  const char *job_id = g_private_get (&matched_job);
  g_autoptr (GError) error = NULL;
  g_autofree char *path = NULL;
  MigChannelKind kind = mig_channel_get_kind (ch);
  Incoming *inc;
  int fd;

  g_mutex_lock (&dst->lock);
  inc = job_id ? g_hash_table_lookup (dst->jobs, job_id) : NULL;
  if (!inc)
    {
      g_mutex_unlock (&dst->lock);
      mig_channel_free (ch);
      return;
    }
  /* Under the lock: mig_dst_forget either sees this channel in the list
   * or the job is gone before we look. Connecting a local socket is
   * quick. */
  if (kind == MIG_CHANNEL_KIND_CONTROL)
    path = g_strdup (dst->libvirt_sock);
  else if (kind == MIG_CHANNEL_KIND_DISK)
    path = mig_disk_sock_path (inc->job_id);
  else
    path = mig_mem_sock_path (inc->job_id);
  fd = connect_unix (path, &error);
  if (fd < 0 || !mig_channel_start (ch, fd, NULL, on_channel_done, inc, &error))
    {
      g_mutex_unlock (&dst->lock);
      drover_message (NULL, job_id, NULL, "migration: %s", error->message);
      mig_channel_free (ch);
      return;
    }
  g_ptr_array_add (inc->channels, ch);
  g_mutex_unlock (&dst->lock);
  g_private_replace (&matched_job, NULL);
}

static void
on_refused (const GError *error, gpointer user_data)
{
  g_message ("migration listener: %s", error->message);
}

MigDst *
mig_dst_new (const MigDstConfig *config, GError **error)
{
  MigDst *dst = g_new0 (MigDst, 1);
  MigChannelListenerConfig lc = { 0 };

  dst->config = *config;
  dst->libvirt_sock = g_strdup (config->libvirt_sock ? config->libvirt_sock
                                                     : MIG_LIBVIRT_SOCK);
  g_mutex_init (&dst->lock);
  dst->jobs = g_hash_table_new (g_str_hash, g_str_equal);
  lc.creds = config->creds;
  lc.address = config->address;
  lc.port = config->port;
  lc.auth = on_auth;
  lc.accept = on_accept;
  lc.refused = on_refused;
  lc.user_data = dst;
  dst->listener = mig_channel_listener_new (&lc, error);
  if (!dst->listener)
    {
      mig_dst_free (dst);
      return NULL;
    }
  return dst;
}

guint16
mig_dst_get_port (MigDst *dst)
{
  return mig_channel_listener_get_port (dst->listener);
}

char *
mig_dst_expect (MigDst *dst, const char *job_id, gboolean with_disk,
                guint ttl_ms, GError **error)
{
  Incoming *inc;
  g_autofree char *token = NULL;

  if (!mig_job_id_valid (job_id))
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_INVALID,
                           "invalid migration job id");
      return NULL;
    }
  token = mig_token_new ();
  g_mutex_lock (&dst->lock);
  if (g_hash_table_contains (dst->jobs, job_id))
    {
      g_mutex_unlock (&dst->lock);
      g_set_error (error, MIG_ERROR, MIG_ERROR_INVALID,
                   "migration %s is already expected here", job_id);
      return NULL;
    }
  inc = g_new0 (Incoming, 1);
  inc->dst = dst;
  inc->job_id = g_strdup (job_id);
  inc->token = g_strdup (token);
  inc->expires_us = g_get_monotonic_time () + (gint64)ttl_ms * 1000;
  inc->with_disk = with_disk;
  inc->channels = g_ptr_array_new ();
  g_hash_table_insert (dst->jobs, inc->job_id, inc);
  g_mutex_unlock (&dst->lock);
  return g_steal_pointer (&token);
}

gboolean
mig_dst_started (MigDst *dst, const char *job_id)
{
  Incoming *inc;
  gboolean started;

  g_mutex_lock (&dst->lock);
  inc = g_hash_table_lookup (dst->jobs, job_id);
  started = inc && inc->used[MIG_CHANNEL_KIND_CONTROL];
  g_mutex_unlock (&dst->lock);
  return started;
}

gboolean
mig_dst_forget (MigDst *dst, const char *job_id, const char *token,
                GError **error)
{
  Incoming *inc;
  g_autofree char *mem_path = NULL, *disk_path = NULL;

  g_mutex_lock (&dst->lock);
  inc = g_hash_table_lookup (dst->jobs, job_id);
  if (inc && token && strcmp (token, inc->token) != 0)
    {
      g_mutex_unlock (&dst->lock);
      g_set_error (error, MIG_ERROR, MIG_ERROR_AUTH,
                   "wrong token for migration %s", job_id);
      return FALSE;
    }
  if (inc)
    g_hash_table_remove (dst->jobs, job_id);
  g_mutex_unlock (&dst->lock);
  if (!inc)
    return TRUE;
  incoming_free (inc);
  /* QEMU leaves its incoming and NBD socket files behind. */
  mem_path = mig_mem_sock_path (job_id);
  disk_path = mig_disk_sock_path (job_id);
  (void)g_unlink (mem_path);
  (void)g_unlink (disk_path);
  return TRUE;
}

void
mig_dst_free (MigDst *dst)
{
  GList *ids;

  if (!dst)
    return;
  g_clear_pointer (&dst->listener, mig_channel_listener_free);
  g_mutex_lock (&dst->lock);
  ids = g_hash_table_get_keys (dst->jobs);
  for (GList *l = ids; l; l = l->next)
    l->data = g_strdup (l->data);
  g_mutex_unlock (&dst->lock);
  for (GList *l = ids; l; l = l->next)
    mig_dst_forget (dst, l->data, NULL, NULL);
  g_list_free_full (ids, g_free);
  g_hash_table_destroy (dst->jobs);
  g_mutex_clear (&dst->lock);
  g_free (dst->libvirt_sock);
  g_free (dst);
}
