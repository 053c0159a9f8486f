/* The agent's TLS material: certificate, key, CA and CRL from --tls-dir,
 * used by AgentService, the migration channel (both ways) and the
 * clients to the scheduler and to other agents.
 *
 * SIGHUP reloads it (agent_reload_tls): the server swaps it without
 * dropping connections, the migration listener hands new connections the
 * new credentials, migrations and console fetches that start later take
 * the new material, and the scheduler client is re-created before its
 * next call (the reporter makes one call at a time, so none is in flight
 * then). Connections already open stay. */
#include "agent-private.h"

#include "mig-migrate.h"

gboolean
agent_tls_load (Agent *agent, GError **error)
{
  g_autoptr (ProtoTls) tls = NULL;
  g_autoptr (MigChannelCreds) creds = NULL;

  if (!agent->config.tls_dir)
    return TRUE;
  tls = proto_tls_load (agent->config.tls_dir, error);
  if (!tls)
    return FALSE;
  creds = mig_channel_creds_new_tls (tls, error);
  if (!creds)
    {
      g_prefix_error (error, "TLS material in %s: ", agent->config.tls_dir);
      return FALSE;
    }
  g_mutex_lock (&agent->tls_lock);
  g_clear_pointer (&agent->tls, proto_tls_free);
  g_clear_pointer (&agent->mig_creds, mig_channel_creds_unref);
  agent->tls = g_steal_pointer (&tls);
  agent->mig_creds = g_steal_pointer (&creds);
  g_mutex_unlock (&agent->tls_lock);
  return TRUE;
}

ProtoTls *
agent_tls_get (Agent *agent)
{
  ProtoTls *tls;

  g_mutex_lock (&agent->tls_lock);
  tls = agent->tls ? proto_tls_copy (agent->tls) : NULL;
  g_mutex_unlock (&agent->tls_lock);
  return tls;
}

MigChannelCreds *
agent_tls_get_mig_creds (Agent *agent)
{
  MigChannelCreds *creds;

  g_mutex_lock (&agent->tls_lock);
  creds = agent->mig_creds ? mig_channel_creds_ref (agent->mig_creds) : NULL;
  g_mutex_unlock (&agent->tls_lock);
  return creds;
}

void
agent_tls_clear (Agent *agent)
{
  g_mutex_lock (&agent->tls_lock);
  g_clear_pointer (&agent->tls, proto_tls_free);
  g_clear_pointer (&agent->mig_creds, mig_channel_creds_unref);
  g_mutex_unlock (&agent->tls_lock);
}

gboolean
agent_reload_tls (Agent *agent, GError **error)
{
  g_autoptr (ProtoTls) tls = NULL;
  g_autoptr (MigChannelCreds) creds = NULL;

  if (!agent->config.tls_dir)
    return TRUE;
  tls = proto_tls_load (agent->config.tls_dir, error);
  creds = tls ? mig_channel_creds_new_tls (tls, error) : NULL;
  if (!creds
      || (agent->server
          && !proto_server_reload_tls (agent->server, tls, error)))
    {
      g_prefix_error (error, "cannot reload the TLS material in %s: ",
                      agent->config.tls_dir);
      return FALSE;
    }
  if (agent->mig_dst)
    agent_mig_dst_set_creds (agent->mig_dst, creds);
  g_mutex_lock (&agent->tls_lock);
  proto_tls_free (agent->tls);
  mig_channel_creds_unref (agent->mig_creds);
  agent->tls = g_steal_pointer (&tls);
  agent->mig_creds = g_steal_pointer (&creds);
  g_mutex_unlock (&agent->tls_lock);
  agent->sched_stale = TRUE;
  g_message ("reloaded the TLS material in %s", agent->config.tls_dir);
  return TRUE;
}
