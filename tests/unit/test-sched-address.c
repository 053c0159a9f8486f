/* sched_address_check: what an agent may register as its address, against
 * a table of hostile inputs (every other gRPC target form, names, odd
 * numbers, bytes that do not belong). */
#include "sched-private.h"

#include <string.h>

static void
test_accepted (void)
{
  static const char *const good[] = {
    "127.0.0.2:7401",    "10.1.2.3:1",
    "192.168.0.1:65535", "0.0.0.0:7401",
    "[::1]:7401",        "[fe80::1]:7401",
    "[2001:db8::7]:443", "[::ffff:127.0.0.1]:7401",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GError) error = NULL;

      g_test_message ("%s", good[i]);
      g_assert_true (sched_address_check (good[i], &error));
      g_assert_no_error (error);
    }
}

static void
test_refused (void)
{
  g_autofree char *huge = g_strnfill (100000, '1');
  const char *const bad[] = {
    /* gRPC target forms other than an address */
    "unix:/var/run/libvirt/libvirt-sock",
    "unix:///var/run/libvirt/libvirt-sock",
    "unix-abstract:drover",
    "vsock:3:7401",
    "dns:///agent.example:7401",
    "dns://8.8.8.8/agent:7401",
    "ipv4:127.0.0.1:7401",
    "ipv6:[::1]:7401",
    "127.0.0.1:7401,127.0.0.2:7401",
    "ipv4:127.0.0.1:1,10.0.0.1:2",
    /* names */
    "localhost:7401",
    "agent.example:7401",
    "host1:7401",
    /* no port, bad ports */
    "127.0.0.1",
    "127.0.0.1:",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "127.0.0.1:99999",
    "127.0.0.1:07401",
    "127.0.0.1:+7401",
    "127.0.0.1:-1",
    "127.0.0.1:0x1ce9",
    "127.0.0.1:7401 ",
    "127.0.0.1:74 01",
    "127.0.0.1:7401\n",
    "127.0.0.1:7401:1",
    /* not quite IPv4 */
    " 127.0.0.1:7401",
    "127.1:7401",
    "127.0.0:7401",
    "1.2.3.4.5:7401",
    "256.0.0.1:7401",
    "01.2.3.4:7401",
    "0x7f.0.0.1:7401",
    "127.0.0.1/8:7401",
    ":7401",
    /* IPv6 forms */
    "::1:7401",
    "[::1]",
    "[::1]:",
    "[::1]7401",
    "[::1]:7401x",
    "[::1]:7401]",
    "[[::1]]:7401",
    "[fe80::1%eth0]:7401",
    "[127.0.0.1]:7401",
    "[]:7401",
    "[:::1]:7401",
    "[::1:7401",
    "[0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:1]:7401",
    /* empty, long, not text */
    "",
    huge,
    "127.0.0.1:7401\x01",
    "\xff\xfe:7401",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *shown = g_strescape (bad[i], NULL);

      g_test_message ("'%.80s'", shown);
      g_assert_false (sched_address_check (bad[i], &error));
      g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
      /* Said back escaped and cut: it reaches logs. */
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      g_assert_null (strchr (error->message, '\n'));
      g_assert_cmpuint (strlen (error->message), <, 300);
    }
  g_assert_false (sched_address_check (NULL, NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-address/accepted", test_accepted);
  g_test_add_func ("/sched-address/refused", test_refused);
  return g_test_run ();
}
