/* SchedAgents: the scheduler's side of the agents it commands. One cached
 * ProtoClient per host (recreated when the host's address changes), the
 * commands in flight (SchedPending), forwarding a command to the host of
 * a VM, and how an agent's error reaches the operator.
 *
 * Every agent call completes exactly once, with an error on failure,
 * timeout or shutdown (sched_agents_cancel_all): that completion finishes
 * the operator's call.
 *
 * Clients are retired, not freed, when their host's agent registers again
 * (its predecessor's channel may sit in gRPC's reconnect backoff) and when
 * the TLS material is reloaded (new connections must use the new
 * certificate): new calls get a new client at once, and a retired one is
 * freed once the calls and streams it carries have ended, so a reload
 * never cuts a command or a migration short. Calls therefore go through
 * sched_agents_call and sched_agents_stream, which count them per client.
 */
#include "sched-private.h"

#include <string.h>

struct _SchedAgents
{
  SchedStore *store;     /* borrowed */
  const ProtoTls *tls;   /* borrowed; NULL = insecure; see _set_tls */
  GMainContext *ctx;     /* clients deliver their completions here */
  GHashTable *clients;   /* host name -> ProtoClient, for new calls */
  GHashTable *in_flight; /* ProtoClient -> calls in flight (guint); absent
                            when none */
  GPtrArray *retired;    /* ProtoClient: out of clients, freed when idle */
  GSource *reaper;       /* idle: frees idle retired clients */
  gboolean stopping;     /* sched_agents_cancel_all ran */
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
  agents->in_flight = g_hash_table_new (NULL, NULL);
  agents->retired = g_ptr_array_new ();
  return agents;
}

void
sched_agents_free (SchedAgents *agents)
{
  sched_agents_cancel_all (agents);
  g_hash_table_unref (agents->clients);
  g_hash_table_unref (agents->in_flight);
  g_ptr_array_unref (agents->retired);
  g_main_context_unref (agents->ctx);
  g_free (agents);
}

void
sched_agents_cancel_all (SchedAgents *agents)
{
  g_autoptr (GPtrArray) retired = g_steal_pointer (&agents->retired);

  agents->stopping = TRUE;
  agents->retired = g_ptr_array_new ();
  if (agents->reaper != NULL)
    {
      g_source_destroy (agents->reaper);
      g_clear_pointer (&agents->reaper, g_source_unref);
    }
  /* Their calls complete (CANCELLED) inside proto_client_free. */
  g_hash_table_remove_all (agents->clients);
  for (guint i = 0; i < retired->len; i++)
    proto_client_free (retired->pdata[i]);
}

static guint
calls_of (SchedAgents *agents, ProtoClient *client)
{
  return GPOINTER_TO_UINT (g_hash_table_lookup (agents->in_flight, client));
}

/* Frees the retired clients that carry nothing any more. From the main
 * loop: a client must not be freed inside one of its own callbacks. */
static gboolean
reap_idle (gpointer user_data)
{
  SchedAgents *agents = user_data;

  g_clear_pointer (&agents->reaper, g_source_unref);
  for (guint i = agents->retired->len; i-- > 0;)
    {
      ProtoClient *client = agents->retired->pdata[i];

      if (calls_of (agents, client) == 0)
        {
          g_ptr_array_remove_index_fast (agents->retired, i);
          proto_client_free (client);
        }
    }
  return G_SOURCE_REMOVE;
}

static void
reap_soon (SchedAgents *agents)
{
  if (agents->reaper != NULL || agents->stopping)
    return;
  agents->reaper = g_idle_source_new ();
  g_source_set_callback (agents->reaper, reap_idle, agents, NULL);
  g_source_attach (agents->reaper, agents->ctx);
}

void
sched_agents_drop (SchedAgents *agents, const char *name)
{
  g_autofree char *key = NULL;
  gpointer client = NULL;

  if (!g_hash_table_steal_extended (agents->clients, name, (gpointer *)&key,
                                    &client))
    return;
  g_ptr_array_add (agents->retired, client);
  reap_soon (agents);
}

void
sched_agents_set_tls (SchedAgents *agents, const ProtoTls *tls)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter iter;
  gpointer name;

  agents->tls = tls;
  g_hash_table_iter_init (&iter, agents->clients);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    g_ptr_array_add (names, g_strdup (name));
  for (guint i = 0; i < names->len; i++)
    sched_agents_drop (agents, names->pdata[i]);
}

ProtoClient *
sched_agents_client (SchedAgents *agents, const SchedHost *host, GError **error)
{
  ProtoClient *client = g_hash_table_lookup (agents->clients, host->name);

  if (agents->stopping)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_UNAVAILABLE,
                   "the scheduler is shutting down");
      return NULL;
    }
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

/* --- calls in flight --------------------------------------------------- */

/* One call or stream counted on its client. */
typedef struct
{
  SchedAgents *agents;
  ProtoClient *client;
  ProtoReplyFunc done;
  ProtoStreamMessageFunc on_message;
  ProtoStreamEndFunc on_end;
  gpointer user_data;
} AgentCall;

static AgentCall *
call_begin (SchedAgents *agents, ProtoClient *client, gpointer user_data)
{
  AgentCall *c = g_new0 (AgentCall, 1);

  c->agents = agents;
  c->client = client;
  c->user_data = user_data;
  g_hash_table_replace (agents->in_flight, client,
                        GUINT_TO_POINTER (calls_of (agents, client) + 1));
  return c;
}

static void
call_end (AgentCall *c)
{
  SchedAgents *agents = c->agents;
  guint n = calls_of (agents, c->client);

  if (n > 1)
    g_hash_table_replace (agents->in_flight, c->client,
                          GUINT_TO_POINTER (n - 1));
  else
    {
      g_hash_table_remove (agents->in_flight, c->client);
      if (g_ptr_array_find (agents->retired, c->client, NULL))
        reap_soon (agents);
    }
  g_free (c);
}

static void
call_done (const ProtobufCMessage *reply, const GError *error,
           gpointer user_data)
{
  AgentCall *c = user_data;

  c->done (reply, error, c->user_data);
  call_end (c);
}

void
sched_agents_call (SchedAgents *agents, ProtoClient *client, guint method,
                   const ProtobufCMessage *request, gint64 timeout_ms,
                   ProtoReplyFunc done, gpointer user_data)
{
  AgentCall *c = call_begin (agents, client, user_data);

  c->done = done;
  proto_client_call (client, DROVER_AGENT_SERVICE, method, request, timeout_ms,
                     call_done, c);
}

static void
stream_message (const ProtobufCMessage *msg, gpointer user_data)
{
  AgentCall *c = user_data;

  c->on_message (msg, c->user_data);
}

static void
stream_end (const GError *error, gpointer user_data)
{
  AgentCall *c = user_data;

  c->on_end (error, c->user_data);
  call_end (c);
}

ProtoClientStream *
sched_agents_stream (SchedAgents *agents, ProtoClient *client, guint method,
                     const ProtobufCMessage *request,
                     ProtoStreamMessageFunc on_message,
                     ProtoStreamEndFunc on_end, gpointer user_data)
{
  AgentCall *c = call_begin (agents, client, user_data);

  c->on_message = on_message;
  c->on_end = on_end;
  return proto_client_stream (client, DROVER_AGENT_SERVICE, method, request,
                              stream_message, stream_end, c);
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

SchedPending *
sched_agents_forward (SchedAgents *agents, SchedService *svc,
                      ProtoServerCall *call, const char *name,
                      guint agent_method, const ProtobufCMessage *request,
                      gint64 timeout_ms, ProtoReplyFunc done)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autoptr (SchedHost) host = NULL;
  ProtoClient *client;
  SchedPending *p;

  if (!sched_agents_lookup_vm (agents, name, FALSE, &vm, &host, &error)
      || !sched_host_check_up (host, &error)
      || (client = sched_agents_client (agents, host, &error)) == NULL)
    {
      sched_call_fail (call, error);
      return NULL;
    }
  p = sched_pending_new (svc, call, vm->name, host->name, NULL);
  /* Completions run from the main loop, never inside this call. */
  sched_agents_call (agents, client, agent_method, request, timeout_ms, done,
                     p);
  return p;
}
