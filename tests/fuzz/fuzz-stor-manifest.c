/* libFuzzer target: a backup manifest read from a repository (hostile
 * input). stor_repo_manifest_parse must refuse anything invalid without
 * reading or allocating past its caps, and whatever it accepts must
 * write back to JSON that it accepts again. */
#include <stddef.h>
#include <stdint.h>

#include "stor-repo-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (StorRepoManifest) m = NULL;
  g_autoptr (StorRepoManifest) again = NULL;
  g_autofree char *json = NULL;
  GError *error = NULL;
  gsize len = 0;

  m = stor_repo_manifest_parse ((const char *)data, size, "fuzz", &error);
  if (!m)
    {
      g_error_free (error);
      return 0;
    }
  json = stor_repo_manifest_to_json (m, &len);
  again = stor_repo_manifest_parse (json, len, "fuzz round trip", &error);
  g_assert_no_error (error);
  return 0;
}
