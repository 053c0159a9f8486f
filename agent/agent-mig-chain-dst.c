/* AgentMigChainSink: the destination's side of a snapshot chain that
 * comes with an incoming VM (the labels are in agent-mig-chain.c).
 *
 * PrepareIncoming registers one for every VM with a disk (whether the VM
 * has snapshots is the source's to say; a VM without any sends nothing).
 * Each label is parsed into numbers or a snapshot name the sink checks,
 * and every path is built here from those and the VM name PrepareIncoming
 * validated. The first image replaces the empty one PrepareIncoming made
 * for the disk copy (it is ours and holds nothing). Once every file is
 * in, finish points each overlay at its parent's path here and makes the
 * overlay the VM will run on; from then on the migration's domain must
 * name that overlay as its disk (agent-mig-dst.c, on_check).
 */
#include "agent-mig-chain.h"
#include "agent-snaptree.h"

#include <glib/gstdio.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "stor.h"

struct _AgentMigChainSink
{
  Agent *agent; /* not a reference: the reservation's agent */
  char *vm;
  char *base_path; /* DATA/disks/VM.qcow2, made empty by PrepareIncoming */
  guint64 image_cap, memory_cap;
  GMutex lock;
  GHashTable *parents; /* overlay number -> parent number (0 for the base
                          has none: -1) */
  gboolean have_base;
  gint64 active, active_parent; /* -1 until the active label came */
  char *active_path;            /* lock: once finish made it */
  GPtrArray *paths;             /* lock: what came, once it all came */
};

AgentMigChainSink *
agent_mig_chain_sink_new (Agent *agent, const char *vm, const char *base_path,
                          guint64 disk, guint64 memory)
{
  AgentMigChainSink *s = g_new0 (AgentMigChainSink, 1);

  s->agent = agent;
  s->vm = g_strdup (vm);
  s->base_path = g_strdup (base_path);
  /* qcow2 metadata on top of the data: L1/L2 tables and refcounts are
   * well under 1/64 of the virtual size with 64 KiB clusters. */
  s->image_cap = disk + disk / 64 + 64 * 1024 * 1024;
  /* libvirt's save format: the RAM, the device state and a header. */
  s->memory_cap = memory + memory / 4 + 256 * 1024 * 1024;
  g_mutex_init (&s->lock);
  s->parents = g_hash_table_new (NULL, NULL);
  s->active = s->active_parent = -1;
  return s;
}

void
agent_mig_chain_sink_free (AgentMigChainSink *s)
{
  if (!s)
    return;
  g_hash_table_destroy (s->parents);
  g_clear_pointer (&s->paths, g_ptr_array_unref);
  g_free (s->active_path);
  g_free (s->base_path);
  g_free (s->vm);
  g_mutex_clear (&s->lock);
  g_free (s);
}

char *
agent_mig_chain_sink_active_path (AgentMigChainSink *s)
{
  char *path;

  g_mutex_lock (&s->lock);
  path = g_strdup (s->active_path);
  g_mutex_unlock (&s->lock);
  return path;
}

GPtrArray *
agent_mig_chain_sink_steal_paths (AgentMigChainSink *s)
{
  GPtrArray *paths;

  g_mutex_lock (&s->lock);
  paths = g_steal_pointer (&s->paths);
  g_mutex_unlock (&s->lock);
  return paths;
}

/* "N-P" + SUFFIX in canonical form (no leading zeros, N > P >= 0). */
static gboolean
parse_pair (const char *label, const char *suffix, guint *n, guint *p)
{
  g_autofree char *body = NULL, *again = NULL;
  g_auto (GStrv) parts = NULL;
  guint64 a, b;

  if (!g_str_has_suffix (label, suffix))
    return FALSE;
  body = g_strndup (label, strlen (label) - strlen (suffix));
  parts = g_strsplit (body, "-", 3);
  if (g_strv_length (parts) != 2
      || !g_ascii_string_to_unsigned (parts[0], 10, 1, G_MAXUINT32, &a, NULL)
      || !g_ascii_string_to_unsigned (parts[1], 10, 0, G_MAXUINT32, &b, NULL)
      || b >= a)
    return FALSE;
  again = g_strdup_printf ("%" G_GUINT64_FORMAT "-%" G_GUINT64_FORMAT "%s", a,
                           b, suffix);
  if (strcmp (again, label) != 0)
    return FALSE;
  *n = a;
  *p = b;
  return TRUE;
}

static gboolean
known (AgentMigChainSink *s, guint n)
{
  return n == 0 ? s->have_base
                : g_hash_table_contains (s->parents, GUINT_TO_POINTER (n));
}

static gboolean
refuse (AgentMigChainSink *s, GError **error, const char *label,
        const char *why)
{
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
               "VM %s: snapshot file %s refused: %s", s->vm, label, why);
  return FALSE;
}

static char *
snapshot_dir (AgentMigChainSink *s, GError **error)
{
  g_autofree char *dir
      = stor_snapshot_dir (s->agent->config.data_dir, s->vm, error);

  if (!dir)
    return NULL;
  if (g_mkdir_with_parents (dir, 0750) < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "cannot make %s",
                   dir);
      return NULL;
    }
  return agent_protect (s->agent, dir, 0750, error) ? g_steal_pointer (&dir)
                                                    : NULL;
}

static char *
place (const char *label, guint64 size, gpointer user_data, GError **error)
{
  AgentMigChainSink *s = user_data;
  g_autofree char *dir = NULL;
  guint n, p;

  /* Tests: killed as an operator's kill -9 would, with a file in. */
  if (s->have_base && agent_fault ("mig-chain-crash-receiving"))
    {
      g_printerr ("fault: mig-chain-crash-receiving: killing the agent\n");
      kill (getpid (), SIGKILL);
      pause ();
    }

  if (s->active >= 0 && !g_str_has_suffix (label, ".mem"))
    return refuse (s, error, label, "an image after the active one"), NULL;
  if (strcmp (label, "0.qcow2") == 0)
    {
      g_autofree char *mark = agent_disks_incoming_mark (s->base_path);

      if (s->have_base || size > s->image_cap)
        return refuse (s, error, label, "twice, or too big"), NULL;
      /* The empty image made for a plain disk copy goes: the base comes
       * whole instead (under a mark of its own). */
      if (!stor_disk_remove (s->base_path, error))
        return NULL;
      (void)g_unlink (mark);
      s->have_base = TRUE;
      return g_strdup (s->base_path);
    }
  if (parse_pair (label, ".qcow2", &n, &p)
      || parse_pair (label, ".active", &n, &p))
    {
      gboolean active = g_str_has_suffix (label, ".active");

      if (!known (s, p))
        return refuse (s, error, label, "its backing image did not come"), NULL;
      if (known (s, n))
        return refuse (s, error, label, "twice"), NULL;
      if (active ? size != 0 : size > s->image_cap)
        return refuse (s, error, label, "too big"), NULL;
      dir = snapshot_dir (s, error);
      if (!dir)
        return NULL;
      g_hash_table_insert (s->parents, GUINT_TO_POINTER (n),
                           GUINT_TO_POINTER (p));
      if (active)
        {
          s->active = n;
          s->active_parent = p;
        }
      return stor_snapshot_image_path (s->agent->config.data_dir, s->vm, n,
                                       error);
    }
  if (g_str_has_suffix (label, ".mem"))
    {
      g_autofree char *snap = g_strndup (label, strlen (label) - 4);

      if (!proto_name_validate ("snapshot", snap, NULL))
        return refuse (s, error, label, "not a snapshot name"), NULL;
      if (size > s->memory_cap)
        return refuse (s, error, label, "too big"), NULL;
      dir = snapshot_dir (s, error);
      return dir ? stor_snapshot_memory_path (s->agent->config.data_dir, s->vm,
                                              snap, error)
                 : NULL;
    }
  return refuse (s, error, label, "not a file of a snapshot chain"), NULL;
}

static char *
path_of (AgentMigChainSink *s, guint n, GError **error)
{
  return n == 0 ? g_strdup (s->base_path)
                : stor_snapshot_image_path (s->agent->config.data_dir, s->vm, n,
                                            error);
}

/* XML without the <audio> devices libvirt adds when it formats a saved
 * domain (a migration's domain is formatted without them); libvirt adds
 * its default again at the restore. NULL if XML does not parse. */
static char *
drop_audio (const char *xml)
{
  xmlDocPtr doc = xmlReadMemory (xml, strlen (xml), "saved.xml", NULL,
                                 XML_PARSE_NONET | XML_PARSE_NOERROR
                                     | XML_PARSE_NOWARNING);
  xmlNodePtr root = doc ? xmlDocGetRootElement (doc) : NULL;
  xmlChar *out = NULL;
  int len = 0;
  char *result = NULL;

  for (xmlNodePtr d = root ? root->children : NULL; d; d = d->next)
    {
      xmlNodePtr next;

      if (d->type != XML_ELEMENT_NODE
          || strcmp ((const char *)d->name, "devices") != 0)
        continue;
      for (xmlNodePtr n = d->children; n; n = next)
        {
          next = n->next;
          if (n->type == XML_ELEMENT_NODE
              && strcmp ((const char *)n->name, "audio") == 0)
            {
              xmlUnlinkNode (n);
              xmlFreeNode (n);
            }
        }
    }
  if (root)
    xmlDocDumpMemoryEnc (doc, &out, &len, "UTF-8");
  if (out)
    result = g_strndup ((const char *)out, len);
  xmlFree (out);
  if (doc)
    xmlFreeDoc (doc);
  return result;
}

/* A memory file's saved domain is the source's (its console log and disk
 * there) and came from the wire: it is rewritten to this host's paths
 * and must then pass the check an incoming domain passes, before a
 * revert here may restore it. */
static gboolean
adopt_memory_file (AgentMigChainSink *s, virConnectPtr conn, const char *mem,
                   GError **error)
{
  g_autofree char *saved = NULL, *xml = NULL, *console = NULL;
  g_autofree char *emulator = NULL, *plain = NULL;
  AgentMigXmlPaths paths = { 0 };

  saved = virDomainSaveImageGetXMLDesc (conn, mem,
                                        VIR_DOMAIN_SAVE_IMAGE_XML_SECURE);
  if (!saved)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s: %s is not a memory state libvirt reads", s->vm, mem);
      return FALSE;
    }
  console = agent_console_path (s->agent, s->vm);
  plain = drop_audio (saved);
  xml = plain ? mig_xml_rewrite (plain, console, s->base_path, error) : NULL;
  if (!xml)
    {
      if (error && !*error)
        g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                     "VM %s: the domain saved in %s does not parse", s->vm,
                     mem);
      return FALSE;
    }
  emulator = agent_qemu_emulator (s->agent, conn);
  paths.name = s->vm;
  paths.disk_path = s->base_path;
  paths.console_path = console;
  paths.emulator = emulator;
  if (!agent_mig_xml_check (s->agent, &paths, "destination_xml", xml, error))
    return FALSE;
  if (virDomainSaveImageDefineXML (conn, mem, xml, 0) < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "VM %s: cannot set the domain saved in %s", s->vm, mem);
      return FALSE;
    }
  return TRUE;
}

/* Every file is in: the backing paths are set here, never taken from the
 * images' headers. */
static gboolean
finish (const char *job_id, const GPtrArray *paths, gpointer user_data,
        GError **error)
{
  AgentMigChainSink *s = user_data;
  GHashTableIter it;
  gpointer key, value;
  g_autofree char *active = NULL;
  g_autoptr (virConnect) conn = NULL;

  if (!s->have_base || s->active < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s: the snapshot chain came without its %s", s->vm,
                   s->have_base ? "active image" : "first image");
      return FALSE;
    }
  g_hash_table_iter_init (&it, s->parents);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      guint n = GPOINTER_TO_UINT (key);
      g_autofree char *path = NULL, *backing = NULL;

      if ((gint64)n == s->active)
        continue;
      path = path_of (s, n, error);
      backing = path ? path_of (s, GPOINTER_TO_UINT (value), error) : NULL;
      if (!backing || !stor_image_rebase (path, backing, TRUE, error)
          || !agent_protect (s->agent, path, 0660, error))
        return FALSE;
    }
  if (!agent_protect (s->agent, s->base_path, 0660, error))
    return FALSE;
  {
    g_autofree char *backing = path_of (s, s->active_parent, error);

    active = backing ? path_of (s, s->active, error) : NULL;
    /* The empty file stands for it (and keeps its mark). */
    if (!active || g_unlink (active) < 0
        || !stor_overlay_create (active, backing, error)
        || !agent_protect (s->agent, active, 0660, error))
      {
        if (error && !*error)
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                       "VM %s: cannot make its active image", s->vm);
        return FALSE;
      }
  }
  for (guint i = 0; i < paths->len; i++)
    {
      const char *mem = paths->pdata[i];

      if (!g_str_has_suffix (mem, ".mem"))
        continue;
      if (!conn && !(conn = agent_libvirt_get (s->agent->lv, error)))
        return FALSE;
      if (!agent_protect (s->agent, mem, 0600, error)
          || !adopt_memory_file (s, conn, mem, error))
        return FALSE;
    }
  g_mutex_lock (&s->lock);
  s->active_path = g_steal_pointer (&active);
  s->paths = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < paths->len; i++)
    g_ptr_array_add (s->paths, g_strdup (paths->pdata[i]));
  g_mutex_unlock (&s->lock);
  return TRUE;
}

void
agent_mig_chain_sink_init (AgentMigChainSink *s, AgentImageXferSink *sink)
{
  memset (sink, 0, sizeof *sink);
  sink->place = place;
  sink->finish = finish;
  sink->max_files = 2 * AGENT_SNAP_MAX + 2;
  sink->what = s->vm;
  sink->user_data = s;
}
