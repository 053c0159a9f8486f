/* AgentMigDst: the destination side of live migrations on this host.
 *
 * PrepareIncoming checks capacity, claims the VM name, reserves the
 * memory, creates an empty disk image of the VM's size when it has a disk
 * (libvirt's storage copy fills it) and registers a one-time token with
 * the migration listener (MigDst). When the control stream of the job
 * ends (the source libvirtd closed its connection: the migration is over
 * either way), finish_incoming decides: the VM arrived (persistent,
 * active: resume it if it came paused, fetch its console history from
 * the source) or it did not (remove any half-made transient domain and
 * the disk image PrepareIncoming made). Either way the reservation, the
 * name claim and the sockets go. CancelIncoming and the token's expiry
 * take the same path.
 */
#include "agent-private.h"

#include <glib/gstdio.h>
#include <string.h>

#include "mig-migrate.h"
#include "stor.h"

#define INCOMING_TTL_MS (120 * 1000)

typedef struct
{
  char *job_id;
  char *token;
  char *name;
  char *source_host;
  char *source_address;
  char *disk_path; /* image made for the VM here, NULL without a disk */
  guint64 memory;
  guint expiry_source; /* main context */
  gboolean finishing;  /* lock */
} Reservation;

struct _AgentMigDst
{
  Agent *agent; /* not a reference: the agent owns this */
  MigDst *dst;
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

/* An image PrepareIncoming made carries a mark, DISK.incoming, until its
 * migration is decided, so one that an agent which died meanwhile left
 * behind is known for what it is and taken back. */
static char *
incoming_mark (const char *disk_path)
{
  return g_strconcat (disk_path, ".incoming", NULL);
}

/* Takes back DISK_PATH if it is the marked image of an undecided incoming
 * migration of VM NAME: removed when no VM NAME is here, kept (unmarked)
 * when the VM arrived, left alone when libvirt cannot tell. */
static void
reclaim_incoming_disk (virConnectPtr conn, const char *name,
                       const char *disk_path)
{
  g_autofree char *mark = incoming_mark (disk_path);
  g_autoptr (virDomain) dom = NULL;
  virErrorPtr err;

  if (!g_file_test (mark, G_FILE_TEST_EXISTS))
    return;
  dom = virDomainLookupByName (conn, name);
  if (dom)
    {
      if (virDomainIsPersistent (dom) == 1)
        (void)g_unlink (mark);
      return; /* a transient one: a half-made incoming VM, not decided */
    }
  err = virGetLastError ();
  if (!err || err->code != VIR_ERR_NO_DOMAIN)
    return;
  if (stor_disk_remove (disk_path, NULL))
    {
      (void)g_unlink (mark);
      drover_message (name, NULL, NULL,
                      "removed %s, left by an unfinished incoming migration",
                      disk_path);
    }
}

/* Agent start: takes back the images of incoming migrations an earlier
 * run left undecided. */
static void
reclaim_incoming_disks (Agent *agent)
{
  g_autoptr (GDir) dir = g_dir_open (agent->disk_dir, 0, NULL);
  g_autoptr (virConnect) conn = NULL;
  const char *file;

  while (dir && (file = g_dir_read_name (dir)))
    {
      g_autofree char *name = NULL, *path = NULL;

      if (!g_str_has_suffix (file, ".qcow2.incoming"))
        continue;
      name = g_strndup (file, strlen (file) - strlen (".qcow2.incoming"));
      path = stor_disk_path (agent->config.data_dir, name, NULL);
      if (!path)
        continue;
      if (!conn && !(conn = agent_libvirt_get (agent->lv, NULL)))
        return; /* libvirt not up yet: the next PrepareIncoming decides */
      reclaim_incoming_disk (conn, name, path);
    }
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
  gboolean arrived = FALSE;

  g_mutex_lock (&m->lock);
  r = g_hash_table_lookup (m->incoming, job_id);
  if (!r || r->finishing || (token && strcmp (token, r->token) != 0))
    r = NULL;
  else
    r->finishing = TRUE;
  g_mutex_unlock (&m->lock);
  if (!r)
    return;

  /* Closing the channels makes libvirt drop an unfinished incoming VM. */
  mig_dst_forget (m->dst, job_id, NULL, NULL);
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
      g_autofree char *mark = incoming_mark (r->disk_path);
      g_autoptr (GError) e = NULL;

      if (!arrived && !stor_disk_remove (r->disk_path, &e))
        drover_message (r->name, job_id, NULL, "migration: %s", e->message);
      else
        (void)g_unlink (mark);
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

static JobRef *
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
  if (error)
    drover_debug (NULL, job_id, NULL, "migration: control stream: %s",
                  error->message);
  finish_async (agent, job_id, FALSE);
}

static gboolean
on_expiry (gpointer data)
{
  JobRef *e = data;
  AgentMigDst *m = e->agent->mig_dst;
  Reservation *r;

  g_mutex_lock (&m->lock);
  r = g_hash_table_lookup (m->incoming, e->job_id);
  if (r)
    r->expiry_source = 0;
  g_mutex_unlock (&m->lock);
  /* Once the control stream runs, its end finishes the job. */
  if (r && !mig_dst_started (m->dst, e->job_id))
    {
      drover_message (NULL, e->job_id, NULL,
                      "migration: nobody came; dropping the reservation");
      finish_async (e->agent, e->job_id, TRUE);
    }
  return G_SOURCE_REMOVE;
}

ProtobufCMessage *
agent_mig_dst_prepare (Agent *agent, const ProtobufCMessage *request,
                       GError **error)
{
  const Drover__V1__PrepareIncomingRequest *req = (const void *)request;
  AgentMigDst *m = agent->mig_dst;
  g_autoptr (virConnect) conn = NULL;
  g_autofree char *token = NULL;
  g_autoptr (GError) local = NULL;
  Drover__V1__PrepareIncomingReply *reply;
  Reservation *r;
  const Drover__V1__VmSpec *spec = req->spec;
  g_autofree char *console = NULL, *disk_path = NULL;

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
  if (!agent_vm_check_spec (agent, spec, error))
    return NULL;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  if (!agent_vm_admit (agent, conn, spec, error))
    return NULL;
  if (spec->disk > 0)
    {
      /* Same virtual size as the source's image: QEMU's NBD server
       * exports it and the source mirrors its disk into it. An image
       * already there is refused (stor_disk_create), never overwritten:
       * no VM of that name is here, but the file may be someone's data. */
      g_autofree char *mark = NULL;

      disk_path = stor_disk_path (agent->config.data_dir, spec->name, error);
      if (disk_path)
        reclaim_incoming_disk (conn, spec->name, disk_path);
      if (!disk_path || !stor_disk_create (disk_path, spec->disk, error))
        {
          g_clear_pointer (&disk_path, g_free);
          goto fail;
        }
      mark = incoming_mark (disk_path);
      if (!g_file_set_contents (mark, req->job_id, -1, error))
        goto fail;
    }
  token = mig_dst_expect (m->dst, req->job_id, disk_path != NULL,
                          INCOMING_TTL_MS, &local);
  if (!token)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                           local->message);
      goto fail;
    }
  /* Leftovers of an earlier stay here would mix into the console. */
  (void)agent_console_remove (agent, spec->name, NULL);
  console = agent_console_path (agent, spec->name);

  r = g_new0 (Reservation, 1);
  r->job_id = g_strdup (req->job_id);
  r->token = g_strdup (token);
  r->name = g_strdup (spec->name);
  r->source_host = g_strdup (req->source_host ? req->source_host : "");
  r->source_address = g_strdup (req->source_address ? req->source_address : "");
  r->memory = spec->memory;
  r->disk_path = g_strdup (disk_path);
  g_mutex_lock (&m->lock);
  g_hash_table_insert (m->incoming, r->job_id, r);
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
  if (disk_path)
    {
      g_autofree char *mark = incoming_mark (disk_path);

      (void)stor_disk_remove (disk_path, NULL);
      (void)g_unlink (mark);
    }
  agent_vm_release (agent, spec->name);
  return NULL;
}

ProtobufCMessage *
agent_mig_dst_cancel (Agent *agent, const ProtobufCMessage *request,
                      GError **error)
{
  const Drover__V1__CancelIncomingRequest *req = (const void *)request;
  AgentMigDst *m = agent->mig_dst;
  gboolean known, match = FALSE;

  if (!m || !mig_job_id_valid (req->job_id))
    return agent_service_empty_reply ();
  g_mutex_lock (&m->lock);
  {
    Reservation *r = g_hash_table_lookup (m->incoming, req->job_id);
    known = r != NULL;
    match = r && strcmp (r->token, req->token) == 0;
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

/* --- lifecycle --------------------------------------------------------- */

AgentMigDst *
agent_mig_dst_new (Agent *agent, const char *ip, guint16 port, GError **error)
{
  AgentMigDst *m = g_new0 (AgentMigDst, 1);
  MigDstConfig dc = { 0 };

  m->agent = agent;
  g_mutex_init (&m->lock);
  m->incoming
      = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, reservation_free);
  reclaim_incoming_disks (agent);
  dc.creds = agent->mig_creds;
  dc.address = ip;
  dc.port = port;
  dc.ended = on_control_ended;
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
agent_mig_dst_free (AgentMigDst *m)
{
  if (!m)
    return;
  g_atomic_int_set (&m->stopping, TRUE);
  if (m->dst)
    mig_dst_free (m->dst);
  g_hash_table_destroy (m->incoming);
  g_free (m->channel_address);
  g_mutex_clear (&m->lock);
  g_free (m);
}
