/* VMs made from disk images (issue 13), as far as no libvirt or QEMU is
 * needed: the domain XML (boot from disk, the image and the cloud-init
 * user-data in the metadata, the seed cdrom), the spec checks and the
 * seed's path. */
#include <string.h>

#include "agent-disk-images.h"

static Drover__V1__VmSpec *
image_spec (const char *image, const char *user_data)
{
  Drover__V1__VmSpec base = DROVER__V1__VM_SPEC__INIT;

  base.name = (char *)"web-1";
  base.vcpus = 1;
  base.memory = 256 * 1024 * 1024;
  base.image = (char *)image;
  if (user_data)
    {
      base.cloud_init_user_data.data = (guint8 *)user_data;
      base.cloud_init_user_data.len = strlen (user_data);
    }
  return proto_msg_copy (&base.base);
}

static void
test_boot_from_image (void)
{
  g_autoptr (Drover__V1__VmSpec) spec = image_spec ("debian", NULL);
  g_autoptr (Drover__V1__VmSpec) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = NULL;

  g_assert_true (proto_vm_spec_check (spec, &error));
  /* An image VM needs its disk path even with disk 0. */
  g_assert_null (agent_domain_xml_build (spec, AGENT_ACCEL_TCG, NULL,
                                         "/data/console/web-1.log", &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
  g_clear_error (&error);
  xml = agent_domain_xml_build (spec, AGENT_ACCEL_TCG,
                                "/data/disks/web-1.qcow2",
                                "/data/console/web-1.log", &error);
  g_assert_no_error (error);
  g_assert_null (strstr (xml, "<kernel>"));
  g_assert_nonnull (strstr (xml, "<boot dev=\"hd\"/>"));
  g_assert_nonnull (strstr (xml, "/data/disks/web-1.qcow2"));
  g_assert_null (strstr (xml, "cdrom"));
  back = agent_domain_xml_parse (xml, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (back->image, ==, "debian");
  g_assert_cmpuint (back->cloud_init_user_data.len, ==, 0);
}

static void
test_cloud_init_seed (void)
{
  const char *ud = "#cloud-config\nruncmd: [echo hi]\n";
  g_autoptr (Drover__V1__VmSpec) spec = image_spec ("debian", ud);
  g_autoptr (Drover__V1__VmSpec) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = NULL;
  g_autofree char *seed
      = agent_cloud_init_seed_path ("/data/disks/web-1.qcow2");

  g_assert_cmpstr (seed, ==, "/data/disks/web-1.seed.iso");
  xml = agent_domain_xml_build (spec, AGENT_ACCEL_TCG,
                                "/data/disks/web-1.qcow2",
                                "/data/console/web-1.log", &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (xml, "device=\"cdrom\""));
  g_assert_nonnull (strstr (xml, "/data/disks/web-1.seed.iso"));
  g_assert_nonnull (strstr (xml, "<readonly/>"));
  back = agent_domain_xml_parse (xml, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (back->cloud_init_user_data.len, ==, strlen (ud));
  g_assert_cmpmem (back->cloud_init_user_data.data,
                   back->cloud_init_user_data.len, ud, strlen (ud));
}

static void
test_spec_checks (void)
{
  static const char *const bad[] = { "a/b", "..", "Upper", "x y", NULL };
  g_autofree char *big = g_malloc0 (PROTO_CLOUD_INIT_MAX + 2);
  g_autoptr (GError) error = NULL;

  for (guint i = 0; bad[i]; i++)
    {
      g_autoptr (Drover__V1__VmSpec) spec = image_spec (bad[i], NULL);

      g_assert_false (proto_vm_spec_check (spec, &error));
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  memset (big, 'a', PROTO_CLOUD_INIT_MAX + 1);
  {
    g_autoptr (Drover__V1__VmSpec) spec = image_spec ("debian", big);

    g_assert_false (proto_vm_spec_check (spec, &error));
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
    g_clear_error (&error);
  }
  {
    /* A seed needs a disk to sit beside. */
    g_autoptr (Drover__V1__VmSpec) spec = image_spec ("", "#cloud-config\n");

    g_assert_false (proto_vm_spec_check (spec, &error));
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent-disk-images/boot-from-image", test_boot_from_image);
  g_test_add_func ("/agent-disk-images/cloud-init-seed", test_cloud_init_seed);
  g_test_add_func ("/agent-disk-images/spec-checks", test_spec_checks);
  return g_test_run ();
}
