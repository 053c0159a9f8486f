/* The scheduler's service over the real protocol, in this process: who may
 * register and report as which host (mutual TLS with certificates from
 * scripts/pki: the role in O, the host in CN), what counts as an agent
 * address, revocation, reloading the TLS material while a migration's
 * agent call is in flight; the job board, bounded (pruned by age and
 * count, never a job still running) and read a page at a time (the page
 * token against hostile input), ListJobs' pages as droverctl follows
 * them; and the SQLite connection's crash-consistency setting.
 *
 * The service runs in this thread's main context; calls to it are
 * asynchronous and the context is iterated until they complete, so
 * nothing waits on time. */
#include "test-pki.h"
#include "test-rpc.h"
#include "test-sched.h"
#include "test-support.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>

/* The PKI every test shares: DIR/{scheduler, scheduler-2} (role
 * scheduler), DIR/{a, b, c} (role host; c revoked), DIR/ops (operator). */
static char *pki_dir;

static void
make_pki (void)
{
  pki_dir = test_tmp_dir_new ("drover-sched-pki-XXXXXX");
  test_pki (pki_dir,
            (const char *[]){ "scheduler", "scheduler", "127.0.0.1", NULL });
  test_pki (pki_dir,
            (const char *[]){ "scheduler", "scheduler-2", "127.0.0.1", NULL });
  test_pki (pki_dir, (const char *[]){ "host", "a", "127.0.0.1", NULL });
  test_pki (pki_dir, (const char *[]){ "host", "b", "127.0.0.1", NULL });
  test_pki (pki_dir, (const char *[]){ "host", "c", "127.0.0.1", NULL });
  test_pki (pki_dir, (const char *[]){ "operator", "ops", NULL });
  test_pki (pki_dir, (const char *[]){ "viewer", "eyes", NULL });
  test_pki (pki_dir, (const char *[]){ "--revoke", "c", NULL });
}

static ProtoTls *
tls_of (const char *who)
{
  return test_rpc_tls (pki_dir, who);
}

/* --- calls ------------------------------------------------------------- */

/* Calls METHOD of the scheduler as CLIENT and iterates until the reply
 * (caller frees), or NULL with ERROR. */
static gpointer
call (ProtoClient *client, guint method, gconstpointer request, GError **error)
{
  return test_rpc_call (client, DROVER_SCHED_SERVICE, method, request, error);
}

/* --- fixture ----------------------------------------------------------- */

typedef struct
{
  char *dir;
  SchedService *svc;
  char *target;
} Fixture;

/* The job board's limits for the fixture that tests them. */
#define RETENTION_MS (3600 * 1000)
#define MAX_JOBS 3

/* A started service; TLS_DIR names its certificate under pki_dir, or NULL
 * for an insecure one. MAX_JOBS 0: the default job retention, else
 * MAX_JOBS and RETENTION_MS. */
static void
fixture_start (Fixture *f, const char *tls_dir, guint max_jobs)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (ProtoTls) tls = tls_dir ? tls_of (tls_dir) : NULL;
  SchedConfig config = { 0 };

  config.max_jobs = max_jobs;
  config.job_retention_ms = max_jobs ? RETENTION_MS : 0;
  f->svc = test_sched_service_new (&f->dir, &config, tls);
  g_assert_true (sched_service_start (f->svc, "127.0.0.1:0", &error));
  g_assert_no_error (error);
  f->target = g_strdup_printf ("127.0.0.1:%d", sched_service_get_port (f->svc));
}

static void
fixture_tls (Fixture *f, gconstpointer data)
{
  fixture_start (f, "scheduler", 0);
}

static void
fixture_insecure (Fixture *f, gconstpointer data)
{
  fixture_start (f, NULL, 0);
}

static void
fixture_jobs (Fixture *f, gconstpointer data)
{
  fixture_start (f, NULL, MAX_JOBS);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  sched_service_free (f->svc);
  test_tmp_dir_remove (f->dir);
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
  web = test_sched_stored_vm (f->svc, "web");
  g_assert_cmpstr (web->host, ==, "b");
  g_assert_cmpstr (web->state, ==, PROTO_VM_RUNNING);
  host = sched_store_get_host (f->svc->store, "b", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (host->address, ==, "127.0.0.1:7402");

  g_assert_null (report_as (b, "b", 6, "db", ""));
  db = test_sched_stored_vm (f->svc, "db");
  g_assert_cmpstr (db->host, ==, "b");

  /* In its own report a cannot take b's live VM either. */
  g_assert_null (report_as (a, "a", 1, "db", ""));
  g_clear_pointer (&db, sched_vm_free);
  db = test_sched_stored_vm (f->svc, "db");
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

  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_UNAUTHENTICATED);
  g_assert_nonnull (strstr (error->message, "revoked"));
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

/* A fake agent: it notes the CN of the scheduler behind each call
 * ("PrepareIncoming scheduler"), holds PrepareIncoming until released, and
 * completes MigrateOut at once. */
typedef struct
{
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

/* Serves a fake agent with host NAME's certificate that notes what it
 * sees into FAKE->seen. Its address goes into *ADDRESS (caller frees). */
static ProtoServer *
fake_agent_serve (FakeAgent *fake, const char *name, char **address)
{
  static const struct
  {
    guint method;
    ProtoHandler handler;
  } methods[] = {
    { DROVER_AGENT_METHOD_PREPARE_INCOMING, fake_prepare },
    { DROVER_AGENT_METHOD_MIGRATE_OUT, fake_migrate_out },
  };
  g_autoptr (ProtoServer) server = proto_server_new (NULL);
  g_autoptr (ProtoTls) tls = tls_of (name);
  g_autoptr (GError) error = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (methods); i++)
    proto_server_add_method (server, DROVER_AGENT_SERVICE, methods[i].method,
                             methods[i].handler, fake);
  proto_server_set_authz (server, DROVER_AGENT_SERVICE, proto_agent_authz,
                          proto_agent_authz_len);
  g_assert_true (proto_server_start (server, "127.0.0.1:0", tls, &error));
  g_assert_no_error (error);
  *address = g_strdup_printf ("127.0.0.1:%d", proto_server_get_port (server));
  return g_steal_pointer (&server);
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
  g_autoptr (GPtrArray) a_seen = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) b_seen = g_ptr_array_new_with_free_func (g_free);
  FakeAgent a = { a_seen, NULL }, b = { b_seen, NULL };
  g_autofree char *a_address = NULL;
  g_autofree char *b_address = NULL;
  /* Freed before what they note into. */
  g_autoptr (ProtoServer) a_server = fake_agent_serve (&a, "a", &a_address);
  g_autoptr (ProtoServer) b_server = fake_agent_serve (&b, "b", &b_address);
  g_autoptr (ProtoTls) new_tls = tls_of ("scheduler-2");
  g_autoptr (ProtoTls) bad_tls = tls_of ("scheduler-2");
  g_autoptr (ProtoTls) host_tls = tls_of ("a");
  g_autoptr (ProtoClient) after = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_nonnull (a_server);
  g_assert_nonnull (b_server);
  test_sched_put_host (f->svc, "a", a_address);
  test_sched_put_host (f->svc, "b", b_address);
  test_sched_put_vm (f->svc, "web", "a", PROTO_VM_RUNNING, 1, 256 * MiB, 0);

  g_assert_true (
      sched_migrator_submit (f->svc->migrator, "web", "b", NULL, &job, &error));
  g_assert_no_error (error);
  while (b.held == NULL)
    g_main_context_iteration (NULL, TRUE);

  /* Unusable material changes nothing. */
  g_free (bad_tls->ca_pem);
  bad_tls->ca_pem = g_strdup ("not a certificate");
  g_assert_false (sched_service_reload_tls (f->svc, bad_tls, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_assert_true (sched_service_reload_tls (f->svc, new_tls, &error));
  g_assert_no_error (error);
  fake_release (&b);
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
  assert_seen (&b, "PrepareIncoming scheduler");
  assert_seen (&a, "MigrateOut scheduler-2");

  /* A new client of the scheduler gets the new certificate. */
  after = proto_client_new_for (f->target, host_tls, PROTO_ROLE_SCHEDULER,
                                "scheduler-2", NULL, &error);
  g_assert_no_error (error);
  g_assert_null (register_as (after, "a", a_address));
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

/* Stores a job for VM in STATE, created at CREATED_MS and last updated at
 * UPDATED_MS, with id ID (NULL: a random one). Returns the id (caller
 * frees). */
static char *
put_job_id (Fixture *f, const char *id, const char *vm, const char *state,
            gint64 created_ms, gint64 updated_ms)
{
  g_autoptr (SchedJob) job
      = sched_job_new (PROTO_JOB_KIND_CREATE, vm, state, created_ms);
  g_autoptr (GError) error = NULL;

  if (id != NULL)
    {
      g_free (job->id);
      job->id = g_strdup (id);
    }
  job->updated_ms = updated_ms;
  g_assert_true (sched_store_put_job (f->svc->store, job, &error));
  g_assert_no_error (error);
  return g_strdup (job->id);
}

static char *
put_job (Fixture *f, const char *vm, const char *state, gint64 created_ms,
         gint64 updated_ms)
{
  return put_job_id (f, NULL, vm, state, created_ms, updated_ms);
}

/* The VMs of the stored jobs in creation order, "a,b,c". */
static char *
stored_vms (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) all = sched_store_list_jobs (f->svc->store, &error);
  g_autoptr (GString) out = g_string_new (NULL);

  g_assert_no_error (error);
  for (guint i = 0; i < all->len; i++)
    g_string_append_printf (out, "%s%s", i ? "," : "",
                            ((SchedJob *)all->pdata[i])->vm);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* --- the job board ----------------------------------------------------- */

/* Finished jobs older than the retention go; queued and running ones stay
 * however old. (The service's clock is the wall clock: the ages are far
 * from the limit on either side.) */
static void
test_prune_age (Fixture *f, gconstpointer data)
{
  gint64 now = sched_registry_now (f->svc->registry);
  g_autofree char *vms = NULL;

  g_free (put_job (f, "old-done", PROTO_JOB_DONE, 1, 10));
  g_free (put_job (f, "old-failed", PROTO_JOB_FAILED, 2, 20));
  g_free (put_job (f, "old-running", PROTO_JOB_RUNNING, 3, 30));
  g_free (put_job (f, "old-queued", PROTO_JOB_QUEUED, 4, 40));
  g_free (put_job (f, "aged", PROTO_JOB_DONE, 5, now - 2 * RETENTION_MS));
  g_free (put_job (f, "recent", PROTO_JOB_DONE, 6, now - RETENTION_MS / 2));

  g_assert_cmpuint (sched_jobs_prune (f->svc->jobs), ==, 3);
  vms = stored_vms (f);
  g_assert_cmpstr (vms, ==, "old-running,old-queued,recent");
  g_assert_cmpuint (sched_jobs_prune (f->svc->jobs), ==, 0);
}

/* Beyond MAX_JOBS finished jobs the least recently finished go, whenever a
 * job ends; running ones neither count nor go. */
static void
test_prune_count (Fixture *f, gconstpointer data)
{
  g_autoptr (SchedJob) ending = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *vms = NULL;
  g_autofree char *after = NULL;
  gint64 now = sched_registry_now (f->svc->registry);
  g_autofree char *running = put_job (f, "r1", PROTO_JOB_RUNNING, 1, 1);

  for (int i = 0; i < MAX_JOBS; i++)
    {
      g_autofree char *vm = g_strdup_printf ("d%d", i);

      g_free (put_job (f, vm, PROTO_JOB_DONE, 10 + i, now - 100 + i));
    }
  g_assert_cmpuint (sched_jobs_prune (f->svc->jobs), ==, 0);

  /* The running job ends: now MAX_JOBS + 1 are finished, d0 (the least
   * recently updated) goes. */
  ending = sched_store_get_job (f->svc->store, running, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (ending->vm, ==, "r1");
  sched_jobs_set (f->svc->jobs, ending, PROTO_JOB_FAILED, 0.5, NULL, "gone");
  vms = stored_vms (f);
  g_assert_cmpstr (vms, ==, "r1,d1,d2");

  /* A flood of jobs ending leaves MAX_JOBS finished ones: the newest
   * (r1 and the flood end within the same milliseconds; d1 and d2 are
   * older than all of them). */
  for (int i = 0; i < 20; i++)
    {
      g_autoptr (SchedJob) job = sched_job_new (PROTO_JOB_KIND_DELETE, "flood",
                                                PROTO_JOB_RUNNING, now + i);

      sched_jobs_set (f->svc->jobs, job, PROTO_JOB_DONE, 1.0, "done", NULL);
    }
  after = stored_vms (f);
  g_assert_cmpuint (strlen (after), ==, strlen ("flood,flood,flood"));
  g_assert_null (strstr (after, "d1"));
  g_assert_null (strstr (after, "d2"));
}

/* --- pages ------------------------------------------------------------- */

/* Every job exactly once, in creation order, page after page, even when
 * jobs come and go between the pages. */
static void
test_pages (Fixture *f, gconstpointer data)
{
  g_autoptr (GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;
  g_autofree char *first_id = NULL;
  g_autofree char *token = NULL;
  gint64 after_ms = 0;
  g_autofree char *after_id = NULL;
  guint pages = 0;

  /* Pairs of jobs share a creation time: the id breaks the tie, also
   * across the end of a page (v08 | v09). */
  for (int i = 0; i < 25; i++)
    {
      g_autofree char *vm = g_strdup_printf ("v%02d", i);
      g_autofree char *want = g_strdup_printf ("%08x", i);
      char *id = put_job_id (f, want, vm, PROTO_JOB_DONE, 1000 + i / 2, 1);

      if (i == 0)
        first_id = id;
      else
        g_free (id);
    }

  for (;;)
    {
      g_autoptr (GPtrArray) page = sched_store_list_jobs_after (
          f->svc->store, after_ms, after_id, 9, &error);
      SchedJob *last;

      g_assert_no_error (error);
      if (page->len == 0)
        break;
      pages++;
      for (guint i = 0; i < page->len; i++)
        g_ptr_array_add (seen, g_strdup (((SchedJob *)page->pdata[i])->vm));
      last = page->pdata[page->len - 1];
      /* The token round-trips. */
      g_free (token);
      token = sched_jobs_page_token (last);
      g_clear_pointer (&after_id, g_free);
      g_assert_true (
          sched_jobs_parse_page_token (token, &after_ms, &after_id, &error));
      g_assert_no_error (error);
      g_assert_cmpint (after_ms, ==, last->created_ms);
      g_assert_cmpstr (after_id, ==, last->id);
      if (pages == 1)
        {
          /* Between pages: the first job goes, a new one comes last. */
          g_assert_true (
              sched_store_delete_job (f->svc->store, first_id, &error));
          g_free (put_job_id (f, "ffffffff", "v25", PROTO_JOB_DONE, 5000, 1));
        }
    }
  g_assert_cmpuint (pages, ==, 3);
  g_assert_cmpuint (seen->len, ==, 26);
  for (guint i = 0; i < seen->len; i++)
    {
      g_autofree char *vm = g_strdup_printf ("v%02u", i);

      g_assert_cmpstr (seen->pdata[i], ==, vm);
    }
  /* NULL: from the first job. */
  {
    g_autoptr (GPtrArray) again
        = sched_store_list_jobs_after (f->svc->store, 0, NULL, 1, &error);

    g_assert_no_error (error);
    g_assert_cmpuint (again->len, ==, 1);
    g_assert_cmpstr (((SchedJob *)again->pdata[0])->vm, ==, "v01");
  }
}

/* Only what sched_jobs_page_token writes is a token. */
static void
test_page_token (void)
{
  g_autofree char *long_id = g_strnfill (65, 'a');
  g_autofree char *long_token = g_strconcat ("1/", long_id, NULL);
  g_autofree char *huge = g_strnfill (100000, '9');
  const struct
  {
    const char *token;
    gint64 ms;
    const char *id;
  } good[] = {
    { "0/a", 0, "a" },
    { "1700000000000/5b1e2c3d-0f00-4a6b-9c1d-2e3f4a5b6c7d", 1700000000000,
      "5b1e2c3d-0f00-4a6b-9c1d-2e3f4a5b6c7d" },
    { "-5/0", -5, "0" },
    { "999999999999999999/f", 999999999999999999, "f" },
  };
  const char *const bad[] = {
    "abc",
    "123",
    "123/",
    "/abc",
    "-/abc",
    "--1/a",
    "+1/a",
    " 1/a",
    "1 /a",
    "1/ a",
    "1/a ",
    "1/a\n",
    "0x10/a",
    "1//a",
    "1/a/b",
    "1/ABC",
    "1/g",
    "1/a;DROP TABLE jobs",
    "1/%",
    "1.5/a",
    "9999999999999999999/a",
    "99999999999999999999999/a",
    long_token,
    huge,
    "1/\xc3\xa9",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *id = NULL;
      gint64 ms = 42;

      g_assert_true (
          sched_jobs_parse_page_token (good[i].token, &ms, &id, &error));
      g_assert_no_error (error);
      g_assert_cmpint (ms, ==, good[i].ms);
      g_assert_cmpstr (id, ==, good[i].id);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *id = NULL;
      gint64 ms = 42;

      g_test_message ("'%.40s'", bad[i]);
      g_assert_false (sched_jobs_parse_page_token (bad[i], &ms, &id, &error));
      g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
      g_assert_null (id);
      g_assert_cmpint (ms, ==, 42);
    }
}

/* --- crash consistency ------------------------------------------------- */

/* The store's connection syncs every commit (synchronous=FULL, 2) in WAL
 * mode; the setting is per connection, so it is read on the store's own. */
static void
test_synchronous_full (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  gint64 value = -1;

  g_assert_true (
      sched_store_sqlite_pragma (f->svc->store, "synchronous", &value, &error));
  g_assert_no_error (error);
  g_assert_cmpint (value, ==, 2);
}

/* --- ListJobs and droverctl jobs --------------------------------------- */

#define N_JOBS (SCHED_JOBS_PAGE_MAX + 1)

static void
put_jobs (Fixture *f)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (
      sched_store_begin (f->svc->store, SCHED_STORE_SYNC_FULL, &error));
  for (int i = 0; i < N_JOBS; i++)
    {
      g_autofree char *vm = g_strdup_printf ("vm%04d", i);

      g_free (put_job (f, vm, PROTO_JOB_DONE, 1000 + i, 1000 + i));
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

/* Runs droverctl with ARGS against the scheduler (as operator "ops" with
 * mutual TLS when the fixture has it, AS_OPS); its stdout, its exit status
 * in *STATUS and its stderr in *ERR. */
static char *
droverctl_run (Fixture *f, gboolean as_ops, const char *const *args,
               int *status, char **err)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *tls = g_build_filename (pki_dir, "ops", NULL);
  char *out = NULL;

  g_ptr_array_add (argv, (char *)g_getenv ("DROVERCTL"));
  if (as_ops)
    {
      g_ptr_array_add (argv, (char *)"--tls-dir");
      g_ptr_array_add (argv, tls);
    }
  else
    g_ptr_array_add (argv, (char *)"--insecure");
  g_ptr_array_add (argv, (char *)"--scheduler");
  g_ptr_array_add (argv, f->target);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (char *)args[i]);
  g_ptr_array_add (argv, NULL);
  proc = g_subprocess_newv (
      (const char *const *)argv->pdata,
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (proc, NULL, NULL, on_exited, &result);
  while (result == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (
      g_subprocess_communicate_utf8_finish (proc, result, &out, err, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (proc));
  *status = g_subprocess_get_exit_status (proc);
  return out;
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

/* --- networks (issue 13) ----------------------------------------------- */

/* Registers host NAME (its own certificate) with BRIDGES, pairs of name
 * and kind ended by NULL. */
static void
register_with_bridges (Fixture *f, const char *name, const char *const *bridges)
{
  g_autoptr (ProtoClient) client = client_as (f, name);
  Drover__V1__RegisterHostRequest req = DROVER__V1__REGISTER_HOST_REQUEST__INIT;
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__HostBridge br[8];
  Drover__V1__HostBridge *list[8];
  g_autoptr (ProtobufCMessage) reply = NULL;
  g_autoptr (GError) error = NULL;
  gsize n = 0;

  for (; bridges[2 * n] != NULL; n++)
    {
      g_assert_cmpuint (n, <, G_N_ELEMENTS (br));
      drover__v1__host_bridge__init (&br[n]);
      br[n].name = (char *)bridges[2 * n];
      br[n].kind = (char *)bridges[2 * n + 1];
      list[n] = &br[n];
    }
  info.name = (char *)name;
  info.address = (char *)"127.0.0.1:9";
  info.cpus = 4;
  info.memory_total = 8 * GiB;
  info.bridges = list;
  info.n_bridges = n;
  req.host = &info;
  reply = call (client, DROVER_SCHED_METHOD_REGISTER_HOST, &req, &error);
  g_assert_no_error (error);
}

/* A report with a bridge of a bad name, too many bridges, or a kind that
 * is none is refused, and the host's stored bridges stay. */
static void
test_network_bad_bridges (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) a = client_as (f, "a");
  g_autoptr (SchedHost) host = NULL;
  Drover__V1__ReportHostRequest req = DROVER__V1__REPORT_HOST_REQUEST__INIT;
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__HostBridge many[PROTO_HOST_MAX_BRIDGES + 1];
  Drover__V1__HostBridge *list[PROTO_HOST_MAX_BRIDGES + 1];
  g_autofree char *names = g_malloc0 (16 * G_N_ELEMENTS (many));
  const char *bad[][2] = { { "a/b", "linux" },
                           { "..", "linux" },
                           { "br 0", "linux" },
                           { "", "linux" },
                           { "abcdefghijklmnop", "ovs" },
                           { "br0", "vmware" } };

  register_with_bridges (f, "a", (const char *[]){ "br0", "linux", NULL });
  info.name = (char *)"a";
  info.address = (char *)"";
  req.host = &info;
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (ProtobufCMessage) reply = NULL;
      g_autoptr (GError) error = NULL;
      Drover__V1__HostBridge br = DROVER__V1__HOST_BRIDGE__INIT;
      Drover__V1__HostBridge *one[] = { &br };

      br.name = (char *)bad[i][0];
      br.kind = (char *)bad[i][1];
      info.bridges = one;
      info.n_bridges = 1;
      req.seq = i + 1;
      reply = call (a, DROVER_SCHED_METHOD_REPORT_HOST, &req, &error);
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (many); i++)
    {
      drover__v1__host_bridge__init (&many[i]);
      many[i].name = names + 16 * i;
      g_snprintf (many[i].name, 16, "br%zu", i);
      many[i].kind = (char *)"linux";
      list[i] = &many[i];
    }
  {
    g_autoptr (ProtobufCMessage) reply = NULL;
    g_autoptr (GError) error = NULL;

    info.bridges = list;
    info.n_bridges = G_N_ELEMENTS (many);
    req.seq = 100;
    reply = call (a, DROVER_SCHED_METHOD_REPORT_HOST, &req, &error);
    g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, "at most"));
  }
  host = sched_store_get_host (f->svc->store, "a", NULL);
  g_assert_nonnull (host);
  g_assert_cmpuint (host->info->n_bridges, ==, 1);
  g_assert_cmpstr (host->info->bridges[0]->name, ==, "br0");
}

/* Who may: operators create and delete, viewers list and show, hosts
 * neither. */
static void
test_network_authz (Fixture *f, gconstpointer data)
{
  g_autoptr (ProtoClient) ops = client_as (f, "ops");
  g_autoptr (ProtoClient) eyes = client_as (f, "eyes");
  g_autoptr (ProtoClient) host = client_as (f, "a");
  Drover__V1__Network net = DROVER__V1__NETWORK__INIT;
  Drover__V1__NetworkRequest get = DROVER__V1__NETWORK_REQUEST__INIT;
  Drover__V1__ListNetworksRequest list
      = DROVER__V1__LIST_NETWORKS_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  gpointer reply;

  net.name = (char *)"lan";
  net.bridge = (char *)"br0";
  get.name = (char *)"lan";
  reply = call (eyes, DROVER_SCHED_METHOD_CREATE_NETWORK, &net, &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);
  reply = call (host, DROVER_SCHED_METHOD_CREATE_NETWORK, &net, &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);
  g_assert_null (sched_store_get_network (f->svc->store, "lan", NULL));

  reply = call (ops, DROVER_SCHED_METHOD_CREATE_NETWORK, &net, &error);
  g_assert_no_error (error);
  proto_msg_free (reply);
  reply = call (ops, DROVER_SCHED_METHOD_CREATE_NETWORK, &net, &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_ALREADY_EXISTS);
  g_clear_error (&error);
  reply = call (eyes, DROVER_SCHED_METHOD_LIST_NETWORKS, &list, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (((Drover__V1__ListNetworksReply *)reply)->n_networks, ==,
                    1);
  proto_msg_free (reply);
  reply = call (eyes, DROVER_SCHED_METHOD_GET_NETWORK, &get, &error);
  g_assert_no_error (error);
  proto_msg_free (reply);
  reply = call (host, DROVER_SCHED_METHOD_GET_NETWORK, &get, &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);
  reply = call (eyes, DROVER_SCHED_METHOD_DELETE_NETWORK, &get, &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);
  reply = call (ops, DROVER_SCHED_METHOD_DELETE_NETWORK, &get, &error);
  g_assert_no_error (error);
  proto_msg_free (reply);
  g_assert_null (sched_store_get_network (f->svc->store, "lan", NULL));
  reply = call (ops, DROVER_SCHED_METHOD_DELETE_NETWORK, &get, &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
  g_clear_error (&error);
  reply = call (eyes, DROVER_SCHED_METHOD_GET_NETWORK, &get, &error);
  g_assert_null (reply);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND);
}

/* droverctl network create/list/show/delete over mutual TLS, as an
 * operator, and the bad inputs: each a clear error that changes nothing. */
static void
test_droverctl_network (Fixture *f, gconstpointer data)
{
  const struct
  {
    const char *args[10];
    int status;
    const char *err;
  } bad[] = {
    { { "network", "create", "v", "--bridge", "br0", "--vlan", "5000" },
      1,
      "VLAN 5000 is not 1-4094" },
    { { "network", "create", "v", "--bridge", "a/b" }, 1, "no '/'" },
    { { "network", "create", "v", "--bridge", "br0", "--mtu", "20" },
      1,
      "MTU 20" },
    { { "network", "create", "Bad_Name", "--bridge", "br0" }, 2, "" },
    { { "network", "create", "v" }, 2, "missing --bridge" },
    { { "network", "create", "lan", "--bridge", "br1" }, 1, "exists" },
    { { "network", "show", "nope" }, 1, "no network named 'nope'" },
    { { "network", "delete", "nope" }, 1, "no network named 'nope'" },
  };
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;

  g_assert_nonnull (g_getenv ("DROVERCTL"));
  register_with_bridges (
      f, "a", (const char *[]){ "br0", "linux", "ovs0", "ovs", NULL });
  register_with_bridges (f, "b", (const char *[]){ "ovs0", "ovs", NULL });

  out = droverctl_run (
      f, TRUE,
      (const char *[]){ "network", "create", "lan", "--bridge", "br0", NULL },
      &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "network lan created on bridge br0"));
  g_assert_nonnull (strstr (out, "1 host(s) cannot offer it yet"));
  g_assert_true (g_str_has_suffix (out, ": b\n"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  /* A VLAN network: only the Open vSwitch bridges count. */
  out = droverctl_run (f, TRUE,
                       (const char *[]){ "network", "create", "tagged",
                                         "--bridge", "br0", "--vlan", "12",
                                         "--mtu", "1400", NULL },
                       &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "2 host(s) cannot offer it yet"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  out = droverctl_run (f, TRUE,
                       (const char *[]){ "network", "create", "ovsnet",
                                         "--bridge", "ovs0", "--vlan", "4094",
                                         NULL },
                       &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_null (strstr (out, "cannot offer"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *o = NULL;
      g_autofree char *e = NULL;

      o = droverctl_run (f, TRUE, bad[i].args, &status, &e);
      if (status != bad[i].status || strstr (e, bad[i].err) == NULL)
        g_error ("%s %s %s: status %d, stderr %s", bad[i].args[1],
                 bad[i].args[2], bad[i].args[3] ? bad[i].args[3] : "", status,
                 e);
    }

  out = droverctl_run (f, TRUE, (const char *[]){ "network", "list", NULL },
                       &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpuint (count (out, "\n"), ==, 4);
  g_assert_nonnull (strstr (out, "a (ovs), b (ovs)"));
  g_assert_nonnull (strstr (out, "a (linux)"));
  g_assert_null (strstr (out, " v "));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  out = droverctl_run (f, TRUE,
                       (const char *[]){ "network", "show", "tagged", NULL },
                       &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "VLAN"));
  g_assert_nonnull (strstr (out, "1400"));
  g_assert_nonnull (strstr (out, "unusable: a linux bridge cannot carry"));
  g_assert_nonnull (strstr (out, "lacks the bridge"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  out = droverctl_run (
      f, TRUE, (const char *[]){ "network", "show", "ovsnet", "--json", NULL },
      &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "\"vlan\": 4094"));
  g_assert_cmpuint (count (out, "\"usable\": true"), ==, 2);
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);

  out = droverctl_run (f, TRUE,
                       (const char *[]){ "network", "delete", "lan", NULL },
                       &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_nonnull (strstr (out, "network lan deleted"));
  g_assert_null (sched_store_get_network (f->svc->store, "lan", NULL));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  out = droverctl_run (f, TRUE,
                       (const char *[]){ "network", "list", "--json", NULL },
                       &status, &err);
  g_assert_cmpint (status, ==, 0);
  g_assert_cmpuint (count (out, "\"bridge\": "), ==, 2);
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
  ADD ("/sched-service/jobs/prune-age", fixture_jobs, test_prune_age);
  ADD ("/sched-service/jobs/prune-count", fixture_jobs, test_prune_count);
  ADD ("/sched-service/jobs/pages", fixture_jobs, test_pages);
  g_test_add_func ("/sched-service/jobs/page-token", test_page_token);
  ADD ("/sched-service/jobs/synchronous-full", fixture_jobs,
       test_synchronous_full);
  ADD ("/sched-service/list-jobs", fixture_insecure, test_list_jobs);
  ADD ("/sched-service/droverctl-jobs", fixture_insecure, test_droverctl_jobs);
  ADD ("/sched-service/network/bad-bridges", fixture_tls,
       test_network_bad_bridges);
  ADD ("/sched-service/network/authz", fixture_tls, test_network_authz);
  ADD ("/sched-service/network/droverctl", fixture_tls, test_droverctl_network);
  rc = g_test_run ();
  test_tmp_dir_remove (pki_dir);
  g_free (pki_dir);
  proto_shutdown ();
  return rc;
}
