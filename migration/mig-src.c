/* Source side of a live migration.
 *
 * The agent owns two unix sockets in its host's namespace:
 *   /run/libvirt/drover-mig-JOB-ctl.sock   libvirtd's peer-to-peer control
 *                                          connection (dconnuri points here)
 *   /var/lib/libvirt/qemu/drover-mig-JOB.sock   QEMU's memory stream
 *                                          (migrate URI unix://...; QEMU
 *                                          may only connect under there)
 * and, for a VM with a local disk, a third:
 *   /var/lib/libvirt/qemu/drover-mig-JOB-disk.sock   QEMU's NBD stream
 *                                          (disks URI unix://...): libvirt
 *                                          mirrors MIG_DISK_TARGET into the
 *                                          destination QEMU's NBD server
 *                                          before the memory moves
 *                                          (VIR_MIGRATE_NON_SHARED_DISK)
 * Each connection accepted on them becomes one MigChannel to the
 * destination agent, which connects it to its libvirtd, to its QEMU's
 * incoming socket or to its QEMU's NBD socket. virDomainMigrateToURI3
 * runs on its own thread while this thread polls the job every
 * MIG_POLL_MS and applies MigCtl's decisions. No libvirtd listens on TCP
 * anywhere.
 *
 * Threads: the caller's (controller loop), one running the libvirt call,
 * one accept thread per socket, two pumps per channel, and libvirt's
 * event thread (iteration / job-completed events). Src.lock guards the
 * channel list and the first channel error.
 */
#include "mig-migrate.h"
#include "proto-names.h"

#include <errno.h>
#include <gio/gunixsocketaddress.h>
#include <glib/gstdio.h>
#include <libvirt/virterror.h>
#include <string.h>
#include <unistd.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)

#define CHANNEL_END_WAIT_MS 5000
#define COMPLETED_EVENT_WAIT_MS 2000

typedef struct _Src Src;

/* Phase timestamps for finding where a migration's time goes
 * (G_MESSAGES_DEBUG=drover-mig). */
#define PHASE(src, what)                                                       \
  g_debug ("migration %s: +%" G_GINT64_FORMAT " ms %s", (src)->config->job_id, \
           (g_get_monotonic_time () - (src)->t0) / 1000, (what))

typedef struct
{
  Src *src;
  MigChannelKind kind;
  char *path;
  GSocket *socket;
  GThread *thread;
  /* A connection to the destination made ahead of the local one, so the
   * TLS handshake is not in the migration's critical path. */
  GThread *early_thread;
  MigTransport *early; /* joined early_thread's result; taken by carry */
} Fwd;

/* How long an abort may take before the channels are cut under it. */
#define MIG_ABORT_GRACE_US (3 * G_USEC_PER_SEC)

struct _Src
{
  const MigSrcConfig *config;
  gint64 t0;          /* monotonic us at the start, for PHASE */
  GCancellable *stop; /* stops the accept threads */
  GMutex lock;
  GCond cond;
  GPtrArray *channels;   /* MigChannel, lock */
  MigChannel *memory;    /* borrowed from channels, lock */
  guint ended;           /* channels that called done, lock */
  GError *channel_error; /* first channel error, lock */
  gboolean used[MIG_CHANNEL_KIND_LAST + 1]; /* a stream of that kind was
                                              carried, lock */
  Fwd fwd[3]; /* control, memory, disk (only with a disk) */
};

/* Shared with libvirt's event thread; freed by the event's freecb. */
typedef struct
{
  gint ref_count;
  GMutex lock;
  guint32 iteration;  /* lock */
  gboolean completed; /* lock */
  MigJobStats final;  /* lock */
} Events;

static Events *
events_ref (Events *ev)
{
  g_atomic_int_inc (&ev->ref_count);
  return ev;
}

static void
events_unref (void *data)
{
  Events *ev = data;

  if (!g_atomic_int_dec_and_test (&ev->ref_count))
    return;
  g_mutex_clear (&ev->lock);
  g_free (ev);
}

static void
on_iteration (virConnectPtr conn, virDomainPtr dom, int iteration, void *opaque)
{
  Events *ev = opaque;

  g_mutex_lock (&ev->lock);
  ev->iteration = MAX (ev->iteration, (guint32)MAX (iteration, 0));
  g_mutex_unlock (&ev->lock);
}

static void
on_job_completed (virConnectPtr conn, virDomainPtr dom,
                  virTypedParameterPtr params, int nparams, void *opaque)
{
  Events *ev = opaque;

  g_mutex_lock (&ev->lock);
  memset (&ev->final, 0, sizeof ev->final);
  mig_job_stats_parse (params, nparams, &ev->final);
  ev->completed = TRUE;
  g_mutex_unlock (&ev->lock);
}

/* ---- channels ------------------------------------------------------------ */

static const char *
kind_name (MigChannelKind kind)
{
  switch (kind)
    {
    case MIG_CHANNEL_KIND_CONTROL:
      return "control";
    case MIG_CHANNEL_KIND_MEMORY:
      return "memory";
    case MIG_CHANNEL_KIND_DISK:
      return "disk";
    }
  return "?";
}

static void
src_set_error (Src *src, const GError *error)
{
  g_mutex_lock (&src->lock);
  if (!src->channel_error)
    src->channel_error = g_error_copy (error);
  g_mutex_unlock (&src->lock);
}

static void
on_channel_done (MigChannel *ch, const GError *error, gpointer user_data)
{
  Src *src = user_data;

  g_mutex_lock (&src->lock);
  if (error && !src->channel_error
      && !g_error_matches (error, MIG_ERROR, MIG_ERROR_CHANNEL_ABORTED))
    src->channel_error = g_error_copy (error);
  src->ended++;
  g_cond_broadcast (&src->cond);
  g_mutex_unlock (&src->lock);
}

/* Opens the channel of FWD's kind over T (ownership taken). */
static MigChannel *
hello (Fwd *fwd, MigTransport *t, GError **error)
{
  const MigSrcConfig *c = fwd->src->config;

  if (fwd->kind == MIG_CHANNEL_KIND_MEMORY && c->fault_cut_memory_at)
    t = mig_transport_fault_new (t, MIG_FAULT_CUT, c->fault_cut_memory_at);
  return mig_channel_new_client (t, fwd->kind, c->token, fwd->src->stop, error);
}

/* Carries one accepted local connection to the destination. */
static void
carry (Fwd *fwd, GSocketConnection *conn)
{
  Src *src = fwd->src;
  const MigSrcConfig *c = src->config;
  g_autoptr (GError) error = NULL;
  MigTransport *t;
  MigChannel *ch;
  MigChannelOptions opts;
  gboolean first;
  int fd;

  g_mutex_lock (&src->lock);
  first = !src->used[fwd->kind];
  src->used[fwd->kind] = TRUE;
  g_mutex_unlock (&src->lock);
  if (!first)
    {
      /* The token admits one stream per kind. */
      g_debug ("refusing a second %s connection", kind_name (fwd->kind));
      return;
    }

  PHASE (src, fwd->kind == MIG_CHANNEL_KIND_MEMORY    ? "memory accepted"
              : fwd->kind == MIG_CHANNEL_KIND_CONTROL ? "control accepted"
                                                      : "disk accepted");
  if (fwd->early_thread)
    {
      fwd->early = g_thread_join (fwd->early_thread);
      fwd->early_thread = NULL;
    }
  t = g_steal_pointer (&fwd->early);
  ch = t ? hello (fwd, t, &error) : NULL;
  /* The early connection can have gone (the listener drops one that
   * stays silent past its handshake timeout): one fresh try. */
  if (t && !ch && !g_error_matches (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH)
      && !g_cancellable_is_cancelled (src->stop))
    {
      g_debug ("early %s connection unusable (%s): connecting again",
               kind_name (fwd->kind), error->message);
      g_clear_error (&error);
      t = NULL;
    }
  if (!t)
    {
      t = mig_transport_connect (c->creds, c->channel_host, c->channel_port,
                                 src->stop, &error);
      ch = t ? hello (fwd, t, &error) : NULL;
    }
  if (!ch)
    {
      g_prefix_error (&error, "%s stream to %s:%u: ", kind_name (fwd->kind),
                      c->channel_host, c->channel_port);
      src_set_error (src, error);
      return; /* closing CONN makes libvirt/QEMU fail at once */
    }
  mig_channel_options_init (&opts);
  opts.compress = c->compress;
  opts.rate_limit = c->bandwidth_bps;
  fd = dup (g_socket_get_fd (g_socket_connection_get_socket (conn)));
  g_mutex_lock (&src->lock);
  g_ptr_array_add (src->channels, ch);
  if (fwd->kind == MIG_CHANNEL_KIND_MEMORY)
    src->memory = ch;
  g_mutex_unlock (&src->lock);
  if (fd < 0
      || !mig_channel_start (ch, fd, &opts, on_channel_done, src, &error))
    {
      if (fd < 0)
        g_set_error (&error, MIG_ERROR, MIG_ERROR_LOCAL, "dup: %s",
                     g_strerror (errno));
      src_set_error (src, error);
      mig_channel_close (ch);
    }
  else
    PHASE (src, "channel up");
}

static gpointer
accept_thread (gpointer data)
{
  Fwd *fwd = data;

  for (;;)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GSocket) s
          = g_socket_accept (fwd->socket, fwd->src->stop, &error);
      g_autoptr (GSocketConnection) conn = NULL;

      if (!s)
        {
          if (g_cancellable_is_cancelled (fwd->src->stop))
            break;
          g_usleep (20 * 1000);
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
  Fwd *fwd = data;
  const MigSrcConfig *c = fwd->src->config;
  g_autoptr (GError) error = NULL;
  MigTransport *t = mig_transport_connect (
      c->creds, c->channel_host, c->channel_port, fwd->src->stop, &error);

  if (!t)
    g_debug ("early %s connection: %s", kind_name (fwd->kind), error->message);
  return t;
}

static gboolean
fwd_open (Src *src, Fwd *fwd, MigChannelKind kind, char *path, gboolean early,
          GError **error)
{
  g_autoptr (GSocketAddress) addr = NULL;

  fwd->src = src;
  fwd->kind = kind;
  fwd->path = path;
  (void)g_unlink (path);
  fwd->socket = g_socket_new (G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM,
                              G_SOCKET_PROTOCOL_DEFAULT, error);
  if (!fwd->socket)
    return FALSE;
  addr = g_unix_socket_address_new (path);
  if (!g_socket_bind (fwd->socket, addr, FALSE, error)
      || !g_socket_listen (fwd->socket, error))
    {
      g_prefix_error (error, "cannot listen on %s: ", path);
      g_clear_object (&fwd->socket);
      return FALSE;
    }
  /* libvirtd and QEMU (root in the cluster, the qemu user elsewhere with
   * dynamic ownership off) must be able to connect. */
  (void)g_chmod (path, 0666);
  if (early)
    fwd->early_thread = g_thread_new ("mig-src-early", early_thread, fwd);
  fwd->thread = g_thread_new ("mig-src-accept", accept_thread, fwd);
  return TRUE;
}

static void
fwd_close (Fwd *fwd)
{
  if (fwd->thread)
    g_thread_join (fwd->thread);
  fwd->thread = NULL;
  /* Never carried: close what was made ahead (src->stop is cancelled by
   * now, so a connect still running returns at once). */
  if (fwd->early_thread)
    fwd->early = g_thread_join (fwd->early_thread);
  fwd->early_thread = NULL;
  g_clear_pointer (&fwd->early, mig_transport_free);
  if (fwd->socket)
    g_socket_close (fwd->socket, NULL);
  g_clear_object (&fwd->socket);
  if (fwd->path)
    (void)g_unlink (fwd->path);
  g_clear_pointer (&fwd->path, g_free);
}

static void
channel_totals (Src *src, guint64 *wire, guint64 *payload, gboolean *lz4)
{
  *wire = *payload = 0;
  *lz4 = FALSE;
  g_mutex_lock (&src->lock);
  for (guint i = 0; i < src->channels->len; i++)
    {
      MigChannelStats st;

      mig_channel_get_stats (src->channels->pdata[i], &st);
      *wire += st.wire_out;
      *payload += st.payload_out;
      if (src->channels->pdata[i] == src->memory)
        *lz4 = st.compressing || st.compressed_frames_out > 0;
    }
  g_mutex_unlock (&src->lock);
}

/* ---- the libvirt call ---------------------------------------------------- */

typedef struct
{
  virDomainPtr dom;
  char *dconnuri;
  virTypedParameterPtr params;
  int nparams;
  unsigned int flags;
  GMutex lock;
  GCond cond;
  gboolean done; /* lock */
  int rc;
  GError *error;
} MigCall;

static gpointer
migrate_thread (gpointer data)
{
  MigCall *mc = data;
  int rc = virDomainMigrateToURI3 (mc->dom, mc->dconnuri, mc->params,
                                   mc->nparams, mc->flags);
  GError *error = NULL;

  if (rc < 0)
    mig_libvirt_error (&error, MIG_ERROR_FAILED, "migration failed");
  g_mutex_lock (&mc->lock);
  mc->rc = rc;
  mc->error = error;
  mc->done = TRUE;
  g_cond_broadcast (&mc->cond);
  g_mutex_unlock (&mc->lock);
  return NULL;
}

/* Waits up to MS for the call to end; TRUE if it has. */
static gboolean
call_wait (MigCall *mc, guint ms)
{
  gint64 until = g_get_monotonic_time () + (gint64)ms * 1000;
  gboolean done;

  g_mutex_lock (&mc->lock);
  while (!mc->done && g_cond_wait_until (&mc->cond, &mc->lock, until))
    ;
  done = mc->done;
  g_mutex_unlock (&mc->lock);
  return done;
}

static char *
dest_xml (virDomainPtr dom, unsigned int flags, const MigSrcConfig *c,
          GError **error)
{
  g_autofree char *xml = virDomainGetXMLDesc (
      dom, flags | VIR_DOMAIN_XML_MIGRATABLE | VIR_DOMAIN_XML_SECURE);

  if (!xml)
    {
      mig_libvirt_error (error, MIG_ERROR_FAILED, "cannot read the domain XML");
      return NULL;
    }
  return mig_xml_rewrite (xml, c->dest_console_path, c->dest_disk_path, error);
}

static void
emit (MigProgressFunc progress, gpointer user_data, MigProgress *p, Src *src,
      MigCtl *ctl, const MigJobStats *js, gint64 t0)
{
  gboolean lz4;

  if (!progress)
    return;
  channel_totals (src, &p->wire_bytes, &p->payload_bytes, &lz4);
  p->compress_mode = lz4 ? PROTO_COMPRESS_LZ4 : PROTO_COMPRESS_OFF;
  p->compression_ratio
      = p->wire_bytes ? (double)p->payload_bytes / (double)p->wire_bytes : 1.0;
  if (js)
    {
      p->memory_total = js->sample.total;
      p->memory_processed = js->sample.processed;
      p->memory_remaining = js->sample.remaining;
      p->iteration = js->sample.iteration;
      p->dirty_rate = js->sample.dirty_rate;
      p->throughput = js->sample.throughput;
      p->eta_s = mig_ctl_eta (&js->sample);
    }
  p->downtime_limit_ms = mig_ctl_get_downtime (ctl);
  p->forced_switchover = mig_ctl_get_forced (ctl);
  p->rounds = mig_ctl_get_rounds (ctl);
  p->elapsed_ms = (g_get_monotonic_time () - t0) / 1000;
  progress (p, user_data);
}

/* Leaves the source VM running after a failed or aborted migration. */
static void
ensure_running (virDomainPtr dom)
{
  int state = 0, reason = 0;

  for (int i = 0; i < 20; i++)
    {
      if (virDomainGetState (dom, &state, &reason, 0) < 0)
        return;
      if (state != VIR_DOMAIN_PAUSED)
        return;
      /* libvirt resumes what it paused itself; a pause of ours (forced
       * switchover) is ours to undo. Retry while libvirt still holds
       * the job. */
      if (virDomainResume (dom) == 0)
        return;
      g_usleep (100 * 1000);
    }
}

gboolean
mig_src_run (virConnectPtr conn, virDomainPtr dom, const MigSrcConfig *c,
             GCancellable *cancel, MigProgressFunc progress, gpointer user_data,
             GError **error)
{
  Src src = { 0 };
  MigCall mc = { 0 };
  Events *ev = g_new0 (Events, 1);
  int ev_iter = -1, ev_done = -1;
  g_autoptr (MigCtl) ctl = NULL;
  MigCtlConfig cc;
  virDomainInfo info;
  g_autofree char *xml = NULL, *persist_xml = NULL;
  g_autofree char *mem_uri = NULL, *disk_uri = NULL;
  gboolean with_disk = c->dest_disk_path && *c->dest_disk_path;
  guint64 disk_bytes = 0;
  int maxparams = 0;
  GThread *thread = NULL;
  gint64 t0 = g_get_monotonic_time ();
  MigJobStats js = { 0 }, last = { 0 };
  gboolean have_last = FALSE;
  gboolean abort_wanted = FALSE, abort_sent = FALSE, paused = FALSE;
  gboolean channels_cut = FALSE;
  gint64 abort_sent_us = 0;
  const char *abort_reason = NULL;
  const char *phase = PROTO_MIG_PREPARING;
  gboolean ok;
  GError *local = NULL;
  MigProgress p = { 0 };

  ev->ref_count = 1;
  g_mutex_init (&ev->lock);
  g_mutex_init (&src.lock);
  g_cond_init (&src.cond);
  g_mutex_init (&mc.lock);
  g_cond_init (&mc.cond);
  src.config = c;
  src.t0 = t0;
  src.stop = g_cancellable_new ();
  src.channels = g_ptr_array_new ();

  if (!mig_job_id_valid (c->job_id))
    {
      g_set_error (&local, MIG_ERROR, MIG_ERROR_INVALID,
                   "invalid migration job id");
      goto out;
    }
  if (virDomainGetInfo (dom, &info) < 0)
    {
      mig_libvirt_error (&local, MIG_ERROR_FAILED, "cannot read VM info");
      goto out;
    }
  if (info.state != VIR_DOMAIN_RUNNING)
    {
      g_set_error (&local, MIG_ERROR, MIG_ERROR_UNSUPPORTED,
                   "only a running VM can be live-migrated (state %d)",
                   info.state);
      goto out;
    }
  if (with_disk)
    {
      virDomainBlockInfo bi;

      /* The disk copy counts towards the completion timeout like RAM. */
      if (virDomainGetBlockInfo (dom, MIG_DISK_TARGET, &bi, 0) < 0)
        {
          mig_libvirt_error (&local, MIG_ERROR_FAILED,
                             "cannot read the size of disk " MIG_DISK_TARGET);
          goto out;
        }
      disk_bytes = bi.allocation;
    }
  mig_ctl_config_init (&cc, (guint64)info.maxMem * 1024 + disk_bytes,
                       c->max_downtime_ms, c->timeout_per_gib_s,
                       c->stall_rounds);
  if (c->initial_downtime_ms)
    cc.initial_downtime_ms = MIN (c->initial_downtime_ms, cc.max_downtime_ms);
  ctl = mig_ctl_new (&cc);

  xml = dest_xml (dom, 0, c, &local);
  if (!xml)
    goto out;
  persist_xml = dest_xml (dom, VIR_DOMAIN_XML_INACTIVE, c, &local);
  if (!persist_xml)
    goto out;
  /* Connections ahead for the streams that start within a second of the
   * libvirt call; with a disk, the memory stream waits for the disk copy,
   * longer than the listener holds a silent connection. */
  if (!fwd_open (&src, &src.fwd[0], MIG_CHANNEL_KIND_CONTROL,
                 mig_ctl_sock_path (c->job_id), TRUE, &local)
      || !fwd_open (&src, &src.fwd[1], MIG_CHANNEL_KIND_MEMORY,
                    mig_mem_sock_path (c->job_id), !with_disk, &local)
      || (with_disk
          && !fwd_open (&src, &src.fwd[2], MIG_CHANNEL_KIND_DISK,
                        mig_disk_sock_path (c->job_id), TRUE, &local)))
    goto out;

  ev_iter = virConnectDomainEventRegisterAny (
      conn, dom, VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
      VIR_DOMAIN_EVENT_CALLBACK (on_iteration), events_ref (ev), events_unref);
  if (ev_iter < 0)
    events_unref (ev);
  ev_done = virConnectDomainEventRegisterAny (
      conn, dom, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
      VIR_DOMAIN_EVENT_CALLBACK (on_job_completed), events_ref (ev),
      events_unref);
  if (ev_done < 0)
    events_unref (ev);

  /* Start with the smallest limit; the controller raises it per round. */
  (void)virDomainMigrateSetMaxDowntime (dom, mig_ctl_initial_downtime (ctl), 0);

  mem_uri = g_strdup_printf ("unix://%s", src.fwd[1].path);
  mc.dom = dom;
  mc.dconnuri
      = g_strdup_printf ("qemu+unix:///system?socket=%s", src.fwd[0].path);
  mc.flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST
             | VIR_MIGRATE_UNDEFINE_SOURCE;
  if (with_disk)
    {
      /* Full copy of the one Drover disk into the empty image the
       * destination agent made; QEMU's NBD stream takes our socket. */
      mc.flags |= VIR_MIGRATE_NON_SHARED_DISK;
      disk_uri = g_strdup_printf ("unix://%s", src.fwd[2].path);
    }
  if (virTypedParamsAddString (&mc.params, &mc.nparams, &maxparams,
                               VIR_MIGRATE_PARAM_URI, mem_uri)
          < 0
      || virTypedParamsAddString (&mc.params, &mc.nparams, &maxparams,
                                  VIR_MIGRATE_PARAM_DEST_XML, xml)
             < 0
      || virTypedParamsAddString (&mc.params, &mc.nparams, &maxparams,
                                  VIR_MIGRATE_PARAM_PERSIST_XML, persist_xml)
             < 0
      || (with_disk
          && (virTypedParamsAddString (&mc.params, &mc.nparams, &maxparams,
                                       VIR_MIGRATE_PARAM_DISKS_URI, disk_uri)
                  < 0
              || virTypedParamsAddString (&mc.params, &mc.nparams, &maxparams,
                                          VIR_MIGRATE_PARAM_MIGRATE_DISKS,
                                          MIG_DISK_TARGET)
                     < 0)))
    {
      mig_libvirt_error (&local, MIG_ERROR_FAILED,
                         "cannot build migration parameters");
      goto out;
    }

  p.phase = phase;
  emit (progress, user_data, &p, &src, ctl, NULL, t0);
  PHASE (&src, "starting the libvirt call");
  thread = g_thread_new ("mig-src-libvirt", migrate_thread, &mc);

  /* The controller loop: every migration ends. */
  while (!call_wait (&mc, MIG_POLL_MS))
    {
      MigCtlDecision d;
      guint32 noted;
      gboolean running;

      if (!abort_wanted && g_cancellable_is_cancelled (cancel))
        {
          abort_wanted = TRUE;
          abort_reason = "cancelled by the caller";
        }
      if (abort_wanted && !abort_sent)
        {
          abort_sent = virDomainAbortJob (dom) == 0;
          abort_sent_us = g_get_monotonic_time ();
        }
      /* An abort can hang on an unreachable peer: libvirt's Finish call
       * to the destination waits on a control stream nobody answers.
       * Cutting our channels breaks those streams and lets libvirt give
       * up; the VM stays here either way. */
      if (abort_sent && !channels_cut
          && g_get_monotonic_time () - abort_sent_us > MIG_ABORT_GRACE_US)
        {
          channels_cut = TRUE;
          PHASE (&src, "abort still pending: cutting the channels");
          /* Closing joins the pump threads, whose done callback takes
           * src.lock: close outside it. Channels are only freed below,
           * by this thread. */
          g_autoptr (GPtrArray) cut = NULL;
          g_mutex_lock (&src.lock);
          cut = g_ptr_array_copy (src.channels, NULL, NULL);
          g_mutex_unlock (&src.lock);
          for (guint i = 0; i < cut->len; i++)
            mig_channel_close (cut->pdata[i]);
        }

      running = mig_job_stats_get (dom, 0, &js);
      if (running && js.disk_total > 0)
        {
          /* The disk copy runs before the memory moves (and keeps
           * mirroring writes while it does). */
          p.disk_total = js.disk_total;
          p.disk_processed = js.disk_processed;
        }
      if (running && js.sample.total > 0)
        {
          if (js.sample.iteration != last.sample.iteration)
            g_debug ("migration %s: +%" G_GINT64_FORMAT " ms iteration %u, "
                     "%" G_GUINT64_FORMAT " bytes left, limit %u ms",
                     c->job_id, (g_get_monotonic_time () - t0) / 1000,
                     js.sample.iteration, js.sample.remaining,
                     mig_ctl_get_downtime (ctl));
          last = js;
          have_last = TRUE;
          if (!paused)
            phase = PROTO_MIG_PRECOPY;
        }
      js.sample.elapsed_ms = (g_get_monotonic_time () - t0) / 1000;
      g_mutex_lock (&ev->lock);
      noted = ev->iteration;
      g_mutex_unlock (&ev->lock);
      mig_ctl_note_iteration (ctl, noted);
      mig_ctl_update (ctl, &js.sample, &d);
      switch (d.action)
        {
        case MIG_CTL_SET_DOWNTIME:
          (void)virDomainMigrateSetMaxDowntime (dom, d.downtime_ms, 0);
          break;
        case MIG_CTL_FORCE:
          g_message ("migration %s: %s; forcing the switchover", c->job_id,
                     d.reason);
          (void)virDomainMigrateSetMaxDowntime (dom, d.downtime_ms, 0);
          if (virDomainSuspend (dom) == 0)
            {
              paused = TRUE;
              phase = PROTO_MIG_SWITCHOVER;
            }
          break;
        case MIG_CTL_ABORT:
          abort_wanted = TRUE;
          abort_reason = d.reason;
          break;
        case MIG_CTL_CONTINUE:
          break;
        }
      p.phase = phase;
      emit (progress, user_data, &p, &src, ctl, have_last ? &last : NULL, t0);
    }
  g_thread_join (thread);
  thread = NULL;
  PHASE (&src, "libvirt call returned");

  if (mc.rc == 0)
    {
      gint64 until = g_get_monotonic_time () + COMPLETED_EVENT_WAIT_MS * 1000;
      gboolean completed = FALSE;
      MigJobStats fin = { 0 };

      /* QEMU's downtime is only in the completed job's statistics; the
       * domain is undefined here by now, so they come with the event. */
      while (g_get_monotonic_time () < until)
        {
          g_mutex_lock (&ev->lock);
          completed = ev->completed;
          fin = ev->final;
          g_mutex_unlock (&ev->lock);
          if (completed || ev_done < 0)
            break;
          g_usleep (20 * 1000);
        }
      if (!completed
          && mig_job_stats_get (dom, VIR_DOMAIN_JOB_STATS_COMPLETED, &fin))
        completed = TRUE;
      if (completed)
        {
          p.downtime_ms = fin.downtime_ms;
          p.qemu_bytes = fin.data_processed;
          if (fin.disk_total)
            {
              p.disk_total = fin.disk_total;
              p.disk_processed = fin.disk_processed;
            }
          if (fin.sample.total)
            {
              last.sample.total = fin.sample.total;
              last.sample.processed = fin.sample.processed;
            }
          last.sample.remaining = 0;
          have_last = TRUE;
        }
      else
        p.qemu_bytes = last.sample.processed;
      PHASE (&src, completed ? "completed stats" : "no completed stats");
      /* Let the channels flush their last bytes and end cleanly. */
      g_mutex_lock (&src.lock);
      until = g_get_monotonic_time () + CHANNEL_END_WAIT_MS * 1000;
      while (src.ended < src.channels->len
             && g_cond_wait_until (&src.cond, &src.lock, until))
        ;
      g_mutex_unlock (&src.lock);
      PHASE (&src, "channels ended");
    }
  else
    {
      ensure_running (dom);
      g_mutex_lock (&src.lock);
      if (abort_wanted)
        {
          local = g_error_new (MIG_ERROR, MIG_ERROR_ABORTED,
                               "migration aborted: %s", abort_reason);
          g_clear_error (&mc.error);
        }
      else if (src.channel_error)
        {
          local = g_error_new (MIG_ERROR, MIG_ERROR_FAILED, "%s (channel: %s)",
                               mc.error->message, src.channel_error->message);
          g_clear_error (&mc.error);
        }
      else
        local = g_steal_pointer (&mc.error);
      g_mutex_unlock (&src.lock);
    }

out:
  if (thread)
    g_thread_join (thread);
  g_clear_error (&mc.error);
  if (ev_iter >= 0)
    virConnectDomainEventDeregisterAny (conn, ev_iter);
  if (ev_done >= 0)
    virConnectDomainEventDeregisterAny (conn, ev_done);
  events_unref (ev);
  g_cancellable_cancel (src.stop);
  for (guint i = 0; i < G_N_ELEMENTS (src.fwd); i++)
    fwd_close (&src.fwd[i]);
  PHASE (&src, "sockets closed");
  /* Totals before the channels go. */
  ok = local == NULL;
  if (ctl)
    {
      p.phase = ok ? PROTO_MIG_COMPLETED
                   : (g_error_matches (local, MIG_ERROR, MIG_ERROR_ABORTED)
                          ? PROTO_MIG_ABORTED
                          : PROTO_MIG_FAILED);
      p.final = TRUE;
      p.error = local ? local->message : NULL;
      p.total_s = (g_get_monotonic_time () - t0) / 1e6;
      emit (progress, user_data, &p, &src, ctl, have_last ? &last : NULL, t0);
    }
  for (guint i = 0; i < src.channels->len; i++)
    mig_channel_free (src.channels->pdata[i]);
  g_ptr_array_unref (src.channels);
  g_clear_error (&src.channel_error);
  g_object_unref (src.stop);
  g_free (mc.dconnuri);
  virTypedParamsFree (mc.params, mc.nparams);
  g_mutex_clear (&mc.lock);
  g_cond_clear (&mc.cond);
  g_mutex_clear (&src.lock);
  g_cond_clear (&src.cond);
  if (!ok)
    {
      g_propagate_error (error, local);
      return FALSE;
    }
  return TRUE;
}
