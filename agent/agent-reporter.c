/* The reporter: RegisterHost until it works, then ReportHost every
 * report_interval_ms and soon after each lifecycle event. A reply with
 * reregister (the scheduler restarted and does not know this host) or a
 * NOT_FOUND error sends the agent back to registering.
 *
 * Runs in the agent's GMainContext; host info and VM stats are collected
 * in a worker thread so a slow libvirtd does not stall AgentService
 * replies. One report is in flight at a time; a kick while one is in
 * flight sends another right after it.
 */
#include "agent-dirty-rate.h"

#include <gio/gio.h>

#define REGISTER_RETRY_MS 2000
#define DEBOUNCE_MS 200
#define CALL_TIMEOUT_MS 5000
#define DEFAULT_REPORT_INTERVAL_MS 5000

static void send_register (Agent *agent);
static void send_report (Agent *agent);
static void retry_register_later (Agent *agent);
static gboolean make_client (Agent *agent);

/* Logs the problem FORMAT says once until a different problem or success
 * (FORMAT NULL). */
static void G_GNUC_PRINTF (2, 3)
    note_problem (Agent *agent, const char *format, ...)
{
  g_autofree char *problem = NULL;
  va_list ap;

  if (format)
    {
      va_start (ap, format);
      problem = g_strdup_vprintf (format, ap);
      va_end (ap);
    }
  if (g_strcmp0 (agent->last_problem, problem) == 0)
    return;
  if (problem)
    g_message ("%s", problem);
  else if (agent->last_problem)
    g_message ("reporting to scheduler %s works again",
               agent->config.scheduler);
  g_free (agent->last_problem);
  agent->last_problem = g_steal_pointer (&problem);
}

/* --- collecting (worker thread) ---------------------------------------- */

typedef struct
{
  Drover__V1__HostInfo *host;
  GPtrArray *vms;
} Collected;

static void
collected_free (gpointer data)
{
  Collected *c = data;

  proto_msg_free (c->host);
  if (c->vms)
    g_ptr_array_unref (c->vms);
  g_free (c);
}

/* Whether VM NAME is held by an operation (a migration, a backup, ...):
 * no dirty rate calculation on it then. */
static gboolean
vm_busy (const char *name, gpointer user_data)
{
  Agent *agent = user_data;
  gboolean busy;

  if (name == NULL)
    return TRUE;
  g_mutex_lock (&agent->lock);
  busy = g_hash_table_contains (agent->busy, name);
  g_mutex_unlock (&agent->lock);
  return busy;
}

/* Starts the dirty rate calculations now due (agent-dirty-rate.c); their
 * results come with a later collection. */
static void
start_dirty_rate_calcs (Agent *agent, virConnectPtr conn)
{
  AgentDirtyRate *d = agent_stats_dirty_rate (agent->stats);
  g_autoptr (GPtrArray) due
      = agent_dirty_rate_due (d, g_get_monotonic_time (), vm_busy, agent);

  for (guint i = 0; i < due->len; i++)
    {
      const char *uuid = due->pdata[i];
      virDomainPtr dom = virDomainLookupByUUIDString (conn, uuid);

      if (dom)
        agent_dirty_rate_start (d, dom, uuid);
      else
        agent_dirty_rate_failed (d, uuid, "the domain is gone");
    }
}

static void
collect_thread (GTask *task, gpointer source, gpointer task_data,
                GCancellable *cancellable)
{
  Agent *agent = task_data;
  g_autoptr (virConnect) conn = NULL;
  GError *error = NULL;
  Collected *c;

  conn = agent_libvirt_get (agent->lv, &error);
  if (!conn)
    {
      g_task_return_error (task, error);
      return;
    }
  c = g_new0 (Collected, 1);
  c->host = agent_host_info_for (agent, conn, &error);
  /* stats is only touched here, and one collection runs at a time. */
  if (c->host)
    c->vms = agent_stats_collect (agent->stats, conn, &error);
  if (c->vms)
    start_dirty_rate_calcs (agent, conn);
  if (!c->host || !c->vms)
    {
      collected_free (c);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, c, collected_free);
}

/* One exchange with the scheduler, RegisterHost or ReportHost: host
 * info and VM stats collected in a worker thread, then the call. Holds a
 * reference to the agent until the reply. */
typedef struct
{
  Agent *agent;
  gboolean report; /* ReportHost, else RegisterHost */
  guint64 seq;     /* a report's number, given when its collection began */
} Exchange;

static void replied (const ProtobufCMessage *msg, const GError *error,
                     gpointer data);

static void
exchange_free (Exchange *x)
{
  agent_unref (x->agent);
  g_free (x);
}

/* Ends X: its call is no longer in flight. FALSE (and X freed) when the
 * agent has stopped meanwhile. */
static gboolean
exchange_land (Exchange *x)
{
  if (x->report)
    x->agent->report_in_flight = FALSE;
  else
    x->agent->register_in_flight = FALSE;
  if (!x->agent->stopped)
    return TRUE;
  exchange_free (x);
  return FALSE;
}

static void
collected (GObject *source, GAsyncResult *result, gpointer data)
{
  Exchange *x = data;
  Agent *agent = x->agent;
  g_autoptr (GError) error = NULL;
  Collected *c = g_task_propagate_pointer (G_TASK (result), &error);

  if (!c)
    {
      if (!exchange_land (x))
        return;
      if (x->report)
        note_problem (agent, "cannot collect a host report: %s",
                      error->message);
      else
        {
          note_problem (agent,
                        "cannot register with scheduler %s: %s; retrying",
                        agent->config.scheduler, error->message);
          retry_register_later (agent);
        }
      exchange_free (x);
      return;
    }
  if (agent->stopped)
    {
      collected_free (c);
      exchange_land (x);
      return;
    }
  agent_metrics_update (agent->metrics, c->host,
                        (Drover__V1__VmStatus *const *)c->vms->pdata,
                        c->vms->len);
  /* New TLS material (SIGHUP): no call is in flight now, the next one
   * goes over a new connection. */
  if (agent->sched_stale)
    make_client (agent);
  if (x->report)
    {
      Drover__V1__ReportHostRequest req = DROVER__V1__REPORT_HOST_REQUEST__INIT;

      req.host = c->host;
      req.n_vms = c->vms->len;
      req.vms = (Drover__V1__VmStatus **)c->vms->pdata;
      req.seq = x->seq;
      proto_client_call (agent->sched, DROVER_SCHED_SERVICE,
                         DROVER_SCHED_METHOD_REPORT_HOST, &req.base,
                         CALL_TIMEOUT_MS, replied, x);
    }
  else
    {
      Drover__V1__RegisterHostRequest req
          = DROVER__V1__REGISTER_HOST_REQUEST__INIT;

      req.host = c->host;
      proto_client_call (agent->sched, DROVER_SCHED_SERVICE,
                         DROVER_SCHED_METHOD_REGISTER_HOST, &req.base,
                         CALL_TIMEOUT_MS, replied, x);
    }
  collected_free (c);
}

/* Starts an exchange (REPORT or not): its call is in flight from now. */
static void
exchange_start (Agent *agent, gboolean report)
{
  Exchange *x = g_new0 (Exchange, 1);
  GTask *task;

  x->agent = agent_ref (agent);
  x->report = report;
  /* Numbered before the VMs are read: a command that ends after this
   * (agent_service's replies carry agent->seq + 1) is not in it. */
  if (report)
    x->seq = ++agent->seq;
  if (report)
    agent->report_in_flight = TRUE;
  else
    agent->register_in_flight = TRUE;
  task = g_task_new (NULL, NULL, collected, x);
  g_task_set_task_data (task, agent, NULL);
  g_task_run_in_thread (task, collect_thread);
  g_object_unref (task);
}

/* --- registering ------------------------------------------------------- */

static gboolean
register_retry_cb (gpointer data)
{
  Agent *agent = data;

  agent->register_source = 0;
  send_register (agent);
  return G_SOURCE_REMOVE;
}

static void
retry_register_later (Agent *agent)
{
  if (!agent->stopped && !agent->register_source)
    agent->register_source = agent_source_add (agent->ctx, REGISTER_RETRY_MS,
                                               register_retry_cb, agent, NULL);
}

static gboolean
report_timer_cb (gpointer data)
{
  send_report (data);
  return G_SOURCE_CONTINUE;
}

static void
register_reply (Agent *agent, const Drover__V1__RegisterHostReply *reply,
                const GError *error)
{
  if (error)
    {
      note_problem (
          agent, "cannot register with scheduler %s: %s; retrying every %d ms",
          agent->config.scheduler, error->message, REGISTER_RETRY_MS);
      retry_register_later (agent);
      return;
    }
  agent->registered = TRUE;
  agent->report_interval_ms = reply->report_interval_ms;
  if (!agent->report_interval_ms)
    agent->report_interval_ms = agent->config.report_interval_ms;
  if (!agent->report_interval_ms)
    agent->report_interval_ms = DEFAULT_REPORT_INTERVAL_MS;
  g_message ("registered with scheduler %s; reporting every %u ms",
             agent->config.scheduler, agent->report_interval_ms);
  g_clear_pointer (&agent->last_problem, g_free);
  agent_source_clear (agent->ctx, &agent->report_source);
  agent->report_source = agent_source_add (
      agent->ctx, agent->report_interval_ms, report_timer_cb, agent, NULL);
  send_report (agent);
}

static void
send_register (Agent *agent)
{
  if (agent->stopped || agent->registered || agent->register_in_flight)
    return;
  exchange_start (agent, FALSE);
}

static void
become_unregistered (Agent *agent)
{
  agent->registered = FALSE;
  agent_source_clear (agent->ctx, &agent->report_source);
  send_register (agent);
}

/* --- reporting --------------------------------------------------------- */

static void
report_reply (Agent *agent, const Drover__V1__ReportHostReply *reply,
              const GError *error)
{
  if (error && g_error_matches (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND))
    {
      g_message ("scheduler %s does not know this host; registering again",
                 agent->config.scheduler);
      become_unregistered (agent);
    }
  else if (error)
    {
      note_problem (agent, "cannot report to scheduler %s: %s",
                    agent->config.scheduler, error->message);
    }
  else if (reply->reregister)
    {
      g_message ("scheduler %s asks this host to register again",
                 agent->config.scheduler);
      become_unregistered (agent);
    }
  else
    {
      note_problem (agent, NULL);
    }
  if (agent->registered && agent->report_pending)
    send_report (agent);
}

/* The end of an exchange, in the main context. */
static void
replied (const ProtobufCMessage *msg, const GError *error, gpointer data)
{
  Exchange *x = data;

  if (!exchange_land (x))
    return;
  if (x->report)
    report_reply (x->agent, (const void *)msg, error);
  else
    register_reply (x->agent, (const void *)msg, error);
  exchange_free (x);
}

static void
send_report (Agent *agent)
{
  if (agent->stopped || !agent->registered)
    return;
  if (agent->report_in_flight)
    {
      agent->report_pending = TRUE;
      return;
    }
  agent->report_pending = FALSE;
  exchange_start (agent, TRUE);
}

static gboolean
debounce_cb (gpointer data)
{
  Agent *agent = data;

  agent->debounce_source = 0;
  send_report (agent);
  return G_SOURCE_REMOVE;
}

void
agent_reporter_kick (Agent *agent)
{
  if (agent->stopped || !agent->sched || agent->debounce_source)
    return;
  agent->debounce_source
      = agent_source_add (agent->ctx, DEBOUNCE_MS, debounce_cb, agent, NULL);
}

static gboolean
kick_cb (gpointer data)
{
  agent_reporter_kick (data);
  return G_SOURCE_REMOVE;
}

void
agent_reporter_kick_from_thread (Agent *agent)
{
  agent_source_add (agent->ctx, 0, kick_cb, agent_ref (agent),
                    (GDestroyNotify)agent_unref);
}

/* (Re-)creates the client to the scheduler with the current TLS
 * material; on failure the old one, if any, stays. */
static gboolean
make_client (Agent *agent)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentTls) tls = agent_tls_get (agent);
  ProtoClient *client
      = proto_client_new (agent->config.scheduler, tls ? tls->tls : NULL,
                          PROTO_ROLE_SCHEDULER, agent->ctx, &error);

  agent->sched_stale = FALSE;
  if (!client)
    {
      g_message ("cannot create a client for scheduler %s: %s",
                 agent->config.scheduler, error->message);
      return FALSE;
    }
  g_clear_pointer (&agent->sched, proto_client_free);
  agent->sched = client;
  return TRUE;
}

void
agent_reporter_start (Agent *agent)
{
  if (make_client (agent))
    send_register (agent);
}

void
agent_reporter_stop (Agent *agent)
{
  agent_source_clear (agent->ctx, &agent->report_source);
  agent_source_clear (agent->ctx, &agent->register_source);
  agent_source_clear (agent->ctx, &agent->debounce_source);
}
