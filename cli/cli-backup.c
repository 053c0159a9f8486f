/* droverctl backup: backups of VMs into repositories (issue 14). */
#include "cli-backup.h"

static const char backup_usage_text[]
    = "Usage: droverctl backup SUBCOMMAND [ARGS...]\n"
      "\n"
      "  create VM [--repo R] [--full] [--detach] [--json]\n"
      "                                    back up a VM\n"
      "  list [VM] [--repo R] [--json]     list backups\n"
      "  show ID [--repo R] [--json]       one backup\n"
      "  restore ID --as NEW [--host H] [--start] | --in-place\n"
      "          [--repo R] [--detach] [--json]\n"
      "  verify [ID... | --all] [--repo R] [--json]\n"
      "                                    rehash the chunks backups need; "
      "exit 1 when any is bad\n"
      "  prune VM --keep-last N --keep-hourly N --keep-daily N --keep-weekly "
      "N\n"
      "        --keep-monthly N --keep-yearly N [--dry-run] [--repo R] "
      "[--json]\n";

int
ctl_cmd_backup (Ctl *ctl, int argc, char **argv)
{
  static const CtlCommand commands[] = {
    { "create", ctl_backup_create },
    { "list", ctl_backup_list },
    { "show", ctl_backup_show },
    { "restore", ctl_backup_restore },
    { "verify", ctl_backup_verify },
    { "prune", ctl_backup_prune },
    { NULL, NULL },
  };

  return ctl_dispatch (ctl, "backup", backup_usage_text, commands, argc, argv);
}
