/* JSON text from GLib and protobuf-c, with no JSON library: droverctl's
 * --json output and the scheduler's dashboard documents share it, so
 * both speak the same shape of every message. */
#pragma once

#include <glib.h>
#include <protobuf-c/protobuf-c.h>

G_BEGIN_DECLS

/* Appends TEXT to OUT as a JSON string literal (with quotes). Control
 * characters are escaped; invalid UTF-8 becomes U+FFFD, so the result is
 * always valid JSON. */
void proto_json_escape (GString *out, const char *text);

/* A streaming JSON writer on a GString. Commas (and, pretty, two-space
 * indentation) are handled by the writer; the caller only opens, closes
 * and writes values. Misuse (a value in an object without a key) is a
 * programming error. */
typedef struct _ProtoJson ProtoJson;

/* PRETTY: one value a line, indented, for people (droverctl --json);
 * otherwise one line with no spaces, for programs (the dashboard). */
ProtoJson *proto_json_new (gboolean pretty);
void proto_json_free (ProtoJson *json);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (ProtoJson, proto_json_free)

void proto_json_begin_object (ProtoJson *json);
void proto_json_end_object (ProtoJson *json);
void proto_json_begin_array (ProtoJson *json);
void proto_json_end_array (ProtoJson *json);
/* Names the next value inside an object. */
void proto_json_key (ProtoJson *json, const char *key);
void proto_json_string (ProtoJson *json, const char *value);
void proto_json_int (ProtoJson *json, gint64 value);
void proto_json_uint (ProtoJson *json, guint64 value);
/* NaN and infinities become null (JSON has no spelling for them). */
void proto_json_double (ProtoJson *json, double value);
void proto_json_bool (ProtoJson *json, gboolean value);
void proto_json_null (ProtoJson *json);

/* Writes MSG as an object whose keys are the .proto field names (already
 * snake_case). Every field is written, proto3 defaults included; absent
 * sub-messages are null, repeated fields arrays, 64-bit integers numbers,
 * bytes base64 strings, enums their names. */
void proto_json_message (ProtoJson *json, const ProtobufCMessage *msg);

/* Returns the text written so far, with a trailing newline when pretty,
 * and resets nothing. Valid JSON only once every container is closed. */
const char *proto_json_get (ProtoJson *json);

/* Frees JSON and returns its text, as proto_json_get would have. */
char *proto_json_free_to_string (ProtoJson *json);

G_END_DECLS
