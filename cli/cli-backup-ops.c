/* droverctl backup: not built yet (skeleton). */
#include "cli-backup.h"

int
ctl_backup_create (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("backup create", "backup create is not built yet");
}

int
ctl_backup_list (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("backup list", "backup list is not built yet");
}

int
ctl_backup_show (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("backup show", "backup show is not built yet");
}

int
ctl_backup_restore (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("backup restore", "backup restore is not built yet");
}
