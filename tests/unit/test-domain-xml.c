/* Domain XML builder and parser: round trip, hostile strings, foreign
 * and broken input. */
#include <libxml/parser.h>
#include <string.h>

#include "agent-private.h"

static Drover__V1__VmSpec *
make_spec (const char *name, const char *cmdline)
{
  Drover__V1__VmSpec base = DROVER__V1__VM_SPEC__INIT;

  base.name = (char *)name;
  base.vcpus = 2;
  base.memory = 256 * 1024 * 1024;
  base.disk = 1024 * 1024 * 1024;
  base.kernel = (char *)"/boot/vmlinuz";
  base.initrd = (char *)"/boot/initrd.img";
  base.cmdline = (char *)cmdline;
  base.accel = (char *)"tcg";
  return proto_msg_copy (&base.base);
}

static void
assert_spec_equal (const Drover__V1__VmSpec *a, const Drover__V1__VmSpec *b)
{
  g_assert_cmpstr (a->name, ==, b->name);
  g_assert_cmpuint (a->vcpus, ==, b->vcpus);
  g_assert_cmpuint (a->memory, ==, b->memory);
  g_assert_cmpuint (a->disk, ==, b->disk);
  g_assert_cmpstr (a->kernel, ==, b->kernel);
  g_assert_cmpstr (a->initrd, ==, b->initrd);
  g_assert_cmpstr (a->cmdline, ==, b->cmdline);
  g_assert_cmpstr (a->accel, ==, b->accel);
}

/* The builder refuses SPEC (with DISK and CONSOLE paths) as invalid. */
static void
assert_build_invalid (const Drover__V1__VmSpec *spec, const char *disk,
                      const char *console)
{
  g_autoptr (GError) error = NULL;

  g_assert_null (
      agent_domain_xml_build (spec, AGENT_ACCEL_TCG, disk, console, &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
}

static void
test_round_trip (void)
{
  g_autoptr (Drover__V1__VmSpec) spec
      = make_spec ("web-1", "console=ttyS0 quiet");
  g_autoptr (Drover__V1__VmSpec) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = agent_domain_xml_build (
      spec, AGENT_ACCEL_TCG, "/data/disks/web-1.qcow2",
      "/data/console/web-1.log", &error);

  g_assert_no_error (error);
  g_assert_nonnull (xml);
  g_assert_nonnull (strstr (xml, "<domain type=\"qemu\">"));
  g_assert_nonnull (strstr (xml, "<memory unit=\"KiB\">262144</memory>"));
  g_assert_nonnull (strstr (xml, "<vcpu>2</vcpu>"));
  g_assert_nonnull (strstr (xml, "<kernel>/boot/vmlinuz</kernel>"));
  g_assert_nonnull (strstr (xml, "<target dev=\"vda\" bus=\"virtio\"/>"));
  g_assert_nonnull (strstr (xml, "<driver name=\"qemu\" type=\"qcow2\"/>"));
  g_assert_nonnull (
      strstr (xml, "<source path=\"/data/console/web-1.log\" append=\"on\"/>"));
  g_assert_nonnull (strstr (xml, "<target type=\"serial\" port=\"0\"/>"));
  /* The guest agent's channel, with no path: libvirt picks it. */
  g_assert_nonnull (strstr (
      xml, "<channel type=\"unix\">\n      <source mode=\"bind\"/>\n"
           "      <target type=\"virtio\" name=\"org.qemu.guest_agent.0\"/>"));
  g_assert_nonnull (strstr (xml, "<on_poweroff>destroy</on_poweroff>"));
  g_assert_nonnull (
      strstr (xml, "xmlns:drover=\"https://drover.dev/xmlns/vm/1\""));
  g_assert_null (strstr (xml, "graphics"));

  back = agent_domain_xml_parse (xml, &error);
  g_assert_no_error (error);
  assert_spec_equal (spec, back);
}

static void
test_types_and_no_disk (void)
{
  g_autoptr (Drover__V1__VmSpec) spec = make_spec ("a", "");
  g_autoptr (Drover__V1__VmSpec) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *kvm = NULL;
  g_autofree char *test = NULL;

  kvm = agent_domain_xml_build (spec, AGENT_ACCEL_KVM, "/d/a.qcow2", "/c/a.log",
                                &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (kvm, "<domain type=\"kvm\">"));

  spec->disk = 0;
  g_free (spec->kernel);
  spec->kernel = (char *)protobuf_c_empty_string;
  g_free (spec->initrd);
  spec->initrd = (char *)protobuf_c_empty_string;
  test = agent_domain_xml_build (spec, AGENT_ACCEL_TEST, NULL, "/c/a.log",
                                 &error);
  g_assert_no_error (error);
  g_assert_nonnull (strstr (test, "<domain type=\"test\">"));
  g_assert_null (strstr (test, "<disk"));
  g_assert_null (strstr (test, "<kernel>"));
  g_assert_null (strstr (test, "<cmdline>"));
  back = agent_domain_xml_parse (test, &error);
  g_assert_no_error (error);
  assert_spec_equal (spec, back);

  /* A disk without a path is a caller bug, refused. */
  spec->disk = 1;
  assert_build_invalid (spec, NULL, "/c/a.log");
}

static void
test_hostile_strings (void)
{
  const char *hostile = "a='x' b=\"y\" </cmdline><kernel>/evil</kernel> &amp; "
                        "& ]]> <!-- <![CDATA[ z";
  g_autoptr (Drover__V1__VmSpec) spec = make_spec ("h", hostile);
  g_autoptr (Drover__V1__VmSpec) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = NULL;
  const char *p;
  guint kernels = 0;

  g_free (spec->accel);
  spec->accel = g_strdup ("<accel>&\"'");
  xml = agent_domain_xml_build (spec, AGENT_ACCEL_TCG, "/d/h.qcow2",
                                "/c/h's \"log\" & <x>.log", &error);
  g_assert_no_error (error);
  /* Exactly one real <kernel> element in <os> and one in the metadata. */
  for (p = xml; (p = strstr (p, "<kernel>")); p++)
    kernels++;
  g_assert_cmpuint (kernels, ==, 1);
  kernels = 0;
  for (p = xml; (p = strstr (p, "kernel>/boot/vmlinuz</")); p++)
    kernels++;
  g_assert_cmpuint (kernels, ==, 2);
  g_assert_null (strstr (xml, "<kernel>/evil"));
  g_assert_null (strstr (xml, "]]>"));

  back = agent_domain_xml_parse (xml, &error);
  g_assert_no_error (error);
  assert_spec_equal (spec, back);

  /* Control characters cannot be carried by XML: refused up front. */
  g_free (spec->cmdline);
  spec->cmdline = g_strdup ("console=ttyS0\x01");
  assert_build_invalid (spec, "/d", "/c");
  g_free (spec->cmdline);
  spec->cmdline = g_strdup ("bad utf8 \xff\xfe");
  assert_build_invalid (spec, "/d", "/c");

  /* Names are checked by the builder too. */
  g_free (spec->cmdline);
  spec->cmdline = g_strdup ("");
  g_free (spec->name);
  spec->name = g_strdup ("Bad/..");
  assert_build_invalid (spec, "/d", "/c");
}

static void
test_parse_foreign (void)
{
  static const char foreign[]
      = "<domain type='kvm'><name>other</name><memory unit='KiB'>1024</memory>"
        "<vcpu>1</vcpu><metadata><x:vm xmlns:x='https://example.com/vm'/>"
        "<vm/></metadata></domain>";
  static const char libvirt_units[]
      = "<domain type='qemu'><name>m</name><memory unit='MiB'>64</memory>"
        "<vcpu placement='static'>3</vcpu><metadata>"
        "<drover:vm xmlns:drover='https://drover.dev/xmlns/vm/1'>"
        "<drover:cmdline>x</drover:cmdline></drover:vm></metadata></domain>";
  const char *garbage[] = {
    "",
    "not xml",
    "<domain",
    "<other/>",
    "<domain><name>x</name></domain>", /* no memory, no metadata */
    "<!DOCTYPE d [<!ENTITY e SYSTEM "
    "'file:///etc/passwd'>]><domain><name>&e;</name></domain>",
    "<domain><name>x</name><memory unit='KiB'>lots</memory><metadata>"
    "<d:vm xmlns:d='https://drover.dev/xmlns/vm/1'/></metadata></domain>",
    "<domain><name>x</name><memory unit='parsecs'>1</memory><metadata>"
    "<d:vm xmlns:d='https://drover.dev/xmlns/vm/1'/></metadata></domain>",
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;

  g_assert_null (agent_domain_xml_parse (foreign, &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_NOT_DROVER);
  g_clear_error (&error);

  spec = agent_domain_xml_parse (libvirt_units, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (spec->name, ==, "m");
  g_assert_cmpuint (spec->vcpus, ==, 3);
  g_assert_cmpuint (spec->memory, ==, 64 * 1024 * 1024);
  g_assert_cmpstr (spec->cmdline, ==, "x");
  g_assert_cmpstr (spec->kernel, ==, "");

  g_assert_null (agent_domain_xml_parse (NULL, &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
  g_clear_error (&error);
  for (guint i = 0; i < G_N_ELEMENTS (garbage); i++)
    {
      Drover__V1__VmSpec *bad = agent_domain_xml_parse (garbage[i], &error);

      g_assert_null (bad);
      g_assert_nonnull (error);
      g_assert_true (error->domain == AGENT_ERROR);
      g_assert_true (error->code == AGENT_ERROR_INVALID
                     || error->code == AGENT_ERROR_NOT_DROVER);
      g_clear_error (&error);
    }
}

int
main (int argc, char **argv)
{
  xmlInitParser ();
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/domain-xml/round-trip", test_round_trip);
  g_test_add_func ("/agent/domain-xml/types-and-no-disk",
                   test_types_and_no_disk);
  g_test_add_func ("/agent/domain-xml/hostile-strings", test_hostile_strings);
  g_test_add_func ("/agent/domain-xml/parse-foreign", test_parse_foreign);
  return g_test_run ();
}
