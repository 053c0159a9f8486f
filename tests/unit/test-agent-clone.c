/* The clone's domain XML: identity (UUID, fresh MACs) and the clone and
 * template records, on XML from the real builder; the check of an image
 * received from another host, on real images made by qemu-img. */
#include <glib/gstdio.h>
#include <string.h>

#include "agent-clone-private.h"
#include "test-support.h"

#define UUID "6f1c1d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f"

static char *
built_xml (void)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  g_autoptr (GError) error = NULL;
  char *xml;

  spec.name = (char *)"c1";
  spec.vcpus = 1;
  spec.memory = 128 * 1024 * 1024;
  spec.disk = 64 * 1024 * 1024;
  spec.kernel = (char *)"/images/vmlinuz";
  spec.initrd = (char *)"/images/initrd";
  spec.cmdline = (char *)"console=ttyS0";
  spec.accel = (char *)"tcg";
  xml = agent_domain_xml_build (&spec, AGENT_ACCEL_TCG, "/data/disks/c1.qcow2",
                                "/data/console/c1.log", &error);
  g_assert_no_error (error);
  return xml;
}

/* Every "<mac address='...'" value in XML. */
static GPtrArray *
macs (const char *xml)
{
  g_autoptr (GRegex) re
      = g_regex_new ("<mac address=\"([0-9a-f:]+)\"", 0, 0, NULL);
  g_autoptr (GMatchInfo) m = NULL;
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);

  g_regex_match (re, xml, 0, &m);
  while (g_match_info_matches (m))
    {
      g_ptr_array_add (out, g_match_info_fetch (m, 1));
      g_match_info_next (m, NULL);
    }
  return out;
}

static void
test_linked_identity (void)
{
  g_autofree char *xml = built_xml ();
  g_autoptr (GError) error = NULL;
  g_autofree char *out = agent_clone_xml_identity (
      xml, UUID, "tpl", NULL, "tpl", "/data/disks/tpl.qcow2", &error);
  g_autofree char *uuid = NULL, *base = NULL, *image = NULL, *mode = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;

  g_assert_no_error (error);
  uuid = agent_xml_string (out, "/domain/uuid");
  g_assert_cmpstr (uuid, ==, UUID);
  base = agent_xml_string (out, "/domain/metadata/*[local-name()='clone']"
                                "/@base-vm");
  image = agent_xml_string (out, "/domain/metadata/*[local-name()='clone']"
                                 "/@base-image");
  mode = agent_xml_string (out,
                           "/domain/metadata/*[local-name()='clone']/@mode");
  g_assert_cmpstr (base, ==, "tpl");
  g_assert_cmpstr (image, ==, "/data/disks/tpl.qcow2");
  g_assert_cmpstr (mode, ==, "linked");
  /* A clone is no template, and the Drover spec is still there. */
  g_assert_false (agent_clone_xml_is_template (out));
  spec = agent_domain_xml_parse (out, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (spec->name, ==, "c1");
  g_assert_cmpuint (spec->disk, ==, 64 * 1024 * 1024);
}

static void
test_full_identity (void)
{
  g_autofree char *xml = built_xml ();
  g_autoptr (GError) error = NULL;
  g_autofree char *out
      = agent_clone_xml_identity (xml, "", "src", "s1", NULL, NULL, &error);
  g_autofree char *uuid = NULL, *base = NULL, *mode = NULL, *snap = NULL;

  g_assert_no_error (error);
  /* No UUID asked for: libvirt picks one. */
  uuid = agent_xml_string (out, "/domain/uuid");
  g_assert_null (uuid);
  base = agent_xml_string (out, "/domain/metadata/*[local-name()='clone']"
                                "/@base-vm");
  g_assert_null (base);
  mode = agent_xml_string (out,
                           "/domain/metadata/*[local-name()='clone']/@mode");
  snap = agent_xml_string (
      out, "/domain/metadata/*[local-name()='clone']/@snapshot");
  g_assert_cmpstr (mode, ==, "full");
  g_assert_cmpstr (snap, ==, "s1");
}

/* Interfaces (none in today's VMs) get new addresses, with or without a
 * <mac> of their own. */
static void
test_new_macs (void)
{
  const char *xml
      = "<domain type='qemu'><name>c1</name><devices>"
        "<interface type='network'><mac address='52:54:00:aa:bb:cc'/>"
        "<source network='default'/></interface>"
        "<interface type='network'><source network='default'/></interface>"
        "</devices></domain>";
  g_autoptr (GError) error = NULL;
  g_autofree char *a
      = agent_clone_xml_identity (xml, UUID, "src", NULL, NULL, NULL, &error);
  g_autofree char *b
      = agent_clone_xml_identity (xml, UUID, "src", NULL, NULL, NULL, &error);
  g_autoptr (GPtrArray) ma = macs (a);
  g_autoptr (GPtrArray) mb = macs (b);

  g_assert_no_error (error);
  g_assert_cmpuint (ma->len, ==, 2);
  g_assert_cmpuint (mb->len, ==, 2);
  for (guint i = 0; i < 2; i++)
    {
      g_assert_true (g_str_has_prefix (ma->pdata[i], "52:54:00:"));
      g_assert_cmpuint (strlen (ma->pdata[i]), ==, 17);
      g_assert_cmpstr (ma->pdata[i], !=, "52:54:00:aa:bb:cc");
    }
  /* 24 random bits per address: two clones differ. */
  g_assert_false (g_str_equal (ma->pdata[0], mb->pdata[0])
                  && g_str_equal (ma->pdata[1], mb->pdata[1]));
  g_assert_cmpstr (ma->pdata[0], !=, ma->pdata[1]);
}

static void
test_template_record (void)
{
  const char *tpl = "<domain><name>t</name><metadata>"
                    "<drover-clone:clone xmlns:drover-clone="
                    "'https://drover.dev/xmlns/clone/1' template='yes'/>"
                    "</metadata></domain>";
  const char *other_ns
      = "<domain><name>t</name><metadata>"
        "<x:clone xmlns:x='https://example.org/clone' template='yes'/>"
        "</metadata></domain>";
  g_autofree char *xml = built_xml ();

  g_assert_true (agent_clone_xml_is_template (tpl));
  /* Only Drover's record counts. */
  g_assert_false (agent_clone_xml_is_template (other_ns));
  g_assert_false (agent_clone_xml_is_template (xml));
  g_assert_false (agent_clone_xml_is_template ("not xml"));
}

static void
test_bad_xml (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *out = agent_clone_xml_identity ("<domain", UUID, "s", NULL,
                                                   NULL, NULL, &error);

  g_assert_null (out);
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_FAILED);
}

/* qemu-img ARGV..., which must succeed. */
static void
qemu_img (const char *const *argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  int status = 0;

  g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed: %s", argv[1], err);
}

/* Refused with a message containing WHY. */
static void
assert_received_refused (const char *path, guint64 size, const char *why)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (agent_clone_check_received (path, size, &error));
  g_assert_nonnull (error);
  if (!strstr (error->message, why))
    g_error ("\"%s\" not in \"%s\"", why, error->message);
}

/* A received image is one plain qcow2 of the spec's size: a backing
 * file, an external data file, another format, another size, a short
 * file and a missing one are refused (a hostile sender could point the
 * clone at any file of the host). */
static void
test_check_received (void)
{
  g_autofree char *dir = test_tmp_dir_new ("drover-clone-rx-XXXXXX");
  g_autofree char *good = g_build_filename (dir, "good.qcow2", NULL);
  g_autofree char *base = g_build_filename (dir, "base.qcow2", NULL);
  g_autofree char *over = g_build_filename (dir, "over.qcow2", NULL);
  g_autofree char *data = g_build_filename (dir, "data.raw", NULL);
  g_autofree char *ext = g_build_filename (dir, "ext.qcow2", NULL);
  g_autofree char *raw = g_build_filename (dir, "raw.img", NULL);
  g_autofree char *opt = g_strdup_printf ("data_file=%s", data);
  g_autoptr (GError) error = NULL;
  const guint64 size = 64 * 1024 * 1024;

  qemu_img ((const char *[]){ "qemu-img", "create", "-q", "-f", "qcow2", good,
                              "64M", NULL });
  qemu_img ((const char *[]){ "qemu-img", "create", "-q", "-f", "qcow2", base,
                              "64M", NULL });
  qemu_img ((const char *[]){ "qemu-img", "create", "-q", "-f", "qcow2", "-F",
                              "qcow2", "-b", base, over, NULL });
  qemu_img ((const char *[]){ "qemu-img", "create", "-q", "-f", "qcow2", "-o",
                              opt, ext, "64M", NULL });
  qemu_img ((const char *[]){ "qemu-img", "create", "-q", "-f", "raw", raw,
                              "64M", NULL });

  g_assert_true (agent_clone_check_received (good, size, &error));
  g_assert_no_error (error);
  assert_received_refused (over, size, "backing file");
  assert_received_refused (ext, size, "external data file");
  assert_received_refused (raw, size, "not a qcow2 image");
  assert_received_refused (good, size * 2, "size");
  assert_received_refused (data, size, "not a qcow2 image");
  g_assert_cmpint (g_unlink (data), ==, 0);
  assert_received_refused (data, size, "missing");
  g_assert_true (g_file_set_contents (raw, "QFI\xfb", 4, NULL));
  assert_received_refused (raw, size, "not a qcow2 image");
  test_tmp_dir_remove (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/clone/linked-identity", test_linked_identity);
  g_test_add_func ("/agent/clone/full-identity", test_full_identity);
  g_test_add_func ("/agent/clone/new-macs", test_new_macs);
  g_test_add_func ("/agent/clone/template-record", test_template_record);
  g_test_add_func ("/agent/clone/bad-xml", test_bad_xml);
  g_test_add_func ("/agent/clone/check-received", test_check_received);
  return g_test_run ();
}
