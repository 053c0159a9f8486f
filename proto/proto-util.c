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

/* Every channel argument Drover sets, with its value on clients and on
 * servers (NONE: not set on that side).
 *
 * Keepalive: clients ping every 20 s of idleness (also without calls:
 * agents keep long-lived channels to the scheduler), the server allows
 * pings every 10 s, so it never answers GOAWAY too_many_pings. The server
 * pings too, to notice clients that vanished mid-stream. */
#define NONE G_MININT
static const struct
{
  const char *key;
  int client, server;
} channel_args[] = {
  { GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, PROTO_MAX_MESSAGE_SIZE,
    PROTO_MAX_MESSAGE_SIZE },
  { GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, PROTO_MAX_MESSAGE_SIZE,
    PROTO_MAX_MESSAGE_SIZE },
  { GRPC_ARG_KEEPALIVE_TIME_MS, 20000, 30000 },
  { GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000, 10000 },
  { GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1, 1 },
  { GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, NONE, 10000 },
  { GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0, 0 },
  /* Daemons restart: reconnect within seconds, not minutes. */
  { GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500, NONE },
  { GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5000, NONE },
  /* No service config lookups, no proxies: loopback / cluster only. */
  { GRPC_ARG_ENABLE_HTTP_PROXY, 0, NONE },
  /* gRPC sets SO_REUSEPORT by default: a second daemon on the same port
   * would then start fine and silently share the connections. */
  { GRPC_ARG_ALLOW_REUSEPORT, NONE, 0 },
};

/* Builds one side's grpc_channel_args from the table. */
static grpc_channel_args *
channel_args_new (gboolean server)
{
  grpc_channel_args *args = g_new0 (grpc_channel_args, 1);

  args->args = g_new0 (grpc_arg, G_N_ELEMENTS (channel_args));
  for (gsize i = 0; i < G_N_ELEMENTS (channel_args); i++)
    {
      int value = server ? channel_args[i].server : channel_args[i].client;

      if (value == NONE)
        continue;
      args->args[args->num_args++] = (grpc_arg){
        .type = GRPC_ARG_INTEGER,
        .key = (char *)channel_args[i].key,
        .value.integer = value,
      };
    }
  return args;
}

const grpc_channel_args *
proto_channel_args (gboolean server)
{
  /* Built once per side and kept for the process. */
  static grpc_channel_args *sides[2];

  if (g_once_init_enter (&sides[server != 0]))
    g_once_init_leave (&sides[server != 0], channel_args_new (server));
  return sides[server != 0];
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
