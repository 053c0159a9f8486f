/* SchedService: drover.v1.SchedulerService. This file sets the service up
 * (store, registry, job board, agent clients, migrator), registers the
 * handlers, starts and stops serving, recovers what a previous process
 * left half done, runs the timer for liveness (and job pruning) and
 * reloads the TLS material. It also serves the agents' calls
 * (RegisterHost, ReportHost: each host only as itself), which go to the
 * registry; the
 * operators' calls are in sched-vm-handlers.c (VMs, MigrateVm through
 * sched-migrator.c) and sched-jobs.c (ListJobs, WatchJob).
 *
 * On start, jobs left queued/running by a previous process are failed
 * and "creating" VMs become "missing": the outcome of their create is
 * unknown, and the host's next report settles it (the VM is reported and
 * takes its real state, or stays missing and can be deleted). Migration
 * jobs are failed the same way; the source agent aborts when its
 * MigrateOut call breaks, and reports say where the VM is.
 */
#include "sched-balancer.h"
#include "sched-dashboard.h"
#include "sched-drain.h"
#include "sched-networks.h"
#include "sched-images.h"
#include "sched-migration-settings.h"
#include "sched-nics.h"
#include "sched-repos.h"
#include "sched-schedules.h"

#include <string.h>

/* --- agent-facing handlers --------------------------------------------- */

/* Checks the HostInfo an agent's call METHOD carries: present, with a
 * valid name that is the caller's own (its certificate's CN; an insecure
 * server has no names and skips this), and an agent address that is an
 * IP literal and port (sched_address_check). The address is required when
 * REGISTERING; a report may leave it empty (the registered one stays).
 * Fails CALL and returns FALSE otherwise. */
static gboolean
host_call_check (ProtoServerCall *call, const char *method,
                 const Drover__V1__HostInfo *info, gboolean registering)
{
  const char *caller = proto_server_call_get_peer_name (call);
  g_autoptr (GError) error = NULL;

  if (info == NULL)
    g_set_error (&error, SCHED_ERROR, SCHED_ERROR_INVALID, "host info missing");
  else if (!proto_name_validate ("host", info->name, &error))
    ;
  else if (caller != NULL && strcmp (caller, info->name) != 0)
    {
      /* A host acts only as itself: nobody else's registration, address,
       * inventory or report sequence. */
      drover_message (NULL, NULL, caller, "denied %s as host '%s'", method,
                      info->name);
      proto_server_call_fail (call, PROTO_STATUS_PERMISSION_DENIED,
                              "%s: host '%s' (the certificate's CN) may not "
                              "act as host '%s'",
                              method, caller, info->name);
      return FALSE;
    }
  else if (registering && info->address[0] == '\0')
    g_set_error (&error, SCHED_ERROR, SCHED_ERROR_INVALID,
                 "host '%s': agent address missing", info->name);
  else if (info->address[0] != '\0'
           && !sched_address_check (info->address, &error))
    g_prefix_error (&error, "host '%s': ", info->name);
  /* The bridges it has (issue 13): capped and named as interfaces. */
  if (error == NULL)
    sched_host_bridges_check (info, &error);
  /* The images it has (issue 13): capped, names checked. */
  if (error == NULL)
    sched_host_images_check (info, &error);
  if (error == NULL)
    return TRUE;
  sched_call_fail (call, error);
  return FALSE;
}

/* The registry refused host HOST's call METHOD: logs it, fails CALL. */
static void
host_call_fail (ProtoServerCall *call, const char *method, const char *host,
                const GError *error)
{
  drover_warning (NULL, NULL, host, "%s: %s", method, error->message);
  sched_call_fail (call, error);
}

static void
handle_register_host (ProtoServerCall *call, const ProtobufCMessage *request,
                      gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__RegisterHostRequest *req = (const void *)request;
  Drover__V1__RegisterHostReply reply = DROVER__V1__REGISTER_HOST_REPLY__INIT;
  g_autoptr (GError) error = NULL;

  if (!host_call_check (call, "RegisterHost", req->host, TRUE))
    return;
  if (!sched_registry_register (svc->registry, req->host, &error))
    {
      host_call_fail (call, "RegisterHost", req->host->name, error);
      return;
    }
  /* A (re)registering agent is a new process: a cached channel to its
   * predecessor may sit in gRPC's reconnect backoff and fail the next
   * calls fast, so start afresh. */
  sched_agents_drop (svc->agents, req->host->name);
  reply.report_interval_ms = svc->report_interval_ms;
  proto_server_call_reply (call, &reply.base);
  /* After the reply: the agent serves before it registers, and a stored
   * repository it cannot attach is logged, not a failed registration. */
  sched_repos_host_registered (svc, req->host->name);
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

  if (!host_call_check (call, "ReportHost", req->host, FALSE))
    return;
  if (!sched_registry_report (svc->registry, req->host, req->vms, req->n_vms,
                              req->seq, &reregister, &error))
    {
      host_call_fail (call, "ReportHost", req->host->name, error);
      return;
    }
  sched_metrics_report (svc->metrics);
  if (!reregister)
    {
      sched_snapshots_after_report (svc, req->host->name, req->vms, req->n_vms);
      sched_balancer_report (svc->balancer, req->host, req->vms, req->n_vms);
    }
  reply.reregister = reregister;
  proto_server_call_reply (call, &reply.base);
}

/* --- setup ------------------------------------------------------------- */

/* Also prunes old jobs, at most every SCHED_JOBS_PRUNE_PERIOD_MS: jobs
 * that end prune at once, this catches the age limit on a quiet system. */
static gboolean
liveness_tick (gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  gint64 now = sched_registry_now (svc->registry);

  sched_registry_check_liveness (svc->registry, &error);
  if (error != NULL)
    g_warning ("liveness check: %s", error->message);
  if (now - svc->last_prune_ms >= SCHED_JOBS_PRUNE_PERIOD_MS)
    {
      svc->last_prune_ms = now;
      sched_jobs_prune (svc->jobs);
    }
  return G_SOURCE_CONTINUE;
}

/* What a previous process left half done (see the comment at the top). */
static gboolean
recover (SchedService *svc, GError **error)
{
  g_autoptr (GPtrArray) jobs = sched_store_list_jobs (svc->store, error);
  g_autoptr (GPtrArray) vms = NULL;
  gint64 now = sched_registry_now (svc->registry);

  if (jobs == NULL)
    return FALSE;
  for (guint i = 0; i < jobs->len; i++)
    {
      SchedJob *job = jobs->pdata[i];

      /* A drain goes on: sched_drains_start resumes it. */
      if (proto_job_state_is_final (job->state)
          || strcmp (job->kind, PROTO_JOB_KIND_DRAIN) == 0)
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
      drover_message (vm->name, NULL, vm->host,
                      "create interrupted by a restart; missing until its "
                      "host reports it");
      sched_vm_set_state (vm, PROTO_VM_MISSING);
      vm->updated_ms = now;
      if (!sched_store_put_vm (svc->store, vm, error))
        return FALSE;
    }
  return TRUE;
}

/* The service's one clock, for the objects that take a clock function. */
static gint64
registry_clock (gpointer registry)
{
  return sched_registry_now (registry);
}

SchedService *
sched_service_new (const SchedConfig *config, const ProtoTls *tls,
                   GError **error)
{
  g_autoptr (SchedService) svc = g_new0 (SchedService, 1);

  svc->report_interval_ms = config->report_interval_ms
                                ? config->report_interval_ms
                                : SCHED_DEFAULT_REPORT_INTERVAL_MS;
  svc->policy.cpu_overcommit = config->cpu_overcommit;
  svc->policy.memory_reserve = config->memory_reserve;
  svc->policy.memory_overcommit = config->memory_overcommit > 0
                                      ? config->memory_overcommit
                                      : SCHED_DEFAULT_MEMORY_OVERCOMMIT;
  svc->tls = tls ? proto_tls_copy (tls) : NULL;
  svc->ctx = g_main_context_ref_thread_default ();
  svc->metrics = sched_metrics_new ();
  svc->metrics_listen = g_strdup (config->metrics);
  svc->metrics_tls = config->metrics_tls;

  svc->store = sched_store_open_sqlite (config->state_dir, error);
  if (svc->store == NULL)
    return NULL;
  svc->registry
      = sched_registry_new (svc->store, svc->report_interval_ms, NULL, NULL);
  svc->jobs = sched_jobs_new (svc->store, svc->registry,
                              config->job_retention_ms, config->max_jobs);
  svc->events = sched_events_new (0, registry_clock, svc->registry);
  sched_registry_set_events (svc->registry, svc->events);
  sched_jobs_set_events (svc->jobs, svc->events);
  svc->logins = sched_logins_new (registry_clock, svc->registry);
  svc->dashboard = sched_dashboard_new (svc);
  svc->agents = sched_agents_new (svc->store, svc->tls, svc->ctx);
  svc->migrator = sched_migrator_new (svc, config->link_bandwidth,
                                      config->max_migrations_out,
                                      config->max_migrations_in);
  svc->snapshots = sched_snapshots_new (svc);
  svc->drains = sched_drains_new (svc);
  svc->repos = sched_repos_new (svc);
  svc->balancer = sched_balancer_new (svc, config);
  svc->schedules = sched_schedules_new (svc, config->dr_jobs_per_host,
                                        config->dr_jobs_per_repo);
  if (!recover (svc, error))
    return NULL;
  /* The table was bounded when the last process stopped: the first prune
   * comes with the first job that ends, or a period from now. */
  svc->last_prune_ms = sched_registry_now (svc->registry);
  return g_steal_pointer (&svc);
}

gboolean
sched_service_start (SchedService *svc, const char *listen, GError **error)
{
  const struct
  {
    guint method;
    ProtoHandler handler;
    gpointer data;
  } methods[] = {
    { DROVER_SCHED_METHOD_REGISTER_HOST, handle_register_host, svc },
    { DROVER_SCHED_METHOD_REPORT_HOST, handle_report_host, svc },
    { DROVER_SCHED_METHOD_LIST_HOSTS, sched_vm_handle_list_hosts, svc },
    { DROVER_SCHED_METHOD_LIST_VMS, sched_vm_handle_list_vms, svc },
    { DROVER_SCHED_METHOD_GET_VM, sched_vm_handle_get, svc },
    { DROVER_SCHED_METHOD_CREATE_VM, sched_vm_handle_create, svc },
    { DROVER_SCHED_METHOD_START_VM, sched_vm_handle_start, svc },
    { DROVER_SCHED_METHOD_STOP_VM, sched_vm_handle_stop, svc },
    { DROVER_SCHED_METHOD_DESTROY_VM, sched_vm_handle_destroy, svc },
    { DROVER_SCHED_METHOD_DELETE_VM, sched_vm_handle_delete, svc },
    { DROVER_SCHED_METHOD_READ_CONSOLE, sched_vm_handle_read_console, svc },
    { DROVER_SCHED_METHOD_LIST_JOBS, sched_jobs_handle_list, svc->jobs },
    { DROVER_SCHED_METHOD_WATCH_JOB, sched_jobs_handle_watch, svc->jobs },
    { DROVER_SCHED_METHOD_CANCEL_JOB, sched_vm_handle_cancel_job, svc },
    { DROVER_SCHED_METHOD_MIGRATE_VM, sched_vm_handle_migrate, svc },
    { DROVER_SCHED_METHOD_WATCH_EVENTS, sched_events_handle_watch,
      svc->events },
    { DROVER_SCHED_METHOD_CREATE_DASHBOARD_TOKEN, sched_logins_handle_token,
      svc },
    { DROVER_SCHED_METHOD_CREATE_SNAPSHOT, sched_snap_handle_create, svc },
    { DROVER_SCHED_METHOD_LIST_SNAPSHOTS, sched_snap_handle_list, svc },
    { DROVER_SCHED_METHOD_REVERT_SNAPSHOT, sched_snap_handle_revert, svc },
    { DROVER_SCHED_METHOD_DELETE_SNAPSHOT, sched_snap_handle_delete, svc },
    { DROVER_SCHED_METHOD_CLONE_VM, sched_snap_handle_clone, svc },
    { DROVER_SCHED_METHOD_MAKE_TEMPLATE, sched_snap_handle_template, svc },
    { DROVER_SCHED_METHOD_DRAIN_HOST, sched_drain_handle_drain, svc },
    { DROVER_SCHED_METHOD_UNDRAIN_HOST, sched_drain_handle_undrain, svc },
    /* backup repositories (issue 14) */
    { DROVER_SCHED_METHOD_ADD_REPO, sched_repos_handle_add, svc },
    { DROVER_SCHED_METHOD_LIST_REPOS, sched_repos_handle_list, svc },
    { DROVER_SCHED_METHOD_GET_REPO_STATUS, sched_repos_handle_status, svc },
    { DROVER_SCHED_METHOD_GC_REPO, sched_repos_handle_gc, svc },
    { DROVER_SCHED_METHOD_VERIFY_BACKUPS, sched_repos_handle_verify, svc },
    { DROVER_SCHED_METHOD_PRUNE_BACKUPS, sched_repos_handle_prune, svc },

    /* backups (issue 14) */
    { DROVER_SCHED_METHOD_CREATE_BACKUP, sched_backups_handle_create, svc },
    { DROVER_SCHED_METHOD_LIST_BACKUPS, sched_backups_handle_list, svc },
    { DROVER_SCHED_METHOD_GET_BACKUP, sched_backups_handle_get, svc },
    { DROVER_SCHED_METHOD_RESTORE_BACKUP, sched_backups_handle_restore, svc },

    /* balancing (issue 15) */
    { DROVER_SCHED_METHOD_PLAN_BALANCE, sched_balance_handle_plan, svc },
    { DROVER_SCHED_METHOD_APPLY_BALANCE, sched_balance_handle_apply, svc },
    { DROVER_SCHED_METHOD_GET_BALANCE_STATUS, sched_balance_handle_status,
      svc },
    { DROVER_SCHED_METHOD_SET_BALANCE_MODE, sched_balance_handle_mode, svc },

    /* disaster-recovery schedules (issue 16) */
    { DROVER_SCHED_METHOD_CREATE_SCHEDULE, sched_schedules_handle_create, svc },
    { DROVER_SCHED_METHOD_LIST_SCHEDULES, sched_schedules_handle_list, svc },
    { DROVER_SCHED_METHOD_GET_SCHEDULE, sched_schedules_handle_get, svc },
    { DROVER_SCHED_METHOD_SET_SCHEDULE_PAUSED, sched_schedules_handle_pause,
      svc },
    { DROVER_SCHED_METHOD_DELETE_SCHEDULE, sched_schedules_handle_delete, svc },
    { DROVER_SCHED_METHOD_RUN_SCHEDULE, sched_schedules_handle_run, svc },
    { DROVER_SCHED_METHOD_GET_DR_REPORT, sched_schedules_handle_report, svc },
    { DROVER_SCHED_METHOD_DRILL_SCHEDULE, sched_schedules_handle_drill, svc },
    { DROVER_SCHED_METHOD_SET_VM_LABELS, sched_vm_handle_set_labels, svc },

    /* networks (issue 13) */
    { DROVER_SCHED_METHOD_CREATE_NETWORK, sched_networks_handle_create, svc },
    { DROVER_SCHED_METHOD_LIST_NETWORKS, sched_networks_handle_list, svc },
    { DROVER_SCHED_METHOD_GET_NETWORK, sched_networks_handle_get, svc },
    { DROVER_SCHED_METHOD_DELETE_NETWORK, sched_networks_handle_delete, svc },
    /* images (issue 13) */
    { DROVER_SCHED_METHOD_IMPORT_IMAGE, sched_images_handle_import, svc },
    { DROVER_SCHED_METHOD_LIST_IMAGES, sched_images_handle_list, svc },
    { DROVER_SCHED_METHOD_DELETE_IMAGE, sched_images_handle_delete, svc },
    { DROVER_SCHED_METHOD_ATTACH_NIC, sched_nics_handle_attach, svc },
    { DROVER_SCHED_METHOD_DETACH_NIC, sched_nics_handle_detach, svc },
    /* migration defaults (issue 17) */
    { DROVER_SCHED_METHOD_SET_VM_MIGRATION, sched_migration_handle_set_vm,
      svc },
  };
  G_STATIC_ASSERT (G_N_ELEMENTS (methods) == DROVER_SCHED_N_METHODS);

  g_return_val_if_fail (svc->server == NULL, FALSE);
  svc->server = proto_server_new (svc->ctx);
  for (gsize i = 0; i < G_N_ELEMENTS (methods); i++)
    proto_server_add_method (svc->server, DROVER_SCHED_SERVICE,
                             methods[i].method, methods[i].handler,
                             methods[i].data);
  proto_server_set_authz (svc->server, DROVER_SCHED_SERVICE, proto_sched_authz,
                          proto_sched_authz_len);
  proto_server_set_metrics (svc->server, sched_metrics_registry (svc->metrics));
  if (!proto_server_start (svc->server, listen, svc->tls, error)
      || !sched_drains_start (svc->drains, error)
      || !sched_balancer_start (svc->balancer, error)
      || !sched_schedules_start (svc->schedules, error))
    return FALSE;
  if (svc->metrics_listen != NULL
      && (!sched_metrics_listen (svc->metrics, svc->store, svc->metrics_listen,
                                 svc->metrics_tls ? svc->tls : NULL, error)
          || !sched_metrics_watch (svc->metrics, svc->store, svc->events,
                                   error)))
    return FALSE;

  /* Checking every half interval keeps "down" within half an interval of
   * the deadline. */
  svc->liveness = g_timeout_source_new (MAX (svc->report_interval_ms / 2, 10));
  g_source_set_callback (svc->liveness, liveness_tick, svc, NULL);
  g_source_attach (svc->liveness, svc->ctx);
  return TRUE;
}

gboolean
sched_service_reload_tls (SchedService *svc, const ProtoTls *tls,
                          GError **error)
{
  if (svc->tls == NULL || svc->server == NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "the scheduler is not serving with TLS");
      return FALSE;
    }
  if (!proto_server_reload_tls (svc->server, tls, error))
    return FALSE;
  /* The agent clients borrow svc->tls: hand them the new copy before the
   * old one goes. */
  proto_tls_free (g_steal_pointer (&svc->tls));
  svc->tls = proto_tls_copy (tls);
  sched_agents_set_tls (svc->agents, svc->tls);
  return TRUE;
}

gboolean
sched_service_listen_http (SchedService *svc, const char *addr, GError **error)
{
  return sched_dashboard_listen (svc->dashboard, addr, error);
}

int
sched_service_get_http_port (SchedService *svc)
{
  return sched_dashboard_get_port (svc->dashboard);
}

int
sched_service_get_port (SchedService *svc)
{
  return svc->server ? proto_server_get_port (svc->server) : -1;
}

int
sched_service_get_metrics_port (SchedService *svc)
{
  return sched_metrics_get_port (svc->metrics);
}

void
sched_service_stop (SchedService *svc)
{
  if (svc == NULL || svc->stopped)
    return;
  svc->stopped = TRUE;
  if (svc->metrics != NULL)
    sched_metrics_stop (svc->metrics);
  /* Before the migrator fails its queue: a drain must not take those
   * failures for VMs that cannot move; it resumes in the next process. */
  if (svc->drains != NULL)
    sched_drains_stop (svc->drains);
  if (svc->balancer != NULL)
    sched_balancer_stop (svc->balancer);
  if (svc->schedules != NULL)
    sched_schedules_stop (svc->schedules);
  if (svc->migrator != NULL)
    sched_migrator_stop (svc->migrator);
  if (svc->snapshots != NULL)
    sched_snapshots_stop (svc->snapshots);
  if (svc->repos != NULL)
    sched_repos_stop (svc->repos);
  if (svc->liveness != NULL)
    {
      g_source_destroy (svc->liveness);
      g_clear_pointer (&svc->liveness, g_source_unref);
    }
  if (svc->jobs != NULL)
    sched_jobs_stop (svc->jobs);
  if (svc->events != NULL)
    sched_events_stop (svc->events);
  if (svc->dashboard != NULL)
    sched_dashboard_stop (svc->dashboard);
  if (svc->server != NULL)
    proto_server_stop (svc->server);
  /* Pending agent calls complete (CANCELLED) while their clients are
   * freed, finishing their server calls and jobs with the store still
   * open. */
  if (svc->agents != NULL)
    sched_agents_cancel_all (svc->agents);
}

void
sched_service_free (SchedService *svc)
{
  if (svc == NULL)
    return;
  sched_service_stop (svc);
  g_clear_pointer (&svc->server, proto_server_free);
  g_clear_pointer (&svc->agents, sched_agents_free);
  g_clear_pointer (&svc->migrator, sched_migrator_free);
  g_clear_pointer (&svc->snapshots, sched_snapshots_free);
  g_clear_pointer (&svc->drains, sched_drains_free);
  g_clear_pointer (&svc->repos, sched_repos_free);
  g_clear_pointer (&svc->balancer, sched_balancer_free);
  g_clear_pointer (&svc->schedules, sched_schedules_free);
  g_clear_pointer (&svc->jobs, sched_jobs_free);
  g_clear_pointer (&svc->dashboard, sched_dashboard_free);
  g_clear_pointer (&svc->events, sched_events_free);
  g_clear_pointer (&svc->logins, sched_logins_free);
  g_clear_pointer (&svc->registry, sched_registry_free);
  g_clear_pointer (&svc->store, sched_store_close);
  g_clear_pointer (&svc->tls, proto_tls_free);
  /* After the server, whose counters live in its registry. */
  g_clear_pointer (&svc->metrics, sched_metrics_free);
  g_free (svc->metrics_listen);
  g_main_context_unref (svc->ctx);
  g_free (svc);
}
