/* MigRpcFilter: libvirt RPC packets in, only a migration's calls out.
 * See mig-rpc-filter.h for what and why. */
#include "mig-rpc-filter.h"

#include <string.h>

#include "mig.h"

#define HEADER_LEN 28 /* length word + six header fields */

/* remote_typed_param value types (virTypedParameterType). */
enum
{
  PARAM_INT = 1,
  PARAM_UINT,
  PARAM_LLONG,
  PARAM_ULLONG,
  PARAM_DOUBLE,
  PARAM_BOOLEAN,
  PARAM_STRING,
};

/* More typed parameters than this in one call is not a migration
 * (libvirt's own limit, REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX, is 64). */
#define MAX_PARAMS 64
/* Longer parameter names than this are none of libvirt's. */
#define MAX_PARAM_NAME 64

typedef enum
{
  STATE_HEADER, /* collecting a packet's first HEADER_LEN bytes in held */
  STATE_PASS,   /* passing REMAINING body bytes straight through */
  STATE_HOLD,   /* collecting the whole packet in held, then checking it */
} State;

struct _MigRpcFilter
{
  MigRpcXmlCheckFunc check;
  gpointer user_data;
  MigRpcParamCheckFunc param_check;
  gpointer param_data;
  State state;
  GByteArray *held;
  guint32 remaining; /* body bytes of the current packet still to come */
  guint32 proc;      /* of the current packet */
  guint64 packets;
  GError *failed; /* sticky: the first refusal */
};

MigRpcFilter *
mig_rpc_filter_new (MigRpcXmlCheckFunc check, gpointer user_data)
{
  MigRpcFilter *filter = g_new0 (MigRpcFilter, 1);

  filter->check = check;
  filter->user_data = user_data;
  filter->held = g_byte_array_new ();
  return filter;
}

void
mig_rpc_filter_set_param_check (MigRpcFilter *filter,
                                MigRpcParamCheckFunc check, gpointer user_data)
{
  filter->param_check = check;
  filter->param_data = user_data;
}

void
mig_rpc_filter_free (MigRpcFilter *filter)
{
  if (filter == NULL)
    return;
  g_byte_array_unref (filter->held);
  g_clear_error (&filter->failed);
  g_free (filter);
}

guint64
mig_rpc_filter_get_packets (MigRpcFilter *filter)
{
  return filter->packets;
}

static guint32
get_be32 (const guint8 *p)
{
  return ((guint32)p[0] << 24) | ((guint32)p[1] << 16) | ((guint32)p[2] << 8)
         | (guint32)p[3];
}

/* Records the first refusal; every later feed fails with it. */
static gboolean refuse (MigRpcFilter *filter, GError **error,
                        const char *format, ...) G_GNUC_PRINTF (3, 4);
static gboolean
refuse (MigRpcFilter *filter, GError **error, const char *format, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  filter->failed = g_error_new (MIG_ERROR, MIG_ERROR_RPC_REFUSED,
                                "libvirt control stream: %s", msg);
  g_propagate_error (error, g_error_copy (filter->failed));
  return FALSE;
}

/* The remote procedures a peer-to-peer migration calls on the
 * destination. */
static gboolean
remote_proc_allowed (guint32 proc)
{
  switch (proc)
    {
    case MIG_RPC_PROC_CONNECT_OPEN:
    case MIG_RPC_PROC_CONNECT_CLOSE:
    case MIG_RPC_PROC_CONNECT_SUPPORTS_FEATURE:
    case MIG_RPC_PROC_AUTH_LIST:
    case MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS:
    case MIG_RPC_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS:
    case MIG_RPC_PROC_CONNECT_REGISTER_CLOSE_CALLBACK:
    case MIG_RPC_PROC_CONNECT_UNREGISTER_CLOSE_CALLBACK:
      return TRUE;
    default:
      return FALSE;
    }
}

/* Decides on a complete header in filter->held. */
static gboolean
check_header (MigRpcFilter *filter, GError **error)
{
  const guint8 *h = filter->held->data;
  guint32 len = get_be32 (h);
  guint32 prog = get_be32 (h + 4);
  guint32 vers = get_be32 (h + 8);
  guint32 proc = get_be32 (h + 12);
  guint32 type = get_be32 (h + 16);

  if (len < HEADER_LEN || len > MIG_RPC_MAX_PACKET)
    return refuse (filter, error, "packet length %u out of range", len);
  if (prog == MIG_RPC_KEEPALIVE_PROGRAM)
    {
      if (vers != MIG_RPC_KEEPALIVE_VERSION || type != MIG_RPC_TYPE_MESSAGE
          || (proc != MIG_RPC_KEEPALIVE_PING && proc != MIG_RPC_KEEPALIVE_PONG))
        return refuse (filter, error,
                       "keepalive packet (version %u, procedure %u, type %u) "
                       "refused",
                       vers, proc, type);
    }
  else if (prog == MIG_RPC_REMOTE_PROGRAM)
    {
      if (vers != MIG_RPC_REMOTE_VERSION || type != MIG_RPC_TYPE_CALL)
        return refuse (filter, error,
                       "remote packet of version %u, type %u refused", vers,
                       type);
      if (!remote_proc_allowed (proc))
        return refuse (filter, error,
                       "remote procedure %u is not part of a migration", proc);
    }
  else
    return refuse (filter, error, "program 0x%08x refused", prog);
  filter->proc = proc;
  filter->remaining = len - HEADER_LEN;
  return TRUE;
}

/* A cursor over an XDR body. */
typedef struct
{
  const guint8 *p;
  gsize left;
} Xdr;

static gboolean
xdr_u32 (Xdr *x, guint32 *v)
{
  if (x->left < 4)
    return FALSE;
  *v = get_be32 (x->p);
  x->p += 4;
  x->left -= 4;
  return TRUE;
}

static gboolean
xdr_skip (Xdr *x, gsize n)
{
  if (x->left < n)
    return FALSE;
  x->p += n;
  x->left -= n;
  return TRUE;
}

/* Variable-length opaque data or string: length, bytes, padding to 4. */
static gboolean
xdr_opaque (Xdr *x, const guint8 **data, guint32 *len)
{
  gsize padded;

  if (!xdr_u32 (x, len))
    return FALSE;
  padded = ((gsize)*len + 3) & ~(gsize)3;
  if (x->left < padded)
    return FALSE;
  *data = x->p;
  return xdr_skip (x, padded);
}

/* Runs the check on LEN bytes of XML at DATA. */
static gboolean
check_xml (MigRpcFilter *filter, const char *what, const guint8 *data,
           guint32 len, GError **error)
{
  g_autofree char *xml = NULL;
  g_autoptr (GError) local = NULL;

  if (filter->check == NULL)
    return TRUE;
  /* The opaque may or may not carry a terminating NUL; none inside. */
  if (len > 0 && data[len - 1] == '\0')
    len--;
  if (memchr (data, '\0', len) != NULL)
    return refuse (filter, error, "%s holds a NUL byte", what);
  xml = g_strndup ((const char *)data, len);
  if (!filter->check (what, xml, filter->user_data, &local))
    return refuse (filter, error, "%s refused: %s", what, local->message);
  return TRUE;
}

/* Prepare3Params and Finish3Params start alike:
 *   remote_typed_param params<>; opaque cookie_in<>; ...
 * The domain XML parameters and the cookie go to the check. */
static gboolean
check_migration_body (MigRpcFilter *filter, GError **error)
{
  Xdr x = { filter->held->data + HEADER_LEN, filter->held->len - HEADER_LEN };
  const char *call = filter->proc == MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS
                         ? "Prepare3"
                         : "Finish3";
  const guint8 *data;
  guint32 n, len;

  if (!xdr_u32 (&x, &n) || n > MAX_PARAMS)
    return refuse (filter, error, "%s: bad parameter count", call);
  for (guint32 i = 0; i < n; i++)
    {
      const guint8 *field;
      guint32 field_len, type, skip = 0;
      g_autofree char *name = NULL;
      g_autofree char *value = NULL;
      g_autoptr (GError) local = NULL;

      if (!xdr_opaque (&x, &field, &field_len) || !xdr_u32 (&x, &type))
        return refuse (filter, error, "%s: truncated parameter", call);
      if (field_len == 0 || field_len > MAX_PARAM_NAME
          || memchr (field, '\0', field_len) != NULL)
        return refuse (filter, error, "%s: bad parameter name", call);
      name = g_strndup ((const char *)field, field_len);
      switch (type)
        {
        case PARAM_INT:
        case PARAM_UINT:
        case PARAM_BOOLEAN:
          skip = 4;
          break;
        case PARAM_LLONG:
        case PARAM_ULLONG:
        case PARAM_DOUBLE:
          skip = 8;
          break;
        case PARAM_STRING:
          if (!xdr_opaque (&x, &data, &len))
            return refuse (filter, error, "%s: truncated parameter %s", call,
                           name);
          if (memchr (data, '\0', len) != NULL)
            return refuse (filter, error, "%s: parameter %s holds a NUL byte",
                           call, name);
          value = g_strndup ((const char *)data, len);
          break;
        default:
          return refuse (filter, error, "%s: parameter %s has type %u", call,
                         name, type);
        }
      if (!xdr_skip (&x, skip))
        return refuse (filter, error, "%s: truncated parameter %s", call, name);
      if (filter->param_check
          && !filter->param_check (call, name, (int)type, value,
                                   filter->param_data, &local))
        return refuse (filter, error, "%s: parameter %s refused: %s", call,
                       name, local->message);
      if (value
          && (strcmp (name, "destination_xml") == 0
              || strcmp (name, "persistent_xml") == 0)
          && !check_xml (filter, name, data, len, error))
        return FALSE;
    }
  if (!xdr_opaque (&x, &data, &len))
    return refuse (filter, error, "%s: truncated cookie", call);
  if (len > 0 && !check_xml (filter, "cookie", data, len, error))
    return FALSE;
  return TRUE;
}

/* The current packet is complete. */
static void
packet_done (MigRpcFilter *filter)
{
  filter->packets++;
  filter->state = STATE_HEADER;
  g_byte_array_set_size (filter->held, 0);
}

gboolean
mig_rpc_filter_feed (MigRpcFilter *filter, const guint8 *buf, gsize len,
                     GByteArray *out, GError **error)
{
  if (filter->failed != NULL)
    {
      g_propagate_error (error, g_error_copy (filter->failed));
      return FALSE;
    }
  while (len > 0)
    {
      gsize n;

      switch (filter->state)
        {
        case STATE_HEADER:
          n = MIN (len, HEADER_LEN - filter->held->len);
          g_byte_array_append (filter->held, buf, n);
          buf += n;
          len -= n;
          if (filter->held->len < HEADER_LEN)
            break;
          if (!check_header (filter, error))
            return FALSE;
          if (filter->proc == MIG_RPC_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS
              || filter->proc == MIG_RPC_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS)
            filter->state = STATE_HOLD;
          else
            {
              g_byte_array_append (out, filter->held->data, HEADER_LEN);
              g_byte_array_set_size (filter->held, 0);
              filter->state = STATE_PASS;
            }
          break;
        case STATE_PASS:
          n = MIN (len, filter->remaining);
          g_byte_array_append (out, buf, n);
          buf += n;
          len -= n;
          filter->remaining -= n;
          break;
        case STATE_HOLD:
          n = MIN (len, filter->remaining);
          g_byte_array_append (filter->held, buf, n);
          buf += n;
          len -= n;
          filter->remaining -= n;
          break;
        }
      if (filter->state == STATE_HEADER || filter->remaining > 0)
        continue;
      if (filter->state == STATE_HOLD)
        {
          if (!check_migration_body (filter, error))
            return FALSE;
          g_byte_array_append (out, filter->held->data, filter->held->len);
        }
      packet_done (filter);
    }
  return TRUE;
}
