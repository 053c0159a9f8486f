/* MigSrc: the source side of a live migration.
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
 * A MigSrcForward on each (mig-src-forward.c) carries the connection
 * accepted there over one MigChannel to the destination agent, which
 * connects it to its libvirtd, to its QEMU's incoming socket or to its
 * QEMU's NBD socket. No libvirtd listens on TCP anywhere.
 *
 * mig_src_run() takes a MigSrc through its steps:
 *   prepare  - check the VM, size the controller, build the destination
 *              XML, open the sockets (with early connections to the
 *              destination), register for libvirt's events, build the
 *              migration parameters;
 *   start    - virDomainMigrateToURI3 on a thread of its own;
 *   control  - poll the job every MIG_POLL_MS, apply MigCtl's decisions,
 *              report progress, abort when asked, until the call returns;
 *   collect  - the completed job's statistics and the channels' clean
 *              end, or the VM left running and the error explained;
 *   finish   - the one cleanup, whatever step failed: events, sockets,
 *              the final progress report, channels.
 *
 * Threads: the caller's (every step), the libvirt call, the forwarders'
 * (accept, early connect, channel pumps) and libvirt's event thread
 * (iteration / job-completed events). MigSrc.lock guards the first
 * stream error; MigCall and Events have their own locks.
 */
#include "mig-src-state.h"

#include <libvirt/virterror.h>
#include <string.h>

#define CHANNEL_END_WAIT_MS 5000
#define COMPLETED_EVENT_WAIT_MS 2000
/* How long an abort may take before the channels are cut under it. */
#define MIG_ABORT_GRACE_US (3 * G_USEC_PER_SEC)

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

/* --- the libvirt call ----------------------------------------------------- */

gpointer
mig_src_call_thread (gpointer data)
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
  return mig_xml_rewrite_seed (xml, c->dest_console_path, c->dest_disk_path,
                               c->dest_seed_path, error);
}

/* --- the source object ---------------------------------------------------- */

static void
on_stream_error (const GError *error, gpointer user_data)
{
  MigSrc *src = user_data;

  g_mutex_lock (&src->lock);
  if (!src->channel_error)
    src->channel_error = g_error_copy (error);
  g_mutex_unlock (&src->lock);
}

static MigSrc *
mig_src_new (virConnectPtr conn, virDomainPtr dom, const MigSrcConfig *c,
             GCancellable *cancel, MigProgressFunc progress, gpointer user_data)
{
  MigSrc *src = g_new0 (MigSrc, 1);

  src->conn = conn;
  src->dom = dom;
  src->config = c;
  src->vm = virDomainGetName (dom);
  src->cancel = cancel;
  src->progress = progress;
  src->user_data = user_data;
  src->t0 = g_get_monotonic_time ();
  src->with_disk = c->dest_disk_path && *c->dest_disk_path;
  src->ev_iter = src->ev_done = -1;
  src->stop = g_cancellable_new ();
  src->fwd_config.config = c;
  src->fwd_config.vm = src->vm;
  src->fwd_config.t0 = src->t0;
  src->fwd_config.stop = src->stop;
  src->fwd_config.error_func = on_stream_error;
  src->fwd_config.user_data = src;
  src->phase = PROTO_MIG_PREPARING;
  g_mutex_init (&src->lock);
  g_mutex_init (&src->call.lock);
  g_cond_init (&src->call.cond);
  return src;
}

#define PHASE(src, what)                                                       \
  MIG_SRC_PHASE ((src)->vm, (src)->config->job_id, (src)->t0, (what))

/* --- progress ------------------------------------------------------------- */

static void
channel_totals (MigSrc *src, guint64 *wire, guint64 *payload, gboolean *lz4)
{
  *wire = *payload = 0;
  *lz4 = FALSE;
  for (guint i = 0; i < N_FWD; i++)
    {
      MigChannelStats st;

      if (!src->fwd[i] || !mig_src_forward_get_stats (src->fwd[i], &st))
        continue;
      *wire += st.wire_out;
      *payload += st.payload_out;
      if (i == FWD_MEMORY)
        *lz4 = st.compressing || st.compressed_frames_out > 0;
    }
}

/* Reports SRC->p, with JS (nullable) as the job's figures. */
void
mig_src_emit (MigSrc *src, const MigJobStats *js)
{
  MigProgress *p = &src->p;
  gboolean lz4;

  if (!src->progress)
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
  p->phase = src->phase;
  p->downtime_limit_ms = mig_ctl_get_downtime (src->ctl);
  p->forced_switchover = mig_ctl_get_forced (src->ctl);
  p->rounds = mig_ctl_get_rounds (src->ctl);
  p->rung = mig_ctl_get_rung (src->ctl);
  p->rungs = mig_ctl_get_rungs (src->ctl);
  p->throttle_pct = src->throttle_now;
  p->elapsed_ms = (g_get_monotonic_time () - src->t0) / 1000;
  src->progress (p, src->user_data);
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

/* --- prepare -------------------------------------------------------------- */

/* Sizes the controller: the completion timeout counts RAM and the disk
 * copy alike. */
static gboolean
mig_src_prepare_controller (MigSrc *src, GError **error)
{
  const MigSrcConfig *c = src->config;
  virDomainInfo info;
  guint64 disk_bytes = 0;
  MigCtlConfig cc;

  if (virDomainGetInfo (src->dom, &info) < 0)
    {
      mig_libvirt_error (error, MIG_ERROR_FAILED, "cannot read VM info");
      return FALSE;
    }
  if (info.state != VIR_DOMAIN_RUNNING)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_UNSUPPORTED,
                   "only a running VM can be live-migrated (state %d)",
                   info.state);
      return FALSE;
    }
  if (src->with_disk)
    {
      virDomainBlockInfo bi;

      if (virDomainGetBlockInfo (src->dom, MIG_DISK_TARGET, &bi, 0) < 0)
        {
          mig_libvirt_error (error, MIG_ERROR_FAILED,
                             "cannot read the size of disk " MIG_DISK_TARGET);
          return FALSE;
        }
      disk_bytes = bi.allocation;
    }
  mig_ctl_config_init (&cc, (guint64)info.maxMem * 1024 + disk_bytes,
                       c->max_downtime_ms, c->timeout_per_gib_s,
                       c->stall_rounds);
  if (c->initial_downtime_ms)
    cc.initial_downtime_ms = MIN (c->initial_downtime_ms, cc.max_downtime_ms);
  mig_ladder_config (&src->ladder, c, &cc);
  src->ctl = mig_ctl_new (&cc);
  return TRUE;
}

/* Opens the sockets libvirt and QEMU will connect to. Connections ahead
 * for the streams that start within a second of the libvirt call; with
 * a disk, the memory stream waits for the disk copy, longer than the
 * listener holds a silent connection. */
gboolean
mig_src_prepare_forwarders (MigSrc *src, GError **error)
{
  const char *job = src->config->job_id;

  src->fwd[FWD_CONTROL]
      = mig_src_forward_new (&src->fwd_config, MIG_CHANNEL_KIND_CONTROL,
                             mig_ctl_sock_path (job), TRUE, error);
  if (!src->fwd[FWD_CONTROL])
    return FALSE;
  src->fwd[FWD_MEMORY]
      = mig_src_forward_new (&src->fwd_config, MIG_CHANNEL_KIND_MEMORY,
                             mig_mem_sock_path (job), !src->with_disk, error);
  if (!src->fwd[FWD_MEMORY])
    return FALSE;
  if (!src->with_disk)
    return TRUE;
  src->fwd[FWD_DISK]
      = mig_src_forward_new (&src->fwd_config, MIG_CHANNEL_KIND_DISK,
                             mig_disk_sock_path (job), TRUE, error);
  return src->fwd[FWD_DISK] != NULL;
}

/* Registers CB for event ID with a reference on SRC->ev; -1 if libvirt
 * refused. */
static int
mig_src_register_event (MigSrc *src, int id,
                        virConnectDomainEventGenericCallback cb)
{
  int rc = virConnectDomainEventRegisterAny (
      src->conn, src->dom, id, cb, events_ref (src->ev), events_unref);

  if (rc < 0)
    events_unref (src->ev);
  return rc;
}

static void
mig_src_register_events (MigSrc *src)
{
  src->ev = g_new0 (Events, 1);
  src->ev->ref_count = 1;
  g_mutex_init (&src->ev->lock);
  src->ev_iter
      = mig_src_register_event (src, VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
                                VIR_DOMAIN_EVENT_CALLBACK (on_iteration));
  src->ev_done
      = mig_src_register_event (src, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
                                VIR_DOMAIN_EVENT_CALLBACK (on_job_completed));
}

/* The libvirt call's flags and parameters: the memory (and disk) URIs
 * point at our sockets, dconnuri at our control socket. */
static gboolean
mig_src_prepare_call (MigSrc *src, const char *xml, const char *persist_xml,
                      GError **error)
{
  MigCall *mc = &src->call;
  g_autofree char *mem_uri = NULL, *disk_uri = NULL;
  int maxparams = 0;

  mem_uri = g_strdup_printf ("unix://%s",
                             mig_src_forward_get_path (src->fwd[FWD_MEMORY]));
  mc->dom = src->dom;
  mc->dconnuri
      = g_strdup_printf ("qemu+unix:///system?socket=%s",
                         mig_src_forward_get_path (src->fwd[FWD_CONTROL]));
  mc->flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER
              | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
  if (!mig_ladder_add_params (&src->ladder, &mc->flags, &mc->params,
                              &mc->nparams, &maxparams, error))
    return FALSE;
  if (src->with_disk)
    {
      /* Full copy of the one Drover disk into the empty image the
       * destination agent made; QEMU's NBD stream takes our socket. */
      mc->flags |= src->config->disk_incremental ? VIR_MIGRATE_NON_SHARED_INC
                                                 : VIR_MIGRATE_NON_SHARED_DISK;
      disk_uri = g_strdup_printf (
          "unix://%s", mig_src_forward_get_path (src->fwd[FWD_DISK]));
    }
  if (virTypedParamsAddString (&mc->params, &mc->nparams, &maxparams,
                               VIR_MIGRATE_PARAM_URI, mem_uri)
          < 0
      || virTypedParamsAddString (&mc->params, &mc->nparams, &maxparams,
                                  VIR_MIGRATE_PARAM_DEST_XML, xml)
             < 0
      || virTypedParamsAddString (&mc->params, &mc->nparams, &maxparams,
                                  VIR_MIGRATE_PARAM_PERSIST_XML, persist_xml)
             < 0
      || (src->with_disk
          && (virTypedParamsAddString (&mc->params, &mc->nparams, &maxparams,
                                       VIR_MIGRATE_PARAM_DISKS_URI, disk_uri)
                  < 0
              || virTypedParamsAddString (&mc->params, &mc->nparams, &maxparams,
                                          VIR_MIGRATE_PARAM_MIGRATE_DISKS,
                                          MIG_DISK_TARGET)
                     < 0)))
    {
      mig_libvirt_error (error, MIG_ERROR_FAILED,
                         "cannot build migration parameters");
      return FALSE;
    }
  return TRUE;
}

static gboolean
mig_src_prepare (MigSrc *src, GError **error)
{
  g_autofree char *xml = NULL, *persist_xml = NULL;

  if (!mig_job_id_valid (src->config->job_id))
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_INVALID,
                   "invalid migration job id");
      return FALSE;
    }
  if (!mig_ladder_arm (&src->ladder, src->config, src->dom, src->with_disk,
                       error)
      || !mig_src_prepare_controller (src, error))
    return FALSE;
  xml = dest_xml (src->dom, 0, src->config, error);
  if (!xml)
    return FALSE;
  persist_xml
      = dest_xml (src->dom, VIR_DOMAIN_XML_INACTIVE, src->config, error);
  if (!persist_xml || !mig_src_prepare_forwarders (src, error))
    return FALSE;
  mig_src_register_events (src);
  /* Start with the smallest limit; the controller raises it per round. */
  (void)virDomainMigrateSetMaxDowntime (src->dom,
                                        mig_ctl_initial_downtime (src->ctl), 0);
  return mig_src_prepare_call (src, xml, persist_xml, error);
}

/* --- start ---------------------------------------------------------------- */

static void
mig_src_start (MigSrc *src)
{
  mig_src_emit (src, NULL);
  PHASE (src, "starting the libvirt call");
  src->thread
      = g_thread_new ("mig-src-libvirt", mig_src_call_thread, &src->call);
}

/* --- control -------------------------------------------------------------- */

/* Asks libvirt to abort once wanted; if the abort hangs on an
 * unreachable peer (libvirt's Finish call to the destination waits on a
 * control stream nobody answers), cuts our channels, which breaks those
 * streams and lets libvirt give up. The VM stays here either way. */
static void
mig_src_abort_step (MigSrc *src)
{
  /* In post-copy the source no longer has the whole guest: no abort. */
  if (src->ladder.in_postcopy)
    return;
  if (!src->abort_wanted && g_cancellable_is_cancelled (src->cancel))
    {
      src->abort_wanted = TRUE;
      src->abort_reason = "cancelled by the caller";
    }
  if (src->abort_wanted && !src->abort_sent)
    {
      mig_ctl_note_abort (src->ctl, (g_get_monotonic_time () - src->t0) / 1000);
      src->abort_sent = virDomainAbortJob (src->dom) == 0;
      src->abort_sent_us = g_get_monotonic_time ();
    }
  if (src->abort_sent && !src->channels_cut
      && g_get_monotonic_time () - src->abort_sent_us > MIG_ABORT_GRACE_US)
    {
      src->channels_cut = TRUE;
      PHASE (src, "abort still pending: cutting the channels");
      for (guint i = 0; i < N_FWD; i++)
        if (src->fwd[i])
          mig_src_forward_cut (src->fwd[i]);
    }
}

/* Tests: cuts the memory stream once, a while into post-copy. */
static void
mig_src_postcopy_fault (MigSrc *src)
{
  guint ms = src->config->fault_cut_postcopy_ms;

  if (!ms || !src->ladder.in_postcopy || src->fault_cut_done)
    return;
  if (!src->postcopy_us)
    src->postcopy_us = g_get_monotonic_time ();
  if (g_get_monotonic_time () - src->postcopy_us < (gint64)ms * 1000)
    return;
  src->fault_cut_done = TRUE;
  drover_message (src->vm, src->config->job_id, NULL,
                  "migration: fault: cutting the memory stream in post-copy");
  mig_src_forward_cut (src->fwd[FWD_MEMORY]);
}

/* One poll: the job's statistics to the controller, its decision to
 * libvirt, the progress to the caller. */
static void
mig_src_poll (MigSrc *src)
{
  MigJobStats js = { 0 };
  MigCtlDecision d;
  guint32 noted;
  gboolean running = mig_job_stats_get (src->dom, 0, &js);

  if (running && js.disk_total > 0)
    {
      /* The disk copy runs before the memory moves (and keeps
       * mirroring writes while it does). */
      src->p.disk_total = js.disk_total;
      src->p.disk_processed = js.disk_processed;
    }
  if (running && js.sample.total > 0)
    {
      if (js.sample.iteration != src->last.sample.iteration)
        drover_debug (src->vm, src->config->job_id, NULL,
                      "migration: +%" G_GINT64_FORMAT " ms iteration %u, "
                      "%" G_GUINT64_FORMAT " bytes left, limit %u ms",
                      (g_get_monotonic_time () - src->t0) / 1000,
                      js.sample.iteration, js.sample.remaining,
                      mig_ctl_get_downtime (src->ctl));
      src->last = js;
      src->have_last = TRUE;
      src->throttle_now = js.throttle_pct;
      if (!src->ladder.paused && !src->ladder.in_postcopy)
        src->phase = PROTO_MIG_PRECOPY;
    }
  js.sample.elapsed_ms = (g_get_monotonic_time () - src->t0) / 1000;
  g_mutex_lock (&src->ev->lock);
  noted = src->ev->iteration;
  g_mutex_unlock (&src->ev->lock);
  mig_ctl_note_iteration (src->ctl, noted);
  mig_ctl_update (src->ctl, &js.sample, &d);
  if (d.action == MIG_CTL_ABORT)
    {
      src->abort_wanted = TRUE;
      src->abort_reason = d.reason;
    }
  else if (mig_ladder_apply (&src->ladder, src->ctl, &d, &js.sample))
    src->phase = PROTO_MIG_SWITCHOVER;
  mig_src_postcopy_fault (src);
  mig_src_emit (src, src->have_last ? &src->last : NULL);
}

/* Runs until the libvirt call returns: every migration ends. */
void
mig_src_control (MigSrc *src)
{
  while (!call_wait (&src->call, MIG_POLL_MS))
    {
      mig_src_abort_step (src);
      mig_src_poll (src);
    }
  g_thread_join (g_steal_pointer (&src->thread));
  PHASE (src, "libvirt call returned");
}

/* --- collect -------------------------------------------------------------- */

/* After a completed call: QEMU's downtime is only in the completed job's
 * statistics; the domain is undefined here by now, so they come with the
 * event (or, failing that, from the completed job). */
static void
mig_src_collect_completed (MigSrc *src)
{
  gint64 until = g_get_monotonic_time () + COMPLETED_EVENT_WAIT_MS * 1000;
  gboolean completed = FALSE;
  MigJobStats fin = { 0 };

  while (g_get_monotonic_time () < until)
    {
      g_mutex_lock (&src->ev->lock);
      completed = src->ev->completed;
      fin = src->ev->final;
      g_mutex_unlock (&src->ev->lock);
      if (completed || src->ev_done < 0)
        break;
      g_usleep (20 * 1000);
    }
  if (!completed
      && mig_job_stats_get (src->dom, VIR_DOMAIN_JOB_STATS_COMPLETED, &fin))
    completed = TRUE;
  if (completed)
    {
      src->p.downtime_ms = fin.downtime_ms;
      src->p.qemu_bytes = fin.data_processed;
      if (fin.disk_total)
        {
          src->p.disk_total = fin.disk_total;
          src->p.disk_processed = fin.disk_processed;
        }
      if (fin.sample.total)
        {
          src->last.sample.total = fin.sample.total;
          src->last.sample.processed = fin.sample.processed;
        }
      src->last.sample.remaining = 0;
      src->have_last = TRUE;
    }
  else
    src->p.qemu_bytes = src->last.sample.processed;
  PHASE (src, completed ? "completed stats" : "no completed stats");

  /* Let the channels flush their last bytes and end cleanly. */
  until = g_get_monotonic_time () + CHANNEL_END_WAIT_MS * 1000;
  for (guint i = 0; i < N_FWD; i++)
    if (src->fwd[i])
      mig_src_forward_wait (src->fwd[i], until);
  PHASE (src, "channels ended");
}

/* The migration's result: TRUE when the VM runs on the destination;
 * otherwise the VM is left running here and ERROR says why (an abort,
 * libvirt's error with the first stream error beside it). */
static gboolean
mig_src_collect (MigSrc *src, GError **error)
{
  MigCall *mc = &src->call;

  if (mc->rc == 0)
    {
      mig_src_collect_completed (src);
      return TRUE;
    }
  if (src->ladder.in_postcopy)
    {
      /* Paused on both hosts: resume over new channels, or say so. */
      if (!mig_src_recover (src, error))
        return FALSE;
      mig_src_collect_completed (src);
      return TRUE;
    }
  ensure_running (src->dom);
  g_mutex_lock (&src->lock);
  if (src->abort_wanted)
    g_set_error (error, MIG_ERROR, MIG_ERROR_ABORTED, "migration aborted: %s",
                 src->abort_reason);
  else if (src->channel_error)
    g_set_error (error, MIG_ERROR, MIG_ERROR_FAILED, "%s (channel: %s)",
                 mc->error->message, src->channel_error->message);
  else
    g_propagate_error (error, g_steal_pointer (&mc->error));
  g_mutex_unlock (&src->lock);
  return FALSE;
}

/* --- finish --------------------------------------------------------------- */

/* The one cleanup, after whichever step ended the migration: events,
 * sockets, then the final report (ERROR NULL = completed) with the
 * channels' totals, then the channels. */
static void
mig_src_finish (MigSrc *src, const GError *error)
{
  if (src->thread)
    g_thread_join (g_steal_pointer (&src->thread));
  if (src->ev_iter >= 0)
    virConnectDomainEventDeregisterAny (src->conn, src->ev_iter);
  if (src->ev_done >= 0)
    virConnectDomainEventDeregisterAny (src->conn, src->ev_done);
  g_clear_pointer (&src->ev, events_unref);
  g_cancellable_cancel (src->stop);
  for (guint i = 0; i < N_FWD; i++)
    if (src->fwd[i])
      mig_src_forward_stop (src->fwd[i]);
  PHASE (src, "sockets closed");
  /* Only a migration that got as far as the controller reports. */
  if (src->ctl)
    {
      src->phase = !error ? PROTO_MIG_COMPLETED
                   : g_error_matches (error, MIG_ERROR, MIG_ERROR_ABORTED)
                       ? PROTO_MIG_ABORTED
                       : PROTO_MIG_FAILED;
      src->p.final = TRUE;
      src->p.error = error ? error->message : NULL;
      src->p.total_s = (g_get_monotonic_time () - src->t0) / 1e6;
      mig_src_emit (src, src->have_last ? &src->last : NULL);
    }
  for (guint i = 0; i < N_FWD; i++)
    g_clear_pointer (&src->fwd[i], mig_src_forward_free);
}

static void
mig_src_free (MigSrc *src)
{
  g_clear_pointer (&src->ctl, mig_ctl_free);
  g_clear_error (&src->channel_error);
  g_clear_error (&src->call.error);
  g_object_unref (src->stop);
  g_free (src->call.dconnuri);
  virTypedParamsFree (src->call.params, src->call.nparams);
  g_mutex_clear (&src->call.lock);
  g_cond_clear (&src->call.cond);
  g_mutex_clear (&src->lock);
  g_free (src);
}

gboolean
mig_src_run (virConnectPtr conn, virDomainPtr dom, const MigSrcConfig *config,
             GCancellable *cancel, MigProgressFunc progress, gpointer user_data,
             GError **error)
{
  MigSrc *src = mig_src_new (conn, dom, config, cancel, progress, user_data);
  g_autoptr (GError) local = NULL;
  gboolean ok = FALSE;

  if (mig_src_prepare (src, &local))
    {
      mig_src_start (src);
      mig_src_control (src);
      ok = mig_src_collect (src, &local);
    }
  mig_src_finish (src, local);
  mig_src_free (src);
  if (!ok)
    g_propagate_error (error, g_steal_pointer (&local));
  return ok;
}
