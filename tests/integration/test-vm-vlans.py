#!/usr/bin/env python3
"""VLAN networks on Open vSwitch (issue 13), on a 2-host cluster inside a
network namespace with a private OVS (ovs_common.py: userspace datapath,
this machine has no openvswitch module) and one OVS bridge `ovsbr`:
networks v10 and v20 on it; the agents report ovsbr as Open vSwitch; two
VMs on v10 talk, a VM on v20 in the same subnet cannot reach them; OVS
tags their ports 10 and 20; after a live migration of a v10 VM its new
port is tagged 10 and the two v10 VMs still talk; a VLAN network on a
Linux bridge is refused by placement with a clear error."""
import os
import sys
import time

from drover_harness import log, run_on_cluster, wait_for
from nic_common import create_vm, host_of, nets_cluster, nics, probes, wait_echo
from ovs_common import Ovs, ovs_installed

BR = "ovsbr"
LIN_BR = "vlanlin"
A_IP, B_IP, C_IP = "10.77.1.10", "10.77.1.11", "10.77.1.12"


def tap_of(c, vm):
    """The host-side interface (tap) of VM's one NIC, on its host now."""
    i = int(host_of(c, vm)[len("host"):])
    rows = [r.split() for r in c.virsh(i, "domiflist", vm).stdout.splitlines()]
    taps = [r[0] for r in rows if len(r) >= 5 and r[2] == BR]
    assert len(taps) == 1, f"{vm}: {rows}"
    return taps[0]


def oks(c, vm, target):
    return sum(ok for _, ok in probes(c, vm, f"{target}:7"))


def cases(c, tap, tmp):
    ovs = Ovs(c.netns, os.path.join(tmp, "ovs"), BR)
    st = {"c_ok": 0}

    def setup():
        ovs.start()
        c.ctl("network", "create", "v10", "--bridge", BR, "--vlan", "10")
        c.ctl("network", "create", "v20", "--bridge", BR, "--vlan", "20")

        def usable():
            for n in ("v10", "v20"):
                hosts = c.ctl_json("network", "show", n).get("hosts", [])
                if len(hosts) != 2 or not all(h.get("usable") for h in hosts):
                    return False
            return True
        wait_for("v10 and v20 usable on both hosts", usable, 30)
        for h in ("host1", "host2"):
            got = [b for b in c.hosts_by_name()[h]["info"].get("bridges", [])
                   if b.get("name") == BR]
            assert got == [{"name": BR, "kind": "ovs"}], f"{h} reports {got}"
            out = c.ctl("network", "show", "v10").stdout
            assert "ovs bridge" in out, out
        # The three guests boot together (TCG boots are the slow part).
        create_vm(c, "a", "v10", A_IP, host="host1")
        create_vm(c, "b", "v10", B_IP, f"drover.probe={A_IP}:7", host="host2")
        # c is in a's subnet, on the same bridge, in VLAN 20.
        create_vm(c, "c", "v20", C_IP, f"drover.probe={A_IP}:7,{C_IP}:7",
                  host="host1")
        for v in ("a", "b", "c"):
            wait_echo(c, v)
        for v in ("a", "b", "c"):
            n = nics(c, v)
            assert len(n) == 1 and n[0]["bridge"] == BR, n
        log(f"ports on {BR}: {ovs.ports()}")

    def tags():
        for vm, tag in (("a", "10"), ("b", "10"), ("c", "20")):
            port = tap_of(c, vm)
            got = ovs.port_tag(port)
            assert got == tag, f"{vm}'s port {port} has tag {got}, not {tag}"
            i = int(host_of(c, vm)[len("host"):])
            xml = c.virsh(i, "dumpxml", vm).stdout
            assert "<virtualport type='openvswitch'>" in xml, xml
            assert f"<tag id='{tag}'/>" in xml, xml

    def same_vlan():
        wait_for("b's probes of a answered 3 times",
                 lambda: oks(c, "b", A_IP) >= 3, 60)

    def other_vlan():
        wait_for("c reaches itself", lambda: oks(c, "c", C_IP) >= 2, 60)
        wait_for("c tried a 3 times",
                 lambda: len(probes(c, "c", f"{A_IP}:7")) >= 3, 60)
        assert oks(c, "c", A_IP) == 0, "c (VLAN 20) reached a (VLAN 10)"
        # The tag is what keeps c out: with its port moved to VLAN 10, c
        # reaches a; then back to 20.
        port = tap_of(c, "c")
        ovs.vsctl("set", "port", port, "tag=10")
        try:
            wait_for("c reaches a once its port is in VLAN 10",
                     lambda: oks(c, "c", A_IP) >= 1, 30)
        finally:
            ovs.vsctl("set", "port", port, "tag=20")
        time.sleep(3)  # a probe under way at the switch back may still pass
        st["c_ok"] = oks(c, "c", A_IP)

    def migrate():
        old = tap_of(c, "a")
        t0 = time.monotonic()
        p = c.ctl("migrate", "a", "--to", "host2", check=False, timeout=300)
        assert p.returncode == 0, f"migrate a: {p.stdout} {p.stderr}"
        log(f"a moved to host2 in {time.monotonic() - t0:.1f}s")
        assert host_of(c, "a") == "host2"
        new = tap_of(c, "a")
        assert ovs.port_tag(new) == "10", f"a's new port {new}: {ovs.port_tag(new)}"
        if new != old:
            assert old not in ovs.ports(), f"a's old port {old} left on {BR}"
        n = oks(c, "b", A_IP)
        wait_for("b reaches a after the move", lambda: oks(c, "b", A_IP) > n + 2, 30)
        assert oks(c, "c", A_IP) == st["c_ok"], "c reached a after the move"

    def linux_bridge_refused():
        c.bridge_add(LIN_BR, "10.77.9.1/24")

        def reported():
            return all(any(b.get("name") == LIN_BR and b.get("kind") == "linux"
                           for b in c.hosts_by_name()[h]["info"].get("bridges", []))
                       for h in ("host1", "host2"))
        wait_for(f"{LIN_BR} reported as a Linux bridge", reported, 30)
        p = c.ctl("network", "create", "vlin", "--bridge", LIN_BR, "--vlan", "30")
        assert "Open vSwitch" in p.stderr + p.stdout, (p.stdout, p.stderr)
        before = sorted(c.vms_by_name())
        p = create_vm(c, "d", "vlin", "10.77.9.10", check=False)
        log(f"refused: {p.stderr.strip()}")
        assert p.returncode != 0, p.stdout
        assert "no Open vSwitch bridge" in p.stderr and "VLAN 30" in p.stderr, p.stderr
        p = create_vm(c, "d", "vlin", "10.77.9.10", host="host1", check=False)
        assert p.returncode != 0 and "no Open vSwitch bridge" in p.stderr, p.stderr
        assert sorted(c.vms_by_name()) == before, "a refused create changed the VMs"
        c.ctl("network", "delete", "vlin")

    try:
        if tap.case("private OVS, networks v10 and v20 on it, three VMs boot",
                    setup):
            tap.case("OVS tags the ports 10, 10 and 20", tags)
            tap.case("two VMs on VLAN 10 talk", same_vlan)
            tap.case("a VM on VLAN 20 cannot reach them (it does once "
                     "its port is retagged 10)", other_vlan)
            tap.case("after a live move: new port tagged 10, the v10 VMs talk",
                     migrate)
        tap.case("a VLAN network on a Linux bridge is refused by placement",
                 linux_bridge_refused)
    finally:
        # OVS goes first, while its namespace still exists; the VMs go
        # with the cluster (libvirt's del-port then fails at once).
        t = time.monotonic()
        ovs.stop()
        log(f"Open vSwitch stopped in {time.monotonic() - t:.1f}s")


def main():
    if not ovs_installed():
        # scripts/deps installs it: its absence is a failure, not a skip.
        print("not ok 1 - Open vSwitch installed (scripts/deps)\n1..1")
        return 1
    t0 = time.monotonic()
    rc = run_on_cluster(nets_cluster("vlan", 43), cases,
                        tmp_prefix="drover-vm-vlans-")
    log(f"took {time.monotonic() - t0:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
