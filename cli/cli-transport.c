/* Hints for calls that failed on the way to the scheduler. gRPC reports a
 * plaintext client cut off by a TLS server only as "Socket closed" (and
 * the reverse as a failed handshake), which tells an operator nothing
 * about the flag that is wrong. */
#include "cli.h"

#include "proto.h"

#include <string.h>

const char *
cli_transport_hint (gboolean insecure, int code, const char *message)
{
  if (code != PROTO_STATUS_UNAVAILABLE
      && code != PROTO_STATUS_DEADLINE_EXCEEDED)
    return NULL;
  if (message != NULL && strstr (message, "Connection refused") != NULL)
    return "nothing listens there: check --scheduler (or "
           "$DROVER_SCHEDULER) and that the scheduler runs.";
  if (insecure)
    return "the scheduler closed a plaintext connection: it serves TLS "
           "(the default). Drop --insecure and give --tls-dir DIR (or set "
           "DROVER_TLS_DIR); --insecure only works with a scheduler started "
           "with --insecure.";
  return "a scheduler started with --insecure speaks plaintext and needs "
         "droverctl --insecure; otherwise check the address and that the "
         "scheduler runs.";
}
