/* Snapshots of a VM on this host (issue 12): the calls, and what the
 * operations share.
 *
 * CreateSnapshot, RevertSnapshot and DeleteSnapshot run on a worker
 * thread each and stream StorageProgress; ListSnapshots answers from the
 * tree. Each operation claims its VM and works through an AgentSnapCtx:
 * fault points, image paths, the tree's I/O and progress are here; the
 * operations in agent-snap-create.c, agent-snap-revert.c and
 * agent-snap-delete.c, and the finishing of an operation an earlier run
 * left halfway in agent-snap-recover.c.
 *
 * The tree lives in the domain's metadata (agent-snaptree.c); libvirt
 * keeps no snapshot metadata of its own. A VM's images are
 * DATA/disks/VM.qcow2 (image 0, its base) and DATA/snapshots/VM/N.qcow2;
 * a memory snapshot's state is DATA/snapshots/VM/SNAP.mem.
 */
#include "agent-snapshot-private.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "stor.h"

/* --- fault points: the agent dies at a chosen step (tests) ------------- */

void
agent_snap_crash_point (const char *name)
{
  if (!agent_fault (name))
    return;
  /* As an operator's kill -9 would: no cleanup of any kind. */
  g_printerr ("fault: %s: killing the agent\n", name);
  kill (getpid (), SIGKILL);
  pause ();
}

/* --- paths, tree I/O ---------------------------------------------------- */

char *
agent_snap_image_path (AgentSnapCtx *c, guint n)
{
  if (n == 0)
    return stor_disk_path (c->agent->config.data_dir, c->vm, NULL);
  return stor_snapshot_image_path (c->agent->config.data_dir, c->vm, n, NULL);
}

char *
agent_snap_memory_path (AgentSnapCtx *c, const char *snap)
{
  return stor_snapshot_memory_path (c->agent->config.data_dir, c->vm, snap,
                                    NULL);
}

gboolean
agent_snap_is_active (virDomainPtr dom)
{
  return virDomainIsActive (dom) == 1;
}

/* The persistent definition (the truth for the tree and the disk). */
char *
agent_snap_config_xml (AgentSnapCtx *c, GError **error)
{
  char *xml = virDomainGetXMLDesc (c->dom, VIR_DOMAIN_XML_INACTIVE
                                               | VIR_DOMAIN_XML_SECURE);

  if (!xml)
    agent_libvirt_error (error, "cannot read the definition of VM %s", c->vm);
  return xml;
}

AgentSnapTree *
agent_snap_read_tree (AgentSnapCtx *c, GError **error)
{
  g_autofree char *xml = agent_snap_config_xml (c, error);
  AgentSnapTree *t;

  if (!xml)
    return NULL;
  t = agent_snaptree_from_domain_xml (xml, error);
  if (!t)
    g_prefix_error (error, "VM %s: ", c->vm);
  return t;
}

/* The disk the running QEMU uses (live XML), or the defined one. */
char *
agent_snap_disk_source (AgentSnapCtx *c, gboolean live)
{
  g_autofree char *xml
      = live ? virDomainGetXMLDesc (c->dom, 0)
             : virDomainGetXMLDesc (c->dom, VIR_DOMAIN_XML_INACTIVE);

  return xml ? agent_snaptree_disk_source (xml) : NULL;
}

gboolean
agent_snap_write_tree (AgentSnapCtx *c, const AgentSnapTree *t, GError **error)
{
  g_autofree char *xml = agent_snaptree_to_xml (t);
  unsigned int flags = VIR_DOMAIN_AFFECT_CONFIG;

  if (agent_snap_is_active (c->dom))
    flags |= VIR_DOMAIN_AFFECT_LIVE;
  if (virDomainSetMetadata (c->dom, VIR_DOMAIN_METADATA_ELEMENT, xml,
                            AGENT_SNAP_XMLNS_PREFIX, AGENT_SNAP_XMLNS, flags)
      < 0)
    {
      agent_libvirt_error (error, "cannot record the snapshots of VM %s",
                           c->vm);
      return FALSE;
    }
  return TRUE;
}

/* Redefines the (stopped) domain with tree T and, when DISK is given, its
 * disk on that image: one atomic step in libvirt. */
gboolean
agent_snap_define_with (AgentSnapCtx *c, const AgentSnapTree *t,
                        const char *disk, GError **error)
{
  g_autofree char *xml = agent_snap_config_xml (c, error);
  g_autofree char *edited = NULL;
  virDomainPtr dom;

  if (!xml)
    return FALSE;
  edited = agent_snaptree_edit_domain_xml (xml, t, disk, error);
  if (!edited)
    return FALSE;
  dom = virDomainDefineXMLFlags (c->conn, edited, VIR_DOMAIN_DEFINE_VALIDATE);
  if (!dom)
    {
      agent_libvirt_error (error, "cannot redefine VM %s", c->vm);
      return FALSE;
    }
  virDomainFree (dom);
  return TRUE;
}

/* After libvirt moved a running VM's disk (snapshot, pivot): the
 * persistent definition must name the same image, which libvirt does
 * itself; redefined here only if it did not. */
void
agent_snap_sync_config_disk (AgentSnapCtx *c, const AgentSnapTree *t)
{
  g_autofree char *want = agent_snap_image_path (c, t->active);
  g_autofree char *have = agent_snap_disk_source (c, FALSE);
  g_autoptr (GError) error = NULL;

  if (g_strcmp0 (want, have) != 0
      && !agent_snap_define_with (c, t, want, &error))
    drover_message (c->vm, c->job, NULL, "snapshots: %s", error->message);
}

gboolean
agent_snap_make_dir (AgentSnapCtx *c, GError **error)
{
  g_autofree char *dir
      = stor_snapshot_dir (c->agent->config.data_dir, c->vm, error);

  if (!dir)
    return FALSE;
  if (g_mkdir_with_parents (dir, 0750) < 0)
    {
      int saved = errno;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "cannot make %s: %s",
                   dir, g_strerror (saved));
      return FALSE;
    }
  return agent_protect (c->agent, dir, 0750, error);
}

void
agent_snap_clear_op (AgentSnapTree *t)
{
  t->op = AGENT_SNAP_OP_NONE;
  g_clear_pointer (&t->op_snap, agent_snap_free);
  t->op_image = t->op_old = 0;
  t->op_running = t->op_paused = FALSE;
}

/* Revert and delete begin alike: the tree with what an earlier run left
 * pending finished, and the snapshot they work on. */
AgentSnap *
agent_snap_lookup (AgentSnapCtx *c, const char *name, AgentSnapTree **tree,
                   GError **error)
{
  g_autoptr (AgentSnapTree) t = agent_snap_read_tree (c, error);
  AgentSnap *s;

  if (!t || !agent_snap_recover (c, t, error))
    return NULL;
  s = agent_snaptree_find (t, name);
  if (!s)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "VM %s has no snapshot named %s", c->vm, name);
      return NULL;
    }
  agent_snap_push (c, PROTO_STOR_PHASE_PREPARING, 0, 0, NULL, NULL);
  *tree = g_steal_pointer (&t);
  return s;
}

/* --- the tree on the wire ---------------------------------------------- */

static Drover__V1__Snapshot *
snap_to_proto (AgentSnapCtx *c, const AgentSnapTree *t, const AgentSnap *s)
{
  Drover__V1__Snapshot *m = g_new0 (Drover__V1__Snapshot, 1);
  g_autofree char *img = agent_snap_image_path (c, s->image);
  g_autofree char *mem = agent_snap_memory_path (c, s->name);
  g_autoptr (GPtrArray) kids = g_ptr_array_new ();

  drover__v1__snapshot__init (m);
  m->name = proto_msg_strdup (s->name);
  m->parent = proto_msg_strdup (s->parent);
  m->created_ms = s->created_ms;
  m->description = proto_msg_strdup (s->description);
  m->vm_state = proto_msg_strdup (s->vm_state);
  m->memory = s->memory;
  m->quiesced = s->quiesced;
  m->current = g_strcmp0 (t->current, s->name) == 0;
  m->size_bytes = (img ? stor_file_allocated (img) : 0)
                  + (s->memory && mem ? stor_file_allocated (mem) : 0);
  for (guint i = 0; i < t->snaps->len; i++)
    {
      AgentSnap *o = t->snaps->pdata[i];

      if (strcmp (o->parent, s->name) == 0)
        g_ptr_array_add (kids, proto_msg_strdup (o->name));
    }
  m->n_children = kids->len;
  m->children = kids->len
                    ? (char **)g_ptr_array_free (g_steal_pointer (&kids), FALSE)
                    : NULL;
  return m;
}

static void
tree_to_proto (AgentSnapCtx *c, const AgentSnapTree *t,
               Drover__V1__Snapshot ***out, size_t *n_out)
{
  *n_out = t->snaps->len;
  *out = t->snaps->len ? g_new0 (Drover__V1__Snapshot *, t->snaps->len) : NULL;
  for (guint i = 0; i < t->snaps->len; i++)
    (*out)[i] = snap_to_proto (c, t, t->snaps->pdata[i]);
}

void
agent_snap_push (AgentSnapCtx *c, const char *phase, guint64 total,
                 guint64 processed, const char *error_msg,
                 const AgentSnapTree *final)
{
  Drover__V1__StorageProgress *m;

  if (!c->call)
    return;
  m = g_new0 (Drover__V1__StorageProgress, 1);
  drover__v1__storage_progress__init (m);
  m->phase = proto_msg_strdup (phase);
  m->total = total;
  m->processed = processed;
  m->error = proto_msg_strdup (error_msg ? error_msg : "");
  if (final)
    {
      tree_to_proto (c, final, &m->snapshots, &m->n_snapshots);
      m->vm = agent_vm_status_from_domain (c->dom, NULL);
    }
  agent_stream_push (c->call->stream, (ProtobufCMessage *)m);
}

/* --- the calls ------------------------------------------------------------ */

/* Claims VM NAME; a VM busy migrating away is a precondition failure. */
static gboolean
claim (Agent *agent, virConnectPtr conn, const char *name, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (virDomain) dom = NULL;

  if (agent_vm_claim (agent, name, &local))
    return TRUE;
  dom = virDomainLookupByName (conn, name);
  if (dom && agent_domain_job_is (dom, VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is migrating; snapshots wait until it is done", name);
      return FALSE;
    }
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

/* A template's image is the base its linked clones rest on: a snapshot
 * would make it the frozen image of a chain that merges write into. */
static gboolean
is_template (AgentSnapCtx *c, virDomainPtr dom, GError **error)
{
  g_autofree char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);

  if (!xml || !agent_clone_xml_is_template (xml))
    return FALSE;
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
               "VM %s is a template: its image is a protected base and "
               "takes no snapshots",
               c->vm);
  return TRUE;
}

static gboolean
snap_call_run (AgentStream *stream, gpointer data, GError **error)
{
  AgentSnapCall *call = data;
  const Drover__V1__AgentSnapshotRequest *req = call->req;
  Agent *agent = call->agent;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  AgentSnapCtx c = { agent };
  gboolean ok = FALSE;

  call->stream = stream;
  c.call = call;
  c.vm = req->vm;
  c.job = req->job_id && *req->job_id ? req->job_id : NULL;
  if (!proto_name_validate ("VM", req->vm, error)
      || !proto_name_validate ("snapshot", req->name, error))
    goto fail;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn || !claim (agent, conn, req->vm, error))
    goto fail;
  dom = agent_vm_lookup (agent, conn, req->vm, error);
  if (dom && is_template (&c, dom, error))
    g_clear_pointer (&dom, virDomainFree);
  if (dom)
    {
      c.conn = conn;
      c.dom = dom;
      switch (call->kind)
        {
        case AGENT_SNAP_KIND_CREATE:
          ok = agent_snap_create (&c, error);
          break;
        case AGENT_SNAP_KIND_REVERT:
          ok = agent_snap_revert (&c, error);
          break;
        case AGENT_SNAP_KIND_DELETE:
          ok = agent_snap_delete (&c, error);
          break;
        }
    }
  agent_vm_release (agent, req->vm);
  agent_reporter_kick_from_thread (agent);
  if (ok)
    return TRUE;
fail:
  drover_message (req->vm, c.job, NULL, "snapshot %s: %s", req->name,
                  (*error)->message);
  agent_snap_push (&c, PROTO_STOR_PHASE_FAILED, 0, 0, (*error)->message, NULL);
  return FALSE;
}

static void
snap_call_free (gpointer data)
{
  AgentSnapCall *call = data;

  agent_unref (call->agent);
  g_free (call);
}

static void
start (ProtoServerCall *call, const ProtobufCMessage *req, gpointer data,
       AgentSnapKind kind, const char *thread)
{
  Agent *agent = data;
  AgentSnapCall *sc = g_new0 (AgentSnapCall, 1);

  sc->agent = agent_ref (agent);
  sc->req = (const void *)req;
  sc->kind = kind;
  agent_stream_start (call, agent->ctx, thread, snap_call_run, sc,
                      snap_call_free);
}

void
agent_snapshot_create (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  start (call, req, data, AGENT_SNAP_KIND_CREATE, "snap-create");
}

void
agent_snapshot_revert (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  start (call, req, data, AGENT_SNAP_KIND_REVERT, "snap-revert");
}

void
agent_snapshot_delete (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  start (call, req, data, AGENT_SNAP_KIND_DELETE, "snap-delete");
}

ProtobufCMessage *
agent_snapshot_list (Agent *agent, const AgentCaller *caller,
                     const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__ListSnapshotsRequest *req = (const void *)request;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autoptr (AgentSnapTree) t = NULL;
  Drover__V1__ListSnapshotsReply *reply;
  AgentSnapCtx c = { agent };

  if (!proto_name_validate ("VM", req->vm, error))
    return NULL;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  dom = agent_vm_lookup (agent, conn, req->vm, error);
  if (!dom)
    return NULL;
  c.conn = conn;
  c.dom = dom;
  c.vm = req->vm;
  t = agent_snap_read_tree (&c, error);
  if (!t)
    return NULL;
  reply = g_new0 (Drover__V1__ListSnapshotsReply, 1);
  drover__v1__list_snapshots_reply__init (reply);
  tree_to_proto (&c, t, &reply->snapshots, &reply->n_snapshots);
  reply->current = proto_msg_strdup (t->current);
  return (ProtobufCMessage *)reply;
}

gboolean
agent_snapshot_count (const char *domxml, char **current, guint *count)
{
  g_autoptr (AgentSnapTree) t = agent_snaptree_from_domain_xml (domxml, NULL);

  if (!t)
    return FALSE;
  *current = g_strdup (t->current);
  *count = t->snaps->len;
  return TRUE;
}

gboolean
agent_snapshot_remove_all (Agent *agent, const char *name, GError **error)
{
  g_autofree char *dir
      = stor_snapshot_dir (agent->config.data_dir, name, error);
  g_autoptr (GDir) d = NULL;
  const char *file;

  if (!dir)
    return FALSE;
  d = g_dir_open (dir, 0, NULL);
  if (!d)
    return TRUE;
  while ((file = g_dir_read_name (d)))
    {
      g_autofree char *path = g_build_filename (dir, file, NULL);

      if (g_unlink (path) < 0)
        {
          int saved = errno;
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "cannot remove %s: %s", path, g_strerror (saved));
          return FALSE;
        }
    }
  (void)g_rmdir (dir);
  return TRUE;
}
