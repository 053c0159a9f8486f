/* Calendar expressions and durations of schedules (issue 16); see
 * sched-calendar.h for the syntax.
 *
 * Each field is a bitmap of the values it matches. The next run is found
 * day by day in the time zone's wall clock (a day that matches the date
 * fields, then its times in order), and each wall-clock time is turned
 * into an instant by GLib, which moves a time inside a spring-forward gap
 * to the end of the gap. A time a fall-back change repeats is taken at
 * its first occurrence only: a repeat whose first occurrence already
 * passed is skipped, so nothing fires twice.
 */
#include "sched-calendar.h"

#include <gio/gio.h>
#include <stdlib.h>
#include <string.h>

#define YEAR_MIN 1970
#define YEAR_MAX 2199
#define YEAR_WORDS (((YEAR_MAX - YEAR_MIN + 1) + 63) / 64)
/* How far ahead sched_calendar_next looks, in days. */
#define SEARCH_DAYS (366 * 10 + 3)
#define MAX_DURATION_S (G_GINT64_CONSTANT (3650) * 86400)

struct _SchedCalendar
{
  char *text;
  guint64 seconds; /* bit S: second S matches */
  guint64 minutes;
  guint64 hours;
  guint64 days;              /* bits 1..31 */
  guint64 months;            /* bits 1..12 */
  guint64 weekdays;          /* bit 0: Monday ... bit 6: Sunday */
  guint64 years[YEAR_WORDS]; /* bit Y - YEAR_MIN */
};

static const char *const weekday_names[]
    = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
static const char *const weekday_long[]
    = { "monday", "tuesday",  "wednesday", "thursday",
        "friday", "saturday", "sunday" };

typedef struct
{
  const char *what; /* "hour", for messages */
  int min, max;
  gboolean names; /* weekday names, not numbers */
  guint64 *bits;  /* enough words for MAX - MIN + 1... indexed by value */
  int base;       /* the value of bit 0 */
} Field;

static void
set_bit (Field *f, int v)
{
  int i = v - f->base;

  f->bits[i / 64] |= G_GUINT64_CONSTANT (1) << (i % 64);
}

static gboolean
has_bit (const guint64 *bits, int base, int v)
{
  int i = v - base;

  return (bits[i / 64] >> (i % 64)) & 1;
}

static gboolean invalid (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, msg);
  return FALSE;
}

/* One value of F in TEXT (a number, or a weekday name). */
static gboolean
parse_value (const Field *f, const char *text, int *out, GError **error)
{
  if (f->names)
    {
      for (int i = 0; i < 7; i++)
        if (g_ascii_strcasecmp (text, weekday_names[i]) == 0
            || g_ascii_strcasecmp (text, weekday_long[i]) == 0)
          {
            *out = i;
            return TRUE;
          }
      return invalid (error, "'%s' is not a weekday (Mon, Tue, ... Sun)", text);
    }
  if (!*text || strspn (text, "0123456789") != strlen (text)
      || strlen (text) > 4)
    return invalid (error, "%s '%s' is not a number", f->what, text);
  *out = atoi (text);
  if (*out < f->min || *out > f->max)
    return invalid (error, "%s %d is out of range %d..%d", f->what, *out,
                    f->min, f->max);
  return TRUE;
}

/* One item of a list: `*`, V, A..B, each optionally /STEP. */
static gboolean
parse_item (Field *f, const char *item, GError **error)
{
  g_auto (GStrv) step_split = g_strsplit (item, "/", 2);
  const char *range = step_split[0];
  const char *dots;
  int lo, hi, step = 1;

  if (step_split[1] != NULL)
    {
      Field sf = { "step", 1, f->max - f->min + 1, FALSE, NULL, 0 };

      if (f->names)
        return invalid (error, "weekdays take no step ('%s')", item);
      if (!parse_value (&sf, step_split[1], &step, error))
        return FALSE;
    }
  if (strcmp (range, "*") == 0)
    {
      lo = f->min;
      hi = f->max;
    }
  else if ((dots = strstr (range, "..")) != NULL)
    {
      g_autofree char *a = g_strndup (range, dots - range);

      if (!parse_value (f, a, &lo, error)
          || !parse_value (f, dots + 2, &hi, error))
        return FALSE;
      if (hi < lo)
        return invalid (error, "%s range '%s' runs backwards", f->what, range);
    }
  else
    {
      if (!parse_value (f, range, &lo, error))
        return FALSE;
      /* "5/10": from 5 on, every 10. */
      hi = step_split[1] != NULL ? f->max : lo;
    }
  for (int v = lo; v <= hi; v += step)
    set_bit (f, v);
  return TRUE;
}

static gboolean
parse_field (Field *f, const char *text, GError **error)
{
  g_auto (GStrv) items = NULL;

  if (!*text)
    return invalid (error, "empty %s", f->what);
  items = g_strsplit (text, ",", -1);
  for (guint i = 0; items[i]; i++)
    if (!parse_item (f, items[i], error))
      return FALSE;
  return TRUE;
}

static gboolean
parse_date (SchedCalendar *cal, const char *text, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text, "-", -1);
  guint n = g_strv_length (parts);
  Field year = { "year", YEAR_MIN, YEAR_MAX, FALSE, cal->years, YEAR_MIN };
  Field month = { "month", 1, 12, FALSE, &cal->months, 0 };
  Field day = { "day", 1, 31, FALSE, &cal->days, 0 };

  if (n != 2 && n != 3)
    return invalid (error, "date '%s' is not YEAR-MONTH-DAY or MONTH-DAY",
                    text);
  return (n == 2 ? parse_field (&year, "*", error)
                 : parse_field (&year, parts[0], error))
         && parse_field (&month, parts[n - 2], error)
         && parse_field (&day, parts[n - 1], error);
}

static gboolean
parse_time (SchedCalendar *cal, const char *text, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text, ":", -1);
  guint n = g_strv_length (parts);
  Field hour = { "hour", 0, 23, FALSE, &cal->hours, 0 };
  Field minute = { "minute", 0, 59, FALSE, &cal->minutes, 0 };
  Field second = { "second", 0, 59, FALSE, &cal->seconds, 0 };

  if (n != 2 && n != 3)
    return invalid (error, "time '%s' is not HOUR:MINUTE[:SECOND]", text);
  return parse_field (&hour, parts[0], error)
         && parse_field (&minute, parts[1], error)
         && parse_field (&second, n == 3 ? parts[2] : "0", error);
}

static const struct
{
  const char *name, *expansion;
} shorthands[] = {
  { "minutely", "*-*-* *:*:00" },   { "hourly", "*-*-* *:00:00" },
  { "daily", "*-*-* 00:00:00" },    { "weekly", "Mon *-*-* 00:00:00" },
  { "monthly", "*-*-01 00:00:00" }, { "yearly", "*-01-01 00:00:00" },
};

static gboolean
parse_expression (SchedCalendar *cal, const char *text, GError **error)
{
  g_auto (GStrv) tokens = g_strsplit_set (text, " \t", -1);
  gboolean seen_weekday = FALSE, seen_date = FALSE, seen_time = FALSE;
  Field weekday = { "weekday", 0, 6, TRUE, &cal->weekdays, 0 };
  guint used = 0;

  for (guint i = 0; tokens[i]; i++)
    {
      const char *t = tokens[i];

      if (!*t)
        continue;
      if (++used > 3)
        return invalid (error, "too many parts in '%s'", text);
      if (g_ascii_isalpha (t[0]))
        {
          if (seen_weekday || seen_date || seen_time)
            return invalid (error, "weekdays come first ('%s')", t);
          seen_weekday = TRUE;
          if (!parse_field (&weekday, t, error))
            return FALSE;
        }
      else if (strchr (t, ':'))
        {
          if (seen_time)
            return invalid (error, "two times ('%s')", t);
          seen_time = TRUE;
          if (!parse_time (cal, t, error))
            return FALSE;
        }
      else if (strchr (t, '-'))
        {
          if (seen_date || seen_time)
            return invalid (error, "the date comes before the time ('%s')", t);
          seen_date = TRUE;
          if (!parse_date (cal, t, error))
            return FALSE;
        }
      else
        return invalid (error,
                        "'%s' is neither a weekday, a date (Y-M-D) nor a "
                        "time (H:M)",
                        t);
    }
  if (used == 0)
    return invalid (error, "empty calendar expression");
  if (!seen_weekday)
    cal->weekdays = 0x7f;
  if (!seen_date && !parse_date (cal, "*-*-*", error))
    return FALSE;
  if (!seen_time && !parse_time (cal, "00:00:00", error))
    return FALSE;
  return TRUE;
}

SchedCalendar *
sched_calendar_parse (const char *text, GError **error)
{
  g_autoptr (SchedCalendar) cal = g_new0 (SchedCalendar, 1);
  g_autofree char *trimmed = NULL;
  const char *expr;

  if (text == NULL || strlen (text) > SCHED_CALENDAR_MAX_TEXT)
    {
      invalid (error, "a calendar expression is at most %d bytes",
               SCHED_CALENDAR_MAX_TEXT);
      return NULL;
    }
  trimmed = g_strstrip (g_strdup (text));
  expr = trimmed;
  for (guint i = 0; i < G_N_ELEMENTS (shorthands); i++)
    if (g_ascii_strcasecmp (trimmed, shorthands[i].name) == 0)
      expr = shorthands[i].expansion;
  if (!parse_expression (cal, expr, error))
    {
      g_prefix_error (error, "calendar '%s': ", trimmed);
      return NULL;
    }
  cal->text = g_steal_pointer (&trimmed);
  return g_steal_pointer (&cal);
}

void
sched_calendar_free (SchedCalendar *cal)
{
  if (!cal)
    return;
  g_free (cal->text);
  g_free (cal);
}

const char *
sched_calendar_text (const SchedCalendar *cal)
{
  return cal->text;
}

static gboolean
bit (guint64 bits, int v)
{
  return (bits >> v) & 1;
}

/* Does DATE (a valid GDate) match the date fields and weekdays? */
static gboolean
date_matches (const SchedCalendar *cal, const GDate *date)
{
  int y = g_date_get_year (date);

  return y >= YEAR_MIN && y <= YEAR_MAX && has_bit (cal->years, YEAR_MIN, y)
         && bit (cal->months, g_date_get_month (date))
         && bit (cal->days, g_date_get_day (date))
         && bit (cal->weekdays, g_date_get_weekday (date) - 1);
}

/* The instant of wall-clock time Y-M-D h:m:s in TZ, at its first
 * occurrence when a fall-back change repeats it; -1 when GLib cannot
 * represent it. */
static gint64
first_instant (GTimeZone *tz, const GDate *d, int h, int m, int s)
{
  g_autoptr (GDateTime) dt
      = g_date_time_new (tz, g_date_get_year (d), g_date_get_month (d),
                         g_date_get_day (d), h, m, s);
  gint64 t;

  if (!dt)
    return -1;
  t = g_date_time_to_unix (dt);
  /* The same wall time half an hour or an hour earlier: the repeat's
   * first occurrence. */
  for (gint64 back = 1800; back <= 3600; back += 1800)
    {
      g_autoptr (GDateTime) u = g_date_time_new_from_unix_utc (t - back);
      g_autoptr (GDateTime) e = u ? g_date_time_to_timezone (u, tz) : NULL;

      if (e && g_date_time_get_hour (e) == h && g_date_time_get_minute (e) == m
          && g_date_time_get_second (e) == s
          && g_date_time_get_day_of_month (e) == g_date_get_day (d))
        return t - back;
    }
  return t;
}

gint64
sched_calendar_next (const SchedCalendar *cal, gint64 after, GTimeZone *tz)
{
  g_autoptr (GDateTime) utc = g_date_time_new_from_unix_utc (after);
  g_autoptr (GDateTime) local = NULL;
  GDate date;
  int first_hour;

  if (!utc || !(local = g_date_time_to_timezone (utc, tz)))
    return -1;
  g_date_clear (&date, 1);
  g_date_set_dmy (&date, g_date_time_get_day_of_month (local),
                  g_date_time_get_month (local), g_date_time_get_year (local));
  /* On AFTER's own day, hours more than two before it cannot come after
   * it, whatever the changes of offset. */
  first_hour = MAX (0, g_date_time_get_hour (local) - 2);
  for (guint day = 0; day < SEARCH_DAYS; day++, g_date_add_days (&date, 1))
    {
      if (!date_matches (cal, &date))
        {
          first_hour = 0;
          continue;
        }
      for (int h = first_hour; h < 24; h++)
        {
          if (!bit (cal->hours, h))
            continue;
          for (int m = 0; m < 60; m++)
            {
              if (!bit (cal->minutes, m))
                continue;
              for (int s = 0; s < 60; s++)
                {
                  gint64 t;

                  if (!bit (cal->seconds, s))
                    continue;
                  t = first_instant (tz, &date, h, m, s);
                  if (t > after)
                    return t;
                }
            }
        }
      first_hour = 0;
      if (g_date_get_year (&date) >= YEAR_MAX)
        break;
    }
  return -1;
}

static const struct
{
  char unit;
  gint64 seconds;
} units[] = {
  { 'w', 7 * 86400 }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 }
};

gboolean
sched_duration_parse (const char *text, gint64 *seconds, GError **error)
{
  const char *p = text;
  gint64 total = 0;

  if (!text || !*text || strlen (text) > 32)
    return invalid (error, "duration '%s': expected e.g. 90s, 15m, 1h30m, 2d",
                    text ? text : "");
  while (*p)
    {
      gint64 n = 0, unit = 0;
      const char *start = p;

      /* Saturates: a huge number is "too long", not an overflow. */
      for (; g_ascii_isdigit (*p); p++)
        n = MIN (n * 10 + (*p - '0'), MAX_DURATION_S + 1);
      if (p == start)
        return invalid (
            error, "duration '%s': expected a number before each unit", text);
      for (guint i = 0; i < G_N_ELEMENTS (units); i++)
        if (*p == units[i].unit)
          unit = units[i].seconds;
      if (!unit)
        return invalid (error,
                        "duration '%s': unit '%c' is not one of s, m, "
                        "h, d, w",
                        text, *p ? *p : ' ');
      p++;
      if (n > MAX_DURATION_S / unit || (total += n * unit) > MAX_DURATION_S)
        return invalid (error, "duration '%s' is longer than ten years", text);
    }
  if (total <= 0)
    return invalid (error, "duration '%s' is zero", text);
  *seconds = total;
  return TRUE;
}

char *
sched_duration_format (gint64 seconds)
{
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < G_N_ELEMENTS (units); i++)
    if (seconds >= units[i].seconds)
      {
        g_string_append_printf (out, "%" G_GINT64_FORMAT "%c",
                                seconds / units[i].seconds, units[i].unit);
        seconds %= units[i].seconds;
      }
  if (out->len == 0)
    g_string_append (out, "0s");
  return g_string_free (out, FALSE);
}
