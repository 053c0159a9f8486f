/* libFuzzer target: the libvirt control stream filter (MigRpcFilter) on
 * arbitrary bytes, cut into chunks at places the input chooses. What it
 * passes on must be a prefix of the input, made of whole packets plus at
 * most the start of one whose header was admitted. The check callback
 * accepts everything, so the XDR walk over migration calls is reached. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mig-rpc-filter.h"

static gboolean
accept_all (const char *what, const char *xml, gpointer user_data,
            GError **error)
{
  g_assert (strlen (xml) <= MIG_RPC_MAX_PACKET);
  return TRUE;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  MigRpcFilter *filter = mig_rpc_filter_new (accept_all, NULL);
  GByteArray *out = g_byte_array_new ();
  size_t off = 0;
  guint step = 0;

  while (off < size)
    {
      /* Chunk sizes follow the data itself: 1..64 bytes. */
      size_t n = MIN (size - off, (size_t)(data[step % size] % 64) + 1);
      GError *error = NULL;

      step++;
      if (!mig_rpc_filter_feed (filter, data + off, n, out, &error))
        {
          g_assert (error != NULL);
          g_error_free (error);
          break;
        }
      off += n;
    }
  g_assert (out->len <= size);
  g_assert (out->len == 0 || memcmp (out->data, data, out->len) == 0);
  g_byte_array_unref (out);
  mig_rpc_filter_free (filter);
  return 0;
}
