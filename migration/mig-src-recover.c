/* Post-copy recovery on the source (issue 17).
 *
 * Once switched to post-copy neither host has the whole guest. When a
 * stream breaks, QEMU pauses the guest on both hosts (libvirt: "paused,
 * post-copy failed") and the libvirt call fails. The destination agent
 * then keeps the job and lets its token admit one more control and
 * memory stream (agent-mig-dst.c), and this side:
 *   1. checks that the source domain is paused, post-copy failed
 *      (mig_recover_next: anything else cannot resume);
 *   2. waits mig_recover_backoff_ms, records the attempt (rung
 *      "postcopy-recover" in the job, a log line);
 *   3. opens fresh sockets and channels to the destination, as for the
 *      first call;
 *   4. calls virDomainMigrateToURI3 again with the same parameters and
 *      VIR_MIGRATE_POSTCOPY_RESUME, under the same control loop;
 * until the call completes or MIG_RECOVER_ATTEMPTS are spent.
 */
#include "mig-src-state.h"

#include <string.h>

/* How long QEMU and libvirt may take to mark the source paused after a
 * break. */
#define PAUSED_WAIT_MS 5000

static void
source_state (MigSrc *src, int *state, int *reason)
{
  gint64 until = g_get_monotonic_time () + PAUSED_WAIT_MS * 1000;

  do
    {
      *state = *reason = 0;
      if (virDomainGetState (src->dom, state, reason, 0) < 0)
        return;
      if (mig_recover_next (0, *state, *reason) == MIG_RECOVER_RETRY)
        return;
      g_usleep (100 * 1000);
    }
  while (g_get_monotonic_time () < until);
}

/* Stops and frees the broken forwarders; a new STOP for the next ones. */
static void
drop_forwarders (MigSrc *src)
{
  g_cancellable_cancel (src->stop);
  for (guint i = 0; i < N_FWD; i++)
    if (src->fwd[i])
      {
        mig_src_forward_stop (src->fwd[i]);
        g_clear_pointer (&src->fwd[i], mig_src_forward_free);
      }
  g_object_unref (src->stop);
  src->stop = g_cancellable_new ();
  src->fwd_config.stop = src->stop;
  g_mutex_lock (&src->lock);
  g_clear_error (&src->channel_error);
  g_mutex_unlock (&src->lock);
}

/* The first error of the last attempt, for the final message. */
static char *
attempt_error (MigSrc *src, const GError *prepare_error)
{
  char *text;

  if (prepare_error)
    return g_strdup (prepare_error->message);
  g_mutex_lock (&src->lock);
  if (src->channel_error && src->call.error)
    text = g_strdup_printf ("%s (channel: %s)", src->call.error->message,
                            src->channel_error->message);
  else if (src->channel_error)
    text = g_strdup (src->channel_error->message);
  else
    text = g_strdup (src->call.error ? src->call.error->message
                                     : "unknown error");
  g_mutex_unlock (&src->lock);
  return text;
}

/* One attempt: fresh channels, the call with POSTCOPY_RESUME. */
static gboolean
attempt (MigSrc *src, GError **error)
{
  MigCall *mc = &src->call;

  drop_forwarders (src);
  if (!mig_src_prepare_forwarders (src, error))
    return FALSE;
  g_mutex_lock (&mc->lock);
  mc->done = FALSE;
  mc->rc = 0;
  g_clear_error (&mc->error);
  g_mutex_unlock (&mc->lock);
  mc->flags |= VIR_MIGRATE_POSTCOPY | VIR_MIGRATE_POSTCOPY_RESUME;
  src->thread = g_thread_new ("mig-src-resume", mig_src_call_thread, mc);
  mig_src_control (src);
  return mc->rc == 0;
}

gboolean
mig_src_recover (MigSrc *src, GError **error)
{
  g_autofree char *first = attempt_error (src, NULL);
  g_autofree char *last = NULL;
  guint done = 0;
  int state = 0, reason = 0;
  MigRecoverVerdict v;

  for (;;)
    {
      g_autoptr (GError) e = NULL;
      guint wait_ms;

      source_state (src, &state, &reason);
      v = mig_recover_next (done, state, reason);
      if (v != MIG_RECOVER_RETRY)
        break;
      done++;
      wait_ms = mig_recover_backoff_ms (done);
      drover_message (src->vm, src->config->job_id, NULL,
                      "migration: post-copy broke off (%s); recovery attempt "
                      "%u of %u in %.1f s",
                      last ? last : first, done, MIG_RECOVER_ATTEMPTS,
                      wait_ms / 1000.0);
      g_usleep ((gulong)wait_ms * 1000);
      mig_ctl_note_recover (src->ctl,
                            (g_get_monotonic_time () - src->t0) / 1000);
      src->phase = PROTO_MIG_SWITCHOVER;
      mig_src_emit (src, src->have_last ? &src->last : NULL);
      if (attempt (src, &e))
        {
          drover_message (src->vm, src->config->job_id, NULL,
                          "migration: post-copy resumed (attempt %u)", done);
          return TRUE;
        }
      g_free (last);
      last = attempt_error (src, e);
      drover_message (src->vm, src->config->job_id, NULL,
                      "migration: recovery attempt %u failed: %s", done, last);
    }
  mig_ladder_postcopy_error (&src->ladder, first, done, last, error);
  return FALSE;
}
