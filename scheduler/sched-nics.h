/* VM NICs (issue 13): a VM's NICs live in its spec (VmSpec.nics), which
 * the scheduler fills from the networks and sends to the agents as is.
 *
 * MACs: every NIC has one, unique among all VMs the scheduler knows. A
 * MAC an operator gives is taken (unicast, not all zeros, not in use);
 * otherwise the scheduler assigns SCHED_NIC_MAC_PREFIX followed by three
 * random octets (retrying on a collision). The prefix 02:44:52 has the
 * locally administered bit (0x02) set and the multicast bit clear; 44:52
 * is "DR". A VM keeps its MACs for its life, through migration and an
 * in-place restore; a clone and a restore into a new VM get new ones. */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

#define SCHED_NIC_MAC_PREFIX0 0x02
#define SCHED_NIC_MAC_PREFIX1 0x44
#define SCHED_NIC_MAC_PREFIX2 0x52

/* Fills SPEC's NICs (SPEC is the caller's, already through
 * proto_vm_spec_check): each NIC's network must exist in STORE
 * (SCHED_ERROR_NOT_FOUND naming it); its bridge, VLAN and MTU are set
 * from the network, whatever SPEC said. A given MAC is normalised to lower
 * case and must not be used by any VM of VMS but the one named SELF (may
 * be NULL) (SCHED_ERROR_EXISTS naming the VM); with NEW_MACS every MAC is
 * replaced by a fresh one; a missing one is assigned. On failure SPEC may
 * be half-filled: the caller drops it. */
gboolean sched_nics_prepare (SchedStore *store, Drover__V1__VmSpec *spec,
                             GPtrArray *vms, const char *self,
                             gboolean new_macs, GError **error);

/* A fresh MAC (SCHED_NIC_MAC_PREFIX*) used by no VM of VMS and not in
 * SPEC (may be NULL), into BUF. FALSE (SCHED_ERROR_FAILED) if none was
 * found in 256 tries. */
gboolean sched_nics_new_mac (GPtrArray *vms, const Drover__V1__VmSpec *spec,
                             char buf[PROTO_MAC_TEXT_LEN + 1], GError **error);

/* The VM of VMS (SchedVm) other than SELF that has a NIC with MAC, or
 * NULL. */
const SchedVm *sched_nics_mac_user (GPtrArray *vms, const char *mac,
                                    const char *self);

/* The names of the VMs of VMS with a NIC on NETWORK, ", "-separated, or
 * NULL if none. Free with g_free. */
char *sched_nics_vms_on (GPtrArray *vms, const char *network);

/* The networks SPEC's NICs are on, as placement's filter wants them
 * (Drover__V1__Network made from the NICs' network, bridge and VLAN; no
 * free function: free the array and call sched_nics_networks_free). NULL
 * if SPEC has no NICs. */
GPtrArray *sched_nics_networks (const Drover__V1__VmSpec *spec);
void sched_nics_networks_free (GPtrArray *nets);

/* AttachNic, DetachNic (sched-nic-handlers.c; user data: the
 * SchedService). */
SchedHandler sched_nics_handle_attach;
SchedHandler sched_nics_handle_detach;

G_END_DECLS
