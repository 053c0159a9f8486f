/* AgentMetrics: what the agent's polls and migration progress turn into
 * (series, their labels and values, counters from cumulative figures,
 * series of VMs that left and of migrations that ended removed), checked
 * on the rendered text. */
#include "agent-private.h"
#include "test-support.h"

#include <string.h>

/* The rendered registry of M contains each line of the NULL-terminated
 * list as a whole line. */
static void G_GNUC_NULL_TERMINATED
assert_lines (AgentMetrics *m, ...)
{
  g_autofree char *text = proto_metrics_render (agent_metrics_registry (m));
  va_list lines;

  va_start (lines, m);
  test_assert_lines_valist (text, lines);
  va_end (lines);
}

/* ... or any line starting with PREFIX. */
static gboolean
has_prefix (AgentMetrics *m, const char *prefix)
{
  g_autofree char *text = proto_metrics_render (agent_metrics_registry (m));
  g_autofree char *needle = g_strconcat ("\n", prefix, NULL);

  return strstr (text, needle) != NULL;
}

/* No line of M's rendered registry starts with any prefix of the
 * NULL-terminated list: those series are gone, or never were. */
static void G_GNUC_NULL_TERMINATED
assert_no_series (AgentMetrics *m, ...)
{
  va_list prefixes;
  const char *prefix;

  va_start (prefixes, m);
  while ((prefix = va_arg (prefixes, const char *)) != NULL)
    g_assert_false (has_prefix (m, prefix));
  va_end (prefixes);
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

  assert_lines (
      m, "drover_host_cpus{host=\"host1\"} 8",
      "drover_host_memory_total_bytes{host=\"host1\"} 17179869184",
      "drover_host_memory_free_bytes{host=\"host1\"} 1073741824",
      "drover_host_data_free_bytes{host=\"host1\"} 5000",
      "drover_host_vms{host=\"host1\"} 2",
      "drover_vm_cpu_usage_seconds_total{vm=\"web1\",host=\"host1\"} 1.5",
      "drover_vm_memory_resident_bytes{vm=\"web1\",host=\"host1\"} 104857600",
      /* Configured memory is the spec's, not the balloon's. */
      "drover_vm_memory_configured_bytes{vm=\"web1\","
      "host=\"host1\"} 536870912",
      "drover_vm_vcpus{vm=\"web1\",host=\"host1\"} 2",
      "drover_vm_state{vm=\"web1\",host=\"host1\",state=\"running\"} 1",
      "drover_vm_state{vm=\"db1\",host=\"host1\",state=\"paused\"} 1",
      "drover_vm_storage_read_traffic_bytes_total{vm=\"db1\",host=\"host1\"} "
      "4096",
      "drover_vm_storage_write_traffic_bytes_total{vm=\"db1\",host=\"host1\"} "
      "512",
      "drover_vm_network_receive_bytes_total{vm=\"db1\",host=\"host1\"} 10",
      "drover_vm_network_transmit_bytes_total{vm=\"db1\",host=\"host1\"} 20",
      NULL);
  /* A VM without a disk or an interface has no such series. */
  assert_no_series (m, "drover_vm_storage_read_traffic_bytes_total{vm=\"web1\"",
                    "drover_vm_network_receive_bytes_total{vm=\"web1\"", NULL);
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
  assert_lines (m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 2",
                NULL);
  vm->cpu_time_ns = 5000000000;
  agent_metrics_update (m, NULL, &vm, 1);
  assert_lines (m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 5",
                NULL);
  vm->cpu_time_ns = 1000000000;
  agent_metrics_update (m, NULL, &vm, 1);
  assert_lines (m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 1",
                NULL);
  vm->cpu_time_ns = 1250000000;
  agent_metrics_update (m, NULL, &vm, 1);
  assert_lines (
      m, "drover_vm_cpu_usage_seconds_total{vm=\"a\",host=\"h\"} 1.25", NULL);
  /* A disk that shows up later starts from its figure. */
  vm->has_disk = TRUE;
  vm->disk_rd_bytes = 100;
  agent_metrics_update (m, NULL, &vm, 1);
  assert_lines (
      m, "drover_vm_storage_read_traffic_bytes_total{vm=\"a\",host=\"h\"} 100",
      NULL);
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
  assert_lines (m, "drover_vm_state{vm=\"a\",host=\"h\",state=\"shutoff\"} 1",
                NULL);
  g_assert_false (
      has_prefix (m, "drover_vm_state{vm=\"a\",host=\"h\",state=\"running\"}"));

  /* b left (migrated away, deleted). */
  agent_metrics_update (m, NULL, vms, 1);
  assert_lines (m, "drover_host_vms{host=\"h\"} 1", NULL);
  assert_no_series (m, "drover_vm_state{vm=\"b\"",
                    "drover_vm_cpu_usage_seconds_total{vm=\"b\"",
                    "drover_vm_vcpus{vm=\"b\"",
                    "drover_vm_network_receive_bytes_total{vm=\"b\"", NULL);
  g_assert_true (has_prefix (m, "drover_vm_vcpus{vm=\"a\""));
  /* Back again: its counters start from its figures. */
  agent_metrics_update (m, NULL, vms, 2);
  assert_lines (
      m, "drover_vm_network_receive_bytes_total{vm=\"b\",host=\"h\"} 0", NULL);
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
  assert_lines (
      m, "drover_migration_data_remaining_bytes{vm=\"web1\",host=\"h\"} 1000",
      "drover_migration_data_processed_bytes{vm=\"web1\",host=\"h\"} 24",
      "drover_migration_dirty_memory_rate_bytes{vm=\"web1\",host=\"h\"} "
      "8388608",
      "drover_migration_iteration{vm=\"web1\",host=\"h\"} 3",
      "drover_migration_channel_wire_bytes_total{host=\"h\"} 100", NULL);

  p.wire_bytes = 250;
  p.payload_bytes = 700;
  p.phase = PROTO_MIG_COMPLETED;
  p.downtime_ms = 42;
  p.final = TRUE;
  agent_metrics_migration (m, "web1", &p);
  assert_no_series (m, "drover_migration_data_remaining_bytes{",
                    "drover_migration_iteration{", NULL);
  assert_lines (
      m, "drover_migration_channel_wire_bytes_total{host=\"h\"} 250",
      "drover_migration_channel_payload_bytes_total{host=\"h\"} 700",
      "drover_migrations_total{host=\"h\",result=\"completed\"} 1",
      "drover_migration_downtime_seconds_bucket{host=\"h\",le=\"0.025\"} 0",
      "drover_migration_downtime_seconds_bucket{host=\"h\",le=\"0.05\"} 1",
      "drover_migration_downtime_seconds_count{host=\"h\"} 1", NULL);

  /* A second migration's channel bytes add to the host's totals; a failed
   * one counts as failed and has no downtime. */
  memset (&p, 0, sizeof p);
  p.phase = PROTO_MIG_FAILED;
  p.wire_bytes = 50;
  p.final = TRUE;
  agent_metrics_migration (m, "web1", &p);
  assert_lines (m, "drover_migration_channel_wire_bytes_total{host=\"h\"} 300",
                "drover_migrations_total{host=\"h\",result=\"failed\"} 1",
                "drover_migration_downtime_seconds_count{host=\"h\"} 1", NULL);
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
