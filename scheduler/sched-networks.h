/* Networks (issue 13, first slice): a network is a bridge, by name, that
 * hosts provide, optionally with a VLAN tag (which only an Open vSwitch
 * bridge carries: libvirt refuses a VLAN on a Linux bridge's port) and an
 * MTU. The store keeps the networks; where each bridge is comes from the
 * agents' reports (HostInfo.bridges), never from the store.
 *
 * CreateNetwork creates the network even when some hosts lack its bridge
 * (or, for a VLAN network, have it only as a Linux bridge): the reply
 * lists those hosts, and placement keeps VMs that need the network off
 * them. VMs get NICs in the next slice; until then no VM needs a network.
 */
#pragma once

#include "sched-private.h"

G_BEGIN_DECLS

PROTO_MSG_AUTOPTR (Drover__V1__Network)

#define SCHED_NETWORK_KIND_LINUX "linux"
#define SCHED_NETWORK_KIND_OVS "ovs"
#define SCHED_NETWORK_VLAN_MAX 4094
#define SCHED_NETWORK_MTU_MIN 68
#define SCHED_NETWORK_MTU_MAX 65535
/* Networks the scheduler keeps at most. */
#define SCHED_NETWORK_MAX 1024

/* TRUE if NAME may be a bridge's name: a Linux interface name, 1-15
 * (PROTO_BRIDGE_NAME_MAX) characters, no '/', no whitespace or control
 * characters, not "." or "..". Else SCHED_ERROR_INVALID. */
gboolean sched_network_bridge_name_check (const char *name, GError **error);

/* Checks the bridges of INFO, a host's report: at most
 * PROTO_HOST_MAX_BRIDGES, valid names, kinds "linux" or "ovs", no name
 * twice. SCHED_ERROR_INVALID saying what is wrong. */
gboolean sched_host_bridges_check (const Drover__V1__HostInfo *info,
                                   GError **error);

/* Checks SPEC from the wire (name as a VM's, bridge name, VLAN 0 or
 * 1-4094, MTU 0 or 68-65535) and returns a clean copy (no hosts, no
 * creation time); NULL with SCHED_ERROR_INVALID. */
Drover__V1__Network *sched_network_check (const Drover__V1__Network *spec,
                                          GError **error);

/* The kind ("linux", "ovs") of bridge BRIDGE on HOST, from its last
 * report; NULL if it has none of that name. */
const char *sched_host_bridge_kind (const SchedHost *host, const char *bridge);

/* TRUE if HOST can put a VM's NIC on NET: it has NET's bridge, and for a
 * VLAN network as an Open vSwitch bridge. Pure, over HOST's report. */
gboolean sched_networks_host_has (const SchedHost *host,
                                  const Drover__V1__Network *net);

/* NULL if HOST has every network of NETS (Drover__V1__Network, may be
 * NULL or empty), else why not (free it). Placement's filter. */
char *sched_networks_misfit (const SchedHost *host, GPtrArray *nets);

/* Sets NET's hosts from HOSTS (SchedHost, every host, by name order) and
 * returns the names of the hosts that cannot offer it (a NULL-terminated
 * array, maybe empty). */
char **sched_network_fill_hosts (Drover__V1__Network *net, GPtrArray *hosts);

/* The handlers (user data: the SchedService). */
SchedHandler sched_networks_handle_create;
SchedHandler sched_networks_handle_list;
SchedHandler sched_networks_handle_get;
SchedHandler sched_networks_handle_delete;

G_END_DECLS
