/* Named fault points (see agent_fault in agent-private.h), only in a
 * build with -Dfaults=true: read from $DROVER_FAULTS once, or set by
 * tests with agent_fault_set (setenv is not safe once threads run). */
#include "agent-private.h"

#include <signal.h>
#include <unistd.h>

#include "stor-repo.h"

gboolean
agent_fault_compiled (void)
{
#ifdef DROVER_FAULTS
  return TRUE;
#else
  return FALSE;
#endif
}

#ifdef DROVER_FAULTS

static GMutex fault_lock;
static char **fault_list;     /* fault_lock */
static gboolean fault_loaded; /* fault_lock */

void
agent_fault_set (const char *faults)
{
  g_mutex_lock (&fault_lock);
  g_strfreev (fault_list);
  fault_list = faults && *faults ? g_strsplit (faults, ",", -1) : NULL;
  fault_loaded = TRUE;
  g_mutex_unlock (&fault_lock);
}

gboolean
agent_fault (const char *name)
{
  gboolean hit;

  g_mutex_lock (&fault_lock);
  if (!fault_loaded)
    {
      const char *env = g_getenv ("DROVER_FAULTS");

      fault_list = env && *env ? g_strsplit (env, ",", -1) : NULL;
      fault_loaded = TRUE;
    }
  hit = fault_list && g_strv_contains ((const char *const *)fault_list, name);
  g_mutex_unlock (&fault_lock);
  return hit;
}

#else

void
agent_fault_set (const char *faults)
{
  /* No fault points in this build. */
}

#endif

/* See agent-private.h. */
gboolean
agent_fault_fail (const char *name, GError **error)
{
  if (!agent_fault (name))
    return FALSE;
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "fault: %s", name);
  return TRUE;
}

/* See agent-private.h. */
void
agent_fault_crash (const char *name)
{
  if (!agent_fault (name))
    return;
  g_printerr ("fault: %s: killing the agent\n", name);
  kill (getpid (), SIGKILL);
  pause ();
}

/* The repository library's steps (stor_repo_set_step_hook): fault
 * points repo-crash-STEP (the agent is killed) and repo-pause-STEP (the
 * step waits, at most a minute, until the file $DROVER_FAULT_RESUME
 * exists: a test does something meanwhile). */
static void
storage_step (const char *step)
{
  g_autofree char *name = g_strconcat ("repo-crash-", step, NULL);
  g_autofree char *pause_name = g_strconcat ("repo-pause-", step, NULL);
  const char *resume = g_getenv ("DROVER_FAULT_RESUME");
  gint64 end = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  agent_fault_crash (name);
  if (!agent_fault (pause_name))
    return;
  g_printerr ("fault: %s: paused until %s exists\n", pause_name,
              resume ? resume : "(no DROVER_FAULT_RESUME)");
  while (resume && !g_file_test (resume, G_FILE_TEST_EXISTS)
         && g_get_monotonic_time () < end)
    g_usleep (100 * 1000);
  g_printerr ("fault: %s: resumed\n", pause_name);
}

/* See agent-private.h. */
void
agent_fault_storage_hook (void)
{
  if (agent_fault_compiled ())
    stor_repo_set_step_hook (storage_step);
}
