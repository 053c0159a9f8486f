/* AgentService's live-migration calls and the console history.
 *
 * Destination: PrepareIncoming checks capacity, claims the VM name,
 * reserves the memory, creates an empty disk image of the VM's size when
 * it has a disk (libvirt's storage copy fills it) and registers a
 * one-time token with the migration listener (MigDst). When the control
 * stream of the job ends (the source libvirtd closed its connection: the
 * migration is over either way), finish_incoming decides: the VM arrived
 * (persistent, active: resume it if it came paused, fetch its console
 * history from the source) or it did not (remove any half-made transient
 * domain and the disk image PrepareIncoming made). Either way the
 * reservation, the name claim and the sockets go. CancelIncoming and the
 * token's expiry take the same path.
 *
 * Source: MigrateOut claims the VM and runs mig_src_run on a worker
 * thread; its progress goes into a queue that the agent's main context
 * drains into the server stream (in order). Cancelling the call cancels
 * the migration (the libvirt job is aborted). A VM with a disk takes its
 * disk along (non-shared storage migration); once it runs on the
 * destination and is undefined here, the disk image here is garbage and
 * is removed. A failed migration never touches it.
 *
 * Console history: ReadConsole serves console/NAME.history (what the VM
 * wrote on earlier hosts) followed by console/NAME.log as one stream. On
 * a host the VM has left, the same files stay readable until a read at
 * their end, which the destination agent makes once it has copied them:
 * then they are removed.
 */
#include "agent-private.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig-migrate.h"
#include "stor.h"

#define INCOMING_TTL_MS (120 * 1000)
#define HISTORY_MAX_BYTES (64 * 1024 * 1024)
#define HISTORY_CHUNK (1024 * 1024)
#define SOURCE_CALL_TIMEOUT_MS 10000
#define FAULT_CUT_AT (4 * 1024 * 1024)

typedef struct
{
  char *job_id;
  char *token;
  char *name;
  char *source_address;
  char *disk_path; /* image made for the VM here, NULL without a disk */
  guint64 memory;
  guint expiry_source; /* main context */
  gboolean finishing;  /* lock */
} Reservation;

struct _AgentMigration
{
  Agent *agent; /* not a reference: the agent owns this */
  MigDst *dst;
  MigChannelCreds *creds;
  char *channel_address;
  GMutex lock;
  GHashTable *incoming; /* job id -> Reservation, lock */
  gint stopping;        /* atomic: channel ends no longer finish jobs */
};

static void
reservation_free (Reservation *r)
{
  g_free (r->job_id);
  g_free (r->token);
  g_free (r->name);
  g_free (r->source_address);
  g_free (r->disk_path);
  g_free (r);
}

static char *
history_path (Agent *agent, const char *name)
{
  g_autofree char *file = g_strconcat (name, ".history", NULL);

  return g_build_filename (agent->console_dir, file, NULL);
}

static gboolean
kick_cb (gpointer data)
{
  agent_reporter_kick (data);
  return G_SOURCE_REMOVE;
}

/* Reporter kick from any thread. */
static void
kick (Agent *agent)
{
  GSource *s = g_idle_source_new ();

  g_source_set_callback (s, kick_cb, agent_ref (agent),
                         (GDestroyNotify)agent_unref);
  g_source_attach (s, agent->ctx);
  g_source_unref (s);
}

guint64
agent_migration_reserved_memory (Agent *agent)
{
  AgentMigration *m = agent->migration;
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

/* --- console ------------------------------------------------------------ */

static gint64
file_size (const char *path)
{
  struct stat st;

  return stat (path, &st) == 0 && S_ISREG (st.st_mode) ? st.st_size : -1;
}

/* Reads up to LEN bytes at OFFSET of PATH into BUF; returns bytes read. */
static gsize
read_at (const char *path, gint64 offset, guint8 *buf, gsize len)
{
  gsize got = 0;
  int fd = g_open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);

  if (fd < 0)
    return 0;
  while (got < len)
    {
      ssize_t n = pread (fd, buf + got, len - got, offset + got);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      got += n;
    }
  close (fd);
  return got;
}

ProtobufCMessage *
agent_console_serve (Agent *agent, const Drover__V1__ConsoleRequest *req,
                     GError **error)
{
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autoptr (GError) local = NULL;
  g_autofree char *log = NULL, *hist = NULL;
  g_autofree guint8 *data = NULL;
  Drover__V1__ConsoleChunk *chunk;
  guint32 max = req->max_bytes ? req->max_bytes : AGENT_CONSOLE_DEFAULT_BYTES;
  gint64 hsize, lsize, size, start;
  gsize got = 0, want;
  gboolean here;

  if (!proto_name_validate ("VM", req->name, error))
    return NULL;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  dom = agent_vm_lookup (agent, conn, req->name, &local);
  if (!dom && local->code != AGENT_ERROR_NOT_FOUND)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  here = dom != NULL;
  max = MIN (max, AGENT_CONSOLE_MAX_BYTES);
  log = agent_console_path (agent, req->name);
  hist = history_path (agent, req->name);
  hsize = file_size (hist);
  lsize = file_size (log);
  if (!here && hsize < 0 && lsize < 0)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  hsize = MAX (hsize, 0);
  lsize = MAX (lsize, 0);
  size = hsize + lsize;
  if (req->offset < 0)
    start = req->offset < -size ? 0 : size + req->offset;
  else
    start = MIN (req->offset, size);
  want = (gsize)MIN ((gint64)max, size - start);
  data = g_malloc (MAX (1, want));
  if (start < hsize)
    got = read_at (hist, start, data, MIN ((gint64)want, hsize - start));
  if (got == (gsize)MAX (0, MIN ((gint64)want, hsize - start)) && got < want)
    got += read_at (log, start + got - hsize, data + got, want - got);

  /* The VM left this host and the reader (the destination agent) has it
   * all: the copy here is no longer needed. */
  if (!here && want == 0 && start == size)
    {
      (void)g_unlink (hist);
      (void)g_unlink (log);
      g_message ("console log of VM %s handed over; removed here", req->name);
    }

  chunk = g_new0 (Drover__V1__ConsoleChunk, 1);
  drover__v1__console_chunk__init (chunk);
  if (got > 0)
    {
      chunk->data.data = g_steal_pointer (&data);
      chunk->data.len = got;
    }
  chunk->next_offset = start + got;
  chunk->size = size;
  return (ProtobufCMessage *)chunk;
}

/* Copies the console stream of NAME from the agent at ADDRESS into
 * NAME.history, then tells that agent it may drop its copy. */
static gboolean
fetch_history (Agent *agent, const char *address, const char *name,
               GError **error)
{
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  g_autoptr (ProtoClient) client = NULL;
  g_autofree char *path = history_path (agent, name);
  g_autofree char *tmp = g_strconcat (path, ".tmp", NULL);
  g_autoptr (GByteArray) buf = g_byte_array_new ();
  Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
  gint64 offset = 0;
  gint64 deadline;

  g_main_context_push_thread_default (ctx);
  client = proto_client_new (address, agent->tls, ctx, error);
  g_main_context_pop_thread_default (ctx);
  if (!client)
    return FALSE;
  req.name = (char *)name;
  req.max_bytes = HISTORY_CHUNK;
  for (;;)
    {
      Drover__V1__ConsoleChunk *chunk;
      gsize n;

      req.offset = offset;
      chunk = (Drover__V1__ConsoleChunk *)proto_client_call_sync (
          client, DROVER_AGENT_SERVICE, DROVER_AGENT_METHOD_READ_CONSOLE,
          &req.base, SOURCE_CALL_TIMEOUT_MS, error);
      if (!chunk)
        return FALSE;
      n = chunk->data.len;
      if (buf->len + n > HISTORY_MAX_BYTES)
        n = 0; /* keep what fits; the rest is older than useful */
      g_byte_array_append (buf, chunk->data.data, n);
      offset = chunk->next_offset;
      protobuf_c_message_free_unpacked (&chunk->base, NULL);
      if (n == 0)
        break;
    }
  if (!g_file_set_contents (tmp, (const char *)buf->data, buf->len, error))
    return FALSE;
  if (g_rename (tmp, path) < 0)
    {
      int saved = errno;
      (void)g_unlink (tmp);
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot rename %s: %s", tmp, g_strerror (saved));
      return FALSE;
    }
  /* A read at the end removes the source's copy once the VM is gone
   * there; libvirt undefines it just after closing its connection to us,
   * so repeat until the source no longer knows the log. */
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < deadline)
    {
      g_autoptr (GError) e = NULL;
      ProtobufCMessage *reply;

      req.offset = offset;
      reply = proto_client_call_sync (client, DROVER_AGENT_SERVICE,
                                      DROVER_AGENT_METHOD_READ_CONSOLE,
                                      &req.base, SOURCE_CALL_TIMEOUT_MS, &e);
      if (!reply)
        break; /* NOT_FOUND: removed */
      protobuf_c_message_free_unpacked (reply, NULL);
      g_usleep (300 * 1000);
    }
  return TRUE;
}

/* --- destination ---------------------------------------------------------- */

static ProtobufCMessage *
empty_reply (void)
{
  Drover__V1__Empty *reply = g_new0 (Drover__V1__Empty, 1);

  drover__v1__empty__init (reply);
  return (ProtobufCMessage *)reply;
}

/* Removes a domain NAME that is not persistent: a half-made incoming VM
 * (libvirt normally kills it itself when the source's connection goes). */
static void
remove_transient (virConnectPtr conn, const char *name)
{
  for (int i = 0; i < 50; i++)
    {
      g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);

      if (!dom || virDomainIsPersistent (dom) == 1)
        return;
      if (i >= 20)
        {
          g_message ("removing half-migrated domain %s", name);
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
      g_message ("removed %s, left by an unfinished incoming migration",
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
  AgentMigration *m = agent->migration;
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
            g_message ("migration %s: VM %s arrived paused (reason %d)", job_id,
                       r->name, reason);
        }
      else
        remove_transient (conn, r->name);
    }
  /* The image PrepareIncoming made holds nothing of value unless the VM
   * arrived (then it is the VM's disk). Without a libvirt connection
   * whether it arrived is unknown: keep it, marked. */
  if (r->disk_path && (arrived || conn))
    {
      g_autofree char *mark = incoming_mark (r->disk_path);
      g_autoptr (GError) e = NULL;

      if (!arrived && !stor_disk_remove (r->disk_path, &e))
        g_message ("migration %s: %s", job_id, e->message);
      else
        (void)g_unlink (mark);
    }
  if (arrived && !cancelled)
    {
      g_message ("migration %s: VM %s arrived", job_id, r->name);
      if (*r->source_address
          && !fetch_history (agent, r->source_address, r->name, &error))
        g_message ("migration %s: console history of VM %s not copied: %s",
                   job_id, r->name, error->message);
    }
  else
    g_message ("migration %s: VM %s did not arrive%s", job_id, r->name,
               cancelled ? " (cancelled)" : "");

  g_mutex_lock (&m->lock);
  g_hash_table_remove (m->incoming, job_id);
  g_mutex_unlock (&m->lock);
  if (r->expiry_source)
    {
      GSource *s
          = g_main_context_find_source_by_id (agent->ctx, r->expiry_source);
      if (s)
        g_source_destroy (s);
    }
  agent_vm_release (agent, r->name);
  reservation_free (r);
  kick (agent);
}

typedef struct
{
  Agent *agent;
  char *job_id;
  char *token;
  gboolean cancelled;
} FinishJob;

static gpointer
finish_thread (gpointer data)
{
  FinishJob *f = data;

  finish_incoming (f->agent, f->job_id, f->token, f->cancelled);
  agent_unref (f->agent);
  g_free (f->job_id);
  g_free (f->token);
  g_free (f);
  return NULL;
}

static void
finish_async (Agent *agent, const char *job_id, gboolean cancelled)
{
  FinishJob *f = g_new0 (FinishJob, 1);

  f->agent = agent_ref (agent);
  f->job_id = g_strdup (job_id);
  f->cancelled = cancelled;
  g_thread_unref (g_thread_new ("mig-finish", finish_thread, f));
}

static void
on_control_ended (const char *job_id, const GError *error, gpointer user_data)
{
  AgentMigration *m = user_data;
  Agent *agent = m->agent;

  if (g_atomic_int_get (&m->stopping))
    return;
  if (error)
    g_debug ("migration %s: control stream: %s", job_id, error->message);
  finish_async (agent, job_id, FALSE);
}

typedef struct
{
  Agent *agent;
  char *job_id;
} Expiry;

static void
expiry_free (gpointer data)
{
  Expiry *e = data;

  agent_unref (e->agent);
  g_free (e->job_id);
  g_free (e);
}

static gboolean
on_expiry (gpointer data)
{
  Expiry *e = data;
  AgentMigration *m = e->agent->migration;
  Reservation *r;

  g_mutex_lock (&m->lock);
  r = g_hash_table_lookup (m->incoming, e->job_id);
  if (r)
    r->expiry_source = 0;
  g_mutex_unlock (&m->lock);
  /* Once the control stream runs, its end finishes the job. */
  if (r && !mig_dst_started (m->dst, e->job_id))
    {
      g_message ("migration %s: nobody came; dropping the reservation",
                 e->job_id);
      finish_async (e->agent, e->job_id, TRUE);
    }
  return G_SOURCE_REMOVE;
}

static ProtobufCMessage *
op_prepare_incoming (Agent *agent, const ProtobufCMessage *request,
                     GError **error)
{
  const Drover__V1__PrepareIncomingRequest *req = (const void *)request;
  AgentMigration *m = agent->migration;
  g_autoptr (virConnect) conn = NULL;
  g_autofree char *token = NULL;
  g_autoptr (GError) local = NULL;
  Drover__V1__PrepareIncomingReply *reply;
  Reservation *r;
  Expiry *e;
  GSource *s;
  const Drover__V1__VmSpec *spec = req->spec;
  g_autofree char *console = NULL, *hist = NULL, *disk_path = NULL;

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
  console = agent_console_path (agent, spec->name);
  hist = history_path (agent, spec->name);
  (void)g_unlink (console);
  (void)g_unlink (hist);

  r = g_new0 (Reservation, 1);
  r->job_id = g_strdup (req->job_id);
  r->token = g_strdup (token);
  r->name = g_strdup (spec->name);
  r->source_address = g_strdup (req->source_address ? req->source_address : "");
  r->memory = spec->memory;
  r->disk_path = g_strdup (disk_path);
  e = g_new0 (Expiry, 1);
  e->agent = agent_ref (agent);
  e->job_id = g_strdup (req->job_id);
  s = g_timeout_source_new (INCOMING_TTL_MS + 1000);
  g_source_set_callback (s, on_expiry, e, expiry_free);
  g_mutex_lock (&m->lock);
  g_hash_table_insert (m->incoming, r->job_id, r);
  r->expiry_source = g_source_attach (s, agent->ctx);
  g_mutex_unlock (&m->lock);
  g_source_unref (s);
  g_message ("migration %s: expecting VM %s from %s", req->job_id, spec->name,
             *req->source_host ? req->source_host : "?");

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

static ProtobufCMessage *
op_cancel_incoming (Agent *agent, const ProtobufCMessage *request,
                    GError **error)
{
  const Drover__V1__CancelIncomingRequest *req = (const void *)request;
  AgentMigration *m = agent->migration;
  gboolean known, match = FALSE;

  if (!m || !mig_job_id_valid (req->job_id))
    return empty_reply ();
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
  return empty_reply ();
}

/* --- source -----------------------------------------------------------------
 */

/* One MigrateOut call. */
typedef struct
{
  Agent *agent;
  const Drover__V1__MigrateOutRequest *req; /* owned by the call */
  AgentStream *stream;                      /* worker only, like below */
  gboolean sent_final;
} MigOut;

static void
mig_out_free (gpointer data)
{
  MigOut *out = data;

  agent_unref (out->agent);
  g_free (out);
}

static ProtobufCMessage *
progress_msg (const MigProgress *p)
{
  Drover__V1__MigrationProgress *m = g_new0 (Drover__V1__MigrationProgress, 1);

  drover__v1__migration_progress__init (m);
  m->phase = proto_msg_strdup (p->phase);
  m->memory_total = p->memory_total;
  m->memory_processed = p->memory_processed;
  m->memory_remaining = p->memory_remaining;
  m->iteration = p->iteration;
  m->dirty_rate = p->dirty_rate;
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
  return (ProtobufCMessage *)m;
}

static void
on_progress (const MigProgress *p, gpointer user_data)
{
  MigOut *out = user_data;

  if (p->final)
    out->sent_final = TRUE;
  /* MigrationProgress has no disk fields: the disk copy's figures go to
   * the log (its bytes are in wire/payload and QEMU's bytes). */
  if (p->final && p->disk_total)
    g_message ("migration %s: disk %s: %" G_GUINT64_FORMAT
               " of %" G_GUINT64_FORMAT " bytes copied",
               out->req->job_id, MIG_DISK_TARGET, p->disk_processed,
               p->disk_total);
  agent_stream_push (out->stream, progress_msg (p));
}

static gboolean
split_address (const char *address, char **host, guint16 *port)
{
  const char *colon = address ? strrchr (address, ':') : NULL;
  guint64 v;

  if (!colon || colon == address
      || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &v, NULL))
    return FALSE;
  *host = g_strndup (address, colon - address);
  *port = (guint16)v;
  return TRUE;
}

/* After a completed migration: the VM runs on the destination with its
 * own copy of the disk, so the image here is garbage. Removed only once
 * libvirt no longer knows the VM here (UNDEFINE_SOURCE), never before. */
static void
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
      g_message ("migration %s: VM %s may still be defined here; keeping %s",
                 job_id, name, path);
      return;
    }
  if (!stor_disk_remove (path, &error))
    g_message ("migration %s: %s", job_id, error->message);
  else
    g_message ("migration %s: removed the disk image %s left behind", job_id,
               path);
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
  g_autofree char *disk_path = NULL;
  MigSrcConfig cfg = { 0 };
  gboolean ok;

  if (!proto_name_validate ("VM", req->name, error))
    return FALSE;
  if (!mig_job_id_valid (req->job_id) || !*req->token
      || !split_address (req->channel_address, &host, &cfg.channel_port)
      || cfg.channel_port == 0 || !g_path_is_absolute (req->dest_console_path))
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "MigrateOut needs a job id, a token, a channel "
                           "address host:port and the destination console "
                           "path");
      return FALSE;
    }
  if (!agent->migration)
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
    }

  cfg.job_id = req->job_id;
  cfg.channel_host = host;
  cfg.token = req->token;
  cfg.creds = agent->migration->creds;
  cfg.dest_console_path = req->dest_console_path;
  cfg.dest_disk_path = disk_path ? req->dest_disk_path : NULL;
  cfg.compress = MIG_COMPRESS_AUTO;
  if (params)
    {
      if (g_strcmp0 (params->compress, "on") == 0)
        cfg.compress = MIG_COMPRESS_ON;
      else if (g_strcmp0 (params->compress, "off") == 0)
        cfg.compress = MIG_COMPRESS_OFF;
      cfg.bandwidth_bps = params->bandwidth_bps;
      cfg.max_downtime_ms = params->max_downtime_ms;
      cfg.timeout_per_gib_s = params->timeout_per_gib_s;
      cfg.stall_rounds = params->stall_rounds;
    }
  /* QEMU 7.2 under TCG corrupted guest memory (kernel oops after the
   * move) when the limit started at 50 ms, with plain socat forwarding as
   * well as with our channel; QEMU's default 300 ms did not. */
  if (agent->accel == AGENT_ACCEL_TCG)
    cfg.initial_downtime_ms = 300;
  if (agent_fault ("mig-cut-channel"))
    cfg.fault_cut_memory_at = FAULT_CUT_AT;
  g_message ("migration %s: VM %s to %s (channel %s)", req->job_id, req->name,
             *req->dest_host ? req->dest_host : "?", req->channel_address);
  ok = mig_src_run (conn, dom, &cfg, agent_stream_get_cancellable (out->stream),
                    on_progress, out, error);
  if (ok)
    g_message ("migration %s: VM %s left for %s", req->job_id, req->name,
               *req->dest_host ? req->dest_host : "?");
  if (ok && disk_path)
    remove_source_disk (conn, req->job_id, req->name, disk_path);
  agent_vm_release (agent, req->name);
  kick (agent);
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
  g_message ("migration %s: %s", out->req->job_id, (*error)->message);
  if (!out->sent_final)
    {
      MigProgress p = { 0 };

      p.phase = "failed";
      p.error = (*error)->message;
      p.final = TRUE;
      on_progress (&p, out);
    }
  return FALSE;
}

void
agent_handle_migrate_out (ProtoServerCall *call, const ProtobufCMessage *req,
                          gpointer data)
{
  Agent *agent = data;
  MigOut *out = g_new0 (MigOut, 1);

  out->agent = agent_ref (agent);
  out->req = (const void *)req;
  agent_stream_start (call, agent->ctx, "mig-out", migrate_out_run, out,
                      mig_out_free);
}

void
agent_handle_prepare_incoming (ProtoServerCall *call,
                               const ProtobufCMessage *req, gpointer data)
{
  agent_service_run (data, call, req, op_prepare_incoming);
}

void
agent_handle_cancel_incoming (ProtoServerCall *call,
                              const ProtobufCMessage *req, gpointer data)
{
  agent_service_run (data, call, req, op_cancel_incoming);
}

/* --- lifecycle ---------------------------------------------------------- */

gboolean
agent_migration_start (Agent *agent, GError **error)
{
  AgentMigration *m;
  MigDstConfig dc = { 0 };
  g_autofree char *ip = NULL;
  guint16 unused;
  guint swept;

  if (agent->accel == AGENT_ACCEL_TEST)
    return TRUE; /* libvirt's test driver cannot migrate */
  if (!split_address (agent->config.listen, &ip, &unused))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "cannot take the migration address from %s",
                   agent->config.listen);
      return FALSE;
    }
  m = g_new0 (AgentMigration, 1);
  m->agent = agent;
  g_mutex_init (&m->lock);
  m->incoming = g_hash_table_new (g_str_hash, g_str_equal);
  if (agent->config.tls_dir)
    {
      m->creds = mig_channel_creds_new (agent->config.tls_dir, error);
      if (!m->creds)
        goto fail;
    }
  /* No migration survives an agent restart. */
  swept = mig_sweep_sockets ();
  if (swept)
    g_message ("removed %u stale migration sockets", swept);
  reclaim_incoming_disks (agent);
  dc.creds = m->creds;
  dc.address = ip;
  dc.port = agent->config.migration_port;
  dc.ended = on_control_ended;
  dc.user_data = m;
  m->dst = mig_dst_new (&dc, error);
  if (!m->dst)
    {
      g_prefix_error (error, "cannot listen for migrations on %s:%u: ", ip,
                      agent->config.migration_port);
      goto fail;
    }
  m->channel_address = g_strdup_printf ("%s:%u", ip, mig_dst_get_port (m->dst));
  agent->migration = m;
  g_message ("accepting migrations on %s", m->channel_address);
  return TRUE;

fail:
  g_clear_pointer (&m->creds, mig_channel_creds_unref);
  g_hash_table_destroy (m->incoming);
  g_mutex_clear (&m->lock);
  g_free (m);
  return FALSE;
}

void
agent_migration_free (Agent *agent)
{
  AgentMigration *m = agent->migration;

  if (!m)
    return;
  agent->migration = NULL;
  g_atomic_int_set (&m->stopping, TRUE);
  mig_dst_free (m->dst);
  {
    GHashTableIter it;
    gpointer value;

    g_hash_table_iter_init (&it, m->incoming);
    while (g_hash_table_iter_next (&it, NULL, &value))
      reservation_free (value);
  }
  g_hash_table_destroy (m->incoming);
  g_clear_pointer (&m->creds, mig_channel_creds_unref);
  g_free (m->channel_address);
  g_mutex_clear (&m->lock);
  g_free (m);
}
