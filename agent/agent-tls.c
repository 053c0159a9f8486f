/* AgentTls: the agent's TLS material, certificate, key, CA and CRL from
 * --tls-dir, as AgentService and its clients use it (ProtoTls) and as the
 * migration channel does (MigChannelCreds), both ways.
 *
 * SIGHUP reloads it (agent_reload_tls): the server swaps it without
 * dropping connections, the migration listener hands new connections the
 * new credentials, migrations and console fetches that start later take
 * the new material, and the scheduler client is re-created before its
 * next call (the reporter makes one call at a time, so none is in flight
 * then). Connections already open stay. A reload replaces the whole
 * AgentTls; whoever holds a reference to the old one keeps using it. */
#include "agent-private.h"

#include "mig-migrate.h"

/* Loads the TLS directory's material; NULL with ERROR when it does not
 * load. */
static AgentTls *
tls_load (const char *dir, GError **error)
{
  g_autoptr (ProtoTls) tls = proto_tls_load (dir, error);
  MigChannelCreds *creds = tls ? mig_channel_creds_new_tls (tls, error) : NULL;
  AgentTls *t;

  if (!creds)
    {
      g_prefix_error (error, "TLS material in %s: ", dir);
      return NULL;
    }
  t = g_new0 (AgentTls, 1);
  g_atomic_ref_count_init (&t->ref);
  t->tls = g_steal_pointer (&tls);
  t->mig_creds = creds;
  return t;
}

void
agent_tls_unref (AgentTls *t)
{
  if (!t || !g_atomic_ref_count_dec (&t->ref))
    return;
  proto_tls_free (t->tls);
  mig_channel_creds_unref (t->mig_creds);
  g_free (t);
}

/* Makes T the agent's material (ownership taken). */
static void
tls_set (Agent *agent, AgentTls *t)
{
  AgentTls *old;

  g_mutex_lock (&agent->tls_lock);
  old = agent->tls;
  agent->tls = t;
  g_mutex_unlock (&agent->tls_lock);
  agent_tls_unref (old);
}

gboolean
agent_tls_load (Agent *agent, GError **error)
{
  AgentTls *t;

  if (!agent->config.tls_dir)
    return TRUE;
  t = tls_load (agent->config.tls_dir, error);
  if (t)
    tls_set (agent, t);
  return t != NULL;
}

AgentTls *
agent_tls_get (Agent *agent)
{
  AgentTls *t;

  g_mutex_lock (&agent->tls_lock);
  t = agent->tls;
  if (t)
    g_atomic_ref_count_inc (&t->ref);
  g_mutex_unlock (&agent->tls_lock);
  return t;
}

void
agent_tls_clear (Agent *agent)
{
  tls_set (agent, NULL);
}

gboolean
agent_reload_tls (Agent *agent, GError **error)
{
  g_autoptr (AgentTls) t = NULL;

  if (!agent->config.tls_dir)
    return TRUE;
  t = tls_load (agent->config.tls_dir, error);
  if (!t
      || (agent->server
          && !proto_server_reload_tls (agent->server, t->tls, error)))
    {
      g_prefix_error (error, "cannot reload the TLS material: ");
      return FALSE;
    }
  if (agent->mig_dst)
    agent_mig_dst_set_creds (agent->mig_dst, t->mig_creds);
  tls_set (agent, g_steal_pointer (&t));
  agent->sched_stale = TRUE;
  g_message ("reloaded the TLS material in %s", agent->config.tls_dir);
  return TRUE;
}
