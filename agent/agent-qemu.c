/* QEMU's user and group on this host, and the files only root and QEMU
 * may reach.
 *
 * Guest disks, console logs and the agent's state are owned by root and
 * QEMU's group and not readable by anyone else; the migration sockets
 * QEMU connects to are 0660 root:QEMU's group. libvirt runs QEMU as the
 * user of its DAC security model, which its capabilities say
 * (<secmodel><model>dac</model><baselabel type='kvm'>+64055:+64055
 * </baselabel>); qemu.conf's user and group settings are where that comes
 * from, read while libvirt is not connected. */
#include "agent-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define QEMU_CONF "/etc/libvirt/qemu.conf"
/* libvirt's built-in QEMU user and group on Debian, when qemu.conf sets
 * none. */
#define QEMU_DEFAULT_ID "libvirt-qemu"

gboolean
agent_qemu_ids_from_caps (const char *caps, uid_t *uid, gid_t *gid)
{
  g_autofree char *label
      = agent_xml_string (caps, "/capabilities/host/secmodel[model='dac']"
                                "/baselabel[@type='kvm' or @type='qemu'][1]");
  unsigned int u, g;
  char end;

  if (!label || sscanf (label, "+%u:+%u%c", &u, &g, &end) != 2)
    return FALSE;
  *uid = u;
  *gid = g;
  return TRUE;
}

/* The value of setting KEY ("user", "group") in qemu.conf text, or
 * NULL. */
static char *
conf_value (const char *conf, const char *key)
{
  g_auto (GStrv) lines = g_strsplit (conf, "\n", -1);
  char *value = NULL;

  for (guint i = 0; lines[i]; i++)
    {
      char *line = g_strstrip (lines[i]);
      gsize n = strlen (key);
      char *q;

      if (strncmp (line, key, n) != 0)
        continue;
      line = g_strchug (line + n);
      if (*line != '=')
        continue;
      line = g_strchug (line + 1);
      if (*line != '"' || !(q = strchr (line + 1, '"')))
        continue;
      g_free (value);
      value = g_strndup (line + 1, q - line - 1);
    }
  return value;
}

/* The id TEXT names: "+N", or a user (GROUP FALSE) or group name. */
static gboolean
resolve_id (const char *text, gboolean group, guint *id)
{
  guint64 n;

  if (*text == '+'
      && g_ascii_string_to_unsigned (text + 1, 10, 0, G_MAXUINT32, &n, NULL))
    *id = n;
  else if (group)
    {
      struct group *gr = getgrnam (text);

      if (!gr)
        return FALSE;
      *id = gr->gr_gid;
    }
  else
    {
      struct passwd *pw = getpwnam (text);

      if (!pw)
        return FALSE;
      *id = pw->pw_uid;
    }
  return TRUE;
}

gboolean
agent_qemu_ids_from_conf (const char *conf, uid_t *uid, gid_t *gid)
{
  g_autofree char *user = conf_value (conf, "user");
  g_autofree char *group = conf_value (conf, "group");
  guint u, g;

  if (!resolve_id (user ? user : QEMU_DEFAULT_ID, FALSE, &u)
      || !resolve_id (group ? group : QEMU_DEFAULT_ID, TRUE, &g))
    return FALSE;
  *uid = u;
  *gid = g;
  return TRUE;
}

void
agent_qemu_ids_update (Agent *agent, virConnectPtr conn)
{
  g_autofree char *caps = conn ? virConnectGetCapabilities (conn) : NULL;
  g_autofree char *conf = NULL;
  uid_t uid = 0;
  gid_t gid = 0;
  const char *from = "root (nothing says otherwise)";
  gboolean changed;

  if (agent_qemu_ids_from_caps (caps, &uid, &gid))
    from = "libvirt's DAC security model";
  else if (g_file_get_contents (QEMU_CONF, &conf, NULL, NULL)
           && agent_qemu_ids_from_conf (conf, &uid, &gid))
    from = QEMU_CONF;
  else
    uid = gid = 0;
  changed = g_atomic_int_exchange (&agent->qemu_uid, (gint)uid) != (gint)uid;
  changed |= g_atomic_int_exchange (&agent->qemu_gid, (gint)gid) != (gint)gid;
  if (changed)
    g_message ("QEMU runs as uid %u, gid %u (from %s)", (guint)uid, (guint)gid,
               from);
}

gboolean
agent_protect (Agent *agent, const char *path, mode_t mode, GError **error)
{
  gid_t gid = (gid_t)g_atomic_int_get (&agent->qemu_gid);

  /* Only root can give a file away; an unprivileged agent (tests) keeps
   * its own. */
  if ((geteuid () == 0 && chown (path, 0, gid) < 0) || g_chmod (path, mode) < 0)
    {
      int saved = errno;
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot restrict %s to root and QEMU: %s", path,
                   g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

char *
agent_qemu_emulator (Agent *agent, virConnectPtr conn)
{
  const char *virttype = agent->accel == AGENT_ACCEL_KVM ? "kvm" : "qemu";
  g_autofree char *caps = virConnectGetDomainCapabilities (conn, NULL, "x86_64",
                                                           NULL, virttype, 0);

  return agent_xml_string (caps, "/domainCapabilities/path");
}
