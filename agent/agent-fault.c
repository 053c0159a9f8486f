/* Named fault points (see agent_fault in agent-private.h), only in a
 * build with -Dfaults=true: read from $DROVER_FAULTS once, or set by
 * tests with agent_fault_set (setenv is not safe once threads run). */
#include "agent-private.h"

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
