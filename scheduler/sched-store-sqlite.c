/* The SQLite store backend (sched_store_open_sqlite): the scheduler's
 * persistent state (hosts, VMs, jobs) in one embedded database file.
 *
 * SQLite file DIR/drover.db in WAL mode. The schema version is PRAGMA
 * user_version; PRAGMA application_id marks the file as Drover's so a
 * foreign database is refused instead of being written into. Every
 * statement is prepared once at open and takes bound parameters only.
 * Messages (HostInfo, VmSpec, VmStatus, a migration job's progress and
 * prediction) are stored packed.
 *
 * Schema history: 1 = hosts, vms, jobs; 2 = jobs gain source_host,
 * dest_host, migration, prediction (live migration). Opening an older
 * database upgrades it in one transaction.
 */
#include "sched-store.h"

#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#define SCHED_DB_FILE "drover.db"
#define SCHED_DB_APPLICATION_ID 0x44525652 /* "DRVR" */
#define SCHED_DB_SCHEMA_VERSION 2
#define SCHED_DB_BUSY_TIMEOUT_MS 5000

enum
{
  STMT_PUT_HOST,
  STMT_GET_HOST,
  STMT_LIST_HOSTS,
  STMT_DELETE_HOST,
  STMT_PUT_VM,
  STMT_GET_VM,
  STMT_LIST_VMS,
  STMT_LIST_VMS_ON_HOST,
  STMT_DELETE_VM,
  STMT_PUT_JOB,
  STMT_GET_JOB,
  STMT_LIST_JOBS,
  N_STMTS
};

static const char *const stmt_sql[N_STMTS] = {
  [STMT_PUT_HOST]
  = "INSERT INTO hosts (name, address, info, state, last_seen_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5)"
    " ON CONFLICT (name) DO UPDATE SET address = ?2, info = ?3, state = ?4,"
    " last_seen_ms = ?5",
  [STMT_GET_HOST] = "SELECT name, address, info, state, last_seen_ms FROM "
                    "hosts WHERE name = ?1",
  [STMT_LIST_HOSTS]
  = "SELECT name, address, info, state, last_seen_ms FROM hosts ORDER BY name",
  [STMT_DELETE_HOST] = "DELETE FROM hosts WHERE name = ?1",
  [STMT_PUT_VM]
  = "INSERT INTO vms (name, host, spec, state, status, updated_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT (name) DO UPDATE SET host = ?2, spec = ?3, state = ?4,"
    " status = ?5, updated_ms = ?6",
  [STMT_GET_VM] = "SELECT name, host, spec, state, status, updated_ms FROM vms "
                  "WHERE name = ?1",
  [STMT_LIST_VMS]
  = "SELECT name, host, spec, state, status, updated_ms FROM vms ORDER BY name",
  [STMT_LIST_VMS_ON_HOST]
  = "SELECT name, host, spec, state, status, updated_ms FROM vms"
    " WHERE host = ?1 ORDER BY name",
  [STMT_DELETE_VM] = "DELETE FROM vms WHERE name = ?1",
  [STMT_PUT_JOB]
  = "INSERT INTO jobs (id, kind, vm, state, progress, message, error,"
    " created_ms, updated_ms, source_host, dest_host, migration, prediction)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    " ON CONFLICT (id) DO UPDATE SET kind = ?2, vm = ?3, state = ?4,"
    " progress = ?5, message = ?6, error = ?7, created_ms = ?8, updated_ms = "
    "?9,"
    " source_host = ?10, dest_host = ?11, migration = ?12, prediction = ?13",
  [STMT_GET_JOB]
  = "SELECT id, kind, vm, state, progress, message, error, created_ms,"
    " updated_ms, source_host, dest_host, migration, prediction"
    " FROM jobs WHERE id = ?1",
  [STMT_LIST_JOBS]
  = "SELECT id, kind, vm, state, progress, message, error, created_ms,"
    " updated_ms, source_host, dest_host, migration, prediction"
    " FROM jobs ORDER BY created_ms, id",
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
  g_autofree char *journal = NULL;
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

  if (!sqlite_exec (self,
                    "PRAGMA journal_mode = WAL;"
                    " PRAGMA synchronous = NORMAL;",
                    error))
    return NULL;

  for (int i = 0; i < N_STMTS; i++)
    {
      rc = sqlite3_prepare_v3 (self->db, stmt_sql[i], -1,
                               SQLITE_PREPARE_PERSISTENT, &self->stmts[i],
                               NULL);
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

static SchedHost *
row_host (SqliteStore *self, sqlite3_stmt *stmt, GError **error)
{
  g_autoptr (SchedHost) host = g_new0 (SchedHost, 1);
  g_autofree char *what = NULL;

  host->name = column_text (stmt, 0);
  host->address = column_text (stmt, 1);
  host->state = column_text (stmt, 3);
  host->last_seen_ms = sqlite3_column_int64 (stmt, 4);
  what = g_strdup_printf ("info of host '%s'", host->name);
  if (!column_msg (self, stmt, 2, &drover__v1__host_info__descriptor, FALSE,
                   what, (gpointer *)&host->info, error))
    return NULL;
  return g_steal_pointer (&host);
}

static SchedVm *
row_vm (SqliteStore *self, sqlite3_stmt *stmt, GError **error)
{
  g_autoptr (SchedVm) vm = g_new0 (SchedVm, 1);
  g_autofree char *what = NULL;

  vm->name = column_text (stmt, 0);
  vm->host = column_text (stmt, 1);
  vm->state = column_text (stmt, 3);
  vm->updated_ms = sqlite3_column_int64 (stmt, 5);
  what = g_strdup_printf ("spec of VM '%s'", vm->name);
  if (!column_msg (self, stmt, 2, &drover__v1__vm_spec__descriptor, FALSE, what,
                   (gpointer *)&vm->spec, error))
    return NULL;
  g_free (what);
  what = g_strdup_printf ("status of VM '%s'", vm->name);
  if (!column_msg (self, stmt, 4, &drover__v1__vm_status__descriptor, TRUE,
                   what, (gpointer *)&vm->status, error))
    return NULL;
  return g_steal_pointer (&vm);
}

static SchedJob *
row_job (SqliteStore *self, sqlite3_stmt *stmt, GError **error)
{
  g_autoptr (SchedJob) job = g_new0 (SchedJob, 1);
  g_autofree char *what = NULL;

  job->id = column_text (stmt, 0);
  job->kind = column_text (stmt, 1);
  job->vm = column_text (stmt, 2);
  job->state = column_text (stmt, 3);
  job->progress = sqlite3_column_double (stmt, 4);
  job->message = column_text (stmt, 5);
  job->error = column_text (stmt, 6);
  job->created_ms = sqlite3_column_int64 (stmt, 7);
  job->updated_ms = sqlite3_column_int64 (stmt, 8);
  job->source_host = column_text (stmt, 9);
  job->dest_host = column_text (stmt, 10);
  what = g_strdup_printf ("migration progress of job '%s'", job->id);
  if (!column_msg (self, stmt, 11, &drover__v1__migration_progress__descriptor,
                   TRUE, what, (gpointer *)&job->migration, error))
    return NULL;
  g_free (what);
  what = g_strdup_printf ("migration prediction of job '%s'", job->id);
  if (!column_msg (self, stmt, 12,
                   &drover__v1__migration_prediction__descriptor, TRUE, what,
                   (gpointer *)&job->prediction, error))
    return NULL;
  return g_steal_pointer (&job);
}

typedef gpointer (*RowFunc) (SqliteStore *self, sqlite3_stmt *stmt,
                             GError **error);

/* Steps STMT (already bound) and returns its one row, NOT_FOUND naming
 * WHAT if there is none. */
static gpointer
stmt_one (SqliteStore *self, sqlite3_stmt *stmt, RowFunc row, const char *what,
          GError **error)
{
  int rc = sqlite3_step (stmt);
  gpointer result = NULL;

  if (rc == SQLITE_ROW)
    result = row (self, stmt, error);
  else if (rc == SQLITE_DONE)
    g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND, "no %s", what);
  else
    sqlite_fail (self, rc, "cannot read", error);
  sqlite3_reset (stmt);
  return result;
}

static GPtrArray *
stmt_all (SqliteStore *self, sqlite3_stmt *stmt, RowFunc row,
          GDestroyNotify free_func, GError **error)
{
  g_autoptr (GPtrArray) rows = g_ptr_array_new_with_free_func (free_func);
  int rc;

  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      gpointer item = row (self, stmt, error);
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

static gboolean
sqlite_put_host (SchedStore *store, const SchedHost *host, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_PUT_HOST);

  bind_text (stmt, 1, host->name);
  bind_text (stmt, 2, host->address);
  bind_msg (stmt, 3, &host->info->base);
  bind_text (stmt, 4, host->state);
  sqlite3_bind_int64 (stmt, 5, host->last_seen_ms);
  return stmt_run (self, stmt, "cannot store a host", error);
}

static SchedHost *
sqlite_get_host (SchedStore *store, const char *name, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_GET_HOST);
  g_autofree char *what = g_strdup_printf ("host named '%s'", name);

  bind_text (stmt, 1, name);
  return stmt_one (self, stmt, (RowFunc)row_host, what, error);
}

static GPtrArray *
sqlite_list_hosts (SchedStore *store, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;

  return stmt_all (self, stmt_get (self, STMT_LIST_HOSTS), (RowFunc)row_host,
                   (GDestroyNotify)sched_host_free, error);
}

static gboolean
sqlite_delete_host (SchedStore *store, const char *name, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_DELETE_HOST);

  bind_text (stmt, 1, name);
  return stmt_run (self, stmt, "cannot delete a host", error);
}

static gboolean
sqlite_put_vm (SchedStore *store, const SchedVm *vm, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_PUT_VM);

  bind_text (stmt, 1, vm->name);
  bind_text (stmt, 2, vm->host);
  bind_msg (stmt, 3, &vm->spec->base);
  bind_text (stmt, 4, vm->state);
  bind_msg (stmt, 5, vm->status ? &vm->status->base : NULL);
  sqlite3_bind_int64 (stmt, 6, vm->updated_ms);
  return stmt_run (self, stmt, "cannot store a VM", error);
}

static SchedVm *
sqlite_get_vm (SchedStore *store, const char *name, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_GET_VM);
  g_autofree char *what = g_strdup_printf ("VM named '%s'", name);

  bind_text (stmt, 1, name);
  return stmt_one (self, stmt, (RowFunc)row_vm, what, error);
}

static GPtrArray *
sqlite_list_vms (SchedStore *store, const char *host, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt;

  if (host != NULL)
    {
      stmt = stmt_get (self, STMT_LIST_VMS_ON_HOST);
      bind_text (stmt, 1, host);
    }
  else
    stmt = stmt_get (self, STMT_LIST_VMS);
  return stmt_all (self, stmt, (RowFunc)row_vm, (GDestroyNotify)sched_vm_free,
                   error);
}

static gboolean
sqlite_delete_vm (SchedStore *store, const char *name, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_DELETE_VM);

  bind_text (stmt, 1, name);
  return stmt_run (self, stmt, "cannot delete a VM", error);
}

static gboolean
sqlite_put_job (SchedStore *store, const SchedJob *job, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_PUT_JOB);

  bind_text (stmt, 1, job->id);
  bind_text (stmt, 2, job->kind);
  bind_text (stmt, 3, job->vm);
  bind_text (stmt, 4, job->state);
  sqlite3_bind_double (stmt, 5, job->progress);
  bind_text (stmt, 6, job->message);
  bind_text (stmt, 7, job->error);
  sqlite3_bind_int64 (stmt, 8, job->created_ms);
  sqlite3_bind_int64 (stmt, 9, job->updated_ms);
  bind_text (stmt, 10, job->source_host);
  bind_text (stmt, 11, job->dest_host);
  bind_msg (stmt, 12, (const ProtobufCMessage *)job->migration);
  bind_msg (stmt, 13, (const ProtobufCMessage *)job->prediction);
  return stmt_run (self, stmt, "cannot store a job", error);
}

static SchedJob *
sqlite_get_job (SchedStore *store, const char *id, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;
  sqlite3_stmt *stmt = stmt_get (self, STMT_GET_JOB);
  g_autofree char *what = g_strdup_printf ("job with id '%s'", id);

  bind_text (stmt, 1, id);
  return stmt_one (self, stmt, (RowFunc)row_job, what, error);
}

static GPtrArray *
sqlite_list_jobs (SchedStore *store, GError **error)
{
  SqliteStore *self = (SqliteStore *)store;

  return stmt_all (self, stmt_get (self, STMT_LIST_JOBS), (RowFunc)row_job,
                   (GDestroyNotify)sched_job_free, error);
}

static gboolean
sqlite_begin (SchedStore *store, GError **error)
{
  return sqlite_exec ((SqliteStore *)store, "BEGIN IMMEDIATE", error);
}

static gboolean
sqlite_commit (SchedStore *store, GError **error)
{
  return sqlite_exec ((SqliteStore *)store, "COMMIT", error);
}

static void
sqlite_rollback (SchedStore *store)
{
  SqliteStore *self = (SqliteStore *)store;

  if (!sqlite3_get_autocommit (self->db))
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
}

static const SchedStoreOps sqlite_ops = {
  .begin = sqlite_begin,
  .commit = sqlite_commit,
  .rollback = sqlite_rollback,
  .name = "sqlite",
  .close = sqlite_close,
  .put_host = sqlite_put_host,
  .get_host = sqlite_get_host,
  .list_hosts = sqlite_list_hosts,
  .delete_host = sqlite_delete_host,
  .put_vm = sqlite_put_vm,
  .get_vm = sqlite_get_vm,
  .list_vms = sqlite_list_vms,
  .delete_vm = sqlite_delete_vm,
  .put_job = sqlite_put_job,
  .get_job = sqlite_get_job,
  .list_jobs = sqlite_list_jobs,
};
