/* SchedService: drover.v1.SchedulerService.
 *
 * Agent calls (RegisterHost, ReportHost) go to the registry. Operator
 * calls read the store, or place a VM / find a VM's host and forward the
 * command to that host's agent (AgentService), then record the outcome.
 * Every handler finishes its call exactly once: at once for errors found
 * here, else in the agent call's completion, which always runs (with an
 * error on failure, timeout or shutdown).
 *
 * Decisions worth knowing:
 * - VMs in state "creating" refuse lifecycle commands and deletion
 *   (FAILED_PRECONDITION) until their create finishes.
 * - DeleteVm of a VM whose host is unknown to the store, or that is
 *   "missing" while its host is down, only removes the record: there is
 *   no agent that could have it. If the host is down and the VM was last
 *   seen there, it is UNAVAILABLE (deleting the record would leave a VM
 *   that gets adopted again when the host returns). An agent answering
 *   NOT_FOUND to DeleteVm counts as success.
 * - GetVm answers from the store (agents report every interval); it does
 *   not need the host to be up.
 * - On start, jobs left queued/running by a previous process are failed
 *   and "creating" VMs become "missing": the outcome of their create is
 *   unknown, and the host's next report settles it (the VM is reported
 *   and takes its real state, or stays missing and can be deleted).
 *   Migration jobs are failed the same way; the source agent aborts when
 *   its MigrateOut call breaks, and reports say where the VM is.
 * - MigrateVm (see "MigrateVm" below) answers at once with the job; the
 *   orchestration then runs from agent call completions. A VM migrating
 *   refuses start/stop/destroy/delete (FAILED_PRECONDITION).
 */
#include "sched-private.h"

#include <string.h>

#define AGENT_CREATE_TIMEOUT_MS (180 * 1000)
#define AGENT_CALL_TIMEOUT_MS (60 * 1000)
/* StopVm waits for a graceful shutdown; allow for the grace period. */
#define AGENT_STOP_EXTRA_MS (30 * 1000)
/* PrepareIncoming may create the VM's disk on the destination. */
#define MIG_PREPARE_TIMEOUT_MS AGENT_CREATE_TIMEOUT_MS
/* Progress goes to watchers at once but to the store at most this often. */
#define MIG_STORE_INTERVAL_MS 250
/* A source agent silent this long is taken as hung: the call is cancelled
 * (which aborts the migration there) and the job fails. */
#define MIG_SILENCE_TIMEOUT_MS (300 * 1000)
#define MIG_WATCHDOG_PERIOD_MS (5 * 1000)

struct _SchedService
{
  char *state_dir;
  guint report_interval_ms;
  SchedPolicy policy;
  ProtoTls *tls; /* NULL = insecure */
  GMainContext *ctx;
  SchedStore *store;
  SchedRegistry *registry;
  ProtoServer *server;
  GHashTable *clients;      /* host name -> ProtoClient (one per agent) */
  GHashTable *watchers;     /* job id -> GPtrArray of ProtoServerCall */
  GHashTable *migrations;   /* job id -> Migration (queued or running) */
  SchedMigQueue *mig_queue; /* per-host limits, waiting migrations */
  double link_bandwidth;    /* bytes/s, for the cost model */
  GSource *liveness;
  gboolean stopped;
};

ProtoStatus
sched_error_to_status (const GError *error)
{
  if (error == NULL)
    return PROTO_STATUS_OK;
  if (error->domain == PROTO_ERROR)
    return error->code;
  if (error->domain != SCHED_ERROR)
    return PROTO_STATUS_INTERNAL;
  switch ((SchedError)error->code)
    {
    case SCHED_ERROR_NOT_FOUND:
      return PROTO_STATUS_NOT_FOUND;
    case SCHED_ERROR_EXISTS:
      return PROTO_STATUS_ALREADY_EXISTS;
    case SCHED_ERROR_INVALID:
      return PROTO_STATUS_INVALID_ARGUMENT;
    case SCHED_ERROR_NO_CAPACITY:
      return PROTO_STATUS_RESOURCE_EXHAUSTED;
    case SCHED_ERROR_PRECONDITION:
      return PROTO_STATUS_FAILED_PRECONDITION;
    case SCHED_ERROR_UNAVAILABLE:
      return PROTO_STATUS_UNAVAILABLE;
    case SCHED_ERROR_CORRUPT:
      return PROTO_STATUS_DATA_LOSS;
    case SCHED_ERROR_STORE:
    case SCHED_ERROR_FAILED:
    default:
      return PROTO_STATUS_INTERNAL;
    }
}

static void
call_fail (ProtoServerCall *call, const GError *error)
{
  proto_server_call_fail (call, sched_error_to_status (error), "%s",
                          error->message);
}

static gint64
now_ms (SchedService *svc)
{
  return sched_registry_now (svc->registry);
}

/* --- messages from rows (borrowing the rows' memory) --------------------- */

static void
vm_msg (const SchedVm *vm, Drover__V1__Vm *msg)
{
  drover__v1__vm__init (msg);
  msg->spec = vm->spec;
  msg->host = vm->host;
  msg->state = vm->state;
  msg->status = vm->status;
  msg->updated_ms = vm->updated_ms;
}

static void
job_msg (const SchedJob *job, Drover__V1__Job *msg)
{
  drover__v1__job__init (msg);
  msg->id = job->id;
  msg->kind = job->kind;
  msg->vm = job->vm;
  msg->state = job->state;
  msg->progress = job->progress;
  msg->message = job->message;
  msg->error = job->error;
  msg->created_ms = job->created_ms;
  msg->updated_ms = job->updated_ms;
  msg->source_host = job->source_host ? job->source_host : (char *)"";
  msg->dest_host = job->dest_host ? job->dest_host : (char *)"";
  msg->migration = job->migration;
  msg->prediction = job->prediction;
}

static void
reply_vm (ProtoServerCall *call, const SchedVm *vm)
{
  Drover__V1__VmReply reply = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm msg;

  vm_msg (vm, &msg);
  reply.vm = &msg;
  proto_server_call_reply (call, &reply.base);
}

/* --- jobs ---------------------------------------------------------------- */

static gboolean
job_is_over (const SchedJob *job)
{
  return strcmp (job->state, PROTO_JOB_DONE) == 0
         || strcmp (job->state, PROTO_JOB_FAILED) == 0;
}

/* Tells JOB's watchers, storing it first if STORE (always once it is
 * over); ends their streams once it is over. */
static void
job_update (SchedService *svc, SchedJob *job, gboolean store)
{
  g_autoptr (GError) error = NULL;
  GPtrArray *calls;
  Drover__V1__Job msg;

  job->updated_ms = now_ms (svc);
  if ((store || job_is_over (job))
      && !sched_store_put_job (svc->store, job, &error))
    g_warning ("job %s: %s", job->id, error->message);

  calls = g_hash_table_lookup (svc->watchers, job->id);
  if (calls == NULL)
    return;
  job_msg (job, &msg);
  for (guint i = 0; i < calls->len; i++)
    proto_server_call_send (calls->pdata[i], &msg.base);
  if (job_is_over (job))
    {
      for (guint i = 0; i < calls->len; i++)
        proto_server_call_finish (calls->pdata[i], PROTO_STATUS_OK, NULL);
      g_hash_table_remove (svc->watchers, job->id);
    }
}

/* Stores JOB and tells its watchers; ends their streams once it is over. */
static void
job_changed (SchedService *svc, SchedJob *job)
{
  job_update (svc, job, TRUE);
}

static void
job_set (SchedService *svc, SchedJob *job, const char *state, double progress,
         const char *message, const char *error)
{
  g_free (job->state);
  job->state = g_strdup (state);
  job->progress = progress;
  if (message != NULL)
    {
      g_free (job->message);
      job->message = g_strdup (message);
    }
  if (error != NULL)
    {
      g_free (job->error);
      job->error = g_strdup (error);
    }
  job_changed (svc, job);
}

/* --- agent clients ------------------------------------------------------- */

static gboolean
free_client_idle (gpointer client)
{
  proto_client_free (client);
  return G_SOURCE_REMOVE;
}

/* Forgets the cached client of host NAME. Freeing a client runs its
 * pending callbacks; that happens from the main loop, not under our
 * caller. */
static void
drop_client (SchedService *svc, const char *name)
{
  ProtoClient *client = g_hash_table_lookup (svc->clients, name);
  g_autoptr (GSource) idle = NULL;

  if (client == NULL)
    return;
  g_hash_table_steal (svc->clients, name);
  idle = g_idle_source_new ();
  g_source_set_callback (idle, free_client_idle, client, NULL);
  g_source_attach (idle, svc->ctx);
}

/* The cached client for HOST, (re)created if its address changed. */
static ProtoClient *
agent_client (SchedService *svc, const SchedHost *host, GError **error)
{
  ProtoClient *client = g_hash_table_lookup (svc->clients, host->name);

  if (client != NULL
      && strcmp (proto_client_get_target (client), host->address) == 0)
    return client;
  drop_client (svc, host->name);
  client = proto_client_new (host->address, svc->tls, svc->ctx, error);
  if (client == NULL)
    {
      g_prefix_error (error, "host '%s': ", host->name);
      return NULL;
    }
  g_hash_table_replace (svc->clients, g_strdup (host->name), client);
  return client;
}

/* An agent's error, for the operator: "host 'h': ..." with its code. */
static void
call_fail_agent (ProtoServerCall *call, const char *host, const GError *error)
{
  proto_server_call_fail (call, sched_error_to_status (error), "host '%s': %s",
                          host, error->message);
}

/* A command in flight to an agent. */
typedef struct
{
  SchedService *svc;
  ProtoServerCall *call;
  char *vm;
  char *host;
  SchedJob *job; /* create and delete have one */
} Pending;

static Pending *
pending_new (SchedService *svc, ProtoServerCall *call, const char *vm,
             const char *host, SchedJob *job)
{
  Pending *p = g_new0 (Pending, 1);

  p->svc = svc;
  p->call = call;
  p->vm = g_strdup (vm);
  p->host = g_strdup (host);
  p->job = job;
  return p;
}

static void
pending_free (Pending *p)
{
  g_free (p->vm);
  g_free (p->host);
  sched_job_free (p->job);
  g_free (p);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Pending, pending_free)

/* Finds VM NAME and its host for a command. The host may be NULL (unknown
 * to the store) only if ALLOW_NO_HOST. */
static gboolean
lookup_vm (SchedService *svc, const char *name, gboolean allow_no_host,
           SchedVm **vm_out, SchedHost **host_out, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;

  if (!proto_name_validate ("VM", name, error))
    return FALSE;
  vm = sched_store_get_vm (svc->store, name, error);
  if (vm == NULL)
    return FALSE;
  if (strcmp (vm->state, PROTO_VM_CREATING) == 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is being created", name);
      return FALSE;
    }
  host = sched_store_get_host (svc->store, vm->host, &local);
  if (host == NULL)
    {
      if (!g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      if (!allow_no_host)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                       "host '%s' of VM '%s' is unknown", vm->host, name);
          return FALSE;
        }
    }
  *vm_out = g_steal_pointer (&vm);
  *host_out = g_steal_pointer (&host);
  return TRUE;
}

static gboolean
host_is_up (const SchedHost *host, GError **error)
{
  if (strcmp (host->state, PROTO_HOST_UP) == 0)
    return TRUE;
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE, "host '%s' is down",
               host->name);
  return FALSE;
}

/* A migration the scheduler drives (queued or running); owned by
 * svc->migrations, freed when it ends (mig_finish). At most one agent
 * call of it is in flight at a time (PrepareIncoming, then MigrateOut), and
 * only that call's completion ends it. */
typedef struct
{
  SchedService *svc;
  SchedJob *job;                       /* the live job (store lags, see
                                          MIG_STORE_INTERVAL_MS) */
  Drover__V1__VmSpec *spec;            /* the VM's, at MigrateVm */
  Drover__V1__MigrationParams *params; /* never NULL */
  char *warning;                       /* the cost model's, or NULL */
  gboolean prepare_sent;               /* PrepareIncoming was called */
  char *token;                         /* from PrepareIncoming */
  ProtoClientStream *stream;           /* MigrateOut, while open */
  gboolean silent;                     /* the watchdog cancelled it */
  gint64 last_store_ms;
  gint64 last_msg_ms;
  GSource *watchdog;
} Migration;

static void
migration_free (Migration *m)
{
  if (m->watchdog != NULL)
    {
      g_source_destroy (m->watchdog);
      g_source_unref (m->watchdog);
    }
  sched_job_free (m->job);
  proto_msg_free (m->spec);
  proto_msg_free (m->params);
  g_free (m->warning);
  g_free (m->token);
  g_free (m);
}

/* The migration of VM NAME in progress, or NULL. */
static Migration *
migration_of_vm (SchedService *svc, const char *name)
{
  GHashTableIter iter;
  Migration *m;

  g_hash_table_iter_init (&iter, svc->migrations);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&m))
    if (strcmp (m->job->vm, name) == 0)
      return m;
  return NULL;
}

/* Fails CALL and returns TRUE if VM NAME is migrating. */
static gboolean
refuse_if_migrating (SchedService *svc, ProtoServerCall *call, const char *name)
{
  Migration *m = migration_of_vm (svc, name);

  if (m == NULL)
    return FALSE;
  proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                          "VM '%s' is migrating to host '%s' (job %s)", name,
                          m->job->dest_host, m->job->id);
  return TRUE;
}

/* VMS plus, for each migration in flight, the VM on its destination as a
 * reservation ("creating": its memory, vCPUs and disk count there). */
static void
add_migration_reservations (SchedService *svc, GPtrArray *vms)
{
  GHashTableIter iter;
  Migration *m;

  g_hash_table_iter_init (&iter, svc->migrations);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&m))
    g_ptr_array_add (vms, sched_vm_new (m->spec, m->job->dest_host,
                                        PROTO_VM_CREATING, NULL, 0));
}

/* --- agent-facing handlers ----------------------------------------------- */

static gboolean
check_host_info (const Drover__V1__HostInfo *info, GError **error)
{
  if (info == NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "host info missing");
      return FALSE;
    }
  return proto_name_validate ("host", info->name, error);
}

static void
handle_register_host (ProtoServerCall *call, const ProtobufCMessage *request,
                      gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__RegisterHostRequest *req = (const void *)request;
  Drover__V1__RegisterHostReply reply = DROVER__V1__REGISTER_HOST_REPLY__INIT;
  g_autoptr (GError) error = NULL;

  if (!check_host_info (req->host, &error))
    {
      call_fail (call, error);
      return;
    }
  if (req->host->address[0] == '\0')
    {
      proto_server_call_fail (call, PROTO_STATUS_INVALID_ARGUMENT,
                              "host '%s': agent address missing",
                              req->host->name);
      return;
    }
  if (!sched_registry_register (svc->registry, req->host, &error))
    {
      g_warning ("RegisterHost %s: %s", req->host->name, error->message);
      call_fail (call, error);
      return;
    }
  /* A (re)registering agent is a new process: a cached channel to its
   * predecessor may sit in gRPC's reconnect backoff and fail the next
   * calls fast, so start afresh. */
  drop_client (svc, req->host->name);
  reply.report_interval_ms = svc->report_interval_ms;
  proto_server_call_reply (call, &reply.base);
}

static void
handle_report_host (ProtoServerCall *call, const ProtobufCMessage *request,
                    gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__ReportHostRequest *req = (const void *)request;
  Drover__V1__ReportHostReply reply = DROVER__V1__REPORT_HOST_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  gboolean reregister = FALSE;

  if (!check_host_info (req->host, &error))
    {
      call_fail (call, error);
      return;
    }
  if (!sched_registry_report (svc->registry, req->host, req->vms, req->n_vms,
                              req->seq, &reregister, &error))
    {
      g_warning ("ReportHost %s: %s", req->host->name, error->message);
      call_fail (call, error);
      return;
    }
  reply.reregister = reregister;
  proto_server_call_reply (call, &reply.base);
}

/* --- queries ------------------------------------------------------------- */

static void
handle_list_hosts (ProtoServerCall *call, const ProtobufCMessage *request,
                   gpointer user_data)
{
  SchedService *svc = user_data;
  Drover__V1__ListHostsReply reply = DROVER__V1__LIST_HOSTS_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (svc->store, &error);
  g_autoptr (GPtrArray) vms = NULL;
  g_autofree Drover__V1__Host *msgs = NULL;
  g_autofree Drover__V1__Host **ptrs = NULL;

  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, &error);
  if (vms == NULL)
    {
      call_fail (call, error);
      return;
    }

  msgs = g_new0 (Drover__V1__Host, hosts->len);
  ptrs = g_new0 (Drover__V1__Host *, hosts->len + 1);
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *host = hosts->pdata[i];
      guint count, vcpus;
      guint64 memory;

      drover__v1__host__init (&msgs[i]);
      sched_host_usage (host->name, vms, &count, &vcpus, &memory, NULL);
      msgs[i].info = host->info;
      msgs[i].state = host->state;
      msgs[i].last_seen_ms = host->last_seen_ms;
      msgs[i].vm_count = count;
      msgs[i].vcpus_used = vcpus;
      msgs[i].memory_used = memory;
      ptrs[i] = &msgs[i];
    }
  reply.hosts = ptrs;
  reply.n_hosts = hosts->len;
  proto_server_call_reply (call, &reply.base);
}

static void
handle_list_vms (ProtoServerCall *call, const ProtobufCMessage *request,
                 gpointer user_data)
{
  SchedService *svc = user_data;
  Drover__V1__ListVmsReply reply = DROVER__V1__LIST_VMS_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) vms = sched_store_list_vms (svc->store, NULL, &error);
  g_autofree Drover__V1__Vm *msgs = NULL;
  g_autofree Drover__V1__Vm **ptrs = NULL;

  if (vms == NULL)
    {
      call_fail (call, error);
      return;
    }
  msgs = g_new0 (Drover__V1__Vm, vms->len);
  ptrs = g_new0 (Drover__V1__Vm *, vms->len + 1);
  for (guint i = 0; i < vms->len; i++)
    {
      vm_msg (vms->pdata[i], &msgs[i]);
      ptrs[i] = &msgs[i];
    }
  reply.vms = ptrs;
  reply.n_vms = vms->len;
  proto_server_call_reply (call, &reply.base);
}

static void
handle_get_vm (ProtoServerCall *call, const ProtobufCMessage *request,
               gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__GetVmRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;

  if (!proto_name_validate ("VM", req->name, &error))
    {
      call_fail (call, error);
      return;
    }
  vm = sched_store_get_vm (svc->store, req->name, &error);
  if (vm == NULL)
    {
      call_fail (call, error);
      return;
    }
  reply_vm (call, vm);
}

static void
handle_list_jobs (ProtoServerCall *call, const ProtobufCMessage *request,
                  gpointer user_data)
{
  SchedService *svc = user_data;
  Drover__V1__ListJobsReply reply = DROVER__V1__LIST_JOBS_REPLY__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) jobs = sched_store_list_jobs (svc->store, &error);
  g_autofree Drover__V1__Job *msgs = NULL;
  g_autofree Drover__V1__Job **ptrs = NULL;

  if (jobs == NULL)
    {
      call_fail (call, error);
      return;
    }
  msgs = g_new0 (Drover__V1__Job, jobs->len);
  ptrs = g_new0 (Drover__V1__Job *, jobs->len + 1);
  for (guint i = 0; i < jobs->len; i++)
    {
      job_msg (jobs->pdata[i], &msgs[i]);
      ptrs[i] = &msgs[i];
    }
  reply.jobs = ptrs;
  reply.n_jobs = jobs->len;
  proto_server_call_reply (call, &reply.base);
}

static void
watch_cancelled (gpointer data, gpointer user_data)
{
  ProtoServerCall *call = data;
  SchedService *svc = user_data;
  GHashTableIter iter;
  GPtrArray *calls;

  g_hash_table_iter_init (&iter, svc->watchers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&calls))
    if (g_ptr_array_remove (calls, call))
      {
        if (calls->len == 0)
          g_hash_table_iter_remove (&iter);
        break;
      }
  proto_server_call_finish (call, PROTO_STATUS_CANCELLED, "cancelled");
}

static void
handle_watch_job (ProtoServerCall *call, const ProtobufCMessage *request,
                  gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__WatchJobRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  GPtrArray *calls;
  Drover__V1__Job msg;

  if (strlen (req->id) > 64)
    {
      proto_server_call_fail (call, PROTO_STATUS_INVALID_ARGUMENT,
                              "job id too long");
      return;
    }
  job = sched_store_get_job (svc->store, req->id, &error);
  if (job == NULL)
    {
      call_fail (call, error);
      return;
    }

  job_msg (job, &msg);
  proto_server_call_send (call, &msg.base);
  if (job_is_over (job))
    {
      proto_server_call_finish (call, PROTO_STATUS_OK, NULL);
      return;
    }

  calls = g_hash_table_lookup (svc->watchers, job->id);
  if (calls == NULL)
    {
      calls = g_ptr_array_new ();
      g_hash_table_insert (svc->watchers, g_strdup (job->id), calls);
    }
  g_ptr_array_add (calls, call);
  proto_server_call_set_cancel_func (call, watch_cancelled, svc);
}

/* --- CreateVm ------------------------------------------------------------ */

static void
create_done (const ProtobufCMessage *reply, const GError *error,
             gpointer user_data)
{
  g_autoptr (Pending) p = user_data;
  SchedService *svc = p->svc;
  const Drover__V1__AgentVmReply *agent = (const void *)reply;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = sched_store_get_vm (svc->store, p->vm, &local);

  if (error != NULL)
    {
      g_autofree char *msg
          = g_strdup_printf ("host '%s': %s", p->host, error->message);
      g_message ("creating VM %s on host %s failed: %s", p->vm, p->host,
                 error->message);
      /* Only our own reservation goes: a report may have moved the VM. */
      if (vm != NULL && strcmp (vm->host, p->host) == 0
          && strcmp (vm->state, PROTO_VM_CREATING) == 0
          && !sched_store_delete_vm (svc->store, p->vm, &local))
        g_warning ("VM %s: %s", p->vm, local->message);
      job_set (svc, p->job, PROTO_JOB_FAILED, p->job->progress, NULL, msg);
      call_fail_agent (p->call, p->host, error);
      return;
    }

  if (vm == NULL)
    {
      /* Cannot happen while creating VMs refuse deletion; the host's next
       * report adopts the VM. */
      job_set (svc, p->job, PROTO_JOB_DONE, 1.0, "created, record lost", NULL);
      proto_server_call_fail (p->call, PROTO_STATUS_ABORTED,
                              "VM '%s' was created on host '%s' but "
                              "its record went away meanwhile",
                              p->vm, p->host);
      return;
    }
  if (agent->vm != NULL)
    {
      sched_vm_set_status (vm, agent->vm);
      sched_vm_set_state (vm,
                          agent->vm->state[0] ? agent->vm->state : "unknown");
    }
  else if (strcmp (vm->state, PROTO_VM_CREATING) == 0)
    sched_vm_set_state (vm, "unknown");
  vm->updated_ms = now_ms (svc);
  if (!sched_store_put_vm (svc->store, vm, &local))
    g_warning ("VM %s: %s", p->vm, local->message);
  g_message ("VM %s created on host %s", p->vm, p->host);
  {
    g_autofree char *msg = g_strdup_printf ("created on host %s", p->host);
    job_set (svc, p->job, PROTO_JOB_DONE, 1.0, msg, NULL);
  }
  reply_vm (p->call, vm);
}

static void
handle_create_vm (ProtoServerCall *call, const ProtobufCMessage *request,
                  gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__CreateVmRequest *req = (const void *)request;
  Drover__V1__AgentCreateVmRequest agent_req
      = DROVER__V1__AGENT_CREATE_VM_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) existing = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autofree char *chosen = NULL;
  g_autofree char *msg = NULL;
  SchedJob *job;
  ProtoClient *client;
  gint64 now = now_ms (svc);

  if (!proto_vm_spec_check (req->spec, &error))
    {
      call_fail (call, error);
      return;
    }
  if (req->host[0] != '\0' && !proto_name_validate ("host", req->host, &error))
    {
      call_fail (call, error);
      return;
    }

  existing = sched_store_get_vm (svc->store, req->spec->name, &error);
  if (existing != NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_ALREADY_EXISTS,
                              "VM '%s' already exists (on host '%s')",
                              existing->name, existing->host);
      return;
    }
  if (!g_error_matches (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    {
      call_fail (call, error);
      return;
    }
  g_clear_error (&error);

  hosts = sched_store_list_hosts (svc->store, &error);
  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, &error);
  if (vms == NULL)
    {
      call_fail (call, error);
      return;
    }
  add_migration_reservations (svc, vms);
  chosen = sched_place (&svc->policy, hosts, vms, req->spec, req->host, &error);
  if (chosen == NULL)
    {
      call_fail (call, error);
      return;
    }
  host = sched_store_get_host (svc->store, chosen, &error);
  if (host == NULL)
    {
      call_fail (call, error);
      return;
    }
  client = agent_client (svc, host, &error);
  if (client == NULL)
    {
      call_fail (call, error);
      return;
    }

  /* The "creating" row is the reservation that later placements see. */
  vm = sched_vm_new (req->spec, chosen, PROTO_VM_CREATING, NULL, now);
  if (!sched_store_put_vm (svc->store, vm, &error))
    {
      call_fail (call, error);
      return;
    }
  job = sched_job_new (PROTO_JOB_KIND_CREATE, vm->name, PROTO_JOB_RUNNING, now);
  msg = g_strdup_printf ("creating on host %s", chosen);
  job_set (svc, job, PROTO_JOB_RUNNING, 0.1, msg, NULL);
  g_message ("VM %s: placed on host %s, job %s", vm->name, chosen, job->id);

  agent_req.spec = req->spec;
  proto_client_call (client, DROVER_AGENT_SERVICE,
                     DROVER_AGENT_METHOD_CREATE_VM, &agent_req.base,
                     AGENT_CREATE_TIMEOUT_MS, create_done,
                     pending_new (svc, call, vm->name, chosen, job));
}

/* --- Start / Stop / Destroy
 * ---------------------------------------------------- */

static void
lifecycle_done (const ProtobufCMessage *reply, const GError *error,
                gpointer user_data)
{
  g_autoptr (Pending) p = user_data;
  SchedService *svc = p->svc;
  const Drover__V1__AgentVmReply *agent = (const void *)reply;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = NULL;

  if (error != NULL)
    {
      call_fail_agent (p->call, p->host, error);
      return;
    }

  vm = sched_store_get_vm (svc->store, p->vm, &local);
  if (vm == NULL)
    {
      proto_server_call_fail (p->call, PROTO_STATUS_NOT_FOUND,
                              "VM '%s' was deleted meanwhile", p->vm);
      return;
    }
  if (agent->vm != NULL && strcmp (vm->host, p->host) == 0)
    {
      sched_vm_set_status (vm, agent->vm);
      if (agent->vm->state[0] != '\0')
        sched_vm_set_state (vm, agent->vm->state);
      vm->updated_ms = now_ms (svc);
      if (!sched_store_put_vm (svc->store, vm, &local))
        g_warning ("VM %s: %s", p->vm, local->message);
    }
  reply_vm (p->call, vm);
}

/* Sends REQUEST (a message the agent's method takes as is) to the agent of
 * VM NAME; DONE finishes CALL. */
static void
forward (SchedService *svc, ProtoServerCall *call, const char *name,
         guint agent_method, const ProtobufCMessage *request, gint64 timeout_ms,
         ProtoReplyFunc done)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  ProtoClient *client;

  if (!lookup_vm (svc, name, FALSE, &vm, &host, &error)
      || !host_is_up (host, &error)
      || (client = agent_client (svc, host, &error)) == NULL)
    {
      call_fail (call, error);
      return;
    }
  proto_client_call (client, DROVER_AGENT_SERVICE, agent_method, request,
                     timeout_ms, done,
                     pending_new (svc, call, vm->name, host->name, NULL));
}

static void
handle_start_vm (ProtoServerCall *call, const ProtobufCMessage *request,
                 gpointer user_data)
{
  const Drover__V1__VmRequest *req = (const void *)request;

  if (refuse_if_migrating (user_data, call, req->name))
    return;
  forward (user_data, call, req->name, DROVER_AGENT_METHOD_START_VM, request,
           AGENT_CALL_TIMEOUT_MS, lifecycle_done);
}

static void
handle_stop_vm (ProtoServerCall *call, const ProtobufCMessage *request,
                gpointer user_data)
{
  const Drover__V1__StopVmRequest *req = (const void *)request;

  if (refuse_if_migrating (user_data, call, req->name))
    return;
  forward (user_data, call, req->name, DROVER_AGENT_METHOD_STOP_VM, request,
           AGENT_CALL_TIMEOUT_MS + AGENT_STOP_EXTRA_MS + req->timeout_ms,
           lifecycle_done);
}

static void
handle_destroy_vm (ProtoServerCall *call, const ProtobufCMessage *request,
                   gpointer user_data)
{
  const Drover__V1__VmRequest *req = (const void *)request;

  if (refuse_if_migrating (user_data, call, req->name))
    return;
  forward (user_data, call, req->name, DROVER_AGENT_METHOD_DESTROY_VM, request,
           AGENT_CALL_TIMEOUT_MS, lifecycle_done);
}

static void
console_done (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  g_autoptr (Pending) p = user_data;

  if (error != NULL)
    {
      call_fail_agent (p->call, p->host, error);
      return;
    }
  proto_server_call_reply (p->call, reply);
}

static void
handle_read_console (ProtoServerCall *call, const ProtobufCMessage *request,
                     gpointer user_data)
{
  const Drover__V1__ConsoleRequest *req = (const void *)request;

  forward (user_data, call, req->name, DROVER_AGENT_METHOD_READ_CONSOLE,
           request, AGENT_CALL_TIMEOUT_MS, console_done);
}

/* --- DeleteVm
 * ----------------------------------------------------------------- */

/* Removes VM NAME's record and ends JOB and CALL successfully. */
static void
delete_record (SchedService *svc, ProtoServerCall *call, SchedJob *job,
               const char *name, const char *how)
{
  Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;
  g_autoptr (GError) error = NULL;

  if (!sched_store_delete_vm (svc->store, name, &error))
    {
      job_set (svc, job, PROTO_JOB_FAILED, job->progress, NULL, error->message);
      call_fail (call, error);
      return;
    }
  sched_registry_forget_vm (svc->registry, name);
  g_message ("VM %s deleted (%s)", name, how);
  job_set (svc, job, PROTO_JOB_DONE, 1.0, how, NULL);
  proto_server_call_reply (call, &empty.base);
}

static void
delete_done (const ProtobufCMessage *reply, const GError *error,
             gpointer user_data)
{
  g_autoptr (Pending) p = user_data;

  if (error != NULL
      && !g_error_matches (error, PROTO_ERROR, PROTO_STATUS_NOT_FOUND))
    {
      g_autofree char *msg
          = g_strdup_printf ("host '%s': %s", p->host, error->message);
      job_set (p->svc, p->job, PROTO_JOB_FAILED, p->job->progress, NULL, msg);
      call_fail_agent (p->call, p->host, error);
      return;
    }
  delete_record (p->svc, p->call, p->job, p->vm,
                 error ? "the host did not have it" : "deleted on its host");
}

static void
handle_delete_vm (ProtoServerCall *call, const ProtobufCMessage *request,
                  gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__DeleteVmRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (SchedJob) job = NULL;
  ProtoClient *client;
  gboolean missing;

  if (refuse_if_migrating (svc, call, req->name))
    return;
  if (!lookup_vm (svc, req->name, TRUE, &vm, &host, &error))
    {
      call_fail (call, error);
      return;
    }
  missing = strcmp (vm->state, PROTO_VM_MISSING) == 0;
  if (host != NULL && strcmp (host->state, PROTO_HOST_UP) != 0 && !missing)
    {
      proto_server_call_fail (call, PROTO_STATUS_UNAVAILABLE,
                              "host '%s' is down", host->name);
      return;
    }

  job = sched_job_new (PROTO_JOB_KIND_DELETE, vm->name, PROTO_JOB_RUNNING,
                       now_ms (svc));
  if (host == NULL || strcmp (host->state, PROTO_HOST_UP) != 0)
    {
      delete_record (svc, call, job, vm->name,
                     host == NULL ? "its host is unknown"
                                  : "missing, its host is down");
      return;
    }

  client = agent_client (svc, host, &error);
  if (client == NULL)
    {
      call_fail (call, error);
      return;
    }
  {
    g_autofree char *msg = g_strdup_printf ("deleting on host %s", host->name);
    job_set (svc, job, PROTO_JOB_RUNNING, 0.1, msg, NULL);
  }
  proto_client_call (
      client, DROVER_AGENT_SERVICE, DROVER_AGENT_METHOD_DELETE_VM, request,
      AGENT_CALL_TIMEOUT_MS + AGENT_STOP_EXTRA_MS, delete_done,
      pending_new (svc, call, vm->name, host->name, g_steal_pointer (&job)));
}

/* --- MigrateVm
 * ------------------------------------------------------------------
 *
 * Timeline of one migration (job kind "migrate"):
 *   MigrateVm: validate, choose the destination, run the cost model, create
 *     the job; answer with it. Per-host limits may queue it (state queued).
 *   start: job running, phase preparing; PrepareIncoming on the destination
 *     (it reserves, prepares and returns a one-time token and the address
 *     of its migration listener).
 *   MigrateOut on the source with that token: a stream of MigrationProgress
 *     that we relay into the job (watchers get every one; the store at most
 *     every MIG_STORE_INTERVAL_MS, and always the final state).
 *   end of the stream: the last progress says completed (job done, the VM
 *     record moves to the destination) or anything else (job failed,
 *     CancelIncoming on the destination, the VM stays where reports say).
 * Every path ends in mig_finish, which frees the slot and starts queued
 * migrations that may now run. */

static void mig_start (Migration *m);

static void
cancel_incoming_done (const ProtobufCMessage *reply, const GError *error,
                      gpointer user_data)
{
  g_autofree char *what = user_data;

  if (error != NULL)
    g_message ("%s: CancelIncoming failed: %s", what, error->message);
}

/* Tells the destination to drop what it prepared; best effort (the agent
 * also gives up on its own when no channel arrives). */
static void
mig_cancel_incoming (Migration *m)
{
  SchedService *svc = m->svc;
  Drover__V1__CancelIncomingRequest req
      = DROVER__V1__CANCEL_INCOMING_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedHost) host = NULL;
  ProtoClient *client;

  host = sched_store_get_host (svc->store, m->job->dest_host, &error);
  if (host == NULL || (client = agent_client (svc, host, &error)) == NULL)
    {
      g_message ("job %s: cannot cancel the incoming VM on host %s: %s",
                 m->job->id, m->job->dest_host, error->message);
      return;
    }
  req.job_id = m->job->id;
  req.token = m->token ? m->token : (char *)"";
  proto_client_call (
      client, DROVER_AGENT_SERVICE, DROVER_AGENT_METHOD_CANCEL_INCOMING,
      &req.base, AGENT_CALL_TIMEOUT_MS, cancel_incoming_done,
      g_strdup_printf ("job %s, host %s", m->job->id, m->job->dest_host));
}

/* Ends M: job done (OK) or failed with ERROR_MSG, frees M and starts
 * migrations that were waiting for its slots. */
static void
mig_finish (Migration *m, gboolean ok, const char *error_msg)
{
  SchedService *svc = m->svc;
  SchedJob *job = m->job;
  g_autoptr (GPtrArray) started = NULL;
  g_autofree char *id = g_strdup (job->id);
  g_autofree char *message = NULL;

  if (ok)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (SchedVm) vm = sched_store_get_vm (svc->store, job->vm, &error);

      /* The destination's reports will confirm it; until then the record
       * must already point there (commands go to the VM's host). */
      if (vm != NULL)
        {
          g_free (vm->host);
          vm->host = g_strdup (job->dest_host);
          /* The source may have reported it paused for the switchover. */
          sched_vm_set_state (vm, PROTO_VM_RUNNING);
          vm->updated_ms = now_ms (svc);
          if (!sched_store_put_vm (svc->store, vm, &error))
            g_warning ("VM %s: %s", job->vm, error->message);
        }
      sched_registry_migration_end (svc->registry, job->vm, job->dest_host);
      message = job->migration
                    ? sched_migration_describe (job->migration, job->dest_host)
                    : g_strdup_printf ("migrated to host %s", job->dest_host);
      if (m->warning != NULL)
        {
          char *with = g_strdup_printf ("%s (%s)", message, m->warning);
          g_free (message);
          message = with;
        }
      g_message ("VM %s: migrated from host %s to host %s (job %s)", job->vm,
                 job->source_host, job->dest_host, job->id);
      job_set (svc, job, PROTO_JOB_DONE, 1.0, message, NULL);
    }
  else
    {
      sched_registry_migration_end (svc->registry, job->vm, NULL);
      g_message ("VM %s: migration to host %s failed (job %s): %s", job->vm,
                 job->dest_host, job->id, error_msg);
      if (m->prepare_sent && !svc->stopped)
        mig_cancel_incoming (m);
      job_set (svc, job, PROTO_JOB_FAILED, job->progress, "migration failed",
               error_msg);
    }

  started = sched_mig_queue_remove (svc->mig_queue, id);
  g_hash_table_remove (svc->migrations, id);
  if (svc->stopped)
    return;
  for (guint i = 0; i < started->len; i++)
    {
      Migration *next
          = g_hash_table_lookup (svc->migrations, started->pdata[i]);

      if (next != NULL)
        mig_start (next);
    }
}

static void mig_fail (Migration *m, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
mig_fail (Migration *m, const char *format, ...)
{
  g_autofree char *msg = NULL;
  va_list args;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  mig_finish (m, FALSE, msg);
}

static void
mig_on_progress (const ProtobufCMessage *msg, gpointer user_data)
{
  Migration *m = user_data;
  SchedService *svc = m->svc;
  const Drover__V1__MigrationProgress *p = (const void *)msg;
  g_autofree char *message = NULL;
  gboolean phase_changed;
  double fraction;
  gint64 now = now_ms (svc);

  m->last_msg_ms = now;
  phase_changed = m->job->migration == NULL
                  || g_strcmp0 (m->job->migration->phase, p->phase) != 0;
  proto_msg_free (m->job->migration);
  m->job->migration = proto_msg_copy (msg);
  /* Later rounds start with more to send again: never move backwards. */
  fraction = sched_migration_fraction (p);
  if (fraction >= 0)
    m->job->progress = MAX (m->job->progress, MIN (fraction, 0.99));
  message = sched_migration_describe (p, m->job->dest_host);
  g_free (m->job->message);
  m->job->message = g_steal_pointer (&message);

  if (phase_changed || proto_mig_phase_is_final (p->phase)
      || now - m->last_store_ms >= MIG_STORE_INTERVAL_MS)
    {
      m->last_store_ms = now;
      job_update (svc, m->job, TRUE);
    }
  else
    job_update (svc, m->job, FALSE);
}

static void
mig_on_end (const GError *error, gpointer user_data)
{
  Migration *m = user_data;
  const Drover__V1__MigrationProgress *last = m->job->migration;
  const char *source = m->job->source_host;

  m->stream = NULL;
  if (last != NULL && strcmp (last->phase, PROTO_MIG_COMPLETED) == 0)
    {
      mig_finish (m, TRUE, NULL);
      return;
    }
  if (last != NULL && proto_mig_phase_is_final (last->phase))
    {
      mig_fail (m, "migration %s on host '%s': %s", last->phase, source,
                last->error[0] ? last->error : "no reason given");
      return;
    }
  if (m->silent)
    mig_fail (m, "no progress from host '%s' for %d s: migration cancelled",
              source, MIG_SILENCE_TIMEOUT_MS / 1000);
  else if (m->svc->stopped)
    mig_fail (m, "the scheduler stopped during the migration");
  else if (error != NULL)
    mig_fail (m,
              "host '%s': the MigrateOut stream broke (%s); the VM stays "
              "where its hosts report it",
              source, error->message);
  else
    mig_fail (m, "host '%s' ended the migration without a final state", source);
}

static gboolean
mig_watchdog (gpointer user_data)
{
  Migration *m = user_data;

  if (m->stream != NULL && !m->silent
      && now_ms (m->svc) - m->last_msg_ms > MIG_SILENCE_TIMEOUT_MS)
    {
      g_message ("job %s: host %s silent for %d s, cancelling the migration",
                 m->job->id, m->job->source_host,
                 MIG_SILENCE_TIMEOUT_MS / 1000);
      m->silent = TRUE;
      proto_client_stream_cancel (m->stream);
    }
  return G_SOURCE_CONTINUE;
}

/* Looks up host NAME and its client for a migration step. */
static ProtoClient *
mig_host_client (SchedService *svc, const char *name, SchedHost **host_out,
                 GError **error)
{
  g_autoptr (SchedHost) host = sched_store_get_host (svc->store, name, error);
  ProtoClient *client;

  if (host == NULL || !host_is_up (host, error))
    return NULL;
  client = agent_client (svc, host, error);
  if (client != NULL && host_out != NULL)
    *host_out = g_steal_pointer (&host);
  return client;
}

static void
mig_prepare_done (const ProtobufCMessage *reply, const GError *error,
                  gpointer user_data)
{
  Migration *m = user_data;
  SchedService *svc = m->svc;
  const Drover__V1__PrepareIncomingReply *prep = (const void *)reply;
  Drover__V1__MigrateOutRequest req = DROVER__V1__MIGRATE_OUT_REQUEST__INIT;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedHost) dest = NULL;
  ProtoClient *client;

  if (svc->stopped)
    {
      mig_fail (m, "the scheduler stopped during the migration");
      return;
    }
  if (error != NULL)
    {
      mig_fail (m, "destination host '%s': PrepareIncoming: %s",
                m->job->dest_host, error->message);
      return;
    }
  if (prep->token[0] == '\0' || prep->channel_address[0] == '\0')
    {
      mig_fail (m, "destination host '%s' gave no channel address or token",
                m->job->dest_host);
      return;
    }
  m->token = g_strdup (prep->token);

  dest = sched_store_get_host (svc->store, m->job->dest_host, &local);
  client
      = dest ? mig_host_client (svc, m->job->source_host, NULL, &local) : NULL;
  if (client == NULL)
    {
      mig_fail (m, "cannot start the migration on the source: %s",
                local->message);
      return;
    }

  req.job_id = m->job->id;
  req.name = m->job->vm;
  req.dest_host = m->job->dest_host;
  req.dest_address = dest->address;
  req.channel_address = prep->channel_address;
  req.token = prep->token;
  req.params = m->params;
  req.dest_console_path = prep->console_path;
  req.dest_disk_path = prep->disk_path;
  {
    g_autofree char *msg
        = g_strdup_printf ("starting on host %s", m->job->source_host);
    g_free (m->job->message);
    m->job->message = g_steal_pointer (&msg);
    job_changed (svc, m->job);
  }
  m->last_msg_ms = now_ms (svc);
  m->stream = proto_client_stream (client, DROVER_AGENT_SERVICE,
                                   DROVER_AGENT_METHOD_MIGRATE_OUT, &req.base,
                                   mig_on_progress, mig_on_end, m);
  m->watchdog = g_timeout_source_new (MIG_WATCHDOG_PERIOD_MS);
  g_source_set_callback (m->watchdog, mig_watchdog, m, NULL);
  g_source_attach (m->watchdog, svc->ctx);
}

/* Starts M, which got its slots: PrepareIncoming on the destination. */
static void
mig_start (Migration *m)
{
  SchedService *svc = m->svc;
  Drover__V1__PrepareIncomingRequest req
      = DROVER__V1__PREPARE_INCOMING_REQUEST__INIT;
  Drover__V1__MigrationProgress progress = DROVER__V1__MIGRATION_PROGRESS__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) source = NULL;
  g_autofree char *msg = NULL;
  ProtoClient *client;

  progress.phase = (char *)PROTO_MIG_PREPARING;
  progress.memory_total = m->spec->memory;
  progress.memory_remaining = m->spec->memory;
  proto_msg_free (m->job->migration);
  m->job->migration = proto_msg_copy (&progress.base);
  msg = sched_migration_describe (&progress, m->job->dest_host);
  job_set (svc, m->job, PROTO_JOB_RUNNING, sched_migration_fraction (&progress),
           msg, NULL);
  sched_registry_migration_begin (svc->registry, m->job->vm,
                                  m->job->source_host, m->job->dest_host);

  /* A queued migration may have waited long: the world may have moved. */
  vm = sched_store_get_vm (svc->store, m->job->vm, &error);
  if (vm == NULL)
    {
      mig_fail (m, "VM '%s' is gone: %s", m->job->vm, error->message);
      return;
    }
  if (strcmp (vm->host, m->job->source_host) != 0)
    {
      mig_fail (m, "VM '%s' is now on host '%s', not '%s'", vm->name, vm->host,
                m->job->source_host);
      return;
    }
  if (strcmp (vm->state, PROTO_VM_RUNNING) != 0)
    {
      mig_fail (m, "VM '%s' is %s, not running", vm->name, vm->state);
      return;
    }
  if (mig_host_client (svc, m->job->source_host, &source, &error) == NULL
      || (client = mig_host_client (svc, m->job->dest_host, NULL, &error))
             == NULL)
    {
      mig_fail (m, "%s", error->message);
      return;
    }

  req.job_id = m->job->id;
  req.spec = vm->spec;
  req.source_host = source->name;
  req.source_address = source->address;
  m->prepare_sent = TRUE;
  g_message ("VM %s: migrating from host %s to host %s (job %s)", vm->name,
             source->name, m->job->dest_host, m->job->id);
  proto_client_call (client, DROVER_AGENT_SERVICE,
                     DROVER_AGENT_METHOD_PREPARE_INCOMING, &req.base,
                     MIG_PREPARE_TIMEOUT_MS, mig_prepare_done, m);
}

static gboolean
check_mig_params (const Drover__V1__MigrationParams *params, GError **error)
{
  if (params == NULL)
    return TRUE;
  if (params->compress[0] != '\0'
      && strcmp (params->compress, PROTO_COMPRESS_AUTO) != 0
      && strcmp (params->compress, PROTO_COMPRESS_ON) != 0
      && strcmp (params->compress, PROTO_COMPRESS_OFF) != 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "compress must be auto, on or off, not '%.32s'",
                   params->compress);
      return FALSE;
    }
  return TRUE;
}

/* The progress of VM NAME's latest completed migration (a measurement of
 * its dirty rate), or NULL. Borrowed from JOBS. */
static const Drover__V1__MigrationProgress *
last_migration (GPtrArray *jobs, const char *name)
{
  const SchedJob *best = NULL;

  for (guint i = 0; jobs != NULL && i < jobs->len; i++)
    {
      const SchedJob *job = jobs->pdata[i];

      if (strcmp (job->kind, PROTO_JOB_KIND_MIGRATE) == 0
          && strcmp (job->vm, name) == 0
          && strcmp (job->state, PROTO_JOB_DONE) == 0 && job->migration != NULL
          && (best == NULL || job->updated_ms >= best->updated_ms))
        best = job;
    }
  return best ? best->migration : NULL;
}

static void
handle_migrate_vm (ProtoServerCall *call, const ProtobufCMessage *request,
                   gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__MigrateVmRequest *req = (const void *)request;
  Drover__V1__MigrationParams no_params = DROVER__V1__MIGRATION_PARAMS__INIT;
  const Drover__V1__MigrationParams *params
      = req->params ? req->params : &no_params;
  Drover__V1__MigrationPrediction prediction;
  double link_bw = 0, setup_s = 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) source = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GPtrArray) jobs = NULL;
  g_autoptr (SchedJob) reply_job = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *id = NULL;
  Drover__V1__Job msg;
  Migration *m, *busy;
  gboolean start;

  if (!proto_name_validate ("VM", req->name, &error)
      || (req->to_host[0] != '\0'
          && !proto_name_validate ("host", req->to_host, &error))
      || !check_mig_params (req->params, &error))
    {
      call_fail (call, error);
      return;
    }
  vm = sched_store_get_vm (svc->store, req->name, &error);
  if (vm == NULL)
    {
      call_fail (call, error);
      return;
    }
  if ((busy = migration_of_vm (svc, vm->name)) != NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' is already migrating to host '%s' "
                              "(job %s)",
                              vm->name, busy->job->dest_host, busy->job->id);
      return;
    }
  if (strcmp (vm->state, PROTO_VM_RUNNING) != 0)
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' is %s: only a running VM can be "
                              "live-migrated",
                              vm->name, vm->state);
      return;
    }
  source = sched_store_get_host (svc->store, vm->host, &error);
  if (source == NULL)
    {
      proto_server_call_fail (call, PROTO_STATUS_UNAVAILABLE,
                              "host '%s' of VM '%s' is unknown", vm->host,
                              vm->name);
      return;
    }
  if (!host_is_up (source, &error))
    {
      call_fail (call, error);
      return;
    }

  hosts = sched_store_list_hosts (svc->store, &error);
  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, &error);
  if (vms != NULL)
    jobs = sched_store_list_jobs (svc->store, &error);
  if (jobs == NULL)
    {
      call_fail (call, error);
      return;
    }
  add_migration_reservations (svc, vms);
  sched_migration_learn_link (jobs, svc->link_bandwidth, &link_bw, &setup_s);
  dest = sched_migration_pick_dest (&svc->policy, hosts, vms, vm, req->to_host,
                                    &error);
  if (dest == NULL
      || !sched_migration_predict (
          vm, params,
          sched_migration_dirty_rate (vm, last_migration (jobs, vm->name)),
          link_bw, setup_s, &prediction, &error))
    {
      call_fail (call, error);
      return;
    }
  if (!prediction.converges && params->strict)
    {
      g_autofree char *dirty
          = proto_format_size_brief ((guint64)prediction.dirty_rate);
      g_autofree char *bw
          = proto_format_size_brief ((guint64)prediction.bandwidth);

      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "VM '%s' would not converge (cost model: dirty "
                              "rate %s/s against %s/s, downtime %.0f ms after "
                              "%u rounds); refused because strict",
                              vm->name, dirty, bw, prediction.downtime_ms,
                              prediction.rounds);
      return;
    }

  m = g_new0 (Migration, 1);
  m->svc = svc;
  m->spec = proto_msg_copy (&vm->spec->base);
  m->params = proto_msg_copy (&params->base);
  m->job = sched_job_new (PROTO_JOB_KIND_MIGRATE, vm->name, PROTO_JOB_QUEUED,
                          now_ms (svc));
  g_free (m->job->source_host);
  m->job->source_host = g_strdup (vm->host);
  g_free (m->job->dest_host);
  m->job->dest_host = g_strdup (dest);
  m->job->prediction = proto_msg_copy (&prediction.base);
  if (!prediction.converges)
    m->warning = g_strdup_printf ("warning: the cost model predicts no "
                                  "convergence, forced switchover after %u "
                                  "rounds with ~%.0f ms downtime",
                                  prediction.rounds, prediction.downtime_ms);
  id = g_strdup (m->job->id);
  g_hash_table_insert (svc->migrations, g_strdup (id), m);

  start = sched_mig_queue_add (svc->mig_queue, id, vm->host, dest);
  if (!start)
    {
      Drover__V1__MigrationProgress progress
          = DROVER__V1__MIGRATION_PROGRESS__INIT;
      g_autofree char *text = NULL;

      progress.phase = (char *)PROTO_MIG_QUEUED;
      progress.memory_total = vm->spec->memory;
      progress.memory_remaining = vm->spec->memory;
      m->job->migration = proto_msg_copy (&progress.base);
      text = g_strdup_printf ("queued (position %u): hosts %s and %s are at "
                              "their migration limits%s%s",
                              sched_mig_queue_position (svc->mig_queue, id),
                              vm->host, dest, m->warning ? "; " : "",
                              m->warning ? m->warning : "");
      g_message ("VM %s: migration to host %s queued (job %s)", vm->name, dest,
                 id);
      job_set (svc, m->job, PROTO_JOB_QUEUED, 0.0, text, NULL);
    }
  else
    {
      if (m->warning != NULL)
        g_message ("VM %s: %s", vm->name, m->warning);
      mig_start (m); /* may end it at once (m freed) */
    }

  /* The job as it stands now (the store has every state change). */
  reply_job = sched_store_get_job (svc->store, id, &error);
  if (reply_job == NULL)
    {
      call_fail (call, error);
      return;
    }
  job_msg (reply_job, &msg);
  proto_server_call_reply (call, &msg.base);
}

/* --- setup
 * ---------------------------------------------------------------------- */

static gboolean
liveness_tick (gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;

  sched_registry_check_liveness (svc->registry, &error);
  if (error != NULL)
    g_warning ("liveness check: %s", error->message);
  return G_SOURCE_CONTINUE;
}

/* What a previous process left half done (see the comment at the top). */
static gboolean
recover (SchedService *svc, GError **error)
{
  g_autoptr (GPtrArray) jobs = sched_store_list_jobs (svc->store, error);
  g_autoptr (GPtrArray) vms = NULL;
  gint64 now = now_ms (svc);

  if (jobs == NULL)
    return FALSE;
  for (guint i = 0; i < jobs->len; i++)
    {
      SchedJob *job = jobs->pdata[i];

      if (job_is_over (job))
        continue;
      g_free (job->state);
      job->state = g_strdup (PROTO_JOB_FAILED);
      g_free (job->error);
      /* A migration's source agent aborts when its MigrateOut call breaks;
       * if it had completed, the destination's reports move the VM. */
      job->error = g_strdup (strcmp (job->kind, PROTO_JOB_KIND_MIGRATE) == 0
                                 ? "the scheduler restarted during the "
                                   "migration; the VM is where its hosts "
                                   "report it"
                                 : "the scheduler restarted during the job");
      job->updated_ms = now;
      if (!sched_store_put_job (svc->store, job, error))
        return FALSE;
    }
  vms = sched_store_list_vms (svc->store, NULL, error);
  if (vms == NULL)
    return FALSE;
  for (guint i = 0; i < vms->len; i++)
    {
      SchedVm *vm = vms->pdata[i];

      if (strcmp (vm->state, PROTO_VM_CREATING) != 0)
        continue;
      g_message ("VM %s: create interrupted by a restart; missing until "
                 "host %s reports it",
                 vm->name, vm->host);
      sched_vm_set_state (vm, PROTO_VM_MISSING);
      vm->updated_ms = now;
      if (!sched_store_put_vm (svc->store, vm, error))
        return FALSE;
    }
  return TRUE;
}

SchedService *
sched_service_new (const SchedConfig *config, const ProtoTls *tls,
                   GError **error)
{
  g_autoptr (SchedService) svc = g_new0 (SchedService, 1);

  svc->state_dir = g_strdup (config->state_dir);
  svc->report_interval_ms = config->report_interval_ms
                                ? config->report_interval_ms
                                : SCHED_DEFAULT_REPORT_INTERVAL_MS;
  svc->policy.cpu_overcommit = config->cpu_overcommit;
  svc->policy.memory_reserve = config->memory_reserve;
  svc->link_bandwidth
      = (double)(config->link_bandwidth ? config->link_bandwidth
                                        : SCHED_DEFAULT_LINK_BANDWIDTH);
  svc->mig_queue = sched_mig_queue_new (
      config->max_migrations_out ? config->max_migrations_out
                                 : SCHED_DEFAULT_MAX_MIGRATIONS,
      config->max_migrations_in ? config->max_migrations_in
                                : SCHED_DEFAULT_MAX_MIGRATIONS);
  svc->migrations = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)migration_free);
  if (tls != NULL)
    {
      svc->tls = g_new0 (ProtoTls, 1);
      svc->tls->ca_pem = g_strdup (tls->ca_pem);
      svc->tls->cert_pem = g_strdup (tls->cert_pem);
      svc->tls->key_pem = g_strdup (tls->key_pem);
    }
  svc->ctx = g_main_context_ref_thread_default ();
  svc->clients = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)proto_client_free);
  svc->watchers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)g_ptr_array_unref);

  svc->store = sched_store_open_sqlite (config->state_dir, error);
  if (svc->store == NULL)
    return NULL;
  svc->registry
      = sched_registry_new (svc->store, svc->report_interval_ms, NULL, NULL);
  if (!recover (svc, error))
    return NULL;
  return g_steal_pointer (&svc);
}

gboolean
sched_service_start (SchedService *svc, const char *listen, GError **error)
{
  static const struct
  {
    guint method;
    ProtoHandler handler;
  } methods[] = {
    { DROVER_SCHED_METHOD_REGISTER_HOST, handle_register_host },
    { DROVER_SCHED_METHOD_REPORT_HOST, handle_report_host },
    { DROVER_SCHED_METHOD_LIST_HOSTS, handle_list_hosts },
    { DROVER_SCHED_METHOD_LIST_VMS, handle_list_vms },
    { DROVER_SCHED_METHOD_GET_VM, handle_get_vm },
    { DROVER_SCHED_METHOD_CREATE_VM, handle_create_vm },
    { DROVER_SCHED_METHOD_START_VM, handle_start_vm },
    { DROVER_SCHED_METHOD_STOP_VM, handle_stop_vm },
    { DROVER_SCHED_METHOD_DESTROY_VM, handle_destroy_vm },
    { DROVER_SCHED_METHOD_DELETE_VM, handle_delete_vm },
    { DROVER_SCHED_METHOD_READ_CONSOLE, handle_read_console },
    { DROVER_SCHED_METHOD_LIST_JOBS, handle_list_jobs },
    { DROVER_SCHED_METHOD_WATCH_JOB, handle_watch_job },
    { DROVER_SCHED_METHOD_MIGRATE_VM, handle_migrate_vm },
  };
  G_STATIC_ASSERT (G_N_ELEMENTS (methods) == DROVER_SCHED_N_METHODS);

  g_return_val_if_fail (svc->server == NULL, FALSE);
  svc->server = proto_server_new (svc->ctx);
  for (gsize i = 0; i < G_N_ELEMENTS (methods); i++)
    proto_server_add_method (svc->server, DROVER_SCHED_SERVICE,
                             methods[i].method, methods[i].handler, svc);
  if (!proto_server_start (svc->server, listen, svc->tls, error))
    return FALSE;

  /* Checking every half interval keeps "down" within half an interval of
   * the deadline. */
  svc->liveness = g_timeout_source_new (MAX (svc->report_interval_ms / 2, 10));
  g_source_set_callback (svc->liveness, liveness_tick, svc, NULL);
  g_source_attach (svc->liveness, svc->ctx);
  return TRUE;
}

int
sched_service_get_port (SchedService *svc)
{
  return svc->server ? proto_server_get_port (svc->server) : -1;
}

void
sched_service_stop (SchedService *svc)
{
  GHashTableIter iter;
  GPtrArray *calls;

  if (svc == NULL || svc->stopped)
    return;
  svc->stopped = TRUE;
  /* Waiting migrations will not start: end their jobs now. Running ones
   * end below when their agent calls are cancelled. */
  {
    g_autoptr (GPtrArray) queued = g_ptr_array_new_with_free_func (g_free);
    GHashTableIter miter;
    Migration *m;

    g_hash_table_iter_init (&miter, svc->migrations);
    while (g_hash_table_iter_next (&miter, NULL, (gpointer *)&m))
      if (strcmp (m->job->state, PROTO_JOB_QUEUED) == 0)
        g_ptr_array_add (queued, g_strdup (m->job->id));
    for (guint i = 0; i < queued->len; i++)
      {
        m = g_hash_table_lookup (svc->migrations, queued->pdata[i]);
        if (m != NULL)
          mig_fail (m, "the scheduler stopped before the migration started");
      }
  }
  if (svc->liveness != NULL)
    {
      g_source_destroy (svc->liveness);
      g_clear_pointer (&svc->liveness, g_source_unref);
    }
  /* Watch streams: finish them ourselves (stopping the server detaches
   * open calls; finishing a detached one just frees it). */
  g_hash_table_iter_init (&iter, svc->watchers);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&calls))
    for (guint i = 0; i < calls->len; i++)
      proto_server_call_finish (calls->pdata[i], PROTO_STATUS_UNAVAILABLE,
                                "the scheduler is shutting down");
  g_hash_table_remove_all (svc->watchers);
  if (svc->server != NULL)
    proto_server_stop (svc->server);
  /* Pending agent calls complete (CANCELLED) while their clients are
   * freed, finishing their server calls and jobs with the store still
   * open. */
  g_hash_table_remove_all (svc->clients);
}

void
sched_service_free (SchedService *svc)
{
  if (svc == NULL)
    return;
  sched_service_stop (svc);
  g_clear_pointer (&svc->server, proto_server_free);
  g_hash_table_unref (svc->clients);
  g_hash_table_unref (svc->watchers);
  if (svc->migrations != NULL)
    g_hash_table_unref (svc->migrations);
  sched_mig_queue_free (svc->mig_queue);
  sched_registry_free (svc->registry);
  sched_store_close (svc->store);
  proto_tls_free (svc->tls);
  g_main_context_unref (svc->ctx);
  g_free (svc->state_dir);
  g_free (svc);
}
