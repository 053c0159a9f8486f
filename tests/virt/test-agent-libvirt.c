/* The agent's libvirt layer against libvirt's test:///default driver:
 * host inventory, lifecycle of a Drover domain, Drover-only inventory,
 * lifecycle events in the main context. One connection per fixture: the
 * test driver's state lives while a connection of the process is open. */
#include <glib/gstdio.h>
#include <string.h>

#include "agent-private.h"
#include "test-support.h"

typedef struct
{
  GMainContext *ctx; /* ours: libvirt's thread iterates the default */
  AgentLibvirt *lv;
  virConnectPtr conn;
  char *dir;
  GPtrArray *events; /* "name:event" strings */
  GThread *main_thread;
  gboolean wrong_thread;
} Fixture;

static void
on_lifecycle (const char *name, int event, int detail, gpointer data)
{
  Fixture *f = data;

  if (g_thread_self () != f->main_thread)
    f->wrong_thread = TRUE;
  g_ptr_array_add (f->events, g_strdup_printf ("%s:%d", name, event));
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->main_thread = g_thread_self ();
  f->ctx = g_main_context_new ();
  g_main_context_push_thread_default (f->ctx);
  f->events = g_ptr_array_new_with_free_func (g_free);
  f->dir = test_tmp_dir_new ("drover-virt-XXXXXX");
  f->lv = agent_libvirt_new ("test:///default", NULL, on_lifecycle, NULL, f);
  g_assert_true (agent_libvirt_connect (f->lv, &error));
  g_assert_no_error (error);
  f->conn = agent_libvirt_get (f->lv, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->conn);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  virConnectClose (f->conn);
  agent_libvirt_free (f->lv);
  /* Drain idle sources queued by the event thread. */
  while (g_main_context_iteration (f->ctx, FALSE))
    ;
  g_main_context_pop_thread_default (f->ctx);
  g_main_context_unref (f->ctx);
  g_ptr_array_unref (f->events);
  test_tmp_dir_remove (f->dir);
  g_free (f->dir);
}

static Drover__V1__VmSpec *
make_spec (const char *name)
{
  Drover__V1__VmSpec base = DROVER__V1__VM_SPEC__INIT;

  base.name = (char *)name;
  base.vcpus = 2;
  base.memory = 128 * 1024 * 1024;
  base.cmdline = (char *)"console=ttyS0 <&'\">";
  base.kernel = (char *)"/boot/vmlinuz";
  base.accel = (char *)"tcg";
  return proto_msg_copy (&base.base);
}

static virDomainPtr
define_drover (Fixture *f, const char *name, AgentAccel accel)
{
  g_autoptr (Drover__V1__VmSpec) spec = make_spec (name);
  g_autoptr (GError) error = NULL;
  g_autofree char *console = g_build_filename (f->dir, "console.log", NULL);
  g_autofree char *xml
      = agent_domain_xml_build (spec, accel, NULL, console, &error);
  virDomainPtr dom;

  g_assert_no_error (error);
  dom = virDomainDefineXMLFlags (f->conn, xml, VIR_DOMAIN_DEFINE_VALIDATE);
  g_assert_nonnull (dom);
  return dom;
}

static void
test_host_info (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Drover__V1__HostInfo) info = NULL;
  unsigned long lib = 0;
  g_autofree char *lib_str = NULL;

  info = agent_host_info_collect (f->conn, "host-1", "127.0.0.2:7401",
                                  AGENT_ACCEL_TCG, f->dir, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (info->name, ==, "host-1");
  g_assert_cmpstr (info->address, ==, "127.0.0.2:7401");
  /* The test driver's fixed node: 16 CPUs, 3 GiB. */
  g_assert_cmpuint (info->cpus, ==, 16);
  g_assert_cmpuint (info->memory_total, ==, 3145728ULL * 1024);
  g_assert_cmpuint (info->memory_free, >, 0);
  g_assert_cmpstr (info->cpu_model, !=, "");
  g_assert_cmpstr (info->accel, ==, "tcg");
  g_assert_cmpint (virGetVersion (&lib, NULL, NULL), ==, 0);
  lib_str = agent_version_string (lib);
  g_assert_cmpstr (info->libvirt_version, ==, lib_str);
  g_assert_true (g_str_has_prefix (info->libvirt_version, "9."));
  g_assert_cmpstr (info->qemu_version, ==, "0.0.2");
  g_assert_cmpuint (info->data_total, >, 0);
  g_assert_cmpuint (info->data_free, <=, info->data_total);
  g_assert_true (info->kvm_usable == agent_kvm_usable ());

  g_clear_pointer (&info, proto_msg_free);
  info = agent_host_info_collect (f->conn, "host-1", "x", AGENT_ACCEL_AUTO,
                                  f->dir, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (info->accel, ==, agent_kvm_usable () ? "kvm" : "tcg");

  g_assert_true (agent_accel_resolve (AGENT_ACCEL_KVM) == AGENT_ACCEL_KVM);
  g_assert_true (agent_accel_resolve (AGENT_ACCEL_TCG) == AGENT_ACCEL_TCG);
  {
    g_autofree char *v = agent_version_string (7002001);
    g_assert_cmpstr (v, ==, "7.2.1");
  }
}

static void
test_lifecycle (Fixture *f, gconstpointer data)
{
  AgentAccel accels[] = { AGENT_ACCEL_TEST, AGENT_ACCEL_TCG };

  for (guint i = 0; i < G_N_ELEMENTS (accels); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (virDomain) dom = define_drover (f, "life-1", accels[i]);
      g_autoptr (Drover__V1__VmStatus) status = NULL;

      status = agent_vm_status_from_domain (dom, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (status->name, ==, "life-1");
      g_assert_cmpstr (status->state, ==, "shutoff");
      g_assert_cmpstr (status->spec->cmdline, ==, "console=ttyS0 <&'\">");
      g_assert_cmpuint (status->spec->memory, ==, 128 * 1024 * 1024);
      g_assert_cmpint (strlen (status->uuid), ==, 36);
      g_clear_pointer (&status, proto_msg_free);

      g_assert_cmpint (virDomainCreate (dom), ==, 0);
      status = agent_vm_status_from_domain (dom, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (status->state, ==, "running");
      g_assert_cmpuint (status->vcpus, ==, 2);
      g_assert_cmpuint (status->memory, ==, 128 * 1024 * 1024);
      g_clear_pointer (&status, proto_msg_free);

      g_assert_cmpint (virDomainShutdown (dom), ==, 0);
      status = agent_vm_status_from_domain (dom, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (status->state, ==, "shutoff");

      g_assert_cmpint (virDomainUndefine (dom), ==, 0);
      g_assert_null (virDomainLookupByName (f->conn, "life-1"));
    }
}

static void
test_drover_only (Fixture *f, gconstpointer data)
{
  static const char foreign_xml[]
      = "<domain type='test'><name>foreign</name><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>";
  g_autoptr (GError) error = NULL;
  g_autoptr (AgentStats) stats = agent_stats_new ();
  g_autoptr (virDomain) a = define_drover (f, "vm-a", AGENT_ACCEL_TEST);
  g_autoptr (virDomain) b = define_drover (f, "vm-b", AGENT_ACCEL_TEST);
  g_autoptr (virDomain) foreign = virDomainDefineXML (f->conn, foreign_xml);
  g_autoptr (GPtrArray) vms = NULL;
  g_autoptr (GError) not_drover = NULL;
  g_autoptr (Drover__V1__VmStatus) st = NULL;

  g_assert_nonnull (foreign);
  g_assert_cmpint (virDomainCreate (a), ==, 0);
  g_assert_cmpint (virDomainCreate (foreign), ==, 0);

  st = agent_vm_status_from_domain (foreign, &not_drover);
  g_assert_null (st);
  g_assert_error (not_drover, AGENT_ERROR, AGENT_ERROR_NOT_DROVER);

  for (int round = 0; round < 2; round++)
    {
      g_clear_pointer (&vms, g_ptr_array_unref);
      vms = agent_stats_collect (stats, f->conn, &error);
      g_assert_no_error (error);
      /* Neither the driver's own "test" domain nor "foreign". */
      g_assert_cmpuint (vms->len, ==, 2);
      for (guint i = 0; i < vms->len; i++)
        {
          Drover__V1__VmStatus *s = vms->pdata[i];

          if (strcmp (s->name, "vm-a") == 0)
            {
              g_assert_cmpstr (s->state, ==, "running");
            }
          else
            {
              g_assert_cmpstr (s->name, ==, "vm-b");
              g_assert_cmpstr (s->state, ==, "shutoff");
            }
          g_assert_cmpstr (s->spec->name, ==, s->name);
          g_assert_cmpuint (s->spec->vcpus, ==, 2);
          g_assert_cmpfloat (s->cpu_percent, >=, 0.0);
        }
      g_usleep (20 * 1000);
    }

  g_assert_cmpint (virDomainDestroy (a), ==, 0);
  g_assert_cmpint (virDomainDestroy (foreign), ==, 0);
  g_assert_cmpint (virDomainUndefine (a), ==, 0);
  g_assert_cmpint (virDomainUndefine (b), ==, 0);
  g_assert_cmpint (virDomainUndefine (foreign), ==, 0);
}

static gboolean
has_event (Fixture *f, const char *name, int event)
{
  g_autofree char *want = g_strdup_printf ("%s:%d", name, event);

  for (guint i = 0; i < f->events->len; i++)
    if (strcmp (f->events->pdata[i], want) == 0)
      return TRUE;
  return FALSE;
}

static void
wait_event (Fixture *f, const char *name, int event)
{
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

  while (!has_event (f, name, event) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (f->ctx, FALSE) || (g_usleep (1000), TRUE);
  g_assert_true (has_event (f, name, event));
}

static void
test_events (Fixture *f, gconstpointer data)
{
  g_autoptr (virDomain) dom = define_drover (f, "ev-1", AGENT_ACCEL_TEST);

  wait_event (f, "ev-1", VIR_DOMAIN_EVENT_DEFINED);
  g_assert_cmpint (virDomainCreate (dom), ==, 0);
  wait_event (f, "ev-1", VIR_DOMAIN_EVENT_STARTED);
  g_assert_cmpint (virDomainDestroy (dom), ==, 0);
  wait_event (f, "ev-1", VIR_DOMAIN_EVENT_STOPPED);
  g_assert_cmpint (virDomainUndefine (dom), ==, 0);
  wait_event (f, "ev-1", VIR_DOMAIN_EVENT_UNDEFINED);
  /* Delivered by the GMainContext, never by libvirt's event thread. */
  g_assert_false (f->wrong_thread);
}

static void
test_unreachable (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GMainContext) ctx = g_main_context_new ();
  AgentLibvirt *lv = agent_libvirt_new (
      "test+unix:///default?socket=/nonexistent/sock", ctx, NULL, NULL, NULL);
  virConnectPtr conn;

  g_assert_false (agent_libvirt_connect (lv, &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_UNAVAILABLE);
  g_clear_error (&error);
  conn = agent_libvirt_get (lv, &error);
  g_assert_null (conn);
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_UNAVAILABLE);
  /* The retry timer must be gone after free. */
  agent_libvirt_free (lv);
  g_assert_false (g_main_context_iteration (ctx, FALSE));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  agent_libvirt_init ();
#define ADD(path, func)                                                        \
  g_test_add (path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("/agent/libvirt/host-info", test_host_info);
  ADD ("/agent/libvirt/lifecycle", test_lifecycle);
  ADD ("/agent/libvirt/drover-only", test_drover_only);
  ADD ("/agent/libvirt/events", test_events);
  g_test_add_func ("/agent/libvirt/unreachable", test_unreachable);
  return g_test_run ();
}
