/* libFuzzer target: the source's rewrite of the domain XML it sends the
 * destination (mig_xml_rewrite: console and disk paths replaced). What
 * it returns parses as domain XML again. */
#include <stddef.h>
#include <stdint.h>

#include "mig-migrate.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *xml = g_strndup ((const char *)data, size);
  g_autofree char *out = NULL, *again = NULL;
  GError *error = NULL;

  out = mig_xml_rewrite (xml, "/dst/console/vm.log", "/dst/disks/vm.qcow2",
                         &error);
  if (!out)
    {
      g_assert (error != NULL);
      g_error_free (error);
      return 0;
    }
  again = mig_xml_rewrite (out, "/dst/console/vm.log", "/dst/disks/vm.qcow2",
                           &error);
  g_assert_no_error (error);
  g_assert (again != NULL);
  return 0;
}
