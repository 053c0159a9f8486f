/* drover-scheduler: options, signals (SIGINT/SIGTERM stop, SIGHUP reloads
 * the TLS material), setup, main loop. */
#include "sched-balancer.h"
#include "sched-schedules.h"

#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>

static gboolean
on_signal (gpointer loop)
{
  g_message ("signal received, shutting down");
  g_main_loop_quit (loop);
  return G_SOURCE_CONTINUE;
}

/* What SIGHUP reloads, and into what. */
typedef struct
{
  SchedService *svc;
  const char *tls_dir; /* NULL: insecure */
} Reload;

static gboolean
on_reload (gpointer user_data)
{
  Reload *r = user_data;
  g_autoptr (ProtoTls) tls = NULL;
  g_autoptr (GError) error = NULL;

  if (r->tls_dir == NULL)
    g_message ("SIGHUP: insecure, no TLS material to reload");
  else if ((tls = proto_tls_load (r->tls_dir, &error)) == NULL
           || !sched_service_reload_tls (r->svc, tls, &error))
    g_warning ("SIGHUP: TLS material not reloaded, the old stays: %s",
               error->message);
  else
    g_message ("SIGHUP: reloaded certificate, key, CA and CRL from %s",
               r->tls_dir);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autofree char *listen = NULL;
  g_autofree char *http_listen = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *tls_dir = NULL;
  g_autofree char *memory_reserve = NULL;
  g_autofree char *link_bandwidth = NULL;
  g_autofree char *metrics_listen = NULL;
  gboolean metrics_tls = FALSE;
  gint max_mig_out = SCHED_DEFAULT_MAX_MIGRATIONS;
  gint max_mig_in = SCHED_DEFAULT_MAX_MIGRATIONS;
  gint job_retention_days = SCHED_DEFAULT_JOB_RETENTION_MS / (24 * 3600 * 1000);
  gint max_jobs = SCHED_DEFAULT_MAX_JOBS;
  gboolean insecure = FALSE;
  gboolean print_authz = FALSE;
  gboolean version = FALSE;
  gint report_interval_ms = SCHED_DEFAULT_REPORT_INTERVAL_MS;
  gdouble cpu_overcommit = SCHED_DEFAULT_CPU_OVERCOMMIT;
  gdouble memory_overcommit = SCHED_DEFAULT_MEMORY_OVERCOMMIT;
  g_autofree char *balance = NULL;
  gint balance_interval = SCHED_BALANCE_DEFAULT_INTERVAL_S;
  gint balance_cooldown = SCHED_BALANCE_DEFAULT_COOLDOWN_S;
  gdouble balance_threshold = 0.10;
  gint dr_per_host = SCHED_SCHEDULES_DEFAULT_PER_HOST;
  gint dr_per_repo = SCHED_SCHEDULES_DEFAULT_PER_REPO;
  const GOptionEntry entries[] = {
    { "version", 0, 0, G_OPTION_ARG_NONE, &version,
      "Print the version and exit", NULL },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen,
      "Address to serve on (required)", "HOST:PORT" },
    { "state", 0, 0, G_OPTION_ARG_FILENAME, &state_dir,
      "State directory, holds drover.db (required)", "DIR" },
    { "tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &tls_dir,
      "ca.pem, cert.pem, key.pem (and crl.pem) for mutual TLS; SIGHUP "
      "reloads them",
      "DIR" },
    { "insecure", 0, 0, G_OPTION_ARG_NONE, &insecure,
      "Serve and call agents without TLS", NULL },
    { "report-interval-ms", 0, 0, G_OPTION_ARG_INT, &report_interval_ms,
      "Agent report interval; a host is down after 3 (default 5000)", "N" },
    { "cpu-overcommit", 0, 0, G_OPTION_ARG_DOUBLE, &cpu_overcommit,
      "vCPUs per host CPU (default 4.0)", "F" },
    { "memory-overcommit", 0, 0, G_OPTION_ARG_DOUBLE, &memory_overcommit,
      "VM memory per byte of host memory less the reserve (default 1.0)", "F" },
    { "balance", 0, 0, G_OPTION_ARG_STRING, &balance,
      "Balancer mode: off, recommend or auto (default: the mode last set, "
      "else off)",
      "MODE" },
    { "balance-interval", 0, 0, G_OPTION_ARG_INT, &balance_interval,
      "Seconds between the balancer's ticks (default 60)", "SECONDS" },
    { "balance-threshold", 0, 0, G_OPTION_ARG_DOUBLE, &balance_threshold,
      "Imbalance at or below which the balancer plans nothing (default "
      "0.10)",
      "F" },
    { "balance-cooldown", 0, 0, G_OPTION_ARG_INT, &balance_cooldown,
      "Seconds before the balancer moves a VM again (default 600)", "SECONDS" },
    { "dr-jobs-per-host", 0, 0, G_OPTION_ARG_INT, &dr_per_host,
      "Schedule runs at work at once on one host; more wait (default 2)", "N" },
    { "dr-jobs-per-repo", 0, 0, G_OPTION_ARG_INT, &dr_per_repo,
      "Schedule backups at work at once into one repository; more wait "
      "(default 4)",
      "N" },
    { "memory-reserve", 0, 0, G_OPTION_ARG_STRING, &memory_reserve,
      "Memory of each host kept from VMs (default 256M)", "SIZE" },
    { "link-bandwidth", 0, 0, G_OPTION_ARG_STRING, &link_bandwidth,
      "Host-to-host link speed the migration cost model assumes, "
      "bytes per second (default 1G)",
      "SIZE" },
    { "max-migrations-out", 0, 0, G_OPTION_ARG_INT, &max_mig_out,
      "Migrations leaving one host at once; more queue (default 2)", "N" },
    { "max-migrations-in", 0, 0, G_OPTION_ARG_INT, &max_mig_in,
      "Migrations arriving at one host at once; more queue (default 2)", "N" },
    { "job-retention-days", 0, 0, G_OPTION_ARG_INT, &job_retention_days,
      "Days a finished job is kept (default 7)", "N" },
    { "max-jobs", 0, 0, G_OPTION_ARG_INT, &max_jobs,
      "Finished jobs kept at most; older ones go (default 1000)", "N" },
    { "metrics-listen", 0, 0, G_OPTION_ARG_STRING, &metrics_listen,
      "Serve Prometheus metrics on /metrics at this address", "HOST:PORT" },
    { "metrics-tls", 0, 0, G_OPTION_ARG_NONE, &metrics_tls,
      "Serve the metrics over HTTPS with the scheduler's certificate", NULL },
    { "http-listen", 0, 0, G_OPTION_ARG_STRING, &http_listen,
      "Serve the web dashboard here (HTTPS with --tls-dir)", "HOST:PORT" },
    { "print-authz", 0, 0, G_OPTION_ARG_NONE, &print_authz,
      "Print which roles may call each method, and exit", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) octx = g_option_context_new ("- Drover scheduler");
  g_autoptr (GError) error = NULL;
  g_autoptr (ProtoTls) tls = NULL;
  g_autoptr (SchedService) svc = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  SchedConfig config = { 0 };
  Reload reload = { 0 };

  setlocale (LC_ALL, "");
  proto_log_install ();
  g_option_context_add_main_entries (octx, entries, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error))
    {
      g_printerr ("drover-scheduler: %s\n", error->message);
      return 2;
    }
  if (version)
    {
      g_print ("%s %s\n", "drover-scheduler", DROVER_VERSION);
      return 0;
    }
  if (print_authz)
    {
      g_autofree char *table = proto_authz_describe (
          DROVER_SCHED_SERVICE, proto_sched_authz, proto_sched_authz_len);

      g_print ("%s", table);
      return 0;
    }
  config.memory_reserve = SCHED_DEFAULT_MEMORY_RESERVE;
  if (listen == NULL || state_dir == NULL)
    {
      g_printerr ("drover-scheduler: --listen and --state are required\n");
      return 2;
    }
  if ((tls_dir != NULL) == insecure)
    {
      g_printerr ("drover-scheduler: give exactly one of --tls-dir DIR "
                  "and --insecure\n");
      return 2;
    }
  if (metrics_tls && (tls_dir == NULL || metrics_listen == NULL))
    {
      g_printerr ("drover-scheduler: --metrics-tls needs --metrics-listen "
                  "and --tls-dir\n");
      return 2;
    }
  if (report_interval_ms < 10 || cpu_overcommit <= 0 || memory_overcommit <= 0)
    {
      g_printerr ("drover-scheduler: --report-interval-ms must be >= 10 "
                  "and --cpu-overcommit and --memory-overcommit > 0\n");
      return 2;
    }
  if (balance != NULL)
    {
      SchedBalanceMode mode;

      if (!sched_balance_mode_parse (balance, &mode, &error))
        {
          g_printerr ("drover-scheduler: --balance: %s\n", error->message);
          return 2;
        }
    }
  if (balance_interval < 1 || balance_interval > 86400 || balance_cooldown < 1
      || balance_cooldown > 7 * 86400 || balance_threshold <= 0
      || balance_threshold >= 1)
    {
      g_printerr ("drover-scheduler: --balance-interval must be 1..86400, "
                  "--balance-cooldown 1..604800 and --balance-threshold "
                  "between 0 and 1\n");
      return 2;
    }
  if (dr_per_host < 1 || dr_per_host > 1000 || dr_per_repo < 1
      || dr_per_repo > 1000)
    {
      g_printerr ("drover-scheduler: --dr-jobs-per-host and "
                  "--dr-jobs-per-repo must be 1..1000\n");
      return 2;
    }
  if (memory_reserve != NULL
      && !proto_parse_size ("--memory-reserve", memory_reserve,
                            &config.memory_reserve, &error))
    {
      g_printerr ("drover-scheduler: %s\n", error->message);
      return 2;
    }
  config.link_bandwidth = SCHED_DEFAULT_LINK_BANDWIDTH;
  if (link_bandwidth != NULL
      && !proto_parse_size ("--link-bandwidth", link_bandwidth,
                            &config.link_bandwidth, &error))
    {
      g_printerr ("drover-scheduler: %s\n", error->message);
      return 2;
    }
  if (max_mig_out < 1 || max_mig_in < 1 || config.link_bandwidth == 0)
    {
      g_printerr ("drover-scheduler: --max-migrations-out/-in must be >= 1 "
                  "and --link-bandwidth > 0\n");
      return 2;
    }
  if (job_retention_days < 1 || job_retention_days > 36500 || max_jobs < 1)
    {
      g_printerr ("drover-scheduler: --job-retention-days must be 1..36500 "
                  "and --max-jobs >= 1\n");
      return 2;
    }
  config.job_retention_ms
      = (gint64)job_retention_days * 24 * 3600 * G_GINT64_CONSTANT (1000);
  config.max_jobs = max_jobs;
  config.max_migrations_out = max_mig_out;
  config.max_migrations_in = max_mig_in;
  config.state_dir = state_dir;
  config.report_interval_ms = report_interval_ms;
  config.cpu_overcommit = cpu_overcommit;
  config.memory_overcommit = memory_overcommit;
  config.balance_mode = balance;
  config.balance_interval_s = balance_interval;
  config.balance_threshold = balance_threshold;
  config.balance_cooldown_s = balance_cooldown;
  config.dr_jobs_per_host = dr_per_host;
  config.dr_jobs_per_repo = dr_per_repo;
  config.metrics = metrics_listen;
  config.metrics_tls = metrics_tls;

  proto_init ();
  if (tls_dir != NULL && (tls = proto_tls_load (tls_dir, &error)) == NULL)
    goto fail;
  svc = sched_service_new (&config, tls, &error);
  if (svc == NULL || !sched_service_start (svc, listen, &error))
    goto fail;
  g_message ("serving on %s (port %d, %s), state in %s", listen,
             sched_service_get_port (svc), tls ? "mutual TLS" : "insecure",
             state_dir);
  if (metrics_listen != NULL)
    g_message ("metrics on %s, port %d (%s)", metrics_listen,
               sched_service_get_metrics_port (svc),
               metrics_tls ? "HTTPS" : "HTTP");
  if (http_listen != NULL)
    {
      if (!sched_service_listen_http (svc, http_listen, &error))
        goto fail;
      g_message ("dashboard on %s://%s (port %d)", tls ? "https" : "http",
                 http_listen, sched_service_get_http_port (svc));
    }

  loop = g_main_loop_new (NULL, FALSE);
  reload.svc = svc;
  reload.tls_dir = tls_dir;
  g_unix_signal_add (SIGINT, on_signal, loop);
  g_unix_signal_add (SIGTERM, on_signal, loop);
  g_unix_signal_add (SIGHUP, on_reload, &reload);
  g_main_loop_run (loop);

  g_clear_pointer (&svc, sched_service_free);
  proto_shutdown ();
  return 0;

fail:
  g_printerr ("drover-scheduler: %s\n", error->message);
  g_clear_pointer (&svc, sched_service_free);
  proto_shutdown ();
  return 1;
}
