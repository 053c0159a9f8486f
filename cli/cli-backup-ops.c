/* droverctl backup create|list|show|restore (issue 14): making, listing
 * and restoring backups. create and restore are jobs followed as
 * snapshots are (ctl_start_storage_job: a progress line of bytes read of
 * the total, bytes new to the repository, rate and ETA), and end with a
 * summary of the backup (ctl_backup_summary). */
#include "cli-backup.h"

#include <stdio.h>
#include <string.h>

/* Width of the key column of backup show. */
#define KV_WIDTH 14

/* Checks that *ARGV, once the options of USAGE ("backup SUB PARAMS")
 * are parsed, holds exactly WANT positional arguments (AT_MOST: up to
 * WANT). Returns -1 to go on, or the exit code. */
static int
backup_parse (const char *usage, const char *summary,
              const GOptionEntry *entries, int want, gboolean at_most,
              const char *missing, int *argc, char ***argv)
{
  int rc;

  if ((rc = ctl_parse_usage (usage, summary, entries, argc, argv)) >= 0)
    return rc;
  if (*argc - 1 < want && !at_most)
    return ctl_usage_error (usage, "%s", missing);
  if (*argc - 1 > want)
    return ctl_usage_error (usage, "unexpected argument '%s'",
                            (*argv)[want + 1]);
  return -1;
}

/* "full", or "incremental from ID", of B. Caller frees. */
static char *
kind_text (const Drover__V1__Backup *b)
{
  if (g_str_equal (b->kind, "incremental"))
    return g_strdup_printf ("incremental from %s", b->parent);
  return g_strdup (b->kind);
}

char *
ctl_backup_summary (const Drover__V1__Job *job)
{
  const Drover__V1__StorageProgress *p = job->storage;
  const Drover__V1__Backup *b = p ? p->backup : NULL;
  GString *out = g_string_new (NULL);
  g_autofree char *kind = NULL;
  double seconds = (job->updated_ms - job->created_ms) / 1000.0;

  if (b == NULL)
    {
      g_string_append_printf (out, "%s\n", job->message);
      return g_string_free (out, FALSE);
    }
  kind = kind_text (b);
  if (g_str_equal (job->kind, PROTO_JOB_KIND_RESTORE))
    g_string_append_printf (out, "VM %s restored from backup %s (%s)\n",
                            job->vm, b->id, kind);
  else
    {
      g_autofree char *took = cli_format_duration (seconds);
      g_autofree char *read = proto_format_size (b->bytes_read);
      g_autofree char *fresh = proto_format_size (b->bytes_new);
      g_autofree char *stored = proto_format_size (b->bytes_stored);
      g_autofree char *logical = proto_format_size (b->logical);

      g_string_append_printf (out, "backup %s of VM %s\n", b->id, b->vm);
      g_string_append_printf (out, "  kind         %s%s%s\n", kind,
                              p->note[0] ? ": " : "", p->note);
      g_string_append_printf (out, "  consistency  %s\n", b->consistency);
      g_string_append_printf (out,
                              "  read         %s of a %s disk\n"
                              "  new          %s (stored %s)\n"
                              "  time         %s\n",
                              read, logical, fresh, stored, took);
    }
  return g_string_free (out, FALSE);
}

/* --- create ------------------------------------------------------------ */

#define CREATE_USAGE "backup create VM [--repo R] [--full] [--detach] [--json]"

int
ctl_backup_create (Ctl *ctl, int argc, char **argv)
{
  gboolean full = FALSE, detach = FALSE, json = FALSE;
  g_autofree char *repo = NULL, *what = NULL;
  const GOptionEntry entries[]
      = { { "repo", 0, 0, G_OPTION_ARG_STRING, &repo,
            "The repository (default: the one the VM's host has)", "R" },
          { "full", 0, 0, G_OPTION_ARG_NONE, &full,
            "A full backup even when an incremental is possible", NULL },
          { "detach", 0, 0, G_OPTION_ARG_NONE, &detach,
            "Print the job and return at once", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job as JSON", NULL },
          { NULL } };
  Drover__V1__CreateBackupRequest req = DROVER__V1__CREATE_BACKUP_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = backup_parse (
           CREATE_USAGE,
           "Back up a VM into a repository: a running VM live, the first "
           "backup full, later ones incremental (only what changed since "
           "the last is read); a stopped VM in full. Follows the job: bytes "
           "read, bytes new to the "
           "repository, rate, ETA; then a summary. Ctrl-C stops following, "
           "not the backup.",
           entries, 1, FALSE, "missing VM name", &argc, &argv))
      >= 0)
    return rc;
  if (!proto_name_validate ("VM", argv[1], &error)
      || (repo && !proto_name_validate ("repository", repo, &error)))
    return ctl_usage_error (CREATE_USAGE, "%s", error->message);
  req.vm = argv[1];
  req.repo = repo ? repo : (char *)"";
  req.full = full;
  what = g_strdup_printf ("%sbackup of VM %s", full ? "full " : "", argv[1]);
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_CREATE_BACKUP,
                                &req.base, what, detach, json);
}

/* --- list, show -------------------------------------------------------- */

/* "2026-12-04 20:51:00" of unix time S. */
static char *
taken (gint64 s)
{
  return cli_format_time (s * 1000);
}

int
ctl_backup_list (Ctl *ctl, int argc, char **argv)
{
  const char *usage = "backup list [VM] [--repo R] [--json]";
  gboolean json = FALSE;
  g_autofree char *repo = NULL;
  const GOptionEntry entries[]
      = { { "repo", 0, 0, G_OPTION_ARG_STRING, &repo,
            "The repository (default: the one the hosts have)", "R" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
          { NULL } };
  Drover__V1__ListBackupsRequest req = DROVER__V1__LIST_BACKUPS_REQUEST__INIT;
  const char *const headers[]
      = { "ID", "VM", "KIND", "TAKEN", ">SIZE", ">NEW", "CONSISTENCY", NULL };
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CliTable) table = NULL;
  const Drover__V1__ListBackupsReply *reply;
  int rc;

  if ((rc = backup_parse (usage,
                          "List the backups in a repository, newest first "
                          "(of one VM, or of all).",
                          entries, 1, TRUE, NULL, &argc, &argv))
      >= 0)
    return rc;
  if ((argc > 1 && !proto_name_validate ("VM", argv[1], &error))
      || (repo && !proto_name_validate ("repository", repo, &error)))
    return ctl_usage_error (usage, "%s", error->message);
  req.vm = argc > 1 ? argv[1] : (char *)"";
  req.repo = repo ? repo : (char *)"";
  if ((rc = ctl_call_json (ctl, DROVER_SCHED_METHOD_LIST_BACKUPS, &req.base,
                           json, &msg))
      >= 0)
    return rc;
  reply = (const Drover__V1__ListBackupsReply *)msg;
  table = cli_table_new (headers);
  for (size_t i = 0; i < reply->n_backups; i++)
    {
      const Drover__V1__Backup *b = reply->backups[i];

      cli_table_add_take (
          table, g_strdup (b->id), g_strdup (b->vm), g_strdup (b->kind),
          taken (b->start_s), proto_format_size (b->logical),
          proto_format_size (b->bytes_new), g_strdup (b->consistency));
    }
  for (size_t i = 0; i < reply->n_bad; i++)
    ctl_print_error ("a backup that does not load: %s", reply->bad[i]);
  if (reply->n_backups == 0)
    {
      printf ("no backups%s%s\n", argc > 1 ? " of VM " : "",
              argc > 1 ? argv[1] : "");
      return CTL_EXIT_OK;
    }
  return ctl_print_table (table);
}

int
ctl_backup_show (Ctl *ctl, int argc, char **argv)
{
  const char *usage = "backup show ID [--repo R] [--json]";
  gboolean json = FALSE;
  g_autofree char *repo = NULL;
  const GOptionEntry entries[]
      = { { "repo", 0, 0, G_OPTION_ARG_STRING, &repo,
            "The repository (default: the one the hosts have)", "R" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
          { NULL } };
  Drover__V1__BackupRequest req = DROVER__V1__BACKUP_REQUEST__INIT;
  g_autoptr (ProtobufCMessage) msg = NULL;
  g_autoptr (GError) error = NULL;
  const Drover__V1__Backup *b;
  int rc;

  if ((rc = backup_parse (usage,
                          "Show one backup: what it holds and how it "
                          "was taken.",
                          entries, 1, FALSE, "missing backup ID", &argc, &argv))
      >= 0)
    return rc;
  if (repo && !proto_name_validate ("repository", repo, &error))
    return ctl_usage_error (usage, "%s", error->message);
  req.id = argv[1];
  req.repo = repo ? repo : (char *)"";
  if ((rc = ctl_call_json (ctl, DROVER_SCHED_METHOD_GET_BACKUP, &req.base, json,
                           &msg))
      >= 0)
    return rc;
  b = (const Drover__V1__Backup *)msg;
  ctl_kv (KV_WIDTH, "id", b->id);
  ctl_kv (KV_WIDTH, "vm", b->vm);
  ctl_kv (KV_WIDTH, "repository", b->repo);
  ctl_kv_take (KV_WIDTH, "kind", kind_text (b));
  ctl_kv (KV_WIDTH, "consistency", b->consistency);
  ctl_kv_take (KV_WIDTH, "started", taken (b->start_s));
  ctl_kv_take (KV_WIDTH, "ended", taken (b->end_s));
  for (size_t i = 0; i < b->n_disks; i++)
    {
      g_autofree char *size = proto_format_size (b->disks[i]->size);

      ctl_kv_take (KV_WIDTH, "disk",
                   g_strdup_printf ("%s %s (%" G_GUINT64_FORMAT
                                    " chunks, %" G_GUINT64_FORMAT " holes)",
                                    b->disks[i]->target, size,
                                    b->disks[i]->chunks, b->disks[i]->holes));
    }
  ctl_kv_take (KV_WIDTH, "read", proto_format_size (b->bytes_read));
  ctl_kv_take (KV_WIDTH, "new", proto_format_size (b->bytes_new));
  ctl_kv_take (KV_WIDTH, "stored", proto_format_size (b->bytes_stored));
  ctl_kv (KV_WIDTH, "checkpoint", b->checkpoint[0] ? b->checkpoint : "-");
  if (b->spec)
    {
      g_autofree char *memory = proto_format_size (b->spec->memory);

      ctl_kv_take (
          KV_WIDTH, "vm-spec",
          g_strdup_printf ("%u vCPU, %s memory", b->spec->vcpus, memory));
    }
  return CTL_EXIT_OK;
}

/* --- restore ----------------------------------------------------------- */

#define RESTORE_USAGE                                                          \
  "backup restore ID (--as NEW [--host H] [--start] | --in-place) "            \
  "[--repo R] [--detach] [--json]"

int
ctl_backup_restore (Ctl *ctl, int argc, char **argv)
{
  gboolean start = FALSE, in_place = FALSE, detach = FALSE, json = FALSE;
  g_autofree char *as = NULL, *host = NULL, *repo = NULL, *what = NULL;
  const GOptionEntry entries[]
      = { { "as", 0, 0, G_OPTION_ARG_STRING, &as, "Restore as the new VM NEW",
            "NEW" },
          { "host", 0, 0, G_OPTION_ARG_STRING, &host,
            "Make NEW on host H (default: placement chooses)", "H" },
          { "start", 0, 0, G_OPTION_ARG_NONE, &start, "Start NEW once made",
            NULL },
          { "in-place", 0, 0, G_OPTION_ARG_NONE, &in_place,
            "Replace the disk of the (stopped) VM the backup is of", NULL },
          { "repo", 0, 0, G_OPTION_ARG_STRING, &repo,
            "The repository (default: the one the hosts have)", "R" },
          { "detach", 0, 0, G_OPTION_ARG_NONE, &detach,
            "Print the job and return at once", NULL },
          { "json", 0, 0, G_OPTION_ARG_NONE, &json,
            "Print the final job as JSON", NULL },
          { NULL } };
  Drover__V1__RestoreBackupRequest req
      = DROVER__V1__RESTORE_BACKUP_REQUEST__INIT;
  g_autoptr (GError) error = NULL;
  int rc;

  if ((rc = backup_parse (
           RESTORE_USAGE,
           "Restore a backup: as a new VM NEW (same vCPUs, memory and disk "
           "size; on any host that has the repository), or --in-place over "
           "the disk of the stopped VM it was taken of (the old disk is "
           "replaced only once the restored one is complete). A failed "
           "restore leaves nothing behind.",
           entries, 1, FALSE, "missing backup ID", &argc, &argv))
      >= 0)
    return rc;
  if ((as == NULL) == !in_place)
    return ctl_usage_error (RESTORE_USAGE,
                            "give either --as NEW or --in-place");
  if (in_place && (host || start))
    return ctl_usage_error (RESTORE_USAGE,
                            "--host and --start go with --as, not --in-place");
  if ((as && !proto_name_validate ("VM", as, &error))
      || (host && !proto_name_validate ("host", host, &error))
      || (repo && !proto_name_validate ("repository", repo, &error)))
    return ctl_usage_error (RESTORE_USAGE, "%s", error->message);
  req.id = argv[1];
  req.repo = repo ? repo : (char *)"";
  req.name = as ? as : (char *)"";
  req.host = host ? host : (char *)"";
  req.start = start;
  req.in_place = in_place;
  what = in_place
             ? g_strdup_printf ("restore of backup %s in place", argv[1])
             : g_strdup_printf ("restore of backup %s as VM %s", argv[1], as);
  return ctl_start_storage_job (ctl, DROVER_SCHED_METHOD_RESTORE_BACKUP,
                                &req.base, what, detach, json);
}
