/* Structured logging: the VM, job and host a message is about travel as
 * fields (DROVER_VM, DROVER_JOB, DROVER_HOST), not pasted into the text. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

#define N_FIELDS_MAX 8

void
proto_log (const char *domain, GLogLevelFlags level, const char *vm,
           const char *job, const char *host, const char *format, ...)
{
  GLogField fields[N_FIELDS_MAX];
  gsize n = 0;
  g_autofree char *message = NULL;
  const char *priority;
  va_list ap;

  va_start (ap, format);
  message = g_strdup_vprintf (format, ap);
  va_end (ap);

  /* The syslog priorities GLib itself uses for these levels. */
  switch (level & G_LOG_LEVEL_MASK)
    {
    case G_LOG_LEVEL_ERROR:
      priority = "3";
      break;
    case G_LOG_LEVEL_CRITICAL:
    case G_LOG_LEVEL_WARNING:
      priority = "4";
      break;
    case G_LOG_LEVEL_MESSAGE:
      priority = "5";
      break;
    case G_LOG_LEVEL_INFO:
      priority = "6";
      break;
    default:
      priority = "7";
      break;
    }

  fields[n++] = (GLogField){ "MESSAGE", message, -1 };
  fields[n++] = (GLogField){ "PRIORITY", priority, -1 };
  if (domain != NULL)
    fields[n++] = (GLogField){ "GLIB_DOMAIN", domain, -1 };
  if (vm != NULL && vm[0] != '\0')
    fields[n++] = (GLogField){ "DROVER_VM", vm, -1 };
  if (job != NULL && job[0] != '\0')
    fields[n++] = (GLogField){ "DROVER_JOB", job, -1 };
  if (host != NULL && host[0] != '\0')
    fields[n++] = (GLogField){ "DROVER_HOST", host, -1 };
  g_log_structured_array (level, fields, n);
}

/* The Drover fields of FIELDS as " [vm=a job=b host=c]", or NULL. */
static char *
drover_suffix (const GLogField *fields, gsize n_fields)
{
  static const struct
  {
    const char *key;
    const char *label;
  } keys[] = {
    { "DROVER_VM", "vm" },
    { "DROVER_JOB", "job" },
    { "DROVER_HOST", "host" },
  };
  g_autoptr (GString) s = NULL;

  for (gsize k = 0; k < G_N_ELEMENTS (keys); k++)
    for (gsize i = 0; i < n_fields; i++)
      {
        if (strcmp (fields[i].key, keys[k].key) != 0)
          continue;
        if (s == NULL)
          s = g_string_new (" [");
        else
          g_string_append_c (s, ' ');
        g_string_append_printf (s, "%s=", keys[k].label);
        if (fields[i].length < 0)
          g_string_append (s, fields[i].value);
        else
          g_string_append_len (s, fields[i].value, fields[i].length);
        break;
      }
  if (s == NULL)
    return NULL;
  g_string_append_c (s, ']');
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static GLogWriterOutput
proto_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                  gpointer user_data)
{
  g_autofree char *suffix = NULL;
  g_autofree GLogField *copy = NULL;
  g_autofree char *message = NULL;

  if (g_log_writer_is_journald (fileno (stderr)))
    return g_log_writer_journald (level, fields, n_fields, user_data);

  suffix = drover_suffix (fields, n_fields);
  if (suffix == NULL)
    return g_log_writer_default (level, fields, n_fields, user_data);

  /* The same fields with the suffix on MESSAGE. */
  copy = g_memdup2 (fields, n_fields * sizeof *fields);
  for (gsize i = 0; i < n_fields; i++)
    {
      if (strcmp (copy[i].key, "MESSAGE") != 0)
        continue;
      message = copy[i].length < 0
                    ? g_strconcat (copy[i].value, suffix, NULL)
                    : g_strdup_printf ("%.*s%s", (int)copy[i].length,
                                       (const char *)copy[i].value, suffix);
      copy[i].value = message;
      copy[i].length = -1;
      break;
    }
  return g_log_writer_default (level, copy, n_fields, user_data);
}

void
proto_log_install (void)
{
  g_log_set_writer_func (proto_log_writer, NULL, NULL);
}
