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
 * The schema and its history are in sched-store-schema.c, the row codecs
 * in sched-store-codec.c.
 */
#include "sched-store-sqlite-private.h"

#include <errno.h>
#include <string.h>

#define SCHED_DB_FILE "drover.db"
#define SCHED_DB_BUSY_TIMEOUT_MS 5000

static const SchedStoreOps sqlite_ops;

/* Converts the connection's current error into a GError. */
gboolean
sched_sqlite_fail (SqliteStore *self, int rc, const char *what, GError **error)
{
  int code = (rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT
                 ? SCHED_ERROR_CORRUPT
                 : SCHED_ERROR_STORE;

  g_set_error (error, SCHED_ERROR, code, "%s: %s: %s", self->path, what,
               self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
  return FALSE;
}

gboolean
sched_sqlite_exec (SqliteStore *self, const char *sql, GError **error)
{
  int rc = sqlite3_exec (self->db, sql, NULL, NULL, NULL);

  if (rc != SQLITE_OK)
    return sched_sqlite_fail (self, rc, "cannot run SQL", error);
  return TRUE;
}

gboolean
sched_sqlite_pragma_int (SqliteStore *self, const char *sql, gint64 *out,
                         GError **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc = sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL);

  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);
  if (rc != SQLITE_ROW)
    {
      sched_sqlite_fail (self, rc, "cannot read the database header", error);
      sqlite3_finalize (stmt);
      return FALSE;
    }
  *out = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);
  return TRUE;
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
      sched_sqlite_fail (self, rc, "cannot open", error);
      return NULL;
    }
  sqlite3_extended_result_codes (self->db, 1);
  sqlite3_busy_timeout (self->db, SCHED_DB_BUSY_TIMEOUT_MS);

  /* The first read of the header is what notices a file that is not
   * SQLite at all (SQLITE_NOTADB). */
  if (!sched_sqlite_migrate (self, error))
    return NULL;

  /* Crash consistency: in WAL mode synchronous=NORMAL syncs only at
   * checkpoints, so a power cut can lose transactions that were already
   * committed, and with them records the agents acted on (a VM created, a
   * migration's outcome, a job). FULL syncs the WAL at every commit;
   * only a RESTATED transaction (a report) commits without the sync. */
  if (!sched_sqlite_exec (self,
                          "PRAGMA journal_mode = WAL;"
                          " PRAGMA synchronous = FULL;",
                          error))
    return NULL;

  for (int i = 0; i < N_STMTS; i++)
    {
      g_autofree char *sql = sched_sqlite_stmt_sql (i);

      rc = sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                               &self->stmts[i], NULL);
      if (rc != SQLITE_OK)
        {
          sched_sqlite_fail (self, rc, "cannot prepare a statement", error);
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
    return sched_sqlite_fail (self, rc, what, error);
  return TRUE;
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
    result = sched_sqlite_read_row (self, stmt, type, error);
  else if (rc == SQLITE_DONE && strcmp (type->fields[0].name, "name") == 0)
    g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND, "no %s named '%s'",
                 type->noun, key);
  else if (rc == SQLITE_DONE)
    g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                 "no %s with %s '%s'", type->noun, type->fields[0].name, key);
  else
    sched_sqlite_fail (self, rc, "cannot read", error);
  sqlite3_reset (stmt);
  return result;
}

/* Steps STMT (already bound) through its rows, of TYPE. */
static GPtrArray *
stmt_all (SqliteStore *self, sqlite3_stmt *stmt, SchedTable table,
          GError **error)
{
  const SchedRowType *type = &sched_row_types[table];
  g_autoptr (GPtrArray) rows
      = g_ptr_array_new_with_free_func (sched_sqlite_row_free[table]);
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gpointer item = sched_sqlite_read_row (self, stmt, type, error);
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
      sched_sqlite_fail (self, rc, "cannot read", error);
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

  sched_sqlite_bind_text (stmt, 1, name);
  if (!stmt_run (self, stmt, "cannot store the NICs of a VM", error))
    return FALSE;
  for (gsize i = 0; spec != NULL && i < spec->n_nics; i++)
    {
      stmt = stmt_get (self, STMT_PUT_NIC);
      sched_sqlite_bind_text (stmt, 1, name);
      sqlite3_bind_int64 (stmt, 2, (gint64)i);
      sched_sqlite_bind_text (stmt, 3, spec->nics[i]->network);
      sched_sqlite_bind_text (stmt, 4, spec->nics[i]->mac);
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

  if (!sched_sqlite_exec (self, "SAVEPOINT put_vm", error))
    return FALSE;
  sched_sqlite_bind_row (stmt, &sched_row_types[SCHED_TABLE_VMS], vm);
  if (stmt_run (self, stmt, "cannot store a VM", error)
      && put_nics (self, vm->name, vm->spec, error))
    return sched_sqlite_exec (self, "RELEASE put_vm", error);
  sched_sqlite_exec (self, "ROLLBACK TO put_vm; RELEASE put_vm", NULL);
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
  sched_sqlite_bind_row (stmt, &sched_row_types[table], row);
  return stmt_run (self, stmt, what, error);
}

static gpointer
sqlite_get (SchedStore *store, SchedTable table, const char *key,
            GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT (table, OP_GET));

  sched_sqlite_bind_text (stmt, 1, key);
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
      sched_sqlite_bind_text (stmt, 1, host);
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

  sched_sqlite_bind_text (stmt, 1, key);
  if (table == SCHED_TABLE_VMS)
    {
      if (!sched_sqlite_exec (self, "SAVEPOINT remove_vm", error))
        return FALSE;
      if (stmt_run (self, stmt, what, error)
          && put_nics (self, key, NULL, error))
        return sched_sqlite_exec (self, "RELEASE remove_vm", error);
      sched_sqlite_exec (self, "ROLLBACK TO remove_vm; RELEASE remove_vm",
                         NULL);
      return FALSE;
    }
  return stmt_run (self, stmt, what, error);
}

static gboolean
sqlite_remove_snapshots (SchedStore *store, const char *vm, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_DELETE_SNAPSHOTS_OF_VM);

  sched_sqlite_bind_text (stmt, 1, vm);
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
  sched_sqlite_bind_text (stmt, 2, after_id);
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
  sched_sqlite_bind_text (stmt, 3, PROTO_JOB_DONE);
  sched_sqlite_bind_text (stmt, 4, PROTO_JOB_FAILED);
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

  sched_sqlite_bind_text (stmt, 1, name);
  rc = sqlite3_step (stmt);
  *value = rc == SQLITE_ROW
               ? g_strdup ((const char *)sqlite3_column_text (stmt, 0))
               : NULL;
  sqlite3_reset (stmt);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return sched_sqlite_fail (self, rc, "cannot read a setting", error);
  return TRUE;
}

static gboolean
sqlite_put_setting (SchedStore *store, const char *name, const char *value,
                    GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_PUT_SETTING);

  sched_sqlite_bind_text (stmt, 1, name);
  sched_sqlite_bind_text (stmt, 2, value);
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
  return sched_sqlite_pragma_int ((SqliteStore *)store, sql, value, error);
}

/* A RESTATED transaction commits with synchronous=NORMAL (the WAL is
 * written, not synced); the connection goes back to FULL after it. The
 * level cannot change inside a transaction, so it is set around it. */
static gboolean
sqlite_begin (SchedStore *store, SchedStoreSync sync, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;

  if (sync == SCHED_STORE_SYNC_RESTATED
      && !sched_sqlite_exec (self, "PRAGMA synchronous = NORMAL", error))
    return FALSE;
  if (!sched_sqlite_exec (self, "BEGIN IMMEDIATE", error))
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
  gboolean ok = sched_sqlite_exec (self, "COMMIT", error);

  /* After a failed COMMIT the transaction is still open; the caller's
   * rollback restores the level. */
  if (ok)
    ok = sched_sqlite_exec (self, "PRAGMA synchronous = FULL", error);
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
