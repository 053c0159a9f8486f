/* The queue of schedule runs (issue 16): jitter that is stable and
 * spread, limits per host and per repository, earliest first, a VM that
 * moved counted where it runs now, replace and remove, backoff. */
#include <string.h>

#include "sched-dr-queue.h"

static void
test_jitter (void)
{
  guint per_second[600] = { 0 };
  guint used = 0, peak = 0;

  g_assert_cmpint (sched_dr_jitter ("hourly", "vm1", 0), ==, 0);
  g_assert_cmpint (sched_dr_jitter ("hourly", "vm1", 1), ==, 0);
  for (guint i = 0; i < 100; i++)
    {
      g_autofree char *vm = g_strdup_printf ("web-%u", i);
      gint64 j = sched_dr_jitter ("hourly", vm, 600);

      g_assert_cmpint (j, >=, 0);
      g_assert_cmpint (j, <, 600);
      /* The same every time. */
      g_assert_cmpint (j, ==, sched_dr_jitter ("hourly", vm, 600));
      per_second[j]++;
    }
  for (guint s = 0; s < 600; s++)
    {
      used += per_second[s] > 0;
      peak = MAX (peak, per_second[s]);
    }
  /* A hundred VMs of one schedule: spread over the window, never a
   * crowd in one second. */
  g_test_message ("100 VMs over 600 s: %u distinct seconds, at most %u in one",
                  used, peak);
  g_assert_cmpuint (used, >=, 85);
  g_assert_cmpuint (peak, <=, 3);
  /* Another schedule places the same VM elsewhere (most of the time). */
  g_assert_cmpint (sched_dr_jitter ("hourly", "web-1", 600), !=,
                   sched_dr_jitter ("daily", "web-1", 600));
}

static void
test_backoff (void)
{
  static const gint64 want[]
      = { 30, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600 };

  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    g_assert_cmpint (sched_dr_backoff (i), ==, want[i]);
  g_assert_cmpint (sched_dr_backoff (1000), ==, 3600);
}

static char *
names (GPtrArray *runs)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < runs->len; i++)
    {
      const SchedDrRun *r = runs->pdata[i];

      g_string_append_printf (s, "%s%s@%s", i ? " " : "", r->vm, r->host);
    }
  return g_string_free (s, FALSE);
}

static void
test_limits (void)
{
  SchedDrLimits limits = { .per_host = 2, .per_repo = 3 };
  g_autoptr (SchedDrQueue) q = sched_dr_queue_new (&limits);
  g_autoptr (GPtrArray) a = NULL;
  g_autoptr (GPtrArray) b = NULL;
  g_autoptr (GPtrArray) c = NULL;
  g_autofree char *sa = NULL, *sb = NULL, *sc = NULL;

  /* Window 0: due exactly at the slot; the order is by due time. */
  sched_dr_queue_add (q, "s", "a1", "h1", "r", 100, 0, 0, -1);
  sched_dr_queue_add (q, "s", "a2", "h1", "r", 101, 0, 0, -1);
  sched_dr_queue_add (q, "s", "a3", "h1", "r", 102, 0, 0, -1);
  sched_dr_queue_add (q, "s", "b1", "h2", "r", 103, 0, 0, -1);
  sched_dr_queue_add (q, "s", "b2", "h2", "r", 104, 0, 0, -1);
  sched_dr_queue_add (q, "s", "c1", "h3", "", 500, 0, 0, -1);
  g_assert_cmpuint (sched_dr_queue_length (q), ==, 6);
  g_assert_cmpint (sched_dr_queue_next_due (q), ==, 100);

  /* Nothing before its time. */
  a = sched_dr_queue_take_due (q, 99, NULL, NULL);
  g_assert_cmpuint (a->len, ==, 0);
  g_clear_pointer (&a, g_ptr_array_unref);

  /* Two per host, three per repository: a1 a2 (h1 full), b1 (repo full). */
  a = sched_dr_queue_take_due (q, 200, NULL, NULL);
  sa = names (a);
  g_assert_cmpstr (sa, ==, "a1@h1 a2@h1 b1@h2");
  g_assert_cmpuint (sched_dr_queue_running_on (q, "h1"), ==, 2);
  g_assert_cmpuint (sched_dr_queue_running_into (q, "r"), ==, 3);
  g_assert_cmpuint (sched_dr_queue_length (q), ==, 3);
  /* The held-back ones are still first in line. */
  g_assert_cmpint (sched_dr_queue_next_due (q), ==, 102);

  /* b1 ends: the repository has a place; a3 waits for h1, b2 goes. */
  sched_dr_queue_finished (q, a->pdata[2]);
  b = sched_dr_queue_take_due (q, 201, NULL, NULL);
  sb = names (b);
  g_assert_cmpstr (sb, ==, "b2@h2");
  /* a1 ends: a3 goes; c1 (no repository) at its time. */
  sched_dr_queue_finished (q, a->pdata[0]);
  sched_dr_queue_finished (q, b->pdata[0]);
  c = sched_dr_queue_take_due (q, 600, NULL, NULL);
  sc = names (c);
  g_assert_cmpstr (sc, ==, "a3@h1 c1@h3");
  g_assert_cmpuint (sched_dr_queue_length (q), ==, 0);
  g_assert_cmpint (sched_dr_queue_next_due (q), ==, -1);
}

static const char *
moved (const char *vm, gpointer data)
{
  return strcmp (vm, "m1") == 0 ? "h9" : NULL;
}

static void
test_moved_replace_remove (void)
{
  SchedDrLimits limits = { .per_host = 1, .per_repo = 0 };
  g_autoptr (SchedDrQueue) q = sched_dr_queue_new (&limits);
  g_autoptr (GPtrArray) a = NULL;
  g_autofree char *sa = NULL;

  /* m1 moved from h1 to h9: it does not take h1's only place. */
  sched_dr_queue_add (q, "s", "m1", "h1", "r", 10, 0, 0, -1);
  sched_dr_queue_add (q, "s", "x1", "h1", "r", 11, 0, 0, -1);
  /* Replaced: one run per schedule and VM, the newer one counts. */
  sched_dr_queue_add (q, "s", "x1", "h1", "r", 12, 0, 2, -1);
  g_assert_cmpuint (sched_dr_queue_length (q), ==, 2);
  sched_dr_queue_add (q, "t", "x1", "h1", "r", 13, 0, 0, -1);
  sched_dr_queue_add (q, "t", "y1", "h2", "r", 14, 0, 0, -1);
  g_assert_cmpuint (sched_dr_queue_remove (q, "t", "y1"), ==, 1);
  g_assert_cmpuint (sched_dr_queue_remove (q, "t", "nope"), ==, 0);
  g_assert_cmpuint (sched_dr_queue_length (q), ==, 3);
  /* A retry's time overrides the jitter. */
  sched_dr_queue_add (q, "u", "z1", "h3", "", 5, 600, 1, 999);
  a = sched_dr_queue_take_due (q, 100, moved, NULL);
  sa = names (a);
  g_assert_cmpstr (sa, ==, "m1@h9 x1@h1");
  g_assert_cmpuint (((SchedDrRun *)a->pdata[1])->attempts, ==, 2);
  g_assert_cmpuint (sched_dr_queue_running_on (q, "h9"), ==, 1);
  g_assert_cmpint (sched_dr_queue_next_due (q), ==, 13);
  /* Dropping a whole schedule. */
  g_assert_cmpuint (sched_dr_queue_remove (q, "t", NULL), ==, 1);
  g_assert_cmpint (sched_dr_queue_next_due (q), ==, 999);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-dr-queue/jitter", test_jitter);
  g_test_add_func ("/sched-dr-queue/backoff", test_backoff);
  g_test_add_func ("/sched-dr-queue/limits", test_limits);
  g_test_add_func ("/sched-dr-queue/moved-replace-remove",
                   test_moved_replace_remove);
  return g_test_run ();
}
