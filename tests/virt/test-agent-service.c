/* AgentService over real gRPC on 127.0.0.1 (insecure), backed by
 * libvirt's test:///default. The agent runs its own GMainContext in a
 * thread; the test calls it with blocking client calls and checks the
 * outcome through a libvirt connection of its own (the test driver
 * shares its state between the connections of a process). */
#include <glib/gstdio.h>
#include <string.h>

#include "agent-private.h"
#include "stor.h"
#include "test-rpc.h"

#define CALL_TIMEOUT_MS 20000

typedef struct
{
  char *dir;
  TestThread *thread; /* the agent's */
  Agent *agent;
  int port; /* set in the agent's thread before it runs */
  GMutex lock;
  ProtoClient *client;
  GMainContext *client_ctx;
  gboolean sched_wanted;
  virConnectPtr conn; /* the test's own */

  /* Fake scheduler (runs in the agent's context), with_scheduler only. */
  ProtoServer *sched;
  guint registers; /* guarded by lock, like the fields below */
  guint reports;
  guint64 last_seq;
  gboolean seq_backwards;
  gboolean reregister_next;
  char *last_vms; /* "name:state,..." of the latest report */
} Fixture;

static void
sched_register (ProtoServerCall *call, const ProtobufCMessage *msg,
                gpointer data)
{
  Fixture *f = data;
  const Drover__V1__RegisterHostRequest *req = (const void *)msg;
  Drover__V1__RegisterHostReply reply = DROVER__V1__REGISTER_HOST_REPLY__INIT;

  g_assert_cmpstr (req->host->name, ==, "h1");
  g_mutex_lock (&f->lock);
  f->registers++;
  g_mutex_unlock (&f->lock);
  reply.report_interval_ms = 100;
  proto_server_call_reply (call, &reply.base);
}

static void
sched_report (ProtoServerCall *call, const ProtobufCMessage *msg, gpointer data)
{
  Fixture *f = data;
  const Drover__V1__ReportHostRequest *req = (const void *)msg;
  Drover__V1__ReportHostReply reply = DROVER__V1__REPORT_HOST_REPLY__INIT;
  GString *vms = g_string_new ("");

  for (size_t i = 0; i < req->n_vms; i++)
    g_string_append_printf (vms, "%s%s:%s", i ? "," : "", req->vms[i]->name,
                            req->vms[i]->state);
  g_mutex_lock (&f->lock);
  f->reports++;
  if (req->seq <= f->last_seq)
    f->seq_backwards = TRUE;
  f->last_seq = req->seq;
  g_free (f->last_vms);
  f->last_vms = g_string_free (vms, FALSE);
  reply.reregister = f->reregister_next;
  f->reregister_next = FALSE;
  g_mutex_unlock (&f->lock);
  proto_server_call_reply (call, &reply.base);
}

/* In the agent's thread: the fake scheduler (if wanted) and the agent. */
static gboolean
agent_serve (gpointer data, GError **error)
{
  Fixture *f = data;
  const TestRpcMethod methods[] = {
    { DROVER_SCHED_METHOD_REGISTER_HOST, sched_register },
    { DROVER_SCHED_METHOD_REPORT_HOST, sched_report },
  };
  const TestRpcService sched = {
    DROVER_SCHED_SERVICE,  methods, G_N_ELEMENTS (methods), proto_sched_authz,
    proto_sched_authz_len,
  };
  GMainContext *ctx = g_main_context_get_thread_default ();
  AgentConfig config = { 0 };
  g_autofree char *sched_addr = NULL;

  config.name = (char *)"h1";
  config.listen = (char *)"127.0.0.1:0";
  config.scheduler = NULL; /* no reporting unless with a fake scheduler */
  if (f->sched_wanted)
    {
      f->sched = test_rpc_server_new (&sched, f, ctx, NULL, error);
      if (!f->sched)
        return FALSE;
      sched_addr = test_rpc_address (f->sched);
      config.scheduler = sched_addr;
    }
  config.libvirt_uri = (char *)"test:///default";
  config.accel = AGENT_ACCEL_TCG;
  config.data_dir = f->dir;
  config.insecure = TRUE;
  f->agent = agent_new (&config, ctx, error);
  if (!f->agent || !agent_start (f->agent, error))
    return FALSE;
  f->port = agent_get_port (f->agent);
  return TRUE;
}

static void
agent_close (gpointer data)
{
  Fixture *f = data;

  agent_stop (f->agent);
  g_clear_pointer (&f->agent, agent_unref);
  g_clear_pointer (&f->sched, proto_server_free);
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *target = NULL;

  f->sched_wanted = data != NULL;
  f->dir = test_tmp_dir_new ("drover-svc-XXXXXX");
  g_mutex_init (&f->lock);
  f->thread = test_thread_start ("agent", agent_serve, agent_close, f);

  f->conn = virConnectOpen ("test:///default");
  g_assert_nonnull (f->conn);
  target = g_strdup_printf ("127.0.0.1:%d", f->port);
  f->client_ctx = g_main_context_new ();
  f->client
      = proto_client_new (target, NULL, PROTO_ROLES_ALL, f->client_ctx, &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  proto_client_free (f->client);
  g_main_context_unref (f->client_ctx);
  test_thread_stop (f->thread);
  virConnectClose (f->conn);
  g_mutex_clear (&f->lock);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
  g_free (f->last_vms);
}

static ProtobufCMessage *
call (Fixture *f, guint method, const ProtobufCMessage *req, GError **error)
{
  return proto_client_call_sync (f->client, DROVER_AGENT_SERVICE, method, req,
                                 CALL_TIMEOUT_MS, error);
}

static Drover__V1__VmStatus *
create_vm (Fixture *f, const char *name, guint64 memory, guint64 disk,
           GError **error)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  Drover__V1__AgentCreateVmRequest req
      = DROVER__V1__AGENT_CREATE_VM_REQUEST__INIT;
  Drover__V1__AgentVmReply *reply;
  Drover__V1__VmStatus *status;

  spec.name = (char *)name;
  spec.vcpus = 1;
  spec.memory = memory;
  spec.disk = disk;
  spec.cmdline = (char *)"";
  req.spec = &spec;
  reply = (void *)call (f, DROVER_AGENT_METHOD_CREATE_VM, &req.base, error);
  if (!reply)
    return NULL;
  status = g_steal_pointer (&reply->vm);
  proto_msg_free (reply);
  return status;
}

static Drover__V1__VmStatus *
vm_call (Fixture *f, guint method, const char *name, gboolean force,
         GError **error)
{
  Drover__V1__VmRequest vreq = DROVER__V1__VM_REQUEST__INIT;
  Drover__V1__StopVmRequest sreq = DROVER__V1__STOP_VM_REQUEST__INIT;
  const ProtobufCMessage *req = &vreq.base;
  Drover__V1__AgentVmReply *reply;
  Drover__V1__VmStatus *status;

  vreq.name = sreq.name = (char *)name;
  sreq.force = force;
  if (method == DROVER_AGENT_METHOD_STOP_VM)
    req = &sreq.base;
  reply = (void *)call (f, method, req, error);
  if (!reply)
    return NULL;
  status = g_steal_pointer (&reply->vm);
  proto_msg_free (reply);
  return status;
}

static gboolean
delete_vm (Fixture *f, const char *name, gboolean force, GError **error)
{
  Drover__V1__DeleteVmRequest req = DROVER__V1__DELETE_VM_REQUEST__INIT;
  ProtobufCMessage *reply;

  req.name = (char *)name;
  req.force = force;
  reply = call (f, DROVER_AGENT_METHOD_DELETE_VM, &req.base, error);
  proto_msg_free (reply);
  return reply != NULL;
}

static int
n_domains (Fixture *f)
{
  return virConnectNumOfDomains (f->conn)
         + virConnectNumOfDefinedDomains (f->conn);
}

static char *
disk_of (Fixture *f, const char *name)
{
  g_autofree char *file = g_strconcat (name, ".qcow2", NULL);

  return g_build_filename (f->dir, "disks", file, NULL);
}

#define MiB (1024ULL * 1024)

static void
test_lifecycle (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__VmStatus) st = NULL;
  g_autoptr (Drover__V1__HostInfo) host = NULL;
  g_autofree char *disk = disk_of (f, "vm-1");
  Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;
  int before = n_domains (f);
  virDomainPtr dom;
  const struct
  {
    guint method;
    gboolean force;
    const char *state;
  } steps[] = {
    { DROVER_AGENT_METHOD_STOP_VM, FALSE, "shutoff" },
    { DROVER_AGENT_METHOD_START_VM, FALSE, "running" },
    { DROVER_AGENT_METHOD_STOP_VM, TRUE, "shutoff" },
    { DROVER_AGENT_METHOD_START_VM, FALSE, "running" },
    { DROVER_AGENT_METHOD_DESTROY_VM, FALSE, "shutoff" },
  };

  st = create_vm (f, "vm-1", 64 * MiB, 16 * MiB, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (st->name, ==, "vm-1");
  g_assert_cmpstr (st->state, ==, "running");
  g_assert_cmpuint (st->vcpus, ==, 1);
  g_assert_cmpuint (st->memory, ==, 64 * MiB);
  g_assert_cmpstr (st->spec->accel, ==, "tcg");
  g_assert_cmpuint (st->spec->disk, ==, 16 * MiB);
  /* qemu-img really made the disk; the test driver does not open it. */
  g_assert_true (g_file_test (disk, G_FILE_TEST_IS_REGULAR));
  g_assert_cmpint (n_domains (f), ==, before + 1);
  dom = virDomainLookupByName (f->conn, "vm-1");
  g_assert_nonnull (dom);
  g_assert_cmpint (virDomainIsActive (dom), ==, 1);
  virDomainFree (dom);
  g_clear_pointer (&st, proto_msg_free);

  /* Duplicate. */
  g_assert_null (create_vm (f, "vm-1", 64 * MiB, 0, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_ALREADY_EXISTS);
  g_clear_error (&error);
  g_assert_true (g_file_test (disk, G_FILE_TEST_IS_REGULAR));

  host = (void *)call (f, DROVER_AGENT_METHOD_GET_HOST_INFO, &empty.base,
                       &error);
  g_assert_no_error (error);
  g_assert_cmpstr (host->name, ==, "h1");
  g_assert_cmpstr (host->accel, ==, "tcg");
  g_assert_cmpuint (host->cpus, ==, 16);

  /* Running and not forced: refused, nothing changes. */
  g_assert_false (delete_vm (f, "vm-1", FALSE, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_FAILED_PRECONDITION);
  g_assert_nonnull (strstr (
      error->message, "VM vm-1 is running; stop it first or use --force"));
  g_clear_error (&error);
  g_assert_true (g_file_test (disk, G_FILE_TEST_IS_REGULAR));

  /* Stop, start, forced stop, start, destroy: the state after each. */
  for (guint i = 0; i < G_N_ELEMENTS (steps); i++)
    {
      st = vm_call (f, steps[i].method, "vm-1", steps[i].force, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (st->state, ==, steps[i].state);
      g_clear_pointer (&st, proto_msg_free);
    }

  g_assert_true (delete_vm (f, "vm-1", FALSE, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (disk, G_FILE_TEST_EXISTS));
  g_assert_cmpint (n_domains (f), ==, before);

  g_assert_null (
      vm_call (f, DROVER_AGENT_METHOD_START_VM, "vm-1", FALSE, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
  g_assert_cmpstr (error->message, ==, "no VM named 'vm-1' on host 'h1'");
  g_clear_error (&error);

  /* Forced delete of a running VM. */
  st = create_vm (f, "vm-2", 64 * MiB, 0, &error);
  g_assert_no_error (error);
  g_assert_true (delete_vm (f, "vm-2", TRUE, &error));
  g_assert_no_error (error);
  g_assert_cmpint (n_domains (f), ==, before);
}

static void
test_refused (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int before = n_domains (f);
  const char *methods_names[] = { "nope", "test" };

  /* Bad name: INVALID_ARGUMENT, nothing defined, nothing on disk. */
  g_assert_null (create_vm (f, "Bad/..", 64 * MiB, 16 * MiB, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpint (n_domains (f), ==, before);

  g_assert_null (create_vm (f, "small", 1 * MiB, 0, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  g_clear_error (&error);

  {
    Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
    Drover__V1__AgentCreateVmRequest req
        = DROVER__V1__AGENT_CREATE_VM_REQUEST__INIT;
    ProtobufCMessage *reply;

    spec.name = (char *)"k";
    spec.vcpus = 1;
    spec.memory = 64 * MiB;
    spec.kernel = (char *)"boot/vmlinuz";
    req.spec = &spec;
    reply = call (f, DROVER_AGENT_METHOD_CREATE_VM, &req.base, &error);
    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
    g_clear_error (&error);

    spec.kernel = (char *)"/nonexistent/vmlinuz";
    reply = call (f, DROVER_AGENT_METHOD_CREATE_VM, &req.base, &error);
    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
    g_clear_error (&error);

    spec.kernel = (char *)"";
    spec.accel = (char *)"kvm";
    reply = call (f, DROVER_AGENT_METHOD_CREATE_VM, &req.base, &error);
    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_FAILED_PRECONDITION);
    g_clear_error (&error);

    req.spec = NULL;
    reply = call (f, DROVER_AGENT_METHOD_CREATE_VM, &req.base, &error);
    g_assert_null (reply);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
    g_clear_error (&error);
  }

  /* More memory than the test driver's 3 GiB node, more disk than the
   * filesystem: RESOURCE_EXHAUSTED, nothing left behind. */
  g_assert_null (create_vm (f, "big", 8192 * MiB, 0, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
  g_clear_error (&error);
  {
    g_autofree char *disk = disk_of (f, "huge");
    guint64 total = 0;

    g_assert_true (stor_fs_space (f->dir, &total, NULL, NULL));
    g_assert_null (create_vm (f, "huge", 64 * MiB, total * 100000, &error));
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
    g_assert_nonnull (strstr (error->message, "not enough space in"));
    g_clear_error (&error);
    g_assert_false (g_file_test (disk, G_FILE_TEST_EXISTS));
  }
  g_assert_cmpint (n_domains (f), ==, before);

  /* Unknown VMs, and the driver's own non-Drover "test" domain. */
  for (guint i = 0; i < G_N_ELEMENTS (methods_names); i++)
    {
      const char *name = methods_names[i];
      g_autofree char *msg
          = g_strdup_printf ("no VM named '%s' on host 'h1'", name);
      Drover__V1__ConsoleRequest creq = DROVER__V1__CONSOLE_REQUEST__INIT;

      g_assert_null (
          vm_call (f, DROVER_AGENT_METHOD_STOP_VM, name, TRUE, &error));
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
      g_assert_cmpstr (error->message, ==, msg);
      g_clear_error (&error);
      g_assert_null (
          vm_call (f, DROVER_AGENT_METHOD_DESTROY_VM, name, FALSE, &error));
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
      g_clear_error (&error);
      g_assert_false (delete_vm (f, name, TRUE, &error));
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
      g_clear_error (&error);
      creq.name = (char *)name;
      g_assert_null (
          call (f, DROVER_AGENT_METHOD_READ_CONSOLE, &creq.base, &error));
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
      g_clear_error (&error);
    }
  /* The foreign domain survived the forced delete. */
  g_assert_cmpint (n_domains (f), ==, before);
}

static void
test_rollback (Fixture *f, gconstpointer data)
{
  const char *faults[]
      = { "create-after-disk", "create-after-define", "create-after-start" };
  int before = n_domains (f);

  if (!agent_fault_compiled ())
    {
      g_test_skip ("fault points exist in -Dfaults=true builds only");
      return;
    }
  for (guint i = 0; i < G_N_ELEMENTS (faults); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *disk = disk_of (f, "rb");
      g_autoptr (Drover__V1__VmStatus) st = NULL;

      agent_fault_set (faults[i]);
      g_assert_null (create_vm (f, "rb", 64 * MiB, 16 * MiB, &error));
      agent_fault_set (NULL);
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INTERNAL);
      g_assert_nonnull (strstr (error->message, faults[i]));
      g_assert_cmpint (n_domains (f), ==, before);
      g_assert_false (g_file_test (disk, G_FILE_TEST_EXISTS));
      g_clear_error (&error);

      /* Nothing half-made stands in the way of the same name now. */
      st = create_vm (f, "rb", 64 * MiB, 16 * MiB, &error);
      g_assert_no_error (error);
      g_assert_true (delete_vm (f, "rb", TRUE, &error));
      g_assert_no_error (error);
    }
}

static void
test_console (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__VmStatus) st
      = create_vm (f, "con", 64 * MiB, 0, &error);
  g_autofree char *log = g_build_filename (f->dir, "console", "con.log", NULL);
  const struct
  {
    gint64 offset;
    guint32 max;
    const char *data;
    gint64 next;
  } cases[] = {
    { 0, 0, "hello world", 11 },
    { -5, 0, "world", 11 },
    { -100, 0, "hello world", 11 },
    { 6, 3, "wor", 9 },
    { 100, 0, "", 11 },
  };

  g_assert_no_error (error);
  g_assert_cmpstr (st->name, ==, "con");
  /* The test driver runs no QEMU: write the log ourselves. */
  g_assert_true (g_file_set_contents (log, "hello world", -1, &error));
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
      Drover__V1__ConsoleChunk *chunk;

      req.name = (char *)"con";
      req.offset = cases[i].offset;
      req.max_bytes = cases[i].max;
      chunk = (void *)call (f, DROVER_AGENT_METHOD_READ_CONSOLE, &req.base,
                            &error);
      g_assert_no_error (error);
      g_assert_cmpmem (chunk->data.data, chunk->data.len, cases[i].data,
                       strlen (cases[i].data));
      g_assert_cmpint (chunk->next_offset, ==, cases[i].next);
      g_assert_cmpint (chunk->size, ==, 11);
      proto_msg_free (chunk);
    }
  g_assert_true (delete_vm (f, "con", TRUE, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (log, G_FILE_TEST_EXISTS));
}

/* Waits up to 10 s for COND (evaluated under f->lock). */
#define WAIT_FOR(f, cond)                                                      \
  G_STMT_START                                                                 \
  {                                                                            \
    gint64 deadline_ = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;          \
    gboolean ok_ = FALSE;                                                      \
    while (g_get_monotonic_time () < deadline_)                                \
      {                                                                        \
        g_mutex_lock (&(f)->lock);                                             \
        ok_ = (cond);                                                          \
        g_mutex_unlock (&(f)->lock);                                           \
        if (ok_)                                                               \
          break;                                                               \
        g_usleep (10 * 1000);                                                  \
      }                                                                        \
    if (!ok_)                                                                  \
      g_error ("timed out waiting for %s", #cond);                             \
  }                                                                            \
  G_STMT_END

static void
test_reporter (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__VmStatus) st = NULL;
  guint registers, reports;

  /* Registers, then reports every 100 ms as the scheduler asked. */
  WAIT_FOR (f, f->registers == 1 && f->reports >= 3);
  g_mutex_lock (&f->lock);
  g_assert_cmpstr (f->last_vms, ==, "");
  g_mutex_unlock (&f->lock);

  st = create_vm (f, "rep-1", 64 * MiB, 0, &error);
  g_assert_no_error (error);
  WAIT_FOR (f, g_strcmp0 (f->last_vms, "rep-1:running") == 0);

  /* A scheduler that lost track of the host asks it to register again. */
  g_mutex_lock (&f->lock);
  f->reregister_next = TRUE;
  g_mutex_unlock (&f->lock);
  WAIT_FOR (f, f->registers == 2);
  g_mutex_lock (&f->lock);
  reports = f->reports;
  g_mutex_unlock (&f->lock);
  WAIT_FOR (f, f->reports >= reports + 2);

  g_assert_true (delete_vm (f, "rep-1", TRUE, &error));
  g_assert_no_error (error);
  WAIT_FOR (f, g_strcmp0 (f->last_vms, "") == 0);
  g_mutex_lock (&f->lock);
  registers = f->registers;
  g_assert_false (f->seq_backwards);
  g_mutex_unlock (&f->lock);
  g_assert_cmpuint (registers, ==, 2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  proto_init ();
  agent_libvirt_init ();
#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/agent/service/lifecycle", test_lifecycle);
  ADD ("/agent/service/refused", test_refused);
  ADD ("/agent/service/rollback", test_rollback);
  ADD ("/agent/service/console", test_console);
  g_test_add ("/agent/service/reporter", Fixture, "scheduler", fixture_set_up,
              test_reporter, fixture_tear_down);
  return g_test_run ();
}
