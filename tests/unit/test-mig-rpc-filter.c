/* MigRpcFilter: only a migration's libvirt calls pass the control stream.
 * Packets are built here by hand in libvirt's wire format. */
#include "mig-rpc-filter.h"

#include <gio/gio.h>

#include <string.h>

#include "mig.h"

static void
put32 (GByteArray *b, guint32 v)
{
  guint8 p[4] = { v >> 24, v >> 16, v >> 8, v };

  g_byte_array_append (b, p, 4);
}

static void
put_opaque (GByteArray *b, const void *data, guint32 len)
{
  static const guint8 zero[4];

  put32 (b, len);
  g_byte_array_append (b, data, len);
  g_byte_array_append (b, zero, (4 - len % 4) % 4);
}

static void
put_string (GByteArray *b, const char *s)
{
  put_opaque (b, s, strlen (s));
}

/* A packet: header (PROG, VERS, PROC, TYPE, serial 7, status 0) and BODY. */
static GByteArray *
packet (guint32 prog, guint32 vers, guint32 proc, guint32 type,
        const GByteArray *body)
{
  GByteArray *b = g_byte_array_new ();
  guint32 body_len = body ? body->len : 0;

  put32 (b, 28 + body_len);
  put32 (b, prog);
  put32 (b, vers);
  put32 (b, proc);
  put32 (b, type);
  put32 (b, 7);
  put32 (b, 0);
  if (body)
    g_byte_array_append (b, body->data, body->len);
  return b;
}

static GByteArray *
remote_call (guint32 proc, const GByteArray *body)
{
  return packet (MIG_RPC_REMOTE_PROGRAM, MIG_RPC_REMOTE_VERSION, proc,
                 MIG_RPC_TYPE_CALL, body);
}

/* Body of Prepare3Params / Finish3Params: a uint, a string parameter and
 * the cookie. */
static GByteArray *
migration_body (const char *xml_param, const char *xml, const char *cookie)
{
  GByteArray *b = g_byte_array_new ();

  put32 (b, 2);
  put_string (b, "bandwidth");
  put32 (b, 4); /* ULLONG */
  put32 (b, 0);
  put32 (b, 0);
  put_string (b, xml_param);
  put32 (b, 7); /* STRING */
  put_string (b, xml);
  put_opaque (b, cookie, strlen (cookie) + 1); /* cookies end in NUL */
  put32 (b, 0);                                /* flags */
  return b;
}

typedef struct
{
  GPtrArray *seen; /* "what: xml" */
  const char *refuse_containing;
} Checker;

static gboolean
check_cb (const char *what, const char *xml, gpointer user_data, GError **error)
{
  Checker *c = user_data;

  g_ptr_array_add (c->seen, g_strdup_printf ("%s: %s", what, xml));
  if (c->refuse_containing && strstr (xml, c->refuse_containing))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                   "path %s is not ours", c->refuse_containing);
      return FALSE;
    }
  return TRUE;
}

/* Feeds STREAM in chunks of CHUNK bytes; returns what passed. */
static GByteArray *
feed_all (MigRpcFilter *f, const GByteArray *stream, gsize chunk,
          GError **error)
{
  GByteArray *out = g_byte_array_new ();

  for (gsize off = 0; off < stream->len; off += chunk)
    if (!mig_rpc_filter_feed (f, stream->data + off,
                              MIN (chunk, stream->len - off), out, error))
      break;
  return out;
}

static void
append (GByteArray *stream, GByteArray *pkt)
{
  g_byte_array_append (stream, pkt->data, pkt->len);
  g_byte_array_unref (pkt);
}

/* A whole migration's worth of calls passes unchanged, however the
 * stream is cut. */
static void
test_migration_passes (void)
{
  static const gsize chunks[] = { 1, 3, 28, 29, 4096 };
  g_autoptr (GByteArray) body
      = migration_body ("destination_xml", "<domain><name>web1</name></domain>",
                        "<qemu-migration/>");
  g_autoptr (GByteArray) finish
      = migration_body ("migrate_uri", "unix:///x.sock", "<qemu-migration/>");
  g_autoptr (GByteArray) open_body = g_byte_array_new ();
  g_autoptr (GByteArray) stream = g_byte_array_new ();

  put32 (open_body, 0); /* NULL name */
  put32 (open_body, 0); /* flags */
  append (stream, remote_call (MIG_RPC_PROC_AUTH_LIST, NULL));
  append (stream, remote_call (MIG_RPC_PROC_CONNECT_OPEN, open_body));
  append (stream, remote_call (MIG_RPC_PROC_CONNECT_SUPPORTS_FEATURE, NULL));
  append (stream, packet (MIG_RPC_KEEPALIVE_PROGRAM, 1, MIG_RPC_KEEPALIVE_PING,
                          MIG_RPC_TYPE_MESSAGE, NULL));
  append (stream,
          remote_call (MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS, body));
  append (stream, packet (MIG_RPC_KEEPALIVE_PROGRAM, 1, MIG_RPC_KEEPALIVE_PONG,
                          MIG_RPC_TYPE_MESSAGE, NULL));
  append (stream,
          remote_call (MIG_RPC_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS, finish));
  append (stream, remote_call (MIG_RPC_PROC_CONNECT_CLOSE, NULL));

  for (gsize i = 0; i < G_N_ELEMENTS (chunks); i++)
    {
      Checker c = { g_ptr_array_new_with_free_func (g_free), NULL };
      g_autoptr (MigRpcFilter) f = mig_rpc_filter_new (check_cb, &c);
      g_autoptr (GError) error = NULL;
      g_autoptr (GByteArray) out = feed_all (f, stream, chunks[i], &error);

      g_assert_no_error (error);
      g_assert_cmpmem (out->data, out->len, stream->data, stream->len);
      g_assert_cmpuint (mig_rpc_filter_get_packets (f), ==, 8);
      /* Prepare3: its domain XML and cookie; Finish3: its cookie. */
      g_assert_cmpuint (c.seen->len, ==, 3);
      g_assert_cmpstr (c.seen->pdata[0], ==,
                       "destination_xml: <domain><name>web1</name></domain>");
      g_assert_cmpstr (c.seen->pdata[1], ==, "cookie: <qemu-migration/>");
      g_assert_cmpstr (c.seen->pdata[2], ==, "cookie: <qemu-migration/>");
      g_ptr_array_unref (c.seen);
    }
}

/* Calls that are not part of a migration end the stream, and not one
 * byte of them is passed on. */
static void
test_refused (void)
{
  static const struct
  {
    guint32 prog, vers, proc, type;
    const char *says;
  } cases[] = {
    /* virDomainDefineXML, virConnectListAllDomains, virDomainCreateXML */
    { MIG_RPC_REMOTE_PROGRAM, 1, 11, MIG_RPC_TYPE_CALL, "procedure 11" },
    { MIG_RPC_REMOTE_PROGRAM, 1, 273, MIG_RPC_TYPE_CALL, "procedure 273" },
    { MIG_RPC_REMOTE_PROGRAM, 1, 10, MIG_RPC_TYPE_CALL, "procedure 10" },
    /* an allowed procedure with another version or type */
    { MIG_RPC_REMOTE_PROGRAM, 2, 1, MIG_RPC_TYPE_CALL, "version 2" },
    { MIG_RPC_REMOTE_PROGRAM, 1, 1, 3 /* STREAM */, "type 3" },
    /* the QEMU program (monitor commands) and the admin program */
    { 0x20008087, 1, 1, MIG_RPC_TYPE_CALL, "program 0x20008087" },
    { 0x06900690, 1, 1, MIG_RPC_TYPE_CALL, "program 0x06900690" },
    { MIG_RPC_KEEPALIVE_PROGRAM, 1, 3, MIG_RPC_TYPE_MESSAGE, "keepalive" },
    { MIG_RPC_KEEPALIVE_PROGRAM, 1, 1, MIG_RPC_TYPE_CALL, "keepalive" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (MigRpcFilter) f = mig_rpc_filter_new (NULL, NULL);
      g_autoptr (GByteArray) stream = g_byte_array_new ();
      g_autoptr (GByteArray) first
          = remote_call (MIG_RPC_PROC_CONNECT_OPEN, NULL);
      g_autoptr (GByteArray) out = NULL;
      g_autoptr (GError) error = NULL;
      guint8 more = 0;

      g_byte_array_append (stream, first->data, first->len);
      append (stream, packet (cases[i].prog, cases[i].vers, cases[i].proc,
                              cases[i].type, NULL));
      out = feed_all (f, stream, 5, &error);
      g_assert_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED);
      if (strstr (error->message, cases[i].says) == NULL)
        g_error ("case %" G_GSIZE_FORMAT ": '%s' lacks '%s'", i, error->message,
                 cases[i].says);
      /* Only the first, allowed packet went through. */
      g_assert_cmpmem (out->data, out->len, first->data, first->len);
      /* The refusal sticks. */
      g_clear_error (&error);
      g_assert_false (mig_rpc_filter_feed (f, &more, 1, out, &error));
      g_assert_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED);
      g_assert_cmpuint (out->len, ==, first->len);
    }
}

/* The check sees the domain XML; refusing it holds back the whole call. */
static void
test_xml_check (void)
{
  Checker c = { g_ptr_array_new_with_free_func (g_free), "/etc/shadow" };
  g_autoptr (MigRpcFilter) f = mig_rpc_filter_new (check_cb, &c);
  g_autoptr (GByteArray) body
      = migration_body ("destination_xml",
                        "<domain><devices><disk><source file='/etc/shadow'/>"
                        "</disk></devices></domain>",
                        "<qemu-migration/>");
  g_autoptr (GByteArray) stream
      = remote_call (MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS, body);
  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) out = feed_all (f, stream, 64, &error);

  g_assert_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED);
  g_assert_nonnull (strstr (error->message, "not ours"));
  g_assert_cmpuint (out->len, ==, 0);
  g_ptr_array_unref (c.seen);
  g_clear_error (&error);

  /* The persistent definition in Finish3's cookie is checked too. */
  {
    Checker c2 = { g_ptr_array_new_with_free_func (g_free), "/etc/shadow" };
    g_autoptr (MigRpcFilter) f2 = mig_rpc_filter_new (check_cb, &c2);
    g_autoptr (GByteArray) fbody = migration_body (
        "migrate_uri", "unix:///x.sock",
        "<qemu-migration><persistent><domain><devices><disk><source "
        "file='/etc/shadow'/></disk></devices></domain></persistent>"
        "</qemu-migration>");
    g_autoptr (GByteArray) fstream
        = remote_call (MIG_RPC_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS, fbody);
    g_autoptr (GByteArray) fout = feed_all (f2, fstream, 7, &error);

    g_assert_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED);
    g_assert_cmpuint (fout->len, ==, 0);
    g_ptr_array_unref (c2.seen);
  }
}

/* Feeds PKT to a filter without a checker, CHUNK bytes at a time: it is
 * refused, nothing is passed on, and the message has WORDS (unless
 * NULL). */
static void
assert_malformed (GByteArray *pkt, gsize chunk, const char *words)
{
  g_autoptr (MigRpcFilter) f = mig_rpc_filter_new (NULL, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) out = feed_all (f, pkt, chunk, &error);

  g_assert_error (error, MIG_ERROR, MIG_ERROR_RPC_REFUSED);
  if (words)
    g_assert_nonnull (strstr (error->message, words));
  g_assert_cmpuint (out->len, ==, 0);
}

/* Malformed packets: lengths out of range, bodies that lie. */
static void
test_malformed (void)
{
  const guint32 bad_lengths[] = { 12, MIG_RPC_MAX_PACKET + 1 };
  g_autoptr (GByteArray) body = g_byte_array_new ();
  g_autoptr (GByteArray) pkt = NULL;

  /* A length below the header's, and one above the cap. */
  for (guint i = 0; i < G_N_ELEMENTS (bad_lengths); i++)
    {
      guint32 bad = bad_lengths[i];
      guint8 be[4] = { bad >> 24, bad >> 16, bad >> 8, bad };

      g_clear_pointer (&pkt, g_byte_array_unref);
      pkt = remote_call (MIG_RPC_PROC_CONNECT_OPEN, NULL);
      memcpy (pkt->data, be, 4);
      assert_malformed (pkt, pkt->len, "length");
    }
  /* Prepare3 with a parameter count past the limit, and a string whose
   * length runs past the packet. */
  put32 (body, 100000);
  g_clear_pointer (&pkt, g_byte_array_unref);
  pkt = remote_call (MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS, body);
  assert_malformed (pkt, pkt->len, NULL);

  g_byte_array_set_size (body, 0);
  put32 (body, 1);
  put32 (body, 0x7fffffff); /* field name length */
  g_clear_pointer (&pkt, g_byte_array_unref);
  pkt = remote_call (MIG_RPC_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS, body);
  assert_malformed (pkt, 3, NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mig/rpc-filter/migration-passes", test_migration_passes);
  g_test_add_func ("/mig/rpc-filter/refused", test_refused);
  g_test_add_func ("/mig/rpc-filter/xml-check", test_xml_check);
  g_test_add_func ("/mig/rpc-filter/malformed", test_malformed);
  return g_test_run ();
}
