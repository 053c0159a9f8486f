/* Private to SchedRepos (sched-repos.c) and its verify and gc jobs
 * (sched-repo-jobs.c). */
#pragma once

#include "sched-repos.h"

G_BEGIN_DECLS

struct _SchedRepos
{
  SchedService *svc;
  GHashTable *ops; /* job id -> RepoOp: verify and gc jobs in flight */
  gboolean stopped;
};

/* Frees a verify or gc job in flight (SchedRepos.ops values). */
void sched_repo_op_free (gpointer op);

/* The host for repository *REPO (resolved in place) and its client, or
 * NULL with CALL failed. */
ProtoClient *sched_repos_client_for (SchedService *svc, ProtoServerCall *call,
                                     char **repo, char **host);

G_END_DECLS
