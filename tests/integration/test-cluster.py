#!/usr/bin/python3
"""Integration suite on a real two-host local cluster: the scheduler and
two agents with their own libvirtd, TCG guests, mutual TLS everywhere.
Every check goes through droverctl (the real protocol) and is confirmed
against libvirt itself with virsh."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (GUEST_CMDLINE, GUEST_DIR, Cluster, log, run,  # noqa: E402
                            run_on_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")


def create_args(name, *extra, hb_ms=200):
    return ["vm", "create", name, "--vcpus", "1", "--memory", "128M",
            "--kernel", KERNEL, "--initrd", INITRD,
            "--cmdline", f"{GUEST_CMDLINE} drover.hb_ms={hb_ms}", *extra]


def host_index(name):
    m = re.fullmatch(r"host(\d+)", name)
    assert m, f"unexpected host name {name!r}"
    return int(m.group(1))


def heartbeats(c, vm):
    out = c.ctl("vm", "console", vm).stdout
    return [int(m.group(1)) for m in re.finditer(r"^HB (\d+) \d+", out, re.M)]


def main():
    return run_on_cluster(Cluster(hosts=2, report_interval_ms=1000), run_cases)


def run_cases(c, tap, tmp):
    state = {}

    def hosts_up():
        hosts = c.hosts_by_name()
        assert set(hosts) == {"host1", "host2"}, hosts.keys()
        for name, h in hosts.items():
            assert h["state"] == "up", (name, h["state"])
            info = h["info"]
            assert info["cpus"] > 0
            assert info["memory_total"] > info["memory_free"] > 0
            assert info["accel"] == "tcg"
            assert re.fullmatch(r"\d+\.\d+\.\d+", info["libvirt_version"])
            assert re.fullmatch(r"\d+\.\d+\.\d+", info["qemu_version"])
            assert info["data_total"] > 0 and info["address"].startswith("127.")

    tap.case("both hosts are up with their resources", hosts_up)

    def create_placed():
        c.ctl(*create_args("web-1", "--disk", "64M"))
        vm = c.vms_by_name()["web-1"]
        host = vm["host"]
        i = host_index(host)
        other = 3 - i
        state["web-1"] = i
        # libvirt on the chosen host runs it; the other host does not know it.
        assert c.virsh(i, "domstate", "web-1").stdout.strip() == "running"
        assert "web-1" not in c.domains(other)
        disk = os.path.join(c.host_data(i), "disks", "web-1.qcow2")
        assert os.path.exists(disk), disk
        info = run(["qemu-img", "info", "-U", disk]).stdout
        assert "file format: qcow2" in info, info
        wait_for("web-1 running in the inventory",
                 lambda: c.vms_by_name()["web-1"]["state"] == "running", 30)

    tap.case("create: VM runs on the host the scheduler chose", create_placed)

    def console_heartbeat():
        hb = wait_for("heartbeats on the console", lambda: heartbeats(c, "web-1"), 90)
        assert hb == list(range(1, len(hb) + 1)), hb[:20]
        out = c.ctl("vm", "console", "web-1").stdout
        assert "DROVER-GUEST" in out

    tap.case("console: guest heartbeat readable through droverctl", console_heartbeat)

    def stop_start():
        i = state["web-1"]
        c.ctl("vm", "stop", "web-1", "--timeout", "3")
        assert c.virsh(i, "domstate", "web-1").stdout.strip() == "shut off"
        wait_for("web-1 shut off in the inventory",
                 lambda: c.vms_by_name()["web-1"]["state"] == "shutoff", 30)
        before = len(heartbeats(c, "web-1"))
        c.ctl("vm", "start", "web-1")
        assert c.virsh(i, "domstate", "web-1").stdout.strip() == "running"
        # The console log keeps going across restarts: the old lines stay
        # and a second boot is appended.
        wait_for("second boot in the console log", lambda: c.ctl(
            "vm", "console", "web-1").stdout.count("DROVER-GUEST boot") >= 2, 90)
        assert len(heartbeats(c, "web-1")) >= before

    tap.case("stop then start, console log kept across restarts", stop_start)

    def pinned():
        c.ctl(*create_args("pinned-2", "--host", "host2"))
        assert c.vms_by_name()["pinned-2"]["host"] == "host2"
        assert c.virsh(2, "domstate", "pinned-2").stdout.strip() == "running"

    tap.case("create --host pins the VM", pinned)

    def spread():
        # host1 and host2 each run one VM now; a third VM goes to the host
        # with more room left, and the two after it spread over both.
        c.ctl(*create_args("spread-1"))
        c.ctl(*create_args("spread-2"))
        vms = c.vms_by_name()
        placed = {vms["spread-1"]["host"], vms["spread-2"]["host"]}
        assert placed == {"host1", "host2"}, placed
        for name in ("spread-1", "spread-2"):
            i = host_index(vms[name]["host"])
            assert c.virsh(i, "domstate", name).stdout.strip() == "running"
            c.ctl("vm", "delete", name, "--force")
            assert name not in c.domains(i)

    tap.case("placement spreads VMs over the hosts", spread)

    def bad_input():
        before_vms = set(c.vms_by_name())
        before_doms = (c.domains(1), c.domains(2))
        cases = [
            (["vm", "create", "Bad/..", "--vcpus", "1", "--memory", "64M"], "name"),
            (["vm", "create", "x" * 64, "--vcpus", "1", "--memory", "64M"], "name"),
            (create_args("web-1"), "exist"),
            (create_args("big-1", "--host", "host9"), "host9"),
            (["vm", "create", "huge-1", "--vcpus", "1", "--memory", "4T"], "no host"),
            (["vm", "show", "nope-1"], "nope-1"),
            (["vm", "start", "nope-1"], "nope-1"),
            (["vm", "delete", "nope-1"], "nope-1"),
        ]
        for argv, word in cases:
            p = c.ctl(*argv, check=False)
            assert p.returncode != 0, (argv, p.stdout)
            assert word.lower() in p.stderr.lower(), (argv, p.stderr)
        assert set(c.vms_by_name()) == before_vms
        assert (c.domains(1), c.domains(2)) == before_doms
        for i in (1, 2):
            disks = os.listdir(os.path.join(c.host_data(i), "disks"))
            assert not any(d.startswith(("huge-1", "big-1")) for d in disks), disks

    tap.case("bad name, duplicate, unknown host/VM, full cluster: clear error, nothing left", bad_input)

    def delete():
        i = state["web-1"]
        p = c.ctl("vm", "delete", "web-1", check=False)
        assert p.returncode != 0 and "running" in p.stderr, p.stderr
        c.ctl("vm", "delete", "web-1", "--force")
        assert "web-1" not in c.domains(i)
        assert "web-1" not in c.vms_by_name()
        assert not os.path.exists(os.path.join(c.host_data(i), "disks", "web-1.qcow2"))

    tap.case("delete: refused while running, then removed everywhere", delete)

    def agent_down_up():
        c.harness("kill-agent", "2")
        t0 = time.monotonic()
        wait_for("host2 down", lambda: c.hosts_by_name()["host2"]["state"] == "down", 30)
        log(f"host2 seen down after {time.monotonic() - t0:.1f}s")
        assert c.hosts_by_name()["host1"]["state"] == "up"
        c.harness("start-agent", "2")
        wait_for("host2 up", lambda: c.hosts_by_name()["host2"]["state"] == "up", 30)

    tap.case("agent killed: host down, back up on restart", agent_down_up)

    def scheduler_restart():
        before = c.vms_by_name()
        c.harness("restart-scheduler")
        wait_for("scheduler answering", lambda: c.hosts_by_name(), 30)
        after = c.vms_by_name()
        assert set(after) == set(before), (before.keys(), after.keys())
        assert after["pinned-2"]["host"] == "host2"
        wait_for("hosts up after re-registration", lambda: all(
            h["state"] == "up" for h in c.hosts_by_name().values()), 30)
        logs = os.path.join(c.env["DROVER_CLUSTER_DIR"], "logs")
        for name in ("host1", "host2"):
            text = open(os.path.join(logs, f"{name}.log"), errors="replace").read()
            assert text.lower().count("registered") >= 2, f"{name} did not re-register"

    tap.case("scheduler restart: state kept, agents re-register", scheduler_restart)

    def libvirtd_restart():
        c.harness("restart-libvirtd", "2")
        # The agent reconnects: lifecycle commands work again.
        wait_for("stop through the reconnected agent",
                 lambda: c.ctl("vm", "destroy", "pinned-2").returncode == 0, 60, 2)
        assert c.virsh(2, "domstate", "pinned-2").stdout.strip() == "shut off"
        c.ctl("vm", "delete", "pinned-2")
        assert "pinned-2" not in c.domains(2)

    tap.case("libvirtd restart: agent reconnects", libvirtd_restart)

    def tls_refused():
        foreign = os.path.join(c.env["DROVER_CLUSTER_DIR"], "pki", "foreign")
        if not os.path.isdir(foreign):
            run([os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
                os.path.abspath(__file__)))), "scripts", "pki"),
                os.path.join(c.env["DROVER_CLUSTER_DIR"], "pki"), "--foreign", "operator", "foreign"])
        p = c.ctl("hosts", check=False, tls_dir=foreign, timeout=60)
        assert p.returncode != 0, p.stdout
        p = c.ctl("--insecure", "hosts", check=False, timeout=60, extra=())
        assert p.returncode != 0, p.stdout
        # And the valid certificate still works.
        assert c.hosts_by_name()

    tap.case("TLS: client without a valid certificate is refused", tls_refused)


if __name__ == "__main__":
    sys.exit(main())
