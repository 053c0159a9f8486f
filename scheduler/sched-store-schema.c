/* The SQLite store's schema, its upgrades and the SQL of its statements.
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
#include "sched-store-sqlite-private.h"

#define SCHED_DB_APPLICATION_ID 0x44525652 /* "DRVR" */
#define SCHED_DB_SCHEMA_VERSION 11

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
char *
sched_sqlite_stmt_sql (int i)
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

static gboolean
sqlite_not_drover (SqliteStore *self, const char *why, GError **error)
{
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_CORRUPT,
               "%s is not a Drover database (%s)", self->path, why);
  return FALSE;
}

gboolean
sched_sqlite_migrate (SqliteStore *self, GError **error)
{
  gint64 version, app_id, n_tables;
  g_autofree char *set_version = NULL;

  if (!sched_sqlite_pragma_int (self, "PRAGMA user_version", &version, error)
      || !sched_sqlite_pragma_int (self, "PRAGMA application_id", &app_id,
                                   error)
      || !sched_sqlite_pragma_int (self, "SELECT count(*) FROM sqlite_master",
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
      if (!sched_sqlite_exec (self, "BEGIN IMMEDIATE", error))
        return FALSE;
      if ((version < 1 && !sched_sqlite_exec (self, schema_v1, error))
          || (version < 2 && !sched_sqlite_exec (self, schema_v2, error))
          || (version < 3 && !sched_sqlite_exec (self, schema_v3, error))
          || (version < 4 && !sched_sqlite_exec (self, schema_v4, error))
          || (version < 5 && !sched_sqlite_exec (self, schema_v5, error))
          || (version < 6 && !sched_sqlite_exec (self, schema_v6, error))
          || (version < 7 && !sched_sqlite_exec (self, schema_v7, error))
          || (version < 8 && !sched_sqlite_exec (self, schema_v8, error))
          || (version < 9 && !sched_sqlite_exec (self, schema_v9, error))
          || (version < 10 && !sched_sqlite_exec (self, schema_v10, error))
          || (version < 11 && !sched_sqlite_exec (self, schema_v11, error))
          || !sched_sqlite_exec (self, set_version, error)
          || !sched_sqlite_exec (self, "COMMIT", error))
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
