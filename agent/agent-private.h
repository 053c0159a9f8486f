/* libdrover-agent internals, shared by its files and its tests. */
#pragma once

#include <gio/gio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "agent.h"
#include "mig-channel.h"
#include "proto.h"

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (virConnect, virConnectClose)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)

/* --- errors and fault points (agent-error.c, agent-fault.c) ------------ */

/* The gRPC status a call that failed with ERROR ends with, whatever the
 * domain: PROTO_ERROR codes as they are, AGENT_ERROR, STOR_ERROR and
 * MIG_ERROR codes by their meaning, anything else INTERNAL. */
ProtoStatus agent_error_to_status (const GError *error);

/* TRUE when fault point NAME is listed in $DROVER_FAULTS (comma
 * separated, read once) or in the last agent_fault_set (). Tests use them
 * to fail an operation at a chosen step. The agent's fault points:
 * - create-after-disk, create-after-define, create-after-start: CreateVm
 *   fails (INTERNAL, rolled back) after making the disk, after defining
 *   the domain, after starting it;
 * - mig-cut-channel: MigrateOut cuts the memory stream of the migration
 *   after 4 MiB. */
gboolean agent_fault (const char *name);
void agent_fault_set (const char *faults);

/* --- sources on another thread's context (agent-source.c) ------------- */

/* Attaches FUNC (DATA, freed with DESTROY) to CTX from any thread: a
 * timer of TIMEOUT_MS, or an idle source when 0 (both at
 * G_PRIORITY_DEFAULT). Returns the source id. */
guint agent_source_add (GMainContext *ctx, guint timeout_ms, GSourceFunc func,
                        gpointer data, GDestroyNotify destroy);
/* Destroys source *ID of CTX if it is still there, and zeroes *ID. */
void agent_source_clear (GMainContext *ctx, guint *id);

/* --- domain XML (agent-domain-xml.c) ----------------------------------- */

/* Domain XML for SPEC, built with libxml2's tree API: domain type from
 * ACCEL (not AUTO), the disk at DISK_PATH when SPEC->disk > 0, the serial
 * console appended to CONSOLE_PATH, and the whole spec as Drover
 * metadata. Fails with AGENT_ERROR_INVALID on strings XML cannot carry
 * (control characters, invalid UTF-8). Free with g_free. */
char *agent_domain_xml_build (const Drover__V1__VmSpec *spec, AgentAccel accel,
                              const char *disk_path, const char *console_path,
                              GError **error);

/* The spec recorded in domain XML: name, vcpus and memory from the
 * domain itself, the rest from the Drover metadata. AGENT_ERROR_NOT_DROVER
 * for a domain without that metadata, AGENT_ERROR_INVALID for anything
 * that is not domain XML. */
Drover__V1__VmSpec *agent_domain_xml_parse (const char *xml, GError **error);

/* --- libvirt connection (agent-libvirt.c) ------------------------------ */

typedef struct _AgentLibvirt AgentLibvirt;

/* Lifecycle event of domain NAME (virDomainEventType, detail), delivered
 * in the connection's GMainContext. */
typedef void (*AgentLifecycleFunc) (const char *name, int event, int detail,
                                    gpointer user_data);
/* Called in the GMainContext whenever a connection is (re)established. */
typedef void (*AgentConnectedFunc) (gpointer user_data);

/* Sets ERROR from libvirt's last error, prefixed by FORMAT. Codes:
 * NO_DOMAIN -> NOT_FOUND, OPERATION_INVALID -> PRECONDITION, lost
 * connection -> UNAVAILABLE, anything else FAILED. */
void agent_libvirt_error (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

/* Registers libvirt's default event loop implementation and starts the
 * thread running it; once per process, before any connection opens. */
void agent_libvirt_init (void);

/* CTX (NULL: the thread-default) must not be GLib's global default
 * context: libvirt's event thread iterates that one. */
AgentLibvirt *agent_libvirt_new (const char *uri, GMainContext *ctx,
                                 AgentLifecycleFunc lifecycle,
                                 AgentConnectedFunc connected,
                                 gpointer user_data);
/* Opens the connection. On failure it returns FALSE with ERROR and keeps
 * retrying every second in the background. */
gboolean agent_libvirt_connect (AgentLibvirt *lv, GError **error);
/* A new reference to the current connection (any thread), or NULL with
 * AGENT_ERROR_UNAVAILABLE. */
virConnectPtr agent_libvirt_get (AgentLibvirt *lv, GError **error);
/* Closes the connection and stops reconnecting; no callback runs after. */
void agent_libvirt_free (AgentLibvirt *lv);

/* --- accelerator (agent-accel.c) --------------------------------------- */

/* TRUE when /dev/kvm opens and reports KVM API version 12. */
gboolean agent_kvm_usable (void);
/* AUTO becomes KVM or TCG; other values stay. */
AgentAccel agent_accel_resolve (AgentAccel accel);

/* --- host and VM state (agent-host.c, agent-stats.c) ------------------- */

/* "9.0.0" from libvirt's major * 1000000 + minor * 1000 + micro. */
char *agent_version_string (unsigned long version);

Drover__V1__HostInfo *
agent_host_info_collect (virConnectPtr conn, const char *name,
                         const char *address, AgentAccel accel,
                         const char *data_dir, GError **error);

/* PROTO_VM_RUNNING, PROTO_VM_SHUTOFF, ... for a virDomainState. */
const char *agent_domain_state_string (int state);

/* Status of one Drover domain (state, vcpus, memory, cpu time, spec);
 * AGENT_ERROR_NOT_DROVER for other domains. */
Drover__V1__VmStatus *agent_vm_status_from_domain (virDomainPtr dom,
                                                   GError **error);

typedef struct _AgentStats AgentStats;

/* Remembers each domain's CPU time between collections (cpu_percent). */
AgentStats *agent_stats_new (void);
void agent_stats_free (AgentStats *stats);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentStats, agent_stats_free)
/* Status of every Drover domain on CONN (one thread at a time per
 * STATS). Returns a GPtrArray of Drover__V1__VmStatus (freeing them). */
GPtrArray *agent_stats_collect (AgentStats *stats, virConnectPtr conn,
                                GError **error);

/* --- the agent (agent.c) ----------------------------------------------- */

struct _Agent
{
  gint ref_count;
  /* Immutable after agent_new. */
  AgentConfig config;
  AgentAccel accel;  /* resolved: KVM, TCG or TEST */
  char *disk_dir;    /* DATA/disks */
  char *console_dir; /* DATA/console */
  GMainContext *ctx;
  ProtoTls *tls;

  AgentLibvirt *lv;              /* thread-safe */
  ProtoServer *server;           /* main context only */
  struct _AgentService *service; /* what SERVER's handlers are given */

  /* Reporter: main context only, except stats (owned by the collecting
   * worker while report_in_flight). */
  ProtoClient *sched;
  AgentStats *stats;
  gboolean stopped;
  gboolean registered;
  gboolean register_in_flight;
  gboolean report_in_flight;
  gboolean report_pending;
  guint report_interval_ms;
  guint report_source;
  guint register_source;
  guint debounce_source;
  guint64 seq;
  char *last_problem; /* logged once until it changes */

  /* Live migration (agent-migration.c): set by agent_start, immutable
   * until the last unref. mig_dst NULL: this agent does not migrate
   * (libvirt's test driver). mig_creds NULL: plain TCP (insecure). */
  struct _AgentMigDst *mig_dst;
  MigChannelCreds *mig_creds;

  /* Names of VMs with an operation in progress; guarded by lock. */
  GMutex lock;
  GHashTable *busy;
};

/* --- AgentService (agent-service.c) ------------------------------------ */

/* The AgentService methods, bound to one agent. */
typedef struct _AgentService AgentService;

/* Registers the AgentService methods of AGENT on SERVER; the result must
 * outlive the server. Calls are served in worker threads and answered
 * from the agent's main context, holding a reference to AGENT until then;
 * a failed call ends with agent_error_to_status of its error. */
AgentService *agent_service_register (Agent *agent, ProtoServer *server);
void agent_service_free (AgentService *svc);

/* One unary AgentService call: runs in a worker thread, returns the
 * reply (freed with proto_msg_free after sending) or NULL with ERROR. */
typedef ProtobufCMessage *(*AgentOpFunc) (Agent *agent,
                                          const ProtobufCMessage *request,
                                          GError **error);
/* One unary call on the VM its request names: as AgentOpFunc, with the
 * VM claimed (agent_vm_claim) and looked up (agent_vm_lookup). */
typedef ProtobufCMessage *(*AgentVmFunc) (Agent *agent, virConnectPtr conn,
                                          virDomainPtr dom,
                                          const ProtobufCMessage *request,
                                          GError **error);
/* A new Empty reply, for an AgentOpFunc that has nothing to return. */
ProtobufCMessage *agent_service_empty_reply (void);

/* --- the VMs of this host (agent-vm.c) --------------------------------- */

/* Claims VM NAME for one operation: AGENT_ERROR_BUSY while another
 * operation holds it. Release with agent_vm_release. */
gboolean agent_vm_claim (Agent *agent, const char *name, GError **error);
void agent_vm_release (Agent *agent, const char *name);
/* The Drover domain NAME: AGENT_ERROR_NOT_FOUND ("no VM named ... on host
 * ...") for a missing and for a foreign domain. Free with virDomainFree. */
virDomainPtr agent_vm_lookup (Agent *agent, virConnectPtr conn,
                              const char *name, GError **error);
/* Checks SPEC before a VM is made from it here (CreateVm, an incoming
 * migration): what proto_vm_spec_check checks (PROTO_ERROR
 * INVALID_ARGUMENT), kernel and initrd readable files
 * (AGENT_ERROR_INVALID) and the accelerator this host runs guests with
 * (AGENT_ERROR_PRECONDITION). */
gboolean agent_vm_check_spec (Agent *agent, const Drover__V1__VmSpec *spec,
                              GError **error);
/* Admits a new VM named after SPEC: claims the name (so two requests
 * cannot race for it), refuses an existing domain of that name
 * (AGENT_ERROR_EXISTS) and checks its memory fits next to the running VMs
 * and incoming reservations (AGENT_ERROR_NO_RESOURCES). On success the
 * caller holds the claim (agent_vm_release); on failure nothing is held. */
gboolean agent_vm_admit (Agent *agent, virConnectPtr conn,
                         const Drover__V1__VmSpec *spec, GError **error);

/* --- progress streams (agent-stream.c) --------------------------------- */

/* A server-streaming call fed by a worker thread, for long operations
 * that report progress (MigrateOut; snapshots, clones and backups next):
 * - a new thread runs FUNC, which produces messages in order with
 *   agent_stream_push;
 * - the main context sends them on the call one at a time, in that order;
 * - when FUNC returns, the call ends after the last message with OK
 *   (TRUE) or with the status and message of its error (FALSE:
 *   agent_error_to_status);
 * - the client's cancel (or its going away) cancels the stream's
 *   GCancellable, which FUNC watches to stop early. */
typedef struct _AgentStream AgentStream;

/* Runs on the stream's own thread. */
typedef gboolean (*AgentStreamFunc) (AgentStream *stream, gpointer user_data,
                                     GError **error);

/* Serves CALL (in CTX's main context, whose thread calls this) with a
 * thread named THREAD_NAME running FUNC (stream, USER_DATA). DESTROY
 * frees USER_DATA in CTX after the call has ended; CALL and its request
 * stay valid until then. */
void agent_stream_start (ProtoServerCall *call, GMainContext *ctx,
                         const char *thread_name, AgentStreamFunc func,
                         gpointer user_data, GDestroyNotify destroy);
/* Queues MSG (taken, freed once sent) behind every message pushed
 * before. From FUNC only. */
void agent_stream_push (AgentStream *stream, ProtobufCMessage *msg);
/* Cancelled when the client cancels; owned by STREAM. */
GCancellable *agent_stream_get_cancellable (AgentStream *stream);

/* --- console logs (agent-console.c) ------------------------------------ */

/* console/NAME.log, where QEMU appends what VM NAME writes on its serial
 * console (NAME already validated). Free with g_free. */
char *agent_console_path (Agent *agent, const char *name);
/* Removes the console log of VM NAME and its history from earlier hosts
 * (missing files are fine). FALSE with ERROR ("console log PATH stays:
 * ...") when the log cannot be removed; the history goes regardless. */
gboolean agent_console_remove (Agent *agent, const char *name, GError **error);
/* ReadConsole (worker thread): NAME.history then NAME.log as one stream;
 * on a host the VM has left, a read at the end removes both. */
ProtobufCMessage *agent_console_serve (Agent *agent,
                                       const Drover__V1__ConsoleRequest *req,
                                       GError **error);
/* Copies the console stream of VM NAME from the agent of host HOST at
 * ADDRESS (where it ran before; its certificate must name HOST) into
 * NAME.history, then reads at its end there until that agent has dropped
 * its copy (at most 10 s). Blocks: worker threads only. */
gboolean agent_console_fetch_history (Agent *agent, const char *host,
                                      const char *address, const char *name,
                                      GError **error);

/* --- live migration (agent-migration.c, agent-mig-dst.c, -src.c) ------- */

/* Removes stale migration sockets, takes back the disk images of
 * incoming migrations an earlier run left undecided and starts the
 * migration listener on the AgentService IP (port config.migration_port,
 * 0 = any). Does nothing with the test driver. */
gboolean agent_migration_start (Agent *agent, GError **error);
/* Stops the listener and forgets incoming jobs (the last unref). */
void agent_migration_stop (Agent *agent);
/* Splits "HOST:PORT" at its last colon; FALSE when it has no port. */
gboolean agent_migration_split_address (const char *address, char **host,
                                        guint16 *port);

/* The destination side: reservations of prepared incoming migrations and
 * the listener their streams come in on. */
typedef struct _AgentMigDst AgentMigDst;
/* Takes back undecided incoming disk images, then listens on IP:PORT
 * with AGENT->mig_creds. */
AgentMigDst *agent_mig_dst_new (Agent *agent, const char *ip, guint16 port,
                                GError **error);
void agent_mig_dst_free (AgentMigDst *dst);
/* Memory reserved by prepared incoming migrations; 0 for NULL (any
 * thread). */
guint64 agent_mig_dst_reserved_memory (AgentMigDst *dst);
/* PrepareIncoming and CancelIncoming (AgentOpFunc). */
ProtobufCMessage *agent_mig_dst_prepare (Agent *agent,
                                         const ProtobufCMessage *request,
                                         GError **error);
ProtobufCMessage *agent_mig_dst_cancel (Agent *agent,
                                        const ProtobufCMessage *request,
                                        GError **error);

/* The source side: MigrateOut (ProtoHandler, data: the Agent). */
void agent_mig_src_migrate_out (ProtoServerCall *call,
                                const ProtobufCMessage *req, gpointer data);

/* --- reporting to the scheduler (agent-reporter.c) --------------------- */

void agent_reporter_start (Agent *agent);
void agent_reporter_stop (Agent *agent);
/* Sends a report soon (debounced), e.g. after a lifecycle event. Main
 * context only; agent_reporter_kick_from_thread from anywhere else. */
void agent_reporter_kick (Agent *agent);
void agent_reporter_kick_from_thread (Agent *agent);

G_END_DECLS
