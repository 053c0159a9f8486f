/* libdrover-proto codec: pack/unpack, hostile input, name validation. */
#include <string.h>

#include "proto.h"

static ProtobufCMessage *
make_report (void)
{
  Drover__V1__ReportHostRequest *req
      = g_new0 (Drover__V1__ReportHostRequest, 1);
  Drover__V1__HostInfo *host = g_new0 (Drover__V1__HostInfo, 1);

  drover__v1__report_host_request__init (req);
  drover__v1__host_info__init (host);
  host->name = g_strdup ("node-1");
  host->address = g_strdup ("127.0.0.1:7401");
  host->cpus = 8;
  host->memory_total = G_GUINT64_CONSTANT (17179869184);
  host->kvm_usable = TRUE;
  host->accel = g_strdup ("tcg");
  req->host = host;
  req->seq = 42;
  req->n_vms = 2;
  req->vms = g_new0 (Drover__V1__VmStatus *, 2);
  for (int i = 0; i < 2; i++)
    {
      Drover__V1__VmStatus *vm = g_new0 (Drover__V1__VmStatus, 1);

      drover__v1__vm_status__init (vm);
      vm->name = g_strdup_printf ("vm-%d", i);
      vm->state = g_strdup ("running");
      vm->cpu_percent = 12.5 * (i + 1);
      vm->memory = 1 << 30;
      req->vms[i] = vm;
    }
  return &req->base;
}

static void
free_report (ProtobufCMessage *msg)
{
  Drover__V1__ReportHostRequest *req = (Drover__V1__ReportHostRequest *)msg;

  for (size_t i = 0; i < req->n_vms; i++)
    {
      g_free (req->vms[i]->name);
      g_free (req->vms[i]->state);
      g_free (req->vms[i]);
    }
  g_free (req->vms);
  g_free (req->host->name);
  g_free (req->host->address);
  g_free (req->host->accel);
  g_free (req->host);
  g_free (req);
}

static void
test_round_trip (void)
{
  ProtobufCMessage *msg = make_report ();
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = proto_pack (msg, &error);
  Drover__V1__ReportHostRequest *out;

  g_assert_no_error (error);
  g_assert_nonnull (bytes);
  g_assert_cmpuint (g_bytes_get_size (bytes), ==,
                    protobuf_c_message_get_packed_size (msg));
  out = (Drover__V1__ReportHostRequest *)proto_unpack (
      &drover__v1__report_host_request__descriptor,
      g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes),
      PROTO_MAX_MESSAGE_SIZE, &error);
  g_assert_no_error (error);
  g_assert_nonnull (out);
  g_assert_cmpstr (out->host->name, ==, "node-1");
  g_assert_cmpstr (out->host->address, ==, "127.0.0.1:7401");
  g_assert_cmpuint (out->host->cpus, ==, 8);
  g_assert_cmpuint (out->host->memory_total, ==,
                    G_GUINT64_CONSTANT (17179869184));
  g_assert_true (out->host->kvm_usable);
  g_assert_cmpuint (out->seq, ==, 42);
  g_assert_cmpuint (out->n_vms, ==, 2);
  g_assert_cmpstr (out->vms[1]->name, ==, "vm-1");
  g_assert_cmpfloat (out->vms[1]->cpu_percent, ==, 25.0);
  protobuf_c_message_free_unpacked (&out->base, NULL);

  /* An empty message packs to zero bytes and unpacks from them. */
  {
    Drover__V1__Empty empty = DROVER__V1__EMPTY__INIT;
    g_autoptr (GBytes) eb = proto_pack (&empty.base, &error);
    ProtobufCMessage *e;

    g_assert_no_error (error);
    g_assert_cmpuint (g_bytes_get_size (eb), ==, 0);
    e = proto_unpack (&drover__v1__empty__descriptor, NULL, 0,
                      PROTO_MAX_MESSAGE_SIZE, &error);
    g_assert_no_error (error);
    g_assert_nonnull (e);
    protobuf_c_message_free_unpacked (e, NULL);
  }
  free_report (msg);
}

static void
test_truncated (void)
{
  ProtobufCMessage *msg = make_report ();
  g_autoptr (GBytes) bytes = proto_pack (msg, NULL);
  const guint8 *data = g_bytes_get_data (bytes, NULL);
  gsize len = g_bytes_get_size (bytes);
  guint rejected = 0;

  /* Every prefix either decodes (it ends on a field boundary) or is
   * rejected as INVALID_ARGUMENT; never a crash. Copy each prefix so ASan
   * catches reads past its end. */
  for (gsize i = 0; i < len; i++)
    {
      g_autofree guint8 *copy = g_memdup2 (data, i);
      g_autoptr (GError) error = NULL;
      ProtobufCMessage *out
          = proto_unpack (&drover__v1__report_host_request__descriptor, copy, i,
                          PROTO_MAX_MESSAGE_SIZE, &error);

      if (out)
        {
          g_assert_no_error (error);
          protobuf_c_message_free_unpacked (out, NULL);
        }
      else
        {
          g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
          rejected++;
        }
    }
  /* Most cuts land inside a field. */
  g_assert_cmpuint (rejected, >, len / 2);
  free_report (msg);
}

static void
test_oversized (void)
{
  g_autoptr (GError) error = NULL;
  gsize len = PROTO_MAX_MESSAGE_SIZE + 1;
  /* Deliberately garbage: it must be refused on length alone, before
   * protobuf-c looks at it. */
  g_autofree guint8 *data = g_malloc (len);
  ProtobufCMessage *out;

  memset (data, 0xff, len);
  out = proto_unpack (&drover__v1__console_chunk__descriptor, data, len,
                      PROTO_MAX_MESSAGE_SIZE, &error);
  g_assert_null (out);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
  g_clear_error (&error);

  /* A caller-chosen smaller cap applies too. */
  out = proto_unpack (&drover__v1__console_chunk__descriptor, data, 100, 99,
                      &error);
  g_assert_null (out);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
}

/* A report of empty VmStatus elements: two bytes each on the wire, a
 * struct each in memory. */
static GByteArray *
empty_vms (guint n)
{
  GByteArray *b = g_byte_array_new ();
  static const guint8 empty_vm[] = { 0x12, 0x00 }; /* field 2, length 0 */

  for (guint i = 0; i < n; i++)
    g_byte_array_append (b, empty_vm, sizeof empty_vm);
  return b;
}

static void
test_repeated_cap (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) ok = empty_vms (PROTO_MAX_REPEATED);
  g_autoptr (GByteArray) bad = empty_vms (PROTO_MAX_REPEATED + 1);
  g_autoptr (GByteArray) nested = g_byte_array_new ();
  Drover__V1__ReportHostRequest *msg;

  msg = (Drover__V1__ReportHostRequest *)proto_unpack (
      &drover__v1__report_host_request__descriptor, ok->data, ok->len,
      PROTO_MAX_MESSAGE_SIZE, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (msg->n_vms, ==, PROTO_MAX_REPEATED);
  protobuf_c_message_free_unpacked (&msg->base, NULL);

  /* One more is refused before anything is allocated for it. */
  g_assert_null (proto_unpack (&drover__v1__report_host_request__descriptor,
                               bad->data, bad->len, PROTO_MAX_MESSAGE_SIZE,
                               &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
  g_assert_nonnull (strstr (error->message, "repeated"));
  g_clear_error (&error);

  /* The count runs across depths: a ListJobsReply whose one job carries
   * a progress with too many rounds. */
  {
    g_autoptr (GByteArray) rounds = g_byte_array_new ();
    static const guint8 empty_round[] = { 0x7a, 0x00 }; /* field 15, len 0 */
    guint8 hdr[12];
    gsize h = 0;
    guint64 v;

    for (guint i = 0; i <= PROTO_MAX_REPEATED; i++)
      g_byte_array_append (rounds, empty_round, sizeof empty_round);
    /* Job.migration (field 12) = the progress. */
    hdr[h++] = 0x62;
    for (v = rounds->len; v >= 0x80; v >>= 7)
      hdr[h++] = (guint8)(v | 0x80);
    hdr[h++] = (guint8)v;
    g_byte_array_append (nested, hdr, h);
    g_byte_array_append (nested, rounds->data, rounds->len);
    /* ListJobsReply.jobs (field 1) = that job. */
    h = 0;
    hdr[h++] = 0x0a;
    for (v = nested->len; v >= 0x80; v >>= 7)
      hdr[h++] = (guint8)(v | 0x80);
    hdr[h++] = (guint8)v;
    g_byte_array_prepend (nested, hdr, h);
  }
  g_assert_null (proto_unpack (&drover__v1__list_jobs_reply__descriptor,
                               nested->data, nested->len,
                               PROTO_MAX_MESSAGE_SIZE, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
}

static void
test_garbage (void)
{
  static const guint8 bad[][8] = {
    { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, /* endless varint key */
    { 0x0a, 0x7f, 'a', 'b' }, /* length past the end */
    { 0x0f, 0x00 },           /* wire type 7 */
    { 0x00, 0x01 },           /* field number 0 */
  };
  GRand *rand = g_rand_new_with_seed (1234);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      ProtobufCMessage *out
          = proto_unpack (&drover__v1__host_info__descriptor, bad[i],
                          i == 0 ? 8 : 4, PROTO_MAX_MESSAGE_SIZE, &error);

      g_assert_null (out);
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "HostInfo"));
    }
  /* Random junk never crashes, whatever the verdict. */
  for (guint i = 0; i < 2000; i++)
    {
      guint8 buf[64];
      gsize n = g_rand_int_range (rand, 0, sizeof buf + 1);
      g_autoptr (GError) error = NULL;
      ProtobufCMessage *out;

      for (gsize j = 0; j < n; j++)
        buf[j] = g_rand_int_range (rand, 0, 256);
      out = proto_unpack (&drover__v1__report_host_request__descriptor, buf, n,
                          PROTO_MAX_MESSAGE_SIZE, &error);
      if (out)
        protobuf_c_message_free_unpacked (out, NULL);
      else
        g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
    }
  g_rand_free (rand);
}

static void
test_pack_oversized (void)
{
  Drover__V1__ConsoleChunk chunk = DROVER__V1__CONSOLE_CHUNK__INIT;
  g_autoptr (GError) error = NULL;
  g_autofree guint8 *data = g_malloc0 (PROTO_MAX_MESSAGE_SIZE);
  GBytes *bytes;

  chunk.data.data = data;
  chunk.data.len = PROTO_MAX_MESSAGE_SIZE; /* plus tag and length: over */
  bytes = proto_pack (&chunk.base, &error);
  g_assert_null (bytes);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_RESOURCE_EXHAUSTED);
  g_clear_error (&error);

  chunk.data.len = PROTO_MAX_MESSAGE_SIZE - 16;
  bytes = proto_pack (&chunk.base, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (g_bytes_get_size (bytes), <=, PROTO_MAX_MESSAGE_SIZE);
  g_bytes_unref (bytes);
}

static void
assert_name (const char *name, gboolean valid)
{
  g_autoptr (GError) error = NULL;
  gboolean ok = proto_name_validate ("VM", name, &error);

  g_assert_cmpint (ok, ==, valid);
  if (valid)
    g_assert_no_error (error);
  else
    {
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
      g_assert_true (g_str_has_prefix (error->message, "invalid VM name '"));
      g_assert_nonnull (strstr (error->message,
                                "must be 1-63 characters of a-z, 0-9 and '-'"));
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
    }
}

static void
test_names (void)
{
  g_autofree char *n63 = g_strnfill (63, 'a');
  g_autofree char *n64 = g_strnfill (64, 'a');
  g_autofree char *huge = g_strnfill (10000, 'X');
  g_autoptr (GError) error = NULL;

  assert_name ("web-1", TRUE);
  assert_name ("0", TRUE);
  assert_name (n63, TRUE);
  assert_name ("", FALSE);
  assert_name (NULL, FALSE);
  assert_name (n64, FALSE);
  assert_name ("a/b", FALSE);
  assert_name ("..", FALSE);
  assert_name ("Web", FALSE);
  assert_name ("a b", FALSE);
  assert_name ("a_b", FALSE);
  assert_name ("caf\xc3\xa9", FALSE);
  assert_name ("\xff\xfe", FALSE);

  /* The echoed name is escaped and cut short. */
  g_assert_false (proto_name_validate ("host", "a\nb'", &error));
  g_assert_cmpstr (error->message, ==,
                   "invalid host name 'a\\nb\\'': must be 1-63 characters of "
                   "a-z, 0-9 and '-'");
  g_clear_error (&error);
  g_assert_false (proto_name_validate ("host", huge, &error));
  g_assert_cmpuint (strlen (error->message), <, 200);
  g_assert_nonnull (strstr (error->message, "..."));
}

static void
test_now (void)
{
  gint64 now = proto_now_ms ();

  /* After 2020-01-01 and consistent with GLib's clock. */
  g_assert_cmpint (now, >, G_GINT64_CONSTANT (1577836800000));
  g_assert_cmpint (ABS (now - g_get_real_time () / 1000), <, 1000);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/proto/codec/round-trip", test_round_trip);
  g_test_add_func ("/proto/codec/truncated", test_truncated);
  g_test_add_func ("/proto/codec/oversized", test_oversized);
  g_test_add_func ("/proto/codec/repeated-cap", test_repeated_cap);
  g_test_add_func ("/proto/codec/garbage", test_garbage);
  g_test_add_func ("/proto/codec/pack-oversized", test_pack_oversized);
  g_test_add_func ("/proto/codec/names", test_names);
  g_test_add_func ("/proto/codec/now", test_now);
  return g_test_run ();
}
