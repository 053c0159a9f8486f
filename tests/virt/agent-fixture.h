/* An agent on libvirt's test:///default driver, run in the test's own
 * thread: its GMainContext is the thread-default one while it lives, and
 * a test drives it by calling its operations or by iterating that
 * context. Header-only: each test is a binary of its own. */
#pragma once

#include "agent-private.h"
#include "test-pki.h"

/* Makes and starts an agent named h1 on DATA_DIR (TCG, so that it has a
 * migration listener), with IMAGE_DIR (NULL: the default) and TLS_DIR
 * (NULL: insecure); *CTX is its context, pushed as thread-default. */
static inline Agent *
agent_fixture_start (const char *data_dir, const char *image_dir,
                     const char *tls_dir, GMainContext **ctx)
{
  g_autoptr (GError) error = NULL;
  AgentConfig config = { 0 };
  Agent *agent;

  *ctx = g_main_context_new ();
  g_main_context_push_thread_default (*ctx);
  config.name = (char *)"h1";
  config.listen = (char *)"127.0.0.1:0";
  config.libvirt_uri = (char *)"test:///default";
  config.accel = AGENT_ACCEL_TCG;
  config.data_dir = (char *)data_dir;
  config.image_dir = (char *)image_dir;
  config.tls_dir = (char *)tls_dir;
  config.insecure = tls_dir == NULL;
  agent = agent_new (&config, *ctx, &error);
  g_assert_no_error (error);
  g_assert_true (agent_start (agent, &error));
  g_assert_no_error (error);
  return agent;
}

/* Stops and drops AGENT, drains and drops CTX, removes DATA_DIR. */
static inline void
agent_fixture_stop (Agent *agent, GMainContext *ctx, const char *data_dir)
{
  agent_stop (agent);
  agent_unref (agent);
  while (g_main_context_iteration (ctx, FALSE))
    ;
  g_main_context_pop_thread_default (ctx);
  g_main_context_unref (ctx);
  test_rmtree (data_dir);
}
