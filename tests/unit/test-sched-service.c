/* The scheduler's service over the real protocol, in this process: who may
 * register and report as which host (mutual TLS with certificates from
 * scripts/pki: the role in O, the host in CN), what counts as an agent
 * address, revocation, reloading the TLS material while a migration's
 * agent call is in flight, and ListJobs' pages as droverctl follows them.
 *
 * The service runs in this thread's main context; calls to it are
 * asynchronous and the context is iterated until they complete, so
 * nothing waits on time. */
#include "sched-private.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

/* The PKI every test shares: DIR/{scheduler, scheduler-2} (role
 * scheduler), DIR/{a, b, c} (role host; c revoked), DIR/ops (operator). */
static char *pki_dir;

static void
run_pki (const char *const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *err = NULL;
  g_autofree char *pki = NULL;
  int status = 0;

  pki = g_build_filename (g_getenv ("DROVER_TEST_DATA"), "..", "..", "scripts",
                          "pki", NULL);
  g_ptr_array_add (argv, pki);
  g_ptr_array_add (argv, pki_dir);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, NULL);
  g_spawn_sync (NULL, (char **)argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL,
                NULL, NULL, NULL, &err, &status, &error);
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("scripts/pki failed: %s", err);
}

static void
make_pki (void)
{
  g_autoptr (GError) error = NULL;

  pki_dir = g_dir_make_tmp ("drover-sched-pki-XXXXXX", &error);
  g_assert_no_error (error);
  run_pki ((const char *[]){ "scheduler", "scheduler", "127.0.0.1", NULL });
  run_pki ((const char *[]){ "scheduler", "scheduler-2", "127.0.0.1", NULL });
  run_pki ((const char *[]){ "host", "a", "127.0.0.1", NULL });
  run_pki ((const char *[]){ "host", "b", "127.0.0.1", NULL });
  run_pki ((const char *[]){ "host", "c", "127.0.0.1", NULL });
  run_pki ((const char *[]){ "operator", "ops", NULL });
  run_pki ((const char *[]){ "--revoke", "c", NULL });
}

static void
rm_rf (const char *path)
{
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *child = g_build_filename (path, name, NULL);

      rm_rf (child);
    }
  g_remove (path);
}

static ProtoTls *
tls_of (const char *who)
{
  g_autofree char *dir = g_build_filename (pki_dir, who, NULL);
  g_autoptr (GError) error = NULL;
  ProtoTls *tls = proto_tls_load (dir, &error);

  g_assert_no_error (error);
  return tls;
}

/* --- calls ------------------------------------------------------------- */

typedef struct
{
  gboolean done;
  ProtobufCMessage *reply;
  GError *error;
} Result;

static void
on_reply (const ProtobufCMessage *reply, const GError *error,
          gpointer user_data)
{
  Result *r = user_data;

  r->done = TRUE;
  r->reply = reply ? proto_msg_copy (reply) : NULL;
  r->error = error ? g_error_copy (error) : NULL;
}

/* Calls METHOD of the scheduler with REQUEST and iterates until the reply:
 * the reply (caller frees), or NULL with ERROR. */
static gpointer
call (ProtoClient *client, guint method, gconstpointer request, GError **error)
{
  Result r = { 0 };

  proto_client_call (client, DROVER_SCHED_SERVICE, method, request, 30000,
                     on_reply, &r);
  while (!r.done)
    g_main_context_iteration (NULL, TRUE);
  if (r.error != NULL)
    g_propagate_error (error, r.error);
  return r.reply;
}

/* --- fixture ----------------------------------------------------------- */

typedef struct
{
  char *dir;
  SchedService *svc;
  char *target;
} Fixture;

/* A started service; TLS_DIR names its certificate under pki_dir, or NULL
 * for an insecure one. */
static void
fixture_start (Fixture *f, const char *tls_dir)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ProtoTls) tls = tls_dir ? tls_of (tls_dir) : NULL;
  SchedConfig config = { 0 };

  f->dir = g_dir_make_tmp ("drover-sched-svc-XXXXXX", &error);
  g_assert_no_error (error);
  config.state_dir = f->dir;
  config.cpu_overcommit = SCHED_DEFAULT_CPU_OVERCOMMIT;
  config.memory_reserve = SCHED_DEFAULT_MEMORY_RESERVE;
  f->svc = sched_service_new (&config, tls, &error);
  g_assert_no_error (error);
  g_assert_true (sched_service_start (f->svc, "127.0.0.1:0", &error));
  g_assert_no_error (error);
  f->target = g_strdup_printf ("127.0.0.1:%d", sched_service_get_port (f->svc));
}

static void
fixture_tls (Fixture *f, gconstpointer data)
{
  fixture_start (f, "scheduler");
}

static void
fixture_insecure (Fixture *f, gconstpointer data)
{
  fixture_start (f, NULL);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  sched_service_free (f->svc);
  rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->target);
}

/* A client of the scheduler with WHO's certificate (NULL: insecure). */
static ProtoClient *
client_as (Fixture *f, const char *who)
{
  g_autoptr (ProtoTls) tls = who ? tls_of (who) : NULL;
  g_autoptr (GError) error = NULL;
  ProtoClient *client
      = proto_client_new (f->target, tls, PROTO_ROLE_SCHEDULER, NULL, &error);

  g_assert_no_error (error);
  return client;
}

static GError *
register_as (ProtoClient *client, const char *name, const char *address)
{
  Drover__V1__RegisterHostRequest req = DROVER__V1__REGISTER_HOST_REQUEST__INIT;
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  g_autoptr (ProtobufCMessage) reply = NULL;
  GError *error = NULL;

  info.name = (char *)name;
  info.address = (char *)address;
  info.cpus = 4;
  info.memory_total = 8 * GiB;
  req.host = &info;
  reply = call (client, DROVER_SCHED_METHOD_REGISTER_HOST, &req, &error);
  g_assert_true ((reply == NULL) != (error == NULL));
  return error;
}

/* HOST's report number SEQ listing VM (NULL: none) running. */
static GError *
report_as (ProtoClient *client, const char *host, guint64 seq, const char *vm,
           const char *address)
{
  Drover__V1__ReportHostRequest req = DROVER__V1__REPORT_HOST_REQUEST__INIT;
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__VmStatus status = DROVER__V1__VM_STATUS__INIT;
  Drover__V1__VmStatus *list[] = { &status };
  g_autoptr (Drover__V1__ReportHostReply) reply = NULL;
  GError *error = NULL;

  info.name = (char *)host;
  info.address = (char *)address;
  status.name = (char *)vm;
  status.state = (char *)PROTO_VM_RUNNING;
  status.vcpus = 1;
  status.memory = GiB;
  req.host = &info;
  req.vms = list;
  req.n_vms = vm ? 1 : 0;
  req.seq = seq;
  reply = call (client, DROVER_SCHED_METHOD_REPORT_HOST, &req, &error);
  if (reply != NULL)
    g_assert_false (reply->reregister);
  return error;
}

static void
assert_denied (GError *error, const char *caller, const char *as)
{
  g_autofree char *q_caller = g_strdup_printf ("'%s'", caller);
  g_autofree char *q_as = g_strdup_printf ("'%s'", as);

  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_assert_nonnull (strstr (error->message, q_caller));
  g_assert_nonnull (strstr (error->message, q_as));
  g_error_free (error);
}

static SchedVm *
stored_vm (Fixture *f, const char *name)
{
  g_autoptr (GError) error = NULL;
  SchedVm *vm = sched_store_get_vm (f->svc->store, name, &error);

  g_assert_no_error (error);
  return vm;
}

/* --- who may register and report --------------------------------------- */

/* A host registers and reports as itself; as another host it is refused
 * with both names, and nothing of the other host changes. */
static void
test_register_as_other (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) a = client_as (f, "a");
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedHost) host = NULL;

  g_assert_null (register_as (a, "a", "127.0.0.1:7401"));
  g_assert_null (report_as (a, "a", 1, NULL, ""));
  assert_denied (register_as (a, "b", "127.0.0.1:7402"), "a", "b");
  host = sched_store_get_host (f->svc->store, "b", &error);
  g_assert_null (host);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
}

/* Another host's report is refused: it moves no VM, and the real host's
 * report sequence is untouched (its next report, numbered lower than the
 * forged one, is taken). */
static void
test_report_as_other (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) a = client_as (f, "a");
  g_autoptr (ProtoClient) b = client_as (f, "b");
  g_autoptr (SchedVm) web = NULL;
  g_autoptr (SchedVm) db = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_null (register_as (a, "a", "127.0.0.1:7401"));
  g_assert_null (register_as (b, "b", "127.0.0.1:7402"));
  g_assert_null (report_as (b, "b", 5, "web", ""));

  assert_denied (report_as (a, "b", 100, NULL, "127.0.0.1:9"), "a", "b");
  web = stored_vm (f, "web");
  g_assert_cmpstr (web->host, ==, "b");
  g_assert_cmpstr (web->state, ==, PROTO_VM_RUNNING);
  host = sched_store_get_host (f->svc->store, "b", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (host->address, ==, "127.0.0.1:7402");

  g_assert_null (report_as (b, "b", 6, "db", ""));
  db = stored_vm (f, "db");
  g_assert_cmpstr (db->host, ==, "b");

  /* In its own report a cannot take b's live VM either. */
  g_assert_null (report_as (a, "a", 1, "db", ""));
  g_clear_pointer (&db, sched_vm_free);
  db = stored_vm (f, "db");
  g_assert_cmpstr (db->host, ==, "b");
}

/* The agent address is an IP literal and a port, at registration and in
 * reports (where "" keeps the registered one). */
static void
test_address (Fixture *f, gconstpointer data)
{
  const char *const refused[] = {
    "unix:/var/run/libvirt/libvirt-sock",
    "dns:///a.example:7401",
    "ipv4:127.0.0.1:7401",
    "localhost:7401",
    "127.0.0.1",
    "127.0.0.1:7401,10.0.0.1:7401",
    "",
  };
  g_autoptr (ProtoClient) a = client_as (f, "a");
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (GError) error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      GError *e = register_as (a, "a", refused[i]);

      g_assert_error (e, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
      g_error_free (e);
    }
  g_assert_null (register_as (a, "a", "[::1]:7401"));
  g_assert_null (register_as (a, "a", "127.0.0.1:7401"));

  error = report_as (a, "a", 1, NULL, "unix:/tmp/drover.sock");
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  g_assert_null (report_as (a, "a", 2, NULL, ""));
  host = sched_store_get_host (f->svc->store, "a", &error);
  g_assert_cmpstr (host->address, ==, "127.0.0.1:7401");
}

/* A revoked host certificate (the CRL in the scheduler's TLS directory)
 * registers nothing. */
static void
test_revoked (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) c = client_as (f, "c");
  g_autoptr (GError) error = register_as (c, "c", "127.0.0.1:7403");
  g_autoptr (GError) lookup = NULL;
  g_autoptr (SchedHost) host = NULL;

  g_assert_nonnull (error);
  g_test_message ("revoked: %s", error->message);
  host = sched_store_get_host (f->svc->store, "c", &lookup);
  g_assert_null (host);
}

/* Without TLS there are no identities: the name checks are off, the
 * address check is not. */
static void
test_insecure (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) anyone = client_as (f, NULL);
  g_autoptr (GError) error = NULL;

  g_assert_null (register_as (anyone, "a", "127.0.0.1:7401"));
  g_assert_null (register_as (anyone, "b", "127.0.0.1:7402"));
  error = register_as (anyone, "c", "unix:/tmp/x");
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
}

/* --- reloading the TLS material ---------------------------------------- */

/* A fake agent with host NAME's certificate: it notes the CN of the
 * scheduler behind each call ("PrepareIncoming scheduler"), holds
 * PrepareIncoming until released, and completes MigrateOut at once. */
typedef struct
{
  ProtoServer *server;
  char *address;
  GPtrArray *seen;
  ProtoServerCall *held;
} FakeAgent;

static void
fake_note (FakeAgent *fake, ProtoServerCall *call, const char *method)
{
  g_ptr_array_add (fake->seen,
                   g_strdup_printf ("%s %s", method,
                                    proto_server_call_get_peer_name (call)));
}

static void
fake_prepare (ProtoServerCall *call, const ProtobufCMessage *request,
              gpointer user_data)
{
  fake_note (user_data, call, "PrepareIncoming");
  ((FakeAgent *)user_data)->held = call;
}

static void
fake_release (FakeAgent *fake)
{
  Drover__V1__PrepareIncomingReply reply
      = DROVER__V1__PREPARE_INCOMING_REPLY__INIT;

  reply.token = (char *)"token";
  reply.channel_address = (char *)"127.0.0.1:9";
  proto_server_call_reply (g_steal_pointer (&fake->held), &reply.base);
}

static void
fake_migrate_out (ProtoServerCall *call, const ProtobufCMessage *request,
                  gpointer user_data)
{
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;

  fake_note (user_data, call, "MigrateOut");
  p.phase = (char *)PROTO_MIG_COMPLETED;
  p.memory_total = 256 * MiB;
  proto_server_call_send (call, &p.base);
  proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
}

static FakeAgent *
fake_agent_new (const char *name)
{
  FakeAgent *fake = g_new0 (FakeAgent, 1);
  g_autoptr (ProtoTls) tls = tls_of (name);
  g_autoptr (GError) error = NULL;

  fake->seen = g_ptr_array_new_with_free_func (g_free);
  fake->server = proto_server_new (NULL);
  proto_server_add_method (fake->server, DROVER_AGENT_SERVICE,
                           DROVER_AGENT_METHOD_PREPARE_INCOMING, fake_prepare,
                           fake);
  proto_server_add_method (fake->server, DROVER_AGENT_SERVICE,
                           DROVER_AGENT_METHOD_MIGRATE_OUT, fake_migrate_out,
                           fake);
  proto_server_set_authz (fake->server, DROVER_AGENT_SERVICE, proto_agent_authz,
                          proto_agent_authz_len);
  g_assert_true (proto_server_start (fake->server, "127.0.0.1:0", tls, &error));
  g_assert_no_error (error);
  fake->address
      = g_strdup_printf ("127.0.0.1:%d", proto_server_get_port (fake->server));
  return fake;
}

static void
fake_agent_free (FakeAgent *fake)
{
  proto_server_free (fake->server);
  g_ptr_array_unref (fake->seen);
  g_free (fake->address);
  g_free (fake);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeAgent, fake_agent_free)

static void
put_host (Fixture *f, const char *name, const char *address)
{
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (GError) error = NULL;

  info.name = (char *)name;
  info.address = (char *)address;
  info.cpus = 8;
  info.memory_total = info.memory_free = 8 * GiB;
  info.data_total = info.data_free = 100 * GiB;
  info.accel = (char *)PROTO_ACCEL_TCG;
  host = sched_host_new (&info, PROTO_HOST_UP,
                         sched_registry_now (f->svc->registry));
  g_assert_true (sched_store_put_host (f->svc->store, host, &error));
  g_assert_no_error (error);
}

static void
assert_seen (FakeAgent *fake, const char *what)
{
  g_assert_cmpuint (fake->seen->len, ==, 1);
  g_assert_cmpstr (fake->seen->pdata[0], ==, what);
}

/* SIGHUP's work: a call in flight when the material is reloaded completes
 * on its connection; the next call to an agent connects with the new
 * certificate; the server hands the new certificate to new clients. */
static void
test_reload (Fixture *f, gconstpointer data)
{
  g_autoptr (FakeAgent) a = fake_agent_new ("a");
  g_autoptr (FakeAgent) b = fake_agent_new ("b");
  g_autoptr (ProtoTls) new_tls = tls_of ("scheduler-2");
  g_autoptr (ProtoTls) bad_tls = tls_of ("scheduler-2");
  g_autoptr (ProtoTls) host_tls = tls_of ("a");
  g_autoptr (ProtoClient) after = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (GError) error = NULL;
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;

  put_host (f, "a", a->address);
  put_host (f, "b", b->address);
  spec.name = (char *)"web";
  spec.vcpus = 1;
  spec.memory = 256 * MiB;
  vm = sched_vm_new (&spec, "a", PROTO_VM_RUNNING, NULL, 0);
  g_assert_true (sched_store_put_vm (f->svc->store, vm, &error));

  g_assert_true (
      sched_migrator_submit (f->svc->migrator, "web", "b", NULL, &job, &error));
  g_assert_no_error (error);
  while (b->held == NULL)
    g_main_context_iteration (NULL, TRUE);

  /* Unusable material changes nothing. */
  g_free (bad_tls->ca_pem);
  bad_tls->ca_pem = g_strdup ("not a certificate");
  g_assert_false (sched_service_reload_tls (f->svc, bad_tls, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_assert_true (sched_service_reload_tls (f->svc, new_tls, &error));
  g_assert_no_error (error);
  fake_release (b);
  for (;;)
    {
      g_autoptr (SchedJob) now
          = sched_store_get_job (f->svc->store, job->id, &error);

      g_assert_no_error (error);
      if (proto_job_state_is_final (now->state))
        {
          g_assert_cmpstr (now->state, ==, PROTO_JOB_DONE);
          break;
        }
      g_main_context_iteration (NULL, TRUE);
    }
  assert_seen (b, "PrepareIncoming scheduler");
  assert_seen (a, "MigrateOut scheduler-2");

  /* A new client of the scheduler gets the new certificate. */
  after = proto_client_new_for (f->target, host_tls, PROTO_ROLE_SCHEDULER,
                                "scheduler-2", NULL, &error);
  g_assert_no_error (error);
  g_assert_null (register_as (after, "a", a->address));
}

/* An insecure scheduler has nothing to reload. */
static void
test_reload_insecure (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoTls) tls = tls_of ("scheduler");
  g_autoptr (GError) error = NULL;

  g_assert_false (sched_service_reload_tls (f->svc, tls, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
}

/* --- ListJobs and droverctl jobs --------------------------------------- */

#define N_JOBS (SCHED_JOBS_PAGE_MAX + 1)

static void
put_jobs (Fixture *f)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (sched_store_begin (f->svc->store, &error));
  for (int i = 0; i < N_JOBS; i++)
    {
      g_autofree char *vm = g_strdup_printf ("vm%04d", i);
      g_autoptr (SchedJob) job
          = sched_job_new (PROTO_JOB_KIND_CREATE, vm, PROTO_JOB_DONE, 1000 + i);

      g_assert_true (sched_store_put_job (f->svc->store, job, &error));
    }
  g_assert_true (sched_store_commit (f->svc->store, &error));
  g_assert_no_error (error);
}

static Drover__V1__ListJobsReply *
list_jobs (ProtoClient *client, guint size, const char *token, GError **error)
{
  Drover__V1__ListJobsRequest req = DROVER__V1__LIST_JOBS_REQUEST__INIT;

  req.page_size = size;
  req.page_token = (char *)token;
  return call (client, DROVER_SCHED_METHOD_LIST_JOBS, &req, error);
}

/* Pages of the default size, or of the size asked up to the maximum, in
 * creation order; a token that is not one is refused. */
static void
test_list_jobs (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) client = client_as (f, NULL);
  g_autoptr (Drover__V1__ListJobsReply) first = NULL;
  g_autoptr (Drover__V1__ListJobsReply) big = NULL;
  g_autoptr (Drover__V1__ListJobsReply) rest = NULL;
  g_autoptr (Drover__V1__ListJobsReply) none = NULL;
  g_autoptr (GError) error = NULL;

  put_jobs (f);
  first = list_jobs (client, 0, "", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (first->n_jobs, ==, SCHED_JOBS_PAGE_DEFAULT);
  g_assert_cmpstr (first->jobs[0]->vm, ==, "vm0000");
  g_assert_cmpstr (first->next_page_token, !=, "");

  big = list_jobs (client, 100000, "", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (big->n_jobs, ==, SCHED_JOBS_PAGE_MAX);
  rest = list_jobs (client, 100000, big->next_page_token, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rest->n_jobs, ==, 1);
  g_assert_cmpstr (rest->jobs[0]->vm, ==, "vm1000");
  g_assert_cmpstr (rest->next_page_token, ==, "");

  none = list_jobs (client, 0, "12/not a token", &error);
  g_assert_null (none);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
}

static void
on_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  *(GAsyncResult **)user_data = g_object_ref (result);
}

/* Runs droverctl with ARGS against the scheduler; its stdout. */
static char *
droverctl (Fixture *f, const char *const *args)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  char *out = NULL;

  g_ptr_array_add (argv, (char *)g_getenv ("DROVERCTL"));
  g_ptr_array_add (argv, (char *)"--insecure");
  g_ptr_array_add (argv, (char *)"--scheduler");
  g_ptr_array_add (argv, f->target);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, NULL);
  proc = g_subprocess_newv ((const char *const *)argv->pdata,
                            G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_assert_no_error (error);
  /* The scheduler answers from this thread's main context meanwhile. */
  g_subprocess_communicate_utf8_async (proc, NULL, NULL, on_exited, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (
      g_subprocess_communicate_utf8_finish (proc, result, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
  return out;
}

static guint
count (const char *text, const char *what)
{
  guint n = 0;

  for (const char *p = text; (p = strstr (p, what)) != NULL; p++)
    n++;
  return n;
}

/* droverctl jobs follows every page: one table, and with --json one
 * {"jobs": [...]} holding them all. */
static void
test_droverctl_jobs (Fixture *f, gconstpointer data)
{
  g_autofree char *table = NULL;
  g_autofree char *json = NULL;

  g_assert_nonnull (g_getenv ("DROVERCTL"));
  put_jobs (f);
  table = droverctl (f, (const char *[]){ "jobs", NULL });
  g_assert_cmpuint (count (table, "\n"), ==, N_JOBS + 1);
  g_assert_cmpuint (count (table, " vm0000 "), ==, 1);
  g_assert_cmpuint (count (table, " vm1000 "), ==, 1);

  json = droverctl (f, (const char *[]){ "jobs", "--json", NULL });
  g_assert_true (g_str_has_prefix (json, "{\n  \"jobs\": [\n"));
  g_assert_true (g_str_has_suffix (json, "\n  ]\n}\n"));
  g_assert_cmpuint (count (json, "\"jobs\": "), ==, 1);
  g_assert_cmpuint (count (json, "\"kind\": "), ==, N_JOBS);
  g_assert_cmpuint (count (json, "next_page_token"), ==, 0);
}

int
main (int argc, char **argv)
{
  int rc;

  g_test_init (&argc, &argv, NULL);
  proto_init ();
  make_pki ();
#define ADD(path, setup, func)                                                 \
  g_test_add (path, Fixture, NULL, setup, func, fixture_teardown)
  ADD ("/sched-service/register-as-other", fixture_tls, test_register_as_other);
  ADD ("/sched-service/report-as-other", fixture_tls, test_report_as_other);
  ADD ("/sched-service/address", fixture_tls, test_address);
  ADD ("/sched-service/revoked", fixture_tls, test_revoked);
  ADD ("/sched-service/insecure", fixture_insecure, test_insecure);
  ADD ("/sched-service/reload", fixture_tls, test_reload);
  ADD ("/sched-service/reload-insecure", fixture_insecure,
       test_reload_insecure);
  ADD ("/sched-service/list-jobs", fixture_insecure, test_list_jobs);
  ADD ("/sched-service/droverctl-jobs", fixture_insecure, test_droverctl_jobs);
  rc = g_test_run ();
  rm_rf (pki_dir);
  g_free (pki_dir);
  proto_shutdown ();
  return rc;
}
