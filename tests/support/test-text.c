/* Checks on text a test got back: rendered metrics, command output. */
#include "test-support.h"

#include <string.h>

gboolean
test_text_has_line (const char *text, const char *line)
{
  g_autofree char *needle = g_strconcat ("\n", line, "\n", NULL);

  return strstr (text, needle) != NULL;
}

void
test_assert_lines_valist (const char *text, va_list lines)
{
  const char *line;

  while ((line = va_arg (lines, const char *)) != NULL)
    {
      gboolean found = test_text_has_line (text, line);

      /* The assertion alone would not say which line is missing. */
      if (!found)
        g_test_message ("no line \"%s\" in:\n%s", line, text);
      g_assert_true (found);
    }
}

void
test_assert_lines (const char *text, ...)
{
  va_list lines;

  va_start (lines, text);
  test_assert_lines_valist (text, lines);
  va_end (lines);
}

void
test_assert_contains (const char *text, ...)
{
  va_list parts;
  const char *part;

  va_start (parts, text);
  while ((part = va_arg (parts, const char *)) != NULL)
    {
      gboolean found = strstr (text, part) != NULL;

      if (!found)
        g_test_message ("no \"%s\" in:\n%s", part, text);
      g_assert_true (found);
    }
  va_end (parts);
}
