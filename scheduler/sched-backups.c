/* Backups on the scheduler's side (issue 14): CreateBackup, ListBackups,
 * GetBackup and RestoreBackup.
 *
 * The repositories live with the agents (--backup-repo NAME=PATH, a
 * directory each host of the repository sees); the scheduler keeps no
 * copy of their contents. ListBackups and GetBackup are forwarded to an
 * up host that has the repository, whose agent reads the manifests.
 *
 * CreateBackup (of a running or a stopped VM) and RestoreBackup are
 * storage jobs of SchedSnapshots
 * (SnapOp, sched-snap-op.c): one at a time per VM, none while the VM
 * migrates; the agent's StorageProgress goes into Job.storage and the
 * final message carries the Backup (Job.storage.backup).
 *
 * A restore as a new VM reads the backup first (GetBackup on the target
 * host), takes the new VM's vcpus, memory, disk size, kernel, initrd and
 * command line from it, places and reserves the VM (state creating) and
 * only then answers with the job; the agent writes the disk, defines the
 * domain on it and starts it when asked. A failed restore leaves no VM
 * record (the reservation goes with the job) and the agent leaves no
 * domain and no disk. A restore in place replaces the disk of the
 * stopped VM the backup was taken of.
 */
#include "sched-nics.h"
#include "sched-snapshots-private.h"

#include <string.h>

/* A backup id is a VM name, a time and a suffix (stor_repo_id_validate,
 * which the agent applies); the scheduler only caps it and keeps paths
 * out of its messages. */
#define BACKUP_ID_MAX 96

static gboolean
check_id (const char *id, GError **error)
{
  if (id[0] == '\0' || strlen (id) > BACKUP_ID_MAX || strchr (id, '/')
      || strstr (id, ".."))
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "'%.100s' is not a backup id (droverctl backup list)", id);
      return FALSE;
    }
  return TRUE;
}

/* TRUE when HOST reports repository REPO (or reports none at all: an
 * agent that does not say is given the name, and refuses it if it has
 * no such repository). */
static gboolean
host_may_have (const SchedHost *host, const char *repo)
{
  if (host->info->n_backup_repos == 0)
    return TRUE;
  for (gsize i = 0; i < host->info->n_backup_repos; i++)
    if (strcmp (host->info->backup_repos[i], repo) == 0)
      return TRUE;
  return FALSE;
}

/* REPO, or when "" the one repository HOST reports. */
static char *
resolve_repo (const SchedHost *host, const char *repo, GError **error)
{
  const Drover__V1__HostInfo *info = host->info;

  if (repo[0] != '\0')
    {
      if (!proto_name_validate ("repository", repo, error))
        return NULL;
      if (!host_may_have (host, repo))
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                       "host '%s' has no backup repository '%s'", host->name,
                       repo);
          return NULL;
        }
      return g_strdup (repo);
    }
  if (info->n_backup_repos == 1)
    return g_strdup (info->backup_repos[0]);
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "host '%s' reports %s backup repositories: give one "
               "(--repo NAME)",
               host->name, info->n_backup_repos == 0 ? "no" : "several");
  return NULL;
}

/* An up host to read repository REPO on: PREFER (a host name, may be
 * NULL) when it is up and may have it, else the first such host; never
 * SKIP (may be NULL). */
static SchedHost *
repo_host (SchedService *svc, const char *prefer, const char *skip,
           const char *repo, GError **error)
{
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (svc->store, error);
  guint found = G_MAXUINT;

  if (hosts == NULL)
    return NULL;
  for (guint i = 0; i < hosts->len; i++)
    {
      SchedHost *h = hosts->pdata[i];

      if (strcmp (h->state, PROTO_HOST_UP) != 0
          || (repo[0] != '\0' && !host_may_have (h, repo))
          || (skip != NULL && strcmp (h->name, skip) == 0))
        continue;
      if (prefer != NULL && strcmp (h->name, prefer) == 0)
        {
          found = i;
          break;
        }
      if (found == G_MAXUINT)
        found = i;
    }
  if (found == G_MAXUINT)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                   "no host that is up has backup repository '%s'",
                   repo[0] ? repo : "(default)");
      return NULL;
    }
  return g_ptr_array_steal_index (hosts, found);
}

/* Starts OP with the agent's METHOD (REQ) on CLIENT; *JOB_OUT a copy of
 * its job. */
static gboolean
launch (SchedSnapshots *s, SnapOp *op, ProtoClient *client, guint method,
        Drover__V1__AgentBackupRequest *req, const char *first,
        SchedJob **job_out)
{
  req->job_id = op->job->id;
  sched_snap_launch (s, op, client, method, &req->base, first);
  *job_out = sched_job_copy (op->job);
  return TRUE;
}

/* --- CreateBackup ------------------------------------------------------ */

gboolean
sched_backups_create (SchedService *svc,
                      const Drover__V1__CreateBackupRequest *req,
                      SchedJob **job_out, GError **error)
{
  SchedSnapshots *s = svc->snapshots;
  Drover__V1__AgentBackupRequest agent = DROVER__V1__AGENT_BACKUP_REQUEST__INIT;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autofree char *repo = NULL, *first = NULL;
  ProtoClient *client;
  SnapOp *op;

  if (!proto_name_validate ("VM", req->vm, error))
    return FALSE;
  client = sched_snap_lookup (s, req->vm, &vm, &host, error);
  if (client == NULL)
    return FALSE;
  if (strcmp (vm->state, PROTO_VM_RUNNING) != 0
      && strcmp (vm->state, PROTO_VM_SHUTOFF) != 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is %s: backups are taken of a running or a "
                   "stopped VM",
                   vm->name, vm->state);
      return FALSE;
    }
  repo = resolve_repo (host, req->repo, error);
  if (repo == NULL || !sched_snap_check_idle (s, vm->name, error))
    return FALSE;
  op = sched_snap_op_new (s, PROTO_JOB_KIND_BACKUP, "backup", vm->name,
                          host->name, vm->name, vm->name);
  agent.vm = vm->name;
  agent.repo = repo;
  agent.full = req->full;
  first = g_strdup_printf ("backup of VM %s into repository %s%s: starting "
                           "on host %s",
                           vm->name, repo, req->full ? " (full)" : "",
                           host->name);
  return launch (s, op, client, DROVER_AGENT_METHOD_CREATE_BACKUP, &agent,
                 first, job_out);
}

void
sched_backups_handle_create (ProtoServerCall *call,
                             const ProtobufCMessage *request,
                             gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;

  sched_backups_create (user_data, (const void *)request, &job, &error);
  sched_snap_reply_job (call, job, error);
}

/* --- reading a repository through an agent ----------------------------- */

/* A call in flight to an agent for an operator's CALL. */
typedef struct
{
  SchedService *svc;
  ProtoServerCall *call;
  char *host;
  char *repo;
  Drover__V1__RestoreBackupRequest *restore; /* RestoreBackup; owned */
  /* An internal restore (CALL NULL): whom to tell, and the host to avoid
   * when another has room. */
  SchedRestoreStarted started;
  gpointer started_data;
  char *avoid;
  /* A read (ListBackups, GetBackup) that another host may answer when the
   * first cannot be reached: what to ask again. */
  guint method;
  char *asked_repo;
  char *vm;
  char *backup_id;
  gboolean retried;
} Forward;

static void
forward_free (Forward *f)
{
  g_free (f->host);
  g_free (f->repo);
  g_free (f->avoid);
  g_free (f->asked_repo);
  g_free (f->vm);
  g_free (f->backup_id);
  proto_msg_free (f->restore);
  g_free (f);
}

/* Sends an AgentRepoRequest (REPO, VM, BACKUP_ID) on METHOD to an up host
 * that has REPO (PREFER first); DONE gets the Forward (borrowed: DONE
 * never runs before this returns). NULL with ERROR when no host can be
 * asked. */
static Forward *
forward_skip (SchedService *svc, ProtoServerCall *call, const char *prefer,
              const char *skip, const char *repo, const char *vm,
              const char *backup_id, guint method, ProtoReplyFunc done,
              GError **error)
{
  Drover__V1__AgentRepoRequest req = DROVER__V1__AGENT_REPO_REQUEST__INIT;
  g_autoptr (SchedHost) host = NULL;
  g_autofree char *name = NULL;
  ProtoClient *client;
  Forward *f;

  if (repo[0] != '\0' && !proto_name_validate ("repository", repo, error))
    return NULL;
  host = repo_host (svc, prefer, skip, repo, error);
  if (host == NULL)
    return NULL;
  name = resolve_repo (host, repo, error);
  if (name == NULL
      || (client = sched_agents_client (svc->agents, host, error)) == NULL)
    return NULL;
  f = g_new0 (Forward, 1);
  f->svc = svc;
  f->call = call;
  f->host = g_strdup (host->name);
  f->repo = g_steal_pointer (&name);
  f->method = method;
  f->asked_repo = g_strdup (repo);
  f->vm = g_strdup (vm);
  f->backup_id = g_strdup (backup_id);
  req.repo = f->repo;
  req.vm = (char *)vm;
  req.backup_id = (char *)backup_id;
  sched_agents_call (svc->agents, client, method, &req.base,
                     SCHED_AGENT_CALL_TIMEOUT_MS, done, f);
  return f;
}

/* The host of VM NAME when the store knows it, else NULL. */
static char *
vm_host (SchedService *svc, const char *name)
{
  g_autoptr (SchedVm) vm = NULL;

  if (name[0] == '\0')
    return NULL;
  vm = sched_store_get_vm (svc->store, name, NULL);
  return vm ? g_strdup (vm->host) : NULL;
}

static Forward *
forward (SchedService *svc, ProtoServerCall *call, const char *prefer,
         const char *repo, const char *vm, const char *backup_id, guint method,
         ProtoReplyFunc done, GError **error)
{
  return forward_skip (svc, call, prefer, NULL, repo, vm, backup_id, method,
                       done, error);
}

/* The agent's answer goes to the operator as it is. A host that cannot
 * be reached (its agent gone, not yet marked down) is skipped once for
 * another up host with the repository: a lost host is when the backups
 * are needed. */
static void
forward_done (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  Forward *f = user_data;

  if (error != NULL && !f->retried
      && sched_error_to_status (error) == PROTO_STATUS_UNAVAILABLE)
    {
      Forward *again
          = forward_skip (f->svc, f->call, NULL, f->host, f->asked_repo, f->vm,
                          f->backup_id, f->method, forward_done, NULL);

      if (again != NULL)
        {
          g_message ("host %s could not be reached (%s): asked host %s",
                     f->host, error->message, again->host);
          again->retried = TRUE;
          forward_free (f);
          return;
        }
    }
  if (error != NULL)
    sched_agents_call_fail (f->call, f->host, error);
  else
    proto_server_call_reply (f->call, reply);
  forward_free (f);
}

void
sched_backups_handle_list (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__ListBackupsRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autofree char *prefer = NULL;

  if (req->vm[0] != '\0' && !proto_name_validate ("VM", req->vm, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  prefer = vm_host (svc, req->vm);
  if (forward (svc, call, prefer, req->repo, req->vm, "",
               DROVER_AGENT_METHOD_LIST_BACKUPS, forward_done, &error)
      == NULL)
    sched_call_fail (call, error);
}

/* The VM a backup id names (its id starts with it), for the host to ask
 * first; NULL when the id does not say. */
static char *
id_vm (SchedService *svc, const char *id)
{
  g_autofree char *vm = NULL;
  const char *t = strstr (id, "-2");

  /* VM-YYYYmmddTHHMMSSZ-XXXXXX: the VM ends before the date. */
  for (; t != NULL; t = strstr (t + 1, "-2"))
    {
      g_free (vm);
      vm = g_strndup (id, t - id);
      if (proto_name_validate ("VM", vm, NULL))
        {
          char *host = vm_host (svc, vm);

          if (host)
            return host;
        }
    }
  return NULL;
}

void
sched_backups_handle_get (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__BackupRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autofree char *prefer = NULL;

  if (!check_id (req->id, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  prefer = id_vm (svc, req->id);
  if (forward (svc, call, prefer, req->repo, "", req->id,
               DROVER_AGENT_METHOD_GET_BACKUP, forward_done, &error)
      == NULL)
    sched_call_fail (call, error);
}

/* --- RestoreBackup ----------------------------------------------------- */

/* NAME is free: no VM of that name in the store. */
static gboolean
check_new_name (SchedService *svc, const char *name, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) existing = sched_store_get_vm (svc->store, name, &local);

  if (existing != NULL)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_EXISTS,
                   "VM '%s' already exists (on host '%s')", existing->name,
                   existing->host);
      return FALSE;
    }
  if (!g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  return TRUE;
}

/* The spec of the new VM NAME restored from backup B, or NULL. */
static Drover__V1__VmSpec *
restored_spec (const Drover__V1__Backup *b, const char *name, GError **error)
{
  Drover__V1__VmSpec *spec;

  if (b->spec == NULL || b->spec->vcpus == 0 || b->spec->memory == 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "backup %s records no Drover VM definition to make VM "
                   "'%s' from",
                   b->id, name);
      return NULL;
    }
  spec = proto_msg_copy (&b->spec->base);
  g_free (spec->name == protobuf_c_empty_string ? NULL : spec->name);
  spec->name = g_strdup (name);
  for (gsize i = 0; i < b->n_disks; i++)
    if (strcmp (b->disks[i]->target, "vda") == 0)
      spec->disk = b->disks[i]->size;
  return spec;
}

/* Places and reserves the new VM of F's restore from backup B, and
 * starts its job. */
static gboolean
restore_start (Forward *f, const Drover__V1__Backup *b, SchedJob **job_out,
               GError **error)
{
  SchedService *svc = f->svc;
  SchedSnapshots *s = svc->snapshots;
  const Drover__V1__RestoreBackupRequest *req = f->restore;
  Drover__V1__AgentBackupRequest agent = DROVER__V1__AGENT_BACKUP_REQUEST__INIT;
  g_autoptr (Drover__V1__VmSpec) spec = restored_spec (b, req->name, error);
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autofree char *placed = NULL, *first = NULL;
  ProtoClient *client;
  SnapOp *op;

  if (spec != NULL && s->stopped)
    g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                 "the scheduler is shutting down");
  if (spec == NULL || s->stopped || !check_new_name (svc, req->name, error))
    return FALSE;
  hosts = sched_store_list_hosts (svc->store, error);
  if (hosts != NULL)
    vms = sched_store_list_vms (svc->store, NULL, error);
  if (vms == NULL)
    return FALSE;
  /* Only hosts that may have the repository are candidates. */
  for (guint i = hosts->len; i-- > 0;)
    if (!host_may_have (hosts->pdata[i], f->repo))
      g_ptr_array_remove_index (hosts, i);
  /* A restore drill's scratch VM boots without network: it must not
   * answer for the VM it was made from. */
  if (f->call == NULL)
    {
      for (gsize i = 0; i < spec->n_nics; i++)
        proto_msg_free (spec->nics[i]);
      g_clear_pointer (&spec->nics, g_free);
      spec->n_nics = 0;
    }
  /* A new VM: the backed-up VM's networks, new MACs (the original may
   * still exist). */
  if (!sched_nics_prepare (svc->store, spec, vms, NULL, TRUE, error))
    return FALSE;
  sched_migrator_add_reservations (svc->migrator, vms);
  if (f->avoid != NULL)
    {
      /* Another host than AVOID when one has room, else any. */
      g_autoptr (GPtrArray) others = g_ptr_array_new ();

      for (guint i = 0; i < hosts->len; i++)
        if (strcmp (((SchedHost *)hosts->pdata[i])->name, f->avoid) != 0)
          g_ptr_array_add (others, hosts->pdata[i]);
      placed = sched_place (&svc->policy, others, vms, spec, "", NULL);
    }
  if (placed == NULL)
    placed = sched_place (&svc->policy, hosts, vms, spec, req->host, error);
  if (placed == NULL
      || (client = sched_agents_client_up (svc->agents, placed, NULL, error))
             == NULL)
    return FALSE;
  vm = sched_vm_new (spec, placed, PROTO_VM_CREATING, NULL,
                     sched_snap_now_ms (s));
  if (!sched_store_put_vm (svc->store, vm, error))
    return FALSE;
  op = sched_snap_op_new (s, PROTO_JOB_KIND_RESTORE, "restore", req->name,
                          placed, req->name, req->name);
  op->new_vm = TRUE;
  agent.repo = f->repo;
  agent.backup_id = b->id;
  agent.target_vm = req->name;
  agent.spec = spec;
  agent.start = req->start;
  first = g_strdup_printf ("restore of backup %s as VM %s: starting on host %s",
                           b->id, req->name, placed);
  return launch (s, op, client, DROVER_AGENT_METHOD_RESTORE_BACKUP, &agent,
                 first, job_out);
}

static void
restore_read (const ProtobufCMessage *reply, const GError *error,
              gpointer user_data)
{
  Forward *f = user_data;
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedJob) job = NULL;

  if (error == NULL)
    restore_start (f, (const void *)reply, &job, &local);
  if (f->call == NULL)
    f->started (job, error ? error : local, f->started_data);
  else if (error != NULL)
    sched_agents_call_fail (f->call, f->host, error);
  else
    sched_snap_reply_job (f->call, job, local);
  forward_free (f);
}

/* --in-place: the stopped VM the backup was taken of gets its disk
 * back. */
static gboolean
restore_in_place (SchedService *svc,
                  const Drover__V1__RestoreBackupRequest *req, const char *vm,
                  SchedJob **job_out, GError **error)
{
  SchedSnapshots *s = svc->snapshots;
  Drover__V1__AgentBackupRequest agent = DROVER__V1__AGENT_BACKUP_REQUEST__INIT;
  g_autoptr (SchedVm) row = NULL;
  g_autoptr (SchedHost) host = NULL;
  g_autofree char *repo = NULL, *first = NULL;
  ProtoClient *client = sched_snap_lookup (s, vm, &row, &host, error);
  SnapOp *op;

  if (client == NULL)
    return FALSE;
  if (strcmp (row->state, PROTO_VM_SHUTOFF) != 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is %s: a restore in place needs it stopped "
                   "(droverctl vm stop %s), or restore as a new VM (--as "
                   "NEW)",
                   vm, row->state, vm);
      return FALSE;
    }
  repo = resolve_repo (host, req->repo, error);
  if (repo == NULL || !sched_snap_check_idle (s, vm, error))
    return FALSE;
  op = sched_snap_op_new (s, PROTO_JOB_KIND_RESTORE, "restore", vm, host->name,
                          vm, vm);
  agent.repo = repo;
  agent.backup_id = req->id;
  agent.target_vm = (char *)vm;
  agent.in_place = TRUE;
  first = g_strdup_printf ("restore of backup %s in place of VM %s: starting "
                           "on host %s",
                           req->id, vm, host->name);
  return launch (s, op, client, DROVER_AGENT_METHOD_RESTORE_BACKUP, &agent,
                 first, job_out);
}

void
sched_backups_handle_restore (ProtoServerCall *call,
                              const ProtobufCMessage *request,
                              gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__RestoreBackupRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = NULL;
  g_autofree char *vm = NULL;
  Forward *f;

  if (!check_id (req->id, &error))
    goto fail;
  if (req->in_place)
    {
      /* The id names the VM: VM-YYYYmmddTHHMMSSZ-XXXXXX. */
      const char *t
          = strlen (req->id) > 24 ? req->id + strlen (req->id) - 24 : NULL;

      if (req->name[0] != '\0' || req->host[0] != '\0' || req->start)
        g_set_error (&error, SCHED_ERROR, SCHED_ERROR_INVALID,
                     "a restore in place takes no new name, host or --start");
      else if (t == NULL || *t != '-')
        g_set_error (&error, SCHED_ERROR, SCHED_ERROR_INVALID,
                     "'%s' is not a backup id (droverctl backup list)",
                     req->id);
      else
        {
          vm = g_strndup (req->id, t - req->id);
          restore_in_place (svc, req, vm, &job, &error);
        }
      sched_snap_reply_job (call, job, error);
      return;
    }
  if (!proto_name_validate ("VM", req->name, &error)
      || (req->host[0] != '\0'
          && !proto_name_validate ("host", req->host, &error))
      || !check_new_name (svc, req->name, &error))
    goto fail;
  /* The backup is read where the VM will be, when that is given. */
  f = forward (svc, call, req->host[0] ? req->host : NULL, req->repo, "",
               req->id, DROVER_AGENT_METHOD_GET_BACKUP, restore_read, &error);
  if (f != NULL)
    {
      f->restore = proto_msg_copy (request);
      return;
    }
fail:
  sched_call_fail (call, error);
}

gboolean
sched_backups_restore_new (SchedService *svc, const char *repo, const char *id,
                           const char *name, const char *avoid,
                           SchedRestoreStarted started, gpointer user_data,
                           GError **error)
{
  Forward *f;

  if (!check_id (id, error) || !proto_name_validate ("VM", name, error)
      || !check_new_name (svc, name, error))
    return FALSE;
  f = forward (svc, NULL, NULL, repo, "", id, DROVER_AGENT_METHOD_GET_BACKUP,
               restore_read, error);
  if (f == NULL)
    return FALSE;
  f->started = started;
  f->started_data = user_data;
  f->avoid = g_strdup (avoid);
  f->restore = g_new0 (Drover__V1__RestoreBackupRequest, 1);
  drover__v1__restore_backup_request__init (f->restore);
  f->restore->id = g_strdup (id);
  f->restore->repo = g_strdup (repo);
  f->restore->name = g_strdup (name);
  f->restore->start = TRUE;
  return TRUE;
}
