/* Snapshot operations an earlier run left halfway, finished or rolled
 * back.
 *
 * Each operation writes its pending record into the tree before it
 * touches a disk. At start (agent_snapshot_reclaim) and before the next
 * operation on that VM (agent_snap_recover), a pending record is finished
 * (the disk change happened: the domain names the new image) or rolled
 * back (the new image is removed). Snapshot directories of VMs libvirt
 * no longer knows are removed at start.
 */
#include "agent-snapshot-private.h"

#include <glib/gstdio.h>

#include "stor.h"

/* Waits (up to AGENT_SNAP_JOB_WAIT_S) until DOM runs no domain job (a snapshot
 * an earlier run started, still being written by libvirt). */
static void
wait_domain_job (virDomainPtr dom)
{
  gint64 deadline
      = g_get_monotonic_time () + (gint64)AGENT_SNAP_JOB_WAIT_S * 1000000;
  virDomainJobInfo info;

  while (g_get_monotonic_time () < deadline)
    {
      if (virDomainGetJobInfo (dom, &info) < 0
          || info.type == VIR_DOMAIN_JOB_NONE)
        return;
      g_usleep (AGENT_SNAP_POLL_MS * 1000);
    }
}

/* Finishes or rolls back the operation T records (T updated and
 * written). TRUE when nothing is pending any more. */
gboolean
agent_snap_recover (AgentSnapCtx *c, AgentSnapTree *t, GError **error)
{
  g_autofree char *new_path = NULL;
  g_autofree char *src = NULL;
  gboolean running;

  if (t->op == AGENT_SNAP_OP_NONE)
    return TRUE;
  wait_domain_job (c->dom);
  running = agent_snap_is_active (c->dom);
  new_path = t->op_image ? agent_snap_image_path (c, t->op_image) : NULL;
  src = agent_snap_disk_source (c, running);
  switch (t->op)
    {
    case AGENT_SNAP_OP_CREATE:
      if (g_strcmp0 (src, new_path) == 0)
        {
          drover_message (c->vm, c->job, NULL,
                          "snapshot %s: taken by an earlier run; recorded now",
                          t->op_snap->name);
          agent_snap_create_commit_tree (t);
        }
      else
        {
          g_autofree char *mem = agent_snap_memory_path (c, t->op_snap->name);

          drover_message (c->vm, c->job, NULL,
                          "snapshot %s: left unfinished by an earlier run; "
                          "rolled back",
                          t->op_snap->name);
          (void)stor_disk_remove (new_path, NULL);
          (void)g_unlink (mem);
          agent_snap_clear_op (t);
        }
      return agent_snap_write_tree (c, t, error);
    case AGENT_SNAP_OP_REVERT:
      g_free (src);
      src = agent_snap_disk_source (c, FALSE);
      if (g_strcmp0 (src, new_path) == 0)
        {
          drover_message (c->vm, c->job, NULL,
                          "revert to snapshot %s: finishing what an earlier "
                          "run began",
                          t->op_snap->name);
          return agent_snap_revert_finish (c, t, error);
        }
      drover_message (c->vm, c->job, NULL,
                      "revert to snapshot %s: left unfinished by an earlier "
                      "run; rolled back",
                      t->op_snap->name);
      {
        gboolean was_running = t->op_running;

        (void)stor_disk_remove (new_path, NULL);
        agent_snap_clear_op (t);
        if (!agent_snap_write_tree (c, t, error))
          return FALSE;
        /* Destroyed before the kill: it boots again on its own image. */
        if (was_running && !agent_snap_is_active (c->dom))
          (void)virDomainCreate (c->dom);
      }
      return TRUE;
    case AGENT_SNAP_OP_DELETE:
      drover_message (c->vm, c->job, NULL,
                      "snapshot %s: finishing the delete an earlier run "
                      "began",
                      t->op_snap->name);
      return agent_snap_delete_run (c, t, error);
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
      AgentSnapCtx c = { agent, conn, doms[i], name, NULL, NULL };

      if (t && t->op != AGENT_SNAP_OP_NONE
          && proto_name_validate ("VM", name, NULL)
          && agent_vm_claim (agent, name, NULL))
        {
          if (!agent_snap_recover (&c, t, &error))
            drover_message (name, NULL, NULL, "snapshots: %s", error->message);
          agent_vm_release (agent, name);
        }
      virDomainFree (doms[i]);
    }
  free (doms);
  reclaim_orphan_dirs (agent, conn);
}
