/* The helpers every component shares through libdrover-proto: sizes,
 * message copies, VmSpec limits, the shared names and structured logging. */
#include "proto.h"

#include <string.h>

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

static void
test_parse_size (void)
{
  static const struct
  {
    const char *text;
    guint64 bytes;
  } cases[] = {
    { "0", 0 },
    { "4096", 4096 },
    { "4096B", 4096 },
    { "256M", 256 * MiB },
    { "1GiB", GiB },
    { "1.5G", 3 * GiB / 2 },
    { "64k", 65536 },
    { "1GB", GiB },
    { "18446744073709551615", G_MAXUINT64 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 v = 42;

      g_assert_true (proto_parse_size ("--x", cases[i].text, &v, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (v, ==, cases[i].bytes);
    }
}

static void
test_parse_size_invalid (void)
{
  static const struct
  {
    const char *text;
    const char *says;
  } cases[] = {
    { "", "empty" },
    { "12X", "not a size" },
    { "4096BB", "not a size" },
    { "-1M", "no sign" },
    { "1.5", "whole number of bytes" },
    { "99999999999999999999", "too large" },
    { "17179869184T", "too large" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      guint64 v = 42;

      g_assert_false (proto_parse_size ("--x", cases[i].text, &v, &error));
      g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
      g_assert_true (g_str_has_prefix (error->message, "--x: "));
      if (strstr (error->message, cases[i].says) == NULL)
        g_error ("'%s': message '%s' lacks '%s'", cases[i].text, error->message,
                 cases[i].says);
      g_assert_cmpuint (v, ==, 42);
    }
}

static void
test_format_size (void)
{
  static const struct
  {
    guint64 bytes;
    const char *text;
  } cases[] = {
    { 0, "0 B" },
    { 1023, "1023 B" },
    { 1024, "1.0 KiB" },
    { 1536, "1.5 KiB" },
    { 200 * MiB, "200.0 MiB" },
    { 512 * MiB, "512.0 MiB" },
    { GiB - 1, "1.0 GiB" },
    { 1536 * MiB, "1.5 GiB" },
    { 12 * GiB, "12.0 GiB" },
    { 2 * 1024 * GiB, "2.0 TiB" },
    { G_MAXUINT64, "16.0 EiB" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *s = proto_format_size (cases[i].bytes);
      g_assert_cmpstr (s, ==, cases[i].text);
    }
}

/* The brief form, used in the scheduler's messages. */
static void
test_format_size_brief (void)
{
  static const struct
  {
    guint64 bytes;
    const char *text;
  } cases[] = {
    { 0, "0 B" },           { 1023, "1023 B" },
    { 1024, "1.0 KiB" },    { 200 * MiB, "200 MiB" },
    { GiB, "1.0 GiB" },     { 1536 * MiB, "1.5 GiB" },
    { 12 * GiB, "12 GiB" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *s = proto_format_size_brief (cases[i].bytes);
      g_assert_cmpstr (s, ==, cases[i].text);
    }
}

static void
test_msg_copy (void)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  g_autoptr (Drover__V1__VmSpec) copy = NULL;

  g_assert_null (proto_msg_copy (NULL));
  spec.name = (char *)"web1";
  spec.vcpus = 2;
  spec.memory = 512 * MiB;
  copy = proto_msg_copy (&spec.base);
  g_assert_nonnull (copy);
  g_assert_true (copy != &spec);
  g_assert_cmpstr (copy->name, ==, "web1");
  g_assert_true (copy->name != spec.name);
  g_assert_cmpuint (copy->vcpus, ==, 2);
  g_assert_cmpuint (copy->memory, ==, 512 * MiB);
  /* Empty strings stay protobuf-c's shared one, which free leaves alone. */
  g_assert_true (proto_msg_strdup ("") == protobuf_c_empty_string);
  g_assert_true (proto_msg_strdup (NULL) == protobuf_c_empty_string);
}

static void
test_spec_check (void)
{
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  g_autoptr (GError) error = NULL;

  g_assert_false (proto_vm_spec_check (NULL, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  g_clear_error (&error);

  spec.name = (char *)"web1";
  spec.vcpus = PROTO_VM_MAX_VCPUS;
  spec.memory = PROTO_VM_MIN_MEMORY;
  g_assert_true (proto_vm_spec_check (&spec, &error));
  g_assert_no_error (error);

  spec.vcpus = PROTO_VM_MAX_VCPUS + 1;
  g_assert_false (proto_vm_spec_check (&spec, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
  g_assert_nonnull (strstr (error->message, "vcpus"));
  g_clear_error (&error);

  spec.vcpus = 0;
  g_assert_false (proto_vm_spec_check (&spec, &error));
  g_clear_error (&error);
  spec.vcpus = 1;

  spec.memory = PROTO_VM_MIN_MEMORY - 1;
  g_assert_false (proto_vm_spec_check (&spec, &error));
  g_assert_nonnull (strstr (error->message, "memory"));
  g_clear_error (&error);
  spec.memory = PROTO_VM_MIN_MEMORY;

  spec.accel = (char *)"xen";
  g_assert_false (proto_vm_spec_check (&spec, &error));
  g_assert_nonnull (strstr (error->message, "accel"));
  g_clear_error (&error);
  spec.accel = (char *)PROTO_ACCEL_TCG;
  g_assert_true (proto_vm_spec_check (&spec, &error));

  spec.initrd = (char *)"initrd.img";
  g_assert_false (proto_vm_spec_check (&spec, &error));
  g_assert_nonnull (strstr (error->message, "needs a kernel"));
  g_clear_error (&error);

  spec.initrd = (char *)"";
  spec.name = (char *)"../etc";
  g_assert_false (proto_vm_spec_check (&spec, &error));
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT);
}

static void
test_names (void)
{
  g_assert_true (proto_mig_phase_is_final (PROTO_MIG_COMPLETED));
  g_assert_true (proto_mig_phase_is_final (PROTO_MIG_ABORTED));
  g_assert_true (proto_mig_phase_is_final (PROTO_MIG_FAILED));
  g_assert_false (proto_mig_phase_is_final (PROTO_MIG_PRECOPY));
  g_assert_false (proto_mig_phase_is_final (NULL));
  g_assert_true (proto_job_state_is_final (PROTO_JOB_DONE));
  g_assert_true (proto_job_state_is_final (PROTO_JOB_FAILED));
  g_assert_false (proto_job_state_is_final (PROTO_JOB_RUNNING));
  g_assert_false (proto_job_state_is_final (PROTO_JOB_QUEUED));
}

/* What the log test's writer saw last. */
typedef struct
{
  char *message;
  char *vm;
  char *job;
  char *host;
  char *domain;
} Seen;

static void
seen_clear (Seen *seen)
{
  g_clear_pointer (&seen->message, g_free);
  g_clear_pointer (&seen->vm, g_free);
  g_clear_pointer (&seen->job, g_free);
  g_clear_pointer (&seen->host, g_free);
  g_clear_pointer (&seen->domain, g_free);
}

static GLogWriterOutput
capture (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
         gpointer user_data)
{
  Seen *seen = user_data;

  seen_clear (seen);
  for (gsize i = 0; i < n_fields; i++)
    {
      char **slot = NULL;

      if (strcmp (fields[i].key, "MESSAGE") == 0)
        slot = &seen->message;
      else if (strcmp (fields[i].key, "DROVER_VM") == 0)
        slot = &seen->vm;
      else if (strcmp (fields[i].key, "DROVER_JOB") == 0)
        slot = &seen->job;
      else if (strcmp (fields[i].key, "DROVER_HOST") == 0)
        slot = &seen->host;
      else if (strcmp (fields[i].key, "GLIB_DOMAIN") == 0)
        slot = &seen->domain;
      if (slot != NULL)
        *slot = g_strdup (fields[i].value);
    }
  return G_LOG_WRITER_HANDLED;
}

/* The writer can be set once per process: this is the only test that
 * does, in a subprocess so that the rest keep GLib's default. */
static void
test_log_fields (void)
{
  if (g_test_subprocess ())
    {
      Seen seen = { 0 };

      g_log_set_writer_func (capture, &seen, NULL);
      proto_log ("drover-test", G_LOG_LEVEL_MESSAGE, "web1", "j1", NULL,
                 "started after %d tries", 3);
      g_assert_cmpstr (seen.message, ==, "started after 3 tries");
      g_assert_cmpstr (seen.vm, ==, "web1");
      g_assert_cmpstr (seen.job, ==, "j1");
      g_assert_null (seen.host);
      g_assert_cmpstr (seen.domain, ==, "drover-test");

      proto_log ("drover-test", G_LOG_LEVEL_INFO, NULL, "", "host2", "up");
      g_assert_null (seen.vm);
      g_assert_null (seen.job);
      g_assert_cmpstr (seen.host, ==, "host2");
      seen_clear (&seen);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
}

/* On stderr the daemons' writer appends the fields to the text. */
static void
test_log_stderr (void)
{
  if (g_test_subprocess ())
    {
      proto_log_install ();
      proto_log ("drover-test", G_LOG_LEVEL_MESSAGE, "web1", "j1", "host2",
                 "migrated");
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stderr ("*migrated [vm=web1 job=j1 host=host2]*");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/proto/util/parse-size", test_parse_size);
  g_test_add_func ("/proto/util/parse-size-invalid", test_parse_size_invalid);
  g_test_add_func ("/proto/util/format-size", test_format_size);
  g_test_add_func ("/proto/util/format-size-brief", test_format_size_brief);
  g_test_add_func ("/proto/util/msg-copy", test_msg_copy);
  g_test_add_func ("/proto/util/spec-check", test_spec_check);
  g_test_add_func ("/proto/util/names", test_names);
  g_test_add_func ("/proto/util/log-fields", test_log_fields);
  g_test_add_func ("/proto/util/log-stderr", test_log_stderr);
  return g_test_run ();
}
