/* AgentMigDst: the destination side of live migrations on this host.
 *
 * PrepareIncoming (from the scheduler) reserves the job id, checks the
 * spec (kernel and initrd in the image directory) and capacity, claims
 * the VM name, reserves the memory, creates an empty disk image of the
 * VM's size when it has a disk (libvirt's storage copy fills it; its mark
 * is written first, see agent-disks.c) and registers the job with the
 * migration listener (MigDst): a one-time token bound to the job, its
 * stream kinds and the source host the scheduler named. The domain the
 * migration brings is checked against the paths chosen here
 * (agent-mig-xml.c) before libvirtd sees it. When the control stream of
 * the job ends (the source libvirtd closed its connection: the migration
 * is over either way), finish_incoming decides: the VM arrived
 * (persistent, active: resume it if it came paused, fetch its console
 * history from the source) or it did not (remove any half-made transient
 * domain and the disk image PrepareIncoming made). Either way the
 * reservation, the name claim and the sockets go. CancelIncoming, the
 * token's expiry and the longest a migration may run take the same path.
 *
 * A job id is taken for good from the first moment of its PrepareIncoming
 * until its reservation is freed: a second PrepareIncoming with it is
 * refused (ALREADY_EXISTS), so a reservation that a finishing thread
 * uses is never replaced under it.
 */
#include "agent-disk-images.h"
#include "agent-mig-chain.h"

#include <glib/gstdio.h>
#include <string.h>

#include "mig-migrate.h"
#include "stor.h"

#define INCOMING_TTL_MS (120 * 1000)
/* Past this a started incoming migration is over whatever its streams do
 * (the source's controller gives up within MIG_MAX_TIMEOUT_MS). */
#define INCOMING_MAX_MS (MIG_MAX_TIMEOUT_MS + 10 * 60 * 1000)
/* Post-copy recovery: how long the source has to reconnect after a
 * break, and how many breaks one job may recover from. */
#define RECOVER_TTL_MS (60 * 1000)
#define RECOVER_MAX 5

typedef struct
{
  char *job_id;
  gboolean preparing; /* lock: PrepareIncoming still runs; only job_id set */
  char *token;
  char *name;
  char *source_host;
  char *source_address;
  char *disk_path;    /* image made for the VM here, NULL without a disk */
  char *seed_path;    /* cloud-init seed made for it here, or NULL */
  char *console_path; /* the console log chosen here */
  char *emulator;     /* the QEMU binary libvirt runs here, or NULL */
  AgentMigChainSink *chain; /* the VM's snapshot chain, if it has one */
  guint64 memory;
  guint expiry_source; /* main context */
  gboolean started;    /* main context: the TTL passed with streams up */
  gboolean finishing;  /* lock */
  guint recoveries;    /* post-copy breaks waited out so far */
} Reservation;

struct _AgentMigDst
{
  Agent *agent; /* not a reference: the agent owns this */
  MigDst *dst;
  AgentImageXfers *xfers;
  char *channel_address;
  GMutex lock;
  GHashTable *incoming; /* job id -> Reservation (owned), lock */
  gint stopping;        /* atomic: channel ends no longer finish jobs */
};

static void
reservation_free (gpointer data)
{
  Reservation *r = data;

  g_free (r->job_id);
  g_free (r->token);
  g_free (r->name);
  g_free (r->source_host);
  g_free (r->source_address);
  g_free (r->disk_path);
  g_free (r->seed_path);
  g_free (r->console_path);
  g_free (r->emulator);
  agent_mig_chain_sink_free (r->chain);
  g_free (r);
}

guint64
agent_mig_dst_reserved_memory (AgentMigDst *m)
{
  GHashTableIter it;
  gpointer value;
  guint64 sum = 0;

  if (!m)
    return 0;
  g_mutex_lock (&m->lock);
  g_hash_table_iter_init (&it, m->incoming);
  while (g_hash_table_iter_next (&it, NULL, &value))
    sum += ((Reservation *)value)->memory;
  g_mutex_unlock (&m->lock);
  return sum;
}

/* --- incoming migrations ----------------------------------------------- */

/* Removes a domain NAME that is not persistent: a half-made incoming VM
 * (libvirt normally kills it itself when the source's connection goes). */
static void
remove_transient (virConnectPtr conn, const char *job_id, const char *name)
{
  for (int i = 0; i < 50; i++)
    {
      g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);

      if (!dom || virDomainIsPersistent (dom) == 1)
        return;
      if (i >= 20)
        {
          drover_message (name, job_id, NULL, "removing half-migrated domain");
          (void)virDomainDestroy (dom);
        }
      g_usleep (100 * 1000);
    }
}

static gboolean on_expiry (gpointer data);
static gpointer job_ref_new (Agent *agent, const char *job_id,
                             gboolean cancelled);
static void job_ref_free (gpointer data);

/* TRUE if the domain NAME is in a post-copy that broke off, once it has
 * noticed its streams broke (waits while it still runs in post-copy). */
static gboolean
postcopy_failed_here (virConnectPtr conn, const char *name)
{
  g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);
  int state = 0, reason = 0;

  for (int i = 0; dom && i < 50; i++)
    {
      if (virDomainGetState (dom, &state, &reason, 0) < 0)
        return FALSE;
      if (state != VIR_DOMAIN_RUNNING || reason != VIR_DOMAIN_RUNNING_POSTCOPY)
        break;
      g_usleep (100 * 1000);
    }
  /* libvirt 9.0 reports the destination "running (post-copy failed)":
   * its vCPUs wait on the pages that no longer come. */
  return (state == VIR_DOMAIN_PAUSED
          && reason == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
         || (state == VIR_DOMAIN_RUNNING
             && reason == VIR_DOMAIN_RUNNING_POSTCOPY_FAILED);
}

/* A post-copy that broke off leaves the VM paused here with part of its
 * memory on the source: instead of finishing, the job's token admits a
 * new control and memory stream for RECOVER_TTL_MS, so that the source
 * can resume it (libvirt's post-copy recovery). TRUE if the job waits. */
static gboolean
await_recovery (Agent *agent, Reservation *r)
{
  AgentMigDst *m = agent->mig_dst;
  g_autoptr (virConnect) conn = agent_libvirt_get (agent->lv, NULL);

  if (!conn || r->recoveries >= RECOVER_MAX
      || !postcopy_failed_here (conn, r->name)
      || !mig_dst_rearm (m->dst, r->job_id, RECOVER_TTL_MS))
    return FALSE;
  r->recoveries++;
  drover_message (r->name, r->job_id, NULL,
                  "migration: post-copy broke off, VM paused here; waiting "
                  "%u s for the source to resume it (break %u of at most %u)",
                  RECOVER_TTL_MS / 1000, r->recoveries, RECOVER_MAX);
  g_mutex_lock (&m->lock);
  agent_source_clear (agent->ctx, &r->expiry_source);
  r->started = FALSE;
  r->expiry_source
      = agent_source_add (agent->ctx, RECOVER_TTL_MS, on_expiry,
                          job_ref_new (agent, r->job_id, TRUE), job_ref_free);
  r->finishing = FALSE;
  g_mutex_unlock (&m->lock);
  return TRUE;
}

/* Ends incoming job JOB_ID: any thread but a channel's. */
static void
finish_incoming (Agent *agent, const char *job_id, const char *token,
                 gboolean cancelled)
{
  AgentMigDst *m = agent->mig_dst;
  Reservation *r;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) chain_paths = NULL;
  gboolean arrived = FALSE;

  g_mutex_lock (&m->lock);
  r = g_hash_table_lookup (m->incoming, job_id);
  if (!r || r->preparing || r->finishing
      || (token && !mig_token_equal (token, r->token)))
    r = NULL;
  else
    r->finishing = TRUE;
  g_mutex_unlock (&m->lock);
  if (!r)
    return;
  if (!cancelled && await_recovery (agent, r))
    return;

  /* Closing the channels makes libvirt drop an unfinished incoming VM;
   * an image stream still running ends, and its reader with it. */
  mig_dst_forget (m->dst, job_id, NULL, NULL);
  agent_image_xfer_forget (agent, job_id);
  chain_paths = r->chain ? agent_mig_chain_sink_steal_paths (r->chain) : NULL;
  conn = agent_libvirt_get (agent->lv, &error);
  if (conn)
    {
      g_autoptr (virDomain) dom = virDomainLookupByName (conn, r->name);

      if (dom && virDomainIsPersistent (dom) == 1
          && virDomainIsActive (dom) == 1)
        {
          int state = 0, reason = 0;

          arrived = TRUE;
          /* A forced switchover pauses the guest on the source; it must
           * run here. */
          for (int i = 0; i < 20; i++)
            {
              if (virDomainGetState (dom, &state, &reason, 0) < 0
                  || state != VIR_DOMAIN_PAUSED || virDomainResume (dom) == 0)
                break;
              g_usleep (100 * 1000);
            }
          if (state == VIR_DOMAIN_PAUSED)
            drover_message (r->name, job_id, NULL,
                            "migration: VM arrived paused (reason %d)", reason);
        }
      else
        remove_transient (conn, job_id, r->name);
    }
  /* The image PrepareIncoming made holds nothing of value unless the VM
   * arrived (then it is the VM's disk). Without a libvirt connection
   * whether it arrived is unknown: keep it, marked. */
  if (r->disk_path && (arrived || conn))
    {
      g_autofree char *mark = agent_disks_incoming_mark (r->disk_path);
      g_autoptr (GError) e = NULL;

      if (!arrived && !stor_disk_remove (r->disk_path, &e))
        drover_message (r->name, job_id, NULL, "migration: %s", e->message);
      else
        (void)g_unlink (mark);
    }
  /* Its cloud-init seed, like the image (a seed left when whether it
   * arrived is unknown goes with the agent's next start if it did not). */
  if (r->seed_path && !arrived && conn)
    (void)g_unlink (r->seed_path);
  /* The snapshot chain: the VM's own files now, or nobody's. */
  if (arrived)
    agent_image_xfer_keep (chain_paths);
  else if (conn && chain_paths)
    {
      g_autoptr (GError) e = NULL;

      agent_image_xfer_discard (chain_paths);
      if (!agent_snapshot_remove_all (agent, r->name, &e))
        drover_message (r->name, job_id, NULL, "migration: %s", e->message);
    }
  if (arrived && !cancelled)
    {
      drover_message (r->name, job_id, NULL, "migration: VM arrived");
      if (*r->source_address
          && !agent_console_fetch_history (agent, r->source_host,
                                           r->source_address, r->name, &error))
        drover_message (r->name, job_id, NULL,
                        "migration: console history not copied: %s",
                        error->message);
    }
  else
    drover_message (r->name, job_id, NULL, "migration: VM did not arrive%s",
                    cancelled ? " (cancelled)" : "");

  g_mutex_lock (&m->lock);
  g_hash_table_steal (m->incoming, job_id);
  g_mutex_unlock (&m->lock);
  agent_source_clear (agent->ctx, &r->expiry_source);
  agent_vm_release (agent, r->name);
  reservation_free (r);
  agent_reporter_kick_from_thread (agent);
}

/* Incoming job JOB_ID, for the thread or the timer that finishes it. */
typedef struct
{
  Agent *agent;
  char *job_id;
  gboolean cancelled;
} JobRef;

static gpointer
job_ref_new (Agent *agent, const char *job_id, gboolean cancelled)
{
  JobRef *j = g_new0 (JobRef, 1);

  j->agent = agent_ref (agent);
  j->job_id = g_strdup (job_id);
  j->cancelled = cancelled;
  return j;
}

static void
job_ref_free (gpointer data)
{
  JobRef *j = data;

  agent_unref (j->agent);
  g_free (j->job_id);
  g_free (j);
}

static gpointer
finish_thread (gpointer data)
{
  JobRef *j = data;

  finish_incoming (j->agent, j->job_id, NULL, j->cancelled);
  job_ref_free (j);
  return NULL;
}

static void
finish_async (Agent *agent, const char *job_id, gboolean cancelled)
{
  g_thread_unref (g_thread_new ("mig-finish", finish_thread,
                                job_ref_new (agent, job_id, cancelled)));
}

static void
on_control_ended (const char *job_id, const GError *error, gpointer user_data)
{
  AgentMigDst *m = user_data;
  Agent *agent = m->agent;

  if (g_atomic_int_get (&m->stopping))
    return;
  if (g_error_matches (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED))
    drover_message (NULL, job_id, NULL,
                    "migration: %s; the control stream is closed",
                    error->message);
  else if (error)
    drover_debug (NULL, job_id, NULL, "migration: control stream: %s",
                  error->message);
  finish_async (agent, job_id, FALSE);
}

static gboolean
on_expiry (gpointer data)
{
  JobRef *e = data;
  Agent *agent = e->agent;
  AgentMigDst *m = agent->mig_dst;
  Reservation *r;
  gboolean started = mig_dst_started (m->dst, e->job_id);
  gboolean was_started = FALSE;

  g_mutex_lock (&m->lock);
  r = g_hash_table_lookup (m->incoming, e->job_id);
  if (r)
    {
      was_started = r->started;
      r->started = started;
      r->expiry_source = 0;
      /* Once the control stream runs, its end finishes the job; but not
       * later than any migration may take. */
      if (started && !was_started)
        r->expiry_source = agent_source_add (
            agent->ctx, INCOMING_MAX_MS, on_expiry,
            job_ref_new (agent, e->job_id, TRUE), job_ref_free);
    }
  g_mutex_unlock (&m->lock);
  if (r && (!started || was_started))
    {
      drover_message (NULL, e->job_id, NULL,
                      started ? "migration: still running after %u s; "
                                "dropping it"
                              : "migration: nobody came in %u s; dropping "
                                "the reservation",
                      (started ? INCOMING_MAX_MS : INCOMING_TTL_MS) / 1000);
      finish_async (agent, e->job_id, TRUE);
    }
  return G_SOURCE_REMOVE;
}

/* --- PrepareIncoming and CancelIncoming ---------------------------------- */

/* Takes JOB_ID for a new incoming job: AGENT_ERROR_EXISTS while a job of
 * that id is here in any state. */
static gboolean
reserve_job (AgentMigDst *m, const char *job_id, GError **error)
{
  Reservation *r;

  g_mutex_lock (&m->lock);
  if (g_hash_table_contains (m->incoming, job_id))
    {
      g_mutex_unlock (&m->lock);
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "migration %s is already expected here", job_id);
      return FALSE;
    }
  r = g_new0 (Reservation, 1);
  r->job_id = g_strdup (job_id);
  r->preparing = TRUE;
  g_hash_table_insert (m->incoming, r->job_id, r);
  g_mutex_unlock (&m->lock);
  return TRUE;
}

static void
unreserve_job (AgentMigDst *m, const char *job_id)
{
  g_mutex_lock (&m->lock);
  g_hash_table_remove (m->incoming, job_id);
  g_mutex_unlock (&m->lock);
}

/* The empty image an incoming VM's disk is copied into, at the same
 * virtual size as the source's (QEMU's NBD server exports it and the
 * source mirrors its disk into it). Its mark comes first, so that a crash
 * at any point leaves something agent_disks_reclaim cleans up. An image
 * already there is refused (stor_disk_create), never overwritten: no VM
 * of that name is here, but the file may be someone's data. */
static char *
make_disk (Agent *agent, virConnectPtr conn, const char *job_id,
           const Drover__V1__VmSpec *spec, GError **error)
{
  g_autofree char *path = NULL, *mark = NULL;
  g_autoptr (GError) local = NULL;

  path = stor_disk_path (agent->config.data_dir, spec->name, error);
  if (!path)
    return NULL;
  agent_disks_reclaim_incoming (conn, spec->name, path);
  mark = agent_disks_incoming_mark (path);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_EXISTS,
                   "disk image %s already exists", path);
      return NULL;
    }
  if (!g_file_set_contents_full (mark, job_id, -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return NULL;
  /* A VM made from an image (issue 13): an overlay on the same image,
   * which this host must have. */
  if (!(spec->image[0] != '\0' ? agent_disk_images_overlay (
            agent, spec->image, path, spec->disk, NULL, &local)
                               : stor_disk_create (path, spec->disk, &local))
      || !agent_protect (agent, path, 0660, &local))
    {
      /* Not an image someone else put there meanwhile. */
      if (!g_error_matches (local, STOR_ERROR, STOR_ERROR_EXISTS))
        (void)stor_disk_remove (path, NULL);
      (void)g_unlink (mark);
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  return g_steal_pointer (&path);
}

ProtobufCMessage *
agent_mig_dst_prepare (Agent *agent, const AgentCaller *caller,
                       const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__PrepareIncomingRequest *req = (const void *)request;
  AgentMigDst *m = agent->mig_dst;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *token = NULL, *console = NULL, *disk_path = NULL;
  g_autofree char *emulator = NULL, *seed_path = NULL;
  g_autoptr (GError) local = NULL;
  g_autoptr (AgentTls) tls = NULL;
  AgentMigChainSink *chain = NULL;
  guint kinds = MIG_TOKEN_KIND (MIG_CHANNEL_KIND_CONTROL)
                | MIG_TOKEN_KIND (MIG_CHANNEL_KIND_MEMORY);
  Drover__V1__PrepareIncomingReply *reply;
  Reservation *r;

  if (!m)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_UNAVAILABLE,
                           "this agent does not accept migrations");
      return NULL;
    }
  if (!mig_job_id_valid (req->job_id))
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "job id must be 1-64 characters of [A-Za-z0-9_-]");
      return NULL;
    }
  /* The streams must come from the source host's certificate. */
  tls = agent_tls_get (agent);
  if (tls && !proto_name_validate ("host", req->source_host, error))
    return NULL;
  if (!proto_vm_spec_check (req->spec, error))
    return NULL;
  spec = proto_msg_copy (&req->spec->base);
  if (!agent_vm_check_spec (agent, spec, error)
      || !reserve_job (m, req->job_id, error))
    return NULL;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn || !agent_vm_admit (agent, conn, spec, error))
    {
      unreserve_job (m, req->job_id);
      return NULL;
    }
  if ((spec->disk > 0 || spec->image[0] != '\0')
      && !(disk_path = make_disk (agent, conn, req->job_id, spec, error)))
    goto fail;
  /* The VM's cloud-init seed (issue 13), rebuilt from the scheduler's
   * spec beside the disk: the source's never travels, and no path comes
   * from the wire. */
  if (disk_path && spec->cloud_init_user_data.len > 0)
    {
      seed_path = agent_cloud_init_seed_path (disk_path);
      if (!agent_cloud_init_seed_make (agent, spec, seed_path, error))
        {
          g_clear_pointer (&seed_path, g_free);
          goto fail;
        }
    }
  /* Leftovers of an earlier stay here would mix into the console. */
  (void)agent_console_remove (agent, spec->name, NULL);
  console = agent_console_path (agent, spec->name);
  if (!agent_console_prepare (agent, spec->name, error))
    goto fail;
  emulator = agent_qemu_emulator (agent, conn);
  /* A VM with a disk may bring its snapshot chain on an image stream. */
  if (disk_path)
    {
      AgentImageXferSink sink;

      chain = agent_mig_chain_sink_new (agent, spec->name, disk_path,
                                        spec->disk, spec->memory);
      agent_mig_chain_sink_init (chain, &sink);
      if (!agent_image_xfer_register (agent, req->job_id, &sink, error))
        goto fail;
      kinds |= MIG_TOKEN_KIND (MIG_CHANNEL_KIND_DISK)
               | MIG_TOKEN_KIND (MIG_CHANNEL_KIND_IMAGE);
    }
  token = mig_dst_expect_kinds (m->dst, req->job_id,
                                tls ? req->source_host : NULL, kinds,
                                INCOMING_TTL_MS, &local);
  if (!token)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                           local->message);
      goto fail;
    }

  g_mutex_lock (&m->lock);
  r = g_hash_table_lookup (m->incoming, req->job_id);
  r->token = g_strdup (token);
  r->name = g_strdup (spec->name);
  r->source_host = g_strdup (req->source_host ? req->source_host : "");
  r->source_address = g_strdup (req->source_address ? req->source_address : "");
  r->memory = spec->memory;
  r->disk_path = g_strdup (disk_path);
  r->seed_path = g_strdup (seed_path);
  r->console_path = g_strdup (console);
  r->emulator = g_steal_pointer (&emulator);
  r->chain = g_steal_pointer (&chain);
  r->preparing = FALSE;
  r->expiry_source
      = agent_source_add (agent->ctx, INCOMING_TTL_MS + 1000, on_expiry,
                          job_ref_new (agent, req->job_id, TRUE), job_ref_free);
  g_mutex_unlock (&m->lock);
  drover_message (spec->name, req->job_id, req->source_host,
                  "migration: expecting the VM from the source host");

  reply = g_new0 (Drover__V1__PrepareIncomingReply, 1);
  drover__v1__prepare_incoming_reply__init (reply);
  reply->token = g_steal_pointer (&token);
  reply->channel_address = g_strdup (m->channel_address);
  reply->console_path = g_steal_pointer (&console);
  reply->disk_path = proto_msg_strdup (disk_path ? disk_path : "");
  return (ProtobufCMessage *)reply;

fail:
  agent_image_xfer_forget (agent, req->job_id);
  if (seed_path)
    (void)g_unlink (seed_path);
  agent_mig_chain_sink_free (chain);
  if (disk_path)
    {
      g_autofree char *mark = agent_disks_incoming_mark (disk_path);

      (void)stor_disk_remove (disk_path, NULL);
      (void)g_unlink (mark);
    }
  agent_vm_release (agent, spec->name);
  unreserve_job (m, req->job_id);
  return NULL;
}

ProtobufCMessage *
agent_mig_dst_cancel (Agent *agent, const AgentCaller *caller,
                      const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__CancelIncomingRequest *req = (const void *)request;
  AgentMigDst *m = agent->mig_dst;
  gboolean known, match = FALSE;

  if (!m || !mig_job_id_valid (req->job_id))
    return agent_service_empty_reply ();
  g_mutex_lock (&m->lock);
  {
    Reservation *r = g_hash_table_lookup (m->incoming, req->job_id);
    known = r != NULL && !r->preparing;
    match = known && req->token && mig_token_equal (r->token, req->token);
  }
  g_mutex_unlock (&m->lock);
  if (known && !match)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "wrong token for migration %s", req->job_id);
      return NULL;
    }
  if (known)
    finish_incoming (agent, req->job_id, req->token, TRUE);
  return agent_service_empty_reply ();
}

/* What the domain a migration brings may name (MigDstCheckFunc). */
static gboolean
on_check (const char *job_id, const char *what, const char *value,
          gpointer user_data, GError **error)
{
  AgentMigDst *m = user_data;
  AgentMigXmlPaths paths = { 0 };
  g_autofree char *name = NULL, *disk = NULL, *console = NULL;
  g_autofree char *emulator = NULL, *seed = NULL;
  Reservation *r;

  g_mutex_lock (&m->lock);
  r = g_hash_table_lookup (m->incoming, job_id);
  if (r && !r->preparing)
    {
      name = g_strdup (r->name);
      /* With a snapshot chain the VM runs on the overlay made for it. */
      disk = r->chain ? agent_mig_chain_sink_active_path (r->chain) : NULL;
      if (!disk)
        disk = g_strdup (r->disk_path);
      console = g_strdup (r->console_path);
      emulator = g_strdup (r->emulator);
      seed = g_strdup (r->seed_path);
    }
  g_mutex_unlock (&m->lock);
  if (!name)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "migration %s is not expected here", job_id);
      return FALSE;
    }
  paths.name = name;
  paths.disk_path = disk;
  paths.console_path = console;
  paths.emulator = emulator;
  paths.seed_path = seed;
  return agent_mig_xml_check (m->agent, &paths, what, value, error);
}

/* An image stream came (MigDstStreamFunc). */
static void
on_image (const char *job_id, int fd, gpointer user_data)
{
  AgentMigDst *m = user_data;

  agent_image_xfers_accept (m->xfers, job_id, fd);
}

/* --- lifecycle --------------------------------------------------------- */

AgentImageXfers *
agent_mig_dst_get_xfers (AgentMigDst *m)
{
  return m->xfers;
}

MigDst *
agent_mig_dst_get_dst (AgentMigDst *m)
{
  return m->dst;
}

const char *
agent_mig_dst_get_address (AgentMigDst *m)
{
  return m->channel_address;
}

AgentMigDst *
agent_mig_dst_new (Agent *agent, const char *ip, guint16 port, GError **error)
{
  AgentMigDst *m = g_new0 (AgentMigDst, 1);
  MigDstConfig dc = { 0 };
  g_autoptr (AgentTls) tls = agent_tls_get (agent);

  m->agent = agent;
  g_mutex_init (&m->lock);
  m->incoming
      = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, reservation_free);
  m->xfers = agent_image_xfers_new ();
  dc.creds = tls ? tls->mig_creds : NULL;
  dc.address = ip;
  dc.port = port;
  dc.ended = on_control_ended;
  dc.check = on_check;
  dc.image = on_image;
  dc.user_data = m;
  m->dst = mig_dst_new (&dc, error);
  if (!m->dst)
    {
      g_prefix_error (error, "cannot listen for migrations on %s:%u: ", ip,
                      port);
      agent_mig_dst_free (m);
      return NULL;
    }
  m->channel_address = g_strdup_printf ("%s:%u", ip, mig_dst_get_port (m->dst));
  g_message ("accepting migrations on %s", m->channel_address);
  return m;
}

void
agent_mig_dst_set_creds (AgentMigDst *m, MigChannelCreds *creds)
{
  mig_dst_set_creds (m->dst, creds);
}

void
agent_mig_dst_free (AgentMigDst *m)
{
  if (!m)
    return;
  g_atomic_int_set (&m->stopping, TRUE);
  if (m->dst)
    mig_dst_free (m->dst);
  /* After the listener: its streams are closed, their readers end. */
  agent_image_xfers_free (m->xfers);
  g_hash_table_destroy (m->incoming);
  g_free (m->channel_address);
  g_mutex_clear (&m->lock);
  g_free (m);
}
