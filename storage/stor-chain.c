/* Image chains: qcow2 overlays on backing images, read, made, merged and
 * rebased with qemu-img. No libvirt here: the agent drives a running VM's
 * chain through libvirt itself and uses this for what QEMU does not hold
 * (stopped VMs, other branches of a snapshot tree). */
#include "stor-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sys/stat.h>

#include "proto.h"

void
stor_image_free (StorImage *image)
{
  if (!image)
    return;
  g_free (image->path);
  g_free (image->backing);
  g_free (image->format);
  g_free (image);
}

static guint64
member_uint (JsonObject *obj, const char *name)
{
  gint64 v;

  if (!json_object_has_member (obj, name))
    return 0;
  v = json_object_get_int_member (obj, name);
  return v < 0 ? 0 : (guint64)v;
}

const char *
stor_json_string (JsonObject *obj, const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (!node || !JSON_NODE_HOLDS_VALUE (node)
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

GPtrArray *
stor_chain_parse (const char *text, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GPtrArray) chain
      = g_ptr_array_new_with_free_func ((GDestroyNotify)stor_image_free);
  g_autoptr (GError) local = NULL;
  JsonNode *root;
  JsonArray *arr;
  guint n;

  if (!json_parser_load_from_data (parser, text, -1, &local))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "qemu-img info output does not parse: %s", local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_ARRAY (root))
    {
      g_set_error_literal (error, STOR_ERROR, STOR_ERROR_FAILED,
                           "qemu-img info output is not a list of images");
      return NULL;
    }
  arr = json_node_get_array (root);
  n = json_array_get_length (arr);
  if (n == 0 || n > STOR_CHAIN_MAX)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "image chain of %u images (1 to %d expected)", n,
                   STOR_CHAIN_MAX);
      return NULL;
    }
  for (guint i = 0; i < n; i++)
    {
      JsonNode *node = json_array_get_element (arr, i);
      JsonObject *obj;
      g_autoptr (StorImage) img = g_new0 (StorImage, 1);
      const char *path, *backing, *format;

      if (!JSON_NODE_HOLDS_OBJECT (node))
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                       "image %u of the chain is not an object", i);
          return NULL;
        }
      obj = json_node_get_object (node);
      path = stor_json_string (obj, "filename");
      format = stor_json_string (obj, "format");
      /* The full name is the one QEMU opened; the plain one may be
       * relative to the overlay. */
      backing = stor_json_string (obj, "full-backing-filename");
      if (!backing)
        backing = stor_json_string (obj, "backing-filename");
      if (!path || !format)
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                       "image %u of the chain has no file name or format", i);
          return NULL;
        }
      img->path = g_strdup (path);
      img->format = g_strdup (format);
      img->backing = backing && *backing ? g_strdup (backing) : NULL;
      img->virtual_size = member_uint (obj, "virtual-size");
      img->actual_size = member_uint (obj, "actual-size");
      g_ptr_array_add (chain, g_steal_pointer (&img));
    }
  /* Each image's backing file is the next one: what qemu-img promises. */
  for (guint i = 0; i + 1 < n; i++)
    {
      StorImage *a = chain->pdata[i];

      if (!a->backing)
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                       "image %s has no backing file but the chain goes on",
                       a->path);
          return NULL;
        }
    }
  return g_steal_pointer (&chain);
}

GPtrArray *
stor_chain_read (const char *path, GError **error)
{
  const char *argv[]
      = { "qemu-img", "info", "--backing-chain", "--output=json", "-U",
          path,       NULL };
  g_autofree char *out = NULL;
  g_autofree char *what = g_strdup_printf ("qemu-img info %s", path);
  GPtrArray *chain;

  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "image %s does not exist", path);
      return NULL;
    }
  if (!stor_run_tool (argv, what, &out, error))
    return NULL;
  /* --backing-chain prints a list even for one image. */
  chain = stor_chain_parse (out, error);
  if (!chain)
    g_prefix_error (error, "%s: ", path);
  return chain;
}

gboolean
stor_name_check (const char *what, const char *name, GError **error)
{
  g_autoptr (GError) local = NULL;

  /* The name check is what keeps paths inside the data directory. */
  if (!proto_name_validate (what, name, &local))
    {
      g_set_error_literal (error, STOR_ERROR, STOR_ERROR_INVALID_NAME,
                           local->message);
      return FALSE;
    }
  return TRUE;
}

char *
stor_snapshot_dir (const char *data_dir, const char *vm, GError **error)
{
  if (!stor_name_check ("VM", vm, error))
    return NULL;
  return g_build_filename (data_dir, "snapshots", vm, NULL);
}

char *
stor_snapshot_image_path (const char *data_dir, const char *vm, guint n,
                          GError **error)
{
  g_autofree char *dir = stor_snapshot_dir (data_dir, vm, error);
  g_autofree char *file = NULL;

  if (!dir)
    return NULL;
  if (n == 0)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME,
                   "overlay number 0 of VM %s", vm);
      return NULL;
    }
  file = g_strdup_printf ("%u.qcow2", n);
  return g_build_filename (dir, file, NULL);
}

char *
stor_snapshot_memory_path (const char *data_dir, const char *vm,
                           const char *snap, GError **error)
{
  g_autofree char *dir = stor_snapshot_dir (data_dir, vm, error);
  g_autofree char *file = NULL;

  if (!dir || !stor_name_check ("snapshot", snap, error))
    return NULL;
  file = g_strconcat (snap, ".mem", NULL);
  return g_build_filename (dir, file, NULL);
}

gboolean
stor_space_check (const char *dir, guint64 need, const char *what,
                  GError **error)
{
  guint64 avail = 0;

  if (!stor_fs_space (dir, NULL, &avail, error))
    return FALSE;
  if (avail < need || avail - need < STOR_MIN_FREE_SPACE)
    {
      g_autofree char *need_s = g_format_size_full (need + STOR_MIN_FREE_SPACE,
                                                    G_FORMAT_SIZE_IEC_UNITS);
      g_autofree char *have_s
          = g_format_size_full (avail, G_FORMAT_SIZE_IEC_UNITS);
      g_set_error (error, STOR_ERROR, STOR_ERROR_NO_SPACE,
                   "not enough space in %s for %s: need %s, have %s", dir, what,
                   need_s, have_s);
      return FALSE;
    }
  return TRUE;
}

gboolean
stor_overlay_create (const char *path, const char *backing, GError **error)
{
  const char *argv[] = { "qemu-img", "create", "-q",    "-f", "qcow2", "-F",
                         "qcow2",    "-b",     backing, path, NULL };

  if (!g_path_is_absolute (path) || !g_path_is_absolute (backing))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "overlay %s and its backing image %s must be absolute "
                   "paths",
                   path, backing);
      return FALSE;
    }
  if (!g_file_test (backing, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "backing image %s does not exist", backing);
      return FALSE;
    }
  /* An empty overlay is a few hundred KiB of metadata. */
  return stor_image_make (path, "image", "an overlay", 1024 * 1024, argv,
                          error);
}

gboolean
stor_image_commit (const char *top, GError **error)
{
  g_autoptr (GPtrArray) chain = stor_chain_read (top, error);
  g_autofree char *dir = NULL;
  g_autofree char *what = g_strdup_printf ("qemu-img commit %s", top);
  const char *argv[]
      = { "qemu-img", "commit", "-q", "-d", "-f", "qcow2", top, NULL };
  StorImage *img;

  if (!chain)
    return FALSE;
  img = chain->pdata[0];
  if (chain->len < 2)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_FAILED,
                   "image %s has no backing image to commit into", top);
      return FALSE;
    }
  /* The backing image grows by at most what the overlay holds. */
  dir = g_path_get_dirname (((StorImage *)chain->pdata[1])->path);
  if (!stor_space_check (dir, img->actual_size, "the merge", error))
    return FALSE;
  return stor_run_tool (argv, what, NULL, error);
}

gboolean
stor_image_rebase (const char *path, const char *backing, gboolean unsafe,
                   GError **error)
{
  g_autofree char *what = g_strdup_printf ("qemu-img rebase %s", path);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();

  if (!unsafe)
    {
      g_autoptr (GPtrArray) chain = stor_chain_read (path, error);
      g_autofree char *dir = g_path_get_dirname (path);
      guint64 need = 0;

      if (!chain)
        return FALSE;
      /* Safe mode may copy up to the whole of the old backing chain. */
      for (guint i = 1; i < chain->len; i++)
        need += ((StorImage *)chain->pdata[i])->actual_size;
      if (!stor_space_check (dir, need, "the rebase", error))
        return FALSE;
    }
  g_ptr_array_add (argv, (char *)"qemu-img");
  g_ptr_array_add (argv, (char *)"rebase");
  g_ptr_array_add (argv, (char *)"-q");
  if (unsafe)
    g_ptr_array_add (argv, (char *)"-u");
  g_ptr_array_add (argv, (char *)"-f");
  g_ptr_array_add (argv, (char *)"qcow2");
  if (backing)
    {
      g_ptr_array_add (argv, (char *)"-F");
      g_ptr_array_add (argv, (char *)"qcow2");
    }
  g_ptr_array_add (argv, (char *)"-b");
  g_ptr_array_add (argv, (char *)(backing ? backing : ""));
  g_ptr_array_add (argv, (char *)path);
  g_ptr_array_add (argv, NULL);
  return stor_run_tool ((const char *const *)argv->pdata, what, NULL, error);
}

guint64
stor_file_allocated (const char *path)
{
  GStatBuf st;

  if (g_stat (path, &st) < 0)
    return 0;
  return (guint64)st.st_blocks * 512;
}
