/* SchedMig: one live migration the scheduler drives (sched-migrator.c
 * holds them and tells the timeline): PrepareIncoming on the destination,
 * MigrateOut on the source relayed into its job, the watchdog, and the
 * one end of every path, sched_mig_finish. */
#include "sched-migrator-private.h"

#include <string.h>

/* PrepareIncoming may create the VM's disk on the destination. */
#define SCHED_MIG_PREPARE_TIMEOUT_MS SCHED_AGENT_CREATE_TIMEOUT_MS
/* Progress goes to watchers at once but to the store at most this often. */
#define SCHED_MIG_STORE_INTERVAL_MS 250
/* A source agent silent this long is taken as hung: the call is cancelled
 * (which aborts the migration there) and the job fails. */
#define SCHED_MIG_SILENCE_TIMEOUT_MS (300 * 1000)
#define SCHED_MIG_WATCHDOG_PERIOD_MS (5 * 1000)

void
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
  vm->updated_ms = sched_mig_now_ms (m->migrator);
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

void
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
  gint64 now = sched_mig_now_ms (m->migrator);

  m->last_msg_ms = now;
  phase_changed = m->job->migration == NULL
                  || g_strcmp0 (m->job->migration->phase, p->phase) != 0;
  /* The convergence ladder climbed a rung (issue 17). */
  if (p->n_rungs > 0 && p->rungs[p->n_rungs - 1] != NULL
      && (m->job->migration == NULL
          || m->job->migration->n_rungs != p->n_rungs))
    {
      const Drover__V1__MigrationRung *r = p->rungs[p->n_rungs - 1];

      sched_events_emit (
          m->migrator->svc->events, SCHED_EVENT_MIGRATION_RUNG, m->job->vm,
          m->job->source_host, r->rung,
          m->job->migration && m->job->migration->rung[0]
              ? m->job->migration->rung
              : NULL,
          "migration job %.8s: rung %s (throttle %u%%, downtime limit %u ms) "
          "after %.1f s",
          m->job->id, r->rung, r->throttle_pct, r->downtime_limit_ms,
          r->start_ms / 1000.0);
    }
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
      && sched_mig_now_ms (m->migrator) - m->last_msg_ms
             > SCHED_MIG_SILENCE_TIMEOUT_MS)
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
  m->last_msg_ms = sched_mig_now_ms (m->migrator);
  m->stream = sched_agents_stream (svc->agents, client,
                                   DROVER_AGENT_METHOD_MIGRATE_OUT, &req.base,
                                   sched_mig_on_progress, sched_mig_on_end, m);
  m->watchdog = g_timeout_source_new (SCHED_MIG_WATCHDOG_PERIOD_MS);
  g_source_set_callback (m->watchdog, sched_mig_watchdog, m, NULL);
  g_source_attach (m->watchdog, svc->ctx);
}

/* Starts M, which got its slots: PrepareIncoming on the destination. */
void
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
