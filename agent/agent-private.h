/* libdrover-agent internals, shared by its files and its tests. */
#pragma once

#include <gio/gio.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "agent.h"
#include "mig-channel.h"
#include "mig-migrate.h"
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
 * to fail an operation at a chosen step. Fault points exist only in a
 * build with meson option -Dfaults=true (test builds); in any other
 * agent_fault () is FALSE whatever is set. The agent's fault points:
 * - create-after-disk, create-after-define, create-after-start: CreateVm
 *   fails (INTERNAL, rolled back) after making the disk, after defining
 *   the domain, after starting it;
 * - mig-cut-channel: MigrateOut cuts the memory stream of the migration
 *   after 4 MiB;
 * - mig-chain-crash-receiving: the destination of a VM with snapshots
 *   kills itself (SIGKILL) once the first image of the chain is in;
 * - snapshot-create-fail: CreateSnapshot fails (rolled back) where it
 *   would make the new overlay;
 * - snapshot-create-crash-before, -crash-after, snapshot-revert-crash-
 *   before, -crash-after-stop, -crash-after-define,
 *   snapshot-delete-crash-before,
 *   -crash-before-merge, -crash-merging, -crash-after-merge: the agent
 *   kills itself (SIGKILL) at that step of a snapshot operation;
 * - backup-fail-reading: CreateBackup fails once libvirt's job runs;
 *   backup-crash-reading: the agent kills itself (SIGKILL) once the
 *   backup's data flows;
 * - verify-crash-reading (once a chunk is checked), restore-crash-writing
 *   (once data is written), repo-crash-init-dirs, repo-crash-gc-sweeping,
 *   repo-crash-prune-deleting: the agent kills itself (SIGKILL) there. */
#ifdef DROVER_FAULTS
gboolean agent_fault (const char *name);
#else
#define agent_fault(name) ((void)(name), FALSE)
#endif
void agent_fault_set (const char *faults);
/* FALSE; TRUE with ERROR (AGENT_ERROR_FAILED "fault: NAME") when fault
 * point NAME fires: an operation's step that fails on purpose. */
gboolean agent_fault_fail (const char *name, GError **error);
/* TRUE in a build with fault points (-Dfaults=true). */
gboolean agent_fault_compiled (void);
/* Kills the agent (SIGKILL) when fault point NAME fires. */
void agent_fault_crash (const char *name);
/* In a build with fault points, makes the repository library's steps
 * (init-dirs, gc-marked, gc-sweeping, prune-deleting: see
 * stor_repo_set_step_hook) fault points repo-crash-STEP that kill the
 * agent and repo-pause-STEP that wait for the file $DROVER_FAULT_RESUME. */
void agent_fault_storage_hook (void);

/* --- sources on another thread's context (agent-source.c) ------------- */

/* Attaches FUNC (DATA, freed with DESTROY) to CTX from any thread: a
 * timer of TIMEOUT_MS, or an idle source when 0 (both at
 * G_PRIORITY_DEFAULT). Returns the source id. */
guint agent_source_add (GMainContext *ctx, guint timeout_ms, GSourceFunc func,
                        gpointer data, GDestroyNotify destroy);
/* Destroys source *ID of CTX if it is still there, and zeroes *ID. */
void agent_source_clear (GMainContext *ctx, guint *id);

/* --- QEMU's user, and files only it and root may read (agent-qemu.c) -- */

/* The user and group QEMU runs as on this host, from libvirt's DAC
 * security model in the capabilities XML CAPS ("+UID:+GID" base label of
 * the qemu or kvm type). FALSE when CAPS names none. */
gboolean agent_qemu_ids_from_caps (const char *caps, uid_t *uid, gid_t *gid);
/* ... or from the text of /etc/libvirt/qemu.conf (its user and group
 * settings, names or "+N"; libvirt-qemu for one it leaves unset, as
 * libvirt on Debian does). FALSE when a name is unknown here. */
gboolean agent_qemu_ids_from_conf (const char *conf, uid_t *uid, gid_t *gid);
/* Sets AGENT's idea of QEMU's user and group: from CONN's capabilities
 * when CONN is given and they say, else from qemu.conf, else root. Any
 * thread. */
void agent_qemu_ids_update (Agent *agent, virConnectPtr conn);
/* The QEMU binary libvirt runs this host's guests with (its domain
 * capabilities for x86_64 and the agent's accelerator), or NULL. */
char *agent_qemu_emulator (Agent *agent, virConnectPtr conn);
/* Makes PATH owned by root and QEMU's group with MODE (0750 for a
 * directory QEMU must enter, 0660 for a file QEMU must write, 0600 for
 * one only the agent reads). */
gboolean agent_protect (Agent *agent, const char *path, mode_t mode,
                        GError **error);

/* --- the image directory (agent-image.c) -------------------------------- */

/* The file a VM's kernel or initrd (WHAT) names: PATH relative to the
 * image directory, or absolute and inside it once links are resolved; a
 * readable regular file. Returns the resolved absolute path (free with
 * g_free), or NULL with AGENT_ERROR_INVALID naming PATH and the
 * directory. */
char *agent_image_resolve (Agent *agent, const char *what, const char *path,
                           GError **error);
/* TRUE when PATH, once links are resolved, lies inside the image
 * directory (an absolute path only). */
gboolean agent_image_contains (Agent *agent, const char *path);

/* --- domain XML (agent-domain-xml.c) ----------------------------------- */

/* Domain XML for SPEC, built with libxml2's tree API: domain type from
 * ACCEL (not AUTO), the disk at DISK_PATH when SPEC->disk > 0, the serial
 * console appended to CONSOLE_PATH, and the whole spec as Drover
 * metadata. Fails with AGENT_ERROR_INVALID on strings XML cannot carry
 * (control characters, invalid UTF-8). Free with g_free. */
/* SPEC's Drover metadata element alone, without its namespace (<vm>...),
 * as virDomainSetMetadata takes it (it adds the namespace); NULL with
 * AGENT_ERROR_INVALID for a bad NIC. */
char *agent_domain_xml_metadata (const Drover__V1__VmSpec *spec,
                                 GError **error);
/* The metadata's namespace and prefix. */
#define AGENT_DOMAIN_XMLNS "https://drover.dev/xmlns/vm/1"
#define AGENT_DOMAIN_XMLNS_PREFIX "drover"
/* The virtio-serial port name of the QEMU guest agent channel. */
#define AGENT_GUEST_AGENT_CHANNEL "org.qemu.guest_agent.0"
/* How long libvirt waits for a guest agent's answer (set on a domain
 * before Drover asks its agent anything: addresses, a quiesce freeze);
 * libvirt's own default is to wait for ever. */
#define AGENT_GUEST_AGENT_TIMEOUT_S 10
/* The <interface> element alone for NIC of VM (MAC, bridge, virtio; for
 * an Open vSwitch bridge the virtualport and VLAN; the MTU), as
 * virDomainAttachDeviceFlags takes it. AGENT_ERROR_INVALID for a bad
 * MAC or bridge name, or a VLAN on a bridge that is not Open vSwitch. */
char *agent_domain_xml_nic (const char *vm, const Drover__V1__VmNic *nic,
                            GError **error);
/* Sets each NIC's ovs from this host's bridges; AGENT_ERROR_PRECONDITION
 * naming the bridge and network when this host lacks one, or has it only
 * as a Linux bridge and the NIC has a VLAN (agent-vm.c). */
gboolean agent_vm_check_nics (Agent *agent, Drover__V1__VmSpec *spec,
                              GError **error);
char *agent_domain_xml_build (const Drover__V1__VmSpec *spec, AgentAccel accel,
                              const char *disk_path, const char *console_path,
                              GError **error);

/* The spec recorded in domain XML: name, vcpus and memory from the
 * domain itself, the rest from the Drover metadata. AGENT_ERROR_NOT_DROVER
 * for a domain without that metadata, AGENT_ERROR_INVALID for anything
 * that is not domain XML. */
Drover__V1__VmSpec *agent_domain_xml_parse (const char *xml, GError **error);
/* Parses the domain XML XML with no network, no entity expansion and no
 * messages on stderr: an xmlDoc (free with xmlFreeDoc), or NULL with
 * AGENT_ERROR_INVALID for empty or unparsable XML. */
struct _xmlDoc *agent_domain_xml_read (const char *xml, GError **error);

/* The string value of XPath expression EXPR (an absolute path such as
 * "/capabilities/host/cpu/model") in libvirt's XML document XML, or
 * NULL when XML does not parse or the value is empty. Free with g_free. */
char *agent_xml_string (const char *xml, const char *expr);

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

/* TRUE when DOM runs a job of OPERATION (a virDomainJobOperation, e.g. an
 * outgoing migration or a backup) now; FALSE also when libvirt cannot
 * say. */
gboolean agent_domain_job_is (virDomainPtr dom, int operation);

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

/* The bridges of this host (agent-bridges.c, issue 13): Linux bridges
 * under SYSFS/class/net (NULL: /sys or agent_bridges_set_sysfs_root's), then
 * Open vSwitch bridges from OVS_VSCTL list-br (NULL: ovs-vsctl from PATH if
 * there, its answer kept up to 30 s; "": none), at most PROTO_HOST_MAX_BRIDGES,
 * names checked (agent_bridge_name_ok), each name once. Never fails: what
 * cannot be read is left out. A NULL-terminated array of *N messages (free each
 * with proto_msg_free). */
Drover__V1__HostBridge **
agent_bridges_collect (const char *sysfs, const char *ovs_vsctl, gsize *n);
/* Drops the kept answer of ovs-vsctl from PATH (kept 30 s): the next
 * agent_bridges_collect with OVS_VSCTL NULL asks again. */
void agent_bridges_ovs_forget (void);
/* The sysfs root agent_bridges_collect reads when given none (NULL:
 * /sys). For unit tests; the agent never sets it. */
void agent_bridges_set_sysfs_root (const char *root);
/* TRUE if NAME may be reported as a bridge: 1-15 printable ASCII
 * characters but '/', ':' and space, not "." or "..". */
gboolean agent_bridge_name_ok (const char *name);

/* agent_host_info_collect for AGENT, with the backup repositories it has
 * open and its bridges (agent_bridges_collect). */
Drover__V1__HostInfo *agent_host_info_for (Agent *agent, virConnectPtr conn,
                                           GError **error);

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
  char *image_dir;   /* config.image_dir or DATA/images, links resolved */
  GMainContext *ctx;

  /* TLS material (agent-tls.c): replaced by agent_reload_tls; read with
   * agent_tls_get (). */
  GMutex tls_lock;
  struct _AgentTls *tls; /* tls_lock; NULL: insecure */
  gboolean sched_stale;  /* main context: re-create the client */

  /* QEMU's user and group (agent-qemu.c); atomic. */
  gint qemu_uid;
  gint qemu_gid;

  struct _AgentMetrics *metrics; /* thread-safe; from agent_new */
  struct _AgentRepos *repos;     /* thread-safe; from agent_new */
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
   * (libvirt's test driver). */
  struct _AgentMigDst *mig_dst;
  gboolean reclaimed; /* the disks were reclaimed once (agent-disks.c) */

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

/* Who makes a call: its certificate's role and CN (PROTO_ROLES_ALL and
 * NULL on an insecure agent). */
typedef struct
{
  ProtoRole role;
  const char *name;
} AgentCaller;

/* One unary AgentService call from CALLER: runs in a worker thread,
 * returns the reply (freed with proto_msg_free after sending) or NULL
 * with ERROR. */
typedef ProtobufCMessage *(*AgentOpFunc) (Agent *agent,
                                          const AgentCaller *caller,
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
/* An AgentVmReply with DOM's status now, or NULL with ERROR. */
ProtobufCMessage *agent_vm_reply (virDomainPtr dom, GError **error);

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
 * INVALID_ARGUMENT), kernel and initrd readable files in the image
 * directory (AGENT_ERROR_INVALID naming the path and the directory;
 * both are rewritten to the absolute paths they resolve to) and the
 * accelerator this host runs guests with (AGENT_ERROR_PRECONDITION). */
gboolean agent_vm_check_spec (Agent *agent, Drover__V1__VmSpec *spec,
                              GError **error);
/* The spec a new VM (CreateVm, CloneVm) runs with here: a copy of
 * REQUESTED, checked by agent_vm_check_spec, with the accelerator this
 * host runs guests with recorded in it. NULL with ERROR. */
Drover__V1__VmSpec *agent_vm_spec_for_host (Agent *agent,
                                            const Drover__V1__VmSpec *requested,
                                            GError **error);
/* Turns a built domain XML into the one to define (e.g. a clone's
 * identity); a new string, or NULL with ERROR. */
typedef char *(*AgentDomainEditFunc) (const char *xml, gpointer data,
                                      GError **error);
/* Builds the domain of SPEC on DISK (NULL: no disk) with SPEC->name's
 * console log (prepared by the caller), passes it through EDIT (NULL: as
 * built) and defines it; WHAT ("VM", "clone") names it in the error. The
 * domain, not started, or NULL with ERROR: the caller rolls back what it
 * made. */
virDomainPtr agent_vm_define (Agent *agent, virConnectPtr conn,
                              const Drover__V1__VmSpec *spec, const char *disk,
                              AgentDomainEditFunc edit, gpointer edit_data,
                              const char *what, GError **error);
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
/* Makes an empty console log for VM NAME unless there is one, owned by
 * root and QEMU's group, 0660 (QEMU appends to it, nobody else reads
 * it). */
gboolean agent_console_prepare (Agent *agent, const char *name, GError **error);
/* Removes the console log of VM NAME, its history from earlier hosts and
 * the record of its departure (missing files are fine). FALSE with ERROR
 * ("console log PATH stays: ...") when the log cannot be removed; the
 * rest goes regardless. */
gboolean agent_console_remove (Agent *agent, const char *name, GError **error);
/* Records, before VM NAME starts migrating to host HOST, that the agent
 * of HOST may read its console (to carry the history along). NULL HOST
 * drops the record (the migration failed). */
gboolean agent_console_set_departure (Agent *agent, const char *name,
                                      const char *host, GError **error);
/* ReadConsole (worker thread) from CALLER: NAME.history then NAME.log as
 * one stream; on a host the VM has left, a read at the end removes both.
 * The scheduler may read any VM's; another host only that of a VM that
 * left (or is leaving) this host for it (PROTO_ERROR PERMISSION_DENIED
 * otherwise). */
ProtobufCMessage *agent_console_serve (Agent *agent, const AgentCaller *caller,
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

/* Removes stale migration sockets and starts the migration listener on
 * the AgentService IP (port config.migration_port, 0 = any). Does nothing
 * with the test driver. */
gboolean agent_migration_start (Agent *agent, GError **error);
/* Stops the listener and forgets incoming jobs (the last unref). */
void agent_migration_stop (Agent *agent);
/* Splits "HOST:PORT" at its last colon; FALSE when it has no port. */
gboolean agent_migration_split_address (const char *address, char **host,
                                        guint16 *port);

/* The destination side: reservations of prepared incoming migrations and
 * the listener their streams come in on. */
typedef struct _AgentMigDst AgentMigDst;
/* Listens on IP:PORT with the agent's migration credentials. */
AgentMigDst *agent_mig_dst_new (Agent *agent, const char *ip, guint16 port,
                                GError **error);
void agent_mig_dst_free (AgentMigDst *dst);
/* New channel connections use CREDS from now on (agent_reload_tls). */
void agent_mig_dst_set_creds (AgentMigDst *dst, MigChannelCreds *creds);
/* Memory reserved by prepared incoming migrations; 0 for NULL (any
 * thread). */
guint64 agent_mig_dst_reserved_memory (AgentMigDst *dst);
/* The image streams expected here (agent-image-xfer-dst.c), the listener
 * and its "ip:port". */
typedef struct _AgentImageXfers AgentImageXfers;
AgentImageXfers *agent_image_xfers_new (void);
void agent_image_xfers_free (AgentImageXfers *xfers);
/* The image stream of JOB_ID came: FD (taken) is its local end. */
void agent_image_xfers_accept (AgentImageXfers *xfers, const char *job_id,
                               int fd);
AgentImageXfers *agent_mig_dst_get_xfers (AgentMigDst *dst);
MigDst *agent_mig_dst_get_dst (AgentMigDst *dst);
const char *agent_mig_dst_get_address (AgentMigDst *dst);
/* PrepareIncoming and CancelIncoming (AgentOpFunc). */
ProtobufCMessage *agent_mig_dst_prepare (Agent *agent,
                                         const AgentCaller *caller,
                                         const ProtobufCMessage *request,
                                         GError **error);
ProtobufCMessage *agent_mig_dst_cancel (Agent *agent, const AgentCaller *caller,
                                        const ProtobufCMessage *request,
                                        GError **error);

/* The source side: MigrateOut (ProtoHandler, data: the Agent). */
void agent_mig_src_migrate_out (ProtoServerCall *call,
                                const ProtobufCMessage *req, gpointer data);

/* What an incoming VM's domain may name here (agent-mig-xml.c). */
typedef struct
{
  const char *name;         /* the VM PrepareIncoming admitted */
  const char *disk_path;    /* the image it made; NULL: the VM has no disk */
  const char *console_path; /* the console log it chose */
  const char *emulator;     /* the QEMU binary libvirt runs here; NULL:
                               none is known, and none may be named */
  const char *seed_path;    /* its cloud-init seed made here; NULL: none,
                               and no cdrom may be named */
} AgentMigXmlPaths;
/* The target of the cloud-init seed's cdrom (agent-domain-xml.c). */
#define AGENT_SEED_TARGET "sda"

/* Checks VALUE, what a migration's Prepare3 or Finish3 bring (WHAT:
 * "destination_xml", "persistent_xml", "cookie" or "destination_name",
 * see MigDstCheckFunc), against PATHS: the name is the VM's, every domain
 * in it (the cookie may hold one) is made only of what Drover's domains
 * are made of, with the disk and console paths of PATHS, kernel, initrd
 * and firmware inside the image directory, and no other host path.
 * FALSE with AGENT_ERROR_INVALID saying what is wrong. */
gboolean agent_mig_xml_check (Agent *agent, const AgentMigXmlPaths *paths,
                              const char *what, const char *value,
                              GError **error);

/* --- the disk images of this host (agent-disks.c) ---------------------- */

/* DISK.incoming: the mark of an image PrepareIncoming makes, written
 * before the image and removed once its migration is decided. Free with
 * g_free. */
char *agent_disks_incoming_mark (const char *disk_path);
/* Takes back DISK_PATH if it is the marked image of an undecided incoming
 * migration of VM NAME: removed when no VM NAME is here, kept (unmarked)
 * when the VM arrived, left alone when libvirt cannot tell. A mark
 * without its image just goes. */
void agent_disks_reclaim_incoming (virConnectPtr conn, const char *name,
                                   const char *disk_path);
/* Once per agent, with a libvirt connection (any thread): takes back the
 * images of incoming migrations an earlier run left undecided and removes
 * orphan images, those of VMs libvirt does not know here that no
 * operation holds. */
void agent_disks_reclaim (Agent *agent, virConnectPtr conn);

/* --- TLS material (agent-tls.c) ------------------------------------------ */

/* The agent's TLS material as it was loaded once: immutable, reference
 * counted, any thread. */
typedef struct _AgentTls
{
  gatomicrefcount ref;
  ProtoTls *tls;              /* for AgentService and gRPC clients */
  MigChannelCreds *mig_creds; /* for the migration channel */
} AgentTls;

/* Loads the TLS directory's material into AGENT (agent_new). */
gboolean agent_tls_load (Agent *agent, GError **error);
/* A reference to the current material; NULL: insecure (plain TCP and
 * insecure gRPC). Any thread. */
AgentTls *agent_tls_get (Agent *agent);
void agent_tls_unref (AgentTls *tls);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentTls, agent_tls_unref)
void agent_tls_clear (Agent *agent);

/* --- Prometheus metrics (agent-metrics.c) ------------------------------ */

/* The agent's series (see docs/metrics.md), labelled with host HOST.
 * Updates are thread-safe and never call libvirt; a scrape renders what
 * the last poll and the last progress sample left. */
typedef struct _AgentMetrics AgentMetrics;
AgentMetrics *agent_metrics_new (const char *host);
void agent_metrics_free (AgentMetrics *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentMetrics, agent_metrics_free)
/* The registry (for the gRPC server's counters too); owned by M. */
ProtoMetrics *agent_metrics_registry (AgentMetrics *m);
/* After a poll: HOST (may be NULL) and the N_VMS Drover VMs it found.
 * The series of VMs missing from VMS are removed. */
void agent_metrics_update (AgentMetrics *m, const Drover__V1__HostInfo *host,
                           Drover__V1__VmStatus *const *vms, gsize n_vms);
/* A backup (OP "full", "incremental") or a restore ("restore") ended;
 * BYTES_READ read from the disk (a restore: written), BYTES_NEW added to
 * the repository. Any thread. */
void agent_metrics_backup (AgentMetrics *m, const char *op, gboolean ok,
                           guint64 bytes_read, guint64 bytes_new);
/* A verify of repository REPO found BAD missing or corrupt chunks and
 * unreadable manifests; a gc of it freed FREED bytes. Any thread. */
void agent_metrics_repo_verify (AgentMetrics *m, const char *repo, guint bad);
void agent_metrics_repo_gc (AgentMetrics *m, const char *repo, guint64 freed);
/* A progress sample P of the migration of VM leaving this host: its
 * gauges while it runs, its result, downtime and channel bytes at the
 * end (P->final), when its gauges go. */
void agent_metrics_migration (AgentMetrics *m, const char *vm,
                              const MigProgress *p);
/* Serves /metrics on ADDR (HTTPS with TLS, plain HTTP with NULL) in the
 * thread-default main context; agent_metrics_stop (same context) ends it. */
gboolean agent_metrics_listen (AgentMetrics *m, const char *addr,
                               const ProtoTls *tls, GError **error);
int agent_metrics_get_port (AgentMetrics *m);
void agent_metrics_stop (AgentMetrics *m);

/* --- reporting to the scheduler (agent-reporter.c) --------------------- */

void agent_reporter_start (Agent *agent);
void agent_reporter_stop (Agent *agent);
/* Sends a report soon (debounced), e.g. after a lifecycle event. Main
 * context only; agent_reporter_kick_from_thread from anywhere else. */
void agent_reporter_kick (Agent *agent);
void agent_reporter_kick_from_thread (Agent *agent);

/* --- snapshots, clones and templates (issue 12) ------------------------ */

/* agent-snapshot.c (the operations in agent-snap-*.c). CreateSnapshot,
 * RevertSnapshot and DeleteSnapshot stream StorageProgress (ProtoHandler,
 * data: the Agent); ListSnapshots is an AgentOpFunc. */
void agent_snapshot_create (ProtoServerCall *call, const ProtobufCMessage *req,
                            gpointer data);
void agent_snapshot_revert (ProtoServerCall *call, const ProtobufCMessage *req,
                            gpointer data);
void agent_snapshot_delete (ProtoServerCall *call, const ProtobufCMessage *req,
                            gpointer data);
ProtobufCMessage *agent_snapshot_list (Agent *agent, const AgentCaller *caller,
                                       const ProtobufCMessage *request,
                                       GError **error);
/* agent-backup.c (issue 14). CreateBackup and RestoreBackup stream
 * StorageProgress (ProtoHandler, data: the Agent). */
void agent_backup_create (ProtoServerCall *call, const ProtobufCMessage *req,
                          gpointer data);
void agent_backup_restore (ProtoServerCall *call, const ProtobufCMessage *req,
                           gpointer data);
/* Checks the --backup-repo values ("NAME=PATH": a valid name, an
 * absolute path, each name once). */
gboolean agent_backup_repos_check (char **repos, GError **error);

/* agent-backup-repos.c: the repositories this agent has open, by name
 * (--backup-repo, and AttachRepo under a --backup-repo-root). */
typedef struct _AgentRepos AgentRepos;
/* Longest repository path AttachRepo takes. */
#define AGENT_BACKUP_REPO_PATH_MAX 1024
/* From the --backup-repo values REPOS (checked) and the --backup-repo-root
 * directories ROOTS (absolute; made when missing, links resolved here). */
AgentRepos *agent_repos_new (char **repos, char **roots, GError **error);
void agent_repos_free (AgentRepos *repos);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentRepos, agent_repos_free)
/* PATH canonicalised (links resolved: the existing directory, or its
 * existing parent plus its last component) when it lies inside one of
 * ROOTS (canonical, NULL-terminated; /srv/repo2 is not inside /srv/repo);
 * NULL with AGENT_ERROR_INVALID for a path that is not absolute, holds
 * "..", is too long or has no parent, PROTO_ERROR PERMISSION_DENIED
 * (naming the path and the roots) for one outside them. Free with
 * g_free. */
char *agent_backup_path_under_roots (const char *path, char *const *roots,
                                     GError **error);
/* Repository NAME (validated) of this host, opened (made the first time);
 * AGENT_ERROR_NOT_FOUND when the host has none of that name. */
struct _StorRepo *agent_backup_repos_lookup (Agent *agent, const char *name,
                                             GError **error);
/* Opens (makes the first time) and recovers the repository at PATH, which
 * must lie under a --backup-repo-root, as NAME. Attaching the same NAME
 * and path again is fine; NAME at another path is AGENT_ERROR_EXISTS. */
gboolean agent_backup_repos_attach (Agent *agent, const char *name,
                                    const char *path, GError **error);
/* The names of the repositories open, sorted (free with g_strfreev). */
char **agent_backup_repos_names (Agent *agent);
/* agent-backup-maint.c (issue 14): AttachRepo, GetRepoStatus and
 * PruneBackups (AgentOpFunc); VerifyBackups and GcRepo stream
 * StorageProgress (ProtoHandler, data: the Agent). */
ProtobufCMessage *agent_backup_attach_repo (Agent *agent,
                                            const AgentCaller *caller,
                                            const ProtobufCMessage *request,
                                            GError **error);
ProtobufCMessage *agent_backup_repo_status (Agent *agent,
                                            const AgentCaller *caller,
                                            const ProtobufCMessage *request,
                                            GError **error);
ProtobufCMessage *agent_backup_prune (Agent *agent, const AgentCaller *caller,
                                      const ProtobufCMessage *request,
                                      GError **error);
void agent_backup_verify (ProtoServerCall *call, const ProtobufCMessage *req,
                          gpointer data);
void agent_backup_gc (ProtoServerCall *call, const ProtobufCMessage *req,
                      gpointer data);
/* agent-backup-list.c: ListBackups and GetBackup (AgentOpFuncs). */
ProtobufCMessage *agent_backup_list (Agent *agent, const AgentCaller *caller,
                                     const ProtobufCMessage *request,
                                     GError **error);
ProtobufCMessage *agent_backup_get (Agent *agent, const AgentCaller *caller,
                                    const ProtobufCMessage *request,
                                    GError **error);
/* agent-backup-job.c. At start, with libvirt connected: ends the backup
 * jobs an earlier run left in libvirt and removes their sockets and
 * scratch files. */
void agent_backup_reclaim (Agent *agent, virConnectPtr conn);

/* agent-snap-recover.c. At start, with libvirt connected (any thread):
 * finishes or rolls back the snapshot operations an earlier run left
 * halfway (their record is in each domain's snapshot metadata). */
void agent_snapshot_reclaim (Agent *agent, virConnectPtr conn);
/* The current snapshot (free with g_free) and the number of snapshots
 * recorded in domain XML DOMXML; FALSE when its record is unreadable. */
gboolean agent_snapshot_count (const char *domxml, char **current,
                               guint *count);
/* Removes DATA/snapshots/NAME and everything in it (VM NAME is gone). */
gboolean agent_snapshot_remove_all (Agent *agent, const char *name,
                                    GError **error);

/* agent-clone.c: CloneVm streams StorageProgress (ProtoHandler, data: the
 * Agent); agent-clone-template.c: MakeTemplate is an AgentVmFunc. */
void agent_clone_vm (ProtoServerCall *call, const ProtobufCMessage *req,
                     gpointer data);
/* NIC hot-plug (agent-nic.c, issue 13): AttachNic and DetachNic, on a
 * running VM live and in its definition, on a stopped one in its
 * definition; the Drover metadata follows. */
ProtobufCMessage *agent_nic_attach (Agent *agent, virConnectPtr conn,
                                    virDomainPtr dom,
                                    const ProtobufCMessage *request,
                                    GError **error);
ProtobufCMessage *agent_nic_detach (Agent *agent, virConnectPtr conn,
                                    virDomainPtr dom,
                                    const ProtobufCMessage *request,
                                    GError **error);
/* agent-guest-agent.c: PingGuestAgent, whether the VM's QEMU guest agent
 * answers guest-ping within a couple of seconds (drill readiness). */
ProtobufCMessage *agent_guest_agent_ping (Agent *agent,
                                          const AgentCaller *caller,
                                          const ProtobufCMessage *request,
                                          GError **error);
ProtobufCMessage *agent_clone_make_template (Agent *agent, virConnectPtr conn,
                                             virDomainPtr dom,
                                             const ProtobufCMessage *request,
                                             GError **error);
/* agent-clone.c: undoes VM NAME, not committed (a clone, a restored
 * backup): its domain, disk, temporary copy, console log, then its clone
 * mark. */
void agent_clone_rollback (Agent *agent, virConnectPtr conn, const char *name);
/* agent-clone-xml.c: the file of DOMXML's disk vda, or NULL. */
char *agent_clone_xml_disk (const char *domxml);
/* agent-clone-xml.c: TRUE when the domain XML DOMXML is recorded as a
 * template (VmStatus.template). */
gboolean agent_clone_xml_is_template (const char *domxml);
/* DOMXML (a domain built by agent_domain_xml_build) with a clone's
 * identity: <uuid> UUID (NULL or "": libvirt picks one), the clone record
 * (SOURCE, the SNAPSHOT it was cloned from or NULL; BASE_VM NULL: a full
 * clone, else linked to BASE_VM's image BASE_IMAGE) and a new random
 * 52:54:00 MAC address on every <interface>. Free with g_free. */
char *agent_clone_xml_identity (const char *domxml, const char *uuid,
                                const char *source, const char *snapshot,
                                const char *base_vm, const char *base_image,
                                GError **error);
/* agent-clone-remote.c: a full clone to another host. PrepareCloneIn,
 * CommitCloneIn and AbortCloneIn are AgentOpFuncs on the destination;
 * CloneOut streams StorageProgress on the source (ProtoHandler, data: the
 * Agent). */
ProtobufCMessage *agent_clone_in_prepare (Agent *agent,
                                          const AgentCaller *caller,
                                          const ProtobufCMessage *request,
                                          GError **error);
ProtobufCMessage *agent_clone_in_commit (Agent *agent,
                                         const AgentCaller *caller,
                                         const ProtobufCMessage *request,
                                         GError **error);
ProtobufCMessage *agent_clone_in_abort (Agent *agent, const AgentCaller *caller,
                                        const ProtobufCMessage *request,
                                        GError **error);
void agent_clone_out (ProtoServerCall *call, const ProtobufCMessage *req,
                      gpointer data);
/* agent-clone-template.c. StartVm's check: AGENT_ERROR_PRECONDITION for a
 * template. */
gboolean agent_clone_check_start (Agent *agent, virDomainPtr dom,
                                  GError **error);
/* DeleteVm's check: AGENT_ERROR_PRECONDITION naming the linked clones
 * (made or being made) whose disks are overlays on DOM's image. */
gboolean agent_clone_check_delete (Agent *agent, virConnectPtr conn,
                                   virDomainPtr dom, GError **error);
/* For operations that would write or remove image PATH of VM VM (e.g.
 * DeleteSnapshot's merges): AGENT_ERROR_PRECONDITION naming the linked
 * clones whose disks are overlays on it (and the clones of VM being
 * made). */
gboolean agent_clone_check_image (Agent *agent, virConnectPtr conn,
                                  const char *vm, const char *path,
                                  GError **error);
/* agent-clone.c. At start, with libvirt connected: removes every clone an
 * earlier run left uncommitted (its domain, disk, temporary copy, console log
 * and mark) and makes the images of templates read-only again. The clone fault
 * points (test builds): clone-fail-after-define (CloneVm fails and rolls back
 * after defining the clone), clone-hold-after-define and clone-hold-copying
 * (CloneVm stands still there for 120 s, for a test to kill the agent). */
void agent_clone_reclaim (Agent *agent, virConnectPtr conn);

G_END_DECLS
