/* The migration module's error domain (codes in mig.h). */
#include "mig.h"

G_DEFINE_QUARK (drover_mig_error, mig_error)
