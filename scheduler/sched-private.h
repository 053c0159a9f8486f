/* Internals of libdrover-scheduler: what its files share with each other
 * and with the unit tests. Rows and the store are in sched-store.h, the
 * migrator in sched-migrator.h.
 *
 * The objects here are freed by their _free function, which takes a
 * non-NULL object: whoever may hold NULL frees through g_clear_pointer or
 * g_autoptr, which check. */
#pragma once

#include "sched-events.h"
#include "sched-migrator.h"
#include "sched-store.h"

G_BEGIN_DECLS

/* --- placement --------------------------------------------------------- */

/* Pure functions over the host and VM tables. */

typedef struct
{
  double cpu_overcommit; /* vCPUs per host CPU */
  guint64 memory_reserve;
  double memory_overcommit; /* bytes of VM memory per byte of the host's
                             * memory less the reserve; 0 counts as 1 */
} SchedPolicy;

/* The vCPUs VMs may have on a host of CPUS, and the bytes of memory on a
 * host of MEMORY_TOTAL, under POLICY. */
guint64 sched_policy_vcpu_cap (const SchedPolicy *policy, guint cpus);
guint64 sched_policy_memory_cap (const SchedPolicy *policy,
                                 guint64 memory_total);

/* TRUE if VM holds vCPUs and memory on its host: anything but shut off,
 * crashed or missing (running, paused, being created, a migration's
 * reservation, a state not reported yet). */
gboolean sched_vm_holds_capacity (const SchedVm *vm);

/* What the VMs in VMS (SchedVm) placed on HOST use. VMs in state
 * "missing" use nothing (their host does not have them); "creating"
 * ones count (a reservation); stopped ones count in VM_COUNT and
 * DISK_RESERVED only (sched_vm_holds_capacity). Any out pointer may be
 * NULL. */
void sched_host_usage (const char *host, GPtrArray *vms, guint *vm_count,
                       guint *vcpus_used, guint64 *memory_used,
                       guint64 *disk_reserved);

/* TRUE if VM (a row of VMS, the VMs of every host) may start on its host:
 * it holds capacity already, or its vCPUs and memory fit there beside
 * what the VMs that run hold. Else SCHED_ERROR_NO_CAPACITY saying what is
 * short. */
gboolean sched_check_start_room (const SchedPolicy *policy, GPtrArray *hosts,
                                 GPtrArray *vms, const SchedVm *vm,
                                 GError **error);

/* The host named NAME in HOSTS (SchedHost), borrowed; NULL if none. */
const SchedHost *sched_host_find (GPtrArray *hosts, const char *name);

/* Picks the host for SPEC among HOSTS (SchedHost) given the VMS already
 * placed. PIN non-empty means only that host. Returns the host name, or
 * NULL with SCHED_ERROR_NOT_FOUND (unknown pin), _PRECONDITION (pinned
 * host down) or _NO_CAPACITY (nothing fits; the message says why per host). */
char *sched_place (const SchedPolicy *policy, GPtrArray *hosts, GPtrArray *vms,
                   const Drover__V1__VmSpec *spec, const char *pin,
                   GError **error);
/* sched_place for a VM that needs NETWORKS (Drover__V1__Network; NULL or
 * empty: none): only hosts that have every one of them
 * (sched_networks_host_has) qualify. */
char *sched_place_on_networks (const SchedPolicy *policy, GPtrArray *hosts,
                               GPtrArray *vms, const Drover__V1__VmSpec *spec,
                               const char *pin, GPtrArray *networks,
                               GError **error);

/* --- migration --------------------------------------------------------- */

/* The migrator's pure helpers (sched-migration.c): destination choice, the
 * cost model's prediction and progress wording. The orchestration (agent
 * calls, job updates) is SchedMigrator (sched-migrator.h). */

/* Without a measurement the model assumes the guest dirties this share of
 * its RAM per second, scaled by how busy its vCPUs were in the last report
 * (at least a tenth of it), and never more than SCHED_MIG_DIRTY_CAP. */
#define SCHED_MIG_DIRTY_FRACTION 0.10
#define SCHED_MIG_DIRTY_CAP (256.0 * 1024 * 1024)

/* Bytes per second VM is expected to dirty: its agent's measurement
 * (VmStatus dirty_rate_*, when above 0), else LAST, the progress of the
 * VM's most recent finished migration (may be NULL): the highest dirty
 * rate it saw. Otherwise the default above. */
double sched_migration_dirty_rate (const SchedVm *vm,
                                   const Drover__V1__MigrationProgress *last);

/* Link throughput (bytes/s) and fixed setup cost (s) learned from the
 * latest completed migrations in JOBS; DEFAULT_BW and
 * SCHED_MIG_DEFAULT_SETUP_S when there are none. */
#define SCHED_MIG_LEARN_SAMPLES 5
#define SCHED_MIG_DEFAULT_SETUP_S 1.0
void sched_migration_learn_link (GPtrArray *jobs, double default_bw,
                                 double *bandwidth, double *setup_s);

/* Runs the pre-copy cost model for VM (RAM = its memory) at DIRTY_RATE
 * over min(PARAMS->bandwidth_bps, LINK_BANDWIDTH) (either 0 = absent),
 * with PARAMS->max_downtime_ms (0 = PROTO_MIG_DEFAULT_MAX_DOWNTIME_MS) as
 * the downtime limit, no compression and SETUP_S of fixed cost. Fills OUT
 * (initialised here; no pointers). SCHED_ERROR_INVALID if the model
 * refuses the input. */
gboolean sched_migration_predict (const SchedVm *vm,
                                  const Drover__V1__MigrationParams *params,
                                  double dirty_rate, double link_bandwidth,
                                  double setup_s,
                                  Drover__V1__MigrationPrediction *out,
                                  GError **error);

/* Picks where VM goes. TO non-empty: that host, which must exist
 * (SCHED_ERROR_NOT_FOUND), not be VM's host (_INVALID), be up
 * (_PRECONDITION) and fit it (_NO_CAPACITY). Else placement over the up
 * hosts but VM's own. VMS should include reservations of migrations in
 * flight. The destination must run guests with the accelerator VM runs
 * with (its spec's, or else its host's). */
char *sched_migration_pick_dest (const SchedPolicy *policy, GPtrArray *hosts,
                                 GPtrArray *vms, const SchedVm *vm,
                                 const char *to, GError **error);

/* 0..1 for a job at progress P: preparing 2%, pre-copy 5-95% by memory
 * not (or no longer) dirty, switchover 97%, completed 100%. Negative for
 * aborted/failed (keep the last value). */
double sched_migration_fraction (const Drover__V1__MigrationProgress *p);

/* The job message for P (migration to DEST). Caller frees. */
char *sched_migration_describe (const Drover__V1__MigrationProgress *p,
                                const char *dest);

/* --- migration queue --------------------------------------------------- */

/* Per-host limits on concurrent migrations: at most MAX_OUT leaving and
 * MAX_IN arriving at any one host. Others wait in arrival order; a
 * waiting migration holds back later ones that share its source (for
 * outgoing slots) or destination (for incoming slots), so no one starves. */
typedef struct _SchedMigQueue SchedMigQueue;

SchedMigQueue *sched_mig_queue_new (guint max_out, guint max_in);
void sched_mig_queue_free (SchedMigQueue *queue);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedMigQueue, sched_mig_queue_free)

/* Adds migration ID from SOURCE to DEST. TRUE if it may start now (it
 * then counts as running); FALSE if it waits. */
gboolean sched_mig_queue_add (SchedMigQueue *queue, const char *id,
                              const char *source, const char *dest);
/* Removes ID (running or waiting; unknown is fine). Returns the ids (char
 * *, owned by the array) that may start now, in arrival order; they count
 * as running. */
GPtrArray *sched_mig_queue_remove (SchedMigQueue *queue, const char *id);
/* 1 for the first waiting migration, ...; 0 if ID is running or unknown. */
guint sched_mig_queue_position (SchedMigQueue *queue, const char *id);
/* Running migrations leaving / arriving at HOST. */
guint sched_mig_queue_running_out (SchedMigQueue *queue, const char *host);
guint sched_mig_queue_running_in (SchedMigQueue *queue, const char *host);

/* --- agent addresses (sched-address.c) --------------------------------- */

/* TRUE if ADDRESS is what an agent may register as its address: an IPv4
 * literal or a bracketed IPv6 literal, and a port 1..65535
 * ("127.0.0.2:7401", "[::1]:7401"). Anything else (names, "unix:" and the
 * other gRPC target forms, zones, lists) is SCHED_ERROR_INVALID. */
gboolean sched_address_check (const char *address, GError **error);

/* --- registry ---------------------------------------------------------- */

/* Host registration, heartbeats, liveness and VM inventory reconciliation
 * on top of a store. The clock is injectable so tests need not sleep. */

typedef gint64 (*SchedClockFunc) (gpointer user_data);

typedef struct _SchedRegistry SchedRegistry;

/* STORE is borrowed. CLOCK NULL means proto_now_ms-like wall time in ms.
 * The process start (for hosts loaded from the store) is CLOCK's time now. */
SchedRegistry *sched_registry_new (SchedStore *store, guint report_interval_ms,
                                   SchedClockFunc clock, gpointer clock_data);
void sched_registry_free (SchedRegistry *reg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedRegistry, sched_registry_free)

gint64 sched_registry_now (SchedRegistry *reg);
guint sched_registry_get_report_interval (SchedRegistry *reg);

/* Upserts INFO's host as up, seen now, and remembers that it registered
 * with this process. INFO->name must be valid (checked by the caller). */
gboolean sched_registry_register (SchedRegistry *reg,
                                  const Drover__V1__HostInfo *info,
                                  GError **error);

/* A heartbeat. If INFO's host has not registered with this process, sets
 * *REREGISTER and changes nothing. Otherwise updates the host (up, seen
 * now) and reconciles its VMs with VMS: reported VMs are upserted (adopted
 * if unknown, moved here if recorded on another host), VMs recorded here
 * but not reported become "missing" (unless "creating"). A report whose
 * SEQ is not above the last one accepted is ignored (0 = unnumbered). */
gboolean sched_registry_report (SchedRegistry *reg,
                                const Drover__V1__HostInfo *info,
                                Drover__V1__VmStatus *const *vms, gsize n_vms,
                                guint64 seq, gboolean *reregister,
                                GError **error);

/* Marks down every up host whose last report (or, for hosts not seen by
 * this process, the process start) is older than three report intervals.
 * Returns how many turned down. */
guint sched_registry_check_liveness (SchedRegistry *reg, GError **error);

/* The deadline of a host, for tests and the timer: last sign of life + 3
 * intervals. */
gint64 sched_registry_deadline (SchedRegistry *reg, const SchedHost *host);

/* VM NAME starts migrating from SOURCE to DEST: until _end, reports from
 * DEST do not move it and reports from SOURCE that lack it do not make it
 * missing. */
void sched_registry_migration_begin (SchedRegistry *reg, const char *name,
                                     const char *source, const char *dest);
/* The migration of VM NAME ended. HOST non-NULL means it completed there:
 * for three intervals, reports from other hosts showing the VM (generated
 * before the switch) are ignored and HOST's reports lacking it do not make
 * it missing. HOST NULL (failed) drops the guard at once. */
void sched_registry_migration_end (SchedRegistry *reg, const char *name,
                                   const char *host);

/* Where the registry publishes host and VM events (borrowed; NULL: none). */
void sched_registry_set_events (SchedRegistry *reg, SchedEvents *events);

/* Remembers that VM NAME was just deleted so that a report generated
 * before the deletion does not adopt it again (for three intervals). */
void sched_registry_forget_vm (SchedRegistry *reg, const char *name);
/* A command (start, stop, ...) changed VM NAME on HOST, and the agent's
 * reports numbered FRESH_FROM and later were collected after it (0:
 * the agent does not say): earlier reports of HOST, which may still
 * arrive, do not set the VM's state back. */
void sched_registry_vm_changed (SchedRegistry *reg, const char *name,
                                const char *host, guint64 fresh_from);

/* --- service ----------------------------------------------------------- */

/* Deadlines of the scheduler's calls to agents. */
#define SCHED_AGENT_CREATE_TIMEOUT_MS (180 * 1000)
#define SCHED_AGENT_CALL_TIMEOUT_MS (60 * 1000)
/* StopVm waits for a graceful shutdown; allow for the grace period. */
#define SCHED_AGENT_STOP_EXTRA_MS (30 * 1000)
/* The liveness timer prunes old jobs this often (jobs that end do it at
 * once). */
#define SCHED_JOBS_PRUNE_PERIOD_MS (3600 * 1000)

typedef struct _SchedJobs SchedJobs;
typedef struct _SchedAgents SchedAgents;
typedef struct _SchedMetrics SchedMetrics;
typedef struct _SchedSnapshots SchedSnapshots;

/* The service and the objects it owns. Everything here runs in CTX (the
 * thread-default main context at sched_service_new): handlers, agent call
 * completions and timers. gRPC's own threads only queue events into CTX,
 * so no field needs a lock. */
struct _SchedService
{
  guint report_interval_ms;    /* set at new; told to agents */
  SchedPolicy policy;          /* set at new; placement */
  ProtoTls *tls;               /* set at new; NULL = insecure */
  GMainContext *ctx;           /* set at new */
  SchedStore *store;           /* main context */
  SchedRegistry *registry;     /* main context; its clock is the service's */
  ProtoServer *server;         /* main context; from start */
  SchedJobs *jobs;             /* main context; job board and watchers */
  SchedAgents *agents;         /* main context; agent clients */
  SchedMigrator *migrator;     /* main context; migrations */
  SchedSnapshots *snapshots;   /* main context; snapshots, clones, templates */
  struct _SchedDrains *drains; /* main context; host drains */
  struct _SchedRepos *repos;   /* main context; backup repositories */
  struct _SchedBalancer *balancer;   /* main context; the balancer loop */
  struct _SchedSchedules *schedules; /* main context; DR schedules */
  SchedEvents *events;               /* main context; the event stream */
  struct _SchedLogins *logins; /* main context; dashboard tokens, sessions */
  struct _SchedDashboard *dashboard; /* main context; the web dashboard */
  SchedMetrics *metrics;             /* set at new; thread-safe registry */
  char *metrics_listen;              /* set at new; NULL: no /metrics */
  gboolean metrics_tls;              /* set at new */
  GSource *liveness;                 /* main context; from start to stop */
  gint64 last_prune_ms; /* main context; when the timer pruned jobs */
  gboolean stopped;     /* main context; sched_service_stop ran */
};

/* The type of every RPC handler of the service (a ProtoHandler), so that
 * the files holding them can declare them in one line each. */
typedef void SchedHandler (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data);

/* Fills MSG (a Drover__V1__Host, initialised) from ROW (a SchedHost) and
 * VMS (every SchedVm, for its usage); MSG borrows ROW's memory. A
 * SchedMsgFill. */
void sched_host_msg (gconstpointer row, gpointer msg, gpointer vms);

/* Fails CALL with ERROR's message and its status (sched_error_to_status). */
void sched_call_fail (ProtoServerCall *call, const GError *error);

/* Fills MSG (initialised), a message of a reply's repeated field, from
 * ROW; MSG may borrow ROW's memory. */
typedef void (*SchedMsgFill) (gconstpointer row, gpointer msg,
                              gpointer user_data);

/* Replies to CALL with REPLY, whose one repeated field of messages gets a
 * message per row of ROWS, filled by FILL (sched-reply.c). ROWS NULL fails
 * CALL with ERROR instead. */
void sched_call_reply_rows (ProtoServerCall *call, ProtobufCMessage *reply,
                            GPtrArray *rows, SchedMsgFill fill,
                            gpointer user_data, const GError *error);

/* --- job board (sched-jobs.c) ------------------------------------------ */

/* STORE and REGISTRY (whose clock stamps updates) are borrowed. Finished
 * jobs older than RETENTION_MS, or beyond the newest MAX_JOBS finished
 * ones, are pruned (0 = SCHED_DEFAULT_JOB_RETENTION_MS,
 * SCHED_DEFAULT_MAX_JOBS). */
SchedJobs *sched_jobs_new (SchedStore *store, SchedRegistry *registry,
                           gint64 retention_ms, guint max_jobs);
void sched_jobs_free (SchedJobs *jobs);

/* Deletes the finished jobs the retention no longer keeps (queued and
 * running ones always stay); runs whenever a job ends. Returns how many
 * went; a store failure is logged. */
guint sched_jobs_prune (SchedJobs *jobs);

/* Stamps JOB (updated_ms), stores it if STORE or if it is over, and sends
 * it to its watchers; ends their streams once it is over. A store failure
 * is logged: the job lives on in its owner. */
void sched_jobs_update (SchedJobs *jobs, SchedJob *job, gboolean store);
/* Sets JOB's state and progress, and its message and error unless NULL,
 * then sched_jobs_update (stored). */
void sched_jobs_set (SchedJobs *jobs, SchedJob *job, const char *state,
                     double progress, const char *message, const char *error);
/* Where the board publishes job events (borrowed; NULL: none). */
void sched_jobs_set_events (SchedJobs *jobs, SchedEvents *events);
/* Ends every open WatchJob stream (UNAVAILABLE). */
void sched_jobs_stop (SchedJobs *jobs);

/* A Job message borrowing JOB's memory. */
void sched_job_msg (const SchedJob *job, Drover__V1__Job *msg);

/* ListJobs pages: PAGE_DEFAULT jobs when the request gives no size, never
 * more than PAGE_MAX. */
#define SCHED_JOBS_PAGE_DEFAULT 100
#define SCHED_JOBS_PAGE_MAX 1000

/* The next_page_token after LAST, the last job of a page ("<created_ms>/
 * <id>"). Caller frees. */
char *sched_jobs_page_token (const SchedJob *last);
/* Reads a token sched_jobs_page_token wrote into *AFTER_MS and *AFTER_ID
 * (caller frees); anything else is SCHED_ERROR_INVALID. */
gboolean sched_jobs_parse_page_token (const char *token, gint64 *after_ms,
                                      char **after_id, GError **error);

/* ListJobs and WatchJob; USER_DATA is the SchedJobs. */
SchedHandler sched_jobs_handle_list;
SchedHandler sched_jobs_handle_watch;

/* --- agent clients (sched-agents.c) ------------------------------------ */

/* STORE and TLS (NULL = insecure) are borrowed; CTX is where the clients
 * deliver completions. */
SchedAgents *sched_agents_new (SchedStore *store, const ProtoTls *tls,
                               GMainContext *ctx);
void sched_agents_free (SchedAgents *agents);

/* The cached client for HOST, (re)created if its address changed.
 * SCHED_ERROR_UNAVAILABLE once sched_agents_cancel_all ran. */
ProtoClient *sched_agents_client (SchedAgents *agents, const SchedHost *host,
                                  GError **error);
/* Host NAME from the store, which must be up (SCHED_ERROR_UNAVAILABLE),
 * and its client. *HOST_OUT (may be NULL) gets the host. */
ProtoClient *sched_agents_client_up (SchedAgents *agents, const char *name,
                                     SchedHost **host_out, GError **error);
/* Calls METHOD of the AgentService on CLIENT (from sched_agents_client*),
 * like proto_client_call: CLIENT lives until DONE has run, even if it is
 * dropped meanwhile. */
void sched_agents_call (SchedAgents *agents, ProtoClient *client, guint method,
                        const ProtobufCMessage *request, gint64 timeout_ms,
                        ProtoReplyFunc done, gpointer user_data);
/* The same for a server stream (proto_client_stream). */
ProtoClientStream *sched_agents_stream (SchedAgents *agents,
                                        ProtoClient *client, guint method,
                                        const ProtobufCMessage *request,
                                        ProtoStreamMessageFunc on_message,
                                        ProtoStreamEndFunc on_end,
                                        gpointer user_data);
/* Host NAME's cached client is no longer handed out; it is freed once the
 * calls it carries have ended. For an agent that registers again: a new
 * process, whose predecessor's channel may sit in reconnect backoff. */
void sched_agents_drop (SchedAgents *agents, const char *name);
/* New clients use TLS (borrowed; reloaded material); every cached client
 * is dropped, so new calls connect with it while calls in flight finish
 * on their connections. */
void sched_agents_set_tls (SchedAgents *agents, const ProtoTls *tls);
/* Frees every client now: their calls in flight complete with CANCELLED
 * inside this call. Afterwards no client is handed out. */
void sched_agents_cancel_all (SchedAgents *agents);

/* Finds VM NAME (validated) and its host for a command. A VM being
 * created is _PRECONDITION. The host may be NULL (unknown to the store)
 * only if ALLOW_NO_HOST, else _UNAVAILABLE. */
gboolean sched_agents_lookup_vm (SchedAgents *agents, const char *name,
                                 gboolean allow_no_host, SchedVm **vm_out,
                                 SchedHost **host_out, GError **error);

/* Fails CALL with an agent's ERROR, for the operator: "host 'h': ..."
 * with its status. */
void sched_agents_call_fail (ProtoServerCall *call, const char *host,
                             const GError *error);

/* An operator's command in flight to an agent: the user data of the agent
 * call's completion, which finishes CALL. */
typedef struct
{
  SchedService *svc;
  ProtoServerCall *call;
  char *vm;
  char *host;
  SchedJob *job;  /* create, delete and lifecycle commands; owned */
  gboolean force; /* StopVm asked for a forced stop */
} SchedPending;

/* Takes JOB (may be NULL); copies the strings. */
SchedPending *sched_pending_new (SchedService *svc, ProtoServerCall *call,
                                 const char *vm, const char *host,
                                 SchedJob *job);
void sched_pending_free (SchedPending *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedPending, sched_pending_free)

/* Sends REQUEST (a message the agent's method takes as is) to the agent of
 * VM NAME, which must be up; DONE gets a SchedPending for SVC and
 * finishes CALL. Errors before the call fail CALL at once and return
 * NULL; otherwise the SchedPending is returned, borrowed (DONE never runs
 * before this returns), for the caller to attach a job. */
SchedPending *sched_agents_forward (SchedAgents *agents, SchedService *svc,
                                    ProtoServerCall *call, const char *name,
                                    guint agent_method,
                                    const ProtobufCMessage *request,
                                    gint64 timeout_ms, ProtoReplyFunc done);

/* --- snapshots, clones and templates (sched-snapshots.c) --------------- */

/* The storage jobs of SVC (borrowed; it owns the result). */
SchedSnapshots *sched_snapshots_new (SchedService *svc);
/* New operations are refused from now on; running ones end when their
 * agent calls are cancelled. */
void sched_snapshots_stop (SchedSnapshots *s);
void sched_snapshots_free (SchedSnapshots *s);

/* The internal entry point for a snapshot (CreateSnapshot without a gRPC
 * call; later DR schedules): snapshot NAME of VM, with RAM and device
 * state if MEMORY, filesystems frozen if QUIESCE, DESCRIPTION (NULL: none;
 * at most 1 KiB). Checks the names (PROTO_ERROR INVALID_ARGUMENT), that
 * the VM exists (SCHED_ERROR_NOT_FOUND), is no template, is neither
 * migrating nor busy with another storage job (_PRECONDITION), that its
 * host is up (_UNAVAILABLE) and the name is new (_EXISTS). Then starts
 * the job; *JOB is a copy of it as stored (caller frees). The job goes on
 * from the agent's stream in the main context. */
gboolean sched_snapshots_submit (SchedService *svc, const char *vm,
                                 const char *name, gboolean memory,
                                 gboolean quiesce, const char *description,
                                 SchedJob **job, GError **error);
/* Deletes snapshot NAME of VM as DeleteSnapshot does (a job; *JOB a copy
 * of it as stored). */
gboolean sched_snapshots_submit_delete (SchedService *svc, const char *vm,
                                        const char *name, SchedJob **job,
                                        GError **error);
/* VM may start a storage job now (not migrating, no other storage job). */
gboolean sched_snapshots_idle (SchedService *svc, const char *vm);
/* TRUE with *EXISTS when the store could say whether VM has snapshot
 * NAME. */
gboolean sched_snapshots_exists (SchedService *svc, const char *vm,
                                 const char *name, gboolean *exists);
/* The same for CloneVm: REQ as the operator sent it. */
gboolean sched_snapshots_clone (SchedService *svc,
                                const Drover__V1__CloneVmRequest *req,
                                SchedJob **job, GError **error);
/* The storage job running on VM (a clone: on its source), borrowed; NULL
 * if none. */
const SchedJob *sched_snapshots_busy (SchedSnapshots *s, const char *vm);

/* The refusals other commands ask for: StartVm of a template; DeleteVm of
 * a VM that linked clones use as their base, or that a storage job is
 * working on; MigrateVm of a template, a linked clone, a base of linked
 * clones, or a VM with a storage job running. FALSE with
 * SCHED_ERROR_PRECONDITION saying why. */
gboolean sched_snapshots_check_start (SchedService *svc, const char *name,
                                      GError **error);
gboolean sched_snapshots_check_delete (SchedService *svc, const char *name,
                                       GError **error);
gboolean sched_snapshots_check_migrate (SchedService *svc, const SchedVm *vm,
                                        GError **error);

/* After a report from HOST was taken: VMs whose snapshot count or current
 * snapshot differs from the store's copy get their tree from the agent
 * (ListSnapshots, in the background); the agent's template flag is
 * taken. */
void sched_snapshots_after_report (SchedService *svc, const char *host,
                                   Drover__V1__VmStatus *const *vms,
                                   gsize n_vms);

/* ROWS (SchedSnapshot of one VM, in creation order) as a tree listing:
 * each parent before its children, children in creation order. The array
 * borrows the rows; caller frees it. */
GPtrArray *sched_snapshots_tree_order (GPtrArray *rows);
/* A storage job's progress (sched-snap-op.c): 0..1 for progress P
 * (preparing 2%, then 5-95% by bytes or chunks done, completed 100%);
 * negative when unknown (keep the last value). */
double sched_storage_fraction (const Drover__V1__StorageProgress *p);
/* Why a storage job on HOST failed, from its last progress LAST (may be
 * NULL), the stream's ERROR (may be NULL) and whether the scheduler
 * STOPPED. Caller frees. */
char *sched_storage_failure (const Drover__V1__StorageProgress *last,
                             const GError *error, const char *host,
                             gboolean stopped);
/* The job message for progress P of a job of KIND on NAME (the snapshot,
 * or the new VM of a clone). Caller frees. */
/* The internal entry point for a backup (CreateBackup without a gRPC
 * call; later DR schedules): a backup of the running VM REQ->vm into
 * repository REQ->repo ("" = the one its host reports). Checks as
 * sched_snapshots_submit does; *JOB is a copy of the started job. */
gboolean sched_backups_create (SchedService *svc,
                               const Drover__V1__CreateBackupRequest *req,
                               SchedJob **job_out, GError **error);
char *sched_snapshots_describe (const char *kind, const char *name,
                                const Drover__V1__StorageProgress *p);
/* How an internal restore began: its job (a copy the callee frees), or
 * why it did not. */
typedef void (*SchedRestoreStarted) (SchedJob *job, const GError *error,
                                     gpointer user_data);
/* The internal entry point for a restore as a new VM (RestoreBackup
 * without a gRPC call; restore drills): backup ID of repository REPO
 * becomes VM NAME, started, on a host with room other than AVOID when
 * one has room (AVOID may be NULL). STARTED runs later, once, from the
 * main context. FALSE with ERROR when nothing could be asked. */
gboolean sched_backups_restore_new (SchedService *svc, const char *repo,
                                    const char *id, const char *name,
                                    const char *avoid,
                                    SchedRestoreStarted started,
                                    gpointer user_data, GError **error);

/* --- Prometheus metrics (sched-metrics.c) ------------------------------ */

/* The scheduler's series (see docs/metrics.md). */
SchedMetrics *sched_metrics_new (void);
void sched_metrics_free (SchedMetrics *m);
/* The registry (for the gRPC server's counters too); owned by M. */
ProtoMetrics *sched_metrics_registry (SchedMetrics *m);
/* One ReportHost accepted. */
void sched_metrics_report (SchedMetrics *m);
/* The result label of the migration JOB that ended (OK: it completed). */
const char *sched_metrics_migration_result (const SchedJob *job, gboolean ok);
/* The migration JOB ended (OK: it completed): its result, and for a
 * completed one its duration and measured over predicted duration. */
void sched_metrics_migration_end (SchedMetrics *m, const SchedJob *job,
                                  gboolean ok);
/* A snapshot operation OP (create, revert, delete, clone, template)
 * ended, OK or not, after SECONDS. */
/* A run of a DR schedule of ACTION (snapshot, backup) ended. */
void sched_metrics_schedule_run (SchedMetrics *m, const char *action,
                                 gboolean ok);
/* Removes VM NAME's record and its snapshots' from the store and the
 * registry once its host no longer has it (JOB_ID: the job that did it,
 * for the log; may be NULL), with its event. */
gboolean sched_vm_forget (SchedService *svc, const char *name,
                          const char *job_id, const char *how, GError **error);
/* The results of a restore drill. */
#define SCHED_DRILL_PASSED "passed"
#define SCHED_DRILL_FAILED "failed"
#define SCHED_DRILL_SKIPPED "skipped"
/* A restore drill ended with RESULT (SCHED_DRILL_*); one that passed took
 * RECOVERY_S from the restore's start to readiness. */
void sched_metrics_schedule_drill (SchedMetrics *m, const char *result,
                                   double recovery_s);
void sched_metrics_snapshot_op (SchedMetrics *m, const char *op, gboolean ok,
                                double seconds);
/* The gauges of hosts, VMs and jobs by state become the counts in HOSTS
 * (SchedHost), VMS (SchedVm) and JOBS (SchedJob); a NULL array leaves
 * its gauge as it was. */
void sched_metrics_refresh (SchedMetrics *m, GPtrArray *hosts, GPtrArray *vms,
                            GPtrArray *jobs);
/* Serves /metrics on ADDR (HTTPS with TLS, plain HTTP with NULL) in the
 * thread-default main context; each scrape takes the gauges from STORE's
 * counts (borrowed; sched_store_count). sched_metrics_stop ends it. */
gboolean sched_metrics_listen (SchedMetrics *m, SchedStore *store,
                               const char *addr, const ProtoTls *tls,
                               GError **error);
int sched_metrics_get_port (SchedMetrics *m);
/* Ends /metrics and the watch. */
void sched_metrics_stop (SchedMetrics *m);
/* drover_vm_last_backup_timestamp_seconds{vm}: a good backup of VM that
 * began at BEGAN_MS (kept if newer than the one known); a VM that is gone
 * loses its series. */
void sched_metrics_backup_done (SchedMetrics *m, const char *vm,
                                gint64 began_ms);
void sched_metrics_vm_gone (SchedMetrics *m, const char *vm);
/* Takes the good backups from STORE's jobs, then follows EVENTS
 * (borrowed; until sched_metrics_stop or the events stop) for backup
 * jobs that end and VMs deleted. */
gboolean sched_metrics_watch (SchedMetrics *m, SchedStore *store,
                              SchedEvents *events, GError **error);

/* --- VM handlers (sched-vm-handlers.c) --------------------------------- */

/* ListHosts, ListVms, GetVm, CreateVm, StartVm, StopVm, DestroyVm,
 * ReadConsole, DeleteVm, MigrateVm and CancelJob; USER_DATA is the
 * SchedService. */
SchedHandler sched_vm_handle_list_hosts;
SchedHandler sched_vm_handle_list_vms;
SchedHandler sched_vm_handle_get;
SchedHandler sched_vm_handle_create;
SchedHandler sched_vm_handle_start;
SchedHandler sched_vm_handle_stop;
SchedHandler sched_vm_handle_destroy;
SchedHandler sched_vm_handle_read_console;
SchedHandler sched_vm_handle_delete;
SchedHandler sched_vm_handle_set_labels;

/* --- VM labels (sched-labels.c) ---------------------------------------- */

/* Labels a VM has at most; a key's and a value's length at most. */
#define SCHED_LABELS_MAX 16
#define SCHED_LABEL_PART_MAX 63
#define SCHED_LABEL_GROUP "group"
/* Is PAIR "KEY=VALUE" with a good key and value (SCHED_ERROR_INVALID
 * saying what is wrong)? */
gboolean sched_labels_check_pair (const char *pair, GError **error);
gboolean sched_labels_check_key (const char *key, GError **error);
/* LABELS ("k=v,k=v") with the pairs SET set and the keys REMOVE removed,
 * sorted by key: a new string, or NULL with SCHED_ERROR_INVALID (a bad
 * pair or key, more than SCHED_LABELS_MAX); nothing is changed then. */
char *sched_labels_apply (const char *labels, char *const *set, gsize n_set,
                          char *const *remove, gsize n_remove, GError **error);
/* Does LABELS hold PAIR ("KEY=VALUE") exactly? */
gboolean sched_labels_has (const char *labels, const char *pair);
gboolean sched_labels_check_group (const char *group, GError **error);
gboolean sched_labels_in_group (const char *labels, const char *group);
SchedHandler sched_vm_handle_migrate;
SchedHandler sched_vm_handle_cancel_job;

/* Fills the (initialised) Vm message MSG with VM's memory, borrowed. */
void sched_vm_msg (const SchedVm *vm, Drover__V1__Vm *msg);

/* CreateSnapshot, ListSnapshots, RevertSnapshot, DeleteSnapshot
 * (sched-snapshots.c), CloneVm and MakeTemplate (sched-clones.c);
 * USER_DATA is the SchedService. */
SchedHandler sched_snap_handle_create;
SchedHandler sched_snap_handle_list;
SchedHandler sched_snap_handle_revert;
SchedHandler sched_snap_handle_delete;
SchedHandler sched_snap_handle_clone;
SchedHandler sched_snap_handle_template;
/* sched-backups.c (issue 14) */
SchedHandler sched_backups_handle_create;
SchedHandler sched_backups_handle_list;
SchedHandler sched_backups_handle_get;
SchedHandler sched_backups_handle_restore;

G_END_DECLS
