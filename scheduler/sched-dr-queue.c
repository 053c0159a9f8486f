/* The queue of schedule runs (see sched-dr-queue.h): a GSequence ordered
 * by due time (then schedule and VM, so that the order is total and the
 * same on every run), a table from "schedule\nvm" to its place in the
 * sequence, and the counts of runs taken and not yet finished per host
 * and per repository. */
#include "sched-dr-queue.h"

#include <string.h>

#define BACKOFF_FIRST_S 30
#define BACKOFF_MAX_S 3600

struct _SchedDrQueue
{
  SchedDrLimits limits;
  GSequence *runs;     /* SchedDrRun, owned (freed by hand: taken runs
                        * leave it without being freed) */
  GHashTable *by_key;  /* "schedule\nvm" (owned) -> GSequenceIter */
  GHashTable *on_host; /* host (owned) -> count (GUINT_TO_POINTER) */
  GHashTable *in_repo; /* repo (owned) -> count */
};

void
sched_dr_run_free (SchedDrRun *run)
{
  if (!run)
    return;
  g_free (run->schedule);
  g_free (run->vm);
  g_free (run->host);
  g_free (run->repo);
  g_free (run);
}

gint64
sched_dr_jitter (const char *schedule, const char *vm, gint64 window_s)
{
  guint64 h = G_GUINT64_CONSTANT (14695981039346656037);

  if (window_s <= 1)
    return 0;
  /* FNV-1a over "schedule\0vm": stable across runs and builds. */
  for (const char *p = schedule;; p++)
    {
      h = (h ^ (guchar)*p) * G_GUINT64_CONSTANT (1099511628211);
      if (!*p)
        break;
    }
  for (const char *p = vm; *p; p++)
    h = (h ^ (guchar)*p) * G_GUINT64_CONSTANT (1099511628211);
  /* Fold the high bits in: the low bits of FNV alone spread poorly for
   * names that differ only in their last characters. */
  h ^= h >> 29;
  return (gint64)(h % (guint64)window_s);
}

gint64
sched_dr_backoff (guint attempts)
{
  gint64 wait = BACKOFF_FIRST_S;

  for (guint i = 1; i < attempts && wait < BACKOFF_MAX_S; i++)
    wait *= 2;
  return MIN (wait, BACKOFF_MAX_S);
}

static void
run_free_cb (gpointer run, gpointer unused)
{
  sched_dr_run_free (run);
}

static gint
run_cmp (gconstpointer a, gconstpointer b, gpointer data)
{
  const SchedDrRun *x = a, *y = b;
  int c;

  if (x->due != y->due)
    return x->due < y->due ? -1 : 1;
  if ((c = strcmp (x->schedule, y->schedule)) != 0)
    return c;
  return strcmp (x->vm, y->vm);
}

static char *
run_key (const char *schedule, const char *vm)
{
  return g_strconcat (schedule, "\n", vm, NULL);
}

SchedDrQueue *
sched_dr_queue_new (const SchedDrLimits *limits)
{
  SchedDrQueue *q = g_new0 (SchedDrQueue, 1);

  q->limits = *limits;
  q->runs = g_sequence_new (NULL);
  q->by_key = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  q->on_host = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  q->in_repo = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return q;
}

void
sched_dr_queue_free (SchedDrQueue *q)
{
  if (!q)
    return;
  g_hash_table_destroy (q->by_key);
  g_sequence_foreach (q->runs, run_free_cb, NULL);
  g_sequence_free (q->runs);
  g_hash_table_destroy (q->on_host);
  g_hash_table_destroy (q->in_repo);
  g_free (q);
}

void
sched_dr_queue_add (SchedDrQueue *q, const char *schedule, const char *vm,
                    const char *host, const char *repo, gint64 slot,
                    gint64 window_s, guint attempts, gint64 due_override)
{
  SchedDrRun *run = g_new0 (SchedDrRun, 1);
  char *key = run_key (schedule, vm);
  GSequenceIter *old = g_hash_table_lookup (q->by_key, key);

  if (old)
    {
      sched_dr_run_free (g_sequence_get (old));
      g_sequence_remove (old);
    }
  run->schedule = g_strdup (schedule);
  run->vm = g_strdup (vm);
  run->host = g_strdup (host ? host : "");
  run->repo = g_strdup (repo ? repo : "");
  run->slot = slot;
  run->attempts = attempts;
  run->due = due_override >= 0
                 ? due_override
                 : slot + sched_dr_jitter (schedule, vm, window_s);
  g_hash_table_replace (q->by_key, key,
                        g_sequence_insert_sorted (q->runs, run, run_cmp, NULL));
}

guint
sched_dr_queue_remove (SchedDrQueue *q, const char *schedule, const char *vm)
{
  GHashTableIter it;
  gpointer key, value;
  guint n = 0;

  g_hash_table_iter_init (&it, q->by_key);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      SchedDrRun *run = g_sequence_get (value);

      if (strcmp (run->schedule, schedule) != 0
          || (vm && strcmp (run->vm, vm) != 0))
        continue;
      sched_dr_run_free (run);
      g_sequence_remove (value);
      g_hash_table_iter_remove (&it);
      n++;
    }
  return n;
}

static guint
count (GHashTable *t, const char *name)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (t, name));
}

static void
count_add (GHashTable *t, const char *name, int delta)
{
  guint n = count (t, name);

  n = delta < 0 && n == 0 ? 0 : n + delta;
  if (n == 0)
    g_hash_table_remove (t, name);
  else
    g_hash_table_replace (t, g_strdup (name), GUINT_TO_POINTER (n));
}

static gboolean
has_room (SchedDrQueue *q, const char *host, const char *repo)
{
  return (q->limits.per_host == 0 || !*host
          || count (q->on_host, host) < q->limits.per_host)
         && (q->limits.per_repo == 0 || !*repo
             || count (q->in_repo, repo) < q->limits.per_repo);
}

GPtrArray *
sched_dr_queue_take_due (SchedDrQueue *q, gint64 now, SchedDrHostFunc host_of,
                         gpointer data)
{
  GPtrArray *out
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_dr_run_free);
  GSequenceIter *it = g_sequence_get_begin_iter (q->runs);

  while (!g_sequence_iter_is_end (it))
    {
      SchedDrRun *run = g_sequence_get (it);
      GSequenceIter *next = g_sequence_iter_next (it);
      const char *where = host_of ? host_of (run->vm, data) : NULL;
      g_autofree char *key = NULL;

      if (run->due > now)
        break;
      if (where && strcmp (where, run->host) != 0)
        {
          g_free (run->host);
          run->host = g_strdup (where);
        }
      if (has_room (q, run->host, run->repo))
        {
          key = run_key (run->schedule, run->vm);
          g_hash_table_remove (q->by_key, key);
          g_ptr_array_add (out, run); /* the caller's now */
          g_sequence_remove (it);
          if (*run->host)
            count_add (q->on_host, run->host, 1);
          if (*run->repo)
            count_add (q->in_repo, run->repo, 1);
        }
      it = next;
    }
  return out;
}

void
sched_dr_queue_finished (SchedDrQueue *q, const SchedDrRun *run)
{
  if (*run->host)
    count_add (q->on_host, run->host, -1);
  if (*run->repo)
    count_add (q->in_repo, run->repo, -1);
}

gint64
sched_dr_queue_next_due (SchedDrQueue *q)
{
  GSequenceIter *it = g_sequence_get_begin_iter (q->runs);

  return g_sequence_iter_is_end (it) ? -1
                                     : ((SchedDrRun *)g_sequence_get (it))->due;
}

/* Orders the probe after every run due at or before its time. */
static gint
due_after_cmp (gconstpointer a, gconstpointer b, gpointer data)
{
  const SchedDrRun *x = a, *y = b;

  if (x->due != y->due)
    return x->due < y->due ? -1 : 1;
  return x->schedule == NULL ? 1 : (y->schedule == NULL ? -1 : 0);
}

gint64
sched_dr_queue_next_due_after (SchedDrQueue *q, gint64 after)
{
  SchedDrRun probe = { .due = after };
  GSequenceIter *it = g_sequence_search (q->runs, &probe, due_after_cmp, NULL);

  return g_sequence_iter_is_end (it) ? -1
                                     : ((SchedDrRun *)g_sequence_get (it))->due;
}

guint
sched_dr_queue_length (SchedDrQueue *q)
{
  return g_hash_table_size (q->by_key);
}

guint
sched_dr_queue_running_on (SchedDrQueue *q, const char *host)
{
  return count (q->on_host, host);
}

guint
sched_dr_queue_running_into (SchedDrQueue *q, const char *repo)
{
  return count (q->in_repo, repo);
}
