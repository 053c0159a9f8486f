/* droverctl backup verify|prune: checking backups and thinning them
 * (issue 14). */
#include "cli-backup.h"

#include <stdio.h>
#include <string.h>

/* --- verify ------------------------------------------------------------- */

#define VERIFY_USAGE "backup verify [ID... | --all] [--repo R] [--json]"

/* The stream's last job into *LAST (the job is over: WatchJob sends it
 * and ends). */
static gboolean
keep_last (const ProtobufCMessage *msg, gpointer data)
{
  ProtobufCMessage **last = data;

  proto_msg_free (*last);
  *last = proto_msg_copy (msg);
  return TRUE;
}

static Drover__V1__Job *
final_job (Ctl *ctl, const char *id, GError **error)
{
  Drover__V1__WatchJobRequest req = DROVER__V1__WATCH_JOB_REQUEST__INIT;
  ProtobufCMessage *last = NULL;
  ProtoClient *client = ctl_client (ctl, error);

  req.id = (char *)id;
  if (!client
      || !proto_client_stream_sync (client, DROVER_SCHED_SERVICE,
                                    DROVER_SCHED_METHOD_WATCH_JOB, &req.base,
                                    keep_last, &last, error))
    {
      proto_msg_free (last);
      return NULL;
    }
  return (Drover__V1__Job *)last;
}

/* Prints what verify found; TRUE when nothing is bad. */
static gboolean
print_verify (const Drover__V1__VerifyResult *v, gboolean json)
{
  gboolean clean = v->n_bad == 0 && v->n_bad_manifests == 0;

  if (json)
    return clean;
  printf ("%u backups, %" G_GUINT64_FORMAT " chunks checked: %s\n", v->backups,
          v->chunks, clean ? "all good" : "PROBLEMS FOUND");
  for (size_t i = 0; i < v->n_bad; i++)
    {
      const Drover__V1__BadChunk *b = v->bad[i];

      printf ("chunk %s %s: %s\n", b->digest,
              b->missing ? "missing" : "corrupt", b->message);
      for (size_t k = 0; k < b->n_backup_ids; k++)
        printf ("  affects backup %s\n", b->backup_ids[k]);
    }
  for (size_t i = 0; i < v->n_bad_manifests; i++)
    printf ("manifest unreadable: %s\n", v->bad_manifests[i]);
  return clean;
}

int
ctl_backup_verify (Ctl *ctl, int argc, char **argv)
{
  gboolean all = FALSE, json = FALSE;
  g_autofree char *repo = NULL;
  const GOptionEntry entries[]
      = { { "all", 0, 0, G_OPTION_ARG_NONE, &all, "Verify every backup", NULL },
          { "repo", 0, 0, G_OPTION_ARG_STRING, &repo,
            "The repository (default: the only one)", "R" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job (with what verify found) as JSON", NULL },
          { NULL } };
  Drover__V1__VerifyBackupsRequest req
      = DROVER__V1__VERIFY_BACKUPS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (Drover__V1__Job) job = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__StorageProgress *p;
  int rc;

  if ((rc = ctl_parse_options ("backup verify", "[ID... | --all]",
                               "Rehash every chunk the backups need and name "
                               "each backup a missing or corrupt chunk "
                               "affects. Exits 1 when something is bad.",
                               entries, &argc, &argv))
      >= 0)
    return rc;
  if (all == (argc > 1))
    return ctl_usage_error (VERIFY_USAGE, "give backup ids or --all");
  req.repo = repo ? repo : "";
  req.all = all;
  req.n_backup_ids = argc - 1;
  req.backup_ids = argv + 1;
  msg = ctl_call (ctl, DROVER_SCHED_METHOD_VERIFY_BACKUPS, &req.base, 0,
                  &error);
  if (msg == NULL)
    return ctl_fail (error);
  if (!json)
    {
      printf ("job %s: verify\n", ((Drover__V1__Job *)msg)->id);
      fflush (stdout);
    }
  rc = ctl_watch_job (ctl, ((Drover__V1__Job *)msg)->id, "job", json);
  if (rc != CTL_EXIT_OK)
    return rc;
  job = final_job (ctl, ((Drover__V1__Job *)msg)->id, &error);
  if (!job)
    return ctl_fail (error);
  p = job->storage;
  if (!p || !p->verify)
    {
      ctl_print_error ("job %s ended without a verify result", job->id);
      return CTL_EXIT_FAILURE;
    }
  return print_verify (p->verify, json) ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}

/* --- prune -------------------------------------------------------------- */

#define PRUNE_USAGE                                                            \
  "backup prune VM --keep-last N --keep-hourly N --keep-daily N "              \
  "--keep-weekly N --keep-monthly N --keep-yearly N [--dry-run] [--repo R] "   \
  "[--json]"

int
ctl_backup_prune (Ctl *ctl, int argc, char **argv)
{
  static const char *const headers[] = { "BACKUP", "TIME", "KEPT BY", NULL };
  int keep[6] = { 0 };
  gboolean dry_run = FALSE, json = FALSE;
  g_autofree char *repo = NULL;
  const GOptionEntry entries[]
      = { { "keep-last", 0, 0, G_OPTION_ARG_INT, &keep[0],
            "Keep the N newest backups", "N" },
          { "keep-hourly", 0, 0, G_OPTION_ARG_INT, &keep[1],
            "Keep the newest of each of the last N hours with a backup", "N" },
          { "keep-daily", 0, 0, G_OPTION_ARG_INT, &keep[2],
            "... of the last N days", "N" },
          { "keep-weekly", 0, 0, G_OPTION_ARG_INT, &keep[3],
            "... of the last N ISO weeks", "N" },
          { "keep-monthly", 0, 0, G_OPTION_ARG_INT, &keep[4],
            "... of the last N months", "N" },
          { "keep-yearly", 0, 0, G_OPTION_ARG_INT, &keep[5],
            "... of the last N years", "N" },
          { "dry-run", 0, 0, G_OPTION_ARG_NONE, &dry_run,
            "Show what would be removed; remove nothing", NULL },
          { "repo", 0, 0, G_OPTION_ARG_STRING, &repo,
            "The repository (default: the only one)", "R" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the reply as JSON",
            NULL },
          { NULL } };
  Drover__V1__PruneBackupsRequest req = DROVER__V1__PRUNE_BACKUPS_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CliTable) table = cli_table_new (headers);
  const Drover__V1__PruneBackupsReply *reply;
  gboolean any = FALSE;
  int rc;

  if ((rc = ctl_parse_options ("backup prune", "VM",
                               "Remove the backups of a VM that no --keep "
                               "rule keeps (each rule looks only at backups "
                               "older than those already kept).",
                               entries, &argc, &argv))
      >= 0)
    return rc;
  if (argc < 2)
    return ctl_usage_error (PRUNE_USAGE, "missing VM name");
  if (argc > 2)
    return ctl_usage_error (PRUNE_USAGE, "unexpected argument '%s'", argv[2]);
  if (!proto_name_validate ("VM", argv[1], &error))
    return ctl_usage_error (PRUNE_USAGE, "%s", error->message);
  for (guint i = 0; i < G_N_ELEMENTS (keep); i++)
    {
      if (keep[i] < 0)
        return ctl_usage_error (PRUNE_USAGE, "--keep counts are >= 0");
      any = any || keep[i] > 0;
    }
  /* The repository would keep everything; say so rather than do nothing. */
  if (!any)
    return ctl_usage_error (PRUNE_USAGE, "give at least one --keep-* rule");
  req.vm = argv[1];
  req.repo = repo ? repo : "";
  req.keep_last = keep[0];
  req.keep_hourly = keep[1];
  req.keep_daily = keep[2];
  req.keep_weekly = keep[3];
  req.keep_monthly = keep[4];
  req.keep_yearly = keep[5];
  req.dry_run = dry_run;
  if ((rc = ctl_call_json (ctl, DROVER_SCHED_METHOD_PRUNE_BACKUPS, &req.base,
                           json, &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__PruneBackupsReply *)msg;
  for (size_t i = 0; i < reply->n_backups; i++)
    {
      const Drover__V1__PrunedBackup *b = reply->backups[i];

      cli_table_add_take (table, g_strdup (b->id), cli_format_time (b->time_ms),
                          g_strdup (b->kept_by));
    }
  ctl_print_table (table);
  printf ("%zu of %zu backups %s\n", reply->n_removed, reply->n_backups,
          reply->dry_run ? "would be removed (dry run)" : "removed");
  return CTL_EXIT_OK;
}
