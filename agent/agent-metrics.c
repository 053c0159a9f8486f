/* AgentMetrics: the agent's Prometheus series, fed from what the agent
 * learns anyway: the reporter's collection (host and per-VM figures, one
 * libvirt poll per report interval) and the source side's migration
 * progress. A scrape renders the registry and never calls libvirt, so it
 * answers at once even while a migration or a shutdown holds a domain's
 * job lock.
 *
 * libvirt's figures are cumulative (CPU time, block and interface bytes):
 * they become counters by adding what grew since the previous poll. A
 * figure that went down (the guest's QEMU restarted) is a counter reset:
 * the series starts again from the new figure, which Prometheus's rate()
 * takes as a reset.
 */
#include "agent-private.h"

#include <string.h>

#include "proto-http.h"

/* What the previous poll said of one VM (counters and its state series). */
typedef struct
{
  double cpu_s, rd, wr, rx, tx;
  gboolean has_disk, has_net;
  char *state;   /* the state label of its drover_vm_state series */
  gboolean seen; /* in the latest poll */
} VmSeen;

/* What the previous progress sample of one migration said. */
typedef struct
{
  guint64 wire, payload;
} MigSeen;

struct _AgentMetrics
{
  ProtoMetrics *registry;
  char *host;

  /* Families: declared at new, immutable. */
  ProtoMetric *vm_cpu, *vm_rss, *vm_mem, *vm_vcpus, *vm_rd, *vm_wr, *vm_rx,
      *vm_tx, *vm_state, *vm_dirty;
  ProtoMetric *host_images, *host_image_bytes; /* issue 13 */
  ProtoMetric *host_cpus, *host_mem_total, *host_mem_free, *host_data_free,
      *host_vms;
  ProtoMetric *mig_remaining, *mig_processed, *mig_dirty, *mig_iteration,
      *mig_throttle, *mig_downtime, *mig_total, *mig_wire, *mig_payload,
      *mig_rung;
  ProtoMetric *bk_total, *bk_read, *bk_new;
  ProtoMetric *repo_bad, *repo_freed;

  GMutex lock;      /* guards vms and migs (updates come from threads) */
  GHashTable *vms;  /* VM name -> VmSeen */
  GHashTable *migs; /* VM name -> MigSeen, while a migration runs */

  ProtoHttp *http; /* the agent's main context: listen to stop */
};

static void
vm_seen_free (gpointer data)
{
  VmSeen *v = data;

  g_free (v->state);
  g_free (v);
}

static const char *const vm_labels[] = { "vm", "host", NULL };
static const char *const vm_state_labels[] = { "vm", "host", "state", NULL };
static const char *const host_labels[] = { "host", NULL };
static const char *const rung_labels[] = { "host", "rung", NULL };
static const char *const result_labels[] = { "host", "result", NULL };
static const char *const op_result_labels[] = { "host", "op", "result", NULL };
static const char *const repo_labels[] = { "host", "repo", NULL };

static ProtoMetric *
declare (AgentMetrics *m, const char *name, const char *help,
         ProtoMetricType type, const char *const *labels)
{
  return proto_metrics_declare (m->registry, name, help, type, labels, NULL, 0);
}

AgentMetrics *
agent_metrics_new (const char *host)
{
  AgentMetrics *m = g_new0 (AgentMetrics, 1);
  const ProtoMetricType C = PROTO_METRIC_COUNTER, G = PROTO_METRIC_GAUGE;

  m->registry = proto_metrics_new ();
  m->host = g_strdup (host);
  g_mutex_init (&m->lock);
  m->vms
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, vm_seen_free);
  m->migs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  m->vm_cpu = declare (m, "drover_vm_cpu_usage_seconds_total",
                       "CPU time the VM has used", C, vm_labels);
  m->vm_rss
      = declare (m, "drover_vm_memory_resident_bytes",
                 "Resident memory of the VM's QEMU process", G, vm_labels);
  m->vm_mem = declare (m, "drover_vm_memory_configured_bytes",
                       "Memory the VM is configured with", G, vm_labels);
  m->vm_vcpus
      = declare (m, "drover_vm_vcpus", "Virtual CPUs of the VM", G, vm_labels);
  m->vm_rd = declare (m, "drover_vm_storage_read_traffic_bytes_total",
                      "Bytes the VM read from its disks", C, vm_labels);
  m->vm_wr = declare (m, "drover_vm_storage_write_traffic_bytes_total",
                      "Bytes the VM wrote to its disks", C, vm_labels);
  m->vm_rx = declare (m, "drover_vm_network_receive_bytes_total",
                      "Bytes the VM's interfaces received", C, vm_labels);
  m->vm_tx = declare (m, "drover_vm_network_transmit_bytes_total",
                      "Bytes the VM's interfaces transmitted", C, vm_labels);
  m->vm_dirty = declare (m, "drover_vm_dirty_memory_rate_bytes",
                         "Bytes per second the guest dirties, as the agent "
                         "last measured (absent before a measurement)",
                         G, vm_labels);
  m->vm_state = declare (m, "drover_vm_state",
                         "1 for the VM's state as libvirt last reported it "
                         "(one series per VM)",
                         G, vm_state_labels);
  m->host_cpus
      = declare (m, "drover_host_cpus", "CPUs of the host", G, host_labels);
  m->host_mem_total = declare (m, "drover_host_memory_total_bytes",
                               "Memory of the host", G, host_labels);
  m->host_mem_free = declare (m, "drover_host_memory_free_bytes",
                              "Free memory of the host", G, host_labels);
  m->host_data_free
      = declare (m, "drover_host_data_free_bytes",
                 "Free space of the filesystem of the agent's data directory",
                 G, host_labels);
  m->host_vms = declare (m, "drover_host_vms", "Drover VMs on the host", G,
                         host_labels);
  m->host_images
      = declare (m, "drover_host_images",
                 "Disk images in the agent's image directory", G, host_labels);
  m->host_image_bytes
      = declare (m, "drover_host_image_bytes",
                 "Bytes of the disk images in the agent's image directory", G,
                 host_labels);
  m->mig_remaining = declare (
      m, "drover_migration_data_remaining_bytes",
      "Memory the running migration of the VM has still to send", G, vm_labels);
  m->mig_processed = declare (
      m, "drover_migration_data_processed_bytes",
      "Memory the running migration of the VM has sent so far", G, vm_labels);
  m->mig_dirty = declare (m, "drover_migration_dirty_memory_rate_bytes",
                          "Bytes per second the guest dirties during its "
                          "running migration",
                          G, vm_labels);
  m->mig_iteration
      = declare (m, "drover_migration_iteration",
                 "Pre-copy round of the VM's running migration", G, vm_labels);
  m->mig_throttle = declare (m, "drover_migration_vcpu_throttle_percent",
                             "vCPU throttle QEMU applies to the VM during its "
                             "running migration (the ladder's throttle rung)",
                             G, vm_labels);
  m->mig_downtime = proto_metrics_declare (
      m->registry, "drover_migration_downtime_seconds",
      "Downtime of completed migrations leaving this host, as QEMU measured "
      "it",
      PROTO_METRIC_HISTOGRAM, host_labels, proto_metrics_downtime_buckets,
      proto_metrics_downtime_buckets_len);
  m->mig_total = declare (m, "drover_migrations_total",
                          "Migrations leaving this host that ended, by result "
                          "(completed, aborted, failed)",
                          C, result_labels);
  m->mig_rung
      = declare (m, "drover_migration_final_rung_total",
                 "Migrations leaving this host that ended, by the "
                 "last rung of the ladder they climbed (precopy, "
                 "downtime, throttle, postcopy, postcopy-recover, forced, "
                 "abort)",
                 C, rung_labels);
  m->mig_wire = declare (m, "drover_migration_channel_wire_bytes_total",
                         "Bytes the migration channels of this host put on "
                         "the wire",
                         C, host_labels);
  m->mig_payload = declare (m, "drover_migration_channel_payload_bytes_total",
                            "Bytes QEMU and libvirt gave the migration "
                            "channels of this host (before compression)",
                            C, host_labels);
  m->bk_total = declare (m, "drover_backup_operations_total",
                         "Backups (op full, incremental) and restores (op "
                         "restore) on this host that ended, by result (done, "
                         "failed)",
                         C, op_result_labels);
  m->bk_read = declare (m, "drover_backup_read_bytes_total",
                        "Bytes backups read from VM disks on this host (and "
                        "restores wrote)",
                        C, host_labels);
  m->bk_new = declare (m, "drover_backup_new_bytes_total",
                       "Bytes backups on this host added to repositories", C,
                       host_labels);
  m->repo_bad = declare (m, "drover_backup_verify_bad_chunks",
                         "Missing or corrupt chunks (and unreadable "
                         "manifests) the last verify on this host found in "
                         "the repository",
                         G, repo_labels);
  m->repo_freed = declare (m, "drover_backup_gc_freed_bytes_total",
                           "Bytes gc on this host freed in the repository", C,
                           repo_labels);
  return m;
}

void
agent_metrics_free (AgentMetrics *m)
{
  if (m == NULL)
    return;
  g_clear_pointer (&m->http, proto_http_free);
  g_hash_table_destroy (m->vms);
  g_hash_table_destroy (m->migs);
  g_mutex_clear (&m->lock);
  proto_metrics_free (m->registry);
  g_free (m->host);
  g_free (m);
}

ProtoMetrics *
agent_metrics_registry (AgentMetrics *m)
{
  return m->registry;
}

gboolean
agent_metrics_listen (AgentMetrics *m, const char *addr, const ProtoTls *tls,
                      GError **error)
{
  g_autoptr (ProtoHttp) http = proto_http_new ();

  g_return_val_if_fail (m->http == NULL, FALSE);
  proto_http_serve_metrics (http, "/metrics", m->registry);
  if (!proto_http_listen (http, addr, tls, error))
    {
      g_prefix_error (error, "metrics: ");
      return FALSE;
    }
  m->http = g_steal_pointer (&http);
  return TRUE;
}

int
agent_metrics_get_port (AgentMetrics *m)
{
  return proto_http_get_port (m->http);
}

void
agent_metrics_stop (AgentMetrics *m)
{
  g_clear_pointer (&m->http, proto_http_free);
}

/* --- the reporter's polls ------------------------------------------------ */

/* Counter METRIC of LABELS follows the cumulative figure NOW, which was
 * *LAST at the previous poll (FIRST: there was none). */
static void
follow (ProtoMetric *metric, const char *const *labels, double *last,
        double now, gboolean first)
{
  if (first || now < *last)
    {
      /* New series, or a reset: start again from NOW. */
      proto_metric_remove (metric, labels);
      proto_metric_add (metric, labels, now);
    }
  else if (now > *last)
    proto_metric_add (metric, labels, now - *last);
  *last = now;
}

static void
remove_vm_series (AgentMetrics *m, const char *name, const VmSeen *v)
{
  const char *const labels[] = { name, m->host, NULL };
  ProtoMetric *const per_vm[]
      = { m->vm_cpu, m->vm_rss, m->vm_mem, m->vm_vcpus, m->vm_rd,
          m->vm_wr,  m->vm_rx,  m->vm_tx,  m->vm_dirty };

  for (gsize i = 0; i < G_N_ELEMENTS (per_vm); i++)
    proto_metric_remove (per_vm[i], labels);
  if (v->state != NULL)
    proto_metric_remove (m->vm_state,
                         (const char *const[]){ name, m->host, v->state });
}

static void
update_vm (AgentMetrics *m, const Drover__V1__VmStatus *st)
{
  const char *const labels[] = { st->name, m->host, NULL };
  const char *state = st->state && *st->state ? st->state : PROTO_VM_UNKNOWN;
  VmSeen *v = g_hash_table_lookup (m->vms, st->name);
  gboolean first = v == NULL;
  guint64 configured
      = st->spec && st->spec->memory ? st->spec->memory : st->memory;

  if (first)
    {
      v = g_new0 (VmSeen, 1);
      g_hash_table_insert (m->vms, g_strdup (st->name), v);
    }
  v->seen = TRUE;
  follow (m->vm_cpu, labels, &v->cpu_s, (double)st->cpu_time_ns / 1e9, first);
  /* Disks and interfaces come and go with libvirt's answer: a VM without
   * them has no such series. */
  if (st->has_disk)
    {
      follow (m->vm_rd, labels, &v->rd, (double)st->disk_rd_bytes,
              !v->has_disk);
      follow (m->vm_wr, labels, &v->wr, (double)st->disk_wr_bytes,
              !v->has_disk);
    }
  else if (v->has_disk)
    {
      proto_metric_remove (m->vm_rd, labels);
      proto_metric_remove (m->vm_wr, labels);
    }
  v->has_disk = st->has_disk;
  if (st->has_net)
    {
      follow (m->vm_rx, labels, &v->rx, (double)st->net_rx_bytes, !v->has_net);
      follow (m->vm_tx, labels, &v->tx, (double)st->net_tx_bytes, !v->has_net);
    }
  else if (v->has_net)
    {
      proto_metric_remove (m->vm_rx, labels);
      proto_metric_remove (m->vm_tx, labels);
    }
  v->has_net = st->has_net;
  if (st->memory_rss > 0)
    proto_metric_set (m->vm_rss, labels, (double)st->memory_rss);
  else
    proto_metric_remove (m->vm_rss, labels);
  if (st->dirty_rate_measured)
    proto_metric_set (m->vm_dirty, labels, st->dirty_rate_bytes_per_second);
  else
    proto_metric_remove (m->vm_dirty, labels);
  proto_metric_set (m->vm_mem, labels, (double)configured);
  proto_metric_set (m->vm_vcpus, labels, st->vcpus);
  /* One series per VM: the old state's goes when the state changes. */
  if (v->state != NULL && strcmp (v->state, state) != 0)
    proto_metric_remove (m->vm_state,
                         (const char *const[]){ st->name, m->host, v->state });
  proto_metric_set (m->vm_state,
                    (const char *const[]){ st->name, m->host, state }, 1);
  g_free (v->state);
  v->state = g_strdup (state);
}

static gboolean
vm_gone (gpointer key, gpointer value, gpointer data)
{
  VmSeen *v = value;

  if (v->seen)
    {
      v->seen = FALSE;
      return FALSE;
    }
  remove_vm_series (data, key, v);
  return TRUE;
}

void
agent_metrics_update (AgentMetrics *m, const Drover__V1__HostInfo *host,
                      Drover__V1__VmStatus *const *vms, gsize n_vms)
{
  const char *const labels[] = { m->host, NULL };

  g_mutex_lock (&m->lock);
  if (host != NULL)
    {
      proto_metric_set (m->host_cpus, labels, host->cpus);
      proto_metric_set (m->host_mem_total, labels, (double)host->memory_total);
      proto_metric_set (m->host_mem_free, labels, (double)host->memory_free);
      proto_metric_set (m->host_data_free, labels, (double)host->data_free);
      {
        guint64 bytes = 0;

        for (gsize i = 0; i < host->n_images; i++)
          bytes += host->images[i]->size;
        proto_metric_set (m->host_images, labels, (double)host->n_images);
        proto_metric_set (m->host_image_bytes, labels, (double)bytes);
      }
    }
  proto_metric_set (m->host_vms, labels, (double)n_vms);
  for (gsize i = 0; i < n_vms; i++)
    if (vms[i]->name != NULL && *vms[i]->name)
      update_vm (m, vms[i]);
  /* The series of VMs that left go with them. */
  g_hash_table_foreach_remove (m->vms, vm_gone, m);
  g_mutex_unlock (&m->lock);
}

/* --- migrations leaving this host ---------------------------------------- */

void
agent_metrics_migration (AgentMetrics *m, const char *vm, const MigProgress *p)
{
  const char *const labels[] = { vm, m->host, NULL };
  const char *const host[] = { m->host, NULL };
  MigSeen *seen;

  g_mutex_lock (&m->lock);
  seen = g_hash_table_lookup (m->migs, vm);
  if (seen == NULL)
    {
      seen = g_new0 (MigSeen, 1);
      g_hash_table_insert (m->migs, g_strdup (vm), seen);
    }
  /* The channel's counters are per migration: what grew since the last
   * sample goes to the host's totals. */
  if (p->wire_bytes > seen->wire)
    proto_metric_add (m->mig_wire, host, (double)(p->wire_bytes - seen->wire));
  if (p->payload_bytes > seen->payload)
    proto_metric_add (m->mig_payload, host,
                      (double)(p->payload_bytes - seen->payload));
  seen->wire = MAX (seen->wire, p->wire_bytes);
  seen->payload = MAX (seen->payload, p->payload_bytes);
  if (!p->final)
    {
      proto_metric_set (m->mig_remaining, labels, (double)p->memory_remaining);
      proto_metric_set (m->mig_processed, labels, (double)p->memory_processed);
      proto_metric_set (m->mig_dirty, labels, p->dirty_rate);
      proto_metric_set (m->mig_iteration, labels, p->iteration);
      proto_metric_set (m->mig_throttle, labels, p->throttle_pct);
      g_mutex_unlock (&m->lock);
      return;
    }
  proto_metric_remove (m->mig_remaining, labels);
  proto_metric_remove (m->mig_processed, labels);
  proto_metric_remove (m->mig_dirty, labels);
  proto_metric_remove (m->mig_iteration, labels);
  proto_metric_remove (m->mig_throttle, labels);
  g_hash_table_remove (m->migs, vm);
  if (p->phase != NULL && proto_mig_phase_is_final (p->phase))
    {
      proto_metric_add (m->mig_total,
                        (const char *const[]){ m->host, p->phase }, 1);
      if (p->rung != NULL)
        proto_metric_add (m->mig_rung,
                          (const char *const[]){ m->host, p->rung }, 1);
    }
  if (g_strcmp0 (p->phase, PROTO_MIG_COMPLETED) == 0)
    proto_metric_observe (m->mig_downtime, host, p->downtime_ms / 1000.0);
  g_mutex_unlock (&m->lock);
}

void
agent_metrics_backup (AgentMetrics *m, const char *op, gboolean ok,
                      guint64 bytes_read, guint64 bytes_new)
{
  const char *const labels[] = { m->host, op, ok ? "done" : "failed", NULL };
  const char *const host[] = { m->host, NULL };

  proto_metric_add (m->bk_total, labels, 1);
  proto_metric_add (m->bk_read, host, (double)bytes_read);
  proto_metric_add (m->bk_new, host, (double)bytes_new);
}

void
agent_metrics_repo_verify (AgentMetrics *m, const char *repo, guint bad)
{
  const char *const labels[] = { m->host, repo, NULL };

  proto_metric_set (m->repo_bad, labels, (double)bad);
}

void
agent_metrics_repo_gc (AgentMetrics *m, const char *repo, guint64 freed)
{
  const char *const labels[] = { m->host, repo, NULL };

  proto_metric_add (m->repo_freed, labels, (double)freed);
}
