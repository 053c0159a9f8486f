/* SchedLoad: each host's and each VM's load over a rolling window, from
 * the agents' reports (sched-load.c). The balancer reads it so that a
 * short spike does not move VMs: every quantity is an exponentially
 * weighted moving average whose time constant is the window, weighted by
 * the time between samples (reports may come late or bunched).
 *
 * CPU comes from the deltas of each VM's cpu_time_ns between two reports
 * (cores used), memory from the VM's resident memory and the host's
 * used memory. Pure code: the caller passes the time, so unit tests feed
 * synthetic reports. */
#pragma once

#include "proto.h"

G_BEGIN_DECLS

/* The window's default (--balance-window is not an option: five minutes
 * is what the issue asks). */
#define SCHED_LOAD_DEFAULT_WINDOW_MS (5 * 60 * 1000)

typedef struct _SchedLoad SchedLoad;

/* WINDOW_MS: the averages' time constant (0 = the default). */
SchedLoad *sched_load_new (gint64 window_ms);
void sched_load_free (SchedLoad *load);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (SchedLoad, sched_load_free)

/* Takes host INFO's report made at NOW_MS with its N_VMS VMS. A VM seen
 * for the first time (or whose CPU time went back: a restart) has no CPU
 * delta yet: its first CPU sample is the agent's cpu_percent. A VM
 * reported by another host than before (it migrated) keeps its averages.
 * VMs the host no longer reports are forgotten once no host reported them
 * for a window. */
void sched_load_report (SchedLoad *load, gint64 now_ms,
                        const Drover__V1__HostInfo *info,
                        Drover__V1__VmStatus *const *vms, gsize n_vms);

/* VM's averages: CPU in cores, resident bytes. FALSE (outputs untouched)
 * if no report has shown it. Outputs may be NULL. */
gboolean sched_load_vm (SchedLoad *load, const char *vm, double *cpu_cores,
                        guint64 *memory_rss);

/* HOST's averages: CPU its VMs use over its CPUs (0..1, or more when
 * overcommitted), bytes of memory in use on it. FALSE if it has not
 * reported. Outputs may be NULL. */
gboolean sched_load_host (SchedLoad *load, const char *host, double *cpu_load,
                          guint64 *memory_used);

/* Forgets VM (deleted). */
void sched_load_forget_vm (SchedLoad *load, const char *vm);

G_END_DECLS
