#!/usr/bin/python3
"""The balancer on a real 3-host cluster (TCG guests).

The scheduler runs with a short balancer interval (3 s), a cool-down of
120 s and a memory reserve that leaves each host 1 GiB for VMs, so that
four 128 MiB guests on one host are a clear imbalance in memory (the
guests run a heartbeat, not a CPU-burning load: memory and VM count make
the imbalance here).

Checks:
- bad input: an unknown mode is refused (droverctl and the RPC), the
  mode stays off; off plans nothing and records no ticks;
- four VMs created on host1 (--host); in recommend mode `balance plan`
  and the status's plan list moves off host1 with their benefit and
  predicted cost, and nothing moves;
- the mode survives a scheduler restart (kept in the store);
- in auto mode the VMs spread to host2 and host3; over the next 30 s no
  VM moves twice and the imbalance stays below the threshold; the
  status lists each move with its migration job, predicted and measured
  time; a balance job lists the migration jobs it started; the moves
  count in drover_balance_moves_total and are balance.move events;
  heartbeats are unbroken (live moves, no reboot);
- `balance mode off` stops the ticks; `balance plan` lists the VMs that
  moved as held (cooling down); `balance apply` then starts a balance job
  (nothing left to do: it is done at once).

Prints TAP.
"""
import os
import json
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (GUEST_CMDLINE, GUEST_DIR, Cluster,  # noqa: E402
                            check_unbroken, log, run_on_cluster, wait_for)
from drover_harness import console_heartbeats as heartbeats  # noqa: E402

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = GUEST_CMDLINE + " drover.hb_ms=100"
VMS = ["bal-a", "bal-b", "bal-c", "bal-d"]
THRESHOLD = 0.05


def status(c):
    return c.ctl_json("balance", "status")


def where(c):
    return {v: x["host"] for v, x in c.vms_by_name().items() if v in VMS}


def migrations(c):
    """Migration jobs per VM of ours."""
    out = {vm: [] for vm in VMS}
    for j in c.ctl_json("jobs")["jobs"]:
        if j["kind"] == "migrate" and j["vm"] in out:
            out[j["vm"]].append(j)
    return out


def metric(c, series):
    """The value of SERIES on the scheduler's /metrics (None: absent)."""
    url = f"http://{c.env['DROVER_SCHEDULER_METRICS']}/metrics"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read().decode()
    m = re.search(r"^" + re.escape(series) + r" (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


def cases(c, tap, tmp):
    st = {}

    def bad_input():
        p = c.ctl("balance", "mode", "sometimes", check=False)
        assert p.returncode == 2 and "must be off, recommend or auto" in p.stderr, p.stderr
        s = status(c)
        assert s["mode"] == "off" and s["interval_s"] == 3, s
        assert abs(s["threshold"] - THRESHOLD) < 1e-9 and s["cooldown_s"] == 120, s
        p = c.ctl("balance", "apply", "--bogus", check=False)
        assert p.returncode == 2, (p.returncode, p.stderr)
        time.sleep(4)
        assert status(c).get("history", []) == [], status(c)

    def vms_up():
        for vm in VMS:
            c.ctl("vm", "create", vm, "--vcpus", "1", "--memory", "128M",
                  "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE,
                  "--host", "host1")
        for vm in VMS:
            wait_for(f"{vm} heartbeats", lambda vm=vm: len(heartbeats(c, vm)) > 5,
                     timeout=120)
        assert where(c) == {vm: "host1" for vm in VMS}, where(c)
        table = c.ctl("hosts").stdout
        # vCPUs and memory: used/capacity (xOVERCOMMIT).
        assert re.search(r"^host1\s.*\s4/\d+ \(x4\.0\)\s+512\.0 MiB/[\d.]+ [KMGT]iB "
                         r"\(x\d+\.\d\)\s", table, re.M), table
        h1 = c.hosts_by_name()["host1"]
        assert h1["vcpus_used"] == 4 and h1["cpu_overcommit"] == 4.0, h1
        assert 0.9 * 2**30 < int(h1["memory_capacity"]) < 1.1 * 2**30, h1

    def recommend():
        out = c.ctl_json("balance", "mode", "recommend")
        assert out["mode"] == "recommend", out
        s = wait_for("a recommended plan",
                     lambda: (s := status(c)).get("plan", {}).get("moves") and s,
                     timeout=30)
        plan = s["plan"]
        assert plan["imbalance_before"] > THRESHOLD, plan
        assert plan["imbalance_after"] < plan["imbalance_before"], plan
        for m in plan["moves"]:
            assert m["vm"] in VMS and m["from_host"] == "host1", m
            assert m["to_host"] in ("host2", "host3"), m
            assert m["benefit"] > 0 and m["predicted_s"] > 0, m
            assert int(m["predicted_bytes"]) > 0, m
        now = c.ctl_json("balance", "plan")
        assert now["moves"] and all(m["from_host"] == "host1" for m in now["moves"]), now
        assert now.get("held", []) == [], now
        text = c.ctl("balance", "plan").stdout
        assert re.search(r"^imbalance \d\.\d+ -> \d\.\d+ after \d move", text, re.M), text
        time.sleep(4)
        assert where(c) == {vm: "host1" for vm in VMS}, where(c)
        assert all(not j for j in migrations(c).values()), migrations(c)

    def restart_keeps_mode():
        c.harness("restart-scheduler")
        log("scheduler restarted")
        s = wait_for("the scheduler back", lambda: status(c), timeout=60)
        assert s["mode"] == "recommend", s
        wait_for("hosts up", lambda: all(h["state"] == "up"
                                         for h in c.hosts_by_name().values()),
                 timeout=60)

    def auto_spreads():
        st["t0"] = time.monotonic()
        assert c.ctl_json("balance", "mode", "auto")["mode"] == "auto"

        def spread():
            w = where(c)
            hosts = set(w.values())
            busy = any(j["state"] in ("queued", "running")
                       for js in migrations(c).values() for j in js)
            return not busy and len(hosts) == 3 and w

        w = wait_for("the VMs to spread", spread, timeout=90, interval=1)
        log(f"spread after {time.monotonic() - st['t0']:.0f}s: {w}")
        assert sum(1 for h in w.values() if h == "host1") == 2, w
        st["moves"] = {vm: len(js) for vm, js in migrations(c).items()}
        assert all(n <= 1 for n in st["moves"].values()), st["moves"]

    def stable():
        time.sleep(30)
        moves = {vm: len(js) for vm, js in migrations(c).items()}
        assert moves == st["moves"], (st["moves"], moves)
        s = status(c)
        assert s["imbalance"] <= THRESHOLD, s
        made = s["moves"]
        assert len(made) == sum(moves.values()), made
        for m in made:
            assert m["result"] == "done" and m["job_id"], m
            assert m["predicted_s"] > 0 and m["measured_s"] > 0, m
            log(f"{m['vm']} {m['from_host']} -> {m['to_host']}: predicted "
                f"{m['predicted_s']:.1f}s, measured {m['measured_s']:.1f}s")
        assert s["history"] and s["history"][-1]["mode"] == "auto", s["history"]
        assert metric(c, 'drover_balance_moves_total{result="done"}') == len(made)
        assert metric(c, 'drover_balance_moves_total{result="failed"}') == 0
        assert metric(c, "drover_scheduler_imbalance") <= THRESHOLD
        events = [json.loads(line) for line in
                  c.ctl("events", "-n", "1000", "--json").stdout.splitlines()]
        seen = {(e["vm"], e["state"]) for e in events if e["kind"] == "balance.move"}
        for m in made:
            assert {(m["vm"], "running"), (m["vm"], "done")} <= seen, (m, seen)
        bal = [j for j in c.ctl_json("jobs")["jobs"] if j["kind"] == "balance"]
        assert bal and all(j["state"] == "done" for j in bal), bal
        for m in made:
            assert any(m["job_id"] in j["message"] for j in bal), (m, bal)
        for vm in VMS:
            placed = c.where(vm)
            assert len(placed) == 1 and list(placed.values())[0][1] == "running", placed
            log(f"{vm}: heartbeat {check_unbroken(c, vm)}, never rebooted")
        text = c.ctl("balance", "status").stdout
        assert re.search(r"^mode\s+auto$", text, re.M), text
        assert "last moves:" in text, text

    def off_and_apply():
        assert c.ctl_json("balance", "mode", "off")["mode"] == "off"
        n = len(status(c)["history"])
        time.sleep(7)
        assert len(status(c)["history"]) == n, status(c)["history"]
        plan = c.ctl_json("balance", "plan")
        moved = {vm for vm, n in st["moves"].items() if n}
        held = {h["vm"]: h["reason"] for h in plan.get("held", [])}
        assert held == {vm: "cooling down after a move" for vm in moved}, plan
        text = c.ctl("balance", "plan").stdout
        assert re.search(r"^held: bal-\w on host\d: cooling down after a move$",
                         text, re.M), text
        job = c.ctl_json("balance", "apply", "--wait")
        assert job["kind"] == "balance" and job["state"] == "done", job
        assert "at or below the threshold" in job["message"], job
        assert {vm: len(js) for vm, js in migrations(c).items()} == st["moves"]

    tap.case("bad input: clear errors, off does nothing", bad_input)
    tap.case("four VMs up on host1; hosts shows the vCPU cap", vms_up)
    tap.case("recommend: a plan off host1, nothing moves", recommend)
    tap.case("the mode survives a scheduler restart", restart_keeps_mode)
    tap.case("auto: the VMs spread", auto_spreads)
    tap.case("no VM moves twice in 30 s; status shows predicted and measured",
             stable)
    tap.case("off stops the ticks; apply makes a balance job", off_and_apply)


def main():
    c = Cluster(hosts=3, report_interval_ms=1000)
    with open("/proc/meminfo") as f:
        total = int(re.search(r"^MemTotal:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024
    c.env["DROVER_SCHEDULER_ARGS"] = (
        f"--balance-interval 3 --balance-cooldown 120 "
        f"--balance-threshold {THRESHOLD} --memory-reserve {total - 2**30}")
    t0 = time.monotonic()
    rc = run_on_cluster(c, cases, tmp_prefix="drover-balance-")
    log(f"balance test {time.monotonic() - t0:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
