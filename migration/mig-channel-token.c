/* One-time tokens for MigChannel HELLO.
 *
 * MigTokenTable holds tokens issued one per stream, each valid for one
 * channel of its kind before it expires: the check a MigChannelListener
 * makes when given no auth callback (tests and the channel bench use it;
 * the agent's MigDst keeps one token per migration, see mig-dst.c, with
 * the generator and the comparison below). Used tokens are kept until
 * they expire so that a replay gets "already used", not "unknown".
 */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "mig-channel-private.h"

#define TOKEN_BYTES 32

typedef struct
{
  char *token;
  MigChannelKind kind;
  gint64 expires_us; /* monotonic */
  gboolean used;
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

/* Drops entries that expired; caller holds the lock. */
static void
prune (MigTokenTable *table, gint64 now)
{
  for (guint i = table->entries->len; i > 0; i--)
    {
      TokenEntry *e = g_ptr_array_index (table->entries, i - 1);
      if (e->expires_us <= now)
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

char *
mig_token_table_issue (MigTokenTable *table, MigChannelKind kind, guint ttl_ms)
{
  char *hex = mig_token_new ();
  TokenEntry *e = g_new0 (TokenEntry, 1);
  gint64 now = g_get_monotonic_time ();

  e->token = g_strdup (hex);
  e->kind = kind;
  e->expires_us = now + (gint64)ttl_ms * 1000;

  g_mutex_lock (&table->lock);
  prune (table, now);
  g_ptr_array_add (table->entries, e);
  g_mutex_unlock (&table->lock);
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

gboolean
mig_token_table_consume (MigTokenTable *table, MigChannelKind kind,
                         const char *token, GError **error)
{
  gint64 now = g_get_monotonic_time ();
  const char *refusal = "unknown token";

  g_mutex_lock (&table->lock);
  for (guint i = 0; i < table->entries->len; i++)
    {
      TokenEntry *e = g_ptr_array_index (table->entries, i);
      if (!mig_token_equal (e->token, token))
        continue;
      if (e->expires_us <= now)
        refusal = "token expired";
      else if (e->used)
        refusal = "token already used";
      else if (e->kind != kind)
        refusal = "token was issued for another stream kind";
      else
        {
          e->used = TRUE;
          refusal = NULL;
        }
      break;
    }
  g_mutex_unlock (&table->lock);

  if (refusal != NULL)
    {
      g_set_error_literal (error, MIG_ERROR, MIG_ERROR_CHANNEL_AUTH, refusal);
      return FALSE;
    }
  return TRUE;
}
