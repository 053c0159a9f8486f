/* The Agent: configuration, data directory, and wiring of the libvirt
 * connection, AgentService and the reporter. */
#include "agent-private.h"
#include "agent-disk-images.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <libxml/parser.h>
#include <stdlib.h>

static void
config_copy (AgentConfig *dst, const AgentConfig *src)
{
  *dst = *src;
  dst->name = g_strdup (src->name);
  dst->listen = g_strdup (src->listen);
  dst->scheduler = g_strdup (src->scheduler);
  dst->libvirt_uri = g_strdup (src->libvirt_uri);
  dst->data_dir = g_strdup (src->data_dir);
  dst->image_dir = g_strdup (src->image_dir);
  dst->tls_dir = g_strdup (src->tls_dir);
  dst->metrics_listen = g_strdup (src->metrics_listen);
  dst->backup_repos = g_strdupv (src->backup_repos);
  dst->backup_repo_roots = g_strdupv (src->backup_repo_roots);
}

static void
config_clear (AgentConfig *config)
{
  g_free (config->name);
  g_free (config->listen);
  g_free (config->scheduler);
  g_free (config->libvirt_uri);
  g_free (config->data_dir);
  g_free (config->image_dir);
  g_free (config->tls_dir);
  g_free (config->metrics_listen);
  g_strfreev (config->backup_repos);
  g_strfreev (config->backup_repo_roots);
}

/* Makes directory PATH for root and QEMU's group only (QEMU must reach
 * the disks and console logs inside; nobody else may read them). */
static gboolean
make_dir (Agent *agent, const char *path, GError **error)
{
  if (g_mkdir_with_parents (path, 0750) < 0)
    {
      int saved = errno;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot create directory %s: %s", path, g_strerror (saved));
      return FALSE;
    }
  return agent_protect (agent, path, 0750, error);
}

/* The image directory, made when it is the default, links resolved. */
static gboolean
find_image_dir (Agent *agent, GError **error)
{
  g_autofree char *dir
      = agent->config.image_dir
            ? g_strdup (agent->config.image_dir)
            : g_build_filename (agent->config.data_dir, "images", NULL);
  char *real;

  if (!agent->config.image_dir && !make_dir (agent, dir, error))
    return FALSE;
  real = realpath (dir, NULL);
  if (!real || !g_file_test (real, G_FILE_TEST_IS_DIR))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "image directory %s is not a directory", dir);
      free (real);
      return FALSE;
    }
  agent->image_dir = g_strdup (real);
  free (real);
  return TRUE;
}

static void
on_lifecycle (const char *name, int event, int detail, gpointer user_data)
{
  Agent *agent = user_data;

  drover_debug (name, NULL, NULL, "lifecycle event %d/%d", event, detail);
  agent_reporter_kick (agent);
}

/* The first time libvirt is there: who QEMU runs as, and the disks an
 * earlier run left (agent-disks.c). */
static gpointer
reclaim_thread (gpointer data)
{
  Agent *agent = data;
  g_autoptr (virConnect) conn = agent_libvirt_get (agent->lv, NULL);

  if (conn)
    {
      agent_qemu_ids_update (agent, conn);
      /* Snapshot operations first: they say which images are in use. */
      agent_snapshot_reclaim (agent, conn);
      agent_backup_reclaim (agent, conn);
      agent_disks_reclaim (agent, conn);
      agent_clone_reclaim (agent, conn);
    }
  agent_disk_images_reclaim (agent, conn);
  agent_unref (agent);
  return NULL;
}

static void
on_connected (gpointer user_data)
{
  Agent *agent = user_data;

  agent_reporter_kick (agent);
  if (!g_atomic_int_get (&agent->reclaimed))
    g_thread_unref (
        g_thread_new ("agent-reclaim", reclaim_thread, agent_ref (agent)));
}

Agent *
agent_new (const AgentConfig *config, GMainContext *ctx, GError **error)
{
  g_autoptr (Agent) agent = NULL;
  g_autoptr (GError) local = NULL;

  if (!proto_name_validate ("host", config->name, &local))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  if (!config->listen || !config->libvirt_uri || !config->data_dir)
    {
      g_set_error_literal (
          error, AGENT_ERROR, AGENT_ERROR_INVALID,
          "listen address, libvirt URI and data directory are required");
      return NULL;
    }
  if (!config->insecure == !config->tls_dir)
    {
      g_set_error_literal (
          error, AGENT_ERROR, AGENT_ERROR_INVALID,
          "exactly one of a TLS directory and insecure mode is required");
      return NULL;
    }
  if (config->image_dir && !g_path_is_absolute (config->image_dir))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "image directory %s is not an absolute path",
                   config->image_dir);
      return NULL;
    }
  if (config->metrics_tls && !config->tls_dir)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "metrics over TLS need a TLS directory");
      return NULL;
    }
  if (!g_path_is_absolute (config->data_dir))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "data directory %s is not an absolute path",
                   config->data_dir);
      return NULL;
    }
  if (!agent_backup_repos_check (config->backup_repos, error))
    return NULL;

  if (!ctx)
    ctx = g_main_context_get_thread_default ();
  if (!ctx || ctx == g_main_context_default ())
    {
      g_set_error_literal (
          error, AGENT_ERROR, AGENT_ERROR_INVALID,
          "the agent needs a GMainContext of its own, not the global default");
      return NULL;
    }

  xmlInitParser ();
  agent = g_new0 (Agent, 1);
  agent->ref_count = 1;
  config_copy (&agent->config, config);
  agent->accel = agent_accel_resolve (config->accel);
  agent->ctx = g_main_context_ref (ctx);
  agent->disk_dir = g_build_filename (config->data_dir, "disks", NULL);
  agent->console_dir = g_build_filename (config->data_dir, "console", NULL);
  agent->stats = agent_stats_new ();
  agent->metrics = agent_metrics_new (config->name);
  agent->repos = agent_repos_new (config->backup_repos,
                                  config->backup_repo_roots, error);
  if (!agent->repos)
    {
      agent_unref (agent);
      return NULL;
    }
  agent->busy = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_mutex_init (&agent->lock);
  g_mutex_init (&agent->tls_lock);
  agent->qemu_uid = agent->qemu_gid = -1;
  /* From qemu.conf until libvirt says (on_connected). */
  agent_qemu_ids_update (agent, NULL);

  if (config->accel == AGENT_ACCEL_KVM && !agent_kvm_usable ())
    g_message ("--accel kvm given but /dev/kvm is not usable; guests will fail "
               "to start");
  if (!agent_fault_compiled () && g_getenv ("DROVER_FAULTS"))
    g_message ("DROVER_FAULTS is ignored: this agent has no fault points "
               "(they exist in builds with -Dfaults=true only)");
  if (!make_dir (agent, config->data_dir, error)
      || !make_dir (agent, agent->disk_dir, error)
      || !make_dir (agent, agent->console_dir, error)
      || !find_image_dir (agent, error) || !agent_tls_load (agent, error))
    return NULL;
  return g_steal_pointer (&agent);
}

gboolean
agent_start (Agent *agent, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (AgentTls) tls = agent_tls_get (agent);

  agent->lv = agent_libvirt_new (agent->config.libvirt_uri, agent->ctx,
                                 on_lifecycle, on_connected, agent);
  /* A libvirtd that is not up yet is retried in the background. */
  if (!agent_libvirt_connect (agent->lv, &local))
    g_message ("%s; retrying", local->message);

  if (!agent_migration_start (agent, error))
    return FALSE;
  agent->server = proto_server_new (agent->ctx);
  proto_server_set_metrics (agent->server,
                            agent_metrics_registry (agent->metrics));
  agent->service = agent_service_register (agent, agent->server);
  if (!proto_server_start (agent->server, agent->config.listen,
                           tls ? tls->tls : NULL, error))
    {
      g_prefix_error (
          error, "cannot serve AgentService on %s: ", agent->config.listen);
      return FALSE;
    }
  drover_message (NULL, NULL, agent->config.name,
                  "agent serving on %s, port %d (%s, accel %s, libvirt %s)",
                  agent->config.listen, agent_get_port (agent),
                  tls ? "mutual TLS" : "insecure",
                  agent_accel_to_string (agent->accel),
                  agent->config.libvirt_uri);
  if (agent->config.metrics_listen)
    {
      if (!agent_metrics_listen (
              agent->metrics, agent->config.metrics_listen,
              agent->config.metrics_tls && tls ? tls->tls : NULL, error))
        return FALSE;
      drover_message (
          NULL, NULL, agent->config.name, "metrics on %s, port %d (%s)",
          agent->config.metrics_listen, agent_metrics_get_port (agent->metrics),
          agent->config.metrics_tls ? "HTTPS" : "HTTP");
    }
  if (agent->config.scheduler)
    agent_reporter_start (agent);
  return TRUE;
}

int
agent_get_port (Agent *agent)
{
  return agent->server ? proto_server_get_port (agent->server) : -1;
}

int
agent_get_metrics_port (Agent *agent)
{
  return agent_metrics_get_port (agent->metrics);
}

void
agent_stop (Agent *agent)
{
  if (agent->stopped)
    return;
  agent->stopped = TRUE;
  agent_reporter_stop (agent);
  agent_metrics_stop (agent->metrics);
  if (agent->server)
    proto_server_stop (agent->server);
}

Agent *
agent_ref (Agent *agent)
{
  g_atomic_int_inc (&agent->ref_count);
  return agent;
}

void
agent_unref (Agent *agent)
{
  if (!agent || !g_atomic_int_dec_and_test (&agent->ref_count))
    return;
  agent_stop (agent);
  /* Workers hold references, so none can be using the connection now. */
  agent_migration_stop (agent);
  g_clear_pointer (&agent->lv, agent_libvirt_free);
  g_clear_pointer (&agent->server, proto_server_free);
  g_clear_pointer (&agent->service, agent_service_free);
  g_clear_pointer (&agent->sched, proto_client_free);
  agent_tls_clear (agent);
  g_mutex_clear (&agent->tls_lock);
  agent_stats_free (agent->stats);
  /* After the server, whose counters live in its registry. */
  agent_metrics_free (agent->metrics);
  g_hash_table_destroy (agent->busy);
  g_clear_pointer (&agent->repos, agent_repos_free);
  g_mutex_clear (&agent->lock);
  g_main_context_unref (agent->ctx);
  g_free (agent->disk_dir);
  g_free (agent->console_dir);
  g_free (agent->image_dir);
  g_free (agent->last_problem);
  config_clear (&agent->config);
  g_free (agent);
}
