/* The error domain of libdrover-scheduler. */
#include "sched-private.h"

G_DEFINE_QUARK (drover - sched - error - quark, sched_error)
