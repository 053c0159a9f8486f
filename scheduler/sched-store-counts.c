/* SchedStoreCounts: how many rows of each table are in each state, kept
 * up to date as the store is written (see sched_store_count).
 *
 * A /metrics scrape wants the hosts, VMs and jobs counted by state. Listing
 * every row for that (and unpacking its messages) on the scheduler's main
 * thread cost more than the reports it delayed; the counts instead follow
 * each put and delete through the generic store calls (sched-store.c):
 * a row's count key (its state; a job's kind and state) is remembered by
 * row key, so a put that changes nothing costs a lookup, and one that
 * moves a row moves one count.
 *
 * What the tally cannot follow it forgets, and the next query counts that
 * table again from the store: a write that failed, a transaction that
 * rolled back or failed to commit (its writes may or may not stand), a
 * prune (the backend deletes rows it does not name). A table is counted
 * from the store the first time it is asked for, so a store nobody asks
 * never holds a tally. Only writes through this SchedStore are seen: the
 * scheduler is the database's one writer.
 */
#include "sched-private.h"

#include <string.h>

typedef struct
{
  gboolean valid;     /* FALSE: count again from the store when asked */
  GHashTable *rows;   /* row key -> count key */
  GHashTable *counts; /* count key -> guint (> 0), as GUINT_TO_POINTER */
} Tally;

struct _SchedStoreCounts
{
  Tally tables[SCHED_N_TABLES];
  gboolean in_transaction;
  guint touched; /* tables written in the open transaction, 1 << table */
};

/* The tables counted: those a gauge shows. */
static gboolean
table_counted (SchedTable table)
{
  return table == SCHED_TABLE_HOSTS || table == SCHED_TABLE_VMS
         || table == SCHED_TABLE_JOBS;
}

char *
sched_store_count_key (SchedTable table, gconstpointer row)
{
  switch (table)
    {
    case SCHED_TABLE_HOSTS:
      {
        const SchedHost *host = row;

        return g_strconcat (host->state, "\n",
                            host->maintenance && host->maintenance[0]
                                ? host->maintenance
                                : SCHED_HOST_IN_SERVICE,
                            NULL);
      }
    case SCHED_TABLE_VMS:
      return g_strdup (((const SchedVm *)row)->state);
    case SCHED_TABLE_JOBS:
      {
        const SchedJob *job = row;

        return g_strconcat (job->kind, "\n", job->state, NULL);
      }
    default:
      g_return_val_if_reached (NULL);
    }
}

static GHashTable *
counts_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

static void
counts_add (GHashTable *counts, const char *key, int delta)
{
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (counts, key));

  g_return_if_fail (delta > 0 || n > 0);
  n += delta;
  /* A state nothing is in goes, so states from the wire cannot pile up. */
  if (n == 0)
    g_hash_table_remove (counts, key);
  else
    g_hash_table_insert (counts, g_strdup (key), GUINT_TO_POINTER (n));
}

GHashTable *
sched_store_counts_of_rows (SchedTable table, GPtrArray *rows)
{
  GHashTable *counts = counts_new ();

  for (guint i = 0; i < rows->len; i++)
    {
      g_autofree char *key = sched_store_count_key (table, rows->pdata[i]);

      counts_add (counts, key, 1);
    }
  return counts;
}

/* --- the tally ----------------------------------------------------------- */

static void
tally_forget (Tally *t)
{
  t->valid = FALSE;
  g_clear_pointer (&t->rows, g_hash_table_unref);
  g_clear_pointer (&t->counts, g_hash_table_unref);
}

/* Counts TABLE's rows from STORE's listing. */
static gboolean
tally_load (SchedStore *store, SchedTable table, Tally *t, GError **error)
{
  const SchedRowType *type = &sched_row_types[table];
  g_autoptr (GPtrArray) rows = store->ops->list (store, table, NULL, error);

  tally_forget (t);
  if (rows == NULL)
    return FALSE;
  t->rows = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  t->counts = counts_new ();
  for (guint i = 0; i < rows->len; i++)
    {
      char *key = sched_store_count_key (table, rows->pdata[i]);

      counts_add (t->counts, key, 1);
      g_hash_table_insert (
          t->rows, g_strdup (sched_row_key (type, rows->pdata[i])), key);
    }
  t->valid = TRUE;
  return TRUE;
}

SchedStoreCounts *
sched_store_counts_new (void)
{
  return g_new0 (SchedStoreCounts, 1);
}

void
sched_store_counts_free (SchedStoreCounts *counts)
{
  for (guint i = 0; i < SCHED_N_TABLES; i++)
    tally_forget (&counts->tables[i]);
  g_free (counts);
}

/* The tally of TABLE that a write must keep up to date; NULL if there is
 * none to keep (not counted, or to be counted again anyway). Marks TABLE
 * written in an open transaction. */
static Tally *
tally_for_write (SchedStoreCounts *counts, SchedTable table)
{
  if (counts == NULL || !table_counted (table))
    return NULL;
  if (counts->in_transaction)
    counts->touched |= 1u << table;
  return counts->tables[table].valid ? &counts->tables[table] : NULL;
}

void
sched_store_counts_put (SchedStoreCounts *counts, SchedTable table,
                        gconstpointer row, gboolean ok)
{
  Tally *t = tally_for_write (counts, table);
  const char *row_key;
  const char *old;
  char *key;

  if (t == NULL)
    return;
  if (!ok)
    {
      tally_forget (t);
      return;
    }
  row_key = sched_row_key (&sched_row_types[table], row);
  key = sched_store_count_key (table, row);
  old = g_hash_table_lookup (t->rows, row_key);
  if (old != NULL && strcmp (old, key) == 0)
    {
      g_free (key);
      return;
    }
  if (old != NULL)
    counts_add (t->counts, old, -1);
  counts_add (t->counts, key, 1);
  g_hash_table_insert (t->rows, g_strdup (row_key), key);
}

void
sched_store_counts_remove (SchedStoreCounts *counts, SchedTable table,
                           const char *row_key, gboolean ok)
{
  Tally *t = tally_for_write (counts, table);
  const char *old;

  if (t == NULL)
    return;
  if (!ok)
    {
      tally_forget (t);
      return;
    }
  old = g_hash_table_lookup (t->rows, row_key);
  if (old == NULL)
    return;
  counts_add (t->counts, old, -1);
  g_hash_table_remove (t->rows, row_key);
}

void
sched_store_counts_forget (SchedStoreCounts *counts, SchedTable table)
{
  if (counts != NULL)
    tally_forget (&counts->tables[table]);
}

void
sched_store_counts_begin (SchedStoreCounts *counts, gboolean ok)
{
  if (!ok)
    return;
  counts->in_transaction = TRUE;
  counts->touched = 0;
}

/* Forgets the tallies of the tables the open transaction wrote: what it
 * wrote may or may not stand. */
static void
forget_touched (SchedStoreCounts *counts)
{
  for (guint i = 0; i < SCHED_N_TABLES; i++)
    if (counts->touched & (1u << i))
      tally_forget (&counts->tables[i]);
  counts->touched = 0;
}

void
sched_store_counts_commit (SchedStoreCounts *counts, gboolean ok)
{
  if (counts == NULL)
    return;
  if (!ok)
    {
      /* The transaction stays open until the caller's rollback. */
      forget_touched (counts);
      return;
    }
  counts->touched = 0;
  counts->in_transaction = FALSE;
}

void
sched_store_counts_rollback (SchedStoreCounts *counts)
{
  if (counts == NULL)
    return;
  forget_touched (counts);
  counts->in_transaction = FALSE;
}

GHashTable *
sched_store_count (SchedStore *store, SchedTable table, GError **error)
{
  GHashTable *copy;
  GHashTableIter iter;
  gpointer key, value;
  Tally *t;

  g_return_val_if_fail (table_counted (table), NULL);
  if (store->counts == NULL)
    store->counts = sched_store_counts_new ();
  t = &store->counts->tables[table];
  if (!t->valid && !tally_load (store, table, t, error))
    return NULL;
  copy = counts_new ();
  g_hash_table_iter_init (&iter, t->counts);
  while (g_hash_table_iter_next (&iter, &key, &value))
    g_hash_table_insert (copy, g_strdup (key), value);
  return copy;
}
