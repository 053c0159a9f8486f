/* A small JSON writer for droverctl's --json output. Hand-written on
 * GString so the CLI needs no JSON library. */
#include "cli.h"

#include <math.h>

/* What the writer is inside of, one entry per open container. */
typedef struct
{
  gboolean is_object;
  guint n_items; /* values written so far in this container */
} CliJsonLevel;

struct _CliJson
{
  GString *out;
  GArray *stack;     /* CliJsonLevel */
  gboolean have_key; /* a key was written and waits for its value */
};

void
cli_json_escape (GString *out, const char *text)
{
  const char *p = text ? text : "";

  g_string_append_c (out, '"');
  while (*p)
    {
      gunichar c = g_utf8_get_char_validated (p, -1);
      if (c == (gunichar)-1 || c == (gunichar)-2)
        {
          /* Invalid byte: replace it, skip one byte and go on. */
          g_string_append (out, "\\ufffd");
          p++;
          continue;
        }
      switch (c)
        {
        case '"':
          g_string_append (out, "\\\"");
          break;
        case '\\':
          g_string_append (out, "\\\\");
          break;
        case '\b':
          g_string_append (out, "\\b");
          break;
        case '\f':
          g_string_append (out, "\\f");
          break;
        case '\n':
          g_string_append (out, "\\n");
          break;
        case '\r':
          g_string_append (out, "\\r");
          break;
        case '\t':
          g_string_append (out, "\\t");
          break;
        default:
          if (c < 0x20 || c == 0x7f)
            g_string_append_printf (out, "\\u%04x", c);
          else
            g_string_append_len (out, p, g_utf8_next_char (p) - p);
        }
      p = g_utf8_next_char (p);
    }
  g_string_append_c (out, '"');
}

CliJson *
cli_json_new (void)
{
  CliJson *json = g_new0 (CliJson, 1);
  json->out = g_string_new (NULL);
  json->stack = g_array_new (FALSE, FALSE, sizeof (CliJsonLevel));
  return json;
}

void
cli_json_free (CliJson *json)
{
  if (json == NULL)
    return;
  g_string_free (json->out, TRUE);
  g_array_unref (json->stack);
  g_free (json);
}

static CliJsonLevel *
top (CliJson *json)
{
  if (json->stack->len == 0)
    return NULL;
  return &g_array_index (json->stack, CliJsonLevel, json->stack->len - 1);
}

static void
newline_indent (CliJson *json)
{
  g_string_append_c (json->out, '\n');
  for (guint i = 0; i < json->stack->len; i++)
    g_string_append (json->out, "  ");
}

/* Everything that precedes a value: comma and indentation in an array;
 * in an object the key already did that. */
static void
before_value (CliJson *json)
{
  CliJsonLevel *lvl = top (json);

  if (lvl == NULL)
    return;
  if (lvl->is_object)
    {
      g_return_if_fail (json->have_key);
      json->have_key = FALSE;
      return;
    }
  if (lvl->n_items++ > 0)
    g_string_append_c (json->out, ',');
  newline_indent (json);
}

void
cli_json_key (CliJson *json, const char *key)
{
  CliJsonLevel *lvl = top (json);

  g_return_if_fail (lvl != NULL && lvl->is_object && !json->have_key);
  if (lvl->n_items++ > 0)
    g_string_append_c (json->out, ',');
  newline_indent (json);
  cli_json_escape (json->out, key);
  g_string_append (json->out, ": ");
  json->have_key = TRUE;
}

static void
begin (CliJson *json, gboolean is_object)
{
  CliJsonLevel lvl = { is_object, 0 };

  before_value (json);
  g_string_append_c (json->out, is_object ? '{' : '[');
  g_array_append_val (json->stack, lvl);
}

static void
end (CliJson *json, gboolean is_object)
{
  CliJsonLevel *lvl = top (json);
  guint n;

  g_return_if_fail (lvl != NULL && lvl->is_object == is_object
                    && !json->have_key);
  n = lvl->n_items;
  g_array_set_size (json->stack, json->stack->len - 1);
  if (n > 0)
    newline_indent (json);
  g_string_append_c (json->out, is_object ? '}' : ']');
}

void
cli_json_begin_object (CliJson *json)
{
  begin (json, TRUE);
}
void
cli_json_end_object (CliJson *json)
{
  end (json, TRUE);
}
void
cli_json_begin_array (CliJson *json)
{
  begin (json, FALSE);
}
void
cli_json_end_array (CliJson *json)
{
  end (json, FALSE);
}

void
cli_json_string (CliJson *json, const char *value)
{
  before_value (json);
  cli_json_escape (json->out, value);
}

void
cli_json_int (CliJson *json, gint64 value)
{
  before_value (json);
  g_string_append_printf (json->out, "%" G_GINT64_FORMAT, value);
}

void
cli_json_uint (CliJson *json, guint64 value)
{
  before_value (json);
  g_string_append_printf (json->out, "%" G_GUINT64_FORMAT, value);
}

void
cli_json_double (CliJson *json, double value)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  before_value (json);
  if (!isfinite (value))
    {
      g_string_append (json->out, "null");
      return;
    }
  /* Shortest text that reads back as the same double, locale-free. */
  g_ascii_dtostr (buf, sizeof buf, value);
  g_string_append (json->out, buf);
}

void
cli_json_bool (CliJson *json, gboolean value)
{
  before_value (json);
  g_string_append (json->out, value ? "true" : "false");
}

void
cli_json_null (CliJson *json)
{
  before_value (json);
  g_string_append (json->out, "null");
}

/* One value of FIELD stored at P (a pointer into the message or into a
 * repeated field's array). */
static void
field_value (CliJson *json, const ProtobufCFieldDescriptor *field,
             const void *p)
{
  switch (field->type)
    {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      cli_json_int (json, *(const int32_t *)p);
      break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      cli_json_int (json, *(const int64_t *)p);
      break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      cli_json_uint (json, *(const uint32_t *)p);
      break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      cli_json_uint (json, *(const uint64_t *)p);
      break;
    case PROTOBUF_C_TYPE_FLOAT:
      cli_json_double (json, *(const float *)p);
      break;
    case PROTOBUF_C_TYPE_DOUBLE:
      cli_json_double (json, *(const double *)p);
      break;
    case PROTOBUF_C_TYPE_BOOL:
      cli_json_bool (json, *(const protobuf_c_boolean *)p);
      break;
    case PROTOBUF_C_TYPE_ENUM:
      {
        const ProtobufCEnumDescriptor *ed = field->descriptor;
        const ProtobufCEnumValue *ev
            = protobuf_c_enum_descriptor_get_value (ed, *(const int *)p);
        if (ev != NULL)
          cli_json_string (json, ev->name);
        else
          cli_json_int (json, *(const int *)p);
        break;
      }
    case PROTOBUF_C_TYPE_STRING:
      cli_json_string (json, *(char *const *)p);
      break;
    case PROTOBUF_C_TYPE_BYTES:
      {
        const ProtobufCBinaryData *bd = p;
        g_autofree char *b64 = g_base64_encode (bd->data, bd->len);
        cli_json_string (json, b64);
        break;
      }
    case PROTOBUF_C_TYPE_MESSAGE:
      {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL)
          cli_json_null (json);
        else
          cli_json_message (json, sub);
        break;
      }
    default:
      cli_json_null (json);
    }
}

/* Size of one element of a repeated field of TYPE. */
static gsize
element_size (ProtobufCType type)
{
  switch (type)
    {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      return 8;
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof (protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof (void *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof (ProtobufCBinaryData);
    default:
      return 0;
    }
}

void
cli_json_message (CliJson *json, const ProtobufCMessage *msg)
{
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  const char *base = (const char *)msg;

  cli_json_begin_object (json);
  for (unsigned i = 0; i < desc->n_fields; i++)
    {
      const ProtobufCFieldDescriptor *f = &desc->fields[i];
      cli_json_key (json, f->name);
      if (f->label == PROTOBUF_C_LABEL_REPEATED)
        {
          gsize n = *(const size_t *)(base + f->quantifier_offset);
          const char *arr = *(char *const *)(base + f->offset);
          gsize esz = element_size (f->type);
          cli_json_begin_array (json);
          for (gsize j = 0; j < n && esz > 0; j++)
            field_value (json, f, arr + j * esz);
          cli_json_end_array (json);
        }
      else
        {
          field_value (json, f, base + f->offset);
        }
    }
  cli_json_end_object (json);
}

const char *
cli_json_get (CliJson *json)
{
  /* Add the newline once, after the last top-level value. */
  if (json->stack->len == 0 && json->out->len > 0
      && json->out->str[json->out->len - 1] != '\n')
    g_string_append_c (json->out, '\n');
  return json->out->str;
}
