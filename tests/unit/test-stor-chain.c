/* stor-chain: real qcow2 chains made by qemu-img in a temporary
 * directory, and data checked with qemu-io. */
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "stor.h"
#include "test-support.h"

typedef struct
{
  char *dir;
  char *base;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *disks = NULL;

  f->dir = test_tmp_dir_new ("drover-chain-XXXXXX");
  disks = g_build_filename (f->dir, "disks", NULL);
  g_assert_cmpint (g_mkdir (disks, 0755), ==, 0);
  f->base = stor_disk_path (f->dir, "vm1", &error);
  g_assert_no_error (error);
  g_assert_true (stor_disk_create (f->base, 8 * 1024 * 1024, &error));
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
  g_free (f->base);
}

/* qemu-io -c CMD on PATH; TRUE when it exits 0 and prints no failure
 * (a pattern mismatch prints "Pattern verification failed" and still
 * exits 0 on some versions). */
static gboolean
qemu_io (const char *path, const char *cmd)
{
  const char *argv[] = { "qemu-io", "-f", "qcow2", "-c", cmd, path, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err, &status, NULL));
  return g_spawn_check_wait_status (status, NULL) && !strstr (out, "failed")
         && !strstr (err, "failed");
}

static char *
snap_dir (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  char *dir = stor_snapshot_dir (f->dir, "vm1", &error);

  g_assert_no_error (error);
  g_assert_cmpint (g_mkdir_with_parents (dir, 0755), ==, 0);
  return dir;
}

static void
test_paths (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = stor_snapshot_dir (f->dir, "vm1", &error);
  g_autofree char *img = stor_snapshot_image_path (f->dir, "vm1", 7, &error);
  g_autofree char *mem
      = stor_snapshot_memory_path (f->dir, "vm1", "before-upgrade", &error);
  g_autofree char *want_dir
      = g_build_filename (f->dir, "snapshots", "vm1", NULL);
  g_autofree char *want_img = g_build_filename (want_dir, "7.qcow2", NULL);
  g_autofree char *want_mem
      = g_build_filename (want_dir, "before-upgrade.mem", NULL);
  const char *bad[] = { "", "..", "a/b", "../x", "A", "x y", "a\nb" };

  g_assert_no_error (error);
  g_assert_cmpstr (dir, ==, want_dir);
  g_assert_cmpstr (img, ==, want_img);
  g_assert_cmpstr (mem, ==, want_mem);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      char *p = stor_snapshot_dir (f->dir, bad[i], &error);

      g_assert_null (p);
      g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
      g_clear_error (&error);
      p = stor_snapshot_memory_path (f->dir, "vm1", bad[i], &error);
      g_assert_null (p);
      g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
      g_clear_error (&error);
      p = stor_snapshot_image_path (f->dir, bad[i], 1, &error);
      g_assert_null (p);
      g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
      g_clear_error (&error);
    }
  g_assert_null (stor_snapshot_image_path (f->dir, "vm1", 0, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
}

/* base <- 1 <- 2: read back top first, with backing names and sizes. */
static void
test_chain_read (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = snap_dir (f);
  g_autofree char *o1 = stor_snapshot_image_path (f->dir, "vm1", 1, NULL);
  g_autofree char *o2 = stor_snapshot_image_path (f->dir, "vm1", 2, NULL);
  g_autoptr (GPtrArray) chain = NULL;
  StorImage *img;

  g_assert_true (qemu_io (f->base, "write -P 0x11 0 1M"));
  g_assert_true (stor_overlay_create (o1, f->base, &error));
  g_assert_no_error (error);
  g_assert_true (qemu_io (o1, "write -P 0x22 1M 1M"));
  g_assert_true (stor_overlay_create (o2, o1, &error));
  g_assert_no_error (error);

  chain = stor_chain_read (o2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->len, ==, 3);
  img = chain->pdata[0];
  g_assert_cmpstr (img->path, ==, o2);
  g_assert_cmpstr (img->backing, ==, o1);
  g_assert_cmpstr (img->format, ==, "qcow2");
  g_assert_cmpuint (img->virtual_size, ==, 8 * 1024 * 1024);
  img = chain->pdata[1];
  g_assert_cmpstr (img->path, ==, o1);
  g_assert_cmpstr (img->backing, ==, f->base);
  g_assert_cmpuint (img->actual_size, >=, 1024 * 1024);
  img = chain->pdata[2];
  g_assert_cmpstr (img->path, ==, f->base);
  g_assert_null (img->backing);
  g_assert_cmpuint (stor_file_allocated (f->base), >=, 1024 * 1024);
  g_assert_cmpuint (stor_file_allocated (dir), >, 0);

  /* The top sees both layers. */
  g_assert_true (qemu_io (o2, "read -P 0x11 0 1M"));
  g_assert_true (qemu_io (o2, "read -P 0x22 1M 1M"));
  g_assert_false (qemu_io (o2, "read -P 0x33 0 1M"));
}

/* An overlay never overwrites, needs its backing, and leaves nothing
 * behind when qemu-img fails. */
static void
test_overlay_refusals (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = snap_dir (f);
  g_autofree char *o1 = stor_snapshot_image_path (f->dir, "vm1", 1, NULL);
  g_autofree char *missing = g_build_filename (dir, "nothing.qcow2", NULL);
  g_autofree char *junk = g_build_filename (dir, "junk", NULL);
  g_autofree char *contents = NULL;

  g_assert_true (g_file_set_contents (o1, "mine\n", -1, NULL));
  g_assert_false (stor_overlay_create (o1, f->base, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_true (g_file_get_contents (o1, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "mine\n");
  g_assert_cmpint (g_unlink (o1), ==, 0);

  g_assert_false (stor_overlay_create (o1, missing, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_false (g_file_test (o1, G_FILE_TEST_EXISTS));

  g_assert_false (stor_overlay_create ("relative.qcow2", f->base, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);

  /* A backing file that is not qcow2: qemu-img refuses, nothing stays. */
  g_assert_true (g_file_set_contents (junk, "not an image", -1, NULL));
  g_assert_false (stor_overlay_create (o1, junk, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_false (g_file_test (o1, G_FILE_TEST_EXISTS));

  /* Chain of something that is not there. */
  g_assert_null (stor_chain_read (missing, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
}

/* Merging 1 into base (commit), and moving 2 from 1 onto base (rebase),
 * keep what each image shows. */
static void
test_commit_rebase (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = snap_dir (f);
  g_autofree char *o1 = stor_snapshot_image_path (f->dir, "vm1", 1, NULL);
  g_autofree char *o2 = stor_snapshot_image_path (f->dir, "vm1", 2, NULL);
  g_autofree char *o3 = stor_snapshot_image_path (f->dir, "vm1", 3, NULL);
  g_autoptr (GPtrArray) chain = NULL;

  g_assert_true (qemu_io (f->base, "write -P 0x11 0 1M"));
  g_assert_true (stor_overlay_create (o1, f->base, &error));
  g_assert_true (qemu_io (o1, "write -P 0x22 0 512k"));
  g_assert_true (stor_overlay_create (o2, o1, &error));
  g_assert_true (qemu_io (o2, "write -P 0x33 2M 64k"));
  g_assert_true (stor_overlay_create (o3, o1, &error));
  g_assert_no_error (error);

  /* Safe rebase of 2 onto base: it takes 1's data along. */
  g_assert_true (stor_image_rebase (o2, f->base, FALSE, &error));
  g_assert_no_error (error);
  chain = stor_chain_read (o2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->len, ==, 2);
  g_assert_true (qemu_io (o2, "read -P 0x22 0 512k"));
  g_assert_true (qemu_io (o2, "read -P 0x11 512k 512k"));
  g_assert_true (qemu_io (o2, "read -P 0x33 2M 64k"));

  /* Commit 3 (empty) and then 1 into base: base shows what 1 showed;
   * 3 moves onto base unsafely, its content the same. */
  g_assert_true (qemu_io (o3, "write -P 0x44 4M 64k"));
  g_assert_true (stor_image_commit (o1, &error));
  g_assert_no_error (error);
  g_assert_true (qemu_io (f->base, "read -P 0x22 0 512k"));
  g_assert_true (stor_image_rebase (o3, f->base, TRUE, &error));
  g_assert_no_error (error);
  g_assert_true (stor_disk_remove (o1, &error));
  g_assert_true (qemu_io (o3, "read -P 0x22 0 512k"));
  g_assert_true (qemu_io (o3, "read -P 0x44 4M 64k"));
  g_assert_true (qemu_io (o2, "read -P 0x22 0 512k"));

  /* Rebase onto nothing: a standalone image. */
  g_assert_true (stor_image_rebase (o3, NULL, FALSE, &error));
  g_assert_no_error (error);
  g_clear_pointer (&chain, g_ptr_array_unref);
  chain = stor_chain_read (o3, &error);
  g_assert_cmpuint (chain->len, ==, 1);
  g_assert_true (qemu_io (o3, "read -P 0x22 0 512k"));

  /* A base has nothing to commit into. */
  g_assert_false (stor_image_commit (f->base, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
}

static void
test_parse_hostile (void)
{
  const char *bad[] = {
    "",
    "{}",
    "[]",
    "[1]",
    "[{\"format\": \"qcow2\"}]",
    "[{\"filename\": \"/a\", \"format\": \"qcow2\"}, {\"filename\": \"/b\", "
    "\"format\": \"qcow2\"}]",
  };
  g_autoptr (GString) many = g_string_new ("[");
  g_autoptr (GPtrArray) chain = NULL;
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_assert_null (stor_chain_parse (bad[i], &error));
      g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
      g_clear_error (&error);
    }
  for (guint i = 0; i <= STOR_CHAIN_MAX; i++)
    g_string_append_printf (many,
                            "%s{\"filename\": \"/%u\", \"format\": \"qcow2\", "
                            "\"backing-filename\": \"/%u\"}",
                            i ? "," : "", i, i + 1);
  g_string_append (many, "]");
  g_assert_null (stor_chain_parse (many->str, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);

  chain = stor_chain_parse ("[{\"filename\": \"/a\", \"format\": \"raw\", "
                            "\"virtual-size\": 4096, \"actual-size\": -1}]",
                            &error);
  g_assert_no_error (error);
  g_assert_cmpuint (chain->len, ==, 1);
  g_assert_cmpuint (((StorImage *)chain->pdata[0])->actual_size, ==, 0);
}

static void
test_space (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (stor_space_check (f->dir, 0, "nothing", &error));
  g_assert_no_error (error);
  g_assert_false (
      stor_space_check (f->dir, G_MAXUINT64 / 2, "everything", &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NO_SPACE);
  g_assert_nonnull (strstr (error->message, "everything"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn)                                                          \
  g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/stor-chain/paths", test_paths);
  ADD ("/stor-chain/read", test_chain_read);
  ADD ("/stor-chain/overlay-refusals", test_overlay_refusals);
  ADD ("/stor-chain/commit-rebase", test_commit_rebase);
  ADD ("/stor-chain/space", test_space);
  g_test_add_func ("/stor-chain/parse-hostile", test_parse_hostile);
  return g_test_run ();
}
