/* The destination's check of the domain an incoming migration brings.
 *
 * The source's libvirtd sends the domain definition in Prepare3 and
 * Finish3 (destination_xml, persistent_xml, and the persistent domain in
 * Finish3's cookie), and the destination's root libvirtd would make
 * whatever it says: a disk on any host file, a console log anywhere, a
 * device passed through, a script run for a network interface, a QEMU
 * command line. So the domain must look like one Drover made (a
 * whitelist, not a blacklist): only the elements agent-domain-xml.c
 * writes and libvirt adds to them, the disk and console paths the ones
 * PrepareIncoming chose here, kernel, initrd and firmware inside the
 * image directory, the emulator the one this host's libvirt uses, and no
 * other absolute path anywhere.
 */
#include "agent-private.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#include "mig-migrate.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)

/* Longer documents than this are not a Drover domain or cookie. */
#define MAX_XML (1024 * 1024)
#define MAX_DEPTH 32

/* Children each element of a Drover domain may have; "*": any (paths
 * still checked), NULL: none. Elements not listed have none. */
static const struct
{
  const char *element;
  const char *children;
} allowed[] = {
  { "domain", "name uuid title description metadata memory currentMemory "
              "vcpu vcpus resource os features cpu clock on_poweroff "
              "on_reboot on_crash pm devices seclabel" },
  { "metadata", "*" },
  { "vcpus", "*" },
  { "resource", "partition" },
  { "os", "type kernel initrd cmdline boot bootmenu bios smbios loader "
          "nvram" },
  { "features", "*" },
  { "cpu", "*" },
  { "clock", "*" },
  { "pm", "*" },
  { "seclabel", "label imagelabel" },
  { "devices", "emulator disk controller serial console input memballoon "
               "interface channel" },
  /* The guest agent's port; check_element checks its type and name, and
   * a source path is refused: libvirt picks one here. */
  { "channel", "source target alias address" },
  /* A NIC on a bridge (issue 13): check_element checks its type and
   * bridge; no script, no other backend. */
  { "interface", "mac source target model alias address virtualport vlan "
                 "mtu link" },
  { "virtualport", "parameters" },
  { "vlan", "tag" },
  { "disk", "driver source backingStore target address alias boot "
            "readonly" },
  { "controller", "*" },
  { "serial", "source target alias address" },
  { "console", "source target alias address" },
  { "target", "*" },
  { "input", "address alias" },
  { "memballoon", "address alias stats driver" },
};

typedef struct
{
  Agent *agent;
  const AgentMigXmlPaths *paths;
  GError **error;
} Check;

static gboolean G_GNUC_PRINTF (2, 3) refuse (Check *c, const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (c->error, AGENT_ERROR, AGENT_ERROR_INVALID,
               "incoming domain: %s", msg);
  return FALSE;
}

static gboolean
is (xmlNodePtr n, const char *name)
{
  return n && n->type == XML_ELEMENT_NODE && n->ns == NULL
         && strcmp ((const char *)n->name, name) == 0;
}

static char *
prop (xmlNodePtr n, const char *name)
{
  xmlChar *v = xmlGetNoNsProp (n, BAD_CAST name);
  char *s = v ? g_strdup ((const char *)v) : NULL;

  xmlFree (v);
  return s;
}

static char *
text (xmlNodePtr n)
{
  xmlChar *v = xmlNodeGetContent (n);
  char *s = g_strdup (v ? (const char *)v : "");

  xmlFree (v);
  return g_strstrip (s);
}

/* Is CHILD one of PARENT's allowed children? FALSE for "*" (no list). */
static const char *
children_of (xmlNodePtr parent)
{
  for (guint i = 0; i < G_N_ELEMENTS (allowed); i++)
    if (is (parent, allowed[i].element))
      return allowed[i].children;
  return NULL;
}

static gboolean
word_in (const char *list, const char *word)
{
  g_auto (GStrv) words = g_strsplit (list, " ", -1);

  return g_strv_contains ((const char *const *)words, word);
}

/* The rule for an absolute path VALUE found at element N (attribute ATTR,
 * or its text when NULL); IN_META: inside <metadata>. */
static gboolean
check_path (Check *c, xmlNodePtr n, const char *attr, const char *value,
            gboolean in_meta)
{
  const AgentMigXmlPaths *p = c->paths;
  xmlNodePtr parent = n->parent;
  const char *where = (const char *)n->name;

  if (is (n, "source") && (is (parent, "serial") || is (parent, "console"))
      && g_strcmp0 (attr, "path") == 0)
    {
      if (g_strcmp0 (value, p->console_path) == 0)
        return TRUE;
      return refuse (c, "console path %s is not %s", value, p->console_path);
    }
  if (is (n, "source") && is (parent, "disk") && g_strcmp0 (attr, "file") == 0)
    {
      g_autofree char *device = prop (parent, "device");

      /* The cloud-init seed (issue 13): the one this host made. */
      if (g_strcmp0 (device, "cdrom") == 0)
        {
          if (p->seed_path && strcmp (value, p->seed_path) == 0)
            return TRUE;
          return refuse (c, "cdrom path %s is not %s", value,
                         p->seed_path ? p->seed_path : "(none: no seed)");
        }
      if (p->disk_path && strcmp (value, p->disk_path) == 0)
        return TRUE;
      return refuse (c, "disk path %s is not %s", value,
                     p->disk_path ? p->disk_path : "(none: no disk)");
    }
  if (is (n, "emulator") && !attr)
    {
      if (p->emulator && strcmp (value, p->emulator) == 0)
        return TRUE;
      return refuse (c, "emulator %s is not %s", value,
                     p->emulator ? p->emulator : "(none known)");
    }
  if (is (n, "partition") && !attr
      && (strcmp (value, "/machine") == 0
          || g_str_has_prefix (value, "/machine/")))
    return TRUE;
  /* Drover's cloud-init user-data is base64, which may begin with '/':
   * data, not a path (the seed here is made from the scheduler's spec). */
  if (in_meta && !attr && n->ns && n->ns->href
      && strcmp ((const char *)n->ns->href, AGENT_DOMAIN_XMLNS) == 0
      && strcmp ((const char *)n->name, "cloud-init") == 0)
    return TRUE;
  if (in_meta
      || (is (parent, "os")
          && ((!attr
               && (is (n, "kernel") || is (n, "initrd") || is (n, "loader")
                   || is (n, "nvram")))
              || (is (n, "nvram") && g_strcmp0 (attr, "template") == 0))))
    {
      if (agent_image_contains (c->agent, value))
        return TRUE;
      return refuse (c, "%s %s is not in the image directory %s", where, value,
                     c->agent->image_dir);
    }
  return refuse (c, "<%s%s%s> names the host path %s", where, attr ? " " : "",
                 attr ? attr : "", value);
}

/* Attributes and element texts that name files, sockets or devices:
 * checked whatever their value looks like (libvirt resolves a relative
 * path against its own directory). Elsewhere only an absolute path
 * is. */
static gboolean
attr_names_a_path (xmlNodePtr n, const char *attr)
{
  static const char *const names[]
      = { "file", "path", "dev", "dir", "socket", NULL };

  return (is (n, "source") && g_strv_contains (names, attr))
         || (is (n, "nvram") && strcmp (attr, "template") == 0);
}

static gboolean
text_names_a_path (xmlNodePtr n)
{
  return (is (n->parent, "os")
          && (is (n, "kernel") || is (n, "initrd") || is (n, "loader")
              || is (n, "nvram")))
         || (is (n->parent, "devices") && is (n, "emulator"))
         || (is (n->parent, "resource") && is (n, "partition"));
}

/* Checks the attributes and text of N. */
static gboolean
check_values (Check *c, xmlNodePtr n, gboolean in_meta)
{
  for (xmlAttrPtr a = n->properties; a; a = a->next)
    {
      g_autofree char *v = prop (n, (const char *)a->name);

      if (a->ns && !in_meta)
        return refuse (c, "<%s> has a namespaced attribute", n->name);
      if (v
          && (*v == '/'
              || (!in_meta && attr_names_a_path (n, (const char *)a->name)))
          && !check_path (c, n, (const char *)a->name, v, in_meta))
        return FALSE;
    }
  for (xmlNodePtr t = n->children; t; t = t->next)
    {
      if (t->type == XML_TEXT_NODE || t->type == XML_CDATA_SECTION_NODE)
        {
          /* What libvirt reads of a leaf: the string value of the whole
           * element, however its text is cut (comments, CDATA). */
          gboolean leaf = xmlFirstElementChild (n) == NULL;
          g_autofree char *v = leaf ? text (n) : text (t);

          if ((*v == '/' || (!in_meta && text_names_a_path (n)))
              && !check_path (c, n, NULL, v, in_meta))
            return FALSE;
          if (leaf)
            break;
        }
      if (t->type == XML_ENTITY_REF_NODE)
        return refuse (c, "<%s> holds an entity reference", n->name);
    }
  return TRUE;
}

/* TRUE if this host has a bridge (Linux or Open vSwitch) named NAME. */
static gboolean
host_has_bridge (const char *name)
{
  gsize n = 0;
  Drover__V1__HostBridge **bridges = agent_bridges_collect (NULL, NULL, &n);
  gboolean found = FALSE;

  for (gsize i = 0; i < n; i++)
    {
      found = found || strcmp (bridges[i]->name, name) == 0;
      proto_msg_free (bridges[i]);
    }
  g_free (bridges);
  return found;
}

/* What N itself must be, beyond its place and its paths. */
static gboolean
check_element (Check *c, xmlNodePtr n)
{
  g_autofree char *type = prop (n, "type");

  if (is (n, "name") && is (n->parent, "domain"))
    {
      g_autofree char *name = text (n);

      if (g_strcmp0 (name, c->paths->name) != 0)
        return refuse (c, "it is named '%s', not '%s'", name, c->paths->name);
    }
  else if (is (n, "disk"))
    {
      g_autofree char *device = prop (n, "device");

      if (!c->paths->disk_path)
        return refuse (c, "a disk, but the VM has none");
      /* A cdrom only for the seed, read-only (its path: check_path). */
      if (g_strcmp0 (type, "file") == 0 && g_strcmp0 (device, "cdrom") == 0)
        {
          xmlNodePtr k = xmlFirstElementChild (n);

          while (k && !is (k, "readonly"))
            k = xmlNextElementSibling (k);
          if (!c->paths->seed_path)
            return refuse (c, "a cdrom, but the VM has no cloud-init seed");
          if (!k)
            return refuse (c, "a cdrom that is not read-only");
        }
      else if (g_strcmp0 (type, "file") != 0 || g_strcmp0 (device, "disk") != 0)
        return refuse (c, "a disk of type %s, device %s", type, device);
    }
  else if ((is (n, "serial") || is (n, "console")) && is (n->parent, "devices")
           && g_strcmp0 (type, "file") != 0)
    return refuse (c, "a %s of type %s, not a file", n->name, type);
  else if (is (n, "channel") && is (n->parent, "devices"))
    {
      xmlNodePtr t = xmlFirstElementChild (n);
      g_autofree char *ttype = NULL, *tname = NULL;

      while (t && !is (t, "target"))
        t = xmlNextElementSibling (t);
      ttype = t ? prop (t, "type") : NULL;
      tname = t ? prop (t, "name") : NULL;
      if (g_strcmp0 (type, "unix") != 0 || g_strcmp0 (ttype, "virtio") != 0
          || g_strcmp0 (tname, AGENT_GUEST_AGENT_CHANNEL) != 0)
        return refuse (c, "a channel other than the guest agent's");
    }
  else if (is (n, "source") && is (n->parent, "channel"))
    {
      for (xmlAttrPtr a = n->properties; a; a = a->next)
        if (strcmp ((const char *)a->name, "mode") != 0)
          return refuse (c, "a channel source with a %s", a->name);
    }
  else if (is (n, "interface") && is (n->parent, "devices"))
    {
      if (g_strcmp0 (type, "bridge") != 0)
        return refuse (c, "an interface of type %s, not a bridge", type);
    }
  else if (is (n, "source") && is (n->parent, "interface"))
    {
      g_autofree char *bridge = prop (n, "bridge");

      for (xmlAttrPtr a = n->properties; a; a = a->next)
        if (strcmp ((const char *)a->name, "bridge") != 0)
          return refuse (c, "an interface source with a %s", a->name);
      if (!bridge || !host_has_bridge (bridge))
        return refuse (c, "an interface on bridge %s, which this host lacks",
                       bridge ? bridge : "(none)");
    }
  else if (is (n, "virtualport") && is (n->parent, "interface")
           && g_strcmp0 (type, "openvswitch") != 0)
    return refuse (c, "a virtualport of type %s", type);
  else if (is (n, "backingStore") && (n->children || n->properties))
    return refuse (c, "a disk with a backing store");
  else if (is (n, "seclabel") && is (n->parent, "domain"))
    {
      /* libvirt reads a dynamic label's base label as the user QEMU runs
       * as, and a static label is one the source chose. */
      if (g_strcmp0 (type, "none") != 0 && g_strcmp0 (type, "dynamic") != 0)
        return refuse (c, "a security label of type %s", type);
      if (g_strcmp0 (type, "none") == 0 && n->children
          && xmlFirstElementChild (n))
        return refuse (c, "a security label of type none with a label");
    }
  return TRUE;
}

/* How much of a subtree the whitelist governs. */
typedef enum
{
  TREE_LISTED, /* only the children the table lists */
  TREE_ANY,    /* any element (paths and elements still checked) */
  TREE_META,   /* <metadata>: anything; paths inside the image directory */
} TreeMode;

static gboolean
check_tree (Check *c, xmlNodePtr n, TreeMode mode, guint depth)
{
  const char *children = mode == TREE_LISTED ? children_of (n) : "*";
  gboolean in_meta = mode == TREE_META;
  /* <metadata> holds other programs' elements, in their namespaces. */
  gboolean meta_below = in_meta || is (n, "metadata");

  if (depth > MAX_DEPTH)
    return refuse (c, "nested too deep");
  if (!in_meta && !check_element (c, n))
    return FALSE;
  if (!check_values (c, n, in_meta))
    return FALSE;
  for (xmlNodePtr k = n->children; k; k = k->next)
    {
      gboolean star = children && strcmp (children, "*") == 0;
      TreeMode next = mode;

      if (k->type != XML_ELEMENT_NODE)
        continue;
      if (!meta_below
          && (k->ns || !children
              || (!star && !word_in (children, (const char *)k->name))))
        return refuse (c, "<%s> inside <%s> is not part of a Drover VM",
                       k->name, n->name);
      if (meta_below)
        next = TREE_META;
      else if (star && mode == TREE_LISTED)
        next = TREE_ANY;
      if (!check_tree (c, k, next, depth + 1))
        return FALSE;
    }
  return TRUE;
}

static gboolean
check_domain (Check *c, xmlNodePtr root)
{
  if (!is (root, "domain"))
    return refuse (c, "the root element is not <domain>");
  return check_tree (c, root, TREE_LISTED, 0);
}

/* A migration cookie: every <domain> in it is checked, and the disks it
 * asks the NBD server to export are the VM's one disk. */
static gboolean
check_cookie (Check *c, xmlNodePtr n, guint depth)
{
  if (depth > MAX_DEPTH)
    return refuse (c, "cookie nested too deep");
  for (xmlNodePtr k = n->children; k; k = k->next)
    {
      if (k->type != XML_ELEMENT_NODE)
        continue;
      if (is (k, "domain"))
        {
          if (!check_domain (c, k))
            return FALSE;
          continue;
        }
      if (is (k, "disk") && is (n, "nbd"))
        {
          g_autofree char *target = prop (k, "target");

          /* libvirt lists the cloud-init seed's cdrom too; only
           * MIG_DISK_TARGET is copied. */
          if (!c->paths->disk_path
              || (g_strcmp0 (target, MIG_DISK_TARGET) != 0
                  && !(c->paths->seed_path
                       && g_strcmp0 (target, AGENT_SEED_TARGET) == 0)))
            return refuse (c, "the cookie exports disk %s", target);
        }
      if (!check_cookie (c, k, depth + 1))
        return FALSE;
    }
  return TRUE;
}

gboolean
agent_mig_xml_check (Agent *agent, const AgentMigXmlPaths *paths,
                     const char *what, const char *value, GError **error)
{
  Check c = { agent, paths, error };
  g_autoptr (xmlDoc) doc = NULL;
  xmlNodePtr root;
  gsize len = strlen (value);

  if (strcmp (what, "destination_name") == 0)
    {
      if (strcmp (value, paths->name) == 0)
        return TRUE;
      return refuse (&c, "it would be named '%s', not '%s'", value,
                     paths->name);
    }
  if (len == 0 || len > MAX_XML)
    return refuse (&c, "%s of %" G_GSIZE_FORMAT " bytes", what, len);
  /* No network, no entity expansion, no messages on stderr. */
  doc = xmlReadMemory (value, (int)len, what, NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR
                           | XML_PARSE_NOWARNING);
  root = doc ? xmlDocGetRootElement (doc) : NULL;
  if (!root)
    return refuse (&c, "%s does not parse", what);
  /* libvirt might expand what we would not see. */
  if (doc->intSubset || doc->extSubset)
    return refuse (&c, "%s has a document type declaration", what);
  if (strcmp (what, "cookie") == 0)
    {
      if (!is (root, "qemu-migration"))
        return refuse (&c, "the cookie is not <qemu-migration>");
      return check_cookie (&c, root, 0);
    }
  return check_domain (&c, root);
}
