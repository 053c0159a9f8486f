/* The store's rows: SchedHost, SchedVm and SchedJob constructors, copies,
 * setters and destructors, and the check that a host is up. Rows own
 * their strings and messages. */
#include "sched-store.h"

#include <string.h>

static char *
dup_str (const char *s)
{
  return g_strdup (s ? s : "");
}

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
  return host;
}

void
sched_host_free (SchedHost *host)
{
  if (host == NULL)
    return;
  g_free (host->name);
  g_free (host->address);
  proto_msg_free (host->info);
  g_free (host->state);
  g_free (host);
}

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
sched_vm_free (SchedVm *vm)
{
  if (vm == NULL)
    return;
  g_free (vm->name);
  g_free (vm->host);
  proto_msg_free (vm->spec);
  g_free (vm->state);
  proto_msg_free (vm->status);
  g_free (vm);
}

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
  SchedJob *copy = g_new0 (SchedJob, 1);

  copy->id = dup_str (job->id);
  copy->kind = dup_str (job->kind);
  copy->vm = dup_str (job->vm);
  copy->state = dup_str (job->state);
  copy->progress = job->progress;
  copy->message = dup_str (job->message);
  copy->error = dup_str (job->error);
  copy->created_ms = job->created_ms;
  copy->updated_ms = job->updated_ms;
  copy->source_host = dup_str (job->source_host);
  copy->dest_host = dup_str (job->dest_host);
  copy->migration = proto_msg_copy ((const ProtobufCMessage *)job->migration);
  copy->prediction = proto_msg_copy ((const ProtobufCMessage *)job->prediction);
  return copy;
}

void
sched_job_free (SchedJob *job)
{
  if (job == NULL)
    return;
  g_free (job->id);
  g_free (job->kind);
  g_free (job->vm);
  g_free (job->state);
  g_free (job->message);
  g_free (job->error);
  g_free (job->source_host);
  g_free (job->dest_host);
  proto_msg_free (job->migration);
  proto_msg_free (job->prediction);
  g_free (job);
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
