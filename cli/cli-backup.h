/* droverctl backup SUBCOMMAND: the subcommands, each in the file of its
 * kind (cli-backup.c dispatches). ARGV[0] is the subcommand. */
#pragma once

#include "droverctl.h"

/* cli-backup-ops.c: making, listing and restoring backups. */
int ctl_backup_create (Ctl *ctl, int argc, char **argv);
int ctl_backup_list (Ctl *ctl, int argc, char **argv);
int ctl_backup_show (Ctl *ctl, int argc, char **argv);
int ctl_backup_restore (Ctl *ctl, int argc, char **argv);

/* cli-backup-maint.c: checking and thinning them. */
int ctl_backup_verify (Ctl *ctl, int argc, char **argv);
int ctl_backup_prune (Ctl *ctl, int argc, char **argv);
