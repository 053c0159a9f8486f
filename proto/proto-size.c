/* Sizes as people write them: "1.5G" in, "1.5 GiB" out. */
#include "proto.h"

/* Multiplier for a unit letter, 0 if it is not one. */
static guint64
unit_multiplier (char c)
{
  switch (g_ascii_toupper (c))
    {
    case 'K':
      return G_GUINT64_CONSTANT (1) << 10;
    case 'M':
      return G_GUINT64_CONSTANT (1) << 20;
    case 'G':
      return G_GUINT64_CONSTANT (1) << 30;
    case 'T':
      return G_GUINT64_CONSTANT (1) << 40;
    default:
      return 0;
    }
}

gboolean
proto_parse_size (const char *what, const char *text, guint64 *out,
                  GError **error)
{
  const char *p = text;
  guint64 whole = 0;
  guint64 frac = 0;     /* fraction digits as an integer ... */
  guint64 frac_div = 1; /* ... over this power of ten */
  guint64 mult = 1;
  guint64 value;
  gboolean any_digit = FALSE;

  if (text == NULL || *text == '\0')
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "%s: empty size", what);
      return FALSE;
    }
  if (*p == '-' || *p == '+')
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "%s: '%s' is not a size (no sign allowed)", what, text);
      return FALSE;
    }
  for (; g_ascii_isdigit (*p); p++)
    {
      any_digit = TRUE;
      if (whole > (G_MAXUINT64 - (guint64)(*p - '0')) / 10)
        goto too_big;
      whole = whole * 10 + (guint64)(*p - '0');
    }
  if (*p == '.')
    {
      p++;
      for (; g_ascii_isdigit (*p); p++)
        {
          any_digit = TRUE;
          /* Nineteen fraction digits are more than any unit can use; more
           * would overflow frac_div. */
          if (frac_div >= G_GUINT64_CONSTANT (1000000000000000000))
            {
              g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                           "%s: '%s' has too many decimals", what, text);
              return FALSE;
            }
          frac = frac * 10 + (guint64)(*p - '0');
          frac_div *= 10;
        }
    }
  if (!any_digit)
    goto garbage;
  if (*p == 'b' || *p == 'B')
    {
      /* Plain bytes: "4096B". */
      if (p[1] != '\0')
        goto garbage;
    }
  else if (*p != '\0')
    {
      mult = unit_multiplier (*p);
      if (mult == 0)
        goto garbage;
      p++;
      /* Optional "B" or "iB" after the unit letter. */
      if (*p == 'i' || *p == 'I')
        p++;
      if (*p == 'b' || *p == 'B')
        p++;
      if (*p != '\0')
        goto garbage;
    }

  if (whole > G_MAXUINT64 / mult)
    goto too_big;
  value = whole * mult;
  if (frac != 0)
    {
      /* frac / frac_div * mult, exactly: frac < frac_div <= 1e18 and
       * mult <= 2^40, so use 128-bit arithmetic for the product. */
      unsigned __int128 num = (unsigned __int128)frac * mult;
      if (num % frac_div != 0)
        {
          g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                       "%s: '%s' is not a whole number of bytes", what, text);
          return FALSE;
        }
      guint64 extra = (guint64)(num / frac_div);
      if (value > G_MAXUINT64 - extra)
        goto too_big;
      value += extra;
    }
  *out = value;
  return TRUE;

garbage:
  g_set_error (
      error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
      "%s: '%s' is not a size (use bytes or a number with K, M, G or T, "
      "e.g. 512M or 1.5G)",
      what, text);
  return FALSE;
too_big:
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
               "%s: '%s' is too large", what, text);
  return FALSE;
}

/* BYTES in the largest binary unit that keeps the number below 1024. FULL:
 * always one decimal ("512.0 MiB", columns line up); otherwise like ls -h,
 * one decimal below ten and whole numbers above ("1.5 GiB", "512 MiB"). */
static char *
format_size (guint64 bytes, gboolean full)
{
  static const char *const units[]
      = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  double v = (double)bytes / 1024.0;
  guint i = 0;
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (bytes < 1024)
    return g_strdup_printf ("%" G_GUINT64_FORMAT " B", bytes);
  /* Move up while the value would print as 1024 or more. */
  while (v >= (full ? 1023.95 : 1023.5) && i + 1 < G_N_ELEMENTS (units))
    {
      v /= 1024.0;
      i++;
    }
  g_ascii_formatd (buf, sizeof buf, full || v < 9.95 ? "%.1f" : "%.0f", v);
  return g_strdup_printf ("%s %s", buf, units[i]);
}

char *
proto_format_size (guint64 bytes)
{
  return format_size (bytes, TRUE);
}

char *
proto_format_size_brief (guint64 bytes)
{
  return format_size (bytes, FALSE);
}
