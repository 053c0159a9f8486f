/* Snapshots, clones and templates on the scheduler (sched-snapshots.c),
 * over the real protocol with mutual TLS (certificates from scripts/pki):
 * an operator calls the scheduler's service; a fake agent, a ProtoServer
 * in this process with host a's certificate, answers the agent's six
 * methods from a tree it keeps, streams StorageProgress, and can hold a
 * call open (a job in progress) or fail it (disk full).
 *
 * Checked: the job flow (progress copied into the job, done or failed
 * with the agent's error), the stored tree and current snapshot, the
 * listing's order, every validation error (and that nothing reached the
 * agent), one storage job per VM, none while migrating, clones (name,
 * UUID, spec, modes and hosts), templates and what they refuse, the
 * refresh after a report, authorization, and the store's upgrade of a
 * schema 2 database.
 *
 * The service runs in this thread's main context; calls to it are
 * asynchronous and the context is iterated until they complete. */
#include "sched-private.h"
#include "test-pki.h"
#include "test-rpc.h"
#include "test-sched.h"
#include "test-support.h"

#include <gio/gio.h>
#include <string.h>

PROTO_MSG_AUTOPTR (Drover__V1__ListSnapshotsReply)

/* DIR/scheduler (role scheduler), DIR/{a, b} (role host), DIR/ops
 * (operator), DIR/eve (viewer). */
static char *pki_dir;

/* --- fake agent -------------------------------------------------------- */

typedef struct
{
  GPtrArray *calls; /* "create web s1", "clone web web2 full", ... */
  GPtrArray *tree;  /* Drover__V1__Snapshot *, owned */
  char *current;    /* "" = none */
  char *fail_with;  /* non-NULL: the next operation fails with this */
  gboolean hold;    /* the next operation stops after one progress */
  ProtoServerCall *held;
  char *held_name; /* the snapshot or clone the held call is about */
  char *held_kind; /* "create", ... */
  Drover__V1__AgentCloneRequest *last_clone; /* owned */
  ProtoServerCall *held_prepare; /* PrepareIncoming, never answered */
  char *description;             /* of the last create */
  gboolean no_tree;              /* the next final message lacks the tree */
  char *fail_step; /* a clone to another host: "prepare" or "commit" fails */
} FakeAgent;

static void fake_note (FakeAgent *fake, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
fake_note (FakeAgent *fake, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_ptr_array_add (fake->calls, g_strdup_vprintf (format, args));
  va_end (args);
}

static Drover__V1__Snapshot *
fake_find (FakeAgent *fake, const char *name)
{
  for (guint i = 0; i < fake->tree->len; i++)
    {
      Drover__V1__Snapshot *s = fake->tree->pdata[i];

      if (strcmp (s->name, name) == 0)
        return s;
    }
  return NULL;
}

/* The tree as the agent states it: current marked. */
static void
fake_fill_tree (FakeAgent *fake, Drover__V1__StorageProgress *p)
{
  for (guint i = 0; i < fake->tree->len; i++)
    {
      Drover__V1__Snapshot *s = fake->tree->pdata[i];

      s->current = strcmp (s->name, fake->current) == 0;
    }
  p->snapshots = (Drover__V1__Snapshot **)fake->tree->pdata;
  p->n_snapshots = fake->tree->len;
}

/* Applies the operation KIND on NAME to the tree. */
static void
fake_apply (FakeAgent *fake, const char *kind, const char *name)
{
  if (strcmp (kind, "create") == 0)
    {
      Drover__V1__Snapshot s = DROVER__V1__SNAPSHOT__INIT;

      s.name = (char *)name;
      s.parent = fake->current;
      s.created_ms = 1000 + fake->tree->len;
      s.size_bytes = 4 * MiB;
      s.vm_state = (char *)PROTO_VM_RUNNING;
      s.description = fake->description ? fake->description : (char *)"";
      g_ptr_array_add (fake->tree, proto_msg_copy (&s.base));
      g_free (fake->current);
      fake->current = g_strdup (name);
    }
  else if (strcmp (kind, "revert") == 0)
    {
      g_free (fake->current);
      fake->current = g_strdup (name);
    }
  else if (strcmp (kind, "delete") == 0)
    {
      Drover__V1__Snapshot *gone = fake_find (fake, name);

      /* Its children move up to its parent. */
      for (guint i = 0; i < fake->tree->len; i++)
        {
          Drover__V1__Snapshot *s = fake->tree->pdata[i];

          if (strcmp (s->parent, name) == 0)
            {
              g_free (s->parent);
              s->parent = g_strdup (gone->parent);
            }
        }
      if (strcmp (fake->current, name) == 0)
        {
          g_free (fake->current);
          fake->current = g_strdup (gone->parent);
        }
      g_ptr_array_remove (fake->tree, gone);
    }
}

/* Ends CALL, an operation KIND on NAME: completed (the tree afterwards;
 * a clone: its VM), or failed with fake->fail_with. */
static void
fake_end (FakeAgent *fake, ProtoServerCall *call, const char *kind,
          const char *name)
{
  Drover__V1__StorageProgress p = DROVER__V1__STORAGE_PROGRESS__INIT;
  Drover__V1__VmStatus vm = DROVER__V1__VM_STATUS__INIT;

  if (fake->fail_with != NULL)
    {
      p.phase = (char *)PROTO_STOR_PHASE_FAILED;
      p.error = fake->fail_with;
      proto_server_call_send (call, &p.base);
      proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
      g_clear_pointer (&fake->fail_with, g_free);
      return;
    }
  p.phase = (char *)PROTO_STOR_PHASE_COMPLETED;
  p.total = p.processed = 64 * MiB;
  if (strcmp (kind, "clone") == 0)
    {
      vm.name = (char *)name;
      vm.uuid = fake->last_clone->uuid;
      vm.state = (char *)(fake->last_clone->start ? PROTO_VM_RUNNING
                                                  : PROTO_VM_SHUTOFF);
      vm.spec = fake->last_clone->spec;
      p.vm = &vm;
    }
  else
    {
      fake_apply (fake, kind, name);
      if (!fake->no_tree)
        fake_fill_tree (fake, &p);
      fake->no_tree = FALSE;
      vm.name = (char *)"web";
      vm.state = (char *)PROTO_VM_RUNNING;
      vm.current_snapshot = fake->current;
      vm.snapshots = fake->tree->len;
      p.vm = &vm;
    }
  proto_server_call_send (call, &p.base);
  proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
}

/* A progress message, then the end (or a hold). */
static void
fake_run (FakeAgent *fake, ProtoServerCall *call, const char *kind,
          const char *name, const char *phase)
{
  Drover__V1__StorageProgress p = DROVER__V1__STORAGE_PROGRESS__INIT;

  p.phase = (char *)phase;
  p.total = 64 * MiB;
  p.processed = 16 * MiB;
  p.throughput = 32 * MiB;
  proto_server_call_send (call, &p.base);
  if (fake->hold)
    {
      fake->hold = FALSE;
      fake->held = call;
      fake->held_kind = g_strdup (kind);
      fake->held_name = g_strdup (name);
      return;
    }
  fake_end (fake, call, kind, name);
}

static void
fake_release (FakeAgent *fake)
{
  g_autofree char *kind = g_steal_pointer (&fake->held_kind);
  g_autofree char *name = g_steal_pointer (&fake->held_name);

  g_assert_nonnull (fake->held);
  fake_end (fake, g_steal_pointer (&fake->held), kind, name);
}

static void
fake_create (ProtoServerCall *call, const ProtobufCMessage *request,
             gpointer user_data)
{
  const Drover__V1__AgentSnapshotRequest *req = (const void *)request;

  fake_note (user_data, "create %s %s%s%s [%s]", req->vm, req->name,
             req->memory ? " memory" : "", req->quiesce ? " quiesce" : "",
             req->description);
  g_free (((FakeAgent *)user_data)->description);
  ((FakeAgent *)user_data)->description = g_strdup (req->description);
  fake_run (user_data, call, "create", req->name, PROTO_STOR_PHASE_MEMORY);
}

static void
fake_revert (ProtoServerCall *call, const ProtobufCMessage *request,
             gpointer user_data)
{
  const Drover__V1__AgentSnapshotRequest *req = (const void *)request;

  fake_note (user_data, "revert %s %s%s", req->vm, req->name,
             req->paused ? " paused" : "");
  fake_run (user_data, call, "revert", req->name, PROTO_STOR_PHASE_RESTORING);
}

static void
fake_delete (ProtoServerCall *call, const ProtobufCMessage *request,
             gpointer user_data)
{
  const Drover__V1__AgentSnapshotRequest *req = (const void *)request;

  fake_note (user_data, "delete %s %s", req->vm, req->name);
  fake_run (user_data, call, "delete", req->name, PROTO_STOR_PHASE_MERGING);
}

/* Keeps REQ as the last clone asked for and runs it (PHASE). */
static void
fake_run_clone (FakeAgent *fake, ProtoServerCall *call,
                const Drover__V1__AgentCloneRequest *req, const char *phase)
{
  proto_msg_free (fake->last_clone);
  fake->last_clone = proto_msg_copy (&req->base);
  fake_run (fake, call, "clone", req->spec->name, phase);
}

/* Answers CALL with VM STATUS (its name, state, ... as the caller set
 * them). */
static void
fake_reply_vm (ProtoServerCall *call, Drover__V1__VmStatus *status)
{
  Drover__V1__AgentVmReply reply = DROVER__V1__AGENT_VM_REPLY__INIT;

  reply.vm = status;
  proto_server_call_reply (call, &reply.base);
}

static void
fake_clone (ProtoServerCall *call, const ProtobufCMessage *request,
            gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__AgentCloneRequest *req = (const void *)request;

  fake_note (fake, "clone %s %s %s%s%s", req->source, req->spec->name,
             req->mode, req->from_snapshot[0] ? " at " : "",
             req->from_snapshot);
  fake_run_clone (fake, call, req, PROTO_STOR_PHASE_COPYING);
}

static void
fake_list (ProtoServerCall *call, const ProtobufCMessage *request,
           gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__ListSnapshotsRequest *req = (const void *)request;
  Drover__V1__ListSnapshotsReply reply = DROVER__V1__LIST_SNAPSHOTS_REPLY__INIT;
  Drover__V1__StorageProgress p = DROVER__V1__STORAGE_PROGRESS__INIT;

  fake_note (fake, "list %s", req->vm);
  fake_fill_tree (fake, &p);
  reply.snapshots = p.snapshots;
  reply.n_snapshots = p.n_snapshots;
  reply.current = fake->current;
  proto_server_call_reply (call, &reply.base);
}

static void
fake_template (ProtoServerCall *call, const ProtobufCMessage *request,
               gpointer user_data)
{
  const Drover__V1__VmRequest *req = (const void *)request;
  Drover__V1__VmStatus vm = DROVER__V1__VM_STATUS__INIT;

  fake_note (user_data, "template %s", req->name);
  vm.name = req->name;
  vm.state = (char *)PROTO_VM_SHUTOFF;
  vm.template_ = TRUE;
  fake_reply_vm (call, &vm);
}

static void
fake_prepare (ProtoServerCall *call, const ProtobufCMessage *request,
              gpointer user_data)
{
  FakeAgent *fake = user_data;

  fake_note (fake, "prepare");
  fake->held_prepare = call;
}

/* A clone to another host: the destination's three calls and the
 * source's stream. A step named in fail_step fails (the agent cleaned up
 * after itself). */
static gboolean
fake_step_fails (FakeAgent *fake, ProtoServerCall *call, const char *step)
{
  if (g_strcmp0 (fake->fail_step, step) != 0)
    return FALSE;
  g_clear_pointer (&fake->fail_step, g_free);
  proto_server_call_fail (call, PROTO_STATUS_RESOURCE_EXHAUSTED,
                          "not enough space for the image of clone");
  return TRUE;
}

static void
fake_clone_in_prepare (ProtoServerCall *call, const ProtobufCMessage *request,
                       gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__AgentCloneRequest *req = (const void *)request;
  Drover__V1__AgentCloneInReply reply = DROVER__V1__AGENT_CLONE_IN_REPLY__INIT;

  fake_note (fake, "prepare-in %s %s", req->source, req->spec->name);
  if (fake_step_fails (fake, call, "prepare"))
    return;
  reply.token = (char *)"tok";
  reply.channel_address = (char *)"127.0.0.1:9";
  reply.max_bytes = req->spec->disk;
  proto_server_call_reply (call, &reply.base);
}

static void
fake_clone_out (ProtoServerCall *call, const ProtobufCMessage *request,
                gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__AgentCloneRequest *req = (const void *)request;

  fake_note (fake, "clone-out %s %s to %s via %s %s", req->source,
             req->spec->name, req->dest_host, req->channel_address, req->token);
  fake_run_clone (fake, call, req, PROTO_STOR_PHASE_SENDING);
}

static void
fake_clone_in_commit (ProtoServerCall *call, const ProtobufCMessage *request,
                      gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__AgentCloneRequest *req = (const void *)request;
  Drover__V1__VmStatus vm = DROVER__V1__VM_STATUS__INIT;

  fake_note (fake, "commit-in %s%s", req->spec->name,
             req->start ? " start" : "");
  if (fake_step_fails (fake, call, "commit"))
    return;
  vm.name = req->spec->name;
  vm.uuid = req->uuid;
  vm.state = (char *)(req->start ? PROTO_VM_RUNNING : PROTO_VM_SHUTOFF);
  vm.spec = req->spec;
  fake_reply_vm (call, &vm);
}

static void
fake_clone_in_abort (ProtoServerCall *call, const ProtobufCMessage *request,
                     gpointer user_data)
{
  const Drover__V1__AgentCloneRequest *req = (const void *)request;
  Drover__V1__Empty reply = DROVER__V1__EMPTY__INIT;

  fake_note (user_data, "abort-in %s", req->spec->name);
  proto_server_call_reply (call, &reply.base);
}

static ProtoServer *
fake_serve (FakeAgent *fake, const char *host, char **address)
{
  static const TestRpcMethod methods[] = {
    { DROVER_AGENT_METHOD_CREATE_SNAPSHOT, fake_create },
    { DROVER_AGENT_METHOD_REVERT_SNAPSHOT, fake_revert },
    { DROVER_AGENT_METHOD_DELETE_SNAPSHOT, fake_delete },
    { DROVER_AGENT_METHOD_LIST_SNAPSHOTS, fake_list },
    { DROVER_AGENT_METHOD_CLONE_VM, fake_clone },
    { DROVER_AGENT_METHOD_MAKE_TEMPLATE, fake_template },
    { DROVER_AGENT_METHOD_PREPARE_INCOMING, fake_prepare },
    { DROVER_AGENT_METHOD_PREPARE_CLONE_IN, fake_clone_in_prepare },
    { DROVER_AGENT_METHOD_CLONE_OUT, fake_clone_out },
    { DROVER_AGENT_METHOD_COMMIT_CLONE_IN, fake_clone_in_commit },
    { DROVER_AGENT_METHOD_ABORT_CLONE_IN, fake_clone_in_abort },
  };
  const TestRpcService service = {
    DROVER_AGENT_SERVICE,  methods, G_N_ELEMENTS (methods), proto_agent_authz,
    proto_agent_authz_len,
  };
  g_autoptr (ProtoTls) tls = test_rpc_tls (pki_dir, host);
  g_autoptr (GError) error = NULL;
  ProtoServer *server = test_rpc_server_new (&service, fake, NULL, tls, &error);

  g_assert_no_error (error);
  *address = test_rpc_address (server);
  return server;
}

/* --- fixture ----------------------------------------------------------- */

typedef struct
{
  char *dir;
  FakeAgent fake;
  ProtoServer *agent_a, *agent_b;
  SchedService *svc;
  ProtoClient *ops;
  char *target;
} Fixture;

static void
put_vm (Fixture *f, const char *name, const char *host, const char *state)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (GError) error = NULL;

  spec.name = (char *)name;
  spec.vcpus = 2;
  spec.memory = 256 * MiB;
  spec.disk = GiB;
  spec.cmdline = (char *)"console=ttyS0";
  vm = sched_vm_new (&spec, host, state, NULL, 0);
  g_assert_true (sched_store_put_vm (f->svc->store, vm, &error));
  g_assert_no_error (error);
}

static ProtoClient *
client_as (Fixture *f, const char *who)
{
  g_autoptr (ProtoTls) tls = test_rpc_tls (pki_dir, who);
  g_autoptr (GError) error = NULL;
  ProtoClient *client
      = proto_client_new (f->target, tls, PROTO_ROLE_SCHEDULER, NULL, &error);

  g_assert_no_error (error);
  return client;
}

/* Hosts a and b (both the fake agent); on a the running VM web and the
 * shut-off VM off. */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ProtoTls) tls = test_rpc_tls (pki_dir, "scheduler");
  g_autofree char *a_address = NULL;
  g_autofree char *b_address = NULL;
  SchedConfig config = { 0 };

  f->fake.calls = g_ptr_array_new_with_free_func (g_free);
  f->fake.tree = g_ptr_array_new_with_free_func (proto_msg_free);
  f->fake.current = g_strdup ("");
  f->agent_a = fake_serve (&f->fake, "a", &a_address);
  f->agent_b = fake_serve (&f->fake, "b", &b_address);

  f->dir = test_tmp_dir_new ("drover-sched-snap-XXXXXX");
  config.state_dir = f->dir;
  config.cpu_overcommit = SCHED_DEFAULT_CPU_OVERCOMMIT;
  config.memory_reserve = SCHED_DEFAULT_MEMORY_RESERVE;
  f->svc = sched_service_new (&config, tls, &error);
  g_assert_no_error (error);
  g_assert_true (sched_service_start (f->svc, "127.0.0.1:0", &error));
  g_assert_no_error (error);
  f->target = g_strdup_printf ("127.0.0.1:%d", sched_service_get_port (f->svc));
  f->ops = client_as (f, "ops");

  test_sched_put_host (f->svc, "a", a_address);
  test_sched_put_host (f->svc, "b", b_address);
  put_vm (f, "web", "a", PROTO_VM_RUNNING);
  put_vm (f, "off", "a", PROTO_VM_SHUTOFF);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->ops, proto_client_free);
  sched_service_free (f->svc);
  if (f->fake.held != NULL)
    proto_server_call_finish (f->fake.held, PROTO_STATUS_CANCELLED, "end");
  if (f->fake.held_prepare != NULL)
    proto_server_call_finish (f->fake.held_prepare, PROTO_STATUS_CANCELLED,
                              "end");
  proto_server_free (f->agent_a);
  proto_server_free (f->agent_b);
  g_ptr_array_unref (f->fake.calls);
  g_ptr_array_unref (f->fake.tree);
  g_free (f->fake.current);
  g_free (f->fake.fail_with);
  g_free (f->fake.fail_step);
  g_free (f->fake.description);
  g_free (f->fake.held_kind);
  g_free (f->fake.held_name);
  proto_msg_free (f->fake.last_clone);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
  g_free (f->target);
}

/* --- calls ------------------------------------------------------------- */

/* Calls METHOD of the scheduler as CLIENT and iterates until the reply
 * (caller frees), or NULL with ERROR. */
static gpointer
call (ProtoClient *client, guint method, gconstpointer request, GError **error)
{
  return test_rpc_call (client, DROVER_SCHED_SERVICE, method, request, error);
}

static Drover__V1__Job *
create_snapshot (Fixture *f, const char *vm, const char *name,
                 const char *description, GError **error)
{
  Drover__V1__CreateSnapshotRequest req
      = DROVER__V1__CREATE_SNAPSHOT_REQUEST__INIT;

  req.vm = (char *)vm;
  req.name = (char *)name;
  req.memory = TRUE;
  req.description = (char *)(description ? description : "");
  return call (f->ops, DROVER_SCHED_METHOD_CREATE_SNAPSHOT, &req, error);
}

static Drover__V1__Job *
snapshot_op (Fixture *f, guint method, const char *vm, const char *name,
             GError **error)
{
  Drover__V1__SnapshotRequest req = DROVER__V1__SNAPSHOT_REQUEST__INIT;

  req.vm = (char *)vm;
  req.name = (char *)name;
  req.paused = TRUE;
  return call (f->ops, method, &req, error);
}

static Drover__V1__Job *
clone_vm (Fixture *f, const char *source, const char *name, const char *mode,
          const char *from, const char *host, GError **error)
{
  Drover__V1__CloneVmRequest req = DROVER__V1__CLONE_VM_REQUEST__INIT;

  req.source = (char *)source;
  req.name = (char *)name;
  req.mode = (char *)(mode ? mode : "");
  req.from_snapshot = (char *)(from ? from : "");
  req.host = (char *)(host ? host : "");
  return call (f->ops, DROVER_SCHED_METHOD_CLONE_VM, &req, error);
}

static Drover__V1__ListSnapshotsReply *
list_snapshots (ProtoClient *client, const char *vm, GError **error)
{
  Drover__V1__ListSnapshotsRequest req
      = DROVER__V1__LIST_SNAPSHOTS_REQUEST__INIT;

  req.vm = (char *)vm;
  return call (client, DROVER_SCHED_METHOD_LIST_SNAPSHOTS, &req, error);
}

/* Runs a job-returning call that must succeed and waits until its job is
 * done. */
static void
assert_job_done (Fixture *f, Drover__V1__Job *job, GError *error)
{
  g_autoptr (SchedJob) over = NULL;

  g_assert_no_error (error);
  g_assert_nonnull (job);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->error, ==, "");
  g_assert_cmpstr (over->state, ==, PROTO_JOB_DONE);
  g_assert_cmpfloat (over->progress, ==, 1.0);
  proto_msg_free (job);
}

/* ERROR has status CODE and its message contains WHAT; frees it. */
static void
assert_refused (GError *error, ProtoStatus code, const char *what)
{
  g_assert_nonnull (error);
  if (!g_error_matches (error, PROTO_ERROR, (gint)code)
      || strstr (error->message, what) == NULL)
    g_error ("expected status %d with \"%s\", got %d: %s", code, what,
             error->code, error->message);
  g_error_free (error);
}

/* --- the job flow ------------------------------------------------------ */

/* A snapshot job: answered at once, running while the agent works, its
 * progress copied from the stream into the job; done when the agent
 * completes; the tree stored, with the current snapshot. */
static void
test_create_flow (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__Job) job = NULL;
  g_autoptr (SchedJob) mid = NULL;
  g_autoptr (SchedJob) over = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (Drover__V1__ListSnapshotsReply) list = NULL;

  f->fake.hold = TRUE;
  job = create_snapshot (f, "web", "s1", "before the upgrade", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (job->kind, ==, PROTO_JOB_KIND_SNAPSHOT_CREATE);
  g_assert_cmpstr (job->vm, ==, "web");
  g_assert_cmpstr (job->state, ==, PROTO_JOB_RUNNING);
  while (f->fake.held == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_cmpstr (f->fake.calls->pdata[0], ==,
                   "create web s1 memory [before the upgrade]");

  /* The progress message reaches the job (its phase change is stored). */
  for (;;)
    {
      g_clear_pointer (&mid, sched_job_free);
      mid = sched_store_get_job (f->svc->store, job->id, &error);
      g_assert_no_error (error);
      if (mid->storage != NULL)
        break;
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpstr (mid->state, ==, PROTO_JOB_RUNNING);
  g_assert_cmpstr (mid->storage->phase, ==, PROTO_STOR_PHASE_MEMORY);
  g_assert_cmpuint (mid->storage->processed, ==, 16 * MiB);
  g_assert_cmpuint (mid->storage->total, ==, 64 * MiB);
  g_assert_cmpfloat (mid->progress, >, 0.2);
  g_assert_cmpfloat (mid->progress, <, 0.5);
  g_assert_nonnull (strstr (mid->message, "snapshot s1: memory"));

  fake_release (&f->fake);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_DONE);
  g_assert_cmpfloat (over->progress, ==, 1.0);
  g_assert_cmpstr (over->storage->phase, ==, PROTO_STOR_PHASE_COMPLETED);
  g_assert_nonnull (strstr (over->message, "snapshot s1 of VM web created"));

  vm = test_sched_stored_vm (f->svc, "web");
  g_assert_cmpstr (vm->current_snapshot, ==, "s1");
  g_assert_cmpint (vm->snapshots, ==, 1);
  list = list_snapshots (f->ops, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->n_snapshots, ==, 1);
  g_assert_cmpstr (list->current, ==, "s1");
  g_assert_cmpstr (list->snapshots[0]->name, ==, "s1");
  g_assert_true (list->snapshots[0]->current);
  g_assert_cmpuint (list->snapshots[0]->size_bytes, ==, 4 * MiB);
}

/* s1, s2; revert to s1; s3 (a branch); the listing has parents before
 * children, children in creation order, and the current one marked;
 * deleting s2 leaves s1 -> s3. GetVm shows the count and the current. */
static void
test_tree (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  g_autoptr (Drover__V1__ListSnapshotsReply) list = NULL;
  g_autoptr (Drover__V1__VmReply) got = NULL;
  Drover__V1__GetVmRequest get = DROVER__V1__GET_VM_REQUEST__INIT;

  assert_job_done (f, create_snapshot (f, "web", "s1", NULL, &error), error);
  assert_job_done (f, create_snapshot (f, "web", "s2", NULL, &error), error);
  assert_job_done (
      f,
      snapshot_op (f, DROVER_SCHED_METHOD_REVERT_SNAPSHOT, "web", "s1", &error),
      error);
  assert_job_done (f, create_snapshot (f, "web", "s3", NULL, &error), error);
  g_assert_cmpstr (f->fake.calls->pdata[2], ==, "revert web s1 paused");

  list = list_snapshots (f->ops, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->n_snapshots, ==, 3);
  g_assert_cmpstr (list->snapshots[0]->name, ==, "s1");
  g_assert_cmpstr (list->snapshots[1]->name, ==, "s2");
  g_assert_cmpstr (list->snapshots[2]->name, ==, "s3");
  g_assert_cmpuint (list->snapshots[0]->n_children, ==, 2);
  g_assert_cmpstr (list->snapshots[0]->children[0], ==, "s2");
  g_assert_cmpstr (list->snapshots[0]->children[1], ==, "s3");
  g_assert_cmpstr (list->snapshots[2]->parent, ==, "s1");
  g_assert_cmpstr (list->current, ==, "s3");
  g_assert_false (list->snapshots[1]->current);
  g_assert_true (list->snapshots[2]->current);

  get.name = (char *)"web";
  got = call (f->ops, DROVER_SCHED_METHOD_GET_VM, &get, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (got->vm->snapshots, ==, 3);
  g_assert_cmpstr (got->vm->current_snapshot, ==, "s3");

  assert_job_done (
      f,
      snapshot_op (f, DROVER_SCHED_METHOD_DELETE_SNAPSHOT, "web", "s2", &error),
      error);
  g_clear_pointer (&list, proto_msg_free);
  list = list_snapshots (f->ops, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->n_snapshots, ==, 2);
  g_assert_cmpstr (list->snapshots[1]->name, ==, "s3");
  g_assert_cmpuint (list->snapshots[0]->n_children, ==, 1);
}

/* The agent's failure (disk full) fails the job with its message; the
 * stored tree is unchanged. */
static void
test_failed (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  g_autoptr (Drover__V1__Job) job = NULL;
  g_autoptr (SchedJob) over = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (GPtrArray) rows = NULL;

  assert_job_done (f, create_snapshot (f, "web", "s1", NULL, &error), error);
  f->fake.fail_with = g_strdup ("no space left on device for the overlay");
  job = create_snapshot (f, "web", "s2", NULL, &error);
  g_assert_no_error (error);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_FAILED);
  g_assert_nonnull (strstr (over->error, "host 'a'"));
  g_assert_nonnull (strstr (over->error, "no space left on device"));
  g_assert_cmpfloat (over->progress, <, 1.0);

  vm = test_sched_stored_vm (f->svc, "web");
  g_assert_cmpstr (vm->current_snapshot, ==, "s1");
  rows = sched_store_list_snapshots (f->svc->store, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rows->len, ==, 1);

  /* A failed clone leaves no record of the new VM. */
  f->fake.fail_with = g_strdup ("no space left on device");
  g_clear_pointer (&job, proto_msg_free);
  g_clear_pointer (&over, sched_job_free);
  job = clone_vm (f, "web", "web2", NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_FAILED);
  g_clear_pointer (&vm, sched_vm_free);
  vm = sched_store_get_vm (f->svc->store, "web2", &error);
  g_assert_null (vm);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_clear_error (&error);
}

/* A final message whose tree does not show what was done (a host that
 * sent none) does not wipe the stored tree: the scheduler reads the tree
 * from the host instead. */
static void
test_final_without_tree (Fixture *f, gconstpointer data)
{
  GError *error = NULL;

  assert_job_done (f, create_snapshot (f, "web", "s1", NULL, &error), error);
  f->fake.no_tree = TRUE;
  assert_job_done (f, create_snapshot (f, "web", "s2", NULL, &error), error);
  for (;;)
    {
      g_autoptr (SchedVm) vm = test_sched_stored_vm (f->svc, "web");

      if (vm->snapshots == 2)
        {
          g_assert_cmpstr (vm->current_snapshot, ==, "s2");
          break;
        }
      /* Never the empty tree of the final message. */
      g_assert_cmpint (vm->snapshots, ==, 1);
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpstr (f->fake.calls->pdata[2], ==, "list web");
}

/* --- validation -------------------------------------------------------- */

/* Every bad request is refused before anything reaches the agent. */
static void
test_validation (Fixture *f, gconstpointer data)
{
  const char *const bad_names[] = { "../etc", "a/b", "..", "", "UPPER" };
  g_autofree char *long_text = g_strnfill (1025, 'x');
  g_autofree char *max_text = g_strnfill (1024, 'x');
  GError *error = NULL;
  guint calls;

  assert_job_done (f, create_snapshot (f, "web", "s1", NULL, &error), error);
  calls = f->fake.calls->len;

  for (gsize i = 0; i < G_N_ELEMENTS (bad_names); i++)
    {
      g_assert_null (create_snapshot (f, "web", bad_names[i], NULL, &error));
      assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "");
      error = NULL;
      g_assert_null (create_snapshot (f, bad_names[i], "s9", NULL, &error));
      assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "");
      error = NULL;
      g_assert_null (snapshot_op (f, DROVER_SCHED_METHOD_REVERT_SNAPSHOT, "web",
                                  bad_names[i], &error));
      assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "");
      error = NULL;
      g_assert_null (snapshot_op (f, DROVER_SCHED_METHOD_DELETE_SNAPSHOT, "web",
                                  bad_names[i], &error));
      assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "");
      error = NULL;
      g_assert_null (list_snapshots (f->ops, bad_names[i], &error));
      assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "");
      error = NULL;
      g_assert_null (
          clone_vm (f, "web", bad_names[i], NULL, NULL, NULL, &error));
      assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "");
      error = NULL;
      if (bad_names[i][0] != '\0')
        {
          g_assert_null (
              clone_vm (f, "web", "c", NULL, bad_names[i], NULL, &error));
          assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "");
          error = NULL;
        }
    }

  g_assert_null (create_snapshot (f, "web", "s2", long_text, &error));
  assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "at most 1024");
  error = NULL;
  g_assert_null (create_snapshot (f, "nope", "s2", NULL, &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "nope");
  error = NULL;
  g_assert_null (list_snapshots (f->ops, "nope", &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "nope");
  error = NULL;
  g_assert_null (create_snapshot (f, "web", "s1", NULL, &error));
  assert_refused (error, PROTO_STATUS_ALREADY_EXISTS, "'s1'");
  error = NULL;
  g_assert_null (snapshot_op (f, DROVER_SCHED_METHOD_REVERT_SNAPSHOT, "web",
                              "s7", &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "no snapshot 's7'");
  error = NULL;
  g_assert_null (snapshot_op (f, DROVER_SCHED_METHOD_DELETE_SNAPSHOT, "web",
                              "s7", &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "no snapshot 's7'");
  error = NULL;
  g_assert_cmpuint (f->fake.calls->len, ==, calls);

  /* 1 KiB of description is fine. */
  assert_job_done (f, create_snapshot (f, "web", "s2", max_text, &error),
                   error);
}

/* One storage job at a time per VM; none while it migrates. */
static void
test_busy (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  g_autoptr (Drover__V1__Job) job = NULL;
  g_autoptr (SchedJob) migration = NULL;
  g_autoptr (SchedJob) over = NULL;
  guint calls;

  f->fake.hold = TRUE;
  job = create_snapshot (f, "web", "s1", NULL, &error);
  g_assert_no_error (error);
  while (f->fake.held == NULL)
    g_main_context_iteration (NULL, TRUE);
  calls = f->fake.calls->len;

  g_assert_null (create_snapshot (f, "web", "s2", NULL, &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION, job->id);
  error = NULL;
  g_assert_null (clone_vm (f, "web", "web2", NULL, NULL, NULL, &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION, job->id);
  error = NULL;
  g_assert_false (sched_migrator_submit (f->svc->migrator, "web", "b", NULL,
                                         &migration, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
  g_assert_nonnull (strstr (error->message, job->id));
  g_clear_error (&error);
  g_assert_cmpuint (f->fake.calls->len, ==, calls);
  /* It runs to its end: CancelJob refuses it. */
  {
    Drover__V1__CancelJobRequest cancel = DROVER__V1__CANCEL_JOB_REQUEST__INIT;

    cancel.id = job->id;
    g_assert_null (
        call (f->ops, DROVER_SCHED_METHOD_CANCEL_JOB, &cancel, &error));
    assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION,
                    "cannot be cancelled");
    error = NULL;
  }

  fake_release (&f->fake);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_DONE);

  /* A migration in progress (PrepareIncoming held) refuses revert,
   * delete and create, naming its job. */
  g_assert_true (sched_migrator_submit (f->svc->migrator, "web", "b", NULL,
                                        &migration, &error));
  g_assert_no_error (error);
  while (f->fake.held_prepare == NULL)
    g_main_context_iteration (NULL, TRUE);
  calls = f->fake.calls->len;
  g_assert_null (snapshot_op (f, DROVER_SCHED_METHOD_REVERT_SNAPSHOT, "web",
                              "s1", &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION, "is migrating");
  error = NULL;
  g_assert_null (snapshot_op (f, DROVER_SCHED_METHOD_DELETE_SNAPSHOT, "web",
                              "s1", &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION, migration->id);
  error = NULL;
  g_assert_null (create_snapshot (f, "web", "s2", NULL, &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION, "wait or cancel it");
  g_assert_cmpuint (f->fake.calls->len, ==, calls);
}

/* --- clones and templates ---------------------------------------------- */

/* A full clone (the default for a VM): a new UUID, the source's spec
 * under the new name; its record goes from creating to what the agent
 * says. The new name must be free; linked stays on its host; a bad mode,
 * an unknown snapshot and an unknown host are refused. */
static void
test_clone (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  g_autoptr (SchedVm) clone = NULL;
  g_autoptr (SchedVm) src = test_sched_stored_vm (f->svc, "web");
  Drover__V1__AgentCloneRequest *sent;
  guint calls;

  assert_job_done (f, create_snapshot (f, "web", "s1", NULL, &error), error);
  assert_job_done (f, clone_vm (f, "web", "web2", NULL, "s1", NULL, &error),
                   error);
  g_assert_cmpstr (f->fake.calls->pdata[1], ==, "clone web web2 full at s1");
  sent = f->fake.last_clone;
  g_assert_cmpuint (strlen (sent->uuid), ==, 36);
  g_assert_cmpstr (sent->spec->name, ==, "web2");
  g_assert_cmpuint (sent->spec->vcpus, ==, src->spec->vcpus);
  g_assert_cmpuint (sent->spec->memory, ==, src->spec->memory);
  g_assert_cmpuint (sent->spec->disk, ==, src->spec->disk);
  g_assert_cmpstr (sent->spec->cmdline, ==, src->spec->cmdline);
  clone = test_sched_stored_vm (f->svc, "web2");
  g_assert_cmpstr (clone->host, ==, "a");
  g_assert_cmpstr (clone->state, ==, PROTO_VM_SHUTOFF);
  g_assert_cmpstr (clone->base, ==, "");
  g_assert_cmpstr (clone->status->uuid, ==, sent->uuid);

  calls = f->fake.calls->len;
  g_assert_null (clone_vm (f, "web", "web2", NULL, NULL, NULL, &error));
  assert_refused (error, PROTO_STATUS_ALREADY_EXISTS, "web2");
  error = NULL;
  g_assert_null (clone_vm (f, "web", "off", NULL, NULL, NULL, &error));
  assert_refused (error, PROTO_STATUS_ALREADY_EXISTS, "off");
  error = NULL;
  g_assert_null (clone_vm (f, "web", "web", NULL, NULL, NULL, &error));
  assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "new name");
  error = NULL;
  g_assert_null (clone_vm (f, "web", "web3", "linked", NULL, "b", &error));
  assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT,
                  "a linked clone stays on its base's host");
  error = NULL;
  g_assert_null (clone_vm (f, "web", "web3", "full", NULL, "zz", &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "zz");
  error = NULL;
  g_assert_null (clone_vm (f, "web", "web3", "deep", NULL, NULL, &error));
  assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "linked");
  error = NULL;
  g_assert_null (clone_vm (f, "web", "web3", NULL, "s9", NULL, &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "no snapshot 's9'");
  error = NULL;
  g_assert_null (clone_vm (f, "nope", "web3", NULL, NULL, NULL, &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "nope");
  error = NULL;
  g_assert_cmpuint (f->fake.calls->len, ==, calls);
}

/* Iterates until the fake agent was called with TEXT (calls that end no
 * job: the abort of a clone to another host). */
static void
wait_fake_call (Fixture *f, const char *text)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  for (;;)
    {
      for (guint i = 0; i < f->fake.calls->len; i++)
        if (strcmp (f->fake.calls->pdata[i], text) == 0)
          return;
      if (g_get_monotonic_time () > deadline)
        g_error ("the fake agent was never called with \"%s\"", text);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* A clone to another host that fails at STEP ("prepare", "send",
 * "commit"): the job fails naming the host and the reason, the
 * reservation goes, and the destination is told to abort unless its own
 * prepare failed. */
static void
assert_remote_clone_fails (Fixture *f, const char *name, const char *step,
                           const char *host, const char *reason)
{
  GError *error = NULL;
  g_autoptr (Drover__V1__Job) job = NULL;
  g_autoptr (SchedJob) over = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autofree char *abort = g_strdup_printf ("abort-in %s", name);

  if (strcmp (step, "send") == 0)
    f->fake.fail_with = g_strdup (reason);
  else
    f->fake.fail_step = g_strdup (step);
  job = clone_vm (f, "off", name, "full", NULL, "b", &error);
  g_assert_no_error (error);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_FAILED);
  g_assert_nonnull (strstr (over->error, host));
  g_assert_nonnull (strstr (over->error, reason));
  vm = sched_store_get_vm (f->svc->store, name, &error);
  g_assert_null (vm);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_clear_error (&error);
  if (strcmp (step, "prepare") != 0)
    wait_fake_call (f, abort);
  else
    for (guint i = 0; i < f->fake.calls->len; i++)
      g_assert_cmpstr (f->fake.calls->pdata[i], !=, abort);
}

/* A full clone to another host: reserved there at once (state creating
 * on b), then the destination prepares, the source sends (its progress
 * in the job) with the destination's token and address, the destination
 * commits; the record ends on b with the agent's state and the
 * scheduler's UUID. A failure at each step fails the job and drops the
 * reservation; a linked clone and an unknown host are refused before
 * anything starts. */
static void
test_clone_remote (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  g_autoptr (SchedVm) clone = NULL;
  g_autoptr (SchedVm) reserved = NULL;
  g_autoptr (Drover__V1__Job) job = NULL;
  g_autoptr (SchedJob) over = NULL;
  guint calls;

  assert_job_done (f, create_snapshot (f, "web", "s1", NULL, &error), error);
  calls = f->fake.calls->len;
  f->fake.hold = TRUE;
  job = clone_vm (f, "web", "far", NULL, "s1", "b", &error);
  g_assert_no_error (error);
  while (f->fake.held == NULL)
    g_main_context_iteration (NULL, TRUE);
  reserved = test_sched_stored_vm (f->svc, "far");
  g_assert_cmpstr (reserved->host, ==, "b");
  g_assert_cmpstr (reserved->state, ==, PROTO_VM_CREATING);
  fake_release (&f->fake);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_DONE);
  g_assert_cmpstr (over->error, ==, "");
  g_assert_nonnull (strstr (over->message, "to host b"));
  g_assert_cmpuint (f->fake.calls->len, ==, calls + 3);
  g_assert_cmpstr (f->fake.calls->pdata[calls], ==, "prepare-in web far");
  g_assert_cmpstr (f->fake.calls->pdata[calls + 1], ==,
                   "clone-out web far to b via 127.0.0.1:9 tok");
  g_assert_cmpstr (f->fake.calls->pdata[calls + 2], ==, "commit-in far");
  g_assert_cmpstr (f->fake.last_clone->from_snapshot, ==, "s1");
  g_assert_cmpstr (f->fake.last_clone->mode, ==, PROTO_CLONE_FULL);
  clone = test_sched_stored_vm (f->svc, "far");
  g_assert_cmpstr (clone->host, ==, "b");
  g_assert_cmpstr (clone->state, ==, PROTO_VM_SHUTOFF);
  g_assert_cmpstr (clone->status->uuid, ==, f->fake.last_clone->uuid);

  assert_remote_clone_fails (f, "far2", "prepare", "host 'b'",
                             "not enough space");
  assert_remote_clone_fails (f, "far3", "send", "host 'a'", "channel broke");
  assert_remote_clone_fails (f, "far4", "commit", "host 'b'",
                             "not enough space");

  calls = f->fake.calls->len;
  g_assert_null (clone_vm (f, "web", "far5", "linked", "s1", "b", &error));
  assert_refused (error, PROTO_STATUS_INVALID_ARGUMENT, "--full");
  error = NULL;
  g_assert_null (clone_vm (f, "web", "far5", "full", NULL, "nohost", &error));
  assert_refused (error, PROTO_STATUS_NOT_FOUND, "nohost");
  g_assert_cmpuint (f->fake.calls->len, ==, calls);
}

/* A stopped VM becomes a template; its clones are linked by default and
 * record it as their base; a template is never started, takes no
 * snapshots, does not migrate, and is not deleted while clones use it. */
static void
test_template (Fixture *f, gconstpointer data)
{
  GError *error = NULL;
  Drover__V1__VmRequest req = DROVER__V1__VM_REQUEST__INIT;
  Drover__V1__DeleteVmRequest del = DROVER__V1__DELETE_VM_REQUEST__INIT;
  g_autoptr (Drover__V1__VmReply) reply = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedVm) c1 = NULL;
  g_autoptr (SchedJob) migration = NULL;
  guint calls;

  req.name = (char *)"web";
  g_assert_null (
      call (f->ops, DROVER_SCHED_METHOD_MAKE_TEMPLATE, &req, &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION, "stopped");
  error = NULL;

  /* A VM with snapshots is refused: its chain would sit under a base. */
  req.name = (char *)"off";
  {
    g_autoptr (SchedVm) with = test_sched_stored_vm (f->svc, "off");

    with->snapshots = 2;
    g_assert_true (sched_store_put_vm (f->svc->store, with, &error));
    g_assert_null (
        call (f->ops, DROVER_SCHED_METHOD_MAKE_TEMPLATE, &req, &error));
    assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION,
                    "has 2 snapshot(s): delete them first");
    error = NULL;
    with->snapshots = 0;
    g_assert_true (sched_store_put_vm (f->svc->store, with, &error));
  }
  g_assert_cmpuint (f->fake.calls->len, ==, 0);
  reply = call (f->ops, DROVER_SCHED_METHOD_MAKE_TEMPLATE, &req, &error);
  g_assert_no_error (error);
  g_assert_true (reply->vm->template_);
  g_assert_cmpstr (f->fake.calls->pdata[0], ==, "template off");
  vm = test_sched_stored_vm (f->svc, "off");
  g_assert_true (vm->template);

  assert_job_done (f, clone_vm (f, "off", "c1", NULL, NULL, NULL, &error),
                   error);
  assert_job_done (f, clone_vm (f, "off", "c2", NULL, NULL, NULL, &error),
                   error);
  g_assert_cmpstr (f->fake.calls->pdata[1], ==, "clone off c1 linked");
  c1 = test_sched_stored_vm (f->svc, "c1");
  g_assert_cmpstr (c1->base, ==, "off");
  calls = f->fake.calls->len;

  g_assert_null (call (f->ops, DROVER_SCHED_METHOD_START_VM, &req, &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION,
                  "a template is never started");
  error = NULL;
  del.name = (char *)"off";
  g_assert_null (call (f->ops, DROVER_SCHED_METHOD_DELETE_VM, &del, &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION,
                  "base of 2 linked clones: c1, c2");
  error = NULL;
  g_assert_null (create_snapshot (f, "off", "s1", NULL, &error));
  assert_refused (error, PROTO_STATUS_FAILED_PRECONDITION, "template");
  error = NULL;
  g_assert_false (sched_migrator_submit (f->svc->migrator, "off", "b", NULL,
                                         &migration, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
  g_assert_nonnull (strstr (error->message, "template"));
  g_clear_error (&error);
  g_assert_cmpuint (f->fake.calls->len, ==, calls);

  /* A linked clone cannot go to another host either. */
  {
    g_autoptr (SchedVm) running = test_sched_stored_vm (f->svc, "c1");

    sched_vm_set_state (running, PROTO_VM_RUNNING);
    g_assert_true (sched_store_put_vm (f->svc->store, running, &error));
    g_assert_false (sched_migrator_submit (f->svc->migrator, "c1", "b", NULL,
                                           &migration, &error));
    g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
    g_assert_nonnull (strstr (error->message, "linked clone of 'off'"));
    g_clear_error (&error);
  }
}

/* --- the inventory after a report -------------------------------------- */

/* A report whose snapshot count differs from the store's makes the
 * scheduler read the tree from the agent. */
static void
test_report_refresh (Fixture *f, gconstpointer data)
{
  Drover__V1__VmStatus status = DROVER__V1__VM_STATUS__INIT;
  Drover__V1__VmStatus *list[] = { &status };

  /* The agent has a tree the store does not know. */
  fake_apply (&f->fake, "create", "s1");
  fake_apply (&f->fake, "create", "s2");
  status.name = (char *)"web";
  status.state = (char *)PROTO_VM_RUNNING;
  status.snapshots = 2;
  status.current_snapshot = (char *)"s2";
  sched_snapshots_after_report (f->svc, "a", list, 1);
  for (;;)
    {
      g_autoptr (SchedVm) vm = test_sched_stored_vm (f->svc, "web");

      if (vm->snapshots == 2)
        {
          g_assert_cmpstr (vm->current_snapshot, ==, "s2");
          break;
        }
      g_main_context_iteration (NULL, TRUE);
    }
  g_assert_cmpstr (f->fake.calls->pdata[0], ==, "list web");

  /* Agreeing reports ask nothing; a report from another host is not
   * about our record. */
  sched_snapshots_after_report (f->svc, "a", list, 1);
  status.snapshots = 5;
  sched_snapshots_after_report (f->svc, "b", list, 1);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_assert_cmpuint (f->fake.calls->len, ==, 1);
}

/* --- authorization ----------------------------------------------------- */

/* A viewer lists snapshots but changes nothing. */
static void
test_authz (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) eve = client_as (f, "eve");
  g_autoptr (Drover__V1__ListSnapshotsReply) list = NULL;
  Drover__V1__CreateSnapshotRequest create
      = DROVER__V1__CREATE_SNAPSHOT_REQUEST__INIT;
  Drover__V1__CloneVmRequest clone = DROVER__V1__CLONE_VM_REQUEST__INIT;
  Drover__V1__VmRequest vm = DROVER__V1__VM_REQUEST__INIT;
  GError *error = NULL;

  list = list_snapshots (eve, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (list->n_snapshots, ==, 0);

  create.vm = (char *)"web";
  create.name = (char *)"s1";
  g_assert_null (
      call (eve, DROVER_SCHED_METHOD_CREATE_SNAPSHOT, &create, &error));
  assert_refused (error, PROTO_STATUS_PERMISSION_DENIED, "viewer");
  error = NULL;
  clone.source = (char *)"web";
  clone.name = (char *)"web2";
  g_assert_null (call (eve, DROVER_SCHED_METHOD_CLONE_VM, &clone, &error));
  assert_refused (error, PROTO_STATUS_PERMISSION_DENIED, "viewer");
  error = NULL;
  vm.name = (char *)"off";
  g_assert_null (call (eve, DROVER_SCHED_METHOD_MAKE_TEMPLATE, &vm, &error));
  assert_refused (error, PROTO_STATUS_PERMISSION_DENIED, "viewer");
  g_assert_cmpuint (f->fake.calls->len, ==, 0);
}

/* --- droverctl against the scheduler ---------------------------------- */

static void
on_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **)user_data = g_object_ref (result);
}

/* Runs droverctl as the operator with ARGS; its exit status, and its
 * stdout and stderr into *OUT and *ERR (caller frees). */
static int
droverctl (Fixture *f, const char *const *args, char **out, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *tls_dir = g_build_filename (pki_dir, "ops", NULL);

  g_ptr_array_add (argv, (char *)g_getenv ("DROVERCTL"));
  g_ptr_array_add (argv, (char *)"--tls-dir");
  g_ptr_array_add (argv, tls_dir);
  g_ptr_array_add (argv, (char *)"--scheduler");
  g_ptr_array_add (argv, f->target);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, NULL);
  proc = g_subprocess_newv (
      (const char *const *)argv->pdata,
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  /* The scheduler answers from this thread's main context meanwhile. */
  g_subprocess_communicate_utf8_async (proc, NULL, NULL, on_exited, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (
      g_subprocess_communicate_utf8_finish (proc, result, out, err, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (proc));
  return g_subprocess_get_exit_status (proc);
}

/* droverctl, replacing the output of the previous run. */
static int
run (Fixture *f, const char *const *args, char **out, char **err)
{
  g_clear_pointer (out, g_free);
  g_clear_pointer (err, g_free);
  return droverctl (f, args, out, err);
}

/* droverctl snapshot and vm clone end to end: a snapshot followed to its
 * end, the tree listed with the current one marked, show and --json,
 * --detach, a clone; bad command lines exit 2 without a call, a refusal
 * of the scheduler exits 1 with its message. */
static void
test_droverctl (Fixture *f, gconstpointer data)
{
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  g_assert_nonnull (g_getenv ("DROVERCTL"));
#define RUN(...) run (f, (const char *[]){ __VA_ARGS__, NULL }, &out, &err)

  status = RUN ("snapshot", "create", "web", "s1", "--memory", "--description",
                "before the upgrade");
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "snapshot s1 of VM web (with memory)"));
  g_assert_nonnull (strstr (out, "snapshot s1 of VM web created on host a"));
  g_assert_cmpstr (f->fake.calls->pdata[0], ==,
                   "create web s1 memory [before the upgrade]");

  status = RUN ("snapshot", "create", "web", "s2", "--detach");
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "droverctl job watch "));
  while (f->fake.calls->len < 2)
    g_main_context_iteration (NULL, TRUE);
  while (g_main_context_iteration (NULL, FALSE))
    ;

  status = RUN ("snapshot", "list", "web");
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "\n  s1 "));
  g_assert_nonnull (strstr (out, "\n*   s2 "));
  status = RUN ("snapshot", "list", "web", "--json");
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "\"current\": \"s2\""));
  status = RUN ("snapshot", "show", "web", "s1");
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "before the upgrade"));
  g_assert_nonnull (strstr (out, "s2"));

  status = RUN ("vm", "clone", "web", "web2", "--from-snapshot", "s1");
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpstr (f->fake.calls->pdata[2], ==, "clone web web2 full at s1");

  /* Bad command lines: exit 2, nothing sent. */
  status = RUN ("snapshot", "create", "web", "../etc");
  g_assert_cmpint (status, ==, 2);
  status = RUN ("vm", "clone", "web", "web3", "--linked", "--full");
  g_assert_cmpint (status, ==, 2);
  g_assert_nonnull (strstr (err, "exclude each other"));
  status = RUN ("snapshot", "revert", "web");
  g_assert_cmpint (status, ==, 2);
  g_assert_nonnull (strstr (err, "missing snapshot name"));
  g_assert_cmpuint (f->fake.calls->len, ==, 3);

  /* The scheduler's refusal: exit 1 with its words. */
  status = RUN ("snapshot", "delete", "web", "nope");
  g_assert_cmpint (status, ==, 1);
  g_assert_nonnull (strstr (err, "no snapshot 'nope'"));
  f->fake.fail_with = g_strdup ("no space left on device");
  status = RUN ("snapshot", "create", "web", "s3");
  g_assert_cmpint (status, ==, 1);
  g_assert_nonnull (strstr (err, "no space left on device"));
#undef RUN
}

/* --- pure parts and the store ------------------------------------------ */

static SchedSnapshot *
row (const char *name, const char *parent, gint64 created)
{
  Drover__V1__Snapshot s = DROVER__V1__SNAPSHOT__INIT;

  s.name = (char *)name;
  s.parent = (char *)parent;
  s.created_ms = created;
  return sched_snapshot_new ("vm", &s);
}

/* Parents before children, depth first, children in creation order;
 * orphans (a parent the tree lacks) are roots; a cycle still lists. */
static void
test_tree_order (void)
{
  g_autoptr (GPtrArray) rows
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_snapshot_free);
  g_autoptr (GPtrArray) order = NULL;
  const char *const want[] = { "a", "b", "d", "c", "o", "x", "y" };

  /* In creation order, as the store lists them. */
  g_ptr_array_add (rows, row ("a", "", 1));
  g_ptr_array_add (rows, row ("b", "a", 2));
  g_ptr_array_add (rows, row ("c", "a", 3));
  g_ptr_array_add (rows, row ("d", "b", 4));
  g_ptr_array_add (rows, row ("o", "gone", 5));
  g_ptr_array_add (rows, row ("x", "y", 6));
  g_ptr_array_add (rows, row ("y", "x", 7));
  order = sched_snapshots_tree_order (rows);
  g_assert_cmpuint (order->len, ==, G_N_ELEMENTS (want));
  for (gsize i = 0; i < G_N_ELEMENTS (want); i++)
    g_assert_cmpstr (((SchedSnapshot *)order->pdata[i])->name, ==, want[i]);
}

/* A schema 2 database (before snapshots) is upgraded in place: its VMs
 * read as no templates with no snapshots, and the snapshots table works. */
static void
test_store_upgrade (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = test_tmp_dir_new ("drover-sched-snap-XXXXXX");
  g_autoptr (SchedStore) store = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autoptr (GPtrArray) rows = NULL;
  Drover__V1__Snapshot s = DROVER__V1__SNAPSHOT__INIT;
  Drover__V1__Snapshot *snaps[] = { &s };
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  g_autofree guint8 *packed = NULL;
  g_autofree char *sql = NULL;
  GString *hex = g_string_new (NULL);
  gsize len;

  spec.name = (char *)"old";
  spec.vcpus = 1;
  spec.memory = 256 * MiB;
  len = protobuf_c_message_get_packed_size (&spec.base);
  packed = g_malloc (len);
  protobuf_c_message_pack (&spec.base, packed);
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (hex, "%02x", packed[i]);
  sql = g_strdup_printf (
      "CREATE TABLE hosts (name TEXT PRIMARY KEY NOT NULL, address TEXT NOT "
      "NULL, info BLOB NOT NULL, state TEXT NOT NULL, last_seen_ms INTEGER "
      "NOT NULL);"
      "CREATE TABLE vms (name TEXT PRIMARY KEY NOT NULL, host TEXT NOT NULL,"
      " spec BLOB NOT NULL, state TEXT NOT NULL, status BLOB,"
      " updated_ms INTEGER NOT NULL);"
      "CREATE INDEX vms_by_host ON vms (host);"
      "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL,"
      " vm TEXT NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL,"
      " message TEXT NOT NULL, error TEXT NOT NULL, created_ms INTEGER NOT "
      "NULL, updated_ms INTEGER NOT NULL, source_host TEXT NOT NULL DEFAULT "
      "'', dest_host TEXT NOT NULL DEFAULT '', migration BLOB, prediction "
      "BLOB);"
      "INSERT INTO vms VALUES ('old', 'a', x'%s', 'shutoff', NULL, 5);"
      "INSERT INTO jobs VALUES ('old-job', 'create', 'old', 'done', 1.0, "
      "'created', '', 1, 2, '', '', NULL, NULL);"
      "PRAGMA application_id = 1146246738; PRAGMA user_version = 2;",
      hex->str);
  g_string_free (hex, TRUE);
  store = test_sched_store_open_sql (dir, sql);
  vm = sched_store_get_vm (store, "old", &error);
  g_assert_no_error (error);
  g_assert_cmpint (vm->template, ==, 0);
  g_assert_cmpstr (vm->base, ==, "");
  g_assert_cmpstr (vm->current_snapshot, ==, "");
  g_assert_cmpint (vm->snapshots, ==, 0);
  g_assert_cmpuint (vm->spec->memory, ==, 256 * MiB);
  job = sched_store_get_job (store, "old-job", &error);
  g_assert_no_error (error);
  g_assert_null (job->storage);

  s.name = (char *)"s1";
  s.parent = (char *)"";
  s.description = (char *)"kept";
  g_assert_true (
      sched_store_replace_snapshots (store, "old", snaps, 1, "s1", &error));
  g_assert_no_error (error);
  g_clear_pointer (&store, sched_store_close);

  /* Reopened at the new version: a no-op that keeps it all. */
  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  rows = sched_store_list_snapshots (store, "old", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rows->len, ==, 1);
  g_assert_cmpstr (((SchedSnapshot *)rows->pdata[0])->info->description, ==,
                   "kept");
  g_clear_pointer (&vm, sched_vm_free);
  vm = sched_store_get_vm (store, "old", &error);
  g_assert_cmpstr (vm->current_snapshot, ==, "s1");
  g_assert_cmpint (vm->snapshots, ==, 1);
  g_assert_true (sched_store_delete_snapshots (store, "old", &error));
  g_clear_pointer (&rows, g_ptr_array_unref);
  rows = sched_store_list_snapshots (store, "old", &error);
  g_assert_cmpuint (rows->len, ==, 0);
  g_clear_pointer (&store, sched_store_close);
  test_tmp_dir_remove (dir);
}

int
main (int argc, char **argv)
{
  int rc;

  g_test_init (&argc, &argv, NULL);
  pki_dir = test_tmp_dir_new ("drover-sched-snap-pki-XXXXXX");
  test_pki (pki_dir,
            (const char *[]){ "scheduler", "scheduler", "127.0.0.1", NULL });
  test_pki (pki_dir, (const char *[]){ "host", "a", "127.0.0.1", NULL });
  test_pki (pki_dir, (const char *[]){ "host", "b", "127.0.0.1", NULL });
  test_pki (pki_dir, (const char *[]){ "operator", "ops", NULL });
  test_pki (pki_dir, (const char *[]){ "viewer", "eve", NULL });

#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/sched/snapshots/create-flow", test_create_flow);
  ADD ("/sched/snapshots/tree", test_tree);
  ADD ("/sched/snapshots/failed", test_failed);
  ADD ("/sched/snapshots/final-without-tree", test_final_without_tree);
  ADD ("/sched/snapshots/validation", test_validation);
  ADD ("/sched/snapshots/busy", test_busy);
  ADD ("/sched/snapshots/clone", test_clone);
  ADD ("/sched/snapshots/clone-remote", test_clone_remote);
  ADD ("/sched/snapshots/template", test_template);
  ADD ("/sched/snapshots/report-refresh", test_report_refresh);
  ADD ("/sched/snapshots/authz", test_authz);
  ADD ("/sched/snapshots/droverctl", test_droverctl);
#undef ADD
  g_test_add_func ("/sched/snapshots/tree-order", test_tree_order);
  g_test_add_func ("/sched/snapshots/store-upgrade", test_store_upgrade);
  rc = g_test_run ();
  test_rmtree (pki_dir);
  g_free (pki_dir);
  return rc;
}
