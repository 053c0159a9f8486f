/* SchedRegistry: host registration, heartbeats, liveness and the VM
 * inventory that agents report.
 *
 * The store is the truth; this object adds what only this process knows:
 * which hosts registered with it (a host that reports without having
 * registered here, e.g. after a scheduler restart, is told to register
 * again), the last report sequence number of each, and recently deleted
 * VMs (so a report generated before a deletion does not adopt the VM
 * again), and VMs being live-migrated. Time comes from an injectable clock.
 *
 * A report moves a VM recorded on another host only if that host has
 * lost it (the VM is "missing") or is down or gone: a host cannot take
 * another's live VM by reporting it (vm_may_move).
 *
 * Migrations: while a VM moves from S to D, D may already report the
 * incoming (paused, not yet real) domain and S may stop reporting it just
 * before the scheduler hears that the migration completed. So while the
 * migration runs, reports from D do not move the VM and reports from S
 * that lack it do not make it missing. Once it completed on D, reports
 * that still show the old picture (generated before the switch) are
 * ignored for three intervals. A failed migration leaves no guard: the
 * next reports say where the VM is.
 */
#include "sched-private.h"

#include <string.h>

/* A host is down after this many report intervals without a report. */
#define MISSED_INTERVALS 3

typedef struct
{
  guint64 last_seq;
  /* VM name -> the first report (seq) collected after a command changed
   * the VM (guint64 *): older ones may hold its state from before. */
  GHashTable *fresh_from;
} HostSession;

static void
host_session_free (HostSession *session)
{
  g_clear_pointer (&session->fresh_from, g_hash_table_unref);
  g_free (session);
}

static HostSession *
host_session_new (void)
{
  HostSession *session = g_new0 (HostSession, 1);

  session->fresh_from
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return session;
}

typedef struct
{
  char *source;
  char *dest;
  char *settled;   /* NULL while running; then where it went */
  gint64 until_ms; /* guard ends (settled only) */
} RegMigration;

static void
reg_migration_free (RegMigration *m)
{
  g_free (m->source);
  g_free (m->dest);
  g_free (m->settled);
  g_free (m);
}

struct _SchedRegistry
{
  SchedStore *store; /* borrowed */
  guint interval_ms;
  SchedClockFunc clock;
  gpointer clock_data;
  gint64 start_ms;
  GHashTable *sessions;   /* host name -> HostSession */
  GHashTable *forgotten;  /* VM name -> deleted at (gint64 *) */
  GHashTable *migrations; /* VM name -> RegMigration */
  SchedEvents *events;    /* borrowed; NULL: none */
};

static gint64
wall_clock_ms (gpointer user_data)
{
  return g_get_real_time () / 1000;
}

SchedRegistry *
sched_registry_new (SchedStore *store, guint report_interval_ms,
                    SchedClockFunc clock, gpointer clock_data)
{
  SchedRegistry *reg = g_new0 (SchedRegistry, 1);

  reg->store = store;
  reg->interval_ms = MAX (report_interval_ms, 1);
  reg->clock = clock ? clock : wall_clock_ms;
  reg->clock_data = clock_data;
  reg->start_ms = reg->clock (reg->clock_data);
  reg->sessions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                         (GDestroyNotify)host_session_free);
  reg->forgotten
      = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  reg->migrations = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify)reg_migration_free);
  return reg;
}

void
sched_registry_set_events (SchedRegistry *reg, SchedEvents *events)
{
  reg->events = events;
}

void
sched_registry_free (SchedRegistry *reg)
{
  g_hash_table_unref (reg->sessions);
  g_hash_table_unref (reg->forgotten);
  g_hash_table_unref (reg->migrations);
  g_free (reg);
}

gint64
sched_registry_now (SchedRegistry *reg)
{
  return reg->clock (reg->clock_data);
}

guint
sched_registry_get_report_interval (SchedRegistry *reg)
{
  return reg->interval_ms;
}

gint64
sched_registry_deadline (SchedRegistry *reg, const SchedHost *host)
{
  /* Hosts loaded from the store get a full deadline from our start
   * rather than being declared down by a clock that ran while we did not. */
  return MAX (host->last_seen_ms, reg->start_ms)
         + (gint64)MISSED_INTERVALS * reg->interval_ms;
}

/* Fetches host NAME; NULL without error if there is none. */
static SchedHost *
lookup_host (SchedRegistry *reg, const char *name, GError **error)
{
  g_autoptr (GError) local = NULL;
  SchedHost *host = sched_store_get_host (reg->store, name, &local);

  if (host == NULL
      && !g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    g_propagate_error (error, g_steal_pointer (&local));
  return host;
}

/* An agent's register or report rewrites its host's row: a drain or a
 * maintenance the operator set outlives it (and the agent's restart). */
static void
keep_maintenance (SchedHost *host, const SchedHost *old)
{
  if (old == NULL)
    return;
  sched_host_set_maintenance (host, old->maintenance);
}

gboolean
sched_registry_register (SchedRegistry *reg, const Drover__V1__HostInfo *info,
                         GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedHost) old = lookup_host (reg, info->name, &local);
  g_autoptr (SchedHost) host = NULL;
  HostSession *session;

  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  host = sched_host_new (info, PROTO_HOST_UP, sched_registry_now (reg));
  keep_maintenance (host, old);
  if (!sched_store_put_host (reg->store, host, error))
    return FALSE;

  sched_events_emit (reg->events, SCHED_EVENT_HOST_REGISTERED, NULL, host->name,
                     PROTO_HOST_UP, old ? old->state : NULL,
                     "host registered (agent at %s)", host->address);
  if (old == NULL)
    drover_message (NULL, NULL, host->name, "host registered (agent at %s)",
                    host->address);
  else if (strcmp (old->state, PROTO_HOST_UP) != 0)
    drover_message (NULL, NULL, host->name,
                    "host is up again (registered, agent at %s)",
                    host->address);
  else
    drover_debug (NULL, NULL, host->name, "host registered again");

  session = host_session_new ();
  g_hash_table_replace (reg->sessions, g_strdup (info->name), session);
  return TRUE;
}

/* Same rule as proto_name_validate; the registry only needs the yes/no
 * to drop garbage from reports. */
static gboolean
vm_name_ok (const char *name)
{
  gsize len = name ? strlen (name) : 0;

  if (len < 1 || len > 63)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    if (!(g_ascii_islower (name[i]) || g_ascii_isdigit (name[i])
          || name[i] == '-'))
      return FALSE;
  return TRUE;
}

/* Whether VM NAME was deleted recently enough that a report mentioning it
 * may predate the deletion. Drops stale entries as it goes. */
static gboolean
recently_forgotten (SchedRegistry *reg, const char *name, gint64 now)
{
  gint64 *when = g_hash_table_lookup (reg->forgotten, name);

  if (when == NULL)
    return FALSE;
  if (now - *when <= (gint64)MISSED_INTERVALS * reg->interval_ms)
    return TRUE;
  g_hash_table_remove (reg->forgotten, name);
  return FALSE;
}

void
sched_registry_vm_changed (SchedRegistry *reg, const char *name,
                           const char *host, guint64 fresh_from)
{
  HostSession *session = g_hash_table_lookup (reg->sessions, host);
  guint64 *seq;

  if (session == NULL || fresh_from == 0)
    return;
  seq = g_new (guint64, 1);
  *seq = fresh_from;
  g_hash_table_replace (session->fresh_from, g_strdup (name), seq);
}

/* Whether report SEQ of SESSION's host may predate a command that changed
 * VM NAME (sched_registry_vm_changed); forgets the mark once a report
 * that follows it comes. */
static gboolean
predates_change (HostSession *session, const char *name, guint64 seq)
{
  guint64 *from = g_hash_table_lookup (session->fresh_from, name);

  if (from == NULL || seq == 0)
    return FALSE;
  if (seq < *from)
    return TRUE;
  g_hash_table_remove (session->fresh_from, name);
  return FALSE;
}

void
sched_registry_forget_vm (SchedRegistry *reg, const char *name)
{
  gint64 *when = g_new (gint64, 1);

  *when = sched_registry_now (reg);
  g_hash_table_replace (reg->forgotten, g_strdup (name), when);
}

void
sched_registry_migration_begin (SchedRegistry *reg, const char *name,
                                const char *source, const char *dest)
{
  RegMigration *m = g_new0 (RegMigration, 1);

  m->source = g_strdup (source);
  m->dest = g_strdup (dest);
  g_hash_table_replace (reg->migrations, g_strdup (name), m);
}

void
sched_registry_migration_end (SchedRegistry *reg, const char *name,
                              const char *host)
{
  RegMigration *m = g_hash_table_lookup (reg->migrations, name);

  if (m == NULL)
    return;
  if (host == NULL)
    {
      g_hash_table_remove (reg->migrations, name);
      return;
    }
  g_free (m->settled);
  m->settled = g_strdup (host);
  m->until_ms
      = sched_registry_now (reg) + (gint64)MISSED_INTERVALS * reg->interval_ms;
}

/* The guard of VM NAME, if one is active; drops an expired one. */
static RegMigration *
migration_guard (SchedRegistry *reg, const char *name, gint64 now)
{
  RegMigration *m = g_hash_table_lookup (reg->migrations, name);

  if (m != NULL && m->settled != NULL && now > m->until_ms)
    {
      g_hash_table_remove (reg->migrations, name);
      return NULL;
    }
  return m;
}

/* TRUE if HOST_NAME's report of VM NAME must not change its record. */
static gboolean
migration_ignores (SchedRegistry *reg, const char *name, const char *host_name,
                   gint64 now)
{
  RegMigration *m = migration_guard (reg, name, now);

  if (m == NULL)
    return FALSE;
  if (m->settled == NULL)
    return strcmp (host_name, m->dest) == 0;
  return strcmp (host_name, m->settled) != 0;
}

/* Whether another host's report may take VM: only when VM's own host has
 * lost it (reports it no more: "missing") or is down or gone. A host never
 * takes a VM that is alive on its host, whatever it reports; the
 * scheduler's own migrations move the record themselves. */
static gboolean
vm_may_move (SchedRegistry *reg, const SchedVm *vm, gboolean *may,
             GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedHost) owner = NULL;

  *may = TRUE;
  if (strcmp (vm->state, PROTO_VM_MISSING) == 0)
    return TRUE;
  owner = lookup_host (reg, vm->host, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  *may = owner == NULL || strcmp (owner->state, PROTO_HOST_UP) != 0;
  return TRUE;
}

static gboolean
reconcile_vm (SchedRegistry *reg, HostSession *session, guint64 seq,
              const char *host_name, const Drover__V1__VmStatus *status,
              gint64 now, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedVm) vm
      = sched_store_get_vm (reg->store, status->name, &local);
  Drover__V1__VmSpec spec = DROVER__V1__VM_SPEC__INIT;
  const char *state = status->state[0] ? status->state : PROTO_VM_UNKNOWN;

  if (vm == NULL
      && !g_error_matches (local, SCHED_ERROR, SCHED_ERROR_NOT_FOUND))
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }

  /* The spec the agent recorded in the domain is what actually runs; a
   * report without one still gives the size. */
  if (status->spec != NULL)
    spec = *status->spec;
  else if (vm != NULL)
    spec = *vm->spec;
  else
    {
      spec.vcpus = status->vcpus;
      spec.memory = status->memory;
    }
  spec.name = status->name;

  if (migration_ignores (reg, status->name, host_name, now))
    {
      drover_debug (status->name, NULL, host_name,
                    "VM is migrating: not taking the host's report of it");
      return TRUE;
    }
  if (vm != NULL && strcmp (vm->host, host_name) == 0
      && predates_change (session, status->name, seq))
    {
      drover_debug (status->name, NULL, host_name,
                    "report %" G_GUINT64_FORMAT " was collected before the "
                    "last command on the VM ended: not taken",
                    seq);
      return TRUE;
    }

  if (vm == NULL)
    {
      if (recently_forgotten (reg, status->name, now))
        {
          drover_debug (status->name, NULL, host_name,
                        "ignoring deleted VM in a report");
          return TRUE;
        }
      drover_message (status->name, NULL, host_name,
                      "VM found on the host: adopted");
      sched_events_emit (reg->events, SCHED_EVENT_VM_CREATED, status->name,
                         host_name, state, NULL, "found on the host: adopted");
      vm = sched_vm_new (&spec, host_name, state, status, now);
      return sched_store_put_vm (reg->store, vm, error);
    }

  if (strcmp (vm->host, host_name) != 0)
    {
      gboolean may;

      if (!vm_may_move (reg, vm, &may, error))
        return FALSE;
      if (!may)
        {
          drover_message (vm->name, NULL, host_name,
                          "host reports the VM, which is %s on host %s: "
                          "not taken",
                          vm->state, vm->host);
          return TRUE;
        }
      drover_message (vm->name, NULL, NULL, "VM is now on host %s (was %s)",
                      host_name, vm->host);
      sched_events_emit (reg->events, SCHED_EVENT_VM_MOVED, vm->name, host_name,
                         state, vm->state, "now on host %s (was %s)", host_name,
                         vm->host);
      g_free (vm->host);
      vm->host = g_strdup (host_name);
    }
  else if (strcmp (vm->state, PROTO_VM_MISSING) == 0)
    drover_message (vm->name, NULL, host_name, "VM is back on its host");

  if (status->spec != NULL)
    {
      Drover__V1__VmSpec *fresh;

      /* The migration defaults are the scheduler's, not in the domain. */
      spec.migration_postcopy = vm->spec->migration_postcopy;
      fresh = proto_msg_copy (&spec.base);
      proto_msg_free (vm->spec);
      vm->spec = fresh;
    }
  sched_events_vm_state (reg->events, vm->name, host_name, vm->state, state);
  sched_vm_set_state (vm, state);
  sched_vm_set_status (vm, status);
  vm->updated_ms = now;
  return sched_store_put_vm (reg->store, vm, error);
}

static gboolean
reconcile (SchedRegistry *reg, HostSession *session, guint64 seq,
           const char *host_name, Drover__V1__VmStatus *const *vms, gsize n_vms,
           gint64 now, GError **error)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) recorded = NULL;

  for (gsize i = 0; i < n_vms; i++)
    {
      const Drover__V1__VmStatus *status = vms[i];

      if (status == NULL || !vm_name_ok (status->name)
          || !g_hash_table_add (seen, status->name))
        continue;
      if (!reconcile_vm (reg, session, seq, host_name, status, now, error))
        return FALSE;
    }

  recorded = sched_store_list_vms (reg->store, host_name, error);
  if (recorded == NULL)
    return FALSE;
  for (guint i = 0; i < recorded->len; i++)
    {
      SchedVm *vm = recorded->pdata[i];

      /* A VM being created may not exist on the host yet. */
      if (g_hash_table_contains (seen, vm->name)
          || strcmp (vm->state, PROTO_VM_CREATING) == 0
          || strcmp (vm->state, PROTO_VM_MISSING) == 0
          || migration_guard (reg, vm->name, now) != NULL)
        continue;
      drover_message (vm->name, NULL, host_name,
                      "VM is missing from its host (was %s)", vm->state);
      sched_events_emit (reg->events, SCHED_EVENT_VM_MISSING, vm->name,
                         host_name, PROTO_VM_MISSING, vm->state,
                         "missing from its host (was %s)", vm->state);
      sched_vm_set_state (vm, PROTO_VM_MISSING);
      vm->updated_ms = now;
      if (!sched_store_put_vm (reg->store, vm, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
sched_registry_report (SchedRegistry *reg, const Drover__V1__HostInfo *info,
                       Drover__V1__VmStatus *const *vms, gsize n_vms,
                       guint64 seq, gboolean *reregister, GError **error)
{
  HostSession *session = g_hash_table_lookup (reg->sessions, info->name);
  g_autoptr (GError) local = NULL;
  g_autoptr (SchedHost) old = NULL;
  g_autoptr (SchedHost) host = NULL;
  gint64 now = sched_registry_now (reg);

  *reregister = FALSE;
  if (session == NULL)
    {
      *reregister = TRUE;
      return TRUE;
    }
  /* Reports may overtake each other; an older one would undo a newer
   * inventory. 0 means the agent does not number its reports. */
  if (seq != 0 && seq <= session->last_seq)
    {
      drover_debug (NULL, NULL, info->name,
                    "ignoring report %" G_GUINT64_FORMAT
                    " older than %" G_GUINT64_FORMAT,
                    seq, session->last_seq);
      return TRUE;
    }

  old = lookup_host (reg, info->name, &local);
  if (local != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (old == NULL)
    {
      /* Removed from the store behind our back: start over. */
      g_hash_table_remove (reg->sessions, info->name);
      *reregister = TRUE;
      return TRUE;
    }

  host = sched_host_new (info, PROTO_HOST_UP, now);
  keep_maintenance (host, old);
  if (host->address[0] == '\0')
    {
      g_free (host->address);
      host->address = g_strdup (old->address);
    }

  if (!sched_store_begin (reg->store, SCHED_STORE_SYNC_RESTATED, error))
    return FALSE;
  if (!sched_store_put_host (reg->store, host, error)
      || !reconcile (reg, session, seq, host->name, vms, n_vms, now, error)
      || !sched_store_commit (reg->store, error))
    {
      sched_store_rollback (reg->store);
      return FALSE;
    }

  if (strcmp (old->state, PROTO_HOST_UP) != 0)
    {
      drover_message (NULL, NULL, host->name, "host is up again");
      sched_events_emit (reg->events, SCHED_EVENT_HOST_UP, NULL, host->name,
                         PROTO_HOST_UP, old->state, "host is up again");
    }
  session->last_seq = seq;
  return TRUE;
}

guint
sched_registry_check_liveness (SchedRegistry *reg, GError **error)
{
  g_autoptr (GPtrArray) hosts = sched_store_list_hosts (reg->store, error);
  gint64 now = sched_registry_now (reg);
  guint n_down = 0;

  if (hosts == NULL)
    return 0;
  for (guint i = 0; i < hosts->len; i++)
    {
      SchedHost *host = hosts->pdata[i];

      if (strcmp (host->state, PROTO_HOST_UP) != 0
          || now <= sched_registry_deadline (reg, host))
        continue;
      g_free (host->state);
      host->state = g_strdup (PROTO_HOST_DOWN);
      if (!sched_store_put_host (reg->store, host, error))
        return n_down;
      drover_message (NULL, NULL, host->name,
                      "host is down: no report for %" G_GINT64_FORMAT " ms",
                      now - MAX (host->last_seen_ms, reg->start_ms));
      sched_events_emit (reg->events, SCHED_EVENT_HOST_DOWN, NULL, host->name,
                         PROTO_HOST_DOWN, PROTO_HOST_UP,
                         "no report for %" G_GINT64_FORMAT " ms",
                         now - MAX (host->last_seen_ms, reg->start_ms));
      n_down++;
    }
  return n_down;
}
