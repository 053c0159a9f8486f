/* The source side of live migrations on this host: MigrateOut.
 *
 * MigrateOut claims the VM and runs mig_src_run on the thread of an
 * AgentStream, which sends its progress (MigrationProgress) in order;
 * cancelling the call cancels the migration (the libvirt job is
 * aborted). A VM with a disk takes its disk along (non-shared storage
 * migration); once it runs on the destination and is undefined here, the
 * disk image here is garbage and is removed. A failed migration never
 * touches it.
 *
 * With TLS the channel goes only to the destination host the scheduler
 * named (its listener's certificate must be that host's), and that host
 * may read the VM's console from the start of the migration on (to carry
 * the history along, agent-console.c); a failed migration takes that
 * back.
 */
#include "agent-dirty-rate.h"
#include "agent-disk-images.h"
#include "agent-mig-chain.h"

#include <glib/gstdio.h>
#include <string.h>

#include "mig-migrate.h"
#include "stor.h"

#define FAULT_CUT_AT (4 * 1024 * 1024)

/* One MigrateOut call. */
typedef struct
{
  Agent *agent;
  const Drover__V1__MigrateOutRequest *req; /* owned by the call */
  AgentStream *stream;                      /* worker only */
  gboolean sent_final;                      /* worker only */
  gint64 chain_progress_us;                 /* worker only */
} MigOut;

static void
mig_out_free (gpointer data)
{
  MigOut *out = data;

  agent_unref (out->agent);
  g_free (out);
}

/* The dirty rate (bytes/s) to report: QEMU's, or when QEMU has none yet
 * (it measures only at a bitmap sync, so the whole first round, which may
 * be all of a short migration, reads 0) what the rounds show: the memory
 * left at the start of a round was dirtied during the round before;
 * when neither has a figure, MEASURED: the agent's own measurement of the
 * VM (agent-dirty-rate.c, 0 = none). */
static double
dirty_rate (const MigProgress *p, double measured)
{
  double best = p->dirty_rate > 0 ? p->dirty_rate : 0;

  if (best > 0 || p->rounds == NULL)
    return best > 0 ? best : measured;
  for (guint i = 1; i < p->rounds->len; i++)
    {
      const MigCtlRound *a = &g_array_index (p->rounds, MigCtlRound, i - 1);
      const MigCtlRound *b = &g_array_index (p->rounds, MigCtlRound, i);
      gint64 ms = b->elapsed_ms - a->elapsed_ms;

      if (ms > 0)
        best = (double)b->remaining * 1000.0 / (double)ms;
    }
  return best > 0 ? best : measured;
}

static ProtobufCMessage *
progress_msg (const MigProgress *p, double measured)
{
  Drover__V1__MigrationProgress *m = g_new0 (Drover__V1__MigrationProgress, 1);

  drover__v1__migration_progress__init (m);
  m->phase = proto_msg_strdup (p->phase);
  m->memory_total = p->memory_total;
  m->memory_processed = p->memory_processed;
  m->memory_remaining = p->memory_remaining;
  m->iteration = p->iteration;
  m->dirty_rate = dirty_rate (p, measured);
  m->throughput = p->throughput;
  m->eta_s = p->eta_s;
  m->downtime_limit_ms = p->downtime_limit_ms;
  m->forced_switchover = p->forced_switchover;
  m->wire_bytes = p->wire_bytes;
  m->payload_bytes = p->payload_bytes;
  m->compression_ratio = p->compression_ratio;
  m->compress_mode
      = proto_msg_strdup (p->compress_mode ? p->compress_mode : "");
  m->total_s = p->total_s;
  m->downtime_ms = p->downtime_ms;
  m->qemu_bytes = p->qemu_bytes;
  m->error = proto_msg_strdup (p->error ? p->error : "");
  m->elapsed_ms = p->elapsed_ms;
  m->disk_total = p->disk_total;
  m->disk_processed = p->disk_processed;
  if (p->rounds && p->rounds->len)
    {
      m->n_rounds = p->rounds->len;
      m->rounds = g_new0 (Drover__V1__MigrationRound *, p->rounds->len);
      for (guint i = 0; i < p->rounds->len; i++)
        {
          const MigCtlRound *cr = &g_array_index (p->rounds, MigCtlRound, i);
          Drover__V1__MigrationRound *r
              = g_new0 (Drover__V1__MigrationRound, 1);

          drover__v1__migration_round__init (r);
          r->iteration = cr->iteration;
          r->remaining = cr->remaining;
          r->dirty_rate = cr->dirty_rate;
          r->throughput = cr->throughput;
          r->elapsed_ms = cr->elapsed_ms;
          m->rounds[i] = r;
        }
    }
  m->rung = proto_msg_strdup (p->rung ? p->rung : "");
  m->throttle_pct = p->throttle_pct;
  if (p->rungs && p->rungs->len)
    {
      m->n_rungs = p->rungs->len;
      m->rungs = g_new0 (Drover__V1__MigrationRung *, p->rungs->len);
      for (guint i = 0; i < p->rungs->len; i++)
        {
          const MigCtlRung *cr = &g_array_index (p->rungs, MigCtlRung, i);
          gint64 end
              = i + 1 < p->rungs->len
                    ? g_array_index (p->rungs, MigCtlRung, i + 1).start_ms
                    : p->elapsed_ms;
          Drover__V1__MigrationRung *r = g_new0 (Drover__V1__MigrationRung, 1);

          drover__v1__migration_rung__init (r);
          r->rung = proto_msg_strdup (cr->rung);
          r->throttle_pct = cr->throttle_pct;
          r->downtime_limit_ms = cr->downtime_ms;
          r->start_ms = cr->start_ms;
          r->duration_ms = MAX (end - cr->start_ms, 0);
          m->rungs[i] = r;
        }
    }
  return (ProtobufCMessage *)m;
}

static void
on_progress (const MigProgress *p, gpointer user_data)
{
  MigOut *out = user_data;
  double measured = 0;

  (void)agent_dirty_rate_get (agent_stats_dirty_rate (out->agent->stats),
                              out->req->name, &measured, NULL);
  if (p->final)
    out->sent_final = TRUE;
  agent_metrics_migration (out->agent->metrics, out->req->name, p);
  /* The disk copy's figures go to the job too (disk_total,
   * disk_processed); the log keeps the final ones. */
  if (p->final && p->disk_total)
    drover_message (out->req->name, out->req->job_id, NULL,
                    "migration: disk %s: %" G_GUINT64_FORMAT
                    " of %" G_GUINT64_FORMAT " bytes copied",
                    MIG_DISK_TARGET, p->disk_processed, p->disk_total);
  agent_stream_push (out->stream, progress_msg (p, measured));
}

/* After a completed migration: the VM runs on the destination with its
 * own copy of the disk, so the image here is garbage. Removed only once
 * libvirt no longer knows the VM here (UNDEFINE_SOURCE), never before. */
static gboolean
remove_source_disk (virConnectPtr conn, const char *job_id, const char *name,
                    const char *path)
{
  g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);
  g_autoptr (GError) error = NULL;
  virErrorPtr err = dom ? NULL : virGetLastError ();

  /* Only libvirt's "no such domain" proves it gone (a lookup that failed
   * for another reason proves nothing). */
  if (dom || !err || err->code != VIR_ERR_NO_DOMAIN)
    {
      drover_message (name, job_id, NULL,
                      "migration: VM may still be defined here; keeping %s",
                      path);
      return FALSE;
    }
  if (!stor_disk_remove (path, &error))
    drover_message (name, job_id, NULL, "migration: %s", error->message);
  else
    drover_message (name, job_id, NULL,
                    "migration: removed the disk image %s left behind", path);
  return TRUE;
}

/* The chain's bytes count in the job's disk figures, at most every
 * 500 ms (AgentImageXferProgressFunc). */
static void
on_chain_progress (guint64 sent, guint64 total, gpointer user_data)
{
  MigOut *out = user_data;
  gint64 now = g_get_monotonic_time ();
  MigProgress p = { 0 };

  if (sent < total && now - out->chain_progress_us < 500 * 1000)
    return;
  out->chain_progress_us = now;
  p.phase = PROTO_MIG_PREPARING;
  p.disk_total = total;
  p.disk_processed = sent;
  on_progress (&p, out);
}

/* Sends the read-only files of the VM's snapshot chain on the job's
 * image stream; the destination has them, fsynced, when it returns. */
static gboolean
send_chain (MigOut *out, const AgentMigChain *chain, MigChannelCreds *creds,
            MigCompressMode compress, GError **error)
{
  const Drover__V1__MigrateOutRequest *req = out->req;
  guint64 wire = 0;
  gint64 t0 = g_get_monotonic_time ();

  if (!agent_image_xfer_send (
          creds, req->channel_address, req->dest_host, req->token, compress,
          (const AgentImageXferFile *)chain->files->data, chain->files->len,
          agent_stream_get_cancellable (out->stream), on_chain_progress, out,
          &wire, error))
    {
      g_prefix_error (error,
                      "VM %s: snapshot chain not sent to %s: ", req->name,
                      req->dest_host);
      return FALSE;
    }
  drover_message (req->name, req->job_id, req->dest_host,
                  "migration: snapshot chain sent (%u files, %" G_GUINT64_FORMAT
                  " wire bytes, %.1f s)",
                  chain->files->len, wire,
                  (g_get_monotonic_time () - t0) / 1e6);
  return TRUE;
}

static gboolean
migrate_out (MigOut *out, GError **error)
{
  Agent *agent = out->agent;
  const Drover__V1__MigrateOutRequest *req = out->req;
  const Drover__V1__MigrationParams *params = req->params;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autofree char *xml = NULL, *host = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *disk_path = NULL, *dest_active = NULL;
  g_autofree char *seed = NULL, *dest_seed = NULL;
  g_autoptr (AgentMigChain) chain = NULL;
  g_autoptr (AgentTls) tls = agent_tls_get (agent);
  MigChannelCreds *creds = tls ? tls->mig_creds : NULL;
  MigSrcConfig cfg = { 0 };
  gboolean ok;

  if (!proto_name_validate ("VM", req->name, error))
    return FALSE;
  /* With TLS the destination listener's certificate must be its host's. */
  if (creds && !proto_name_validate ("host", req->dest_host, error))
    return FALSE;
  if (!mig_job_id_valid (req->job_id) || !*req->token
      || !agent_migration_split_address (req->channel_address, &host,
                                         &cfg.channel_port)
      || cfg.channel_port == 0 || !g_path_is_absolute (req->dest_console_path))
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "MigrateOut needs a job id, a token, a channel "
                           "address host:port and the destination console "
                           "path");
      return FALSE;
    }
  if (!agent->mig_dst)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_UNAVAILABLE,
                           "this agent does not migrate");
      return FALSE;
    }
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return FALSE;
  if (!agent_vm_claim (agent, req->name, error))
    return FALSE;
  dom = agent_vm_lookup (agent, conn, req->name, error);
  if (!dom)
    goto out_release;
  xml = virDomainGetXMLDesc (dom, 0);
  spec = xml ? agent_domain_xml_parse (xml, NULL) : NULL;
  /* A VM with snapshots takes its chain along: the read-only files
   * first, the image it runs on by the incremental storage copy. */
  {
    g_autofree char *current = NULL;
    guint count = 0;

    if (xml && agent_snapshot_count (xml, &current, &count) && count > 0
        && !(chain = agent_mig_chain_collect (agent, req->name, xml, error)))
      goto out_release;
  }
  if (spec && spec->disk > 0)
    {
      if (!g_path_is_absolute (req->dest_disk_path))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "VM %s has a disk but the destination gave no disk "
                       "path",
                       req->name);
          goto out_release;
        }
      disk_path = stor_disk_path (agent->config.data_dir, req->name, error);
      if (!disk_path)
        goto out_release;
      if (chain
          && !(dest_active = agent_mig_chain_dest_disk (
                   chain, req->name, req->dest_disk_path, error)))
        goto out_release;
    }
  /* Its cloud-init seed (issue 13): the destination's agent made the
   * same one beside the disk path it chose, from the scheduler's spec;
   * the domain names it there. */
  if (disk_path && spec->cloud_init_user_data.len > 0)
    {
      seed = agent_cloud_init_seed_path (disk_path);
      dest_seed = agent_cloud_init_seed_path (req->dest_disk_path);
    }

  cfg.job_id = req->job_id;
  cfg.channel_host = host;
  cfg.dest_host = creds ? req->dest_host : NULL;
  cfg.token = req->token;
  cfg.creds = creds;
  cfg.qemu_uid = g_atomic_int_get (&agent->qemu_uid);
  cfg.qemu_gid = g_atomic_int_get (&agent->qemu_gid);
  cfg.dest_console_path = req->dest_console_path;
  cfg.dest_disk_path = disk_path ? req->dest_disk_path : NULL;
  cfg.dest_seed_path = dest_seed;
  if (dest_active)
    {
      cfg.dest_disk_path = dest_active;
      cfg.disk_incremental = TRUE;
    }
  cfg.compress = MIG_COMPRESS_AUTO;
  if (params)
    {
      if (g_strcmp0 (params->compress, PROTO_COMPRESS_ON) == 0)
        cfg.compress = MIG_COMPRESS_ON;
      else if (g_strcmp0 (params->compress, PROTO_COMPRESS_OFF) == 0)
        cfg.compress = MIG_COMPRESS_OFF;
      cfg.bandwidth_bps = params->bandwidth_bps;
      cfg.max_downtime_ms = params->max_downtime_ms;
      cfg.timeout_per_gib_s = params->timeout_per_gib_s;
      cfg.stall_rounds = params->stall_rounds;
      cfg.max_throttle_pct
          = MIN (params->max_throttle_pct, (guint32)MIG_MAX_THROTTLE_PCT);
      cfg.no_throttle = params->no_throttle;
      /* The scheduler resolved the VM's default; "" from an older one
       * means never. */
      if (params->postcopy[0] != '\0'
          && !mig_postcopy_mode_parse (params->postcopy, &cfg.postcopy))
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "postcopy must be auto, never or now, not '%.32s'",
                       params->postcopy);
          goto out_release;
        }
    }
  /* QEMU 7.2 under TCG corrupted guest memory (kernel oops after the
   * move) when the limit started at 50 ms, with plain socat forwarding as
   * well as with our channel; QEMU's default 300 ms did not. */
  if (agent->accel == AGENT_ACCEL_TCG)
    cfg.initial_downtime_ms = 300;
  if (agent_fault ("mig-cut-channel"))
    cfg.fault_cut_memory_at = FAULT_CUT_AT;
  if (agent_fault ("mig-cut-postcopy"))
    cfg.fault_cut_postcopy_ms = 1000;
  /* The destination fetches the console history right after the
   * migration: it may, from now on. */
  if (!agent_console_set_departure (agent, req->name, req->dest_host, error))
    goto out_release;
  drover_message (req->name, req->job_id, req->dest_host,
                  "migration: VM to the destination host (channel %s)",
                  req->channel_address);
  if (chain && !send_chain (out, chain, creds, cfg.compress, error))
    {
      (void)agent_console_set_departure (agent, req->name, NULL, NULL);
      goto out_release;
    }
  ok = mig_src_run (conn, dom, &cfg, agent_stream_get_cancellable (out->stream),
                    on_progress, out, error);
  if (!ok)
    (void)agent_console_set_departure (agent, req->name, NULL, NULL);
  if (ok)
    drover_message (req->name, req->job_id, req->dest_host,
                    "migration: VM left for the destination host");
  if (ok && disk_path
      && remove_source_disk (conn, req->job_id, req->name, disk_path))
    {
      g_autoptr (GError) e = NULL;

      if (seed)
        (void)g_unlink (seed);
      if (chain && !agent_snapshot_remove_all (agent, req->name, &e))
        drover_message (req->name, req->job_id, NULL, "migration: %s",
                        e->message);
    }
  agent_vm_release (agent, req->name);
  agent_reporter_kick_from_thread (agent);
  return ok;

out_release:
  agent_vm_release (agent, req->name);
  return FALSE;
}

static gboolean
migrate_out_run (AgentStream *stream, gpointer data, GError **error)
{
  MigOut *out = data;

  out->stream = stream;
  if (migrate_out (out, error))
    return TRUE;
  drover_message (out->req->name, out->req->job_id, out->req->dest_host,
                  "migration: %s", (*error)->message);
  if (!out->sent_final)
    {
      MigProgress p = { 0 };

      p.phase = PROTO_MIG_FAILED;
      p.error = (*error)->message;
      p.final = TRUE;
      on_progress (&p, out);
    }
  return FALSE;
}

void
agent_mig_src_migrate_out (ProtoServerCall *call, const ProtobufCMessage *req,
                           gpointer data)
{
  Agent *agent = data;
  MigOut *out = g_new0 (MigOut, 1);

  out->agent = agent_ref (agent);
  out->req = (const void *)req;
  agent_stream_start (call, agent->ctx, "mig-out", migrate_out_run, out,
                      mig_out_free);
}
