/* The SQLite store backend (sched_store_open_sqlite): the scheduler's
 * persistent state (hosts, VMs, jobs) in one embedded database file.
 *
 * SQLite file DIR/drover.db in WAL mode with synchronous=FULL (see the
 * open function: crash consistency). The schema version is PRAGMA
 * user_version; PRAGMA application_id marks the file as Drover's so a
 * foreign database is refused instead of being written into. Every
 * statement is made from the rows' fields (sched_row_types: a column per
 * field, named after it, in field order), prepared once at open and takes
 * bound parameters only. Messages (HostInfo, VmSpec, VmStatus, a migration
 * job's progress and prediction) are stored packed.
 *
 * Schema history: 1 = hosts, vms, jobs; 2 = jobs gain source_host,
 * dest_host, migration, prediction (live migration); 3 = snapshots and
 * clones: a snapshots table, VMs gain template, base, current_snapshot
 * and snapshots, jobs gain storage; 4 = hosts gain maintenance; 5 = a
 * repos table (backup repositories); 6 = a settings table (name, value)
 * for what an operator changes at run time and a restart keeps (the
 * balancer's mode); 7 = a schedules table (disaster-recovery schedules);
 * 8 = a networks table (issue 13); 9 = a schedule_vms table (each VM's
 * newest good copy and failures in a row per schedule); 10 = a vm_nics
 * table (issue 13): each VM's NICs (vm, idx, network, mac; a MAC at most
 * once), written with the VM's row from its spec, which stays what is
 * read back: the table is the database's own guard that no MAC is
 * stored twice, and an index for SQL readers; 11 = VMs gain labels.
 * Opening an older database upgrades it in one transaction.
 */
#include "sched-store.h"

#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#define SCHED_DB_FILE "drover.db"
#define SCHED_DB_APPLICATION_ID 0x44525652 /* "DRVR" */
#define SCHED_DB_SCHEMA_VERSION 11
#define SCHED_DB_BUSY_TIMEOUT_MS 5000

/* Each table has the same four statements; statement OP of TABLE is
 * stmts[STMT (TABLE, OP)]. */
enum
{
  OP_PUT,
  OP_GET,
  OP_LIST,
  OP_DELETE,
  N_OPS
};
#define STMT(table, op) ((table)*N_OPS + (op))

enum
{
  STMT_LIST_VMS_ON_HOST = SCHED_N_TABLES * N_OPS,
  STMT_LIST_SNAPSHOTS_OF_VM,
  STMT_DELETE_SNAPSHOTS_OF_VM,
  STMT_LIST_JOBS_AFTER,
  STMT_PRUNE_JOBS,
  STMT_GET_SETTING,
  STMT_PUT_SETTING,
  STMT_DELETE_NICS_OF_VM,
  STMT_PUT_NIC,
  N_STMTS
};

/* How each table's rows are listed. */
static const char *const list_order[SCHED_N_TABLES] = {
  [SCHED_TABLE_HOSTS] = "name",
  [SCHED_TABLE_VMS] = "name",
  [SCHED_TABLE_JOBS] = "created_ms, id",
  [SCHED_TABLE_SNAPSHOTS] = "vm, created_ms, name",
  [SCHED_TABLE_REPOS] = "name",
  [SCHED_TABLE_SCHEDULES] = "name",
  [SCHED_TABLE_NETWORKS] = "name",
  [SCHED_TABLE_SCHEDULE_VMS] = "key",
};

/* Version 0 -> 1. Plain CREATE TABLE: tables of the same name in a foreign
 * database make this fail rather than be reused. */
static const char schema_v1[] = "CREATE TABLE hosts ("
                                "  name TEXT PRIMARY KEY NOT NULL,"
                                "  address TEXT NOT NULL,"
                                "  info BLOB NOT NULL,"
                                "  state TEXT NOT NULL,"
                                "  last_seen_ms INTEGER NOT NULL);"
                                "CREATE TABLE vms ("
                                "  name TEXT PRIMARY KEY NOT NULL,"
                                "  host TEXT NOT NULL,"
                                "  spec BLOB NOT NULL,"
                                "  state TEXT NOT NULL,"
                                "  status BLOB,"
                                "  updated_ms INTEGER NOT NULL);"
                                "CREATE INDEX vms_by_host ON vms (host);"
                                "CREATE TABLE jobs ("
                                "  id TEXT PRIMARY KEY NOT NULL,"
                                "  kind TEXT NOT NULL,"
                                "  vm TEXT NOT NULL,"
                                "  state TEXT NOT NULL,"
                                "  progress REAL NOT NULL,"
                                "  message TEXT NOT NULL,"
                                "  error TEXT NOT NULL,"
                                "  created_ms INTEGER NOT NULL,"
                                "  updated_ms INTEGER NOT NULL);";

/* Version 1 -> 2: what a migration job records. */
static const char schema_v2[]
    = "ALTER TABLE jobs ADD COLUMN source_host TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE jobs ADD COLUMN dest_host TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE jobs ADD COLUMN migration BLOB;"
      "ALTER TABLE jobs ADD COLUMN prediction BLOB;";

/* Version 2 -> 3: snapshots, templates and linked clones (issue 12). */
static const char schema_v3[]
    = "ALTER TABLE vms ADD COLUMN template INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE vms ADD COLUMN base TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE vms ADD COLUMN current_snapshot TEXT NOT NULL DEFAULT '';"
      "ALTER TABLE vms ADD COLUMN snapshots INTEGER NOT NULL DEFAULT 0;"
      "ALTER TABLE jobs ADD COLUMN storage BLOB;"
      "CREATE TABLE snapshots ("
      "  id TEXT PRIMARY KEY NOT NULL,"
      "  vm TEXT NOT NULL,"
      "  name TEXT NOT NULL,"
      "  created_ms INTEGER NOT NULL,"
      "  info BLOB NOT NULL);"
      "CREATE INDEX snapshots_by_vm ON snapshots (vm);";

/* Version 3 -> 4: hosts taken out of service (issue 15). */
static const char schema_v4[]
    = "ALTER TABLE hosts ADD COLUMN maintenance TEXT NOT NULL DEFAULT '';";

/* Version 4 -> 5: backup repositories the operator added (issue 14). */
static const char schema_v5[] = "CREATE TABLE repos ("
                                "  name TEXT PRIMARY KEY NOT NULL,"
                                "  path TEXT NOT NULL,"
                                "  created_ms INTEGER NOT NULL);";
/* Version 5 -> 6: settings an operator changes at run time (issue 15).
 * Written as its own step so that it applies after any version 5. */
static const char schema_v6[] = "CREATE TABLE settings ("
                                "  name TEXT PRIMARY KEY NOT NULL,"
                                "  value TEXT NOT NULL);";
/* Version 6 -> 7: disaster-recovery schedules (issue 16). */
static const char schema_v7[] = "CREATE TABLE schedules ("
                                "  name TEXT PRIMARY KEY NOT NULL,"
                                "  next_run_ms INTEGER NOT NULL,"
                                "  spec BLOB NOT NULL);";
/* Version 7 -> 8: networks, bridges that hosts provide (issue 13). */
static const char schema_v8[] = "CREATE TABLE networks ("
                                "  name TEXT PRIMARY KEY NOT NULL,"
                                "  spec BLOB NOT NULL);";
/* Version 8 -> 9: what is kept of each VM's runs of each schedule (issue
 * 16): the newest good copy, failures in a row. */
static const char schema_v9[] = "CREATE TABLE schedule_vms ("
                                "  key TEXT PRIMARY KEY NOT NULL,"
                                "  schedule TEXT NOT NULL,"
                                "  vm TEXT NOT NULL,"
                                "  state BLOB NOT NULL);";

/* Version 9 -> 10: VMs' NICs (issue 13). No VM had NICs before. */
static const char schema_v10[] = "CREATE TABLE vm_nics ("
                                 "  vm TEXT NOT NULL,"
                                 "  idx INTEGER NOT NULL,"
                                 "  network TEXT NOT NULL,"
                                 "  mac TEXT NOT NULL UNIQUE,"
                                 "  PRIMARY KEY (vm, idx));";

/* Version 10 -> 11: VMs' labels (issue 16). */
static const char schema_v11[]
    = "ALTER TABLE vms ADD COLUMN labels TEXT NOT NULL DEFAULT '';";

/* "SELECT <every column> FROM <table>" for TYPE, into OUT. */
static void
append_select (GString *out, const SchedRowType *type)
{
  g_string_append (out, "SELECT ");
  for (guint i = 0; i < type->n_fields; i++)
    g_string_append_printf (out, "%s%s", i ? ", " : "", type->fields[i].name);
  g_string_append_printf (out, " FROM %s", type->table);
}

/* The SQL of statement I, made from the fields of the rows (the key first,
 * columns named after the fields). For hosts:
 *   OP_PUT    INSERT INTO hosts (name, address, info, state, last_seen_ms)
 *             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET
 *             address = ?2, info = ?3, state = ?4, last_seen_ms = ?5
 *   OP_GET    SELECT name, address, ... FROM hosts WHERE name = ?1
 *   OP_LIST   SELECT name, address, ... FROM hosts ORDER BY name
 *   OP_DELETE DELETE FROM hosts WHERE name = ?1 */
static char *
stmt_sql (int i)
{
  const SchedRowType *type;
  const char *key;
  GString *sql = g_string_new (NULL);

  switch (i)
    {
    case STMT_LIST_VMS_ON_HOST:
      append_select (sql, &sched_row_types[SCHED_TABLE_VMS]);
      g_string_append (sql, " WHERE host = ?1 ORDER BY name");
      return g_string_free (sql, FALSE);
    case STMT_LIST_SNAPSHOTS_OF_VM:
      append_select (sql, &sched_row_types[SCHED_TABLE_SNAPSHOTS]);
      g_string_append (sql, " WHERE vm = ?1 ORDER BY created_ms, name");
      return g_string_free (sql, FALSE);
    case STMT_DELETE_SNAPSHOTS_OF_VM:
      g_string_append (sql, "DELETE FROM snapshots WHERE vm = ?1");
      return g_string_free (sql, FALSE);
    case STMT_LIST_JOBS_AFTER:
      append_select (sql, &sched_row_types[SCHED_TABLE_JOBS]);
      g_string_append (sql, " WHERE created_ms > ?1"
                            " OR (created_ms = ?1 AND id > ?2)"
                            " ORDER BY created_ms, id LIMIT ?3");
      return g_string_free (sql, FALSE);
    case STMT_PRUNE_JOBS:
      /* ?3, ?4: the finished states. */
      g_string_append (sql, "DELETE FROM jobs WHERE state IN (?3, ?4)"
                            " AND (updated_ms < ?1 OR id NOT IN"
                            " (SELECT id FROM jobs WHERE state IN (?3, ?4)"
                            " ORDER BY updated_ms DESC, id DESC LIMIT ?2))");
      return g_string_free (sql, FALSE);
    case STMT_GET_SETTING:
      g_string_append (sql, "SELECT value FROM settings WHERE name = ?1");
      return g_string_free (sql, FALSE);
    case STMT_DELETE_NICS_OF_VM:
      g_string_append (sql, "DELETE FROM vm_nics WHERE vm = ?1");
      return g_string_free (sql, FALSE);
    case STMT_PUT_NIC:
      g_string_append (sql, "INSERT INTO vm_nics (vm, idx, network, mac)"
                            " VALUES (?1, ?2, ?3, ?4)");
      return g_string_free (sql, FALSE);
    case STMT_PUT_SETTING:
      g_string_append (sql, "INSERT INTO settings (name, value) VALUES (?1, ?2)"
                            " ON CONFLICT (name) DO UPDATE SET value = ?2");
      return g_string_free (sql, FALSE);
    }
  type = &sched_row_types[i / N_OPS];
  key = type->fields[0].name;
  switch (i % N_OPS)
    {
    case OP_PUT:
      g_string_append_printf (sql, "INSERT INTO %s (", type->table);
      for (guint f = 0; f < type->n_fields; f++)
        g_string_append_printf (sql, "%s%s", f ? ", " : "",
                                type->fields[f].name);
      g_string_append (sql, ") VALUES (");
      for (guint f = 0; f < type->n_fields; f++)
        g_string_append_printf (sql, "%s?%u", f ? ", " : "", f + 1);
      g_string_append_printf (sql, ") ON CONFLICT (%s) DO UPDATE SET ", key);
      for (guint f = 1; f < type->n_fields; f++)
        g_string_append_printf (sql, "%s%s = ?%u", f > 1 ? ", " : "",
                                type->fields[f].name, f + 1);
      break;
    case OP_GET:
      append_select (sql, type);
      g_string_append_printf (sql, " WHERE %s = ?1", key);
      break;
    case OP_LIST:
      append_select (sql, type);
      g_string_append_printf (sql, " ORDER BY %s", list_order[i / N_OPS]);
      break;
    case OP_DELETE:
      g_string_append_printf (sql, "DELETE FROM %s WHERE %s = ?1", type->table,
                              key);
      break;
    }
  return g_string_free (sql, FALSE);
}

typedef struct
{
  SchedStore parent;
  sqlite3 *db;
  char *path;
  sqlite3_stmt *stmts[N_STMTS];
} SqliteStore;

static const SchedStoreOps sqlite_ops;

/* Converts the connection's current error into a GError. */
static gboolean
sqlite_fail (SqliteStore *self, int rc, const char *what, GError **error)
{
  int code = (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT
                 ? SCHED_ERROR_CORRUPT
                 : SCHED_ERROR_STORE;

  g_set_error (error, SCHED_ERROR, code, "%s: %s: %s", self->path, what,
               self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
  return FALSE;
}

static gboolean
sqlite_exec (SqliteStore *self, const char *sql, GError **error)
{
  int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    return sqlite_fail (self, rc, "cannot run SQL", error);
  return TRUE;
}

static gboolean
sqlite_pragma_int (SqliteStore *self, const char *sql, gint64 *out,
                   GError **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);

  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      sqlite_fail (self, rc, "cannot read the database header", error);
      sqlite3_finalize (stmt);
      return FALSE;
    }
  *out = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  return TRUE;
}

static gboolean
sqlite_not_drover (SqliteStore *self, const char *why, GError **error)
{
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_CORRUPT,
               "%s is not a Drover database (%s)", self->path, why);
  return FALSE;
}

static gboolean
sqlite_migrate (SqliteStore *self, GError **error)
{
  gint64 version, app_id, n_tables;
  g_autofree char *set_version = NULL;

  if (!sqlite_pragma_int (self, "PRAGMA user_version", &version, error)
      || !sqlite_pragma_int (self, "PRAGMA application_id", &app_id, error)
      || !sqlite_pragma_int (self, "SELECT count(*) FROM sqlite_master",
                             &n_tables, error))
    return FALSE;

  if (version == SCHED_DB_SCHEMA_VERSION && app_id == SCHED_DB_APPLICATION_ID)
    return TRUE;
  /* A new file, or one of ours at an older version: apply the steps it
   * lacks in one transaction. */
  if ((version == 0 && app_id == 0 && n_tables == 0)
      || (app_id == SCHED_DB_APPLICATION_ID && version >= 1
          && version < SCHED_DB_SCHEMA_VERSION))
    {
      set_version
          = g_strdup_printf ("PRAGMA application_id = %d;"
                             " PRAGMA user_version = %d;",
                             SCHED_DB_APPLICATION_ID, SCHED_DB_SCHEMA_VERSION);
      if (!sqlite_exec (self, "BEGIN IMMEDIATE", error))
        return FALSE;
      if ((version < 1 && !sqlite_exec (self, schema_v1, error))
          || (version < 2 && !sqlite_exec (self, schema_v2, error))
          || (version < 3 && !sqlite_exec (self, schema_v3, error))
          || (version < 4 && !sqlite_exec (self, schema_v4, error))
          || (version < 5 && !sqlite_exec (self, schema_v5, error))
          || (version < 6 && !sqlite_exec (self, schema_v6, error))
          || (version < 7 && !sqlite_exec (self, schema_v7, error))
          || (version < 8 && !sqlite_exec (self, schema_v8, error))
          || (version < 9 && !sqlite_exec (self, schema_v9, error))
          || (version < 10 && !sqlite_exec (self, schema_v10, error))
          || (version < 11 && !sqlite_exec (self, schema_v11, error))
          || !sqlite_exec (self, set_version, error)
          || !sqlite_exec (self, "COMMIT", error))
        {
          sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
          return FALSE;
        }
      return TRUE;
    }
  if (app_id != SCHED_DB_APPLICATION_ID)
    return sqlite_not_drover (self, "foreign SQLite database", error);
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_CORRUPT,
               "%s has schema version %" G_GINT64_FORMAT
               ", this scheduler knows %d",
               self->path, version, SCHED_DB_SCHEMA_VERSION);
  return FALSE;
}

static void
sqlite_close (SchedStore *store)
{
  SqliteStore *self = (SqliteStore *)store;

  for (int i = 0; i < N_STMTS; i++)
    sqlite3_finalize (self->stmts[i]);
  if (self->db != NULL)
    sqlite3_close (self->db);
  g_free (self->path);
  g_free (self);
}

SchedStore *
sched_store_open_sqlite (const char *dir, GError **error)
{
  SqliteStore *self = g_new0 (SqliteStore, 1);
  g_autoptr (SchedStore) store = &self->parent;
  int rc;

  self->parent.ops = &sqlite_ops;
  self->path = g_build_filename (dir, SCHED_DB_FILE, NULL);

  if (g_mkdir_with_parents (dir, 0700) < 0)
    {
      int saved = errno;
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_STORE,
                   "cannot create state directory %s: %s", dir,
                   g_strerror (saved));
      return NULL;
    }

  rc = sqlite3_open_v2 (self->path, &self->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK)
    {
      sqlite_fail (self, rc, "cannot open", error);
      return NULL;
    }
  sqlite3_extended_result_codes (self->db, 1);
  sqlite3_busy_timeout (self->db, SCHED_DB_BUSY_TIMEOUT_MS);

  /* The first read of the header is what notices a file that is not
   * SQLite at all (SQLITE_NOTADB). */
  if (!sqlite_migrate (self, error))
    return NULL;

  /* Crash consistency: in WAL mode synchronous=NORMAL syncs only at
   * checkpoints, so a power cut can lose transactions that were already
   * committed, and with them records the agents acted on (a VM created, a
   * migration's outcome, a job). FULL syncs the WAL at every commit;
   * only a RESTATED transaction (a report) commits without the sync. */
  if (!sqlite_exec (self,
                    "PRAGMA journal_mode = WAL;"
                    " PRAGMA synchronous = FULL;",
                    error))
    return NULL;

  for (int i = 0; i < N_STMTS; i++)
    {
      g_autofree char *sql = stmt_sql (i);

      rc = sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &self->stmts[i], NULL);
      if (rc != SQLITE_OK)
        {
          sqlite_fail (self, rc, "cannot prepare a statement", error);
          return NULL;
        }
    }
  return g_steal_pointer (&store);
}

/* Borrows statement I, reset and with its bindings cleared. */
static sqlite3_stmt *
stmt_get (SqliteStore *self, int i)
{
  sqlite3_stmt *stmt = self->stmts[i];

  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);
  return stmt;
}

/* Runs a statement that returns no rows. */
static gboolean
stmt_run (SqliteStore *self, sqlite3_stmt *stmt, const char *what,
          GError **error)
{
  int rc = sqlite3_step (stmt);

  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    return sqlite_fail (self, rc, what, error);
  return TRUE;
}

static void
bind_text (sqlite3_stmt *stmt, int i, const char *text)
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

static char *
column_text (sqlite3_stmt *stmt, int i)
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
static const GDestroyNotify row_free[SCHED_N_TABLES] = {
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
static void
bind_row (sqlite3_stmt *stmt, const SchedRowType *type, gconstpointer row)
{
  for (guint i = 0; i < type->n_fields; i++)
    {
      const SchedField *f = &type->fields[i];
      gconstpointer p = G_STRUCT_MEMBER_P (row, f->offset);

      switch (f->kind)
        {
        case SCHED_FIELD_TEXT:
          bind_text (stmt, i + 1, *(const char *const *)p);
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
static gpointer
read_row (SqliteStore *self, sqlite3_stmt *stmt, const SchedRowType *type,
          GError **error)
{
  gpointer row = g_malloc0 (type->size);

  /* Text and numbers first: the key names the row in errors. */
  for (guint i = 0; i < type->n_fields; i++)
    {
      const SchedField *f = &type->fields[i];
      gpointer p = G_STRUCT_MEMBER_P (row, f->offset);

      if (f->kind == SCHED_FIELD_TEXT)
        *(char **)p = column_text (stmt, i);
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

/* Steps STMT (already bound) and returns its one row, of TYPE; NOT_FOUND
 * naming KEY if there is none. */
static gpointer
stmt_one (SqliteStore *self, sqlite3_stmt *stmt, const SchedRowType *type,
          const char *key, GError **error)
{
  int rc = sqlite3_step (stmt);
  gpointer result = NULL;

  if (rc == SQLITE_ROW)
    result = read_row (self, stmt, type, error);
  else if (rc == SQLITE_DONE && strcmp (type->fields[0].name, "name") == 0)
    g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND, "no %s named '%s'",
                 type->noun, key);
  else if (rc == SQLITE_DONE)
    g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                 "no %s with %s '%s'", type->noun, type->fields[0].name, key);
  else
    sqlite_fail (self, rc, "cannot read", error);
  sqlite3_reset (stmt);
  return result;
}

/* Steps STMT (already bound) through its rows, of TYPE. */
static GPtrArray *
stmt_all (SqliteStore *self, sqlite3_stmt *stmt, SchedTable table,
          GError **error)
{
  const SchedRowType *type = &sched_row_types[table];
  g_autoptr (GPtrArray) rows = g_ptr_array_new_with_free_func (row_free[table]);
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gpointer item = read_row (self, stmt, type, error);
      if (item == NULL)
        {
          sqlite3_reset (stmt);
          return NULL;
        }
      g_ptr_array_add (rows, item);
    }
  sqlite3_reset (stmt);
  if (rc != SQLITE_DONE)
    {
      sqlite_fail (self, rc, "cannot read", error);
      return NULL;
    }
  return g_steal_pointer (&rows);
}

/* The vm_nics rows of VM NAME: SPEC's NICs (NULL: none). */
static gboolean
put_nics (SqliteStore *self, const char *name, const Drover__V1__VmSpec *spec,
          GError **error)
{
  sqlite3_stmt *stmt = stmt_get (self, STMT_DELETE_NICS_OF_VM);

  bind_text (stmt, 1, name);
  if (!stmt_run (self, stmt, "cannot store the NICs of a VM", error))
    return FALSE;
  for (gsize i = 0; spec != NULL && i < spec->n_nics; i++)
    {
      stmt = stmt_get (self, STMT_PUT_NIC);
      bind_text (stmt, 1, name);
      sqlite3_bind_int64 (stmt, 2, (gint64)i);
      bind_text (stmt, 3, spec->nics[i]->network);
      bind_text (stmt, 4, spec->nics[i]->mac);
      if (!stmt_run (self, stmt, "cannot store the NICs of a VM", error))
        return FALSE;
    }
  return TRUE;
}

/* A VM's row and its NICs, all or nothing (a savepoint nests in the
 * caller's transaction, if any). */
static gboolean
put_vm (SqliteStore *self, const SchedVm *vm, GError **error)
{
  sqlite3_stmt *stmt = stmt_get (self, STMT (SCHED_TABLE_VMS, OP_PUT));

  if (!sqlite_exec (self, "SAVEPOINT put_vm", error))
    return FALSE;
  bind_row (stmt, &sched_row_types[SCHED_TABLE_VMS], vm);
  if (stmt_run (self, stmt, "cannot store a VM", error)
      && put_nics (self, vm->name, vm->spec, error))
    return sqlite_exec (self, "RELEASE put_vm", error);
  sqlite_exec (self, "ROLLBACK TO put_vm; RELEASE put_vm", NULL);
  return FALSE;
}

static gboolean
sqlite_put (SchedStore *store, SchedTable table, gconstpointer row,
            GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT (table, OP_PUT));
  g_autofree char *what
      = g_strdup_printf ("cannot store a %s", sched_row_types[table].noun);

  if (table == SCHED_TABLE_VMS)
    return put_vm (self, row, error);
  bind_row (stmt, &sched_row_types[table], row);
  return stmt_run (self, stmt, what, error);
}

static gpointer
sqlite_get (SchedStore *store, SchedTable table, const char *key,
            GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT (table, OP_GET));

  bind_text (stmt, 1, key);
  return stmt_one (self, stmt, &sched_row_types[table], key, error);
}

static GPtrArray *
sqlite_list (SchedStore *store, SchedTable table, const char *host,
             GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt;

  if (host != NULL)
    {
      g_return_val_if_fail (
          table == SCHED_TABLE_VMS || table == SCHED_TABLE_SNAPSHOTS, NULL);
      stmt = stmt_get (self, table == SCHED_TABLE_VMS
                                 ? STMT_LIST_VMS_ON_HOST
                                 : STMT_LIST_SNAPSHOTS_OF_VM);
      bind_text (stmt, 1, host);
    }
  else
    stmt = stmt_get (self, STMT (table, OP_LIST));
  return stmt_all (self, stmt, table, error);
}

static gboolean
sqlite_remove (SchedStore *store, SchedTable table, const char *key,
               GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT (table, OP_DELETE));
  g_autofree char *what
      = g_strdup_printf ("cannot delete a %s", sched_row_types[table].noun);

  bind_text (stmt, 1, key);
  if (table == SCHED_TABLE_VMS)
    {
      if (!sqlite_exec (self, "SAVEPOINT remove_vm", error))
        return FALSE;
      if (stmt_run (self, stmt, what, error)
          && put_nics (self, key, NULL, error))
        return sqlite_exec (self, "RELEASE remove_vm", error);
      sqlite_exec (self, "ROLLBACK TO remove_vm; RELEASE remove_vm", NULL);
      return FALSE;
    }
  return stmt_run (self, stmt, what, error);
}

static gboolean
sqlite_remove_snapshots (SchedStore *store, const char *vm, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_DELETE_SNAPSHOTS_OF_VM);

  bind_text (stmt, 1, vm);
  return stmt_run (self, stmt, "cannot delete snapshots", error);
}

static GPtrArray *
sqlite_list_jobs_after (SchedStore *store, gint64 after_ms,
                        const char *after_id, guint limit, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_LIST_JOBS_AFTER);

  if (after_id == NULL)
    {
      after_ms = G_MININT64;
      after_id = "";
    }
  sqlite3_bind_int64 (stmt, 1, after_ms);
  bind_text (stmt, 2, after_id);
  sqlite3_bind_int64 (stmt, 3, limit);
  return stmt_all (self, stmt, SCHED_TABLE_JOBS, error);
}

static gboolean
sqlite_prune_jobs (SchedStore *store, gint64 before_ms, guint keep,
                   guint *n_deleted, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_PRUNE_JOBS);

  sqlite3_bind_int64 (stmt, 1, before_ms);
  sqlite3_bind_int64 (stmt, 2, keep);
  bind_text (stmt, 3, PROTO_JOB_DONE);
  bind_text (stmt, 4, PROTO_JOB_FAILED);
  if (!stmt_run (self, stmt, "cannot prune jobs", error))
    return FALSE;
  if (n_deleted != NULL)
    *n_deleted = sqlite3_changes (self->db);
  return TRUE;
}

static gboolean
sqlite_get_setting (SchedStore *store, const char *name, char **value,
                    GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_GET_SETTING);
  int rc;

  bind_text (stmt, 1, name);
  rc = sqlite3_step (stmt);
  *value = rc == SQLITE_ROW
               ? g_strdup ((const char *)sqlite3_column_text (stmt, 0))
               : NULL;
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return sqlite_fail (self, rc, "cannot read a setting", error);
  return TRUE;
}

static gboolean
sqlite_put_setting (SchedStore *store, const char *name, const char *value,
                    GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_PUT_SETTING);

  bind_text (stmt, 1, name);
  bind_text (stmt, 2, value);
  return stmt_run (self, stmt, "cannot write a setting", error);
}

gboolean
sched_store_sqlite_pragma (SchedStore *store, const char *name, gint64 *value,
                           GError **error)
{
  g_autofree char *sql = NULL;

  g_return_val_if_fail (store->ops == &sqlite_ops, FALSE);
  g_return_val_if_fail (name[0] != '\0', FALSE);
  for (const char *p = name; *p; p++)
    g_return_val_if_fail (g_ascii_isalpha (*p) || *p == '_', FALSE);
  sql = g_strdup_printf ("PRAGMA %s", name);
  return sqlite_pragma_int ((SqliteStore *)store, sql, value, error);
}

/* A RESTATED transaction commits with synchronous=NORMAL (the WAL is
 * written, not synced); the connection goes back to FULL after it. The
 * level cannot change inside a transaction, so it is set around it. */
static gboolean
sqlite_begin (SchedStore *store, SchedStoreSync sync, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;

  if (sync == SCHED_STORE_SYNC_RESTATED
      && !sqlite_exec (self, "PRAGMA synchronous = NORMAL", error))
    return FALSE;
  if (!sqlite_exec (self, "BEGIN IMMEDIATE", error))
    {
      sqlite3_exec (self->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
      return FALSE;
    }
  return TRUE;
}

static gboolean
sqlite_commit (SchedStore *store, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  gboolean ok = sqlite_exec (self, "COMMIT", error);

  /* After a failed COMMIT the transaction is still open; the caller's
   * rollback restores the level. */
  if (ok)
    ok = sqlite_exec (self, "PRAGMA synchronous = FULL", error);
  return ok;
}

static void
sqlite_rollback (SchedStore *store)
{
  SqliteStore *self = (SqliteStore *)store;

  if (!sqlite3_get_autocommit (self->db))
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_exec (self->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
}

static const SchedStoreOps sqlite_ops = {
  .name = "sqlite",
  .close = sqlite_close,
  .put = sqlite_put,
  .get = sqlite_get,
  .list = sqlite_list,
  .remove = sqlite_remove,
  .remove_snapshots = sqlite_remove_snapshots,
  .list_jobs_after = sqlite_list_jobs_after,
  .prune_jobs = sqlite_prune_jobs,
  .get_setting = sqlite_get_setting,
  .put_setting = sqlite_put_setting,
  .begin = sqlite_begin,
  .commit = sqlite_commit,
  .rollback = sqlite_rollback,
};
