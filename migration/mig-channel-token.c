/* MigTokenTable: the one-time tokens a MigChannelListener admits.
 *
 * A token comes from getrandom (32 bytes, hex) and admits one stream of
 * each kind it was issued for, within its time to live, from the peer it
 * was issued for (a host certificate with that CN). It is compared in
 * constant time. The agent's MigDst issues one per incoming migration
 * (job, its kinds, the source host the scheduler named); tests and the
 * channel bench issue job-less ones for a single kind. Used tokens stay
 * until they expire or their job is revoked, so that a replay gets
 * "already used", not "unknown".
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "mig-channel-private.h"

#define TOKEN_BYTES 32

typedef struct
{
  char *token;
  char *job_id;      /* NULL: a job-less token */
  char *peer;        /* CN of the host the streams must come from; NULL: any */
  guint kinds;       /* MIG_TOKEN_KIND () bits admitted */
  guint used;        /* ... and used */
  gint64 expires_us; /* monotonic */
} TokenEntry;

struct _MigTokenTable
{
  GMutex lock; /* guards entries */
  GPtrArray *entries;
};

static void
token_entry_free (gpointer p)
{
  TokenEntry *e = p;

  g_free (e->token);
  g_free (e->job_id);
  g_free (e->peer);
  g_free (e);
}

MigTokenTable *
mig_token_table_new (void)
{
  MigTokenTable *table = g_new0 (MigTokenTable, 1);

  g_mutex_init (&table->lock);
  table->entries = g_ptr_array_new_with_free_func (token_entry_free);
  return table;
}

void
mig_token_table_free (MigTokenTable *table)
{
  if (table == NULL)
    return;
  g_ptr_array_unref (table->entries);
  g_mutex_clear (&table->lock);
  g_free (table);
}

/* Drops job-less entries that expired (a job's entry goes with
 * mig_token_table_revoke); caller holds the lock. */
static void
prune (MigTokenTable *table, gint64 now)
{
  for (guint i = table->entries->len; i > 0; i--)
    {
      TokenEntry *e = g_ptr_array_index (table->entries, i - 1);

      if (e->job_id == NULL && e->expires_us <= now)
        g_ptr_array_remove_index_fast (table->entries, i - 1);
    }
}

static void
fill_random (guint8 *buf, gsize len)
{
  gsize at = 0;

  while (at < len)
    {
      gssize n = getrandom (buf + at, len - at, 0);
      if (n < 0)
        {
          /* getrandom only fails on EINTR here (no GRND_NONBLOCK). */
          g_assert (errno == EINTR);
          continue;
        }
      at += n;
    }
}

char *
mig_token_new (void)
{
  guint8 raw[TOKEN_BYTES];
  char *hex = g_malloc (TOKEN_BYTES * 2 + 1);

  fill_random (raw, sizeof raw);
  for (guint i = 0; i < TOKEN_BYTES; i++)
    g_snprintf (hex + 2 * i, 3, "%02x", raw[i]);
  return hex;
}

gboolean
mig_token_equal (const char *a, const char *b)
{
  gsize la = strlen (a), lb = strlen (b);
  guint8 diff = la != lb;

  for (gsize i = 0; i < la && i < lb; i++)
    diff |= (guint8)(a[i] ^ b[i]);
  return diff == 0;
}

/* The entry of job JOB_ID; caller holds the lock. */
static TokenEntry *
find_job (MigTokenTable *table, const char *job_id)
{
  for (guint i = 0; i < table->entries->len; i++)
    {
      TokenEntry *e = g_ptr_array_index (table->entries, i);

      if (g_strcmp0 (e->job_id, job_id) == 0)
        return e;
    }
  return NULL;
}

char *
mig_token_table_issue_job (MigTokenTable *table, const char *job_id,
                           guint kinds, const char *peer, guint ttl_ms,
                           GError **error)
{
  TokenEntry *e;
  gint64 now = g_get_monotonic_time ();

  g_return_val_if_fail (job_id != NULL && kinds != 0, NULL);
  g_mutex_lock (&table->lock);
  prune (table, now);
  if (find_job (table, job_id))
    {
      g_mutex_unlock (&table->lock);
      g_set_error (error, MIG_ERROR, MIG_ERROR_INVALID,
                   "migration %s is already expected here", job_id);
      return NULL;
    }
  e = g_new0 (TokenEntry, 1);
  e->token = mig_token_new ();
  e->job_id = g_strdup (job_id);
  e->peer = g_strdup (peer);
  e->kinds = kinds;
  e->expires_us = now + (gint64)ttl_ms * 1000;
  g_ptr_array_add (table->entries, e);
  g_mutex_unlock (&table->lock);
  return g_strdup (e->token);
}

char *
mig_token_table_issue (MigTokenTable *table, MigChannelKind kind, guint ttl_ms)
{
  TokenEntry *e = g_new0 (TokenEntry, 1);
  gint64 now = g_get_monotonic_time ();

  e->token = mig_token_new ();
  e->kinds = MIG_TOKEN_KIND (kind);
  e->expires_us = now + (gint64)ttl_ms * 1000;
  g_mutex_lock (&table->lock);
  prune (table, now);
  g_ptr_array_add (table->entries, e);
  g_mutex_unlock (&table->lock);
  return g_strdup (e->token);
}

/* Why PEER may not use E, or NULL. Over plain TCP (tests, an insecure
 * agent) nobody is identified and the binding cannot be checked; an
 * unknown peer (NULL) is refused. */
static char *
peer_refusal (const TokenEntry *e, const MigChannelPeer *peer)
{
  if (e->peer == NULL || (peer != NULL && !peer->tls))
    return NULL;
  if (peer == NULL || peer->name == NULL)
    return g_strdup_printf ("the migration comes from host %s; the peer's "
                            "certificate names no host (%s)",
                            e->peer,
                            peer && peer->problem ? peer->problem : "unknown");
  if (peer->role != PROTO_ROLE_HOST || strcmp (peer->name, e->peer) != 0)
    return g_strdup_printf ("the migration comes from host %s, not from %s "
                            "%s",
                            e->peer, proto_role_to_string (peer->role),
                            peer->name);
  return NULL;
}

gboolean
mig_token_table_consume (MigTokenTable *table, MigChannelKind kind,
                         const char *token, const MigChannelPeer *peer,
                         char **job_id, GError **error)
{
  gint64 now = g_get_monotonic_time ();
  g_autofree char *refusal = g_strdup ("unknown token");
  TokenEntry *match = NULL;

  g_mutex_lock (&table->lock);
  /* Every entry is compared, so the time taken does not say which. */
  for (guint i = 0; i < table->entries->len; i++)
    {
      TokenEntry *e = g_ptr_array_index (table->entries, i);

      if (mig_token_equal (e->token, token) && match == NULL)
        match = e;
    }
  if (match != NULL)
    {
      g_clear_pointer (&refusal, g_free);
      if (match->expires_us <= now)
        refusal = g_strdup ("token expired");
      else if (!(match->kinds & MIG_TOKEN_KIND (kind)))
        refusal = g_strdup_printf ("token was issued for another stream "
                                   "kind: it admits no %s stream",
                                   mig_channel_kind_to_string (kind));
      else if (match->used & MIG_TOKEN_KIND (kind))
        refusal = g_strdup_printf ("token already used for its %s stream",
                                   mig_channel_kind_to_string (kind));
      else if ((refusal = peer_refusal (match, peer)) == NULL)
        {
          match->used |= MIG_TOKEN_KIND (kind);
          if (job_id)
            *job_id = g_strdup (match->job_id);
        }
    }
  g_mutex_unlock (&table->lock);

  if (refusal != NULL)
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH, refusal);
      return FALSE;
    }
  return TRUE;
}

gboolean
mig_token_table_used (MigTokenTable *table, const char *job_id,
                      MigChannelKind kind)
{
  TokenEntry *e;
  gboolean used;

  g_mutex_lock (&table->lock);
  e = find_job (table, job_id);
  used = e && (e->used & MIG_TOKEN_KIND (kind));
  g_mutex_unlock (&table->lock);
  return used;
}

gboolean
mig_token_table_revoke (MigTokenTable *table, const char *job_id,
                        const char *token)
{
  TokenEntry *e;
  gboolean ok = TRUE;

  g_mutex_lock (&table->lock);
  e = find_job (table, job_id);
  if (e && token && !mig_token_equal (e->token, token))
    ok = FALSE;
  else if (e)
    g_ptr_array_remove_fast (table->entries, e);
  g_mutex_unlock (&table->lock);
  return ok;
}

gboolean
mig_token_table_rearm (MigTokenTable *table, const char *job_id, guint kinds,
                       guint ttl_ms)
{
  TokenEntry *e;

  g_mutex_lock (&table->lock);
  e = find_job (table, job_id);
  if (e)
    {
      e->used &= ~kinds;
      e->expires_us = g_get_monotonic_time () + (gint64)ttl_ms * 1000;
    }
  g_mutex_unlock (&table->lock);
  return e != NULL;
}
