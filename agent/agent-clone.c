/* Clones and templates on this host (issue 12).
 *
 * A template is a stopped VM made into a protected base: its image is
 * read-only (0444) and a <clone template="yes"/> record in the domain's
 * metadata (namespace CLONE_XMLNS, next to the Drover spec) says so; it
 * is never started. A linked clone's disk is a qcow2 overlay on its
 * template's image, and its own record names that base (base-vm,
 * base-image), so the agent can tell which VMs a base still serves and
 * refuse to delete it. A full clone's disk is an independent copy of the
 * source's whole chain (stor_copy_full), streamed with progress.
 *
 * Crash safety: before anything is made, CloneVm writes the mark
 * DATA/disks/NEW.qcow2.clone (holding the source's name); the clone's
 * disk is made under a temporary name, then its domain is defined (and
 * started); removing the mark is the commit. An agent killed anywhere
 * before that leaves the mark, and agent_clone_reclaim at the next start
 * takes everything of NEW away again: domain, disk, temporary copy,
 * console log. While the mark exists it also counts as a user of the
 * source's image (a DeleteVm of the base waits for the clone to end). */
#include "agent-clone-private.h"
#include "agent-image-xfer.h"
#include "agent-snaptree.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "stor.h"

/* How long a clone waits for its source to be free. */
#define CLAIM_WAIT_S 10

/* --- marks ------------------------------------------------------------------
 */

char *
agent_clone_mark_path (Agent *agent, const char *name)
{
  g_autofree char *file = g_strconcat (name, AGENT_CLONE_MARK_SUFFIX, NULL);

  return g_build_filename (agent->disk_dir, file, NULL);
}

/* See agent-clone-private.h. */
GPtrArray *
agent_clone_list_marks (Agent *agent)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) dir = g_dir_open (agent->disk_dir, 0, NULL);
  const char *file;

  while (dir && (file = g_dir_read_name (dir)))
    {
      g_autofree char *name = NULL;

      if (!g_str_has_suffix (file, AGENT_CLONE_MARK_SUFFIX))
        continue;
      name = g_strndup (file, strlen (file) - strlen (AGENT_CLONE_MARK_SUFFIX));
      if (proto_name_validate ("VM", name, NULL))
        g_ptr_array_add (names, g_steal_pointer (&name));
    }
  return names;
}

/* --- CloneVm ------------------------------------------------------------- */

static void
clone_op_free (gpointer data)
{
  AgentCloneOp *op = data;

  agent_unref (op->agent);
  g_free (op);
}

void
agent_clone_op_start (ProtoServerCall *call, Agent *agent,
                      const ProtobufCMessage *req, const char *thread_name,
                      AgentStreamFunc func)
{
  AgentCloneOp *op = g_new0 (AgentCloneOp, 1);

  op->agent = agent_ref (agent);
  op->req = (const void *)req;
  op->phase = PROTO_STOR_PHASE_COPYING;
  agent_stream_start (call, agent->ctx, thread_name, func, op, clone_op_free);
}

virConnectPtr
agent_clone_op_open (AgentCloneOp *op, AgentStream *stream, GError **error)
{
  virConnectPtr conn;

  op->stream = stream;
  op->started_us = g_get_monotonic_time ();
  conn = agent_libvirt_get (op->agent->lv, error);
  if (conn)
    agent_stream_push (
        stream, &agent_clone_progress_new (PROTO_STOR_PHASE_PREPARING)->base);
  return conn;
}

gboolean
agent_clone_take_source (Agent *agent, virConnectPtr conn,
                         const Drover__V1__AgentCloneRequest *req,
                         AgentCloneSource *src, GError **error)
{
  if (!agent_clone_claim_source (agent, req->source, error))
    return FALSE;
  if (!agent_clone_read_source (agent, conn, req->source, req->from_snapshot,
                                src, error))
    {
      agent_vm_release (agent, req->source);
      return FALSE;
    }
  return TRUE;
}

Drover__V1__StorageProgress *
agent_clone_progress_new (const char *phase)
{
  Drover__V1__StorageProgress *p = g_new0 (Drover__V1__StorageProgress, 1);

  drover__v1__storage_progress__init (p);
  p->phase = proto_msg_strdup (phase);
  return p;
}

void
agent_clone_on_progress (guint64 processed, guint64 total, gpointer user_data)
{
  AgentCloneOp *op = user_data;
  Drover__V1__StorageProgress *p = agent_clone_progress_new (op->phase);
  double secs = (g_get_monotonic_time () - op->started_us) / 1e6;

  p->processed = processed;
  p->total = total;
  p->throughput = secs > 0 ? processed / secs : 0;
  agent_stream_push (op->stream, &p->base);
  /* A test kills the agent here: the copy is under way. */
  if (strcmp (op->phase, PROTO_STOR_PHASE_COPYING) == 0
      && agent_fault ("clone-hold-copying"))
    for (int i = 0; i < HOLD_MAX_S * 10; i++)
      g_usleep (100000);
  /* A test kills the destination's agent while the sender stands still
   * here, once, the transfer under way. */
  if (!op->held && processed > 0
      && strcmp (op->phase, PROTO_STOR_PHASE_SENDING) == 0
      && agent_fault ("clone-hold-sending"))
    {
      op->held = TRUE;
      g_usleep (HOLD_SENDING_S * G_USEC_PER_SEC);
    }
}

/* See agent-clone-private.h: each step regardless of the others, errors
 * ignored (the caller's error is the one that matters); the mark goes
 * last, once the rest is gone. */
void
agent_clone_rollback (Agent *agent, virConnectPtr conn, const char *name)
{
  g_autofree char *disk = stor_disk_path (agent->config.data_dir, name, NULL);
  g_autofree char *part = disk ? stor_copy_temp_path (disk) : NULL;
  g_autofree char *mark = agent_clone_mark_path (agent, name);
  g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);

  if (dom)
    {
      if (virDomainIsActive (dom) == 1)
        (void)virDomainDestroy (dom);
      if (virDomainUndefineFlags (dom,
                                  VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                      | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                      | VIR_DOMAIN_UNDEFINE_NVRAM)
          < 0)
        (void)virDomainUndefine (dom);
    }
  if (disk)
    {
      /* A received image still marked .incoming goes with its mark. */
      (void)agent_image_xfer_reclaim (disk);
      (void)stor_disk_remove (disk, NULL);
      (void)g_unlink (part);
    }
  (void)agent_console_remove (agent, name, NULL);
  (void)g_unlink (mark);
}

gboolean
agent_clone_check_request (const Drover__V1__AgentCloneRequest *req,
                           GError **error)
{
  if (!proto_name_validate ("VM", req->source, error))
    return FALSE;
  if (!req->spec)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                           "a clone needs the new VM's spec");
      return FALSE;
    }
  if (!proto_vm_spec_check (req->spec, error))
    return FALSE;
  if (strcmp (req->spec->name, req->source) == 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "a clone of VM %s needs a name of its own", req->source);
      return FALSE;
    }
  if (*req->uuid && !g_uuid_string_is_valid (req->uuid))
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "the UUID for clone %s is not a UUID", req->spec->name);
      return FALSE;
    }
  if (*req->mode && strcmp (req->mode, PROTO_CLONE_LINKED) != 0
      && strcmp (req->mode, PROTO_CLONE_FULL) != 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "clone mode must be \"%s\" or \"%s\"", PROTO_CLONE_LINKED,
                   PROTO_CLONE_FULL);
      return FALSE;
    }
  if (*req->from_snapshot
      && !proto_name_validate ("snapshot", req->from_snapshot, error))
    return FALSE;
  return TRUE;
}

/* The image snapshot SNAP of VM NAME (domain XML XML) froze: the disk as
 * it was when SNAP was taken. */
static char *
snapshot_image (Agent *agent, const char *name, const char *xml,
                const char *snap, GError **error)
{
  g_autoptr (AgentSnapTree) tree = agent_snaptree_from_domain_xml (xml, error);
  AgentSnap *s = tree ? agent_snaptree_find (tree, snap) : NULL;

  if (!tree)
    return NULL;
  if (!s)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "VM %s has no snapshot named '%s'", name, snap);
      return NULL;
    }
  if (s->image == 0)
    return stor_disk_path (agent->config.data_dir, name, error);
  return stor_snapshot_image_path (agent->config.data_dir, name, s->image,
                                   error);
}

gboolean
agent_clone_read_source (Agent *agent, virConnectPtr conn, const char *name,
                         const char *from_snapshot, AgentCloneSource *src,
                         GError **error)
{
  g_autoptr (virDomain) dom = agent_vm_lookup (agent, conn, name, error);
  g_autofree char *xml = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;

  if (!dom)
    return FALSE;
  xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  spec = xml ? agent_domain_xml_parse (xml, error) : NULL;
  if (!spec)
    {
      if (!xml)
        agent_libvirt_error (error, "cannot read the XML of VM %s", name);
      return FALSE;
    }
  src->is_template = agent_clone_xml_is_template (xml);
  src->disk_size = spec->disk;
  if (*from_snapshot)
    {
      if (spec->disk == 0)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                       "VM %s has no disk to clone from snapshot %s", name,
                       from_snapshot);
          return FALSE;
        }
      /* The snapshot's image is frozen: it may be read, and linked to,
       * while the VM runs on the overlays above it. */
      src->disk = snapshot_image (agent, name, xml, from_snapshot, error);
      src->frozen = TRUE;
      return src->disk != NULL;
    }
  src->disk = spec->disk > 0 ? agent_clone_xml_disk (xml) : NULL;
  if (spec->disk > 0 && !src->disk)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "VM %s has a disk but its domain names no image", name);
      return FALSE;
    }
  if (virDomainIsActive (dom) != 0 && !src->is_template)
    {
      /* Its image changes under a copy; a snapshot's would not. */
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is running: stop it before cloning it, or "
                   "clone it from a snapshot (--from-snapshot)",
                   name);
      return FALSE;
    }
  return TRUE;
}

/* See agent-clone-private.h: clones of one template hold it only while
 * they read it and write their mark, so a batch of them asked at once
 * all go through. */
gboolean
agent_clone_claim_source (Agent *agent, const char *name, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + CLAIM_WAIT_S * G_USEC_PER_SEC;

  while (!agent_vm_claim (agent, name, NULL))
    {
      if (g_get_monotonic_time () > deadline)
        return agent_vm_claim (agent, name, error);
      g_usleep (20000);
    }
  return TRUE;
}

/* What clone_identity needs: the request, and the image of the source a
 * linked clone is an overlay on (NULL: a full clone). */
typedef struct
{
  const Drover__V1__AgentCloneRequest *req;
  const char *base_image;
} CloneIdentity;

/* An AgentDomainEditFunc (data: a CloneIdentity): the clone's identity. */
static char *
clone_identity (const char *xml, gpointer data, GError **error)
{
  const CloneIdentity *id = data;
  const Drover__V1__AgentCloneRequest *req = id->req;

  return agent_clone_xml_identity (
      xml, req->uuid, req->source, req->from_snapshot,
      id->base_image ? req->source : NULL, id->base_image, error);
}

virDomainPtr
agent_clone_define (Agent *agent, virConnectPtr conn,
                    const Drover__V1__VmSpec *spec, const char *disk,
                    const Drover__V1__AgentCloneRequest *req,
                    const char *base_image, GError **error)
{
  CloneIdentity id = { req, base_image };
  g_autoptr (virDomain) dom = NULL;

  if (!agent_console_prepare (agent, spec->name, error))
    return NULL;
  dom = agent_vm_define (agent, conn, spec, disk, clone_identity, &id, "clone",
                         error);
  if (!dom)
    return NULL;
  if (agent_fault_fail ("clone-fail-after-define", error))
    return NULL;
  /* A test kills the agent here: defined, not committed. */
  if (agent_fault ("clone-hold-after-define"))
    for (int i = 0; i < HOLD_MAX_S * 10; i++)
      g_usleep (100000);
  if (req->start && virDomainCreate (dom) < 0)
    {
      agent_libvirt_error (error, "cannot start clone %s", spec->name);
      return NULL;
    }
  return g_steal_pointer (&dom);
}

Drover__V1__VmSpec *
agent_clone_spec (Agent *agent, const Drover__V1__AgentCloneRequest *req,
                  GError **error)
{
  if (!agent_clone_check_request (req, error))
    return NULL;
  return agent_vm_spec_for_host (agent, req->spec, error);
}

gboolean
agent_clone_check_size (const Drover__V1__AgentCloneRequest *req,
                        const AgentCloneSource *src, GError **error)
{
  if (req->spec->disk == src->disk_size)
    return TRUE;
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
               "clone %s must have the disk size of VM %s (%" G_GUINT64_FORMAT
               " bytes)",
               req->spec->name, req->source, src->disk_size);
  return FALSE;
}

gboolean
agent_clone_mark_write (Agent *agent, const char *name, const char *source,
                        char **mark_out, GError **error)
{
  g_autofree char *mark = agent_clone_mark_path (agent, name);

  if (!g_file_set_contents_full (mark, source, -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;
  if (mark_out)
    *mark_out = g_steal_pointer (&mark);
  return TRUE;
}

gboolean
agent_clone_commit_mark (const char *mark, GError **error)
{
  if (g_unlink (mark) < 0)
    {
      int saved = errno;

      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot remove clone mark %s: %s", mark, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static gboolean
clone_run (AgentStream *stream, gpointer data, GError **error)
{
  AgentCloneOp *op = data;
  AgentCloneSource src = { 0 };
  Agent *agent = op->agent;
  const Drover__V1__AgentCloneRequest *req = op->req;
  const char *job = *req->job_id ? req->job_id : NULL;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *disk = NULL, *mark = NULL;
  gboolean linked, source_held = FALSE, admitted = FALSE, marked = FALSE;
  Drover__V1__StorageProgress *final;
  const char *name;

  spec = agent_clone_spec (agent, req, error);
  if (!spec)
    goto fail;
  name = spec->name;
  conn = agent_clone_op_open (op, stream, error);
  if (!conn)
    goto fail;

  /* The source stays as it is while it is read (and, unless it is a
   * template, which nothing changes, while it is copied). */
  if (!agent_clone_take_source (agent, conn, req, &src, error))
    goto fail;
  source_held = TRUE;
  linked = *req->mode ? strcmp (req->mode, PROTO_CLONE_LINKED) == 0
                      : src.is_template;
  if (linked && !src.is_template && !src.frozen)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "a linked clone needs a template or a snapshot as its "
                   "base: make VM %s a template first, clone from one of "
                   "its snapshots, or make a full clone",
                   req->source);
      goto fail;
    }
  if (!agent_clone_check_size (req, &src, error)
      || !agent_vm_admit (agent, conn, spec, error))
    goto fail;
  admitted = TRUE;
  if (!agent_clone_mark_write (agent, name, req->source, &mark, error))
    goto fail;
  marked = TRUE;
  if (src.is_template)
    {
      /* The mark keeps the template from being deleted meanwhile. */
      agent_vm_release (agent, req->source);
      source_held = FALSE;
    }

  (void)agent_console_remove (agent, name, NULL);
  if (src.disk)
    {
      disk = stor_disk_path (agent->config.data_dir, name, error);
      if (!disk)
        goto rollback;
      if (linked)
        {
          if (!agent_clone_protect_base (src.disk, error)
              || !stor_copy_linked (src.disk, disk, src.disk_size, error))
            goto rollback;
        }
      else if (!stor_copy_full (src.disk, disk,
                                agent_stream_get_cancellable (stream),
                                agent_clone_on_progress, op, error))
        goto rollback;
      /* QEMU writes it, nobody else reads it. */
      if (!agent_protect (agent, disk, 0660, error))
        goto rollback;
    }
  dom = agent_clone_define (agent, conn, spec, disk, req,
                            linked ? src.disk : NULL, error);
  if (!dom)
    goto rollback;
  final = agent_clone_progress_new (PROTO_STOR_PHASE_COMPLETED);
  final->vm = agent_vm_status_from_domain (dom, error);
  if (!final->vm)
    {
      proto_msg_free (final);
      goto rollback;
    }
  if (!agent_clone_commit_mark (mark, error))
    {
      proto_msg_free (final);
      goto rollback;
    }
  drover_message (name, job, NULL, "cloned from VM %s%s%s (%s%s)", req->source,
                  *req->from_snapshot ? " snapshot " : "", req->from_snapshot,
                  linked ? PROTO_CLONE_LINKED : PROTO_CLONE_FULL,
                  req->start ? ", started" : "");
  if (source_held)
    agent_vm_release (agent, req->source);
  agent_vm_release (agent, name);
  agent_stream_push (stream, &final->base);
  agent_reporter_kick_from_thread (agent);
  g_free (src.disk);
  return TRUE;

rollback:
  agent_clone_rollback (agent, conn, spec->name);
  marked = FALSE;
fail:
  if (marked)
    (void)g_unlink (mark);
  if (admitted)
    agent_vm_release (agent, spec->name);
  return agent_clone_op_failed (op, stream, &src, source_held, error);
}

/* Ends a clone stream that failed with ERROR (a cancel becomes
 * PROTO_STATUS_CANCELLED): pushes the "failed" progress and logs it for
 * the source VM SOURCE and JOB. */
static void
clone_stream_failed (AgentStream *stream, const char *source, const char *job,
                     GError **error)
{
  Drover__V1__StorageProgress *p
      = agent_clone_progress_new (PROTO_STOR_PHASE_FAILED);

  if (g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_clear_error (error);
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_CANCELLED,
                   "clone of VM %s cancelled", source);
    }
  p->error = proto_msg_strdup ((*error)->message);
  agent_stream_push (stream, &p->base);
  drover_message (source, job, NULL, "clone failed: %s", (*error)->message);
}

gboolean
agent_clone_op_failed (AgentCloneOp *op, AgentStream *stream,
                       AgentCloneSource *src, gboolean source_held,
                       GError **error)
{
  const Drover__V1__AgentCloneRequest *req = op->req;

  if (source_held)
    agent_vm_release (op->agent, req->source);
  g_clear_pointer (&src->disk, g_free);
  clone_stream_failed (stream, req->source, *req->job_id ? req->job_id : NULL,
                       error);
  return FALSE;
}

void
agent_clone_vm (ProtoServerCall *call, const ProtobufCMessage *req,
                gpointer data)
{
  agent_clone_op_start (call, data, req, "clone", clone_run);
}

/* --- start-up cleanup ----------------------------------------------------- */

void
agent_clone_reclaim (Agent *agent, virConnectPtr conn)
{
  g_autoptr (GPtrArray) marks = agent_clone_list_marks (agent);
  virDomainPtr *doms = NULL;
  int n;

  for (guint i = 0; i < marks->len; i++)
    {
      const char *name = marks->pdata[i];

      if (!agent_vm_claim (agent, name, NULL))
        continue;
      agent_clone_rollback (agent, conn, name);
      agent_vm_release (agent, name);
      drover_message (name, NULL, NULL,
                      "removed the clone an earlier run left unfinished");
    }
  /* A template whose image is still writable: finish MakeTemplate. */
  n = virConnectListAllDomains (conn, &doms,
                                VIR_CONNECT_LIST_DOMAINS_PERSISTENT);
  for (int i = 0; i < n; i++)
    {
      g_autofree char *xml
          = virDomainGetXMLDesc (doms[i], VIR_DOMAIN_XML_INACTIVE);
      g_autofree char *disk = xml ? agent_clone_xml_disk (xml) : NULL;

      if (disk && agent_clone_xml_is_template (xml))
        (void)agent_clone_protect_base (disk, NULL);
      virDomainFree (doms[i]);
    }
  free (doms);
}
