/* RevertSnapshot: the VM goes back to a snapshot.
 *
 * libvirt 9.0 refuses to revert external snapshots, so Drover reverts
 * itself: the VM is destroyed, a NEW overlay on the snapshot's image is
 * made (the snapshot's image is never written, so reverts repeat and
 * later snapshots survive as branches), the domain redefined on it, and
 * the memory state restored from its file (virDomainRestoreFlags with the
 * saved XML pointed at the new overlay) or the VM started afresh. The
 * define is the point of no return; agent-snap-recover.c finishes a
 * revert past it and rolls back one before it.
 */
#include "agent-snapshot-private.h"

#include <glib/gstdio.h>

#include "stor.h"

/* Starts the VM after a revert: restored from snapshot S's memory file
 * when it has one (the guest continues where it was), else booted fresh
 * on the snapshot's disk when the VM ran before. PAUSED leaves it
 * paused. */
static gboolean
revert_start (AgentSnapCtx *c, const AgentSnapTree *t, const AgentSnap *s,
              gboolean was_running, gboolean paused, GError **error)
{
  g_autofree char *disk = agent_snap_image_path (c, t->active);

  if (agent_snap_is_active (c->dom))
    return TRUE;
  if (s->memory)
    {
      g_autofree char *mem = agent_snap_memory_path (c, s->name);
      g_autofree char *saved = NULL, *dxml = NULL;

      agent_snap_push (c, PROTO_STOR_PHASE_RESTORING, 0, 0, NULL, NULL);
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
drop_garbage (AgentSnapCtx *c, const AgentSnapTree *t, guint n)
{
  g_autofree char *path = NULL;
  g_autoptr (GError) error = NULL;

  if (n == 0 || n == t->active || agent_snaptree_by_image (t, n))
    return;
  path = agent_snap_image_path (c, n);
  if (path && !stor_disk_remove (path, &error))
    drover_message (c->vm, c->job, NULL, "%s", error->message);
}

/* After the define: the VM on the new overlay; start it, drop the old
 * overlay, clear the record. */
gboolean
agent_snap_revert_finish (AgentSnapCtx *c, AgentSnapTree *t, GError **error)
{
  g_autoptr (AgentSnap) s = agent_snap_copy (t->op_snap);
  gboolean was_running = t->op_running, paused = t->op_paused;
  guint old = t->op_old;

  agent_snap_clear_op (t);
  if (!revert_start (c, t, s, was_running, paused, error))
    return FALSE;
  drop_garbage (c, t, old);
  return agent_snap_write_tree (c, t, error);
}

gboolean
agent_snap_revert (AgentSnapCtx *c, GError **error)
{
  const Drover__V1__AgentSnapshotRequest *req = c->call->req;
  g_autoptr (AgentSnapTree) t = NULL;
  g_autofree char *new_path = NULL, *base = NULL;
  AgentSnap *s;
  gboolean running;

  s = agent_snap_lookup (c, req->name, &t, error);
  if (!s)
    return FALSE;
  running = agent_snap_is_active (c->dom);
  new_path = agent_snap_image_path (c, t->next);
  base = agent_snap_image_path (c, s->image);
  {
    g_autofree char *dir = g_path_get_dirname (new_path);

    if (!agent_snap_make_dir (c, error)
        || !stor_space_check (dir, AGENT_SNAP_OVERLAY_SPACE, "the revert",
                              error))
      return FALSE;
  }
  (void)g_unlink (new_path);

  t->op = AGENT_SNAP_OP_REVERT;
  t->op_snap = agent_snap_copy (s);
  t->op_image = t->next++;
  t->op_old = t->active;
  t->op_running = running;
  t->op_paused = req->paused;
  if (!agent_snap_write_tree (c, t, error))
    return FALSE;
  agent_snap_crash_point ("snapshot-revert-crash-before");

  if (running && virDomainDestroy (c->dom) < 0 && agent_snap_is_active (c->dom))
    {
      agent_libvirt_error (error, "cannot stop VM %s to revert it", c->vm);
      goto rollback;
    }
  agent_snap_push (c, PROTO_STOR_PHASE_OVERLAY, 0, 0, NULL, NULL);
  if (!stor_overlay_create (new_path, base, error)
      || !agent_protect (c->agent, new_path, 0660, error))
    goto rollback;
  agent_snap_crash_point ("snapshot-revert-crash-after-stop");
  g_free (t->current);
  t->current = g_strdup (s->name);
  t->active = t->op_image;
  /* The define is the point of no return: from here the VM's disk is the
   * new overlay, and a restart finishes the rest. */
  if (!agent_snap_define_with (c, t, new_path, error))
    goto rollback;
  agent_snap_crash_point ("snapshot-revert-crash-after-define");
  if (!agent_snap_revert_finish (c, t, error))
    return FALSE;
  drover_message (c->vm, c->job, NULL, "reverted to snapshot %s", req->name);
  agent_snap_push (c, PROTO_STOR_PHASE_COMPLETED, 0, 0, NULL, t);
  return TRUE;

rollback:
  {
    g_autoptr (AgentSnapTree) now = agent_snap_read_tree (c, NULL);

    (void)stor_disk_remove (new_path, NULL);
    if (now)
      {
        agent_snap_clear_op (now);
        (void)agent_snap_write_tree (c, now, NULL);
      }
    /* It was running: bring it back on the image it had. */
    if (running && !agent_snap_is_active (c->dom))
      (void)virDomainCreate (c->dom);
    return FALSE;
  }
}
