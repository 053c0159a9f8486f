/* MigLadder: the source's hands on the convergence ladder (issue 17).
 *
 * MigCtl (mig-controller.c) decides which rung to climb; MigLadder
 * arms the rungs before the migration starts and applies each decision
 * to libvirt and QEMU:
 *   downtime  - virDomainMigrateSetMaxDowntime;
 *   throttle  - QEMU's auto-converge, armed with the migration and held
 *               at 1 % by max-cpu-throttle, which each raise lifts;
 *   postcopy  - the migration starts with VIR_MIGRATE_POSTCOPY (when the
 *               operator or the VM allows it) and
 *               virDomainMigrateStartPostCopy switches: the guest runs
 *               on the destination and pulls the pages it lacks through
 *               the agents' channel;
 *   forced    - the guest paused so the last round completes.
 * Once in post-copy neither source nor destination has the whole guest:
 * a broken channel leaves it paused on both ("post-copy failed"), and
 * the error says so.
 */
#include "mig-src-private.h"

#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <string.h>

/* Sets QEMU's max-cpu-throttle (libvirt 9.0 has no API for it: the
 * monitor passthrough, which marks the domain "custom-monitor" tainted
 * in its log). FALSE if QEMU refused. */
static gboolean
set_max_throttle (MigLadder *l, guint32 pct, gboolean initial)
{
  /* QEMU wants max-cpu-throttle >= cpu-throttle-initial: arming sets
   * both to 1 at once. */
  g_autofree char *cmd = g_strdup_printf (
      "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
      "{%s\"max-cpu-throttle\":%u}}",
      initial ? "\"cpu-throttle-initial\":1," : "",
      CLAMP (pct, 1, MIG_MAX_THROTTLE_PCT));
  char *result = NULL;
  gboolean ok;

  ok = virDomainQemuMonitorCommand (l->dom, cmd, &result, 0) == 0 && result
       && !strstr (result, "\"error\"");
  if (!ok)
    {
      virErrorPtr err = virGetLastError ();

      drover_message (l->vm, l->job_id, NULL,
                      "migration: cannot set the vCPU throttle to %u %%: %s",
                      pct,
                      result                ? result
                      : err && err->message ? err->message
                                            : "unknown libvirt error");
    }
  free (result);
  return ok;
}

gboolean
mig_ladder_arm (MigLadder *l, const MigSrcConfig *c, virDomainPtr dom,
                gboolean with_disk, GError **error)
{
  l->dom = dom;
  l->vm = virDomainGetName (dom);
  l->job_id = c->job_id;
  l->postcopy = c->postcopy;
  /* libvirt 9.0 refuses post-copy together with a storage copy (the
   * disk's mirror cannot follow the guest across): NOW says so before
   * anything starts, AUTO keeps the forced pause. */
  if (with_disk && l->postcopy == MIG_POSTCOPY_NOW)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_UNSUPPORTED,
                   "post-copy cannot move VM %s: its disk is copied with it "
                   "(storage migration), which post-copy does not support",
                   l->vm);
      return FALSE;
    }
  if (with_disk && l->postcopy == MIG_POSTCOPY_AUTO)
    {
      drover_message (l->vm, l->job_id, NULL,
                      "migration: no post-copy rung for a VM whose disk is "
                      "copied along: a stall forces the pause");
      l->postcopy = MIG_POSTCOPY_NEVER;
    }
  /* QEMU's auto-converge starts with the migration (it cannot be
   * turned on later) at 1 % with steps of 99 %, and max-cpu-throttle
   * holds it at 1 %, so QEMU's own trigger does nothing worth the
   * name; the controller's rung raises the ceiling and QEMU's next
   * trigger jumps to it. Without the passthrough there is no rung. */
  if (!c->no_throttle)
    l->throttle_armed = set_max_throttle (l, 1, TRUE);
  return TRUE;
}

void
mig_ladder_config (MigLadder *l, const MigSrcConfig *c, MigCtlConfig *cc)
{
  if (l->throttle_armed)
    cc->max_throttle_pct = c->max_throttle_pct ? c->max_throttle_pct
                                               : MIG_DEFAULT_MAX_THROTTLE_PCT;
  cc->postcopy = l->postcopy;
}

gboolean
mig_ladder_add_params (MigLadder *l, unsigned int *flags,
                       virTypedParameterPtr *params, int *nparams,
                       int *maxparams, GError **error)
{
  if (l->postcopy != MIG_POSTCOPY_NEVER)
    *flags |= VIR_MIGRATE_POSTCOPY;
  if (!l->throttle_armed)
    return TRUE;
  *flags |= VIR_MIGRATE_AUTO_CONVERGE;
  if (virTypedParamsAddInt (params, nparams, maxparams,
                            VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL, 1)
          < 0
      || virTypedParamsAddInt (params, nparams, maxparams,
                               VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT,
                               MIG_MAX_THROTTLE_PCT)
             < 0)
    {
      mig_libvirt_error (error, MIG_ERROR_FAILED,
                         "cannot build migration parameters");
      return FALSE;
    }
  return TRUE;
}

static void
force (MigLadder *l, const MigCtlDecision *d)
{
  drover_message (l->vm, l->job_id, NULL,
                  "migration: %s; forcing the switchover", d->reason);
  (void)virDomainMigrateSetMaxDowntime (l->dom, d->downtime_ms, 0);
  if (virDomainSuspend (l->dom) == 0)
    l->paused = TRUE;
}

gboolean
mig_ladder_apply (MigLadder *l, MigCtl *ctl, const MigCtlDecision *d,
                  const MigCtlSample *s)
{
  MigCtlDecision fallback;

  switch (d->action)
    {
    case MIG_CTL_SET_DOWNTIME:
      (void)virDomainMigrateSetMaxDowntime (l->dom, d->downtime_ms, 0);
      return FALSE;
    case MIG_CTL_FORCE:
      force (l, d);
      return l->paused;
    case MIG_CTL_THROTTLE:
      drover_message (l->vm, l->job_id, NULL,
                      "migration: %s; throttling the vCPUs up to %u %% "
                      "(dirty %.1f MiB/s, sent %.1f MiB/s)",
                      d->reason, d->throttle_pct, s->dirty_rate / 1048576.0,
                      s->throughput / 1048576.0);
      (void)virDomainMigrateSetMaxDowntime (l->dom, d->downtime_ms, 0);
      (void)set_max_throttle (l, d->throttle_pct, FALSE);
      return FALSE;
    case MIG_CTL_POSTCOPY:
      drover_message (l->vm, l->job_id, NULL,
                      "migration: %s; switching to post-copy with %.1f MiB "
                      "left (dirty %.1f MiB/s, sent %.1f MiB/s)",
                      d->reason, s->remaining / 1048576.0,
                      s->dirty_rate / 1048576.0, s->throughput / 1048576.0);
      if (virDomainMigrateStartPostCopy (l->dom, 0) == 0)
        {
          l->in_postcopy = TRUE;
          return TRUE;
        }
      {
        virErrorPtr err = virGetLastError ();

        drover_message (l->vm, l->job_id, NULL,
                        "migration: the switch to post-copy failed: %s",
                        err && err->message ? err->message : "unknown error");
      }
      mig_ctl_postcopy_failed (ctl, s->elapsed_ms, &fallback);
      force (l, &fallback);
      return l->paused;
    case MIG_CTL_ABORT:
    case MIG_CTL_CONTINUE:
      break;
    }
  return FALSE;
}

void
mig_ladder_postcopy_error (MigLadder *l, const char *host_error, guint attempts,
                           const char *last_error, GError **error)
{
  int state = 0, reason = 0;
  gboolean paused_failed = virDomainGetState (l->dom, &state, &reason, 0) == 0
                           && state == VIR_DOMAIN_PAUSED
                           && reason == VIR_DOMAIN_PAUSED_POSTCOPY_FAILED;
  g_autofree char *tried
      = attempts ? g_strdup_printf ("%u recovery attempt%s failed, the last "
                                    "with: %s",
                                    attempts, attempts == 1 ? "" : "s",
                                    last_error ? last_error : "unknown error")
                 : g_strdup ("no recovery was possible: the source VM is "
                             "not paused in post-copy");

  g_set_error (error, MIG_ERROR, MIG_ERROR_FAILED,
               "post-copy of VM %s broke off (%s) and %s. The VM is paused "
               "in post-copy on both hosts (the source reports it %s), its "
               "memory split between them: do not start or destroy it on "
               "either host. Drover does not retry it later: recover it by "
               "hand from the source host with libvirt's post-copy recovery "
               "(virsh migrate --postcopy --postcopy-resume)",
               l->vm, host_error, tried,
               paused_failed ? "paused, post-copy failed" : "in another state");
}
