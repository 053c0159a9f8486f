/* Calendar expressions and durations of schedules (issue 16): a table of
 * expressions with their next run from a fixed instant, a table of bad
 * ones with what the error must say, daylight-saving changes in two time
 * zones (nothing skipped, nothing fired twice), and durations. */
#include <gio/gio.h>
#include <string.h>

#include "sched-calendar.h"

/* Seconds since the epoch of a UTC ISO 8601 time. */
static gint64
utc (const char *iso)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_iso8601 (iso, NULL);

  g_assert_nonnull (dt);
  return g_date_time_to_unix (dt);
}

static char *
iso (gint64 t)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (t);

  return g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ");
}

static void
test_next_table (void)
{
  /* Friday 2026-12-04 20:44:25 UTC. */
  static const struct
  {
    const char *expr, *after, *next;
  } cases[] = {
    { "hourly", "2026-12-04T20:44:25Z", "2026-12-04T21:00:00Z" },
    { "hourly", "2026-12-04T21:00:00Z", "2026-12-04T22:00:00Z" },
    { "daily", "2026-12-04T20:44:25Z", "2026-12-05T00:00:00Z" },
    { "weekly", "2026-12-04T20:44:25Z", "2026-12-07T00:00:00Z" },
    { "monthly", "2026-12-04T20:44:25Z", "2027-01-01T00:00:00Z" },
    { "yearly", "2026-12-04T20:44:25Z", "2027-01-01T00:00:00Z" },
    { "minutely", "2026-12-04T20:44:25Z", "2026-12-04T20:45:00Z" },
    { "Mon..Fri 02:30", "2026-12-04T20:44:25Z", "2026-12-07T02:30:00Z" },
    { "mon..fri 02:30", "2026-12-07T02:30:00Z", "2026-12-08T02:30:00Z" },
    { "Sat,Sun 10:00:30", "2026-12-04T20:44:25Z", "2026-12-05T10:00:30Z" },
    { "*:0/15", "2026-12-04T20:44:25Z", "2026-12-04T20:45:00Z" },
    { "*:5/20", "2026-12-04T20:44:25Z", "2026-12-04T20:45:00Z" },
    { "*:5/20", "2026-12-04T20:45:00Z", "2026-12-04T21:05:00Z" },
    { "*:*:*", "2026-12-04T20:44:25Z", "2026-12-04T20:44:26Z" },
    { "12:00", "2026-12-04T20:44:25Z", "2026-12-05T12:00:00Z" },
    { "8..9:00,30", "2026-12-04T20:44:25Z", "2026-12-05T08:00:00Z" },
    { "*-*-01 03:00", "2026-12-04T20:44:25Z", "2027-01-01T03:00:00Z" },
    { "*-02-29 12:00", "2026-12-04T20:44:25Z", "2028-02-29T12:00:00Z" },
    { "02-29", "2026-12-04T20:44:25Z", "2028-02-29T00:00:00Z" },
    { "Fri *-*-13", "2026-12-04T20:44:25Z", "2027-08-13T00:00:00Z" },
    { "2030-06-01 00:00", "2026-12-04T20:44:25Z", "2030-06-01T00:00:00Z" },
    { "  daily  ", "2026-12-04T20:44:25Z", "2026-12-05T00:00:00Z" },
    /* Never: a year with no Feb 29, a day no month has. */
    { "2027-02-29", "2026-12-04T20:44:25Z", NULL },
    { "*-*-31 00:00", "2026-12-04T20:44:25Z", "2026-12-31T00:00:00Z" },
    { "*-04-31", "2026-12-04T20:44:25Z", NULL },
  };
  g_autoptr (GTimeZone) tz = g_time_zone_new_utc ();

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (SchedCalendar) cal
          = sched_calendar_parse (cases[i].expr, &error);
      gint64 next;

      g_test_message ("%s after %s", cases[i].expr, cases[i].after);
      g_assert_no_error (error);
      next = sched_calendar_next (cal, utc (cases[i].after), tz);
      if (cases[i].next == NULL)
        g_assert_cmpint (next, ==, -1);
      else
        {
          g_autofree char *got = iso (next);

          g_assert_cmpstr (got, ==, cases[i].next);
        }
    }
}

static void
test_bad (void)
{
  static const struct
  {
    const char *expr, *says;
  } cases[] = {
    { "25:00", "hour 25 is out of range 0..23" },
    { "10:61", "minute 61 is out of range 0..59" },
    { "*-13-01", "month 13 is out of range 1..12" },
    { "*-*-00", "day 0 is out of range 1..31" },
    { "Mon..Frx 10:00", "'Frx' is not a weekday" },
    { "Fri..Mon", "weekday range 'Fri..Mon' runs backwards" },
    { "", "empty calendar expression" },
    { "   ", "empty calendar expression" },
    { "10:00 Mon", "weekdays come first" },
    { "10:00 *-*-01", "the date comes before the time" },
    { "*:*/0", "step 0 is out of range" },
    { "Mon/2", "weekdays take no step" },
    { "10", "neither a weekday" },
    { "10:x", "minute 'x' is not a number" },
    { "1..:00", "hour '' is not a number" },
    { "Mon 01-01 10:00 extra", "too many parts" },
    { "10:00 11:00", "two times" },
    { "1-2-3-4", "is not YEAR-MONTH-DAY" },
    { "10:00:00:00", "is not HOUR:MINUTE[:SECOND]" },
    { "99999:00", "hour '99999' is not a number" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (SchedCalendar) cal
          = sched_calendar_parse (cases[i].expr, &error);

      g_test_message ("'%s'", cases[i].expr);
      g_assert_null (cal);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      if (!strstr (error->message, cases[i].says))
        g_error ("'%s': '%s' does not say '%s'", cases[i].expr, error->message,
                 cases[i].says);
    }

  {
    g_autofree char *long_text = g_strnfill (SCHED_CALENDAR_MAX_TEXT + 1, '*');
    g_autoptr (GError) error = NULL;

    g_assert_null (sched_calendar_parse (long_text, &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  }
}

/* The runs of EXPR in zone ZONE from AFTER, N of them, as UTC strings. */
static char *
runs (const char *zone, const char *expr, const char *after, guint n)
{
  g_autoptr (GTimeZone) tz = g_time_zone_new_identifier (zone);
  g_autoptr (SchedCalendar) cal = sched_calendar_parse (expr, NULL);
  GString *out = g_string_new (NULL);
  gint64 t = utc (after);

  g_assert_nonnull (tz);
  g_assert_nonnull (cal);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *s = NULL;

      t = sched_calendar_next (cal, t, tz);
      g_assert_cmpint (t, >, 0);
      s = iso (t);
      g_string_append_printf (out, "%s%s", i ? " " : "", s);
    }
  return g_string_free (out, FALSE);
}

static void
test_dst (void)
{
  char *r;

  /* Berlin, 2027-03-28: 02:00 CET jumps to 03:00 CEST. 02:30 does not
   * exist that day: it fires once, at 03:00 CEST (01:00 UTC). */
  r = runs ("Europe/Berlin", "02:30", "2027-03-26T12:00:00Z", 3);
  g_assert_cmpstr (r, ==,
                   "2027-03-27T01:30:00Z 2027-03-28T01:00:00Z "
                   "2027-03-29T00:30:00Z");
  g_free (r);
  /* 02:00, 02:30 and 03:00 all land on 03:00 CEST: one run there. */
  r = runs ("Europe/Berlin", "02..03:00,30", "2027-03-27T23:00:00Z", 3);
  g_assert_cmpstr (r, ==,
                   "2027-03-28T01:00:00Z 2027-03-28T01:30:00Z "
                   "2027-03-29T00:00:00Z");
  g_free (r);
  /* Berlin, 2027-10-31: 03:00 CEST falls back to 02:00 CET; 02:30 comes
   * twice and fires at its first occurrence only. */
  r = runs ("Europe/Berlin", "02:30", "2027-10-29T12:00:00Z", 3);
  g_assert_cmpstr (r, ==,
                   "2027-10-30T00:30:00Z 2027-10-31T00:30:00Z "
                   "2027-11-01T01:30:00Z");
  g_free (r);
  /* Every half hour through the fall-back: no instant twice, none out of
   * order; the repeated wall hour is not run again. */
  r = runs ("Europe/Berlin", "*:00,30", "2027-10-30T23:45:00Z", 5);
  g_assert_cmpstr (r, ==,
                   "2027-10-31T00:00:00Z 2027-10-31T00:30:00Z "
                   "2027-10-31T02:00:00Z 2027-10-31T02:30:00Z "
                   "2027-10-31T03:00:00Z");
  g_free (r);
  /* New York, 2027-03-14: 02:00 EST jumps to 03:00 EDT; a daily 02:15
   * runs at 03:00 EDT (07:00 UTC), then at 02:15 EDT. */
  r = runs ("America/New_York", "02:15", "2027-03-13T12:00:00Z", 3);
  g_assert_cmpstr (r, ==,
                   "2027-03-14T07:00:00Z 2027-03-15T06:15:00Z "
                   "2027-03-16T06:15:00Z");
  g_free (r);
  /* New York, 2027-11-07: 01:30 comes twice (EDT, then EST). */
  r = runs ("America/New_York", "01:30", "2027-11-06T12:00:00Z", 2);
  g_assert_cmpstr (r, ==, "2027-11-07T05:30:00Z 2027-11-08T06:30:00Z");
  g_free (r);
}

static void
test_durations (void)
{
  static const struct
  {
    const char *text;
    gint64 seconds;
    const char *formatted;
  } good[] = {
    { "90s", 90, "1m30s" },           { "15m", 900, "15m" },
    { "1h30m", 5400, "1h30m" },       { "2d", 172800, "2d" },
    { "1w", 604800, "1w" },           { "1d1s", 86401, "1d1s" },
    { "3650d", 315360000, "521w3d" },
  };
  static const struct
  {
    const char *text, *says;
  } bad[] = {
    { "", "expected e.g." },
    { "10", "unit ' ' is not one of" },
    { "h", "expected a number before each unit" },
    { "5x", "unit 'x' is not one of" },
    { "0s", "is zero" },
    { "3651d", "longer than ten years" },
    { "99999999999999999999d", "longer than ten years" },
    { "1h 30m", "expected a number" },
    { "-5m", "expected a number" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *f = NULL;
      gint64 s = 0;

      g_assert_true (sched_duration_parse (good[i].text, &s, &error));
      g_assert_no_error (error);
      g_assert_cmpint (s, ==, good[i].seconds);
      f = sched_duration_format (s);
      g_assert_cmpstr (f, ==, good[i].formatted);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      gint64 s = -7;

      g_test_message ("'%s'", bad[i].text);
      g_assert_false (sched_duration_parse (bad[i].text, &s, &error));
      g_assert_cmpint (s, ==, -7);
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
      if (!strstr (error->message, bad[i].says))
        g_error ("'%s': '%s' does not say '%s'", bad[i].text, error->message,
                 bad[i].says);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-calendar/next", test_next_table);
  g_test_add_func ("/sched-calendar/bad", test_bad);
  g_test_add_func ("/sched-calendar/dst", test_dst);
  g_test_add_func ("/sched-calendar/durations", test_durations);
  return g_test_run ();
}
