/* libdrover-model: the pre-copy cost model, a small library of its own.
 *
 * Given what we know about a VM and the link, predict how a pre-copy
 * migration will go. The scheduler uses it before starting (admission,
 * ETA) and the balancer to price a move; the prediction is stored next to
 * the measured result so the model can be checked against reality. Pure
 * arithmetic: no libvirt, no sockets, no clock. The scheduler links this
 * and nothing else of the migration module.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MIG_MODEL_ERROR (mig_model_error_quark ())
GQuark mig_model_error_quark (void);

typedef enum
{
  MIG_MODEL_ERROR_INVALID, /* inputs out of range */
} MigModelError;

/* What the model needs to know. Rates are bytes per second. */
typedef struct
{
  guint64 ram_bytes;         /* guest RAM */
  guint64 touched_bytes;     /* RAM that holds data; the rest is zero pages,
                              * which cost next to nothing. 0 = all of it */
  guint64 working_set_bytes; /* pages the guest keeps dirtying; 0 = all RAM */
  double dirty_rate;         /* bytes dirtied per second */
  double bandwidth;          /* link bytes per second, after the channel */
  double compression_ratio;  /* payload / wire bytes, >= 1; 0 means 1 */
  guint32 downtime_limit_ms; /* switch over once the rest fits in this */
  guint32 max_rounds;        /* give up on convergence after this many */
  guint32 switchover_ms;     /* fixed cost of the final handover */
  guint32 setup_ms;          /* fixed cost before the first round: preparing
                              * the destination, connecting, starting QEMU */
} MigModelInput;

typedef struct
{
  gboolean converges; /* TRUE if the limit is met within max_rounds */
  guint32 rounds;     /* pre-copy rounds before stop-and-copy */
  double total_s;     /* start to resumed on the destination */
  double downtime_ms; /* VM paused: last dirty pages + switchover */
  guint64 bytes_sent; /* payload bytes (what QEMU sends) */
  guint64 bytes_wire; /* bytes on the wire after compression */
} MigModelResult;

/* Fills INPUT with the defaults QEMU and Drover use: 300 ms downtime
 * limit, 30 rounds, 20 ms switchover, no setup cost, no compression. */
void mig_model_input_init (MigModelInput *input);

/* Predicts a pre-copy migration. Fails only on nonsense input (zero
 * bandwidth, zero RAM, negative rates) with MIG_MODEL_ERROR_INVALID. A
 * migration that would not converge is not an error: RESULT->converges is FALSE
 * and the figures describe a forced switchover after max_rounds. */
gboolean mig_model_predict (const MigModelInput *input, MigModelResult *result,
                            GError **error);

G_END_DECLS
