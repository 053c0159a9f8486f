/* stor-copy: full and linked copies of real qcow2 chains made by qemu-img
 * and qemu-io in a temporary directory. */
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#include "stor.h"
#include "test-support.h"

#define MIB (1024 * 1024)

typedef struct
{
  char *dir;
  char *base; /* 64 MiB, 8 MiB of 0x11 at 0 */
  char *top;  /* overlay on base: 4 MiB of 0x22 at 32 MiB */
} Fixture;

static char *
run_ok (const char *const *argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  char *out = NULL;
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", argv[0], err);
  return out;
}

static gboolean
images_equal (const char *a, const char *b)
{
  const char *argv[] = { "qemu-img", "compare", "-q", a, b, NULL };
  int status;

  g_assert_true (g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, NULL, NULL, &status, NULL));
  return g_spawn_check_wait_status (status, NULL);
}

static void
qemu_io (const char *path, const char *cmd)
{
  const char *argv[] = { "qemu-io", "-f", "qcow2", "-c", cmd, path, NULL };

  g_free (run_ok (argv));
}

static char *
info (const char *path)
{
  const char *argv[]
      = { "qemu-img", "info", "-U", "--output=json", path, NULL };

  return run_ok (argv);
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  f->dir = test_tmp_dir_new ("drover-copy-XXXXXX");
  f->base = g_build_filename (f->dir, "base.qcow2", NULL);
  f->top = g_build_filename (f->dir, "top.qcow2", NULL);
  {
    const char *mk[]
        = { "qemu-img", "create", "-q", "-f", "qcow2", f->base, "64M", NULL };
    const char *ov[] = { "qemu-img", "create", "-q",    "-f",   "qcow2", "-F",
                         "qcow2",    "-b",     f->base, f->top, NULL };

    g_free (run_ok (mk));
    qemu_io (f->base, "write -P 0x11 0 8M");
    g_free (run_ok (ov));
    qemu_io (f->top, "write -P 0x22 32M 4M");
  }
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
  g_free (f->base);
  g_free (f->top);
}

typedef struct
{
  guint calls;
  guint64 last, total;
  gboolean backwards;
  GCancellable *cancel_at_first; /* cancelled on the first call */
} Progress;

static void
on_progress (guint64 processed, guint64 total, gpointer user_data)
{
  Progress *p = user_data;

  if (processed < p->last)
    p->backwards = TRUE;
  p->calls++;
  p->last = processed;
  p->total = total;
  if (p->cancel_at_first)
    g_cancellable_cancel (p->cancel_at_first);
}

static void
assert_no_part (const char *dst)
{
  g_autofree char *tmp = stor_copy_temp_path (dst);

  g_assert_false (g_file_test (tmp, G_FILE_TEST_EXISTS));
}

static void
test_full (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dst = g_build_filename (f->dir, "copy.qcow2", NULL);
  g_autofree char *tmp = stor_copy_temp_path (dst);
  g_autofree char *js = NULL;
  Progress p = { 0 };
  guint64 required = 0;
  struct stat st;

  g_assert_true (stor_copy_measure (f->top, &required, &error));
  g_assert_no_error (error);
  /* 12 MiB of data plus metadata. */
  g_assert_cmpuint (required, >=, 12 * MIB);
  g_assert_cmpuint (required, <, 16 * MIB);

  /* What a copy killed earlier left is replaced, not kept. */
  g_assert_true (g_file_set_contents (tmp, "junk", -1, NULL));
  g_assert_true (stor_copy_full (f->top, dst, NULL, on_progress, &p, &error));
  g_assert_no_error (error);
  assert_no_part (dst);
  g_assert_true (images_equal (f->top, dst));

  /* Independent: no backing file; sparse: about the data, not 64 MiB. */
  js = info (dst);
  g_assert_null (strstr (js, "backing-filename"));
  g_assert_nonnull (strstr (js, "\"virtual-size\": 67108864"));
  g_assert_cmpint (g_stat (dst, &st), ==, 0);
  g_assert_cmpuint ((guint64)st.st_blocks * 512, <, 20 * MIB);

  /* Progress: forward only, ending at the total. */
  g_assert_cmpuint (p.calls, >=, 2);
  g_assert_false (p.backwards);
  g_assert_cmpuint (p.total, ==, required);
  g_assert_cmpuint (p.last, ==, required);

  /* The source chain is untouched and the copy goes its own way. */
  qemu_io (dst, "write -P 0x33 0 1M");
  g_assert_false (images_equal (f->top, dst));
  g_free (js);
  js = info (f->top);
  g_assert_nonnull (strstr (js, "base.qcow2"));
}

static void
test_full_refusals (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dst = g_build_filename (f->dir, "copy.qcow2", NULL);
  g_autofree char *missing = g_build_filename (f->dir, "none.qcow2", NULL);
  g_autofree char *nodir
      = g_build_filename (f->dir, "nodir", "copy.qcow2", NULL);
  g_autofree char *raw = g_build_filename (f->dir, "raw.img", NULL);
  g_autofree char *content = NULL;

  /* An existing target is never overwritten. */
  g_assert_true (g_file_set_contents (dst, "mine", -1, NULL));
  g_assert_false (stor_copy_full (f->top, dst, NULL, NULL, NULL, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_true (g_file_get_contents (dst, &content, NULL, NULL));
  g_assert_cmpstr (content, ==, "mine");
  assert_no_part (dst);
  g_unlink (dst);

  g_assert_false (stor_copy_full (missing, dst, NULL, NULL, NULL, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));

  /* Not qcow2: qemu-img refuses, nothing is left. */
  g_assert_true (g_file_set_contents (raw, "not an image", -1, NULL));
  g_assert_false (stor_copy_full (raw, dst, NULL, NULL, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
  assert_no_part (dst);

  /* qemu-img convert itself fails: the target directory is missing. */
  g_assert_false (stor_copy_full (f->top, nodir, NULL, NULL, NULL, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (g_file_test (nodir, G_FILE_TEST_EXISTS));
}

static void
test_full_cancel (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GCancellable) cancel = g_cancellable_new ();
  g_autofree char *dst = g_build_filename (f->dir, "copy.qcow2", NULL);
  Progress p = { 0 };

  p.cancel_at_first = cancel;
  g_assert_false (
      stor_copy_full (f->top, dst, cancel, on_progress, &p, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_assert_cmpuint (p.calls, >=, 1);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
  assert_no_part (dst);
}

static void
test_linked (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dst = g_build_filename (f->dir, "linked.qcow2", NULL);
  g_autofree char *js = NULL;
  g_autofree char *rel = g_path_get_basename (f->top);
  struct stat st;

  g_assert_true (stor_copy_linked (f->top, dst, 64 * MIB, &error));
  g_assert_no_error (error);
  assert_no_part (dst);
  g_assert_true (images_equal (f->top, dst));
  js = info (dst);
  g_assert_nonnull (strstr (js, f->top));
  /* A few hundred KiB of metadata, whatever the base holds. */
  g_assert_cmpint (g_stat (dst, &st), ==, 0);
  g_assert_cmpuint ((guint64)st.st_blocks * 512, <, 1 * MIB);

  /* Writes go to the overlay only. */
  qemu_io (dst, "write -P 0x44 0 1M");
  g_assert_false (images_equal (f->top, dst));

  g_assert_false (stor_copy_linked (f->top, dst, 64 * MIB, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_EXISTS);
  g_clear_error (&error);

  /* A relative base would be resolved against the overlay's directory
   * by QEMU: refused. */
  g_unlink (dst);
  g_assert_false (stor_copy_linked (rel, dst, 64 * MIB, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_false (stor_copy_linked (f->top, dst, 0, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_FAILED);
  g_clear_error (&error);
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
  assert_no_part (dst);
}

static void
test_linked_no_space (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dst = g_build_filename (f->dir, "linked.qcow2", NULL);
  guint64 total = 0;

  g_assert_true (stor_fs_space (f->dir, &total, NULL, &error));
  /* The metadata of a disk a million times the filesystem cannot fit. */
  g_assert_false (stor_copy_linked (f->top, dst, total * 1000000, &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_NO_SPACE);
  g_assert_nonnull (strstr (error->message, "not enough space"));
  g_assert_false (g_file_test (dst, G_FILE_TEST_EXISTS));
  assert_no_part (dst);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/stor/copy/full", test_full);
  ADD ("/stor/copy/full-refusals", test_full_refusals);
  ADD ("/stor/copy/full-cancel", test_full_cancel);
  ADD ("/stor/copy/linked", test_linked);
  ADD ("/stor/copy/linked-no-space", test_linked_no_space);
  return g_test_run ();
}
