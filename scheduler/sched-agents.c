/* SchedAgents: the scheduler's side of the agents it commands. One cached
 * ProtoClient per host (recreated when the host's address changes,
 * dropped when its agent registers again), the commands in flight
 * (SchedPending), forwarding a command to the host of a VM, and how an
 * agent's error reaches the operator.
 *
 * Every agent call completes exactly once, with an error on failure,
 * timeout or shutdown (sched_agents_cancel_all): that completion finishes
 * the operator's call.
 */
#include "sched-private.h"

#include <string.h>

struct _SchedAgents
{
  SchedStore *store;   /* borrowed */
  const ProtoTls *tls; /* borrowed; NULL = insecure */
  GMainContext *ctx;   /* clients deliver their completions here */
  GHashTable *clients; /* host name -> ProtoClient (one per agent) */
};

SchedAgents *
sched_agents_new (SchedStore *store, const ProtoTls *tls, GMainContext *ctx)
{
  SchedAgents *agents = g_new0 (SchedAgents, 1);

  agents->store = store;
  agents->tls = tls;
  agents->ctx = g_main_context_ref (ctx);
  agents->clients = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)proto_client_free);
  return agents;
}

void
sched_agents_free (SchedAgents *agents)
{
  g_hash_table_unref (agents->clients);
  g_main_context_unref (agents->ctx);
  g_free (agents);
}

void
sched_agents_cancel_all (SchedAgents *agents)
{
  g_hash_table_remove_all (agents->clients);
}

static gboolean
free_client_idle (gpointer client)
{
  proto_client_free (client);
  return G_SOURCE_REMOVE;
}

void
sched_agents_drop (SchedAgents *agents, const char *name)
{
  ProtoClient *client = g_hash_table_lookup (agents->clients, name);
  g_autoptr (GSource) idle = NULL;

  if (client == NULL)
    return;
  g_hash_table_steal (agents->clients, name);
  idle = g_idle_source_new ();
  g_source_set_callback (idle, free_client_idle, client, NULL);
  g_source_attach (idle, agents->ctx);
}

ProtoClient *
sched_agents_client (SchedAgents *agents, const SchedHost *host, GError **error)
{
  ProtoClient *client = g_hash_table_lookup (agents->clients, host->name);

  if (client != NULL
      && strcmp (proto_client_get_target (client), host->address) == 0)
    return client;
  sched_agents_drop (agents, host->name);
  /* The agent at that address must be that host. */
  client = proto_client_new_for (host->address, agents->tls, PROTO_ROLE_HOST,
                                 host->name, agents->ctx, error);
  if (client == NULL)
    {
      g_prefix_error (error, "host '%s': ", host->name);
      return NULL;
    }
  g_hash_table_replace (agents->clients, g_strdup (host->name), client);
  return client;
}

ProtoClient *
sched_agents_client_up (SchedAgents *agents, const char *name,
                        SchedHost **host_out, GError **error)
{
  g_autoptr (SchedHost) host
      = sched_store_get_host (agents->store, name, error);
  ProtoClient *client;

  if (host == NULL || !sched_host_check_up (host, error))
    return NULL;
  client = sched_agents_client (agents, host, error);
  if (client != NULL && host_out != NULL)
    *host_out = g_steal_pointer (&host);
  return client;
}

gboolean
sched_agents_lookup_vm (SchedAgents *agents, const char *name,
                        gboolean allow_no_host, SchedVm **vm_out,
                        SchedHost **host_out, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;

  if (!proto_name_validate ("VM", name, error))
    return FALSE;
  vm = sched_store_get_vm (agents->store, name, error);
  if (vm == NULL)
    return FALSE;
  if (strcmp (vm->state, PROTO_VM_CREATING) == 0)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                   "VM '%s' is being created", name);
      return FALSE;
    }
  host = sched_store_get_host (agents->store, vm->host, &local);
  if (host == NULL)
    {
      if (!g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
      if (!allow_no_host)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                       "host '%s' of VM '%s' is unknown", vm->host, name);
          return FALSE;
        }
    }
  *vm_out = g_steal_pointer (&vm);
  *host_out = g_steal_pointer (&host);
  return TRUE;
}

void
sched_agents_call_fail (ProtoServerCall *call, const char *host,
                        const GError *error)
{
  proto_server_call_fail (call, sched_error_to_status (error), "host '%s': %s",
                          host, error->message);
}

/* --- commands in flight ------------------------------------------------ */

SchedPending *
sched_pending_new (SchedService *svc, ProtoServerCall *call, const char *vm,
                   const char *host, SchedJob *job)
{
  SchedPending *p = g_new0 (SchedPending, 1);

  p->svc = svc;
  p->call = call;
  p->vm = g_strdup (vm);
  p->host = g_strdup (host);
  p->job = job;
  return p;
}

void
sched_pending_free (SchedPending *p)
{
  g_free (p->vm);
  g_free (p->host);
  sched_job_free (p->job);
  g_free (p);
}

void
sched_agents_forward (SchedAgents *agents, SchedService *svc,
                      ProtoServerCall *call, const char *name,
                      guint agent_method, const ProtobufCMessage *request,
                      gint64 timeout_ms, ProtoReplyFunc done)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  ProtoClient *client;

  if (!sched_agents_lookup_vm (agents, name, FALSE, &vm, &host, &error)
      || !sched_host_check_up (host, &error)
      || (client = sched_agents_client (agents, host, &error)) == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  proto_client_call (client, DROVER_AGENT_SERVICE, agent_method, request,
                     timeout_ms, done,
                     sched_pending_new (svc, call, vm->name, host->name, NULL));
}
