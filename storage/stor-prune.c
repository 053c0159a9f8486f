/* Prune: which backups of a VM to keep, with Proxmox Backup Server's
 * retention semantics (docs/backup-format.md, "Prune"), and the wrapper
 * that deletes the others. */
#include "stor-repo-private.h"

typedef enum
{
  PERIOD_BACKUP, /* keep-last: every backup is its own period */
  PERIOD_HOUR,
  PERIOD_DAY,
  PERIOD_ISO_WEEK,
  PERIOD_MONTH,
  PERIOD_YEAR,
} Period;

/* The period of TIME (UTC) as a number that is equal for two times in
 * the same period; INDEX makes keep-last's periods unique. */
static gint64
period_key (gint64 time, guint index, Period period)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (time);
  gint64 y;

  if (period == PERIOD_BACKUP || !dt)
    return -(gint64)index - 1;
  y = g_date_time_get_year (dt);
  switch (period)
    {
    case PERIOD_HOUR:
      return ((y * 1000 + g_date_time_get_day_of_year (dt)) * 100)
             + g_date_time_get_hour (dt);
    case PERIOD_DAY:
      return y * 1000 + g_date_time_get_day_of_year (dt);
    case PERIOD_ISO_WEEK:
      /* The ISO year, not the calendar one: 2027-01-01 is in week 53
       * of 2026. */
      return g_date_time_get_week_numbering_year (dt) * 100
             + g_date_time_get_week_of_year (dt);
    case PERIOD_MONTH:
      return y * 100 + g_date_time_get_month (dt);
    case PERIOD_YEAR:
    case PERIOD_BACKUP:
      break;
    }
  return y;
}

typedef struct
{
  gint64 time;
  guint index; /* in the caller's array */
} Entry;

static int
entry_newest_first (gconstpointer pa, gconstpointer pb)
{
  const Entry *a = pa, *b = pb;

  if (a->time != b->time)
    return a->time < b->time ? 1 : -1;
  return a->index < b->index ? -1 : a->index > b->index;
}

/* Marks for one rule. MARK[i]: NULL undecided, REMOVED, or a reason. */
static const char removed_mark[] = "remove";

static void
apply_rule (const Entry *entries, guint n, const char **mark, guint keep,
            Period period, const char *reason)
{
  g_autoptr (GHashTable) covered
      = g_hash_table_new (g_int64_hash, g_int64_equal);
  g_autoptr (GHashTable) chosen
      = g_hash_table_new (g_int64_hash, g_int64_equal);
  g_autofree gint64 *keys = g_new (gint64, n);

  if (keep == 0)
    return;
  for (guint i = 0; i < n; i++)
    keys[i] = period_key (entries[i].time, entries[i].index, period);
  /* Periods an earlier rule already keeps a backup in are covered: this
   * rule does not spend its count on them. */
  for (guint i = 0; i < n; i++)
    if (mark[entries[i].index] && mark[entries[i].index] != removed_mark)
      g_hash_table_add (covered, &keys[i]);
  for (guint i = 0; i < n; i++)
    {
      const char **m = &mark[entries[i].index];

      if (*m || g_hash_table_contains (covered, &keys[i]))
        continue;
      if (g_hash_table_contains (chosen, &keys[i]))
        {
          /* An older backup of a period this rule kept the newest of:
           * no later rule may keep it. */
          *m = removed_mark;
          continue;
        }
      if (g_hash_table_size (chosen) >= keep)
        break;
      g_hash_table_add (chosen, &keys[i]);
      *m = reason;
    }
}

const char **
stor_repo_prune_plan (const gint64 *times, guint n, const StorRepoKeep *keep)
{
  const char **mark = g_new0 (const char *, n + 1);
  g_autofree Entry *entries = g_new (Entry, n);
  gboolean any = keep->last || keep->hourly || keep->daily || keep->weekly
                 || keep->monthly || keep->yearly;

  for (guint i = 0; i < n; i++)
    {
      entries[i].time = times[i];
      entries[i].index = i;
      if (!any)
        mark[i] = "keep-all";
    }
  if (!any)
    return mark;
  qsort (entries, n, sizeof *entries, entry_newest_first);
  apply_rule (entries, n, mark, keep->last, PERIOD_BACKUP, "keep-last");
  apply_rule (entries, n, mark, keep->hourly, PERIOD_HOUR, "keep-hourly");
  apply_rule (entries, n, mark, keep->daily, PERIOD_DAY, "keep-daily");
  apply_rule (entries, n, mark, keep->weekly, PERIOD_ISO_WEEK, "keep-weekly");
  apply_rule (entries, n, mark, keep->monthly, PERIOD_MONTH, "keep-monthly");
  apply_rule (entries, n, mark, keep->yearly, PERIOD_YEAR, "keep-yearly");
  for (guint i = 0; i < n; i++)
    if (mark[i] == removed_mark)
      mark[i] = NULL;
  return mark;
}

static void
prune_item_free (StorRepoPruneItem *item)
{
  g_free (item->id);
  g_free (item);
}

GPtrArray *
stor_repo_prune (StorRepo *repo, const char *vm, const StorRepoKeep *keep,
                 gboolean dry_run, GError **error)
{
  g_autoptr (GPtrArray) bad = NULL;
  g_autoptr (GPtrArray) list = NULL;
  g_autoptr (GPtrArray) items = NULL;
  g_autofree gint64 *times = NULL;
  g_autofree const char **plan = NULL;
  g_autoptr (GError) first = NULL;

  /* One VM's backups at a time: periods mean nothing across VMs. */
  if (!stor_name_check ("VM", vm, error))
    return NULL;
  list = stor_repo_list (repo, vm, &bad, error);
  if (!list)
    return NULL;
  times = g_new (gint64, list->len + 1);
  for (guint i = 0; i < list->len; i++)
    times[i] = ((StorRepoManifest *)g_ptr_array_index (list, i))->start_time;
  plan = stor_repo_prune_plan (times, list->len, keep);
  items = g_ptr_array_new_with_free_func ((GDestroyNotify)prune_item_free);
  for (guint i = 0; i < list->len; i++)
    {
      const StorRepoManifest *m = g_ptr_array_index (list, i);
      StorRepoPruneItem *item = g_new0 (StorRepoPruneItem, 1);
      g_autoptr (GError) local = NULL;

      item->id = g_strdup (m->id);
      item->time = m->start_time;
      item->reason = plan[i];
      g_ptr_array_add (items, item);
      if (dry_run || plan[i])
        continue;
      /* Carry on past one that cannot go (the parent of a running
       * backup): the others are still due. */
      if (!stor_repo_delete (repo, m->id, &local) && !first
          && !g_error_matches (local, STOR_ERROR, STOR_ERROR_NOT_FOUND))
        first = g_steal_pointer (&local);
    }
  if (first)
    {
      g_propagate_prefixed_error (error, g_steal_pointer (&first),
                                  "prune of VM %s: ", vm);
      return NULL;
    }
  return g_steal_pointer (&items);
}
