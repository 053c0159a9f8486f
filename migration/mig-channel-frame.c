/* MigChannel frames: the header codec, CRC32C, and reading and writing
 * whole frames over a channel's transport.
 *
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78) because x86 has an
 * instruction for it: with three interleaved chains it runs at ~10+ GB/s,
 * so checking every frame on both ends costs little even on 2 cores. The
 * table fallback serves CPUs without SSE4.2.
 */
#include <lz4.h>
#include <string.h>

#include "mig-channel-private.h"

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define MIG_HAVE_X86 1
#endif

static guint32 crc32c_table[256];

static void
crc32c_table_init (void)
{
  for (guint32 i = 0; i < 256; i++)
    {
      guint32 c = i;
      for (int k = 0; k < 8; k++)
        c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      crc32c_table[i] = c;
    }
}

guint32
mig_crc32c_sw (guint32 crc, const void *buf, gsize len)
{
  static gsize inited = 0;
  const guint8 *p = buf;
  guint32 c = ~crc;

  if (g_once_init_enter (&inited))
    {
      crc32c_table_init ();
      g_once_init_leave (&inited, 1);
    }
  while (len--)
    c = crc32c_table[(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

#ifdef MIG_HAVE_X86
/* crc32 has a latency of 3 cycles but a throughput of 1 per cycle, so one
 * dependency chain runs at a third of the possible speed. Long buffers
 * are cut into blocks of three lanes of LANE bytes, each lane with its own
 * chain, and recombined. The raw (non-inverted) state update F is linear:
 * F(s, X) = Z(s) ^ F(0, X), with Z(s) = F(s, LANE zero bytes). So
 *   F(s, A|B|C) = Z(Z(F(s, A)) ^ F(0, B)) ^ F(0, C),
 * and Z, being linear in s, is four 256-entry tables. */
#define LANE 4096

static guint32 zero_shift[4][256];

__attribute__ ((target ("sse4.2"))) static guint64
crc32c_hw_chain (guint64 c, const guint8 *p, gsize len)
{
  while (len >= 8)
    {
      guint64 v;
      memcpy (&v, p, 8);
      c = _mm_crc32_u64 (c, v);
      p += 8;
      len -= 8;
    }
  while (len--)
    c = _mm_crc32_u8 ((guint32)c, *p++);
  return c;
}

__attribute__ ((target ("sse4.2"))) static void
zero_shift_init (void)
{
  static const guint8 zeros[LANE];

  for (int k = 0; k < 4; k++)
    for (guint32 b = 0; b < 256; b++)
      zero_shift[k][b]
          = (guint32)crc32c_hw_chain ((guint64)b << (8 * k), zeros, LANE);
}

static inline guint32
shift_lane (guint32 s)
{
  return zero_shift[0][s & 0xff] ^ zero_shift[1][(s >> 8) & 0xff]
         ^ zero_shift[2][(s >> 16) & 0xff] ^ zero_shift[3][s >> 24];
}

__attribute__ ((target ("sse4.2"))) static guint32
crc32c_hw (guint32 crc, const void *buf, gsize len)
{
  const guint8 *p = buf;
  guint64 c = (guint32)~crc;

  while (len >= 3 * LANE)
    {
      guint64 a = c, b = 0, d = 0;
      const guint8 *pa = p, *pb = p + LANE, *pd = p + 2 * LANE;

      for (gsize i = 0; i < LANE; i += 8)
        {
          guint64 va, vb, vd;
          memcpy (&va, pa + i, 8);
          memcpy (&vb, pb + i, 8);
          memcpy (&vd, pd + i, 8);
          a = _mm_crc32_u64 (a, va);
          b = _mm_crc32_u64 (b, vb);
          d = _mm_crc32_u64 (d, vd);
        }
      c = shift_lane (shift_lane ((guint32)a) ^ (guint32)b) ^ (guint32)d;
      p += 3 * LANE;
      len -= 3 * LANE;
    }
  return ~(guint32)crc32c_hw_chain (c, p, len);
}
#endif

guint32
mig_crc32c (guint32 crc, const void *buf, gsize len)
{
#ifdef MIG_HAVE_X86
  static int have_sse42 = 0;

  static gsize inited = 0;

  if (g_once_init_enter (&inited))
    {
      __builtin_cpu_init ();
      have_sse42 = __builtin_cpu_supports ("sse4.2") ? 1 : 0;
      if (have_sse42)
        zero_shift_init ();
      g_once_init_leave (&inited, 1);
    }
  if (have_sse42)
    return crc32c_hw (crc, buf, len);
#endif
  return mig_crc32c_sw (crc, buf, len);
}

/* N-byte little-endian fields of the header. */
static void
put_le (guint8 *p, guint64 v, guint n)
{
  for (guint i = 0; i < n; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static guint64
get_le (const guint8 *p, guint n)
{
  guint64 v = 0;

  for (guint i = n; i > 0; i--)
    v = (v << 8) | p[i - 1];
  return v;
}

/* Layout: magic 0, version 4, type 5, flags 6, payload_len 8, wire_len 12,
 * seq 16, crc 24, header crc 28. */
void
mig_frame_header_encode (const MigFrameHeader *h,
                         guint8 out[MIG_FRAME_HEADER_SIZE])
{
  put_le (out + 0, MIG_FRAME_MAGIC, 4);
  out[4] = MIG_FRAME_VERSION;
  out[5] = h->type;
  put_le (out + 6, h->flags, 2);
  put_le (out + 8, h->payload_len, 4);
  put_le (out + 12, h->wire_len, 4);
  put_le (out + 16, h->seq, 8);
  put_le (out + 24, h->crc, 4);
  put_le (out + 28, mig_crc32c (0, out, 28), 4);
}

gboolean
mig_frame_header_decode (const guint8 in[MIG_FRAME_HEADER_SIZE],
                         guint64 expected_seq, guint32 max_len,
                         MigFrameHeader *h, GError **error)
{
  guint32 magic = get_le (in, 4);

  if (magic != MIG_FRAME_MAGIC)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "bad frame magic 0x%08x (frame %" G_GUINT64_FORMAT ")",
                   magic, expected_seq);
      return FALSE;
    }
  if (get_le (in + 28, 4) != mig_crc32c (0, in, 28))
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "frame header checksum mismatch (frame %" G_GUINT64_FORMAT
                   ")",
                   expected_seq);
      return FALSE;
    }
  h->version = in[4];
  h->type = in[5];
  h->flags = get_le (in + 6, 2);
  h->payload_len = get_le (in + 8, 4);
  h->wire_len = get_le (in + 12, 4);
  h->seq = get_le (in + 16, 8);
  h->crc = get_le (in + 24, 4);

  if (h->version != MIG_FRAME_VERSION)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "unsupported frame version %u", h->version);
      return FALSE;
    }
  if (h->seq != expected_seq)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "frame out of sequence: got %" G_GUINT64_FORMAT
                   ", expected %" G_GUINT64_FORMAT,
                   h->seq, expected_seq);
      return FALSE;
    }
  if (h->payload_len > max_len || h->wire_len > max_len)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "frame length %u/%u exceeds the %u-byte limit",
                   h->payload_len, h->wire_len, max_len);
      return FALSE;
    }
  if (h->type < MIG_FRAME_HELLO || h->type > MIG_FRAME_TYPE_LAST)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "unknown frame type %u", h->type);
      return FALSE;
    }
  if ((h->flags & ~MIG_FRAME_FLAG_COMPRESSED) != 0)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "unknown frame flags 0x%04x", h->flags);
      return FALSE;
    }
  if (h->flags & MIG_FRAME_FLAG_COMPRESSED)
    {
      /* The sender only compresses when it saves space. */
      if (h->type != MIG_FRAME_DATA || h->wire_len == 0
          || h->wire_len >= h->payload_len)
        {
          g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                       "bad compressed frame lengths %u/%u", h->payload_len,
                       h->wire_len);
          return FALSE;
        }
    }
  else if (h->wire_len != h->payload_len)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "frame length mismatch %u/%u", h->payload_len, h->wire_len);
      return FALSE;
    }
  return TRUE;
}

gboolean
mig_frame_body_decode (const MigFrameHeader *h, guint8 *wbuf, guint8 *pbuf,
                       guint8 **payload, GError **error)
{
  *payload = wbuf;
  if (h->flags & MIG_FRAME_FLAG_COMPRESSED)
    {
      int n = LZ4_decompress_safe ((const char *)wbuf, (char *)pbuf,
                                   (int)h->wire_len, (int)h->payload_len);
      if (n < 0 || (guint32)n != h->payload_len)
        {
          g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                       "frame %" G_GUINT64_FORMAT " does not decompress",
                       h->seq);
          return FALSE;
        }
      *payload = pbuf;
    }
  if (mig_crc32c (0, *payload, h->payload_len) != h->crc)
    {
      g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_PROTOCOL,
                   "payload checksum mismatch in frame %" G_GUINT64_FORMAT,
                   h->seq);
      return FALSE;
    }
  return TRUE;
}

/* --- frame I/O over the transport ----------------------------------------- */

gboolean
mig_channel_write_frame (MigChannel *ch, MigFrameType type, guint16 flags,
                         guint32 payload_len, guint32 crc, const void *wire,
                         guint32 wire_len, GCancellable *cancellable,
                         GError **error)
{
  guint8 hdr[MIG_FRAME_HEADER_SIZE];
  MigFrameHeader h = {
    .type = type,
    .flags = flags,
    .payload_len = payload_len,
    .wire_len = wire_len,
    .seq = ch->out_seq,
    .crc = crc,
  };
  GOutputVector v[2] = { { hdr, sizeof hdr }, { wire, wire_len } };

  mig_frame_header_encode (&h, hdr);
  if (!ch->transport->ops->writev_all (ch->transport, v, wire_len ? 2 : 1,
                                       cancellable, error))
    return FALSE;
  ch->out_seq++;
  return TRUE;
}

gboolean
mig_channel_write_simple (MigChannel *ch, MigFrameType type,
                          const void *payload, guint32 len,
                          GCancellable *cancellable, GError **error)
{
  return mig_channel_write_frame (ch, type, 0, len,
                                  mig_crc32c (0, payload, len), payload, len,
                                  cancellable, error);
}

/* Reads exactly LEN bytes. EOF is MIG_ERROR_CHANNEL_CLOSED. */
static gboolean
read_exact (MigChannel *ch, void *buf, gsize len, const char *what,
            GCancellable *cancellable, GError **error)
{
  gsize got = 0;

  while (got < len)
    {
      g_autoptr (GError) local = NULL;
      gssize n = ch->transport->ops->read (ch->transport, (guint8 *)buf + got,
                                           len - got, cancellable, &local);
      if (n > 0)
        {
          got += n;
          continue;
        }
      if (n < 0 && !g_error_matches (local, G_TLS_ERROR, G_TLS_ERROR_EOF))
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                      "reading %s from peer: ", what);
          return FALSE;
        }
      if (got == 0)
        g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_CLOSED,
                     "connection closed by peer before end of stream "
                     "(waiting for %s)",
                     what);
      else
        g_set_error (error, MIG_ERROR, MIG_ERROR_CHANNEL_CLOSED,
                     "truncated %s: connection closed after %" G_GSIZE_FORMAT
                     " of %" G_GSIZE_FORMAT " bytes",
                     what, got, len);
      return FALSE;
    }
  return TRUE;
}

gboolean
mig_channel_read_frame (MigChannel *ch, guint32 max_len, MigFrameHeader *h,
                        guint8 *wbuf, guint8 *pbuf, guint8 **payload,
                        GCancellable *cancellable, GError **error)
{
  guint8 hdr[MIG_FRAME_HEADER_SIZE];

  if (!read_exact (ch, hdr, sizeof hdr, "frame header", cancellable, error))
    return FALSE;
  if (!mig_frame_header_decode (hdr, ch->in_seq, max_len, h, error))
    return FALSE;
  if (!read_exact (ch, wbuf, h->wire_len, "frame body", cancellable, error))
    return FALSE;

  if (!mig_frame_body_decode (h, wbuf, pbuf, payload, error))
    return FALSE;
  ch->in_seq++;
  return TRUE;
}
