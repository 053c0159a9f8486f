/* Small helpers of libdrover-scheduler: the error domain and sizes. */
#include "sched-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK (drover - sched - error - quark, sched_error)

char *
sched_format_size (guint64 bytes)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
  double value = bytes;
  int unit = -1;

  if (bytes < 1024)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " B", bytes);
  while (value >= 1024 && unit < (int)G_N_ELEMENTS (units) - 1)
    {
      value /= 1024;
      unit++;
    }
  /* Like ls -h: one decimal below ten, whole numbers above. */
  if (value < 10)
    return g_strdup_printf ("%.1f %s", value, units[unit]);
  return g_strdup_printf ("%.0f %s", value, units[unit]);
}

gboolean
sched_parse_size (const char *text, guint64 *out, GError **error)
{
  static const struct
  {
    const char *suffix;
    guint shift;
  } suffixes[] = {
    { "", 0 },     { "B", 0 },  { "K", 10 },   { "KiB", 10 },
    { "k", 10 },   { "M", 20 }, { "MiB", 20 }, { "G", 30 },
    { "GiB", 30 }, { "T", 40 }, { "TiB", 40 },
  };
  char *end = NULL;
  guint64 value;

  if (text == NULL || !g_ascii_isdigit (text[0]))
    goto invalid;
  errno = 0;
  value = g_ascii_strtoull (text, &end, 10);
  if (errno != 0)
    goto invalid;
  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      if (strcmp (end, suffixes[i].suffix) != 0)
        continue;
      if (suffixes[i].shift > 0 && value > (G_MAXUINT64 >> suffixes[i].shift))
        goto invalid;
      *out = value << suffixes[i].shift;
      return TRUE;
    }

invalid:
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "invalid size '%s' (examples: 256M, 1G, 1048576)",
               text ? text : "");
  return FALSE;
}
