/* libdrover-scheduler public API: the central scheduler. (Not "sched.h":
 * that would shadow the system <sched.h> pthread.h includes.)
 *
 * SchedService serves drover.v1.SchedulerService: agents register and
 * report (host registry, liveness, VM inventory), operators create and
 * drive VMs (placement, forwarding to the VM's agent, jobs) and live-
 * migrate them (MigrateVm: destination choice, cost model, per-host
 * limits, PrepareIncoming + MigrateOut on the agents). State lives
 * in an embedded store (SQLite, DIR/drover.db) and survives restarts.
 */
#pragma once

#include <glib.h>

#include "proto.h"

G_BEGIN_DECLS

#define SCHED_ERROR (sched_error_quark ())
GQuark sched_error_quark (void);

/* Each code maps onto a gRPC status at the service boundary
 * (sched_error_to_status, the one place that maps them). */
typedef enum
{
  SCHED_ERROR_FAILED,       /* INTERNAL */
  SCHED_ERROR_NOT_FOUND,    /* NOT_FOUND */
  SCHED_ERROR_EXISTS,       /* ALREADY_EXISTS */
  SCHED_ERROR_INVALID,      /* INVALID_ARGUMENT */
  SCHED_ERROR_NO_CAPACITY,  /* RESOURCE_EXHAUSTED */
  SCHED_ERROR_PRECONDITION, /* FAILED_PRECONDITION */
  SCHED_ERROR_UNAVAILABLE,  /* UNAVAILABLE */
  SCHED_ERROR_STORE,        /* INTERNAL: the state store failed */
  SCHED_ERROR_CORRUPT,      /* DATA_LOSS: the state store is unreadable */
} SchedError;

/* The gRPC status for ERROR: PROTO_ERROR codes as they are, SCHED_ERROR
 * codes mapped, anything else INTERNAL. */
ProtoStatus sched_error_to_status (const GError *error);

#define SCHED_DEFAULT_REPORT_INTERVAL_MS 5000
#define SCHED_DEFAULT_CPU_OVERCOMMIT 4.0
#define SCHED_DEFAULT_MEMORY_OVERCOMMIT 1.0
#define SCHED_DEFAULT_MEMORY_RESERVE (256 * G_GUINT64_CONSTANT (1024) * 1024)

/* Live migration: the link speed the cost model assumes between hosts
 * (bytes/s), and how many migrations may leave / arrive at one host at
 * once (more wait in a queue). */
#define SCHED_DEFAULT_LINK_BANDWIDTH (G_GUINT64_CONSTANT (1024) * 1024 * 1024)
#define SCHED_DEFAULT_MAX_MIGRATIONS 2

/* Finished jobs are kept this long, and at most this many of them. */
#define SCHED_DEFAULT_JOB_RETENTION_MS                                         \
  (7 * 24 * 3600 * G_GINT64_CONSTANT (1000))
#define SCHED_DEFAULT_MAX_JOBS 1000

typedef struct
{
  const char *state_dir;    /* holds drover.db; created if missing */
  guint report_interval_ms; /* what agents are told; liveness = 3 of them */
  double cpu_overcommit;    /* vCPUs per host CPU placement allows */
  double memory_overcommit; /* VM memory per byte of host memory (less the
                             * reserve); 0 = SCHED_DEFAULT_MEMORY_OVERCOMMIT */
  guint64 memory_reserve;   /* bytes of each host kept from VMs */
  guint64 link_bandwidth;   /* 0 = SCHED_DEFAULT_LINK_BANDWIDTH */
  guint max_migrations_out; /* 0 = SCHED_DEFAULT_MAX_MIGRATIONS */
  guint max_migrations_in;  /* 0 = SCHED_DEFAULT_MAX_MIGRATIONS */
  gint64 job_retention_ms;  /* 0 = SCHED_DEFAULT_JOB_RETENTION_MS */
  guint max_jobs;           /* 0 = SCHED_DEFAULT_MAX_JOBS */
  const char *metrics;      /* /metrics address; NULL: none */
  gboolean metrics_tls;     /* /metrics over HTTPS with the service's TLS */
  /* The balancer (issue 15). */
  const char *balance_mode; /* off, recommend, auto; NULL: the stored one */
  guint balance_interval_s; /* 0 = SCHED_BALANCE_DEFAULT_INTERVAL_S */
  double balance_threshold; /* 0 = the planner's default */
  guint balance_cooldown_s; /* 0 = SCHED_BALANCE_DEFAULT_COOLDOWN_S */
  /* Disaster-recovery schedules (issue 16): runs at work at once. */
  guint dr_jobs_per_host; /* 0 = SCHED_SCHEDULES_DEFAULT_PER_HOST */
  guint dr_jobs_per_repo; /* 0 = SCHED_SCHEDULES_DEFAULT_PER_REPO */
} SchedConfig;

typedef struct _SchedService SchedService;

/* Opens the store in CONFIG->state_dir and prepares the service. TLS NULL
 * means insecure (server and agent clients); otherwise it is copied and
 * used for both: the scheduler's certificate is its client certificate
 * towards agents too. Runs in the thread-default main context. */
SchedService *sched_service_new (const SchedConfig *config, const ProtoTls *tls,
                                 GError **error);

/* Binds LISTEN ("127.0.0.1:7400"), starts serving and the liveness timer,
 * and /metrics when the config names an address. */
gboolean sched_service_start (SchedService *svc, const char *listen,
                              GError **error);
int sched_service_get_port (SchedService *svc);
/* The port of /metrics; -1 when not serving it. */
int sched_service_get_metrics_port (SchedService *svc);

/* Serves the web dashboard on ADDR ("127.0.0.1:9200"; port 0 picks one):
 * HTTPS with the service's certificate when it has TLS, else plain HTTP.
 * See sched-dashboard.h. */
gboolean sched_service_listen_http (SchedService *svc, const char *addr,
                                    GError **error);
/* Its port; -1 when not serving it. */
int sched_service_get_http_port (SchedService *svc);

/* Replaces the certificate, key, CA and CRL with TLS (copied) on a
 * started TLS service: new handshakes and every call from now on are
 * checked with it (proto_server_reload_tls), open connections stay; agent
 * clients connect anew with it while their calls in flight finish on the
 * old connections. FALSE with ERROR and nothing changed if TLS is not
 * usable or the service is insecure (SCHED_ERROR_PRECONDITION). */
gboolean sched_service_reload_tls (SchedService *svc, const ProtoTls *tls,
                                   GError **error);

/* Stops serving: open calls are cancelled (and finished), watch streams
 * end. Idempotent; sched_service_free calls it. */
void sched_service_stop (SchedService *svc);
void sched_service_free (SchedService *svc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedService, sched_service_free)

G_END_DECLS
