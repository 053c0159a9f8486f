/* stor-manifest: backup ids and manifests read as hostile input. */
#include <glib.h>
#include <string.h>

#include "stor-repo-private.h"
#include "test-support.h"

/* A digest: 64 lower-case hex digits. */
#define DIG "ab00000000000000000000000000000000000000000000000000000000000000"

static void
test_ids (void)
{
  const char *good[] = {
    "web-20261204T170554Z-a1b2c3", "a-20270101T000000Z-000000",
    "vm-2-db-20240229T235959Z-ffffff", /* a leap day */
  };
  const char *bad[] = {
    "",
    "web",
    "web-20261204T170554Z-a1b2c",   /* short random part */
    "web-20261204T170554Z-A1B2C3",  /* upper case */
    "web-20261304T170554Z-a1b2c3",  /* month 13 */
    "web-20230229T000000Z-a1b2c3",  /* not a leap year */
    "Web-20261204T170554Z-a1b2c3",  /* not a VM name */
    "../x-20261204T170554Z-a1b2c3", /* a path */
    "a/b-20261204T170554Z-a1b2c3",  /* a path */
    "-20261204T170554Z-a1b2c3",     /* no VM */
    "web-20261204T170554Z-a1b2c3/..",
    "web-2026120 T170554Z-a1b2c3",
  };
  g_autofree char *made = stor_repo_id_new ("web", 1796403954);

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    g_assert_true (stor_repo_id_validate (good[i], NULL));
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      if (stor_repo_id_validate (bad[i], &error))
        g_error ("id '%s' accepted", bad[i]);
      g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
    }
  g_assert_true (stor_repo_id_validate (made, NULL));
  g_assert_true (g_str_has_prefix (made, "web-20261204T170554Z-"));
}

/* A valid manifest's JSON with FIELD's value replaced by VALUE (NULL:
 * unchanged). */
static char *
manifest_with (const char *field, const char *value)
{
  const char *fields[][2] = {
    { "format", "\"drover-backup-manifest\"" },
    { "version", "1" },
    { "id", "\"web-20261204T170554Z-a1b2c3\"" },
    { "vm", "\"web\"" },
    { "vm_uuid", "\"6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f\"" },
    { "kind", "\"full\"" },
    { "parent", "null" },
    { "checkpoint", "\"ck\"" },
    { "consistency", "\"crash\"" },
    { "start_time", "\"2026-12-04T17:05:54Z\"" },
    { "end_time", "\"2026-12-04T17:06:00Z\"" },
    { "bytes_read", "4194304" },
    { "bytes_new", "4194304" },
    { "bytes_stored", "100" },
    { "domain_xml", "\"<domain/>\"" },
    { "disks", "[{\"target\": \"vda\", \"size\": 4194305, \"chunks\": "
               "[\"" DIG "\", null]}]" },
  };
  GString *s = g_string_new ("{");

  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      gboolean mine = field && strcmp (fields[i][0], field) == 0;

      if (mine && !value)
        continue; /* dropped */
      g_string_append_printf (s, "%s\"%s\": %s", s->len > 1 ? ", " : "",
                              fields[i][0], mine ? value : fields[i][1]);
    }
  g_string_append (s, "}");
  return g_string_free (s, FALSE);
}

static void
test_parse_good (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *json = manifest_with (NULL, NULL);
  g_autoptr (StorRepoManifest) m
      = stor_repo_manifest_parse (json, strlen (json), "test", &error);
  g_autoptr (StorRepoManifest) again = NULL;
  g_autofree char *out = NULL;
  const StorRepoDisk *d;
  gsize len = 0;

  g_assert_no_error (error);
  g_assert_cmpstr (m->vm, ==, "web");
  g_assert_cmpint (m->kind, ==, STOR_REPO_KIND_FULL);
  d = stor_repo_manifest_disk (m, "vda");
  g_assert_nonnull (d);
  g_assert_cmpuint (d->chunks->len, ==, 2);
  g_assert_cmpuint (stor_repo_chunk_length (d, 0), ==, STOR_REPO_CHUNK_SIZE);
  g_assert_cmpuint (stor_repo_chunk_length (d, 1), ==, 1);
  g_assert_false (g_array_index (d->chunks, StorRepoChunkRef, 0).hole);
  g_assert_true (g_array_index (d->chunks, StorRepoChunkRef, 1).hole);
  /* What we write reads back the same. */
  out = stor_repo_manifest_to_json (m, &len);
  again = stor_repo_manifest_parse (out, len, "round trip", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (again->id, ==, m->id);
  g_assert_cmpint (again->start_time, ==, m->start_time);
  g_assert_cmpstr (again->checkpoint, ==, "ck");
}

static void
test_parse_hostile (void)
{
  GString *many = g_string_new ("[");
  GString *long_list = g_string_new ("[{\"target\": \"vda\", \"size\": 10, "
                                     "\"chunks\": [null");
  const char *cases[][2] = {
    { "format", "\"tar\"" },
    { "version", "2" },
    { "id", "\"../../etc/passwd\"" },
    { "id", "\"web-20261204T170554Z-a1b2c3/\"" },
    { "id", "\"db-20261204T170554Z-a1b2c3\"" }, /* not the VM's */
    { "vm", "\"db\"" },
    { "vm", NULL },
    { "vm_uuid", "\"not-a-uuid\"" },
    { "kind", "\"differential\"" },
    { "kind", "\"incremental\"" },                   /* with no parent */
    { "parent", "\"web-20261204T160000Z-000000\"" }, /* a full with one */
    { "parent", "\"../x\"" },
    { "checkpoint", "\"../ck\"" },
    { "checkpoint", "42" },
    { "consistency", "\"maybe\"" },
    { "start_time", "\"yesterday\"" },
    { "start_time", "\"2026-02-30T00:00:00Z\"" },
    { "end_time", "\"2026-12-04T17:00:00Z\"" }, /* before start */
    { "bytes_read", "-1" },
    { "bytes_new", "\"lots\"" },
    { "domain_xml", "7" },
    { "disks", "[]" },
    { "disks", "{}" },
    { "disks", "[{\"target\": \"../vda\", \"size\": 1, \"chunks\": [null]}]" },
    { "disks", "[{\"target\": \"vda\", \"size\": 0, \"chunks\": []}]" },
    { "disks", "[{\"target\": \"vda\", \"size\": -5, \"chunks\": [null]}]" },
    { "disks", "[{\"target\": \"vda\", \"size\": 9223372036854775807, "
               "\"chunks\": [null]}]" },
    { "disks", "[{\"target\": \"vda\", \"size\": 10, \"chunks\": [\"zz\"]}]" },
    { "disks", "[{\"target\": \"vda\", \"size\": 10, \"chunks\": [null]}, "
               "{\"target\": \"vda\", \"size\": 10, \"chunks\": [null]}]" },
    { "disks", NULL },
    { "disks", NULL }, /* 65 disks, filled in below */
    { "disks", NULL }, /* a chunk list longer than the size allows */
  };
  guint n = G_N_ELEMENTS (cases);

  for (guint i = 0; i < STOR_REPO_MAX_DISKS + 1; i++)
    g_string_append_printf (many,
                            "%s{\"target\": \"vd%u\", \"size\": 1, "
                            "\"chunks\": [null]}",
                            i ? ", " : "", i);
  g_string_append (many, "]");
  for (guint i = 0; i < 10000; i++)
    g_string_append (long_list, ", null");
  g_string_append (long_list, "]}]");
  cases[n - 2][1] = many->str;
  cases[n - 1][1] = long_list->str;

  for (guint i = 0; i < n; i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *json = manifest_with (cases[i][0], cases[i][1]);
      g_autoptr (StorRepoManifest) m = stor_repo_manifest_parse (
          json, strlen (json), "hostile.json", &error);

      if (m)
        g_error ("manifest with %s = %s accepted", cases[i][0],
                 cases[i][1] ? cases[i][1] : "(none)");
      g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
      g_assert_nonnull (strstr (error->message, "hostile.json"));
    }
  /* Not JSON, and over the size cap. */
  {
    g_autoptr (GError) error = NULL;

    g_assert_null (stor_repo_manifest_parse ("{\"id\": ", 7, "cut", &error));
    g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
    g_clear_error (&error);
    g_assert_null (stor_repo_manifest_parse ("{}", STOR_REPO_MAX_MANIFEST + 1,
                                             "huge", &error));
    g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
  }
  g_string_free (many, TRUE);
  g_string_free (long_list, TRUE);
}

static void
test_load (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tmp = test_tmp_dir_new ("stor-manifest-XXXXXX");
  g_autofree char *dir = g_build_filename (tmp, "repo", NULL);
  g_autofree char *json = manifest_with (NULL, NULL);
  g_autofree char *path = NULL;
  g_autoptr (StorRepo) repo = NULL;
  g_autoptr (StorRepoManifest) m = NULL;
  g_autoptr (GPtrArray) list = NULL;
  g_autoptr (GPtrArray) bad = NULL;

  g_assert_true (stor_repo_init (dir, &error));
  repo = stor_repo_open (dir, &error);
  g_assert_no_error (error);
  /* Ids from outside are checked before any path is made. */
  g_assert_null (
      stor_repo_manifest_load (repo, "../drover-repository", &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME);
  g_clear_error (&error);
  /* A manifest filed under another id is refused. */
  path = stor_repo_sub (repo, "backups", "web-20261204T170554Z-000000.json",
                        NULL);
  g_assert_true (g_file_set_contents (path, json, -1, NULL));
  g_assert_null (
      stor_repo_manifest_load (repo, "web-20261204T170554Z-000000", &error));
  g_assert_error (error, STOR_ERROR, STOR_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, path));
  g_clear_error (&error);
  g_free (path);
  path = stor_repo_sub (repo, "backups", "web-20261204T170554Z-a1b2c3.json",
                        NULL);
  g_assert_true (g_file_set_contents (path, json, -1, NULL));
  m = stor_repo_manifest_load (repo, "web-20261204T170554Z-a1b2c3", &error);
  g_assert_no_error (error);
  /* List shows the good one and names the bad ones. */
  list = stor_repo_list (repo, NULL, &bad, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->len, ==, 1);
  g_assert_cmpuint (bad->len, ==, 1);
  test_tmp_dir_remove (tmp);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/stor-manifest/ids", test_ids);
  g_test_add_func ("/stor-manifest/parse-good", test_parse_good);
  g_test_add_func ("/stor-manifest/parse-hostile", test_parse_hostile);
  g_test_add_func ("/stor-manifest/load", test_load);
  return g_test_run ();
}
