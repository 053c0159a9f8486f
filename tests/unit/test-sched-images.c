/* Images on the scheduler (issue 13): the check of the images a host
 * reports, and placement only on hosts that have a VM's image. */
#include "test-sched.h"

#include <string.h>

#include "sched-images.h"

static const SchedPolicy policy = {
  .cpu_overcommit = 4.0,
  .memory_reserve = 256 * MiB,
};

/* Gives HOST (in HOSTS) the images NAMES (NULL-terminated). */
static void
give_images (GPtrArray *hosts, const char *host, const char *const *names)
{
  SchedHost *h = (SchedHost *)sched_host_find (hosts, host);
  gsize n = g_strv_length ((char **)names);

  h->info->images = g_new0 (Drover__V1__Image *, n + 1);
  h->info->n_images = n;
  for (gsize i = 0; i < n; i++)
    {
      Drover__V1__Image *img = g_new0 (Drover__V1__Image, 1);

      drover__v1__image__init (img);
      img->name = g_strdup (names[i]);
      img->format = g_strdup ("qcow2");
      h->info->images[i] = img;
    }
}

static void
test_placement_needs_image (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  Drover__V1__VmSpec spec = test_vm_spec ("web", 1, GiB, 0, "");
  static const char *const h2_images[] = { "debian", NULL };
  g_autoptr (GError) error = NULL;
  g_autofree char *chosen = NULL;

  test_sched_add_host (hosts, "h1", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB,
                       "tcg");
  test_sched_add_host (hosts, "h2", PROTO_HOST_UP, 4, 8 * GiB, 100 * GiB,
                       "tcg");
  give_images (hosts, "h2", h2_images);
  g_assert_false (
      sched_host_has_image (sched_host_find (hosts, "h1"), "debian"));
  g_assert_true (
      sched_host_has_image (sched_host_find (hosts, "h2"), "debian"));

  /* Without an image h1 wins (the smaller name); with it only h2. */
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h1");
  g_clear_pointer (&chosen, g_free);
  spec.image = (char *)"debian";
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (chosen, ==, "h2");
  g_clear_pointer (&chosen, g_free);

  /* Pinned to a host without it: refused, naming the image. */
  chosen = sched_place (&policy, hosts, vms, &spec, "h1", &error);
  g_assert_null (chosen);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, "no image 'debian'"));
  g_clear_error (&error);

  /* An image no host has: nothing fits. */
  spec.image = (char *)"other";
  chosen = sched_place (&policy, hosts, vms, &spec, NULL, &error);
  g_assert_null (chosen);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
}

static void
test_report_check (void)
{
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__Image a = DROVER__V1__IMAGE__INIT, b = DROVER__V1__IMAGE__INIT;
  Drover__V1__Image *list[2] = { &a, &b };
  g_autoptr (GError) error = NULL;

  info.name = (char *)"h1";
  info.images = list;
  info.n_images = 2;
  a.name = (char *)"debian";
  a.format = (char *)"qcow2";
  b.name = (char *)"alpine";
  b.format = (char *)"raw";
  g_assert_true (sched_host_images_check (&info, &error));
  g_assert_no_error (error);

  b.name = (char *)"debian"; /* twice */
  g_assert_false (sched_host_images_check (&info, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_clear_error (&error);

  b.name = (char *)"../etc"; /* a bad name */
  g_assert_false (sched_host_images_check (&info, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_clear_error (&error);

  b.name = (char *)"alpine";
  b.format = (char *)"vmdk"; /* a format Drover does not take */
  g_assert_false (sched_host_images_check (&info, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_clear_error (&error);

  b.format = (char *)"raw";
  info.n_images = PROTO_HOST_MAX_IMAGES + 1; /* over the cap: not read */
  g_assert_false (sched_host_images_check (&info, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-images/placement", test_placement_needs_image);
  g_test_add_func ("/sched-images/report-check", test_report_check);
  return g_test_run ();
}
