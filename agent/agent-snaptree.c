/* AgentSnapTree: a VM's snapshot tree as its domain metadata carries it.
 *
 *   <drover-snap:snapshots xmlns:drover-snap="..." current="s2" active="4"
 *                          next="5">
 *     <drover-snap:snapshot name="s1" parent="" created="..." image="0"
 *                           memory="0" quiesced="0" state="running">
 *       <drover-snap:description>text</drover-snap:description>
 *     </drover-snap:snapshot>
 *     <drover-snap:pending op="create" image="5" old="4" running="1"
 *                          paused="0"> <drover-snap:snapshot .../>
 *     </drover-snap:pending>
 *   </drover-snap:snapshots>
 *
 * The domain's metadata is what travels with it and what libvirt writes
 * atomically with the rest of its definition, so the tree, the disk the
 * domain names and the pending operation never disagree for long. The
 * metadata is read back as untrusted: names are checked, counts and
 * lengths capped, image numbers bounded by "next".
 */
#include "agent-snaptree.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)

/* Overlay numbers stay far from overflow. */
#define SNAP_MAX_IMAGE 1000000

void
agent_snap_free (AgentSnap *snap)
{
  if (!snap)
    return;
  g_free (snap->name);
  g_free (snap->parent);
  g_free (snap->description);
  g_free (snap->vm_state);
  g_free (snap);
}

AgentSnap *
agent_snap_copy (const AgentSnap *s)
{
  AgentSnap *c = g_new0 (AgentSnap, 1);

  *c = *s;
  c->name = g_strdup (s->name);
  c->parent = g_strdup (s->parent);
  c->description = g_strdup (s->description);
  c->vm_state = g_strdup (s->vm_state);
  return c;
}

AgentSnapTree *
agent_snaptree_new (void)
{
  AgentSnapTree *t = g_new0 (AgentSnapTree, 1);

  t->snaps = g_ptr_array_new_with_free_func ((GDestroyNotify)agent_snap_free);
  t->current = g_strdup ("");
  t->next = 1;
  return t;
}

void
agent_snaptree_free (AgentSnapTree *t)
{
  if (!t)
    return;
  g_ptr_array_unref (t->snaps);
  g_free (t->current);
  agent_snap_free (t->op_snap);
  g_free (t);
}

AgentSnap *
agent_snaptree_find (const AgentSnapTree *t, const char *name)
{
  for (guint i = 0; i < t->snaps->len; i++)
    {
      AgentSnap *s = t->snaps->pdata[i];

      if (g_strcmp0 (s->name, name) == 0)
        return s;
    }
  return NULL;
}

AgentSnap *
agent_snaptree_by_image (const AgentSnapTree *t, guint image)
{
  for (guint i = 0; i < t->snaps->len; i++)
    {
      AgentSnap *s = t->snaps->pdata[i];

      if (s->image == image)
        return s;
    }
  return NULL;
}

/* --- reading ----------------------------------------------------------- */

static gboolean
is_ours (xmlNodePtr n, const char *name)
{
  return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href
         && strcmp ((const char *)n->ns->href, AGENT_SNAP_XMLNS) == 0
         && strcmp ((const char *)n->name, name) == 0;
}

static char *
prop (xmlNodePtr n, const char *name)
{
  xmlChar *v = xmlGetProp (n, BAD_CAST name);
  char *s = g_strdup (v ? (const char *)v : "");

  xmlFree (v);
  return s;
}

static gboolean
prop_uint (xmlNodePtr n, const char *name, guint64 max, guint64 *value,
           GError **error)
{
  g_autofree char *v = prop (n, name);

  if (!*v)
    {
      *value = 0;
      return TRUE;
    }
  if (!g_ascii_string_to_unsigned (v, 10, 0, max, value, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "snapshot metadata: %s=\"%s\" is not a number up to "
                   "%" G_GUINT64_FORMAT,
                   name, v, max);
      return FALSE;
    }
  return TRUE;
}

static gboolean
prop_bool (xmlNodePtr n, const char *name)
{
  g_autofree char *v = prop (n, name);

  return strcmp (v, "1") == 0;
}

static AgentSnap *
snap_from_node (xmlNodePtr n, GError **error)
{
  g_autoptr (AgentSnap) s = g_new0 (AgentSnap, 1);
  guint64 image = 0, created = 0;
  g_autoptr (GError) local = NULL;

  s->name = prop (n, "name");
  s->parent = prop (n, "parent");
  s->vm_state = prop (n, "state");
  s->description = g_strdup ("");
  if (!proto_name_validate ("snapshot", s->name, &local)
      || (*s->parent && !proto_name_validate ("snapshot", s->parent, &local)))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "snapshot metadata: %s", local->message);
      return NULL;
    }
  if (strlen (s->vm_state) > 32)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "snapshot metadata: state too long");
      return NULL;
    }
  if (!prop_uint (n, "image", SNAP_MAX_IMAGE, &image, error)
      || !prop_uint (n, "created", G_MAXINT64, &created, error))
    return NULL;
  s->image = (guint)image;
  s->created_ms = (gint64)created;
  s->memory = prop_bool (n, "memory");
  s->quiesced = prop_bool (n, "quiesced");
  for (xmlNodePtr c = n->children; c; c = c->next)
    {
      if (is_ours (c, "description"))
        {
          xmlChar *text = xmlNodeGetContent (c);

          g_free (s->description);
          s->description = g_strdup (text ? (const char *)text : "");
          xmlFree (text);
          if (strlen (s->description) > AGENT_SNAP_MAX_DESCRIPTION)
            {
              g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                                   "snapshot metadata: description too long");
              return NULL;
            }
        }
    }
  return g_steal_pointer (&s);
}

static xmlNodePtr
find_tree_node (xmlDocPtr doc)
{
  xmlNodePtr root = xmlDocGetRootElement (doc);

  for (xmlNodePtr m = root ? root->children : NULL; m; m = m->next)
    {
      if (m->type != XML_ELEMENT_NODE
          || strcmp ((const char *)m->name, "metadata") != 0)
        continue;
      for (xmlNodePtr n = m->children; n; n = n->next)
        if (is_ours (n, "snapshots"))
          return n;
    }
  return NULL;
}

static gboolean
check_tree (AgentSnapTree *t, GError **error)
{
  for (guint i = 0; i < t->snaps->len; i++)
    {
      AgentSnap *s = t->snaps->pdata[i];
      gboolean parent_seen = !*s->parent;

      for (guint j = 0; j < i; j++)
        {
          AgentSnap *o = t->snaps->pdata[j];

          if (strcmp (o->name, s->name) == 0 || o->image == s->image)
            {
              g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "snapshot metadata: snapshot %s twice", s->name);
              return FALSE;
            }
          if (strcmp (o->name, s->parent) == 0)
            parent_seen = TRUE;
        }
      /* Parents come first: this also rules out loops. */
      if (!parent_seen || s->image >= t->next)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "snapshot metadata: snapshot %s has an unknown parent "
                       "or image",
                       s->name);
          return FALSE;
        }
    }
  if ((*t->current && !agent_snaptree_find (t, t->current))
      || t->active >= t->next || t->op_image >= t->next || t->op_old >= t->next)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "snapshot metadata: current snapshot or image "
                           "unknown");
      return FALSE;
    }
  return TRUE;
}

AgentSnapTree *
agent_snaptree_from_domain_xml (const char *domxml, GError **error)
{
  g_autoptr (xmlDoc) doc = agent_domain_xml_read (domxml, error);
  g_autoptr (AgentSnapTree) t = NULL;
  g_autoptr (GError) local = NULL;
  xmlNodePtr node;
  guint64 v;

  if (!doc)
    return NULL;
  t = agent_snaptree_new ();
  node = find_tree_node (doc);
  if (!node)
    return g_steal_pointer (&t);
  g_free (t->current);
  t->current = prop (node, "current");
  if (*t->current && !proto_name_validate ("snapshot", t->current, &local))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "snapshot metadata: %s", local->message);
      return NULL;
    }
  if (!prop_uint (node, "active", SNAP_MAX_IMAGE, &v, error))
    return NULL;
  t->active = (guint)v;
  if (!prop_uint (node, "next", SNAP_MAX_IMAGE + 1, &v, error))
    return NULL;
  t->next = MAX ((guint)v, 1);
  for (xmlNodePtr n = node->children; n; n = n->next)
    {
      if (is_ours (n, "snapshot"))
        {
          AgentSnap *s;

          if (t->snaps->len >= AGENT_SNAP_MAX)
            {
              g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "snapshot metadata: more than %d snapshots",
                           AGENT_SNAP_MAX);
              return NULL;
            }
          s = snap_from_node (n, error);
          if (!s)
            return NULL;
          g_ptr_array_add (t->snaps, s);
        }
      else if (is_ours (n, "pending") && t->op == AGENT_SNAP_OP_NONE)
        {
          g_autofree char *op = prop (n, "op");

          if (strcmp (op, "create") == 0)
            t->op = AGENT_SNAP_OP_CREATE;
          else if (strcmp (op, "revert") == 0)
            t->op = AGENT_SNAP_OP_REVERT;
          else if (strcmp (op, "delete") == 0)
            t->op = AGENT_SNAP_OP_DELETE;
          else
            {
              g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "snapshot metadata: unknown operation \"%s\"", op);
              return NULL;
            }
          if (!prop_uint (n, "image", SNAP_MAX_IMAGE, &v, error))
            return NULL;
          t->op_image = (guint)v;
          if (!prop_uint (n, "old", SNAP_MAX_IMAGE, &v, error))
            return NULL;
          t->op_old = (guint)v;
          t->op_running = prop_bool (n, "running");
          t->op_paused = prop_bool (n, "paused");
          for (xmlNodePtr c = n->children; c; c = c->next)
            if (is_ours (c, "snapshot") && !t->op_snap)
              {
                t->op_snap = snap_from_node (c, error);
                if (!t->op_snap)
                  return NULL;
              }
          if (!t->op_snap)
            {
              g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                                   "snapshot metadata: pending operation "
                                   "without its snapshot");
              return NULL;
            }
        }
    }
  if (!check_tree (t, error))
    return NULL;
  return g_steal_pointer (&t);
}

/* --- writing ----------------------------------------------------------- */

static void
set_uint (xmlNodePtr n, const char *name, guint64 value)
{
  char buf[32];

  g_snprintf (buf, sizeof buf, "%" G_GUINT64_FORMAT, value);
  xmlNewProp (n, BAD_CAST name, BAD_CAST buf);
}

static void
add_snap (xmlNodePtr parent, xmlNsPtr ns, const AgentSnap *s)
{
  xmlNodePtr n = xmlNewChild (parent, ns, BAD_CAST "snapshot", NULL);

  xmlNewProp (n, BAD_CAST "name", BAD_CAST s->name);
  xmlNewProp (n, BAD_CAST "parent", BAD_CAST (s->parent ? s->parent : ""));
  set_uint (n, "created", (guint64)MAX (s->created_ms, 0));
  set_uint (n, "image", s->image);
  set_uint (n, "memory", s->memory ? 1 : 0);
  set_uint (n, "quiesced", s->quiesced ? 1 : 0);
  xmlNewProp (n, BAD_CAST "state", BAD_CAST (s->vm_state ? s->vm_state : ""));
  if (s->description && *s->description)
    xmlNewTextChild (n, ns, BAD_CAST "description", BAD_CAST s->description);
}

/* The tree element: in Drover's namespace when WITH_NS, else plain (as
 * virDomainSetMetadata wants it: it adds the namespace itself). */
static xmlNodePtr
tree_node (const AgentSnapTree *t, gboolean with_ns)
{
  static const char *const ops[] = { "", "create", "revert", "delete" };
  xmlNodePtr root = xmlNewNode (NULL, BAD_CAST "snapshots");
  xmlNsPtr ns = NULL;

  if (with_ns)
    {
      ns = xmlNewNs (root, BAD_CAST AGENT_SNAP_XMLNS,
                     BAD_CAST AGENT_SNAP_XMLNS_PREFIX);
      xmlSetNs (root, ns);
    }
  xmlNewProp (root, BAD_CAST "current", BAD_CAST t->current);
  set_uint (root, "active", t->active);
  set_uint (root, "next", t->next);
  for (guint i = 0; i < t->snaps->len; i++)
    add_snap (root, ns, t->snaps->pdata[i]);
  if (t->op != AGENT_SNAP_OP_NONE && t->op_snap)
    {
      xmlNodePtr p = xmlNewChild (root, ns, BAD_CAST "pending", NULL);

      xmlNewProp (p, BAD_CAST "op", BAD_CAST ops[t->op]);
      set_uint (p, "image", t->op_image);
      set_uint (p, "old", t->op_old);
      set_uint (p, "running", t->op_running ? 1 : 0);
      set_uint (p, "paused", t->op_paused ? 1 : 0);
      add_snap (p, ns, t->op_snap);
    }
  return root;
}

char *
agent_snaptree_to_xml (const AgentSnapTree *t)
{
  g_autoptr (xmlDoc) doc = xmlNewDoc (BAD_CAST "1.0");
  xmlBufferPtr buf = xmlBufferCreate ();
  xmlNodePtr root = tree_node (t, FALSE);
  char *out;

  xmlDocSetRootElement (doc, root);
  xmlNodeDump (buf, doc, root, 0, 0);
  out = g_strdup ((const char *)xmlBufferContent (buf));
  xmlBufferFree (buf);
  return out;
}

static xmlNodePtr
find_child (xmlNodePtr parent, const char *name)
{
  for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE && !n->ns
        && strcmp ((const char *)n->name, name) == 0)
      return n;
  return NULL;
}

/* Disk vda of the domain DOC. */
static xmlNodePtr
find_vda (xmlDocPtr doc)
{
  xmlNodePtr devices = find_child (xmlDocGetRootElement (doc), "devices");

  for (xmlNodePtr d = devices ? devices->children : NULL; d; d = d->next)
    {
      xmlNodePtr target;
      xmlChar *dev;
      gboolean hit;

      if (d->type != XML_ELEMENT_NODE
          || strcmp ((const char *)d->name, "disk") != 0)
        continue;
      target = find_child (d, "target");
      dev = target ? xmlGetProp (target, BAD_CAST "dev") : NULL;
      hit = dev && strcmp ((const char *)dev, "vda") == 0;
      xmlFree (dev);
      if (hit)
        return d;
    }
  return NULL;
}

char *
agent_snaptree_disk_source (const char *domxml)
{
  g_autoptr (xmlDoc) doc = agent_domain_xml_read (domxml, NULL);
  xmlNodePtr disk = doc ? find_vda (doc) : NULL;
  xmlNodePtr src = disk ? find_child (disk, "source") : NULL;

  return src ? prop (src, "file") : NULL;
}

char *
agent_snaptree_edit_domain_xml (const char *domxml, const AgentSnapTree *t,
                                const char *disk_path, GError **error)
{
  g_autoptr (xmlDoc) doc = agent_domain_xml_read (domxml, error);
  xmlNodePtr root, meta, old;
  xmlChar *out = NULL;
  int out_len = 0;
  char *result;

  if (!doc)
    return NULL;
  root = xmlDocGetRootElement (doc);
  if (disk_path)
    {
      xmlNodePtr disk = find_vda (doc);
      xmlNodePtr src = disk ? find_child (disk, "source") : NULL;
      xmlNodePtr bs;

      if (!src)
        {
          g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                               "domain XML has no disk vda with a source");
          return NULL;
        }
      xmlSetProp (src, BAD_CAST "file", BAD_CAST disk_path);
      /* libvirt probes the chain from the image itself. */
      while ((bs = find_child (disk, "backingStore")))
        {
          xmlUnlinkNode (bs);
          xmlFreeNode (bs);
        }
    }
  meta = find_child (root, "metadata");
  if (!meta)
    meta = xmlNewChild (root, NULL, BAD_CAST "metadata", NULL);
  old = find_tree_node (doc);
  if (old)
    {
      xmlUnlinkNode (old);
      xmlFreeNode (old);
    }
  xmlAddChild (meta, tree_node (t, TRUE));
  xmlDocDumpMemoryEnc (doc, &out, &out_len, "UTF-8");
  if (!out)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                           "cannot serialise domain XML");
      return NULL;
    }
  result = g_strndup ((const char *)out, out_len);
  xmlFree (out);
  return result;
}
