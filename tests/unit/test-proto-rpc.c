/* libdrover-proto over real gRPC on 127.0.0.1: unary, async replies,
 * errors, streams, cancellation, size caps, blocking calls, mutual TLS.
 *
 * The server runs in its own thread with its own GMainContext, so the
 * test thread can use the blocking client calls (which must not need a
 * main loop) as well as the asynchronous ones (in the default context). */
#include <string.h>

#include <glib/gstdio.h>

#include "proto-private.h"
#include "test-rpc.h"

/* --- test service ------------------------------------------------------- */

typedef struct
{
  TestRpcServer *rpc;
  ProtoTls *tls;
  /* counters the test polls (atomic) */
  gint cancels;      /* cancel funcs run */
  gint late_replies; /* delayed replies sent */
  gint streams_open; /* "forever" streams not yet finished */
} TestServer;

static void
list_hosts (ProtoServerCall *call, const ProtobufCMessage *request,
            gpointer user_data)
{
  Drover__V1__ListHostsReply reply = DROVER__V1__LIST_HOSTS_REPLY__INIT;
  Drover__V1__Host host = DROVER__V1__HOST__INIT;
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__Host *hosts[1] = { &host };
  const char *cn = proto_server_call_get_peer_name (call);

  /* Echo who is calling: the client's certificate CN and role, and its
   * address. */
  info.name = (char *)(cn ? cn : "-");
  info.address = (char *)proto_server_call_get_peer (call);
  info.accel
      = (char *)proto_role_to_string (proto_server_call_get_peer_role (call));
  host.info = &info;
  host.state = (char *)"up";
  reply.n_hosts = 1;
  reply.hosts = hosts;
  proto_server_call_reply (call, &reply.base);
}

typedef struct
{
  ProtoServerCall *call;
  TestServer *ts;
  char *name;
  guint sent;
  GSource *tick; /* streams: the sending timer (we hold a ref) */
} Pending;

/* A call of TS that its handler answers later. */
static Pending *
pending_new (ProtoServerCall *call, TestServer *ts)
{
  Pending *p = g_new0 (Pending, 1);

  p->call = call;
  p->ts = ts;
  return p;
}

static gboolean
late_reply (gpointer data)
{
  Pending *p = data;
  Drover__V1__VmReply reply = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm vm = DROVER__V1__VM__INIT;

  vm.host = p->name;
  vm.state = (char *)"running";
  reply.vm = &vm;
  proto_server_call_reply (p->call, &reply.base);
  g_atomic_int_inc (&p->ts->late_replies);
  g_free (p->name);
  g_free (p);
  return G_SOURCE_REMOVE;
}

static void
attach_timeout (guint ms, GSourceFunc func, gpointer data)
{
  GSource *src = g_timeout_source_new (ms);

  g_source_set_callback (src, func, data, NULL);
  g_source_attach (src, g_main_context_get_thread_default ());
  g_source_unref (src);
}

static void
get_vm (ProtoServerCall *call, const ProtobufCMessage *request,
        gpointer user_data)
{
  TestServer *ts = user_data;
  const Drover__V1__GetVmRequest *req = (const void *)request;

  if (g_str_has_prefix (req->name, "later-"))
    {
      /* Reply after going back to the main loop. */
      Pending *p = pending_new (call, ts);

      p->name = g_strdup (req->name);
      attach_timeout (strcmp (req->name, "later-slow") == 0 ? 400 : 50,
                      late_reply, p);
      return;
    }
  if (strcmp (req->name, "missing") == 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_NOT_FOUND, "vm '%s' not found",
                              req->name);
      return;
    }
  if (strcmp (req->name, "gerror") == 0)
    {
      g_autoptr (GError) error
          = g_error_new (G_FILE_ERROR, G_FILE_ERROR_FAILED, "disk on fire");

      proto_server_call_fail_error (call, error);
      return;
    }
  {
    Drover__V1__VmReply reply = DROVER__V1__VM_REPLY__INIT;
    Drover__V1__Vm vm = DROVER__V1__VM__INIT;

    vm.host = req->name;
    reply.vm = &vm;
    proto_server_call_reply (call, &reply.base);
  }
}

static void
read_console (ProtoServerCall *call, const ProtobufCMessage *request,
              gpointer user_data)
{
  const Drover__V1__ConsoleRequest *req
      = (const Drover__V1__ConsoleRequest *)request;
  Drover__V1__ConsoleChunk chunk = DROVER__V1__CONSOLE_CHUNK__INIT;
  g_autofree guint8 *data = g_malloc0 (req->max_bytes);

  /* max_bytes over the cap makes the reply too large to send. */
  chunk.data.data = data;
  chunk.data.len = req->max_bytes;
  chunk.size = req->max_bytes;
  proto_server_call_reply (call, &chunk.base);
}

static void
send_job (ProtoServerCall *call, guint i)
{
  Drover__V1__Job job = DROVER__V1__JOB__INIT;
  g_autofree char *id = g_strdup_printf ("job-%u", i);

  job.id = id;
  job.state = (char *)"running";
  job.progress = i / 100.0;
  proto_server_call_send (call, &job.base);
}

static void
stream_cancelled (gpointer data, gpointer user_data)
{
  Pending *p = user_data;

  g_assert_true (data == p->call);
  g_assert_true (proto_server_call_is_cancelled (p->call));
  g_atomic_int_inc (&p->ts->cancels);
  g_atomic_int_add (&p->ts->streams_open, -1);
  proto_server_call_finish (p->call, PROTO_STATUS_CANCELLED,
                            "client went away");
  g_source_destroy (p->tick);
  g_source_unref (p->tick);
  g_free (p);
}

static gboolean
stream_tick (gpointer data)
{
  Pending *p = data;

  send_job (p->call, p->sent++);
  return G_SOURCE_CONTINUE;
}

static void
watch_job (ProtoServerCall *call, const ProtobufCMessage *request,
           gpointer user_data)
{
  TestServer *ts = user_data;
  const Drover__V1__WatchJobRequest *req = (const void *)request;

  if (strcmp (req->id, "forever") == 0)
    {
      /* One message every 20 ms until the client cancels. */
      Pending *p = pending_new (call, ts);

      p->tick = g_timeout_source_new (20);
      g_atomic_int_inc (&ts->streams_open);
      proto_server_call_set_cancel_func (call, stream_cancelled, p);
      send_job (call, p->sent++);
      g_source_set_callback (p->tick, stream_tick, p, NULL);
      g_source_attach (p->tick, g_main_context_get_thread_default ());
      return;
    }
  if (strcmp (req->id, "broken") == 0)
    {
      send_job (call, 0);
      proto_server_call_finish (call, PROTO_STATUS_ABORTED, "job exploded");
      return;
    }
  /* "count:N": N messages queued at once, then a clean end. */
  {
    guint n = g_str_has_prefix (req->id, "count:") ? atoi (req->id + 6) : 0;

    for (guint i = 0; i < n; i++)
      send_job (call, i);
    proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
  }
}

/* GetVm is for operators; the rest for every role. */
static const ProtoAuthzRule test_authz[] = {
  { DROVER_SCHED_METHOD_LIST_HOSTS, PROTO_ROLES_ALL },
  { DROVER_SCHED_METHOD_GET_VM, PROTO_ROLE_OPERATOR },
  { DROVER_SCHED_METHOD_READ_CONSOLE, PROTO_ROLES_ALL },
  { DROVER_SCHED_METHOD_WATCH_JOB, PROTO_ROLES_ALL },
};

static const TestRpcMethod test_methods[] = {
  { DROVER_SCHED_METHOD_LIST_HOSTS, list_hosts },
  { DROVER_SCHED_METHOD_GET_VM, get_vm },
  { DROVER_SCHED_METHOD_READ_CONSOLE, read_console },
  { DROVER_SCHED_METHOD_WATCH_JOB, watch_job },
  /* StopVm has a handler but no row: nobody may call it. */
  { DROVER_SCHED_METHOD_STOP_VM, list_hosts },
};

static const TestRpcService test_service = {
  DROVER_SCHED_SERVICE,        test_methods,
  G_N_ELEMENTS (test_methods), test_authz,
  G_N_ELEMENTS (test_authz),
};

static TestServer *
test_server_start (const char *tls_dir)
{
  TestServer *ts = g_new0 (TestServer, 1);

  if (tls_dir)
    {
      g_autoptr (GError) error = NULL;

      ts->tls = proto_tls_load (tls_dir, &error);
      g_assert_no_error (error);
    }
  ts->rpc = test_rpc_server_start (&test_service, ts, ts->tls);
  return ts;
}

static void
test_server_stop (TestServer *ts)
{
  test_rpc_server_stop (ts->rpc);
  proto_tls_free (ts->tls);
  g_free (ts);
}

static char *
test_server_target (TestServer *ts)
{
  return g_strdup (ts->rpc->address);
}

/* Iterates the default context until *FLAG or 10 s pass. */
static void
run_until (gboolean *flag)
{
  gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (!*flag)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, end);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

static void
wait_atomic (gint *counter, gint value)
{
  gint64 end = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_atomic_int_get (counter) != value)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, end);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* --- async unary ---------------------------------------------------------- */

typedef struct
{
  gboolean done;
  GError *error;
  char *host; /* VmReply.vm.host or ListHostsReply.hosts[0].info.name */
  char *address;
  GThread *thread;
} Result;

static void
on_reply (const ProtobufCMessage *reply, const GError *error,
          gpointer user_data)
{
  Result *r = user_data;

  g_assert_true ((reply == NULL) != (error == NULL));
  r->thread = g_thread_self ();
  if (error)
    r->error = g_error_copy (error);
  else if (reply->descriptor == &drover__v1__vm_reply__descriptor)
    r->host = g_strdup (((const Drover__V1__VmReply *)reply)->vm->host);
  else if (reply->descriptor == &drover__v1__list_hosts_reply__descriptor)
    {
      const Drover__V1__ListHostsReply *l
          = (const Drover__V1__ListHostsReply *)reply;

      g_assert_cmpuint (l->n_hosts, ==, 1);
      r->host = g_strdup (l->hosts[0]->info->name);
      r->address = g_strdup (l->hosts[0]->info->address);
    }
  r->done = TRUE;
}

static void
result_clear (Result *r)
{
  g_clear_error (&r->error);
  g_clear_pointer (&r->host, g_free);
  g_clear_pointer (&r->address, g_free);
  r->done = FALSE;
}

static void
call_get_vm (ProtoClient *client, const char *name, gint64 timeout_ms,
             Result *r)
{
  Drover__V1__GetVmRequest req = DROVER__V1__GET_VM_REQUEST__INIT;

  result_clear (r);
  req.name = (char *)name;
  proto_client_call (client, DROVER_SCHED_SERVICE, DROVER_SCHED_METHOD_GET_VM,
                     &req.base, timeout_ms, on_reply, r);
  /* Never completes in place: always from the main loop. */
  g_assert_false (r->done);
  run_until (&r->done);
}

/* A test server (no TLS) and a client of it that talks to any role,
 * with a Result for its calls. */
typedef struct
{
  TestServer *ts; /* NULL once a test stopped it */
  char *target;
  ProtoClient *client;
  Result r;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->ts = test_server_start (NULL);
  f->target = test_server_target (f->ts);
  f->client = proto_client_new (f->target, NULL, PROTO_ROLES_ALL, NULL, &error);
  g_assert_no_error (error);
}

/* The client goes first: its open calls end before the server stops. */
static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  result_clear (&f->r);
  g_clear_pointer (&f->client, proto_client_free);
  g_clear_pointer (&f->ts, test_server_stop);
  g_free (f->target);
}

static void
test_unary (Fixture *f, gconstpointer data)
{
  Drover__V1__ListHostsRequest lh = DROVER__V1__LIST_HOSTS_REQUEST__INIT;

  g_assert_cmpstr (proto_client_get_target (f->client), ==, f->target);

  call_get_vm (f->client, "web-1", 5000, &f->r);
  g_assert_no_error (f->r.error);
  g_assert_cmpstr (f->r.host, ==, "web-1");
  g_assert_true (f->r.thread == g_thread_self ());

  /* Insecure: no peer CN; the peer address is the client's. */
  result_clear (&f->r);
  proto_client_call (f->client, DROVER_SCHED_SERVICE,
                     DROVER_SCHED_METHOD_LIST_HOSTS, &lh.base, 5000, on_reply,
                     &f->r);
  run_until (&f->r.done);
  g_assert_no_error (f->r.error);
  g_assert_cmpstr (f->r.host, ==, "-");
  g_assert_true (g_str_has_prefix (f->r.address, "ipv4:127.0.0.1:"));

  /* Several in flight at once. */
  {
    Result many[5] = { 0 };

    for (guint i = 0; i < G_N_ELEMENTS (many); i++)
      {
        Drover__V1__GetVmRequest req = DROVER__V1__GET_VM_REQUEST__INIT;
        g_autofree char *name = g_strdup_printf ("vm-%u", i);

        req.name = name;
        proto_client_call (f->client, DROVER_SCHED_SERVICE,
                           DROVER_SCHED_METHOD_GET_VM, &req.base, 5000,
                           on_reply, &many[i]);
      }
    for (guint i = 0; i < G_N_ELEMENTS (many); i++)
      {
        g_autofree char *name = g_strdup_printf ("vm-%u", i);

        run_until (&many[i].done);
        g_assert_no_error (many[i].error);
        g_assert_cmpstr (many[i].host, ==, name);
        result_clear (&many[i]);
      }
  }
}

static void
test_async_reply (Fixture *f, gconstpointer data)
{

  call_get_vm (f->client, "later-1", 5000, &f->r);
  g_assert_no_error (f->r.error);
  g_assert_cmpstr (f->r.host, ==, "later-1");
  /* The server thread counts the reply just after sending it: the reply
   * can reach us first. */
  wait_atomic (&f->ts->late_replies, 1);

  /* The deadline passes before the late reply: DEADLINE_EXCEEDED, and
   * the handler's reply to the dead call is harmless. */
  call_get_vm (f->client, "later-slow", 100, &f->r);
  g_assert_error (f->r.error, PROTO_ERROR, PROTO_STATUS_DEADLINE_EXCEEDED);
  wait_atomic (&f->ts->late_replies, 2);

  call_get_vm (f->client, "after", 5000, &f->r);
  g_assert_no_error (f->r.error);
}

static void
test_errors (Fixture *f, gconstpointer data)
{
  Drover__V1__ListVmsRequest lv = DROVER__V1__LIST_VMS_REQUEST__INIT;
  Drover__V1__GetVmRequest gv = DROVER__V1__GET_VM_REQUEST__INIT;

  call_get_vm (f->client, "missing", 5000, &f->r);
  g_assert_error (f->r.error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
  g_assert_cmpstr (f->r.error->message, ==, "vm 'missing' not found");

  /* Errors of other domains become INTERNAL with their message. */
  call_get_vm (f->client, "gerror", 5000, &f->r);
  g_assert_error (f->r.error, PROTO_ERROR, PROTO_STATUS_INTERNAL);
  g_assert_cmpstr (f->r.error->message, ==, "disk on fire");

  /* ListVms is not registered on this server. */
  result_clear (&f->r);
  proto_client_call (f->client, DROVER_SCHED_SERVICE,
                     DROVER_SCHED_METHOD_LIST_VMS, &lv.base, 5000, on_reply,
                     &f->r);
  run_until (&f->r.done);
  g_assert_error (f->r.error, PROTO_ERROR, PROTO_STATUS_UNIMPLEMENTED);
  g_assert_nonnull (
      strstr (f->r.error->message, "/drover.v1.SchedulerService/ListVms"));

  /* Wrong request type for the method: refused locally, still async. */
  result_clear (&f->r);
  proto_client_call (f->client, DROVER_SCHED_SERVICE,
                     DROVER_SCHED_METHOD_LIST_HOSTS, &gv.base, 5000, on_reply,
                     &f->r);
  g_assert_false (f->r.done);
  run_until (&f->r.done);
  g_assert_error (f->r.error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);

  /* Garbage on the wire: the server refuses it and keeps serving. */
  {
    static const guint8 junk[] = { 0x0a, 0x7f, 'x' };
    g_autoptr (GBytes) req = g_bytes_new_static (junk, sizeof junk);
    g_autoptr (GError) error = NULL;
    g_autoptr (GBytes) reply = proto_client_call_raw_sync (
        f->client, "/drover.v1.SchedulerService/GetVm", req, 5000, &error);

    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  }
  call_get_vm (f->client, "fine", 5000, &f->r);
  g_assert_no_error (f->r.error);
}

static void
test_unavailable (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ProtoClient) client = NULL;
  ProtobufCMessage *reply;
  Drover__V1__GetVmRequest req = DROVER__V1__GET_VM_REQUEST__INIT;
  Result r = { 0 };
  int port;

  /* A port nobody listens on: bind a server, note its port, stop it. */
  {
    ProtoServer *s = proto_server_new (NULL);

    g_assert_true (proto_server_start (s, "127.0.0.1:0", NULL, &error));
    port = proto_server_get_port (s);
    proto_server_free (s);
  }
  {
    g_autofree char *target = g_strdup_printf ("127.0.0.1:%d", port);

    client = proto_client_new (target, NULL, PROTO_ROLES_ALL, NULL, &error);
  }
  g_assert_no_error (error);
  call_get_vm (client, "x", 5000, &r);
  g_assert_error (r.error, PROTO_ERROR, PROTO_STATUS_UNAVAILABLE);
  result_clear (&r);

  req.name = (char *)"x";
  reply = proto_client_call_sync (client, DROVER_SCHED_SERVICE,
                                  DROVER_SCHED_METHOD_GET_VM, &req.base, 5000,
                                  &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_UNAVAILABLE);
  g_clear_error (&error);

  /* Binding an address in use fails cleanly. */
  {
    ProtoServer *a = proto_server_new (NULL);
    ProtoServer *b = proto_server_new (NULL);
    g_autofree char *addr = NULL;

    g_assert_true (proto_server_start (a, "127.0.0.1:0", NULL, &error));
    addr = g_strdup_printf ("127.0.0.1:%d", proto_server_get_port (a));
    g_assert_false (proto_server_start (b, addr, NULL, &error));
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_UNAVAILABLE);
    proto_server_free (b);
    proto_server_free (a);
  }
}

/* --- size caps ------------------------------------------------------------ */

static void
test_size_cap (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) unlimited
      = proto_client_new_unlimited (f->target, NULL, NULL, NULL);
  g_autofree char *big = g_strnfill (PROTO_MAX_MESSAGE_SIZE + 10, 'a');
  g_autoptr (GError) error = NULL;

  /* Our own oversized request never leaves. */
  call_get_vm (f->client, big, 5000, &f->r);
  g_assert_error (f->r.error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);

  /* A peer without our cap: the server refuses it before unpacking. */
  {
    Drover__V1__GetVmRequest req = DROVER__V1__GET_VM_REQUEST__INIT;
    g_autofree guint8 *buf = NULL;
    gsize len;
    g_autoptr (GBytes) bytes = NULL;
    g_autoptr (GBytes) reply = NULL;

    req.name = big;
    len = protobuf_c_message_get_packed_size (&req.base);
    buf = g_malloc (len);
    protobuf_c_message_pack (&req.base, buf);
    bytes = g_bytes_new_take (g_steal_pointer (&buf), len);
    reply = proto_client_call_raw_sync (
        unlimited, "/drover.v1.SchedulerService/GetVm", bytes, 5000, &error);
    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
    g_clear_error (&error);
  }

  /* A reply over the cap is not sent; the client learns why. */
  {
    Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
    ProtobufCMessage *reply;

    req.name = (char *)"vm";
    req.max_bytes = PROTO_MAX_MESSAGE_SIZE + 1;
    reply = proto_client_call_sync (f->client, DROVER_SCHED_SERVICE,
                                    DROVER_SCHED_METHOD_READ_CONSOLE, &req.base,
                                    5000, &error);
    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
    g_clear_error (&error);

    /* Just under the cap goes through. */
    req.max_bytes = PROTO_MAX_MESSAGE_SIZE - 64;
    reply = proto_client_call_sync (f->client, DROVER_SCHED_SERVICE,
                                    DROVER_SCHED_METHOD_READ_CONSOLE, &req.base,
                                    5000, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (((Drover__V1__ConsoleChunk *)reply)->data.len, ==,
                      req.max_bytes);
    protobuf_c_message_free_unpacked (reply, NULL);
  }

  /* And the server still works. */
  call_get_vm (f->client, "still-here", 5000, &f->r);
  g_assert_no_error (f->r.error);
  g_assert_cmpstr (f->r.host, ==, "still-here");
}

/* --- streams -------------------------------------------------------------- */

typedef struct
{
  GPtrArray *ids;
  gboolean ended;
  GError *error;
  ProtoClientStream *stream;
  guint cancel_after; /* 0: never */
} StreamResult;

static void
on_stream_message (const ProtobufCMessage *msg, gpointer user_data)
{
  StreamResult *s = user_data;

  g_assert_false (s->ended);
  g_ptr_array_add (s->ids, g_strdup (((const Drover__V1__Job *)msg)->id));
  if (s->cancel_after && s->ids->len == s->cancel_after)
    proto_client_stream_cancel (s->stream);
}

static void
on_stream_end (const GError *error, gpointer user_data)
{
  StreamResult *s = user_data;

  g_assert_false (s->ended);
  s->ended = TRUE;
  s->error = error ? g_error_copy (error) : NULL;
}

static void
stream_result_init (StreamResult *s)
{
  memset (s, 0, sizeof *s);
  s->ids = g_ptr_array_new_with_free_func (g_free);
}

static void
stream_result_clear (StreamResult *s)
{
  g_ptr_array_unref (s->ids);
  g_clear_error (&s->error);
}

static void
watch (ProtoClient *client, const char *id, StreamResult *s)
{
  Drover__V1__WatchJobRequest req = DROVER__V1__WATCH_JOB_REQUEST__INIT;

  req.id = (char *)id;
  s->stream = proto_client_stream (client, DROVER_SCHED_SERVICE,
                                   DROVER_SCHED_METHOD_WATCH_JOB, &req.base,
                                   on_stream_message, on_stream_end, s);
  g_assert_nonnull (s->stream);
}

/* Watches job ID through CLIENT into S (made anew) until the stream ends;
 * CANCEL_AFTER: the client cancels after that many messages (0: never). */
static void
watch_to_end (ProtoClient *client, const char *id, guint cancel_after,
              StreamResult *s)
{
  stream_result_init (s);
  s->cancel_after = cancel_after;
  watch (client, id, s);
  run_until (&s->ended);
}

/* Watches job ID through CLIENT into S (made anew) until N messages
 * came; the stream stays open. */
static void
watch_open (ProtoClient *client, const char *id, guint n, StreamResult *s)
{
  stream_result_init (s);
  watch (client, id, s);
  while (s->ids->len < n)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

static void
test_stream (Fixture *f, gconstpointer data)
{
  StreamResult s;

  /* N messages in order, then a clean end. */
  watch_to_end (f->client, "count:200", 0, &s);
  g_assert_no_error (s.error);
  g_assert_cmpuint (s.ids->len, ==, 200);
  for (guint i = 0; i < s.ids->len; i++)
    {
      g_autofree char *want = g_strdup_printf ("job-%u", i);

      g_assert_cmpstr (g_ptr_array_index (s.ids, i), ==, want);
    }
  stream_result_clear (&s);

  /* Zero messages. */
  watch_to_end (f->client, "count:0", 0, &s);
  g_assert_no_error (s.error);
  g_assert_cmpuint (s.ids->len, ==, 0);
  stream_result_clear (&s);

  /* A message, then an error status. */
  watch_to_end (f->client, "broken", 0, &s);
  g_assert_error (s.error, PROTO_ERROR, PROTO_STATUS_ABORTED);
  g_assert_cmpstr (s.error->message, ==, "job exploded");
  g_assert_cmpuint (s.ids->len, ==, 1);
  stream_result_clear (&s);

  /* The client cancels: its end says CANCELLED, the server's cancel func
   * runs (and the handler finishes the call). */
  watch_to_end (f->client, "forever", 3, &s);
  g_assert_error (s.error, PROTO_ERROR, PROTO_STATUS_CANCELLED);
  g_assert_cmpuint (s.ids->len, ==, 3);
  wait_atomic (&f->ts->cancels, 1);
  wait_atomic (&f->ts->streams_open, 0);
  stream_result_clear (&s);
}

static void
test_stream_server_stop (Fixture *f, gconstpointer data)
{
  StreamResult s, s2;

  /* Stopping the server cancels open streams: the handler's cancel func
   * runs during the stop, the client sees an error end. */
  watch_open (f->client, "forever", 2, &s);
  g_clear_pointer (&f->ts, test_server_stop);
  run_until (&s.ended);
  g_assert_nonnull (s.error);
  g_assert_true (s.error->domain == PROTO_ERROR);
  g_assert_cmpint (s.error->code, !=, PROTO_STATUS_OK);
  stream_result_clear (&s);

  /* Freeing a client with a stream open ends it with CANCELLED, inside
   * proto_client_free. */
  f->ts = test_server_start (NULL);
  g_free (f->target);
  f->target = test_server_target (f->ts);
  g_clear_pointer (&f->client, proto_client_free);
  f->client = proto_client_new (f->target, NULL, PROTO_ROLES_ALL, NULL, NULL);
  watch_open (f->client, "forever", 1, &s2);
  g_clear_pointer (&f->client, proto_client_free);
  g_assert_true (s2.ended);
  g_assert_error (s2.error, PROTO_ERROR, PROTO_STATUS_CANCELLED);
  wait_atomic (&f->ts->cancels, 1);
  stream_result_clear (&s2);
}

/* --- blocking calls, no main loop ----------------------------------------- */

static gboolean
stop_after_three (const ProtobufCMessage *msg, gpointer user_data)
{
  GPtrArray *ids = user_data;

  g_ptr_array_add (ids, g_strdup (((const Drover__V1__Job *)msg)->id));
  return ids->len < 3;
}

static gboolean
collect_all (const ProtobufCMessage *msg, gpointer user_data)
{
  g_ptr_array_add (user_data, g_strdup (((const Drover__V1__Job *)msg)->id));
  return TRUE;
}

/* GetVm NAME as a blocking call of CLIENT (TIMEOUT_MS, 0: none): the
 * host the test server answers (NAME), or NULL with ERROR. */
static char *
get_vm_sync (ProtoClient *client, const char *name, gint64 timeout_ms,
             GError **error)
{
  Drover__V1__GetVmRequest req = DROVER__V1__GET_VM_REQUEST__INIT;
  Drover__V1__VmReply *reply;
  char *host;

  req.name = (char *)name;
  reply = (Drover__V1__VmReply *)proto_client_call_sync (
      client, DROVER_SCHED_SERVICE, DROVER_SCHED_METHOD_GET_VM, &req.base,
      timeout_ms, error);
  if (!reply)
    return NULL;
  host = g_strdup (reply->vm->host);
  protobuf_c_message_free_unpacked (&reply->base, NULL);
  return host;
}

/* WatchJob ID as a blocking stream of CLIENT: IDS (emptied first) gets
 * the ids ON_MESSAGE collects. */
static gboolean
watch_sync (ProtoClient *client, const char *id, ProtoStreamSyncFunc on_message,
            GPtrArray *ids, GError **error)
{
  Drover__V1__WatchJobRequest req = DROVER__V1__WATCH_JOB_REQUEST__INIT;

  g_ptr_array_set_size (ids, 0);
  req.id = (char *)id;
  return proto_client_stream_sync (client, DROVER_SCHED_SERVICE,
                                   DROVER_SCHED_METHOD_WATCH_JOB, &req.base,
                                   on_message, ids, error);
}

static void
test_sync (void)
{
  TestServer *ts = test_server_start (NULL);
  g_autofree char *target = test_server_target (ts);
  g_autoptr (GError) error = NULL;
  /* A context nobody iterates: blocking calls must not need it. */
  g_autoptr (GMainContext) idle_ctx = g_main_context_new ();
  g_autoptr (ProtoClient) client
      = proto_client_new (target, NULL, PROTO_ROLES_ALL, idle_ctx, &error);
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *host = NULL, *later = NULL, *missing = NULL;

  host = get_vm_sync (client, "sync-1", 5000, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (host, ==, "sync-1");
  later = get_vm_sync (client, "later-2", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (later, ==, "later-2");
  missing = get_vm_sync (client, "missing", 5000, &error);
  g_assert_null (missing);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (watch_sync (client, "count:50", collect_all, ids, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (ids->len, ==, 50);
  g_assert_cmpstr (g_ptr_array_index (ids, 49), ==, "job-49");

  /* ON_MESSAGE returning FALSE cancels; that is a success. */
  g_assert_true (watch_sync (client, "forever", stop_after_three, ids, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (ids->len, ==, 3);
  g_assert_cmpstr (g_ptr_array_index (ids, 2), ==, "job-2");
  wait_atomic (&ts->cancels, 1);

  g_assert_false (watch_sync (client, "broken", collect_all, ids, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_ABORTED);
  g_assert_cmpuint (ids->len, ==, 1);
  g_clear_error (&error);

  g_clear_pointer (&client, proto_client_free);
  test_server_stop (ts);
}

/* --- mutual TLS, identities and authorization ---------------------------- */

static void
run_openssl (const char *dir, const char *const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *err_out = NULL;
  int status = 0;

  g_ptr_array_add (argv, (char *)"openssl");
  for (guint i = 0; args[i]; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (dir, (char **)argv->pdata, NULL,
                G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                NULL, &err_out, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("openssl failed: %s", err_out);
}

/* openssl req -x509 in DIR: a new P-256 key KEY and a certificate OUT
 * for SUBJECT, valid 2 days, with the arguments EXTRA (NULL-terminated;
 * a NULL in it ends them early). */
static void
openssl_req (const char *dir, const char *key, const char *out,
             const char *subject, const char *const *extra)
{
  g_autoptr (GStrvBuilder) args = g_strv_builder_new ();
  g_auto (GStrv) argv = NULL;

  g_strv_builder_add_many (args, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                           "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                           key, "-out", out, "-days", "2", "-subj", subject,
                           NULL);
  for (guint i = 0; extra[i]; i++)
    g_strv_builder_add (args, extra[i]);
  argv = g_strv_builder_end (args);
  run_openssl (dir, (const char *const *)argv);
}

/* DIR/NAME.{key,pem}: a CA, and what `openssl ca` needs to revoke
 * certificates it signed (DIR/NAME.db/). */
static void
make_ca (const char *dir, const char *name)
{
  g_autofree char *key = g_strdup_printf ("%s.key", name);
  g_autofree char *pem = g_strdup_printf ("%s.pem", name);
  g_autofree char *subj = g_strdup_printf ("/CN=%s", name);
  g_autofree char *db = g_strdup_printf ("%s/%s.db", dir, name);
  g_autofree char *index = g_build_filename (db, "index.txt", NULL);
  g_autofree char *cnf = g_build_filename (db, "ca.cnf", NULL);
  g_autofree char *conf
      = g_strdup_printf ("[ca]\ndefault_ca = drover\n[drover]\ndatabase = %s\n"
                         "default_md = sha256\ndefault_crl_days = 2\n",
                         index);
  const char *extra[]
      = { "-addext", "keyUsage=critical,keyCertSign,cRLSign", NULL };

  openssl_req (dir, key, pem, subj, extra);
  g_assert_cmpint (g_mkdir_with_parents (db, 0700), ==, 0);
  g_assert_true (g_file_set_contents (index, "", 0, NULL));
  g_assert_true (g_file_set_contents (cnf, conf, -1, NULL));
}

/* Writes DIR/SUB/{ca,cert,key}.pem: a leaf with SUBJECT signed by CA,
 * trusting TRUST. */
static void
make_leaf (const char *dir, const char *sub, const char *subject,
           const char *san, const char *ca, const char *trust)
{
  g_autofree char *subdir = g_build_filename (dir, sub, NULL);
  g_autofree char *key = g_build_filename (subdir, "key.pem", NULL);
  g_autofree char *cert = g_build_filename (subdir, "cert.pem", NULL);
  g_autofree char *ca_pem = g_strdup_printf ("%s.pem", ca);
  g_autofree char *ca_key = g_strdup_printf ("%s.key", ca);
  g_autofree char *san_ext
      = san ? g_strdup_printf ("subjectAltName=%s", san) : NULL;
  g_autofree char *trust_src = g_strdup_printf ("%s/%s.pem", dir, trust);
  g_autofree char *trust_dst = g_build_filename (subdir, "ca.pem", NULL);
  g_autofree char *contents = NULL;
  const char *extra[] = { "-CA",
                          ca_pem,
                          "-CAkey",
                          ca_key,
                          "-addext",
                          "basicConstraints=critical,CA:FALSE",
                          san_ext ? "-addext" : NULL,
                          san_ext,
                          NULL };

  g_assert_cmpint (g_mkdir_with_parents (subdir, 0700), ==, 0);
  openssl_req (dir, key, cert, subject, extra);
  g_assert_true (g_file_get_contents (trust_src, &contents, NULL, NULL));
  g_assert_true (g_file_set_contents (trust_dst, contents, -1, NULL));
}

/* Revokes DIR/SUB/cert.pem in CA's database and writes the CA's new CRL
 * to DIR/<CA>.crl. */
static void
revoke_cert (const char *dir, const char *ca, const char *sub)
{
  g_autofree char *cnf = g_strdup_printf ("%s.db/ca.cnf", ca);
  g_autofree char *ca_pem = g_strdup_printf ("%s.pem", ca);
  g_autofree char *ca_key = g_strdup_printf ("%s.key", ca);
  g_autofree char *cert = g_build_filename (sub, "cert.pem", NULL);
  g_autofree char *crl = g_strdup_printf ("%s.crl", ca);
  const char *rev[] = { "ca",    "-config", cnf,       "-keyfile", ca_key,
                        "-cert", ca_pem,    "-revoke", cert,       NULL };
  const char *gen[] = { "ca",   "-config", cnf,    "-keyfile", ca_key, "-cert",
                        ca_pem, "-gencrl", "-out", crl,        NULL };

  run_openssl (dir, rev);
  run_openssl (dir, gen);
}

static char *tls_dir;

static void
tls_setup (void)
{

  if (tls_dir)
    return;
  tls_dir = test_tmp_dir_new ("drover-proto-tls-XXXXXX");
  make_ca (tls_dir, "ca");
  make_ca (tls_dir, "other-ca");
  make_leaf (tls_dir, "server", "/O=scheduler/CN=drover-scheduler",
             "IP:127.0.0.1", "ca", "ca");
  /* The same address with another role, for the reload test. */
  make_leaf (tls_dir, "server-as-host", "/O=host/CN=host9", "IP:127.0.0.1",
             "ca", "ca");
  make_leaf (tls_dir, "client", "/O=operator/CN=drover-client", NULL, "ca",
             "ca");
  make_leaf (tls_dir, "viewer", "/O=viewer/CN=someone", NULL, "ca", "ca");
  make_leaf (tls_dir, "revoked", "/O=operator/CN=former", NULL, "ca", "ca");
  /* Signed by our CA but naming no role, or a role that does not exist. */
  make_leaf (tls_dir, "no-role", "/CN=drover-client", NULL, "ca", "ca");
  make_leaf (tls_dir, "bad-role", "/O=root/CN=drover-client", NULL, "ca", "ca");
  /* Signed by another CA, trusting ours: the server must refuse it. */
  make_leaf (tls_dir, "stranger", "/O=operator/CN=stranger", NULL, "other-ca",
             "ca");
  /* Good client cert, but trusts only the other CA: refuses the server. */
  make_leaf (tls_dir, "distrust", "/O=operator/CN=drover-client", NULL, "ca",
             "other-ca");
  /* A server certificate for a DNS name only: not valid for 127.0.0.1. */
  make_leaf (tls_dir, "dns-server", "/O=scheduler/CN=example.com",
             "DNS:example.com", "ca", "ca");
}

static ProtoClient *
tls_client (TestServer *ts, const char *sub, guint server_roles)
{
  g_autofree char *target = test_server_target (ts);
  g_autofree char *dir = sub ? g_build_filename (tls_dir, sub, NULL) : NULL;
  g_autoptr (ProtoTls) tls = NULL;
  g_autoptr (GError) error = NULL;
  ProtoClient *client;

  if (dir)
    {
      tls = proto_tls_load (dir, &error);
      g_assert_no_error (error);
    }
  client = proto_client_new (target, tls, server_roles, NULL, &error);
  g_assert_no_error (error);
  return client;
}

/* ListHosts as the server saw the caller: "CN role". */
static void
list_hosts_sync (ProtoClient *client, char **who, GError **error)
{
  Drover__V1__ListHostsRequest req = DROVER__V1__LIST_HOSTS_REQUEST__INIT;
  Drover__V1__ListHostsReply *reply;

  g_clear_pointer (who, g_free);
  reply = (Drover__V1__ListHostsReply *)proto_client_call_sync (
      client, DROVER_SCHED_SERVICE, DROVER_SCHED_METHOD_LIST_HOSTS, &req.base,
      5000, error);
  if (reply)
    {
      *who = g_strdup_printf ("%s %s", reply->hosts[0]->info->name,
                              reply->hosts[0]->info->accel);
      protobuf_c_message_free_unpacked (&reply->base, NULL);
    }
}

/* ListHosts through CLIENT must fail with STATUS (and, SAYS not NULL,
 * a message saying it). */
static void
assert_list_hosts_fails (ProtoClient *client, ProtoStatus status,
                         const char *says)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *who = NULL;

  list_hosts_sync (client, &who, &error);
  g_assert_error (error, PROTO_ERROR, (gint)status);
  if (says)
    g_assert_nonnull (strstr (error->message, says));
}

/* A client of TS with SUB's certificate (NULL: no TLS) that wants a
 * server of SERVER_ROLES, which the handshake refuses. */
static void
assert_tls_refused (TestServer *ts, const char *sub, guint server_roles)
{
  g_autoptr (ProtoClient) client = tls_client (ts, sub, server_roles);

  assert_list_hosts_fails (client, PROTO_STATUS_UNAVAILABLE, NULL);
}

static void
test_tls (void)
{
  g_autofree char *server_dir = NULL;
  TestServer *ts;
  g_autoptr (GError) error = NULL;
  g_autofree char *who = NULL;

  tls_setup ();
  server_dir = g_build_filename (tls_dir, "server", NULL);
  ts = test_server_start (server_dir);

  /* Good client: the call works and the server sees our CN and role
   * (async and blocking). */
  {
    g_autoptr (ProtoClient) client
        = tls_client (ts, "client", PROTO_ROLE_SCHEDULER);
    Drover__V1__ListHostsRequest req = DROVER__V1__LIST_HOSTS_REQUEST__INIT;
    Result r = { 0 };

    list_hosts_sync (client, &who, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (who, ==, "drover-client operator");
    proto_client_call (client, DROVER_SCHED_SERVICE,
                       DROVER_SCHED_METHOD_LIST_HOSTS, &req.base, 5000,
                       on_reply, &r);
    run_until (&r.done);
    g_assert_no_error (r.error);
    g_assert_cmpstr (r.host, ==, "drover-client");
    result_clear (&r);
  }

  /* Certificate from a different CA: refused. */
  assert_tls_refused (ts, "stranger", PROTO_ROLES_ALL);
  /* No TLS at all: refused. */
  assert_tls_refused (ts, NULL, PROTO_ROLES_ALL);
  /* The client does not trust the server's CA: refused. */
  assert_tls_refused (ts, "distrust", PROTO_ROLES_ALL);
  /* A client that wants this very server by name, and one that wants
   * another. */
  {
    g_autofree char *target = test_server_target (ts);
    g_autofree char *dir = g_build_filename (tls_dir, "client", NULL);
    g_autoptr (ProtoTls) tls = proto_tls_load (dir, &error);
    g_autoptr (ProtoClient) right = proto_client_new_for (
        target, tls, PROTO_ROLE_SCHEDULER, "drover-scheduler", NULL, &error);
    g_autoptr (ProtoClient) wrong = proto_client_new_for (
        target, tls, PROTO_ROLE_SCHEDULER, "host2", NULL, &error);

    g_assert_no_error (error);
    list_hosts_sync (right, &who, &error);
    g_assert_no_error (error);
    assert_list_hosts_fails (wrong, PROTO_STATUS_UNAVAILABLE, NULL);
  }
  /* The server is a scheduler; a client that only talks to hosts refuses
   * it. */
  assert_tls_refused (ts, "client", PROTO_ROLE_HOST);
  test_server_stop (ts);

  /* A server whose certificate does not name 127.0.0.1: refused, so the
   * IP SAN is what makes the good case work. */
  g_free (server_dir);
  server_dir = g_build_filename (tls_dir, "dns-server", NULL);
  ts = test_server_start (server_dir);
  assert_tls_refused (ts, "client", PROTO_ROLES_ALL);
  test_server_stop (ts);
}

/* GetVm as CLIENT; returns the error (or NULL). */
static GError *
get_vm_error (ProtoClient *client)
{
  Result r = { 0 };
  GError *error;

  call_get_vm (client, "x", 5000, &r);
  error = g_steal_pointer (&r.error);
  result_clear (&r);
  return error;
}

static void
test_tls_roles (void)
{
  g_autofree char *server_dir = NULL;
  g_autofree char *who = NULL;
  g_autoptr (GError) error = NULL;
  TestServer *ts;

  tls_setup ();
  server_dir = g_build_filename (tls_dir, "server", NULL);
  ts = test_server_start (server_dir);

  /* GetVm is for operators: a viewer is denied, naming its role. */
  {
    g_autoptr (ProtoClient) op = tls_client (ts, "client", PROTO_ROLES_ALL);
    g_autoptr (ProtoClient) viewer = tls_client (ts, "viewer", PROTO_ROLES_ALL);

    error = get_vm_error (op);
    g_assert_no_error (error);
    error = get_vm_error (viewer);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
    g_assert_nonnull (strstr (error->message, "role viewer"));
    g_clear_error (&error);
    list_hosts_sync (viewer, &who, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (who, ==, "someone viewer");
  }
  /* A method without a row in the table: denied to everyone. */
  {
    g_autoptr (ProtoClient) op = tls_client (ts, "client", PROTO_ROLES_ALL);
    Drover__V1__StopVmRequest req = DROVER__V1__STOP_VM_REQUEST__INIT;
    ProtobufCMessage *reply = proto_client_call_sync (
        op, DROVER_SCHED_SERVICE, DROVER_SCHED_METHOD_STOP_VM, &req.base, 5000,
        &error);

    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
    g_clear_error (&error);
  }
  /* Certificates of the right CA but without a usable role. */
  {
    g_autoptr (ProtoClient) none = tls_client (ts, "no-role", PROTO_ROLES_ALL);
    g_autoptr (ProtoClient) bad = tls_client (ts, "bad-role", PROTO_ROLES_ALL);

    assert_list_hosts_fails (none, PROTO_STATUS_UNAUTHENTICATED, "no O");
    assert_list_hosts_fails (bad, PROTO_STATUS_PERMISSION_DENIED, "O=root");
  }
  test_server_stop (ts);
}

typedef struct
{
  TestServer *ts;
  ProtoTls *tls;
  GError *error;
  gboolean ok;
} Reload;

static void
reload_in_server (gpointer data)
{
  Reload *r = data;

  r->ok = proto_server_reload_tls (r->ts->rpc->server, r->tls, &r->error);
}

/* What SIGHUP does in a daemon, in the server's own context: reload SUB's
 * certificate and key, the CA and, when CRL names a file in tls_dir, that
 * revocation list. */
static void
test_server_reload (TestServer *ts, const char *sub, const char *crl)
{
  g_autofree char *dir = g_build_filename (tls_dir, sub, NULL);
  g_autoptr (GError) error = NULL;
  Reload r = { ts, NULL, NULL, FALSE };

  r.tls = proto_tls_load (dir, &error);
  g_assert_no_error (error);
  if (crl != NULL)
    {
      g_autofree char *path = g_build_filename (tls_dir, crl, NULL);

      g_assert_true (g_file_get_contents (path, &r.tls->crl_pem, NULL, NULL));
    }
  test_thread_call (ts->rpc->thread, reload_in_server, &r);
  g_assert_no_error (r.error);
  g_assert_true (r.ok);
  proto_tls_free (r.tls);
}

static void
test_tls_reload (void)
{
  g_autofree char *server_dir = NULL;
  g_autofree char *who = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (ProtoClient) former = NULL;
  g_autoptr (ProtoClient) early = NULL;
  TestServer *ts;

  tls_setup ();
  server_dir = g_build_filename (tls_dir, "server", NULL);
  ts = test_server_start (server_dir);

  /* A client whose certificate will be revoked, connected before. */
  former = tls_client (ts, "revoked", PROTO_ROLE_SCHEDULER);
  list_hosts_sync (former, &who, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (who, ==, "former operator");

  /* The CA revokes it; SIGHUP brings the CRL and a new server
   * certificate (here one with another role, so that new handshakes can
   * tell which certificate they got). */
  revoke_cert (tls_dir, "ca", "revoked");
  early = tls_client (ts, "client", PROTO_ROLE_SCHEDULER);
  list_hosts_sync (early, &who, &error);
  g_assert_no_error (error);
  test_server_reload (ts, "server-as-host", "ca.crl");

  /* The revoked certificate is refused on its open connection... */
  assert_list_hosts_fails (former, PROTO_STATUS_UNAUTHENTICATED, "revoked");
  /* ...a healthy connection made before the reload stays and works... */
  list_hosts_sync (early, &who, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (who, ==, "drover-client operator");
  /* ...and new connections get the new certificate. */
  {
    g_autoptr (ProtoClient) to_sched
        = tls_client (ts, "client", PROTO_ROLE_SCHEDULER);
    g_autoptr (ProtoClient) to_host
        = tls_client (ts, "client", PROTO_ROLE_HOST);
    g_autoptr (ProtoClient) revoked_new
        = tls_client (ts, "revoked", PROTO_ROLE_HOST);

    assert_list_hosts_fails (to_sched, PROTO_STATUS_UNAVAILABLE, NULL);
    list_hosts_sync (to_host, &who, &error);
    g_assert_no_error (error);
    assert_list_hosts_fails (revoked_new, PROTO_STATUS_UNAUTHENTICATED, NULL);
  }
  /* A client that loads the CRL refuses a revoked server the same way:
   * trust with the CRL identifies the revoked certificate as revoked. */
  {
    g_autofree char *crl_path = g_build_filename (tls_dir, "ca.crl", NULL);
    g_autofree char *ca_path = g_build_filename (tls_dir, "ca.pem", NULL);
    g_autofree char *cert_path
        = g_build_filename (tls_dir, "revoked", "cert.pem", NULL);
    g_autofree char *crl = NULL, *ca = NULL, *cert = NULL, *name = NULL;
    g_autoptr (ProtoTrust) trust = NULL;
    ProtoRole role;

    g_assert_true (g_file_get_contents (crl_path, &crl, NULL, NULL));
    g_assert_true (g_file_get_contents (ca_path, &ca, NULL, NULL));
    g_assert_true (g_file_get_contents (cert_path, &cert, NULL, NULL));
    trust = proto_trust_new (ca, NULL, &error);
    g_assert_no_error (error);
    g_assert_true (proto_trust_identify (trust, cert, strlen (cert), &role,
                                         &name, &error));
    g_assert_cmpint (role, ==, PROTO_ROLE_OPERATOR);
    g_assert_cmpstr (name, ==, "former");
    g_clear_pointer (&trust, proto_trust_unref);
    trust = proto_trust_new (ca, crl, &error);
    g_assert_no_error (error);
    g_assert_false (proto_trust_identify (trust, cert, strlen (cert), &role,
                                          &name, &error));
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED);
    g_clear_error (&error);
    /* A CRL from another CA is not taken. */
    g_clear_pointer (&trust, proto_trust_unref);
    g_free (ca);
    g_free (ca_path);
    ca_path = g_build_filename (tls_dir, "other-ca.pem", NULL);
    g_assert_true (g_file_get_contents (ca_path, &ca, NULL, NULL));
    trust = proto_trust_new (ca, crl, &error);
    g_assert_null (trust);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  }
  g_clear_pointer (&former, proto_client_free);
  g_clear_pointer (&early, proto_client_free);
  test_server_stop (ts);
}

static void
test_tls_load (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *ca = NULL;
  g_autofree char *cert = NULL;
  g_autoptr (ProtoTls) tls = NULL;

  dir = g_dir_make_tmp ("drover-proto-tlsload-XXXXXX", &error);
  g_assert_no_error (error);
  ca = g_build_filename (dir, "ca.pem", NULL);
  cert = g_build_filename (dir, "cert.pem", NULL);

  tls = proto_tls_load (dir, &error);
  g_assert_null (tls);
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_nonnull (strstr (error->message, "ca.pem"));
  g_clear_error (&error);

  g_assert_true (g_file_set_contents (ca, "ca", -1, NULL));
  g_assert_true (g_file_set_contents (cert, "cert", -1, NULL));
  tls = proto_tls_load (dir, &error);
  g_assert_null (tls);
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_nonnull (strstr (error->message, "key.pem"));
  g_clear_error (&error);

  g_remove (ca);
  g_remove (cert);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  /* The tests that run on a Fixture. */
  static const struct
  {
    const char *path;
    void (*func) (Fixture *f, gconstpointer data);
  } with_server[] = {
    { "/proto/rpc/unary", test_unary },
    { "/proto/rpc/async-reply", test_async_reply },
    { "/proto/rpc/errors", test_errors },
    { "/proto/rpc/size-cap", test_size_cap },
    { "/proto/rpc/stream", test_stream },
    { "/proto/rpc/stream-stop", test_stream_server_stop },
  };
  int ret;

  g_test_init (&argc, &argv, NULL);
  proto_init ();
  for (guint i = 0; i < G_N_ELEMENTS (with_server); i++)
    g_test_add (with_server[i].path, Fixture, NULL, fixture_setup,
                with_server[i].func, fixture_teardown);
  g_test_add_func ("/proto/rpc/unavailable", test_unavailable);
  g_test_add_func ("/proto/rpc/sync", test_sync);
  g_test_add_func ("/proto/rpc/tls", test_tls);
  g_test_add_func ("/proto/rpc/tls-roles", test_tls_roles);
  g_test_add_func ("/proto/rpc/tls-reload", test_tls_reload);
  g_test_add_func ("/proto/rpc/tls-load", test_tls_load);
  ret = g_test_run ();
  test_tmp_dir_remove (tls_dir);
  g_free (tls_dir);
  proto_shutdown ();
  return ret;
}
