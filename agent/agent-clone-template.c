/* Templates and the bases they serve (issue 12): MakeTemplate, and the
 * checks that keep a base alive and unchanged while linked clones run on
 * it (DeleteVm, StartVm, and anything that would rewrite its image).
 * The users of a base are found from the clone records of the domains
 * (agent-clone-xml.c) and from the marks of clones being made
 * (agent-clone.c). */
#include "agent-clone-private.h"
#include "agent-snaptree.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

/* Clones listed by name in a refusal; the rest are counted. */
#define MAX_NAMED_USERS 10

/* --- users of a base ------------------------------------------------------ */

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  g_autofree char *ka
      = g_utf8_collate_key_for_filename (*(const char *const *)a, -1);
  g_autofree char *kb
      = g_utf8_collate_key_for_filename (*(const char *const *)b, -1);

  return strcmp (ka, kb);
}

/* The VMs whose disks are overlays on VM BASE's image (linked clones,
 * from their records), and the clones of BASE being made now (from their
 * marks, named "NAME (being made)"). */
static GPtrArray *
base_users (Agent *agent, virConnectPtr conn, const char *base, GError **error)
{
  g_autoptr (GPtrArray) users = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) marks = agent_clone_list_marks (agent);
  virDomainPtr *doms = NULL;
  int n = virConnectListAllDomains (conn, &doms, 0);

  if (n < 0)
    {
      agent_libvirt_error (error, "cannot list domains");
      return NULL;
    }
  for (int i = 0; i < n; i++)
    {
      g_autofree char *xml = virDomainGetXMLDesc (doms[i], 0);
      g_autofree char *of = xml ? agent_clone_xml_attr (xml, "base-vm") : NULL;

      if (g_strcmp0 (of, base) == 0)
        g_ptr_array_add (users, g_strdup (virDomainGetName (doms[i])));
      virDomainFree (doms[i]);
    }
  free (doms);
  for (guint i = 0; i < marks->len; i++)
    {
      g_autofree char *path = agent_clone_mark_path (agent, marks->pdata[i]);
      g_autofree char *source = NULL;

      if (g_file_get_contents (path, &source, NULL, NULL)
          && g_strcmp0 (g_strstrip (source), base) == 0)
        g_ptr_array_add (users, g_strdup_printf ("%s (being made)",
                                                 (char *)marks->pdata[i]));
    }
  g_ptr_array_sort (users, compare_names);
  return g_steal_pointer (&users);
}

gboolean
agent_clone_check_image (Agent *agent, virConnectPtr conn, const char *vm,
                         const char *path, GError **error)
{
  g_autoptr (GPtrArray) users = base_users (agent, conn, vm, error);
  g_autoptr (GString) list = g_string_new (NULL);
  guint n = 0;

  if (!users)
    return FALSE;
  for (guint i = 0; i < users->len; i++)
    {
      const char *user = users->pdata[i];
      g_autoptr (virDomain) dom = virDomainLookupByName (conn, user);
      g_autofree char *xml = dom ? virDomainGetXMLDesc (dom, 0) : NULL;
      g_autofree char *image
          = xml ? agent_clone_xml_attr (xml, "base-image") : NULL;

      /* A clone being made (no domain yet) may be linking to PATH. */
      if (image && g_strcmp0 (image, path) != 0)
        continue;
      if (n++ < MAX_NAMED_USERS)
        g_string_append_printf (list, "%s%s", n > 1 ? ", " : "", user);
    }
  if (n == 0)
    return TRUE;
  if (n > MAX_NAMED_USERS)
    g_string_append_printf (list, " and %u more", n - MAX_NAMED_USERS);
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
               "image %s of VM %s is the base of %u linked clone%s: %s", path,
               vm, n, n == 1 ? "" : "s", list->str);
  return FALSE;
}

gboolean
agent_clone_check_start (Agent *agent, virDomainPtr dom, GError **error)
{
  g_autofree char *xml = virDomainGetXMLDesc (dom, 0);

  if (xml && agent_clone_xml_is_template (xml))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is a template: templates are never started; clone "
                   "it and start the clone",
                   virDomainGetName (dom));
      return FALSE;
    }
  return TRUE;
}

gboolean
agent_clone_check_delete (Agent *agent, virConnectPtr conn, virDomainPtr dom,
                          GError **error)
{
  const char *name = virDomainGetName (dom);
  g_autoptr (GPtrArray) users = base_users (agent, conn, name, error);
  g_autoptr (GString) list = NULL;

  if (!users)
    return FALSE;
  if (users->len == 0)
    return TRUE;
  list = g_string_new (NULL);
  for (guint i = 0; i < users->len && i < MAX_NAMED_USERS; i++)
    g_string_append_printf (list, "%s%s", i ? ", " : "",
                            (char *)users->pdata[i]);
  if (users->len > MAX_NAMED_USERS)
    g_string_append_printf (list, " and %u more", users->len - MAX_NAMED_USERS);
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
               "VM %s is the base of %u linked clone%s: %s; delete %s first",
               name, users->len, users->len == 1 ? "" : "s", list->str,
               users->len == 1 ? "it" : "them");
  return FALSE;
}

/* --- MakeTemplate --------------------------------------------------------- */

/* See agent-clone-private.h. */
gboolean
agent_clone_protect_base (const char *path, GError **error)
{
  if (g_chmod (path, 0444) < 0)
    {
      int saved = errno;

      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot make %s read-only: %s", path, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

ProtobufCMessage *
agent_clone_make_template (Agent *agent, virConnectPtr conn, virDomainPtr dom,
                           const ProtobufCMessage *request, GError **error)
{
  const char *name = virDomainGetName (dom);
  g_autofree char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  g_autofree char *disk = NULL;

  if (!xml)
    {
      agent_libvirt_error (error, "cannot read the XML of VM %s", name);
      return NULL;
    }
  if (virDomainIsActive (dom) != 0)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is running: stop it before making it a template",
                   name);
      return NULL;
    }
  if (virDomainIsPersistent (dom) != 1)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is not defined persistently here", name);
      return NULL;
    }
  /* A template's image is a protected base; a snapshot chain under it
   * would be merged into by a later snapshot delete. */
  {
    g_autoptr (AgentSnapTree) tree
        = agent_snaptree_from_domain_xml (xml, error);

    if (!tree)
      return NULL;
    if (tree->snaps->len > 0)
      {
        g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                     "VM %s has %u snapshot%s: delete them before making it a "
                     "template",
                     name, tree->snaps->len, tree->snaps->len == 1 ? "" : "s");
        return NULL;
      }
  }
  disk = agent_clone_xml_disk (xml);
  /* The record first: a template whose image is still writable is
   * finished by the next MakeTemplate or by the start-up reclaim; an
   * image made read-only without the record would stay so for nothing. */
  if (!agent_clone_xml_is_template (xml)
      && virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT,
                               "<clone template=\"yes\"/>", CLONE_XMLNS_PREFIX,
                               CLONE_XMLNS, VIR_DOMAIN_AFFECT_CONFIG)
             < 0)
    {
      agent_libvirt_error (error, "cannot record VM %s as a template", name);
      return NULL;
    }
  if (disk && !agent_clone_protect_base (disk, error))
    {
      g_prefix_error (error, "VM %s is recorded as a template but ", name);
      return NULL;
    }
  drover_message (name, NULL, NULL, "VM is a template now%s%s",
                  disk ? "; its image is read-only: " : "", disk ? disk : "");
  agent_reporter_kick_from_thread (agent);
  return agent_vm_reply (dom, error);
}
