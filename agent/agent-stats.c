/* Per-VM status and statistics of Drover domains. */
#include "agent-dirty-rate.h"

#include <string.h>

typedef struct
{
  guint64 cpu_time_ns;
  gint64 when_us; /* monotonic */
  gboolean seen;  /* in the latest collection */
} CpuSample;

/* The guest's addresses as its guest agent last reported them. The agent
 * is asked from a worker thread, never from the collection: an agent that
 * does not answer (or a freeze holding the agent job) must not delay a
 * report. */
typedef struct
{
  GPtrArray *nics;  /* Drover__V1__NicAddresses, NULL: the agent failed */
  gint64 when_us;   /* monotonic, of the last answer or failure */
  gboolean pending; /* a worker is asking */
  gboolean seen;
} AgentAddrs;

struct _AgentStats
{
  GHashTable *samples;   /* uuid -> CpuSample */
  GMutex lock;           /* guards addrs */
  GHashTable *addrs;     /* uuid -> AgentAddrs */
  GThreadPool *pool;     /* agent queries */
  AgentDirtyRate *dirty; /* measured dirty rates (agent-dirty-rate.c) */
};

/* How old a guest agent answer may be before it is asked again, how long
 * the agent has to answer, and at most how many NICs and addresses are
 * taken from it. */
#define AGENT_ADDRS_REFRESH_US (5 * G_USEC_PER_SEC)
/* After a failure (no agent, a hung one): asked again this much later, so
 * that a hung agent holds a worker a fraction of the time. */
#define AGENT_ADDRS_RETRY_US (60 * G_USEC_PER_SEC)
#define AGENT_ADDRS_MAX_PER_NIC 16u
#define AGENT_ADDRS_WORKERS 4

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
static gboolean agent_connected (const char *xml);

/* AGENT_UP (when not NULL): whether its guest agent is connected. */
static Drover__V1__VmStatus *
status_new (virDomainPtr dom, gboolean *agent_up, GError **error)
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
  if (agent_up)
    *agent_up = agent_connected (xml);
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
  g_autoptr (Drover__V1__VmStatus) status = status_new (dom, NULL, error);
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

static void
agent_addrs_free (gpointer data)
{
  AgentAddrs *a = data;

  if (a->nics)
    g_ptr_array_unref (a->nics);
  g_free (a);
}

typedef struct
{
  AgentStats *stats;
  virDomainPtr dom;
  char *uuid;
} AddrTask;

/* NIC addresses of IFACES (N of them) as Drover's messages, capped;
 * interfaces without a real MAC (the guest's loopback) left out. */
static GPtrArray *
nics_from_ifaces (virDomainInterfacePtr *ifaces, int n)
{
  GPtrArray *nics = g_ptr_array_new_with_free_func (proto_msg_free);

  for (int i = 0; i < n; i++)
    {
      virDomainInterfacePtr it = ifaces[i];
      Drover__V1__NicAddresses *na;

      if (nics->len >= PROTO_VM_MAX_NICS || it->hwaddr == NULL
          || strcmp (it->hwaddr, "00:00:00:00:00:00") == 0
          || strlen (it->hwaddr) > 32)
        continue;
      na = g_new0 (Drover__V1__NicAddresses, 1);
      drover__v1__nic_addresses__init (na);
      na->mac = proto_msg_strdup (it->hwaddr);
      na->n_addresses = MIN (it->naddrs, AGENT_ADDRS_MAX_PER_NIC);
      na->addresses = g_new0 (char *, na->n_addresses + 1);
      for (size_t a = 0; a < na->n_addresses; a++)
        na->addresses[a] = g_strdup_printf (
            "%.64s/%u", it->addrs[a].addr ? it->addrs[a].addr : "?",
            it->addrs[a].prefix);
      g_ptr_array_add (nics, na);
    }
  return nics;
}

static void
addr_task_run (gpointer data, gpointer user_data)
{
  AddrTask *t = data;
  AgentStats *stats = t->stats;
  virDomainInterfacePtr *ifaces = NULL;
  GPtrArray *nics = NULL;
  AgentAddrs *a;
  int n;

  (void)user_data;
  /* A guest agent that hangs costs this worker that long at most. */
  (void)virDomainAgentSetResponseTimeout (t->dom, AGENT_GUEST_AGENT_TIMEOUT_S,
                                          0);
  n = virDomainInterfaceAddresses (t->dom, &ifaces,
                                   VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0);
  if (n >= 0)
    nics = nics_from_ifaces (ifaces, n);
  for (int i = 0; i < n; i++)
    virDomainInterfaceFree (ifaces[i]);
  free (ifaces);
  g_mutex_lock (&stats->lock);
  a = g_hash_table_lookup (stats->addrs, t->uuid);
  if (a)
    {
      if (a->nics)
        g_ptr_array_unref (a->nics);
      a->nics = g_steal_pointer (&nics);
      a->when_us = g_get_monotonic_time ();
      a->pending = FALSE;
    }
  g_mutex_unlock (&stats->lock);
  if (nics)
    g_ptr_array_unref (nics);
  virDomainFree (t->dom);
  g_free (t->uuid);
  g_free (t);
}

AgentStats *
agent_stats_new (void)
{
  AgentStats *stats = g_new0 (AgentStats, 1);

  stats->samples
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_mutex_init (&stats->lock);
  stats->addrs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        agent_addrs_free);
  stats->pool = g_thread_pool_new (addr_task_run, NULL, AGENT_ADDRS_WORKERS,
                                   FALSE, NULL);
  stats->dirty = agent_dirty_rate_new ();
  return stats;
}

void
agent_stats_free (AgentStats *stats)
{
  if (!stats)
    return;
  /* Waits for queries under way (each bounded by the agent timeout). */
  if (stats->pool)
    g_thread_pool_free (stats->pool, TRUE, TRUE);
  agent_dirty_rate_free (stats->dirty);
  g_hash_table_destroy (stats->addrs);
  g_mutex_clear (&stats->lock);
  g_hash_table_destroy (stats->samples);
  g_free (stats);
}

AgentDirtyRate *
agent_stats_dirty_rate (AgentStats *stats)
{
  return stats->dirty;
}

static gboolean
agent_connected (const char *xml)
{
  g_autofree char *state = agent_xml_string (
      xml, "/domain/devices/channel/target[@name='" AGENT_GUEST_AGENT_CHANNEL
           "']/@state");

  return g_strcmp0 (state, "connected") == 0;
}

/* A copy of what the guest agent of UUID last reported (NULL when
 * nothing usable), and a new query started when that is old. */
static GPtrArray *
agent_addrs_get (AgentStats *stats, virDomainPtr dom, const char *uuid,
                 gboolean connected)
{
  GPtrArray *copy = NULL;
  AgentAddrs *a;
  gint64 now = g_get_monotonic_time ();

  g_mutex_lock (&stats->lock);
  a = g_hash_table_lookup (stats->addrs, uuid);
  if (!a)
    {
      a = g_new0 (AgentAddrs, 1);
      g_hash_table_insert (stats->addrs, g_strdup (uuid), a);
    }
  a->seen = TRUE;
  if (connected && !a->pending
      && (a->when_us == 0
          || now - a->when_us
                 >= (a->nics ? AGENT_ADDRS_REFRESH_US : AGENT_ADDRS_RETRY_US))
      && virDomainRef (dom) == 0)
    {
      AddrTask *t = g_new0 (AddrTask, 1);

      t->stats = stats;
      t->dom = dom;
      t->uuid = g_strdup (uuid);
      a->pending = TRUE;
      g_thread_pool_push (stats->pool, t, NULL);
    }
  if (connected && a->nics && a->nics->len > 0)
    {
      copy = g_ptr_array_new_with_free_func (proto_msg_free);
      for (guint i = 0; i < a->nics->len; i++)
        {
          const Drover__V1__NicAddresses *src = a->nics->pdata[i];
          Drover__V1__NicAddresses *na = g_new0 (Drover__V1__NicAddresses, 1);

          drover__v1__nic_addresses__init (na);
          na->mac = proto_msg_strdup (src->mac);
          na->n_addresses = src->n_addresses;
          na->addresses = g_new0 (char *, na->n_addresses + 1);
          for (size_t k = 0; k < na->n_addresses; k++)
            na->addresses[k] = g_strdup (src->addresses[k]);
          g_ptr_array_add (copy, na);
        }
    }
  g_mutex_unlock (&stats->lock);
  return copy;
}

static gboolean
addrs_not_seen (gpointer key, gpointer value, gpointer data)
{
  AgentAddrs *a = value;
  gboolean drop = !a->seen && !a->pending;

  (void)key;
  (void)data;
  a->seen = FALSE;
  return drop;
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

static void
add_nic_addresses (Drover__V1__VmStatus *status, Drover__V1__NicAddresses *na)
{
  status->nic_addresses
      = g_renew (Drover__V1__NicAddresses *, status->nic_addresses,
                 status->n_nic_addresses + 1);
  status->nic_addresses[status->n_nic_addresses++] = na;
}

static gboolean
has_nic_addresses (const Drover__V1__VmStatus *status, const char *mac)
{
  for (size_t i = 0; i < status->n_nic_addresses; i++)
    if (g_ascii_strcasecmp (status->nic_addresses[i]->mac, mac) == 0)
      return TRUE;
  return FALSE;
}

/* The guest's addresses per NIC: what its guest agent reported (issue
 * 13), and for NICs it did not report, what this host's ARP table has.
 * Capped. */
static void
apply_addresses (AgentStats *stats, Drover__V1__VmStatus *status,
                 virDomainPtr dom, gboolean connected)
{
  virDomainInterfacePtr *ifaces = NULL;
  g_autoptr (GPtrArray) from_agent
      = agent_addrs_get (stats, dom, status->uuid, connected);
  int n;

  for (guint i = 0; from_agent && i < from_agent->len; i++)
    if (status->n_nic_addresses < PROTO_VM_MAX_NICS)
      add_nic_addresses (status, g_ptr_array_steal_index (from_agent, i--));
  n = virDomainInterfaceAddresses (dom, &ifaces,
                                   VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP, 0);
  if (n > 0)
    {
      g_autoptr (GPtrArray) arp = nics_from_ifaces (ifaces, n);

      for (guint i = 0; i < arp->len; i++)
        {
          Drover__V1__NicAddresses *na = arp->pdata[i];

          if (status->n_nic_addresses < PROTO_VM_MAX_NICS
              && !has_nic_addresses (status, na->mac))
            add_nic_addresses (status, g_ptr_array_steal_index (arp, i--));
        }
    }
  for (int i = 0; i < n; i++)
    virDomainInterfaceFree (ifaces[i]);
  free (ifaces);
}

static void
apply_record (AgentStats *stats, Drover__V1__VmStatus *status,
              virDomainStatsRecordPtr rec, gboolean agent_up)
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
    apply_addresses (stats, status, rec->dom, agent_up);
  agent_dirty_rate_observe (stats->dirty, status->uuid, status->name,
                            state == VIR_DOMAIN_RUNNING, rec->params,
                            rec->nparams, now, status);

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
                        | VIR_DOMAIN_STATS_INTERFACE | VIR_DOMAIN_STATS_BLOCK
                        | VIR_DOMAIN_STATS_DIRTYRATE;

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
      gboolean agent_up = FALSE;
      Drover__V1__VmStatus *status
          = status_new (records[i]->dom, &agent_up, &local);

      /* Foreign domains are not ours; a domain that vanished meanwhile
       * will be gone from the next report too. */
      if (!status)
        continue;
      apply_record (stats, status, records[i], agent_up);
      g_ptr_array_add (result, status);
    }
  virDomainStatsRecordListFree (records);
  g_hash_table_foreach_remove (stats->samples, sample_not_seen, NULL);
  agent_dirty_rate_sweep (stats->dirty);
  g_mutex_lock (&stats->lock);
  g_hash_table_foreach_remove (stats->addrs, addrs_not_seen, NULL);
  g_mutex_unlock (&stats->lock);
  return g_steal_pointer (&result);
}
