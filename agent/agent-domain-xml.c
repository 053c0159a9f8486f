/* Domain XML for Drover VMs, both ways, with libxml2's tree API: user
 * strings only ever become text nodes or attribute values, so libxml2
 * escapes them and they stay data. */
#include "agent-private.h"
#include "agent-disk-images.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathContext, xmlXPathFreeContext)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlXPathObject, xmlXPathFreeObject)

/* Longest string field the builder accepts (paths, cmdline). */
#define AGENT_XML_MAX_TEXT 4096

/* Namespace of the <metadata> element holding a Drover VM's spec. */
#define AGENT_XMLNS AGENT_DOMAIN_XMLNS
#define AGENT_XMLNS_PREFIX AGENT_DOMAIN_XMLNS_PREFIX

/* XML 1.0 cannot carry most control characters at all (not even as
 * character references), and libvirt would refuse them later anyway. */
static gboolean
check_text (const char *what, const char *text, GError **error)
{
  if (strlen (text) > AGENT_XML_MAX_TEXT)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "%s is longer than %d bytes", what, AGENT_XML_MAX_TEXT);
      return FALSE;
    }
  if (!g_utf8_validate (text, -1, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "%s is not valid UTF-8", what);
      return FALSE;
    }
  for (const char *p = text; *p; p++)
    {
      if ((guchar)*p < 0x20 || *p == 0x7f)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "%s contains a control character", what);
          return FALSE;
        }
    }
  return TRUE;
}

/* libvirt's <domain type>: its own vocabulary, not the wire's accel
 * names (TCG is "qemu"). */
static const char *
domain_type (AgentAccel accel)
{
  switch (accel)
    {
    case AGENT_ACCEL_KVM:
      return "kvm";
    case AGENT_ACCEL_TEST:
      return "test";
    case AGENT_ACCEL_TCG:
    case AGENT_ACCEL_AUTO:
      break;
    }
  return "qemu";
}

static void
add_number (xmlNodePtr parent, xmlNsPtr ns, const char *name, guint64 value)
{
  char buf[32];

  g_snprintf (buf, sizeof buf, "%" G_GUINT64_FORMAT, value);
  xmlNewTextChild (parent, ns, BAD_CAST name, BAD_CAST buf);
}

static void
add_char_device (xmlNodePtr devices, const char *kind, const char *path,
                 const char *target_type)
{
  xmlNodePtr dev = xmlNewChild (devices, NULL, BAD_CAST kind, NULL);
  xmlNodePtr node;

  xmlNewProp (dev, BAD_CAST "type", BAD_CAST "file");
  node = xmlNewChild (dev, NULL, BAD_CAST "source", NULL);
  xmlNewProp (node, BAD_CAST "path", BAD_CAST path);
  /* Keep the log across restarts: ReadConsole offsets stay valid. */
  xmlNewProp (node, BAD_CAST "append", BAD_CAST "on");
  node = xmlNewChild (dev, NULL, BAD_CAST "target", NULL);
  if (target_type)
    xmlNewProp (node, BAD_CAST "type", BAD_CAST target_type);
  xmlNewProp (node, BAD_CAST "port", BAD_CAST "0");
}

/* The QEMU guest agent's virtio-serial port. No source path: libvirt
 * picks one in its own channel directory (and leaves it out of the
 * migratable XML, so the destination picks its own). */
static void
add_guest_agent_channel (xmlNodePtr devices)
{
  xmlNodePtr chan = xmlNewChild (devices, NULL, BAD_CAST "channel", NULL);
  xmlNodePtr node;

  xmlNewProp (chan, BAD_CAST "type", BAD_CAST "unix");
  node = xmlNewChild (chan, NULL, BAD_CAST "source", NULL);
  xmlNewProp (node, BAD_CAST "mode", BAD_CAST "bind");
  node = xmlNewChild (chan, NULL, BAD_CAST "target", NULL);
  xmlNewProp (node, BAD_CAST "type", BAD_CAST "virtio");
  xmlNewProp (node, BAD_CAST "name", BAD_CAST AGENT_GUEST_AGENT_CHANNEL);
}

/* <interface type='bridge'> for NIC under PARENT: its MAC, bridge,
 * virtio model, and for an Open vSwitch bridge the virtualport and the
 * VLAN tag, and the MTU. */
static void
add_interface (xmlNodePtr parent, const Drover__V1__VmNic *nic)
{
  xmlNodePtr iface = xmlNewChild (parent, NULL, BAD_CAST "interface", NULL);
  xmlNodePtr node;
  char buf[32];

  xmlNewProp (iface, BAD_CAST "type", BAD_CAST "bridge");
  node = xmlNewChild (iface, NULL, BAD_CAST "mac", NULL);
  xmlNewProp (node, BAD_CAST "address", BAD_CAST nic->mac);
  node = xmlNewChild (iface, NULL, BAD_CAST "source", NULL);
  xmlNewProp (node, BAD_CAST "bridge", BAD_CAST nic->bridge);
  if (nic->ovs)
    {
      node = xmlNewChild (iface, NULL, BAD_CAST "virtualport", NULL);
      xmlNewProp (node, BAD_CAST "type", BAD_CAST "openvswitch");
    }
  if (nic->vlan > 0)
    {
      node = xmlNewChild (iface, NULL, BAD_CAST "vlan", NULL);
      node = xmlNewChild (node, NULL, BAD_CAST "tag", NULL);
      g_snprintf (buf, sizeof buf, "%u", nic->vlan);
      xmlNewProp (node, BAD_CAST "id", BAD_CAST buf);
    }
  node = xmlNewChild (iface, NULL, BAD_CAST "model", NULL);
  xmlNewProp (node, BAD_CAST "type", BAD_CAST "virtio");
  if (nic->mtu > 0)
    {
      node = xmlNewChild (iface, NULL, BAD_CAST "mtu", NULL);
      g_snprintf (buf, sizeof buf, "%u", nic->mtu);
      xmlNewProp (node, BAD_CAST "size", BAD_CAST buf);
    }
}

/* What the XML builder needs of a NIC: a MAC, a bridge, and a VLAN only
 * on an Open vSwitch bridge (libvirt refuses one on a Linux bridge). */
static gboolean
check_nic (const char *vm, const Drover__V1__VmNic *nic, GError **error)
{
  guint8 mac[6];
  g_autoptr (GError) local = NULL;

  if (!proto_mac_parse (nic->mac, mac, &local))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID, "VM %s: %s", vm,
                   local->message);
      return FALSE;
    }
  if (!agent_bridge_name_ok (nic->bridge))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s: NIC %s has no valid bridge name", vm, nic->mac);
      return FALSE;
    }
  if (nic->vlan > 0 && !nic->ovs)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s: NIC %s: VLAN %u needs an Open vSwitch bridge, "
                   "and %s is not one",
                   vm, nic->mac, nic->vlan, nic->bridge);
      return FALSE;
    }
  return TRUE;
}

/* The <drover:vm> element of SPEC under META. */
static xmlNodePtr
add_metadata (xmlNodePtr meta, const Drover__V1__VmSpec *spec, gboolean with_ns)
{
  xmlNodePtr vm = xmlNewChild (meta, NULL, BAD_CAST "vm", NULL);
  xmlNsPtr ns = NULL;

  /* virDomainSetMetadata puts the namespace on every element itself. */
  if (with_ns)
    {
      ns = xmlNewNs (vm, BAD_CAST AGENT_XMLNS, BAD_CAST AGENT_XMLNS_PREFIX);
      xmlSetNs (vm, ns);
    }
  xmlNewTextChild (vm, ns, BAD_CAST "name", BAD_CAST spec->name);
  add_number (vm, ns, "vcpus", spec->vcpus);
  add_number (vm, ns, "memory", spec->memory);
  add_number (vm, ns, "disk", spec->disk);
  xmlNewTextChild (vm, ns, BAD_CAST "kernel",
                   BAD_CAST (spec->kernel ? spec->kernel : ""));
  xmlNewTextChild (vm, ns, BAD_CAST "initrd",
                   BAD_CAST (spec->initrd ? spec->initrd : ""));
  xmlNewTextChild (vm, ns, BAD_CAST "cmdline",
                   BAD_CAST (spec->cmdline ? spec->cmdline : ""));
  xmlNewTextChild (vm, ns, BAD_CAST "accel",
                   BAD_CAST (spec->accel ? spec->accel : ""));
  for (gsize i = 0; i < spec->n_nics; i++)
    {
      const Drover__V1__VmNic *nic = spec->nics[i];
      xmlNodePtr m = xmlNewChild (vm, ns, BAD_CAST "nic", NULL);
      char buf[32];

      xmlNewProp (m, BAD_CAST "network", BAD_CAST nic->network);
      xmlNewProp (m, BAD_CAST "mac", BAD_CAST nic->mac);
      xmlNewProp (m, BAD_CAST "bridge", BAD_CAST nic->bridge);
      g_snprintf (buf, sizeof buf, "%u", nic->vlan);
      xmlNewProp (m, BAD_CAST "vlan", BAD_CAST buf);
      g_snprintf (buf, sizeof buf, "%u", nic->mtu);
      xmlNewProp (m, BAD_CAST "mtu", BAD_CAST buf);
    }
  /* Images (issue 13): the image under the disk, the cloud-init
   * user-data (base64: any bytes). */
  if (spec->image && *spec->image)
    xmlNewTextChild (vm, ns, BAD_CAST "image", BAD_CAST spec->image);
  if (spec->cloud_init_user_data.len > 0)
    {
      g_autofree char *b64 = g_base64_encode (spec->cloud_init_user_data.data,
                                              spec->cloud_init_user_data.len);

      xmlNewTextChild (vm, ns, BAD_CAST "cloud-init", BAD_CAST b64);
    }
  return vm;
}

char *
agent_domain_xml_metadata (const Drover__V1__VmSpec *spec, GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  xmlNodePtr root;
  xmlBufferPtr buf;
  char *result;

  for (gsize i = 0; i < spec->n_nics; i++)
    if (!check_nic (spec->name, spec->nics[i], error))
      return NULL;
  doc = xmlNewDoc (BAD_CAST "1.0");
  root = xmlNewNode (NULL, BAD_CAST "metadata");
  xmlDocSetRootElement (doc, root);
  add_metadata (root, spec, FALSE);
  buf = xmlBufferCreate ();
  xmlNodeDump (buf, doc, root->children, 0, 0);
  result = g_strdup ((const char *)xmlBufferContent (buf));
  xmlBufferFree (buf);
  return result;
}

char *
agent_domain_xml_nic (const char *vm, const Drover__V1__VmNic *nic,
                      GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  xmlNodePtr root;
  xmlBufferPtr buf;
  char *result;

  if (!check_nic (vm, nic, error))
    return NULL;
  doc = xmlNewDoc (BAD_CAST "1.0");
  root = xmlNewNode (NULL, BAD_CAST "nics");
  xmlDocSetRootElement (doc, root);
  add_interface (root, nic);
  /* Only the <interface> element, as AttachDevice wants it. */
  buf = xmlBufferCreate ();
  xmlNodeDump (buf, doc, root->children, 0, 1);
  result = g_strdup ((const char *)xmlBufferContent (buf));
  xmlBufferFree (buf);
  return result;
}

char *
agent_domain_xml_build (const Drover__V1__VmSpec *spec, AgentAccel accel,
                        const char *disk_path, const char *console_path,
                        GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (GError) local = NULL;
  xmlNodePtr root, os, node, devices, meta;
  xmlChar *out = NULL;
  int out_len = 0;
  char *result;
  const struct
  {
    const char *what, *text;
  } texts[] = {
    { "kernel", spec->kernel },
    { "initrd", spec->initrd },
    { "cmdline", spec->cmdline },
    { "accel", spec->accel },
    { "disk path", disk_path ? disk_path : "" },
    { "console path", console_path ? console_path : "" },
  };

  if (!proto_name_validate ("VM", spec->name, &local))
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           local->message);
      return NULL;
    }
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      if (!check_text (texts[i].what, texts[i].text ? texts[i].text : "",
                       error))
        return NULL;
    }
  if (spec->vcpus < 1 || spec->memory < 1024)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s needs at least one vCPU and some memory", spec->name);
      return NULL;
    }
  for (gsize i = 0; i < spec->n_nics; i++)
    if (!check_nic (spec->name, spec->nics[i], error))
      return NULL;
  if ((spec->disk > 0 || (spec->image && *spec->image))
      && (!disk_path || !*disk_path))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "VM %s has a disk but no disk path", spec->name);
      return NULL;
    }

  doc = xmlNewDoc (BAD_CAST "1.0");
  root = xmlNewNode (NULL, BAD_CAST "domain");
  xmlDocSetRootElement (doc, root);
  xmlNewProp (root, BAD_CAST "type", BAD_CAST domain_type (accel));
  xmlNewTextChild (root, NULL, BAD_CAST "name", BAD_CAST spec->name);

  /* Drover metadata: the spec as the operator asked for it. */
  meta = xmlNewChild (root, NULL, BAD_CAST "metadata", NULL);
  add_metadata (meta, spec, TRUE);

  node = xmlNewChild (root, NULL, BAD_CAST "memory", NULL);
  xmlNewProp (node, BAD_CAST "unit", BAD_CAST "KiB");
  {
    char buf[32];
    g_snprintf (buf, sizeof buf, "%" G_GUINT64_FORMAT,
                (spec->memory + 1023) / 1024);
    xmlNodeSetContent (node, BAD_CAST buf);
  }
  add_number (root, NULL, "vcpu", spec->vcpus);

  os = xmlNewChild (root, NULL, BAD_CAST "os", NULL);
  /* Drover hosts are x86_64; the test driver accepts it too. */
  node = xmlNewTextChild (os, NULL, BAD_CAST "type", BAD_CAST "hvm");
  xmlNewProp (node, BAD_CAST "arch", BAD_CAST "x86_64");
  if (spec->kernel && *spec->kernel)
    xmlNewTextChild (os, NULL, BAD_CAST "kernel", BAD_CAST spec->kernel);
  if (spec->initrd && *spec->initrd)
    xmlNewTextChild (os, NULL, BAD_CAST "initrd", BAD_CAST spec->initrd);
  if (spec->cmdline && *spec->cmdline)
    xmlNewTextChild (os, NULL, BAD_CAST "cmdline", BAD_CAST spec->cmdline);
  /* No kernel: SeaBIOS boots the disk (a VM made from an image). */
  if (!(spec->kernel && *spec->kernel))
    {
      node = xmlNewChild (os, NULL, BAD_CAST "boot", NULL);
      xmlNewProp (node, BAD_CAST "dev", BAD_CAST "hd");
    }

  /* PCI hot-plug on i440fx goes through ACPI: a VM with NICs gets it, so
   * that NICs can be added and removed while it runs. VMs without NICs
   * keep the machine they always had. */
  if (spec->n_nics > 0)
    {
      node = xmlNewChild (root, NULL, BAD_CAST "features", NULL);
      xmlNewChild (node, NULL, BAD_CAST "acpi", NULL);
    }
  xmlNewTextChild (root, NULL, BAD_CAST "on_poweroff", BAD_CAST "destroy");
  xmlNewTextChild (root, NULL, BAD_CAST "on_crash", BAD_CAST "destroy");

  devices = xmlNewChild (root, NULL, BAD_CAST "devices", NULL);
  if (spec->disk > 0 || (spec->image && *spec->image))
    {
      xmlNodePtr disk = xmlNewChild (devices, NULL, BAD_CAST "disk", NULL);

      xmlNewProp (disk, BAD_CAST "type", BAD_CAST "file");
      xmlNewProp (disk, BAD_CAST "device", BAD_CAST "disk");
      node = xmlNewChild (disk, NULL, BAD_CAST "driver", NULL);
      xmlNewProp (node, BAD_CAST "name", BAD_CAST "qemu");
      xmlNewProp (node, BAD_CAST "type", BAD_CAST "qcow2");
      node = xmlNewChild (disk, NULL, BAD_CAST "source", NULL);
      xmlNewProp (node, BAD_CAST "file", BAD_CAST disk_path);
      node = xmlNewChild (disk, NULL, BAD_CAST "target", NULL);
      xmlNewProp (node, BAD_CAST "dev", BAD_CAST "vda");
      xmlNewProp (node, BAD_CAST "bus", BAD_CAST "virtio");
    }
  /* The cloud-init NoCloud seed beside the disk (agent-cloud-init.c). */
  if (spec->cloud_init_user_data.len > 0 && disk_path && *disk_path)
    {
      g_autofree char *seed = agent_cloud_init_seed_path (disk_path);
      xmlNodePtr cd = xmlNewChild (devices, NULL, BAD_CAST "disk", NULL);

      xmlNewProp (cd, BAD_CAST "type", BAD_CAST "file");
      xmlNewProp (cd, BAD_CAST "device", BAD_CAST "cdrom");
      node = xmlNewChild (cd, NULL, BAD_CAST "driver", NULL);
      xmlNewProp (node, BAD_CAST "name", BAD_CAST "qemu");
      xmlNewProp (node, BAD_CAST "type", BAD_CAST "raw");
      node = xmlNewChild (cd, NULL, BAD_CAST "source", NULL);
      xmlNewProp (node, BAD_CAST "file", BAD_CAST seed);
      node = xmlNewChild (cd, NULL, BAD_CAST "target", NULL);
      xmlNewProp (node, BAD_CAST "dev", BAD_CAST AGENT_SEED_TARGET);
      xmlNewProp (node, BAD_CAST "bus", BAD_CAST "sata");
      xmlNewChild (cd, NULL, BAD_CAST "readonly", NULL);
    }
  for (gsize i = 0; i < spec->n_nics; i++)
    add_interface (devices, spec->nics[i]);
  /* No graphics: the serial console, written to a file, is the only
   * way in. */
  if (console_path && *console_path)
    {
      add_char_device (devices, "serial", console_path, NULL);
      add_char_device (devices, "console", console_path, "serial");
    }
  add_guest_agent_channel (devices);

  xmlDocDumpFormatMemoryEnc (doc, &out, &out_len, "UTF-8", 1);
  if (!out)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot serialise domain XML for %s", spec->name);
      return NULL;
    }
  result = g_strndup ((const char *)out, out_len);
  xmlFree (out);
  return result;
}

/* --- parser ------------------------------------------------------------ */

static xmlNodePtr
find_child (xmlNodePtr parent, const char *name, const char *ns_href)
{
  for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
    {
      if (n->type != XML_ELEMENT_NODE
          || strcmp ((const char *)n->name, name) != 0)
        continue;
      if (ns_href ? (n->ns && n->ns->href
                     && strcmp ((const char *)n->ns->href, ns_href) == 0)
                  : n->ns == NULL)
        return n;
    }
  return NULL;
}

static char *
child_text (xmlNodePtr parent, const char *name, const char *ns_href)
{
  xmlNodePtr n = find_child (parent, name, ns_href);
  xmlChar *content;
  char *text;

  if (!n)
    return NULL;
  content = xmlNodeGetContent (n);
  text = g_strdup (content ? (const char *)content : "");
  xmlFree (content);
  return text;
}

static gboolean
child_number (xmlNodePtr parent, const char *name, const char *ns_href,
              guint64 max, guint64 *value, GError **error)
{
  g_autofree char *text = child_text (parent, name, ns_href);

  if (!text)
    {
      *value = 0;
      return TRUE;
    }
  g_strstrip (text);
  if (!g_ascii_string_to_unsigned (text, 10, 0, max, value, NULL))
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                   "domain XML: <%s> is not a number", name);
      return FALSE;
    }
  return TRUE;
}

/* <memory unit='...'> in bytes; libvirt writes KiB, other units are
 * accepted for hand-written XML. */
static gboolean
domain_memory (xmlNodePtr root, guint64 *bytes, GError **error)
{
  static const struct
  {
    const char *unit;
    guint64 scale;
  } units[] = {
    { "b", 1 },
    { "bytes", 1 },
    { "k", 1024 },
    { "KiB", 1024 },
    { "M", 1024 * 1024 },
    { "MiB", 1024 * 1024 },
    { "G", 1024 * 1024 * 1024 },
    { "GiB", 1024 * 1024 * 1024 },
  };
  xmlNodePtr n = find_child (root, "memory", NULL);
  xmlChar *unit;
  guint64 scale = 0, value;

  if (!n)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "domain XML has no <memory>");
      return FALSE;
    }
  unit = xmlGetProp (n, BAD_CAST "unit");
  for (guint i = 0; i < G_N_ELEMENTS (units); i++)
    {
      if (!unit || strcmp ((const char *)unit, units[i].unit) == 0)
        {
          scale = unit ? units[i].scale : 1024;
          break;
        }
    }
  xmlFree (unit);
  if (scale == 0)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "domain XML: unknown memory unit");
      return FALSE;
    }
  if (!child_number (root, "memory", NULL, G_MAXUINT64 / scale, &value, error))
    return FALSE;
  *bytes = value * scale;
  return TRUE;
}

xmlDocPtr
agent_domain_xml_read (const char *xml, GError **error)
{
  size_t len = xml ? strlen (xml) : 0;
  xmlDocPtr doc;

  if (len == 0 || len > G_MAXINT)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "empty domain XML");
      return NULL;
    }
  /* No network, no entity expansion, no messages on stderr. */
  doc = xmlReadMemory (xml, (int)len, "domain.xml", NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR
                           | XML_PARSE_NOWARNING);
  if (!doc)
    g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                         "domain XML does not parse");
  return doc;
}

static char *
nic_prop (xmlNodePtr n, const char *name)
{
  xmlChar *v = xmlGetNoNsProp (n, BAD_CAST name);
  char *s = proto_msg_strdup (v ? (const char *)v : "");

  xmlFree (v);
  return s;
}

/* The NICs recorded in the Drover metadata VM, into SPEC. The metadata
 * is what the agent itself wrote; still capped and checked. */
static gboolean
parse_nics (xmlNodePtr vm, Drover__V1__VmSpec *spec, GError **error)
{
  for (xmlNodePtr n = vm->children; n; n = n->next)
    {
      Drover__V1__VmNic *nic;
      g_autofree char *vlan = NULL, *mtu = NULL;
      guint64 v = 0, m = 0;

      if (n->type != XML_ELEMENT_NODE || strcmp ((const char *)n->name, "nic")
          || !n->ns || strcmp ((const char *)n->ns->href, AGENT_XMLNS))
        continue;
      if (spec->n_nics >= PROTO_VM_MAX_NICS)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                       "domain XML: more than %d NICs", PROTO_VM_MAX_NICS);
          return FALSE;
        }
      nic = g_new0 (Drover__V1__VmNic, 1);
      drover__v1__vm_nic__init (nic);
      spec->nics = g_renew (Drover__V1__VmNic *, spec->nics, spec->n_nics + 1);
      spec->nics[spec->n_nics++] = nic;
      g_free (nic->network == protobuf_c_empty_string ? NULL : nic->network);
      nic->network = nic_prop (n, "network");
      nic->mac = nic_prop (n, "mac");
      nic->bridge = nic_prop (n, "bridge");
      vlan = nic_prop (n, "vlan");
      mtu = nic_prop (n, "mtu");
      if ((*vlan && !g_ascii_string_to_unsigned (vlan, 10, 0, 4094, &v, NULL))
          || (*mtu
              && !g_ascii_string_to_unsigned (mtu, 10, 0, 65535, &m, NULL)))
        {
          g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                               "domain XML: a NIC's VLAN or MTU is no number");
          return FALSE;
        }
      nic->vlan = (guint32)v;
      nic->mtu = (guint32)m;
    }
  return TRUE;
}

Drover__V1__VmSpec *
agent_domain_xml_parse (const char *xml, GError **error)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  xmlNodePtr root, vm;
  g_autofree char *name = NULL;
  guint64 vcpus = 0, memory = 0, disk = 0;

  doc = agent_domain_xml_read (xml, error);
  if (!doc)
    return NULL;
  root = xmlDocGetRootElement (doc);
  if (!root || root->ns || strcmp ((const char *)root->name, "domain") != 0)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "not domain XML: the root element is not <domain>");
      return NULL;
    }
  name = child_text (root, "name", NULL);
  if (!name || !*name)
    {
      g_set_error_literal (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                           "domain XML has no <name>");
      return NULL;
    }
  vm = find_child (find_child (root, "metadata", NULL), "vm", AGENT_XMLNS);
  if (!vm)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_DROVER,
                   "domain %s has no Drover metadata", name);
      return NULL;
    }

  spec = g_new0 (Drover__V1__VmSpec, 1);
  drover__v1__vm_spec__init (spec);
  spec->name = proto_msg_strdup (name);
  if (!child_number (root, "vcpu", NULL, G_MAXUINT32, &vcpus, error)
      || !domain_memory (root, &memory, error)
      || !child_number (vm, "disk", AGENT_XMLNS, G_MAXUINT64, &disk, error))
    return NULL;
  spec->vcpus = (guint32)vcpus;
  spec->memory = memory;
  spec->disk = disk;
  {
    g_autofree char *kernel = child_text (vm, "kernel", AGENT_XMLNS);
    g_autofree char *initrd = child_text (vm, "initrd", AGENT_XMLNS);
    g_autofree char *cmdline = child_text (vm, "cmdline", AGENT_XMLNS);
    g_autofree char *accel = child_text (vm, "accel", AGENT_XMLNS);
    g_autofree char *image = child_text (vm, "image", AGENT_XMLNS);
    g_autofree char *user_data = child_text (vm, "cloud-init", AGENT_XMLNS);

    spec->kernel = proto_msg_strdup (kernel);
    spec->initrd = proto_msg_strdup (initrd);
    spec->cmdline = proto_msg_strdup (cmdline);
    spec->accel = proto_msg_strdup (accel);
    spec->image = proto_msg_strdup (image);
    if (user_data && *user_data)
      {
        gsize len = 0;
        guint8 *data = g_base64_decode (user_data, &len);

        if (len > PROTO_CLOUD_INIT_MAX)
          {
            g_free (data);
            g_set_error (error, AGENT_ERROR, AGENT_ERROR_INVALID,
                         "domain %s: cloud-init user-data over %d bytes", name,
                         PROTO_CLOUD_INIT_MAX);
            return NULL;
          }
        spec->cloud_init_user_data.data = data;
        spec->cloud_init_user_data.len = len;
      }
  }
  if (!parse_nics (vm, spec, error))
    return NULL;
  return g_steal_pointer (&spec);
}

/* --- reading libvirt's other XML documents ------------------------------ */

char *
agent_xml_string (const char *xml, const char *expr)
{
  g_autoptr (xmlDoc) doc = NULL;
  g_autoptr (xmlXPathContext) xpath = NULL;
  g_autoptr (xmlXPathObject) obj = NULL;
  g_autofree char *string_expr = g_strdup_printf ("string(%s)", expr);

  if (!xml)
    return NULL;
  doc = xmlReadMemory (xml, strlen (xml), "libvirt.xml", NULL,
                       XML_PARSE_NONET | XML_PARSE_NOERROR
                           | XML_PARSE_NOWARNING);
  if (!doc)
    return NULL;
  xpath = xmlXPathNewContext (doc);
  obj = xmlXPathEvalExpression (BAD_CAST string_expr, xpath);
  if (!obj || obj->type != XPATH_STRING || !obj->stringval || !*obj->stringval)
    return NULL;
  return g_strdup ((const char *)obj->stringval);
}
