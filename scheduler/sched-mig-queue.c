/* SchedMigQueue: the per-host limits on concurrent migrations and the
 * FIFO of those waiting for a slot. Pure bookkeeping by job id: the
 * migrator asks whether a migration may start and which may start once
 * one ends. */
#include "sched-private.h"

#include <string.h>

typedef struct
{
  char *id;
  char *source;
  char *dest;
  gboolean running;
} QueueEntry;

struct _SchedMigQueue
{
  guint max_out;
  guint max_in;
  GPtrArray *entries; /* QueueEntry, in arrival order */
};

static void
queue_entry_free (QueueEntry *e)
{
  g_free (e->id);
  g_free (e->source);
  g_free (e->dest);
  g_free (e);
}

SchedMigQueue *
sched_mig_queue_new (guint max_out, guint max_in)
{
  SchedMigQueue *q = g_new0 (SchedMigQueue, 1);

  q->max_out = MAX (max_out, 1);
  q->max_in = MAX (max_in, 1);
  q->entries
      = g_ptr_array_new_with_free_func ((GDestroyNotify)queue_entry_free);
  return q;
}

void
sched_mig_queue_free (SchedMigQueue *q)
{
  g_ptr_array_unref (q->entries);
  g_free (q);
}

static guint
count_running (SchedMigQueue *q, const char *host, gboolean out)
{
  guint n = 0;

  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (e->running && strcmp (out ? e->source : e->dest, host) == 0)
        n++;
    }
  return n;
}

guint
sched_mig_queue_running_out (SchedMigQueue *q, const char *host)
{
  return count_running (q, host, TRUE);
}

guint
sched_mig_queue_running_in (SchedMigQueue *q, const char *host)
{
  return count_running (q, host, FALSE);
}

/* Starts what may start; returns their ids. */
static GPtrArray *
queue_schedule (SchedMigQueue *q)
{
  GPtrArray *started = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) held_out = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) held_in = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (e->running)
        continue;
      if (!g_hash_table_contains (held_out, e->source)
          && !g_hash_table_contains (held_in, e->dest)
          && count_running (q, e->source, TRUE) < q->max_out
          && count_running (q, e->dest, FALSE) < q->max_in)
        {
          e->running = TRUE;
          g_ptr_array_add (started, g_strdup (e->id));
          continue;
        }
      /* First come first served on the hosts this one waits for. */
      g_hash_table_add (held_out, e->source);
      g_hash_table_add (held_in, e->dest);
    }
  return started;
}

gboolean
sched_mig_queue_add (SchedMigQueue *q, const char *id, const char *source,
                     const char *dest)
{
  QueueEntry *e = g_new0 (QueueEntry, 1);
  g_autoptr (GPtrArray) started = NULL;

  e->id = g_strdup (id);
  e->source = g_strdup (source);
  e->dest = g_strdup (dest);
  g_ptr_array_add (q->entries, e);
  started = queue_schedule (q);
  return e->running;
}

GPtrArray *
sched_mig_queue_remove (SchedMigQueue *q, const char *id)
{
  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (strcmp (e->id, id) == 0)
        {
          g_ptr_array_remove_index (q->entries, i);
          break;
        }
    }
  return queue_schedule (q);
}

guint
sched_mig_queue_position (SchedMigQueue *q, const char *id)
{
  guint pos = 0;

  for (guint i = 0; i < q->entries->len; i++)
    {
      QueueEntry *e = q->entries->pdata[i];

      if (e->running)
        continue;
      pos++;
      if (strcmp (e->id, id) == 0)
        return pos;
    }
  return 0;
}
