/* AgentMetrics: what the agent's polls and migration progress turn into
 * (series, their labels and values, counters from cumulative figures,
 * series of VMs that left and of migrations that ended removed), checked
 * on the rendered text. */
#include "agent-private.h"

#include <string.h>

/* The rendered registry of M contains LINE as a whole line. */
static gboolean
has_line (AgentMetrics *m, const char *line)
{
  g_autofree char *text = proto_metrics_render (agent_metrics_registry (m));
  g_autofree char *needle = g_strconcat ("\n", line, "\n", NULL);

  return strstr (text, needle) != NULL;
}

/* ... or any line starting with PREFIX. */
static gboolean
has_prefix (AgentMetrics *m, const char *prefix)
{
  g_autofree char *text = proto_metrics_render (agent_metrics_registry (m));
  g_autofree char *needle = g_strconcat ("\n", prefix, NULL);

  return strstr (text, needle) != NULL;
}

static Drover__V1__VmStatus *
vm_status (const char *name, const char *state, guint64 cpu_ns)
{
  Drover__V1__VmStatus *st = g_new0 (Drover__V1__VmStatus, 1);
  Drover__V1__VmSpec *spec = g_new0 (Drover__V1__VmSpec, 1);

  drover__v1__vm_status__init (st);
  drover__v1__vm_spec__init (spec);
  spec->name = g_strdup (name);
  spec->vcpus = 2;
  spec->memory = 512 * 1024 * 1024;
  st->spec = spec;
  st->name = g_strdup (name);
  st->state = g_strdup (state);
  st->vcpus = 2;
  st->memory = 256 * 1024 * 1024; /* ballooned down: not what is set */
  st->memory_rss = 100 * 1024 * 1024;
  st->cpu_time_ns = cpu_ns;
  return st;
}

static void
status_free (Drover__V1__VmStatus *st)
{
  g_free (st->spec->name);
  g_free (st->spec);
  g_free (st->name);
  g_free (st->state);
  g_free (st);
}

static void
test_host_and_vms (void)
{
  g_autoptr (AgentMetrics) m = agent_metrics_new ("host1");
  Drover__V1__HostInfo host = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__VmStatus *vms[2];

  host.name = (char *)"host1";
  host.cpus = 8;
  host.memory_total = 16ull << 30;
  host.memory_free = 1ull << 30;
  host.data_free = 5000;
  vms[0] = vm_status ("web1", PROTO_VM_RUNNING, 1500000000);
  vms[1] = vm_status ("db1", PROTO_VM_PAUSED, 0);
  vms[1]->has_disk = TRUE;
  vms[1]->disk_rd_bytes = 4096;
  vms[1]->disk_wr_bytes = 512;
  vms[1]->has_net = TRUE;
  vms[1]->net_rx_bytes = 10;
  vms[1]->net_tx_bytes = 20;
  agent_metrics_update (m, &host, vms, 2);

  g_assert_true (has_line (m, "drover_host_cpus{host=\"host1\"} 8"));
  g_assert_true (has_line (
      m, "drover_host_memory_total_bytes{host=\"host1\"} 17179869184"));
  g_assert_true (
      has_line (m, "drover_host_memory_free_bytes{host=\"host1\"} 1073741824"));
  g_assert_true (
      has_line (m, "drover_host_data_free_bytes{host=\"host1\"} 5000"));
  g_assert_true (has_line (m, "drover_host_vms{host=\"host1\"} 2"));
  g_assert_true (has_line (
      m, "drover_vm_cpu_usage_seconds_total{vm=\"web1\",host=\"host1\"} 1.5"));
  g_assert_true (has_line (
      m,
      "drover_vm_memory_resident_bytes{vm=\"web1\",host=\"host1\"} 104857600"));
  /* Configured memory is the spec's, not the balloon's. */
  g_assert_true (has_line (m, "drover_vm_memory_configured_bytes{vm=\"web1\","
                              "host=\"host1\"} 536870912"));
  g_assert_true (has_line (m, "drover_vm_vcpus{vm=\"web1\",host=\"host1\"} 2"));
  g_assert_true (has_line (
      m, "drover_vm_state{vm=\"web1\",host=\"host1\",state=\"running\"} 1"));
  g_assert_true (has_line (
      m, "drover_vm_state{vm=\"db1\",host=\"host1\",state=\"paused\"} 1"));
  g_assert_true (has_line (
      m,
      "drover_vm_storage_read_traffic_bytes_total{vm=\"db1\",host=\"host1\"} "
      "4096"));
  g_assert_true (has_line (
      m,
      "drover_vm_storage_write_traffic_bytes_total{vm=\"db1\",host=\"host1\"} "
      "512"));
  g_assert_true (has_line (
      m,
      "drover_vm_network_receive_bytes_total{vm=\"db1\",host=\"host1\"} 10"));
  g_assert_true (has_line (
      m,
      "drover_vm_network_transmit_bytes_total{vm=\"db1\",host=\"host1\"} 20"));
  /* A VM without a disk or an interface has no such series. */
  g_assert_false (
      has_prefix (m, "drover_vm_storage_read_traffic_bytes_total{vm=\"web1\""));
  g_assert_false (
      has_prefix (m, "drover_vm_network_receive_bytes_total{vm=\"web1\""));
  status_free (vms[0]);
  status_free (vms[1]);
}

/* Cumulative figures become counters: growth adds, a drop (QEMU
 * restarted) starts the series again from the new figure. */
static void
test_counters (void)
{
  g_autoptr (AgentMetrics) m = agent_metrics_new ("h");
  Drover__V1__VmStatus *vm = vm_status ("a", PROTO_VM_RUNNING, 2000000000);

  agent_metrics_update (m, NULL, &vm, 1);
  g_assert_true (
      has_line (m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 2"));
  vm->cpu_time_ns = 5000000000;
  agent_metrics_update (m, NULL, &vm, 1);
  g_assert_true (
      has_line (m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 5"));
  vm->cpu_time_ns = 1000000000;
  agent_metrics_update (m, NULL, &vm, 1);
  g_assert_true (
      has_line (m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 1"));
  vm->cpu_time_ns = 1250000000;
  agent_metrics_update (m, NULL, &vm, 1);
  g_assert_true (has_line (
      m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 1.25"));
  /* A disk that shows up later starts from its figure. */
  vm->has_disk = TRUE;
  vm->disk_rd_bytes = 100;
  agent_metrics_update (m, NULL, &vm, 1);
  g_assert_true (has_line (
      m,
      "drover_vm_storage_read_traffic_bytes_total{vm=\"a\",host=\"h\"} 100"));
  status_free (vm);
}

/* One series per VM for its state; a VM that left loses all its series. */
static void
test_state_and_leaving (void)
{
  g_autoptr (AgentMetrics) m = agent_metrics_new ("h");
  Drover__V1__VmStatus *vms[2] = { vm_status ("a", PROTO_VM_RUNNING, 1),
                                   vm_status ("b", PROTO_VM_RUNNING, 1) };

  vms[1]->has_net = TRUE;
  agent_metrics_update (m, NULL, vms, 2);
  g_free (vms[0]->state);
  vms[0]->state = g_strdup (PROTO_VM_SHUTOFF);
  agent_metrics_update (m, NULL, vms, 2);
  g_assert_true (
      has_line (m, "drover_vm_state{vm=\"a\",host=\"h\",state=\"shutoff\"} 1"));
  g_assert_false (
      has_prefix (m, "drover_vm_state{vm=\"a\",host=\"h\",state=\"running\"}"));

  /* b left (migrated away, deleted). */
  agent_metrics_update (m, NULL, vms, 1);
  g_assert_true (has_line (m, "drover_host_vms{host=\"h\"} 1"));
  g_assert_false (has_prefix (m, "drover_vm_state{vm=\"b\""));
  g_assert_false (has_prefix (m, "drover_vm_cpu_usage_seconds_total{vm=\"b\""));
  g_assert_false (has_prefix (m, "drover_vm_vcpus{vm=\"b\""));
  g_assert_false (
      has_prefix (m, "drover_vm_network_receive_bytes_total{vm=\"b\""));
  g_assert_true (has_prefix (m, "drover_vm_vcpus{vm=\"a\""));
  /* Back again: its counters start from its figures. */
  agent_metrics_update (m, NULL, vms, 2);
  g_assert_true (has_line (
      m, "drover_vm_network_receive_bytes_total{vm=\"b\",host=\"h\"} 0"));
  status_free (vms[0]);
  status_free (vms[1]);
}

static void
test_migration (void)
{
  g_autoptr (AgentMetrics) m = agent_metrics_new ("h");
  MigProgress p = { 0 };

  p.phase = PROTO_MIG_PRECOPY;
  p.memory_remaining = 1000;
  p.memory_processed = 24;
  p.dirty_rate = 8388608;
  p.iteration = 3;
  p.wire_bytes = 100;
  p.payload_bytes = 300;
  agent_metrics_migration (m, "web1", &p);
  g_assert_true (has_line (
      m, "drover_migration_data_remaining_bytes{vm=\"web1\",host=\"h\"} 1000"));
  g_assert_true (has_line (
      m, "drover_migration_data_processed_bytes{vm=\"web1\",host=\"h\"} 24"));
  g_assert_true (has_line (
      m, "drover_migration_dirty_memory_rate_bytes{vm=\"web1\",host=\"h\"} "
         "8388608"));
  g_assert_true (
      has_line (m, "drover_migration_iteration{vm=\"web1\",host=\"h\"} 3"));
  g_assert_true (has_line (
      m, "drover_migration_channel_wire_bytes_total{host=\"h\"} 100"));

  p.wire_bytes = 250;
  p.payload_bytes = 700;
  p.phase = PROTO_MIG_COMPLETED;
  p.downtime_ms = 42;
  p.final = TRUE;
  agent_metrics_migration (m, "web1", &p);
  g_assert_false (has_prefix (m, "drover_migration_data_remaining_bytes{"));
  g_assert_false (has_prefix (m, "drover_migration_iteration{"));
  g_assert_true (has_line (
      m, "drover_migration_channel_wire_bytes_total{host=\"h\"} 250"));
  g_assert_true (has_line (
      m, "drover_migration_channel_payload_bytes_total{host=\"h\"} 700"));
  g_assert_true (has_line (
      m, "drover_migrations_total{host=\"h\",result=\"completed\"} 1"));
  g_assert_true (has_line (
      m,
      "drover_migration_downtime_seconds_bucket{host=\"h\",le=\"0.025\"} 0"));
  g_assert_true (has_line (
      m, "drover_migration_downtime_seconds_bucket{host=\"h\",le=\"0.05\"} 1"));
  g_assert_true (
      has_line (m, "drover_migration_downtime_seconds_count{host=\"h\"} 1"));

  /* A second migration's channel bytes add to the host's totals; a failed
   * one counts as failed and has no downtime. */
  memset (&p, 0, sizeof p);
  p.phase = PROTO_MIG_FAILED;
  p.wire_bytes = 50;
  p.final = TRUE;
  agent_metrics_migration (m, "web1", &p);
  g_assert_true (has_line (
      m, "drover_migration_channel_wire_bytes_total{host=\"h\"} 300"));
  g_assert_true (
      has_line (m, "drover_migrations_total{host=\"h\",result=\"failed\"} 1"));
  g_assert_true (
      has_line (m, "drover_migration_downtime_seconds_count{host=\"h\"} 1"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent/metrics/host-and-vms", test_host_and_vms);
  g_test_add_func ("/agent/metrics/counters", test_counters);
  g_test_add_func ("/agent/metrics/state-and-leaving", test_state_and_leaving);
  g_test_add_func ("/agent/metrics/migration", test_migration);
  return g_test_run ();
}
