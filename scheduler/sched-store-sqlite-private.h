/* Private to the SQLite store backend (sched-store-sqlite.c): the
 * connection, its prepared statements and the helpers its files share.
 * The schema and the statements' SQL are in sched-store-schema.c, the
 * row codecs (binding a row, reading one back) in sched-store-codec.c. */
#pragma once

#include "sched-store.h"

#include <sqlite3.h>

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

typedef struct
{
  SchedStore parent;
  sqlite3 *db;
  char *path;
  sqlite3_stmt *stmts[N_STMTS];
} SqliteStore;

/* --- the connection (sched-store-sqlite.c) ----------------------------- */

/* Converts the connection's current error (RC) into a GError naming WHAT;
 * returns FALSE. */
gboolean sched_sqlite_fail (SqliteStore *self, int rc, const char *what,
                            GError **error);
/* Runs SQL (no rows). */
gboolean sched_sqlite_exec (SqliteStore *self, const char *sql, GError **error);
/* Runs SQL, which returns one integer (a PRAGMA), into *OUT. */
gboolean sched_sqlite_pragma_int (SqliteStore *self, const char *sql,
                                  gint64 *out, GError **error);

/* --- schema and statements (sched-store-schema.c) ---------------------- */

/* The SQL of statement I (< N_STMTS). Caller frees. */
char *sched_sqlite_stmt_sql (int i);
/* Makes a new file Drover's at the current schema version, or upgrades one
 * of ours in one transaction; refuses a foreign or newer database. */
gboolean sched_sqlite_migrate (SqliteStore *self, GError **error);

/* --- row codecs (sched-store-codec.c) ---------------------------------- */

/* What frees a row of each table (a list's GPtrArray frees its rows). */
extern const GDestroyNotify sched_sqlite_row_free[SCHED_N_TABLES];
/* Binds TEXT (NULL: "") to parameter I of STMT. */
void sched_sqlite_bind_text (sqlite3_stmt *stmt, int i, const char *text);
/* Column I of STMT as text ("" for NULL). Caller frees. */
char *sched_sqlite_column_text (sqlite3_stmt *stmt, int i);
/* Binds ROW, a row of TYPE, to STMT's parameters ?1.. in field order. */
void sched_sqlite_bind_row (sqlite3_stmt *stmt, const SchedRowType *type,
                            gconstpointer row);
/* Reads the row of TYPE that STMT (a SELECT of every column in field
 * order) is on. A message that does not decode is corruption. */
gpointer sched_sqlite_read_row (SqliteStore *self, sqlite3_stmt *stmt,
                                const SchedRowType *type, GError **error);
