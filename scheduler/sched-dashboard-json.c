/* The dashboard's data as JSON, written straight into a string by
 * proto-json (no document tree: the state is built on every poll of every
 * open page): the page's state document and the events of its stream,
 * messages in the shape droverctl --json prints. */
#include "sched-dashboard.h"

#include <math.h>
#include <string.h>

char *
sched_dashboard_event_json (const Drover__V1__Event *event)
{
  ProtoJson *json = proto_json_new (FALSE);

  proto_json_message (json, &event->base);
  return proto_json_free_to_string (json);
}

/* --- the state document ------------------------------------------------- */

static void
member_string (ProtoJson *b, const char *name, const char *value)
{
  proto_json_key (b, name);
  proto_json_string (b, value ? value : "");
}

static void
member_int (ProtoJson *b, const char *name, gint64 value)
{
  proto_json_key (b, name);
  proto_json_int (b, value);
}

static void
member_double (ProtoJson *b, const char *name, double value)
{
  proto_json_key (b, name);
  proto_json_double (b, value);
}

static void
add_hosts (ProtoJson *b, const SchedPolicy *policy, GPtrArray *hosts,
           GPtrArray *vms)
{
  g_autoptr (GHashTable) by_host = sched_vms_by_host (vms);

  proto_json_key (b, "hosts");
  proto_json_begin_array (b);
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *h = hosts->pdata[i];
      guint count = 0, vcpus = 0;
      guint64 memory = 0;
      double cpu_cap = (double)sched_policy_vcpu_cap (policy, h->info->cpus);
      double mem_cap
          = (double)sched_policy_memory_cap (policy, h->info->memory_total);

      sched_host_usage (h->name, g_hash_table_lookup (by_host, h->name), &count,
                        &vcpus, &memory, NULL);
      proto_json_begin_object (b);
      member_string (b, "name", h->name);
      member_string (b, "state", h->state);
      member_string (b, "maintenance", h->maintenance);
      member_string (b, "address", h->address);
      member_string (b, "accel", h->info->accel);
      member_int (b, "last_seen_ms", h->last_seen_ms);
      member_int (b, "vm_count", count);
      member_int (b, "cpus", h->info->cpus);
      member_int (b, "vcpus_used", vcpus);
      member_double (b, "cpu_load", cpu_cap > 0 ? vcpus / cpu_cap : 1.0);
      member_int (b, "memory_total", (gint64)h->info->memory_total);
      member_int (b, "memory_used", (gint64)memory);
      member_double (b, "memory_load", mem_cap > 0 ? memory / mem_cap : 1.0);
      proto_json_end_object (b);
    }
  proto_json_end_array (b);
}

static void
add_vms (ProtoJson *b, GPtrArray *vms)
{
  proto_json_key (b, "vms");
  proto_json_begin_array (b);
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      proto_json_begin_object (b);
      member_string (b, "name", vm->name);
      member_string (b, "host", vm->host);
      member_string (b, "state", vm->state);
      member_int (b, "vcpus", vm->spec->vcpus);
      member_int (b, "memory", (gint64)vm->spec->memory);
      member_double (b, "cpu_percent",
                     vm->status ? vm->status->cpu_percent : 0);
      member_int (b, "memory_rss",
                  vm->status ? (gint64)vm->status->memory_rss : 0);
      member_int (b, "updated_ms", vm->updated_ms);
      proto_json_key (b, "template");
      proto_json_bool (b, vm->template != 0);
      member_int (b, "snapshots", vm->snapshots);
      member_string (b, "current_snapshot", vm->current_snapshot);
      proto_json_end_object (b);
    }
  proto_json_end_array (b);
}

/* Jobs not over yet, whole; and the last SCHED_DASHBOARD_MIGRATIONS
 * finished migrations, newest first: predicted against measured. */
#define SCHED_DASHBOARD_MIGRATIONS 20

static void
add_jobs (ProtoJson *b, GPtrArray *jobs)
{
  guint shown = 0;

  proto_json_key (b, "jobs");
  proto_json_begin_array (b);
  for (guint i = 0; i < jobs->len; i++)
    {
      const SchedJob *job = jobs->pdata[i];
      Drover__V1__Job msg;

      if (proto_job_state_is_final (job->state))
        continue;
      sched_job_msg (job, &msg);
      proto_json_message (b, &msg.base);
    }
  proto_json_end_array (b);

  proto_json_key (b, "migrations");
  proto_json_begin_array (b);
  for (guint i = jobs->len; i-- > 0 && shown < SCHED_DASHBOARD_MIGRATIONS;)
    {
      const SchedJob *job = jobs->pdata[i];

      if (strcmp (job->kind, PROTO_JOB_KIND_MIGRATE) != 0
          || !proto_job_state_is_final (job->state))
        continue;
      shown++;
      proto_json_begin_object (b);
      member_string (b, "id", job->id);
      member_string (b, "vm", job->vm);
      member_string (b, "source_host", job->source_host);
      member_string (b, "dest_host", job->dest_host);
      member_string (b, "state", job->state);
      member_string (b, "error", job->error);
      member_int (b, "ended_ms", job->updated_ms);
      member_double (b, "predicted_s",
                     job->prediction ? job->prediction->total_s : NAN);
      member_double (b, "predicted_downtime_ms",
                     job->prediction ? job->prediction->downtime_ms : NAN);
      member_double (b, "measured_s",
                     job->migration ? job->migration->total_s : NAN);
      member_double (b, "measured_downtime_ms",
                     job->migration ? (double)job->migration->downtime_ms
                                    : NAN);
      proto_json_end_object (b);
    }
  proto_json_end_array (b);
}

char *
sched_dashboard_state_json (SchedService *svc, GArray *history, ProtoRole role,
                            const char *name, GError **error)
{
  ProtoJson *b;
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (svc->store, error);
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GPtrArray) jobs = NULL;

  if (hosts == NULL
      || (vms = sched_store_list_vms (svc->store, NULL, error)) == NULL
      || (jobs = sched_store_list_jobs (svc->store, error)) == NULL)
    return NULL;

  b = proto_json_new (FALSE);
  proto_json_begin_object (b);
  proto_json_key (b, "me");
  proto_json_begin_object (b);
  member_string (b, "name", name);
  member_string (b, "role", proto_role_to_string (role));
  proto_json_key (b, "may_act");
  proto_json_bool (b, (role & PROTO_ROLE_OPERATOR) != 0);
  proto_json_end_object (b);
  member_int (b, "now_ms", g_get_real_time () / 1000);

  add_hosts (b, &svc->policy, hosts, vms);
  add_vms (b, vms);
  add_jobs (b, jobs);
  member_double (b, "imbalance", sched_imbalance (&svc->policy, hosts, vms));
  proto_json_key (b, "imbalance_history");
  proto_json_begin_array (b);
  for (guint i = 0; i < history->len; i++)
    {
      const SchedSample *s = &g_array_index (history, SchedSample, i);

      proto_json_begin_array (b);
      proto_json_int (b, s->time_ms);
      proto_json_double (b, s->value);
      proto_json_end_array (b);
    }
  proto_json_end_array (b);
  proto_json_end_object (b);
  return proto_json_free_to_string (b);
}
