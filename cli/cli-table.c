/* Aligned text tables for droverctl listings. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

struct _CliTable
{
  guint n_cols;
  char **headers;  /* without the '>' marker */
  gboolean *right; /* per column: right-aligned */
  GPtrArray *rows; /* of char ** (n_cols strings each) */
};

CliTable *
cli_table_new (const char *const *headers)
{
  CliTable *t = g_new0 (CliTable, 1);

  t->n_cols = g_strv_length ((char **)headers);
  t->headers = g_new0 (char *, t->n_cols + 1);
  t->right = g_new0 (gboolean, t->n_cols);
  for (guint i = 0; i < t->n_cols; i++)
    {
      const char *h = headers[i];
      if (h[0] == '>')
        {
          t->right[i] = TRUE;
          h++;
        }
      t->headers[i] = g_strdup (h);
    }
  t->rows = g_ptr_array_new_with_free_func ((GDestroyNotify)g_strfreev);
  return t;
}

void
cli_table_free (CliTable *table)
{
  if (table == NULL)
    return;
  g_strfreev (table->headers);
  g_free (table->right);
  g_ptr_array_unref (table->rows);
  g_free (table);
}

void
cli_table_add_row (CliTable *table, const char *const *cells)
{
  char **row = g_new0 (char *, table->n_cols + 1);

  for (guint i = 0; i < table->n_cols; i++)
    {
      const char *c = cells[i];
      row[i] = g_strdup (c != NULL && *c != '\0' ? c : "-");
    }
  g_ptr_array_add (table->rows, row);
}

void
cli_table_add_take (CliTable *table, ...)
{
  char **row = g_new0 (char *, table->n_cols + 1);
  va_list ap;

  va_start (ap, table);
  for (guint i = 0; i < table->n_cols; i++)
    {
      char *c = va_arg (ap, char *);
      if (c == NULL || *c == '\0')
        {
          g_free (c);
          c = g_strdup ("-");
        }
      row[i] = c;
    }
  va_end (ap);
  g_ptr_array_add (table->rows, row);
}

/* Display width; cells are mostly ASCII but names from the wire need not
 * be valid UTF-8, so fall back to bytes. */
static gsize
cell_width (const char *s)
{
  if (g_utf8_validate (s, -1, NULL))
    return g_utf8_strlen (s, -1);
  return strlen (s);
}

static void
render_row (GString *out, CliTable *t, char **cells, const gsize *widths)
{
  gsize line_start = out->len;

  for (guint i = 0; i < t->n_cols; i++)
    {
      gsize w = cell_width (cells[i]);
      gsize pad = widths[i] > w ? widths[i] - w : 0;
      if (i > 0)
        g_string_append (out, "  ");
      if (t->right[i])
        for (gsize k = 0; k < pad; k++)
          g_string_append_c (out, ' ');
      g_string_append (out, cells[i]);
      if (!t->right[i])
        for (gsize k = 0; k < pad; k++)
          g_string_append_c (out, ' ');
    }
  /* No trailing spaces from padding the last column. */
  while (out->len > line_start && out->str[out->len - 1] == ' ')
    g_string_truncate (out, out->len - 1);
  g_string_append_c (out, '\n');
}

char *
cli_table_render (CliTable *table)
{
  g_autofree gsize *widths = g_new0 (gsize, table->n_cols);
  GString *out = g_string_new (NULL);

  for (guint i = 0; i < table->n_cols; i++)
    widths[i] = cell_width (table->headers[i]);
  for (guint r = 0; r < table->rows->len; r++)
    {
      char **row = table->rows->pdata[r];
      for (guint i = 0; i < table->n_cols; i++)
        widths[i] = MAX (widths[i], cell_width (row[i]));
    }
  render_row (out, table, table->headers, widths);
  for (guint r = 0; r < table->rows->len; r++)
    render_row (out, table, table->rows->pdata[r], widths);
  return g_string_free (out, FALSE);
}
