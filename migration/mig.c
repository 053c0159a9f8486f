/* The migration module's error domain (codes in mig.h). */
#include "mig.h"

G_DEFINE_QUARK (drover - mig - error - quark, mig_error)
