/* The dashboard's data as JSON (json-glib): any protobuf-c message by its
 * descriptor (the same shape droverctl --json prints: .proto field names,
 * every field, absent sub-messages null), the page's state document and
 * the events of its stream. */
#include "sched-dashboard.h"

#include <math.h>
#include <string.h>

/* --- any message -------------------------------------------------------- */

static gsize
field_size (const ProtobufCFieldDescriptor *f)
{
  switch (f->type)
    {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      return 8;
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof (protobuf_c_boolean);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof (ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
    default:
      return sizeof (void *);
    }
}

static void
add_double (JsonBuilder *b, double v)
{
  if (isfinite (v))
    json_builder_add_double_value (b, v);
  else
    json_builder_add_null_value (b);
}

static void
add_value (JsonBuilder *b, const ProtobufCFieldDescriptor *f, const void *p)
{
  switch (f->type)
    {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_ENUM:
      json_builder_add_int_value (b, *(const gint32 *)p);
      break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      json_builder_add_int_value (b, *(const guint32 *)p);
      break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      json_builder_add_int_value (b, *(const gint64 *)p);
      break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      /* JSON numbers are doubles to JavaScript anyway. */
      json_builder_add_int_value (
          b, (gint64)MIN (*(const guint64 *)p, (guint64)G_MAXINT64));
      break;
    case PROTOBUF_C_TYPE_FLOAT:
      add_double (b, *(const float *)p);
      break;
    case PROTOBUF_C_TYPE_DOUBLE:
      add_double (b, *(const double *)p);
      break;
    case PROTOBUF_C_TYPE_BOOL:
      json_builder_add_boolean_value (b, *(const protobuf_c_boolean *)p);
      break;
    case PROTOBUF_C_TYPE_STRING:
      {
        const char *s = *(char *const *)p;

        /* Strings from agents may be anything: keep the JSON valid. */
        if (s == NULL || g_utf8_validate (s, -1, NULL))
          json_builder_add_string_value (b, s ? s : "");
        else
          {
            g_autofree char *valid = g_utf8_make_valid (s, -1);

            json_builder_add_string_value (b, valid);
          }
        break;
      }
    case PROTOBUF_C_TYPE_BYTES:
      {
        const ProtobufCBinaryData *d = p;
        g_autofree char *text = g_base64_encode (d->data, d->len);

        json_builder_add_string_value (b, text);
        break;
      }
    case PROTOBUF_C_TYPE_MESSAGE:
      {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;

        if (m == NULL)
          json_builder_add_null_value (b);
        else
          sched_json_message (b, m);
        break;
      }
    }
}

void
sched_json_message (JsonBuilder *b, const ProtobufCMessage *msg)
{
  const ProtobufCMessageDescriptor *d = msg->descriptor;

  json_builder_begin_object (b);
  for (unsigned i = 0; i < d->n_fields; i++)
    {
      const ProtobufCFieldDescriptor *f = &d->fields[i];
      const char *base = (const char *)msg;

      json_builder_set_member_name (b, f->name);
      if (f->label == PROTOBUF_C_LABEL_REPEATED)
        {
          gsize n = *(const size_t *)(base + f->quantifier_offset);
          const char *arr = *(char *const *)(base + f->offset);

          json_builder_begin_array (b);
          for (gsize k = 0; k < n; k++)
            add_value (b, f, arr + k * field_size (f));
          json_builder_end_array (b);
        }
      else
        add_value (b, f, base + f->offset);
    }
  json_builder_end_object (b);
}

/* BUILDER's document as one line. Caller frees. */
static char *
builder_text (JsonBuilder *b)
{
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  g_autoptr (JsonGenerator) gen = json_generator_new ();

  json_generator_set_root (gen, root);
  return json_generator_to_data (gen, NULL);
}

char *
sched_dashboard_event_json (const Drover__V1__Event *event)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  sched_json_message (b, &event->base);
  return builder_text (b);
}

/* --- the state document ------------------------------------------------- */

static void
member_string (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value ? value : "");
}

static void
member_int (JsonBuilder *b, const char *name, gint64 value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_int_value (b, value);
}

static void
member_double (JsonBuilder *b, const char *name, double value)
{
  json_builder_set_member_name (b, name);
  add_double (b, value);
}

static void
add_hosts (JsonBuilder *b, const SchedPolicy *policy, GPtrArray *hosts,
           GPtrArray *vms)
{
  g_autoptr (GHashTable) by_host = sched_vms_by_host (vms);

  json_builder_set_member_name (b, "hosts");
  json_builder_begin_array (b);
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *h = hosts->pdata[i];
      guint count = 0, vcpus = 0;
      guint64 memory = 0;
      double cpu_cap = h->info->cpus * policy->cpu_overcommit;
      double mem_cap
          = h->info->memory_total > policy->memory_reserve
                ? (double)(h->info->memory_total - policy->memory_reserve)
                : 0;

      sched_host_usage (h->name, g_hash_table_lookup (by_host, h->name), &count,
                        &vcpus, &memory, NULL);
      json_builder_begin_object (b);
      member_string (b, "name", h->name);
      member_string (b, "state", h->state);
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
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

static void
add_vms (JsonBuilder *b, GPtrArray *vms)
{
  json_builder_set_member_name (b, "vms");
  json_builder_begin_array (b);
  for (guint i = 0; i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      json_builder_begin_object (b);
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
      json_builder_set_member_name (b, "template");
      json_builder_add_boolean_value (b, vm->template != 0);
      member_int (b, "snapshots", vm->snapshots);
      member_string (b, "current_snapshot", vm->current_snapshot);
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

/* Jobs not over yet, whole; and the last SCHED_DASHBOARD_MIGRATIONS
 * finished migrations, newest first: predicted against measured. */
#define SCHED_DASHBOARD_MIGRATIONS 20

static void
add_jobs (JsonBuilder *b, GPtrArray *jobs)
{
  guint shown = 0;

  json_builder_set_member_name (b, "jobs");
  json_builder_begin_array (b);
  for (guint i = 0; i < jobs->len; i++)
    {
      const SchedJob *job = jobs->pdata[i];
      Drover__V1__Job msg;

      if (proto_job_state_is_final (job->state))
        continue;
      sched_job_msg (job, &msg);
      sched_json_message (b, &msg.base);
    }
  json_builder_end_array (b);

  json_builder_set_member_name (b, "migrations");
  json_builder_begin_array (b);
  for (guint i = jobs->len; i-- > 0 && shown < SCHED_DASHBOARD_MIGRATIONS;)
    {
      const SchedJob *job = jobs->pdata[i];

      if (strcmp (job->kind, PROTO_JOB_KIND_MIGRATE) != 0
          || !proto_job_state_is_final (job->state))
        continue;
      shown++;
      json_builder_begin_object (b);
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
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
}

char *
sched_dashboard_state_json (SchedService *svc, GArray *history, ProtoRole role,
                            const char *name, GError **error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (svc->store, error);
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GPtrArray) jobs = NULL;

  if (hosts == NULL
      || (vms = sched_store_list_vms (svc->store, NULL, error)) == NULL
      || (jobs = sched_store_list_jobs (svc->store, error)) == NULL)
    return NULL;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "me");
  json_builder_begin_object (b);
  member_string (b, "name", name);
  member_string (b, "role", proto_role_to_string (role));
  json_builder_set_member_name (b, "may_act");
  json_builder_add_boolean_value (b, (role & PROTO_ROLE_OPERATOR) != 0);
  json_builder_end_object (b);
  member_int (b, "now_ms", g_get_real_time () / 1000);

  add_hosts (b, &svc->policy, hosts, vms);
  add_vms (b, vms);
  add_jobs (b, jobs);
  member_double (b, "imbalance", sched_imbalance (&svc->policy, hosts, vms));
  json_builder_set_member_name (b, "imbalance_history");
  json_builder_begin_array (b);
  for (guint i = 0; i < history->len; i++)
    {
      const SchedSample *s = &g_array_index (history, SchedSample, i);

      json_builder_begin_array (b);
      json_builder_add_int_value (b, s->time_ms);
      add_double (b, s->value);
      json_builder_end_array (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return builder_text (b);
}
