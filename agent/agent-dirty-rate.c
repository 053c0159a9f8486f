/* The measured dirty rate of each running VM (issues 11 and 15).
 *
 * QEMU measures how fast a guest dirties its memory on request
 * (calc-dirty-rate; libvirt's virDomainStartDirtyRateCalc): in page
 * sampling mode it hashes a sample of pages, waits AGENT_DIRTY_RATE_CALC_S (2
 * s) and counts the sampled pages that changed, which works under TCG as under
 * KVM (QEMU 7.2 under TCG here: page sampling measured; dirty-bitmap mode
 * made QEMU drop its QMP connection). The result is read with
 * the statistics every report collects (VIR_DOMAIN_STATS_DIRTYRATE, under the
 * same NOWAIT), so a report never waits for a calculation. Each running VM gets
 * one calculation every AGENT_DIRTY_RATE_INTERVAL_US, never while it migrates;
 * starting one takes a libvirt job, so it runs in a worker thread of its own. A
 * calculation that fails or is not supported leaves the figure unknown
 * and is logged once per VM at debug level.
 */
#include "agent-dirty-rate.h"

typedef struct
{
  char *name;
  double rate;        /* bytes/s of the newest measurement */
  gboolean measured;  /* there is one */
  gint64 measured_us; /* monotonic, when it was first read */
  gint64 qemu_start;  /* its calc_start_time: tells a new one */
  gint64 asked_us;    /* a calculation was asked for then; 0: none */
  gint64 next_us;     /* the next one is due then; 0: at once */
  gboolean running;   /* in the latest collection */
  gboolean seen;
  gboolean logged; /* a failure was logged */
} DirtyVm;

struct _AgentDirtyRate
{
  GMutex lock;       /* guards vms */
  GHashTable *vms;   /* uuid -> DirtyVm */
  GThreadPool *pool; /* starts calculations */
};

typedef struct
{
  AgentDirtyRate *d;
  virDomainPtr dom;
  char *uuid;
} StartTask;

static void
dirty_vm_free (gpointer data)
{
  DirtyVm *v = data;

  g_free (v->name);
  g_free (v);
}

static void
start_task_run (gpointer data, gpointer user_data)
{
  StartTask *t = data;

  (void)user_data;
  /* The job check closes the window between the agent's claim of a
   * migration and the due list. */
  if (agent_domain_job_is (t->dom, VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)
      || agent_domain_job_is (t->dom, VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN))
    {
      g_mutex_lock (&t->d->lock);
      {
        DirtyVm *v = g_hash_table_lookup (t->d->vms, t->uuid);

        /* Not a failure: due again once the migration is over. */
        if (v)
          v->asked_us = v->next_us = 0;
      }
      g_mutex_unlock (&t->d->lock);
    }
  else if (virDomainStartDirtyRateCalc (t->dom, AGENT_DIRTY_RATE_CALC_S,
                                        VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING)
           < 0)
    {
      virErrorPtr err = virGetLastError ();

      agent_dirty_rate_failed (
          t->d, t->uuid, err && err->message ? err->message : "libvirt failed");
    }
  virDomainFree (t->dom);
  g_free (t->uuid);
  g_free (t);
}

AgentDirtyRate *
agent_dirty_rate_new (void)
{
  AgentDirtyRate *d = g_new0 (AgentDirtyRate, 1);

  g_mutex_init (&d->lock);
  d->vms
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, dirty_vm_free);
  d->pool = g_thread_pool_new (start_task_run, NULL, 1, FALSE, NULL);
  return d;
}

void
agent_dirty_rate_free (AgentDirtyRate *d)
{
  if (!d)
    return;
  if (d->pool)
    g_thread_pool_free (d->pool, FALSE, TRUE);
  g_hash_table_destroy (d->vms);
  g_mutex_clear (&d->lock);
  g_free (d);
}

gboolean
agent_dirty_rate_parse (virTypedParameterPtr params, int n, double *bytes_per_s,
                        gint64 *start)
{
  int status = VIR_DOMAIN_DIRTYRATE_UNSTARTED;
  long long mib = -1, when = 0;

  *bytes_per_s = 0;
  *start = 0;
  if (virTypedParamsGetInt (params, n, "dirtyrate.calc_status", &status) <= 0
      || status != VIR_DOMAIN_DIRTYRATE_MEASURED)
    return FALSE;
  /* QEMU's "MB/s" is MiB/s: pages times page size over 1 << 20. */
  if (virTypedParamsGetLLong (params, n, "dirtyrate.megabytes_per_second", &mib)
          <= 0
      || mib < 0 || mib > AGENT_DIRTY_RATE_MAX_MIB_S)
    return FALSE;
  (void)virTypedParamsGetLLong (params, n, "dirtyrate.calc_start_time", &when);
  *bytes_per_s = (double)mib * 1024.0 * 1024.0;
  *start = when;
  return TRUE;
}

static DirtyVm *
vm_get (AgentDirtyRate *d, const char *uuid, const char *name)
{
  DirtyVm *v = g_hash_table_lookup (d->vms, uuid);

  if (!v)
    {
      v = g_new0 (DirtyVm, 1);
      v->qemu_start = -1;
      g_hash_table_insert (d->vms, g_strdup (uuid), v);
    }
  if (g_strcmp0 (v->name, name) != 0)
    {
      g_free (v->name);
      v->name = g_strdup (name);
    }
  return v;
}

static void
log_once (DirtyVm *v, const char *why)
{
  if (v->logged)
    return;
  v->logged = TRUE;
  g_debug ("dirty rate of VM %s stays unknown: %s (not logged again)",
           v->name ? v->name : "?", why);
}

void
agent_dirty_rate_observe (AgentDirtyRate *d, const char *uuid, const char *name,
                          gboolean running, virTypedParameterPtr params, int n,
                          gint64 now_us, Drover__V1__VmStatus *status)
{
  double rate = 0;
  gint64 start = 0;
  DirtyVm *v;

  if (uuid == NULL || *uuid == '\0')
    return;
  g_mutex_lock (&d->lock);
  v = vm_get (d, uuid, name);
  v->seen = TRUE;
  v->running = running;
  if (agent_dirty_rate_parse (params, n, &rate, &start)
      && start != v->qemu_start)
    {
      v->rate = rate;
      v->measured = TRUE;
      v->measured_us = now_us;
      v->qemu_start = start;
      v->asked_us = 0;
    }
  else if (v->asked_us != 0
           && now_us - v->asked_us >= AGENT_DIRTY_RATE_GIVE_UP_US)
    {
      v->asked_us = 0;
      log_once (v, "no measurement came");
    }
  if (status != NULL && v->measured)
    {
      status->dirty_rate_measured = TRUE;
      status->dirty_rate_bytes_per_second = v->rate;
      status->dirty_rate_age_s = (guint32)MIN (
          (now_us - v->measured_us) / G_USEC_PER_SEC, G_MAXUINT32);
    }
  g_mutex_unlock (&d->lock);
}

static gboolean
vm_not_seen (gpointer key, gpointer value, gpointer data)
{
  DirtyVm *v = value;
  gboolean drop = !v->seen;

  (void)key;
  (void)data;
  v->seen = FALSE;
  return drop;
}

void
agent_dirty_rate_sweep (AgentDirtyRate *d)
{
  g_mutex_lock (&d->lock);
  g_hash_table_foreach_remove (d->vms, vm_not_seen, NULL);
  g_mutex_unlock (&d->lock);
}

GPtrArray *
agent_dirty_rate_due (AgentDirtyRate *d, gint64 now_us,
                      AgentDirtyRateBusyFunc busy, gpointer user_data)
{
  GPtrArray *due = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  gpointer key, value;

  g_mutex_lock (&d->lock);
  g_hash_table_iter_init (&it, d->vms);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      DirtyVm *v = value;

      if (!v->running || v->asked_us != 0 || now_us < v->next_us)
        continue;
      if (busy != NULL && busy (v->name, user_data))
        continue;
      v->asked_us = now_us;
      v->next_us = now_us + AGENT_DIRTY_RATE_INTERVAL_US;
      g_ptr_array_add (due, g_strdup (key));
    }
  g_mutex_unlock (&d->lock);
  return due;
}

void
agent_dirty_rate_start (AgentDirtyRate *d, virDomainPtr dom, const char *uuid)
{
  StartTask *t = g_new0 (StartTask, 1);

  t->d = d;
  t->dom = dom;
  t->uuid = g_strdup (uuid);
  g_thread_pool_push (d->pool, t, NULL);
}

void
agent_dirty_rate_failed (AgentDirtyRate *d, const char *uuid, const char *why)
{
  DirtyVm *v;

  g_mutex_lock (&d->lock);
  v = g_hash_table_lookup (d->vms, uuid);
  if (v)
    {
      v->asked_us = 0;
      log_once (v, why);
    }
  g_mutex_unlock (&d->lock);
}

gboolean
agent_dirty_rate_get (AgentDirtyRate *d, const char *name, double *bytes_per_s,
                      guint *age_s)
{
  GHashTableIter it;
  gpointer value;
  gboolean found = FALSE;
  gint64 now = g_get_monotonic_time ();

  *bytes_per_s = 0;
  if (name == NULL)
    return FALSE;
  g_mutex_lock (&d->lock);
  g_hash_table_iter_init (&it, d->vms);
  while (!found && g_hash_table_iter_next (&it, NULL, &value))
    {
      DirtyVm *v = value;

      if (v->measured && g_strcmp0 (v->name, name) == 0)
        {
          found = TRUE;
          *bytes_per_s = v->rate;
          if (age_s)
            *age_s = (guint)MIN ((now - v->measured_us) / G_USEC_PER_SEC,
                                 G_MAXUINT);
        }
    }
  g_mutex_unlock (&d->lock);
  return found;
}
