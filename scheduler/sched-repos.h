/* SchedRepos: backup repositories as operators manage them (issue 14,
 * sched-repos.c). The store keeps the repositories the operator added
 * (name and path); each host that is up attaches them (AgentRepo
 * AttachRepo, which the agent accepts only under its own
 * --backup-repo-root) and reports the names it has open in
 * HostInfo.backup_repos. Status and prune are forwarded to an up host
 * that has the repository open; verify and gc are jobs (kinds "verify"
 * and "gc") fed by that host's StorageProgress stream. Main context
 * only. */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

/* Longest repository path AddRepo takes. */
#define SCHED_REPO_PATH_MAX 1024

typedef struct _SchedRepos SchedRepos;

/* The repositories of SVC (borrowed: store, agents, jobs, events). */
SchedRepos *sched_repos_new (SchedService *svc);
/* New jobs are refused from now on; running ones end when their agent
 * streams are cancelled (sched_agents_cancel_all). */
void sched_repos_stop (SchedRepos *repos);
void sched_repos_free (SchedRepos *repos);

/* Host HOST (up, just registered) attaches every stored repository, in
 * the background; a failure is logged. */
void sched_repos_host_registered (SchedService *svc, const char *host);

/* The repository REPO names: REPO itself when it is stored or a host
 * that is up reports it, or for "" the only repository there is
 * (SCHED_ERROR_INVALID asking for --repo when there are several,
 * _NOT_FOUND when there is none). Caller frees. */
char *sched_repos_resolve (SchedService *svc, const char *repo, GError **error);
/* The first host (by name) that is up and reports repository REPO
 * ("" resolved as sched_repos_resolve does) in *HOST (caller frees);
 * SCHED_ERROR_UNAVAILABLE when none. */
gboolean sched_repos_pick_host (SchedService *svc, const char *repo,
                                char **host, GError **error);

/* AddRepo, ListRepos, GetRepoStatus, VerifyBackups, GcRepo and
 * PruneBackups (user data: the SchedService). */
/* Prunes VM's backups in REPO ("": the only one) by KEEP, for a
 * schedule's retention; FALSE with ERROR when no host can do it now. The
 * agent's answer is logged and published (backup.pruned). */
gboolean sched_repos_prune_start (SchedService *svc, const char *repo,
                                  const char *vm,
                                  const Drover__V1__KeepRules *keep,
                                  GError **error);

SchedHandler sched_repos_handle_add;
SchedHandler sched_repos_handle_list;
SchedHandler sched_repos_handle_status;
SchedHandler sched_repos_handle_verify;
SchedHandler sched_repos_handle_gc;
SchedHandler sched_repos_handle_prune;

G_END_DECLS
