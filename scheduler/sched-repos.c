/* SchedRepos (see sched-repos.h).
 *
 * AddRepo checks the name and the path's form, then asks every host that
 * is up to attach it and waits for all answers: the repository is stored
 * only when at least one host attached it, so a path every agent refuses
 * (outside their --backup-repo-root) changes nothing, and the reply says
 * each host's reason. A host that registers later attaches the stored
 * repositories then.
 *
 * Which hosts have a repository open is what they last reported
 * (HostInfo.backup_repos in the host row), not what the scheduler asked:
 * the agent is the authority on its own mounts.
 *
 * The verify and gc jobs are in sched-repo-jobs.c.
 */
#include "sched-repos-private.h"

#include <string.h>

SchedRepos *
sched_repos_new (SchedService *svc)
{
  SchedRepos *r = g_new0 (SchedRepos, 1);

  r->svc = svc;
  r->ops = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                  sched_repo_op_free);
  return r;
}

void
sched_repos_stop (SchedRepos *r)
{
  r->stopped = TRUE;
}

void
sched_repos_free (SchedRepos *r)
{
  g_hash_table_destroy (r->ops);
  g_free (r);
}
/* --- who has what ------------------------------------------------------------
 */

static gboolean
host_reports (const SchedHost *host, const char *repo)
{
  for (gsize i = 0; i < host->info->n_backup_repos; i++)
    if (strcmp (host->info->backup_repos[i], repo) == 0)
      return TRUE;
  return FALSE;
}

static gboolean
host_up (const SchedHost *host)
{
  return strcmp (host->state, PROTO_HOST_UP) == 0;
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

/* Every repository name known: stored ones, then those only hosts that
 * are up report; sorted, each once. */
static GPtrArray *
known_names (SchedService *svc, GError **error)
{
  g_autoptr (GPtrArray) stored = sched_store_list_repos (svc->store, error);
  g_autoptr (GPtrArray) hosts = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);

  if (!stored || !(hosts = sched_store_list_hosts (svc->store, error)))
    return NULL;
  for (guint i = 0; i < stored->len; i++)
    g_ptr_array_add (names, g_strdup (((SchedRepo *)stored->pdata[i])->name));
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *h = hosts->pdata[i];

      /* What a host reports is its word only: names that are not
       * repository names are passed over. */
      for (gsize j = 0; host_up (h) && j < h->info->n_backup_repos; j++)
        if (proto_name_validate ("repository", h->info->backup_repos[j], NULL))
          g_ptr_array_add (names, g_strdup (h->info->backup_repos[j]));
    }
  g_ptr_array_sort (names, compare_names);
  for (guint i = 1; i < names->len;)
    if (strcmp (names->pdata[i], names->pdata[i - 1]) == 0)
      g_ptr_array_remove_index (names, i);
    else
      i++;
  return g_steal_pointer (&names);
}

char *
sched_repos_resolve (SchedService *svc, const char *repo, GError **error)
{
  g_autoptr (GPtrArray) names = NULL;
  g_autofree char *list = NULL;

  if (repo && *repo && !proto_name_validate ("repository", repo, error))
    return NULL;
  names = known_names (svc, error);
  if (!names)
    return NULL;
  for (guint i = 0; repo && *repo && i < names->len; i++)
    if (strcmp (names->pdata[i], repo) == 0)
      return g_strdup (repo);
  if (repo && *repo)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                   "no backup repository named %s", repo);
      return NULL;
    }
  if (names->len == 1)
    return g_strdup (names->pdata[0]);
  if (names->len == 0)
    {
      g_set_error_literal (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                           "there is no backup repository: add one with "
                           "droverctl repo add NAME PATH");
      return NULL;
    }
  g_ptr_array_add (names, NULL);
  list = g_strjoinv (", ", (char **)names->pdata);
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "there are several backup repositories (%s): name one with "
               "--repo",
               list);
  return NULL;
}

gboolean
sched_repos_pick_host (SchedService *svc, const char *repo, char **host,
                       GError **error)
{
  g_autofree char *name = sched_repos_resolve (svc, repo, error);
  g_autoptr (GPtrArray) hosts = NULL;

  *host = NULL;
  if (!name || !(hosts = sched_store_list_hosts (svc->store, error)))
    return FALSE;
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *h = hosts->pdata[i];

      if (host_up (h) && host_reports (h, name))
        {
          *host = g_strdup (h->name);
          return TRUE;
        }
    }
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
               "no host that is up has backup repository %s open", name);
  return FALSE;
}

/* --- AddRepo and attaching ---------------------------------------------------
 */

/* One AddRepo waiting for its hosts' AttachRepo answers. */
typedef struct
{
  SchedService *svc;
  ProtoServerCall *call; /* NULL: a registering host's attach */
  SchedRepo *row;
  guint waiting;
  GPtrArray *attached; /* host names */
  GPtrArray *failures; /* "host: why" */
} AddOp;

typedef struct
{
  AddOp *add;
  char *host;
} AttachOne;

static void
add_op_free (AddOp *a)
{
  sched_repo_free (a->row);
  g_ptr_array_unref (a->attached);
  g_ptr_array_unref (a->failures);
  g_free (a);
}

static void
add_op_finish (AddOp *a)
{
  SchedService *svc = a->svc;
  Drover__V1__Repo reply = DROVER__V1__REPO__INIT;
  g_autoptr (GError) error = NULL;
  g_autofree char *why = NULL;

  g_ptr_array_add (a->failures, NULL);
  why = g_strjoinv ("; ", (char **)a->failures->pdata);
  g_ptr_array_remove_index (a->failures, a->failures->len - 1);
  if (a->attached->len == 0)
    {
      g_set_error (&error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "backup repository %s not added: no host attached %s (%s)",
                   a->row->name, a->row->path, why);
      drover_warning (NULL, NULL, NULL, "%s", error->message);
      sched_call_fail (a->call, error);
      add_op_free (a);
      return;
    }
  if (!sched_store_put_repo (svc->store, a->row, &error))
    {
      sched_call_fail (a->call, error);
      add_op_free (a);
      return;
    }
  g_ptr_array_add (a->attached, NULL);
  {
    g_autofree char *hosts = g_strjoinv (", ", (char **)a->attached->pdata);

    drover_message (NULL, NULL, NULL,
                    "backup repository %s added at %s: attached by %s%s%s",
                    a->row->name, a->row->path, hosts, *why ? "; not by " : "",
                    why);
    sched_events_emit (svc->events, SCHED_EVENT_REPO_ADDED, NULL, NULL, NULL,
                       NULL, "backup repository %s at %s, on %s", a->row->name,
                       a->row->path, hosts);
  }
  reply.name = a->row->name;
  reply.path = a->row->path;
  reply.created_ms = a->row->created_ms;
  reply.stored = TRUE;
  reply.n_hosts = a->attached->len - 1;
  reply.hosts = (char **)a->attached->pdata;
  reply.n_failures = a->failures->len;
  reply.failures = (char **)a->failures->pdata;
  proto_server_call_reply (a->call, &reply.base);
  add_op_free (a);
}

static void
attached (const ProtobufCMessage *msg, const GError *error, gpointer data)
{
  AttachOne *one = data;
  AddOp *a = one->add;

  if (error)
    {
      drover_warning (NULL, NULL, one->host,
                      "backup repository %s: host %s did not attach it: %s",
                      a->row->name, one->host, error->message);
      g_ptr_array_add (a->failures,
                       g_strdup_printf ("%s: %s", one->host, error->message));
    }
  else
    g_ptr_array_add (a->attached, g_strdup (one->host));
  g_free (one->host);
  g_free (one);
  if (--a->waiting > 0)
    return;
  if (a->call)
    add_op_finish (a);
  else
    add_op_free (a);
}

/* Asks HOST's agent to attach A's repository; A waits for one more
 * answer. FALSE (A's failures say why) when the call cannot be made. */
static gboolean
attach_on (AddOp *a, const char *host)
{
  Drover__V1__AgentRepoRequest req = DROVER__V1__AGENT_REPO_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  ProtoClient *client
      = sched_agents_client_up (a->svc->agents, host, NULL, &error);
  AttachOne *one;

  if (!client)
    {
      g_ptr_array_add (a->failures,
                       g_strdup_printf ("%s: %s", host, error->message));
      return FALSE;
    }
  one = g_new0 (AttachOne, 1);
  one->add = a;
  one->host = g_strdup (host);
  req.repo = a->row->name;
  req.path = a->row->path;
  a->waiting++;
  sched_agents_call (a->svc->agents, client, DROVER_AGENT_METHOD_ATTACH_REPO,
                     &req.base, SCHED_AGENT_CALL_TIMEOUT_MS, attached, one);
  return TRUE;
}

static AddOp *
add_op_new (SchedService *svc, ProtoServerCall *call, const SchedRepo *row)
{
  AddOp *a = g_new0 (AddOp, 1);

  a->svc = svc;
  a->call = call;
  a->row = sched_repo_new (row->name, row->path, row->created_ms);
  a->attached = g_ptr_array_new_with_free_func (g_free);
  a->failures = g_ptr_array_new_with_free_func (g_free);
  return a;
}

void
sched_repos_host_registered (SchedService *svc, const char *host)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) rows = sched_store_list_repos (svc->store, &error);

  if (!rows)
    {
      drover_warning (NULL, NULL, host, "backup repositories: %s",
                      error->message);
      return;
    }
  for (guint i = 0; i < rows->len; i++)
    {
      AddOp *a = add_op_new (svc, NULL, rows->pdata[i]);

      if (!attach_on (a, host))
        {
          drover_warning (NULL, NULL, host,
                          "backup repository %s: cannot attach: %s",
                          a->row->name, (char *)a->failures->pdata[0]);
          add_op_free (a);
        }
    }
}

/* NAME and PATH as AddRepo takes them. */
static gboolean
check_add (const char *name, const char *path, GError **error)
{
  g_auto (GStrv) parts = NULL;

  if (!proto_name_validate ("repository", name, error))
    return FALSE;
  if (!path || !g_path_is_absolute (path) || strlen (path) > SCHED_REPO_PATH_MAX
      || !g_utf8_validate (path, -1, NULL))
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "backup repository path must be absolute, UTF-8 and at "
                   "most %d bytes",
                   SCHED_REPO_PATH_MAX);
      return FALSE;
    }
  parts = g_strsplit (path, "/", -1);
  for (guint i = 0; parts[i]; i++)
    if (strcmp (parts[i], "..") == 0)
      {
        g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                     "backup repository path %s contains \"..\"", path);
        return FALSE;
      }
  for (const char *p = path; *p; p++)
    if ((guchar)*p < 0x20 || *p == 0x7f)
      {
        g_set_error_literal (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                             "backup repository path contains a control "
                             "character");
        return FALSE;
      }
  return TRUE;
}

void
sched_repos_handle_add (ProtoServerCall *call, const ProtobufCMessage *request,
                        gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__AddRepoRequest *req = (const void *)request;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedRepo) old = NULL;
  g_autoptr (SchedRepo) row = NULL;
  g_autoptr (GPtrArray) hosts = NULL;
  AddOp *a;

  if (!check_add (req->name, req->path, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  old = sched_store_get_repo (svc->store, req->name, NULL);
  if (old && strcmp (old->path, req->path) != 0)
    {
      g_set_error (&error, SCHED_ERROR, SCHED_ERROR_EXISTS,
                   "backup repository %s exists, at %s", old->name, old->path);
      sched_call_fail (call, error);
      return;
    }
  hosts = sched_store_list_hosts (svc->store, &error);
  if (!hosts)
    {
      sched_call_fail (call, error);
      return;
    }
  row = sched_repo_new (req->name, req->path,
                        old ? old->created_ms
                            : sched_registry_now (svc->registry));
  a = add_op_new (svc, call, row);
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *h = hosts->pdata[i];

      if (host_up (h))
        attach_on (a, h->name);
      else
        g_ptr_array_add (a->failures,
                         g_strdup_printf ("%s: the host is down", h->name));
    }
  /* Nothing asked (no host up): finish now; else the last answer does. */
  if (a->waiting == 0)
    add_op_finish (a);
}

/* --- ListRepos ---------------------------------------------------------------
 */

static Drover__V1__Repo *
repo_msg (const char *name, const SchedRepo *row, GPtrArray *hosts)
{
  Drover__V1__Repo *m = g_new0 (Drover__V1__Repo, 1);
  g_autoptr (GPtrArray) with = g_ptr_array_new ();

  drover__v1__repo__init (m);
  m->name = proto_msg_strdup (name);
  m->path = proto_msg_strdup (row ? row->path : NULL);
  m->created_ms = row ? row->created_ms : 0;
  m->stored = row != NULL;
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *h = hosts->pdata[i];

      if (host_up (h) && host_reports (h, name))
        g_ptr_array_add (with, proto_msg_strdup (h->name));
    }
  m->n_hosts = with->len;
  m->hosts = (char **)g_ptr_array_free (g_steal_pointer (&with), FALSE);
  return m;
}

void
sched_repos_handle_list (ProtoServerCall *call, const ProtobufCMessage *request,
                         gpointer user_data)
{
  SchedService *svc = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) names = known_names (svc, &error);
  g_autoptr (GPtrArray) hosts = NULL;
  Drover__V1__ListReposReply reply = DROVER__V1__LIST_REPOS_REPLY__INIT;
  g_autoptr (GPtrArray) msgs = g_ptr_array_new_with_free_func (proto_msg_free);

  if (!names || !(hosts = sched_store_list_hosts (svc->store, &error)))
    {
      sched_call_fail (call, error);
      return;
    }
  for (guint i = 0; i < names->len; i++)
    {
      g_autoptr (SchedRepo) row
          = sched_store_get_repo (svc->store, names->pdata[i], NULL);

      g_ptr_array_add (msgs, repo_msg (names->pdata[i], row, hosts));
    }
  reply.n_repos = msgs->len;
  reply.repos = (Drover__V1__Repo **)msgs->pdata;
  proto_server_call_reply (call, &reply.base);
}

/* --- forwarded calls: GetRepoStatus, PruneBackups ----------------------------
 */

ProtoClient *
sched_repos_client_for (SchedService *svc, ProtoServerCall *call, char **repo,
                        char **host)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = sched_repos_resolve (svc, *repo, &error);
  ProtoClient *client = NULL;

  if (name && sched_repos_pick_host (svc, name, host, &error))
    client = sched_agents_client_up (svc->agents, *host, NULL, &error);
  if (!client)
    {
      sched_call_fail (call, error);
      return NULL;
    }
  g_free (*repo);
  *repo = g_steal_pointer (&name);
  return client;
}

static void
forwarded (const ProtobufCMessage *msg, const GError *error, gpointer data)
{
  g_autoptr (SchedPending) p = data;
  const Drover__V1__PruneBackupsReply *pr = (const void *)msg;

  if (error)
    {
      sched_agents_call_fail (p->call, p->host, error);
      return;
    }
  /* p->vm: the VM of a prune, NULL for a status. */
  if (p->vm && !pr->dry_run)
    sched_events_emit (p->svc->events, SCHED_EVENT_BACKUP_PRUNED, p->vm,
                       p->host, NULL, NULL,
                       "%zu backups of VM %s removed from repository %s",
                       pr->n_removed, p->vm, pr->repo);
  proto_server_call_reply (p->call, msg);
}

void
sched_repos_handle_status (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__RepoRequest *req = (const void *)request;
  Drover__V1__AgentRepoRequest fwd = DROVER__V1__AGENT_REPO_REQUEST__INIT;
  g_autofree char *repo = g_strdup (req->name), *host = NULL;
  ProtoClient *client = sched_repos_client_for (svc, call, &repo, &host);

  if (!client)
    return;
  fwd.repo = repo;
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_GET_REPO_STATUS,
                     &fwd.base, SCHED_AGENT_CALL_TIMEOUT_MS, forwarded,
                     sched_pending_new (svc, call, NULL, host, NULL));
}

void
sched_repos_handle_prune (ProtoServerCall *call,
                          const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__PruneBackupsRequest *req = (const void *)request;
  Drover__V1__AgentPruneRequest fwd = DROVER__V1__AGENT_PRUNE_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  g_autofree char *repo = g_strdup (req->repo), *host = NULL;
  ProtoClient *client;

  if (!proto_name_validate ("VM", req->vm, &error))
    {
      sched_call_fail (call, error);
      return;
    }
  client = sched_repos_client_for (svc, call, &repo, &host);
  if (!client)
    return;
  fwd.repo = repo;
  fwd.vm = req->vm;
  fwd.keep_last = req->keep_last;
  fwd.keep_hourly = req->keep_hourly;
  fwd.keep_daily = req->keep_daily;
  fwd.keep_weekly = req->keep_weekly;
  fwd.keep_monthly = req->keep_monthly;
  fwd.keep_yearly = req->keep_yearly;
  fwd.dry_run = req->dry_run;
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_PRUNE_BACKUPS,
                     &fwd.base, SCHED_AGENT_CALL_TIMEOUT_MS, forwarded,
                     sched_pending_new (svc, call, req->vm, host, NULL));
}

/* A prune a schedule started: the outcome goes to the log and the
 * event stream, nobody waits for it. */
static void
pruned_for_schedule (const ProtobufCMessage *msg, const GError *error,
                     gpointer data)
{
  g_autoptr (SchedPending) p = data;
  const Drover__V1__PruneBackupsReply *pr = (const void *)msg;

  if (error)
    {
      drover_warning (p->vm, NULL, p->host,
                      "schedule retention: prune of the VM's backups "
                      "failed: %s",
                      error->message);
      return;
    }
  if (pr->n_removed)
    sched_events_emit (p->svc->events, SCHED_EVENT_BACKUP_PRUNED, p->vm,
                       p->host, NULL, NULL,
                       "%zu backups of VM %s removed from repository %s by "
                       "its schedule's keep rules",
                       pr->n_removed, p->vm, pr->repo);
}

gboolean
sched_repos_prune_start (SchedService *svc, const char *repo, const char *vm,
                         const Drover__V1__KeepRules *keep, GError **error)
{
  Drover__V1__AgentPruneRequest fwd = DROVER__V1__AGENT_PRUNE_REQUEST__INIT;
  g_autofree char *name = sched_repos_resolve (svc, repo, error);
  g_autofree char *host = NULL;
  ProtoClient *client = NULL;

  if (!name || !sched_repos_pick_host (svc, name, &host, error)
      || !(client = sched_agents_client_up (svc->agents, host, NULL, error)))
    return FALSE;
  fwd.repo = name;
  fwd.vm = (char *)vm;
  fwd.keep_last = keep->last;
  fwd.keep_hourly = keep->hourly;
  fwd.keep_daily = keep->daily;
  fwd.keep_weekly = keep->weekly;
  fwd.keep_monthly = keep->monthly;
  fwd.keep_yearly = keep->yearly;
  sched_agents_call (svc->agents, client, DROVER_AGENT_METHOD_PRUNE_BACKUPS,
                     &fwd.base, SCHED_AGENT_CALL_TIMEOUT_MS,
                     pruned_for_schedule,
                     sched_pending_new (svc, NULL, vm, host, NULL));
  return TRUE;
}
