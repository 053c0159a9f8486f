/* libFuzzer target: the agent's domain XML parser
 * (agent_domain_xml_parse), which reads what libvirt hands back, and the
 * spec it returns built into XML again (agent_domain_xml_build) when it
 * is one the agent would accept. */
#include <stddef.h>
#include <stdint.h>

#include "agent-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *xml = g_strndup ((const char *)data, size);
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *again = NULL;
  GError *error = NULL;

  spec = agent_domain_xml_parse (xml, &error);
  if (!spec)
    {
      g_assert (error != NULL);
      g_error_free (error);
      return 0;
    }
  again = agent_domain_xml_build (spec, AGENT_ACCEL_TCG, "/d.qcow2", "/c.log",
                                  &error);
  if (!again)
    g_error_free (error);
  return 0;
}
