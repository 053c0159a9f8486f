/* droverctl's testable parts of snapshots and clones: the clone mode from
 * its flags, the description check, the tree listing and the progress
 * line of a storage job (snapshot-*, clone). */
#include "cli.h"

#include <math.h>
#include <string.h>

#include "proto.h"

gboolean
cli_clone_mode (gboolean linked, gboolean full, const char **mode,
                GError **error)
{
  if (linked && full)
    {
      g_set_error (error, CLI_ERROR, CLI_ERROR_USAGE,
                   "--linked and --full exclude each other");
      return FALSE;
    }
  *mode = linked ? PROTO_CLONE_LINKED : full ? PROTO_CLONE_FULL : "";
  return TRUE;
}

gboolean
cli_snapshot_check_description (const char *text, GError **error)
{
  if (text == NULL)
    return TRUE;
  if (strlen (text) > CLI_SNAPSHOT_DESCRIPTION_MAX)
    {
      g_set_error (error, CLI_ERROR, CLI_ERROR_USAGE,
                   "--description is %zu bytes; at most %d", strlen (text),
                   CLI_SNAPSHOT_DESCRIPTION_MAX);
      return FALSE;
    }
  if (!g_utf8_validate (text, -1, NULL))
    {
      g_set_error (error, CLI_ERROR, CLI_ERROR_USAGE,
                   "--description is not valid UTF-8");
      return FALSE;
    }
  return TRUE;
}

char *
cli_format_time (gint64 ms)
{
  g_autoptr (GDateTime) dt = NULL;

  if (ms <= 0)
    return g_strdup ("-");
  dt = g_date_time_new_from_unix_local (ms / 1000);
  if (dt == NULL)
    return g_strdup ("-");
  return g_date_time_format (dt, "%Y-%m-%d %H:%M:%S");
}

/* TEXT on one line, at most MAX characters ("..." when cut). */
static char *
one_line (const char *text, glong max)
{
  g_autofree char *flat = g_strdup (text);
  glong len;

  for (char *p = flat; *p; p++)
    if (*p == '\n' || *p == '\r' || *p == '\t')
      *p = ' ';
  len = g_utf8_strlen (flat, -1);
  if (len <= max)
    return g_steal_pointer (&flat);
  {
    g_autofree char *head = g_utf8_substring (flat, 0, max - 3);
    return g_strconcat (head, "...", NULL);
  }
}

char *
cli_snapshot_tree (const Drover__V1__ListSnapshotsReply *reply)
{
  static const char *const headers[]
      = { "NAME", "CREATED", ">SIZE", "MEMORY", "STATE", "DESCRIPTION", NULL };
  g_autoptr (GHashTable) depth = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (CliTable) table = cli_table_new (headers);

  for (size_t i = 0; i < reply->n_snapshots; i++)
    {
      const Drover__V1__Snapshot *s = reply->snapshots[i];
      gpointer parent_depth = NULL;
      guint d = 0;
      gboolean current = s->current
                         || (reply->current[0] != '\0'
                             && strcmp (reply->current, s->name) == 0);
      GString *name = g_string_new (current ? "* " : "  ");

      /* Parents come before their children: a parent not seen (yet) is a
       * root's place. */
      if (s->parent[0] != '\0'
          && g_hash_table_lookup_extended (depth, s->parent, NULL,
                                           &parent_depth))
        d = GPOINTER_TO_UINT (parent_depth) + 1;
      g_hash_table_insert (depth, s->name, GUINT_TO_POINTER (d));
      for (guint k = 0; k < d; k++)
        g_string_append (name, "  ");
      g_string_append (name, s->name);
      cli_table_add_take (
          table, g_string_free (name, FALSE), cli_format_time (s->created_ms),
          proto_format_size (s->size_bytes),
          g_strdup (s->memory ? (s->quiesced ? "yes, quiesced" : "yes")
                              : (s->quiesced ? "no, quiesced" : "no")),
          g_strdup (s->vm_state), one_line (s->description, 40));
    }
  return cli_table_render (table);
}

char *
cli_storage_progress_line (const Drover__V1__Job *job, guint bar_width)
{
  GString *line = g_string_new (NULL);
  double frac = job->progress;
  guint filled;

  if (!isfinite (frac) || frac < 0)
    frac = 0;
  if (frac > 1)
    frac = 1;
  /* Never full before it is done. */
  if (!proto_job_state_is_final (job->state) && frac > 0.99)
    frac = 0.99;
  if (bar_width > 0)
    {
      filled = (guint)floor (frac * bar_width + 1e-9);
      g_string_append_c (line, '[');
      for (guint i = 0; i < bar_width; i++)
        g_string_append_c (line, i < filled ? '#' : '-');
      g_string_append (line, "]  ");
    }
  g_string_append_printf (line, "%3d%%  ", (int)floor (frac * 100 + 1e-9));
  if (job->error[0] != '\0')
    g_string_append_printf (line, "%s: %s", job->state, job->error);
  else if (job->message[0] != '\0')
    g_string_append (line, job->message);
  else
    g_string_append (line, job->state);
  return g_string_free (line, FALSE);
}
