/* stor-disk: real qcow2 images in a temporary directory. */
#include <glib.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>

#include "stor.h"
#include "test-support.h"

typedef struct
{
  char *dir;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autofree char *disks = NULL;

  f->dir = test_tmp_dir_new ("drover-stor-XXXXXX");
  disks = g_build_filename (f->dir, "disks", NULL);
  g_assert_cmpint (g_mkdir (disks, 0755), ==, 0);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
}

/* Reads "key": value out of qemu-img's JSON without a JSON library. */
static char *
info_field (const char *json, const char *key)
{
  g_autofree char *pat = g_strdup_printf ("\"%s\":\\s*\"?([^\",\\n]+)", key);
  g_autoptr (GRegex) re = g_regex_new (pat, 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;

  if (!g_regex_match (re, json, 0, &m))
    return NULL;
  return g_match_info_fetch (m, 1);
}

static char *
qemu_img_info (const char *path)
{
  const char *argv[] = { "qemu-img", "info", "--output=json", path, NULL };
  g_autoptr (GError) error = NULL;
  char *out = NULL;
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return out;
}

static void
test_create (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = stor_disk_path (f->dir, "vm-1", &error);
  g_autofree char *expect
      = g_build_filename (f->dir, "disks", "vm-1.qcow2", NULL);
  g_autofree char *info = NULL;
  g_autofree char *format = NULL;
  g_autofree char *vsize = NULL;

  g_assert_no_error (error);
  g_assert_cmpstr (path, ==, expect);

  g_assert_true (stor_disk_create (path, 256 * 1024 * 1024, &error));
  g_assert_no_error (error);
  info = qemu_img_info (path);
  format = info_field (info, "format");
  vsize = info_field (info, "virtual-size");
  g_assert_cmpstr (format, ==, "qcow2");
  g_assert_cmpstr (vsize, ==, "268435456");

  /* A second create must not clobber the first image. */
  g_assert_false (stor_disk_create (path, 1024 * 1024, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);
  g_free (info);
  g_free (vsize);
  info = qemu_img_info (path);
  vsize = info_field (info, "virtual-size");
  g_assert_cmpstr (vsize, ==, "268435456");

  g_assert_true (stor_disk_remove (path, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  /* Removing what is gone is fine. */
  g_assert_true (stor_disk_remove (path, &error));
  g_assert_no_error (error);
}

static void
test_bad_names (Fixture *f, gconstpointer data)
{
  const char *bad[] = {
    "",    "a/b",
    "..",  "../etc",
    "Bad", "x.qcow2",
    "a b", "0123456789012345678901234567890123456789012345678901234567890123"
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *path = stor_disk_path (f->dir, bad[i], &error);

      g_assert_null (path);
      g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
    }
}

static void
test_no_space (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path
      = g_build_filename (f->dir, "disks", "huge.qcow2", NULL);
  guint64 total = 0, avail = 0;

  g_assert_true (stor_fs_space (f->dir, &total, &avail, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (total, >, 0);
  g_assert_cmpuint (avail, <=, total);

  /* Metadata for a disk a million times the filesystem cannot fit. */
  g_assert_false (stor_disk_create (path, total * 1000000, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NO_SPACE);
  g_assert_nonnull (strstr (error->message, "not enough space in"));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

static void
test_failure_leaves_nothing (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path
      = g_build_filename (f->dir, "disks", "zero.qcow2", NULL);
  g_autofree char *missing
      = g_build_filename (f->dir, "nodir", "x.qcow2", NULL);

  g_assert_false (stor_disk_create (path, 0, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  /* qemu-img itself fails: the directory does not exist. */
  g_assert_false (stor_disk_create (missing, 1024 * 1024, &error));
  g_assert_nonnull (error);
  g_assert_false (g_file_test (missing, G_FILE_TEST_EXISTS));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/stor/disk/create", test_create);
  ADD ("/stor/disk/bad-names", test_bad_names);
  ADD ("/stor/disk/no-space", test_no_space);
  ADD ("/stor/disk/failure-leaves-nothing", test_failure_leaves_nothing);
  return g_test_run ();
}
