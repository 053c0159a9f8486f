/* The store's counts of rows by state (sched-store-counts.c): after any
 * sequence of writes they equal a full recount of the tables, and they
 * are kept in memory rather than counted from the store at each ask. */
#include "test-sched.h"

#include <string.h>

typedef TestSchedStore Fixture;

/* A host's count key: its state and its service state. */
#define UP_KEY PROTO_HOST_UP "\n" SCHED_HOST_IN_SERVICE
#define DOWN_KEY PROTO_HOST_DOWN "\n" SCHED_HOST_IN_SERVICE

static const SchedTable counted[]
    = { SCHED_TABLE_HOSTS, SCHED_TABLE_VMS, SCHED_TABLE_JOBS };

/* The count of KEY in TABLE, as STORE keeps it, is N. */
static void
assert_count (SchedStore *store, SchedTable table, const char *key, guint n)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) counts = sched_store_count (store, table, &error);

  g_assert_no_error (error);
  g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (counts, key)), ==,
                    n);
}

/* STORE's counts of every counted table equal a recount of its rows. */
static void
assert_recount (SchedStore *store)
{
  for (gsize i = 0; i < G_N_ELEMENTS (counted); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (GHashTable) kept
          = sched_store_count (store, counted[i], &error);
      g_autoptr (GPtrArray) rows
          = store->ops->list (store, counted[i], NULL, &error);
      g_autoptr (GHashTable) fresh = NULL;
      GHashTableIter iter;
      gpointer key, value;

      g_assert_no_error (error);
      fresh = sched_store_counts_of_rows (counted[i], rows);
      g_assert_cmpuint (g_hash_table_size (kept), ==,
                        g_hash_table_size (fresh));
      g_hash_table_iter_init (&iter, fresh);
      while (g_hash_table_iter_next (&iter, &key, &value))
        {
          if (GPOINTER_TO_UINT (g_hash_table_lookup (kept, key))
              != GPOINTER_TO_UINT (value))
            g_error ("%s '%s': kept %u, recounted %u",
                     sched_row_types[counted[i]].table, (char *)key,
                     GPOINTER_TO_UINT (g_hash_table_lookup (kept, key)),
                     GPOINTER_TO_UINT (value));
        }
    }
}

static void
put_host (SchedStore *store, const char *name, const char *state)
{
  Drover__V1__HostInfo info = test_host_info (name, 4, GiB, GiB, "tcg");
  g_autoptr (SchedHost) host = sched_host_new (&info, state, 0);
  g_autoptr (GError) error = NULL;

  g_assert_true (sched_store_put_host (store, host, &error));
  g_assert_no_error (error);
}

static void
put_vm (SchedStore *store, const char *name, const char *state)
{
  g_autoptr (SchedVm) vm = test_sched_vm_new (name, "host1", state, 1, MiB, 0);
  g_autoptr (GError) error = NULL;

  g_assert_true (sched_store_put_vm (store, vm, &error));
  g_assert_no_error (error);
}

/* Job ID of KIND in STATE, last updated at UPDATED_MS. */
static void
put_job (SchedStore *store, const char *id, const char *kind, const char *state,
         gint64 updated_ms)
{
  g_autoptr (SchedJob) job = sched_job_new (kind, "web1", state, updated_ms);
  g_autoptr (GError) error = NULL;

  g_free (job->id);
  job->id = g_strdup (id);
  g_assert_true (sched_store_put_job (store, job, &error));
  g_assert_no_error (error);
}

/* Reports VM NAMES (NULL-terminated) on HOST, each in STATE. */
static void
report (Fixture *f, const char *host, guint64 seq, const char *const *names,
        const char *state)
{
  Drover__V1__HostInfo info = test_host_info (host, 4, GiB, GiB, "tcg");
  g_autoptr (GPtrArray) statuses = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;
  gboolean reregister = FALSE;

  for (guint i = 0; names != NULL && names[i] != NULL; i++)
    {
      Drover__V1__VmStatus *status = g_new0 (Drover__V1__VmStatus, 1);

      drover__v1__vm_status__init (status);
      status->name = (char *)names[i];
      status->state = (char *)state;
      g_ptr_array_add (statuses, status);
    }
  g_assert_true (sched_registry_report (
      f->reg, &info, (Drover__V1__VmStatus *const *)statuses->pdata,
      statuses->len, seq, &reregister, &error));
  g_assert_no_error (error);
  g_assert_false (reregister);
}

/* The scheduler's own writers (registration, reports, liveness, deletes,
 * jobs and their pruning) keep the counts equal to a recount. */
static void
test_follows_registry (Fixture *f, gconstpointer data)
{
  static const char *const web[] = { "web1", "web2", "web3", NULL };
  static const char *const two[] = { "web1", "web2", NULL };
  Drover__V1__HostInfo h1 = test_host_info ("host1", 4, GiB, GiB, "tcg");
  Drover__V1__HostInfo h2 = test_host_info ("host2", 4, GiB, GiB, "tcg");
  g_autoptr (GError) error = NULL;
  guint pruned = 0;

  /* Asked once before anything is written: from then on, kept. */
  assert_recount (f->store);
  g_assert_true (sched_registry_register (f->reg, &h1, &error));
  g_assert_true (sched_registry_register (f->reg, &h2, &error));
  g_assert_no_error (error);
  assert_count (f->store, SCHED_TABLE_HOSTS, UP_KEY, 2);
  report (f, "host1", 1, web, PROTO_VM_RUNNING);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_RUNNING, 3);
  report (f, "host1", 2, two, PROTO_VM_PAUSED);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_PAUSED, 2);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_MISSING, 1);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_RUNNING, 0);
  assert_recount (f->store);

  /* host2 stops reporting. */
  f->now += 2 * TEST_SCHED_INTERVAL_MS;
  report (f, "host1", 3, two, PROTO_VM_RUNNING);
  f->now += 2 * TEST_SCHED_INTERVAL_MS;
  g_assert_cmpuint (sched_registry_check_liveness (f->reg, &error), ==, 1);
  assert_count (f->store, SCHED_TABLE_HOSTS, DOWN_KEY, 1);
  assert_recount (f->store);

  g_assert_true (sched_store_delete_vm (f->store, "web3", &error));
  g_assert_true (sched_store_delete_vm (f->store, "nothing", &error));
  g_assert_true (sched_store_delete_host (f->store, "host2", &error));
  g_assert_no_error (error);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_MISSING, 0);
  assert_count (f->store, SCHED_TABLE_HOSTS, DOWN_KEY, 0);
  assert_recount (f->store);

  put_job (f->store, "j1", PROTO_JOB_KIND_MIGRATE, PROTO_JOB_RUNNING, 10);
  put_job (f->store, "j2", PROTO_JOB_KIND_CREATE, PROTO_JOB_DONE, 10);
  put_job (f->store, "j3", PROTO_JOB_KIND_CREATE, PROTO_JOB_DONE, 20);
  put_job (f->store, "j1", PROTO_JOB_KIND_MIGRATE, PROTO_JOB_FAILED, 30);
  assert_count (f->store, SCHED_TABLE_JOBS,
                PROTO_JOB_KIND_CREATE "\n" PROTO_JOB_DONE, 2);
  assert_count (f->store, SCHED_TABLE_JOBS,
                PROTO_JOB_KIND_MIGRATE "\n" PROTO_JOB_RUNNING, 0);
  assert_recount (f->store);
  /* The backend deletes what it prunes without naming it. */
  g_assert_true (sched_store_prune_jobs (f->store, 15, 100, &pruned, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (pruned, ==, 1);
  assert_count (f->store, SCHED_TABLE_JOBS,
                PROTO_JOB_KIND_CREATE "\n" PROTO_JOB_DONE, 1);
  assert_recount (f->store);
}

/* A rolled-back transaction's writes do not stay in the counts. */
static void
test_rollback (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  put_host (f->store, "host1", PROTO_HOST_UP);
  put_vm (f->store, "web1", PROTO_VM_RUNNING);
  assert_count (f->store, SCHED_TABLE_HOSTS, UP_KEY, 1);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_RUNNING, 1);

  g_assert_true (
      sched_store_begin (f->store, SCHED_STORE_SYNC_RESTATED, &error));
  g_assert_no_error (error);
  put_host (f->store, "host1", PROTO_HOST_DOWN);
  put_vm (f->store, "web1", PROTO_VM_PAUSED);
  put_vm (f->store, "web2", PROTO_VM_PAUSED);
  /* Inside the transaction the counts see its writes. */
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_PAUSED, 2);
  sched_store_rollback (f->store);
  assert_count (f->store, SCHED_TABLE_HOSTS, UP_KEY, 1);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_PAUSED, 0);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_RUNNING, 1);
  assert_recount (f->store);

  /* A committed one stays. */
  g_assert_true (sched_store_begin (f->store, SCHED_STORE_SYNC_FULL, &error));
  put_vm (f->store, "web1", PROTO_VM_SHUTOFF);
  g_assert_true (sched_store_commit (f->store, &error));
  g_assert_no_error (error);
  assert_count (f->store, SCHED_TABLE_VMS, PROTO_VM_SHUTOFF, 1);
  assert_recount (f->store);
}

/* The counts are kept, not listed at each ask: a row written behind the
 * store's back (another connection) does not show until the counts are
 * forgotten. */
static void
test_kept_in_memory (Fixture *f, gconstpointer data)
{
  g_autoptr (SchedStore) other = NULL;
  g_autoptr (GError) error = NULL;

  put_host (f->store, "host1", PROTO_HOST_UP);
  assert_count (f->store, SCHED_TABLE_HOSTS, UP_KEY, 1);
  other = sched_store_open_sqlite (f->dir, &error);
  g_assert_no_error (error);
  put_host (other, "host2", PROTO_HOST_UP);
  assert_count (f->store, SCHED_TABLE_HOSTS, UP_KEY, 1);
  /* A write the counts follow moves only its own row. */
  put_host (f->store, "host1", PROTO_HOST_DOWN);
  assert_count (f->store, SCHED_TABLE_HOSTS, UP_KEY, 0);
  sched_store_counts_forget (f->store->counts, SCHED_TABLE_HOSTS);
  assert_count (f->store, SCHED_TABLE_HOSTS, UP_KEY, 1);
  assert_count (f->store, SCHED_TABLE_HOSTS, DOWN_KEY, 1);
}

/* Random puts, deletes, transactions and prunes over a few rows of each
 * table: after every step the counts equal a recount. */
static void
test_random (Fixture *f, gconstpointer data)
{
  static const char *const host_states[]
      = { PROTO_HOST_UP, PROTO_HOST_DOWN, "odd" };
  static const char *const vm_states[]
      = { PROTO_VM_RUNNING, PROTO_VM_PAUSED, PROTO_VM_MISSING, "" };
  static const char *const job_states[]
      = { PROTO_JOB_RUNNING, PROTO_JOB_DONE, PROTO_JOB_FAILED };
  static const char *const kinds[]
      = { PROTO_JOB_KIND_CREATE, PROTO_JOB_KIND_MIGRATE };
  gboolean in_transaction = FALSE;

  for (guint step = 0; step < 1500; step++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *key
          = g_strdup_printf ("r%d", g_test_rand_int_range (0, 6));
      int op = g_test_rand_int_range (0, 10);

      if (op == 0)
        {
          /* Open, commit or roll back a transaction. */
          if (!in_transaction)
            g_assert_true (
                sched_store_begin (f->store, SCHED_STORE_SYNC_FULL, &error));
          else if (g_test_rand_bit ())
            g_assert_true (sched_store_commit (f->store, &error));
          else
            sched_store_rollback (f->store);
          g_assert_no_error (error);
          in_transaction = !in_transaction;
        }
      else if (op == 1)
        {
          SchedTable table = counted[g_test_rand_int_range (0, 3)];

          g_assert_true (sched_store_remove (f->store, table, key, &error));
        }
      else if (op == 2 && !in_transaction)
        g_assert_true (sched_store_prune_jobs (
            f->store, g_test_rand_int_range (0, 100), 2, NULL, &error));
      else if (op < 5)
        put_host (f->store, key, host_states[g_test_rand_int_range (0, 3)]);
      else if (op < 8)
        put_vm (f->store, key, vm_states[g_test_rand_int_range (0, 4)]);
      else
        put_job (f->store, key, kinds[g_test_rand_bit ()],
                 job_states[g_test_rand_int_range (0, 3)],
                 g_test_rand_int_range (0, 100));
      g_assert_no_error (error);
      assert_recount (f->store);
    }
  if (in_transaction)
    sched_store_rollback (f->store);
  assert_recount (f->store);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  TEST_SCHED_STORE_ADD ("/store/counts/registry", test_follows_registry);
  TEST_SCHED_STORE_ADD ("/store/counts/rollback", test_rollback);
  TEST_SCHED_STORE_ADD ("/store/counts/kept-in-memory", test_kept_in_memory);
  TEST_SCHED_STORE_ADD ("/store/counts/random", test_random);
  return g_test_run ();
}
