/* The measured dirty rate of each running VM (issues 11 and 15): see
 * agent-dirty-rate.c. */
#pragma once

#include "agent-private.h"

/* A calculation lasts this long (QEMU calc-dirty-rate, page sampling:
 * 512 pages per GiB, so a 256 MiB guest writing 8 MiB/s over 32 MiB had
 * about 16 sampled pages in reach and read 0-6 MiB/s over 1 s here;
 * over 2 s the spread halves, so 2 s it is); each running VM gets one at most
 * every AGENT_DIRTY_RATE_INTERVAL_US, the first when the agent first sees it
 * running. A calculation that gave nothing this long after it was asked for
 * counts as failed. */
#define AGENT_DIRTY_RATE_CALC_S 2
#define AGENT_DIRTY_RATE_INTERVAL_US (30 * G_USEC_PER_SEC)
#define AGENT_DIRTY_RATE_GIVE_UP_US (20 * G_USEC_PER_SEC)
/* More than any host's memory bandwidth: a bigger figure is garbage. */
#define AGENT_DIRTY_RATE_MAX_MIB_S (1024 * 1024)

typedef struct _AgentDirtyRate AgentDirtyRate;

/* TRUE when VM NAME must not get a calculation now (it migrates). */
typedef gboolean (*AgentDirtyRateBusyFunc) (const char *name,
                                            gpointer user_data);

AgentDirtyRate *agent_dirty_rate_new (void);
/* Waits for a calculation request under way. */
void agent_dirty_rate_free (AgentDirtyRate *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AgentDirtyRate, agent_dirty_rate_free)

/* What a statistics record's dirtyrate.* fields (PARAMS, N of them) say:
 * TRUE with *BYTES_PER_S and *START (QEMU's calc_start_time) when a
 * calculation has measured; FALSE when they are absent, unstarted, still
 * measuring or out of range. */
gboolean agent_dirty_rate_parse (virTypedParameterPtr params, int n,
                                 double *bytes_per_s, gint64 *start);

/* One collection's record of the VM UUID named NAME (RUNNING: it runs),
 * at monotonic time NOW_US: takes a new measurement from PARAMS and sets
 * STATUS's dirty_rate_* fields from the newest one. */
void agent_dirty_rate_observe (AgentDirtyRate *d, const char *uuid,
                               const char *name, gboolean running,
                               virTypedParameterPtr params, int n,
                               gint64 now_us, Drover__V1__VmStatus *status);
/* After a collection: forgets the VMs it did not see. */
void agent_dirty_rate_sweep (AgentDirtyRate *d);

/* The uuids of the VMs due for a calculation at NOW_US (running in the
 * latest collection, none asked within the interval, BUSY says no
 * migration): each is marked asked. Free with g_ptr_array_unref. */
GPtrArray *agent_dirty_rate_due (AgentDirtyRate *d, gint64 now_us,
                                 AgentDirtyRateBusyFunc busy,
                                 gpointer user_data);
/* Asks libvirt for a calculation on DOM (uuid UUID) in a worker thread;
 * takes DOM. Never waits. */
void agent_dirty_rate_start (AgentDirtyRate *d, virDomainPtr dom,
                             const char *uuid);
/* The calculation asked for UUID did not start (WHY): logged once per VM
 * at debug level; it is due again after the interval. */
void agent_dirty_rate_failed (AgentDirtyRate *d, const char *uuid,
                              const char *why);

/* The newest measurement of VM NAME on this host: TRUE with *BYTES_PER_S
 * (and *AGE_S when not NULL); FALSE when there is none. Any thread. */
gboolean agent_dirty_rate_get (AgentDirtyRate *d, const char *name,
                               double *bytes_per_s, guint *age_s);

/* The agent's (owned by its AgentStats, agent-stats.c). */
AgentDirtyRate *agent_stats_dirty_rate (AgentStats *stats);
