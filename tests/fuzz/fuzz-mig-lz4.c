/* libFuzzer target: lz4 decoding of a migration channel frame body.
 * The input's first 4 bytes (little-endian) are the payload length the
 * frame claims (capped at MIG_FRAME_MAX), the next 4 its crc, the rest
 * the compressed body; mig_frame_body_decode must refuse any body that
 * does not decompress to exactly that length, without reading or
 * writing outside its buffers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mig-channel-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  MigFrameHeader h
      = { .type = MIG_FRAME_DATA, .flags = MIG_FRAME_FLAG_COMPRESSED };
  g_autofree guint8 *wbuf = NULL, *pbuf = NULL;
  guint8 *payload = NULL;
  GError *error = NULL;

  if (size < 8 || size - 8 > MIG_FRAME_MAX)
    return 0;
  memcpy (&h.payload_len, data, 4);
  memcpy (&h.crc, data + 4, 4);
  h.payload_len = GUINT32_FROM_LE (h.payload_len) % (MIG_FRAME_MAX + 1);
  h.crc = GUINT32_FROM_LE (h.crc);
  h.wire_len = size - 8;
  /* Exactly the sizes the header claims, so ASan sees any overrun. */
  wbuf = g_malloc (MAX (h.wire_len, 1));
  memcpy (wbuf, data + 8, h.wire_len);
  pbuf = g_malloc (MAX (h.payload_len, 1));
  if (mig_frame_body_decode (&h, wbuf, pbuf, &payload, &error))
    g_assert (payload == pbuf);
  else
    g_error_free (error);
  return 0;
}
