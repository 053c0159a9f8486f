/* CreateSnapshot: a snapshot freezes the image the VM runs on.
 *
 * A disk-only snapshot of a running VM is libvirt's external snapshot
 * (DISK_ONLY, ATOMIC, NO_METADATA: the new overlay DATA/snapshots/VM/N.qcow2
 * becomes the active image, the old one read-only); with memory, RAM and
 * device state go live to DATA/snapshots/VM/SNAP.mem first. A stopped VM
 * gets its overlay from qemu-img and a redefined domain. The pending
 * record is written first: agent-snap-recover.c finishes or rolls back a
 * create an agent killed midway left.
 */
#include "agent-snapshot-private.h"

#include <glib/gstdio.h>
#include <string.h>

#include "stor.h"

static gboolean
has_guest_agent (AgentSnapCtx *c)
{
  g_autofree char *xml = virDomainGetXMLDesc (c->dom, 0);
  g_autofree char *name = agent_xml_string (
      xml, "/domain/devices/channel/target[@name='org.qemu.guest_agent.0']"
           "/@name");

  return name != NULL;
}

static void
set_no_agent (AgentSnapCtx *c, GError **error)
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
 * NEW_PATH, and with MEM_PATH the memory (MEM_BYTES of it) first, live.
 * The progress of the memory part is the size of the memory file, not
 * the domain job: a job query takes the domain's monitor, which the save
 * needs for its switch-over while the guest is stopped; a stat of the
 * file asks libvirt and QEMU nothing. */
static gboolean
live_snapshot (AgentSnapCtx *c, const char *snap, const char *new_path,
               const char *mem_path, guint64 mem_bytes, gboolean quiesce,
               GError **error)
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
  /* The freeze waits for the guest agent this long, not for ever. */
  if (quiesce)
    (void)virDomainAgentSetResponseTimeout (c->dom, AGENT_GUEST_AGENT_TIMEOUT_S,
                                            0);
  agent_snap_push (c, phase, 0, 0, NULL, NULL);
  thread = g_thread_new ("snap-create", snapshot_thread, &st);
  while (!g_atomic_int_get (&st.done))
    {
      GStatBuf sb;

      g_usleep (AGENT_SNAP_POLL_MS * 1000);
      /* Pages the guest dirtied are written again: the file can outgrow
       * the memory. */
      if (mem_path && mem_bytes > 0 && g_stat (mem_path, &sb) == 0)
        agent_snap_push (c, phase, mem_bytes,
                         MIN ((guint64)sb.st_size, mem_bytes), NULL, NULL);
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
void
agent_snap_create_commit_tree (AgentSnapTree *t)
{
  AgentSnap *s = g_steal_pointer (&t->op_snap);

  g_ptr_array_add (t->snaps, s);
  g_free (t->current);
  t->current = g_strdup (s->name);
  t->active = t->op_image;
  t->op = AGENT_SNAP_OP_NONE;
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

gboolean
agent_snap_create (AgentSnapCtx *c, GError **error)
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
  t = agent_snap_read_tree (c, error);
  if (!t || !agent_snap_recover (c, t, error))
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
  xml = agent_snap_config_xml (c, error);
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
  running = agent_snap_is_active (c->dom);
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
  agent_snap_push (c, PROTO_STOR_PHASE_PREPARING, 0, 0, NULL, NULL);
  if (!agent_snap_make_dir (c, error))
    return FALSE;
  new_path = agent_snap_image_path (c, t->next);
  old_path = agent_snap_image_path (c, t->active);
  mem_path = req->memory ? agent_snap_memory_path (c, req->name) : NULL;
  {
    g_autofree char *dir = g_path_get_dirname (new_path);
    g_autofree char *what
        = g_strdup_printf ("snapshot %s of VM %s", req->name, c->vm);

    if (!stor_space_check (
            dir, AGENT_SNAP_OVERLAY_SPACE + (req->memory ? spec->memory : 0),
            what, error))
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
  if (!agent_snap_write_tree (c, t, error))
    return FALSE;
  agent_snap_crash_point ("snapshot-create-crash-before");
  if (req->quiesce)
    agent_snap_push (c, PROTO_STOR_PHASE_FREEZING, 0, 0, NULL, NULL);

  if (running)
    {
      ok = !agent_fault_fail ("snapshot-create-fail", &local)
           && live_snapshot (c, req->name, new_path, mem_path,
                             (guint64)info.memory * 1024, req->quiesce, &local);
      if (ok)
        {
          agent_snap_crash_point ("snapshot-create-crash-after");
          agent_snap_create_commit_tree (t);
          agent_snap_sync_config_disk (c, t);
          ok = agent_snap_write_tree (c, t, &local);
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
      agent_snap_push (c, PROTO_STOR_PHASE_OVERLAY, 0, 0, NULL, NULL);
      ok = !agent_fault_fail ("snapshot-create-fail", &local)
           && stor_overlay_create (new_path, old_path, &local)
           && agent_protect (c->agent, new_path, 0660, &local);
      if (ok)
        {
          /* One define switches the disk and records the snapshot. */
          agent_snap_create_commit_tree (t);
          agent_snap_crash_point ("snapshot-create-crash-after");
          ok = agent_snap_define_with (c, t, new_path, &local);
        }
    }
  if (!ok)
    {
      g_autoptr (GError) undo = NULL;
      g_autoptr (AgentSnapTree) now = agent_snap_read_tree (c, NULL);

      /* Only what this call made goes; the tree loses its record. */
      if (now && now->op == AGENT_SNAP_OP_CREATE)
        {
          (void)stor_disk_remove (new_path, NULL);
          if (mem_path)
            (void)g_unlink (mem_path);
          agent_snap_clear_op (now);
          if (!agent_snap_write_tree (c, now, &undo))
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
  agent_snap_push (c, PROTO_STOR_PHASE_COMPLETED, 0, 0, NULL, t);
  return TRUE;
}
