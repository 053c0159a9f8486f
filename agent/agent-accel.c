/* The accelerator guests run with: its names, and what "auto" means on
 * this host. */
#include "agent-private.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* "kvm" and "tcg" are the wire's names (VmSpec.accel, HostInfo.accel);
 * "auto" exists only on the agent's command line, "test" only for
 * libvirt's test driver. */
static const struct
{
  const char *name;
  AgentAccel accel;
} accel_names[] = {
  { "auto", AGENT_ACCEL_AUTO },
  { PROTO_ACCEL_KVM, AGENT_ACCEL_KVM },
  { PROTO_ACCEL_TCG, AGENT_ACCEL_TCG },
  { "test", AGENT_ACCEL_TEST },
};

gboolean
agent_accel_parse (const char *str, AgentAccel *accel, GError **error)
{
  for (guint i = 0; str && i < G_N_ELEMENTS (accel_names); i++)
    {
      if (strcmp (str, accel_names[i].name) == 0)
        {
          *accel = accel_names[i].accel;
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
  for (guint i = 0; i < G_N_ELEMENTS (accel_names); i++)
    {
      if (accel_names[i].accel == accel)
        return accel_names[i].name;
    }
  return "auto";
}

gboolean
agent_kvm_usable (void)
{
  int fd = open ("/dev/kvm", O_RDWR | O_CLOEXEC);
  int version;

  if (fd < 0)
    return FALSE;
  version = ioctl (fd, KVM_GET_API_VERSION, 0);
  close (fd);
  /* 12 is the only stable KVM API version there has ever been. */
  return version == 12;
}

AgentAccel
agent_accel_resolve (AgentAccel accel)
{
  if (accel != AGENT_ACCEL_AUTO)
    return accel;
  return agent_kvm_usable () ? AGENT_ACCEL_KVM : AGENT_ACCEL_TCG;
}
