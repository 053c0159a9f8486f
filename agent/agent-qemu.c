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
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define QEMU_CONF "/etc/libvirt/qemu.conf"
/* libvirt's built-in QEMU user and group on Debian, when qemu.conf sets
 * none. */
#define QEMU_DEFAULT_ID "libvirt-qemu"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathContext, xmlXPathFreeContext)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathObject, xmlXPathFreeObject)

gboolean
agent_qemu_ids_from_caps (const char *caps, uid_t *uid, gid_t *gid)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (xmlXPathContext) xpath = NULL;
  g_autoptr (xmlXPathObject) obj = NULL;
  unsigned int u, g;
  char end;

  if (!caps)
    return FALSE;
  doc = xmlReadMemory (caps, strlen (caps), "caps.xml", NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR
                           | XML_PARSE_NOWARNING);
  if (!doc)
    return FALSE;
  xpath = xmlXPathNewContext (doc);
  obj = xmlXPathEvalExpression (
      BAD_CAST "string(/capabilities/host/secmodel[model='dac']"
               "/baselabel[@type='kvm' or @type='qemu'][1])",
      xpath);
  if (!obj || obj->type != XPATH_STRING || !obj->stringval)
    return FALSE;
  if (sscanf ((const char *)obj->stringval, "+%u:+%u%c", &u, &g, &end) != 2)
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

gboolean
agent_qemu_ids_from_conf (const char *conf, uid_t *uid, gid_t *gid)
{
  g_autofree char *user = conf_value (conf, "user");
  g_autofree char *group = conf_value (conf, "group");
  const char *u = user ? user : QEMU_DEFAULT_ID;
  const char *g = group ? group : QEMU_DEFAULT_ID;
  guint64 n;

  if (*u == '+'
      && g_ascii_string_to_unsigned (u + 1, 10, 0, G_MAXUINT32, &n, NULL))
    *uid = n;
  else
    {
      struct passwd *pw = getpwnam (u);

      if (!pw)
        return FALSE;
      *uid = pw->pw_uid;
    }
  if (*g == '+'
      && g_ascii_string_to_unsigned (g + 1, 10, 0, G_MAXUINT32, &n, NULL))
    *gid = n;
  else
    {
      struct group *gr = getgrnam (g);

      if (!gr)
        return FALSE;
      *gid = gr->gr_gid;
    }
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
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (xmlXPathContext) xpath = NULL;
  g_autoptr (xmlXPathObject) obj = NULL;

  if (!caps)
    return NULL;
  doc = xmlReadMemory (caps, strlen (caps), "domcaps.xml", NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR
                           | XML_PARSE_NOWARNING);
  if (!doc)
    return NULL;
  xpath = xmlXPathNewContext (doc);
  obj = xmlXPathEvalExpression (BAD_CAST "string(/domainCapabilities/path)",
                                xpath);
  if (!obj || obj->type != XPATH_STRING || !obj->stringval || !*obj->stringval)
    return NULL;
  return g_strdup ((const char *)obj->stringval);
}
