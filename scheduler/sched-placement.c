/* Placement: which host runs a new VM. Pure functions over the host and
 * VM tables, so they are tested without a store or a network.
 *
 * Candidates are the hosts that are up and in service (not draining, not
 * in maintenance). Filters: accelerator, vCPUs (with the CPU overcommit),
 * memory (with a per-host reserve and the memory overcommit) and disk.
 * vCPUs and memory count only what VMs that run (or are being created or
 * migrated here) hold: a stopped VM keeps only its disk. Weight:
 * spread, the host with the largest free memory fraction plus free vCPU
 * fraction after placement wins; ties go to the smallest name so the
 * choice is deterministic. Networks (issue 13): a VM that needs networks
 * goes only to hosts that have every one of them (sched-networks.h).
 */
#include "sched-networks.h"
#include "sched-images.h"
#include "sched-nics.h"

#include <math.h>
#include <string.h>

guint64
sched_policy_vcpu_cap (const SchedPolicy *policy, guint cpus)
{
  return (guint64)floor (cpus * MAX (policy->cpu_overcommit, 0.0));
}

guint64
sched_policy_memory_cap (const SchedPolicy *policy, guint64 memory_total)
{
  double ratio
      = policy->memory_overcommit > 0 ? policy->memory_overcommit : 1.0;

  if (memory_total <= policy->memory_reserve)
    return 0;
  return (guint64)((memory_total - policy->memory_reserve) * ratio);
}

gboolean
sched_vm_holds_capacity (const SchedVm *vm)
{
  return strcmp (vm->state, PROTO_VM_SHUTOFF) != 0
         && strcmp (vm->state, PROTO_VM_CRASHED) != 0
         && strcmp (vm->state, PROTO_VM_MISSING) != 0;
}

void
sched_host_usage (const char *host, GPtrArray *vms, guint *vm_count,
                  guint *vcpus_used, guint64 *memory_used,
                  guint64 *disk_reserved)
{
  guint count = 0, vcpus = 0;
  guint64 memory = 0, disk = 0;

  for (guint i = 0; vms != NULL && i < vms->len; i++)
    {
      const SchedVm *vm = vms->pdata[i];

      if (strcmp (vm->host, host) != 0
          || strcmp (vm->state, PROTO_VM_MISSING) == 0)
        continue;
      count++;
      /* A stopped VM holds its disk but no CPU or memory: starting it
       * again takes what is free then. */
      if (sched_vm_holds_capacity (vm))
        {
          vcpus += vm->spec->vcpus;
          memory += vm->spec->memory;
        }
      /* The agent's data_free already shows the disks of VMs it has; a VM
       * being created may not have its disk yet, so reserve that. */
      if (strcmp (vm->state, PROTO_VM_CREATING) == 0)
        disk += vm->spec->disk;
    }
  if (vm_count)
    *vm_count = count;
  if (vcpus_used)
    *vcpus_used = vcpus;
  if (memory_used)
    *memory_used = memory;
  if (disk_reserved)
    *disk_reserved = disk;
}

/* NULL if SPEC's vCPUs and memory fit on a host of INFO that has
 * VCPUS_USED and MEMORY_USED held, else why not. */
static char *
capacity_misfit (const SchedPolicy *policy, const Drover__V1__HostInfo *info,
                 guint vcpus_used, guint64 memory_used,
                 const Drover__V1__VmSpec *spec)
{
  guint64 vcpu_cap = sched_policy_vcpu_cap (policy, info->cpus);
  guint64 memory_cap = sched_policy_memory_cap (policy, info->memory_total);

  if ((guint64)vcpus_used + spec->vcpus > vcpu_cap)
    return g_strdup_printf ("not enough vCPUs (need %u, %" G_GUINT64_FORMAT
                            " of %" G_GUINT64_FORMAT " free)",
                            spec->vcpus,
                            vcpu_cap > vcpus_used ? vcpu_cap - vcpus_used : 0,
                            vcpu_cap);
  if (memory_used > memory_cap || spec->memory > memory_cap - memory_used)
    {
      g_autofree char *need = proto_format_size_brief (spec->memory);
      g_autofree char *avail = proto_format_size_brief (
          memory_cap > memory_used ? memory_cap - memory_used : 0);
      return g_strdup_printf ("not enough memory (need %s, %s free)", need,
                              avail);
    }
  return NULL;
}

/* NULL if SPEC fits on HOST (and *SCORE is set), else why not. */
static char *
host_misfit (const SchedPolicy *policy, const SchedHost *host, GPtrArray *vms,
             const Drover__V1__VmSpec *spec, GPtrArray *networks, double *score)
{
  const Drover__V1__HostInfo *info = host->info;
  guint vcpus_used;
  guint64 memory_used, disk_reserved;
  guint64 vcpu_cap, memory_cap, disk_free;
  double vcpu_frac, memory_frac;
  char *misfit;

  if (strcmp (host->state, PROTO_HOST_UP) != 0)
    return g_strdup (host->state[0] ? host->state : PROTO_HOST_DOWN);
  /* Out of service: a drain empties it, maintenance keeps it empty. */
  if (host->maintenance != NULL && host->maintenance[0] != '\0')
    return g_strdup_printf ("host is %s", host->maintenance);

  if (spec->accel[0] != '\0' && strcmp (spec->accel, info->accel) != 0)
    return g_strdup_printf ("accelerator is %s, VM needs %s",
                            info->accel[0] ? info->accel : "unknown",
                            spec->accel);
  misfit = sched_networks_misfit (host, networks);
  if (misfit != NULL)
    return misfit;
  /* Images (issue 13): the VM's disk is an overlay on its image. */
  if (spec->image[0] != '\0' && !sched_host_has_image (host, spec->image))
    return g_strdup_printf ("no image '%s' on this host", spec->image);

  sched_host_usage (host->name, vms, NULL, &vcpus_used, &memory_used,
                    &disk_reserved);
  misfit = capacity_misfit (policy, info, vcpus_used, memory_used, spec);
  if (misfit != NULL)
    return misfit;
  vcpu_cap = sched_policy_vcpu_cap (policy, info->cpus);
  memory_cap = sched_policy_memory_cap (policy, info->memory_total);

  disk_free
      = info->data_free > disk_reserved ? info->data_free - disk_reserved : 0;
  if (spec->disk > disk_free)
    {
      g_autofree char *need = proto_format_size_brief (spec->disk);
      g_autofree char *avail = proto_format_size_brief (disk_free);
      return g_strdup_printf ("not enough disk (need %s, %s free)", need,
                              avail);
    }

  /* Both capacities are > 0 here unless the VM asks for nothing. */
  vcpu_frac
      = vcpu_cap ? (double)(vcpu_cap - vcpus_used - spec->vcpus) / vcpu_cap : 0;
  memory_frac = memory_cap ? (double)(memory_cap - memory_used - spec->memory)
                                 / memory_cap
                           : 0;
  *score = vcpu_frac + memory_frac;
  return NULL;
}

static int
compare_host_names (gconstpointer a, gconstpointer b)
{
  const SchedHost *ha = *(const SchedHost *const *)a;
  const SchedHost *hb = *(const SchedHost *const *)b;

  return strcmp (ha->name, hb->name);
}

gboolean
sched_check_start_room (const SchedPolicy *policy, GPtrArray *hosts,
                        GPtrArray *vms, const SchedVm *vm, GError **error)
{
  const SchedHost *host = sched_host_find (hosts, vm->host);
  g_autofree char *misfit = NULL;
  guint vcpus_used;
  guint64 memory_used;

  /* Running already (the agent says so), or a host the store does not
   * know (the call fails there): nothing to check. */
  if (sched_vm_holds_capacity (vm) || host == NULL)
    return TRUE;
  sched_host_usage (host->name, vms, NULL, &vcpus_used, &memory_used, NULL);
  misfit
      = capacity_misfit (policy, host->info, vcpus_used, memory_used, vm->spec);
  if (misfit == NULL)
    return TRUE;
  g_set_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY,
               "host '%s' cannot start VM '%s': %s (a stopped VM holds no "
               "vCPUs or memory; migrate or stop another VM first)",
               host->name, vm->name, misfit);
  return FALSE;
}

const SchedHost *
sched_host_find (GPtrArray *hosts, const char *name)
{
  for (guint i = 0; i < hosts->len; i++)
    {
      const SchedHost *host = hosts->pdata[i];
      if (strcmp (host->name, name) == 0)
        return host;
    }
  return NULL;
}

char *
sched_place (const SchedPolicy *policy, GPtrArray *hosts, GPtrArray *vms,
             const Drover__V1__VmSpec *spec, const char *pin, GError **error)
{
  /* The networks of the VM's NICs (their bridges and VLANs, as the
   * scheduler filled them in the spec). */
  GPtrArray *nets = sched_nics_networks (spec);
  char *chosen
      = sched_place_on_networks (policy, hosts, vms, spec, pin, nets, error);

  sched_nics_networks_free (nets);
  return chosen;
}

char *
sched_place_on_networks (const SchedPolicy *policy, GPtrArray *hosts,
                         GPtrArray *vms, const Drover__V1__VmSpec *spec,
                         const char *pin, GPtrArray *networks, GError **error)
{
  g_autoptr (GPtrArray) order = NULL;
  g_autoptr (GString) why = NULL;
  const SchedHost *best = NULL;
  double best_score = 0;

  if (pin != NULL && pin[0] != '\0')
    {
      const SchedHost *host = sched_host_find (hosts, pin);
      g_autofree char *misfit = NULL;
      double score;

      if (host == NULL)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_NOT_FOUND,
                       "no host named '%s'", pin);
          return NULL;
        }
      if (strcmp (host->state, PROTO_HOST_UP) != 0)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                       "host '%s' is %s", pin,
                       host->state[0] ? host->state : PROTO_HOST_DOWN);
          return NULL;
        }
      /* A missing network is no matter of capacity: the host cannot
       * offer it at all. */
      misfit = sched_networks_misfit (host, networks);
      if (misfit != NULL)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_PRECONDITION,
                       "host '%s' cannot run VM '%s': %s", pin, spec->name,
                       misfit);
          return NULL;
        }
      misfit = host_misfit (policy, host, vms, spec, networks, &score);
      if (misfit != NULL)
        {
          g_set_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY,
                       "host '%s' cannot run VM '%s': %s", pin, spec->name,
                       misfit);
          return NULL;
        }
      return g_strdup (host->name);
    }

  /* Visit hosts by name so both the tie-break and the message are stable
   * whatever order the caller passes. */
  /* Not g_ptr_array_copy: that would inherit the free function. */
  order = g_ptr_array_sized_new (hosts->len);
  for (guint i = 0; i < hosts->len; i++)
    g_ptr_array_add (order, hosts->pdata[i]);
  g_ptr_array_sort (order, compare_host_names);
  why = g_string_new (NULL);
  for (guint i = 0; i < order->len; i++)
    {
      const SchedHost *host = order->pdata[i];
      g_autofree char *misfit = NULL;
      double score = 0;

      misfit = host_misfit (policy, host, vms, spec, networks, &score);
      if (misfit != NULL)
        {
          g_string_append_printf (why, "%s%s: %s", why->len ? "; " : "",
                                  host->name, misfit);
          continue;
        }
      if (best == NULL || score > best_score)
        {
          best = host;
          best_score = score;
        }
    }
  if (best != NULL)
    return g_strdup (best->name);

  g_set_error (error, SCHED_ERROR, SCHED_ERROR_NO_CAPACITY,
               "no host can run VM '%s': %s", spec->name,
               why->len ? why->str : "no hosts are registered");
  return NULL;
}
