/* Helpers every Drover test binary may use: GLib only (no module of the
 * tree). The gRPC ones are in test-rpc.h, the scheduler's row
 * builders in test-sched.h. */
#pragma once

#include <glib.h>

/* --- test cases ---------------------------------------------------------- */

/* One GTest case of a table: a plain test (FUNC), a test given DATA
 * (DATA_FUNC), or a test run with the table's fixture (FIXTURE_FUNC,
 * given DATA). */
typedef struct
{
  const char *path;
  GTestFunc func;
  GTestDataFunc data_func;
  GTestFixtureFunc fixture_func;
  gconstpointer data;
} TestCase;

/* A row that runs FUNC (DATA). */
#define TEST_WITH_DATA(path, func, data)                                       \
  {                                                                            \
    (path), NULL, (func), NULL, (data)                                         \
  }

/* The fixture of a table: its size and how to set it up and tear it
 * down (GTest's g_test_add, without the macro). */
typedef struct
{
  gsize size;
  GTestFixtureFunc setup;
  GTestFixtureFunc teardown;
} TestFixture;

/* A row that runs FUNC (void (*) (Fixture *, gconstpointer)) with the
 * table's fixture, and the same with DATA. */
#define TEST_WITH_FIXTURE(path, func) TEST_WITH_FIXTURE_DATA (path, func, NULL)
#define TEST_WITH_FIXTURE_DATA(path, func, data)                               \
  {                                                                            \
    (path), NULL, NULL, (GTestFixtureFunc)(func), (data)                       \
  }

/* FIXTURE for the struct TYPE set up and torn down by SETUP / TEARDOWN. */
#define TEST_FIXTURE(type, setup, teardown)                                    \
  {                                                                            \
    sizeof (type), (GTestFixtureFunc)(setup), (GTestFixtureFunc)(teardown)     \
  }

/* Registers the N_CASES CASES with GTest (after g_test_init). FIXTURE may
 * be NULL when no case uses one. */
void test_add_cases (const TestCase *cases, gsize n_cases,
                     const TestFixture *fixture);

/* --- temporary directories ----------------------------------------------- */

/* A new directory under the temporary directory, from TEMPLATE
 * ("drover-x-XXXXXX"); fails the test when it cannot be made. Free the
 * path with g_free. */
char *test_tmp_dir_new (const char *template);

/* Removes DIR and everything below it (it must be under the temporary
 * directory: the test fails otherwise). NULL does nothing. */
void test_tmp_dir_remove (const char *dir);

/* --- threads ------------------------------------------------------------- */

typedef struct _TestThread TestThread;

/* Runs in a TestThread's own context: FALSE with ERROR when the thing it
 * starts does not start. */
typedef gboolean (*TestThreadStartFunc) (gpointer data, GError **error);
typedef void (*TestThreadFunc) (gpointer data);

/* A thread NAME with a main context of its own, pushed as its thread
 * default. START (DATA) runs there first and this returns once it has,
 * failing the test if START failed. Then the thread runs the context's
 * loop until test_thread_stop(). */
TestThread *test_thread_start (const char *name, TestThreadStartFunc start,
                               TestThreadFunc stop, gpointer data);

/* Runs FUNC (DATA) in T's context and returns once it has. */
void test_thread_call (TestThread *t, TestThreadFunc func, gpointer data);

/* Quits the loop; STOP (DATA) (if not NULL) runs in the thread's
 * context, which then dispatches what it still has pending (timers and
 * idles that own memory); joins the thread and frees T. */
void test_thread_stop (TestThread *t);

GMainContext *test_thread_get_context (TestThread *t);
GThread *test_thread_get_thread (TestThread *t);
