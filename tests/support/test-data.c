/* Test data for the migration channel tests and benchmark. */
#include "test-support.h"

#include <string.h>

GBytes *
test_data_new (TestDataKind kind, gsize len, guint32 seed)
{
  static const char *words[] = {
    "migration", "page",    "dirty",  "bitmap", "guest", "memory",
    "vcpu",      "iter",    "remain", "bytes",  "total", "downtime",
    "qemu",      "libvirt", "drover", "host",   "sched", "ok",
  };
  g_autoptr (GRand) rand = g_rand_new_with_seed (seed);
  guint8 *p = g_malloc0 (len);
  gsize at = 0;

  switch (kind)
    {
    case TEST_DATA_RANDOM:
      for (; at + 4 <= len; at += 4)
        {
          guint32 v = g_rand_int (rand);
          memcpy (p + at, &v, 4);
        }
      break;
    case TEST_DATA_TEXT:
      while (at < len)
        {
          char line[160];
          int n = g_snprintf (
              line, sizeof line, "12:%02u:%02u %s=%u %s %s/%u\n",
              g_rand_int_range (rand, 0, 60), g_rand_int_range (rand, 0, 60),
              words[g_rand_int_range (rand, 0, G_N_ELEMENTS (words))],
              g_rand_int_range (rand, 0, 4096),
              words[g_rand_int_range (rand, 0, G_N_ELEMENTS (words))],
              words[g_rand_int_range (rand, 0, G_N_ELEMENTS (words))],
              g_rand_int_range (rand, 0, 64));
          gsize take = MIN ((gsize)n, len - at);
          memcpy (p + at, line, take);
          at += take;
        }
      break;
    case TEST_DATA_ZERO:
      break;
    }
  return g_bytes_new_take (p, len);
}
