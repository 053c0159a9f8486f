/* libdrover-agent: the node agent. It drives one libvirt connection,
 * reports the host and its Drover VMs to the scheduler and serves
 * AgentService. Everything it does is driven from one GMainContext. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define AGENT_ERROR (agent_error_quark ())
GQuark agent_error_quark (void);

/* Each code maps to one gRPC status (agent_error_to_status). */
typedef enum
{
  AGENT_ERROR_FAILED,       /* INTERNAL */
  AGENT_ERROR_INVALID,      /* INVALID_ARGUMENT */
  AGENT_ERROR_NOT_FOUND,    /* NOT_FOUND: no such (Drover) VM here */
  AGENT_ERROR_EXISTS,       /* ALREADY_EXISTS: a VM of that name, or a
                             * migration job id already expected */
  AGENT_ERROR_PRECONDITION, /* FAILED_PRECONDITION: wrong state for that
                             * (a running VM, another accelerator) */
  AGENT_ERROR_NO_RESOURCES, /* RESOURCE_EXHAUSTED: not enough memory (disk
                             * space is STOR_ERROR_NO_SPACE) */
  AGENT_ERROR_BUSY,         /* ABORTED: another operation on that VM */
  AGENT_ERROR_UNAVAILABLE,  /* UNAVAILABLE: libvirt is not connected, or
                             * this agent does not migrate */
  AGENT_ERROR_NOT_DROVER,   /* NOT_FOUND: a domain without Drover metadata */
} AgentError;

typedef enum
{
  AGENT_ACCEL_AUTO, /* kvm when /dev/kvm is usable, else tcg */
  AGENT_ACCEL_KVM,  /* <domain type='kvm'> */
  AGENT_ACCEL_TCG,  /* <domain type='qemu'> */
  AGENT_ACCEL_TEST, /* <domain type='test'>: libvirt's test driver only */
} AgentAccel;

/* Parses "kvm", "tcg" or "auto" (and "test", for test:///default). */
gboolean agent_accel_parse (const char *str, AgentAccel *accel, GError **error);
const char *agent_accel_to_string (AgentAccel accel);

typedef struct
{
  char *name;      /* host name, proto_name_validate rules */
  char *listen;    /* AgentService address, "127.0.0.2:7401" */
  char *scheduler; /* scheduler address; NULL: do not report (tests) */
  char *libvirt_uri;
  AgentAccel accel;
  char *data_dir;
  char *image_dir; /* kernels and initrds VMs may boot; NULL = DATA/images */
  char *tls_dir;   /* ca.pem, cert.pem, key.pem, crl.pem (optional); NULL
                      with insecure */
  gboolean insecure;
  guint report_interval_ms; /* used when the scheduler names none; 0 = 5000 */
  guint16 migration_port;   /* migration listener on the listen IP; 0 = any */
  char *metrics_listen;     /* /metrics address; NULL: none */
  gboolean metrics_tls;     /* /metrics over HTTPS with the agent's
                               certificate (needs tls_dir) */
  char **backup_repos;      /* "NAME=PATH" each: the backup repositories
                               the wire may name (by NAME); NULL: none */
  char **backup_repo_roots; /* existing directories under which AttachRepo
                               may open a repository; NULL: none */
} AgentConfig;

typedef struct _Agent Agent;

/* Checks CONFIG (copied), resolves the accelerator, creates DATA/disks,
 * DATA/console and (by default) the image directory, readable by root and
 * QEMU's group only, loads TLS material. Nothing runs yet. CTX NULL is
 * the thread-default context; all callbacks run there. It must not be
 * GLib's global default context, which libvirt's event loop thread
 * iterates: create one and push it as thread-default. */
Agent *agent_new (const AgentConfig *config, GMainContext *ctx, GError **error);

/* Connects to libvirt (and keeps reconnecting when it goes away), starts
 * serving AgentService and starts reporting to the scheduler. Fails when
 * the listen address cannot be bound; a libvirt or scheduler that is
 * not there yet is retried in the background instead. */
gboolean agent_start (Agent *agent, GError **error);

/* Port AgentService listens on (useful with port 0). */
int agent_get_port (Agent *agent);
/* Port /metrics listens on; -1 without config.metrics_listen. */
int agent_get_metrics_port (Agent *agent);

/* Stops serving and reporting; in-flight operations finish in the
 * background. Idempotent. */
void agent_stop (Agent *agent);

/* Loads the certificate, key, CA and CRL again from the TLS directory
 * (SIGHUP): AgentService's new handshakes and every call from now on use
 * them, so do new migration channels and the next connection to the
 * scheduler (the client is re-created when no call is in flight);
 * connections already open stay. FALSE with ERROR, and nothing changed,
 * when the files do not load. TRUE and nothing done when insecure. Main
 * context only. */
gboolean agent_reload_tls (Agent *agent, GError **error);

Agent *agent_ref (Agent *agent);
void agent_unref (Agent *agent);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Agent, agent_unref)

G_END_DECLS
