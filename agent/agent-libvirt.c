/* The agent's libvirt connection: libvirt's default event loop in a
 * thread of its own, keepalive, a close callback, reconnection every
 * second, and lifecycle events handed to the agent's GMainContext.
 *
 * libvirt's default event implementation is GLib's *global default*
 * GMainContext: virEventRunDefaultImpl() iterates it. So the event thread
 * owns the default context, and the agent must run on a context of its
 * own (agent_libvirt_new refuses the default one).
 *
 * Threads: libvirt's event thread runs the close and lifecycle callbacks;
 * they only queue idle sources on the GMainContext. Reconnection and
 * callback (de)registration happen in the GMainContext. Worker threads
 * take connection references with agent_libvirt_get().
 */
#include "agent-private.h"

#define RECONNECT_INTERVAL_MS 1000
/* Keepalive: a ping every 5 s, 3 unanswered pings close the connection. */
#define KEEPALIVE_INTERVAL 5
#define KEEPALIVE_COUNT 3

struct _AgentLibvirt
{
  gint ref_count;
  char *uri;
  GMainContext *ctx;
  AgentLifecycleFunc lifecycle;
  AgentConnectedFunc connected;
  gpointer user_data;

  GMutex lock;
  virConnectPtr conn;     /* guarded by lock; written in ctx only */
  int lifecycle_id;       /* ctx only */
  guint reconnect_source; /* ctx only */
  gboolean freed;         /* ctx only: no callbacks after free */
  gboolean logged_down;   /* ctx only: "libvirt gone" logged once */
};

static AgentLibvirt *
lv_ref (AgentLibvirt *lv)
{
  g_atomic_int_inc (&lv->ref_count);
  return lv;
}

static void
lv_unref (gpointer data)
{
  AgentLibvirt *lv = data;

  if (!g_atomic_int_dec_and_test (&lv->ref_count))
    return;
  g_mutex_clear (&lv->lock);
  g_main_context_unref (lv->ctx);
  g_free (lv->uri);
  g_free (lv);
}

void
agent_libvirt_error (GError **error, const char *format, ...)
{
  virErrorPtr err = virGetLastError ();
  g_autofree char *prefix = NULL;
  AgentError code = AGENT_ERROR_FAILED;
  va_list ap;

  va_start (ap, format);
  prefix = g_strdup_vprintf (format, ap);
  va_end (ap);
  if (err)
    {
      switch (err->code)
        {
        case VIR_ERR_NO_DOMAIN:
          code = AGENT_ERROR_NOT_FOUND;
          break;
        case VIR_ERR_OPERATION_INVALID:
          code = AGENT_ERROR_PRECONDITION;
          break;
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_INVALID_CONN:
        case VIR_ERR_AUTH_CANCELLED:
          code = AGENT_ERROR_UNAVAILABLE;
          break;
        case VIR_ERR_SYSTEM_ERROR:
        case VIR_ERR_RPC:
          if (err->domain == VIR_FROM_RPC || err->domain == VIR_FROM_REMOTE)
            code = AGENT_ERROR_UNAVAILABLE;
          break;
        default:
          break;
        }
    }
  g_set_error (error, AGENT_ERROR, code, "%s: %s", prefix,
               err && err->message ? err->message : "unknown libvirt error");
}

static void
quiet_error_func (void *opaque, virErrorPtr err)
{
  /* Errors are read with virGetLastError and returned as GError. */
}

static gpointer
event_thread (gpointer data)
{
  for (;;)
    {
      if (virEventRunDefaultImpl () < 0)
        g_usleep (100 * 1000);
    }
  return NULL;
}

void
agent_libvirt_init (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once))
    {
      virSetErrorFunc (NULL, quiet_error_func);
      /* Must precede every virConnectOpen for events and keepalive to work. */
      virEventRegisterDefaultImpl ();
      virInitialize ();
      /* The loop runs for the life of the process, like libvirt's own. */
      g_thread_unref (
          g_thread_new ("drover-libvirt-events", event_thread, NULL));
      g_once_init_leave (&once, 1);
    }
}

/* --- delivering into the GMainContext ---------------------------------- */

/* What libvirt's event thread hands to the GMainContext: a lifecycle
 * event of domain NAME, or the close of CONN. */
typedef struct
{
  AgentLibvirt *lv;
  virConnectPtr conn; /* close: our own reference, only compared */
  char *name;         /* lifecycle */
  int event;
  int detail;
} LvEvent;

static void
lv_event_free (gpointer data)
{
  LvEvent *ev = data;

  if (ev->conn)
    virConnectClose (ev->conn);
  lv_unref (ev->lv);
  g_free (ev->name);
  g_free (ev);
}

/* Runs DISPATCH (EV) in LV's context (any thread). */
static void
lv_event_queue (AgentLibvirt *lv, LvEvent *ev, GSourceFunc dispatch)
{
  ev->lv = lv_ref (lv);
  agent_source_add (lv->ctx, 0, dispatch, ev, lv_event_free);
}

static gboolean
lifecycle_dispatch (gpointer data)
{
  LvEvent *ev = data;

  if (!ev->lv->freed && ev->lv->lifecycle)
    ev->lv->lifecycle (ev->name, ev->event, ev->detail, ev->lv->user_data);
  return G_SOURCE_REMOVE;
}

static int
lifecycle_cb (virConnectPtr conn, virDomainPtr dom, int event, int detail,
              void *opaque)
{
  LvEvent *ev = g_new0 (LvEvent, 1);

  ev->name = g_strdup (virDomainGetName (dom));
  ev->event = event;
  ev->detail = detail;
  lv_event_queue (opaque, ev, lifecycle_dispatch);
  return 0;
}

static gboolean reconnect_cb (gpointer data);

static void
schedule_reconnect (AgentLibvirt *lv)
{
  if (lv->reconnect_source || lv->freed)
    return;
  lv->reconnect_source = agent_source_add (lv->ctx, RECONNECT_INTERVAL_MS,
                                           reconnect_cb, lv_ref (lv), lv_unref);
}

static void close_cb (virConnectPtr conn, int reason, void *opaque);

/* Drops the current connection (ctx only). */
static void
drop_connection (AgentLibvirt *lv)
{
  virConnectPtr conn;

  g_mutex_lock (&lv->lock);
  conn = g_steal_pointer (&lv->conn);
  g_mutex_unlock (&lv->lock);
  if (!conn)
    return;
  if (lv->lifecycle_id >= 0)
    (void)virConnectDomainEventDeregisterAny (conn, lv->lifecycle_id);
  lv->lifecycle_id = -1;
  (void)virConnectUnregisterCloseCallback (conn, close_cb);
  virConnectClose (conn);
}

static gboolean
close_dispatch (gpointer data)
{
  LvEvent *ev = data;
  AgentLibvirt *lv = ev->lv;
  gboolean current;

  if (lv->freed)
    return G_SOURCE_REMOVE;
  g_mutex_lock (&lv->lock);
  current = lv->conn == ev->conn;
  g_mutex_unlock (&lv->lock);
  if (!current)
    return G_SOURCE_REMOVE;
  g_message ("libvirt connection %s closed; reconnecting", lv->uri);
  lv->logged_down = TRUE;
  drop_connection (lv);
  schedule_reconnect (lv);
  return G_SOURCE_REMOVE;
}

static void
close_cb (virConnectPtr conn, int reason, void *opaque)
{
  LvEvent *ev = g_new0 (LvEvent, 1);

  /* Our own reference: the connection may be closed by the time the
   * idle runs. Only compared, never used for calls. */
  virConnectRef (conn);
  ev->conn = conn;
  lv_event_queue (opaque, ev, close_dispatch);
}

/* Opens and sets up a connection (ctx only). */
static gboolean
open_connection (AgentLibvirt *lv, GError **error)
{
  virConnectPtr conn = virConnectOpen (lv->uri);
  int id;

  if (!conn)
    {
      g_autoptr (GError) local = NULL;

      agent_libvirt_error (&local, "cannot connect to libvirt at %s", lv->uri);
      local->code = AGENT_ERROR_UNAVAILABLE;
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  /* Keepalive is a remote-driver feature; local drivers say "unsupported"
   * (1) or fail, and need none. */
  (void)virConnectSetKeepAlive (conn, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT);
  /* No reference for libvirt here: its free callback does not run on
   * unregister (libvirt 9.0), and drop_connection always unregisters
   * before the last reference can go. */
  (void)virConnectRegisterCloseCallback (conn, close_cb, lv, NULL);
  id = virConnectDomainEventRegisterAny (
      conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
      VIR_DOMAIN_EVENT_CALLBACK (lifecycle_cb), lv_ref (lv), lv_unref);
  if (id < 0)
    {
      lv_unref (lv);
      agent_libvirt_error (error, "cannot register for lifecycle events on %s",
                           lv->uri);
      (void)virConnectUnregisterCloseCallback (conn, close_cb);
      virConnectClose (conn);
      return FALSE;
    }
  lv->lifecycle_id = id;
  g_mutex_lock (&lv->lock);
  lv->conn = conn;
  g_mutex_unlock (&lv->lock);
  if (lv->logged_down)
    g_message ("libvirt connection %s is back", lv->uri);
  lv->logged_down = FALSE;
  if (lv->connected)
    lv->connected (lv->user_data);
  return TRUE;
}

static gboolean
reconnect_cb (gpointer data)
{
  AgentLibvirt *lv = data;
  g_autoptr (GError) error = NULL;

  if (lv->freed)
    return G_SOURCE_REMOVE;
  if (open_connection (lv, &error))
    {
      lv->reconnect_source = 0;
      return G_SOURCE_REMOVE;
    }
  if (!lv->logged_down)
    {
      g_message ("%s; retrying every %d ms", error->message,
                 RECONNECT_INTERVAL_MS);
      lv->logged_down = TRUE;
    }
  return G_SOURCE_CONTINUE;
}

AgentLibvirt *
agent_libvirt_new (const char *uri, GMainContext *ctx,
                   AgentLifecycleFunc lifecycle, AgentConnectedFunc connected,
                   gpointer user_data)
{
  AgentLibvirt *lv;

  agent_libvirt_init ();
  if (!ctx)
    ctx = g_main_context_get_thread_default ();
  /* The default context belongs to libvirt's event thread: callbacks
   * queued there would run in that thread. */
  g_return_val_if_fail (ctx && ctx != g_main_context_default (), NULL);
  lv = g_new0 (AgentLibvirt, 1);
  lv->ref_count = 1;
  lv->uri = g_strdup (uri);
  lv->ctx = g_main_context_ref (ctx);
  lv->lifecycle = lifecycle;
  lv->connected = connected;
  lv->user_data = user_data;
  lv->lifecycle_id = -1;
  g_mutex_init (&lv->lock);
  return lv;
}

gboolean
agent_libvirt_connect (AgentLibvirt *lv, GError **error)
{
  if (open_connection (lv, error))
    return TRUE;
  lv->logged_down = TRUE;
  schedule_reconnect (lv);
  return FALSE;
}

virConnectPtr
agent_libvirt_get (AgentLibvirt *lv, GError **error)
{
  virConnectPtr conn;

  g_mutex_lock (&lv->lock);
  conn = lv->conn;
  if (conn)
    virConnectRef (conn);
  g_mutex_unlock (&lv->lock);
  if (!conn)
    g_set_error (error, AGENT_ERROR, AGENT_ERROR_UNAVAILABLE,
                 "libvirt at %s is not connected", lv->uri);
  return conn;
}

void
agent_libvirt_free (AgentLibvirt *lv)
{
  if (!lv)
    return;
  lv->freed = TRUE;
  agent_source_clear (lv->ctx, &lv->reconnect_source);
  drop_connection (lv);
  lv_unref (lv);
}

gboolean
agent_domain_job_is (virDomainPtr dom, int operation)
{
  virTypedParameterPtr params = NULL;
  int n = 0, type = VIR_DOMAIN_JOB_NONE, op = 0;
  gboolean out;

  if (virDomainGetJobStats (dom, &type, &params, &n, 0) < 0)
    return FALSE;
  (void)virTypedParamsGetInt (params, n, VIR_DOMAIN_JOB_OPERATION, &op);
  out = type != VIR_DOMAIN_JOB_NONE && op == operation;
  virTypedParamsFree (params, n);
  return out;
}
