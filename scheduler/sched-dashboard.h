/* SchedDashboard: the scheduler's web dashboard (sched-dashboard.c, the
 * page's data in sched-dashboard-json.c, the page itself in dashboard/).
 *
 * Served on --http-listen (HTTPS with the scheduler's certificate when it
 * has one). Login: an operator or viewer client certificate, or a
 * one-time token from CreateDashboardToken (operator only), which the
 * page takes as /?token=... and turns into a session cookie. Without a
 * login the API answers 401 and the page shows only how to log in.
 * Viewers look; operators may also start a migration, a drain, a
 * snapshot or a backup (each through the scheduler's own entry point).
 */
#pragma once

#include <json-glib/json-glib.h>

#include "proto-json.h"
#include "sched-private.h"

G_BEGIN_DECLS

typedef struct _SchedDashboard SchedDashboard;

/* Token lifetime: default and most a caller may ask for. */
#define SCHED_DASHBOARD_TOKEN_TTL_S 300
#define SCHED_DASHBOARD_TOKEN_TTL_MAX_S 3600
/* A session (the cookie a token or certificate login sets) lasts this. */
#define SCHED_DASHBOARD_SESSION_TTL_S (12 * 3600)
/* Most tokens and sessions kept at once; the oldest go first. */
#define SCHED_DASHBOARD_MAX_TOKENS 64
#define SCHED_DASHBOARD_MAX_SESSIONS 256
/* Imbalance samples kept for the chart (one per report interval or so). */
#define SCHED_DASHBOARD_HISTORY 720

/* --- tokens and sessions (pure) ---------------------------------------- */

/* One-time login tokens and the sessions they open. CLOCK: unix ms (the
 * service's is its registry's). */
typedef struct _SchedLogins SchedLogins;

SchedLogins *sched_logins_new (gint64 (*clock) (gpointer), gpointer data);
void sched_logins_free (SchedLogins *logins);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedLogins, sched_logins_free)

/* A new token for ROLE and NAME (who asked), valid TTL_S seconds (0 =
 * default, capped at the maximum). *EXPIRES_MS gets when. Caller frees. */
char *sched_logins_new_token (SchedLogins *logins, ProtoRole role,
                              const char *name, guint ttl_s,
                              gint64 *expires_ms);
/* Uses TOKEN up: a new session id (caller frees) for the token's role
 * and name, or NULL if the token is unknown, used or expired. */
char *sched_logins_redeem (SchedLogins *logins, const char *token);
/* A new session for ROLE and NAME (certificate login). Caller frees. */
char *sched_logins_new_session (SchedLogins *logins, ProtoRole role,
                                const char *name);
/* The role and name (borrowed) of session ID; FALSE if unknown or
 * expired. */
gboolean sched_logins_session (SchedLogins *logins, const char *id,
                               ProtoRole *role, const char **name);

/* CreateDashboardToken (an operator's token); USER_DATA is the
 * SchedService. */
void sched_logins_handle_token (ProtoServerCall *call,
                                const ProtobufCMessage *request,
                                gpointer user_data);

/* --- imbalance (pure) -------------------------------------------------- */

/* The cluster's imbalance: how far the up hosts' normalised loads spread,
 * CPU (vCPUs placed / (CPUs x overcommit)) and memory (placed / (total -
 * reserve)): the population standard deviation over the hosts of each,
 * combined as sqrt ((var_cpu + var_mem) / 2). 0 = even, 0.5 = half the
 * hosts full and half empty. 0 with fewer than two up hosts. HOSTS and
 * VMS are SchedHost / SchedVm. */
double sched_imbalance (const SchedPolicy *policy, GPtrArray *hosts,
                        GPtrArray *vms);
/* VMS (SchedVm) by host: host name -> GPtrArray of the VMs placed there;
 * names and VMs are borrowed from VMS. What sched_host_usage of one host
 * needs to see, found without a pass over every VM (a cluster of 1,000
 * hosts has thousands). */
GHashTable *sched_vms_by_host (GPtrArray *vms);

/* --- JSON (sched-dashboard-json.c) ------------------------------------ */

/* One point of the imbalance chart. */
typedef struct
{
  gint64 time_ms;
  double value;
} SchedSample;

/* EVENT as one line of JSON. Caller frees. */
char *sched_dashboard_event_json (const Drover__V1__Event *event);
/* The page's whole state as JSON: who is looking (ROLE, NAME), hosts with
 * their loads, VMs, jobs not over, the last finished migrations with
 * predicted and measured times, the imbalance now and HISTORY
 * (SchedSample). NULL with ERROR if the store fails. Caller frees. */
char *sched_dashboard_state_json (SchedService *svc, GArray *history,
                                  ProtoRole role, const char *name,
                                  GError **error);

/* --- the dashboard ----------------------------------------------------- */

SchedDashboard *sched_dashboard_new (SchedService *svc);
void sched_dashboard_free (SchedDashboard *dash);

/* Serves the dashboard on ADDR ("127.0.0.1:9200"; port 0 picks one). */
gboolean sched_dashboard_listen (SchedDashboard *dash, const char *addr,
                                 GError **error);
int sched_dashboard_get_port (SchedDashboard *dash);
/* Ends the event streams and stops serving. */
void sched_dashboard_stop (SchedDashboard *dash);

/* Takes an imbalance sample now (the service's liveness timer calls it). */
void sched_dashboard_sample (SchedDashboard *dash);

G_END_DECLS
