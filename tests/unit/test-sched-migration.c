/* MigrateVm's scheduler side without a network: per-host limits and the
 * FIFO queue, destination choice, the cost model's prediction, progress
 * wording, the registry's guard against reports during a migration, the
 * store (schema upgrade, job fields) and recovery after a restart. */
#include "test-sched.h"

#include <glib/gstdio.h>
#include <string.h>

static const SchedPolicy policy = {
  .cpu_overcommit = 4.0,
  .memory_reserve = 256 * MiB,
};

/* --- queue ------------------------------------------------------------- */

static void
assert_ids (GPtrArray *ids, const char *const *expected)
{
  guint n = g_strv_length ((char **)expected);

  g_assert_cmpuint (ids->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (ids->pdata[i], ==, expected[i]);
}

static void
test_queue_limits (void)
{
  g_autoptr (SchedMigQueue) q = sched_mig_queue_new (2, 2);
  g_autoptr (GPtrArray) started = NULL;

  /* Two may leave a; the third waits. */
  g_assert_true (sched_mig_queue_add (q, "j1", "a", "b"));
  g_assert_true (sched_mig_queue_add (q, "j2", "a", "c"));
  g_assert_false (sched_mig_queue_add (q, "j3", "a", "d"));
  g_assert_cmpuint (sched_mig_queue_running_out (q, "a"), ==, 2);
  g_assert_cmpuint (sched_mig_queue_running_in (q, "b"), ==, 1);
  g_assert_cmpuint (sched_mig_queue_position (q, "j3"), ==, 1);
  g_assert_cmpuint (sched_mig_queue_position (q, "j1"), ==, 0);

  /* Other hosts are not affected. */
  g_assert_true (sched_mig_queue_add (q, "j4", "e", "f"));
  /* Two may arrive at b: j1 and this one; the next waits. */
  g_assert_true (sched_mig_queue_add (q, "j5", "f", "b"));
  g_assert_false (sched_mig_queue_add (q, "j6", "g", "b"));
  g_assert_cmpuint (sched_mig_queue_position (q, "j6"), ==, 2);

  /* j2 ends: a has a slot, j3 (first in line for a) starts. */
  started = sched_mig_queue_remove (q, "j2");
  assert_ids (started, (const char *const[]){ "j3", NULL });
  g_clear_pointer (&started, g_ptr_array_unref);
  g_assert_cmpuint (sched_mig_queue_running_out (q, "a"), ==, 2);

  /* j1 ends: a and b get a slot; j6 waits for b and starts. */
  started = sched_mig_queue_remove (q, "j1");
  assert_ids (started, (const char *const[]){ "j6", NULL });
  g_clear_pointer (&started, g_ptr_array_unref);
  g_assert_cmpuint (sched_mig_queue_running_in (q, "b"), ==, 2);

  /* Removing something unknown changes nothing. */
  started = sched_mig_queue_remove (q, "nope");
  g_assert_cmpuint (started->len, ==, 0);
}

static void
test_queue_fifo (void)
{
  g_autoptr (SchedMigQueue) q = sched_mig_queue_new (1, 1);
  g_autoptr (GPtrArray) started = NULL;

  g_assert_true (sched_mig_queue_add (q, "j1", "a", "b"));
  /* Waits for a's outgoing slot. */
  g_assert_false (sched_mig_queue_add (q, "j2", "a", "c"));
  /* c is free, but j3 leaves from a too: it must not overtake j2. */
  g_assert_false (sched_mig_queue_add (q, "j3", "a", "d"));
  /* Different source, but it goes to c where j2 (ahead) will arrive: it
   * waits its turn too. */
  g_assert_false (sched_mig_queue_add (q, "j4", "x", "c"));
  /* Shares nothing with the waiting ones: starts. */
  g_assert_true (sched_mig_queue_add (q, "j5", "y", "z"));

  started = sched_mig_queue_remove (q, "j1");
  assert_ids (started, (const char *const[]){ "j2", NULL });
  g_clear_pointer (&started, g_ptr_array_unref);
  g_assert_cmpuint (sched_mig_queue_position (q, "j3"), ==, 1);
  g_assert_cmpuint (sched_mig_queue_position (q, "j4"), ==, 2);

  /* A waiting one that gives up frees the line behind it. */
  started = sched_mig_queue_remove (q, "j2");
  assert_ids (started, (const char *const[]){ "j3", "j4", NULL });
}

/* --- destination ------------------------------------------------------- */

static void
add_host (GPtrArray *hosts, const char *name, const char *state, guint cpus,
          guint64 memory, const char *accel)
{
  test_sched_add_host (hosts, name, state, cpus, memory, 100 * GiB, accel);
}

static SchedVm *
make_vm (const char *name, const char *host, const char *state, guint vcpus,
         guint64 memory)
{
  return test_sched_vm_new (name, host, state, vcpus, memory, 0);
}

static void
test_dest_choice (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *dest = NULL;
  SchedVm *vm;

  add_host (hosts, "a", PROTO_HOST_UP, 4, 8 * GiB, "tcg");
  add_host (hosts, "b", PROTO_HOST_UP, 4, 8 * GiB, "tcg");
  add_host (hosts, "c", PROTO_HOST_UP, 4, 8 * GiB, "tcg");
  add_host (hosts, "d", PROTO_HOST_DOWN, 64, 256 * GiB, "tcg");
  add_host (hosts, "k", PROTO_HOST_UP, 64, 256 * GiB, "kvm");
  vm = make_vm ("web", "a", "running", 2, 2 * GiB);
  g_ptr_array_add (vms, vm);
  g_ptr_array_add (vms, make_vm ("big", "b", "running", 2, 4 * GiB));

  /* Placement excludes the source (emptiest) and hosts that are down or
   * run another accelerator: c is the emptiest that qualifies. */
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, "", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (dest, ==, "c");
  g_clear_pointer (&dest, g_free);

  /* A migration in flight to c reserves its VM there: now b wins. */
  g_ptr_array_add (vms, make_vm ("other", "c", PROTO_VM_CREATING, 2, 6 * GiB));
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (dest, ==, "b");
  g_clear_pointer (&dest, g_free);

  /* --to: checked, not placed. */
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, "c", &error);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_null (dest);
  g_clear_error (&error);
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, "nosuch", &error);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "nosuch"));
  g_clear_error (&error);
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, "a", &error);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "already on host 'a'"));
  g_clear_error (&error);
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, "d", &error);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION);
  g_clear_error (&error);
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, "k", &error);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_nonnull (strstr (error->message, "accelerator"));
  g_clear_error (&error);
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, "b", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (dest, ==, "b");
}

static void
test_dest_nowhere (void)
{
  g_autoptr (GPtrArray) hosts = test_sched_hosts_new ();
  g_autoptr (GPtrArray) vms = test_sched_vms_new ();
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = make_vm ("web", "a", "running", 1, GiB);
  g_autofree char *dest = NULL;

  add_host (hosts, "a", PROTO_HOST_UP, 4, 8 * GiB, "tcg");
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, NULL, &error);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_nonnull (strstr (error->message, "nowhere"));
  g_clear_error (&error);

  add_host (hosts, "b", PROTO_HOST_DOWN, 4, 8 * GiB, "tcg");
  dest = sched_migration_pick_dest (&policy, hosts, vms, vm, NULL, &error);
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY);
  g_assert_nonnull (strstr (error->message, "b: down"));
}

/* --- cost model -------------------------------------------------------- */

static void
test_dirty_rate (void)
{
  g_autoptr (SchedVm) vm = make_vm ("web", "a", "running", 2, GiB);
  Drover__V1__VmStatus status = DROVER__V1__VM_STATUS__INIT;
  Drover__V1__MigrationProgress last = DROVER__V1__MIGRATION_PROGRESS__INIT;
  Drover__V1__MigrationRound round = DROVER__V1__MIGRATION_ROUND__INIT;
  Drover__V1__MigrationRound *rounds[] = { &round };
  g_autoptr (SchedVm) huge = make_vm ("huge", "a", "running", 2, 64 * GiB);

  /* No report: 10% of RAM per second. */
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (vm, NULL),
                                  0.1 * GiB, 1);
  /* Idle vCPUs: a tenth of that; half busy: half. */
  status.cpu_percent = 0;
  sched_vm_set_status (vm, &status);
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (vm, NULL),
                                  0.01 * GiB, 1);
  status.cpu_percent = 100; /* one of two vCPUs */
  sched_vm_set_status (vm, &status);
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (vm, NULL),
                                  0.05 * GiB, 1);
  /* Capped. */
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (huge, NULL),
                                  SCHED_MIG_DIRTY_CAP, 1);
  /* A measurement wins: the highest rate seen. */
  last.dirty_rate = 3 * MiB;
  round.dirty_rate = 7 * MiB;
  last.rounds = rounds;
  last.n_rounds = 1;
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (vm, &last),
                                  7.0 * MiB, 1);
  /* The agent's measurement is newer: it wins over both; a measured 0
   * (below page sampling's resolution) does not. */
  status.dirty_rate_measured = TRUE;
  status.dirty_rate_bytes_per_second = 12 * MiB;
  sched_vm_set_status (vm, &status);
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (vm, &last),
                                  12.0 * MiB, 1);
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (vm, NULL),
                                  12.0 * MiB, 1);
  status.dirty_rate_bytes_per_second = 0;
  sched_vm_set_status (vm, &status);
  g_assert_cmpfloat_with_epsilon (sched_migration_dirty_rate (vm, &last),
                                  7.0 * MiB, 1);
}

static void
test_predict (void)
{
  g_autoptr (SchedVm) vm = make_vm ("web", "a", "running", 2, GiB);
  Drover__V1__MigrationParams params = DROVER__V1__MIGRATION_PARAMS__INIT;
  Drover__V1__MigrationPrediction pred;
  g_autoptr (GError) error = NULL;

  /* 1 GiB over 1 GiB/s, dirtying 10%/s: round 0 takes 1 s and leaves
   * 102 MiB, under the 500 ms x 1 GiB/s threshold. */
  g_assert_true (
      sched_migration_predict (vm, NULL, 0.1 * GiB, GiB, 0.0, &pred, &error));
  g_assert_no_error (error);
  g_assert_true (pred.converges);
  g_assert_cmpuint (pred.rounds, ==, 1);
  g_assert_cmpfloat (pred.total_s, >, 1.0);
  g_assert_cmpfloat (pred.total_s, <, 1.3);
  g_assert_cmpfloat (pred.bandwidth, ==, GiB);
  g_assert_cmpfloat (pred.dirty_rate, ==, 0.1 * GiB);
  g_assert_cmpuint (pred.bytes_sent, ==, pred.bytes_wire);
  g_assert_cmpuint (pred.bytes_sent, >, GiB);

  /* A rate limit below the dirty rate cannot converge. */
  params.bandwidth_bps = 8 * MiB;
  g_assert_true (sched_migration_predict (vm, &params, 0.1 * GiB, GiB, 0.0,
                                          &pred, &error));
  g_assert_false (pred.converges);
  g_assert_cmpfloat (pred.bandwidth, ==, 8 * MiB);
  /* ...nor a tiny downtime limit with a busy guest. */
  params.bandwidth_bps = 0;
  params.max_downtime_ms = 1;
  g_assert_true (sched_migration_predict (vm, &params, 0.9 * GiB, GiB, 0.0,
                                          &pred, &error));
  g_assert_false (pred.converges);

  /* Nonsense input is an error. */
  g_assert_false (
      sched_migration_predict (vm, NULL, 0.1 * GiB, 0, 0.0, &pred, &error));
  g_assert_error (error, SCHED_ERROR, SCHED_ERROR_INVALID);
}

static void
test_progress (void)
{
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;
  g_autofree char *text = NULL;

  p.phase = (char *)"preparing";
  g_assert_cmpfloat (sched_migration_fraction (&p), ==, 0.02);
  text = sched_migration_describe (&p, "b");
  g_assert_cmpstr (text, ==, "preparing host b");
  g_clear_pointer (&text, g_free);

  p.phase = (char *)"precopy";
  p.memory_total = GiB;
  p.memory_remaining = GiB / 2;
  p.memory_processed = GiB / 2;
  p.iteration = 1;
  g_assert_cmpfloat_with_epsilon (sched_migration_fraction (&p), 0.5, 1e-9);
  text = sched_migration_describe (&p, "b");
  g_assert_cmpstr (text, ==,
                   "pre-copy round 1: 512 MiB of 1.0 GiB sent, 512 MiB left");
  g_clear_pointer (&text, g_free);
  /* Re-sent pages push "processed" past the total; remaining decides. */
  p.memory_processed = 3 * GiB;
  p.memory_remaining = 0;
  g_assert_cmpfloat_with_epsilon (sched_migration_fraction (&p), 0.95, 1e-9);

  p.phase = (char *)"completed";
  p.total_s = 2.5;
  p.downtime_ms = 42;
  g_assert_cmpfloat (sched_migration_fraction (&p), ==, 1.0);
  g_assert_true (proto_mig_phase_is_final (p.phase));
  text = sched_migration_describe (&p, "b");
  g_assert_cmpstr (text, ==, "migrated to host b in 2.5 s, downtime 42 ms");
  g_clear_pointer (&text, g_free);

  p.phase = (char *)"aborted";
  p.error = (char *)"stalled";
  g_assert_cmpfloat (sched_migration_fraction (&p), <, 0);
  text = sched_migration_describe (&p, "b");
  g_assert_cmpstr (text, ==, "aborted: stalled");
  g_assert_false (proto_mig_phase_is_final ("precopy"));
}

/* --- registry guard ---------------------------------------------------- */

typedef TestSchedStore Fixture;

static void
register_host (Fixture *f, const char *name)
{
  Drover__V1__HostInfo info = test_host_info (name, 4, 8 * GiB, 0, "tcg");
  g_autoptr (GError) error = NULL;

  g_assert_true (sched_registry_register (f->reg, &info, &error));
  g_assert_no_error (error);
}

/* HOST reports VM (or nothing if VM is NULL) in state STATE. */
static void
report (Fixture *f, const char *host, const char *vm, const char *state)
{
  Drover__V1__HostInfo info = DROVER__V1__HOST_INFO__INIT;
  Drover__V1__VmStatus status = DROVER__V1__VM_STATUS__INIT;
  Drover__V1__VmStatus *list[] = { &status };
  g_autoptr (GError) error = NULL;
  gboolean rereg;

  info.name = (char *)host;
  info.cpus = 4;
  info.memory_total = 8 * GiB;
  status.name = (char *)vm;
  status.state = (char *)state;
  status.vcpus = 1;
  status.memory = GiB;
  g_assert_true (sched_registry_report (f->reg, &info, list, vm ? 1 : 0, 0,
                                        &rereg, &error));
  g_assert_no_error (error);
  g_assert_false (rereg);
}

static void
assert_vm (Fixture *f, const char *name, const char *host, const char *state)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = sched_store_get_vm (f->store, name, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (vm->host, ==, host);
  g_assert_cmpstr (vm->state, ==, state);
}

static void
test_registry_guard (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedVm) vm = NULL;

  register_host (f, "a");
  register_host (f, "b");
  report (f, "a", "web", "running");
  assert_vm (f, "web", "a", "running");

  sched_registry_migration_begin (f->reg, "web", "a", "b");
  /* The destination shows the incoming domain: not taken. */
  report (f, "b", "web", "paused");
  assert_vm (f, "web", "a", "running");
  /* The source dropped it just before we heard of completion: not missing. */
  report (f, "a", NULL, NULL);
  assert_vm (f, "web", "a", "running");

  /* Completed: the service moves the record, then stale reports follow. */
  vm = sched_store_get_vm (f->store, "web", &error);
  g_free (vm->host);
  vm->host = g_strdup ("b");
  g_assert_true (sched_store_put_vm (f->store, vm, &error));
  sched_registry_migration_end (f->reg, "web", "b");
  report (f, "a", "web", "paused"); /* generated before the switch */
  assert_vm (f, "web", "b", "running");
  report (f, "b", NULL, NULL); /* same */
  assert_vm (f, "web", "b", "running");
  report (f, "b", "web", "running");
  assert_vm (f, "web", "b", "running");

  /* Three intervals later the guard is gone: reports rule again. */
  f->now += 3001;
  report (f, "b", NULL, NULL);
  assert_vm (f, "web", "b", PROTO_VM_MISSING);
  report (f, "b", "web", "running");

  /* A failed migration drops the guard at once: the next reports say
   * where the VM is, b's first (a cannot take b's live VM). */
  sched_registry_migration_begin (f->reg, "web", "b", "a");
  sched_registry_migration_end (f->reg, "web", NULL);
  report (f, "a", "web", "running");
  assert_vm (f, "web", "b", "running");
  report (f, "b", NULL, NULL);
  report (f, "a", "web", "running");
  assert_vm (f, "web", "a", "running");
}

/* The link estimate comes from completed migrations: the best throughput
 * they reached and the time left over once the copy is accounted for. */
static SchedJob *
make_done_migration (gint64 updated_ms, double throughput, guint64 bytes,
                     double total_s, guint64 downtime_ms)
{
  SchedJob *job = sched_job_new ("migrate", "web", PROTO_JOB_DONE, updated_ms);
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;

  job->updated_ms = updated_ms;
  p.phase = (char *)"completed";
  p.throughput = throughput;
  p.qemu_bytes = bytes;
  p.total_s = total_s;
  p.downtime_ms = downtime_ms;
  job->migration = proto_msg_copy (&p.base);
  return job;
}

static void
test_learn_link (void)
{
  g_autoptr (GPtrArray) jobs
      = g_ptr_array_new_with_free_func ((GDestroyNotify)sched_job_free);
  double bw, setup;

  /* No history: the configured link and the default setup cost. */
  sched_migration_learn_link (jobs, GiB, &bw, &setup);
  g_assert_cmpfloat (bw, ==, GiB);
  g_assert_cmpfloat (setup, ==, SCHED_MIG_DEFAULT_SETUP_S);

  /* 100 MiB at 100 MiB/s in 3.1 s with 100 ms downtime: 2 s of setup. */
  g_ptr_array_add (jobs,
                   make_done_migration (10, 100 * MiB, 100 * MiB, 3.1, 100));
  sched_migration_learn_link (jobs, GiB, &bw, &setup);
  g_assert_cmpfloat_with_epsilon (bw, 100 * MiB, 1);
  g_assert_cmpfloat_with_epsilon (setup, 2.0, 1e-9);

  /* The median of three: one outlier on either side does not move it. */
  g_ptr_array_add (jobs,
                   make_done_migration (20, 10 * MiB, 100 * MiB, 30.0, 0));
  g_ptr_array_add (jobs,
                   make_done_migration (30, 900 * MiB, 900 * MiB, 1.5, 0));
  sched_migration_learn_link (jobs, GiB, &bw, &setup);
  g_assert_cmpfloat_with_epsilon (bw, 100 * MiB, 1);
  g_assert_cmpfloat_with_epsilon (setup, 2.0, 1e-9);

  /* Never above the configured link. */
  sched_migration_learn_link (jobs, 50 * MiB, &bw, &setup);
  g_assert_cmpfloat_with_epsilon (bw, 50 * MiB, 1);

  /* Failed jobs and other kinds teach nothing. */
  g_ptr_array_set_size (jobs, 0);
  g_ptr_array_add (jobs, sched_job_new ("migrate", "web", PROTO_JOB_FAILED, 5));
  g_ptr_array_add (jobs, sched_job_new ("create", "web", PROTO_JOB_DONE, 6));
  sched_migration_learn_link (jobs, GiB, &bw, &setup);
  g_assert_cmpfloat (bw, ==, GiB);
}

/* --- store and recovery ------------------------------------------------ */

static SchedJob *
make_migration_job (const char *state)
{
  SchedJob *job = sched_job_new ("migrate", "web", state, 5000);
  Drover__V1__MigrationProgress p = DROVER__V1__MIGRATION_PROGRESS__INIT;
  Drover__V1__MigrationPrediction pred = DROVER__V1__MIGRATION_PREDICTION__INIT;
  Drover__V1__MigrationRound round = DROVER__V1__MIGRATION_ROUND__INIT;
  Drover__V1__MigrationRound *rounds[] = { &round, &round };

  g_free (job->source_host);
  job->source_host = g_strdup ("a");
  g_free (job->dest_host);
  job->dest_host = g_strdup ("b");
  p.phase = (char *)"precopy";
  p.memory_total = GiB;
  p.iteration = 2;
  p.compress_mode = (char *)"lz4";
  round.iteration = 1;
  round.remaining = 12345;
  p.rounds = rounds;
  p.n_rounds = 2;
  job->migration = proto_msg_copy (&p.base);
  pred.converges = TRUE;
  pred.rounds = 3;
  pred.total_s = 1.5;
  job->prediction = proto_msg_copy (&pred.base);
  return job;
}

static void
test_store_job_fields (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (SchedJob) job = make_migration_job (PROTO_JOB_RUNNING);
  g_autoptr (SchedJob) back = NULL;
  g_autoptr (SchedJob) copy = NULL;
  g_autoptr (SchedJob) plain = sched_job_new ("create", "x", PROTO_JOB_DONE, 1);
  g_autoptr (SchedJob) plain_back = NULL;

  g_assert_true (sched_store_put_job (f->store, job, &error));
  g_assert_true (sched_store_put_job (f->store, plain, &error));
  back = sched_store_get_job (f->store, job->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (back->source_host, ==, "a");
  g_assert_cmpstr (back->dest_host, ==, "b");
  g_assert_nonnull (back->migration);
  g_assert_cmpstr (back->migration->phase, ==, "precopy");
  g_assert_cmpstr (back->migration->compress_mode, ==, "lz4");
  g_assert_cmpuint (back->migration->n_rounds, ==, 2);
  g_assert_cmpuint (back->migration->rounds[1]->remaining, ==, 12345);
  g_assert_nonnull (back->prediction);
  g_assert_cmpuint (back->prediction->rounds, ==, 3);

  copy = sched_job_copy (back);
  g_assert_cmpuint (copy->migration->iteration, ==, 2);
  g_assert_cmpfloat (copy->prediction->total_s, ==, 1.5);

  plain_back = sched_store_get_job (f->store, plain->id, &error);
  g_assert_no_error (error);
  g_assert_null (plain_back->migration);
  g_assert_null (plain_back->prediction);
  g_assert_cmpstr (plain_back->source_host, ==, "");
}

/* A version 1 database (before migration jobs) is upgraded in place and
 * keeps its rows. */
static void
test_store_upgrade (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = test_tmp_dir_new ("drover-schedmig-XXXXXX");
  g_autoptr (SchedStore) store = NULL;
  g_autoptr (SchedJob) old = NULL;
  g_autoptr (SchedJob) job = make_migration_job (PROTO_JOB_RUNNING);
  const char *v1
      = "CREATE TABLE hosts (name TEXT PRIMARY KEY NOT NULL, address TEXT NOT "
        "NULL,"
        " info BLOB NOT NULL, state TEXT NOT NULL, last_seen_ms INTEGER NOT "
        "NULL);"
        "CREATE TABLE vms (name TEXT PRIMARY KEY NOT NULL, host TEXT NOT NULL,"
        " spec BLOB NOT NULL, state TEXT NOT NULL, status BLOB,"
        " updated_ms INTEGER NOT NULL);"
        "CREATE INDEX vms_by_host ON vms (host);"
        "CREATE TABLE jobs (id TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL,"
        " vm TEXT NOT NULL, state TEXT NOT NULL, progress REAL NOT NULL,"
        " message TEXT NOT NULL, error TEXT NOT NULL, created_ms INTEGER NOT "
        "NULL,"
        " updated_ms INTEGER NOT NULL);"
        "INSERT INTO jobs VALUES ('old-job', 'create', 'x', 'done', 1.0, "
        "'created',"
        " '', 1, 2);"
        "PRAGMA application_id = 1146246738; PRAGMA user_version = 1;";

  g_assert_no_error (error);
  store = test_sched_store_open_sql (dir, v1);
  old = sched_store_get_job (store, "old-job", &error);
  g_assert_no_error (error);
  g_assert_cmpstr (old->message, ==, "created");
  g_assert_cmpstr (old->dest_host, ==, "");
  g_assert_null (old->migration);
  g_assert_true (sched_store_put_job (store, job, &error));
  g_assert_no_error (error);
  g_clear_pointer (&store, sched_store_close);

  /* Reopening at the new version is a no-op. */
  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  g_clear_pointer (&old, sched_job_free);
  old = sched_store_get_job (store, job->id, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (old->migration->phase, ==, "precopy");
  g_clear_pointer (&store, sched_store_close);

  test_tmp_dir_remove (dir);
}

/* A migration job left queued or running by a previous process fails on
 * start, with a message saying where to look for the VM. */
static void
test_recovery (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = test_tmp_dir_new ("drover-schedmig-XXXXXX");
  g_autoptr (SchedJob) running = make_migration_job (PROTO_JOB_RUNNING);
  g_autoptr (SchedJob) queued = make_migration_job (PROTO_JOB_QUEUED);
  g_autoptr (SchedJob) done = make_migration_job (PROTO_JOB_DONE);
  SchedConfig config = { 0 };
  SchedStore *store;
  SchedService *svc;
  SchedJob *jobs[] = { running, queued, done };

  g_assert_no_error (error);
  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (jobs); i++)
    g_assert_true (sched_store_put_job (store, jobs[i], &error));
  sched_store_close (store);

  config.state_dir = dir;
  svc = sched_service_new (&config, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (svc);
  sched_service_free (svc);

  store = sched_store_open_sqlite (dir, &error);
  g_assert_no_error (error);
  for (gsize i = 0; i < G_N_ELEMENTS (jobs); i++)
    {
      g_autoptr (SchedJob) back
          = sched_store_get_job (store, jobs[i]->id, &error);

      g_assert_no_error (error);
      if (jobs[i] == done)
        {
          g_assert_cmpstr (back->state, ==, PROTO_JOB_DONE);
          g_assert_cmpstr (back->error, ==, "");
          continue;
        }
      g_assert_cmpstr (back->state, ==, PROTO_JOB_FAILED);
      g_assert_nonnull (strstr (back->error, "restarted during the migration"));
      /* What it knew survives for the operator. */
      g_assert_cmpstr (back->dest_host, ==, "b");
      g_assert_nonnull (back->prediction);
    }
  sched_store_close (store);
  test_tmp_dir_remove (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sched-migration/queue/limits", test_queue_limits);
  g_test_add_func ("/sched-migration/queue/fifo", test_queue_fifo);
  g_test_add_func ("/sched-migration/dest/choice", test_dest_choice);
  g_test_add_func ("/sched-migration/dest/nowhere", test_dest_nowhere);
  g_test_add_func ("/sched-migration/model/dirty-rate", test_dirty_rate);
  g_test_add_func ("/sched-migration/model/predict", test_predict);
  g_test_add_func ("/sched-migration/model/learn-link", test_learn_link);
  g_test_add_func ("/sched-migration/progress", test_progress);
  TEST_SCHED_STORE_ADD ("/sched-migration/registry-guard", test_registry_guard);
  TEST_SCHED_STORE_ADD ("/sched-migration/store/job-fields",
                        test_store_job_fields);
  g_test_add_func ("/sched-migration/store/upgrade", test_store_upgrade);
  g_test_add_func ("/sched-migration/recovery", test_recovery);
  return g_test_run ();
}
