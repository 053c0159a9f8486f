/* droverctl balance: not built yet (skeleton). */
#include "droverctl.h"

int
ctl_cmd_balance (Ctl *ctl, int argc, char **argv)
{
  return ctl_usage_error ("balance", "balance is not built yet");
}
