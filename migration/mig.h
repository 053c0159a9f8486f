/* libdrover-migration: live migration policy and data path. The pre-copy
 * cost model is a library of its own (mig-model.h, libdrover-model). */
#pragma once

#include <glib.h>

#include "mig-model.h"

G_BEGIN_DECLS

#define MIG_ERROR (mig_error_quark ())
GQuark mig_error_quark (void);

typedef enum
{
  MIG_ERROR_INVALID, /* inputs out of range */
  MIG_ERROR_RPC_REFUSED = 300, /* the control stream carried a call that is
                                * not part of a migration */
} MigError;

G_END_DECLS
