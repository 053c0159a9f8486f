/* The agent's dirty rate measurements (agent-dirty-rate.c): what the
 * statistics' dirtyrate.* fields say, which VMs are due for a calculation
 * (running, once per interval, never while busy: a migration), and what
 * a report carries. No libvirt connection: typed parameters only. */
#include "agent-dirty-rate.h"

#define MiB (1024.0 * 1024.0)

typedef struct
{
  virTypedParameterPtr params;
  int n, max;
} Params;

static void
params_clear (Params *p)
{
  virTypedParamsFree (p->params, p->n);
  *p = (Params){ 0 };
}

/* A record with calc_status STATUS, MIB MiB/s (unless < -1: absent) and
 * calc_start_time START. */
static void
params_set (Params *p, int status, long long mib, long long start)
{
  params_clear (p);
  g_assert_cmpint (virTypedParamsAddInt (&p->params, &p->n, &p->max,
                                         "dirtyrate.calc_status", status),
                   ==, 0);
  if (mib >= -1)
    g_assert_cmpint (virTypedParamsAddLLong (&p->params, &p->n, &p->max,
                                             "dirtyrate.megabytes_per_second",
                                             mib),
                     ==, 0);
  g_assert_cmpint (virTypedParamsAddLLong (&p->params, &p->n, &p->max,
                                           "dirtyrate.calc_start_time", start),
                   ==, 0);
  g_assert_cmpint (virTypedParamsAddInt (&p->params, &p->n, &p->max,
                                         "dirtyrate.calc_period", 1),
                   ==, 0);
}

static void
test_parse (void)
{
  Params p = { 0 };
  double rate = -1;
  gint64 start = -1;

  /* No fields at all (an older libvirt, a domain that is not running). */
  g_assert_false (agent_dirty_rate_parse (NULL, 0, &rate, &start));
  g_assert_cmpfloat (rate, ==, 0);
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED, 8, 4242);
  g_assert_true (agent_dirty_rate_parse (p.params, p.n, &rate, &start));
  g_assert_cmpfloat (rate, ==, 8 * MiB);
  g_assert_cmpint (start, ==, 4242);
  /* Idle: a measured 0. */
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED, 0, 4243);
  g_assert_true (agent_dirty_rate_parse (p.params, p.n, &rate, &start));
  g_assert_cmpfloat (rate, ==, 0);
  /* Not measured (yet), or garbage. */
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURING, 8, 1);
  g_assert_false (agent_dirty_rate_parse (p.params, p.n, &rate, &start));
  params_set (&p, VIR_DOMAIN_DIRTYRATE_UNSTARTED, 8, 1);
  g_assert_false (agent_dirty_rate_parse (p.params, p.n, &rate, &start));
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED, -1, 1);
  g_assert_false (agent_dirty_rate_parse (p.params, p.n, &rate, &start));
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED, -2, 1); /* absent */
  g_assert_false (agent_dirty_rate_parse (p.params, p.n, &rate, &start));
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED,
              (long long)AGENT_DIRTY_RATE_MAX_MIB_S + 1, 1);
  g_assert_false (agent_dirty_rate_parse (p.params, p.n, &rate, &start));
  g_assert_cmpfloat (rate, ==, 0);
  params_clear (&p);
}

static gboolean
busy_named (const char *name, gpointer user_data)
{
  return g_strcmp0 (name, user_data) == 0;
}

static gboolean
due_has (GPtrArray *due, const char *uuid)
{
  for (guint i = 0; i < due->len; i++)
    if (g_strcmp0 (due->pdata[i], uuid) == 0)
      return TRUE;
  return FALSE;
}

static void
test_due (void)
{
  g_autoptr (AgentDirtyRate) d = agent_dirty_rate_new ();
  const gint64 t0 = 1000 * G_USEC_PER_SEC;
  const gint64 iv = AGENT_DIRTY_RATE_INTERVAL_US;
  GPtrArray *due;

  /* Nothing seen: nothing due. */
  due = agent_dirty_rate_due (d, t0, NULL, NULL);
  g_assert_cmpuint (due->len, ==, 0);
  g_ptr_array_unref (due);
  agent_dirty_rate_observe (d, "u-run", "run", TRUE, NULL, 0, t0, NULL);
  agent_dirty_rate_observe (d, "u-off", "off", FALSE, NULL, 0, t0, NULL);
  agent_dirty_rate_observe (d, "u-mig", "mig", TRUE, NULL, 0, t0, NULL);
  /* The running ones at once, except the one that migrates. */
  due = agent_dirty_rate_due (d, t0, busy_named, (gpointer) "mig");
  g_assert_cmpuint (due->len, ==, 1);
  g_assert_true (due_has (due, "u-run"));
  g_ptr_array_unref (due);
  /* Asked: not again within the interval, however often asked. */
  due = agent_dirty_rate_due (d, t0 + G_USEC_PER_SEC, busy_named,
                              (gpointer) "mig");
  g_assert_cmpuint (due->len, ==, 0);
  g_ptr_array_unref (due);
  /* The migration is over: due at the next look. */
  due = agent_dirty_rate_due (d, t0 + 2 * G_USEC_PER_SEC, NULL, NULL);
  g_assert_cmpuint (due->len, ==, 1);
  g_assert_true (due_has (due, "u-mig"));
  g_ptr_array_unref (due);
  /* A failure frees the slot but keeps the interval. */
  agent_dirty_rate_failed (d, "u-run", "unsupported");
  agent_dirty_rate_failed (d, "u-run", "unsupported"); /* logged once */
  agent_dirty_rate_failed (d, "u-nobody", "gone");     /* unknown: nothing */
  due = agent_dirty_rate_due (d, t0 + iv - 1, NULL, NULL);
  g_assert_cmpuint (due->len, ==, 0);
  g_ptr_array_unref (due);
  due = agent_dirty_rate_due (d, t0 + iv, NULL, NULL);
  g_assert_cmpuint (due->len, ==, 1);
  g_assert_true (due_has (due, "u-run"));
  g_ptr_array_unref (due);
  /* A VM that stopped running is not due; one gone is forgotten. */
  agent_dirty_rate_observe (d, "u-run", "run", FALSE, NULL, 0, t0 + 3 * iv,
                            NULL);
  agent_dirty_rate_sweep (d);
  due = agent_dirty_rate_due (d, t0 + 3 * iv, NULL, NULL);
  g_assert_cmpuint (due->len, ==, 0);
  g_ptr_array_unref (due);
  agent_dirty_rate_sweep (d);
  agent_dirty_rate_observe (d, "u-run", "run", TRUE, NULL, 0, t0 + 4 * iv,
                            NULL);
  due = agent_dirty_rate_due (d, t0 + 4 * iv, NULL, NULL);
  g_assert_cmpuint (due->len, ==, 1);
  g_ptr_array_unref (due);
}

static void
test_observe (void)
{
  g_autoptr (AgentDirtyRate) d = agent_dirty_rate_new ();
  Drover__V1__VmStatus st = DROVER__V1__VM_STATUS__INIT;
  const gint64 t0 = 1000 * G_USEC_PER_SEC;
  Params p = { 0 };
  double rate = -1;
  guint age = 99;
  GPtrArray *due;

  /* Before a measurement: unknown everywhere. */
  agent_dirty_rate_observe (d, "u1", "vm1", TRUE, NULL, 0, t0, &st);
  g_assert_false (st.dirty_rate_measured);
  g_assert_cmpfloat (st.dirty_rate_bytes_per_second, ==, 0);
  g_assert_false (agent_dirty_rate_get (d, "vm1", &rate, NULL));
  g_assert_cmpfloat (rate, ==, 0);
  due = agent_dirty_rate_due (d, t0, NULL, NULL);
  g_assert_cmpuint (due->len, ==, 1);
  g_ptr_array_unref (due);
  /* Measured: the report carries it, with its age. */
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED, 8, 77);
  agent_dirty_rate_observe (d, "u1", "vm1", TRUE, p.params, p.n,
                            t0 + 2 * G_USEC_PER_SEC, &st);
  g_assert_true (st.dirty_rate_measured);
  g_assert_cmpfloat (st.dirty_rate_bytes_per_second, ==, 8 * MiB);
  g_assert_cmpuint (st.dirty_rate_age_s, ==, 0);
  /* The same result read again ages; it does not become new. */
  st = (Drover__V1__VmStatus)DROVER__V1__VM_STATUS__INIT;
  agent_dirty_rate_observe (d, "u1", "vm1", TRUE, p.params, p.n,
                            t0 + 12 * G_USEC_PER_SEC, &st);
  g_assert_cmpfloat (st.dirty_rate_bytes_per_second, ==, 8 * MiB);
  g_assert_cmpuint (st.dirty_rate_age_s, ==, 10);
  g_assert_true (agent_dirty_rate_get (d, "vm1", &rate, &age));
  g_assert_cmpfloat (rate, ==, 8 * MiB);
  g_assert_false (agent_dirty_rate_get (d, "vm2", &rate, NULL));
  /* A calculation in progress keeps the last figure; then the new one. */
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURING, 0, 78);
  st = (Drover__V1__VmStatus)DROVER__V1__VM_STATUS__INIT;
  agent_dirty_rate_observe (d, "u1", "vm1", TRUE, p.params, p.n,
                            t0 + 31 * G_USEC_PER_SEC, &st);
  g_assert_cmpfloat (st.dirty_rate_bytes_per_second, ==, 8 * MiB);
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED, 0, 78);
  st = (Drover__V1__VmStatus)DROVER__V1__VM_STATUS__INIT;
  agent_dirty_rate_observe (d, "u1", "vm1", TRUE, p.params, p.n,
                            t0 + 33 * G_USEC_PER_SEC, &st);
  g_assert_true (st.dirty_rate_measured);
  g_assert_cmpfloat (st.dirty_rate_bytes_per_second, ==, 0);
  g_assert_cmpuint (st.dirty_rate_age_s, ==, 0);
  /* Garbage does not replace it. */
  params_set (&p, VIR_DOMAIN_DIRTYRATE_MEASURED, -5, 79);
  st = (Drover__V1__VmStatus)DROVER__V1__VM_STATUS__INIT;
  agent_dirty_rate_observe (d, "u1", "vm1", TRUE, p.params, p.n,
                            t0 + 34 * G_USEC_PER_SEC, &st);
  g_assert_true (st.dirty_rate_measured);
  g_assert_cmpfloat (st.dirty_rate_bytes_per_second, ==, 0);
  /* No uuid: ignored. */
  agent_dirty_rate_observe (d, "", "x", TRUE, p.params, p.n, t0, NULL);
  params_clear (&p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* libvirt's per-thread error state, which every call resets. */
  g_assert_cmpint (virInitialize (), ==, 0);
  g_test_add_func ("/agent/dirty-rate/parse", test_parse);
  g_test_add_func ("/agent/dirty-rate/due", test_due);
  g_test_add_func ("/agent/dirty-rate/observe", test_observe);
  return g_test_run ();
}
