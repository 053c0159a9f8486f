/* libdrover-scheduler's rows and store: what the scheduler keeps (hosts,
 * VMs, jobs) and the ops table a store backend implements. Rows are in
 * sched-rows.c, the generic store API in sched-store.c, the SQLite backend
 * in sched-store-sqlite.c. */
#pragma once

#include "sched-service.h"

G_BEGIN_DECLS

/* --- rows -------------------------------------------------------------- */

/* What the store holds. Message members are unpacked protobuf-c messages
 * owned by the row (freed with proto_msg_free). */

/* How durable a transaction's commit is. Every write outside a
 * transaction, and a FULL transaction, is on disk when the call returns:
 * it survives a power cut. A RESTATED transaction holds only what a host
 * states again in its next report (its resources, its VMs' states): it
 * survives a crash of the scheduler but a power cut may lose it, and the
 * host's next report restores it. Its commit does not wait for the disk,
 * which is what lets one scheduler take thousands of reports a second;
 * the next FULL commit makes it durable too (the log is written in
 * order). */
typedef enum
{
  SCHED_STORE_SYNC_FULL,
  SCHED_STORE_SYNC_RESTATED,
} SchedStoreSync;

typedef struct
{
  char *name;
  char *address;              /* the agent's AgentService host:port */
  Drover__V1__HostInfo *info; /* never NULL */
  char *state;                /* PROTO_HOST_UP / PROTO_HOST_DOWN */
  gint64 last_seen_ms;
  char *maintenance; /* "" in service, SCHED_HOST_DRAINING or
                      * SCHED_HOST_MAINTENANCE (droverctl host drain) */
} SchedHost;

#define SCHED_HOST_IN_SERVICE "in-service" /* the metrics' word for "" */
#define SCHED_HOST_DRAINING "draining"
#define SCHED_HOST_MAINTENANCE "maintenance"

typedef struct
{
  char *name;
  char *host;
  Drover__V1__VmSpec *spec; /* never NULL */
  /* PROTO_VM_*: the state its agent reports ("unknown" if none), or
   * PROTO_VM_CREATING / PROTO_VM_MISSING, which the scheduler sets */
  char *state;
  Drover__V1__VmStatus *status; /* last report; NULL before the first */
  gint64 updated_ms;
  /* Snapshots and clones (issue 12). */
  gint64 template;        /* 1: a template (a protected base, never started) */
  char *base;             /* a linked clone: the VM its disk is an overlay
                           * on ("" = none) */
  char *current_snapshot; /* the snapshot it runs on ("" = none) */
  gint64 snapshots;       /* how many it has (rows in the snapshots table) */
  /* Labels (issue 16): "key=value,key=value", sorted by key ("" none). */
  char *labels;
} SchedVm;

typedef struct
{
  char *id;
  char *kind; /* PROTO_JOB_KIND_* */
  char *vm;
  char *state;     /* PROTO_JOB_* */
  double progress; /* 0..1 */
  char *message;
  char *error;
  gint64 created_ms;
  gint64 updated_ms;
  /* kind PROTO_JOB_KIND_MIGRATE; source_host also for storage jobs: the
   * host they run on ("" / NULL otherwise) */
  char *source_host;
  char *dest_host;
  Drover__V1__MigrationProgress *migration;    /* last progress; may be NULL */
  Drover__V1__MigrationPrediction *prediction; /* cost model; may be NULL */
  /* kind PROTO_JOB_KIND_SNAPSHOT_* and _CLONE: the agent's last progress;
   * may be NULL */
  Drover__V1__StorageProgress *storage;
} SchedJob;

/* One snapshot of a VM, as its agent last told it (issue 12). */
typedef struct
{
  char *id; /* "<vm>/<name>": the key */
  char *vm;
  char *name;
  gint64 created_ms;
  Drover__V1__Snapshot *info; /* never NULL */
} SchedSnapshot;

/* A backup repository the operator added (issue 14): every host that
 * registers attaches it. */
typedef struct
{
  char *name; /* the key; proto_name_validate rules */
  char *path; /* absolute, as the hosts see it */
  gint64 created_ms;
} SchedRepo;
/* A disaster-recovery schedule (issue 16): its definition and what the
 * scheduler keeps of its runs, all in SPEC. */
typedef struct
{
  char *name;
  gint64 next_run_ms;         /* SPEC's, as a column (0: none) */
  Drover__V1__Schedule *spec; /* never NULL */
} SchedScheduleRow;

/* A network (issue 13): a bridge that hosts provide. SPEC holds it all
 * (no hosts: those are worked out from the hosts' reports). */
typedef struct
{
  char *name;
  Drover__V1__Network *spec; /* never NULL */
} SchedNetworkRow;

/* What the scheduler keeps of one VM's runs of one schedule (issue 16):
 * keyed by "<schedule>/<vm>", all in STATE. */
typedef struct
{
  char *key;
  char *schedule;
  char *vm;
  Drover__V1__ScheduleVm *state; /* never NULL */
} SchedScheduleVmRow;

/* The row types, one per table of the store. */
typedef enum
{
  SCHED_TABLE_HOSTS,        /* SchedHost rows, keyed by name */
  SCHED_TABLE_VMS,          /* SchedVm rows, keyed by name */
  SCHED_TABLE_JOBS,         /* SchedJob rows, keyed by id */
  SCHED_TABLE_SNAPSHOTS,    /* SchedSnapshot rows, keyed by "<vm>/<name>" */
  SCHED_TABLE_REPOS,        /* SchedRepo rows, keyed by name */
  SCHED_TABLE_SCHEDULES,    /* SchedScheduleRow rows, keyed by name */
  SCHED_TABLE_NETWORKS,     /* SchedNetworkRow rows, keyed by name */
  SCHED_TABLE_SCHEDULE_VMS, /* SchedScheduleVmRow rows, keyed by
                             * "<schedule>/<vm>" */
  SCHED_N_TABLES
} SchedTable;

/* A row type described by its fields, so that what treats every row
 * alike (freeing, copying, a store backend's reading and writing) is
 * written once and a new field is added in one place (sched-rows.c). */
typedef enum
{
  SCHED_FIELD_TEXT,    /* char *; "" for none, never NULL in a row */
  SCHED_FIELD_INT64,   /* gint64 */
  SCHED_FIELD_DOUBLE,  /* double */
  SCHED_FIELD_MSG,     /* a protobuf-c message, never NULL */
  SCHED_FIELD_MSG_OPT, /* a protobuf-c message or NULL */
} SchedFieldKind;

typedef struct
{
  const char *name; /* also the store's column name */
  SchedFieldKind kind;
  gsize offset;
  const ProtobufCMessageDescriptor *desc; /* messages only */
} SchedField;

typedef struct
{
  const char *noun;  /* "host", "VM", "job", "snapshot" */
  const char *table; /* the store's table: "hosts", "vms", "jobs", ... */
  gsize size;
  const SchedField *fields; /* the key first */
  guint n_fields;
} SchedRowType;

/* Indexed by SchedTable. */
extern const SchedRowType sched_row_types[SCHED_N_TABLES];

/* The key of ROW, a row of TYPE (borrowed). */
const char *sched_row_key (const SchedRowType *type, gconstpointer row);
/* A deep copy of ROW, a row of TYPE; a NULL text becomes "". */
gpointer sched_row_copy (const SchedRowType *type, gconstpointer row);
/* Frees ROW (may be NULL), a row of TYPE, and what it owns. */
void sched_row_free (const SchedRowType *type, gpointer row);

/* Constructors copy their arguments. */
SchedHost *sched_host_new (const Drover__V1__HostInfo *info, const char *state,
                           gint64 last_seen_ms);
void sched_host_free (SchedHost *host);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedHost, sched_host_free)

SchedVm *sched_vm_new (const Drover__V1__VmSpec *spec, const char *host,
                       const char *state, const Drover__V1__VmStatus *status,
                       gint64 updated_ms);
void sched_vm_free (SchedVm *vm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedVm, sched_vm_free)
/* Replaces VM->status with a copy of STATUS (may be NULL). */
void sched_vm_set_status (SchedVm *vm, const Drover__V1__VmStatus *status);
void sched_vm_set_state (SchedVm *vm, const char *state);
/* HOST's service state: "", SCHED_HOST_DRAINING, SCHED_HOST_MAINTENANCE. */
void sched_host_set_maintenance (SchedHost *host, const char *state);

/* TRUE if HOST is up, else SCHED_ERROR_UNAVAILABLE "host '...' is down". */
gboolean sched_host_check_up (const SchedHost *host, GError **error);

/* A new job with a random id, created_ms = updated_ms = NOW_MS. */
SchedJob *sched_job_new (const char *kind, const char *vm, const char *state,
                         gint64 now_ms);
void sched_job_free (SchedJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedJob, sched_job_free)
SchedJob *sched_job_copy (const SchedJob *job);

/* A row for snapshot INFO (copied) of VM. */
SchedSnapshot *sched_snapshot_new (const char *vm,
                                   const Drover__V1__Snapshot *info);
void sched_snapshot_free (SchedSnapshot *snap);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedSnapshot, sched_snapshot_free)
/* The key of snapshot NAME of VM. Caller frees. */
char *sched_snapshot_key (const char *vm, const char *name);

SchedRepo *sched_repo_new (const char *name, const char *path,
                           gint64 created_ms);
void sched_repo_free (SchedRepo *repo);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedRepo, sched_repo_free)

/* --- store ------------------------------------------------------------- */

/* A backend is an ops table plus an open function, in a file of its own
 * (sched-store-sqlite.c). It stores four tables of rows, each keyed by a
 * string (hosts and VMs by name, jobs by id, snapshots by "vm/name"),
 * through four generic
 * operations; callers use the typed sched_store_* calls below, which
 * dispatch through the table. Lookups of something absent fail with
 * SCHED_ERROR_NOT_FOUND; deleting something absent is not an error.
 * Lists are sorted by name (jobs by creation). */

typedef struct _SchedStore SchedStore;
typedef struct _SchedStoreCounts SchedStoreCounts;

typedef struct
{
  const char *name;
  void (*close) (SchedStore *store);
  /* Upserts ROW, a row of TABLE, by its key. */
  gboolean (*put) (SchedStore *store, SchedTable table, gconstpointer row,
                   GError **error);
  /* The row of TABLE with KEY; the caller frees it. */
  gpointer (*get) (SchedStore *store, SchedTable table, const char *key,
                   GError **error);
  /* Every row of TABLE, in a GPtrArray that frees them. HOST non-NULL
   * lists only the VMs on that host (SCHED_TABLE_VMS) or the snapshots of
   * that VM (SCHED_TABLE_SNAPSHOTS, in creation order). */
  GPtrArray *(*list) (SchedStore *store, SchedTable table, const char *host,
                      GError **error);
  gboolean (*remove) (SchedStore *store, SchedTable table, const char *key,
                      GError **error);
  /* Deletes every snapshot of VM. */
  gboolean (*remove_snapshots) (SchedStore *store, const char *vm,
                                GError **error);
  /* At most LIMIT jobs in creation order (created_ms, then id), starting
   * after the job created at AFTER_MS with id AFTER_ID (NULL: from the
   * first). */
  GPtrArray *(*list_jobs_after) (SchedStore *store, gint64 after_ms,
                                 const char *after_id, guint limit,
                                 GError **error);
  /* Deletes the finished jobs (PROTO_JOB_DONE, _FAILED) last updated
   * before BEFORE_MS and then those past the KEEP most recently updated
   * finished ones; sets *N_DELETED (may be NULL) to how many went. */
  gboolean (*prune_jobs) (SchedStore *store, gint64 before_ms, guint keep,
                          guint *n_deleted, GError **error);
  /* The value of setting NAME (caller frees; NULL if it was never set) /
   * sets it (issue 15: the balancer's mode). */
  gboolean (*get_setting) (SchedStore *store, const char *name, char **value,
                           GError **error);
  gboolean (*put_setting) (SchedStore *store, const char *name,
                           const char *value, GError **error);
  /* A transaction groups writes (all or none); SYNC says how durable
   * its commit is (see SchedStoreSync). */
  gboolean (*begin) (SchedStore *store, SchedStoreSync sync, GError **error);
  gboolean (*commit) (SchedStore *store, GError **error);
  void (*rollback) (SchedStore *store);
} SchedStoreOps;

struct _SchedStore
{
  const SchedStoreOps *ops;
  /* The rows by state, kept by the generic calls (sched-store-counts.c);
   * NULL until sched_store_count first asks. Backends leave it alone. */
  SchedStoreCounts *counts;
};

/* Opens (creating if needed) the SQLite store DIR/drover.db. A file that
 * is not a Drover database fails with SCHED_ERROR_CORRUPT naming it. */
SchedStore *sched_store_open_sqlite (const char *dir, GError **error);
/* The value of PRAGMA NAME (letters and '_') on STORE's SQLite connection,
 * which must be one sched_store_open_sqlite opened: how tests see the
 * settings the connection runs with (they are per connection). */
gboolean sched_store_sqlite_pragma (SchedStore *store, const char *name,
                                    gint64 *value, GError **error);
void sched_store_close (SchedStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedStore, sched_store_close)

/* Upserts ROW, a row of TABLE, by its key / deletes the row of TABLE with
 * KEY: the backend's put and remove, and the counts kept up to date. Every
 * write of a row goes through these (or the typed calls below). */
gboolean sched_store_put (SchedStore *store, SchedTable table,
                          gconstpointer row, GError **error);
gboolean sched_store_remove (SchedStore *store, SchedTable table,
                             const char *key, GError **error);

/* The typed calls on the table of TYPE rows, one set per table:
 *   gboolean sched_store_put_NOUN (store, const TYPE *row, error)
 *     upserts ROW by its key;
 *   TYPE *sched_store_get_NOUN (store, const char *key, error)
 *     the row with KEY (caller frees), SCHED_ERROR_NOT_FOUND if none;
 *   gboolean sched_store_delete_NOUN (store, const char *key, error). */
#define SCHED_STORE_DEFINE_TABLE(Type, noun, table)                            \
  static inline gboolean sched_store_put_##noun (                              \
      SchedStore *store, const Type *row, GError **error)                      \
  {                                                                            \
    return sched_store_put (store, table, row, error);                         \
  }                                                                            \
  static inline Type *sched_store_get_##noun (SchedStore *store,               \
                                              const char *key, GError **error) \
  {                                                                            \
    return store->ops->get (store, table, key, error);                         \
  }                                                                            \
  static inline gboolean sched_store_delete_##noun (                           \
      SchedStore *store, const char *key, GError **error)                      \
  {                                                                            \
    return sched_store_remove (store, table, key, error);                      \
  }

SCHED_STORE_DEFINE_TABLE (SchedHost, host, SCHED_TABLE_HOSTS)
SCHED_STORE_DEFINE_TABLE (SchedVm, vm, SCHED_TABLE_VMS)
SCHED_STORE_DEFINE_TABLE (SchedJob, job, SCHED_TABLE_JOBS)
SCHED_STORE_DEFINE_TABLE (SchedSnapshot, snapshot, SCHED_TABLE_SNAPSHOTS)
SCHED_STORE_DEFINE_TABLE (SchedRepo, repo, SCHED_TABLE_REPOS)
SCHED_STORE_DEFINE_TABLE (SchedScheduleRow, schedule, SCHED_TABLE_SCHEDULES)
SCHED_STORE_DEFINE_TABLE (SchedNetworkRow, network, SCHED_TABLE_NETWORKS)
SCHED_STORE_DEFINE_TABLE (SchedScheduleVmRow, schedule_vm,
                          SCHED_TABLE_SCHEDULE_VMS)

/* GPtrArrays of rows, freeing them: every host, the VMs on HOST (NULL:
 * every VM), every job. */
GPtrArray *sched_store_list_hosts (SchedStore *store, GError **error);
GPtrArray *sched_store_list_vms (SchedStore *store, const char *host,
                                 GError **error);
GPtrArray *sched_store_list_jobs (SchedStore *store, GError **error);
/* Every backup repository added (SchedRepo), by name. */
GPtrArray *sched_store_list_repos (SchedStore *store, GError **error);
/* Every schedule (SchedScheduleRow), by name. */
GPtrArray *sched_store_list_schedules (SchedStore *store, GError **error);
/* A row for SPEC (copied). */
SchedScheduleRow *sched_schedule_row_new (const Drover__V1__Schedule *spec);
void sched_schedule_row_free (SchedScheduleRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedScheduleRow, sched_schedule_row_free)
/* Every SchedScheduleVmRow, by key. */
GPtrArray *sched_store_list_schedule_vms (SchedStore *store, GError **error);
/* A row for STATE (copied). */
SchedScheduleVmRow *
sched_schedule_vm_row_new (const Drover__V1__ScheduleVm *state);
void sched_schedule_vm_row_free (SchedScheduleVmRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedScheduleVmRow, sched_schedule_vm_row_free)
/* Every network (SchedNetworkRow), by name. */
GPtrArray *sched_store_list_networks (SchedStore *store, GError **error);
/* A row for SPEC (copied, without its hosts). */
SchedNetworkRow *sched_network_row_new (const Drover__V1__Network *spec);
void sched_network_row_free (SchedNetworkRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedNetworkRow, sched_network_row_free)
/* The snapshots of VM (SchedSnapshot), in creation order. */
GPtrArray *sched_store_list_snapshots (SchedStore *store, const char *vm,
                                       GError **error);
/* Replaces VM's snapshots with the N ones of SNAPS (borrowed), in one
 * transaction, and sets the VM row's current_snapshot and snapshots count
 * (CURRENT: the snapshot it runs on, "" none) if the VM has a row. Must
 * not be called inside a transaction. */
gboolean sched_store_replace_snapshots (SchedStore *store, const char *vm,
                                        Drover__V1__Snapshot *const *snaps,
                                        gsize n, const char *current,
                                        GError **error);
/* Deletes every snapshot of VM (its record goes). */
gboolean sched_store_delete_snapshots (SchedStore *store, const char *vm,
                                       GError **error);
/* A page of jobs and the job retention: see SchedStoreOps. */
GPtrArray *sched_store_list_jobs_after (SchedStore *store, gint64 after_ms,
                                        const char *after_id, guint limit,
                                        GError **error);
gboolean sched_store_prune_jobs (SchedStore *store, gint64 before_ms,
                                 guint keep, guint *n_deleted, GError **error);

/* Settings an operator changes at run time and a restart keeps: see
 * SchedStoreOps. */
static inline gboolean
sched_store_get_setting (SchedStore *store, const char *name, char **value,
                         GError **error)
{
  return store->ops->get_setting (store, name, value, error);
}
static inline gboolean
sched_store_put_setting (SchedStore *store, const char *name, const char *value,
                         GError **error)
{
  return store->ops->put_setting (store, name, value, error);
}

gboolean sched_store_begin (SchedStore *store, SchedStoreSync sync,
                            GError **error);
gboolean sched_store_commit (SchedStore *store, GError **error);
/* Undoes an open transaction; nothing if none is open. */
void sched_store_rollback (SchedStore *store);

/* --- counts (sched-store-counts.c) ------------------------------------- */

/* How many rows of TABLE (SCHED_TABLE_HOSTS, _VMS or _JOBS) there are by
 * count key (sched_store_count_key), as a new table of key (char *) ->
 * count (GUINT_TO_POINTER, > 0) that the caller frees. Kept in memory as
 * the store is written; the first call, and the first after what the
 * counts cannot follow (a failed write or commit, a rollback, a prune),
 * lists the table. NULL with ERROR if that listing fails. */
GHashTable *sched_store_count (SchedStore *store, SchedTable table,
                               GError **error);
/* What ROW, a row of TABLE, counts under: a host's state and service
 * state (SCHED_HOST_IN_SERVICE for ""), a VM's state, a job's kind and
 * state, joined by '\n'. Caller frees. */
char *sched_store_count_key (SchedTable table, gconstpointer row);
/* ROWS (rows of TABLE) counted as sched_store_count counts them. */
GHashTable *sched_store_counts_of_rows (SchedTable table, GPtrArray *rows);

/* For sched-store.c: the outcome of each write, so the counts follow
 * (OK FALSE: it failed). COUNTS may be NULL (nothing counted yet). */
void sched_store_counts_put (SchedStoreCounts *counts, SchedTable table,
                             gconstpointer row, gboolean ok);
void sched_store_counts_remove (SchedStoreCounts *counts, SchedTable table,
                                const char *key, gboolean ok);
/* TABLE changed in a way the counts cannot follow. */
void sched_store_counts_forget (SchedStoreCounts *counts, SchedTable table);
/* BEGIN needs COUNTS (sched_store_counts_new if NULL): a count first asked
 * for inside the transaction must know of it. */
SchedStoreCounts *sched_store_counts_new (void);
void sched_store_counts_begin (SchedStoreCounts *counts, gboolean ok);
void sched_store_counts_commit (SchedStoreCounts *counts, gboolean ok);
void sched_store_counts_rollback (SchedStoreCounts *counts);
void sched_store_counts_free (SchedStoreCounts *counts);

G_END_DECLS
