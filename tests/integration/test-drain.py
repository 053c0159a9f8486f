#!/usr/bin/python3
"""Host maintenance on a real 3-host cluster (TCG guests): `droverctl host
drain` takes a host out of service and live-migrates its running VMs away.

The scheduler runs with a CPU overcommit that lets each host hold two
1-vCPU VMs: room is scarce on purpose.

Checks:
- bad input: an unknown host, a name with '/', undrain of a host in
  service: clear errors, nothing changed;
- host1 with two VMs (heartbeat workload) and host2 with one: the drain of
  host1 starts; a second drain meanwhile is refused (one at a time); a
  `vm create` during the drain lands elsewhere; the scheduler is restarted
  in the middle and the drain finishes on its own; host1 ends empty (virsh
  on host1 lists none of the VMs) and in maintenance (`hosts`), each VM
  runs on exactly one other host with its heartbeat counter unbroken
  (no reboot);
- a VM pinned to host1 in maintenance is refused, naming the state;
  draining host2 now (host3 full, host1 in maintenance) is refused because
  its VM has nowhere to go, and host2 stays in service;
- `host undrain host1` returns it to service; a second undrain is an error.

Prints TAP.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (GUEST_CMDLINE, GUEST_DIR, Cluster,  # noqa: E402
                            check_unbroken, log, run_on_cluster, wait_for)
from drover_harness import console_heartbeats as heartbeats  # noqa: E402

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = GUEST_CMDLINE + " drover.hb_ms=50"
VMS = {"dr-a": "host1", "dr-b": "host1", "dr-c": "host2"}


def create(c, name, host=None, check=True):
    pin = ["--host", host] if host else []
    return c.ctl("vm", "create", name, "--vcpus", "1", "--memory", "128M",
                 "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE,
                 *pin, check=check)


def host_state(c, name):
    h = c.hosts_by_name()[name]
    return h["state"], h["maintenance"]


def job(c, jid):
    return next(j for j in c.ctl_json("jobs")["jobs"] if j["id"] == jid)


def cases(c, tap, tmp):
    st = {}

    def bad_input():
        p = c.ctl("host", "drain", "nohost", check=False)
        assert p.returncode == 1 and "no host named 'nohost'" in p.stderr, p.stderr
        p = c.ctl("host", "drain", "../x", check=False)
        assert p.returncode == 2, (p.returncode, p.stderr)
        p = c.ctl("host", "undrain", "host2", check=False)
        assert p.returncode == 1 and "not drained" in p.stderr, p.stderr
        for h in ("host1", "host2", "host3"):
            assert host_state(c, h) == ("up", ""), host_state(c, h)

    def vms_up():
        for vm, host in VMS.items():
            create(c, vm, host)
        for vm in VMS:
            wait_for(f"{vm} heartbeats", lambda vm=vm: len(heartbeats(c, vm)) > 20,
                     timeout=120)
        where = {v: x["host"] for v, x in c.vms_by_name().items()}
        assert where == VMS, where

    def drain_with_restart():
        out = c.ctl_json("host", "drain", "host1")
        st["job"] = out["id"]
        assert out["kind"] == "drain" and out["source_host"] == "host1", out
        assert host_state(c, "host1") == ("up", "draining")
        p = c.ctl("host", "drain", "host2", check=False)
        assert p.returncode == 1 and "one drain at a time" in p.stderr, p.stderr
        assert host_state(c, "host2") == ("up", "")
        create(c, "dr-new")
        new_host = c.vms_by_name()["dr-new"]["host"]
        assert new_host != "host1", new_host
        # Restart while the first migration is under way.
        wait_for("a migration from host1",
                 lambda: any(j["kind"] == "migrate" and j["source_host"] == "host1"
                             for j in c.ctl_json("jobs")["jobs"]), timeout=60)
        c.harness("restart-scheduler")
        log("scheduler restarted mid-drain")
        end = wait_for("the drain to end",
                       lambda: job(c, st["job"])["state"] in ("done", "failed")
                       and job(c, st["job"]), timeout=400, interval=2)
        assert end["state"] == "done", end
        assert "maintenance" in end["message"], end
        assert host_state(c, "host1") == ("up", "maintenance")
        on_host1 = [d for d in c.domains(1) if d.startswith("dr-")]
        assert on_host1 == [], on_host1
        vms = c.vms_by_name()
        for vm in VMS:
            assert vms[vm]["host"] != "host1", (vm, vms[vm]["host"])
            placed = c.where(vm)
            assert len(placed) == 1 and list(placed.values())[0][1] == "running", placed
            n = check_unbroken(c, vm)
            log(f"{vm}: on {vms[vm]['host']}, heartbeat {n}, never rebooted")
        table = c.ctl("hosts").stdout
        assert re.search(r"^host1\s+up, maintenance\s", table, re.M), table

    def maintenance_refuses():
        p = create(c, "dr-pinned", "host1", check=False)
        assert p.returncode == 1 and "maintenance" in p.stderr, p.stderr
        p = c.ctl("host", "drain", "host1", check=False)
        assert p.returncode == 1 and "already in maintenance" in p.stderr, p.stderr
        # host3 is full and host1 out of service: host2's VMs have nowhere
        # to go, so the drain is refused and changes nothing.
        p = c.ctl("host", "drain", "host2", check=False)
        assert p.returncode == 1 and "cannot drain host 'host2'" in p.stderr, p.stderr
        assert host_state(c, "host2") == ("up", "")

    def undrain():
        out = c.ctl_json("host", "undrain", "host1")
        assert out["maintenance"] == "", out
        assert host_state(c, "host1") == ("up", "")
        p = c.ctl("host", "undrain", "host1", check=False)
        assert p.returncode == 1 and "not drained" in p.stderr, p.stderr

    tap.case("bad input: clear errors, nothing changed", bad_input)
    tap.case("three VMs up (two on host1)", vms_up)
    tap.case("drain host1 across a scheduler restart: empty, maintenance, "
             "heartbeats unbroken", drain_with_restart)
    tap.case("maintenance refuses placements; no room refuses a drain",
             maintenance_refuses)
    tap.case("undrain returns the host to service", undrain)


def main():
    c = Cluster(hosts=3, report_interval_ms=1000)
    # Two 1-vCPU VMs per host, whatever its CPU count.
    c.env["DROVER_SCHEDULER_ARGS"] = f"--cpu-overcommit {2 / (os.cpu_count() or 2)}"
    t0 = time.monotonic()
    rc = run_on_cluster(c, cases, tmp_prefix="drover-drain-")
    log(f"drain test {time.monotonic() - t0:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
