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

typedef struct
{
  char *name;
  char *address;              /* the agent's AgentService host:port */
  Drover__V1__HostInfo *info; /* never NULL */
  char *state;                /* PROTO_HOST_UP / PROTO_HOST_DOWN */
  gint64 last_seen_ms;
} SchedHost;

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
  /* kind PROTO_JOB_KIND_MIGRATE ("" / NULL otherwise) */
  char *source_host;
  char *dest_host;
  Drover__V1__MigrationProgress *migration;    /* last progress; may be NULL */
  Drover__V1__MigrationPrediction *prediction; /* cost model; may be NULL */
} SchedJob;

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

/* TRUE if HOST is up, else SCHED_ERROR_UNAVAILABLE "host '...' is down". */
gboolean sched_host_check_up (const SchedHost *host, GError **error);

/* A new job with a random id, created_ms = updated_ms = NOW_MS. */
SchedJob *sched_job_new (const char *kind, const char *vm, const char *state,
                         gint64 now_ms);
void sched_job_free (SchedJob *job);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedJob, sched_job_free)
SchedJob *sched_job_copy (const SchedJob *job);

/* --- store ------------------------------------------------------------- */

/* A backend is an ops table plus an open function, in a file of its own
 * (sched-store-sqlite.c); callers use the sched_store_* calls below, which
 * dispatch through the table. Lookups of something absent fail with
 * SCHED_ERROR_NOT_FOUND; _delete of something absent is not an error.
 * Lists are sorted by name (jobs by creation). */

typedef struct _SchedStore SchedStore;

typedef struct
{
  const char *name;
  void (*close) (SchedStore *store);
  gboolean (*put_host) (SchedStore *store, const SchedHost *host,
                        GError **error);
  SchedHost *(*get_host) (SchedStore *store, const char *name, GError **error);
  GPtrArray *(*list_hosts) (SchedStore *store, GError **error);
  gboolean (*delete_host) (SchedStore *store, const char *name, GError **error);
  gboolean (*put_vm) (SchedStore *store, const SchedVm *vm, GError **error);
  SchedVm *(*get_vm) (SchedStore *store, const char *name, GError **error);
  /* HOST NULL lists every VM. */
  GPtrArray *(*list_vms) (SchedStore *store, const char *host, GError **error);
  gboolean (*delete_vm) (SchedStore *store, const char *name, GError **error);
  gboolean (*put_job) (SchedStore *store, const SchedJob *job, GError **error);
  SchedJob *(*get_job) (SchedStore *store, const char *id, GError **error);
  GPtrArray *(*list_jobs) (SchedStore *store, GError **error);
  /* A transaction groups the writes of one report (one sync, all or none). */
  gboolean (*begin) (SchedStore *store, GError **error);
  gboolean (*commit) (SchedStore *store, GError **error);
  void (*rollback) (SchedStore *store);
} SchedStoreOps;

struct _SchedStore
{
  const SchedStoreOps *ops;
};

/* Opens (creating if needed) the SQLite store DIR/drover.db. A file that
 * is not a Drover database fails with SCHED_ERROR_CORRUPT naming it. */
SchedStore *sched_store_open_sqlite (const char *dir, GError **error);
void sched_store_close (SchedStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedStore, sched_store_close)

/* Upserts by name / id. */
gboolean sched_store_put_host (SchedStore *store, const SchedHost *host,
                               GError **error);
SchedHost *sched_store_get_host (SchedStore *store, const char *name,
                                 GError **error);
/* GPtrArray of SchedHost, freeing its elements. */
GPtrArray *sched_store_list_hosts (SchedStore *store, GError **error);
gboolean sched_store_delete_host (SchedStore *store, const char *name,
                                  GError **error);
gboolean sched_store_put_vm (SchedStore *store, const SchedVm *vm,
                             GError **error);
SchedVm *sched_store_get_vm (SchedStore *store, const char *name,
                             GError **error);
GPtrArray *sched_store_list_vms (SchedStore *store, const char *host,
                                 GError **error);
gboolean sched_store_delete_vm (SchedStore *store, const char *name,
                                GError **error);
gboolean sched_store_put_job (SchedStore *store, const SchedJob *job,
                              GError **error);
SchedJob *sched_store_get_job (SchedStore *store, const char *id,
                               GError **error);
GPtrArray *sched_store_list_jobs (SchedStore *store, GError **error);
gboolean sched_store_begin (SchedStore *store, GError **error);
gboolean sched_store_commit (SchedStore *store, GError **error);
/* Undoes an open transaction; nothing if none is open. */
void sched_store_rollback (SchedStore *store);

G_END_DECLS
