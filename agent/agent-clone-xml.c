/* The clone record in a domain's metadata (issue 12): a template's
 * <clone template="yes"/>, a clone's <clone source=... mode=...> (with
 * base-vm and base-image for a linked one), in namespace CLONE_XMLNS next
 * to the Drover spec. Helpers of the clone's files, pure XML: nothing
 * here talks to libvirt. */
#include "agent-clone-private.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)

/* See agent-clone-private.h. */
char *
agent_clone_xml_attr (const char *domxml, const char *attr)
{
  g_autofree char *expr
      = g_strdup_printf ("/domain/metadata/*[local-name()='clone' and "
                         "namespace-uri()='" CLONE_XMLNS "']/@%s",
                         attr);

  return agent_xml_string (domxml, expr);
}

gboolean
agent_clone_xml_is_template (const char *domxml)
{
  g_autofree char *t = agent_clone_xml_attr (domxml, "template");

  return g_strcmp0 (t, "yes") == 0;
}

/* See agent-clone-private.h. */
char *
agent_clone_xml_disk (const char *domxml)
{
  return agent_xml_string (domxml,
                           "/domain/devices/disk[@device='disk']/source/@file");
}

/* See agent-private.h; new MAC addresses so that a clone never shares
 * one with its source. */
char *
agent_clone_xml_identity (const char *domxml, const char *uuid,
                          const char *source, const char *snapshot,
                          const char *base_vm, const char *base_image,
                          GError **error)
{
  g_autoptr (xmlDoc) doc = xmlReadMemory (
      domxml, strlen (domxml), "domain.xml", NULL,
      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  xmlNodePtr root, meta = NULL, rec, devices = NULL;
  xmlNsPtr ns;
  xmlChar *out = NULL;
  int out_len = 0;
  char *result;

  root = doc ? xmlDocGetRootElement (doc) : NULL;
  if (!root)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                           "cannot read the clone's domain XML");
      return NULL;
    }
  for (xmlNodePtr n = root->children; n; n = n->next)
    {
      if (n->type != XML_ELEMENT_NODE)
        continue;
      if (strcmp ((const char *)n->name, "metadata") == 0)
        meta = n;
      else if (strcmp ((const char *)n->name, "devices") == 0)
        devices = n;
    }
  if (uuid && *uuid)
    {
      /* Right after <name>: where libvirt itself puts it. */
      xmlNodePtr u = xmlNewDocNode (doc, NULL, BAD_CAST "uuid", NULL);

      xmlNodeAddContent (u, BAD_CAST uuid);
      if (root->children)
        xmlAddNextSibling (root->children, u);
      else
        xmlAddChild (root, u);
    }
  if (!meta)
    meta = xmlNewChild (root, NULL, BAD_CAST "metadata", NULL);
  rec = xmlNewChild (meta, NULL, BAD_CAST "clone", NULL);
  ns = xmlNewNs (rec, BAD_CAST CLONE_XMLNS, BAD_CAST CLONE_XMLNS_PREFIX);
  xmlSetNs (rec, ns);
  xmlNewProp (rec, BAD_CAST "source", BAD_CAST source);
  if (snapshot && *snapshot)
    xmlNewProp (rec, BAD_CAST "snapshot", BAD_CAST snapshot);
  xmlNewProp (rec, BAD_CAST "mode",
              BAD_CAST (base_vm ? PROTO_CLONE_LINKED : PROTO_CLONE_FULL));
  if (base_vm)
    {
      xmlNewProp (rec, BAD_CAST "base-vm", BAD_CAST base_vm);
      xmlNewProp (rec, BAD_CAST "base-image", BAD_CAST base_image);
    }
  for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next)
    {
      xmlNodePtr mac = NULL;
      char addr[18];

      if (n->type != XML_ELEMENT_NODE
          || strcmp ((const char *)n->name, "interface") != 0)
        continue;
      for (xmlNodePtr c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE
            && strcmp ((const char *)c->name, "mac") == 0)
          mac = c;
      if (!mac)
        mac = xmlNewChild (n, NULL, BAD_CAST "mac", NULL);
      /* QEMU's locally administered prefix, as libvirt would choose. */
      g_snprintf (addr, sizeof addr, "52:54:00:%02x:%02x:%02x",
                  g_random_int_range (0, 256), g_random_int_range (0, 256),
                  g_random_int_range (0, 256));
      xmlSetProp (mac, BAD_CAST "address", BAD_CAST addr);
    }
  xmlDocDumpFormatMemoryEnc (doc, &out, &out_len, "UTF-8", 1);
  if (!out)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                           "cannot serialise the clone's domain XML");
      return NULL;
    }
  result = g_strndup ((const char *)out, out_len);
  xmlFree (out);
  return result;
}
