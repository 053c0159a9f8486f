/* Post-copy recovery's decisions: pure, unit-tested
 * (tests/unit/test-mig-recover.c); mig-src-recover.c acts on them. */
#include "mig-migrate.h"

#include <libvirt/libvirt.h>

guint
mig_recover_backoff_ms (guint attempt)
{
  guint ms = 1000;

  for (guint i = 1; i < attempt && ms < 8000; i++)
    ms *= 2;
  return MIN (ms, 8000);
}

MigRecoverVerdict
mig_recover_next (guint attempts_done, int state, int reason)
{
  /* Only a source QEMU that paused on the break (libvirt's "post-copy
   * failed") can resume; anything else (the domain gone, running,
   * shut off) is beyond a retry. */
  if (!(state == VIR_DOMAIN_PAUSED
        && reason == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED)
      && !(state == VIR_DOMAIN_RUNNING
           && reason == VIR_DOMAIN_RUNNING_POSTCOPY_FAILED))
    return MIG_RECOVER_NOT_PAUSED;
  if (attempts_done >= MIG_RECOVER_ATTEMPTS)
    return MIG_RECOVER_SPENT;
  return MIG_RECOVER_RETRY;
}
