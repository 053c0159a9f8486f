/* Post-copy recovery's decisions (migration/mig-recover.c), the token
 * re-arm the destination uses for it, and the rung it records. */
#include <glib.h>
#include <libvirt/libvirt.h>
#include <string.h>

#include "mig-channel.h"
#include "mig-migrate.h"

static void
test_backoff (void)
{
  g_assert_cmpuint (mig_recover_backoff_ms (1), ==, 1000);
  g_assert_cmpuint (mig_recover_backoff_ms (2), ==, 2000);
  g_assert_cmpuint (mig_recover_backoff_ms (3), ==, 4000);
  g_assert_cmpuint (mig_recover_backoff_ms (4), ==, 8000);
  g_assert_cmpuint (mig_recover_backoff_ms (40), ==, 8000);
  g_assert_cmpuint (mig_recover_backoff_ms (G_MAXUINT), ==, 8000);
}

static void
test_verdicts (void)
{
  const int pf = VIR_DOMAIN_PAUSED_POSTCOPY_FAILED;

  g_assert_cmpint (mig_recover_next (0, VIR_DOMAIN_PAUSED, pf), ==,
                   MIG_RECOVER_RETRY);
  g_assert_cmpint (
      mig_recover_next (MIG_RECOVER_ATTEMPTS - 1, VIR_DOMAIN_PAUSED, pf), ==,
      MIG_RECOVER_RETRY);
  g_assert_cmpint (
      mig_recover_next (MIG_RECOVER_ATTEMPTS, VIR_DOMAIN_PAUSED, pf), ==,
      MIG_RECOVER_SPENT);
  /* Paused for another reason, running, gone: nothing to resume. */
  g_assert_cmpint (
      mig_recover_next (0, VIR_DOMAIN_PAUSED, VIR_DOMAIN_PAUSED_MIGRATION), ==,
      MIG_RECOVER_NOT_PAUSED);
  g_assert_cmpint (mig_recover_next (0, VIR_DOMAIN_RUNNING, pf), ==,
                   MIG_RECOVER_NOT_PAUSED);
  /* libvirt's "running (post-copy failed)" resumes as well. */
  g_assert_cmpint (mig_recover_next (0, VIR_DOMAIN_RUNNING,
                                     VIR_DOMAIN_RUNNING_POSTCOPY_FAILED),
                   ==, MIG_RECOVER_RETRY);
  g_assert_cmpint (
      mig_recover_next (0, VIR_DOMAIN_RUNNING, VIR_DOMAIN_RUNNING_POSTCOPY), ==,
      MIG_RECOVER_NOT_PAUSED);
  g_assert_cmpint (mig_recover_next (0, VIR_DOMAIN_SHUTOFF, 0), ==,
                   MIG_RECOVER_NOT_PAUSED);
  g_assert_cmpint (mig_recover_next (0, 0, 0), ==, MIG_RECOVER_NOT_PAUSED);
}

/* A used token admits its streams again after a re-arm, once each; an
 * unknown job cannot be re-armed. */
static void
test_token_rearm (void)
{
  g_autoptr (MigTokenTable) t = mig_token_table_new ();
  guint kinds = MIG_TOKEN_KIND (MIG_CHANNEL_KIND_CONTROL)
                | MIG_TOKEN_KIND (MIG_CHANNEL_KIND_MEMORY);
  g_autofree char *tok
      = mig_token_table_issue_job (t, "job1", kinds, NULL, 60000, NULL);
  g_autoptr (GError) e = NULL;
  char *job = NULL;

  g_assert_nonnull (tok);
  g_assert_true (mig_token_table_consume (t, MIG_CHANNEL_KIND_CONTROL, tok,
                                          NULL, &job, NULL));
  g_assert_cmpstr (job, ==, "job1");
  g_clear_pointer (&job, g_free);
  g_assert_false (mig_token_table_consume (t, MIG_CHANNEL_KIND_CONTROL, tok,
                                           NULL, NULL, &e));
  g_clear_error (&e);
  g_assert_false (mig_token_table_rearm (t, "other", kinds, 60000));
  g_assert_true (mig_token_table_rearm (t, "job1", kinds, 60000));
  g_assert_true (mig_token_table_used (t, "job1", MIG_CHANNEL_KIND_CONTROL)
                 == FALSE);
  g_assert_true (mig_token_table_consume (t, MIG_CHANNEL_KIND_CONTROL, tok,
                                          NULL, NULL, NULL));
  g_assert_false (mig_token_table_consume (t, MIG_CHANNEL_KIND_CONTROL, tok,
                                           NULL, NULL, &e));
  g_clear_error (&e);
  /* Still only its own kinds: no disk stream. */
  g_assert_false (
      mig_token_table_consume (t, MIG_CHANNEL_KIND_DISK, tok, NULL, NULL, &e));
  /* A re-arm with a short life expires. */
  g_clear_error (&e);
  g_assert_true (mig_token_table_rearm (t, "job1", kinds, 1));
  g_usleep (5000);
  g_assert_false (mig_token_table_consume (t, MIG_CHANNEL_KIND_MEMORY, tok,
                                           NULL, NULL, &e));
  g_assert_nonnull (strstr (e->message, "expired"));
}

static void
test_rung (void)
{
  MigCtlConfig c;
  MigCtl *ctl;
  const GArray *rungs;

  mig_ctl_config_init (&c, 1024ull * 1024 * 1024, 0, 0, 0);
  ctl = mig_ctl_new (&c);
  mig_ctl_note_recover (ctl, 100);
  mig_ctl_note_recover (ctl, 200);
  g_assert_cmpstr (mig_ctl_get_rung (ctl), ==, MIG_RUNG_POSTCOPY_RECOVER);
  rungs = mig_ctl_get_rungs (ctl);
  g_assert_cmpuint (rungs->len, >=, 2);
  mig_ctl_free (ctl);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mig-recover/backoff", test_backoff);
  g_test_add_func ("/mig-recover/verdicts", test_verdicts);
  g_test_add_func ("/mig-recover/token-rearm", test_token_rearm);
  g_test_add_func ("/mig-recover/rung", test_rung);
  return g_test_run ();
}
