/* PingGuestAgent (issue 16): whether a VM's QEMU guest agent answers.
 *
 * Restore drills wait for a scratch VM to be ready; with `--drill-ready
 * agent` ready means its guest agent answers guest-ping. libvirt syncs
 * with the agent first (guest-sync), so an answer is a fresh one. The
 * wait is short: the scheduler asks again at its next tick.
 */
#include "agent-private.h"

#include <libvirt/libvirt-qemu.h>

/* Seconds libvirt waits for the guest agent. */
#define AGENT_GUEST_PING_TIMEOUT_S 2

ProtobufCMessage *
agent_guest_agent_ping (Agent *agent, const AgentCaller *caller,
                        const ProtobufCMessage *request, GError **error)
{
  const Drover__V1__VmRequest *req = (const void *)request;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  char *answer;

  (void)caller;
  if (!proto_name_validate ("VM", req->name, error))
    return NULL;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    return NULL;
  dom = agent_vm_lookup (agent, conn, req->name, error);
  if (!dom)
    return NULL;
  if (virDomainIsActive (dom) != 1)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is not running: no guest agent to ask", req->name);
      return NULL;
    }
  answer = virDomainQemuAgentCommand (dom, "{\"execute\":\"guest-ping\"}",
                                      AGENT_GUEST_PING_TIMEOUT_S, 0);
  if (!answer)
    {
      agent_libvirt_error (error, "the guest agent of VM %s did not answer",
                           req->name);
      return NULL;
    }
  free (answer);
  return agent_service_empty_reply ();
}
