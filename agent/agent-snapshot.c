/* Snapshots of a VM on this host (issue 12): create, list, revert,
 * delete, and the finishing of an operation an earlier run left halfway.
 *
 * A snapshot freezes the image the VM ran on: a disk-only snapshot of a
 * running VM is libvirt's external snapshot (DISK_ONLY, ATOMIC,
 * NO_METADATA: the new overlay DATA/snapshots/VM/N.qcow2 becomes the
 * active image, the old one read-only); with memory, RAM and device
 * state go live to DATA/snapshots/VM/SNAP.mem first. A stopped VM gets
 * its overlay from qemu-img and a redefined domain. The tree lives in the
 * domain's metadata (agent-snaptree.c); libvirt keeps no snapshot
 * metadata of its own.
 *
 * libvirt 9.0 refuses to revert external snapshots, so Drover reverts
 * itself: the VM is destroyed, a NEW overlay on the snapshot's image is
 * made (the snapshot's image is never written, so reverts repeat and
 * later snapshots survive as branches), the domain redefined on it, and
 * the memory state restored from its file (virDomainRestoreFlags with the
 * saved XML pointed at the new overlay) or the VM started afresh.
 *
 * Delete merges: the snapshot's image I takes the data of one image K
 * that sits on it (block commit: active with pivot when K is the running
 * overlay, a plain commit when K is lower in the running chain, qemu-img
 * commit when no QEMU holds K); every other image on I first gets I's
 * data copied in (qemu-img rebase, safe mode; never one a QEMU holds).
 * Whatever referred to K then refers to I, and K goes. I's path never
 * changes, so DATA/disks/VM.qcow2 stays the VM's base.
 *
 * Crash safety: each operation writes its pending record into the tree
 * before it touches a disk. At start (agent_snapshot_reclaim) and before
 * the next operation on that VM, a pending record is finished (the disk
 * change happened: the domain names the new image) or rolled back
 * (the new image is removed).
 */
#include "agent-private.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "agent-snaptree.h"
#include "stor.h"

#define POLL_MS 200
/* A block job that makes no progress for this long is abandoned. */
#define JOB_WAIT_S (30 * 60)
#define OVERLAY_SPACE (1024 * 1024)

typedef enum
{
  KIND_CREATE,
  KIND_REVERT,
  KIND_DELETE,
} SnapKind;

/* One streamed call. */
typedef struct
{
  Agent *agent;
  const Drover__V1__AgentSnapshotRequest *req; /* owned by the call */
  SnapKind kind;
  AgentStream *stream; /* worker only */
} SnapCall;

/* What an operation works on: the VM, claimed, and its connection. */
typedef struct
{
  Agent *agent;
  virConnectPtr conn;
  virDomainPtr dom;
  const char *vm;
  const char *job; /* may be NULL (recovery) */
  SnapCall *call;  /* NULL: no progress to report */
} SnapCtx;

/* --- fault points: the agent dies at a chosen step (tests) ------------- */

static void
crash_point (const char *name)
{
  if (!agent_fault (name))
    return;
  /* As an operator's kill -9 would: no cleanup of any kind. */
  g_printerr ("fault: %s: killing the agent\n", name);
  kill (getpid (), SIGKILL);
  pause ();
}

static gboolean
fail_point (const char *name, GError **error)
{
  if (!agent_fault (name))
    return FALSE;
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "fault: %s", name);
  return TRUE;
}

/* --- paths, tree I/O ---------------------------------------------------- */

static char *
image_path (SnapCtx *c, guint n)
{
  if (n == 0)
    return stor_disk_path (c->agent->config.data_dir, c->vm, NULL);
  return stor_snapshot_image_path (c->agent->config.data_dir, c->vm, n, NULL);
}

static char *
memory_path (SnapCtx *c, const char *snap)
{
  return stor_snapshot_memory_path (c->agent->config.data_dir, c->vm, snap,
                                    NULL);
}

static gboolean
is_active (virDomainPtr dom)
{
  return virDomainIsActive (dom) == 1;
}

/* The persistent definition (the truth for the tree and the disk). */
static char *
config_xml (SnapCtx *c, GError **error)
{
  char *xml = virDomainGetXMLDesc (c->dom, VIR_DOMAIN_XML_INACTIVE
                                               | VIR_DOMAIN_XML_SECURE);

  if (!xml)
    agent_libvirt_error (error, "cannot read the definition of VM %s", c->vm);
  return xml;
}

static AgentSnapTree *
read_tree (SnapCtx *c, GError **error)
{
  g_autofree char *xml = config_xml (c, error);
  AgentSnapTree *t;

  if (!xml)
    return NULL;
  t = agent_snaptree_from_domain_xml (xml, error);
  if (!t)
    g_prefix_error (error, "VM %s: ", c->vm);
  return t;
}

/* The disk the running QEMU uses (live XML), or the defined one. */
static char *
disk_source (SnapCtx *c, gboolean live)
{
  g_autofree char *xml
      = live ? virDomainGetXMLDesc (c->dom, 0)
             : virDomainGetXMLDesc (c->dom, VIR_DOMAIN_XML_INACTIVE);

  return xml ? agent_snaptree_disk_source (xml) : NULL;
}

static gboolean
write_tree (SnapCtx *c, const AgentSnapTree *t, GError **error)
{
  g_autofree char *xml = agent_snaptree_to_xml (t);
  unsigned int flags = VIR_DOMAIN_AFFECT_CONFIG;

  if (is_active (c->dom))
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
static gboolean
define_with (SnapCtx *c, const AgentSnapTree *t, const char *disk,
             GError **error)
{
  g_autofree char *xml = config_xml (c, error);
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
static void
sync_config_disk (SnapCtx *c, const AgentSnapTree *t)
{
  g_autofree char *want = image_path (c, t->active);
  g_autofree char *have = disk_source (c, FALSE);
  g_autoptr (GError) error = NULL;

  if (g_strcmp0 (want, have) != 0 && !define_with (c, t, want, &error))
    drover_message (c->vm, c->job, NULL, "snapshots: %s", error->message);
}

static gboolean
make_snapshot_dir (SnapCtx *c, GError **error)
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

/* --- the tree on the wire ---------------------------------------------- */

static Drover__V1__Snapshot *
snap_to_proto (SnapCtx *c, const AgentSnapTree *t, const AgentSnap *s)
{
  Drover__V1__Snapshot *m = g_new0 (Drover__V1__Snapshot, 1);
  g_autofree char *img = image_path (c, s->image);
  g_autofree char *mem = memory_path (c, s->name);
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
tree_to_proto (SnapCtx *c, const AgentSnapTree *t, Drover__V1__Snapshot ***out,
               size_t *n_out)
{
  *n_out = t->snaps->len;
  *out = t->snaps->len ? g_new0 (Drover__V1__Snapshot *, t->snaps->len) : NULL;
  for (guint i = 0; i < t->snaps->len; i++)
    (*out)[i] = snap_to_proto (c, t, t->snaps->pdata[i]);
}

static void
push (SnapCtx *c, const char *phase, guint64 total, guint64 processed,
      const char *error_msg, const AgentSnapTree *final)
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

/* --- libvirt jobs -------------------------------------------------------- */

/* TRUE when a migration of DOM away from here is running. */
static gboolean
migrating (virDomainPtr dom)
{
  virTypedParameterPtr params = NULL;
  int n = 0, type = VIR_DOMAIN_JOB_NONE, op = 0;
  gboolean out;

  if (virDomainGetJobStats (dom, &type, &params, &n, 0) < 0)
    return FALSE;
  (void)virTypedParamsGetInt (params, n, VIR_DOMAIN_JOB_OPERATION, &op);
  out = type != VIR_DOMAIN_JOB_NONE
        && op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT;
  virTypedParamsFree (params, n);
  return out;
}

/* Waits (up to JOB_WAIT_S) until DOM runs no domain job (a snapshot an
 * earlier run started, still being written by libvirt). */
static void
wait_domain_job (virDomainPtr dom)
{
  gint64 deadline = g_get_monotonic_time () + (gint64)JOB_WAIT_S * 1000000;
  virDomainJobInfo info;

  while (g_get_monotonic_time () < deadline)
    {
      if (virDomainGetJobInfo (dom, &info) < 0
          || info.type == VIR_DOMAIN_JOB_NONE)
        return;
      g_usleep (POLL_MS * 1000);
    }
}

/* The block job on vda: 1 with INFO, 0 none, -1 error. */
static int
block_job (virDomainPtr dom, virDomainBlockJobInfo *info)
{
  return virDomainGetBlockJobInfo (dom, "vda", info, 0);
}

/* Waits for the block job on vda; PIVOT: an active commit, pivoted once
 * it is ready. Reports "merging" progress. */
static gboolean
wait_block_job (SnapCtx *c, gboolean pivot, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64)JOB_WAIT_S * 1000000;
  virDomainBlockJobInfo info;
  unsigned long long last = 0;
  int rc;

  while ((rc = block_job (c->dom, &info)) == 1)
    {
      if (info.cur != last)
        deadline = g_get_monotonic_time () + (gint64)JOB_WAIT_S * 1000000;
      last = info.cur;
      push (c, PROTO_STOR_PHASE_MERGING, info.end, info.cur, NULL, NULL);
      if (pivot && info.end > 0 && info.cur == info.end)
        {
          /* Not ready yet is not an error: try again next round. */
          if (virDomainBlockJobAbort (c->dom, "vda",
                                      VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
              == 0)
            pivot = FALSE;
        }
      if (g_get_monotonic_time () > deadline)
        {
          (void)virDomainBlockJobAbort (c->dom, "vda", 0);
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "merge on VM %s made no progress; abandoned", c->vm);
          return FALSE;
        }
      g_usleep (POLL_MS * 1000);
    }
  if (rc < 0)
    {
      agent_libvirt_error (error, "cannot follow the merge on VM %s", c->vm);
      return FALSE;
    }
  return TRUE;
}

/* --- create -------------------------------------------------------------- */

static gboolean
has_guest_agent (SnapCtx *c)
{
  g_autofree char *xml = virDomainGetXMLDesc (c->dom, 0);
  g_autofree char *name = agent_xml_string (
      xml, "/domain/devices/channel/target[@name='org.qemu.guest_agent.0']"
           "/@name");

  return name != NULL;
}

static void
set_no_agent (SnapCtx *c, GError **error)
{
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
               "no QEMU guest agent answered in VM %s; take it without "
               "--quiesce",
               c->vm);
}

typedef struct
{
  virDomainPtr dom;
  char *xml;
  unsigned int flags;
  gint done;
  gboolean ok;
  virErrorPtr err;
} SnapThread;

static gpointer
snapshot_thread (gpointer data)
{
  SnapThread *st = data;
  virDomainSnapshotPtr snap
      = virDomainSnapshotCreateXML (st->dom, st->xml, st->flags);

  st->ok = snap != NULL;
  if (snap)
    virDomainSnapshotFree (snap);
  else
    st->err = virSaveLastError ();
  g_atomic_int_set (&st->done, 1);
  return NULL;
}

/* libvirt's external snapshot of the running VM: the disk onto overlay
 * NEW_PATH, and with MEM_PATH the memory first, live. Progress of the
 * memory part comes from the domain job. */
static gboolean
live_snapshot (SnapCtx *c, const char *snap, const char *new_path,
               const char *mem_path, gboolean quiesce, GError **error)
{
  SnapThread st = { 0 };
  GThread *thread;
  const char *phase
      = mem_path ? PROTO_STOR_PHASE_MEMORY : PROTO_STOR_PHASE_OVERLAY;
  g_autofree char *head = NULL, *memory = NULL, *disks = NULL;

  /* Escaped piecewise: the memory element is ours, the name and paths
   * are text. */
  head = g_markup_printf_escaped ("<domainsnapshot><name>%s</name>", snap);
  memory = mem_path ? g_markup_printf_escaped (
               "<memory snapshot='external' file='%s'/>", mem_path)
                    : g_strdup ("<memory snapshot='no'/>");
  disks = g_markup_printf_escaped (
      "<disks><disk name='vda' snapshot='external' type='file'>"
      "<driver type='qcow2'/><source file='%s'/></disk></disks>"
      "</domainsnapshot>",
      new_path);
  st.dom = c->dom;
  st.xml = g_strconcat (head, memory, disks, NULL);
  st.flags = VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA
             | VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC
             | (mem_path ? VIR_DOMAIN_SNAPSHOT_CREATE_LIVE
                         : VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY)
             | (quiesce ? VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE : 0);
  push (c, phase, 0, 0, NULL, NULL);
  thread = g_thread_new ("snap-create", snapshot_thread, &st);
  while (!g_atomic_int_get (&st.done))
    {
      virDomainJobInfo info;

      g_usleep (POLL_MS * 1000);
      if (mem_path && virDomainGetJobInfo (c->dom, &info) == 0
          && info.type != VIR_DOMAIN_JOB_NONE && info.memTotal > 0)
        push (c, phase, info.memTotal, info.memProcessed, NULL, NULL);
    }
  g_thread_join (thread);
  g_free (st.xml);
  if (!st.ok)
    {
      gboolean agent_err = st.err
                           && (st.err->code == VIR_ERR_AGENT_UNRESPONSIVE
                               || (quiesce && st.err->message
                                   && strstr (st.err->message, "agent")));

      if (agent_err)
        set_no_agent (c, error);
      else
        g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                     "cannot take snapshot %s of VM %s: %s", snap, c->vm,
                     st.err && st.err->message ? st.err->message
                                               : "unknown libvirt error");
      if (st.err)
        virFreeError (st.err);
      return FALSE;
    }
  return TRUE;
}

/* Finishes a create whose disk switch happened: T gets its snapshot. */
static void
create_commit_tree (AgentSnapTree *t)
{
  AgentSnap *s = g_steal_pointer (&t->op_snap);

  g_ptr_array_add (t->snaps, s);
  g_free (t->current);
  t->current = g_strdup (s->name);
  t->active = t->op_image;
  t->op = AGENT_SNAP_OP_NONE;
}

static void
clear_op (AgentSnapTree *t)
{
  t->op = AGENT_SNAP_OP_NONE;
  g_clear_pointer (&t->op_snap, agent_snap_free);
  t->op_image = t->op_old = 0;
  t->op_running = t->op_paused = FALSE;
}

static gboolean
check_description (const char *text, GError **error)
{
  if (strlen (text) > AGENT_SNAP_MAX_DESCRIPTION
      || !g_utf8_validate (text, -1, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "a snapshot description is valid UTF-8 of at most %d "
                   "bytes",
                   AGENT_SNAP_MAX_DESCRIPTION);
      return FALSE;
    }
  for (const char *p = text; *p; p++)
    if ((guchar)*p < 0x20 || *p == 0x7f)
      {
        g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                             "a snapshot description cannot hold control "
                             "characters");
        return FALSE;
      }
  return TRUE;
}

static gboolean recover (SnapCtx *c, AgentSnapTree *t, GError **error);

static gboolean
snap_create (SnapCtx *c, GError **error)
{
  const Drover__V1__AgentSnapshotRequest *req = c->call->req;
  g_autoptr (AgentSnapTree) t = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *xml = NULL, *new_path = NULL, *mem_path = NULL;
  g_autofree char *old_path = NULL;
  g_autoptr (AgentSnap) snap = NULL;
  g_autoptr (GError) local = NULL;
  gboolean running, ok;
  virDomainInfo info;

  if (!check_description (req->description, error))
    return FALSE;
  t = read_tree (c, error);
  if (!t || !recover (c, t, error))
    return FALSE;
  if (agent_snaptree_find (t, req->name))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS,
                   "VM %s already has a snapshot named %s", c->vm, req->name);
      return FALSE;
    }
  if (t->snaps->len >= AGENT_SNAP_MAX)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NO_RESOURCES,
                   "VM %s has %d snapshots, the most it may have", c->vm,
                   AGENT_SNAP_MAX);
      return FALSE;
    }
  xml = config_xml (c, error);
  spec = xml ? agent_domain_xml_parse (xml, error) : NULL;
  if (!spec)
    return FALSE;
  if (spec->disk == 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s has no disk to snapshot", c->vm);
      return FALSE;
    }
  if (virDomainGetInfo (c->dom, &info) < 0)
    {
      agent_libvirt_error (error, "cannot read the state of VM %s", c->vm);
      return FALSE;
    }
  running = is_active (c->dom);
  if (req->memory && !running)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is not running: a memory snapshot needs a running "
                   "guest",
                   c->vm);
      return FALSE;
    }
  if (req->quiesce && (!running || !has_guest_agent (c)))
    {
      set_no_agent (c, error);
      return FALSE;
    }
  push (c, PROTO_STOR_PHASE_PREPARING, 0, 0, NULL, NULL);
  if (!make_snapshot_dir (c, error))
    return FALSE;
  new_path = image_path (c, t->next);
  old_path = image_path (c, t->active);
  mem_path = req->memory ? memory_path (c, req->name) : NULL;
  {
    g_autofree char *dir = g_path_get_dirname (new_path);
    g_autofree char *what
        = g_strdup_printf ("snapshot %s of VM %s", req->name, c->vm);

    if (!stor_space_check (
            dir, OVERLAY_SPACE + (req->memory ? spec->memory : 0), what, error))
      return FALSE;
  }
  /* Numbers only grow: a file there is a leftover nobody refers to. */
  (void)g_unlink (new_path);
  if (mem_path)
    (void)g_unlink (mem_path);

  snap = g_new0 (AgentSnap, 1);
  snap->name = g_strdup (req->name);
  snap->parent = g_strdup (t->current);
  snap->created_ms
      = req->created_ms > 0 ? req->created_ms : g_get_real_time () / 1000;
  snap->description = g_strdup (req->description);
  snap->vm_state = g_strdup (agent_domain_state_string (info.state));
  snap->memory = req->memory;
  snap->quiesced = req->quiesce;
  snap->image = t->active;

  /* The record first: an agent killed from here on finds it. */
  t->op = AGENT_SNAP_OP_CREATE;
  t->op_snap = agent_snap_copy (snap);
  t->op_image = t->next++;
  t->op_old = t->active;
  t->op_running = running;
  if (!write_tree (c, t, error))
    return FALSE;
  crash_point ("snapshot-create-crash-before");
  if (req->quiesce)
    push (c, PROTO_STOR_PHASE_FREEZING, 0, 0, NULL, NULL);

  if (running)
    {
      ok = !fail_point ("snapshot-create-fail", &local)
           && live_snapshot (c, req->name, new_path, mem_path, req->quiesce,
                             &local);
      if (ok)
        {
          crash_point ("snapshot-create-crash-after");
          create_commit_tree (t);
          sync_config_disk (c, t);
          ok = write_tree (c, t, &local);
          /* The disk switched: the tree must say so, whatever it takes. */
          if (!ok)
            drover_message (c->vm, c->job, NULL,
                            "snapshot %s: taken but not recorded yet (%s); "
                            "the next operation finishes it",
                            req->name, local->message);
        }
    }
  else
    {
      push (c, PROTO_STOR_PHASE_OVERLAY, 0, 0, NULL, NULL);
      ok = !fail_point ("snapshot-create-fail", &local)
           && stor_overlay_create (new_path, old_path, &local)
           && agent_protect (c->agent, new_path, 0660, &local);
      if (ok)
        {
          /* One define switches the disk and records the snapshot. */
          create_commit_tree (t);
          crash_point ("snapshot-create-crash-after");
          ok = define_with (c, t, new_path, &local);
        }
    }
  if (!ok)
    {
      g_autoptr (GError) undo = NULL;
      g_autoptr (AgentSnapTree) now = read_tree (c, NULL);

      /* Only what this call made goes; the tree loses its record. */
      if (now && now->op == AGENT_SNAP_OP_CREATE)
        {
          (void)stor_disk_remove (new_path, NULL);
          if (mem_path)
            (void)g_unlink (mem_path);
          clear_op (now);
          if (!write_tree (c, now, &undo))
            drover_message (c->vm, c->job, NULL, "snapshot %s: %s", req->name,
                            undo->message);
        }
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (running)
    (void)agent_protect (c->agent, new_path, 0660, NULL);
  if (mem_path)
    (void)agent_protect (c->agent, mem_path, 0600, NULL);
  drover_message (c->vm, c->job, NULL, "snapshot %s taken (%s%s)", req->name,
                  req->memory ? "with memory" : "disk only",
                  running ? ", live" : "");
  push (c, PROTO_STOR_PHASE_COMPLETED, 0, 0, NULL, t);
  return TRUE;
}

/* --- revert -------------------------------------------------------------- */

/* Starts the VM after a revert: restored from snapshot S's memory file
 * when it has one (the guest continues where it was), else booted fresh
 * on the snapshot's disk when the VM ran before. PAUSED leaves it
 * paused. */
static gboolean
revert_start (SnapCtx *c, const AgentSnapTree *t, const AgentSnap *s,
              gboolean was_running, gboolean paused, GError **error)
{
  g_autofree char *disk = image_path (c, t->active);

  if (is_active (c->dom))
    return TRUE;
  if (s->memory)
    {
      g_autofree char *mem = memory_path (c, s->name);
      g_autofree char *saved = NULL, *dxml = NULL;

      push (c, PROTO_STOR_PHASE_RESTORING, 0, 0, NULL, NULL);
      saved = virDomainSaveImageGetXMLDesc (c->conn, mem,
                                            VIR_DOMAIN_SAVE_IMAGE_XML_SECURE);
      if (!saved)
        {
          agent_libvirt_error (error,
                               "cannot read the memory state of snapshot %s "
                               "of VM %s",
                               s->name, c->vm);
          return FALSE;
        }
      /* The saved definition, on the new overlay, with today's tree. */
      dxml = agent_snaptree_edit_domain_xml (saved, t, disk, error);
      if (!dxml)
        return FALSE;
      if (virDomainRestoreFlags (c->conn, mem, dxml,
                                 paused ? VIR_DOMAIN_SAVE_PAUSED
                                        : VIR_DOMAIN_SAVE_RUNNING)
          < 0)
        {
          agent_libvirt_error (error, "cannot restore VM %s from snapshot %s",
                               c->vm, s->name);
          return FALSE;
        }
      return TRUE;
    }
  if (!was_running)
    return TRUE;
  if (virDomainCreateWithFlags (c->dom, paused ? VIR_DOMAIN_START_PAUSED : 0)
      < 0)
    {
      agent_libvirt_error (error, "cannot start VM %s on snapshot %s", c->vm,
                           s->name);
      return FALSE;
    }
  return TRUE;
}

/* Removes image N when no snapshot froze it and the VM does not run on
 * it: the overlay a revert left behind. */
static void
drop_garbage (SnapCtx *c, const AgentSnapTree *t, guint n)
{
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;

  if (n == 0 || n == t->active || agent_snaptree_by_image (t, n))
    return;
  path = image_path (c, n);
  if (path && !stor_disk_remove (path, &error))
    drover_message (c->vm, c->job, NULL, "%s", error->message);
}

/* After the define: the VM on the new overlay; start it, drop the old
 * overlay, clear the record. */
static gboolean
revert_finish (SnapCtx *c, AgentSnapTree *t, GError **error)
{
  g_autoptr (AgentSnap) s = agent_snap_copy (t->op_snap);
  gboolean was_running = t->op_running, paused = t->op_paused;
  guint old = t->op_old;

  clear_op (t);
  if (!revert_start (c, t, s, was_running, paused, error))
    return FALSE;
  drop_garbage (c, t, old);
  return write_tree (c, t, error);
}

static gboolean
snap_revert (SnapCtx *c, GError **error)
{
  const Drover__V1__AgentSnapshotRequest *req = c->call->req;
  g_autoptr (AgentSnapTree) t = NULL;
  g_autofree char *new_path = NULL, *base = NULL;
  AgentSnap *s;
  gboolean running;

  t = read_tree (c, error);
  if (!t || !recover (c, t, error))
    return FALSE;
  s = agent_snaptree_find (t, req->name);
  if (!s)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "VM %s has no snapshot named %s", c->vm, req->name);
      return FALSE;
    }
  push (c, PROTO_STOR_PHASE_PREPARING, 0, 0, NULL, NULL);
  running = is_active (c->dom);
  new_path = image_path (c, t->next);
  base = image_path (c, s->image);
  {
    g_autofree char *dir = g_path_get_dirname (new_path);

    if (!make_snapshot_dir (c, error)
        || !stor_space_check (dir, OVERLAY_SPACE, "the revert", error))
      return FALSE;
  }
  (void)g_unlink (new_path);

  t->op = AGENT_SNAP_OP_REVERT;
  t->op_snap = agent_snap_copy (s);
  t->op_image = t->next++;
  t->op_old = t->active;
  t->op_running = running;
  t->op_paused = req->paused;
  if (!write_tree (c, t, error))
    return FALSE;
  crash_point ("snapshot-revert-crash-before");

  if (running && virDomainDestroy (c->dom) < 0 && is_active (c->dom))
    {
      agent_libvirt_error (error, "cannot stop VM %s to revert it", c->vm);
      goto rollback;
    }
  push (c, PROTO_STOR_PHASE_OVERLAY, 0, 0, NULL, NULL);
  if (!stor_overlay_create (new_path, base, error)
      || !agent_protect (c->agent, new_path, 0660, error))
    goto rollback;
  crash_point ("snapshot-revert-crash-after-stop");
  g_free (t->current);
  t->current = g_strdup (s->name);
  t->active = t->op_image;
  /* The define is the point of no return: from here the VM's disk is the
   * new overlay, and a restart finishes the rest. */
  if (!define_with (c, t, new_path, error))
    goto rollback;
  crash_point ("snapshot-revert-crash-after-define");
  if (!revert_finish (c, t, error))
    return FALSE;
  drover_message (c->vm, c->job, NULL, "reverted to snapshot %s", req->name);
  push (c, PROTO_STOR_PHASE_COMPLETED, 0, 0, NULL, t);
  return TRUE;

rollback:
  {
    g_autoptr (AgentSnapTree) now = read_tree (c, NULL);

    (void)stor_disk_remove (new_path, NULL);
    if (now)
      {
        clear_op (now);
        (void)write_tree (c, now, NULL);
      }
    /* It was running: bring it back on the image it had. */
    if (running && !is_active (c->dom))
      (void)virDomainCreate (c->dom);
    return FALSE;
  }
}

/* --- delete -------------------------------------------------------------- */

/* The images the tree holds on to: every snapshot's and the active one,
 * with each one's backing image (-1: none or not one of ours). */
typedef struct
{
  guint n;
  gint backing;
  gboolean in_chain; /* in the running QEMU's chain */
} ImageNode;

static gboolean
image_graph (SnapCtx *c, const AgentSnapTree *t, guint skip, GArray **out,
             GError **error)
{
  g_autoptr (GArray) nodes = g_array_new (FALSE, TRUE, sizeof (ImageNode));
  g_autoptr (GPtrArray) live_chain = NULL;
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
  guint candidates[AGENT_SNAP_MAX + 1];
  guint nc = 0;

  for (guint i = 0; i < t->snaps->len; i++)
    candidates[nc++] = ((AgentSnap *)t->snaps->pdata[i])->image;
  candidates[nc++] = t->active;
  if (is_active (c->dom))
    {
      g_autofree char *top = disk_source (c, TRUE);

      live_chain = top ? stor_chain_read (top, error) : NULL;
      if (!live_chain)
        return FALSE;
    }
  for (guint i = 0; i < nc; i++)
    {
      ImageNode node = { candidates[i], -1, FALSE };
      g_autofree char *path = image_path (c, node.n);
      g_autoptr (GPtrArray) chain = NULL;
      const char *backing;

      if (node.n == skip
          || g_hash_table_contains (seen, GUINT_TO_POINTER (node.n + 1)))
        continue;
      g_hash_table_add (seen, GUINT_TO_POINTER (node.n + 1));
      chain = stor_chain_read (path, error);
      if (!chain)
        return FALSE;
      backing = ((StorImage *)chain->pdata[0])->backing;
      for (guint j = 0; backing && j < nc; j++)
        {
          g_autofree char *p = image_path (c, candidates[j]);

          if (g_strcmp0 (p, backing) == 0)
            node.backing = (gint)candidates[j];
        }
      for (guint j = 0; live_chain && j < live_chain->len; j++)
        if (g_strcmp0 (((StorImage *)live_chain->pdata[j])->path, path) == 0)
          node.in_chain = TRUE;
      g_array_append_val (nodes, node);
    }
  *out = g_steal_pointer (&nodes);
  return TRUE;
}

static ImageNode *
node_of (GArray *nodes, guint n)
{
  for (guint i = 0; i < nodes->len; i++)
    if (g_array_index (nodes, ImageNode, i).n == n)
      return &g_array_index (nodes, ImageNode, i);
  return NULL;
}

/* The tree without snapshot S (image I), K merged into I. */
static void
delete_commit_tree (AgentSnapTree *t, const char *name, guint image,
                    guint keeper, gboolean merged)
{
  AgentSnap *s = agent_snaptree_find (t, name);
  g_autofree char *parent = s ? g_strdup (s->parent) : g_strdup ("");

  if (s)
    g_ptr_array_remove (t->snaps, s);
  for (guint i = 0; i < t->snaps->len; i++)
    {
      AgentSnap *o = t->snaps->pdata[i];

      if (strcmp (o->parent, name) == 0)
        {
          g_free (o->parent);
          o->parent = g_strdup (parent);
        }
      if (merged && o->image == keeper)
        o->image = image;
    }
  if (merged && t->active == keeper)
    t->active = image;
  if (g_strcmp0 (t->current, name) == 0)
    {
      g_free (t->current);
      t->current = g_strdup (parent);
    }
  clear_op (t);
}

/* Merges K into I (and moves the other images on I away first), for a
 * delete started now or resumed at start-up. T's record names the
 * snapshot, I (op_old) and K (op_image; 0 with I: nothing sits on I). */
static gboolean
delete_run (SnapCtx *c, AgentSnapTree *t, GError **error)
{
  g_autofree char *name = g_strdup (t->op_snap->name);
  guint i_img = t->op_old, k_img = t->op_image;
  g_autofree char *i_path = image_path (c, i_img);
  g_autofree char *k_path = k_img ? image_path (c, k_img) : NULL;
  g_autofree char *mem = memory_path (c, name);
  g_autoptr (GArray) nodes = NULL;
  gboolean running = is_active (c->dom);
  ImageNode *inode, *knode;
  g_autofree char *p_path = NULL;

  if (!k_path)
    {
      /* Nothing sits on I: it just goes. */
      if (i_img != 0 && !stor_disk_remove (i_path, error))
        return FALSE;
      goto done;
    }
  if (!g_file_test (k_path, G_FILE_TEST_EXISTS))
    goto done; /* merged and removed before a crash */

  if (running)
    {
      virDomainBlockJobInfo info;

      /* A merge an earlier run started goes on in QEMU. */
      if (block_job (c->dom, &info) == 1)
        {
          g_autofree char *src = disk_source (c, TRUE);

          if (!wait_block_job (c, g_strcmp0 (src, k_path) == 0, error))
            return FALSE;
        }
    }
  if (!image_graph (c, t, G_MAXUINT, &nodes, error))
    return FALSE;
  inode = node_of (nodes, i_img);
  knode = node_of (nodes, k_img);
  if (inode && inode->backing >= 0)
    p_path = image_path (c, (guint)inode->backing);

  /* Every other image on I takes I's data along and moves to I's
   * backing: none of them runs (only one image on I is in the chain). */
  for (guint j = 0; j < nodes->len; j++)
    {
      ImageNode *x = &g_array_index (nodes, ImageNode, j);
      g_autofree char *x_path = NULL;

      if (x->backing != (gint)i_img || x->n == k_img)
        continue;
      /* K's images, moved onto I by a merge that finished already. */
      if (knode && knode->backing != (gint)i_img)
        continue;
      if (running && x->in_chain)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                       "cannot delete snapshot %s of VM %s safely while it "
                       "runs; stop the VM first",
                       name, c->vm);
          return FALSE;
        }
      x_path = image_path (c, x->n);
      push (c, PROTO_STOR_PHASE_MERGING, 0, 0, NULL, NULL);
      if (!stor_image_rebase (x_path, p_path, FALSE, error))
        return FALSE;
    }
  crash_point ("snapshot-delete-crash-before-merge");

  /* K's data into I, unless QEMU did it already: I is in the running
   * chain and K no longer is (libvirt drops K only after a finished
   * merge; K is chosen in the chain whenever I is). */
  if (knode && knode->backing == (gint)i_img
      && !(running && inode && inode->in_chain && !knode->in_chain))
    {
      g_autofree char *src = running ? disk_source (c, TRUE) : NULL;
      g_autofree char *dir = g_path_get_dirname (i_path);

      if (!stor_space_check (dir, stor_file_allocated (k_path), "the merge",
                             error))
        return FALSE;
      if (running && g_strcmp0 (src, k_path) == 0)
        {
          if (virDomainBlockCommit (c->dom, "vda", i_path, NULL, 0,
                                    VIR_DOMAIN_BLOCK_COMMIT_ACTIVE)
              < 0)
            {
              agent_libvirt_error (error, "cannot merge VM %s's disk", c->vm);
              return FALSE;
            }
          crash_point ("snapshot-delete-crash-merging");
          if (!wait_block_job (c, TRUE, error))
            return FALSE;
          g_free (src);
          src = disk_source (c, TRUE);
          if (g_strcmp0 (src, i_path) != 0)
            {
              g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                           "merge of VM %s's disk did not finish", c->vm);
              return FALSE;
            }
        }
      else if (running && knode->in_chain)
        {
          if (virDomainBlockCommit (c->dom, "vda", i_path, k_path, 0, 0) < 0)
            {
              agent_libvirt_error (error, "cannot merge VM %s's disk", c->vm);
              return FALSE;
            }
          crash_point ("snapshot-delete-crash-merging");
          if (!wait_block_job (c, FALSE, error))
            return FALSE;
        }
      else
        {
          push (c, PROTO_STOR_PHASE_MERGING, 0, 0, NULL, NULL);
          if (!stor_image_commit (k_path, error))
            return FALSE;
        }
    }
  crash_point ("snapshot-delete-crash-after-merge");

  /* Images on K not in the running chain now rest on I (same data). */
  for (guint j = 0; j < nodes->len; j++)
    {
      ImageNode *x = &g_array_index (nodes, ImageNode, j);
      g_autofree char *x_path = NULL;

      if (x->backing != (gint)k_img || (running && x->in_chain))
        continue;
      x_path = image_path (c, x->n);
      if (!stor_image_rebase (x_path, i_path, TRUE, error))
        return FALSE;
    }
  delete_commit_tree (t, name, i_img, k_img, TRUE);
  /* A stopped VM that ran on K runs on I from now on. */
  if (!running)
    {
      g_autofree char *src = disk_source (c, FALSE);

      if (g_strcmp0 (src, k_path) == 0)
        {
          if (!define_with (c, t, i_path, error))
            return FALSE;
        }
    }
  if (running)
    sync_config_disk (c, t);
  if (!write_tree (c, t, error))
    return FALSE;
  (void)stor_disk_remove (k_path, NULL);
  (void)g_unlink (mem);
  return TRUE;

done:
  delete_commit_tree (t, name, i_img, k_img, FALSE);
  if (!write_tree (c, t, error))
    return FALSE;
  (void)g_unlink (mem);
  return TRUE;
}

static gboolean
snap_delete (SnapCtx *c, GError **error)
{
  const Drover__V1__AgentSnapshotRequest *req = c->call->req;
  g_autoptr (AgentSnapTree) t = NULL;
  g_autoptr (GArray) nodes = NULL;
  AgentSnap *s;
  gint keeper = -1;
  guint n_kids = 0;

  t = read_tree (c, error);
  if (!t || !recover (c, t, error))
    return FALSE;
  s = agent_snaptree_find (t, req->name);
  if (!s)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "VM %s has no snapshot named %s", c->vm, req->name);
      return FALSE;
    }
  push (c, PROTO_STOR_PHASE_PREPARING, 0, 0, NULL, NULL);
  if (!image_graph (c, t, G_MAXUINT, &nodes, error))
    return FALSE;
  /* K: the image on I that is in the running chain, else any. */
  for (guint j = 0; j < nodes->len; j++)
    {
      ImageNode *x = &g_array_index (nodes, ImageNode, j);

      if (x->backing != (gint)s->image)
        continue;
      n_kids++;
      if (keeper < 0 || x->in_chain)
        keeper = (gint)x->n;
    }
  /* Two branches on the base: the one not running would become a root
   * of its own, and the VM could end up on an image other than its
   * base. Deleting that branch's snapshots first makes it possible. */
  if (n_kids > 1 && s->image == 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "cannot delete snapshot %s of VM %s: %u branches rest on "
                   "its image, the VM's base; delete the snapshots of the "
                   "other branches first",
                   req->name, c->vm, n_kids);
      return FALSE;
    }
  if (keeper < 0 && s->image == 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "cannot delete snapshot %s of VM %s: its image is the VM's "
                   "base and nothing rests on it",
                   req->name, c->vm);
      return FALSE;
    }
  /* I receives K's data and K goes: neither may be a linked clone's base
   * (a clone from a snapshot rests on that snapshot's image). */
  {
    g_autofree char *merged = image_path (c, s->image);
    g_autofree char *removed = keeper < 0 ? NULL : image_path (c, keeper);

    if (!agent_clone_check_image (c->agent, c->conn, c->vm, merged, error)
        || (removed
            && !agent_clone_check_image (c->agent, c->conn, c->vm, removed,
                                         error)))
      {
        g_prefix_error (error, "cannot delete snapshot %s: ", req->name);
        return FALSE;
      }
  }
  t->op = AGENT_SNAP_OP_DELETE;
  t->op_snap = agent_snap_copy (s);
  t->op_old = s->image;
  t->op_image = keeper < 0 ? 0 : (guint)keeper;
  t->op_running = is_active (c->dom);
  if (!write_tree (c, t, error))
    return FALSE;
  crash_point ("snapshot-delete-crash-before");
  if (!delete_run (c, t, error))
    {
      /* The record stays: the merge is resumed by the next operation or
       * the next start, never half-forgotten. */
      g_prefix_error (error, "snapshot %s of VM %s: ", req->name, c->vm);
      return FALSE;
    }
  drover_message (c->vm, c->job, NULL,
                  "snapshot %s deleted (%u image%s rested on it)", req->name,
                  n_kids, n_kids == 1 ? "" : "s");
  push (c, PROTO_STOR_PHASE_COMPLETED, 0, 0, NULL, t);
  return TRUE;
}

/* --- recovery ------------------------------------------------------------ */

/* Finishes or rolls back the operation T records (T updated and
 * written). TRUE when nothing is pending any more. */
static gboolean
recover (SnapCtx *c, AgentSnapTree *t, GError **error)
{
  g_autofree char *new_path = NULL;
  g_autofree char *src = NULL;
  gboolean running;

  if (t->op == AGENT_SNAP_OP_NONE)
    return TRUE;
  wait_domain_job (c->dom);
  running = is_active (c->dom);
  new_path = t->op_image ? image_path (c, t->op_image) : NULL;
  src = disk_source (c, running);
  switch (t->op)
    {
    case AGENT_SNAP_OP_CREATE:
      if (g_strcmp0 (src, new_path) == 0)
        {
          drover_message (c->vm, c->job, NULL,
                          "snapshot %s: taken by an earlier run; recorded now",
                          t->op_snap->name);
          create_commit_tree (t);
        }
      else
        {
          g_autofree char *mem = memory_path (c, t->op_snap->name);

          drover_message (c->vm, c->job, NULL,
                          "snapshot %s: left unfinished by an earlier run; "
                          "rolled back",
                          t->op_snap->name);
          (void)stor_disk_remove (new_path, NULL);
          (void)g_unlink (mem);
          clear_op (t);
        }
      return write_tree (c, t, error);
    case AGENT_SNAP_OP_REVERT:
      g_free (src);
      src = disk_source (c, FALSE);
      if (g_strcmp0 (src, new_path) == 0)
        {
          drover_message (c->vm, c->job, NULL,
                          "revert to snapshot %s: finishing what an earlier "
                          "run began",
                          t->op_snap->name);
          return revert_finish (c, t, error);
        }
      drover_message (c->vm, c->job, NULL,
                      "revert to snapshot %s: left unfinished by an earlier "
                      "run; rolled back",
                      t->op_snap->name);
      {
        gboolean was_running = t->op_running;

        (void)stor_disk_remove (new_path, NULL);
        clear_op (t);
        if (!write_tree (c, t, error))
          return FALSE;
        /* Destroyed before the kill: it boots again on its own image. */
        if (was_running && !is_active (c->dom))
          (void)virDomainCreate (c->dom);
      }
      return TRUE;
    case AGENT_SNAP_OP_DELETE:
      drover_message (c->vm, c->job, NULL,
                      "snapshot %s: finishing the delete an earlier run "
                      "began",
                      t->op_snap->name);
      return delete_run (c, t, error);
    case AGENT_SNAP_OP_NONE:
      break;
    }
  return TRUE;
}

/* DATA/snapshots/VM of a VM libvirt does not know here (a DeleteVm cut
 * short between the undefine and the files): nothing can use them. */
static void
reclaim_orphan_dirs (Agent *agent, virConnectPtr conn)
{
  g_autofree char *root
      = g_build_filename (agent->config.data_dir, "snapshots", NULL);
  g_autoptr (GDir) dir = g_dir_open (root, 0, NULL);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (dir && (name = g_dir_read_name (dir)))
    if (proto_name_validate ("VM", name, NULL))
      g_ptr_array_add (names, g_strdup (name));
  for (guint i = 0; i < names->len; i++)
    {
      const char *vm = names->pdata[i];
      g_autoptr (virDomain) dom = NULL;
      g_autoptr (GError) error = NULL;
      virErrorPtr err;

      if (!agent_vm_claim (agent, vm, NULL))
        continue;
      dom = virDomainLookupByName (conn, vm);
      err = dom ? NULL : virGetLastError ();
      /* Only libvirt's "no such domain" proves it gone. */
      if (!dom && err && err->code == VIR_ERR_NO_DOMAIN)
        {
          if (agent_snapshot_remove_all (agent, vm, &error))
            drover_message (vm, NULL, NULL,
                            "removed the snapshot files of a VM no longer "
                            "here");
          else
            drover_message (vm, NULL, NULL, "%s", error->message);
        }
      agent_vm_release (agent, vm);
    }
}

void
agent_snapshot_reclaim (Agent *agent, virConnectPtr conn)
{
  virDomainPtr *doms = NULL;
  int n = virConnectListAllDomains (conn, &doms,
                                    VIR_CONNECT_LIST_DOMAINS_PERSISTENT);

  for (int i = 0; i < n; i++)
    {
      const char *name = virDomainGetName (doms[i]);
      g_autofree char *xml
          = virDomainGetXMLDesc (doms[i], VIR_DOMAIN_XML_INACTIVE);
      g_autoptr (AgentSnapTree) t
          = xml ? agent_snaptree_from_domain_xml (xml, NULL) : NULL;
      g_autoptr (GError) error = NULL;
      SnapCtx c = { agent, conn, doms[i], name, NULL, NULL };

      if (t && t->op != AGENT_SNAP_OP_NONE
          && proto_name_validate ("VM", name, NULL)
          && agent_vm_claim (agent, name, NULL))
        {
          if (!recover (&c, t, &error))
            drover_message (name, NULL, NULL, "snapshots: %s", error->message);
          agent_vm_release (agent, name);
        }
      virDomainFree (doms[i]);
    }
  free (doms);
  reclaim_orphan_dirs (agent, conn);
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
  if (dom && migrating (dom))
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
is_template (SnapCtx *c, virDomainPtr dom, GError **error)
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
  SnapCall *call = data;
  const Drover__V1__AgentSnapshotRequest *req = call->req;
  Agent *agent = call->agent;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  SnapCtx c = { agent };
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
        case KIND_CREATE:
          ok = snap_create (&c, error);
          break;
        case KIND_REVERT:
          ok = snap_revert (&c, error);
          break;
        case KIND_DELETE:
          ok = snap_delete (&c, error);
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
  push (&c, PROTO_STOR_PHASE_FAILED, 0, 0, (*error)->message, NULL);
  return FALSE;
}

static void
snap_call_free (gpointer data)
{
  SnapCall *call = data;

  agent_unref (call->agent);
  g_free (call);
}

static void
start (ProtoServerCall *call, const ProtobufCMessage *req, gpointer data,
       SnapKind kind, const char *thread)
{
  Agent *agent = data;
  SnapCall *sc = g_new0 (SnapCall, 1);

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
  start (call, req, data, KIND_CREATE, "snap-create");
}

void
agent_snapshot_revert (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  start (call, req, data, KIND_REVERT, "snap-revert");
}

void
agent_snapshot_delete (ProtoServerCall *call, const ProtobufCMessage *req,
                       gpointer data)
{
  start (call, req, data, KIND_DELETE, "snap-delete");
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
  SnapCtx c = { agent };

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
  t = read_tree (&c, error);
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
