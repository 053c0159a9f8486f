/* The store's rows: SchedHost, SchedVm, SchedJob and SchedSnapshot. Each row
 * type is described once by its fields (sched_row_types); freeing and copying
 * go through that description, and so do the store backends' reading and
 * writing. Rows own their strings and messages. The constructors, setters
 * and the check that a host is up are typed. */
#include "sched-store.h"

#include <string.h>

#define FIELD(Type, member, kind)                                              \
  {                                                                            \
#member, SCHED_FIELD_##kind, G_STRUCT_OFFSET(Type, member), NULL           \
  }
#define MSG_FIELD(Type, member, kind, desc)                                    \
  {                                                                            \
#member, SCHED_FIELD_##kind, G_STRUCT_OFFSET(Type, member), &desc          \
  }

static const SchedField host_fields[] = {
  FIELD (SchedHost, name, TEXT),
  FIELD (SchedHost, address, TEXT),
  MSG_FIELD (SchedHost, info, MSG, drover__v1__host_info__descriptor),
  FIELD (SchedHost, state, TEXT),
  FIELD (SchedHost, last_seen_ms, INT64),
  FIELD (SchedHost, maintenance, TEXT),
};

static const SchedField vm_fields[] = {
  FIELD (SchedVm, name, TEXT),
  FIELD (SchedVm, host, TEXT),
  MSG_FIELD (SchedVm, spec, MSG, drover__v1__vm_spec__descriptor),
  FIELD (SchedVm, state, TEXT),
  MSG_FIELD (SchedVm, status, MSG_OPT, drover__v1__vm_status__descriptor),
  FIELD (SchedVm, updated_ms, INT64),
  FIELD (SchedVm, template, INT64),
  FIELD (SchedVm, base, TEXT),
  FIELD (SchedVm, current_snapshot, TEXT),
  FIELD (SchedVm, snapshots, INT64),
  FIELD (SchedVm, labels, TEXT),
};

static const SchedField job_fields[] = {
  FIELD (SchedJob, id, TEXT),
  FIELD (SchedJob, kind, TEXT),
  FIELD (SchedJob, vm, TEXT),
  FIELD (SchedJob, state, TEXT),
  FIELD (SchedJob, progress, DOUBLE),
  FIELD (SchedJob, message, TEXT),
  FIELD (SchedJob, error, TEXT),
  FIELD (SchedJob, created_ms, INT64),
  FIELD (SchedJob, updated_ms, INT64),
  FIELD (SchedJob, source_host, TEXT),
  FIELD (SchedJob, dest_host, TEXT),
  MSG_FIELD (SchedJob, migration, MSG_OPT,
             drover__v1__migration_progress__descriptor),
  MSG_FIELD (SchedJob, prediction, MSG_OPT,
             drover__v1__migration_prediction__descriptor),
  MSG_FIELD (SchedJob, storage, MSG_OPT,
             drover__v1__storage_progress__descriptor),
};

static const SchedField snapshot_fields[] = {
  FIELD (SchedSnapshot, id, TEXT),
  FIELD (SchedSnapshot, vm, TEXT),
  FIELD (SchedSnapshot, name, TEXT),
  FIELD (SchedSnapshot, created_ms, INT64),
  MSG_FIELD (SchedSnapshot, info, MSG, drover__v1__snapshot__descriptor),
};

static const SchedField repo_fields[] = {
  FIELD (SchedRepo, name, TEXT),
  FIELD (SchedRepo, path, TEXT),
  FIELD (SchedRepo, created_ms, INT64),
};

static const SchedField schedule_fields[] = {
  FIELD (SchedScheduleRow, name, TEXT),
  FIELD (SchedScheduleRow, next_run_ms, INT64),
  MSG_FIELD (SchedScheduleRow, spec, MSG, drover__v1__schedule__descriptor),
};

static const SchedField network_fields[] = {
  FIELD (SchedNetworkRow, name, TEXT),
  MSG_FIELD (SchedNetworkRow, spec, MSG, drover__v1__network__descriptor),
};

static const SchedField schedule_vm_fields[] = {
  FIELD (SchedScheduleVmRow, key, TEXT),
  FIELD (SchedScheduleVmRow, schedule, TEXT),
  FIELD (SchedScheduleVmRow, vm, TEXT),
  MSG_FIELD (SchedScheduleVmRow, state, MSG,
             drover__v1__schedule_vm__descriptor),
};

const SchedRowType sched_row_types[SCHED_N_TABLES] = {
  [SCHED_TABLE_HOSTS] = { "host", "hosts", sizeof (SchedHost), host_fields,
                          G_N_ELEMENTS (host_fields) },
  [SCHED_TABLE_VMS]
  = { "VM", "vms", sizeof (SchedVm), vm_fields, G_N_ELEMENTS (vm_fields) },
  [SCHED_TABLE_JOBS]
  = { "job", "jobs", sizeof (SchedJob), job_fields, G_N_ELEMENTS (job_fields) },
  [SCHED_TABLE_SNAPSHOTS] = { "snapshot", "snapshots", sizeof (SchedSnapshot),
                              snapshot_fields, G_N_ELEMENTS (snapshot_fields) },
  [SCHED_TABLE_REPOS] = { "repository", "repos", sizeof (SchedRepo),
                          repo_fields, G_N_ELEMENTS (repo_fields) },
  [SCHED_TABLE_SCHEDULES]
  = { "schedule", "schedules", sizeof (SchedScheduleRow), schedule_fields,
      G_N_ELEMENTS (schedule_fields) },
  [SCHED_TABLE_NETWORKS] = { "network", "networks", sizeof (SchedNetworkRow),
                             network_fields, G_N_ELEMENTS (network_fields) },
  [SCHED_TABLE_SCHEDULE_VMS]
  = { "schedule's VM", "schedule_vms", sizeof (SchedScheduleVmRow),
      schedule_vm_fields, G_N_ELEMENTS (schedule_vm_fields) },
};

#define HOST_TYPE (&sched_row_types[SCHED_TABLE_HOSTS])
#define VM_TYPE (&sched_row_types[SCHED_TABLE_VMS])
#define JOB_TYPE (&sched_row_types[SCHED_TABLE_JOBS])
#define SNAPSHOT_TYPE (&sched_row_types[SCHED_TABLE_SNAPSHOTS])
#define REPO_TYPE (&sched_row_types[SCHED_TABLE_REPOS])

static char *
dup_str (const char *s)
{
  return g_strdup (s ? s : "");
}

const char *
sched_row_key (const SchedRowType *type, gconstpointer row)
{
  return G_STRUCT_MEMBER (const char *, row, type->fields[0].offset);
}

gpointer
sched_row_copy (const SchedRowType *type, gconstpointer row)
{
  gpointer copy = g_malloc0 (type->size);

  for (guint i = 0; i < type->n_fields; i++)
    {
      const SchedField *f = &type->fields[i];
      gconstpointer from = G_STRUCT_MEMBER_P (row, f->offset);
      gpointer to = G_STRUCT_MEMBER_P (copy, f->offset);

      switch (f->kind)
        {
        case SCHED_FIELD_TEXT:
          *(char **)to = dup_str (*(const char *const *)from);
          break;
        case SCHED_FIELD_INT64:
          *(gint64 *)to = *(const gint64 *)from;
          break;
        case SCHED_FIELD_DOUBLE:
          *(double *)to = *(const double *)from;
          break;
        case SCHED_FIELD_MSG:
        case SCHED_FIELD_MSG_OPT:
          *(gpointer *)to = proto_msg_copy (*(const gconstpointer *)from);
          break;
        }
    }
  return copy;
}

void
sched_row_free (const SchedRowType *type, gpointer row)
{
  if (row == NULL)
    return;
  for (guint i = 0; i < type->n_fields; i++)
    {
      const SchedField *f = &type->fields[i];

      if (f->kind == SCHED_FIELD_TEXT)
        g_free (G_STRUCT_MEMBER (char *, row, f->offset));
      else if (f->kind == SCHED_FIELD_MSG || f->kind == SCHED_FIELD_MSG_OPT)
        proto_msg_free (G_STRUCT_MEMBER (gpointer, row, f->offset));
    }
  g_free (row);
}

/* --- hosts ------------------------------------------------------------- */

SchedHost *
sched_host_new (const Drover__V1__HostInfo *info, const char *state,
                gint64 last_seen_ms)
{
  SchedHost *host = g_new0 (SchedHost, 1);

  host->info = proto_msg_copy (&info->base);
  host->name = dup_str (info->name);
  host->address = dup_str (info->address);
  host->state = dup_str (state);
  host->last_seen_ms = last_seen_ms;
  host->maintenance = g_strdup ("");
  return host;
}

void
sched_host_free (SchedHost *host)
{
  sched_row_free (HOST_TYPE, host);
}

gboolean
sched_host_check_up (const SchedHost *host, GError **error)
{
  if (strcmp (host->state, PROTO_HOST_UP) == 0)
    return TRUE;
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE, "host '%s' is down",
               host->name);
  return FALSE;
}

/* --- VMs --------------------------------------------------------------- */

SchedVm *
sched_vm_new (const Drover__V1__VmSpec *spec, const char *host,
              const char *state, const Drover__V1__VmStatus *status,
              gint64 updated_ms)
{
  SchedVm *vm = g_new0 (SchedVm, 1);

  vm->spec = proto_msg_copy (&spec->base);
  vm->name = dup_str (spec->name);
  vm->host = dup_str (host);
  vm->state = dup_str (state);
  vm->status = status ? proto_msg_copy (&status->base) : NULL;
  vm->updated_ms = updated_ms;
  vm->base = g_strdup ("");
  vm->current_snapshot = dup_str (status ? status->current_snapshot : NULL);
  vm->template = status && status->template_;
  vm->snapshots = status ? status->snapshots : 0;
  vm->labels = g_strdup ("");
  return vm;
}

void
sched_vm_set_status (SchedVm *vm, const Drover__V1__VmStatus *status)
{
  proto_msg_free (vm->status);
  vm->status = status ? proto_msg_copy (&status->base) : NULL;
}

void
sched_vm_set_state (SchedVm *vm, const char *state)
{
  g_free (vm->state);
  vm->state = dup_str (state);
}

void
sched_host_set_maintenance (SchedHost *host, const char *state)
{
  g_free (host->maintenance);
  host->maintenance = dup_str (state);
}

void
sched_vm_free (SchedVm *vm)
{
  sched_row_free (VM_TYPE, vm);
}

/* --- jobs -------------------------------------------------------------- */

SchedJob *
sched_job_new (const char *kind, const char *vm, const char *state,
               gint64 now_ms)
{
  SchedJob *job = g_new0 (SchedJob, 1);

  job->id = g_uuid_string_random ();
  job->kind = dup_str (kind);
  job->vm = dup_str (vm);
  job->state = dup_str (state);
  job->message = g_strdup ("");
  job->error = g_strdup ("");
  job->source_host = g_strdup ("");
  job->dest_host = g_strdup ("");
  job->created_ms = job->updated_ms = now_ms;
  return job;
}

SchedJob *
sched_job_copy (const SchedJob *job)
{
  return sched_row_copy (JOB_TYPE, job);
}

void
sched_job_free (SchedJob *job)
{
  sched_row_free (JOB_TYPE, job);
}

/* --- snapshots --------------------------------------------------------- */

char *
sched_snapshot_key (const char *vm, const char *name)
{
  return g_strconcat (vm, "/", name, NULL);
}

SchedSnapshot *
sched_snapshot_new (const char *vm, const Drover__V1__Snapshot *info)
{
  SchedSnapshot *snap = g_new0 (SchedSnapshot, 1);

  snap->id = sched_snapshot_key (vm, info->name);
  snap->vm = dup_str (vm);
  snap->name = dup_str (info->name);
  snap->created_ms = info->created_ms;
  snap->info = proto_msg_copy (&info->base);
  return snap;
}

void
sched_snapshot_free (SchedSnapshot *snap)
{
  sched_row_free (SNAPSHOT_TYPE, snap);
}

SchedRepo *
sched_repo_new (const char *name, const char *path, gint64 created_ms)
{
  SchedRepo *repo = g_new0 (SchedRepo, 1);

  repo->name = dup_str (name);
  repo->path = dup_str (path);
  repo->created_ms = created_ms;
  return repo;
}

void
sched_repo_free (SchedRepo *repo)
{
  sched_row_free (REPO_TYPE, repo);
}

/* --- schedules --------------------------------------------------------- */

SchedScheduleRow *
sched_schedule_row_new (const Drover__V1__Schedule *spec)
{
  SchedScheduleRow *row = g_new0 (SchedScheduleRow, 1);

  row->name = dup_str (spec->name);
  row->next_run_ms = spec->next_run_ms;
  row->spec = proto_msg_copy (&spec->base);
  return row;
}

void
sched_schedule_row_free (SchedScheduleRow *row)
{
  sched_row_free (&sched_row_types[SCHED_TABLE_SCHEDULES], row);
}

/* --- networks ---------------------------------------------------------- */

SchedNetworkRow *
sched_network_row_new (const Drover__V1__Network *spec)
{
  SchedNetworkRow *row = g_new0 (SchedNetworkRow, 1);

  row->name = dup_str (spec->name);
  row->spec = proto_msg_copy (&spec->base);
  /* Where the bridge is comes from the hosts' reports, never the store. */
  for (gsize i = 0; i < row->spec->n_hosts; i++)
    proto_msg_free (row->spec->hosts[i]);
  g_clear_pointer (&row->spec->hosts, g_free);
  row->spec->n_hosts = 0;
  return row;
}

void
sched_network_row_free (SchedNetworkRow *row)
{
  sched_row_free (&sched_row_types[SCHED_TABLE_NETWORKS], row);
}

/* --- a VM's runs of a schedule ------------------------------------------ */

SchedScheduleVmRow *
sched_schedule_vm_row_new (const Drover__V1__ScheduleVm *state)
{
  SchedScheduleVmRow *row = g_new0 (SchedScheduleVmRow, 1);

  row->key = g_strconcat (state->schedule, "/", state->vm, NULL);
  row->schedule = dup_str (state->schedule);
  row->vm = dup_str (state->vm);
  row->state = proto_msg_copy (&state->base);
  return row;
}

void
sched_schedule_vm_row_free (SchedScheduleVmRow *row)
{
  sched_row_free (&sched_row_types[SCHED_TABLE_SCHEDULE_VMS], row);
}
