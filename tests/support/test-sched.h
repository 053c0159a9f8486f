/* The scheduler's rows and store as the tests build them: hosts and VMs
 * with the values a test cares about, and a store (with a registry on a
 * clock the test sets) in a temporary directory. */
#pragma once

#include "sched-private.h"
#include "test-support.h"

#define MiB (1024ull * 1024)
#define GiB (1024ull * MiB)

/* What a host at 127.0.0.2:7500 reports: CPUS, MEMORY total and free,
 * DATA total and free on its data filesystem, ACCEL. The strings are
 * NAME's and ACCEL's (not copied). */
Drover__V1__HostInfo test_host_info (const char *name, guint cpus,
                                     guint64 memory, guint64 data,
                                     const char *accel);

/* A spec NAME with VCPUS, MEMORY, DISK and ACCEL (NULL: none); the
 * strings are not copied. */
Drover__V1__VmSpec test_vm_spec (const char *name, guint vcpus, guint64 memory,
                                 guint64 disk, const char *accel);

/* The VM NAME of test_vm_spec (no accel) on HOST in STATE, not reported
 * yet. Free with sched_vm_free. */
SchedVm *test_sched_vm_new (const char *name, const char *host,
                            const char *state, guint vcpus, guint64 memory,
                            guint64 disk);

/* A scheduler service with its state in a new temporary directory
 * (*DIR, freed by the caller after test_tmp_dir_remove) from CONFIG,
 * whose state_dir, cpu_overcommit and memory_reserve this sets (the
 * daemon's defaults), and TLS (NULL: insecure). Not started; the test
 * fails if it cannot be made. Free with sched_service_free. */
SchedService *test_sched_service_new (char **dir, SchedConfig *config,
                                      const ProtoTls *tls);

/* Puts host NAME at ADDRESS (test_host_info: 8 CPUs, 8 GiB, 100 GiB,
 * TCG), up as of the registry's clock, into SVC's store; the test fails
 * if the store refuses it. */
void test_sched_put_host (SchedService *svc, const char *name,
                          const char *address);

/* Puts the VM of test_sched_vm_new into SVC's store; the test fails if
 * the store refuses it. */
void test_sched_put_vm (SchedService *svc, const char *name, const char *host,
                        const char *state, guint vcpus, guint64 memory,
                        guint64 disk);

/* VM NAME as SVC's store has it (NULL: none); the test fails if the
 * store cannot be read. Free with sched_vm_free. */
SchedVm *test_sched_stored_vm (SchedService *svc, const char *name);

/* Arrays that own their SchedHost / SchedVm rows, and what adds a row
 * (seen at time 0) to them. */
GPtrArray *test_sched_hosts_new (void);
GPtrArray *test_sched_vms_new (void);
void test_sched_add_host (GPtrArray *hosts, const char *name, const char *state,
                          guint cpus, guint64 memory, guint64 data,
                          const char *accel);
void test_sched_add_vm (GPtrArray *vms, const char *name, const char *host,
                        const char *state, guint vcpus, guint64 memory,
                        guint64 disk);

/* The SQLite store in DIR, opened over a drover.db that SQL made first
 * (an older schema, with rows): how the store upgrades what it finds.
 * The test fails if SQL or the opening fails. Free with
 * sched_store_close. */
SchedStore *test_sched_store_open_sql (const char *dir, const char *sql);

/* The registry's report interval in TestSchedStore. */
#define TEST_SCHED_INTERVAL_MS 1000

/* A GTest fixture: a SQLite store in a temporary directory and a
 * registry over it whose clock reads NOW (ms; the test moves it). */
typedef struct
{
  char *dir;
  SchedStore *store;
  SchedRegistry *reg;
  gint64 now;
} TestSchedStore;

void test_sched_store_setup (TestSchedStore *f, gconstpointer data);
void test_sched_store_teardown (TestSchedStore *f, gconstpointer data);
/* Adds the test PATH: FUNC (TestSchedStore *f, gconstpointer data) on a
 * fresh TestSchedStore. */
#define TEST_SCHED_STORE_ADD(path, func)                                       \
  g_test_add (path, TestSchedStore, NULL, test_sched_store_setup, func,        \
              test_sched_store_teardown)
/* A scheduler restart: a new registry over the store reopened. */
void test_sched_store_restart (TestSchedStore *f);

/* Job ID as STORE has it once it is done or failed, iterating the
 * thread-default main context until then. Free with sched_job_free. */
SchedJob *test_sched_wait_job (SchedStore *store, const char *id);
