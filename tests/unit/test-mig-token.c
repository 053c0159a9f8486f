/* MigTokenTable, the one token implementation the migration listener
 * runs (MigDst issues its tokens here): a token is bound to its job, its
 * stream kinds and the source host, used once per kind, expires, comes
 * from getrandom and is compared in constant time. No sockets: peers
 * are what the TLS handshake would have identified. */
#include <string.h>

#include "mig-channel-private.h"

static const MigChannelPeer host_a = { TRUE, PROTO_ROLE_HOST, "host-a", NULL };
static const MigChannelPeer host_b = { TRUE, PROTO_ROLE_HOST, "host-b", NULL };
static const MigChannelPeer op_a
    = { TRUE, PROTO_ROLE_OPERATOR, "host-a", NULL };
static const MigChannelPeer revoked
    = { TRUE, PROTO_ROLE_NONE, NULL, "certificate revoked" };
static const MigChannelPeer plain = { FALSE, PROTO_ROLE_NONE, NULL, NULL };

#define KINDS_NO_DISK                                                          \
  (MIG_TOKEN_KIND (MIG_CHANNEL_KIND_CONTROL)                                   \
   | MIG_TOKEN_KIND (MIG_CHANNEL_KIND_MEMORY))

/* Consumes TOKEN for KIND from PEER; asserts the refusal says SAYS, or
 * success (and job J1) when SAYS is NULL. */
static void
consume (MigTokenTable *t, MigChannelKind kind, const char *token,
         const MigChannelPeer *peer, const char *says)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *job = NULL;
  gboolean ok = mig_token_table_consume (t, kind, token, peer, &job, &error);

  if (says == NULL)
    {
      g_assert_no_error (error);
      g_assert_true (ok);
      g_assert_cmpstr (job, ==, "j1");
      return;
    }
  g_assert_false (ok);
  g_assert_null (job);
  g_assert_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH);
  if (!strstr (error->message, says))
    g_error ("'%s' does not say '%s'", error->message, says);
}

/* One stream of each kind the token was issued for, once. */
static void
test_single_use_per_kind (void)
{
  g_autoptr (MigTokenTable) t = mig_token_table_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *token = mig_token_table_issue_job (t, "j1", KINDS_NO_DISK,
                                                      "host-a", 10000, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (strlen (token), ==, 64);
  g_assert_false (mig_token_table_used (t, "j1", MIG_CHANNEL_KIND_CONTROL));
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &host_a, NULL);
  g_assert_true (mig_token_table_used (t, "j1", MIG_CHANNEL_KIND_CONTROL));
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &host_a, "already used");
  consume (t, MIG_CHANNEL_KIND_DISK, token, &host_a, "admits no disk stream");
  consume (t, MIG_CHANNEL_KIND_MEMORY, token, &host_a, NULL);
  consume (t, MIG_CHANNEL_KIND_MEMORY, token, &host_a, "already used");
  consume (t, MIG_CHANNEL_KIND_MEMORY, "0123", &host_a, "unknown token");
}

/* Only the source host the scheduler named may use the token; a refused
 * peer uses nothing up. */
static void
test_bound_to_source_host (void)
{
  g_autoptr (MigTokenTable) t = mig_token_table_new ();
  g_autofree char *token = mig_token_table_issue_job (t, "j1", KINDS_NO_DISK,
                                                      "host-a", 10000, NULL);

  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &host_b,
           "comes from host host-a, not from host host-b");
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &op_a,
           "not from operator host-a");
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &revoked, "certificate revoked");
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, NULL, "names no host");
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &host_a, NULL);
  g_clear_pointer (&token, g_free);

  /* Plain TCP (an insecure agent, tests) identifies nobody: admitted. */
  token = mig_token_table_issue_job (t, "j2", KINDS_NO_DISK, "host-a", 10000,
                                     NULL);
  g_assert_true (mig_token_table_consume (t, MIG_CHANNEL_KIND_MEMORY, token,
                                          &plain, NULL, NULL));
}

/* A job has one token at a time; revoking needs that token. */
static void
test_job_and_revoke (void)
{
  g_autoptr (MigTokenTable) t = mig_token_table_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *token = mig_token_table_issue_job (t, "j1", KINDS_NO_DISK,
                                                      "host-a", 10000, NULL);

  g_assert_null (mig_token_table_issue_job (t, "j1", KINDS_NO_DISK, "host-a",
                                            10000, &error));
  g_assert_error (error, MIG_ERROR, MIG_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "already expected"));
  g_assert_false (mig_token_table_revoke (t, "j1", "f00"));
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &host_a, NULL);
  g_assert_true (mig_token_table_revoke (t, "j1", token));
  consume (t, MIG_CHANNEL_KIND_MEMORY, token, &host_a, "unknown token");
  g_assert_true (mig_token_table_revoke (t, "j1", NULL));
  g_clear_pointer (&token, g_free);
  token = mig_token_table_issue_job (t, "j1", KINDS_NO_DISK, "host-a", 10000,
                                     NULL);
  g_assert_nonnull (token);
}

static void
test_expires (void)
{
  g_autoptr (MigTokenTable) t = mig_token_table_new ();
  g_autofree char *token
      = mig_token_table_issue_job (t, "j1", KINDS_NO_DISK, NULL, 1, NULL);

  g_usleep (20 * 1000);
  consume (t, MIG_CHANNEL_KIND_CONTROL, token, &host_a, "expired");
}

static void
test_random_and_equal (void)
{
  g_autoptr (GHashTable) seen
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; i < 200; i++)
    {
      char *token = mig_token_new ();

      g_assert_cmpuint (strlen (token), ==, 64);
      for (const char *p = token; *p; p++)
        g_assert_true (g_ascii_isxdigit (*p) && !g_ascii_isupper (*p));
      g_assert_false (g_hash_table_contains (seen, token));
      g_hash_table_add (seen, token);
    }
  g_assert_true (mig_token_equal ("abcd", "abcd"));
  g_assert_false (mig_token_equal ("abcd", "abce"));
  g_assert_false (mig_token_equal ("abcd", "abc"));
  g_assert_false (mig_token_equal ("abc", "abcd"));
  g_assert_false (mig_token_equal ("", "a"));
  g_assert_true (mig_token_equal ("", ""));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mig/token/single-use-per-kind", test_single_use_per_kind);
  g_test_add_func ("/mig/token/bound-to-source-host",
                   test_bound_to_source_host);
  g_test_add_func ("/mig/token/job-and-revoke", test_job_and_revoke);
  g_test_add_func ("/mig/token/expires", test_expires);
  g_test_add_func ("/mig/token/random-and-equal", test_random_and_equal);
  return g_test_run ();
}
