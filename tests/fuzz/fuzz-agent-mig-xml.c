/* libFuzzer target: the destination's check of what an incoming
 * migration brings (agent_mig_xml_check). The first input byte picks
 * what it is (destination_xml, persistent_xml, cookie, destination_name),
 * the rest is its text. The check runs against an agent whose image
 * directory and paths are made once in a temporary directory. */
#include <stddef.h>
#include <stdint.h>

#include "agent-private.h"

static Agent *agent;
static char *disk_path, *console_path;

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("fuzz-agent-mig-xml-XXXXXX", &error);
  GMainContext *ctx = g_main_context_new ();
  AgentConfig config = { 0 };

  g_assert_no_error (error);
  config.name = (char *)"h1";
  config.listen = (char *)"127.0.0.1:0";
  config.libvirt_uri = (char *)"test:///default";
  config.accel = AGENT_ACCEL_TEST;
  config.data_dir = dir;
  config.insecure = TRUE;
  agent = agent_new (&config, ctx, &error);
  g_assert_no_error (error);
  disk_path = g_build_filename (dir, "disks", "vm.qcow2", NULL);
  console_path = g_build_filename (dir, "console", "vm.log", NULL);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const whats[]
      = { "destination_xml", "persistent_xml", "cookie", "destination_name" };
  AgentMigXmlPaths paths
      = { "vm", disk_path, console_path, "/usr/bin/qemu-system-x86_64" };
  g_autofree char *value = NULL;
  GError *error = NULL;

  if (size < 1)
    return 0;
  value = g_strndup ((const char *)data + 1, size - 1);
  if (!agent_mig_xml_check (agent, &paths, whats[data[0] % 4], value, &error))
    {
      g_assert (error != NULL);
      g_error_free (error);
    }
  return 0;
}
