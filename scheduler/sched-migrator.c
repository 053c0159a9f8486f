/* SchedMigrator: the scheduler's live-migration orchestrator.
 *
 * sched_migrator_submit is the one way a migration starts: MigrateVm
 * calls it, and so will the balancer, drain and DR schedules. It checks
 * the request, chooses the destination, runs the cost model and creates
 * the job; per-host limits (SchedMigQueue) may make the job wait.
 *
 * Timeline of one migration (job kind "migrate"):
 *   submit: validate, choose the destination, run the cost model, create
 *     the job. Per-host limits may queue it (state queued).
 *   start: job running, phase preparing; PrepareIncoming on the destination
 *     (it reserves, prepares and returns a one-time token and the address
 *     of its migration listener).
 *   MigrateOut on the source with that token: a stream of MigrationProgress
 *     that we relay into the job (watchers get every one; the store at most
 *     every SCHED_MIG_STORE_INTERVAL_MS, and always the final state).
 *   end of the stream: the last progress says completed (job done, the VM
 *     record moves to the destination) or anything else (job failed,
 *     CancelIncoming on the destination, the VM stays where reports say).
 * Every path ends in sched_mig_finish, which frees the slot and starts
 * queued migrations that may now run.
 *
 * After a scheduler restart, migration jobs left queued or running are
 * failed (sched-service.c): the source agent aborts when its MigrateOut
 * call breaks, and reports say where the VM is.
 */
#include "sched-private.h"

#include <string.h>

/* PrepareIncoming may create the VM's disk on the destination. */
#define SCHED_MIG_PREPARE_TIMEOUT_MS SCHED_AGENT_CREATE_TIMEOUT_MS
/* Progress goes to watchers at once but to the store at most this often. */
#define SCHED_MIG_STORE_INTERVAL_MS 250
/* A source agent silent this long is taken as hung: the call is cancelled
 * (which aborts the migration there) and the job fails. */
#define SCHED_MIG_SILENCE_TIMEOUT_MS (300 * 1000)
#define SCHED_MIG_WATCHDOG_PERIOD_MS (5 * 1000)

struct _SchedMigrator
{
  SchedService *svc;      /* owner: store, registry, agents, job board */
  GHashTable *migrations; /* job id -> SchedMig (queued or running) */
  SchedMigQueue *queue;   /* per-host limits, waiting migrations */
  double link_bandwidth;  /* bytes/s, for the cost model */
  gboolean stopped;       /* sched_migrator_stop ran */
};

/* A migration the scheduler drives (queued or running); owned by
 * migrator->migrations, freed when it ends (sched_mig_finish). At most one
 * agent call of it is in flight at a time (PrepareIncoming, then
 * MigrateOut), and only that call's completion ends it. */
typedef struct
{
  SchedMigrator *migrator;
  SchedJob *job;                       /* the live job (the store lags, see
                                          SCHED_MIG_STORE_INTERVAL_MS) */
  Drover__V1__VmSpec *spec;            /* the VM's, at submit */
  Drover__V1__MigrationParams *params; /* never NULL */
  char *warning;                       /* the cost model's, or NULL */
  gboolean prepare_sent;               /* PrepareIncoming was called */
  char *token;                         /* from PrepareIncoming */
  ProtoClientStream *stream;           /* MigrateOut, while open */
  gboolean silent;                     /* the watchdog cancelled it */
  gboolean cancelled;                  /* CancelJob asked to abort it */
  gint64 last_store_ms;
  gint64 last_msg_ms;
  GSource *watchdog;
} SchedMig;

static void
sched_mig_free (SchedMig *m)
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

static gint64
now_ms (SchedMigrator *migrator)
{
  return sched_registry_now (migrator->svc->registry);
}

SchedMigrator *
sched_migrator_new (SchedService *svc, guint64 link_bandwidth, guint max_out,
                    guint max_in)
{
  SchedMigrator *migrator = g_new0 (SchedMigrator, 1);

  migrator->svc = svc;
  migrator->link_bandwidth
      = (double)(link_bandwidth ? link_bandwidth
                                : SCHED_DEFAULT_LINK_BANDWIDTH);
  migrator->queue
      = sched_mig_queue_new (max_out ? max_out : SCHED_DEFAULT_MAX_MIGRATIONS,
                             max_in ? max_in : SCHED_DEFAULT_MAX_MIGRATIONS);
  migrator->migrations = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                (GDestroyNotify)sched_mig_free);
  return migrator;
}

void
sched_migrator_free (SchedMigrator *migrator)
{
  g_hash_table_unref (migrator->migrations);
  sched_mig_queue_free (migrator->queue);
  g_free (migrator);
}

/* The migration of VM NAME in progress, or NULL. */
static SchedMig *
sched_mig_of_vm (SchedMigrator *migrator, const char *name)
{
  GHashTableIter iter;
  SchedMig *m;

  g_hash_table_iter_init (&iter, migrator->migrations);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&m))
    if (strcmp (m->job->vm, name) == 0)
      return m;
  return NULL;
}

const SchedJob *
sched_migrator_find (SchedMigrator *migrator, const char *vm)
{
  SchedMig *m = sched_mig_of_vm (migrator, vm);

  return m ? m->job : NULL;
}

void
sched_migrator_add_reservations (SchedMigrator *migrator, GPtrArray *vms)
{
  GHashTableIter iter;
  SchedMig *m;

  g_hash_table_iter_init (&iter, migrator->migrations);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&m))
    g_ptr_array_add (vms, sched_vm_new (m->spec, m->job->dest_host,
                                        PROTO_VM_CREATING, NULL, 0));
}

/* --- one migration ----------------------------------------------------- */

static void sched_mig_start (SchedMig *m);

static void
sched_mig_cancel_incoming_done (const ProtobufCMessage *reply,
                                const GError *error, gpointer user_data)
{
  g_auto (GStrv) ids = user_data; /* VM, job, host */

  if (error != NULL)
    drover_message (ids[0], ids[1], ids[2], "CancelIncoming failed: %s",
                    error->message);
}

/* Tells the destination to drop what it prepared; best effort (the agent
 * also gives up on its own when no channel arrives). */
static void
sched_mig_cancel_incoming (SchedMig *m)
{
  SchedService *svc = m->migrator->svc;
  Drover__V1__CancelIncomingRequest req
      = DROVER__V1__CANCEL_INCOMING_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedHost) host = NULL;
  ProtoClient *client;

  host = sched_store_get_host (svc->store, m->job->dest_host, &error);
  if (host == NULL
      || (client = sched_agents_client (svc->agents, host, &error)) == NULL)
    {
      drover_message (m->job->vm, m->job->id, m->job->dest_host,
                      "cannot cancel the incoming VM: %s", error->message);
      return;
    }
  req.job_id = m->job->id;
  req.token = m->token ? m->token : (char *)"";
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_CANCEL_INCOMING,
                     &req.base, SCHED_AGENT_CALL_TIMEOUT_MS,
                     sched_mig_cancel_incoming_done,
                     g_strdupv ((char *[]){ m->job->vm, m->job->id,
                                            m->job->dest_host, NULL }));
}

/* The VM of a completed migration: the destination's reports will confirm
 * it; until then the record must already point there (commands go to the
 * VM's host). */
static void
sched_mig_move_record (SchedMig *m)
{
  SchedService *svc = m->migrator->svc;
  SchedJob *job = m->job;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = sched_store_get_vm (svc->store, job->vm, &error);

  if (vm == NULL)
    return;
  sched_events_emit (svc->events, SCHED_EVENT_VM_MOVED, vm->name,
                     job->dest_host, PROTO_VM_RUNNING, vm->state,
                     "migrated from host %s to host %s", vm->host,
                     job->dest_host);
  g_free (vm->host);
  vm->host = g_strdup (job->dest_host);
  /* The source may have reported it paused for the switchover. */
  sched_vm_set_state (vm, PROTO_VM_RUNNING);
  vm->updated_ms = now_ms (m->migrator);
  if (!sched_store_put_vm (svc->store, vm, &error))
    drover_warning (job->vm, job->id, NULL, "%s", error->message);
}

/* Ends M: job done (OK) or failed with ERROR_MSG, frees M and starts
 * migrations that were waiting for its slots. */
static void
sched_mig_finish (SchedMig *m, gboolean ok, const char *error_msg)
{
  SchedMigrator *migrator = m->migrator;
  SchedService *svc = migrator->svc;
  SchedJob *job = m->job;
  g_autoptr (GPtrArray) started = NULL;
  g_autofree char *id = g_strdup (job->id);
  g_autofree char *message = NULL;

  sched_metrics_migration_end (svc->metrics, job, ok);
  if (ok)
    {
      sched_mig_move_record (m);
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
      drover_message (job->vm, job->id, NULL,
                      "migrated from host %s to host %s", job->source_host,
                      job->dest_host);
      sched_jobs_set (svc->jobs, job, PROTO_JOB_DONE, 1.0, message, NULL);
    }
  else
    {
      sched_registry_migration_end (svc->registry, job->vm, NULL);
      drover_message (job->vm, job->id, NULL, "migration to host %s failed: %s",
                      job->dest_host, error_msg);
      if (m->prepare_sent && !migrator->stopped)
        sched_mig_cancel_incoming (m);
      sched_jobs_set (svc->jobs, job, PROTO_JOB_FAILED, job->progress,
                      m->cancelled ? "migration cancelled" : "migration failed",
                      error_msg);
    }

  started = sched_mig_queue_remove (migrator->queue, id);
  g_hash_table_remove (migrator->migrations, id);
  if (migrator->stopped)
    return;
  for (guint i = 0; i < started->len; i++)
    {
      SchedMig *next
          = g_hash_table_lookup (migrator->migrations, started->pdata[i]);

      if (next != NULL)
        sched_mig_start (next);
    }
}

static void sched_mig_fail (SchedMig *m, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
sched_mig_fail (SchedMig *m, const char *format, ...)
{
  g_autofree char *msg = NULL;
  va_list args;

  va_start (args, format);
  msg = g_strdup_vprintf (format, args);
  va_end (args);
  sched_mig_finish (m, FALSE, msg);
}

static void
sched_mig_on_progress (const ProtobufCMessage *msg, gpointer user_data)
{
  SchedMig *m = user_data;
  const Drover__V1__MigrationProgress *p = (const void *)msg;
  g_autofree char *message = NULL;
  gboolean phase_changed, store;
  double fraction;
  gint64 now = now_ms (m->migrator);

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

  store = phase_changed || proto_mig_phase_is_final (p->phase)
          || now - m->last_store_ms >= SCHED_MIG_STORE_INTERVAL_MS;
  if (store)
    m->last_store_ms = now;
  sched_jobs_update (m->migrator->svc->jobs, m->job, store);
}

static void
sched_mig_on_end (const GError *error, gpointer user_data)
{
  SchedMig *m = user_data;
  const Drover__V1__MigrationProgress *last = m->job->migration;
  const char *source = m->job->source_host;

  m->stream = NULL;
  if (last != NULL && strcmp (last->phase, PROTO_MIG_COMPLETED) == 0)
    {
      sched_mig_finish (m, TRUE, NULL);
      return;
    }
  if (m->cancelled)
    {
      /* The source agent aborts when its MigrateOut call breaks, and
       * leaves the VM running there. */
      sched_mig_fail (m,
                      "cancelled by the operator: the migration was aborted "
                      "and the VM stays running on host '%s'",
                      source);
      return;
    }
  if (last != NULL && proto_mig_phase_is_final (last->phase))
    {
      sched_mig_fail (m, "migration %s on host '%s': %s", last->phase, source,
                      last->error[0] ? last->error : "no reason given");
      return;
    }
  if (m->silent)
    sched_mig_fail (m,
                    "no progress from host '%s' for %d s: migration cancelled",
                    source, SCHED_MIG_SILENCE_TIMEOUT_MS / 1000);
  else if (m->migrator->stopped)
    sched_mig_fail (m, "the scheduler stopped during the migration");
  else if (error != NULL)
    sched_mig_fail (m,
                    "host '%s': the MigrateOut stream broke (%s); the VM "
                    "stays where its hosts report it",
                    source, error->message);
  else
    sched_mig_fail (m, "host '%s' ended the migration without a final state",
                    source);
}

static gboolean
sched_mig_watchdog (gpointer user_data)
{
  SchedMig *m = user_data;

  if (m->stream != NULL && !m->silent
      && now_ms (m->migrator) - m->last_msg_ms > SCHED_MIG_SILENCE_TIMEOUT_MS)
    {
      drover_message (m->job->vm, m->job->id, m->job->source_host,
                      "source host silent for %d s, cancelling the migration",
                      SCHED_MIG_SILENCE_TIMEOUT_MS / 1000);
      m->silent = TRUE;
      proto_client_stream_cancel (m->stream);
    }
  return G_SOURCE_CONTINUE;
}

static void
sched_mig_prepare_done (const ProtobufCMessage *reply, const GError *error,
                        gpointer user_data)
{
  SchedMig *m = user_data;
  SchedService *svc = m->migrator->svc;
  const Drover__V1__PrepareIncomingReply *prep = (const void *)reply;
  Drover__V1__MigrateOutRequest req = DROVER__V1__MIGRATE_OUT_REQUEST__INIT;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedHost) dest = NULL;
  ProtoClient *client;

  if (m->migrator->stopped)
    {
      sched_mig_fail (m, "the scheduler stopped during the migration");
      return;
    }
  if (m->cancelled)
    {
      sched_mig_fail (m,
                      "cancelled by the operator before the copy began: the "
                      "VM stays running on host '%s'",
                      m->job->source_host);
      return;
    }
  if (error != NULL)
    {
      sched_mig_fail (m, "destination host '%s': PrepareIncoming: %s",
                      m->job->dest_host, error->message);
      return;
    }
  if (prep->token[0] == '\0' || prep->channel_address[0] == '\0')
    {
      sched_mig_fail (m,
                      "destination host '%s' gave no channel address or token",
                      m->job->dest_host);
      return;
    }
  m->token = g_strdup (prep->token);

  dest = sched_store_get_host (svc->store, m->job->dest_host, &local);
  client = dest ? sched_agents_client_up (svc->agents, m->job->source_host,
                                          NULL, &local)
                : NULL;
  if (client == NULL)
    {
      sched_mig_fail (m, "cannot start the migration on the source: %s",
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
  g_free (m->job->message);
  m->job->message
      = g_strdup_printf ("starting on host %s", m->job->source_host);
  sched_jobs_update (svc->jobs, m->job, TRUE);
  m->last_msg_ms = now_ms (m->migrator);
  m->stream = sched_agents_stream (svc->agents, client,
                                   DROVER_AGENT_METHOD_MIGRATE_OUT, &req.base,
                                   sched_mig_on_progress, sched_mig_on_end, m);
  m->watchdog = g_timeout_source_new (SCHED_MIG_WATCHDOG_PERIOD_MS);
  g_source_set_callback (m->watchdog, sched_mig_watchdog, m, NULL);
  g_source_attach (m->watchdog, svc->ctx);
}

/* Starts M, which got its slots: PrepareIncoming on the destination. */
static void
sched_mig_start (SchedMig *m)
{
  SchedService *svc = m->migrator->svc;
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
  sched_jobs_set (svc->jobs, m->job, PROTO_JOB_RUNNING,
                  sched_migration_fraction (&progress), msg, NULL);
  sched_registry_migration_begin (svc->registry, m->job->vm,
                                  m->job->source_host, m->job->dest_host);

  /* A queued migration may have waited long: the world may have moved. */
  vm = sched_store_get_vm (svc->store, m->job->vm, &error);
  if (vm == NULL)
    {
      sched_mig_fail (m, "VM '%s' is gone: %s", m->job->vm, error->message);
      return;
    }
  if (strcmp (vm->host, m->job->source_host) != 0)
    {
      sched_mig_fail (m, "VM '%s' is now on host '%s', not '%s'", vm->name,
                      vm->host, m->job->source_host);
      return;
    }
  if (strcmp (vm->state, PROTO_VM_RUNNING) != 0)
    {
      sched_mig_fail (m, "VM '%s' is %s, not running", vm->name, vm->state);
      return;
    }
  if (sched_agents_client_up (svc->agents, m->job->source_host, &source, &error)
          == NULL
      || (client = sched_agents_client_up (svc->agents, m->job->dest_host, NULL,
                                           &error))
             == NULL)
    {
      sched_mig_fail (m, "%s", error->message);
      return;
    }

  req.job_id = m->job->id;
  req.spec = vm->spec;
  req.source_host = source->name;
  req.source_address = source->address;
  m->prepare_sent = TRUE;
  drover_message (vm->name, m->job->id, NULL,
                  "migrating from host %s to host %s", source->name,
                  m->job->dest_host);
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_PREPARE_INCOMING,
                     &req.base, SCHED_MIG_PREPARE_TIMEOUT_MS,
                     sched_mig_prepare_done, m);
}

/* --- submit ------------------------------------------------------------ */

static gboolean
sched_mig_check_params (const Drover__V1__MigrationParams *params,
                        GError **error)
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
sched_mig_last (GPtrArray *jobs, const char *name)
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

/* Checks that VM may leave its host now: not migrating already, running,
 * on a known host that is up. */
static gboolean
sched_mig_check_vm (SchedMigrator *migrator, const SchedVm *vm, GError **error)
{
  g_autoptr (SchedHost) source = NULL;
  SchedMig *busy = sched_mig_of_vm (migrator, vm->name);

  if (busy != NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is already migrating to host '%s' (job %s)",
                   vm->name, busy->job->dest_host, busy->job->id);
      return FALSE;
    }
  if (!sched_snapshots_check_migrate (migrator->svc, vm, error))
    return FALSE;
  if (strcmp (vm->state, PROTO_VM_RUNNING) != 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is %s: only a running VM can be live-migrated",
                   vm->name, vm->state);
      return FALSE;
    }
  source = sched_store_get_host (migrator->svc->store, vm->host, NULL);
  if (source == NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                   "host '%s' of VM '%s' is unknown", vm->host, vm->name);
      return FALSE;
    }
  return sched_host_check_up (source, error);
}

/* Chooses the destination of VM (TO, or placement) and runs the cost
 * model; refuses a VM that would not converge when PARAMS->strict. */
static char *
sched_mig_plan (SchedMigrator *migrator, const SchedVm *vm, const char *to,
                const Drover__V1__MigrationParams *params,
                Drover__V1__MigrationPrediction *prediction, GError **error)
{
  SchedService *svc = migrator->svc;
  double link_bw = 0, setup_s = 0;
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GPtrArray) jobs = NULL;
  g_autofree char *dest = NULL;

  hosts = sched_store_list_hosts (svc->store, error);
  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, error);
  if (vms != NULL)
    jobs = sched_store_list_jobs (svc->store, error);
  if (jobs == NULL)
    return NULL;
  sched_migrator_add_reservations (migrator, vms);
  sched_migration_learn_link (jobs, migrator->link_bandwidth, &link_bw,
                              &setup_s);
  dest = sched_migration_pick_dest (&svc->policy, hosts, vms, vm, to, error);
  if (dest == NULL
      || !sched_migration_predict (
          vm, params,
          sched_migration_dirty_rate (vm, sched_mig_last (jobs, vm->name)),
          link_bw, setup_s, prediction, error))
    return NULL;
  if (!prediction->converges && params->strict)
    {
      g_autofree char *dirty
          = proto_format_size_brief ((guint64)prediction->dirty_rate);
      g_autofree char *bw
          = proto_format_size_brief ((guint64)prediction->bandwidth);

      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' would not converge (cost model: dirty rate %s/s "
                   "against %s/s, downtime %.0f ms after %u rounds); refused "
                   "because strict",
                   vm->name, dirty, bw, prediction->downtime_ms,
                   prediction->rounds);
      return NULL;
    }
  return g_steal_pointer (&dest);
}

/* Puts M in the queue: it waits with a job saying why. */
static void
sched_mig_enqueue (SchedMig *m)
{
  SchedMigrator *migrator = m->migrator;
  Drover__V1__MigrationProgress progress = DROVER__V1__MIGRATION_PROGRESS__INIT;
  g_autofree char *text = NULL;

  progress.phase = (char *)PROTO_MIG_QUEUED;
  progress.memory_total = m->spec->memory;
  progress.memory_remaining = m->spec->memory;
  m->job->migration = proto_msg_copy (&progress.base);
  text
      = g_strdup_printf ("queued (position %u): hosts %s and %s are at "
                         "their migration limits%s%s",
                         sched_mig_queue_position (migrator->queue, m->job->id),
                         m->job->source_host, m->job->dest_host,
                         m->warning ? "; " : "", m->warning ? m->warning : "");
  drover_message (m->job->vm, m->job->id, NULL, "migration to host %s queued",
                  m->job->dest_host);
  sched_jobs_set (migrator->svc->jobs, m->job, PROTO_JOB_QUEUED, 0.0, text,
                  NULL);
}

gboolean
sched_migrator_submit (SchedMigrator *migrator, const char *vm_name,
                       const char *to,
                       const Drover__V1__MigrationParams *params,
                       SchedJob **job, GError **error)
{
  SchedService *svc = migrator->svc;
  Drover__V1__MigrationParams no_params = DROVER__V1__MIGRATION_PARAMS__INIT;
  Drover__V1__MigrationPrediction prediction;
  g_autoptr (SchedVm) vm = NULL;
  g_autofree char *dest = NULL;
  g_autofree char *id = NULL;
  SchedMig *m;

  if (to == NULL)
    to = "";
  if (!proto_name_validate ("VM", vm_name, error)
      || (to[0] != '\0' && !proto_name_validate ("host", to, error))
      || !sched_mig_check_params (params, error))
    return FALSE;
  if (params == NULL)
    params = &no_params;
  if (migrator->stopped)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                   "the scheduler is shutting down");
      return FALSE;
    }
  vm = sched_store_get_vm (svc->store, vm_name, error);
  if (vm == NULL || !sched_mig_check_vm (migrator, vm, error))
    return FALSE;
  dest = sched_mig_plan (migrator, vm, to, params, &prediction, error);
  if (dest == NULL)
    return FALSE;

  m = g_new0 (SchedMig, 1);
  m->migrator = migrator;
  m->spec = proto_msg_copy (&vm->spec->base);
  m->params = proto_msg_copy (&params->base);
  m->job = sched_job_new (PROTO_JOB_KIND_MIGRATE, vm->name, PROTO_JOB_QUEUED,
                          now_ms (migrator));
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
  g_hash_table_insert (migrator->migrations, g_strdup (id), m);

  if (!sched_mig_queue_add (migrator->queue, id, vm->host, dest))
    sched_mig_enqueue (m);
  else
    {
      if (m->warning != NULL)
        drover_message (vm->name, id, NULL, "%s", m->warning);
      sched_mig_start (m); /* may end it at once (m freed) */
    }

  /* The job as it stands now (the store has every state change). */
  *job = sched_store_get_job (svc->store, id, error);
  return *job != NULL;
}

gboolean
sched_migrator_cancel (SchedMigrator *migrator, const char *id, GError **error)
{
  SchedMig *m = g_hash_table_lookup (migrator->migrations, id);

  if (m == NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                   "no migration in progress with job id '%s'", id);
      return FALSE;
    }
  /* The controller paused the VM to force the switchover: the hand-over
   * may happen at any moment, and an abort would race it. The switchover
   * ends on its own (completed, or aborted by the per-GiB timeout). */
  if (m->job->migration != NULL
      && strcmp (m->job->migration->phase, PROTO_MIG_SWITCHOVER) == 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "job %s is switching VM '%s' over to host '%s': too late "
                   "to cancel, it ends on its own",
                   id, m->job->vm, m->job->dest_host);
      return FALSE;
    }
  if (m->cancelled)
    return TRUE;
  m->cancelled = TRUE;
  drover_message (m->job->vm, id, NULL, "migration to host %s cancelled",
                  m->job->dest_host);
  if (strcmp (m->job->state, PROTO_JOB_QUEUED) == 0)
    sched_mig_fail (m,
                    "cancelled by the operator before it started: the VM "
                    "stays on host '%s'",
                    m->job->source_host);
  else if (m->stream != NULL)
    proto_client_stream_cancel (m->stream); /* sched_mig_on_end follows */
  /* Otherwise PrepareIncoming is in flight: its completion ends it. */
  return TRUE;
}

void
sched_migrator_stop (SchedMigrator *migrator)
{
  g_autoptr (GPtrArray) queued = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  SchedMig *m;

  if (migrator->stopped)
    return;
  migrator->stopped = TRUE;
  /* Waiting migrations will not start: end their jobs now. Running ones
   * end when their agent calls are cancelled (sched_agents_cancel_all). */
  g_hash_table_iter_init (&iter, migrator->migrations);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&m))
    if (strcmp (m->job->state, PROTO_JOB_QUEUED) == 0)
      g_ptr_array_add (queued, g_strdup (m->job->id));
  for (guint i = 0; i < queued->len; i++)
    {
      m = g_hash_table_lookup (migrator->migrations, queued->pdata[i]);
      if (m != NULL)
        sched_mig_fail (m,
                        "the scheduler stopped before the migration started");
    }
}
