#!/usr/bin/python3
"""The QEMU guest agent channel and what it unlocks (issues 12, 13, 16),
on a 2-host cluster inside a network namespace with one bridge:

- every Drover VM has the org.qemu.guest_agent.0 channel, and the test
  guest answers on it;
- snapshot create --quiesce on a running VM succeeds: the guest's console
  shows its filesystems frozen then thawed, the snapshot says quiesced;
- a guest whose agent does not answer (drover.noagent) gets the clear
  error, and no snapshot is made;
- vm show lists the address the guest agent reports for the NIC;
- a restore drill passes on guest-agent readiness (--drill-ready agent);
- after a live migration and a snapshot revert the VM still has the
  channel and its agent answers (another quiesced snapshot).
Prints TAP.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (GUEST_CMDLINE, GUEST_INITRD, GUEST_KERNEL,  # noqa: E402
                            Cluster, log, run_on_cluster, wait_for)

BR, NET = "qgabr", "qganet"
VM, NOAGENT = "qga-a", "qga-b"
VM_IP = "10.79.1.5"
CMDLINE = (f"{GUEST_CMDLINE} drover.hb_ms=500 drover.disk=check drover.disk_blocks=16"
           f" drover.disk_pause_ms=500 drover.ip={VM_IP}/24")
FROZEN = "DROVER-GUEST fsfreeze frozen"
THAWED = "DROVER-GUEST fsfreeze thawed"


def cluster():
    c = Cluster(hosts=2, report_interval_ms=1000, netns="drover-qga")
    c.env["DROVER_CLUSTER_DIR"] = os.environ.get("DROVER_CLUSTER_DIR",
                                                 "/tmp/drover-cluster-qga")
    c.env["DROVER_CLUSTER_NET"] = os.environ.get("DROVER_CLUSTER_NET", "53")
    repo = os.path.join(c.env["DROVER_CLUSTER_DIR"], "repo-qga")
    c.env["DROVER_AGENT_ARGS"] = f"--backup-repo main={repo}"
    return c


def cases(c, tap, tmp):
    def console(vm):
        return c.ctl("vm", "console", vm).stdout

    def host_index(vm):
        return int(c.vms_by_name()[vm]["host"].removeprefix("host"))

    def boot():
        c.bridge_add(BR, "10.79.1.1/24")
        c.ctl("network", "create", NET, "--bridge", BR)
        wait_for("the network usable on both hosts",
                 lambda: all(h.get("usable") for h in
                             c.ctl_json("network", "show", NET).get("hosts", []))
                 and len(c.ctl_json("network", "show", NET).get("hosts", [])) == 2, 30)
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "160M", "--disk", "16M",
              "--host", "host1", "--net", NET, "--kernel", GUEST_KERNEL,
              "--initrd", GUEST_INITRD, "--cmdline", CMDLINE)
        c.ctl("vm", "create", NOAGENT, "--vcpus", "1", "--memory", "128M",
              "--disk", "16M", "--host", "host2", "--kernel", GUEST_KERNEL, "--initrd", GUEST_INITRD,
              "--cmdline", f"{GUEST_CMDLINE} drover.hb_ms=500 drover.noagent")
        for vm in (VM, NOAGENT):
            xml = c.virsh(host_index(vm), "dumpxml", vm).stdout
            assert re.search(r"<channel type='unix'>", xml), xml
            assert "name='org.qemu.guest_agent.0'" in xml, xml
        wait_for(f"{VM}'s guest agent listening",
                 lambda: "DROVER-GUEST agent listening" in console(VM), 180)
        wait_for(f"{VM} writing its disk",
                 lambda: "DROVER-GUEST disk gen 2 written" in console(VM), 120)
        wait_for(f"{NOAGENT} up", lambda: "DROVER-GUEST up" in console(NOAGENT), 180)
        assert "agent listening" not in console(NOAGENT)
        # libvirt sees the agent connected (the guest opened its port).
        wait_for("the channel connected",
                 lambda: "state='connected'" in c.virsh(host_index(VM), "dumpxml",
                                                        VM).stdout, 30)

    def quiesce():
        before = console(VM)
        assert FROZEN not in before
        t0 = time.monotonic()
        c.ctl("snapshot", "create", VM, "q1", "--quiesce", timeout=300)
        log(f"quiesced snapshot in {time.monotonic() - t0:.1f}s")
        out = console(VM)
        i, j = out.find(FROZEN), out.find(THAWED)
        assert 0 <= i < j, out[-2000:]
        snaps = {s["name"]: s for s in c.ctl_json("snapshot", "list", VM)["snapshots"]}
        assert snaps["q1"].get("quiesced"), snaps
        # The writer goes on after the thaw.
        gens = [int(g) for g in re.findall(r"disk gen (\d+) written", out)]
        wait_for("the disk writer after the thaw",
                 lambda: max(int(g) for g in re.findall(
                     r"disk gen (\d+) written", console(VM))) > max(gens), 60)

    def no_agent():
        p = c.ctl("snapshot", "create", NOAGENT, "q2", "--quiesce", check=False,
                  timeout=120)
        assert p.returncode != 0, p.stdout
        assert "no QEMU guest agent answered" in p.stderr, p.stderr
        assert not c.ctl_json("snapshot", "list", NOAGENT).get("snapshots"), \
            "a snapshot was left"

    def addresses():
        # The guest's IPv6 link-local address: only its agent knows it (the
        # ARP table has IPv4 only, and may answer first: wait for the
        # agent's answer, asked at most every 5 s).
        def shown():
            out = c.ctl("vm", "show", VM).stdout
            return (re.search(r"addresses .*fe80::[0-9a-f:]+/64", out)
                    and VM_IP + "/24" in out and out)
        out = wait_for(f"vm show lists {VM_IP}/24 and a link-local address from "
                       "the guest agent", shown, 60, 1)
        log([ln for ln in out.splitlines() if "addresses" in ln])

    def drill():
        def row():
            p = c.ctl("dr", "report", "--json", check=False)
            return [v for v in json.loads(p.stdout)["vms"] if v["schedule"] == "qbk"][0]

        def ended(since):
            r = row()
            return r if r.get("last_drill_ms", 0) > since and not r.get("drill_vm") else None

        c.ctl("schedule", "create", "qbk", "--select", VM, "--action", "backup",
              "--repo", "main", "--every", "1h", "--drill-every", "1",
              "--drill-ready", "agent", "--drill-timeout", "5m")
        shown = c.ctl("schedule", "show", "qbk").stdout
        assert "ready when its guest agent answers" in shown, shown
        t0 = time.time() * 1000
        c.ctl("schedule", "run-now", "qbk")
        r = wait_for("the drill's end", lambda: ended(t0), 300, 2)
        log(f"drill: {r.get('last_drill')} recovery {r.get('recovery_ms', 0)} ms "
            f"{r.get('last_drill_error', '')}")
        assert r["last_drill"] == "passed" and r.get("recovery_ms", 0) > 0, r
        wait_for("scratch VM gone",
                 lambda: not [v for v in c.vms_by_name() if v.startswith("drill-")], 60, 1)

    def moves():
        """A live migration and a revert keep the channel, and the guest
        agent answers on the new QEMU."""
        c.ctl("migrate", VM, "--to", "host2", timeout=600)
        assert host_index(VM) == 2
        wait_for("the channel connected on host2",
                 lambda: "state='connected'" in c.virsh(2, "dumpxml", VM).stdout, 60)
        n = console(VM).count(FROZEN)
        c.ctl("snapshot", "create", VM, "q3", "--quiesce", timeout=300)
        assert console(VM).count(FROZEN) == n + 1
        boots = console(VM).count("DROVER-GUEST agent listening")
        c.ctl("snapshot", "revert", VM, "q1", timeout=300)
        wait_for("the reverted guest's agent listening",
                 lambda: console(VM).count("DROVER-GUEST agent listening") > boots, 180)
        xml = c.virsh(host_index(VM), "dumpxml", VM).stdout
        assert "name='org.qemu.guest_agent.0'" in xml, xml
        wait_for("the channel connected after the revert",
                 lambda: "state='connected'" in c.virsh(host_index(VM), "dumpxml",
                                                        VM).stdout, 60)

    if tap.case("VMs get the guest agent channel; the test guest answers", boot):
        tap.case("snapshot --quiesce: the guest froze then thawed", quiesce)
        tap.case("no guest agent: clear error, nothing made", no_agent)
        tap.case("vm show: the NIC's address from the guest agent", addresses)
        tap.case("a restore drill passes on guest agent readiness", drill)
        tap.case("live migration and revert keep the channel; agent answers", moves)


def main():
    t0 = time.monotonic()
    rc = run_on_cluster(cluster(), cases, tmp_prefix="drover-qga-")
    log(f"took {time.monotonic() - t0:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
