/* GSources on a GMainContext that is not the caller's: the agent's
 * threads (libvirt's event thread, workers) hand work to the agent's
 * context with an idle source, and its timers are sources removed by id.
 * One place for the create/attach/unref steps each of them needs. */
#include "agent-private.h"

guint
agent_source_add (GMainContext *ctx, guint timeout_ms, GSourceFunc func,
                  gpointer data, GDestroyNotify destroy)
{
  /* An idle source, not g_main_context_invoke: from another thread that
   * would run FUNC right there whenever nobody iterates CTX. */
  GSource *source
      = timeout_ms ? g_timeout_source_new (timeout_ms) : g_idle_source_new ();
  guint id;

  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, func, data, destroy);
  id = g_source_attach (source, ctx);
  g_source_unref (source);
  return id;
}

void
agent_source_clear (GMainContext *ctx, guint *id)
{
  GSource *source;

  if (!*id)
    return;
  source = g_main_context_find_source_by_id (ctx, *id);
  if (source)
    g_source_destroy (source);
  *id = 0;
}
