/* stor-prune: the keep set for tables of backup dates (UTC), with
 * Proxmox Backup Server's semantics, and the deleting wrapper. */
#include <glib.h>
#include <stdio.h>
#include <string.h>

#include "stor-repo-private.h"
#include "test-support.h"

#define MAX_BACKUPS 10

typedef struct
{
  const char *name;
  StorRepoKeep keep;
  /* "YYYY-mm-dd HH:MM" and the expected reason ("-": removed), in any
   * order, ended by NULL. */
  const char *backups[MAX_BACKUPS][2];
} PruneCase;

static const PruneCase cases[] = {
  { "keep-last",
    { .last = 3 },
    { { "2026-01-01 10:00", "-" },
      { "2026-01-05 10:00", "keep-last" },
      { "2026-01-02 10:00", "-" },
      { "2026-01-04 10:00", "keep-last" },
      { "2026-01-03 10:00", "keep-last" } } },
  { "daily: newest of each day",
    { .daily = 3 },
    { { "2026-01-13 01:00", "keep-daily" },
      { "2026-01-12 23:00", "keep-daily" },
      { "2026-01-12 10:00", "-" },
      { "2026-01-11 09:00", "keep-daily" },
      { "2026-01-10 20:00", "-" },
      { "2026-01-10 08:00", "-" } } },
  { "last then daily: the day keep-last covered is not counted",
    { .last = 1, .daily = 2 },
    { { "2026-01-13 01:00", "keep-last" },
      { "2026-01-12 23:00", "keep-daily" },
      { "2026-01-12 10:00", "-" },
      { "2026-01-11 09:00", "keep-daily" },
      { "2026-01-10 20:00", "-" },
      { "2026-01-10 08:00", "-" } } },
  { "hourly",
    { .hourly = 2 },
    { { "2026-03-01 10:05", "-" },
      { "2026-03-01 10:55", "-" },
      { "2026-03-01 11:00", "keep-hourly" },
      { "2026-03-01 12:30", "keep-hourly" } } },
  { "ISO weeks across 2026/2027: 12-28 to 01-03 are one week (2026-W53)",
    { .weekly = 2 },
    { { "2026-12-27 12:00", "-" },
      { "2026-12-28 12:00", "-" },
      { "2026-12-31 12:00", "-" },
      { "2027-01-01 12:00", "-" },
      { "2027-01-03 12:00", "keep-weekly" },
      { "2027-01-04 12:00", "keep-weekly" } } },
  { "ISO weeks: a third week reaches 2026-W52",
    { .weekly = 3 },
    { { "2026-12-27 12:00", "keep-weekly" },
      { "2026-12-28 12:00", "-" },
      { "2026-12-31 12:00", "-" },
      { "2027-01-01 12:00", "-" },
      { "2027-01-03 12:00", "keep-weekly" },
      { "2027-01-04 12:00", "keep-weekly" } } },
  { "ISO weeks: 2021-01-03 is in 2020-W53",
    { .weekly = 5 },
    { { "2020-12-28 08:00", "-" },
      { "2021-01-03 08:00", "keep-weekly" },
      { "2021-01-04 08:00", "keep-weekly" } } },
  { "yearly uses the calendar year: 2021-01-03 is in 2021",
    { .yearly = 2 },
    { { "2020-12-31 08:00", "keep-yearly" },
      { "2021-01-03 08:00", "-" },
      { "2021-06-01 08:00", "keep-yearly" } } },
  { "daily then weekly: weekly only looks at older weeks",
    { .daily = 1, .weekly = 2 },
    { { "2026-12-09 10:00", "keep-daily" },
      { "2026-12-08 10:00", "-" },
      { "2026-12-07 10:00", "-" },
      { "2026-12-06 10:00", "keep-weekly" },
      { "2026-12-02 10:00", "-" },
      { "2026-11-30 10:00", "-" } } },
  { "monthly then yearly",
    { .monthly = 2, .yearly = 3 },
    { { "2024-03-01 00:00", "keep-yearly" },
      { "2025-05-01 00:00", "-" },
      { "2025-11-01 00:00", "keep-monthly" },
      { "2026-01-15 00:00", "-" },
      { "2026-01-20 00:00", "keep-monthly" } } },
  { "every rule",
    { .last = 1,
      .hourly = 1,
      .daily = 1,
      .weekly = 1,
      .monthly = 1,
      .yearly = 1 },
    { { "2026-06-10 12:30", "keep-last" },
      { "2026-06-10 12:10", "-" },
      { "2026-06-10 11:00", "keep-hourly" },
      { "2026-06-09 11:00", "keep-daily" },
      { "2026-06-01 11:00", "keep-weekly" },
      { "2026-05-20 11:00", "keep-monthly" },
      { "2025-05-20 11:00", "keep-yearly" },
      { "2024-05-20 11:00", "-" } } },
  { "no rule keeps everything",
    { 0 },
    { { "2026-01-01 00:00", "keep-all" },
      { "2020-01-01 00:00", "keep-all" } } },
};

static gint64
utc (const char *s)
{
  int y, mo, d, h, mi;
  g_autoptr (GDateTime) dt = NULL;

  g_assert_cmpint (sscanf (s, "%d-%d-%d %d:%d", &y, &mo, &d, &h, &mi), ==, 5);
  dt = g_date_time_new_utc (y, mo, d, h, mi, 0);
  g_assert_nonnull (dt);
  return g_date_time_to_unix (dt);
}

static void
test_table (void)
{
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      const PruneCase *pc = &cases[c];
      gint64 times[MAX_BACKUPS];
      g_autofree const char **plan = NULL;
      guint n = 0;

      while (n < MAX_BACKUPS && pc->backups[n][0])
        {
          times[n] = utc (pc->backups[n][0]);
          n++;
        }
      plan = stor_repo_prune_plan (times, n, &pc->keep);
      for (guint i = 0; i < n; i++)
        {
          const char *want = pc->backups[i][1];
          const char *got = plan[i] ? plan[i] : "-";

          if (strcmp (want, got) != 0)
            g_error ("prune case '%s': backup %s: expected %s, got %s",
                     pc->name, pc->backups[i][0], want, got);
        }
    }
}

/* The wrapper: dry run deletes nothing and says why; a real run deletes
 * the others. */
static void
test_prune_repo (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tmp = test_tmp_dir_new ("stor-prune-XXXXXX");
  g_autofree char *dir = g_build_filename (tmp, "repo", NULL);
  g_autoptr (StorRepo) repo = NULL;
  g_autoptr (GPtrArray) items = NULL;
  g_autoptr (GPtrArray) list = NULL;
  const char *days[] = { "2026-01-01 10:00", "2026-01-02 10:00",
                         "2026-01-02 11:00", "2026-01-03 10:00" };
  StorRepoKeep keep = { .daily = 2 };
  guint kept = 0;

  g_assert_true (stor_repo_init (dir, &error));
  repo = stor_repo_open (dir, &error);
  g_assert_no_error (error);
  for (guint i = 0; i < G_N_ELEMENTS (days); i++)
    {
      /* Manifests with chosen times, written as commit would. */
      g_autoptr (StorRepoManifest) m = g_new0 (StorRepoManifest, 1);
      g_autofree char *json = NULL;
      g_autofree char *file = NULL;
      g_autofree char *path = NULL;
      StorRepoDisk *d = stor_repo_disk_new ("vda", 1);

      m->start_time = m->end_time = utc (days[i]);
      m->id = stor_repo_id_new ("web", m->start_time);
      m->vm = g_strdup ("web");
      m->vm_uuid = g_strdup ("6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f");
      m->domain_xml = g_strdup ("<domain/>");
      m->disks = stor_repo_disks_new ();
      g_ptr_array_add (m->disks, d);
      json = stor_repo_manifest_to_json (m, NULL);
      file = g_strconcat (m->id, ".json", NULL);
      path = stor_repo_sub (repo, "backups", file, NULL);
      g_assert_true (g_file_set_contents (path, json, -1, NULL));
    }
  items = stor_repo_prune (repo, "web", &keep, TRUE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (items->len, ==, 4);
  /* Newest first, with reasons. */
  g_assert_cmpstr (((StorRepoPruneItem *)items->pdata[0])->reason, ==,
                   "keep-daily");
  g_assert_cmpstr (((StorRepoPruneItem *)items->pdata[1])->reason, ==,
                   "keep-daily");
  g_assert_null (((StorRepoPruneItem *)items->pdata[2])->reason);
  g_assert_null (((StorRepoPruneItem *)items->pdata[3])->reason);
  list = stor_repo_list (repo, "web", NULL, &error);
  g_assert_cmpuint (list->len, ==, 4);
  g_clear_pointer (&list, g_ptr_array_unref);
  g_clear_pointer (&items, g_ptr_array_unref);

  items = stor_repo_prune (repo, "web", &keep, FALSE, &error);
  g_assert_no_error (error);
  list = stor_repo_list (repo, "web", NULL, &error);
  g_assert_cmpuint (list->len, ==, 2);
  for (guint i = 0; i < items->len; i++)
    {
      StorRepoPruneItem *item = items->pdata[i];

      if (item->reason)
        {
          g_assert_cmpstr (item->id, ==,
                           ((StorRepoManifest *)list->pdata[kept])->id);
          kept++;
        }
    }
  g_assert_cmpuint (kept, ==, 2);
  test_tmp_dir_remove (tmp);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/stor-prune/table", test_table);
  g_test_add_func ("/stor-prune/repo", test_prune_repo);
  return g_test_run ();
}
