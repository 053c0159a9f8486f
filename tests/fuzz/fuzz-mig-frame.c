/* libFuzzer target: the migration channel's frame decoder on arbitrary
 * bytes: a 32-byte header (mig_frame_header_decode, with the sequence
 * number the input claims, so the later checks are reached) and the
 * body that follows it (mig_frame_body_decode: lz4 when flagged, crc).
 * A frame that decodes has a payload of the length its header says,
 * within MIG_FRAME_MAX. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mig-channel-private.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree guint8 *wbuf = NULL, *pbuf = NULL;
  guint8 *payload = NULL;
  MigFrameHeader h;
  guint64 seq = 0;
  GError *error = NULL;

  if (size < MIG_FRAME_HEADER_SIZE)
    return 0;
  for (int i = 7; i >= 0; i--)
    seq = (seq << 8) | data[16 + i];
  if (!mig_frame_header_decode (data, seq, MIG_FRAME_MAX, &h, &error))
    {
      g_assert (error != NULL);
      g_error_free (error);
      return 0;
    }
  g_assert (h.payload_len <= MIG_FRAME_MAX && h.wire_len <= MIG_FRAME_MAX);
  if (size - MIG_FRAME_HEADER_SIZE < h.wire_len)
    return 0;
  /* As the in pump: both buffers as big as a frame may be. */
  wbuf = g_malloc (MAX (h.wire_len, 1));
  pbuf = g_malloc (MAX (h.payload_len, 1));
  memcpy (wbuf, data + MIG_FRAME_HEADER_SIZE, h.wire_len);
  if (mig_frame_body_decode (&h, wbuf, pbuf, &payload, &error))
    g_assert (payload == wbuf || payload == pbuf);
  else
    {
      g_assert (error != NULL);
      g_error_free (error);
    }
  return 0;
}
