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
#include "sched-migrator-private.h"

#include <string.h>

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
  if (params->max_throttle_pct > 99
      || (params->max_throttle_pct > 0 && params->no_throttle))
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "max_throttle_pct must be 1-99 (0 = default) and not "
                   "given with no_throttle, not %u",
                   params->max_throttle_pct);
      return FALSE;
    }
  if (params->postcopy[0] != '\0'
      && strcmp (params->postcopy, PROTO_MIG_POSTCOPY_AUTO) != 0
      && strcmp (params->postcopy, PROTO_MIG_POSTCOPY_NEVER) != 0
      && strcmp (params->postcopy, PROTO_MIG_POSTCOPY_NOW) != 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "postcopy must be auto, never or now, not '%.32s'",
                   params->postcopy);
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
  /* No --postcopy: the VM's default (issue 17), never without one. The
   * empty string is protobuf-c's shared default: replaced, not freed. */
  if (m->params->postcopy[0] == '\0')
    m->params->postcopy = proto_msg_strdup (vm->spec->migration_postcopy[0]
                                                ? vm->spec->migration_postcopy
                                                : PROTO_MIG_POSTCOPY_NEVER);
  m->job = sched_job_new (PROTO_JOB_KIND_MIGRATE, vm->name, PROTO_JOB_QUEUED,
                          sched_mig_now_ms (migrator));
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

/* Records the final "abort" rung of a migration the operator cancelled:
 * the scheduler cancels the agent's call, so the agent's own last report
 * (with the rung) never arrives. AT_MS counts from the migration's
 * start, like the agent's rungs. */
static void
sched_mig_note_abort (Drover__V1__MigrationProgress *p, gint64 at_ms)
{
  Drover__V1__MigrationRung *r;

  if (p == NULL || strcmp (p->rung, PROTO_MIG_RUNG_ABORT) == 0)
    return;
  if (p->n_rungs > 0 && p->rungs[p->n_rungs - 1] != NULL)
    {
      Drover__V1__MigrationRung *last = p->rungs[p->n_rungs - 1];

      last->duration_ms = MAX (at_ms - last->start_ms, 0);
    }
  r = g_new0 (Drover__V1__MigrationRung, 1);
  drover__v1__migration_rung__init (r);
  r->rung = proto_msg_strdup (PROTO_MIG_RUNG_ABORT);
  r->throttle_pct = p->throttle_pct;
  r->downtime_limit_ms = p->downtime_limit_ms;
  r->start_ms = at_ms;
  p->rungs = g_renew (Drover__V1__MigrationRung *, p->rungs, p->n_rungs + 1);
  p->rungs[p->n_rungs++] = r;
  /* A rung of its own is protobuf-c's shared empty string: not freed. */
  if (p->rung[0] != '\0')
    g_free (p->rung);
  p->rung = proto_msg_strdup (PROTO_MIG_RUNG_ABORT);
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
  /* In post-copy the guest runs on the destination and its memory is
   * split between the hosts: there is no going back. */
  if (m->job->migration != NULL
      && (strcmp (m->job->migration->rung, PROTO_MIG_RUNG_POSTCOPY) == 0
          || strcmp (m->job->migration->rung, PROTO_MIG_RUNG_POSTCOPY_RECOVER)
                 == 0))
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "job %s is in post-copy: VM '%s' already runs on host "
                   "'%s', too late to cancel, it ends on its own",
                   id, m->job->vm, m->job->dest_host);
      return FALSE;
    }
  if (m->cancelled)
    return TRUE;
  m->cancelled = TRUE;
  drover_message (m->job->vm, id, NULL, "migration to host %s cancelled",
                  m->job->dest_host);
  if (m->stream != NULL && m->job->migration != NULL
      && m->job->migration->elapsed_ms > 0)
    {
      g_autofree char *before = g_strdup (m->job->migration->rung);

      sched_mig_note_abort (
          m->job->migration,
          m->job->migration->elapsed_ms
              + MAX (sched_mig_now_ms (migrator) - m->last_msg_ms, 0));
      sched_events_emit (migrator->svc->events, SCHED_EVENT_MIGRATION_RUNG,
                         m->job->vm, m->job->source_host, PROTO_MIG_RUNG_ABORT,
                         before[0] ? before : NULL,
                         "migration job %.8s: rung abort (cancelled by the "
                         "operator)",
                         m->job->id);
    }
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
