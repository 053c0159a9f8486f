/* A VM's snapshot chain in a live migration: what the source sends before
 * the memory, and how the destination takes it.
 *
 * Every image but the one the VM runs on is read-only while it runs
 * (snapshot calls are refused during a migration), so those images and
 * the memory files travel whole on the job's image stream
 * (agent-image-xfer.c) before libvirt's migration starts; the active image
 * then goes by libvirt's incremental storage copy (only its own layer is
 * mirrored, the destination has its backing chain). Labels:
 *   "0.qcow2"     the VM's first image (DATA/disks/VM.qcow2)
 *   "N-P.qcow2"   overlay N whose backing image is P
 *   "A-P.active"  no data: the VM runs on overlay A on P
 *   "SNAP.mem"    the memory state of snapshot SNAP
 * in that order (a parent before its children, the active one last of the
 * images). The backing paths in the images' headers are the source's:
 * the destination sets each one itself (qemu-img rebase -u) to the path
 * of the parent it builds from the number, and makes the active overlay
 * on its parent. It checks each label against what came before (a
 * parent must have come, no number twice, numbers grow down the chain)
 * and caps each file at what an image of the VM's disk or a memory state
 * of its RAM can take.
 */
#include "agent-mig-chain.h"
#include "agent-snaptree.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#include "stor.h"

#define ACTIVE_SUFFIX ".active"
#define IMAGE_SUFFIX ".qcow2"
#define MEM_SUFFIX ".mem"

/* --- source ------------------------------------------------------------ */

/* The image number of PATH (one of VM's), or -1. */
static gint64
image_number (Agent *agent, const char *vm, const char *path)
{
  g_autofree char *base = stor_disk_path (agent->config.data_dir, vm, NULL);
  g_autofree char *dir = stor_snapshot_dir (agent->config.data_dir, vm, NULL);
  g_autofree char *parent = g_path_get_dirname (path);
  g_autofree char *file = g_path_get_basename (path);
  g_autofree char *num = NULL;
  guint64 n;

  if (g_strcmp0 (path, base) == 0)
    return 0;
  if (g_strcmp0 (parent, dir) != 0 || !g_str_has_suffix (file, IMAGE_SUFFIX))
    return -1;
  num = g_strndup (file, strlen (file) - strlen (IMAGE_SUFFIX));
  if (!g_ascii_string_to_unsigned (num, 10, 1, G_MAXUINT32, &n, NULL))
    return -1;
  return (gint64)n;
}

static char *
image_path (Agent *agent, const char *vm, guint n, GError **error)
{
  return n == 0
             ? stor_disk_path (agent->config.data_dir, vm, error)
             : stor_snapshot_image_path (agent->config.data_dir, vm, n, error);
}

/* Adds image N and, through the chain in its header, its ancestors to
 * PARENTS (number -> parent number, -1 for the base). */
static gboolean
add_chain (Agent *agent, const char *vm, guint n, GHashTable *parents,
           GError **error)
{
  g_autofree char *path = NULL;
  g_autoptr (GPtrArray) chain = NULL;

  if (g_hash_table_contains (parents, GUINT_TO_POINTER (n)))
    return TRUE;
  path = image_path (agent, vm, n, error);
  chain = path ? stor_chain_read (path, error) : NULL;
  if (!chain)
    return FALSE;
  for (guint i = 0; i < chain->len; i++)
    {
      const StorImage *img = chain->pdata[i];
      gint64 num = image_number (agent, vm, img->path);
      gint64 parent = img->backing && i + 1 < chain->len ? image_number (
                          agent, vm, ((StorImage *)chain->pdata[i + 1])->path)
                                                         : -1;

      if (num < 0 || (img->backing && parent < 0) || parent >= num)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                       "VM %s: image %s is not part of its snapshot chain "
                       "as Drover keeps it",
                       vm, img->path);
          return FALSE;
        }
      if (!g_hash_table_insert (parents, GUINT_TO_POINTER ((guint)num),
                                GINT_TO_POINTER ((gint)parent)))
        break; /* the rest of the chain is known */
    }
  return TRUE;
}

static gint
cmp_uint (gconstpointer a, gconstpointer b)
{
  guint x = GPOINTER_TO_UINT (*(gpointer *)a);
  guint y = GPOINTER_TO_UINT (*(gpointer *)b);

  return x < y ? -1 : x > y;
}

/* Appends the file LABEL at PATH (both taken); PATH NULL (its error set)
 * frees C and returns FALSE. */
static gboolean
chain_add (AgentMigChain *c, char *label, char *path)
{
  AgentImageXferFile f = { label, path };

  g_ptr_array_add (c->strings, label);
  if (!path)
    {
      agent_mig_chain_free (c);
      return FALSE;
    }
  g_ptr_array_add (c->strings, path);
  g_array_append_val (c->files, f);
  return TRUE;
}

AgentMigChain *
agent_mig_chain_collect (Agent *agent, const char *vm, const char *domxml,
                         GError **error)
{
  g_autoptr (AgentSnapTree) t = agent_snaptree_from_domain_xml (domxml, error);
  g_autoptr (GHashTable) parents = g_hash_table_new (NULL, NULL);
  g_autoptr (GPtrArray) order = NULL;
  AgentMigChain *c;
  gint parent;

  if (!t)
    return NULL;
  if (t->op != AGENT_SNAP_OP_NONE || t->active == 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s: its snapshot chain is %s; migrate it later", vm,
                   t->op != AGENT_SNAP_OP_NONE ? "being changed"
                                               : "not one Drover can carry");
      return NULL;
    }
  if (!add_chain (agent, vm, t->active, parents, error))
    return NULL;
  for (guint i = 0; i < t->snaps->len; i++)
    if (!add_chain (agent, vm, ((AgentSnap *)t->snaps->pdata[i])->image,
                    parents, error))
      return NULL;
  parent = GPOINTER_TO_INT (
      g_hash_table_lookup (parents, GUINT_TO_POINTER (t->active)));
  if (parent < 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s: the image it runs on has no backing image", vm);
      return NULL;
    }

  c = g_new0 (AgentMigChain, 1);
  c->active = t->active;
  c->files = g_array_new (FALSE, TRUE, sizeof (AgentImageXferFile));
  c->strings = g_ptr_array_new_with_free_func (g_free);
  order = g_ptr_array_new ();
  {
    GHashTableIter it;
    gpointer key;

    g_hash_table_iter_init (&it, parents);
    while (g_hash_table_iter_next (&it, &key, NULL))
      g_ptr_array_add (order, key);
  }
  g_ptr_array_sort (order, cmp_uint);
  for (guint i = 0; i < order->len; i++)
    {
      guint n = GPOINTER_TO_UINT (order->pdata[i]);
      gint p = GPOINTER_TO_INT (
          g_hash_table_lookup (parents, GUINT_TO_POINTER (n)));

      if (n != t->active
          && !chain_add (c,
                         n == 0 ? g_strdup ("0" IMAGE_SUFFIX)
                                : g_strdup_printf ("%u-%d" IMAGE_SUFFIX, n, p),
                         image_path (agent, vm, n, error)))
        return NULL;
    }
  /* No data, only the numbers: /dev/null reads as empty. */
  chain_add (c, g_strdup_printf ("%u-%d" ACTIVE_SUFFIX, t->active, parent),
             g_strdup ("/dev/null"));
  for (guint i = 0; i < t->snaps->len; i++)
    {
      const AgentSnap *s = t->snaps->pdata[i];

      if (s->memory
          && !chain_add (c, g_strconcat (s->name, MEM_SUFFIX, NULL),
                         stor_snapshot_memory_path (agent->config.data_dir, vm,
                                                    s->name, error)))
        return NULL;
    }
  return c;
}

char *
agent_mig_chain_dest_disk (const AgentMigChain *c, const char *vm,
                           const char *dest_base, GError **error)
{
  g_autofree char *tail = g_strconcat (
      G_DIR_SEPARATOR_S "disks" G_DIR_SEPARATOR_S, vm, IMAGE_SUFFIX, NULL);
  g_autofree char *data = NULL;

  /* The destination's data directory, from the first image's path it
   * chose (DATA/disks/VM.qcow2); it checks the result itself. */
  if (!dest_base || !g_path_is_absolute (dest_base)
      || !g_str_has_suffix (dest_base, tail)
      || strlen (dest_base) == strlen (tail))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s: the destination's disk path %s is not "
                   "DATA/disks/%s.qcow2",
                   vm, dest_base ? dest_base : "(none)", vm);
      return NULL;
    }
  data = g_strndup (dest_base, strlen (dest_base) - strlen (tail));
  return stor_snapshot_image_path (data, vm, c->active, error);
}

void
agent_mig_chain_free (AgentMigChain *c)
{
  if (!c)
    return;
  g_array_unref (c->files);
  g_ptr_array_unref (c->strings);
  g_free (c);
}
