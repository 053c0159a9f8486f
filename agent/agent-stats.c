/* Per-VM status and statistics of Drover domains. */
#include "agent-private.h"

#include <string.h>

typedef struct
{
  guint64 cpu_time_ns;
  gint64 when_us; /* monotonic */
  gboolean seen;  /* in the latest collection */
} CpuSample;

struct _AgentStats
{
  GHashTable *samples; /* uuid -> CpuSample */
};

const char *
agent_domain_state_string (int state)
{
  switch (state)
    {
    case VIR_DOMAIN_RUNNING:
      return PROTO_VM_RUNNING;
    case VIR_DOMAIN_BLOCKED:
      return PROTO_VM_BLOCKED;
    case VIR_DOMAIN_PAUSED:
      return PROTO_VM_PAUSED;
    case VIR_DOMAIN_SHUTDOWN:
      return PROTO_VM_SHUTDOWN;
    case VIR_DOMAIN_SHUTOFF:
      return PROTO_VM_SHUTOFF;
    case VIR_DOMAIN_CRASHED:
      return PROTO_VM_CRASHED;
    case VIR_DOMAIN_PMSUSPENDED:
      return PROTO_VM_PMSUSPENDED;
    default:
      return PROTO_VM_NOSTATE;
    }
}

/* Name, uuid and spec of DOM; AGENT_ERROR_NOT_DROVER for other domains. */
static Drover__V1__VmStatus *
status_new (virDomainPtr dom, GError **error)
{
  g_autoptr (Drover__V1__VmStatus) status = g_new0 (Drover__V1__VmStatus, 1);
  g_autofree char *xml = virDomainGetXMLDesc (dom, 0);
  char uuid[VIR_UUID_STRING_BUFLEN] = "";

  drover__v1__vm_status__init (status);
  if (!xml)
    {
      agent_libvirt_error (error, "cannot read the XML of domain %s",
                           virDomainGetName (dom));
      return NULL;
    }
  status->spec = agent_domain_xml_parse (xml, error);
  if (!status->spec)
    return NULL;
  (void)virDomainGetUUIDString (dom, uuid);
  status->name = proto_msg_strdup (virDomainGetName (dom));
  status->uuid = proto_msg_strdup (uuid);
  status->vcpus = status->spec->vcpus;
  status->memory = status->spec->memory;
  /* Snapshots (issue 12): what the domain's snapshot record says. */
  {
    g_autofree char *current = NULL;
    guint count = 0;

    if (agent_snapshot_count (xml, &current, &count))
      {
        status->current_snapshot = proto_msg_strdup (current);
        status->snapshots = count;
      }
  }
  /* The clone record (agent-clone.c). */
  status->template_ = agent_clone_xml_is_template (xml);
  return g_steal_pointer (&status);
}

Drover__V1__VmStatus *
agent_vm_status_from_domain (virDomainPtr dom, GError **error)
{
  g_autoptr (Drover__V1__VmStatus) status = status_new (dom, error);
  virDomainInfo info;

  if (!status)
    return NULL;
  if (virDomainGetInfo (dom, &info) < 0)
    {
      agent_libvirt_error (error, "cannot read the state of VM %s",
                           status->name);
      return NULL;
    }
  status->state = proto_msg_strdup (agent_domain_state_string (info.state));
  status->cpu_time_ns = info.cpuTime;
  if (info.state == VIR_DOMAIN_RUNNING || info.state == VIR_DOMAIN_PAUSED)
    {
      status->vcpus = info.nrVirtCpu;
      status->memory = (guint64)info.memory * 1024;
    }
  return g_steal_pointer (&status);
}

AgentStats *
agent_stats_new (void)
{
  AgentStats *stats = g_new0 (AgentStats, 1);

  stats->samples
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return stats;
}

void
agent_stats_free (AgentStats *stats)
{
  if (!stats)
    return;
  g_hash_table_destroy (stats->samples);
  g_free (stats);
}

static guint64
param_ull (virTypedParameterPtr params, int n, const char *name)
{
  unsigned long long v = 0;

  if (virTypedParamsGetULLong (params, n, name, &v) <= 0)
    return 0;
  return v;
}

/* Sums PREFIX.<i>.FIELD over PREFIX.count entries; FALSE if none. */
static gboolean
param_sum (virTypedParameterPtr params, int n, const char *prefix,
           const char *field, guint64 *sum)
{
  unsigned int count = 0;
  g_autofree char *count_name = g_strdup_printf ("%s.count", prefix);

  *sum = 0;
  if (virTypedParamsGetUInt (params, n, count_name, &count) <= 0 || count == 0)
    return FALSE;
  for (unsigned int i = 0; i < count; i++)
    {
      g_autofree char *name = g_strdup_printf ("%s.%u.%s", prefix, i, field);

      *sum += param_ull (params, n, name);
    }
  return TRUE;
}

/* The guest's addresses per NIC as this host's ARP table has them
 * (issue 13; the test guest has no guest agent). Capped. */
static void
apply_addresses (Drover__V1__VmStatus *status, virDomainPtr dom)
{
  virDomainInterfacePtr *ifaces = NULL;
  int n = virDomainInterfaceAddresses (
      dom, &ifaces, VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP, 0);

  for (int i = 0; i < n; i++)
    {
      virDomainInterfacePtr it = ifaces[i];
      Drover__V1__NicAddresses *na;

      if (status->n_nic_addresses < PROTO_VM_MAX_NICS && it->hwaddr != NULL)
        {
          na = g_new0 (Drover__V1__NicAddresses, 1);
          drover__v1__nic_addresses__init (na);
          na->mac = proto_msg_strdup (it->hwaddr);
          na->n_addresses = MIN (it->naddrs, 16u);
          na->addresses = g_new0 (char *, na->n_addresses + 1);
          for (size_t a = 0; a < na->n_addresses; a++)
            na->addresses[a] = g_strdup_printf (
                "%s/%u", it->addrs[a].addr ? it->addrs[a].addr : "?",
                it->addrs[a].prefix);
          status->nic_addresses
              = g_renew (Drover__V1__NicAddresses *, status->nic_addresses,
                         status->n_nic_addresses + 1);
          status->nic_addresses[status->n_nic_addresses++] = na;
        }
      virDomainInterfaceFree (it);
    }
  free (ifaces);
}

static void
apply_record (AgentStats *stats, Drover__V1__VmStatus *status,
              virDomainStatsRecordPtr rec)
{
  int state = VIR_DOMAIN_NOSTATE;
  unsigned int vcpus = 0;
  guint64 balloon, rx = 0, tx = 0, rd = 0, wr = 0;
  gint64 now = g_get_monotonic_time ();
  CpuSample *sample;

  if (virTypedParamsGetInt (rec->params, rec->nparams, "state.state", &state)
      <= 0)
    state = VIR_DOMAIN_NOSTATE;
  status->state = proto_msg_strdup (agent_domain_state_string (state));
  status->cpu_time_ns = param_ull (rec->params, rec->nparams, "cpu.time");
  if (virTypedParamsGetUInt (rec->params, rec->nparams, "vcpu.current", &vcpus)
          > 0
      && vcpus > 0)
    status->vcpus = vcpus;
  balloon = param_ull (rec->params, rec->nparams, "balloon.current");
  if (balloon > 0)
    status->memory = balloon * 1024;
  /* What the guest has touched (plus QEMU's own overhead): the cost model
   * uses it as the most memory a migration has to send in its first
   * round, since never-written pages go as zero-page markers. */
  status->memory_rss
      = param_ull (rec->params, rec->nparams, "balloon.rss") * 1024;
  status->has_disk
      = param_sum (rec->params, rec->nparams, "block", "rd.bytes", &rd);
  (void)param_sum (rec->params, rec->nparams, "block", "wr.bytes", &wr);
  status->disk_rd_bytes = rd;
  status->disk_wr_bytes = wr;
  status->has_net
      = param_sum (rec->params, rec->nparams, "net", "rx.bytes", &rx);
  (void)param_sum (rec->params, rec->nparams, "net", "tx.bytes", &tx);
  status->net_rx_bytes = rx;
  status->net_tx_bytes = tx;
  if (status->has_net && state == VIR_DOMAIN_RUNNING)
    apply_addresses (status, rec->dom);

  /* cpu_percent: CPU time used since the previous collection over the
   * wall time between them; 0 for the first sample or after a restart. */
  sample = g_hash_table_lookup (stats->samples, status->uuid);
  if (sample && now > sample->when_us
      && status->cpu_time_ns >= sample->cpu_time_ns)
    {
      double cpu_ns = (double)(status->cpu_time_ns - sample->cpu_time_ns);
      double wall_ns = (double)(now - sample->when_us) * 1000.0;

      status->cpu_percent = 100.0 * cpu_ns / wall_ns;
    }
  if (!sample)
    {
      sample = g_new0 (CpuSample, 1);
      g_hash_table_insert (stats->samples, g_strdup (status->uuid), sample);
    }
  sample->cpu_time_ns = status->cpu_time_ns;
  sample->when_us = now;
  sample->seen = TRUE;
}

static gboolean
sample_not_seen (gpointer key, gpointer value, gpointer data)
{
  CpuSample *sample = value;
  gboolean drop = !sample->seen;

  sample->seen = FALSE;
  return drop;
}

GPtrArray *
agent_stats_collect (AgentStats *stats, virConnectPtr conn, GError **error)
{
  g_autoptr (GPtrArray) result
      = g_ptr_array_new_with_free_func (proto_msg_free);
  virDomainStatsRecordPtr *records = NULL;
  int n;
  unsigned int groups = VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_CPU_TOTAL
                        | VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU
                        | VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK;

  /* Without ENFORCE_STATS, groups a driver lacks are simply absent.
   * NOWAIT: a domain busy in a job that admits no queries (an incoming
   * migration) would otherwise block the report for libvirt's 30 s job
   * wait, and the scheduler would take the host for dead. */
  n = virConnectGetAllDomainStats (conn, groups, &records,
                                   VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
  if (n < 0)
    {
      agent_libvirt_error (error, "cannot read domain statistics");
      return NULL;
    }
  for (int i = 0; i < n; i++)
    {
      g_autoptr (GError) local = NULL;
      Drover__V1__VmStatus *status = status_new (records[i]->dom, &local);

      /* Foreign domains are not ours; a domain that vanished meanwhile
       * will be gone from the next report too. */
      if (!status)
        continue;
      apply_record (stats, status, records[i]);
      g_ptr_array_add (result, status);
    }
  virDomainStatsRecordListFree (records);
  g_hash_table_foreach_remove (stats->samples, sample_not_seen, NULL);
  return g_steal_pointer (&result);
}
