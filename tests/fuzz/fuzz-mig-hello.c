/* libFuzzer target: a HELLO frame's payload (mig_hello_parse), what an
 * unauthenticated peer sends first. A HELLO that parses names a known
 * stream kind and a token of 1-MIG_TOKEN_MAX printable bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mig-channel-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  MigChannelKind kind;
  char *token = NULL;
  GError *error = NULL;

  if (size > MIG_HELLO_MAX)
    return 0;
  if (!mig_hello_parse (data, size, &kind, &token, &error))
    {
      g_assert (error != NULL && token == NULL);
      g_error_free (error);
      return 0;
    }
  g_assert (kind >= MIG_CHANNEL_KIND_CONTROL && kind <= MIG_CHANNEL_KIND_LAST);
  g_assert (strlen (token) == size - 1 && size - 1 <= MIG_TOKEN_MAX);
  g_free (token);
  return 0;
}
