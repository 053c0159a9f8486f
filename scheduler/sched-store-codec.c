/* The SQLite store's row codecs: a row (sched_row_types) bound to a
 * statement's parameters, and read back from a SELECT of every column.
 * Messages are stored packed; one that does not decode is corruption. */
#include "sched-store-sqlite-private.h"

void
sched_sqlite_bind_text (sqlite3_stmt *stmt, int i, const char *text)
{
  sqlite3_bind_text (stmt, i, text ? text : "", -1, SQLITE_TRANSIENT);
}

static void
bind_msg (sqlite3_stmt *stmt, int i, const ProtobufCMessage *msg)
{
  gsize len;
  guint8 *buf;

  if (msg == NULL)
    {
      sqlite3_bind_null (stmt, i);
      return;
    }
  len = protobuf_c_message_get_packed_size (msg);
  buf = g_malloc (MAX (len, 1));
  protobuf_c_message_pack (msg, buf);
  sqlite3_bind_blob64 (stmt, i, buf, len, g_free);
}

char *
sched_sqlite_column_text (sqlite3_stmt *stmt, int i)
{
  const char *text = (const char *)sqlite3_column_text (stmt, i);

  return g_strdup (text ? text : "");
}

/* Unpacks a blob column. NULL column gives NULL without error when
 * NULLABLE; a blob that does not decode is corruption. */
static gboolean
column_msg (SqliteStore *self, sqlite3_stmt *stmt, int i,
            const ProtobufCMessageDescriptor *desc, gboolean nullable,
            const char *what, gpointer *out, GError **error)
{
  const void *data;
  int len;

  *out = NULL;
  if (sqlite3_column_type (stmt, i) == SQLITE_NULL)
    {
      if (nullable)
        return TRUE;
      len = 0;
      data = "";
    }
  else
    {
      data = sqlite3_column_blob (stmt, i);
      len = sqlite3_column_bytes (stmt, i);
      if (data == NULL)
        data = "";
    }
  if (len > PROTO_MAX_MESSAGE_SIZE
      || (*out = protobuf_c_message_unpack (desc, NULL, len, data)) == NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_CORRUPT,
                   "%s: %s does not decode as %s", self->path, what,
                   desc->name);
      return FALSE;
    }
  return TRUE;
}

/* What frees a row of each table (a list's GPtrArray frees its rows). */
const GDestroyNotify sched_sqlite_row_free[SCHED_N_TABLES] = {
  [SCHED_TABLE_HOSTS] = (GDestroyNotify)sched_host_free,
  [SCHED_TABLE_VMS] = (GDestroyNotify)sched_vm_free,
  [SCHED_TABLE_JOBS] = (GDestroyNotify)sched_job_free,
  [SCHED_TABLE_SNAPSHOTS] = (GDestroyNotify)sched_snapshot_free,
  [SCHED_TABLE_REPOS] = (GDestroyNotify)sched_repo_free,
  [SCHED_TABLE_SCHEDULES] = (GDestroyNotify)sched_schedule_row_free,
  [SCHED_TABLE_NETWORKS] = (GDestroyNotify)sched_network_row_free,
  [SCHED_TABLE_SCHEDULE_VMS] = (GDestroyNotify)sched_schedule_vm_row_free,
};

/* Binds ROW, a row of TYPE, to STMT's parameters ?1.. in field order. */
void
sched_sqlite_bind_row (sqlite3_stmt *stmt, const SchedRowType *type,
                       gconstpointer row)
{
  for (guint i = 0; i < type->n_fields; i++)
    {
      const SchedField *f = &type->fields[i];
      gconstpointer p = G_STRUCT_MEMBER_P (row, f->offset);

      switch (f->kind)
        {
        case SCHED_FIELD_TEXT:
          sched_sqlite_bind_text (stmt, i + 1, *(const char *const *)p);
          break;
        case SCHED_FIELD_INT64:
          sqlite3_bind_int64 (stmt, i + 1, *(const gint64 *)p);
          break;
        case SCHED_FIELD_DOUBLE:
          sqlite3_bind_double (stmt, i + 1, *(const double *)p);
          break;
        case SCHED_FIELD_MSG:
        case SCHED_FIELD_MSG_OPT:
          bind_msg (stmt, i + 1, *(const ProtobufCMessage *const *)p);
          break;
        }
    }
}

/* Reads the row of TYPE that STMT (a SELECT of every column in field
 * order) is on. A message that does not decode is corruption. */
gpointer
sched_sqlite_read_row (SqliteStore *self, sqlite3_stmt *stmt,
                       const SchedRowType *type, GError **error)
{
  gpointer row = g_malloc0 (type->size);

  /* Text and numbers first: the key names the row in errors. */
  for (guint i = 0; i < type->n_fields; i++)
    {
      const SchedField *f = &type->fields[i];
      gpointer p = G_STRUCT_MEMBER_P (row, f->offset);

      if (f->kind == SCHED_FIELD_TEXT)
        *(char **)p = sched_sqlite_column_text (stmt, i);
      else if (f->kind == SCHED_FIELD_INT64)
        *(gint64 *)p = sqlite3_column_int64 (stmt, i);
      else if (f->kind == SCHED_FIELD_DOUBLE)
        *(double *)p = sqlite3_column_double (stmt, i);
    }
  for (guint i = 0; i < type->n_fields; i++)
    {
      const SchedField *f = &type->fields[i];
      g_autofree char *what = NULL;

      if (f->kind != SCHED_FIELD_MSG && f->kind != SCHED_FIELD_MSG_OPT)
        continue;
      what = g_strdup_printf ("%s of %s '%s'", f->name, type->noun,
                              sched_row_key (type, row));
      if (!column_msg (self, stmt, i, f->desc, f->kind == SCHED_FIELD_MSG_OPT,
                       what, G_STRUCT_MEMBER_P (row, f->offset), error))
        {
          sched_row_free (type, row);
          return NULL;
        }
    }
  return row;
}
