/* SchedDashboard: the web dashboard's HTTP side (see sched-dashboard.h).
 *
 *   GET  /                the page (static: it holds nothing of the
 *                         cluster); /?token=T logs in once: a session
 *                         cookie and a redirect to /
 *   GET  /static/NAME     its CSS and JavaScript (GResource)
 *   GET  /api/state       hosts, VMs, jobs, migrations, imbalance (JSON)
 *   GET  /api/events      server-sent events: the event stream
 *   POST /api/migrate     {"vm": NAME, "to": HOST or ""}
 *   POST /api/drain       {"host": NAME}
 *   POST /api/snapshot    {"vm": NAME, "name": SNAPSHOT} (disk-only)
 *   POST /api/backup      {"vm": NAME, "repo": REPO or ""}
 *                         the actions: operators only, JSON only; each
 *                         calls the scheduler's own entry point and
 *                         answers 202 with the job (400 bad input, 403 not
 *                         an operator, 404 unknown VM or host, 409 busy)
 *
 * Every /api/ request needs a login: the session cookie, or a client
 * certificate of an operator or viewer (checked against the cluster's CA
 * and CRL). Without one it is 401 and the page shows how to log in.
 *
 * An event stream is a chunked response the scheduler appends to; it is
 * a sink of SchedEvents, whose bound on queued events keeps a browser
 * that does not read from holding more than that in memory ("wrote-chunk"
 * counts what left). At most SCHED_DASHBOARD_MAX_STREAMS are open.
 */
#include "sched-dashboard.h"

#include "proto-http.h"
#include "sched-drain.h"

#include <string.h>

#define SESSION_COOKIE "drover_session"
#define SCHED_DASHBOARD_MAX_STREAMS 64
#define RESOURCE_PREFIX "/org/drover/dashboard/"

GResource *sched_dashboard_get_resource (void);

struct _SchedDashboard
{
  SchedService *svc; /* borrowed */
  ProtoHttp *http;   /* from listen */
  gboolean https;
  GArray *history; /* SchedSample, oldest first */
  GSource *sampler;
  GPtrArray *streams; /* Stream *, open event streams */
};

/* --- login -------------------------------------------------------------- */

/* The caller's role and name: the session cookie's, else a valid client
 * certificate's. FALSE: nobody (answer 401). */
static gboolean
who (SchedDashboard *dash, SoupServerMessage *msg, ProtoRole *role, char **name)
{
  const char *header = soup_message_headers_get_one (
      soup_server_message_get_request_headers (msg), "Cookie");
  g_autoptr (GHashTable) cookies = NULL;
  const char *session_name = NULL;

  if (header != NULL
      && (cookies = soup_header_parse_semi_param_list (header)) != NULL
      && sched_logins_session (dash->svc->logins,
                               g_hash_table_lookup (cookies, SESSION_COOKIE),
                               role, &session_name))
    {
      *name = g_strdup (session_name);
      return TRUE;
    }
  return proto_http_peer_identity (dash->http, msg, role, name)
         && (*role & (PROTO_ROLE_OPERATOR | PROTO_ROLE_VIEWER)) != 0;
}

static void
reply_json (SoupServerMessage *msg, guint status, char *json_take)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  soup_message_headers_replace (h, "Cache-Control", "no-store");
  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE,
                                    json_take, strlen (json_take));
}

static void
reply_error (SoupServerMessage *msg, guint status, const char *message)
{
  ProtoJson *json = proto_json_new (FALSE);

  proto_json_begin_object (json);
  proto_json_key (json, "error");
  proto_json_string (json, message);
  proto_json_end_object (json);
  reply_json (msg, status, proto_json_free_to_string (json));
}

/* Fails MSG with 401 unless someone is logged in. */
static gboolean
require_login (SchedDashboard *dash, SoupServerMessage *msg, ProtoRole *role,
               char **name)
{
  if (who (dash, msg, role, name))
    return TRUE;
  reply_error (msg, SOUP_STATUS_UNAUTHORIZED,
               "not logged in: open /?token=TOKEN with a token from "
               "`droverctl dashboard-token`, or present an operator or "
               "viewer client certificate");
  return FALSE;
}

/* --- the page ------------------------------------------------------------ */

static void
set_page_headers (SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);

  /* Our own files only: no inline script, nothing from elsewhere. */
  soup_message_headers_replace (
      h, "Content-Security-Policy",
      "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  soup_message_headers_replace (h, "X-Content-Type-Options", "nosniff");
  soup_message_headers_replace (h, "X-Frame-Options", "DENY");
  /* The login URL carries a token: never hand it on. */
  soup_message_headers_replace (h, "Referrer-Policy", "no-referrer");
}

static void
serve_resource (SoupServerMessage *msg, const char *name, const char *type)
{
  g_autofree char *path = g_strconcat (RESOURCE_PREFIX, name, NULL);
  g_autoptr (GBytes) bytes
      = g_resource_lookup_data (sched_dashboard_get_resource (), path, 0, NULL);

  if (bytes == NULL)
    {
      proto_http_reply_text (msg, SOUP_STATUS_NOT_FOUND, "not found\n");
      return;
    }
  set_page_headers (msg);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_server_message_set_response (msg, type, SOUP_MEMORY_COPY,
                                    g_bytes_get_data (bytes, NULL),
                                    g_bytes_get_size (bytes));
}

static void
page_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
         GHashTable *query, gpointer user_data)
{
  SchedDashboard *dash = user_data;
  const char *token = query ? g_hash_table_lookup (query, "token") : NULL;
  g_autofree char *session = NULL;
  g_autofree char *cookie = NULL;

  if (strcmp (path, "/") != 0)
    {
      proto_http_reply_text (msg, SOUP_STATUS_NOT_FOUND, "not found\n");
      return;
    }
  if (token == NULL)
    {
      serve_resource (msg, "index.html", "text/html; charset=utf-8");
      return;
    }
  session = sched_logins_redeem (dash->svc->logins, token);
  if (session == NULL)
    {
      drover_message (NULL, NULL, NULL,
                      "dashboard: refused a login with an unknown, used or "
                      "expired token");
      proto_http_reply_text (
          msg, SOUP_STATUS_UNAUTHORIZED,
          "This login token is unknown, used or expired. Ask for a new one "
          "with `droverctl dashboard-token` and open /?token=TOKEN once.\n");
      return;
    }
  drover_message (NULL, NULL, NULL, "dashboard: logged in with a token");
  cookie = g_strdup_printf (SESSION_COOKIE "=%s; Path=/; Max-Age=%d; "
                                           "HttpOnly; SameSite=Strict%s",
                            session, SCHED_DASHBOARD_SESSION_TTL_S,
                            dash->https ? "; Secure" : "");
  set_page_headers (msg);
  soup_message_headers_append (soup_server_message_get_response_headers (msg),
                               "Set-Cookie", cookie);
  /* Off the URL with the token, so a reload does not try it again. */
  soup_server_message_set_redirect (msg, SOUP_STATUS_SEE_OTHER, "/");
}

static void
static_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
           GHashTable *query, gpointer user_data)
{
  static const struct
  {
    const char *path, *name, *type;
  } files[] = {
    { "/static/dashboard.css", "dashboard.css", "text/css; charset=utf-8" },
    { "/static/dashboard.js", "dashboard.js",
      "text/javascript; charset=utf-8" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (files); i++)
    if (strcmp (path, files[i].path) == 0)
      {
        serve_resource (msg, files[i].name, files[i].type);
        return;
      }
  proto_http_reply_text (msg, SOUP_STATUS_NOT_FOUND, "not found\n");
}

/* --- the API ------------------------------------------------------------- */

static void
state_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
          GHashTable *query, gpointer user_data)
{
  SchedDashboard *dash = user_data;
  g_autofree char *name = NULL;
  g_autoptr (GError) error = NULL;
  ProtoRole role = 0;
  char *json;

  if (!require_login (dash, msg, &role, &name))
    return;
  json = sched_dashboard_state_json (dash->svc, dash->history, role, name,
                                     &error);
  if (json == NULL)
    reply_error (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, error->message);
  else
    reply_json (msg, SOUP_STATUS_OK, json);
}

/* The HTTP status for a scheduler error. */
static guint
http_status (const GError *error)
{
  switch (sched_error_to_status (error))
    {
    case PROTO_STATUS_INVALID_ARGUMENT:
      return SOUP_STATUS_BAD_REQUEST;
    case PROTO_STATUS_NOT_FOUND:
      return SOUP_STATUS_NOT_FOUND;
    case PROTO_STATUS_FAILED_PRECONDITION:
    case PROTO_STATUS_RESOURCE_EXHAUSTED:
    case PROTO_STATUS_ALREADY_EXISTS:
      return SOUP_STATUS_CONFLICT;
    case PROTO_STATUS_UNAVAILABLE:
      return SOUP_STATUS_SERVICE_UNAVAILABLE;
    default:
      return SOUP_STATUS_INTERNAL_SERVER_ERROR;
    }
}

/* A string member of OBJ, or NULL. */
static const char *
get_string (JsonObject *obj, const char *name)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (node == NULL || JSON_NODE_TYPE (node) != JSON_NODE_VALUE
      || json_node_get_value_type (node) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (node);
}

/* The JSON object a POST /api/ACTION carries, for an operator; NULL when
 * MSG has been answered (401, 403, 415, 400). *NAME: who asks. */
static JsonObject *
action_begin (SchedDashboard *dash, SoupServerMessage *msg, const char *what,
              JsonParser *parser, char **name)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  const char *type = soup_message_headers_get_content_type (
      soup_server_message_get_request_headers (msg), NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autofree char *refusal = NULL;
  ProtoRole role = 0;
  JsonNode *root;

  if (!require_login (dash, msg, &role, name))
    return NULL;
  if (!(role & PROTO_ROLE_OPERATOR))
    {
      refusal = g_strdup_printf ("only operators may start %s", what);
      reply_error (msg, SOUP_STATUS_FORBIDDEN, refusal);
      return NULL;
    }
  /* A cross-site form cannot send this type without a preflight the
   * server never grants: with the SameSite cookie, no forged requests. */
  if (g_strcmp0 (type, "application/json") != 0)
    {
      reply_error (msg, SOUP_STATUS_UNSUPPORTED_MEDIA_TYPE,
                   "send application/json");
      return NULL;
    }
  bytes = soup_message_body_flatten (body);
  if (!json_parser_load_from_data (parser, g_bytes_get_data (bytes, NULL),
                                   (gssize)g_bytes_get_size (bytes), &error)
      || (root = json_parser_get_root (parser)) == NULL
      || JSON_NODE_TYPE (root) != JSON_NODE_OBJECT)
    {
      reply_error (msg, SOUP_STATUS_BAD_REQUEST, "expected a JSON object");
      return NULL;
    }
  return json_node_get_object (root);
}

/* The string member KEY of OBJ: NULL (and MSG answered 400 with USAGE)
 * when it is missing but REQUIRED or is not a string. A missing optional
 * one is "". */
static const char *
action_string (SoupServerMessage *msg, JsonObject *obj, const char *key,
               gboolean required, const char *usage)
{
  const char *value = get_string (obj, key);

  if (value == NULL && !required && !json_object_has_member (obj, key))
    return "";
  if (value == NULL)
    {
      g_autofree char *text = g_strdup_printf (
          "\"%s\" must be a string: expected %s", key, usage);

      reply_error (msg, SOUP_STATUS_BAD_REQUEST, text);
    }
  return value;
}

/* Answers MSG with JOB (202) or ERROR's status and message; logs who
 * started what. */
static void
action_reply (SoupServerMessage *msg, SchedJob *job, const GError *error,
              const char *name, const char *what)
{
  Drover__V1__Job jmsg;
  ProtoJson *json;

  if (job == NULL)
    {
      reply_error (msg, http_status (error), error->message);
      return;
    }
  drover_message (*job->vm ? job->vm : NULL, job->id, NULL,
                  "%s started from the dashboard by %s", what,
                  name && *name ? name : "an operator");
  sched_job_msg (job, &jmsg);
  json = proto_json_new (FALSE);
  proto_json_message (json, &jmsg.base);
  reply_json (msg, SOUP_STATUS_ACCEPTED, proto_json_free_to_string (json));
}

static void
migrate_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
            GHashTable *query, gpointer user_data)
{
  static const char usage[] = "{\"vm\": NAME, \"to\": HOST or \"\"}";
  SchedDashboard *dash = user_data;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autofree char *name = NULL;
  g_autofree char *what = NULL;
  JsonObject *obj;
  const char *vm, *to;

  obj = action_begin (dash, msg, "a migration", parser, &name);
  if (obj == NULL || (vm = action_string (msg, obj, "vm", TRUE, usage)) == NULL
      || (to = action_string (msg, obj, "to", FALSE, usage)) == NULL)
    return;
  sched_migrator_submit (dash->svc->migrator, vm, *to ? to : NULL, NULL, &job,
                         &error);
  if (job != NULL)
    what = g_strdup_printf ("migration to %s",
                            job->dest_host ? job->dest_host : "?");
  action_reply (msg, job, error, name, what);
}

static void
drain_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
          GHashTable *query, gpointer user_data)
{
  SchedDashboard *dash = user_data;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autofree char *name = NULL;
  g_autofree char *what = NULL;
  JsonObject *obj;
  const char *host;

  obj = action_begin (dash, msg, "a drain", parser, &name);
  if (obj == NULL
      || (host = action_string (msg, obj, "host", TRUE, "{\"host\": NAME}"))
             == NULL)
    return;
  /* VMs that cannot move are never stopped from the page. */
  sched_drains_submit (dash->svc, host, FALSE, &job, &error);
  what = g_strdup_printf ("drain of host %s", host);
  action_reply (msg, job, error, name, what);
}

static void
snapshot_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
             GHashTable *query, gpointer user_data)
{
  static const char usage[] = "{\"vm\": NAME, \"name\": SNAPSHOT}";
  SchedDashboard *dash = user_data;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autofree char *name = NULL;
  g_autofree char *what = NULL;
  JsonObject *obj;
  const char *vm, *snap;

  obj = action_begin (dash, msg, "a snapshot", parser, &name);
  if (obj == NULL || (vm = action_string (msg, obj, "vm", TRUE, usage)) == NULL
      || (snap = action_string (msg, obj, "name", TRUE, usage)) == NULL)
    return;
  /* A disk-only snapshot, as `droverctl snapshot create` without flags. */
  sched_snapshots_submit (dash->svc, vm, snap, FALSE, FALSE, NULL, &job,
                          &error);
  what = g_strdup_printf ("snapshot %s", snap);
  action_reply (msg, job, error, name, what);
}

static void
backup_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
           GHashTable *query, gpointer user_data)
{
  static const char usage[] = "{\"vm\": NAME, \"repo\": REPO or \"\"}";
  Drover__V1__CreateBackupRequest req = DROVER__V1__CREATE_BACKUP_REQUEST__INIT;
  SchedDashboard *dash = user_data;
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autofree char *name = NULL;
  g_autofree char *what = NULL;
  JsonObject *obj;
  const char *vm, *repo;

  obj = action_begin (dash, msg, "a backup", parser, &name);
  if (obj == NULL || (vm = action_string (msg, obj, "vm", TRUE, usage)) == NULL
      || (repo = action_string (msg, obj, "repo", FALSE, usage)) == NULL)
    return;
  if (*repo && !proto_name_validate ("repository", repo, &error))
    {
      reply_error (msg, SOUP_STATUS_BAD_REQUEST, error->message);
      return;
    }
  req.vm = (char *)vm;
  req.repo = (char *)repo;
  sched_backups_create (dash->svc, &req, &job, &error);
  what = g_strdup_printf ("backup into %s",
                          *repo ? repo : "the default repository");
  action_reply (msg, job, error, name, what);
}

/* --- server-sent events ------------------------------------------------- */

typedef struct
{
  SchedDashboard *dash;
  SoupServerMessage *msg; /* a reference */
  SchedEventsSink *sink;  /* NULL once the events object let go */
  guint queued;           /* chunks appended, not yet written */
  gboolean over;          /* the body is complete or the client left */
} Stream;

static void
stream_append (Stream *s, const char *text)
{
  soup_message_body_append (soup_server_message_get_response_body (s->msg),
                            SOUP_MEMORY_COPY, text, strlen (text));
  s->queued++;
  soup_server_message_unpause (s->msg);
}

static gboolean
stream_send (gpointer target, const Drover__V1__Event *event)
{
  Stream *s = target;
  g_autofree char *json = NULL;
  g_autofree char *chunk = NULL;

  if (s->over)
    return FALSE;
  json = sched_dashboard_event_json (event);
  chunk = g_strdup_printf ("id: %" G_GUINT64_FORMAT "\ndata: %s\n\n",
                           event->seq, json);
  stream_append (s, chunk);
  return TRUE;
}

static guint
stream_queued (gpointer target)
{
  return ((Stream *)target)->queued;
}

static void
stream_finish (gpointer target, gboolean dropped)
{
  Stream *s = target;

  s->sink = NULL;
  if (s->over)
    return;
  s->over = TRUE;
  soup_message_body_complete (soup_server_message_get_response_body (s->msg));
  soup_server_message_unpause (s->msg);
}

static const SchedEventsSinkOps stream_ops = {
  stream_send,
  stream_queued,
  stream_finish,
};

static void
stream_wrote_chunk (SoupServerMessage *msg, gpointer user_data)
{
  Stream *s = user_data;

  if (s->queued > 0)
    s->queued--;
}

/* The response ended: complete, or the browser went away. */
static void
stream_finished (SoupServerMessage *msg, gpointer user_data)
{
  Stream *s = user_data;

  s->over = TRUE;
  if (s->sink != NULL)
    sched_events_unsubscribe (s->dash->svc->events, s->sink);
  g_signal_handlers_disconnect_by_data (s->msg, s);
  g_ptr_array_remove (s->dash->streams, s);
  g_object_unref (s->msg);
  g_free (s);
}

static void
events_cb (ProtoHttp *http, SoupServerMessage *msg, const char *path,
           GHashTable *query, gpointer user_data)
{
  SchedDashboard *dash = user_data;
  SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
  g_autofree char *name = NULL;
  ProtoRole role = 0;
  Stream *s;

  if (!require_login (dash, msg, &role, &name))
    return;
  if (dash->streams->len >= SCHED_DASHBOARD_MAX_STREAMS)
    {
      reply_error (msg, SOUP_STATUS_SERVICE_UNAVAILABLE,
                   "too many event streams open");
      return;
    }
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_set_content_type (h, "text/event-stream", NULL);
  soup_message_headers_set_encoding (h, SOUP_ENCODING_CHUNKED);
  soup_message_headers_replace (h, "Cache-Control", "no-store");
  soup_message_body_set_accumulate (soup_server_message_get_response_body (msg),
                                    FALSE);
  s = g_new0 (Stream, 1);
  s->dash = dash;
  s->msg = g_object_ref (msg);
  g_ptr_array_add (dash->streams, s);
  g_signal_connect (msg, "wrote-chunk", G_CALLBACK (stream_wrote_chunk), s);
  g_signal_connect (msg, "finished", G_CALLBACK (stream_finished), s);
  /* The browser reconnects after this long if the stream breaks. */
  stream_append (s, "retry: 2000\n\n");
  s->sink = sched_events_subscribe (dash->svc->events, &stream_ops, s, 0);
  if (s->sink == NULL)
    stream_finish (s, FALSE);
}

/* --- setup ---------------------------------------------------------------- */

void
sched_dashboard_sample (SchedDashboard *dash)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  SchedSample sample;

  if ((hosts = sched_store_list_hosts (dash->svc->store, &error)) == NULL
      || (vms = sched_store_list_vms (dash->svc->store, NULL, &error)) == NULL)
    {
      drover_warning (NULL, NULL, NULL, "dashboard: no imbalance sample: %s",
                      error->message);
      return;
    }
  sample.time_ms = sched_registry_now (dash->svc->registry);
  sample.value = sched_imbalance (&dash->svc->policy, hosts, vms);
  g_array_append_val (dash->history, sample);
  if (dash->history->len > SCHED_DASHBOARD_HISTORY)
    g_array_remove_range (dash->history, 0,
                          dash->history->len - SCHED_DASHBOARD_HISTORY);
}

static gboolean
sample_tick (gpointer user_data)
{
  sched_dashboard_sample (user_data);
  return G_SOURCE_CONTINUE;
}

SchedDashboard *
sched_dashboard_new (SchedService *svc)
{
  SchedDashboard *dash = g_new0 (SchedDashboard, 1);

  dash->svc = svc;
  dash->history = g_array_new (FALSE, FALSE, sizeof (SchedSample));
  dash->streams = g_ptr_array_new ();
  return dash;
}

gboolean
sched_dashboard_listen (SchedDashboard *dash, const char *addr, GError **error)
{
  g_autoptr (ProtoHttp) http = proto_http_new ();

  g_return_val_if_fail (dash->http == NULL, FALSE);
  proto_http_add_handler (http, "/", page_cb, dash);
  proto_http_add_handler (http, "/static/", static_cb, dash);
  proto_http_add_handler (http, "/api/state", state_cb, dash);
  proto_http_add_handler (http, "/api/events", events_cb, dash);
  proto_http_add_post_handler (http, "/api/migrate", migrate_cb, dash);
  proto_http_add_post_handler (http, "/api/drain", drain_cb, dash);
  proto_http_add_post_handler (http, "/api/snapshot", snapshot_cb, dash);
  proto_http_add_post_handler (http, "/api/backup", backup_cb, dash);
  if (!proto_http_listen (http, addr, dash->svc->tls, error))
    return FALSE;
  dash->https = dash->svc->tls != NULL;
  dash->http = g_steal_pointer (&http);
  sched_dashboard_sample (dash);
  dash->sampler = g_timeout_source_new (
      MAX (sched_registry_get_report_interval (dash->svc->registry), 1000));
  g_source_set_callback (dash->sampler, sample_tick, dash, NULL);
  g_source_attach (dash->sampler, dash->svc->ctx);
  return TRUE;
}

int
sched_dashboard_get_port (SchedDashboard *dash)
{
  return proto_http_get_port (dash->http);
}

void
sched_dashboard_stop (SchedDashboard *dash)
{
  if (dash->sampler != NULL)
    {
      g_source_destroy (dash->sampler);
      g_clear_pointer (&dash->sampler, g_source_unref);
    }
  /* Streams still open end with the server (their "finished" frees
   * them); the events object has let go of them already. */
  for (guint i = 0; i < dash->streams->len; i++)
    {
      Stream *s = dash->streams->pdata[i];

      if (s->sink != NULL)
        sched_events_unsubscribe (dash->svc->events, s->sink);
      stream_finish (s, FALSE);
    }
  g_clear_pointer (&dash->http, proto_http_free);
}

void
sched_dashboard_free (SchedDashboard *dash)
{
  sched_dashboard_stop (dash);
  /* A stream whose "finished" did not run with the server's end. */
  while (dash->streams->len > 0)
    stream_finished (((Stream *)dash->streams->pdata[0])->msg,
                     dash->streams->pdata[0]);
  g_ptr_array_unref (dash->streams);
  g_array_unref (dash->history);
  g_free (dash);
}
