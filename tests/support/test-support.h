/* Helpers every Drover test binary may use: GLib only (no module of the
 * tree). The gRPC ones are in test-rpc.h, the scheduler's row
 * builders in test-sched.h. */
#pragma once

#include <glib.h>
#include <stdarg.h>

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

/* --- data ---------------------------------------------------------------- */

typedef enum
{
  TEST_DATA_RANDOM, /* incompressible */
  TEST_DATA_TEXT,   /* log-like lines: lz4 halves it or better */
  TEST_DATA_ZERO,
} TestDataKind;

/* LEN bytes of KIND, the same for the same SEED. */
GBytes *test_data_new (TestDataKind kind, gsize len, guint32 seed);

/* --- text ---------------------------------------------------------------- */

/* TRUE when TEXT holds LINE as a whole line, after a newline (so never
 * its first line) and before one. */
gboolean test_text_has_line (const char *text, const char *line);

/* Asserts that TEXT holds each line of the NULL-terminated list as
 * test_text_has_line finds it; a missing one fails the test, naming the
 * line in the test's log. */
void test_assert_lines (const char *text, ...) G_GNUC_NULL_TERMINATED;
void test_assert_lines_valist (const char *text, va_list lines);

/* Asserts that TEXT contains each string of the NULL-terminated list
 * somewhere; a missing one fails the test, named in the test's log. */
void test_assert_contains (const char *text, ...) G_GNUC_NULL_TERMINATED;
