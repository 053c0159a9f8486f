/* sched_migrator_submit, the migrator's entry point, driven directly (no
 * MigrateVm call) and without virtualisation: a fake agent, a ProtoServer
 * in this process answering PrepareIncoming, MigrateOut and
 * CancelIncoming, stands for both hosts. The scheduler's service is built
 * (sched_service_new) but never serves: nothing here calls its gRPC API.
 *
 * Waiting is by events, never by time: the main context is iterated
 * until the job's stored state is final. */
#include "test-rpc.h"
#include "test-sched.h"

#include "sched-migration-settings.h"

#include <glib/gstdio.h>
#include <string.h>

#define CHANNEL_ADDRESS "127.0.0.1:9"

/* --- fake agent -------------------------------------------------------- */

typedef struct
{
  ProtoServer *server;
  char *address;
  GPtrArray *events; /* "prepare VM", "out VM", "cancel JOB", in order */
  char *postcopy;    /* the last MigrateOut's params.postcopy */
} FakeAgent;

static void
fake_prepare (ProtoServerCall *call, const ProtobufCMessage *request,
              gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__PrepareIncomingRequest *req = (const void *)request;
  Drover__V1__PrepareIncomingReply reply
      = DROVER__V1__PREPARE_INCOMING_REPLY__INIT;
  g_autofree char *token = g_strconcat ("t-", req->job_id, NULL);

  g_ptr_array_add (fake->events,
                   g_strconcat ("prepare ", req->spec->name, NULL));
  reply.token = token;
  reply.channel_address = (char *)CHANNEL_ADDRESS;
  proto_server_call_reply (call, &reply.base);
}

/* Streams a pre-copy round and the completion, after checking that the
 * scheduler passes on what PrepareIncoming gave. */
static void
fake_migrate_out (ProtoServerCall *call, const ProtobufCMessage *request,
                  gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__MigrateOutRequest *req = (const void *)request;
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;
  g_autofree char *token = g_strconcat ("t-", req->job_id, NULL);

  g_ptr_array_add (fake->events, g_strconcat ("out ", req->name, NULL));
  g_free (fake->postcopy);
  fake->postcopy = g_strdup (req->params ? req->params->postcopy : "(none)");
  if (strcmp (req->token, token) != 0
      || strcmp (req->channel_address, CHANNEL_ADDRESS) != 0
      || strcmp (req->dest_host, "b") != 0
      || strcmp (req->dest_address, fake->address) != 0)
    {
      proto_server_call_finish (call, PROTO_STATUS_PERMISSION_DENIED,
                                "not what PrepareIncoming gave");
      return;
    }
  p.phase = (char *)PROTO_MIG_PRECOPY;
  p.memory_total = 256 * MiB;
  p.memory_remaining = 128 * MiB;
  p.iteration = 1;
  proto_server_call_send (call, &p.base);
  p.phase = (char *)PROTO_MIG_COMPLETED;
  p.memory_remaining = 0;
  p.total_s = 1.0;
  p.downtime_ms = 20;
  proto_server_call_send (call, &p.base);
  proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
}

static void
fake_cancel (ProtoServerCall *call, const ProtobufCMessage *request,
             gpointer user_data)
{
  FakeAgent *fake = user_data;
  const Drover__V1__CancelIncomingRequest *req = (const void *)request;
  Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;

  g_ptr_array_add (fake->events, g_strconcat ("cancel ", req->job_id, NULL));
  proto_server_call_reply (call, &empty.base);
}

static FakeAgent *
fake_agent_new (void)
{
  const TestRpcMethod methods[] = {
    { DROVER_AGENT_METHOD_PREPARE_INCOMING, fake_prepare },
    { DROVER_AGENT_METHOD_MIGRATE_OUT, fake_migrate_out },
    { DROVER_AGENT_METHOD_CANCEL_INCOMING, fake_cancel },
  };
  const TestRpcService service = {
    DROVER_AGENT_SERVICE,  methods, G_N_ELEMENTS (methods), proto_agent_authz,
    proto_agent_authz_len,
  };
  FakeAgent *fake = g_new0 (FakeAgent, 1);
  g_autoptr (GError) error = NULL;

  fake->events = g_ptr_array_new_with_free_func (g_free);
  fake->server = test_rpc_server_new (&service, fake, NULL, NULL, &error);
  g_assert_no_error (error);
  fake->address = test_rpc_address (fake->server);
  return fake;
}

static void
fake_agent_free (FakeAgent *fake)
{
  proto_server_free (fake->server);
  g_ptr_array_unref (fake->events);
  g_free (fake->postcopy);
  g_free (fake->address);
  g_free (fake);
}

/* --- fixture ----------------------------------------------------------- */

typedef struct
{
  char *dir;
  FakeAgent *fake;
  SchedService *svc;
} Fixture;

/* Two hosts, a and b, both served by the fake agent; on a the running VMs
 * web and db and the shut-off VM off. At most one migration leaves a host
 * at once. */
static void
fixture_setup (Fixture *f, gconstpointer data)
{
  SchedConfig config = { 0 };

  f->fake = fake_agent_new ();
  config.max_migrations_out = 1;
  f->svc = test_sched_service_new (&f->dir, &config, NULL);
  test_sched_put_host (f->svc, "a", f->fake->address);
  test_sched_put_host (f->svc, "b", f->fake->address);
  test_sched_put_vm (f->svc, "web", "a", PROTO_VM_RUNNING, 1, 256 * MiB, 0);
  test_sched_put_vm (f->svc, "db", "a", PROTO_VM_RUNNING, 1, 256 * MiB, 0);
  test_sched_put_vm (f->svc, "off", "a", PROTO_VM_SHUTOFF, 1, 256 * MiB, 0);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  sched_service_free (f->svc);
  fake_agent_free (f->fake);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
}

static void
assert_events (Fixture *f, const char *const *expected)
{
  guint n = g_strv_length ((char **)expected);

  g_assert_cmpuint (f->fake->events->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (f->fake->events->pdata[i], ==, expected[i]);
}

/* Submits VM to TO with PARAMS and checks the refusal: DOMAIN and CODE,
 * WORDS in the message (unless NULL), no job. */
static void
assert_refused (Fixture *f, const char *vm, const char *to,
                const Drover__V1__MigrationParams *params, GQuark domain,
                int code, const char *words)
{
  g_autoptr (GError) error = NULL;
  SchedJob *job = NULL;

  g_assert_false (
      sched_migrator_submit (f->svc->migrator, vm, to, params, &job, &error));
  g_assert_error (error, domain, code);
  if (words != NULL)
    g_assert_nonnull (strstr (error->message, words));
  g_assert_null (job);
}

/* Submits VM to TO (NULL: anywhere); it must be accepted. The job. */
static SchedJob *
submit_ok (Fixture *f, const char *vm, const char *to)
{
  g_autoptr (GError) error = NULL;
  SchedJob *job = NULL;

  g_assert_true (
      sched_migrator_submit (f->svc->migrator, vm, to, NULL, &job, &error));
  g_assert_no_error (error);
  g_assert_nonnull (job);
  return job;
}

/* --- tests ------------------------------------------------------------- */

/* What submit refuses, it refuses before any job or agent call. */
static void
test_refuses (Fixture *f, gconstpointer data)
{
  Drover__V1__MigrationParams params = DROVER__V1__MIGRATION_PARAMS__INIT;
  g_autoptr (GPtrArray) jobs = NULL;
  g_autoptr (GError) error = NULL;

  assert_refused (f, "nope", NULL, NULL, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                  "nope");
  assert_refused (f, "off", NULL, NULL, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                  "only a running VM");
  assert_refused (f, "Bad/", NULL, NULL, PROTO_ERROR,
                  PROTO_STATUS_INVALID_ARGUMENT, NULL);
  assert_refused (f, "web", "a", NULL, SCHED_ERROR, SCHED_ERROR_INVALID,
                  "already on host 'a'");
  assert_refused (f, "web", "zz", NULL, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                  "zz");
  params.compress = (char *)"zstd";
  assert_refused (f, "web", NULL, &params, SCHED_ERROR, SCHED_ERROR_INVALID,
                  "compress");
  params.compress = (char *)"";
  params.postcopy = (char *)"sometimes";
  assert_refused (f, "web", NULL, &params, SCHED_ERROR, SCHED_ERROR_INVALID,
                  "postcopy");

  jobs = sched_store_list_jobs (f->svc->store, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (jobs->len, ==, 0);
  g_assert_null (sched_migrator_find (f->svc->migrator, "web"));
  /* Nothing reached the agent. */
  while (g_main_context_iteration (NULL, FALSE))
    ;
  assert_events (f, (const char *const[]){ NULL });
}

/* A valid request starts at once and runs to completion over the agents;
 * the VM's record moves to the destination. */
static void
test_runs (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = submit_ok (f, "web", NULL);
  g_autoptr (SchedJob) over = NULL;
  g_autoptr (SchedVm) vm = NULL;

  g_assert_cmpstr (job->kind, ==, PROTO_JOB_KIND_MIGRATE);
  g_assert_cmpstr (job->vm, ==, "web");
  g_assert_cmpstr (job->state, ==, PROTO_JOB_RUNNING);
  g_assert_cmpstr (job->source_host, ==, "a");
  g_assert_cmpstr (job->dest_host, ==, "b");
  g_assert_cmpstr (job->migration->phase, ==, PROTO_MIG_PREPARING);
  g_assert_nonnull (job->prediction);
  g_assert_true (job->prediction->converges);
  g_assert_cmpstr (sched_migrator_find (f->svc->migrator, "web")->id, ==,
                   job->id);

  /* One migration per VM at a time. */
  assert_refused (f, "web", NULL, NULL, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                  "already migrating");

  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_DONE);
  g_assert_cmpstr (over->error, ==, "");
  g_assert_cmpfloat (over->progress, ==, 1.0);
  g_assert_cmpstr (over->migration->phase, ==, PROTO_MIG_COMPLETED);
  assert_events (f, (const char *const[]){ "prepare web", "out web", NULL });
  g_assert_null (sched_migrator_find (f->svc->migrator, "web"));

  vm = sched_store_get_vm (f->svc->store, "web", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vm->host, ==, "b");
  g_assert_cmpstr (vm->state, ==, PROTO_VM_RUNNING);
}

/* Migrates VM to b with PARAMS (NULL: none) to completion and puts its
 * record back on a (the fake agent only takes migrations to b); the
 * post-copy mode the source agent was given. */
static const char *
migrate_postcopy (Fixture *f, const char *name,
                  const Drover__V1__MigrationParams *params)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autoptr (SchedJob) over = NULL;
  g_autoptr (SchedVm) vm = NULL;

  g_assert_true (sched_migrator_submit (f->svc->migrator, name, "b", params,
                                        &job, &error));
  g_assert_no_error (error);
  over = test_sched_wait_job (f->svc->store, job->id);
  g_assert_cmpstr (over->state, ==, PROTO_JOB_DONE);
  vm = sched_store_get_vm (f->svc->store, name, &error);
  g_assert_no_error (error);
  g_free (vm->host);
  vm->host = g_strdup ("a");
  g_assert_true (sched_store_put_vm (f->svc->store, vm, &error));
  return f->fake->postcopy;
}

/* A migration given no post-copy mode takes the VM's default (never
 * without one); one given a mode keeps it. The default is checked. */
static void
test_postcopy_default (Fixture *f, gconstpointer data)
{
  Drover__V1__MigrationParams params = DROVER__V1__MIGRATION_PARAMS__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;

  g_assert_cmpstr (migrate_postcopy (f, "web", NULL), ==, "never");
  vm = sched_store_get_vm (f->svc->store, "web", &error);
  g_assert_no_error (error);
  vm->spec->migration_postcopy = proto_msg_strdup ("auto");
  g_assert_true (sched_store_put_vm (f->svc->store, vm, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (migrate_postcopy (f, "web", NULL), ==, "auto");
  params.postcopy = (char *)"now";
  g_assert_cmpstr (migrate_postcopy (f, "web", &params), ==, "now");
  params.postcopy = (char *)"never";
  g_assert_cmpstr (migrate_postcopy (f, "web", &params), ==, "never");

  g_assert_true (sched_migration_check_postcopy_default ("auto", NULL));
  g_assert_true (sched_migration_check_postcopy_default ("never", NULL));
  g_assert_false (sched_migration_check_postcopy_default ("now", &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (sched_migration_check_postcopy_default ("", NULL));
  g_assert_false (sched_migration_check_postcopy_default (NULL, NULL));
}

/* Past the per-host limit a migration is queued, and starts when the one
 * ahead of it ends. */
static void
test_queues (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) first = submit_ok (f, "web", "b");
  g_autoptr (SchedJob) second = submit_ok (f, "db", "b");
  g_autoptr (SchedJob) first_over = NULL;
  g_autoptr (SchedJob) second_over = NULL;
  g_autoptr (SchedVm) vm = NULL;

  g_assert_cmpstr (first->state, ==, PROTO_JOB_RUNNING);
  g_assert_cmpstr (second->state, ==, PROTO_JOB_QUEUED);
  g_assert_cmpstr (second->migration->phase, ==, PROTO_MIG_QUEUED);
  g_assert_nonnull (strstr (second->message, "queued (position 1)"));

  first_over = test_sched_wait_job (f->svc->store, first->id);
  second_over = test_sched_wait_job (f->svc->store, second->id);
  g_assert_cmpstr (first_over->state, ==, PROTO_JOB_DONE);
  g_assert_cmpstr (second_over->state, ==, PROTO_JOB_DONE);
  /* db's destination was prepared only after web's migration ended. */
  assert_events (f, (const char *const[]){ "prepare web", "out web",
                                           "prepare db", "out db", NULL });
  vm = sched_store_get_vm (f->svc->store, "db", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vm->host, ==, "b");
}

/* Stopping the service ends queued and running migrations, and the
 * migrator takes no new ones. */
static void
test_stop (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) running = submit_ok (f, "web", NULL);
  g_autoptr (SchedJob) queued = submit_ok (f, "db", NULL);
  g_autoptr (SchedJob) running_over = NULL;
  g_autoptr (SchedJob) queued_over = NULL;

  g_assert_cmpstr (queued->state, ==, PROTO_JOB_QUEUED);

  /* The agent calls in flight complete (cancelled) inside stop. */
  sched_service_stop (f->svc);
  running_over = sched_store_get_job (f->svc->store, running->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (running_over->state, ==, PROTO_JOB_FAILED);
  g_assert_nonnull (strstr (running_over->error, "scheduler stopped"));
  queued_over = sched_store_get_job (f->svc->store, queued->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (queued_over->state, ==, PROTO_JOB_FAILED);
  g_assert_nonnull (
      strstr (queued_over->error, "stopped before the migration started"));
  g_assert_null (sched_migrator_find (f->svc->migrator, "web"));
  g_assert_null (sched_migrator_find (f->svc->migrator, "db"));

  assert_refused (f, "web", NULL, NULL, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                  "shutting down");
}

int
main (int argc, char **argv)
{
  int rc;

  g_test_init (&argc, &argv, NULL);
  proto_init ();
#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("/sched-migrator/submit/refuses", test_refuses);
  ADD ("/sched-migrator/submit/runs", test_runs);
  ADD ("/sched-migrator/submit/queues", test_queues);
  ADD ("/sched-migrator/submit/postcopy-default", test_postcopy_default);
  ADD ("/sched-migrator/submit/stop", test_stop);
  rc = g_test_run ();
  proto_shutdown ();
  return rc;
}
