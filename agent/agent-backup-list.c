/* ListBackups and GetBackup (issue 14): what a repository holds, read
 * from its manifests by an agent that has it (--backup-repo), for the
 * scheduler's listings and for a restore's plan.
 *
 * A manifest is untrusted: the repository validated it field by field
 * when it loaded it; the VM's spec comes from the Drover metadata of the
 * domain XML it records, and a backup whose XML carries none still lists
 * (with an empty spec), since restoring it is what would fail.
 */
#include "agent-backup-private.h"

#include <string.h>

/* Most backups one ListBackups answers: the reply must fit a message. */
#define LIST_MAX 4096

Drover__V1__Backup *
agent_backup_msg (const StorRepoManifest *m, const char *repo)
{
  Drover__V1__Backup *b = g_new0 (Drover__V1__Backup, 1);
  g_autoptr (GError) local = NULL;

  drover__v1__backup__init (b);
  b->id = proto_msg_strdup (m->id);
  b->vm = proto_msg_strdup (m->vm);
  b->repo = proto_msg_strdup (repo);
  b->kind = proto_msg_strdup (
      m->kind == STOR_REPO_KIND_INCREMENTAL ? "incremental" : "full");
  b->parent = proto_msg_strdup (m->parent ? m->parent : "");
  b->consistency = proto_msg_strdup (
      m->consistency == STOR_REPO_CONSISTENCY_APPLICATION ? "application"
                                                          : "crash");
  b->start_s = m->start_time;
  b->end_s = m->end_time;
  b->logical = stor_repo_manifest_logical (m);
  b->bytes_read = m->bytes_read;
  b->bytes_new = m->bytes_new;
  b->bytes_stored = m->bytes_stored;
  b->checkpoint = proto_msg_strdup (m->checkpoint ? m->checkpoint : "");
  b->vm_uuid = proto_msg_strdup (m->vm_uuid);
  b->disks = g_new0 (Drover__V1__BackupDisk *, m->disks->len);
  for (guint i = 0; i < m->disks->len; i++)
    {
      const StorRepoDisk *d = m->disks->pdata[i];
      Drover__V1__BackupDisk *out = g_new0 (Drover__V1__BackupDisk, 1);

      drover__v1__backup_disk__init (out);
      out->target = proto_msg_strdup (d->target);
      out->size = d->size;
      out->chunks = d->chunks->len;
      for (guint c = 0; c < d->chunks->len; c++)
        if (g_array_index (d->chunks, StorRepoChunkRef, c).hole)
          out->holes++;
      b->disks[b->n_disks++] = out;
    }
  b->spec = agent_domain_xml_parse (m->domain_xml, &local);
  if (!b->spec)
    drover_debug (m->vm, NULL, NULL, "backup %s: no VM spec in it: %s", m->id,
                  local->message);
  return b;
}

ProtobufCMessage *
agent_backup_list (Agent *agent, const AgentCaller *caller,
                   const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentRepoRequest *req = (const void *)request;
  g_autoptr (StorRepo) repo = NULL;
  g_autoptr (GPtrArray) list = NULL;
  g_autoptr (GPtrArray) bad = NULL;
  Drover__V1__ListBackupsReply *reply;
  guint n;

  (void)caller;
  if (*req->vm && !proto_name_validate ("VM", req->vm, error))
    return NULL;
  repo = agent_backup_repos_lookup (agent, req->repo, error);
  if (!repo)
    return NULL;
  list = stor_repo_list (repo, *req->vm ? req->vm : NULL, &bad, error);
  if (!list)
    return NULL;
  n = MIN (list->len, LIST_MAX);
  reply = g_new0 (Drover__V1__ListBackupsReply, 1);
  drover__v1__list_backups_reply__init (reply);
  reply->backups = g_new0 (Drover__V1__Backup *, MAX (n, 1));
  for (guint i = 0; i < n; i++)
    reply->backups[reply->n_backups++]
        = agent_backup_msg (list->pdata[i], req->repo);
  if (bad && bad->len > 0)
    {
      guint nb = MIN (bad->len, 64);

      reply->bad = g_new0 (char *, nb);
      for (guint i = 0; i < nb; i++)
        reply->bad[reply->n_bad++] = proto_msg_strdup (bad->pdata[i]);
    }
  return (ProtobufCMessage *)reply;
}

ProtobufCMessage *
agent_backup_get (Agent *agent, const AgentCaller *caller,
                  const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__AgentRepoRequest *req = (const void *)request;
  g_autoptr (StorRepo) repo = NULL;
  g_autoptr (StorRepoManifest) m = NULL;

  (void)caller;
  if (!stor_repo_id_validate (req->backup_id, error))
    return NULL;
  repo = agent_backup_repos_lookup (agent, req->repo, error);
  if (!repo)
    return NULL;
  m = stor_repo_manifest_load (repo, req->backup_id, error);
  if (!m)
    {
      g_prefix_error (error, "repository %s: ", req->repo);
      return NULL;
    }
  return (ProtobufCMessage *)agent_backup_msg (m, req->repo);
}
