/* libdrover-migration: live migration policy and data path.
 *
 * This header holds what every part of the module shares: its error
 * domain and codes. The channel is in mig-channel.h, the agent-driven
 * migration (source, destination, controller, libvirt glue) in
 * mig-migrate.h. The pre-copy cost model is a library of its own
 * (mig-model.h, libdrover-model). */
#pragma once

#include <glib.h>

#include "mig-model.h"

G_BEGIN_DECLS

/* The module's one error domain (defined in mig.c). */
#define MIG_ERROR (mig_error_quark ())
GQuark mig_error_quark (void);

/* Every code in MIG_ERROR. Three blocks, numbered apart so that a code
 * says which layer raised it: general (0), channel (100), migration
 * (200). The agent maps them to gRPC status codes. */
typedef enum
{
  /* General */
  MIG_ERROR_INVALID = 0, /* an argument out of range: job id, chunk size,
                            domain XML, a job already expected */

  /* MigChannel (mig-channel.h) */
  MIG_ERROR_CHANNEL_PROTOCOL = 100, /* malformed or corrupt frame, bad
                                       HELLO, unexpected frame type */
  MIG_ERROR_CHANNEL_AUTH,           /* HELLO refused: bad, reused or
                                       expired token, wrong stream kind,
                                       a peer certificate not the host's
                                       the token is for; a listener that
                                       is not the destination host's */
  MIG_ERROR_CHANNEL_CLOSED,         /* peer went away before END */
  MIG_ERROR_CHANNEL_PEER,           /* the peer reported an error */
  MIG_ERROR_CHANNEL_ABORTED,        /* mig_channel_close() before the end */
  MIG_ERROR_CHANNEL_LOCAL,          /* the local fd failed */
  MIG_ERROR_CHANNEL_FAULT,          /* injected by the fault transport */

  /* Migration: source, destination (mig-migrate.h) */
  MIG_ERROR_FAILED = 200, /* libvirt or QEMU failed the migration, or the
                             VM could not be read */
  MIG_ERROR_ABORTED,      /* the controller or the caller aborted it */
  MIG_ERROR_UNSUPPORTED,  /* the VM cannot be live-migrated (not running) */
  MIG_ERROR_AUTH,         /* mig_dst_forget() with another job's token */
  MIG_ERROR_LOCAL,        /* a local socket could not be made or reached */
  MIG_ERROR_RPC_REFUSED,  /* the libvirt control stream carried a call that is
                             not part of a migration (mig-rpc-filter.h) */
} MigError;

G_END_DECLS
