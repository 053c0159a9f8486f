/* SchedLogins: the dashboard's one-time tokens and sessions.
 *
 * A token is 32 random bytes in hex, handed out by CreateDashboardToken
 * to an operator and good for one login within its lifetime; the login
 * turns it into a session id (as random) that the page's cookie carries.
 * Both tables are bounded (the oldest entries go first) and expired
 * entries are swept whenever one is added, so a caller asking for tokens
 * in a loop cannot grow the scheduler's memory.
 */
#include "sched-dashboard.h"

#include <string.h>
#include <sys/random.h>

typedef struct
{
  ProtoRole role;
  char *name;
  gint64 expires_ms;
  guint64 serial; /* creation order, for evicting the oldest */
} Login;

struct _SchedLogins
{
  gint64 (*clock) (gpointer);
  gpointer clock_data;
  GHashTable *tokens;   /* token -> Login */
  GHashTable *sessions; /* session id -> Login */
  guint64 next_serial;
};

static void
login_free (gpointer data)
{
  Login *login = data;

  g_free (login->name);
  g_free (login);
}

SchedLogins *
sched_logins_new (gint64 (*clock) (gpointer), gpointer data)
{
  SchedLogins *logins = g_new0 (SchedLogins, 1);

  logins->clock = clock;
  logins->clock_data = data;
  logins->tokens
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, login_free);
  logins->sessions
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, login_free);
  return logins;
}

void
sched_logins_free (SchedLogins *logins)
{
  g_hash_table_unref (logins->tokens);
  g_hash_table_unref (logins->sessions);
  g_free (logins);
}

/* 32 bytes from the kernel's CSPRNG, in hex. */
static char *
random_id (void)
{
  guint8 bytes[32];
  gsize got = 0;

  while (got < sizeof bytes)
    {
      ssize_t n = getrandom (bytes + got, sizeof bytes - got, 0);

      if (n < 0)
        g_error ("getrandom failed"); /* only before the pool is ready */
      got += (gsize)n;
    }
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, bytes, sizeof bytes);
}

/* Sweeps the expired entries of TABLE, then the oldest while it holds
 * MAX or more, and adds KEY -> a Login for ROLE/NAME until EXPIRES_MS. */
static void
table_add (SchedLogins *logins, GHashTable *table, guint max, char *key,
           ProtoRole role, const char *name, gint64 expires_ms)
{
  gint64 now = logins->clock (logins->clock_data);
  GHashTableIter iter;
  Login *login;

  g_hash_table_iter_init (&iter, table);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&login))
    if (login->expires_ms <= now)
      g_hash_table_iter_remove (&iter);
  while (g_hash_table_size (table) >= max)
    {
      gpointer oldest = NULL;
      guint64 serial = G_MAXUINT64;
      const char *k;

      g_hash_table_iter_init (&iter, table);
      while (g_hash_table_iter_next (&iter, (gpointer *)&k, (gpointer *)&login))
        if (login->serial < serial)
          {
            serial = login->serial;
            oldest = (gpointer)k;
          }
      g_hash_table_remove (table, oldest);
    }
  login = g_new0 (Login, 1);
  login->role = role;
  login->name = g_strdup (name ? name : "");
  login->expires_ms = expires_ms;
  login->serial = logins->next_serial++;
  g_hash_table_insert (table, key, login);
}

char *
sched_logins_new_token (SchedLogins *logins, ProtoRole role, const char *name,
                        guint ttl_s, gint64 *expires_ms)
{
  char *token = random_id ();
  guint ttl = ttl_s == 0 ? SCHED_DASHBOARD_TOKEN_TTL_S
                         : MIN (ttl_s, SCHED_DASHBOARD_TOKEN_TTL_MAX_S);
  gint64 expires = logins->clock (logins->clock_data) + (gint64)ttl * 1000;

  table_add (logins, logins->tokens, SCHED_DASHBOARD_MAX_TOKENS,
             g_strdup (token), role, name, expires);
  if (expires_ms != NULL)
    *expires_ms = expires;
  return token;
}

char *
sched_logins_new_session (SchedLogins *logins, ProtoRole role, const char *name)
{
  char *id = random_id ();
  gint64 expires = logins->clock (logins->clock_data)
                   + (gint64)SCHED_DASHBOARD_SESSION_TTL_S * 1000;

  table_add (logins, logins->sessions, SCHED_DASHBOARD_MAX_SESSIONS,
             g_strdup (id), role, name, expires);
  return id;
}

char *
sched_logins_redeem (SchedLogins *logins, const char *token)
{
  g_autofree char *key = NULL;
  Login *login = NULL;
  char *session;

  if (token == NULL
      || !g_hash_table_steal_extended (logins->tokens, token, (gpointer *)&key,
                                       (gpointer *)&login))
    return NULL;
  if (login->expires_ms <= logins->clock (logins->clock_data))
    session = NULL;
  else
    session = sched_logins_new_session (logins, login->role, login->name);
  login_free (login);
  return session;
}

gboolean
sched_logins_session (SchedLogins *logins, const char *id, ProtoRole *role,
                      const char **name)
{
  Login *login = id ? g_hash_table_lookup (logins->sessions, id) : NULL;

  if (login == NULL || login->expires_ms <= logins->clock (logins->clock_data))
    return FALSE;
  *role = login->role;
  *name = login->name;
  return TRUE;
}

/* --- CreateDashboardToken ---------------------------------------------- */

void
sched_logins_handle_token (ProtoServerCall *call,
                           const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__DashboardTokenRequest *req = (const void *)request;
  Drover__V1__DashboardTokenReply reply
      = DROVER__V1__DASHBOARD_TOKEN_REPLY__INIT;
  g_autofree char *token = NULL;
  const char *name = proto_server_call_get_peer_name (call);

  /* The authorization table lets only operators here (an insecure
   * server: anyone, as an operator). */
  token = sched_logins_new_token (svc->logins, PROTO_ROLE_OPERATOR, name,
                                  req->ttl_s, &reply.expires_ms);
  drover_message (NULL, NULL, NULL, "dashboard token issued to %s",
                  name ? name : "an insecure caller");
  reply.token = token;
  proto_server_call_reply (call, &reply.base);
}
