/* A VM's migration defaults (issue 17): SetVmMigration. */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

/* Checks POSTCOPY for VmSpec.migration_postcopy: "auto" or "never"
 * (SCHED_ERROR_INVALID otherwise; "now" is a choice for one migration,
 * not a default). */
gboolean sched_migration_check_postcopy_default (const char *postcopy,
                                                 GError **error);

/* SetVmMigration: stores the defaults in the VM's spec. */
SchedHandler sched_migration_handle_set_vm;

G_END_DECLS
