/* VM labels (issue 16): KEY=VALUE pairs an operator puts on a VM
 * (droverctl vm label), kept in the VM's record as "k=v,k=v" sorted by
 * key, and selected by schedules (--select label:KEY=VALUE).
 *
 * A VM's group is its label "group": --select group:NAME is the same as
 * label:group=NAME, so an operator groups VMs with
 * `droverctl vm label VM group=NAME` and a VM is in one group at most.
 *
 * A key is 1-63 characters of [a-z0-9._-] starting with a letter or a
 * digit; a value is 0-63 characters of [A-Za-z0-9._-]; a VM has at most
 * SCHED_LABELS_MAX. What is not so is refused whole: nothing changes. */
#include "sched-private.h"

#include <string.h>

#define KEY_CHARS "abcdefghijklmnopqrstuvwxyz0123456789._-"
#define VALUE_CHARS                                                            \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

static gboolean
key_ok (const char *key, gsize len)
{
  return len >= 1 && len <= SCHED_LABEL_PART_MAX && g_ascii_isalnum (key[0])
         && strspn (key, KEY_CHARS) >= len;
}

gboolean
sched_labels_check_key (const char *key, GError **error)
{
  if (key_ok (key, strlen (key)))
    return TRUE;
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "label key '%.80s': 1-%d characters of a-z, 0-9, '.', '_' and "
               "'-', starting with a letter or a digit",
               key, SCHED_LABEL_PART_MAX);
  return FALSE;
}

gboolean
sched_labels_check_pair (const char *pair, GError **error)
{
  const char *eq = strchr (pair, '=');
  gsize vlen;

  if (eq == NULL || !key_ok (pair, eq - pair))
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "label '%.80s': give KEY=VALUE, the key 1-%d characters of "
                   "a-z, 0-9, '.', '_' and '-'",
                   pair, SCHED_LABEL_PART_MAX);
      return FALSE;
    }
  vlen = strlen (eq + 1);
  if (vlen > SCHED_LABEL_PART_MAX || strspn (eq + 1, VALUE_CHARS) != vlen)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "label '%.80s': the value is 0-%d characters of letters, "
                   "digits, '.', '_' and '-'",
                   pair, SCHED_LABEL_PART_MAX);
      return FALSE;
    }
  return TRUE;
}

/* LABELS ("k=v,k=v") into a key -> value table. */
static GHashTable *
parse (const char *labels)
{
  GHashTable *t
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_auto (GStrv) pairs = g_strsplit (labels ? labels : "", ",", -1);

  for (guint i = 0; pairs[i]; i++)
    {
      char *eq = strchr (pairs[i], '=');

      if (eq != NULL)
        g_hash_table_replace (t, g_strndup (pairs[i], eq - pairs[i]),
                              g_strdup (eq + 1));
    }
  return t;
}

/* Orders an array of strings (its elements point to them). */
static gint
compare_keys (gconstpointer a, gconstpointer b, gpointer data)
{
  (void)data;
  return strcmp (*(const char *const *)a, *(const char *const *)b);
}

char *
sched_labels_apply (const char *labels, char *const *set, gsize n_set,
                    char *const *remove, gsize n_remove, GError **error)
{
  g_autoptr (GHashTable) t = NULL;
  g_autofree const char **keys = NULL;
  g_autoptr (GString) out = g_string_new (NULL);
  guint n = 0;

  if (n_set + n_remove == 0 || n_set > SCHED_LABELS_MAX
      || n_remove > SCHED_LABELS_MAX)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "give 1-%d labels to set (KEY=VALUE) and 0-%d to remove "
                   "(KEY-)",
                   SCHED_LABELS_MAX, SCHED_LABELS_MAX);
      return NULL;
    }
  for (gsize i = 0; i < n_set; i++)
    if (!sched_labels_check_pair (set[i], error))
      return NULL;
  for (gsize i = 0; i < n_remove; i++)
    if (!sched_labels_check_key (remove[i], error))
      return NULL;
  t = parse (labels);
  for (gsize i = 0; i < n_remove; i++)
    g_hash_table_remove (t, remove[i]);
  for (gsize i = 0; i < n_set; i++)
    {
      const char *eq = strchr (set[i], '=');

      g_hash_table_replace (t, g_strndup (set[i], eq - set[i]),
                            g_strdup (eq + 1));
    }
  if (g_hash_table_size (t) > SCHED_LABELS_MAX)
    {
      g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
                   "a VM has at most %d labels", SCHED_LABELS_MAX);
      return NULL;
    }
  keys = (const char **)g_hash_table_get_keys_as_array (t, &n);
  g_qsort_with_data (keys, n, sizeof (char *), compare_keys, NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (out, "%s%s=%s", i ? "," : "", keys[i],
                            (const char *)g_hash_table_lookup (t, keys[i]));
  return g_string_free (g_steal_pointer (&out), FALSE);
}

gboolean
sched_labels_has (const char *labels, const char *pair)
{
  gsize len = strlen (pair);

  for (const char *p = labels; p && *p;)
    {
      const char *end = strchr (p, ',');
      gsize n = end ? (gsize)(end - p) : strlen (p);

      if (n == len && strncmp (p, pair, len) == 0)
        return TRUE;
      p = end ? end + 1 : NULL;
    }
  return FALSE;
}

gboolean
sched_labels_check_group (const char *group, GError **error)
{
  g_autofree char *pair = g_strdup_printf ("%s=%s", SCHED_LABEL_GROUP, group);

  if (group[0] != '\0' && sched_labels_check_pair (pair, NULL))
    return TRUE;
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_INVALID,
               "group '%.80s': 1-%d characters of letters, digits, '.', '_' "
               "and '-'",
               group, SCHED_LABEL_PART_MAX);
  return FALSE;
}

gboolean
sched_labels_in_group (const char *labels, const char *group)
{
  g_autofree char *pair = g_strdup_printf ("%s=%s", SCHED_LABEL_GROUP, group);

  return group[0] != '\0' && sched_labels_has (labels, pair);
}

/* --- SetVmLabels -------------------------------------------------------- */

void
sched_vm_handle_set_labels (ProtoServerCall *call,
                            const ProtobufCMessage *request, gpointer user_data)
{
  SchedService *svc = user_data;
  const Drover__V1__SetVmLabelsRequest *req = (const void *)request;
  Drover__V1__VmReply reply = DROVER__V1__VM_REPLY__INIT;
  Drover__V1__Vm msg;
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;
  g_autofree char *labels = NULL;

  if (!proto_name_validate ("VM", req->name, &error)
      || (vm = sched_store_get_vm (svc->store, req->name, &error)) == NULL
      || (labels = sched_labels_apply (vm->labels, req->set, req->n_set,
                                       req->remove, req->n_remove, &error))
             == NULL)
    {
      sched_call_fail (call, error);
      return;
    }
  if (strcmp (labels, vm->labels ? vm->labels : "") != 0)
    {
      g_free (vm->labels);
      vm->labels = g_strdup (labels);
      if (!sched_store_put_vm (svc->store, vm, &error))
        {
          sched_call_fail (call, error);
          return;
        }
      drover_message (vm->name, NULL, NULL, "labels: %s",
                      labels[0] ? labels : "(none)");
      sched_events_emit (svc->events, SCHED_EVENT_VM_LABELS, vm->name, vm->host,
                         NULL, NULL, "labels: %s",
                         labels[0] ? labels : "(none)");
    }
  drover__v1__vm__init (&msg);
  sched_vm_msg (vm, &msg);
  reply.vm = &msg;
  proto_server_call_reply (call, &reply.base);
}
