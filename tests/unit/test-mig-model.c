/* The pre-copy cost model against cases worked out by hand. */
#include "mig-model.h"

#define MiB (1024.0 * 1024.0)
#define GiB (1024.0 * MiB)

static MigModelInput
base_input (void)
{
  MigModelInput in;
  mig_model_input_init (&in);
  in.ram_bytes = (guint64)GiB;
  in.bandwidth = GiB; /* 1 GiB/s */
  in.switchover_ms = 0;
  return in;
}

/* Predicts IN, which must succeed and converge in ROUNDS rounds. */
static MigModelResult
predict_converging (const MigModelInput *in, guint rounds)
{
  MigModelResult r;

  g_assert_true (mig_model_predict (in, &r, NULL));
  g_assert_true (r.converges);
  g_assert_cmpuint (r.rounds, ==, rounds);
  return r;
}

/* An idle guest: one pass over RAM, nothing left to stop-and-copy. */
static void
test_idle (void)
{
  MigModelInput in = base_input ();
  MigModelResult r = predict_converging (&in, 1);

  g_assert_cmpfloat_with_epsilon (r.total_s, 1.0, 1e-9);
  g_assert_cmpfloat_with_epsilon (r.downtime_ms, 0.0, 1e-9);
  g_assert_cmpuint (r.bytes_sent, ==, (guint64)GiB);
}

/* Dirtying at a quarter of the link: the dirty set shrinks 4x a round.
 * With a 50 ms limit: 1 GiB (1 s) -> 256 MiB (250 ms) -> 64 MiB (62.5 ms)
 * -> 16 MiB left, 15.625 ms <= 50 ms, so three rounds then stop. */
static void
test_geometric (void)
{
  MigModelInput in = base_input ();
  MigModelResult r;

  in.dirty_rate = 256 * MiB;
  in.downtime_limit_ms = 50;
  r = predict_converging (&in, 3);
  g_assert_cmpfloat_with_epsilon (r.total_s, 1.328125, 1e-9);
  g_assert_cmpfloat_with_epsilon (r.downtime_ms, 15.625, 1e-6);
  g_assert_cmpuint (r.bytes_sent, ==, (guint64)(1360 * MiB));

  /* The default 300 ms limit is met after the first round. */
  in.downtime_limit_ms = 300;
  g_assert_true (mig_model_predict (&in, &r, NULL));
  g_assert_cmpuint (r.rounds, ==, 1);
  g_assert_cmpfloat_with_epsilon (r.downtime_ms, 250.0, 1e-6);
}

/* A small working set caps what each round has to resend. */
static void
test_working_set (void)
{
  MigModelInput in = base_input ();
  in.dirty_rate = 2 * GiB;         /* faster than the link ... */
  in.working_set_bytes = 64 * MiB; /* ... but only 64 MiB of it */
  in.downtime_limit_ms = 100;      /* 64 MiB takes 62.5 ms: fits */
  MigModelResult r = predict_converging (&in, 1);
  g_assert_cmpfloat_with_epsilon (r.downtime_ms, 62.5, 1e-6);
}

/* Dirtying faster than the link with a large working set never converges:
 * the model says so and prices a forced switchover. */
static void
test_no_convergence (void)
{
  MigModelInput in = base_input ();
  in.dirty_rate = 2 * GiB;
  in.working_set_bytes = 512 * MiB;
  in.max_rounds = 5;
  MigModelResult r;
  g_assert_true (mig_model_predict (&in, &r, NULL));
  g_assert_false (r.converges);
  g_assert_cmpuint (r.rounds, <=, 5);
  /* The forced switchover sends the whole working set while paused. */
  g_assert_cmpfloat_with_epsilon (r.downtime_ms, 500.0, 1e-6);
}

/* Compression multiplies the effective bandwidth and divides the wire
 * bytes. */
static void
test_compression (void)
{
  MigModelInput in = base_input ();
  in.compression_ratio = 2.0;
  MigModelResult r;
  g_assert_true (mig_model_predict (&in, &r, NULL));
  g_assert_cmpfloat_with_epsilon (r.total_s, 0.5, 1e-9);
  g_assert_cmpuint (r.bytes_wire, ==, (guint64)(512 * MiB));
  g_assert_cmpuint (r.bytes_sent, ==, (guint64)GiB);
}

/* Only touched memory costs a full send in the first round. */
static void
test_touched (void)
{
  MigModelInput in = base_input ();
  MigModelResult r;
  in.touched_bytes = (guint64)(256 * MiB);
  g_assert_true (mig_model_predict (&in, &r, NULL));
  g_assert_cmpfloat_with_epsilon (r.total_s, 0.25, 1e-9);
  g_assert_cmpuint (r.bytes_sent, ==, (guint64)(256 * MiB));
  /* More than RAM (QEMU's own overhead counted in) is capped at RAM. */
  in.touched_bytes = (guint64)(2 * GiB);
  g_assert_true (mig_model_predict (&in, &r, NULL));
  g_assert_cmpuint (r.bytes_sent, ==, (guint64)GiB);
}

/* A fixed setup cost adds to the total and nothing else. */
static void
test_setup (void)
{
  MigModelInput in = base_input ();
  MigModelResult r;
  in.setup_ms = 1500;
  g_assert_true (mig_model_predict (&in, &r, NULL));
  g_assert_cmpfloat_with_epsilon (r.total_s, 2.5, 1e-9);
  g_assert_cmpfloat_with_epsilon (r.downtime_ms, 0.0, 1e-9);
  g_assert_cmpuint (r.rounds, ==, 1);
}

static void
test_invalid (void)
{
  MigModelInput in = base_input ();
  MigModelResult r;
  g_autoptr (GError) error = NULL;
  in.bandwidth = 0;
  g_assert_false (mig_model_predict (&in, &r, &error));
  g_assert_error (error, MIG_MODEL_ERROR, MIG_MODEL_ERROR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mig-model/idle", test_idle);
  g_test_add_func ("/mig-model/geometric", test_geometric);
  g_test_add_func ("/mig-model/working-set", test_working_set);
  g_test_add_func ("/mig-model/no-convergence", test_no_convergence);
  g_test_add_func ("/mig-model/compression", test_compression);
  g_test_add_func ("/mig-model/setup", test_setup);
  g_test_add_func ("/mig-model/touched", test_touched);
  g_test_add_func ("/mig-model/invalid", test_invalid);
  return g_test_run ();
}
