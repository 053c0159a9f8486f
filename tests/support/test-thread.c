/* A thread running a main context of its own, for servers (and agents)
 * that a test calls with blocking client calls from its own thread. */
#include "test-support.h"

struct _TestThread
{
  GThread *thread;
  GMainContext *ctx;
  GMainLoop *loop;
  TestThreadStartFunc start;
  TestThreadFunc stop;
  gpointer data;
  GMutex lock;
  GCond cond;
  /* lock */
  gboolean started;
  GError *error; /* START's */
};

static gpointer
thread_main (gpointer data)
{
  TestThread *t = data;
  GError *error = NULL;
  gboolean ok;

  g_main_context_push_thread_default (t->ctx);
  ok = t->start (t->data, &error);
  g_mutex_lock (&t->lock);
  t->error = error;
  t->started = TRUE;
  g_cond_broadcast (&t->cond);
  g_mutex_unlock (&t->lock);
  if (ok)
    {
      g_main_loop_run (t->loop);
      if (t->stop)
        t->stop (t->data);
    }
  while (g_main_context_iteration (t->ctx, FALSE))
    ;
  g_main_context_pop_thread_default (t->ctx);
  return NULL;
}

TestThread *
test_thread_start (const char *name, TestThreadStartFunc start,
                   TestThreadFunc stop, gpointer data)
{
  TestThread *t = g_new0 (TestThread, 1);

  t->start = start;
  t->stop = stop;
  t->data = data;
  g_mutex_init (&t->lock);
  g_cond_init (&t->cond);
  t->ctx = g_main_context_new ();
  t->loop = g_main_loop_new (t->ctx, FALSE);
  t->thread = g_thread_new (name, thread_main, t);
  g_mutex_lock (&t->lock);
  while (!t->started)
    g_cond_wait (&t->cond, &t->lock);
  g_mutex_unlock (&t->lock);
  g_assert_no_error (t->error);
  return t;
}

static void
attach_idle (TestThread *t, GSourceFunc func, gpointer data)
{
  GSource *src = g_idle_source_new ();

  g_source_set_callback (src, func, data, NULL);
  g_source_attach (src, t->ctx);
  g_source_unref (src);
}

typedef struct
{
  TestThread *t;
  TestThreadFunc func;
  gpointer data;
  gboolean done; /* t->lock */
} Call;

static gboolean
call_in_thread (gpointer data)
{
  Call *c = data;

  c->func (c->data);
  g_mutex_lock (&c->t->lock);
  c->done = TRUE;
  g_cond_broadcast (&c->t->cond);
  g_mutex_unlock (&c->t->lock);
  return G_SOURCE_REMOVE;
}

void
test_thread_call (TestThread *t, TestThreadFunc func, gpointer data)
{
  Call c = { t, func, data, FALSE };

  attach_idle (t, call_in_thread, &c);
  g_mutex_lock (&t->lock);
  while (!c.done)
    g_cond_wait (&t->cond, &t->lock);
  g_mutex_unlock (&t->lock);
}

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

void
test_thread_stop (TestThread *t)
{
  /* From the loop itself: a g_main_loop_quit() from here before the
   * thread reached g_main_loop_run() would be lost. */
  attach_idle (t, quit_loop, t->loop);
  g_thread_join (t->thread);
  g_main_loop_unref (t->loop);
  g_main_context_unref (t->ctx);
  g_clear_error (&t->error);
  g_mutex_clear (&t->lock);
  g_cond_clear (&t->cond);
  g_free (t);
}

GMainContext *
test_thread_get_context (TestThread *t)
{
  return t->ctx;
}

GThread *
test_thread_get_thread (TestThread *t)
{
  return t->thread;
}
