/* Who QEMU runs as, as the agent reads it: libvirt's DAC security model
 * in the capabilities, else qemu.conf (names or "+N", libvirt-qemu when
 * it sets none). */
#include <grp.h>
#include <pwd.h>

#include "agent-private.h"

static void
test_from_caps (void)
{
  static const char caps[]
      = "<capabilities><host><cpu><model>x</model></cpu>"
        "<secmodel><model>none</model><doi>0</doi></secmodel>"
        "<secmodel><model>dac</model><doi>0</doi>"
        "<baselabel type='kvm'>+64055:+107</baselabel>"
        "<baselabel type='qemu'>+64055:+107</baselabel></secmodel>"
        "</host></capabilities>";
  uid_t uid = 1;
  gid_t gid = 1;

  g_assert_true (agent_qemu_ids_from_caps (caps, &uid, &gid));
  g_assert_cmpuint (uid, ==, 64055);
  g_assert_cmpuint (gid, ==, 107);
  /* No DAC model (the test driver), a label that is not "+UID:+GID". */
  g_assert_false (agent_qemu_ids_from_caps (
      "<capabilities><host/></capabilities>", &uid, &gid));
  g_assert_false (agent_qemu_ids_from_caps (
      "<capabilities><host><secmodel><model>dac</model>"
      "<baselabel type='kvm'>libvirt-qemu</baselabel></secmodel></host>"
      "</capabilities>",
      &uid, &gid));
  g_assert_false (agent_qemu_ids_from_caps (NULL, &uid, &gid));
}

static void
test_from_conf (void)
{
  uid_t uid = 1;
  gid_t gid = 1;

  g_assert_true (agent_qemu_ids_from_conf ("# comment\n"
                                           "user = \"+0\"\n"
                                           "  group=\"+107\"  # kvm\n",
                                           &uid, &gid));
  g_assert_cmpuint (uid, ==, 0);
  g_assert_cmpuint (gid, ==, 107);
  g_assert_true (agent_qemu_ids_from_conf (
      "user = \"root\"\ngroup = \"root\"\n", &uid, &gid));
  g_assert_cmpuint (uid, ==, 0);
  g_assert_cmpuint (gid, ==, 0);
  g_assert_false (
      agent_qemu_ids_from_conf ("user = \"no-such-user-xyz\"\n", &uid, &gid));
  /* Unset: libvirt's built-in libvirt-qemu, where it exists. */
  if (getpwnam ("libvirt-qemu") && getgrnam ("libvirt-qemu"))
    {
      g_assert_true (
          agent_qemu_ids_from_conf ("#user = \"qemu\"\n", &uid, &gid));
      g_assert_cmpuint (uid, ==, getpwnam ("libvirt-qemu")->pw_uid);
      g_assert_cmpuint (gid, ==, getgrnam ("libvirt-qemu")->gr_gid);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/qemu/ids-from-caps", test_from_caps);
  g_test_add_func ("/agent/qemu/ids-from-conf", test_from_conf);
  return g_test_run ();
}
