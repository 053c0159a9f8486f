#!/usr/bin/env python3
"""Post-copy recovery (issue 17): a migration broken off in post-copy is
resumed over new channels, or fails saying plainly where the VM is.

- the memory channel cut once post-copy has started (the source agent's
  fault point mig-cut-postcopy): the source reconnects and resumes
  (rung "postcopy-recover" in the job, event), the job ends done, the VM
  runs only on the destination and its heartbeat counter never reset;
- the destination agent restarted (TERM) during post-copy: the
  destination's recovery state (the job's token) goes with it, so the
  recovery attempts are refused and the job fails with a message saying
  the VM is paused in post-copy on both hosts (not recovered: see
  docs/migration.md).
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_DIR, log,  # noqa: E402
                            run_on_cluster, two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = (GUEST_CMDLINE + " drover.hb_ms=10 drover.ws_mib=64 "
           "drover.data=random")
VM = "pcrec1"
SLOW = ["--bandwidth", "240", "--compress", "off", "--timeout-per-gib", "480"]
CTL_TIMEOUT = 240


def heartbeats(c):
    out = c.ctl("vm", "console", VM).stdout
    if not out.endswith("\n"):
        out = out[:out.rfind("\n") + 1]
    return [int(m.group(1)) for m in re.finditer(r"^HB (\d+) \d+$", out, re.M)]


def check_unbroken(hb, since=None):
    assert hb, "no heartbeats"
    if since is not None:
        assert hb[0] <= since, f"heartbeats start at {hb[:1]}, after {since}"
    for a, b in zip(hb, hb[1:]):
        assert b == a + 1, f"heartbeat {a} -> {b} (reboot or loss)"
    return hb[-1]


def migrate(c, dst, *extra):
    argv = [os.path.join(BUILD, "cli", "droverctl"), "migrate", VM, "--to",
            f"host{dst}", *SLOW, "--postcopy", "now", *extra, "--json"]
    return subprocess.Popen(argv, env=c.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc):
    try:
        out, err = proc.communicate(timeout=CTL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"droverctl migrate hung for {CTL_TIMEOUT}s")
    try:
        j = json.loads(out)
    except ValueError:
        j = {"state": "?", "error": out + err}
    return proc.returncode, j


def rung_events(c):
    ev = c.ctl("events", "-n", "300", "--json").stdout
    return [e.get("state") for e in
            (json.loads(x) for x in ev.splitlines() if x.strip())
            if e.get("kind") == "migration.rung" and e.get("vm") == VM]


def main():
    c = two_host_cluster("/tmp/drover-cluster-postcopy")
    c.env["DROVER_CLUSTER_NET"] = os.environ.get("DROVER_CLUSTER_NET", "64")
    return run_on_cluster(c, run_cases, tmp_prefix="drover-pcrec-test-")


def run_cases(c, tap, tmp):
    st = {}

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE)
        w = wait_for("VM defined", lambda: c.where(VM) or None, timeout=30)
        st["at"] = list(w)[0]
        wait_for("workload ready",
                 lambda: "ws-ready" in c.ctl("vm", "console", VM).stdout
                 or None, timeout=120)
        wait_for("heartbeats", lambda: len(heartbeats(c)) > 50 or None,
                 timeout=60)

    def cut_recovered():
        src = st["at"]
        dst = 3 - src
        c.restart_agent(src, faults="mig-cut-postcopy")
        n0 = check_unbroken(heartbeats(c))
        t0 = time.monotonic()
        rc, j = finish(migrate(c, dst))
        m = j.get("migration") or {}
        names = [r.get("rung") for r in m.get("rungs", [])]
        log(f"rc={rc} state={j.get('state')} {time.monotonic() - t0:.1f}s "
            f"rungs={names} error={j.get('error')}")
        assert rc == 0 and j.get("state") == "done", (rc, j.get("error"))
        assert "postcopy-recover" in names, names
        assert "postcopy-recover" in rung_events(c)
        w = wait_for(f"{VM} only on host{dst}", lambda: (
            lambda w: w if w == {dst: ("yes", "running")} else None)(
                c.where(VM)), timeout=30)
        assert w == {dst: ("yes", "running")}, w
        st["at"] = dst
        hb = wait_for("heartbeats on the destination",
                      lambda: (lambda h: h if h and h[-1] > n0 + 50
                               else None)(heartbeats(c)), timeout=60)
        check_unbroken(hb, n0)
        c.restart_agent(src)

    def dst_restarted():
        src = st["at"]
        dst = 3 - src
        proc = migrate(c, dst)
        wait_for("post-copy", lambda: any(
            (jb.get("migration") or {}).get("rung") == "postcopy"
            for jb in c.ctl_json("jobs")["jobs"]
            if jb["vm"] == VM and jb["state"] == "running") or None,
            timeout=120, interval=0.2)
        c.restart_agent(dst)
        rc, j = finish(proc)
        err = j.get("error") or ""
        log(f"rc={rc} state={j.get('state')} error={err}")
        # The restarted agent has lost the job (its token): no recovery,
        # a plain failure that says where the VM is.
        assert rc != 0 and j.get("state") == "failed", (rc, j)
        assert "recovery attempts failed" in err, err
        assert "paused in post-copy on both hosts" in err, err

    tap.case("boot a VM rewriting 64 MiB of random data", boot)
    tap.case("channel cut in post-copy: recovered, heartbeat unbroken",
             cut_recovered)
    tap.case("destination agent restarted in post-copy: a plain failure",
             dst_restarted)


if __name__ == "__main__":
    sys.exit(main())
