#!/usr/bin/python3
"""The migration ladder's throttle rung (issue 17) on a real 2-host
cluster (TCG guests), through `droverctl migrate`.

A guest that rewrites a 96 MiB working set of random data as fast as it
can, on a channel shaped to 240 Mbit/s: pre-copy cannot converge. Checks:
- the controller climbs past the downtime steps to the throttle rung
  (QEMU's auto-converge): the job's rungs name "throttle" with a
  percentage and time spent, the QEMU-reported throttle was seen in the
  progress, and the migration completes (by the throttle or, at the
  ceiling, the forced pause) with the heartbeat counter unbroken on the
  destination;
- a second migration, cancelled by the operator (`droverctl job cancel`)
  while throttled: the job fails as aborted, the VM runs on the source
  alone, its heartbeat unbroken and its rate (beats per second of host
  time) back to at least 70 % of the rate measured before the migration.
  (On this TCG host QEMU's throttle barely slows the guest: the rate
  while throttled is logged, not asserted.) The job's last rung is
  "abort" although the scheduler cancelled the agent's call;
- post-copy (the same VM, back and forth): `--postcopy now` switches
  after the first pass (rung "postcopy", QEMU's downtime reported, the
  guest on the destination with its heartbeat unbroken); the VM's
  default (`vm set --migration-postcopy auto`) makes a stall switch to
  post-copy instead of the forced pause; `--postcopy never` overrides it
  and keeps the forced pause.
Prints TAP.
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
CMDLINE = (GUEST_CMDLINE + " drover.hb_ms=10 drover.ws_mib=96 "
           "drover.data=random")
VM = "ladder1"
# Shaped link, no lz4 (random data), room in the timeout for the ladder.
SLOW = ["--bandwidth", "240", "--compress", "off", "--timeout-per-gib", "480"]
CTL_TIMEOUT = 170


def heartbeats(c):
    out = c.ctl("vm", "console", VM).stdout
    if not out.endswith("\n"):
        out = out[:out.rfind("\n") + 1]
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(r"^HB (\d+) (\d+)$", out, re.M)]


def check_unbroken(hb, since=None):
    """The heartbeats in the console are consecutive and, with SINCE (the
    last one before a move), reach back to it: nothing lost or restarted
    across the move. (`vm console` gives the log's newest part, so after
    a long run it need not begin at HB 1.)"""
    assert hb, "no heartbeats"
    if since is not None:
        assert hb[0][0] <= since, f"heartbeats start at {hb[:1]}, after {since}"
    for (a, _), (b, _) in zip(hb, hb[1:]):
        assert b == a + 1, f"heartbeat {a} -> {b} (reboot or loss)"
    return hb[-1][0]


def beat_rate(c, seconds=3.0):
    """Heartbeats per second of host time over SECONDS."""
    n0 = heartbeats(c)[-1][0]
    t0 = time.monotonic()
    time.sleep(seconds)
    n1 = heartbeats(c)[-1][0]
    return (n1 - n0) / (time.monotonic() - t0)


def where(c):
    return c.where(VM)


def only_on(c, i):
    w = wait_for(f"{VM} only on host{i}", lambda: (
        lambda w: w if w == {i: ("yes", "running")} else None)(where(c)),
        timeout=30)
    assert w == {i: ("yes", "running")}, w


def job(c, jid):
    for j in c.ctl_json("jobs")["jobs"]:
        if j["id"] == jid:
            return j
    return None


def migrate_start(c, dst, *extra):
    argv = [os.path.join(BUILD, "cli", "droverctl"), "migrate", VM, "--to",
            f"host{dst}", *extra, "--json"]
    return subprocess.Popen(argv, env=c.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc, timeout=CTL_TIMEOUT):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"droverctl migrate hung for {timeout}s")
    return proc.returncode, out, err


def rungs_text(m):
    return ", ".join(f"{r.get('rung')} {r.get('throttle_pct', 0)}% "
                     f"{int(r.get('duration_ms', 0))}ms"
                     for r in m.get("rungs", []))


def wait_throttled(c, vm, proc, timeout=120, min_pct=20):
    """The running migrate job of VM once QEMU reports a throttle of at
    least MIN_PCT (armed, QEMU's own trigger holds it at 1 %)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("migration ended before the throttle rung: "
                                 f"{proc.communicate()}")
        try:
            js = c.ctl_json("jobs")["jobs"]
        except Exception:  # noqa: BLE001 - a busy scheduler: retry
            js = []
        for j in js:
            m = j.get("migration") or {}
            if (j["kind"] == "migrate" and j["vm"] == vm
                    and j["state"] == "running" and m.get("rung") == "throttle"
                    and int(m.get("throttle_pct", 0)) >= min_pct):
                return j
        time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"{vm} migration not throttled after {timeout}s")


def main():
    c = two_host_cluster("/tmp/drover-cluster-ladder")
    return run_on_cluster(c, run_cases, tmp_prefix="drover-ladder-test-")


def run_cases(c, tap, tmp):
    st = {}

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE)
        w = wait_for("VM defined", lambda: where(c) or None, timeout=30)
        st["at"] = list(w)[0]
        wait_for("workload ready",
                 lambda: "ws-ready" in c.ctl("vm", "console", VM).stdout
                 or None, timeout=120)
        wait_for("heartbeats", lambda: len(heartbeats(c)) > 50 or None,
                 timeout=60)
        st["rate"] = beat_rate(c)
        log(f"{VM} on host{st['at']}, {st['rate']:.0f} heartbeats/s")
        assert st["rate"] > 20, st["rate"]

    def climbs():
        src = st["at"]
        dst = 3 - src
        n0 = check_unbroken(heartbeats(c))
        proc = migrate_start(c, dst, *SLOW)
        j = wait_throttled(c, VM, proc)
        seen = int(j["migration"]["throttle_pct"])
        during = beat_rate(c, 2.0)
        log(f"throttled: QEMU reports {seen}%, {during:.0f} heartbeats/s "
            f"meanwhile")
        rc, out, err = finish(proc)
        jj = json.loads(out)
        m = jj.get("migration") or {}
        log(f"rc={rc} state={jj['state']} total={m.get('total_s')}s "
            f"downtime={m.get('downtime_ms')}ms "
            f"forced={m.get('forced_switchover')} rungs: {rungs_text(m)}")
        assert rc == 0 and jj["state"] == "done", (rc, jj.get("error"), err)
        thr = [r for r in m.get("rungs", []) if r.get("rung") == "throttle"]
        assert thr, f"no throttle rung recorded: {m.get('rungs')}"
        assert all(0 < int(r["throttle_pct"]) <= 80 for r in thr), thr
        assert sum(int(r.get("duration_ms", 0)) for r in thr) > 0, thr
        ev = c.ctl("events", "-n", "200", "--json").stdout
        rungs = [e for e in (json.loads(x) for x in ev.splitlines() if x.strip())
                 if e.get("kind") == "migration.rung" and e.get("vm") == VM]
        log(f"migration.rung events: {[e.get('state') for e in rungs]}")
        assert any(e.get("state") == "throttle" for e in rungs), rungs
        st["at"] = dst
        only_on(c, dst)
        hb = wait_for("heartbeats on the destination",
                      lambda: (lambda h: h if h and h[-1][0] > n0 + 50
                               else None)(heartbeats(c)), timeout=60)
        check_unbroken(hb, n0)

    def abort_throttled():
        src = st["at"]
        dst = 3 - src
        n0 = check_unbroken(heartbeats(c))
        base = beat_rate(c)
        proc = migrate_start(c, dst, *SLOW)
        j = wait_throttled(c, VM, proc)
        log(f"throttled at {j['migration']['throttle_pct']}%: cancelling "
            f"job {j['id']}")
        c.ctl("job", "cancel", j["id"])
        rc, out, err = finish(proc)
        jj = json.loads(out)
        m = jj.get("migration") or {}
        log(f"rc={rc} state={jj['state']} error={jj.get('error')!r} "
            f"phase={m.get('phase')} rungs: {rungs_text(m)}")
        assert rc == 1 and jj["state"] == "failed", (rc, jj["state"])
        # The scheduler cancels the agent's call: the last progress it
        # has is the throttled one (phase precopy), the error says why.
        assert "abort" in jj.get("error", ""), jj.get("error")
        assert any(r.get("rung") == "throttle" for r in m.get("rungs", []))
        # The scheduler records the abort rung the agent could not report.
        names = [r.get("rung") for r in m.get("rungs", [])]
        assert names[-1] == "abort" and m.get("rung") == "abort", names
        only_on(c, src)
        time.sleep(1.0)
        after = beat_rate(c)
        log(f"after the abort: {after:.0f} heartbeats/s (before the "
            f"migration {base:.0f}/s)")
        assert after >= 0.7 * base, (after, base)
        hb = heartbeats(c)
        assert hb[-1][0] > n0, (hb[-1][0], n0)
        check_unbroken(hb, n0)

    def move(dst, *extra):
        """Migrates the VM to host DST with EXTRA; the final job."""
        n0 = check_unbroken(heartbeats(c))
        proc = migrate_start(c, dst, *SLOW, *extra)
        rc, out, err = finish(proc)
        jj = json.loads(out)
        m = jj.get("migration") or {}
        log(f"{' '.join(extra)}: rc={rc} state={jj['state']} "
            f"total={m.get('total_s')}s downtime={m.get('downtime_ms')}ms "
            f"forced={m.get('forced_switchover')} rungs: {rungs_text(m)}")
        assert rc == 0 and jj["state"] == "done", (rc, jj.get("error"), err)
        st["at"] = dst
        only_on(c, dst)
        hb = wait_for("heartbeats on the destination",
                      lambda: (lambda h: h if h and h[-1][0] > n0 + 50
                               else None)(heartbeats(c)), timeout=60)
        check_unbroken(hb, n0)
        return m

    def postcopy_now():
        m = move(3 - st["at"], "--postcopy", "now")
        names = [r.get("rung") for r in m.get("rungs", [])]
        assert names and names[-1] == "postcopy", names
        assert "forced" not in names and not m.get("forced_switchover"), m
        assert int(m.get("downtime_ms", 0)) > 0, m.get("downtime_ms")
        ev = c.ctl("events", "-n", "200", "--json").stdout
        states = [e.get("state") for e in
                  (json.loads(x) for x in ev.splitlines() if x.strip())
                  if e.get("kind") == "migration.rung" and e.get("vm") == VM]
        assert "postcopy" in states, states

    def vm_default():
        out = c.ctl("vm", "set", VM, "--migration-postcopy", "auto").stdout
        assert "auto" in out, out
        # No throttle rung and one stalled round: the stall switches.
        m = move(3 - st["at"], "--no-throttle", "--stall-rounds", "1")
        names = [r.get("rung") for r in m.get("rungs", [])]
        assert names and names[-1] == "postcopy", names
        assert "forced" not in names, names
        bad = c.ctl("vm", "set", VM, "--migration-postcopy", "now",
                    check=False)
        assert bad.returncode != 0, bad

    def never_forces():
        m = move(3 - st["at"], "--no-throttle", "--stall-rounds", "1",
                 "--postcopy", "never")
        names = [r.get("rung") for r in m.get("rungs", [])]
        assert names and names[-1] == "forced", names
        assert "postcopy" not in names and m.get("forced_switchover"), m

    tap.case("boot a 256 MiB TCG guest dirtying 96 MiB of random data", boot)
    tap.case("dirty rate above a 240 Mbit/s link: the ladder reaches the "
             "throttle rung, the migration completes, heartbeat unbroken",
             climbs)
    tap.case("a throttled migration cancelled by the operator: VM on the "
             "source, heartbeat unbroken and back at full rate",
             abort_throttled)
    tap.case("--postcopy now: post-copy after the first pass, guest on the "
             "destination, heartbeat unbroken, downtime reported",
             postcopy_now)
    tap.case("vm set --migration-postcopy auto: a stall switches to "
             "post-copy instead of the forced pause", vm_default)
    tap.case("--postcopy never overrides the VM's default: forced pause",
             never_forces)


if __name__ == "__main__":
    sys.exit(main())
