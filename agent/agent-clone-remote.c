/* A full clone to another host (issue 12): both ends.
 *
 * The scheduler drives it in three steps, each a call to one agent:
 *
 *   1. PrepareCloneIn, destination: validates the new VM (name, spec, no
 *      such VM here, its memory fits), checks the space its image may
 *      take, claims its name and writes its clone mark
 *      DATA/disks/NEW.qcow2.clone, then expects one image on the agents'
 *      channel, at DATA/disks/NEW.qcow2 (a path it builds itself from the
 *      validated name, never taken from the wire), at most max_bytes long.
 *      It answers the channel address and a one-time token.
 *   2. CloneOut, source (a stream of StorageProgress): claims the source
 *      VM (a stopped VM cannot start meanwhile), writes a mark of its own
 *      (a restart removes the temporary copy; the mark counts as a user of
 *      the source's image), and sends the image: the source's image itself
 *      when it is one independent qcow2 that does not change (a stopped VM
 *      without snapshots, a template, a snapshot's frozen first image);
 *      otherwise it first flattens the chain into a temporary copy under
 *      its data directory (stor_copy_full, phase "copying"), then sends
 *      that (phase "sending").
 *   3. CommitCloneIn, destination: checks the received image (qcow2 of the
 *      spec's size, no backing file, no external data file), defines the
 *      domain (new UUID, new MACs, its own console log), starts it when
 *      asked, removes the mark: the commit. AbortCloneIn instead takes
 *      everything of NEW away (any failure on the way: the scheduler
 *      calls it).
 *
 * An agent killed anywhere before its commit leaves its mark, and
 * agent_clone_reclaim at its next start takes the clone's leftovers away
 * (the received or temporary image, the domain, the console log). The
 * source VM is never written. */
#include "agent-clone-private.h"
#include "agent-image-xfer.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "stor.h"

/* Longest channel address and token a CloneOut request may carry. */
#define MAX_ADDRESS_LEN 256
#define MAX_TOKEN_LEN 256

/* --- the image transfer ------------------------------------------------ */

/* The one file a clone's transfer carries: a name, never a path. */
#define CLONE_IMAGE_LABEL "disk.qcow2"
/* How long a prepared destination waits for the source to connect: the
 * source may flatten a chain first. */
#define CLONE_IN_TTL_MS (30 * 60 * 1000)

/* Where the destination of clone writes its one image. */
typedef struct
{
  char *path; /* built from the validated clone name */
  char *name;
} CloneInSink;

static void
clone_in_sink_free (gpointer data)
{
  CloneInSink *in = data;

  g_free (in->path);
  g_free (in->name);
  g_free (in);
}

/* AgentImageXferPlaceFunc: the clone's image, and nothing else. */
static char *
clone_in_place (const char *label, guint64 size, gpointer user_data,
                GError **error)
{
  CloneInSink *in = user_data;

  if (strcmp (label, CLONE_IMAGE_LABEL) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "clone %s expects one file %s, not '%s'", in->name,
                   CLONE_IMAGE_LABEL, label);
      return NULL;
    }
  return g_strdup (in->path);
}

/* Destination: expects the image of clone NAME at PATH, at most MAX
 * bytes, from SOURCE_HOST. Fills the token and channel address of
 * REPLY. */
static gboolean
xfer_expect (Agent *agent, const char *job, const char *source_host,
             const char *name, const char *path, guint64 max,
             Drover__V1__AgentCloneInReply *reply, GError **error)
{
  g_autofree char *what = g_strdup_printf ("clone %s", name);
  g_autofree char *token = NULL, *address = NULL;
  AgentImageXferSink sink = { 0 };
  CloneInSink *in = g_new0 (CloneInSink, 1);

  in->path = g_strdup (path);
  in->name = g_strdup (name);
  sink.place = clone_in_place;
  sink.max_files = 1;
  sink.max_bytes = max;
  sink.what = what;
  sink.user_data = in;
  sink.destroy = clone_in_sink_free;
  if (!agent_image_xfer_expect (agent, job, *source_host ? source_host : NULL,
                                &sink, CLONE_IN_TTL_MS, &token, &address,
                                error))
    {
      clone_in_sink_free (in);
      return FALSE;
    }
  reply->token = g_steal_pointer (&token);
  reply->channel_address = g_steal_pointer (&address);
  return TRUE;
}

/* Destination: no longer expects the image of JOB (a transfer still
 * running fails and leaves nothing); a finished one's file stays. */
static void
xfer_forget (Agent *agent, const char *job)
{
  if (*job)
    agent_image_xfer_forget (agent, job);
}

/* --- destination ------------------------------------------------------- */

/* Bytes the destination accepts for an image of SIZE bytes (virtual): the
 * whole of it plus its qcow2 metadata. */
static guint64
max_image_bytes (guint64 size)
{
  return size + (stor_disk_space_needed (size) - STOR_MIN_FREE_SPACE);
}

/* Only a full clone goes to another host. */
static gboolean
check_full (const Drover__V1__AgentCloneRequest *req, GError **error)
{
  if (!agent_clone_check_request (req, error))
    return FALSE;
  if (*req->mode && strcmp (req->mode, PROTO_CLONE_FULL) != 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "clone %s: only a full clone goes to another host",
                   req->spec->name);
      return FALSE;
    }
  return TRUE;
}

/* SPEC of REQ, checked for this host, with this host's accelerator. */
static Drover__V1__VmSpec *
incoming_spec (Agent *agent, const Drover__V1__AgentCloneRequest *req,
               GError **error)
{
  if (!check_full (req, error))
    return NULL;
  return agent_clone_spec (agent, req, error);
}

ProtobufCMessage *
agent_clone_in_prepare (Agent *agent, const AgentCaller *caller,
                        const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentCloneRequest *req = (const void *)request;
  g_autoptr (Drover__V1__VmSpec) spec = incoming_spec (agent, req, error);
  g_autoptr (virConnect) conn = NULL;
  g_autofree char *disk = NULL;
  Drover__V1__AgentCloneInReply *reply;
  const char *name;

  if (!spec)
    return NULL;
  name = spec->name;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn || !agent_vm_admit (agent, conn, spec, error))
    return NULL;
  /* Room for the whole image before a byte is written. */
  if (spec->disk > 0
      && (!(disk = stor_disk_path (agent->config.data_dir, name, error))
          || !stor_space_check (agent->disk_dir, max_image_bytes (spec->disk),
                                "the image of clone", error)))
    {
      g_prefix_error (error, "clone %s of VM %s: ", name, req->source);
      agent_vm_release (agent, name);
      return NULL;
    }
  /* Mark before make: from here on a restart takes NAME away again. The
   * name stays claimed until the commit or the abort. */
  if (!agent_clone_mark_write (agent, name, req->source, NULL, error))
    {
      agent_vm_release (agent, name);
      return NULL;
    }
  (void)agent_console_remove (agent, name, NULL);
  reply = g_new0 (Drover__V1__AgentCloneInReply, 1);
  drover__v1__agent_clone_in_reply__init (reply);
  if (disk
      && !xfer_expect (agent, req->job_id, req->source_host, name, disk,
                       max_image_bytes (spec->disk), reply, error))
    {
      proto_msg_free (reply);
      agent_clone_rollback (agent, conn, name);
      agent_vm_release (agent, name);
      return NULL;
    }
  reply->max_bytes = disk ? max_image_bytes (spec->disk) : 0;
  (void)caller;
  drover_message (name, *req->job_id ? req->job_id : NULL, NULL,
                  "expecting the image of a full clone of VM %s", req->source);
  return &reply->base;
}

/* Reads N bytes at OFFSET of the big-endian header H. */
static guint64
be_field (const guint8 *h, gsize offset, gsize n)
{
  guint64 v = 0;

  for (gsize i = 0; i < n; i++)
    v = (v << 8) | h[offset + i];
  return v;
}

/* qcow2's header (docs/interop/qcow2.txt in QEMU): what must hold for an
 * image that names no other file. */
#define QCOW2_MAGIC 0x514649fbu
#define QCOW2_OFF_VERSION 4
#define QCOW2_OFF_BACKING 8
#define QCOW2_OFF_SIZE 24
#define QCOW2_OFF_CRYPT 32
#define QCOW2_OFF_INCOMPAT 72
#define QCOW2_INCOMPAT_DATA_FILE (1u << 2)
#define QCOW2_HEADER_V3 104

gboolean
agent_clone_check_received (const char *path, guint64 size, GError **error)
{
  guint8 h[QCOW2_HEADER_V3] = { 0 };
  g_autoptr (GPtrArray) chain = NULL;
  const char *bad = NULL;
  StorImage *img;
  guint64 version;
  FILE *f = fopen (path, "rb");
  gsize got;

  if (!f)
    {
      int saved = errno;

      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the received image %s is missing: %s", path,
                   g_strerror (saved));
      return FALSE;
    }
  got = fread (h, 1, sizeof h, f);
  fclose (f);
  version = got >= 8 ? be_field (h, QCOW2_OFF_VERSION, 4) : 0;
  if (got < 72 || be_field (h, 0, 4) != QCOW2_MAGIC
      || (version != 2 && version != 3))
    bad = "not a qcow2 image";
  else if (be_field (h, QCOW2_OFF_BACKING, 8) != 0)
    bad = "it names a backing file";
  else if (be_field (h, QCOW2_OFF_CRYPT, 4) != 0)
    bad = "it is encrypted";
  else if (version == 3
           && (got < QCOW2_HEADER_V3
               || (be_field (h, QCOW2_OFF_INCOMPAT, 8)
                   & QCOW2_INCOMPAT_DATA_FILE)))
    bad = "it names an external data file";
  else if (be_field (h, QCOW2_OFF_SIZE, 8) != size)
    bad = "its size is not the VM's disk size";
  if (bad)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the received image %s is refused: %s", path, bad);
      return FALSE;
    }
  /* And as QEMU reads it: one qcow2 image, nothing under it. */
  chain = stor_chain_read (path, error);
  if (!chain)
    return FALSE;
  img = chain->pdata[0];
  if (chain->len != 1 || g_strcmp0 (img->format, "qcow2") != 0 || img->backing
      || img->virtual_size != size)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "the received image %s is refused: not one qcow2 image "
                   "of %" G_GUINT64_FORMAT " bytes",
                   path, size);
      return FALSE;
    }
  return TRUE;
}

/* TRUE if clone NAME is being received here (its mark exists). */
static gboolean
incoming_exists (Agent *agent, const char *name)
{
  g_autofree char *mark = agent_clone_mark_path (agent, name);

  return g_file_test (mark, G_FILE_TEST_EXISTS);
}

ProtobufCMessage *
agent_clone_in_commit (Agent *agent, const AgentCaller *caller,
                       const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentCloneRequest *req = (const void *)request;
  g_autoptr (Drover__V1__VmSpec) spec = incoming_spec (agent, req, error);
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autofree char *mark = NULL, *disk = NULL;
  ProtobufCMessage *reply;
  const char *name;

  (void)caller;
  if (!spec)
    return NULL;
  name = spec->name;
  if (!incoming_exists (agent, name))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "no clone %s is being received on this host (was its "
                   "agent restarted?)",
                   name);
      return NULL;
    }
  /* A transfer still running fails here and leaves nothing; a finished
   * one has left the image. */
  xfer_forget (agent, req->job_id);
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  if (spec->disk > 0)
    {
      disk = stor_disk_path (agent->config.data_dir, name, error);
      /* QEMU writes it, nobody else reads it. */
      if (!disk || !agent_clone_check_received (disk, spec->disk, error)
          || !agent_protect (agent, disk, 0660, error))
        goto rollback;
    }
  dom = agent_clone_define (agent, conn, spec, disk, req, NULL, error);
  if (!dom)
    goto rollback;
  reply = agent_vm_reply (dom, error);
  if (disk)
    {
      /* The image is the clone's now: its .incoming mark goes before the
       * clone mark, whose removal is the commit. */
      g_autoptr (GPtrArray) paths = g_ptr_array_new ();

      g_ptr_array_add (paths, disk);
      agent_image_xfer_keep (paths);
    }
  mark = agent_clone_mark_path (agent, name);
  if (!reply || !agent_clone_commit_mark (mark, error))
    {
      proto_msg_free (reply);
      goto rollback;
    }
  drover_message (name, *req->job_id ? req->job_id : NULL, NULL,
                  "cloned from VM %s%s%s on another host (full%s)", req->source,
                  *req->from_snapshot ? " snapshot " : "", req->from_snapshot,
                  req->start ? ", started" : "");
  agent_vm_release (agent, name);
  agent_reporter_kick_from_thread (agent);
  return reply;

rollback:
  g_prefix_error (error, "clone %s of VM %s: ", name, req->source);
  xfer_forget (agent, req->job_id);
  agent_clone_rollback (agent, conn, name);
  agent_vm_release (agent, name);
  return NULL;
}

ProtobufCMessage *
agent_clone_in_abort (Agent *agent, const AgentCaller *caller,
                      const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentCloneRequest *req = (const void *)request;
  g_autoptr (virConnect) conn = NULL;
  const char *name = req->spec ? req->spec->name : "";

  (void)caller;
  if (!proto_name_validate ("VM", name, error))
    return NULL;
  /* Only a clone this run prepared holds its name: nothing else is
   * touched (an abort after a restart finds the mark gone already). */
  if (!incoming_exists (agent, name))
    return agent_service_empty_reply ();
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  xfer_forget (agent, req->job_id);
  agent_clone_rollback (agent, conn, name);
  agent_vm_release (agent, name);
  drover_message (name, *req->job_id ? req->job_id : NULL, NULL,
                  "the clone from VM %s was aborted; nothing of it is left",
                  req->source);
  return agent_service_empty_reply ();
}

/* --- source ------------------------------------------------------------ */

/* Source: sends the image at PATH to the destination OP's request
 * names, its progress in phase "sending". */
static gboolean
xfer_send (AgentCloneOp *op, const char *path, GError **error)
{
  const Drover__V1__AgentCloneRequest *req = op->req;
  g_autoptr (AgentTls) tls = agent_tls_get (op->agent);
  AgentImageXferFile files[] = { { CLONE_IMAGE_LABEL, path } };
  gint64 t0 = g_get_monotonic_time ();
  guint64 wire = 0, size = 0;
  GStatBuf st;
  double secs;

  op->phase = PROTO_STOR_PHASE_SENDING;
  op->started_us = t0;
  if (!agent_image_xfer_send (tls ? tls->mig_creds : NULL, req->channel_address,
                              req->dest_host, req->token, MIG_COMPRESS_AUTO,
                              files, G_N_ELEMENTS (files),
                              agent_stream_get_cancellable (op->stream),
                              agent_clone_on_progress, op, &wire, error))
    {
      g_prefix_error (error, "sending the image of clone %s to host %s: ",
                      req->spec->name, req->dest_host);
      return FALSE;
    }
  if (g_stat (path, &st) == 0)
    size = st.st_size;
  secs = (g_get_monotonic_time () - t0) / 1e6;
  drover_message (req->source, *req->job_id ? req->job_id : NULL, NULL,
                  "sent the image of clone %s to host %s: %" G_GUINT64_FORMAT
                  " bytes (%" G_GUINT64_FORMAT " on the wire) in %.2f s, "
                  "%.1f MB/s",
                  req->spec->name, req->dest_host, size, wire, secs,
                  secs > 0 ? size / secs / 1e6 : 0.0);
  return TRUE;
}

/* What CloneOut needs besides a clone request. */
static gboolean
check_out_request (const Drover__V1__AgentCloneRequest *req, GError **error)
{
  if (!check_full (req, error)
      || !proto_name_validate ("host", req->dest_host, error))
    return FALSE;
  if (strlen (req->channel_address) > MAX_ADDRESS_LEN
      || strlen (req->token) > MAX_TOKEN_LEN)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "clone %s: the channel address or token is too long",
                   req->spec->name);
      return FALSE;
    }
  return TRUE;
}

/* TRUE when the image at PATH can be sent as it is: one qcow2 image, no
 * backing file (the caller knows nothing writes it meanwhile). */
static gboolean
is_single_image (const char *path, GError **error)
{
  g_autoptr (GPtrArray) chain = stor_chain_read (path, error);
  StorImage *img;

  if (!chain)
    return FALSE;
  img = chain->pdata[0];
  return chain->len == 1 && !img->backing
         && g_strcmp0 (img->format, "qcow2") == 0;
}

static gboolean
clone_out_run (AgentStream *stream, gpointer data, GError **error)
{
  AgentCloneOp *op = data;
  Agent *agent = op->agent;
  const Drover__V1__AgentCloneRequest *req = op->req;
  const char *job = *req->job_id ? req->job_id : NULL;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) twin = NULL;
  g_autofree char *temp = NULL;
  AgentCloneSource src = { 0 };
  gboolean source_held = FALSE, name_held = FALSE, marked = FALSE;
  Drover__V1__StorageProgress *final;
  const char *name = NULL, *image;
  g_autoptr (GError) probe = NULL;

  if (!check_out_request (req, error))
    goto fail;
  name = req->spec->name;
  conn = agent_clone_op_open (op, stream, error);
  if (!conn)
    goto fail;
  /* NAME's mark and temporary copy live here for the while: nothing of
   * this host may have that name. */
  if (!agent_vm_claim (agent, name, error))
    goto fail;
  name_held = TRUE;
  twin = virDomainLookupByName (conn, name);
  if (twin)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "a VM named %s exists on this host already", name);
      goto fail;
    }
  if (!agent_clone_take_source (agent, conn, req, &src, error))
    goto fail;
  source_held = TRUE;
  if (!agent_clone_check_size (req, &src, error)
      || !agent_clone_mark_write (agent, name, req->source, NULL, error))
    goto fail;
  marked = TRUE;
  if (src.is_template)
    {
      /* The mark keeps the template from being deleted meanwhile. */
      agent_vm_release (agent, req->source);
      source_held = FALSE;
    }
  image = src.disk;
  if (src.disk && !is_single_image (src.disk, &probe))
    {
      if (probe)
        {
          g_propagate_error (error, g_steal_pointer (&probe));
          goto fail;
        }
      /* A chain: one independent image first, under this host's data
       * directory (a restart removes it: the mark). */
      temp = stor_disk_path (agent->config.data_dir, name, error);
      op->phase = PROTO_STOR_PHASE_COPYING;
      if (!temp
          || !stor_copy_full (src.disk, temp,
                              agent_stream_get_cancellable (stream),
                              agent_clone_on_progress, op, error))
        goto fail;
      image = temp;
    }
  if (image && !xfer_send (op, image, error))
    goto fail;
  final = agent_clone_progress_new (PROTO_STOR_PHASE_COMPLETED);
  final->total = final->processed = image ? stor_file_allocated (image) : 0;
  agent_clone_rollback (agent, conn, name);
  agent_vm_release (agent, name);
  if (source_held)
    agent_vm_release (agent, req->source);
  drover_message (req->source, job, NULL, "sent a full clone %s%s%s to host %s",
                  name, *req->from_snapshot ? " of snapshot " : "",
                  req->from_snapshot, req->dest_host);
  agent_stream_push (stream, &final->base);
  g_free (src.disk);
  return TRUE;

fail:
  /* The temporary copy and the mark; never the source. */
  if (marked)
    agent_clone_rollback (agent, conn, name);
  if (name_held)
    agent_vm_release (agent, name);
  return agent_clone_op_failed (op, stream, &src, source_held, error);
}

void
agent_clone_out (ProtoServerCall *call, const ProtobufCMessage *req,
                 gpointer data)
{
  agent_clone_op_start (call, data, req, "clone-out", clone_out_run);
}
