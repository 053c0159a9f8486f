/* What SchedMigrator (sched-migrator.c) and the migration it drives,
 * SchedMig (sched-mig.c), share. Nothing else includes this. */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

struct _SchedMigrator
{
  SchedService *svc;      /* owner: store, registry, agents, job board */
  GHashTable *migrations; /* job id -> SchedMig (queued or running) */
  SchedMigQueue *queue;   /* per-host limits, waiting migrations */
  double link_bandwidth;  /* bytes/s, for the cost model */
  gboolean stopped;       /* sched_migrator_stop ran */
};

/* A migration the scheduler drives (queued or running); owned by
 * migrator->migrations, freed when it ends (sched_mig_finish). At most one
 * agent call of it is in flight at a time (PrepareIncoming, then
 * MigrateOut), and only that call's completion ends it. */
typedef struct
{
  SchedMigrator *migrator;
  SchedJob *job;                       /* the live job (the store lags, see
                                          SCHED_MIG_STORE_INTERVAL_MS) */
  Drover__V1__VmSpec *spec;            /* the VM's, at submit */
  Drover__V1__MigrationParams *params; /* never NULL */
  char *warning;                       /* the cost model's, or NULL */
  gboolean prepare_sent;               /* PrepareIncoming was called */
  char *token;                         /* from PrepareIncoming */
  ProtoClientStream *stream;           /* MigrateOut, while open */
  gboolean silent;                     /* the watchdog cancelled it */
  gboolean cancelled;                  /* CancelJob asked to abort it */
  gint64 last_store_ms;
  gint64 last_msg_ms;
  GSource *watchdog;
} SchedMig;

/* The registry's clock (tests drive it). */
static inline gint64
sched_mig_now_ms (SchedMigrator *migrator)
{
  return sched_registry_now (migrator->svc->registry);
}

/* Frees M (its job copy, spec, params and watchdog); the migrator's table
 * calls it. */
void sched_mig_free (SchedMig *m);
/* Starts M (its slot taken): PrepareIncoming on the destination, then
 * MigrateOut on the source. May end M at once (M freed). */
void sched_mig_start (SchedMig *m);
/* Ends M as failed with the message FORMAT (M freed). */
void sched_mig_fail (SchedMig *m, const char *format, ...) G_GNUC_PRINTF (2, 3);

G_END_DECLS
