/* Pre-copy cost model.
 *
 * Round 0 sends all of RAM. While round i runs for t_i seconds the guest
 * dirties min(working set, dirty_rate * t_i) bytes, which round i+1 must
 * send again. QEMU switches over as soon as what is left could be sent
 * within the downtime limit (threshold = bandwidth x limit), so the model
 * stops there too. If the dirty set stops shrinking, pre-copy cannot
 * converge: we count rounds up to max_rounds and then model the forced
 * switchover (the controller pauses the VM and sends the rest).
 */
#include "mig-model.h"

#include <math.h>

G_DEFINE_QUARK (drover_mig_model_error, mig_model_error)

void
mig_model_input_init (MigModelInput *input)
{
  *input = (MigModelInput){
    .compression_ratio = 1.0,
    .downtime_limit_ms = 300,
    .max_rounds = 30,
    .switchover_ms = 20,
  };
}

gboolean
mig_model_predict (const MigModelInput *in, MigModelResult *out, GError **error)
{
  if (in->ram_bytes == 0 || !(in->bandwidth > 0) || !(in->dirty_rate >= 0)
      || isnan (in->compression_ratio) || in->compression_ratio < 0)
    {
      g_set_error (
          error, MIG_MODEL_ERROR, MIG_MODEL_ERROR_INVALID,
          "cost model needs RAM > 0, bandwidth > 0 and a dirty rate >= 0");
      return FALSE;
    }

  double ratio = in->compression_ratio >= 1.0 ? in->compression_ratio : 1.0;
  /* Compression lets the same link carry more payload per second. */
  double payload_bw = in->bandwidth * ratio;
  double ws
      = (double)(in->working_set_bytes && in->working_set_bytes < in->ram_bytes
                     ? in->working_set_bytes
                     : in->ram_bytes);
  double threshold = payload_bw * in->downtime_limit_ms / 1000.0;
  guint32 max_rounds = in->max_rounds ? in->max_rounds : 1;

  /* Round 0 sends every page that holds data; zero pages go as markers. */
  double remaining
      = (double)(in->touched_bytes && in->touched_bytes < in->ram_bytes
                     ? in->touched_bytes
                     : in->ram_bytes);
  double sent = 0, elapsed = in->setup_ms / 1000.0, prev_remaining = INFINITY;
  guint32 rounds = 0;
  gboolean converges = FALSE;

  while (rounds < max_rounds)
    {
      double t = remaining / payload_bw;
      sent += remaining;
      elapsed += t;
      rounds++;
      prev_remaining = remaining;
      remaining = MIN (ws, in->dirty_rate * t);
      if (remaining <= threshold)
        {
          converges = TRUE;
          break;
        }
      /* No progress: the dirty set refills as fast as we drain it. */
      if (remaining >= prev_remaining && rounds > 1)
        break;
    }

  /* Stop-and-copy: the VM is paused while the rest goes over. */
  double stop_s = remaining / payload_bw;
  sent += remaining;
  elapsed += stop_s + in->switchover_ms / 1000.0;

  out->converges = converges;
  out->rounds = rounds;
  out->total_s = elapsed;
  out->downtime_ms = stop_s * 1000.0 + in->switchover_ms;
  out->bytes_sent = (guint64)llround (sent);
  out->bytes_wire = (guint64)llround (sent / ratio);
  return TRUE;
}
