/* The agent's live migration setup: the destination side (AgentMigDst,
 * with its listener), started by agent_start and gone with the agent's
 * last reference. The channel's credentials are the agent's TLS material
 * (agent-tls.c); the source side (agent-mig-src.c) needs nothing of its
 * own. */
#include "agent-private.h"

#include <string.h>

#include "mig-migrate.h"

gboolean
agent_migration_split_address (const char *address, char **host, guint16 *port)
{
  const char *colon = address ? strrchr (address, ':') : NULL;
  guint64 v;

  if (!colon || colon == address
      || !g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &v, NULL))
    return FALSE;
  *host = g_strndup (address, colon - address);
  *port = (guint16)v;
  return TRUE;
}

gboolean
agent_migration_start (Agent *agent, GError **error)
{
  g_autofree char *ip = NULL;
  guint16 unused;
  guint swept;

  if (agent->accel == AGENT_ACCEL_TEST)
    return TRUE; /* libvirt's test driver cannot migrate */
  if (!agent_migration_split_address (agent->config.listen, &ip, &unused))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "cannot take the migration address from %s",
                   agent->config.listen);
      return FALSE;
    }
  /* No migration survives an agent restart. */
  swept = mig_sweep_sockets ();
  if (swept)
    g_message ("removed %u stale migration sockets", swept);
  agent->mig_dst
      = agent_mig_dst_new (agent, ip, agent->config.migration_port, error);
  return agent->mig_dst != NULL;
}

void
agent_migration_stop (Agent *agent)
{
  g_clear_pointer (&agent->mig_dst, agent_mig_dst_free);
}
