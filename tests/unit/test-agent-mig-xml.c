/* The destination's check of the domain an incoming migration brings
 * (agent_mig_xml_check): the domain libvirt 9.0 really sends for a
 * Drover VM passes (taken from a migration, paths replaced), and each
 * way of naming a host path of the source's choosing, or of making the
 * destination run something, is refused. */
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "agent-private.h"
#include "test-pki.h"

#define EMULATOR "/usr/bin/qemu-system-x86_64"

/* What libvirt sent as destination_xml (with --disk). */
static const char domain_xml[]
    = "<domain type='qemu'>\n"
      "  <name>vm</name>\n"
      "  <uuid>f4aeb7f2-e848-469a-8914-15dbb773319b</uuid>\n"
      "  <metadata>\n"
      "    <drover:vm xmlns:drover=\"https://drover.dev/xmlns/vm/1\">\n"
      "      <drover:name>vm</drover:name>\n"
      "      <drover:kernel>@KERNEL@</drover:kernel>\n"
      "      <drover:initrd>@INITRD@</drover:initrd>\n"
      "    </drover:vm>\n"
      "  </metadata>\n"
      "  <memory unit='KiB'>131072</memory>\n"
      "  <currentMemory unit='KiB'>131072</currentMemory>\n"
      "  <vcpu placement='static'>1</vcpu>\n"
      "  <resource><partition>/machine</partition></resource>\n"
      "  <os>\n"
      "    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>\n"
      "    <kernel>@KERNEL@</kernel>\n"
      "    <initrd>@INITRD@</initrd>\n"
      "    <cmdline>console=ttyS0 quiet pti=on</cmdline>\n"
      "    <boot dev='hd'/>@OS@\n"
      "  </os>\n"
      "  <cpu mode='custom' match='exact' check='none'>\n"
      "    <model fallback='forbid'>qemu64</model>\n"
      "  </cpu>\n"
      "  <clock offset='utc'/>\n"
      "  <on_poweroff>destroy</on_poweroff>\n"
      "  <on_reboot>restart</on_reboot>\n"
      "  <on_crash>destroy</on_crash>\n"
      "  <devices>\n"
      "    <emulator>@EMULATOR@</emulator>\n"
      "    @DISK_ELEMENT@\n"
      "    <serial type='@SERIAL_TYPE@'>\n"
      "      <source path='@CONSOLE@' append='on'/>@SERIAL@\n"
      "      <target type='isa-serial' port='0'>\n"
      "        <model name='isa-serial'/>\n"
      "      </target>\n"
      "    </serial>\n"
      "    <console type='file'>\n"
      "      <source path='@CONSOLE@' append='on'/>\n"
      "      <target type='serial' port='0'/>\n"
      "    </console>\n"
      "    <input type='mouse' bus='ps2'/>\n"
      "    <memballoon model='virtio'>\n"
      "      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' "
      "function='0x0'/>\n"
      "    </memballoon>@DEVICES@\n"
      "  </devices>@DOMAIN@\n"
      "</domain>\n";

static const char disk_element[]
    = "<disk type='@DISK_TYPE@' device='disk'>\n"
      "      <driver name='qemu' type='qcow2'/>\n"
      "      <source file='@DISK@'/>\n"
      "      <backingStore/>\n"
      "      <target dev='vda' bus='virtio'/>\n"
      "      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' "
      "function='0x0'/>\n"
      "    </disk>";

/* Finish3's cookie, with the persistent domain in it. */
static const char cookie_xml[]
    = "<qemu-migration>\n"
      "  <name>vm</name>\n"
      "  <hostname>h1</hostname>\n"
      "  <feature name='persistent'/>\n"
      "  @COOKIE_DOMAIN@\n"
      "  <nbd><disk target='@NBD@' capacity='33554432'/></nbd>\n"
      "  <statistics><downtime>239</downtime></statistics>\n"
      "</qemu-migration>\n";

typedef struct
{
  char *dir;
  char *images;
  char *kernel, *initrd;
  char *outside; /* a readable file outside the image directory */
  char *disk, *console;
  GMainContext *ctx;
  Agent *agent;
} Fixture;

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *escape = NULL;
  AgentConfig config = { 0 };

  f->dir = g_dir_make_tmp ("test-agent-mig-xml-XXXXXX", &error);
  g_assert_no_error (error);
  f->images = g_build_filename (f->dir, "images", NULL);
  g_assert_cmpint (g_mkdir (f->images, 0755), ==, 0);
  f->kernel = g_build_filename (f->images, "vmlinuz", NULL);
  f->initrd = g_build_filename (f->images, "initrd.img", NULL);
  f->outside = g_build_filename (f->dir, "secret", NULL);
  escape = g_build_filename (f->images, "escape", NULL);
  g_assert_true (g_file_set_contents (f->kernel, "k", -1, NULL));
  g_assert_true (g_file_set_contents (f->initrd, "i", -1, NULL));
  g_assert_true (g_file_set_contents (f->outside, "s", -1, NULL));
  /* A link in the image directory to a file outside it. */
  g_assert_cmpint (symlink (f->outside, escape), ==, 0);
  f->disk = g_build_filename (f->dir, "disks", "vm.qcow2", NULL);
  f->console = g_build_filename (f->dir, "console", "vm.log", NULL);

  config.name = (char *)"h1";
  config.listen = (char *)"127.0.0.1:0";
  config.libvirt_uri = (char *)"test:///default";
  config.accel = AGENT_ACCEL_TEST;
  config.data_dir = f->dir;
  config.image_dir = f->images;
  config.insecure = TRUE;
  f->ctx = g_main_context_new ();
  f->agent = agent_new (&config, f->ctx, &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  agent_unref (f->agent);
  g_main_context_unref (f->ctx);
  test_rmtree (f->dir);
  g_free (f->dir);
  g_free (f->images);
  g_free (f->kernel);
  g_free (f->initrd);
  g_free (f->outside);
  g_free (f->disk);
  g_free (f->console);
}

/* TEMPLATE with each "@KEY@" replaced by its value in the
 * NULL-terminated KEY, VALUE PAIRS, or else by its default. */
static char *
fill (Fixture *f, const char *template, const char *const *pairs)
{
  const char *defaults[] = {
    "DISK_ELEMENT",  disk_element, "DISK_TYPE",   "file",   "DISK",   f->disk,
    "CONSOLE",       f->console,   "SERIAL_TYPE", "file",   "KERNEL", f->kernel,
    "INITRD",        f->initrd,    "EMULATOR",    EMULATOR, "NBD",    "vda",
    "COOKIE_DOMAIN", "",           "OS",          "",       "SERIAL", "",
    "DEVICES",       "",           "DOMAIN",      "",       NULL,
  };
  GString *s = g_string_new (template);

  /* In the order of DEFAULTS: the disk element brings keys of its own. */
  for (guint i = 0; defaults[i]; i += 2)
    {
      g_autofree char *key = g_strdup_printf ("@%s@", defaults[i]);
      const char *value = defaults[i + 1];

      for (guint j = 0; pairs[j]; j += 2)
        if (strcmp (pairs[j], defaults[i]) == 0)
          value = pairs[j + 1];
      g_string_replace (s, key, value, 0);
    }
  return g_string_free (s, FALSE);
}

static gboolean
check (Fixture *f, gboolean with_disk, const char *what, const char *value,
       GError **error)
{
  AgentMigXmlPaths paths
      = { "vm", with_disk ? f->disk : NULL, f->console, EMULATOR };

  return agent_mig_xml_check (f->agent, &paths, what, value, error);
}

static void
test_accepts_drover_domains (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  const char *no_disk[] = { "DISK_ELEMENT", "", NULL };
  const char *dynamic[]
      = { "DOMAIN",
          "<seclabel type='dynamic' model='dac' relabel='yes'>"
          "<label>+64055:+64055</label><imagelabel>+64055:+64055</imagelabel>"
          "</seclabel>",
          NULL };
  g_autofree char *domain = fill (f, domain_xml, (const char *[]){ NULL });
  g_autofree char *bare = fill (f, domain_xml, no_disk);
  g_autofree char *labelled = fill (f, domain_xml, dynamic);
  /* The guest agent's channel as libvirt's migratable XML has it: no
   * source path (the destination's libvirt picks one). */
  g_autofree char *with_agent = fill (
      f, domain_xml,
      (const char *[]){ "DEVICES",
                        "<channel type='unix'><source mode='bind'/>"
                        "<target type='virtio' name='org.qemu.guest_agent.0'/>"
                        "<address type='virtio-serial' controller='0' bus='0' "
                        "port='1'/></channel>",
                        NULL });
  g_autofree char *cookie
      = fill (f, cookie_xml, (const char *[]){ "COOKIE_DOMAIN", domain, NULL });

  g_assert_true (check (f, TRUE, "destination_xml", domain, &error));
  g_assert_true (check (f, TRUE, "persistent_xml", domain, &error));
  g_assert_true (check (f, TRUE, "cookie", cookie, &error));
  g_assert_true (check (f, TRUE, "destination_name", "vm", &error));
  g_assert_true (check (f, FALSE, "destination_xml", bare, &error));
  g_assert_true (check (f, TRUE, "destination_xml", labelled, &error));
  g_assert_true (check (f, TRUE, "destination_xml", with_agent, &error));
  g_assert_no_error (error);
}

/* One change to the domain (KEY, VALUE), and what the refusal says. */
typedef struct
{
  const char *key, *value, *says;
} Change;

static void
test_refuses_foreign_paths (Fixture *f, gconstpointer data)
{
  g_autofree char *escape = g_build_filename (f->images, "escape", NULL);
  g_autofree char *split
      = g_strdup_printf ("%s/<!-- -->../../../etc/passwd", f->images);
  g_autofree char *inside_dot = g_strdup_printf ("%s/../secret", f->images);
  const Change changes[] = {
    { "DISK", "/etc/shadow", "disk path /etc/shadow is not" },
    { "DISK", "vm.qcow2", "disk path vm.qcow2 is not" },
    { "CONSOLE", "/var/log/auth.log", "console path /var/log/auth.log" },
    { "KERNEL", "/etc/passwd", "not in the image directory" },
    { "KERNEL", f->outside, "not in the image directory" },
    { "KERNEL", escape, "not in the image directory" },
    { "KERNEL", inside_dot, "not in the image directory" },
    { "KERNEL", "../../../etc/passwd", "not in the image directory" },
    { "INITRD", split, "not in the image directory" },
    { "EMULATOR", "/bin/sh", "emulator /bin/sh is not" },
    { "DISK_TYPE", "block", "a disk of type block" },
    { "SERIAL_TYPE", "dev", "a serial of type dev" },
    { "SERIAL", "<log file='/etc/cron.d/x'/>", "<log> inside <serial>" },
    { "OS", "<loader readonly='yes'>/usr/share/OVMF/OVMF_CODE.fd</loader>",
      "not in the image directory" },
    { "OS", "<nvram template='/etc/shadow'/>", "/etc/shadow" },
    { "OS", "<acpi><table type='slic'>/etc/shadow</table></acpi>",
      "<acpi> inside <os>" },
    { "DEVICES",
      "<hostdev mode='subsystem' type='pci'><source><address bus='0'/>"
      "</source></hostdev>",
      "<hostdev> inside <devices>" },
    { "DEVICES",
      "<filesystem type='mount'><source dir='/'/><target dir='root'/>"
      "</filesystem>",
      "<filesystem> inside <devices>" },
    { "DEVICES",
      "<interface type='ethernet'><script path='/tmp/x.sh'/></interface>",
      "an interface of type ethernet, not a bridge" },
    { "DEVICES",
      "<rng model='virtio'><backend model='random'>/dev/sda"
      "</backend></rng>",
      "<rng> inside <devices>" },
    { "DOMAIN",
      "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/"
      "1.0'><qemu:arg value='-runas'/></qemu:commandline>",
      "<commandline> inside <domain>" },
    { "DOMAIN",
      "<sysinfo type='fwcfg'><entry name='opt/x' file='/etc/shadow'/>"
      "</sysinfo>",
      "<sysinfo> inside <domain>" },
    { "DOMAIN",
      "<seclabel type='static' model='dac'><label>+0:+0</label>"
      "</seclabel>",
      "a security label of type static" },
    { "DOMAIN",
      "<seclabel type='dynamic' model='dac'><baselabel>+0:+0"
      "</baselabel></seclabel>",
      "<baselabel> inside <seclabel>" },
    { "DOMAIN", "<description>/etc/shadow</description>", "/etc/shadow" },
    /* Channels: the guest agent's only, and never with a path. */
    { "DEVICES",
      "<channel type='unix'><source mode='bind' path='/etc/shadow'/>"
      "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
      "a channel source with a path" },
    { "DEVICES",
      "<channel type='unix'><source mode='bind'/>"
      "<target type='virtio' name='org.other.0'/></channel>",
      "a channel other than the guest agent's" },
    { "DEVICES",
      "<channel type='spicevmc'>"
      "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
      "a channel other than the guest agent's" },
    { "DEVICES",
      "<channel type='unix'><source mode='connect'/><log file='/tmp/x'/>"
      "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
      "<log> inside <channel>" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (changes); i++)
    {
      g_autoptr (GError) error = NULL;
      const char *pairs[] = { changes[i].key, changes[i].value, NULL };
      g_autofree char *xml = fill (f, domain_xml, pairs);

      if (check (f, TRUE, "destination_xml", xml, &error))
        g_error ("change %u (%s) passed", i, changes[i].value);
      g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
      if (!strstr (error->message, changes[i].says))
        g_error ("change %u: '%s' does not say '%s'", i, error->message,
                 changes[i].says);
    }
}

/* check() refuses VALUE for WHAT, saying SAYS. */
static void
assert_refused (Fixture *f, gboolean with_disk, const char *what,
                const char *value, const char *says)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (check (f, with_disk, what, value, &error));
  g_assert_nonnull (strstr (error->message, says));
}

/* The cloud-init seed's cdrom (issue 13): only read-only, only at the
 * seed this host made, only when it made one. */
static void
test_seed_cdrom (Fixture *f, gconstpointer data)
{
  g_autofree char *seed = g_strconcat (f->disk, ".seed.iso", NULL);
  g_autofree char *cd = g_strdup_printf (
      "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
      "<source file='%s'/><target dev='sda' bus='sata'/><readonly/></disk>",
      seed);
  g_autofree char *rw = g_strdup_printf (
      "<disk type='file' device='cdrom'><driver name='qemu' type='raw'/>"
      "<source file='%s'/><target dev='sda' bus='sata'/></disk>",
      seed);
  g_autofree char *domain
      = fill (f, domain_xml, (const char *[]){ "DEVICES", cd, NULL });
  g_autofree char *writable
      = fill (f, domain_xml, (const char *[]){ "DEVICES", rw, NULL });
  g_autofree char *elsewhere
      = fill (f, domain_xml,
              (const char *[]){ "DEVICES",
                                "<disk type='file' device='cdrom'><source "
                                "file='/etc/shadow'/><target dev='sda' "
                                "bus='sata'/><readonly/></disk>",
                                NULL });
  AgentMigXmlPaths paths = { "vm", f->disk, f->console, EMULATOR, seed };
  g_autoptr (GError) error = NULL;

  g_assert_true (agent_mig_xml_check (f->agent, &paths, "destination_xml",
                                      domain, &error));
  g_assert_no_error (error);
  g_assert_false (agent_mig_xml_check (f->agent, &paths, "destination_xml",
                                       writable, &error));
  g_assert_nonnull (strstr (error->message, "not read-only"));
  g_clear_error (&error);
  g_assert_false (agent_mig_xml_check (f->agent, &paths, "destination_xml",
                                       elsewhere, &error));
  g_assert_nonnull (strstr (error->message, "cdrom path /etc/shadow"));
  g_clear_error (&error);
  assert_refused (f, TRUE, "destination_xml", domain, "no cloud-init seed");
}

static void
test_refuses_other_vms (Fixture *f, gconstpointer data)
{
  g_autofree char *domain = fill (f, domain_xml, (const char *[]){ NULL });
  g_autofree char *other = g_strdup (domain);
  g_autofree char *bad_disk
      = fill (f, domain_xml, (const char *[]){ "DISK", "/etc/shadow", NULL });
  g_autofree char *cookie_bad = fill (
      f, cookie_xml, (const char *[]){ "COOKIE_DOMAIN", bad_disk, NULL });
  g_autofree char *cookie_vdb
      = fill (f, cookie_xml, (const char *[]){ "NBD", "vdb", NULL });
  const char *entity = "<!DOCTYPE domain [<!ENTITY p \"/etc/shadow\">]>"
                       "<domain><name>vm</name></domain>";

  memcpy (strstr (other, "<name>vm</name>"), "<name>xx</name>", 15);
  assert_refused (f, TRUE, "destination_xml", other, "named 'xx', not 'vm'");
  assert_refused (f, TRUE, "destination_name", "xx", "would be named 'xx'");
  assert_refused (f, FALSE, "destination_xml", domain,
                  "a disk, but the VM has none");
  assert_refused (f, TRUE, "cookie", cookie_bad, "disk path /etc/shadow");
  assert_refused (f, TRUE, "cookie", cookie_vdb, "exports disk vdb");
  assert_refused (f, TRUE, "persistent_xml", entity,
                  "document type declaration");
  assert_refused (f, TRUE, "destination_xml", "<not-xml", "does not parse");
}

/* Issue 13: a NIC on a bridge this host has passes (as libvirt sends it,
 * with target, alias and address); another kind, a script, or a bridge
 * the host lacks does not. */
static void
test_nics (Fixture *f, gconstpointer data)
{
  g_autofree char *sysfs = g_build_filename (f->dir, "sys", NULL);
  g_autofree char *brdir
      = g_build_filename (sysfs, "class", "net", "br-t", "bridge", NULL);
  const char *nic
      = "<interface type='bridge'><mac address='02:44:52:00:00:01'/>"
        "<source bridge='@BR@'/><target dev='vnet3'/>"
        "<model type='virtio'/><mtu size='1400'/>"
        "<alias name='net0'/><address type='pci' domain='0x0000' "
        "bus='0x00' slot='0x04' function='0x0'/>@X@</interface>";
  struct
  {
    const char *br, *x, *says;
  } cases[] = {
    { "br-t", "", NULL },
    { "br-t", "<virtualport type='openvswitch'/><vlan><tag id='5'/></vlan>",
      NULL },
    { "br-none", "", "which this host lacks" },
    { "br-t", "<script path='/bin/evil'/>", "<script> inside <interface>" },
    { "br-t", "<virtualport type='802.1Qbh'/>", "virtualport of type" },
  };

  g_assert_cmpint (g_mkdir_with_parents (brdir, 0755), ==, 0);
  agent_bridges_set_sysfs_root (sysfs);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *one = g_strdup (nic);
      g_autofree char *domain = NULL;
      GString *d = g_string_new (one);

      g_string_replace (d, "@BR@", cases[i].br, 0);
      g_string_replace (d, "@X@", cases[i].x, 0);
      g_free (one);
      one = g_string_free (d, FALSE);
      domain = fill (f, domain_xml, (const char *[]){ "DEVICES", one, NULL });
      if (cases[i].says == NULL)
        {
          g_assert_true (check (f, TRUE, "destination_xml", domain, &error));
          g_assert_no_error (error);
          continue;
        }
      g_assert_false (check (f, TRUE, "destination_xml", domain, &error));
      g_assert_nonnull (error);
      if (strstr (error->message, cases[i].says) == NULL)
        g_error ("case %u: %s", i, error->message);
    }
  /* Another kind of interface. */
  {
    g_autoptr (GError) error = NULL;
    g_autofree char *domain = fill (
        f, domain_xml,
        (const char *[]){ "DEVICES",
                          "<interface type='ethernet'><script path='x'/>"
                          "</interface>",
                          NULL });

    g_assert_false (check (f, TRUE, "destination_xml", domain, &error));
    g_assert_nonnull (strstr (error->message, "not a bridge"));
  }
  agent_bridges_set_sysfs_root (NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add ("/agent/mig-xml/accepts-drover-domains", Fixture, NULL,
              fixture_set_up, test_accepts_drover_domains, fixture_tear_down);
  g_test_add ("/agent/mig-xml/nics", Fixture, NULL, fixture_set_up, test_nics,
              fixture_tear_down);
  g_test_add ("/agent/mig-xml/refuses-foreign-paths", Fixture, NULL,
              fixture_set_up, test_refuses_foreign_paths, fixture_tear_down);
  g_test_add ("/agent/mig-xml/seed-cdrom", Fixture, NULL, fixture_set_up,
              test_seed_cdrom, fixture_tear_down);
  g_test_add ("/agent/mig-xml/refuses-other-vms", Fixture, NULL, fixture_set_up,
              test_refuses_other_vms, fixture_tear_down);
  return g_test_run ();
}
