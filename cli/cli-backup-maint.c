/* droverctl backup: not built yet (skeleton). */
#include "cli-backup.h"

int
ctl_backup_verify (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("backup verify", "backup verify is not built yet");
}

int
ctl_backup_prune (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("backup prune", "backup prune is not built yet");
}
