/* droverctl repo add|list|status|gc: backup repositories (issue 14). */
#include "droverctl.h"

#include <stdio.h>
#include <string.h>

static const char repo_usage_text[]
    = "Usage: droverctl repo SUBCOMMAND [ARGS...]\n"
      "\n"
      "  add NAME PATH [--json]       add a repository; every host attaches "
      "it\n"
      "                               (PATH must lie under each agent's "
      "--backup-repo-root)\n"
      "  list [--json]                repositories and the hosts that have "
      "them open\n"
      "  status NAME [--json]         size, chunks, dedup and compression "
      "ratios, last verify and gc\n"
      "  gc NAME [--wait] [--json]    remove the chunks no backup needs\n";

/* Parses SUB's options and checks that exactly WANT positional arguments
 * follow it. -1 to go on, else the exit code. */
static int
repo_parse (const char *usage, const char *summary, const GOptionEntry *entries,
            int want, int *argc, char ***argv)
{
  int rc;

  if ((rc = ctl_parse_usage (usage, summary, entries, argc, argv)) >= 0)
    return rc;
  if (*argc < want + 1)
    return ctl_usage_error (usage, "missing %s",
                            *argc == 1 ? "repository name" : "path");
  if (*argc > want + 1)
    return ctl_usage_error (usage, "unexpected argument '%s'",
                            (*argv)[want + 1]);
  return -1;
}

/* The N strings of V joined with ", " ("-" for none): protobuf-c's
 * repeated strings are counted, not NULL-terminated. */
static char *
join (char *const *v, size_t n)
{
  GString *out = g_string_new (n ? NULL : "-");

  for (size_t i = 0; i < n; i++)
    g_string_append_printf (out, "%s%s", i ? ", " : "", v[i]);
  return g_string_free (out, FALSE);
}

#define ADD_USAGE "repo add NAME PATH [--json]"

static int
repo_add (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the repository as JSON", NULL },
                                   { NULL } };
  Drover__V1__AddRepoRequest req = DROVER__V1__ADD_REPO_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__Repo *repo;
  int rc;

  if ((rc = repo_parse (ADD_USAGE,
                        "Add a backup repository: every host that is up "
                        "attaches the directory PATH (made the first time) "
                        "and hosts that register later do too.",
                        entries, 2, &argc, &argv))
      >= 0)
    return rc;
  if (!proto_name_validate ("repository", argv[1], &error))
    return ctl_usage_error (ADD_USAGE, "%s", error->message);
  if (!g_path_is_absolute (argv[2]))
    return ctl_usage_error (ADD_USAGE, "PATH must be absolute");
  req.name = argv[1];
  req.path = argv[2];
  if ((rc = ctl_call_json (ctl, DROVER_SCHED_METHOD_ADD_REPO, &req.base, json,
                           &msg))
      >= 0)
    return rc;
  repo = (const Drover__V1__Repo *)msg;
  {
    g_autofree char *hosts = join (repo->hosts, repo->n_hosts);

    printf ("repository %s added at %s, attached on %s\n", repo->name,
            repo->path, hosts);
  }
  for (size_t i = 0; i < repo->n_failures; i++)
    printf ("  not attached on %s\n", repo->failures[i]);
  return CTL_EXIT_OK;
}

static int
repo_list (Ctl *ctl, int argc, char **argv)
{
  static const char *const headers[] = { "NAME", "PATH", "HOSTS", NULL };
  Drover__V1__ListReposRequest req = DROVER__V1__LIST_REPOS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (CliTable) table = cli_table_new (headers);
  const Drover__V1__ListReposReply *reply;
  int rc;

  if ((rc
       = ctl_list (ctl, "repo list",
                   "List the backup repositories and the hosts that have "
                   "them open.",
                   DROVER_SCHED_METHOD_LIST_REPOS, &req.base, argc, argv, &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__ListReposReply *)msg;
  for (size_t i = 0; i < reply->n_repos; i++)
    {
      const Drover__V1__Repo *r = reply->repos[i];

      cli_table_add_take (
          table, g_strdup (r->name),
          g_strdup (r->stored ? r->path : "(a host's --backup-repo)"),
          join (r->hosts, r->n_hosts));
    }
  return ctl_print_table (table);
}

#define STATUS_USAGE "repo status NAME [--json]"

static char *
ratio (double r)
{
  return r > 0 ? g_strdup_printf ("%.2f", r) : g_strdup ("-");
}

static int
repo_status (Ctl *ctl, int argc, char **argv)
{
  gboolean json = FALSE;
  const GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                                     "Print the status as JSON", NULL },
                                   { NULL } };
  Drover__V1__RepoRequest req = DROVER__V1__REPO_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  const Drover__V1__RepoStatus *st;
  const int w = 14;
  int rc;

  if ((rc = repo_parse (STATUS_USAGE,
                        "Show a backup repository's size, chunks, dedup and "
                        "compression ratios, and its last verify and gc.",
                        entries, 1, &argc, &argv))
      >= 0)
    return rc;
  req.name = argv[1];
  if ((rc = ctl_call_json (ctl, DROVER_SCHED_METHOD_GET_REPO_STATUS, &req.base,
                           json, &msg))
      >= 0)
    return rc;
  st = (const Drover__V1__RepoStatus *)msg;
  ctl_kv (w, "NAME", st->name);
  ctl_kv (w, "READ ON", st->host);
  ctl_kv_take (w, "SIZE", proto_format_size (st->disk_bytes));
  ctl_kv_take (w, "BACKUPS", g_strdup_printf ("%u", st->backups));
  ctl_kv_take (w, "CHUNKS", g_strdup_printf ("%" G_GUINT64_FORMAT, st->chunks));
  ctl_kv_take (w, "DATA", proto_format_size (st->logical_bytes));
  ctl_kv_take (w, "DEDUP", ratio (st->dedup_ratio));
  ctl_kv_take (w, "COMPRESSION", ratio (st->compression_ratio));
  ctl_kv_take (w, "LAST VERIFY", cli_format_time (st->last_verify_ms));
  ctl_kv_take (w, "LAST GC", cli_format_time (st->last_gc_ms));
  ctl_kv_take (w, "GC FREED", proto_format_size (st->last_gc_freed));
  return CTL_EXIT_OK;
}

#define GC_USAGE "repo gc NAME [--wait] [--json]"

static int
repo_gc (Ctl *ctl, int argc, char **argv)
{
  gboolean wait = FALSE, json = FALSE;
  const GOptionEntry entries[]
      = { { "wait", 0, 0, G_OPTION_ARG_NONE, &wait,
            "Follow the job until it ends", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the job as JSON (with --wait: the final job)", NULL },
          { NULL } };
  Drover__V1__RepoRequest req = DROVER__V1__REPO_REQUEST__INIT;
  g_autofree char *what = NULL;
  int rc;

  if ((rc = repo_parse (GC_USAGE,
                        "Remove the chunks no backup refers to any more (safe "
                        "while backups run: recent chunks are kept).",
                        entries, 1, &argc, &argv))
      >= 0)
    return rc;
  req.name = argv[1];
  what = g_strdup_printf ("gc of repository %s", argv[1]);
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_GC_REPO, &req.base,
                                what, !wait, json);
}

int
ctl_cmd_repo (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "add", repo_add }, { "list", repo_list }, { "status", repo_status },
    { "gc", repo_gc },   { NULL, NULL },
  };

  return ctl_dispatch (ctl, "repo", repo_usage_text, commands, argc, argv);
}
