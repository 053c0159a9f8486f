/* VM labels (sched-labels.c): checks, apply (sorted, replaced, removed,
 * refused whole), and exact matching of KEY=VALUE. */
#include "sched-private.h"

#include <string.h>

static void
test_apply (void)
{
  char *set1[] = { (char *)"tier=db", (char *)"app=web", (char *)"zone=eu-1" };
  char *set2[] = { (char *)"tier=cache" };
  char *rm[] = { (char *)"zone", (char *)"absent" };
  g_autofree char *a = NULL, *b = NULL;
  g_autoptr (GError) error = NULL;

  a = sched_labels_apply ("", set1, 3, NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (a, ==, "app=web,tier=db,zone=eu-1");
  b = sched_labels_apply (a, set2, 1, rm, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (b, ==, "app=web,tier=cache");
}

static void
test_refused (void)
{
  const char *bad[] = { "Tier=db",
                        "tier",
                        "=db",
                        "tier=d b",
                        "-x=1",
                        "tier=a,b",
                        "k="
                        "0123456789012345678901234567890123456789"
                        "012345678901234567890123" };
  char *many[17];
  g_autoptr (GError) error = NULL;
  char *out;

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      char *one[] = { (char *)bad[i] };

      out = sched_labels_apply ("app=web", one, 1, NULL, 0, &error);
      g_assert_null (out);
      g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
      g_clear_error (&error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (many); i++)
    many[i] = g_strdup_printf ("k%u=v", i);
  out = sched_labels_apply ("", many, 16, NULL, 0, &error);
  g_assert_no_error (error);
  g_free (out);
  /* The 17th, even across two calls. */
  out = sched_labels_apply ("", many, 17, NULL, 0, &error);
  g_assert_null (out);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_clear_error (&error);
  {
    g_autofree char *sixteen = sched_labels_apply ("", many, 16, NULL, 0, NULL);
    char *extra[] = { (char *)"z=1" };

    out = sched_labels_apply (sixteen, extra, 1, NULL, 0, &error);
    g_assert_null (out);
    g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
    g_clear_error (&error);
  }
  for (guint i = 0; i < G_N_ELEMENTS (many); i++)
    g_free (many[i]);
  /* Nothing to do is an error too. */
  out = sched_labels_apply ("a=1", NULL, 0, NULL, 0, &error);
  g_assert_null (out);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
}

static void
test_has (void)
{
  g_assert_true (sched_labels_has ("app=web,tier=db", "tier=db"));
  g_assert_true (sched_labels_has ("app=web,tier=db", "app=web"));
  g_assert_false (sched_labels_has ("app=web,tier=db", "tier=d"));
  g_assert_false (sched_labels_has ("app=web,tier=db", "ier=db"));
  g_assert_false (sched_labels_has ("app=web,tier=dbx", "tier=db"));
  g_assert_false (sched_labels_has ("", "tier=db"));
  g_assert_false (sched_labels_has (NULL, "tier=db"));
}

static void
test_group (void)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (sched_labels_in_group ("app=web,group=prod", "prod"));
  g_assert_false (sched_labels_in_group ("app=web,group=prod", "pro"));
  g_assert_false (sched_labels_in_group ("app=web,group=prod", "web"));
  g_assert_false (sched_labels_in_group ("group=", ""));
  g_assert_false (sched_labels_in_group (NULL, "prod"));
  g_assert_true (sched_labels_check_group ("prod-1.a_b", NULL));
  g_assert_false (sched_labels_check_group ("", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (sched_labels_check_group ("a/b", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (sched_labels_check_group ("a,group=b", NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-labels/apply", test_apply);
  g_test_add_func ("/sched-labels/refused", test_refused);
  g_test_add_func ("/sched-labels/has", test_has);
  g_test_add_func ("/sched-labels/group", test_group);
  return g_test_run ();
}
