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
} MigError;

G_END_DECLS
