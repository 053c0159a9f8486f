/* droverctl repo: not built yet (skeleton). */
#include "droverctl.h"

int
ctl_cmd_repo (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("repo", "repo is not built yet");
}
