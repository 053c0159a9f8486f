/* Destination side of a live migration: the migration listener.
 *
 * PrepareIncoming registers an expected job: a one-time token from the
 * MigTokenTable, bound to the job, its stream kinds and the source host
 * the scheduler named. The source agent then opens one MigChannel per
 * stream with that token, from its host certificate: the control stream
 * is connected to the local libvirtd socket (libvirt's peer-to-peer
 * connection from the source libvirtd), the memory stream to
 * /var/lib/libvirt/qemu/drover-mig-JOB.sock, where the destination QEMU
 * listens (libvirt started it with that incoming URI during Prepare), and
 * the disk stream of a VM with a local disk to .../drover-mig-JOB-disk.sock,
 * where the destination QEMU's NBD server listens (libvirt started it
 * with the disks URI during Prepare).
 *
 * The control stream is the dangerous one: it ends at the root libvirtd.
 * What the source sends on it passes a MigRpcFilter (mig-rpc-filter.h)
 * first: only the calls of a peer-to-peer migration, Prepare3 and
 * Finish3 only with the parameters Drover's migrations use, their URIs
 * naming this job's sockets and their domain XML, cookie and name
 * checked by the caller (MigDstConfig.check). Anything else ends the
 * stream before a byte of it reaches libvirtd.
 *
 * MigChannelListener checks HELLO (auth) and hands the channel over
 * (accept) on the same handshake thread; the job matched in auth reaches
 * accept through a thread-local, since accept is not told the token.
 *
 * MigDst.lock guards the job table and each job's channel list. A job is
 * freed only by mig_dst_forget(), after its channels are closed, so
 * channel callbacks and filters may use it.
 */
#include "mig-channel-private.h"
#include "mig-migrate.h"
#include "mig-rpc-filter.h"
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
  char *job_id;        /* immutable */
  gboolean with_disk;  /* immutable: a disk stream is admitted */
  char *mem_uri;       /* immutable: the memory URI Prepare3 must name */
  char *disk_uri;      /* immutable: ... and the disks URI */
  GPtrArray *channels; /* MigChannel */
  GPtrArray *filters;  /* MigRpcFilter, one per control channel */
} Incoming;

struct _MigDst
{
  MigDstConfig config;
  char *libvirt_sock;
  MigChannelListener *listener;
  MigTokenTable *tokens;
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
  g_ptr_array_unref (inc->filters);
  g_free (inc->job_id);
  g_free (inc->mem_uri);
  g_free (inc->disk_uri);
  g_free (inc);
}

static gboolean
on_auth (MigChannelKind kind, const char *token, const MigChannelPeer *peer,
         gpointer user_data, GError **error)
{
  MigDst *dst = user_data;
  char *job_id = NULL;

  g_private_replace (&matched_job, NULL);
  if (!mig_token_table_consume (dst->tokens, kind, token, peer, &job_id, error))
    return FALSE;
  g_private_replace (&matched_job, job_id);
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

/* --- the control stream's filter ------------------------------------------ */

static gboolean
check_xml (const char *what, const char *xml, gpointer user_data,
           GError **error)
{
  Incoming *inc = user_data;
  MigDst *dst = inc->dst;

  return !dst->config.check
         || dst->config.check (inc->job_id, what, xml, dst->config.user_data,
                               error);
}

/* The parameters Drover's migrations give Prepare3 and Finish3 (seen
 * with libvirt 9.0: the two XML ones, the URIs, the disk list, and
 * Finish3's destination name), each a string. */
static gboolean
check_param (const char *call, const char *name, int type, const char *value,
             gpointer user_data, GError **error)
{
  Incoming *inc = user_data;
  const char *want = NULL;

  if (type != VIR_TYPED_PARAM_STRING)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED,
                   "not a parameter Drover's migrations use");
      return FALSE;
    }
  if (strcmp (name, "destination_xml") == 0
      || strcmp (name, "persistent_xml") == 0)
    return TRUE; /* the XML check sees them */
  if (strcmp (name, "destination_name") == 0)
    return check_xml (name, value, inc, error);
  if (strcmp (name, "migrate_uri") == 0)
    want = inc->mem_uri;
  else if (strcmp (name, "disks_uri") == 0 && inc->with_disk)
    want = inc->disk_uri;
  else if (strcmp (name, "migrate_disks") == 0 && inc->with_disk)
    want = MIG_DISK_TARGET;
  else
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED,
                   "not a parameter Drover's migrations use");
      return FALSE;
    }
  if (strcmp (value, want) != 0)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED, "'%s' is not '%s'",
                   value, want);
      return FALSE;
    }
  return TRUE;
}

static gboolean
filter_feed (const guint8 *buf, gsize len, GByteArray *out, gpointer data,
             GError **error)
{
  return mig_rpc_filter_feed (data, buf, len, out, error);
}

/* --- accepting ------------------------------------------------------------ */

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

/* A connected socket pair for an image stream: returns the channel's end,
 * *OTHER the receiver's. */
static int
image_pair (MigDst *dst, int *other, GError **error)
{
  int sv[2];

  if (!dst->config.image)
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_LOCAL,
                           "this host takes no image streams");
      return -1;
    }
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_LOCAL,
                   "cannot make a socket pair: %s", g_strerror (errno));
      return -1;
    }
  *other = sv[1];
  return sv[0];
}

static void
on_accept (MigChannel *ch, gpointer user_data)
{
  MigDst *dst = user_data;
  const char *job_id = g_private_get (&matched_job);
  g_autoptr (GError) error = NULL;
  g_autofree char *path = NULL;
  MigChannelKind kind = mig_channel_get_kind (ch);
  MigChannelOptions opts;
  Incoming *inc;
  int fd, image_fd = -1;

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
  mig_channel_options_init (&opts);
  if (kind == MIG_CHANNEL_KIND_CONTROL)
    {
      MigRpcFilter *filter = mig_rpc_filter_new (check_xml, inc);

      mig_rpc_filter_set_param_check (filter, check_param, inc);
      g_ptr_array_add (inc->filters, filter);
      opts.in_filter = filter_feed;
      opts.in_filter_data = filter;
      path = g_strdup (dst->libvirt_sock);
    }
  else if (kind == MIG_CHANNEL_KIND_DISK)
    path = mig_disk_sock_path (inc->job_id);
  else if (kind == MIG_CHANNEL_KIND_MEMORY)
    path = mig_mem_sock_path (inc->job_id);
  if (kind == MIG_CHANNEL_KIND_IMAGE)
    fd = image_pair (dst, &image_fd, &error);
  else
    fd = connect_unix (path, &error);
  if (fd < 0
      || !mig_channel_start (ch, fd, &opts, on_channel_done, inc, &error))
    {
      g_mutex_unlock (&dst->lock);
      if (image_fd >= 0)
        close (image_fd);
      drover_message (NULL, job_id, NULL, "migration: %s", error->message);
      mig_channel_free (ch);
      return;
    }
  g_ptr_array_add (inc->channels, ch);
  g_mutex_unlock (&dst->lock);
  /* The receiver reads what the channel writes into the pair; closing the
   * channel (mig_dst_forget) ends its input. */
  if (image_fd >= 0)
    dst->config.image (job_id, image_fd, dst->config.user_data);
  g_private_replace (&matched_job, NULL);
}

static void
on_refused (const GError *error, gpointer user_data)
{
  g_message ("migration listener: %s", error->message);
}

/* --- the object ----------------------------------------------------------- */

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
  dst->tokens = mig_token_table_new ();
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

void
mig_dst_set_creds (MigDst *dst, MigChannelCreds *creds)
{
  mig_channel_listener_set_creds (dst->listener, creds);
}

char *
mig_dst_expect (MigDst *dst, const char *job_id, const char *source_host,
                gboolean with_disk, guint ttl_ms, GError **error)
{
  guint kinds = MIG_TOKEN_KIND (MIG_CHANNEL_KIND_CONTROL)
                | MIG_TOKEN_KIND (MIG_CHANNEL_KIND_MEMORY);

  if (with_disk)
    kinds |= MIG_TOKEN_KIND (MIG_CHANNEL_KIND_DISK);
  return mig_dst_expect_kinds (dst, job_id, source_host, kinds, ttl_ms, error);
}

char *
mig_dst_expect_kinds (MigDst *dst, const char *job_id, const char *source_host,
                      guint kinds, guint ttl_ms, GError **error)
{
  gboolean with_disk = (kinds & MIG_TOKEN_KIND (MIG_CHANNEL_KIND_DISK)) != 0;
  g_autofree char *mem = NULL, *disk = NULL;
  Incoming *inc;
  char *token;

  if (!mig_job_id_valid (job_id) || kinds == 0)
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_INVALID,
                           "invalid migration job id");
      return NULL;
    }
  g_mutex_lock (&dst->lock);
  /* The token table refuses a job it knows; so does the job table, which
   * keeps a job until its channels are closed. */
  token = g_hash_table_contains (dst->jobs, job_id)
              ? NULL
              : mig_token_table_issue_job (dst->tokens, job_id, kinds,
                                           source_host, ttl_ms, error);
  if (!token)
    {
      g_mutex_unlock (&dst->lock);
      if (error && !*error)
        g_set_error (error, MIG_ERROR, MIG_ERROR_INVALID,
                     "migration %s is already expected here", job_id);
      return NULL;
    }
  mem = mig_mem_sock_path (job_id);
  disk = mig_disk_sock_path (job_id);
  inc = g_new0 (Incoming, 1);
  inc->dst = dst;
  inc->job_id = g_strdup (job_id);
  inc->with_disk = with_disk;
  inc->mem_uri = g_strconcat ("unix://", mem, NULL);
  inc->disk_uri = g_strconcat ("unix://", disk, NULL);
  inc->channels = g_ptr_array_new ();
  inc->filters
      = g_ptr_array_new_with_free_func ((GDestroyNotify)mig_rpc_filter_free);
  g_hash_table_insert (dst->jobs, inc->job_id, inc);
  g_mutex_unlock (&dst->lock);
  return token;
}

gboolean
mig_dst_started (MigDst *dst, const char *job_id)
{
  return mig_token_table_used (dst->tokens, job_id, MIG_CHANNEL_KIND_CONTROL);
}

gboolean
mig_dst_forget (MigDst *dst, const char *job_id, const char *token,
                GError **error)
{
  Incoming *inc;
  g_autofree char *mem_path = NULL, *disk_path = NULL;

  g_mutex_lock (&dst->lock);
  if (!mig_token_table_revoke (dst->tokens, job_id, token))
    {
      g_mutex_unlock (&dst->lock);
      g_set_error (error, MIG_ERROR, MIG_ERROR_AUTH,
                   "wrong token for migration %s", job_id);
      return FALSE;
    }
  inc = g_hash_table_lookup (dst->jobs, job_id);
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

gboolean
mig_dst_rearm (MigDst *dst, const char *job_id, guint ttl_ms)
{
  Incoming *inc;
  GPtrArray *old = NULL;
  g_autofree char *mem_path = NULL;
  guint kinds = MIG_TOKEN_KIND (MIG_CHANNEL_KIND_CONTROL)
                | MIG_TOKEN_KIND (MIG_CHANNEL_KIND_MEMORY);

  g_mutex_lock (&dst->lock);
  inc = g_hash_table_lookup (dst->jobs, job_id);
  if (inc && !inc->with_disk
      && mig_token_table_rearm (dst->tokens, job_id, kinds, ttl_ms))
    {
      old = inc->channels;
      inc->channels = g_ptr_array_new ();
    }
  g_mutex_unlock (&dst->lock);
  if (!old)
    return FALSE;
  /* The broken streams go; their filters stay with the job (a filter is
   * small and the job's end frees them). */
  for (guint i = 0; i < old->len; i++)
    mig_channel_free (old->pdata[i]);
  g_ptr_array_unref (old);
  /* QEMU's recovery listens on the same path again. */
  mem_path = mig_mem_sock_path (job_id);
  (void)g_unlink (mem_path);
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
  mig_token_table_free (dst->tokens);
  g_mutex_clear (&dst->lock);
  g_free (dst->libvirt_sock);
  g_free (dst);
}
