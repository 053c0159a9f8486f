/* Clones and templates on this host (issue 12).
 *
 * A template is a stopped VM made into a protected base: its image is
 * read-only (0444) and a <clone template="yes"/> record in the domain's
 * metadata (namespace CLONE_XMLNS, next to the Drover spec) says so; it
 * is never started. A linked clone's disk is a qcow2 overlay on its
 * template's image, and its own record names that base (base-vm,
 * base-image), so the agent can tell which VMs a base still serves and
 * refuse to delete it. A full clone's disk is an independent copy of the
 * source's whole chain (stor_copy_full), streamed with progress.
 *
 * Crash safety: before anything is made, CloneVm writes the mark
 * DATA/disks/NEW.qcow2.clone (holding the source's name); the clone's
 * disk is made under a temporary name, then its domain is defined (and
 * started); removing the mark is the commit. An agent killed anywhere
 * before that leaves the mark, and agent_clone_reclaim at the next start
 * takes everything of NEW away again: domain, disk, temporary copy,
 * console log. While the mark exists it also counts as a user of the
 * source's image (a DeleteVm of the base waits for the clone to end). */
#include "agent-clone-private.h"
#include "agent-image-xfer.h"
#include "agent-snaptree.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>
#include <sys/stat.h>

#include "stor.h"

#define CLONE_XMLNS "https://drover.dev/xmlns/clone/1"
#define CLONE_XMLNS_PREFIX "drover-clone"
/* How long a clone waits for its source to be free. */
#define CLAIM_WAIT_S 10
/* Clones listed by name in a refusal; the rest are counted. */
#define MAX_NAMED_USERS 10

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)

/* --- the clone record in a domain's metadata ---------------------------- */

/* The value of attribute ATTR of DOMXML's clone record, or NULL. */
static char *
record_attr (const char *domxml, const char *attr)
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
  g_autofree char *t = record_attr (domxml, "template");

  return g_strcmp0 (t, "yes") == 0;
}

/* The file of DOMXML's disk vda, or NULL. */
static char *
disk_source (const char *domxml)
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

/* --- marks and users of a base ------------------------------------------ */

char *
agent_clone_mark_path (Agent *agent, const char *name)
{
  g_autofree char *file = g_strconcat (name, AGENT_CLONE_MARK_SUFFIX, NULL);

  return g_build_filename (agent->disk_dir, file, NULL);
}

/* The VM names of the clone marks in the disk directory. */
static GPtrArray *
list_marks (Agent *agent)
{
  GPtrArray *names = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GDir) dir = g_dir_open (agent->disk_dir, 0, NULL);
  const char *file;

  while (dir && (file = g_dir_read_name (dir)))
    {
      g_autofree char *name = NULL;

      if (!g_str_has_suffix (file, AGENT_CLONE_MARK_SUFFIX))
        continue;
      name = g_strndup (file, strlen (file) - strlen (AGENT_CLONE_MARK_SUFFIX));
      if (proto_name_validate ("VM", name, NULL))
        g_ptr_array_add (names, g_steal_pointer (&name));
    }
  return names;
}

/* lc2 before lc10: names as an operator sorts them. */
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
  g_autoptr (GPtrArray) marks = list_marks (agent);
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
      g_autofree char *of = xml ? record_attr (xml, "base-vm") : NULL;

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
      g_autofree char *image = xml ? record_attr (xml, "base-image") : NULL;

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

/* Makes PATH read-only for everyone: nothing may write a base. */
static gboolean
protect_base (const char *path, GError **error)
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
  disk = disk_source (xml);
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
  if (disk && !protect_base (disk, error))
    {
      g_prefix_error (error, "VM %s is recorded as a template but ", name);
      return NULL;
    }
  drover_message (name, NULL, NULL, "VM is a template now%s%s",
                  disk ? "; its image is read-only: " : "", disk ? disk : "");
  agent_reporter_kick_from_thread (agent);
  return agent_vm_reply (dom, error);
}

/* --- CloneVm ------------------------------------------------------------- */

static void
clone_op_free (gpointer data)
{
  AgentCloneOp *op = data;

  agent_unref (op->agent);
  g_free (op);
}

void
agent_clone_op_start (ProtoServerCall *call, Agent *agent,
                      const ProtobufCMessage *req, const char *thread_name,
                      AgentStreamFunc func)
{
  AgentCloneOp *op = g_new0 (AgentCloneOp, 1);

  op->agent = agent_ref (agent);
  op->req = (const void *)req;
  op->phase = PROTO_STOR_PHASE_COPYING;
  agent_stream_start (call, agent->ctx, thread_name, func, op, clone_op_free);
}

Drover__V1__StorageProgress *
agent_clone_progress_new (const char *phase)
{
  Drover__V1__StorageProgress *p = g_new0 (Drover__V1__StorageProgress, 1);

  drover__v1__storage_progress__init (p);
  p->phase = proto_msg_strdup (phase);
  return p;
}

void
agent_clone_on_progress (guint64 processed, guint64 total, gpointer user_data)
{
  AgentCloneOp *op = user_data;
  Drover__V1__StorageProgress *p = agent_clone_progress_new (op->phase);
  double secs = (g_get_monotonic_time () - op->started_us) / 1e6;

  p->processed = processed;
  p->total = total;
  p->throughput = secs > 0 ? processed / secs : 0;
  agent_stream_push (op->stream, &p->base);
  /* A test kills the agent here: the copy is under way. */
  if (strcmp (op->phase, PROTO_STOR_PHASE_COPYING) == 0
      && agent_fault ("clone-hold-copying"))
    for (int i = 0; i < HOLD_MAX_S * 10; i++)
      g_usleep (100000);
  /* A test kills the destination's agent while the sender stands still
   * here, once, the transfer under way. */
  if (!op->held && processed > 0
      && strcmp (op->phase, PROTO_STOR_PHASE_SENDING) == 0
      && agent_fault ("clone-hold-sending"))
    {
      op->held = TRUE;
      g_usleep (HOLD_SENDING_S * G_USEC_PER_SEC);
    }
}

/* See agent-clone-private.h: each step regardless of the others, errors
 * ignored (the caller's error is the one that matters); the mark goes
 * last, once the rest is gone. */
void
agent_clone_rollback (Agent *agent, virConnectPtr conn, const char *name)
{
  g_autofree char *disk = stor_disk_path (agent->config.data_dir, name, NULL);
  g_autofree char *part = disk ? stor_copy_temp_path (disk) : NULL;
  g_autofree char *mark = agent_clone_mark_path (agent, name);
  g_autoptr (virDomain) dom = virDomainLookupByName (conn, name);

  if (dom)
    {
      if (virDomainIsActive (dom) == 1)
        (void)virDomainDestroy (dom);
      if (virDomainUndefineFlags (dom,
                                  VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                      | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                                      | VIR_DOMAIN_UNDEFINE_NVRAM)
          < 0)
        (void)virDomainUndefine (dom);
    }
  if (disk)
    {
      /* A received image still marked .incoming goes with its mark. */
      (void)agent_image_xfer_reclaim (disk);
      (void)stor_disk_remove (disk, NULL);
      (void)g_unlink (part);
    }
  (void)agent_console_remove (agent, name, NULL);
  (void)g_unlink (mark);
}

gboolean
agent_clone_fault_point (const char *name, GError **error)
{
  if (!agent_fault (name))
    return FALSE;
  g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED, "fault: %s", name);
  return TRUE;
}

gboolean
agent_clone_check_request (const Drover__V1__AgentCloneRequest *req,
                           GError **error)
{
  if (!proto_name_validate ("VM", req->source, error))
    return FALSE;
  if (!req->spec)
    {
      g_set_error_literal (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                           "a clone needs the new VM's spec");
      return FALSE;
    }
  if (!proto_vm_spec_check (req->spec, error))
    return FALSE;
  if (strcmp (req->spec->name, req->source) == 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "a clone of VM %s needs a name of its own", req->source);
      return FALSE;
    }
  if (*req->uuid && !g_uuid_string_is_valid (req->uuid))
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "the UUID for clone %s is not a UUID", req->spec->name);
      return FALSE;
    }
  if (*req->mode && strcmp (req->mode, PROTO_CLONE_LINKED) != 0
      && strcmp (req->mode, PROTO_CLONE_FULL) != 0)
    {
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
                   "clone mode must be \"%s\" or \"%s\"", PROTO_CLONE_LINKED,
                   PROTO_CLONE_FULL);
      return FALSE;
    }
  if (*req->from_snapshot
      && !proto_name_validate ("snapshot", req->from_snapshot, error))
    return FALSE;
  return TRUE;
}

/* The image snapshot SNAP of VM NAME (domain XML XML) froze: the disk as
 * it was when SNAP was taken. */
static char *
snapshot_image (Agent *agent, const char *name, const char *xml,
                const char *snap, GError **error)
{
  g_autoptr (AgentSnapTree) tree = agent_snaptree_from_domain_xml (xml, error);
  AgentSnap *s = tree ? agent_snaptree_find (tree, snap) : NULL;

  if (!tree)
    return NULL;
  if (!s)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_NOT_FOUND,
                   "VM %s has no snapshot named '%s'", name, snap);
      return NULL;
    }
  if (s->image == 0)
    return stor_disk_path (agent->config.data_dir, name, error);
  return stor_snapshot_image_path (agent->config.data_dir, name, s->image,
                                   error);
}

gboolean
agent_clone_read_source (Agent *agent, virConnectPtr conn, const char *name,
                         const char *from_snapshot, AgentCloneSource *src,
                         GError **error)
{
  g_autoptr (virDomain) dom = agent_vm_lookup (agent, conn, name, error);
  g_autofree char *xml = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;

  if (!dom)
    return FALSE;
  xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
  spec = xml ? agent_domain_xml_parse (xml, error) : NULL;
  if (!spec)
    {
      if (!xml)
        agent_libvirt_error (error, "cannot read the XML of VM %s", name);
      return FALSE;
    }
  src->is_template = agent_clone_xml_is_template (xml);
  src->disk_size = spec->disk;
  if (*from_snapshot)
    {
      if (spec->disk == 0)
        {
          g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                       "VM %s has no disk to clone from snapshot %s", name,
                       from_snapshot);
          return FALSE;
        }
      /* The snapshot's image is frozen: it may be read, and linked to,
       * while the VM runs on the overlays above it. */
      src->disk = snapshot_image (agent, name, xml, from_snapshot, error);
      src->frozen = TRUE;
      return src->disk != NULL;
    }
  src->disk = spec->disk > 0 ? disk_source (xml) : NULL;
  if (spec->disk > 0 && !src->disk)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "VM %s has a disk but its domain names no image", name);
      return FALSE;
    }
  if (virDomainIsActive (dom) != 0 && !src->is_template)
    {
      /* Its image changes under a copy; a snapshot's would not. */
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "VM %s is running: stop it before cloning it, or "
                   "clone it from a snapshot (--from-snapshot)",
                   name);
      return FALSE;
    }
  return TRUE;
}

/* See agent-clone-private.h: clones of one template hold it only while
 * they read it and write their mark, so a batch of them asked at once
 * all go through. */
gboolean
agent_clone_claim_source (Agent *agent, const char *name, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + CLAIM_WAIT_S * G_USEC_PER_SEC;

  while (!agent_vm_claim (agent, name, NULL))
    {
      if (g_get_monotonic_time () > deadline)
        return agent_vm_claim (agent, name, error);
      g_usleep (20000);
    }
  return TRUE;
}

virDomainPtr
agent_clone_define (Agent *agent, virConnectPtr conn,
                    const Drover__V1__VmSpec *spec, const char *disk,
                    const Drover__V1__AgentCloneRequest *req,
                    const char *base_image, GError **error)
{
  g_autofree char *console = agent_console_path (agent, spec->name);
  g_autofree char *xml = NULL, *clone_xml = NULL;
  g_autoptr (virDomain) dom = NULL;

  if (!agent_console_prepare (agent, spec->name, error))
    return NULL;
  xml = agent_domain_xml_build (spec, agent->accel, disk, console, error);
  clone_xml = xml ? agent_clone_xml_identity (
                  xml, req->uuid, req->source, req->from_snapshot,
                  base_image ? req->source : NULL, base_image, error)
                  : NULL;
  if (!clone_xml)
    return NULL;
  dom = virDomainDefineXMLFlags (conn, clone_xml, VIR_DOMAIN_DEFINE_VALIDATE);
  if (!dom)
    {
      agent_libvirt_error (error, "cannot define clone %s", spec->name);
      return NULL;
    }
  if (agent_clone_fault_point ("clone-fail-after-define", error))
    return NULL;
  /* A test kills the agent here: defined, not committed. */
  if (agent_fault ("clone-hold-after-define"))
    for (int i = 0; i < HOLD_MAX_S * 10; i++)
      g_usleep (100000);
  if (req->start && virDomainCreate (dom) < 0)
    {
      agent_libvirt_error (error, "cannot start clone %s", spec->name);
      return NULL;
    }
  return g_steal_pointer (&dom);
}

Drover__V1__VmSpec *
agent_clone_spec (Agent *agent, const Drover__V1__AgentCloneRequest *req,
                  GError **error)
{
  g_autoptr (Drover__V1__VmSpec) spec = NULL;

  if (!agent_clone_check_request (req, error))
    return NULL;
  spec = proto_msg_copy (&req->spec->base);
  if (!agent_vm_check_spec (agent, spec, error))
    return NULL;
  g_free (spec->accel == protobuf_c_empty_string ? NULL : spec->accel);
  spec->accel = proto_msg_strdup (agent_accel_to_string (agent->accel));
  return g_steal_pointer (&spec);
}

gboolean
agent_clone_check_size (const Drover__V1__AgentCloneRequest *req,
                        const AgentCloneSource *src, GError **error)
{
  if (req->spec->disk == src->disk_size)
    return TRUE;
  g_set_error (error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
               "clone %s must have the disk size of VM %s (%" G_GUINT64_FORMAT
               " bytes)",
               req->spec->name, req->source, src->disk_size);
  return FALSE;
}

gboolean
agent_clone_mark_write (Agent *agent, const char *name, const char *source,
                        char **mark_out, GError **error)
{
  g_autofree char *mark = agent_clone_mark_path (agent, name);

  if (!g_file_set_contents_full (mark, source, -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return FALSE;
  if (mark_out)
    *mark_out = g_steal_pointer (&mark);
  return TRUE;
}

gboolean
agent_clone_commit_mark (const char *mark, GError **error)
{
  if (g_unlink (mark) < 0)
    {
      int saved = errno;

      g_set_error (error, AGENT_ERROR, AGENT_ERROR_FAILED,
                   "cannot remove clone mark %s: %s", mark, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static gboolean
clone_run (AgentStream *stream, gpointer data, GError **error)
{
  AgentCloneOp *op = data;
  Agent *agent = op->agent;
  const Drover__V1__AgentCloneRequest *req = op->req;
  const char *job = *req->job_id ? req->job_id : NULL;
  g_autoptr (virConnect) conn = NULL;
  g_autoptr (virDomain) dom = NULL;
  g_autoptr (Drover__V1__VmSpec) spec = NULL;
  g_autofree char *disk = NULL, *mark = NULL;
  AgentCloneSource src = { 0 };
  gboolean linked, source_held = FALSE, admitted = FALSE, marked = FALSE;
  Drover__V1__StorageProgress *final;
  const char *name;

  op->stream = stream;
  op->started_us = g_get_monotonic_time ();
  spec = agent_clone_spec (agent, req, error);
  if (!spec)
    goto fail;
  name = spec->name;
  conn = agent_libvirt_get (agent->lv, error);
  if (!conn)
    goto fail;
  agent_stream_push (
      stream, &agent_clone_progress_new (PROTO_STOR_PHASE_PREPARING)->base);

  /* The source stays as it is while it is read (and, unless it is a
   * template, which nothing changes, while it is copied). */
  if (!agent_clone_claim_source (agent, req->source, error))
    goto fail;
  source_held = TRUE;
  if (!agent_clone_read_source (agent, conn, req->source, req->from_snapshot,
                                &src, error))
    goto fail;
  linked = *req->mode ? strcmp (req->mode, PROTO_CLONE_LINKED) == 0
                      : src.is_template;
  if (linked && !src.is_template && !src.frozen)
    {
      g_set_error (error, AGENT_ERROR, AGENT_ERROR_PRECONDITION,
                   "a linked clone needs a template or a snapshot as its "
                   "base: make VM %s a template first, clone from one of "
                   "its snapshots, or make a full clone",
                   req->source);
      goto fail;
    }
  if (!agent_clone_check_size (req, &src, error)
      || !agent_vm_admit (agent, conn, spec, error))
    goto fail;
  admitted = TRUE;
  if (!agent_clone_mark_write (agent, name, req->source, &mark, error))
    goto fail;
  marked = TRUE;
  if (src.is_template)
    {
      /* The mark keeps the template from being deleted meanwhile. */
      agent_vm_release (agent, req->source);
      source_held = FALSE;
    }

  (void)agent_console_remove (agent, name, NULL);
  if (src.disk)
    {
      disk = stor_disk_path (agent->config.data_dir, name, error);
      if (!disk)
        goto rollback;
      if (linked)
        {
          if (!protect_base (src.disk, error)
              || !stor_copy_linked (src.disk, disk, src.disk_size, error))
            goto rollback;
        }
      else if (!stor_copy_full (src.disk, disk,
                                agent_stream_get_cancellable (stream),
                                agent_clone_on_progress, op, error))
        goto rollback;
      /* QEMU writes it, nobody else reads it. */
      if (!agent_protect (agent, disk, 0660, error))
        goto rollback;
    }
  dom = agent_clone_define (agent, conn, spec, disk, req,
                            linked ? src.disk : NULL, error);
  if (!dom)
    goto rollback;
  final = agent_clone_progress_new (PROTO_STOR_PHASE_COMPLETED);
  final->vm = agent_vm_status_from_domain (dom, error);
  if (!final->vm)
    {
      proto_msg_free (final);
      goto rollback;
    }
  if (!agent_clone_commit_mark (mark, error))
    {
      proto_msg_free (final);
      goto rollback;
    }
  drover_message (name, job, NULL, "cloned from VM %s%s%s (%s%s)", req->source,
                  *req->from_snapshot ? " snapshot " : "", req->from_snapshot,
                  linked ? PROTO_CLONE_LINKED : PROTO_CLONE_FULL,
                  req->start ? ", started" : "");
  if (source_held)
    agent_vm_release (agent, req->source);
  agent_vm_release (agent, name);
  agent_stream_push (stream, &final->base);
  agent_reporter_kick_from_thread (agent);
  g_free (src.disk);
  return TRUE;

rollback:
  agent_clone_rollback (agent, conn, spec->name);
  marked = FALSE;
fail:
  if (marked)
    (void)g_unlink (mark);
  if (admitted)
    agent_vm_release (agent, spec->name);
  if (source_held)
    agent_vm_release (agent, req->source);
  g_free (src.disk);
  agent_clone_stream_failed (stream, req->source, job, error);
  return FALSE;
}

void
agent_clone_stream_failed (AgentStream *stream, const char *source,
                           const char *job, GError **error)
{
  Drover__V1__StorageProgress *p
      = agent_clone_progress_new (PROTO_STOR_PHASE_FAILED);

  if (g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    {
      g_clear_error (error);
      g_set_error (error, PROTO_ERROR, PROTO_STATUS_CANCELLED,
                   "clone of VM %s cancelled", source);
    }
  p->error = proto_msg_strdup ((*error)->message);
  agent_stream_push (stream, &p->base);
  drover_message (source, job, NULL, "clone failed: %s", (*error)->message);
}

void
agent_clone_vm (ProtoServerCall *call, const ProtobufCMessage *req,
                gpointer data)
{
  agent_clone_op_start (call, data, req, "clone", clone_run);
}

/* --- start-up cleanup ----------------------------------------------------- */

void
agent_clone_reclaim (Agent *agent, virConnectPtr conn)
{
  g_autoptr (GPtrArray) marks = list_marks (agent);
  virDomainPtr *doms = NULL;
  int n;

  for (guint i = 0; i < marks->len; i++)
    {
      const char *name = marks->pdata[i];

      if (!agent_vm_claim (agent, name, NULL))
        continue;
      agent_clone_rollback (agent, conn, name);
      agent_vm_release (agent, name);
      drover_message (name, NULL, NULL,
                      "removed the clone an earlier run left unfinished");
    }
  /* A template whose image is still writable: finish MakeTemplate. */
  n = virConnectListAllDomains (conn, &doms,
                                VIR_CONNECT_LIST_DOMAINS_PERSISTENT);
  for (int i = 0; i < n; i++)
    {
      g_autofree char *xml
          = virDomainGetXMLDesc (doms[i], VIR_DOMAIN_XML_INACTIVE);
      g_autofree char *disk = xml ? disk_source (xml) : NULL;

      if (disk && agent_clone_xml_is_template (xml))
        (void)protect_base (disk, NULL);
      virDomainFree (doms[i]);
    }
  free (doms);
}
