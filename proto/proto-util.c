/* libdrover-proto: process setup, gRPC logging, shared helpers. */
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/support/log.h>

#include "proto-private.h"

G_DEFINE_QUARK (drover_proto_error, proto_error)

/* gRPC logs from its own threads; GLib logging is thread-safe. gRPC's
 * errors are mostly about peers (bad handshakes, resets), which the
 * caller sees as call errors anyway, so they stay below warning level:
 * a g_warning would also abort test binaries (fatal-warnings). */
static void
proto_grpc_log (gpr_log_func_args *args)
{
  const char *file = args->file ? strrchr (args->file, '/') : NULL;

  file = file ? file + 1 : (args->file ? args->file : "?");
  if (args->severity == GPR_LOG_SEVERITY_ERROR)
    g_info ("grpc: %s:%d: %s", file, args->line, args->message);
  else
    g_debug ("grpc: %s:%d: %s", file, args->line, args->message);
}

void
proto_init (void)
{
  gpr_set_log_function (proto_grpc_log);
  grpc_init ();
}

void
proto_shutdown (void)
{
  grpc_shutdown ();
}

void
proto_ref_grpc (void)
{
  proto_init ();
}

void
proto_unref_grpc (void)
{
  grpc_shutdown ();
}

const grpc_channel_args *
proto_channel_args (gboolean server)
{
  /* Keepalive: clients ping every 20 s of idleness (also without calls:
   * agents keep long-lived channels to the scheduler), the server allows
   * pings every 10 s, so it never answers GOAWAY too_many_pings. The
   * server pings too, to notice clients that vanished mid-stream. */
  static grpc_arg client_args[] = {
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
      { .integer = PROTO_MAX_MESSAGE_SIZE } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
      { .integer = PROTO_MAX_MESSAGE_SIZE } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_KEEPALIVE_TIME_MS,
      { .integer = 20000 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      { .integer = 10000 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
      { .integer = 1 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
      { .integer = 0 } },
    /* Daemons restart: reconnect within seconds, not minutes. */
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
      { .integer = 500 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
      { .integer = 5000 } },
    /* No service config lookups, no proxies: loopback / cluster only. */
    { GRPC_ARG_INTEGER, (char *)GRPC_ARG_ENABLE_HTTP_PROXY, { .integer = 0 } },
  };
  static grpc_arg server_args[] = {
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
      { .integer = PROTO_MAX_MESSAGE_SIZE } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
      { .integer = PROTO_MAX_MESSAGE_SIZE } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_KEEPALIVE_TIME_MS,
      { .integer = 30000 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      { .integer = 10000 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
      { .integer = 1 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      { .integer = 10000 } },
    { GRPC_ARG_INTEGER,
      (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA,
      { .integer = 0 } },
    /* gRPC sets SO_REUSEPORT by default: a second daemon on the same
     * port would then start fine and silently share the connections. */
    { GRPC_ARG_INTEGER, (char *)GRPC_ARG_ALLOW_REUSEPORT, { .integer = 0 } },
  };
  static const grpc_channel_args cargs
      = { G_N_ELEMENTS (client_args), client_args };
  static const grpc_channel_args sargs
      = { G_N_ELEMENTS (server_args), server_args };

  return server ? &sargs : &cargs;
}

gboolean
proto_name_validate (const char *what, const char *name, GError **error)
{
  gsize len = name ? strlen (name) : 0;
  gboolean ok = len >= 1 && len <= 63;

  for (gsize i = 0; ok && i < len; i++)
    {
      char c = name[i];
      ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    }
  if (!ok)
    {
      /* The name comes from the wire or the command line: escape it and
       * keep the message short. */
      g_autofree char *cut = g_strndup (name ? name : "", 64);
      g_autofree char *esc0 = g_strescape (cut, NULL);
      g_autoptr (GString) esc = g_string_new (esc0);

      g_string_replace (esc, "'", "\\'", 0);

      g_set_error (
          error, PROTO_ERROR, PROTO_STATUS_INVALID_ARGUMENT,
          "invalid %s name '%s%s': must be 1-63 characters of a-z, 0-9 and '-'",
          what ? what : "", esc->str, len > 64 ? "..." : "");
    }
  return ok;
}

gint64
proto_now_ms (void)
{
  return g_get_real_time () / 1000;
}
