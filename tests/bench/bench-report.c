/* bench-report: N simulated agents reporting to one scheduler.
 *
 * Each simulated agent has its own host name (sim-0001 ...), its own
 * HostInfo and a few VmStatus entries. It registers, then sends
 * ReportHost back to back (or every --interval-ms) for --duration
 * seconds, with at most one call in flight. Each agent has its own gRPC
 * channel and its own host certificate (TLS-DIR/sim-NNNN, O=host,
 * CN=sim-NNNN), as real agents do: the scheduler lets a host act only as
 * the name in its certificate, so agents cannot share one. Latency is measured
 * per call, from issue to reply, on the monotonic clock; only calls that
 * complete inside the measurement window count.
 *
 * Prints (after a registration line):
 *   report: agents=N duration=Ds reports=R reports/s=X p50=Ams p99=Bms max=...
 * channels=N ...
 * and with --cpu-pid PID (the scheduler's), the CPU time that process
 * used inside the window: its own work only, which the load generator
 * and other work on the machine do not take from it (contention still
 * inflates it):
 *   report: cpu pid=PID in the window=S s per 1000 reports=M ms
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

#define VMS_PER_AGENT_DEFAULT 3
#define CALL_TIMEOUT_MS 30000

typedef struct _Bench Bench;

typedef struct
{
  Bench *bench;
  guint index;
  ProtoClient *client; /* borrowed from the pool */
  char name[32];
  char address[32];
  char uuid[8][40];
  char vm_names[8][48];
  Drover__V1__HostInfo info;
  Drover__V1__VmSpec specs[8];
  Drover__V1__VmStatus vms[8];
  Drover__V1__VmStatus *vm_ptrs[8];
  guint n_vms;
  guint64 seq;
  gint64 issued_us; /* monotonic time of the call in flight */
  gboolean registered;
  gboolean in_flight;
} SimAgent;

struct _Bench
{
  GMainLoop *loop;
  SimAgent *agents;
  guint n_agents;
  GPtrArray *clients;
  int interval_ms;
  gint64 window_start_us; /* 0 until every agent has registered */
  gint64 window_end_us;
  gboolean stopping;
  guint n_registered;
  guint n_in_flight;
  guint64 reports; /* completed inside the window */
  guint64 errors;
  guint64 reregisters;
  GArray *latencies_us; /* guint32, calls completed in the window */
  gint64 started_us;
  gint64 registered_us;
  guint duration_s;
  guint give_up_id; /* registration deadline */
  char *first_error;
  int cpu_pid;            /* 0: not measured */
  gint64 cpu_start_ticks; /* its CPU time at the window's start */
  gint64 cpu_ticks;       /* ... used inside the window */
};

static void agent_register (SimAgent *a);
static gboolean on_window_end (gpointer data);

/* User plus system CPU time of process PID in clock ticks; -1 if it
 * cannot be read. The fields after the command name, which may hold
 * spaces, count from its closing parenthesis. */
static gint64
cpu_ticks (int pid)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/stat", pid);
  g_autofree char *text = NULL;
  g_auto (GStrv) fields = NULL;
  const char *p;

  if (!g_file_get_contents (path, &text, NULL, NULL)
      || (p = strrchr (text, ')')) == NULL)
    return -1;
  fields = g_strsplit (p + 2, " ", 14);
  if (g_strv_length (fields) < 14)
    return -1;
  /* state is the first field here; utime and stime the 12th and 13th. */
  return g_ascii_strtoll (fields[11], NULL, 10)
         + g_ascii_strtoll (fields[12], NULL, 10);
}
static void agent_report (SimAgent *a);

/* A deterministic but varied host, so no two agents look alike. */
static void
sim_agent_init (SimAgent *a, Bench *b, guint index, guint n_vms)
{
  GRand *rand = g_rand_new_with_seed (index + 1);

  a->bench = b;
  a->index = index;
  g_snprintf (a->name, sizeof a->name, "sim-%04u", index + 1);
  g_snprintf (a->address, sizeof a->address, "127.0.%u.%u:7500",
              1 + index / 250, 1 + index % 250);
  drover__v1__host_info__init (&a->info);
  a->info.name = a->name;
  a->info.address = a->address;
  a->info.cpus = 16 << g_rand_int_range (rand, 0, 3); /* 16, 32, 64 */
  a->info.cpu_model = "Intel(R) Xeon(R) Gold 6248 CPU @ 2.50GHz";
  a->info.memory_total = ((guint64)a->info.cpus * 8) << 30;
  a->info.memory_free = a->info.memory_total / 2;
  a->info.kvm_usable = TRUE;
  a->info.accel = "kvm";
  a->info.libvirt_version = "9.0.0";
  a->info.qemu_version = "7.2.0";
  a->info.data_total = 2ULL << 40;
  a->info.data_free = (1ULL << 40) + g_rand_int (rand) * 4096ULL;

  a->n_vms = MIN (n_vms, G_N_ELEMENTS (a->vms));
  for (guint v = 0; v < a->n_vms; v++)
    {
      Drover__V1__VmSpec *spec = &a->specs[v];
      Drover__V1__VmStatus *st = &a->vms[v];

      g_snprintf (a->vm_names[v], sizeof a->vm_names[v], "%s-vm-%u", a->name,
                  v);
      g_snprintf (a->uuid[v], sizeof a->uuid[v],
                  "%08x-%04x-4%03x-8%03x-%08x%04x", g_rand_int (rand),
                  g_rand_int (rand) & 0xffff, g_rand_int (rand) & 0xfff,
                  g_rand_int (rand) & 0xfff, g_rand_int (rand),
                  g_rand_int (rand) & 0xffff);
      drover__v1__vm_spec__init (spec);
      spec->name = a->vm_names[v];
      spec->vcpus = 2 << (v % 3);
      spec->memory = (guint64)spec->vcpus << 31;
      spec->disk = 20ULL << 30;
      spec->kernel = "/var/lib/drover/images/vmlinuz";
      spec->initrd = "/var/lib/drover/images/initrd.img";
      spec->cmdline = "console=ttyS0 quiet";
      drover__v1__vm_status__init (st);
      st->name = a->vm_names[v];
      st->uuid = a->uuid[v];
      st->state = "running";
      st->vcpus = spec->vcpus;
      st->memory = spec->memory;
      st->has_disk = TRUE;
      st->has_net = TRUE;
      st->spec = spec;
      a->vm_ptrs[v] = st;
    }
  g_rand_free (rand);
}

/* Moves the counters along so each report carries new numbers. */
static void
sim_agent_tick (SimAgent *a)
{
  a->seq++;
  a->info.memory_free = a->info.memory_total / 2 + (a->seq % 97) * 4096;
  for (guint v = 0; v < a->n_vms; v++)
    {
      Drover__V1__VmStatus *st = &a->vms[v];
      st->cpu_percent = (double)((a->seq * 7 + v * 13) % 200) / 2.0;
      st->cpu_time_ns += 10000000;
      st->disk_rd_bytes += 4096 * (v + 1);
      st->disk_wr_bytes += 8192;
      st->net_rx_bytes += 1500 * (v + 2);
      st->net_tx_bytes += 900;
    }
}

static void
note_error (Bench *b, const GError *error)
{
  b->errors++;
  if (b->first_error == NULL)
    b->first_error = g_strdup (error->message);
}

static gboolean
retry_cb (gpointer data)
{
  SimAgent *a = data;
  if (a->registered)
    agent_report (a);
  else
    agent_register (a);
  return G_SOURCE_REMOVE;
}

static void
call_done (SimAgent *a)
{
  Bench *b = a->bench;
  a->in_flight = FALSE;
  b->n_in_flight--;
  if (b->stopping && b->n_in_flight == 0)
    g_main_loop_quit (b->loop);
}

static void
on_registered (const ProtobufCMessage *reply, const GError *error,
               gpointer data)
{
  SimAgent *a = data;
  Bench *b = a->bench;

  call_done (a);
  if (b->stopping)
    return;
  if (error != NULL)
    {
      note_error (b, error);
      g_timeout_add (200, retry_cb, a);
      return;
    }
  if (!a->registered)
    {
      a->registered = TRUE;
      if (++b->n_registered == b->n_agents)
        {
          /* The window starts when the last agent is in. */
          b->registered_us = g_get_monotonic_time ();
          b->window_start_us = b->registered_us;
          if (b->cpu_pid > 0)
            b->cpu_start_ticks = cpu_ticks (b->cpu_pid);
          b->window_end_us = 0;
          g_source_remove (b->give_up_id);
          g_timeout_add (b->duration_s * 1000, on_window_end, b);
        }
    }
  agent_report (a);
}

static void
agent_register (SimAgent *a)
{
  Drover__V1__RegisterHostRequest req = DROVER__V1__REGISTER_HOST_REQUEST__INIT;

  req.host = &a->info;
  a->in_flight = TRUE;
  a->bench->n_in_flight++;
  proto_client_call (a->client, DROVER_SCHED_SERVICE,
                     DROVER_SCHED_METHOD_REGISTER_HOST, &req.base,
                     CALL_TIMEOUT_MS, on_registered, a);
}

static void
on_reported (const ProtobufCMessage *reply, const GError *error, gpointer data)
{
  SimAgent *a = data;
  Bench *b = a->bench;
  gint64 now = g_get_monotonic_time ();

  call_done (a);
  if (error != NULL)
    {
      note_error (b, error);
    }
  else if (b->window_start_us != 0 && a->issued_us >= b->window_start_us
           && (b->window_end_us == 0 || now <= b->window_end_us))
    {
      guint32 lat = (guint32)MIN (now - a->issued_us, (gint64)G_MAXUINT32);
      g_array_append_val (b->latencies_us, lat);
      b->reports++;
    }
  if (b->stopping)
    return;
  if (error != NULL)
    {
      g_timeout_add (200, retry_cb, a);
      return;
    }
  if (((const Drover__V1__ReportHostReply *)reply)->reregister)
    {
      b->reregisters++;
      a->registered = FALSE;
      agent_register (a);
      return;
    }
  if (b->interval_ms > 0)
    g_timeout_add (b->interval_ms, retry_cb, a);
  else
    agent_report (a);
}

static void
agent_report (SimAgent *a)
{
  Drover__V1__ReportHostRequest req = DROVER__V1__REPORT_HOST_REQUEST__INIT;

  if (a->bench->stopping)
    return;
  sim_agent_tick (a);
  req.host = &a->info;
  req.n_vms = a->n_vms;
  req.vms = a->vm_ptrs;
  req.seq = a->seq;
  a->in_flight = TRUE;
  a->bench->n_in_flight++;
  a->issued_us = g_get_monotonic_time ();
  /* The request is packed before this returns, so stack storage is fine. */
  proto_client_call (a->client, DROVER_SCHED_SERVICE,
                     DROVER_SCHED_METHOD_REPORT_HOST, &req.base,
                     CALL_TIMEOUT_MS, on_reported, a);
}

static gboolean on_give_up (gpointer data);

static gboolean
on_window_end (gpointer data)
{
  Bench *b = data;

  b->window_end_us = g_get_monotonic_time ();
  b->stopping = TRUE;
  if (b->cpu_pid > 0)
    {
      gint64 now = cpu_ticks (b->cpu_pid);

      b->cpu_ticks
          = now >= 0 && b->cpu_start_ticks >= 0 ? now - b->cpu_start_ticks : -1;
    }
  if (b->n_in_flight == 0)
    g_main_loop_quit (b->loop);
  else /* let the calls in flight finish, but not forever */
    g_timeout_add_seconds (CALL_TIMEOUT_MS / 1000 + 5, on_give_up, b);
  return G_SOURCE_REMOVE;
}

static gboolean
on_give_up (gpointer data)
{
  Bench *b = data;
  /* Calls still in flight long after the end: stop waiting. */
  g_main_loop_quit (b->loop);
  return G_SOURCE_REMOVE;
}

static int
cmp_u32 (const void *x, const void *y)
{
  guint32 a = *(const guint32 *)x, b = *(const guint32 *)y;
  return a < b ? -1 : a > b;
}

static double
percentile_ms (GArray *sorted, double p)
{
  gsize idx;
  if (sorted->len == 0)
    return 0;
  idx = (gsize)ceil (p * sorted->len);
  if (idx > 0)
    idx--;
  if (idx >= sorted->len)
    idx = sorted->len - 1;
  return g_array_index (sorted, guint32, idx) / 1000.0;
}

int
main (int argc, char **argv)
{
  g_autofree char *target = NULL;
  g_autofree char *tls_dir = NULL;
  gboolean insecure = FALSE;
  int n_agents = 1000;
  int duration_s = 20;
  int n_vms = VMS_PER_AGENT_DEFAULT;
  int interval_ms = 0;
  int register_timeout_s = 120;
  int cpu_pid = 0;
  GOptionEntry entries[] = {
    { "target", 0, 0, G_OPTION_ARG_STRING, &target, "Scheduler address",
      "ADDR" },
    { "tls-dir", 0, 0, G_OPTION_ARG_FILENAME, &tls_dir,
      "PKI directory holding sim-0001/ ... (scripts/pki DIR host sim-0001)",
      "DIR" },
    { "insecure", 0, 0, G_OPTION_ARG_NONE, &insecure, "No TLS", NULL },
    { "agents", 0, 0, G_OPTION_ARG_INT, &n_agents, "Simulated agents (1000)",
      "N" },
    { "duration", 0, 0, G_OPTION_ARG_INT, &duration_s,
      "Measurement window in seconds (20)", "S" },
    { "vms", 0, 0, G_OPTION_ARG_INT, &n_vms,
      "VMs per simulated agent (3, max 8)", "K" },
    { "interval-ms", 0, 0, G_OPTION_ARG_INT, &interval_ms,
      "Pause between an agent's reports (0: back to back)", "MS" },
    { "register-timeout", 0, 0, G_OPTION_ARG_INT, &register_timeout_s,
      "Give up if not all registered after S s (120)", "S" },
    { "cpu-pid", 0, 0, G_OPTION_ARG_INT, &cpu_pid,
      "Also print the CPU time process PID (the scheduler) used in the "
      "window",
      "PID" },
    { NULL }
  };
  g_autoptr (GOptionContext) octx
      = g_option_context_new ("- simulated agents reporting to a scheduler");
  g_autoptr (GError) error = NULL;
  Bench b = { 0 };
  double window_s;
  gint64 t_drain;

  g_option_context_add_main_entries (octx, entries, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error))
    {
      fprintf (stderr, "bench-report: %s\n", error->message);
      return 2;
    }
  if (target == NULL || n_agents <= 0 || duration_s <= 0 || n_vms < 0
      || n_vms > 8 || interval_ms < 0 || (tls_dir == NULL && !insecure))
    {
      fprintf (stderr, "bench-report: need --target ADDR and --tls-dir DIR (or "
                       "--insecure); counts must be positive\n");
      return 2;
    }
  proto_init ();

  b.loop = g_main_loop_new (NULL, FALSE);
  b.n_agents = (guint)n_agents;
  b.interval_ms = interval_ms;
  b.duration_s = (guint)duration_s;
  b.cpu_pid = cpu_pid;
  b.latencies_us = g_array_sized_new (FALSE, FALSE, sizeof (guint32), 1 << 20);
  b.clients
      = g_ptr_array_new_with_free_func ((GDestroyNotify)proto_client_free);
  b.agents = g_new0 (SimAgent, n_agents);
  for (int i = 0; i < n_agents; i++)
    {
      g_autoptr (ProtoTls) tls = NULL;
      ProtoClient *c;

      sim_agent_init (&b.agents[i], &b, (guint)i, (guint)n_vms);
      if (tls_dir != NULL)
        {
          g_autofree char *dir
              = g_build_filename (tls_dir, b.agents[i].name, NULL);

          tls = proto_tls_load (dir, &error);
          if (tls == NULL)
            {
              fprintf (stderr, "bench-report: %s\n", error->message);
              return 1;
            }
        }
      c = proto_client_new (target, tls, PROTO_ROLE_SCHEDULER, NULL, &error);
      if (c == NULL)
        {
          fprintf (stderr, "bench-report: %s: %s\n", b.agents[i].name,
                   error->message);
          return 1;
        }
      g_ptr_array_add (b.clients, c);
      b.agents[i].client = c;
    }

  b.started_us = g_get_monotonic_time ();
  for (int i = 0; i < n_agents; i++)
    agent_register (&b.agents[i]);

  /* Registration that never completes (scheduler down, TLS refused)
   * must not hang the benchmark. */
  b.give_up_id
      = g_timeout_add_seconds ((guint)register_timeout_s, on_give_up, &b);
  g_main_loop_run (b.loop);
  t_drain = g_get_monotonic_time ();

  if (b.window_start_us == 0)
    {
      fprintf (stderr,
               "bench-report: only %u of %u agents registered "
               "(errors=%" G_GUINT64_FORMAT ", first: %s)\n",
               b.n_registered, b.n_agents, b.errors,
               b.first_error ? b.first_error : "none");
      return 1;
    }
  window_s = (b.window_end_us - b.window_start_us) / 1e6;
  g_array_sort (b.latencies_us, cmp_u32);
  printf ("report: registered %u agents over %d channels in %.0f ms\n",
          b.n_registered, n_agents, (b.registered_us - b.started_us) / 1000.0);
  printf ("report: agents=%u duration=%ds reports=%" G_GUINT64_FORMAT
          " reports/s=%.0f p50=%.2fms p99=%.2fms max=%.2fms channels=%d"
          " vms/agent=%d errors=%" G_GUINT64_FORMAT
          " reregisters=%" G_GUINT64_FORMAT "\n",
          b.n_agents, duration_s, b.reports, b.reports / window_s,
          percentile_ms (b.latencies_us, 0.50),
          percentile_ms (b.latencies_us, 0.99),
          percentile_ms (b.latencies_us, 1.0), n_agents, n_vms, b.errors,
          b.reregisters);
  if (b.cpu_pid > 0 && b.cpu_ticks >= 0)
    {
      double cpu_s = (double)b.cpu_ticks / sysconf (_SC_CLK_TCK);

      printf ("report: cpu pid=%d in the window=%.2f s per 1000 reports=%.1f "
              "ms\n",
              b.cpu_pid, cpu_s, b.reports > 0 ? cpu_s * 1e6 / b.reports : 0.0);
    }
  if (b.first_error != NULL)
    printf ("report: first error: %s\n", b.first_error);
  if (b.n_in_flight > 0)
    printf ("report: %u calls still in flight %.1f s after the window\n",
            b.n_in_flight, (t_drain - b.window_end_us) / 1e6);
  fflush (stdout);

  g_ptr_array_unref (b.clients);
  g_array_unref (b.latencies_us);
  g_main_loop_unref (b.loop);
  g_free (b.agents);
  g_free (b.first_error);
  proto_shutdown ();
  return b.errors > 0 && b.reports == 0 ? 1 : 0;
}
