/* VM NICs in the domain XML (issue 13): a NIC on a Linux bridge, on an
 * Open vSwitch bridge with a VLAN tag and an MTU, the hot-plug element,
 * the metadata round trip, and refusals. Open vSwitch is not installed
 * here: its form is covered only by these tests. */
#include <string.h>

#include "agent-private.h"

static Drover__V1__VmNic *
make_nic (const char *net, const char *mac, const char *bridge, guint vlan,
          guint mtu, gboolean ovs)
{
  Drover__V1__VmNic base = DROVER__V1__VM_NIC__INIT;

  base.network = (char *)net;
  base.mac = (char *)mac;
  base.bridge = (char *)bridge;
  base.vlan = vlan;
  base.mtu = mtu;
  base.ovs = ovs;
  return proto_msg_copy (&base.base);
}

static Drover__V1__VmSpec *
make_spec (void)
{
  Drover__V1__VmSpec base = DROVER__V1__VM_SPEC__INIT;
  Drover__V1__VmSpec *spec;

  base.name = (char *)"web";
  base.vcpus = 1;
  base.memory = 128 * 1024 * 1024;
  base.kernel = (char *)"/boot/vmlinuz";
  spec = proto_msg_copy (&base.base);
  spec->nics = g_new0 (Drover__V1__VmNic *, 2);
  spec->nics[0] = make_nic ("lan", "02:44:52:00:00:01", "br-lan", 0, 0, FALSE);
  spec->nics[1]
      = make_nic ("dmz", "02:44:52:00:00:02", "ovs-dmz", 12, 1400, TRUE);
  spec->n_nics = 2;
  return spec;
}

static void
test_build_and_parse (void)
{
  g_autoptr (Drover__V1__VmSpec) spec = make_spec ();
  g_autoptr (Drover__V1__VmSpec) back = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *xml
      = agent_domain_xml_build (spec, AGENT_ACCEL_TCG, NULL, NULL, &error);
  const char *lan, *dmz;

  g_assert_no_error (error);
  lan = strstr (xml, "<interface type=\"bridge\">\n"
                     "      <mac address=\"02:44:52:00:00:01\"/>\n"
                     "      <source bridge=\"br-lan\"/>\n"
                     "      <model type=\"virtio\"/>\n"
                     "    </interface>");
  g_assert_nonnull (lan);
  dmz = strstr (xml, "<interface type=\"bridge\">\n"
                     "      <mac address=\"02:44:52:00:00:02\"/>\n"
                     "      <source bridge=\"ovs-dmz\"/>\n"
                     "      <virtualport type=\"openvswitch\"/>\n"
                     "      <vlan>\n"
                     "        <tag id=\"12\"/>\n"
                     "      </vlan>\n"
                     "      <model type=\"virtio\"/>\n"
                     "      <mtu size=\"1400\"/>\n"
                     "    </interface>");
  g_assert_nonnull (dmz);
  g_assert_true (lan < dmz);
  g_assert_nonnull (strstr (xml, "<features>\n    <acpi/>\n  </features>"));

  back = agent_domain_xml_parse (xml, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (back->n_nics, ==, 2);
  g_assert_cmpstr (back->nics[1]->network, ==, "dmz");
  g_assert_cmpstr (back->nics[1]->mac, ==, "02:44:52:00:00:02");
  g_assert_cmpstr (back->nics[1]->bridge, ==, "ovs-dmz");
  g_assert_cmpuint (back->nics[1]->vlan, ==, 12);
  g_assert_cmpuint (back->nics[1]->mtu, ==, 1400);
  /* The host's word, not the metadata's. */
  g_assert_false (back->nics[1]->ovs);
  g_assert_cmpstr (back->nics[0]->network, ==, "lan");
}

static void
test_hotplug_element (void)
{
  g_autoptr (Drover__V1__VmNic) nic
      = make_nic ("lan", "02:44:52:aa:bb:cc", "br0", 0, 9000, FALSE);
  g_autoptr (GError) error = NULL;
  g_autofree char *xml = agent_domain_xml_nic ("web", nic, &error);

  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (xml, "<interface type=\"bridge\">"));
  g_assert_true (g_str_has_suffix (xml, "</interface>"));
  g_assert_nonnull (strstr (xml, "<mac address=\"02:44:52:aa:bb:cc\"/>"));
  g_assert_nonnull (strstr (xml, "<mtu size=\"9000\"/>"));
  g_assert_null (strstr (xml, "virtualport"));
}

static void
test_refusals (void)
{
  struct
  {
    const char *mac, *bridge;
    guint vlan;
    gboolean ovs;
  } bad[] = {
    { "01:00:5e:00:00:01", "br0", 0, FALSE },  /* multicast */
    { "02:44:52:00:00", "br0", 0, FALSE },     /* short */
    { "02:44:52:00:00:zz", "br0", 0, FALSE },  /* not hex */
    { "02:44:52:00:00:01", "", 0, FALSE },     /* no bridge */
    { "02:44:52:00:00:01", "../x", 0, FALSE }, /* a path */
    { "02:44:52:00:00:01", "br 0", 0, FALSE }, /* a space */
    { "02:44:52:00:00:01", "br0", 12, FALSE }, /* VLAN on Linux bridge */
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (Drover__V1__VmSpec) spec = make_spec ();
      g_autoptr (Drover__V1__VmNic) nic = make_nic (
          "lan", bad[i].mac, bad[i].bridge, bad[i].vlan, 0, bad[i].ovs);
      g_autoptr (GError) error = NULL;
      g_autoptr (GError) error2 = NULL;
      g_autofree char *xml = NULL;
      g_autofree char *one = agent_domain_xml_nic ("web", nic, &error);

      g_assert_null (one);
      g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
      proto_msg_free (spec->nics[0]);
      spec->nics[0] = g_steal_pointer (&nic);
      xml = agent_domain_xml_build (spec, AGENT_ACCEL_TCG, NULL, NULL, &error2);
      g_assert_null (xml);
      g_assert_error (error2, AGENT_ERROR, AGENT_ERROR_INVALID);
    }
}

static void
test_mac_parse (void)
{
  guint8 mac[6];
  char text[PROTO_MAC_TEXT_LEN + 1];
  g_autoptr (GError) error = NULL;

  g_assert_true (proto_mac_parse ("02:44:52:AB:cd:0F", mac, &error));
  g_assert_no_error (error);
  proto_mac_format (mac, text);
  g_assert_cmpstr (text, ==, "02:44:52:ab:cd:0f");
  g_assert_false (proto_mac_parse ("ff:ff:ff:ff:ff:ff", mac, &error));
  g_assert_nonnull (strstr (error->message, "multicast"));
  g_clear_error (&error);
  g_assert_false (proto_mac_parse ("00:00:00:00:00:00", mac, &error));
  g_clear_error (&error);
  g_assert_false (proto_mac_parse ("02-44-52-00-00-01", mac, &error));
  g_assert_nonnull (strstr (error->message, "malformed"));
  g_clear_error (&error);
  g_assert_false (proto_mac_parse ("02:44:52:00:00:01:", mac, &error));
  g_clear_error (&error);
  g_assert_false (proto_mac_parse ("", mac, &error));
}

static void
test_spec_check_caps (void)
{
  g_autoptr (Drover__V1__VmSpec) spec = make_spec ();
  g_autoptr (GError) error = NULL;

  g_assert_true (proto_vm_spec_check (spec, &error));
  g_assert_no_error (error);
  /* The same MAC twice. */
  g_free (spec->nics[1]->mac);
  spec->nics[1]->mac = g_strdup ("02:44:52:00:00:01");
  g_assert_false (proto_vm_spec_check (spec, &error));
  g_assert_nonnull (strstr (error->message, "two NICs"));
  g_clear_error (&error);
  /* Nine NICs. */
  spec->nics = g_renew (Drover__V1__VmNic *, spec->nics, 9);
  for (guint i = 2; i < 9; i++)
    {
      g_autofree char *mac = g_strdup_printf ("02:44:52:00:01:%02x", i);
      spec->nics[i] = make_nic ("lan", mac, "br0", 0, 0, FALSE);
    }
  g_free (spec->nics[1]->mac);
  spec->nics[1]->mac = g_strdup ("02:44:52:00:00:02");
  spec->n_nics = 9;
  g_assert_false (proto_vm_spec_check (spec, &error));
  g_assert_nonnull (strstr (error->message, "at most 8"));
  g_clear_error (&error);
  spec->n_nics = 8;
  g_assert_true (proto_vm_spec_check (spec, &error));
  spec->n_nics = 9;
  /* A network name that is no name. */
  g_free (spec->nics[0]->network);
  spec->nics[0]->network = g_strdup ("../lan");
  spec->n_nics = 2;
  g_assert_false (proto_vm_spec_check (spec, &error));
  spec->n_nics = 9;
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/nic-xml/build-and-parse", test_build_and_parse);
  g_test_add_func ("/agent/nic-xml/hotplug-element", test_hotplug_element);
  g_test_add_func ("/agent/nic-xml/refusals", test_refusals);
  g_test_add_func ("/agent/nic-xml/mac-parse", test_mac_parse);
  g_test_add_func ("/agent/nic-xml/spec-check-caps", test_spec_check_caps);
  return g_test_run ();
}
