/* The agent's hardening against libvirt's test:///default driver, calling
 * its operations directly (no gRPC; the caller is what a certificate
 * would have said):
 * - kernel and initrd only from the image directory;
 * - disks, console logs and the data directories not world-readable;
 * - ReadConsole from another host only for a VM migrating to it;
 * - a migration job id prepared once (ALREADY_EXISTS);
 * - orphan disks and marks of undecided incoming disks reclaimed at
 *   start;
 * - fault points only in -Dfaults=true builds. */
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-fixture.h"
#include "stor.h"

#define MiB (1024ULL * 1024)

typedef struct
{
  char *dir;
  char *images;
  GMainContext *ctx;
  Agent *agent;
  virConnectPtr conn; /* the test's own */
} Fixture;

static char *
data_file (Fixture *f, const char *sub, const char *name)
{
  return g_build_filename (f->dir, sub, name, NULL);
}

/* Files an earlier run of the agent left in its disk directory. */
static void
leave_disks (Fixture *f)
{
  static const char *const files[] = {
    "orphan.qcow2",          /* no VM of that name */
    "test.qcow2",            /* the test driver's own domain "test" */
    "gone.qcow2",            /* undecided incoming image, VM absent */
    "gone.qcow2.incoming",   /* ... its mark */
    "lonely.qcow2.incoming", /* a mark whose image was never made */
  };
  g_autofree char *disks = g_build_filename (f->dir, "disks", NULL);

  g_assert_cmpint (g_mkdir_with_parents (disks, 0700), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *path = data_file (f, "disks", files[i]);

      g_assert_true (g_file_set_contents (path, "x", -1, NULL));
    }
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *kernel = NULL, *outside = NULL, *escape = NULL;

  f->dir = g_dir_make_tmp ("drover-sec-XXXXXX", &error);
  g_assert_no_error (error);
  f->images = g_build_filename (f->dir, "images", NULL);
  g_assert_cmpint (g_mkdir (f->images, 0755), ==, 0);
  kernel = g_build_filename (f->images, "vmlinuz", NULL);
  outside = g_build_filename (f->dir, "secret", NULL);
  escape = g_build_filename (f->images, "escape", NULL);
  g_assert_true (g_file_set_contents (kernel, "k", -1, NULL));
  g_assert_true (g_file_set_contents (outside, "s", -1, NULL));
  g_assert_cmpint (symlink (outside, escape), ==, 0);
  leave_disks (f);

  f->agent = agent_fixture_start (f->dir, f->images, NULL, &f->ctx);
  f->conn = virConnectOpen ("test:///default");
  g_assert_nonnull (f->conn);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  virConnectClose (f->conn);
  agent_fixture_stop (f->agent, f->ctx, f->dir);
  g_free (f->dir);
  g_free (f->images);
}

static Drover__V1__VmSpec *
spec_new (const char *name, const char *kernel, guint64 disk)
{
  Drover__V1__VmSpec base = DROVER__V1__VM_SPEC__INIT;

  base.name = (char *)name;
  base.vcpus = 1;
  base.memory = 64 * MiB;
  base.disk = disk;
  base.kernel = (char *)kernel;
  return proto_msg_copy (&base.base);
}

/* A kernel outside the image directory is refused, naming the path and
 * the directory; inside (relative or absolute) it becomes the resolved
 * absolute path. */
static void
test_image_dir (Fixture *f, gconstpointer data)
{
  g_autofree char *escape = g_build_filename (f->images, "escape", NULL);
  g_autofree char *inside = g_build_filename (f->images, "vmlinuz", NULL);
  g_autofree char *dotted
      = g_build_filename (f->images, "..", "images", "vmlinuz", NULL);
  const char *refused[] = { "/etc/passwd", escape, "../secret", "nope" };
  const char *accepted[] = { "vmlinuz", inside, dotted };

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autoptr (Drover__V1__VmSpec) spec = spec_new ("k", refused[i], 0);
      g_autoptr (GError) error = NULL;

      g_assert_false (agent_vm_check_spec (f->agent, spec, &error));
      g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
      g_assert_nonnull (strstr (error->message, refused[i]));
      g_assert_nonnull (strstr (error->message, f->agent->image_dir));
    }
  for (guint i = 0; i < G_N_ELEMENTS (accepted); i++)
    {
      g_autoptr (Drover__V1__VmSpec) spec = spec_new ("k", accepted[i], 0);
      g_autoptr (GError) error = NULL;
      g_autofree char *real
          = g_build_filename (f->agent->image_dir, "vmlinuz", NULL);

      g_assert_true (agent_vm_check_spec (f->agent, spec, &error));
      g_assert_no_error (error);
      g_assert_cmpstr (spec->kernel, ==, real);
    }
}

/* PATH has MODE, and (when we are root) belongs to root and, when MODE
 * lets a group in, QEMU's group. */
static void
assert_mode (Fixture *f, const char *path, mode_t mode)
{
  struct stat st;

  g_assert_cmpint (stat (path, &st), ==, 0);
  if ((st.st_mode & 07777) != mode)
    g_error ("%s has mode %o, not %o", path, st.st_mode & 07777, mode);
  if (geteuid () == 0)
    {
      g_assert_cmpuint (st.st_uid, ==, 0);
      if ((mode & 0070)
          && st.st_gid != (gid_t)g_atomic_int_get (&f->agent->qemu_gid))
        g_error ("%s has group %u", path, (guint)st.st_gid);
    }
}

/* Reads VM NAME's console as CALLER; NULL with ERROR when refused. */
static ProtobufCMessage *
read_console (Fixture *f, ProtoRole role, const char *who, const char *name,
              GError **error)
{
  Drover__V1__ConsoleRequest req = DROVER__V1__CONSOLE_REQUEST__INIT;
  AgentCaller caller = { role, who };

  req.name = (char *)name;
  return agent_console_serve (f->agent, &caller, &req, error);
}

/* Only the scheduler reads any console; another host only that of a VM
 * migrating from here to it. */
static void
test_console_readers (Fixture *f, gconstpointer data)
{
  g_autofree char *log = data_file (f, "console", "con.log");
  g_autoptr (GError) error = NULL;
  ProtobufCMessage *chunk;

  g_assert_true (agent_console_prepare (f->agent, "con", &error));
  g_assert_true (g_file_set_contents (log, "boot", -1, NULL));
  chunk = read_console (f, PROTO_ROLE_HOST, "h2", "con", &error);
  g_assert_null (chunk);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);

  /* MigrateOut to h2 records the departure before the migration. */
  g_assert_true (agent_console_set_departure (f->agent, "con", "h2", &error));
  chunk = read_console (f, PROTO_ROLE_HOST, "h3", "con", &error);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);
  chunk = read_console (f, PROTO_ROLE_OPERATOR, "h2", "con", &error);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);
  chunk = read_console (f, PROTO_ROLE_HOST, "h2", "con", &error);
  g_assert_no_error (error);
  g_assert_cmpuint (((Drover__V1__ConsoleChunk *)chunk)->size, ==, 4);
  proto_msg_free (chunk);

  /* A failed migration takes the permission back. */
  g_assert_true (agent_console_set_departure (f->agent, "con", NULL, NULL));
  chunk = read_console (f, PROTO_ROLE_HOST, "h2", "con", &error);
  g_assert_error (error, PROTO_ERROR, PROTO_STATUS_PERMISSION_DENIED);
  g_clear_error (&error);
  chunk = read_console (f, PROTO_ROLE_SCHEDULER, "scheduler", "con", &error);
  g_assert_no_error (error);
  proto_msg_free (chunk);
}

static Drover__V1__PrepareIncomingReply *
prepare (Fixture *f, const char *job, const char *name, GError **error)
{
  Drover__V1__PrepareIncomingRequest req
      = DROVER__V1__PREPARE_INCOMING_REQUEST__INIT;
  g_autoptr (Drover__V1__VmSpec) spec = spec_new (name, "", 16 * MiB);
  AgentCaller scheduler = { PROTO_ROLE_SCHEDULER, "scheduler" };

  req.job_id = (char *)job;
  req.spec = spec;
  req.source_host = (char *)"h2";
  req.source_address = (char *)"";
  return (Drover__V1__PrepareIncomingReply *)agent_mig_dst_prepare (
      f->agent, &scheduler, &req.base, error);
}

/* A job id is prepared once until its reservation is gone; the image
 * it made is root's and QEMU's only, and goes with a cancel. */
static void
test_job_prepared_once (Fixture *f, gconstpointer data)
{
  Drover__V1__CancelIncomingRequest cancel
      = DROVER__V1__CANCEL_INCOMING_REQUEST__INIT;
  AgentCaller scheduler = { PROTO_ROLE_SCHEDULER, "scheduler" };
  g_autoptr (GError) error = NULL;
  g_autofree char *disk = data_file (f, "disks", "in1.qcow2");
  g_autofree char *disk2 = data_file (f, "disks", "in2.qcow2");
  g_autofree char *mark = g_strconcat (disk, ".incoming", NULL);
  Drover__V1__PrepareIncomingReply *first, *again;
  ProtobufCMessage *reply;

  first = prepare (f, "job-1", "in1", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (first->disk_path, ==, disk);
  assert_mode (f, disk, 0660);
  g_assert_true (g_file_test (mark, G_FILE_TEST_EXISTS));

  /* Another VM with the same job id: refused, nothing made. */
  again = prepare (f, "job-1", "in2", &error);
  g_assert_null (again);
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_false (g_file_test (disk2, G_FILE_TEST_EXISTS));

  cancel.job_id = (char *)"job-1";
  cancel.token = first->token;
  reply = agent_mig_dst_cancel (f->agent, &scheduler, &cancel.base, &error);
  g_assert_no_error (error);
  proto_msg_free (reply);
  g_assert_false (g_file_test (disk, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (mark, G_FILE_TEST_EXISTS));
  proto_msg_free (first);

  first = prepare (f, "job-1", "in2", &error);
  g_assert_no_error (error);
  cancel.token = first->token;
  reply = agent_mig_dst_cancel (f->agent, &scheduler, &cancel.base, &error);
  g_assert_no_error (error);
  proto_msg_free (reply);
  proto_msg_free (first);
}

/* What QEMU and the agent keep is not world-readable. */
static void
test_file_modes (Fixture *f, gconstpointer data)
{
  g_autofree char *disks = g_build_filename (f->dir, "disks", NULL);
  g_autofree char *console = g_build_filename (f->dir, "console", NULL);
  g_autofree char *log = data_file (f, "console", "m.log");
  g_autofree char *departure = data_file (f, "console", "m.departure");
  g_autoptr (GError) error = NULL;

  g_assert_true (agent_console_prepare (f->agent, "m", &error));
  g_assert_true (agent_console_set_departure (f->agent, "m", "h2", &error));
  assert_mode (f, f->dir, 0750);
  assert_mode (f, disks, 0750);
  assert_mode (f, console, 0750);
  assert_mode (f, log, 0660);
  assert_mode (f, departure, 0600);
}

/* At start the agent takes back what an earlier run left: the orphan
 * image, the undecided incoming image and a lone mark go; the image of
 * a VM libvirt knows stays. */
static void
test_reclaim_at_start (Fixture *f, gconstpointer data)
{
  static const char *const gone[]
      = { "orphan.qcow2", "gone.qcow2", "gone.qcow2.incoming",
          "lonely.qcow2.incoming" };
  g_autofree char *kept = data_file (f, "disks", "test.qcow2");
  gint64 until = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

  for (guint i = 0; i < G_N_ELEMENTS (gone); i++)
    {
      g_autofree char *path = data_file (f, "disks", gone[i]);

      while (g_file_test (path, G_FILE_TEST_EXISTS)
             && g_get_monotonic_time () < until)
        g_usleep (20 * 1000);
      if (g_file_test (path, G_FILE_TEST_EXISTS))
        g_error ("%s was not reclaimed", path);
    }
  g_assert_true (g_file_test (kept, G_FILE_TEST_EXISTS));
}

/* Fault points are compiled in or not at all. */
static void
test_fault_points (Fixture *f, gconstpointer data)
{
  agent_fault_set ("create-after-disk");
  g_assert_cmpint (agent_fault ("create-after-disk"), ==,
                   agent_fault_compiled ());
  agent_fault_set (NULL);
  g_assert_false (agent_fault ("create-after-disk"));
#ifdef DROVER_FAULTS
  g_assert_true (agent_fault_compiled ());
#else
  g_assert_false (agent_fault_compiled ());
#endif
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  proto_init ();
  agent_libvirt_init ();
#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/agent/security/image-dir", test_image_dir);
  ADD ("/agent/security/console-readers", test_console_readers);
  ADD ("/agent/security/job-prepared-once", test_job_prepared_once);
  ADD ("/agent/security/file-modes", test_file_modes);
  ADD ("/agent/security/reclaim-at-start", test_reclaim_at_start);
  ADD ("/agent/security/fault-points", test_fault_points);
  return g_test_run ();
}
