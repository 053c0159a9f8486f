/* drover-agent: options, signals, setup, run. */
#include <glib-unix.h>
#include <locale.h>
#include <stdlib.h>

#include "agent.h"
#include "proto.h"

static gboolean
on_signal (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

/* SIGHUP: new certificate, key, CA and CRL; open connections stay. */
static gboolean
on_reload (gpointer data)
{
  g_autoptr (GError) error = NULL;

  if (!agent_reload_tls (data, &error))
    g_message ("%s; keeping the old material", error->message);
  return G_SOURCE_CONTINUE;
}

static void
add_signal (GMainContext *ctx, int signum, GSourceFunc func, gpointer data)
{
  GSource *source = g_unix_signal_source_new (signum);

  g_source_set_callback (source, func, data, NULL);
  g_source_attach (source, ctx);
  g_source_unref (source);
}

int
main (int argc, char **argv)
{
  g_autofree char *name = NULL, *listen = NULL, *scheduler = NULL, *uri = NULL;
  g_autofree char *accel = NULL, *data_dir = NULL, *tls_dir = NULL;
  g_autofree char *image_dir = NULL, *metrics_listen = NULL;
  g_auto (GStrv) backup_repos = NULL, backup_repo_roots = NULL;
  gboolean insecure = FALSE, metrics_tls = FALSE;
  gboolean print_authz = FALSE;
  gboolean version = FALSE;
  int report_interval_ms = 0;
  int migration_port = 7402;
  GOptionEntry entries[] = {
    { "version", 0, 0, G_OPTION_ARG_NONE, &version,
      "Print the version and exit", NULL },
    { "name", 0, 0, G_OPTION_ARG_STRING, &name, "Host name", "NAME" },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen, "AgentService address",
      "ADDR:PORT" },
    { "scheduler", 0, 0, G_OPTION_ARG_STRING, &scheduler, "Scheduler address",
      "ADDR:PORT" },
    { "libvirt-uri", 0, 0, G_OPTION_ARG_STRING, &uri, "libvirt connection URI",
      "URI" },
    { "accel", 0, 0, G_OPTION_ARG_STRING, &accel, "Guest accelerator",
      "kvm|tcg|auto" },
    { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &data_dir,
      "Disks and console logs", "DIR" },
    { "image-dir", 0, 0, G_OPTION_ARG_FILENAME, &image_dir,
      "Kernels and initrds VMs may boot (default DATA-DIR/images)", "DIR" },
    { "tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &tls_dir,
      "ca.pem, cert.pem, key.pem, crl.pem (reloaded on SIGHUP)", "DIR" },
    { "insecure", 0, 0, G_OPTION_ARG_NONE, &insecure,
      "No TLS (local testing only)", NULL },
    { "report-interval-ms", 0, 0, G_OPTION_ARG_INT, &report_interval_ms,
      "Report interval when the scheduler gives none", "MS" },
    { "migration-port", 0, 0, G_OPTION_ARG_INT, &migration_port,
      "Migration listener port on the --listen IP (default 7402, 0 = any)",
      "PORT" },
    { "metrics-listen", 0, 0, G_OPTION_ARG_STRING, &metrics_listen,
      "Serve Prometheus metrics on /metrics at this address", "ADDR:PORT" },
    { "metrics-tls", 0, 0, G_OPTION_ARG_NONE, &metrics_tls,
      "Serve the metrics over HTTPS with the agent's certificate", NULL },
    { "backup-repo", 0, 0, G_OPTION_ARG_STRING_ARRAY, &backup_repos,
      "A backup repository calls may name (repeatable)", "NAME=PATH" },
    { "backup-repo-root", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &backup_repo_roots,
      "A directory under which the scheduler may attach backup repositories "
      "(repeatable)",
      "DIR" },
    { "print-authz", 0, 0, G_OPTION_ARG_NONE, &print_authz,
      "Print which roles may call each method, and exit", NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) opts
      = g_option_context_new ("- Drover node agent");
  g_autoptr (GError) error = NULL;
  g_autoptr (GMainLoop) loop = NULL;
  g_autoptr (GMainContext) ctx = NULL;
  g_autoptr (Agent) agent = NULL;
  AgentConfig config = { 0 };

  setlocale (LC_ALL, "");
  proto_log_install ();
  g_option_context_add_main_entries (opts, entries, NULL);
  if (!g_option_context_parse (opts, &argc, &argv, &error))
    goto fail;
  if (version)
    {
      g_print ("%s %s\n", "drover-agent", DROVER_VERSION);
      return EXIT_SUCCESS;
    }
  if (print_authz)
    {
      g_autofree char *table = proto_authz_describe (
          DROVER_AGENT_SERVICE, proto_agent_authz, proto_agent_authz_len);

      g_print ("%s", table);
      return EXIT_SUCCESS;
    }
  if (!name || !listen || !scheduler || !uri || !accel || !data_dir)
    {
      g_printerr (
          "drover-agent: --name, --listen, --scheduler, --libvirt-uri, --accel "
          "and --data-dir are required\n");
      return EXIT_FAILURE;
    }
  if (!tls_dir == !insecure)
    {
      g_printerr (
          "drover-agent: give exactly one of --tls-dir DIR and --insecure\n");
      return EXIT_FAILURE;
    }
  if (metrics_tls && (!tls_dir || !metrics_listen))
    {
      g_printerr ("drover-agent: --metrics-tls needs --metrics-listen and "
                  "--tls-dir\n");
      return EXIT_FAILURE;
    }
  if (report_interval_ms < 0)
    {
      g_printerr ("drover-agent: --report-interval-ms must be positive\n");
      return EXIT_FAILURE;
    }
  if (migration_port < 0 || migration_port > 65535)
    {
      g_printerr ("drover-agent: --migration-port must be 0-65535\n");
      return EXIT_FAILURE;
    }
  if (!agent_accel_parse (accel, &config.accel, &error)
      || config.accel == AGENT_ACCEL_TEST)
    {
      g_printerr ("drover-agent: --accel must be kvm, tcg or auto\n");
      return EXIT_FAILURE;
    }
  config.name = name;
  config.listen = listen;
  config.scheduler = scheduler;
  config.libvirt_uri = uri;
  config.data_dir = data_dir;
  config.image_dir = image_dir;
  config.tls_dir = tls_dir;
  config.insecure = insecure;
  config.report_interval_ms = report_interval_ms;
  config.migration_port = (guint16)migration_port;
  config.metrics_listen = metrics_listen;
  config.metrics_tls = metrics_tls;
  config.backup_repos = backup_repos;
  config.backup_repo_roots = backup_repo_roots;

  proto_init ();
  /* libvirt's event thread iterates the global default context; the
   * agent runs on its own. */
  ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);
  loop = g_main_loop_new (ctx, FALSE);
  add_signal (ctx, SIGINT, on_signal, loop);
  add_signal (ctx, SIGTERM, on_signal, loop);
  agent = agent_new (&config, ctx, &error);
  if (!agent)
    goto fail;
  add_signal (ctx, SIGHUP, on_reload, agent);
  if (!agent_start (agent, &error))
    goto fail;
  g_main_loop_run (loop);
  g_message ("stopping");
  agent_stop (agent);
  return EXIT_SUCCESS;

fail:
  g_printerr ("drover-agent: %s\n", error->message);
  return EXIT_FAILURE;
}
