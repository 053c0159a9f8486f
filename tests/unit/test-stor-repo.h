/* Helpers shared by the backup repository's unit tests
 * (test-stor-repo.c, test-stor-repo-concurrency.c): a repository in a
 * temporary directory, test data, and a one-disk backup of VM "web". */
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stor-repo-private.h"
#include "test-support.h"

#define CHUNK STOR_REPO_CHUNK_SIZE
#define UUID "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
#define XML "<domain type='kvm'><name>web</name></domain>"

typedef struct
{
  char *dir;
  StorRepo *repo;
} Fixture;

G_GNUC_UNUSED static void
setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tmp = test_tmp_dir_new ("stor-repo-XXXXXX");

  f->dir = g_build_filename (tmp, "repo", NULL);
  g_assert_true (stor_repo_init (f->dir, &error));
  g_assert_no_error (error);
  f->repo = stor_repo_open (f->dir, &error);
  g_assert_no_error (error);
  g_free (f->dir);
  f->dir = g_steal_pointer (&tmp);
}

G_GNUC_UNUSED static void
teardown (Fixture *f, gconstpointer data)
{
  stor_repo_fail_writes (0);
  stor_repo_free (f->repo);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
}

/* LEN bytes of data that does not compress (SEED makes it distinct). */
G_GNUC_UNUSED static guint8 *
random_data (gsize len, guint32 seed)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  guint8 *buf = g_malloc (len);

  for (gsize i = 0; i < len; i += 4)
    {
      guint32 v = g_rand_int (rand);
      memcpy (buf + i, &v, MIN (4, len - i));
    }
  return buf;
}

/* LEN bytes of text-like data that compresses well. */
G_GNUC_UNUSED static guint8 *
text_data (gsize len, guint32 seed)
{
  guint8 *buf = g_malloc (len);

  for (gsize i = 0; i < len; i++)
    buf[i] = "drover backup chunk "[(i + seed) % 20];
  return buf;
}

G_GNUC_UNUSED static guint
count_files (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;
  const char *name;

  while (d && (name = g_dir_read_name (d)))
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      if (g_file_test (path, G_FILE_TEST_IS_DIR))
        n += count_files (path);
      else
        n++;
    }
  return n;
}

G_GNUC_UNUSED static guint
count_sub (Fixture *f, const char *sub)
{
  g_autofree char *path = stor_repo_sub (f->repo, sub, NULL);

  return count_files (path);
}

/* Files in backups/, writers/, chunks/ and tmp/ (-1: not checked). */
G_GNUC_UNUSED static void
assert_counts (Fixture *f, int backups, int writers, int chunks, int tmp)
{
  const char *subs[] = { "backups", "writers", "chunks", "tmp" };
  int want[] = { backups, writers, chunks, tmp };

  for (guint i = 0; i < G_N_ELEMENTS (subs); i++)
    if (want[i] >= 0 && count_sub (f, subs[i]) != (guint)want[i])
      g_error ("%s/ holds %u files, expected %d", subs[i],
               count_sub (f, subs[i]), want[i]);
}

/* Overwrites LEN bytes at OFFSET of chunk DIGEST's file. */
G_GNUC_UNUSED static void
patch_chunk (Fixture *f, const StorRepoDigest *digest, off_t offset,
             const void *bytes, gsize len)
{
  g_autofree char *path = stor_repo_chunk_path (f->repo, digest);
  int fd = open (path, O_WRONLY);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (pwrite (fd, bytes, len, offset), ==, (ssize_t)len);
  close (fd);
}

/* Begins a backup of "web" with one disk "vda" of SIZE. */
G_GNUC_UNUSED static StorRepoWriter *
begin (Fixture *f, const char *parent, guint64 size)
{
  g_autoptr (GError) error = NULL;
  StorRepoWriter *w
      = stor_repo_writer_begin (f->repo, "web", UUID, XML, parent, &error);
  guint index = 99;

  g_assert_no_error (error);
  g_assert_true (stor_repo_writer_add_disk (w, "vda", size, &index, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (index, ==, 0);
  return w;
}

G_GNUC_UNUSED static char *
commit (StorRepoWriter *w)
{
  g_autoptr (GError) error = NULL;
  char *id = g_strdup (stor_repo_writer_id (w));

  g_assert_true (
      stor_repo_writer_commit (w, "ck-1", STOR_REPO_CONSISTENCY_CRASH, &error));
  g_assert_no_error (error);
  return id;
}

G_GNUC_UNUSED static void
put (StorRepoWriter *w, guint64 index, const guint8 *data, gsize len)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (stor_repo_writer_put (w, 0, index, data, len, &error));
  g_assert_no_error (error);
}

/* Reads chunk INDEX of backup ID's disk vda: NULL for a hole. */
G_GNUC_UNUSED static GBytes *
read_back (Fixture *f, const char *id, guint64 index)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (StorRepoManifest) m
      = stor_repo_manifest_load (f->repo, id, &error);
  GBytes *data = NULL;

  g_assert_no_error (error);
  g_assert_true (stor_repo_disk_read (
      f->repo, stor_repo_manifest_disk (m, "vda"), index, &data, &error));
  g_assert_no_error (error);
  return data;
}

G_GNUC_UNUSED static void
assert_chunk (Fixture *f, const char *id, guint64 index, const guint8 *expect,
              gsize len)
{
  g_autoptr (GBytes) data = read_back (f, id, index);

  if (!expect)
    {
      g_assert_null (data);
      return;
    }
  g_assert_nonnull (data);
  g_assert_cmpmem (g_bytes_get_data (data, NULL), g_bytes_get_size (data),
                   expect, len);
}

/* Sets the mtime of chunk DIGEST AGE seconds back. */
G_GNUC_UNUSED static void
age_chunk (Fixture *f, const StorRepoDigest *digest, gint64 age)
{
  g_autofree char *path = stor_repo_chunk_path (f->repo, digest);
  struct timespec ts[2];

  clock_gettime (CLOCK_REALTIME, &ts[0]);
  ts[0].tv_sec -= age;
  ts[1] = ts[0];
  g_assert_cmpint (utimensat (AT_FDCWD, path, ts, 0), ==, 0);
}

G_GNUC_UNUSED static gboolean
chunk_exists (Fixture *f, const StorRepoDigest *digest)
{
  g_autofree char *path = stor_repo_chunk_path (f->repo, digest);

  return g_file_test (path, G_FILE_TEST_EXISTS);
}
