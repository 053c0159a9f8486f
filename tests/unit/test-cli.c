/* droverctl's local parts: size parsing/formatting, JSON, tables,
 * migration progress lines and summaries. */
#include <math.h>
#include <string.h>

#include "cli.h"
#include "drover.pb-c.h"
#include "proto.h"
#include "test-support.h"

static void
test_size_valid (void)
{
  static const struct
  {
    const char *text;
    guint64 bytes;
  } cases[] = {
    { "1048576", 1048576 },
    { "1", 1 },
    { "512M", 512ULL << 20 },
    { "512m", 512ULL << 20 },
    { "1G", 1ULL << 30 },
    { "1.5G", 3ULL << 29 },
    { "0.5K", 512 },
    { "64k", 65536 },
    { "2T", 2ULL << 40 },
    { "512MiB", 512ULL << 20 },
    { "1GB", 1ULL << 30 },
    { "1.25M", 1310720 },
    { "16777215T", 16777215ULL << 40 },
    { "18446744073709551615", G_MAXUINT64 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 v = 0;
      g_assert_true (cli_parse_size ("--memory", cases[i].text, &v, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (v, ==, cases[i].bytes);
    }
}

static void
test_size_invalid (void)
{
  static const struct
  {
    const char *text;
    const char *says;
  } cases[] = {
    { "", "empty" },
    { "abc", "not a size" },
    { "12X", "not a size" },
    { "1G2", "not a size" },
    { "1GiBx", "not a size" },
    { "G", "not a size" },
    { ".", "not a size" },
    { "1 G", "not a size" },
    { "-1G", "no sign" },
    { "+5M", "no sign" },
    { "0", "greater than zero" },
    { "0M", "greater than zero" },
    { "0.0G", "greater than zero" },
    { "1.5", "whole number of bytes" },
    { "0.1K", "whole number of bytes" },
    { "18446744073709551616", "too large" },
    { "16777216T", "too large" },
    { "99999999999999999999999G", "too large" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 v = 42;
      g_assert_false (cli_parse_size ("--memory", cases[i].text, &v, &error));
      g_assert_error (error, CLI_ERROR, CLI_ERROR_USAGE);
      g_assert_nonnull (strstr (error->message, "--memory"));
      if (strstr (error->message, cases[i].says) == NULL)
        g_error ("'%s': message '%s' lacks '%s'", cases[i].text, error->message,
                 cases[i].says);
      g_assert_cmpuint (v, ==, 42);
    }
}

static char *
escaped (const char *text)
{
  GString *s = g_string_new (NULL);
  proto_json_escape (s, text);
  return g_string_free (s, FALSE);
}

static void
test_json_escape (void)
{
  static const struct
  {
    const char *in;
    const char *out;
  } cases[] = {
    { "", "\"\"" },
    { "plain", "\"plain\"" },
    { "q\"b\\s/", "\"q\\\"b\\\\s/\"" },
    { "a\nb\tc\rd\be\ff", "\"a\\nb\\tc\\rd\\be\\ff\"" },
    { "\x01\x1f\x7f", "\"\\u0001\\u001f\\u007f\"" },
    { "caf\xc3\xa9 \xe2\x82\xac", "\"caf\xc3\xa9 \xe2\x82\xac\"" },
    { "bad\xff\xfez", "\"bad\\ufffd\\ufffdz\"" },
    { "trunc\xc3", "\"trunc\\ufffd\"" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *s = escaped (cases[i].in);
      g_assert_cmpstr (s, ==, cases[i].out);
    }
  /* NULL is written as an empty string, not a crash. */
  g_autofree char *n = escaped (NULL);
  g_assert_cmpstr (n, ==, "\"\"");
}

static void
test_json_writer (void)
{
  g_autoptr (ProtoJson) j = proto_json_new (TRUE);

  proto_json_begin_object (j);
  proto_json_key (j, "name");
  proto_json_string (j, "a\"b");
  proto_json_key (j, "list");
  proto_json_begin_array (j);
  proto_json_int (j, -3);
  proto_json_uint (j, G_MAXUINT64);
  proto_json_double (j, 0.25);
  proto_json_double (j, NAN);
  proto_json_bool (j, TRUE);
  proto_json_null (j);
  proto_json_end_array (j);
  proto_json_key (j, "empty");
  proto_json_begin_object (j);
  proto_json_end_object (j);
  proto_json_key (j, "none");
  proto_json_begin_array (j);
  proto_json_end_array (j);
  proto_json_end_object (j);

  g_assert_cmpstr (proto_json_get (j), ==,
                   "{\n"
                   "  \"name\": \"a\\\"b\",\n"
                   "  \"list\": [\n"
                   "    -3,\n"
                   "    18446744073709551615,\n"
                   "    0.25,\n"
                   "    null,\n"
                   "    true,\n"
                   "    null\n"
                   "  ],\n"
                   "  \"empty\": {},\n"
                   "  \"none\": []\n"
                   "}\n");
}

/* The dashboard's form: one line, no spaces, no trailing newline. */
static void
test_json_compact (void)
{
  ProtoJson *j = proto_json_new (FALSE);
  g_autofree char *text = NULL;

  proto_json_begin_object (j);
  proto_json_key (j, "a");
  proto_json_begin_array (j);
  proto_json_int (j, 1);
  proto_json_string (j, "x\ny");
  proto_json_end_array (j);
  proto_json_key (j, "b");
  proto_json_begin_object (j);
  proto_json_end_object (j);
  proto_json_end_object (j);
  text = proto_json_free_to_string (j);
  g_assert_cmpstr (text, ==, "{\"a\":[1,\"x\\ny\"],\"b\":{}}");
}

static void
test_json_message (void)
{
  Drover__V1__ListHostsReply reply = DROVER__V1__LIST_HOSTS_REPLY__INIT;
  Drover__V1__Host h1 = DROVER__V1__HOST__INIT;
  Drover__V1__Host h2 = DROVER__V1__HOST__INIT;
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__Host *hosts[] = { &h1, &h2 };
  Drover__V1__ConsoleChunk chunk = DROVER__V1__CONSOLE_CHUNK__INIT;
  g_autoptr (ProtoJson) j = proto_json_new (TRUE);
  g_autoptr (ProtoJson) jc = proto_json_new (TRUE);
  const char *out;

  info.name = "node-1";
  info.cpus = 2;
  info.memory_total = 8ULL << 30;
  info.kvm_usable = TRUE;
  info.cpu_model = "Quoted \"CPU\"";
  h1.info = &info;
  h1.state = "up";
  h1.last_seen_ms = 1700000000123;
  h1.memory_used = 1ULL << 30;
  h2.state = "down"; /* h2.info stays NULL */
  reply.n_hosts = 2;
  reply.hosts = hosts;

  proto_json_message (j, &reply.base);
  out = proto_json_get (j);
  g_assert_true (
      g_str_has_prefix (out, "{\n  \"hosts\": [\n    {\n      \"info\": {\n"));
  test_assert_contains (
      out, "\"name\": \"node-1\"", "\"memory_total\": 8589934592,",
      "\"kvm_usable\": true,", "\"cpu_model\": \"Quoted \\\"CPU\\\"\"",
      "\"last_seen_ms\": 1700000000123,", "\"memory_used\": 1073741824,",
      "\"maintenance\": \"\",\n", "\"cpu_load\": 0\n", "\"info\": null,",
      "\"state\": \"down\"", "\"data_free\": 0", NULL);
  g_assert_true (g_str_has_suffix (out, "  ]\n}\n"));

  chunk.data.data = (guint8 *)"hi\n";
  chunk.data.len = 3;
  chunk.next_offset = 3;
  chunk.size = 3;
  proto_json_message (jc, &chunk.base);
  g_assert_cmpstr (
      proto_json_get (jc), ==,
      "{\n  \"data\": \"aGkK\",\n  \"next_offset\": 3,\n  \"size\": 3\n}\n");
}

static void
test_table (void)
{
  static const char *const headers[] = { "NAME", ">CPUS", "STATE", NULL };
  g_autoptr (CliTable) t = cli_table_new (headers);
  g_autofree char *text = NULL;
  const char *const row1[] = { "a-long-name", "2", "running" };
  const char *const row2[] = { "b", "128", "" };

  cli_table_add_row (t, row1);
  cli_table_add_row (t, row2);
  cli_table_add_take (t, g_strdup ("c"), NULL, g_strdup ("shutoff"));
  text = cli_table_render (t);
  g_assert_cmpstr (text, ==,
                   "NAME         CPUS  STATE\n"
                   "a-long-name     2  running\n"
                   "b             128  -\n"
                   "c               -  shutoff\n");
}

static void
test_table_empty (void)
{
  static const char *const headers[] = { "ID", "KIND", NULL };
  g_autoptr (CliTable) t = cli_table_new (headers);
  g_autofree char *text = cli_table_render (t);
  g_assert_cmpstr (text, ==, "ID  KIND\n");
}

/* --- migration progress --------------------------------------------------- */

#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

static void
test_duration_rate (void)
{
  struct
  {
    double s;
    const char *text;
  } cases[] = {
    { 0.045, "45ms" }, { 8.24, "8.2s" }, { 65, "1m05s" },   { 7380, "2h03m" },
    { -1, "-" },       { NAN, "-" },     { INFINITY, "-" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *text = cli_format_duration (cases[i].s);
      g_assert_cmpstr (text, ==, cases[i].text);
    }
  g_autofree char *rate = cli_format_rate (12.0 * MIB);
  g_assert_cmpstr (rate, ==, "12.0 MiB/s");
  g_autofree char *zero = cli_format_rate (NAN);
  g_assert_cmpstr (zero, ==, "0 B/s");
}

static void
test_migration_line (void)
{
  Drover__V1__Job job = DROVER__V1__JOB__INIT;
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;
  g_autofree char *line = NULL;

  job.kind = (char *)"migrate";
  job.vm = (char *)"web";
  job.state = (char *)"queued";
  job.message = (char *)"queued (position 1): hosts a and b are at their "
                        "migration limits";
  line = cli_migration_progress_line (&job, 10);
  g_assert_cmpstr (line, ==,
                   "queued: queued (position 1): hosts a and b are "
                   "at their migration limits");
  g_clear_pointer (&line, g_free);

  job.state = (char *)"running";
  job.message = (char *)"preparing host b";
  job.migration = &p;
  p.phase = (char *)"preparing";
  line = cli_migration_progress_line (&job, 10);
  g_assert_cmpstr (line, ==, "preparing host b");
  g_clear_pointer (&line, g_free);
  job.message = (char *)"";
  line = cli_migration_progress_line (&job, 10);
  g_assert_cmpstr (line, ==, "preparing");
  g_clear_pointer (&line, g_free);

  p.phase = (char *)"precopy";
  p.memory_total = GIB;
  p.memory_processed = 300 * MIB;
  p.memory_remaining = 256 * MIB;
  p.iteration = 2;
  p.dirty_rate = 12 * MIB;
  p.throughput = 80 * MIB;
  p.eta_s = 8.24;
  line = cli_migration_progress_line (&job, 10);
  g_assert_cmpstr (line, ==,
                   "[#######---]   75%  memory 768.0 MiB of 1.0 GiB done, "
                   "300.0 MiB sent  round 2  dirty 12.0 MiB/s  sending "
                   "80.0 MiB/s  ETA 8.2s");
  g_clear_pointer (&line, g_free);

  /* A guest that touched a third of its RAM: QEMU is done with all of it
   * (the rest are zero pages) while it sent a third. The line says both,
   * and nothing reads 100 % before the VM has moved. */
  p.memory_processed = 341 * MIB;
  p.memory_remaining = 0;
  line = cli_migration_progress_line (&job, 0);
  g_assert_true (g_str_has_prefix (
      line, " 99%  memory 1.0 GiB of 1.0 GiB done, 341.0 MiB sent  round 2"));
  g_clear_pointer (&line, g_free);

  /* Round 1: QEMU has not measured the dirty rate yet. */
  p.iteration = 1;
  p.dirty_rate = 0;
  line = cli_migration_progress_line (&job, 0);
  g_assert_nonnull (strstr (line, "  round 1  dirty -  sending"));
  g_clear_pointer (&line, g_free);
  p.iteration = 2;

  p.phase = (char *)"switchover";
  p.forced_switchover = TRUE;
  line = cli_migration_progress_line (&job, 4);
  g_assert_cmpstr (line, ==,
                   "[####]   99%  memory 1.0 GiB of 1.0 GiB done, 341.0 MiB "
                   "sent  switching over (forced)");
  g_clear_pointer (&line, g_free);
  p.phase = (char *)"completed";
  line = cli_migration_progress_line (&job, 4);
  g_assert_true (g_str_has_prefix (line, "[####]  100%  memory 1.0 GiB"));
  g_clear_pointer (&line, g_free);
}

/* A VM with a disk: the disk copy shows while the phase is preparing,
 * then beside the memory. */
static void
test_migration_line_disk (void)
{
  Drover__V1__Job job = DROVER__V1__JOB__INIT;
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;
  g_autofree char *line = NULL;

  job.kind = (char *)"migrate";
  job.vm = (char *)"db";
  job.state = (char *)"running";
  job.message = (char *)"preparing host b";
  job.migration = &p;
  p.phase = (char *)"preparing";
  p.disk_total = 256 * MIB;
  p.disk_processed = 64 * MIB;
  line = cli_migration_progress_line (&job, 4);
  g_assert_cmpstr (line, ==,
                   "[#---]   25%  disk 64.0 MiB of 256.0 MiB copied, "
                   "memory next");
  g_clear_pointer (&line, g_free);

  /* The whole disk copied is not the migration done. */
  p.disk_processed = 256 * MIB;
  line = cli_migration_progress_line (&job, 4);
  g_assert_cmpstr (line, ==,
                   "[####]   99%  disk 256.0 MiB of 256.0 MiB copied, "
                   "memory next");
  g_clear_pointer (&line, g_free);

  p.phase = (char *)"precopy";
  p.disk_processed = 256 * MIB;
  p.memory_total = 256 * MIB;
  p.memory_remaining = 128 * MIB;
  p.memory_processed = 100 * MIB;
  p.iteration = 1;
  line = cli_migration_progress_line (&job, 0);
  g_assert_true (g_str_has_prefix (
      line, " 50%  memory 128.0 MiB of 256.0 MiB done, 100.0 MiB sent, "
            "disk 256.0 MiB of 256.0 MiB  round 1  dirty -"));
}

static void
test_migration_summary (void)
{
  Drover__V1__Job job = DROVER__V1__JOB__INIT;
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;
  Drover__V1__MigrationPrediction pred = DROVER__V1__MIGRATION_PREDICTION__INIT;
  g_autofree char *text = NULL;

  job.kind = (char *)"migrate";
  job.vm = (char *)"web";
  job.state = (char *)"done";
  job.source_host = (char *)"a";
  job.dest_host = (char *)"b";
  job.migration = &p;
  job.prediction = &pred;
  p.phase = (char *)"completed";
  p.total_s = 12.34;
  p.downtime_ms = 45;
  p.iteration = 3;
  p.qemu_bytes = 1536 * MIB;
  p.wire_bytes = 768 * MIB;
  p.payload_bytes = 1536 * MIB;
  p.compression_ratio = 2.0;
  p.compress_mode = (char *)"lz4";
  pred.converges = TRUE;
  pred.rounds = 2;
  pred.total_s = 10.1;
  pred.downtime_ms = 120.4;
  pred.bytes_sent = 1200 * MIB;
  p.memory_processed = 1536 * MIB;
  text = cli_migration_summary (&job);
  g_assert_cmpstr (text, ==,
                   "migrated web: a -> b\n"
                   "  total time    12.3s (predicted 10.1s)\n"
                   "  downtime      45 ms (QEMU) (predicted 120 ms)\n"
                   "  rounds        3 (predicted 2)\n"
                   "  memory sent   1.5 GiB by QEMU (predicted 1.2 GiB); "
                   "zero pages cost nothing\n"
                   "  channel       1.5 GiB from QEMU, 768.0 MiB on the wire "
                   "(lz4: 2.00x smaller)\n");
  g_clear_pointer (&text, g_free);

  /* The case: a VM with a mostly unallocated disk. QEMU counts
   * 1.1 GiB, the wire carried 33 MiB: the summary says what each is. */
  p.memory_processed = 100 * MIB;
  p.disk_total = GIB;
  p.disk_processed = GIB;
  p.qemu_bytes = GIB + 100 * MIB;
  p.payload_bytes = 69 * MIB;
  p.wire_bytes = 33 * MIB;
  p.compression_ratio = 69.0 / 33.0;
  text = cli_migration_summary (&job);
  test_assert_contains (text, "  memory sent   100.0 MiB by QEMU",
                        "  disk copied   1.0 GiB of 1.0 GiB; "
                        "unallocated blocks travel as a note\n",
                        "  QEMU counted  1.1 GiB (memory sent + disk copied)\n",
                        "  channel       69.0 MiB from QEMU, "
                        "33.0 MiB on the wire (lz4: 2.09x "
                        "smaller)\n",
                        NULL);
  g_clear_pointer (&text, g_free);
  p.disk_total = 0;
  p.disk_processed = 0;
  p.memory_processed = 0; /* an older agent: QEMU's total stands in */
  p.qemu_bytes = 1536 * MIB;
  p.payload_bytes = 1536 * MIB;

  /* Failed, no prediction, ratio derived from the counters. */
  job.state = (char *)"failed";
  job.error = (char *)"migration aborted on host 'a': stalled";
  job.prediction = NULL;
  p.compression_ratio = 0;
  p.wire_bytes = 1024 * MIB;
  text = cli_migration_summary (&job);
  g_assert_true (g_str_has_prefix (text,
                                   "migration of web (a -> b) failed: "
                                   "migration aborted on host 'a': stalled\n"));
  test_assert_contains (text, "  memory sent   1.5 GiB by QEMU; ",
                        "on the wire (lz4: 1.50x smaller)\n", NULL);
  g_assert_null (strstr (text, "predicted"));
  g_clear_pointer (&text, g_free);
  p.compress_mode = (char *)"";
  text = cli_migration_summary (&job);
  g_assert_nonnull (strstr (text, "1.0 GiB on the wire (not compressed)\n"));
  g_clear_pointer (&text, g_free);

  /* Failed before any progress: one line. */
  job.migration = NULL;
  text = cli_migration_summary (&job);
  g_assert_cmpstr (text, ==,
                   "migration of web (a -> b) failed: "
                   "migration aborted on host 'a': stalled\n");
  g_clear_pointer (&text, g_free);
  {
    Drover__V1__MigrationProgress prep = DROVER__V1__MIGRATION_PROGRESS__INIT;

    prep.phase = (char *)"preparing";
    prep.memory_total = GIB;
    job.migration = &prep;
    text = cli_migration_summary (&job);
    g_assert_null (strstr (text, "total time"));
    g_clear_pointer (&text, g_free);
  }

  pred.converges = FALSE;
  pred.rounds = 30;
  pred.bandwidth = GIB;
  pred.dirty_rate = 2 * GIB;
  text = cli_migration_prediction (&pred);
  g_assert_true (g_str_has_prefix (
      text, "DOES NOT CONVERGE (forced switchover) in 30 rounds"));
  g_assert_nonnull (strstr (text, "dirty 2.0 GiB/s over 1.0 GiB/s"));
}

/* --- what droverctl says when things go wrong --------------------------- */

static void
test_transport_hint (void)
{
  const char *hint;

  /* --insecure against a TLS scheduler: gRPC says only "Socket closed". */
  hint = cli_transport_hint (TRUE, PROTO_STATUS_UNAVAILABLE,
                             "failed to connect to all addresses; last "
                             "error: UNAVAILABLE: ipv4:127.0.0.1:7400: "
                             "Socket closed");
  g_assert_nonnull (hint);
  test_assert_contains (hint, "serves TLS", "--tls-dir", NULL);
  /* TLS against a plaintext scheduler. */
  hint = cli_transport_hint (FALSE, PROTO_STATUS_UNAVAILABLE, "Handshake");
  g_assert_nonnull (strstr (hint, "droverctl --insecure"));
  /* Nobody there: neither flag is the problem. */
  hint = cli_transport_hint (TRUE, PROTO_STATUS_UNAVAILABLE,
                             "Failed to connect to remote host: Connection "
                             "refused");
  g_assert_nonnull (strstr (hint, "nothing listens"));
  g_assert_null (strstr (hint, "TLS"));
  /* The scheduler answered: no transport hint. */
  g_assert_null (cli_transport_hint (TRUE, PROTO_STATUS_NOT_FOUND, "x"));
  g_assert_null (
      cli_transport_hint (FALSE, PROTO_STATUS_PERMISSION_DENIED, NULL));
}

static void
test_interrupt_text (void)
{
  char buf[512];
  char tiny[16];

  cli_interrupt_text ("1234-abcd", "migration", buf, sizeof buf);
  g_assert_true (g_str_has_prefix (
      buf, "droverctl: interrupted: the migration job 1234-abcd goes on"));
  test_assert_contains (buf, "droverctl job cancel 1234-abcd\n",
                        "droverctl job watch 1234-abcd\n", NULL);
  /* Truncated, never overrun. */
  cli_interrupt_text ("1234-abcd", "migration", tiny, sizeof tiny);
  g_assert_cmpuint (strlen (tiny), ==, sizeof tiny - 1);

  /* A snapshot job cannot be cancelled: only how to follow it again. */
  cli_interrupt_text ("5678-ef", "snapshot", buf, sizeof buf);
  g_assert_nonnull (strstr (buf, "the snapshot job 5678-ef goes on"));
  g_assert_nonnull (strstr (buf, "droverctl job watch 5678-ef\n"));
  g_assert_null (strstr (buf, "cancel"));
}

/* --linked / --full: one, the other, or neither (the scheduler's
 * default); both is a usage error. Descriptions: 1 KiB of UTF-8. */
static void
test_snapshot_args (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *max = g_strnfill (1024, 'd');
  g_autofree char *over = g_strnfill (1025, 'd');
  const char *mode = NULL;

  g_assert_true (cli_clone_mode (TRUE, FALSE, &mode, &error));
  g_assert_cmpstr (mode, ==, "linked");
  g_assert_true (cli_clone_mode (FALSE, TRUE, &mode, &error));
  g_assert_cmpstr (mode, ==, "full");
  g_assert_true (cli_clone_mode (FALSE, FALSE, &mode, &error));
  g_assert_cmpstr (mode, ==, "");
  g_assert_false (cli_clone_mode (TRUE, TRUE, &mode, &error));
  g_assert_error (error, CLI_ERROR, CLI_ERROR_USAGE);
  g_assert_nonnull (strstr (error->message, "exclude"));
  g_clear_error (&error);

  g_assert_true (cli_snapshot_check_description (NULL, &error));
  g_assert_true (cli_snapshot_check_description ("", &error));
  g_assert_true (cli_snapshot_check_description (max, &error));
  g_assert_false (cli_snapshot_check_description (over, &error));
  g_assert_error (error, CLI_ERROR, CLI_ERROR_USAGE);
  g_assert_nonnull (strstr (error->message, "at most 1024"));
  g_clear_error (&error);
  g_assert_false (cli_snapshot_check_description ("bad \xff byte", &error));
  g_assert_error (error, CLI_ERROR, CLI_ERROR_USAGE);
}

/* The tree: children two spaces deeper than their parent, the current
 * one marked, long descriptions cut to one line. */
static void
test_snapshot_tree (void)
{
  Drover__V1__Snapshot s[5];
  Drover__V1__Snapshot *list[5];
  Drover__V1__ListSnapshotsReply reply = DROVER__V1__LIST_SNAPSHOTS_REPLY__INIT;
  const char *const names[] = { "base", "upgrade", "after", "other", "root2" };
  const char *const parents[] = { "", "base", "upgrade", "base", "" };
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  g_autofree char *created = NULL;

  for (int i = 0; i < 5; i++)
    {
      drover__v1__snapshot__init (&s[i]);
      s[i].name = (char *)names[i];
      s[i].parent = (char *)parents[i];
      s[i].created_ms = 1700000000000 + i * 60000;
      s[i].size_bytes = (i + 1) * 1048576;
      s[i].vm_state = (char *)"running";
      list[i] = &s[i];
    }
  s[1].memory = TRUE;
  s[3].quiesced = TRUE;
  s[0].description = (char *)"first\nof all, a description much longer "
                             "than forty characters";
  reply.snapshots = list;
  reply.n_snapshots = 5;
  reply.current = (char *)"after";
  text = cli_snapshot_tree (&reply);
  lines = g_strsplit (text, "\n", -1);
  g_assert_cmpuint (g_strv_length (lines), ==, 7); /* header, 5, "" */
  g_assert_true (g_str_has_prefix (lines[0], "NAME "));
  g_assert_nonnull (strstr (lines[0], "CREATED"));
  g_assert_nonnull (strstr (lines[0], "MEMORY"));
  g_assert_true (g_str_has_prefix (lines[1], "  base "));
  g_assert_true (g_str_has_prefix (lines[2], "    upgrade "));
  g_assert_true (g_str_has_prefix (lines[3], "*     after "));
  g_assert_true (g_str_has_prefix (lines[4], "    other "));
  g_assert_true (g_str_has_prefix (lines[5], "  root2 "));
  g_assert_nonnull (
      strstr (lines[1], "first of all, a description much long..."));
  g_assert_null (strstr (lines[1], "forty"));
  g_assert_nonnull (strstr (lines[2], "2.0 MiB"));
  g_assert_nonnull (strstr (lines[2], " yes "));
  g_assert_nonnull (strstr (lines[4], "no, quiesced"));
  created = cli_format_time (s[2].created_ms);
  g_assert_nonnull (strstr (lines[3], created));
  g_assert_cmpstr (lines[6], ==, "");
}

/* The progress line of a storage job: bar, percentage, the scheduler's
 * message; never 100 % before the end; the error once failed. */
static void
test_storage_line (void)
{
  Drover__V1__Job job = DROVER__V1__JOB__INIT;
  g_autofree char *a = NULL;
  g_autofree char *b = NULL;
  g_autofree char *c = NULL;
  g_autofree char *d = NULL;

  job.kind = (char *)"snapshot-create";
  job.state = (char *)"running";
  job.progress = 0.5;
  job.message = (char *)"snapshot s1: memory 32.0 MiB of 64.0 MiB (50%)";
  a = cli_storage_progress_line (&job, 10);
  g_assert_cmpstr (a, ==,
                   "[#####-----]   50%  snapshot s1: memory 32.0 MiB of 64.0 "
                   "MiB (50%)");
  job.progress = 1.0;
  b = cli_storage_progress_line (&job, 0);
  g_assert_true (g_str_has_prefix (b, " 99%  snapshot s1"));
  job.state = (char *)"done";
  job.message = (char *)"snapshot s1 of VM web created on host a";
  c = cli_storage_progress_line (&job, 4);
  g_assert_cmpstr (c, ==,
                   "[####]  100%  snapshot s1 of VM web created on host a");
  job.state = (char *)"failed";
  job.progress = 0.3;
  job.error = (char *)"host 'a': no space left on device";
  d = cli_storage_progress_line (&job, 0);
  g_assert_cmpstr (d, ==, " 30%  failed: host 'a': no space left on device");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cli/size/valid", test_size_valid);
  g_test_add_func ("/cli/size/invalid", test_size_invalid);
  g_test_add_func ("/cli/json/escape", test_json_escape);
  g_test_add_func ("/cli/json/writer", test_json_writer);
  g_test_add_func ("/cli/json/compact", test_json_compact);
  g_test_add_func ("/cli/json/message", test_json_message);
  g_test_add_func ("/cli/table/render", test_table);
  g_test_add_func ("/cli/table/empty", test_table_empty);
  g_test_add_func ("/cli/migration/duration-rate", test_duration_rate);
  g_test_add_func ("/cli/migration/line", test_migration_line);
  g_test_add_func ("/cli/migration/line-disk", test_migration_line_disk);
  g_test_add_func ("/cli/migration/summary", test_migration_summary);
  g_test_add_func ("/cli/transport-hint", test_transport_hint);
  g_test_add_func ("/cli/interrupt-text", test_interrupt_text);
  g_test_add_func ("/cli/snapshot/args", test_snapshot_args);
  g_test_add_func ("/cli/snapshot/tree", test_snapshot_tree);
  g_test_add_func ("/cli/snapshot/progress-line", test_storage_line);
  return g_test_run ();
}
