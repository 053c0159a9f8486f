/* Building, copying and freeing the protobuf-c messages the agent sends,
 * and the agent's error domain. */
#include "agent-private.h"

#include <string.h>

#include "stor.h"

G_DEFINE_QUARK (drover - agent - error - quark, agent_error)

Drover__V1__VmSpec *
agent_vm_spec_copy (const Drover__V1__VmSpec *spec)
{
  Drover__V1__VmSpec *copy = g_new0 (Drover__V1__VmSpec, 1);

  drover__v1__vm_spec__init (copy);
  copy->name = proto_msg_strdup (spec->name);
  copy->vcpus = spec->vcpus;
  copy->memory = spec->memory;
  copy->disk = spec->disk;
  copy->kernel = proto_msg_strdup (spec->kernel);
  copy->initrd = proto_msg_strdup (spec->initrd);
  copy->cmdline = proto_msg_strdup (spec->cmdline);
  copy->accel = proto_msg_strdup (spec->accel);
  return copy;
}

ProtoStatus
agent_error_to_status (const GError *error)
{
  if (error->domain == PROTO_ERROR)
    return (ProtoStatus)error->code;
  if (error->domain == STOR_ERROR)
    {
      switch ((StorError)error->code)
        {
        case STOR_ERROR_INVALID_NAME:
          return PROTO_STATUS_INVALID_ARGUMENT;
        case STOR_ERROR_EXISTS:
          return PROTO_STATUS_FAILED_PRECONDITION;
        case STOR_ERROR_NO_SPACE:
          return PROTO_STATUS_RESOURCE_EXHAUSTED;
        case STOR_ERROR_FAILED:
          break;
        }
      return PROTO_STATUS_INTERNAL;
    }
  if (error->domain == AGENT_ERROR)
    {
      switch ((AgentError)error->code)
        {
        case AGENT_ERROR_INVALID:
          return PROTO_STATUS_INVALID_ARGUMENT;
        case AGENT_ERROR_NOT_FOUND:
          return PROTO_STATUS_NOT_FOUND;
        case AGENT_ERROR_NOT_DROVER:
          return PROTO_STATUS_NOT_FOUND;
        case AGENT_ERROR_EXISTS:
          return PROTO_STATUS_ALREADY_EXISTS;
        case AGENT_ERROR_PRECONDITION:
          return PROTO_STATUS_FAILED_PRECONDITION;
        case AGENT_ERROR_NO_RESOURCES:
          return PROTO_STATUS_RESOURCE_EXHAUSTED;
        case AGENT_ERROR_BUSY:
          return PROTO_STATUS_ABORTED;
        case AGENT_ERROR_UNAVAILABLE:
          return PROTO_STATUS_UNAVAILABLE;
        case AGENT_ERROR_FAILED:
          break;
        }
    }
  return PROTO_STATUS_INTERNAL;
}

/* Fault points: read from the environment once, or set by tests with
 * agent_fault_set (setenv is not safe once threads run). */
static GMutex fault_lock;
static char **fault_list;
static gboolean fault_loaded;

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

gboolean
agent_accel_parse (const char *str, AgentAccel *accel, GError **error)
{
  static const struct
  {
    const char *name;
    AgentAccel accel;
  } map[] = {
    { "auto", AGENT_ACCEL_AUTO },
    { "kvm", AGENT_ACCEL_KVM },
    { "tcg", AGENT_ACCEL_TCG },
    { "test", AGENT_ACCEL_TEST },
  };

  for (guint i = 0; str && i < G_N_ELEMENTS (map); i++)
    {
      if (strcmp (str, map[i].name) == 0)
        {
          *accel = map[i].accel;
          return TRUE;
        }
    }
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
               "unknown accelerator '%s' (expected kvm, tcg or auto)",
               str ? str : "");
  return FALSE;
}

const char *
agent_accel_to_string (AgentAccel accel)
{
  switch (accel)
    {
    case AGENT_ACCEL_AUTO:
      return "auto";
    case AGENT_ACCEL_KVM:
      return "kvm";
    case AGENT_ACCEL_TCG:
      return "tcg";
    case AGENT_ACCEL_TEST:
      return "test";
    }
  return "auto";
}
