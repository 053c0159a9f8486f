/* Host drain and maintenance (see sched-drain.h).
 *
 * The store holds the truth: the host row's maintenance column and the
 * drain job. Each tick (a second) looks at the VMs the store places on a
 * draining host and starts a migration for every running one that has
 * none; the migrator queues them behind its per-host limits. What a tick
 * learns (moved, stuck, still to go) becomes the job's message when it
 * changes, so `droverctl job watch` shows the drain VM by VM. */
#include "sched-drain.h"

#include <string.h>

#include "sched-migrator.h"

#define DRAIN_TICK_MS 1000
/* A VM that fails to move is tried again after DRAIN_RETRY_MS, and is
 * stuck after DRAIN_TRIES failures: right after a scheduler restart, or
 * while the agent still aborts an earlier attempt, a refusal ("another
 * operation is in progress", "paused") passes. */
#define DRAIN_RETRY_MS 5000
#define DRAIN_TRIES 3

typedef struct
{
  guint n;         /* failures so far */
  gint64 retry_ms; /* not before this (monotonic) */
} Failures;

typedef struct
{
  char *host;
  SchedJob *job;
  gboolean stop_unmovable;
  GHashTable *moving;   /* VM -> its migration job id */
  GHashTable *stuck;    /* VM -> why it cannot move (the last failure) */
  GHashTable *failures; /* VM -> Failures */
  GHashTable *stopping; /* VMs whose stop was asked (stop_unmovable) */
  guint total;          /* the most VMs seen running on the host */
} Drain;

struct _SchedDrains
{
  SchedService *svc;
  GHashTable *drains; /* host -> Drain */
  GSource *tick;
};

static void
drain_free (Drain *d)
{
  g_free (d->host);
  sched_job_free (d->job);
  g_hash_table_unref (d->moving);
  g_hash_table_unref (d->stuck);
  g_hash_table_unref (d->failures);
  g_hash_table_unref (d->stopping);
  g_free (d);
}

static Drain *
drain_new (const char *host, SchedJob *job, gboolean stop_unmovable)
{
  Drain *d = g_new0 (Drain, 1);

  d->host = g_strdup (host);
  d->job = job;
  d->stop_unmovable = stop_unmovable;
  d->moving = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  d->stuck = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  d->failures = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  d->stopping = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return d;
}

SchedDrains *
sched_drains_new (SchedService *svc)
{
  SchedDrains *drains = g_new0 (SchedDrains, 1);

  drains->svc = svc;
  drains->drains = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                          (GDestroyNotify)drain_free);
  return drains;
}

void
sched_drains_stop (SchedDrains *drains)
{
  if (drains->tick != NULL)
    {
      g_source_destroy (drains->tick);
      g_source_unref (g_steal_pointer (&drains->tick));
    }
}

void
sched_drains_free (SchedDrains *drains)
{
  if (drains == NULL)
    return;
  sched_drains_stop (drains);
  g_hash_table_unref (drains->drains);
  g_free (drains);
}

/* Sets HOST's maintenance to STATE ("" = in service) and says so. */
static gboolean
set_maintenance (SchedService *svc, SchedHost *host, const char *state,
                 GError **error)
{
  g_autofree char *old = g_strdup (host->maintenance);

  sched_host_set_maintenance (host, state);
  if (!sched_store_put_host (svc->store, host, error))
    return FALSE;
  sched_events_emit (svc->events, SCHED_EVENT_HOST_MAINTENANCE, NULL,
                     host->name, state[0] ? state : "in-service",
                     old && old[0] ? old : "in-service", "host is %s",
                     state[0] ? state : "in service again");
  drover_message (NULL, NULL, host->name, "host is %s",
                  state[0] ? state : "in service again");
  return TRUE;
}

/* Running VMs that a drain must move, most memory first: the hardest to
 * place go while there is the most room. */
static gint
by_memory_desc (gconstpointer a, gconstpointer b)
{
  const SchedVm *x = *(const SchedVm *const *)a;
  const SchedVm *y = *(const SchedVm *const *)b;

  return (x->spec->memory < y->spec->memory)
         - (x->spec->memory > y->spec->memory);
}

static gboolean
vm_runs (const SchedVm *vm)
{
  return strcmp (vm->state, PROTO_VM_RUNNING) == 0
         || strcmp (vm->state, PROTO_VM_PAUSED) == 0;
}

/* --- the tick ------------------------------------------------------------ */

static void
stop_done (const ProtobufCMessage *reply, const GError *error,
           gpointer user_data)
{
  g_autofree char *vm = user_data;

  if (error != NULL)
    drover_warning (vm, NULL, NULL, "drain: cannot stop the VM: %s",
                    error->message);
}

/* Asks VM's agent to shut it down (a drain with stop_unmovable). */
static void
stop_vm (SchedService *svc, Drain *d, const SchedVm *vm)
{
  Drover__V1__StopVmRequest req = DROVER__V1__STOP_VM_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  ProtoClient *client;

  if (g_hash_table_contains (d->stopping, vm->name))
    return;
  client = sched_agents_client_up (svc->agents, vm->host, NULL, &error);
  if (client == NULL)
    {
      g_hash_table_replace (
          d->stuck, g_strdup (vm->name),
          g_strdup_printf ("cannot stop it: %s", error->message));
      return;
    }
  g_hash_table_add (d->stopping, g_strdup (vm->name));
  drover_message (vm->name, d->job->id, vm->host,
                  "drain: stopping the VM, it cannot move: %s",
                  (const char *)g_hash_table_lookup (d->stuck, vm->name));
  req.name = vm->name;
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_STOP_VM,
                     &req.base,
                     SCHED_AGENT_CALL_TIMEOUT_MS + SCHED_AGENT_STOP_EXTRA_MS,
                     stop_done, g_strdup (vm->name));
}

/* VM failed to move (WHY, taken): tried again later, or stuck for good
 * after DRAIN_TRIES failures. */
static void
note_failure (Drain *d, const char *vm, char *why)
{
  Failures *f = g_hash_table_lookup (d->failures, vm);

  if (f == NULL)
    {
      f = g_new0 (Failures, 1);
      g_hash_table_insert (d->failures, g_strdup (vm), f);
    }
  f->n++;
  f->retry_ms = g_get_monotonic_time () / 1000 + DRAIN_RETRY_MS;
  drover_message (vm, d->job->id, d->host,
                  "drain: cannot move the VM (%u of %d tries): %s", f->n,
                  DRAIN_TRIES, why);
  if (f->n >= DRAIN_TRIES)
    g_hash_table_replace (d->stuck, g_strdup (vm), why);
  else
    g_free (why);
}

/* TRUE while VM waits for its next try. */
static gboolean
waiting_retry (Drain *d, const char *vm)
{
  Failures *f = g_hash_table_lookup (d->failures, vm);

  return f != NULL && g_get_monotonic_time () / 1000 < f->retry_ms;
}

/* What became of VM's migration MIG_ID, which no longer runs: TRUE if it
 * moved (or the job is gone), else a failure is noted. */
static gboolean
migration_moved (SchedService *svc, Drain *d, const char *vm,
                 const char *mig_id)
{
  g_autoptr (SchedJob) job = sched_store_get_job (svc->store, mig_id, NULL);

  if (job == NULL || strcmp (job->state, PROTO_JOB_DONE) == 0)
    return TRUE;
  note_failure (d, vm,
                g_strdup_printf ("migration %s failed: %s", mig_id,
                                 job->error[0] ? job->error : "?"));
  return FALSE;
}

/* Starts VM's migration to the best other host, or notes why not. */
static void
start_move (SchedService *svc, Drain *d, const SchedVm *vm)
{
  g_autoptr (SchedJob) job = NULL;
  g_autoptr (GError) error = NULL;

  if (sched_migrator_submit (svc->migrator, vm->name, NULL, NULL, &job, &error))
    g_hash_table_replace (d->moving, g_strdup (vm->name), g_strdup (job->id));
  else
    note_failure (d, vm->name, g_strdup (error->message));
}

/* "a: why; b: why" for the stuck VMs, by name. */
static char *
stuck_text (Drain *d)
{
  g_autoptr (GList) names = g_hash_table_get_keys (d->stuck);
  GString *out = g_string_new (NULL);

  names = g_list_sort (names, (GCompareFunc)strcmp);
  for (GList *l = names; l != NULL; l = l->next)
    g_string_append_printf (
        out, "%sVM %s: %s", out->len ? "; " : "", (const char *)l->data,
        (const char *)g_hash_table_lookup (d->stuck, l->data));
  return g_string_free (out, FALSE);
}

/* Updates the job's message when it says something new. */
static void
drain_say (SchedService *svc, Drain *d, const char *state, double progress,
           const char *message, const char *error)
{
  if (strcmp (state, d->job->state) == 0 && d->job->message
      && strcmp (message, d->job->message) == 0)
    return;
  sched_jobs_set (svc->jobs, d->job, state, progress, message, error);
}

/* One drain's step. FALSE when it is over (the caller forgets it). */
static gboolean
drain_step (SchedService *svc, Drain *d)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) vms
      = sched_store_list_vms (svc->store, d->host, &error);
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (GString) left = g_string_new (NULL);
  g_autofree char *stuck = NULL, *msg = NULL;
  guint running = 0, in_flight = 0, stopped = 0;

  if (vms == NULL)
    return TRUE; /* the store failed: try again next tick */
  g_ptr_array_sort (vms, by_memory_desc);
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];
      const char *mig_id = g_hash_table_lookup (d->moving, vm->name);

      if (!vm_runs (vm))
        {
          if (strcmp (vm->state, PROTO_VM_CREATING) != 0)
            {
              stopped++;
              g_string_append_printf (left, "%s%s", left->len ? ", " : "",
                                      vm->name);
            }
          continue;
        }
      running++;
      if (mig_id != NULL)
        {
          if (sched_migrator_find (svc->migrator, vm->name) != NULL)
            {
              in_flight++;
              continue;
            }
          /* Moved: the store will place it elsewhere at once or on the
           * next report. Not moved: a failure noted, tried again. */
          if (migration_moved (svc, d, vm->name, mig_id))
            in_flight++;
          g_hash_table_remove (d->moving, vm->name);
          continue;
        }
      if (g_hash_table_contains (d->stuck, vm->name))
        {
          if (d->stop_unmovable)
            stop_vm (svc, d, vm);
          continue;
        }
      if (!waiting_retry (d, vm->name))
        start_move (svc, d, vm);
      /* Moving, or to be tried again: the drain is not over. */
      in_flight += !g_hash_table_contains (d->stuck, vm->name);
    }
  d->total = MAX (d->total, running);
  stuck = stuck_text (d);
  if (running > 0
      && (in_flight > 0 || d->stop_unmovable
          || g_hash_table_size (d->stuck) < running))
    {
      msg = g_strdup_printf ("host %s draining: %u of %u running VM(s) moved, "
                             "%u moving%s%s",
                             d->host, d->total - running, d->total, in_flight,
                             stuck[0] ? "; cannot move: " : "", stuck);
      drain_say (svc, d, PROTO_JOB_RUNNING,
                 d->total ? (double)(d->total - running) / d->total : 0, msg,
                 NULL);
      return TRUE;
    }
  if (running > 0)
    {
      /* Only VMs that cannot move are left: incomplete, still draining. */
      msg = g_strdup_printf ("host %s stays draining: %u of %u running VM(s) "
                             "moved; run droverctl host drain %s again to "
                             "retry, or host undrain %s",
                             d->host, d->total - running, d->total, d->host,
                             d->host);
      sched_jobs_set (svc->jobs, d->job, PROTO_JOB_FAILED, d->job->progress,
                      msg, stuck);
      drover_warning (NULL, d->job->id, d->host, "drain incomplete: %s", stuck);
      return FALSE;
    }
  host = sched_store_get_host (svc->store, d->host, &error);
  if (host == NULL
      || !set_maintenance (svc, host, SCHED_HOST_MAINTENANCE, &error))
    {
      sched_jobs_set (svc->jobs, d->job, PROTO_JOB_FAILED, d->job->progress,
                      NULL, error->message);
      return FALSE;
    }
  msg = g_strdup_printf (
      "host %s is empty of running VMs and in maintenance "
      "(%u moved%s%s%s)",
      d->host, d->total, stopped ? "; stopped VMs stay: " : "",
      stopped ? left->str : "",
      g_hash_table_size (d->stopping) ? "; some were stopped" : "");
  sched_jobs_set (svc->jobs, d->job, PROTO_JOB_DONE, 1.0, msg, NULL);
  return FALSE;
}

static gboolean
drains_tick (gpointer data)
{
  SchedDrains *drains = data;
  GHashTableIter it;
  Drain *d;

  g_hash_table_iter_init (&it, drains->drains);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *)&d))
    if (!drain_step (drains->svc, d))
      g_hash_table_iter_remove (&it);
  return G_SOURCE_CONTINUE;
}

gboolean
sched_drains_start (SchedDrains *drains, GError **error)
{
  SchedService *svc = drains->svc;
  g_autoptr (GPtrArray) jobs = sched_store_list_jobs (svc->store, error);
  g_autoptr (GPtrArray) hosts = NULL;

  if (jobs == NULL
      || (hosts = sched_store_list_hosts (svc->store, error)) == NULL)
    return FALSE;
  for (guint i = 0; i < jobs->len; i++)
    {
      SchedJob *job = jobs->pdata[i];
      const SchedHost *host;

      if (strcmp (job->kind, PROTO_JOB_KIND_DRAIN) != 0
          || proto_job_state_is_final (job->state))
        continue;
      host = sched_host_find (hosts, job->source_host);
      if (host == NULL || strcmp (host->maintenance, SCHED_HOST_DRAINING) != 0
          || g_hash_table_contains (drains->drains, job->source_host))
        {
          sched_jobs_set (svc->jobs, job, PROTO_JOB_FAILED, job->progress, NULL,
                          "the host is no longer draining");
          continue;
        }
      drover_message (NULL, job->id, job->source_host,
                      "drain resumed after a scheduler restart");
      /* stop_unmovable is not in the job: a resumed drain lists them. */
      g_hash_table_insert (
          drains->drains, g_strdup (job->source_host),
          drain_new (job->source_host, sched_job_copy (job), FALSE));
    }
  drains->tick = g_timeout_source_new (DRAIN_TICK_MS);
  g_source_set_callback (drains->tick, drains_tick, drains, NULL);
  g_source_attach (drains->tick, svc->ctx);
  return TRUE;
}

/* --- DrainHost ------------------------------------------------------------ */

/* Checks that every running VM of HOST has somewhere to go (all at once:
 * each placed VM takes its room), as the drain will ask; the first that
 * has none is the error. VMS are every VM, plus migrations in flight. */
static gboolean
drain_fits (SchedService *svc, GPtrArray *hosts, GPtrArray *vms,
            const char *host, GError **error)
{
  g_autoptr (GPtrArray) mine = g_ptr_array_new ();

  for (guint i = 0; i < vms->len; i++)
    {
      SchedVm *vm = vms->pdata[i];

      if (strcmp (vm->host, host) == 0 && vm_runs (vm))
        g_ptr_array_add (mine, vm);
    }
  g_ptr_array_sort (mine, by_memory_desc);
  for (guint i = 0; i < mine->len; i++)
    {
      const SchedVm *vm = mine->pdata[i];
      g_autofree char *dest = sched_migration_pick_dest (&svc->policy, hosts,
                                                         vms, vm, NULL, error);

      if (dest == NULL)
        return FALSE;
      g_ptr_array_add (
          vms, sched_vm_new (vm->spec, dest, PROTO_VM_CREATING, NULL, 0));
    }
  return TRUE;
}

static gboolean
drain_check (SchedService *svc, const char *name, gboolean stop_unmovable,
             SchedHost **host_out, GError **error)
{
  SchedDrains *drains = svc->drains;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GError) local = NULL;
  SchedHost *host;
  GHashTableIter it;
  Drain *other;

  if (!proto_name_validate ("host", name, error)
      || (hosts = sched_store_list_hosts (svc->store, error)) == NULL)
    return FALSE;
  host = (SchedHost *)sched_host_find (hosts, name);
  if (host == NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                   "no host named '%s'", name);
      return FALSE;
    }
  if (strcmp (host->maintenance, SCHED_HOST_MAINTENANCE) == 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "host '%s' is already in maintenance", name);
      return FALSE;
    }
  g_hash_table_iter_init (&it, drains->drains);
  if (g_hash_table_iter_next (&it, NULL, (gpointer *)&other))
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "host '%s' is draining (job %s): one drain at a time",
                   other->host, other->job->id);
      return FALSE;
    }
  if (!sched_host_check_up (host, error))
    {
      g_prefix_error (error, "cannot drain: its VMs cannot move live: ");
      return FALSE;
    }
  vms = sched_store_list_vms (svc->store, NULL, error);
  if (vms == NULL)
    return FALSE;
  sched_migrator_add_reservations (svc->migrator, vms);
  /* Placement as it will be: the host out of service. */
  sched_host_set_maintenance (host, SCHED_HOST_DRAINING);
  if (!drain_fits (svc, hosts, vms, name, &local) && !stop_unmovable)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY,
                   "cannot drain host '%s': %s (nothing changed; "
                   "--stop-unmovable stops such VMs instead)",
                   name, local->message);
      return FALSE;
    }
  *host_out = sched_row_copy (&sched_row_types[SCHED_TABLE_HOSTS], host);
  return TRUE;
}

gboolean
sched_drains_submit (SchedService *svc, const char *name,
                     gboolean stop_unmovable, SchedJob **job_out,
                     GError **error)
{
  g_autoptr (SchedHost) host = NULL;
  SchedJob *job;
  Drain *d;

  if (!drain_check (svc, name, stop_unmovable, &host, error))
    return FALSE;
  job = sched_job_new (PROTO_JOB_KIND_DRAIN, "", PROTO_JOB_RUNNING,
                       sched_registry_now (svc->registry));
  job->source_host = g_strdup (host->name);
  /* The job first: a restart that finds the host draining resumes it. */
  sched_jobs_set (svc->jobs, job, PROTO_JOB_RUNNING, 0,
                  "draining: taking the host out of service", NULL);
  if (!set_maintenance (svc, host, SCHED_HOST_DRAINING, error))
    {
      sched_jobs_set (svc->jobs, job, PROTO_JOB_FAILED, 0, NULL,
                      (*error)->message);
      sched_job_free (job);
      return FALSE;
    }
  d = drain_new (host->name, job, stop_unmovable);
  g_hash_table_insert (svc->drains->drains, g_strdup (host->name), d);
  *job_out = sched_job_copy (d->job);
  drain_step (svc, d);
  return TRUE;
}

void
sched_drain_handle_drain (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  const Drover__V1__DrainHostRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  Drover__V1__Job msg;

  if (!sched_drains_submit (user_data, req->name, req->stop_unmovable, &job,
                            &error))
    {
      sched_call_fail (call, error);
      return;
    }
  sched_job_msg (job, &msg);
  proto_server_call_reply (call, &msg.base);
}

/* --- UndrainHost ---------------------------------------------------------- */

void
sched_drain_handle_undrain (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__HostRequest *req = (const void *)request;
  Drover__V1__Host msg = DROVER__V1__HOST__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  Drain *d;

  if (!proto_name_validate ("host", req->name, &error)
      || (host = sched_store_get_host (svc->store, req->name, &error)) == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  if (host->maintenance[0] == '\0')
    {
      proto_server_call_fail (call, PROTO_STATUS_FAILED_PRECONDITION,
                              "host '%s' is not drained: it is in service",
                              host->name);
      return;
    }
  d = g_hash_table_lookup (svc->drains->drains, host->name);
  if (d != NULL)
    {
      /* Migrations already started go on: each ends on its own. */
      sched_jobs_set (svc->jobs, d->job, PROTO_JOB_FAILED, d->job->progress,
                      NULL, "cancelled: the host was returned to service");
      g_hash_table_remove (svc->drains->drains, host->name);
    }
  if (!set_maintenance (svc, host, "", &error)
      || (vms = sched_store_list_vms (svc->store, NULL, &error)) == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  sched_host_msg (host, &msg, vms);
  proto_server_call_reply (call, &msg.base);
}
