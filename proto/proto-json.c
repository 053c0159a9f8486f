/* A small JSON writer on GString (see proto-json.h): droverctl's --json
 * output and the scheduler's dashboard documents. */
#include "proto-json.h"

#include <math.h>

/* What the writer is inside of, one entry per open container. */
typedef struct
{
  gboolean is_object;
  guint n_items; /* values written so far in this container */
} ProtoJsonLevel;

struct _ProtoJson
{
  GString *out;
  GArray *stack;     /* ProtoJsonLevel */
  gboolean have_key; /* a key was written and waits for its value */
  gboolean pretty;   /* newlines and indentation, ": " after keys */
};

void
proto_json_escape (GString *out, const char *text)
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

ProtoJson *
proto_json_new (gboolean pretty)
{
  ProtoJson *json = g_new0 (ProtoJson, 1);
  json->pretty = pretty;
  json->out = g_string_new (NULL);
  json->stack = g_array_new (FALSE, FALSE, sizeof (ProtoJsonLevel));
  return json;
}

void
proto_json_free (ProtoJson *json)
{
  if (json == NULL)
    return;
  g_string_free (json->out, TRUE);
  g_array_unref (json->stack);
  g_free (json);
}

static ProtoJsonLevel *
top (ProtoJson *json)
{
  if (json->stack->len == 0)
    return NULL;
  return &g_array_index (json->stack, ProtoJsonLevel, json->stack->len - 1);
}

static void
newline_indent (ProtoJson *json)
{
  if (!json->pretty)
    return;
  g_string_append_c (json->out, '\n');
  for (guint i = 0; i < json->stack->len; i++)
    g_string_append (json->out, "  ");
}

/* Everything that precedes a value: comma and indentation in an array;
 * in an object the key already did that. */
static void
before_value (ProtoJson *json)
{
  ProtoJsonLevel *lvl = top (json);

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
proto_json_key (ProtoJson *json, const char *key)
{
  ProtoJsonLevel *lvl = top (json);

  g_return_if_fail (lvl != NULL && lvl->is_object && !json->have_key);
  if (lvl->n_items++ > 0)
    g_string_append_c (json->out, ',');
  newline_indent (json);
  proto_json_escape (json->out, key);
  g_string_append (json->out, json->pretty ? ": " : ":");
  json->have_key = TRUE;
}

static void
begin (ProtoJson *json, gboolean is_object)
{
  ProtoJsonLevel lvl = { is_object, 0 };

  before_value (json);
  g_string_append_c (json->out, is_object ? '{' : '[');
  g_array_append_val (json->stack, lvl);
}

static void
end (ProtoJson *json, gboolean is_object)
{
  ProtoJsonLevel *lvl = top (json);
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
proto_json_begin_object (ProtoJson *json)
{
  begin (json, TRUE);
}
void
proto_json_end_object (ProtoJson *json)
{
  end (json, TRUE);
}
void
proto_json_begin_array (ProtoJson *json)
{
  begin (json, FALSE);
}
void
proto_json_end_array (ProtoJson *json)
{
  end (json, FALSE);
}

void
proto_json_string (ProtoJson *json, const char *value)
{
  before_value (json);
  proto_json_escape (json->out, value);
}

void
proto_json_int (ProtoJson *json, gint64 value)
{
  before_value (json);
  g_string_append_printf (json->out, "%" G_GINT64_FORMAT, value);
}

void
proto_json_uint (ProtoJson *json, guint64 value)
{
  before_value (json);
  g_string_append_printf (json->out, "%" G_GUINT64_FORMAT, value);
}

void
proto_json_double (ProtoJson *json, double value)
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
proto_json_bool (ProtoJson *json, gboolean value)
{
  before_value (json);
  g_string_append (json->out, value ? "true" : "false");
}

void
proto_json_null (ProtoJson *json)
{
  before_value (json);
  g_string_append (json->out, "null");
}

/* One value of FIELD stored at P (a pointer into the message or into a
 * repeated field's array). */
static void
field_value (ProtoJson *json, const ProtobufCFieldDescriptor *field,
             const void *p)
{
  switch (field->type)
    {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      proto_json_int (json, *(const int32_t *)p);
      break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      proto_json_int (json, *(const int64_t *)p);
      break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      proto_json_uint (json, *(const uint32_t *)p);
      break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      proto_json_uint (json, *(const uint64_t *)p);
      break;
    case PROTOBUF_C_TYPE_FLOAT:
      proto_json_double (json, *(const float *)p);
      break;
    case PROTOBUF_C_TYPE_DOUBLE:
      proto_json_double (json, *(const double *)p);
      break;
    case PROTOBUF_C_TYPE_BOOL:
      proto_json_bool (json, *(const protobuf_c_boolean *)p);
      break;
    case PROTOBUF_C_TYPE_ENUM:
      {
        const ProtobufCEnumDescriptor *ed = field->descriptor;
        const ProtobufCEnumValue *ev
            = protobuf_c_enum_descriptor_get_value (ed, *(const int *)p);
        if (ev != NULL)
          proto_json_string (json, ev->name);
        else
          proto_json_int (json, *(const int *)p);
        break;
      }
    case PROTOBUF_C_TYPE_STRING:
      proto_json_string (json, *(char *const *)p);
      break;
    case PROTOBUF_C_TYPE_BYTES:
      {
        const ProtobufCBinaryData *bd = p;
        g_autofree char *b64 = g_base64_encode (bd->data, bd->len);
        proto_json_string (json, b64);
        break;
      }
    case PROTOBUF_C_TYPE_MESSAGE:
      {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL)
          proto_json_null (json);
        else
          proto_json_message (json, sub);
        break;
      }
    default:
      proto_json_null (json);
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
proto_json_message (ProtoJson *json, const ProtobufCMessage *msg)
{
  const ProtobufCMessageDescriptor *desc = msg->descriptor;
  const char *base = (const char *)msg;

  proto_json_begin_object (json);
  for (unsigned i = 0; i < desc->n_fields; i++)
    {
      const ProtobufCFieldDescriptor *f = &desc->fields[i];
      proto_json_key (json, f->name);
      if (f->label == PROTOBUF_C_LABEL_REPEATED)
        {
          gsize n = *(const size_t *)(base + f->quantifier_offset);
          const char *arr = *(char *const *)(base + f->offset);
          gsize esz = element_size (f->type);
          proto_json_begin_array (json);
          for (gsize j = 0; j < n && esz > 0; j++)
            field_value (json, f, arr + j * esz);
          proto_json_end_array (json);
        }
      else
        {
          field_value (json, f, base + f->offset);
        }
    }
  proto_json_end_object (json);
}

const char *
proto_json_get (ProtoJson *json)
{
  /* Add the newline once, after the last top-level value. */
  if (json->pretty && json->stack->len == 0 && json->out->len > 0
      && json->out->str[json->out->len - 1] != '\n')
    g_string_append_c (json->out, '\n');
  return json->out->str;
}

char *
proto_json_free_to_string (ProtoJson *json)
{
  char *text;

  proto_json_get (json);
  text = g_string_free (json->out, FALSE);
  g_array_unref (json->stack);
  g_free (json);
  return text;
}
