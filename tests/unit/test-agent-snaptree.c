/* AgentSnapTree: the snapshot record in domain XML, both ways, and what
 * a hostile record cannot do. */
#include <glib.h>
#include <string.h>

#include "agent-snaptree.h"

static const char *domain_xml
    = "<domain type='qemu'><name>vm1</name>"
      "<metadata><drover:vm xmlns:drover='https://drover.dev/xmlns/vm/1'>"
      "<drover:name>vm1</drover:name><drover:disk>1048576</drover:disk>"
      "</drover:vm></metadata>"
      "<memory unit='KiB'>262144</memory><vcpu>1</vcpu>"
      "<devices><disk type='file' device='disk'>"
      "<driver name='qemu' type='qcow2'/>"
      "<source file='/data/disks/vm1.qcow2'/>"
      "<backingStore type='file'><source file='/x'/></backingStore>"
      "<target dev='vda' bus='virtio'/></disk></devices></domain>";

static AgentSnap *
snap_new (const char *name, const char *parent, guint image)
{
  AgentSnap *s = g_new0 (AgentSnap, 1);

  s->name = g_strdup (name);
  s->parent = g_strdup (parent);
  s->description = g_strdup ("a <b> & \"c\"");
  s->vm_state = g_strdup ("running");
  s->created_ms = 1796000000123;
  s->image = image;
  s->memory = image == 1;
  return s;
}

static AgentSnapTree *
sample_tree (void)
{
  AgentSnapTree *t = agent_snaptree_new ();

  g_ptr_array_add (t->snaps, snap_new ("s1", "", 0));
  g_ptr_array_add (t->snaps, snap_new ("s2", "s1", 1));
  g_free (t->current);
  t->current = g_strdup ("s2");
  t->active = 2;
  t->next = 4;
  t->op = AGENT_SNAP_OP_CREATE;
  t->op_snap = snap_new ("s3", "s2", 2);
  t->op_image = 3;
  t->op_old = 2;
  t->op_running = TRUE;
  return t;
}

static void
assert_same (const AgentSnapTree *a, const AgentSnapTree *b)
{
  g_assert_cmpuint (a->snaps->len, ==, b->snaps->len);
  for (guint i = 0; i < a->snaps->len; i++)
    {
      AgentSnap *x = a->snaps->pdata[i], *y = b->snaps->pdata[i];

      g_assert_cmpstr (x->name, ==, y->name);
      g_assert_cmpstr (x->parent, ==, y->parent);
      g_assert_cmpstr (x->description, ==, y->description);
      g_assert_cmpstr (x->vm_state, ==, y->vm_state);
      g_assert_cmpint (x->created_ms, ==, y->created_ms);
      g_assert_cmpuint (x->image, ==, y->image);
      g_assert_cmpint (x->memory, ==, y->memory);
    }
  g_assert_cmpstr (a->current, ==, b->current);
  g_assert_cmpuint (a->active, ==, b->active);
  g_assert_cmpuint (a->next, ==, b->next);
  g_assert_cmpint (a->op, ==, b->op);
  g_assert_cmpuint (a->op_image, ==, b->op_image);
  g_assert_cmpuint (a->op_old, ==, b->op_old);
  g_assert_cmpint (a->op_running, ==, b->op_running);
  g_assert_cmpstr (a->op_snap ? a->op_snap->name : NULL, ==,
                   b->op_snap ? b->op_snap->name : NULL);
}

static void
test_round_trip (void)
{
  g_autoptr (AgentSnapTree) t = sample_tree ();
  g_autoptr (AgentSnapTree) back = NULL;
  g_autoptr (AgentSnapTree) empty = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *edited = NULL, *plain = NULL, *src = NULL;
  g_autofree char *again = NULL;

  /* A domain without a record has an empty tree. */
  empty = agent_snaptree_from_domain_xml (domain_xml, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (empty->snaps->len, ==, 0);
  g_assert_cmpstr (empty->current, ==, "");
  g_assert_cmpuint (empty->next, ==, 1);

  edited = agent_snaptree_edit_domain_xml (
      domain_xml, t, "/data/snapshots/vm1/3.qcow2", &error);
  g_assert_no_error (error);
  g_assert_null (strstr (edited, "backingStore"));
  g_assert_nonnull (strstr (edited, "drover:vm"));
  src = agent_snaptree_disk_source (edited);
  g_assert_cmpstr (src, ==, "/data/snapshots/vm1/3.qcow2");
  back = agent_snaptree_from_domain_xml (edited, &error);
  g_assert_no_error (error);
  assert_same (t, back);

  /* Editing twice keeps one record. */
  again = agent_snaptree_edit_domain_xml (edited, empty, NULL, &error);
  g_assert_no_error (error);
  g_clear_pointer (&back, agent_snaptree_free);
  back = agent_snaptree_from_domain_xml (again, &error);
  g_assert_no_error (error);
  assert_same (empty, back);

  /* What virDomainSetMetadata gets has no namespace of its own. */
  plain = agent_snaptree_to_xml (t);
  g_assert_true (g_str_has_prefix (plain, "<snapshots "));
  g_assert_null (strstr (plain, "xmlns"));
}

static void
test_hostile (void)
{
  const char *bad[] = {
    /* a name that would leave the directory */
    "<snapshot name='../x' parent='' image='0'/>",
    /* a parent that comes later or does not exist */
    "<snapshot name='a' parent='b' image='0'/>"
    "<snapshot name='b' parent='' image='1'/>",
    /* twice */
    "<snapshot name='a' parent='' image='0'/>"
    "<snapshot name='a' parent='' image='1'/>",
    /* an image past next */
    "<snapshot name='a' parent='' image='9'/>",
    "<snapshot name='a' parent='' image='-1'/>",
    "<snapshot name='a' parent='' image='99999999999'/>",
    "<pending op='format' image='1'><snapshot name='a' parent=''/></pending>",
    "<pending op='create' image='1'/>",
  };
  g_autoptr (GString) many = g_string_new (NULL);
  g_autoptr (GError) error = NULL;

  /* One snapshot too many. */
  for (guint j = 0; j <= AGENT_SNAP_MAX; j++)
    g_string_append_printf (many, "<snapshot name='s%u' parent='' image='%u'/>",
                            j, j);
  for (guint i = 0; i < G_N_ELEMENTS (bad) + 1; i++)
    {
      g_autofree char *xml = NULL;
      const char *body = i < G_N_ELEMENTS (bad) ? bad[i] : many->str;

      xml = g_strdup_printf (
          "<domain><name>vm1</name><metadata>"
          "<s:snapshots xmlns:s='" AGENT_SNAP_XMLNS "' next='%u' "
          "current=''>%s</s:snapshots></metadata></domain>",
          i == G_N_ELEMENTS (bad) ? AGENT_SNAP_MAX + 2 : 5, body);
      /* Unprefixed children of a prefixed root are not ours: prefix. */
      {
        g_autoptr (GRegex) re
            = g_regex_new ("<(/?)(snapshot|pending)([ />])", 0, 0, NULL);
        char *fixed = g_regex_replace (re, xml, -1, 0, "<\\1s:\\2\\3", 0, NULL);

        g_free (xml);
        xml = fixed;
      }
      g_assert_null (agent_snaptree_from_domain_xml (xml, &error));
      g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
      g_clear_error (&error);
    }
  g_assert_null (agent_snaptree_from_domain_xml ("<not xml", &error));
  g_assert_error (error, AGENT_ERROR, AGENT_ERROR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/agent-snaptree/round-trip", test_round_trip);
  g_test_add_func ("/agent-snaptree/hostile", test_hostile);
  return g_test_run ();
}
