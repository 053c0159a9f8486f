/* DeleteSnapshot: a snapshot goes, its data merged where it is needed.
 *
 * The snapshot's image I takes the data of one image K that sits on it
 * (block commit: active with pivot when K is the running overlay, a plain
 * commit when K is lower in the running chain, qemu-img commit when no
 * QEMU holds K); every other image on I first gets I's data copied in
 * (qemu-img rebase, safe mode; never one a QEMU holds). Whatever referred
 * to K then refers to I, and K goes. I's path never changes, so
 * DATA/disks/VM.qcow2 stays the VM's base. A merge the agent was killed
 * in is resumed (agent_snap_delete_run) by agent-snap-recover.c.
 */
#include "agent-snapshot-private.h"

#include <glib/gstdio.h>
#include <string.h>

#include "stor.h"

/* The block job on vda: 1 with INFO, 0 none, -1 error. */
static int
block_job (virDomainPtr dom, virDomainBlockJobInfo *info)
{
  return virDomainGetBlockJobInfo (dom, "vda", info, 0);
}

/* Waits for the block job on vda; PIVOT: an active commit, pivoted once
 * it is ready. Reports "merging" progress. */
static gboolean
wait_block_job (AgentSnapCtx *c, gboolean pivot, GError **error)
{
  gint64 deadline
      = g_get_monotonic_time () + (gint64)AGENT_SNAP_JOB_WAIT_S * 1000000;
  virDomainBlockJobInfo info;
  unsigned long long last = 0;
  int rc;

  while ((rc = block_job (c->dom, &info)) == 1)
    {
      if (info.cur != last)
        deadline
            = g_get_monotonic_time () + (gint64)AGENT_SNAP_JOB_WAIT_S * 1000000;
      last = info.cur;
      agent_snap_push (c, PROTO_STOR_PHASE_MERGING, info.end, info.cur, NULL,
                       NULL);
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
      g_usleep (AGENT_SNAP_POLL_MS * 1000);
    }
  if (rc < 0)
    {
      agent_libvirt_error (error, "cannot follow the merge on VM %s", c->vm);
      return FALSE;
    }
  return TRUE;
}

/* The images the tree holds on to: every snapshot's and the active one,
 * with each one's backing image (-1: none or not one of ours). */
typedef struct
{
  guint n;
  gint backing;
  gboolean in_chain; /* in the running QEMU's chain */
} ImageNode;

static gboolean
image_graph (AgentSnapCtx *c, const AgentSnapTree *t, guint skip, GArray **out,
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
  if (agent_snap_is_active (c->dom))
    {
      g_autofree char *top = agent_snap_disk_source (c, TRUE);

      live_chain = top ? stor_chain_read (top, error) : NULL;
      if (!live_chain)
        return FALSE;
    }
  for (guint i = 0; i < nc; i++)
    {
      ImageNode node = { candidates[i], -1, FALSE };
      g_autofree char *path = agent_snap_image_path (c, node.n);
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
          g_autofree char *p = agent_snap_image_path (c, candidates[j]);

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
  agent_snap_clear_op (t);
}

/* Merges K into I (and moves the other images on I away first), for a
 * delete started now or resumed at start-up. T's record names the
 * snapshot, I (op_old) and K (op_image; 0 with I: nothing sits on I). */
gboolean
agent_snap_delete_run (AgentSnapCtx *c, AgentSnapTree *t, GError **error)
{
  g_autofree char *name = g_strdup (t->op_snap->name);
  guint i_img = t->op_old, k_img = t->op_image;
  g_autofree char *i_path = agent_snap_image_path (c, i_img);
  g_autofree char *k_path = k_img ? agent_snap_image_path (c, k_img) : NULL;
  g_autofree char *mem = agent_snap_memory_path (c, name);
  g_autoptr (GArray) nodes = NULL;
  gboolean running = agent_snap_is_active (c->dom);
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
          g_autofree char *src = agent_snap_disk_source (c, TRUE);

          if (!wait_block_job (c, g_strcmp0 (src, k_path) == 0, error))
            return FALSE;
        }
    }
  if (!image_graph (c, t, G_MAXUINT, &nodes, error))
    return FALSE;
  inode = node_of (nodes, i_img);
  knode = node_of (nodes, k_img);
  if (inode && inode->backing >= 0)
    p_path = agent_snap_image_path (c, (guint)inode->backing);

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
      x_path = agent_snap_image_path (c, x->n);
      agent_snap_push (c, PROTO_STOR_PHASE_MERGING, 0, 0, NULL, NULL);
      if (!stor_image_rebase (x_path, p_path, FALSE, error))
        return FALSE;
    }
  agent_snap_crash_point ("snapshot-delete-crash-before-merge");

  /* K's data into I, unless QEMU did it already: I is in the running
   * chain and K no longer is (libvirt drops K only after a finished
   * merge; K is chosen in the chain whenever I is). */
  if (knode && knode->backing == (gint)i_img
      && !(running && inode && inode->in_chain && !knode->in_chain))
    {
      g_autofree char *src = running ? agent_snap_disk_source (c, TRUE) : NULL;
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
          agent_snap_crash_point ("snapshot-delete-crash-merging");
          if (!wait_block_job (c, TRUE, error))
            return FALSE;
          g_free (src);
          src = agent_snap_disk_source (c, TRUE);
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
          agent_snap_crash_point ("snapshot-delete-crash-merging");
          if (!wait_block_job (c, FALSE, error))
            return FALSE;
        }
      else
        {
          agent_snap_push (c, PROTO_STOR_PHASE_MERGING, 0, 0, NULL, NULL);
          if (!stor_image_commit (k_path, error))
            return FALSE;
        }
    }
  agent_snap_crash_point ("snapshot-delete-crash-after-merge");

  /* Images on K not in the running chain now rest on I (same data). */
  for (guint j = 0; j < nodes->len; j++)
    {
      ImageNode *x = &g_array_index (nodes, ImageNode, j);
      g_autofree char *x_path = NULL;

      if (x->backing != (gint)k_img || (running && x->in_chain))
        continue;
      x_path = agent_snap_image_path (c, x->n);
      if (!stor_image_rebase (x_path, i_path, TRUE, error))
        return FALSE;
    }
  delete_commit_tree (t, name, i_img, k_img, TRUE);
  /* A stopped VM that ran on K runs on I from now on. */
  if (!running)
    {
      g_autofree char *src = agent_snap_disk_source (c, FALSE);

      if (g_strcmp0 (src, k_path) == 0)
        {
          if (!agent_snap_define_with (c, t, i_path, error))
            return FALSE;
        }
    }
  if (running)
    agent_snap_sync_config_disk (c, t);
  if (!agent_snap_write_tree (c, t, error))
    return FALSE;
  (void)stor_disk_remove (k_path, NULL);
  (void)g_unlink (mem);
  return TRUE;

done:
  delete_commit_tree (t, name, i_img, k_img, FALSE);
  if (!agent_snap_write_tree (c, t, error))
    return FALSE;
  (void)g_unlink (mem);
  return TRUE;
}

gboolean
agent_snap_delete (AgentSnapCtx *c, GError **error)
{
  const Drover__V1__AgentSnapshotRequest *req = c->call->req;
  g_autoptr (AgentSnapTree) t = NULL;
  g_autoptr (GArray) nodes = NULL;
  AgentSnap *s;
  gint keeper = -1;
  guint n_kids = 0;

  s = agent_snap_lookup (c, req->name, &t, error);
  if (!s)
    return FALSE;
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
    g_autofree char *merged = agent_snap_image_path (c, s->image);
    g_autofree char *removed
        = keeper < 0 ? NULL : agent_snap_image_path (c, keeper);

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
  t->op_running = agent_snap_is_active (c->dom);
  if (!agent_snap_write_tree (c, t, error))
    return FALSE;
  agent_snap_crash_point ("snapshot-delete-crash-before");
  if (!agent_snap_delete_run (c, t, error))
    {
      /* The record stays: the merge is resumed by the next operation or
       * the next start, never half-forgotten. */
      g_prefix_error (error, "snapshot %s of VM %s: ", req->name, c->vm);
      return FALSE;
    }
  drover_message (c->vm, c->job, NULL,
                  "snapshot %s deleted (%u image%s rested on it)", req->name,
                  n_kids, n_kids == 1 ? "" : "s");
  agent_snap_push (c, PROTO_STOR_PHASE_COMPLETED, 0, 0, NULL, t);
  return TRUE;
}
