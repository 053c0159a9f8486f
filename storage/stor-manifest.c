/* Backup manifests: one JSON file per backup, backups/ID.json, written
 * once (atomically, by the writer's commit) and read as hostile input.
 * The fields are described in docs/backup-format.md. */
#include "stor-repo-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "proto.h"

#define MANIFEST_FORMAT "drover-backup-manifest"
#define MANIFEST_VERSION 1
/* "-YYYYmmddTHHMMSSZ-xxxxxx" after the VM name in an id. */
#define ID_SUFFIX_LEN 24
#define MAX_TARGET 32
#define MAX_CHECKPOINT 128

void
stor_repo_manifest_free (StorRepoManifest *m)
{
  if (!m)
    return;
  g_free (m->id);
  g_free (m->vm);
  g_free (m->vm_uuid);
  g_free (m->domain_xml);
  g_free (m->checkpoint);
  g_free (m->parent);
  g_clear_pointer (&m->disks, g_ptr_array_unref);
  g_free (m);
}

guint64
stor_repo_n_chunks (guint64 size)
{
  return size / STOR_REPO_CHUNK_SIZE + (size % STOR_REPO_CHUNK_SIZE != 0);
}

gsize
stor_repo_chunk_length (const StorRepoDisk *disk, guint64 index)
{
  guint64 off = index * STOR_REPO_CHUNK_SIZE;

  if (off >= disk->size)
    return 0;
  return MIN (STOR_REPO_CHUNK_SIZE, disk->size - off);
}

const StorRepoDisk *
stor_repo_manifest_disk (const StorRepoManifest *m, const char *target)
{
  for (guint i = 0; m->disks && i < m->disks->len; i++)
    {
      const StorRepoDisk *d = g_ptr_array_index (m->disks, i);

      if (strcmp (d->target, target) == 0)
        return d;
    }
  return NULL;
}

guint64
stor_repo_manifest_logical (const StorRepoManifest *m)
{
  guint64 total = 0;

  for (guint i = 0; i < m->disks->len; i++)
    total += ((StorRepoDisk *)g_ptr_array_index (m->disks, i))->size;
  return total;
}

/* --- names ------------------------------------------------------------- */

static gboolean
all_of (const char *s, gsize from, gsize to, const char *allowed)
{
  for (gsize i = from; i < to; i++)
    if (!s[i] || !strchr (allowed, s[i]))
      return FALSE;
  return TRUE;
}

#define DIGITS "0123456789"
#define HEX "0123456789abcdef"

/* "YYYYmmddTHHMMSSZ" (compact, ID) or "YYYY-mm-ddTHH:MM:SSZ" (manifest
 * times): strict, a real date, into seconds since the epoch. */
static gboolean
parse_utc (const char *s, gboolean compact, gint64 *time)
{
  int y, mo, d, h, mi, sec, got;
  g_autoptr (GDateTime) dt = NULL;
  g_autofree char *back = NULL;

  if (!s || strlen (s) != (compact ? 16u : 20u))
    return FALSE;
  got = compact ? sscanf (s, "%04d%02d%02dT%02d%02d%02dZ", &y, &mo, &d, &h, &mi,
                          &sec)
                : sscanf (s, "%04d-%02d-%02dT%02d:%02d:%02dZ", &y, &mo, &d, &h,
                          &mi, &sec);
  if (got != 6)
    return FALSE;
  dt = g_date_time_new_utc (y, mo, d, h, mi, sec);
  if (!dt)
    return FALSE;
  /* Round trip: refuses signs, spaces and out-of-range fields sscanf
   * would take. */
  back = g_date_time_format (dt,
                             compact ? "%Y%m%dT%H%M%SZ" : "%Y-%m-%dT%H:%M:%SZ");
  if (!back || strcmp (back, s) != 0)
    return FALSE;
  *time = g_date_time_to_unix (dt);
  return TRUE;
}

static char *
format_utc (gint64 time, gboolean compact)
{
  g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc (time);

  return dt ? g_date_time_format (dt, compact ? "%Y%m%dT%H%M%SZ"
                                              : "%Y-%m-%dT%H:%M:%SZ")
            : g_strdup ("19700101T000000Z");
}

gboolean
stor_repo_id_validate (const char *id, GError **error)
{
  gsize len = id ? strlen (id) : 0;
  g_autofree char *vm = NULL;
  g_autofree char *stamp = NULL;
  gint64 t;

  if (len > ID_SUFFIX_LEN && len <= STOR_REPO_MAX_ID)
    {
      const char *suffix = id + len - ID_SUFFIX_LEN;

      vm = g_strndup (id, len - ID_SUFFIX_LEN);
      stamp = g_strndup (suffix + 1, 16);
      if (suffix[0] == '-' && suffix[17] == '-'
          && all_of (suffix, 18, ID_SUFFIX_LEN, HEX)
          && parse_utc (stamp, TRUE, &t)
          && proto_name_validate ("VM", vm, NULL))
        return TRUE;
    }
  {
    g_autofree char *cut = g_strndup (id ? id : "", 100);
    g_autofree char *esc = g_strescape (cut, NULL);

    g_set_error (error, STOR_ERROR, STOR_ERROR_INVALID_NAME,
                 "invalid backup id '%s': expected VM-YYYYmmddTHHMMSSZ-xxxxxx",
                 esc);
  }
  return FALSE;
}

char *
stor_repo_id_new (const char *vm, gint64 time)
{
  g_autofree char *stamp = format_utc (time, TRUE);

  return g_strdup_printf ("%s-%s-%06x", vm, stamp, g_random_int () & 0xffffff);
}

gboolean
stor_repo_uuid_valid (const char *s)
{
  if (!s || strlen (s) != 36)
    return FALSE;
  for (guint i = 0; i < 36; i++)
    if ((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] != '-'
                                                  : !g_ascii_isxdigit (s[i]))
      return FALSE;
  return TRUE;
}

static gboolean
target_valid (const char *s)
{
  gsize len = s ? strlen (s) : 0;

  return len >= 1 && len <= MAX_TARGET
         && all_of (s, 0, len, "abcdefghijklmnopqrstuvwxyz" DIGITS);
}

static gboolean
checkpoint_valid (const char *s)
{
  gsize len = s ? strlen (s) : 0;

  return len >= 1 && len <= MAX_CHECKPOINT && s[0] != '.'
         && all_of (
             s, 0, len,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" DIGITS
             "._-");
}

/* --- JSON out ---------------------------------------------------------- */

static void
append_string (GString *out, const char *s)
{
  if (!s)
    {
      g_string_append (out, "null");
      return;
    }
  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *)s; *p; p++)
    {
      if (*p == '"' || *p == '\\')
        g_string_append_printf (out, "\\%c", *p);
      else if (*p < 0x20)
        g_string_append_printf (out, "\\u%04x", *p);
      else
        g_string_append_c (out, *p);
    }
  g_string_append_c (out, '"');
}

char *
stor_repo_manifest_to_json (const StorRepoManifest *m, gsize *length)
{
  GString *out = g_string_new ("{\n");
  g_autofree char *start = format_utc (m->start_time, FALSE);
  g_autofree char *end = format_utc (m->end_time, FALSE);
  char hex[STOR_REPO_DIGEST_HEX];

  g_string_append_printf (out, "\"format\": \"%s\",\n\"version\": %d,\n",
                          MANIFEST_FORMAT, MANIFEST_VERSION);
  g_string_append (out, "\"id\": ");
  append_string (out, m->id);
  g_string_append (out, ",\n\"vm\": ");
  append_string (out, m->vm);
  g_string_append (out, ",\n\"vm_uuid\": ");
  append_string (out, m->vm_uuid);
  g_string_append_printf (out, ",\n\"kind\": \"%s\",\n\"parent\": ",
                          m->kind == STOR_REPO_KIND_FULL ? "full"
                                                         : "incremental");
  append_string (out, m->parent);
  g_string_append (out, ",\n\"checkpoint\": ");
  append_string (out, m->checkpoint);
  g_string_append_printf (
      out,
      ",\n\"consistency\": \"%s\",\n\"start_time\": \"%s\",\n"
      "\"end_time\": \"%s\",\n\"bytes_read\": %" G_GUINT64_FORMAT
      ",\n\"bytes_new\": %" G_GUINT64_FORMAT
      ",\n\"bytes_stored\": %" G_GUINT64_FORMAT ",\n\"domain_xml\": ",
      m->consistency == STOR_REPO_CONSISTENCY_CRASH ? "crash" : "application",
      start, end, m->bytes_read, m->bytes_new, m->bytes_stored);
  append_string (out, m->domain_xml);
  g_string_append (out, ",\n\"disks\": [");
  for (guint i = 0; i < m->disks->len; i++)
    {
      StorRepoDisk *d = g_ptr_array_index (m->disks, i);

      g_string_append (out, i ? ",\n{" : "\n{");
      g_string_append (out, "\"target\": ");
      append_string (out, d->target);
      g_string_append_printf (
          out, ", \"size\": %" G_GUINT64_FORMAT ", \"chunks\": [", d->size);
      for (guint j = 0; j < d->chunks->len; j++)
        {
          StorRepoChunkRef *r = &g_array_index (d->chunks, StorRepoChunkRef, j);

          if (j)
            g_string_append (out, ",\n");
          if (r->hole)
            g_string_append (out, "null");
          else
            g_string_append_printf (out, "\"%s\"",
                                    stor_repo_digest_hex (&r->digest, hex));
        }
      g_string_append (out, "]}");
    }
  g_string_append (out, "\n]\n}\n");
  if (length)
    *length = out->len;
  return g_string_free (out, FALSE);
}

/* --- JSON in ----------------------------------------------------------- */

/* Member NAME of OBJ as a string; NULL when missing, null or not a
 * string (*NULL_OK tells null from a wrong type when given). */
static const char *
get_string (JsonObject *obj, const char *name, gboolean *is_null)
{
  JsonNode *node = json_object_get_member (obj, name);

  if (is_null)
    *is_null = node && JSON_NODE_HOLDS_NULL (node);
  return stor_json_string (obj, name);
}

static gboolean
get_uint (JsonObject *obj, const char *name, guint64 max, guint64 *value)
{
  gint64 v;

  if (!stor_repo_json_int (obj, name, &v) || v < 0 || (guint64)v > max)
    return FALSE;
  *value = v;
  return TRUE;
}

/* A string member that may be null: TRUE when it is null (*OUT NULL) or
 * a string CHECK accepts. */
static gboolean
get_optional (JsonObject *obj, const char *name,
              gboolean (*check) (const char *), char **out)
{
  gboolean is_null = FALSE;
  const char *s = get_string (obj, name, &is_null);

  if (is_null)
    return TRUE;
  if (!s || !check (s))
    return FALSE;
  *out = g_strdup (s);
  return TRUE;
}

static gboolean
id_ok (const char *s)
{
  return stor_repo_id_validate (s, NULL);
}

static void
disk_free (StorRepoDisk *d)
{
  if (!d)
    return;
  g_free (d->target);
  g_clear_pointer (&d->chunks, g_array_unref);
  g_free (d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (StorRepoDisk, disk_free)

StorRepoDisk *
stor_repo_disk_new (const char *target, guint64 size)
{
  StorRepoDisk *d = g_new0 (StorRepoDisk, 1);
  guint64 n = stor_repo_n_chunks (size);
  StorRepoChunkRef hole = { TRUE, { { 0 } } };

  d->target = g_strdup (target);
  d->size = size;
  d->chunks = g_array_sized_new (FALSE, TRUE, sizeof (StorRepoChunkRef), n);
  for (guint64 i = 0; i < n; i++)
    g_array_append_val (d->chunks, hole);
  return d;
}

GPtrArray *
stor_repo_disks_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify)disk_free);
}

static StorRepoDisk *
parse_disk (JsonNode *node, const char *what, guint i, GError **error)
{
  JsonObject *obj;
  JsonArray *chunks;
  JsonNode *cn;
  const char *target;
  guint64 size = 0;
  g_autoptr (StorRepoDisk) d = NULL;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    goto bad;
  obj = json_node_get_object (node);
  target = get_string (obj, "target", NULL);
  cn = json_object_get_member (obj, "chunks");
  if (!target_valid (target)
      || !get_uint (obj, "size", STOR_REPO_MAX_DISK_SIZE, &size) || size == 0
      || !cn || !JSON_NODE_HOLDS_ARRAY (cn))
    goto bad;
  chunks = json_node_get_array (cn);
  /* The count must be the one the size implies: a longer list would
   * make restore write past the disk's end. */
  if (json_array_get_length (chunks) != stor_repo_n_chunks (size))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "manifest %s: disk %s has %u chunks, its size needs "
                   "%" G_GUINT64_FORMAT,
                   what, target, json_array_get_length (chunks),
                   stor_repo_n_chunks (size));
      return NULL;
    }
  d = stor_repo_disk_new (target, size);
  for (guint j = 0; j < d->chunks->len; j++)
    {
      JsonNode *e = json_array_get_element (chunks, j);
      StorRepoChunkRef *r = &g_array_index (d->chunks, StorRepoChunkRef, j);

      if (JSON_NODE_HOLDS_NULL (e))
        continue;
      if (!JSON_NODE_HOLDS_VALUE (e)
          || json_node_get_value_type (e) != G_TYPE_STRING
          || !stor_repo_digest_parse (json_node_get_string (e), &r->digest))
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                       "manifest %s: disk %s, chunk %u is not a digest", what,
                       target, j);
          return NULL;
        }
      r->hole = FALSE;
    }
  return g_steal_pointer (&d);

bad:
  g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
               "manifest %s: disk %u is not valid (target, size, chunks)", what,
               i);
  return NULL;
}

#define FIELD_CHECK(cond, field)                                               \
  do                                                                           \
    {                                                                          \
      if (!(cond))                                                             \
        {                                                                      \
          g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,                  \
                       "manifest %s: missing or invalid %s", what, field);     \
          return NULL;                                                         \
        }                                                                      \
    }                                                                          \
  while (0)

StorRepoManifest *
stor_repo_manifest_parse (const char *data, gsize length, const char *what,
                          GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (StorRepoManifest) m = g_new0 (StorRepoManifest, 1);
  g_autoptr (GError) local = NULL;
  JsonNode *root, *disks;
  JsonObject *obj;
  JsonArray *arr;
  const char *s, *kind, *cons;
  guint64 version = 0;
  gsize vm_len;

  if (length > STOR_REPO_MAX_MANIFEST)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "manifest %s is larger than %d bytes", what,
                   STOR_REPO_MAX_MANIFEST);
      return NULL;
    }
  if (!json_parser_load_from_data (parser, data, length, &local))
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "manifest %s is not JSON: %s", what, local->message);
      return NULL;
    }
  root = json_parser_get_root (parser);
  FIELD_CHECK (root && JSON_NODE_HOLDS_OBJECT (root), "top-level object");
  obj = json_node_get_object (root);
  s = get_string (obj, "format", NULL);
  FIELD_CHECK (s && strcmp (s, MANIFEST_FORMAT) == 0, "format");
  FIELD_CHECK (get_uint (obj, "version", 1000, &version)
                   && version == MANIFEST_VERSION,
               "version (this Drover reads version 1)");
  s = get_string (obj, "id", NULL);
  FIELD_CHECK (id_ok (s), "id");
  m->id = g_strdup (s);
  s = get_string (obj, "vm", NULL);
  vm_len = strlen (m->id) - ID_SUFFIX_LEN;
  FIELD_CHECK (s && strlen (s) == vm_len && strncmp (s, m->id, vm_len) == 0,
               "vm (must be the id's VM)");
  m->vm = g_strdup (s);
  s = get_string (obj, "vm_uuid", NULL);
  FIELD_CHECK (stor_repo_uuid_valid (s), "vm_uuid");
  m->vm_uuid = g_strdup (s);
  kind = get_string (obj, "kind", NULL);
  FIELD_CHECK (kind
                   && (!strcmp (kind, "full") || !strcmp (kind, "incremental")),
               "kind");
  m->kind = !strcmp (kind, "full") ? STOR_REPO_KIND_FULL
                                   : STOR_REPO_KIND_INCREMENTAL;
  FIELD_CHECK (get_optional (obj, "parent", id_ok, &m->parent)
                   && (m->parent != NULL) == (m->kind != STOR_REPO_KIND_FULL),
               "parent (an incremental has one, a full none)");
  FIELD_CHECK (
      get_optional (obj, "checkpoint", checkpoint_valid, &m->checkpoint),
      "checkpoint");
  cons = get_string (obj, "consistency", NULL);
  FIELD_CHECK (
      cons && (!strcmp (cons, "crash") || !strcmp (cons, "application")),
      "consistency");
  m->consistency = !strcmp (cons, "crash") ? STOR_REPO_CONSISTENCY_CRASH
                                           : STOR_REPO_CONSISTENCY_APPLICATION;
  FIELD_CHECK (
      parse_utc (get_string (obj, "start_time", NULL), FALSE, &m->start_time),
      "start_time");
  FIELD_CHECK (
      parse_utc (get_string (obj, "end_time", NULL), FALSE, &m->end_time)
          && m->end_time >= m->start_time,
      "end_time");
  FIELD_CHECK (
      get_uint (obj, "bytes_read", G_MAXINT64, &m->bytes_read)
          && get_uint (obj, "bytes_new", G_MAXINT64, &m->bytes_new)
          && get_uint (obj, "bytes_stored", G_MAXINT64, &m->bytes_stored),
      "bytes_read, bytes_new or bytes_stored");
  s = get_string (obj, "domain_xml", NULL);
  FIELD_CHECK (s && strlen (s) <= STOR_REPO_MAX_XML, "domain_xml");
  m->domain_xml = g_strdup (s);
  disks = json_object_get_member (obj, "disks");
  FIELD_CHECK (disks && JSON_NODE_HOLDS_ARRAY (disks), "disks");
  arr = json_node_get_array (disks);
  FIELD_CHECK (json_array_get_length (arr) >= 1
                   && json_array_get_length (arr) <= STOR_REPO_MAX_DISKS,
               "disks (1 to 64)");
  m->disks = stor_repo_disks_new ();
  for (guint i = 0; i < json_array_get_length (arr); i++)
    {
      StorRepoDisk *d
          = parse_disk (json_array_get_element (arr, i), what, i, error);

      if (!d)
        return NULL;
      if (stor_repo_manifest_disk (m, d->target))
        {
          g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                       "manifest %s: disk %s appears twice", what, d->target);
          disk_free (d);
          return NULL;
        }
      g_ptr_array_add (m->disks, d);
    }
  return g_steal_pointer (&m);
}

StorRepoManifest *
stor_repo_manifest_load (StorRepo *repo, const char *id, GError **error)
{
  g_autofree char *file = NULL;
  g_autofree char *path = NULL;
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr (GError) local = NULL;
  StorRepoManifest *m;

  if (!stor_repo_id_validate (id, error))
    return NULL;
  file = g_strconcat (id, ".json", NULL);
  path = stor_repo_sub (repo, "backups", file, NULL);
  if (!stor_repo_read_capped (path, STOR_REPO_MAX_MANIFEST, &text, &len,
                              &local))
    {
      if (g_error_matches (local, STOR_ERROR, STOR_ERROR_NOT_FOUND))
        g_set_error (error, STOR_ERROR, STOR_ERROR_NOT_FOUND,
                     "no backup %s in repository %s", id, repo->path);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return NULL;
    }
  m = stor_repo_manifest_parse (text, len, path, error);
  if (m && strcmp (m->id, id) != 0)
    {
      g_set_error (error, STOR_ERROR, STOR_ERROR_CORRUPT,
                   "manifest %s: its id is %s", path, m->id);
      g_clear_pointer (&m, stor_repo_manifest_free);
    }
  return m;
}
