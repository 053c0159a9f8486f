/* libFuzzer target: a chunk file of the backup repository (hostile
 * input). The first 32 bytes are the digest the chunk is expected to
 * have, the rest the file; stor_repo_chunk_decode must refuse any bad
 * header, lz4 block or hash without reading or writing outside its
 * buffers or allocating more than the caps allow. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stor-repo-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GBytes) raw = NULL;
  g_autofree guint8 *file = NULL;
  StorRepoDigest digest;
  GError *error = NULL;

  if (size < sizeof digest.bytes)
    return 0;
  memcpy (digest.bytes, data, sizeof digest.bytes);
  /* Exactly the file's size, so ASan sees any overrun. */
  file = g_malloc (MAX (size - sizeof digest.bytes, 1));
  memcpy (file, data + sizeof digest.bytes, size - sizeof digest.bytes);
  raw = stor_repo_chunk_decode (file, size - sizeof digest.bytes, &digest, 0,
                                &error);
  if (!raw)
    g_error_free (error);
  return 0;
}
