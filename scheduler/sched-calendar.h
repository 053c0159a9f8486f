/* When a schedule fires (issue 16): durations ("--every 1h30m") and
 * calendar expressions ("--at 'Mon..Fri 02:30'"), and the next run after
 * a given time in a time zone, across daylight-saving changes.
 *
 * Calendar expressions are a subset of systemd's OnCalendar syntax:
 *
 *   [WEEKDAYS] [YEAR-MONTH-DAY] [HOUR:MINUTE[:SECOND]]
 *
 * each field `*`, a number, a list `a,b`, a range `a..b`, or a step
 * `a/n` or `*` + `/n`; weekdays by English names (Mon, Tue, ...) in lists
 * and ranges. A missing date means every day, a missing time 00:00:00, a
 * missing second :00. Shorthands: minutely, hourly, daily, weekly
 * (Monday 00:00), monthly, yearly. Pure code: no I/O, no clock.
 */
#pragma once

#include <glib.h>

/* The longest expression or duration accepted, in bytes. */
#define SCHED_CALENDAR_MAX_TEXT 256

typedef struct _SchedCalendar SchedCalendar;

/* Parses TEXT; NULL with a G_IO_ERROR_INVALID_ARGUMENT naming what is
 * wrong ("hour 25 is out of range 0..23") on bad input. */
SchedCalendar *sched_calendar_parse (const char *text, GError **error);
void sched_calendar_free (SchedCalendar *cal);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedCalendar, sched_calendar_free)

/* The expression as it was given, trimmed. */
const char *sched_calendar_text (const SchedCalendar *cal);

/* The first time strictly after AFTER (seconds since the epoch) that CAL
 * matches, read in TZ's wall clock, or -1 when none comes within the
 * next ten years (e.g. Feb 30). A wall-clock time that a spring-forward
 * change skips fires at the first real time after the gap, once; one
 * that a fall-back change repeats fires once, at its first occurrence. */
gint64 sched_calendar_next (const SchedCalendar *cal, gint64 after,
                            GTimeZone *tz);

/* Parses a duration: one or more NUMBER UNIT pairs, units s, m, h, d, w
 * ("90s", "1h30m", "2d"); > 0 and at most ten years. */
gboolean sched_duration_parse (const char *text, gint64 *seconds,
                               GError **error);
/* "1h30m", "45s", "2d": the shortest form of SECONDS (> 0). */
char *sched_duration_format (gint64 seconds);
