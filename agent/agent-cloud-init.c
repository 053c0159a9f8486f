/* The cloud-init NoCloud seed of a VM (issue 13): an ISO 9660 volume
 * labelled "cidata" with the files user-data (the operator's, as given)
 * and meta-data (instance-id and local-hostname: the VM's name), made
 * with genisoimage and attached to the VM as a read-only cdrom
 * (agent-domain-xml.c). */
#include "agent-disk-images.h"

#include <glib/gstdio.h>
#include <string.h>

#define SEED_SUFFIX ".seed.iso"

char *
agent_cloud_init_seed_path (const char *disk_path)
{
  gsize n = strlen (disk_path);

  if (g_str_has_suffix (disk_path, ".qcow2"))
    n -= strlen (".qcow2");
  return g_strdup_printf ("%.*s" SEED_SUFFIX, (int)n, disk_path);
}

gboolean
agent_cloud_init_seed_make (Agent *agent, const Drover__V1__VmSpec *spec,
                            const char *seed_path, GError **error)
{
  g_autofree char *dir = NULL, *user = NULL, *meta = NULL, *meta_text = NULL;
  g_autofree char *tmp = NULL, *err = NULL;
  g_autoptr (GError) local = NULL;
  int status = 0;
  gboolean ok = FALSE;

  if (spec->cloud_init_user_data.len > PROTO_CLOUD_INIT_MAX)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "cloud-init user-data over %d bytes", PROTO_CLOUD_INIT_MAX);
      return FALSE;
    }
  dir = g_dir_make_tmp ("drover-seed-XXXXXX", &local);
  if (!dir)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cloud-init seed: %s", local->message);
      return FALSE;
    }
  user = g_build_filename (dir, "user-data", NULL);
  meta = g_build_filename (dir, "meta-data", NULL);
  /* The name follows the VM name rules: nothing to quote. */
  meta_text = g_strdup_printf ("instance-id: %s\nlocal-hostname: %s\n",
                               spec->name, spec->name);
  tmp = g_strconcat (seed_path, ".tmp", NULL);
  (void)g_unlink (tmp);
  if (!g_file_set_contents (user, (const char *)spec->cloud_init_user_data.data,
                            spec->cloud_init_user_data.len, &local)
      || !g_file_set_contents (meta, meta_text, -1, &local))
    g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "cloud-init seed: %s",
                 local->message);
  else
    {
      const char *argv[]
          = { "genisoimage", "-quiet", "-output", tmp,  "-volid", "cidata",
              "-joliet",     "-rock",  user,      meta, NULL };

      if (!g_spawn_sync (NULL, (char **)argv, NULL,
                         G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                         NULL, NULL, &err, &status, &local)
          || !g_spawn_check_wait_status (status, NULL))
        g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                     "cannot make the cloud-init seed (genisoimage): %s",
                     local ? local->message : g_strstrip (err ? err : ""));
      else if (!agent_protect (agent, tmp, 0640, error))
        ;
      else if (g_rename (tmp, seed_path) < 0)
        g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                     "cannot place the cloud-init seed %s: %s", seed_path,
                     g_strerror (errno));
      else
        ok = TRUE;
    }
  (void)g_unlink (user);
  (void)g_unlink (meta);
  (void)g_rmdir (dir);
  if (!ok)
    (void)g_unlink (tmp);
  return ok;
}
