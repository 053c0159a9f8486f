#!/usr/bin/python3
"""Live migration on a real 2-host cluster (TCG guests), through the real
product path: `droverctl migrate` -> scheduler MigrateVm -> destination
PrepareIncoming -> source MigrateOut over the agents' migration channel.

Checks, confirmed with virsh on both hosts' libvirtd:
- a VM running its dirtying workload moves back and forth 20 times; after
  each move it is running + persistent on exactly one host and absent from
  the other, the scheduler's inventory agrees, and the guest's heartbeat
  (`HB <n> <mono_ms>` on the console, whose history follows the VM) counts
  up by exactly one from 1 across the whole run: never rebooted, nothing
  lost. Per move: total time, QEMU downtime, largest heartbeat gap.
- faults injected mid-migration (channel cut, destination agent killed,
  destination QEMU killed, destination unreachable, source agent
  restarted, bad/reused token): the job fails with a clear error
  (`droverctl migrate` exit 1, `job watch`/`jobs` say failed with an
  error), the VM runs on exactly one host with its heartbeat unbroken, and
  nothing is left behind: no reservation (the next migration to the same
  destination works), no drover-mig-* socket, no half-defined domain, no
  QEMU process of the VM on the other host.
- a VM dirtying faster than the link ends by forced switchover or a clean
  abort within its timeout; it never hangs.

Addresses come from `cluster env` and `droverctl hosts` (the cluster may
run on another 127.0.K.0/24). Prints TAP.
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_DIR, ROOT, Agents,  # noqa: E402
                            log, run_on_cluster, two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = (GUEST_CMDLINE + " drover.hb_ms=10 drover.ws_mib=32 "
           "drover.rate_mib=8 drover.data=text")
# Dirties 96 MiB of incompressible data as fast as it can: more than an
# 80 Mbit/s link carries.
HOT_CMDLINE = (GUEST_CMDLINE + " drover.hb_ms=10 drover.ws_mib=96 "
               "drover.data=random")
VM = "mig1"
HOT = "mig-hot"
MEMORY = 256 * 1024 * 1024
MOVES = int(os.environ.get("DROVER_MIG_MOVES", "6"))
# Slow enough (150 Mbit/s for ~100 MiB) that a fault lands mid-migration.
# A timeout of 60 s/GiB (15 s here) bounds the unreachable-destination case.
SLOW = ["--bandwidth", "150", "--timeout-per-gib", "60"]
CTL_TIMEOUT = 180  # hard limit on any droverctl migrate / job watch


# --- guest and hosts ---------------------------------------------------------

def console(c, vm):
    return c.ctl("vm", "console", vm).stdout


def heartbeats(c, vm=VM):
    out = console(c, vm)
    if not out.endswith("\n"):
        out = out[:out.rfind("\n") + 1]  # a line still being written
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(r"^HB (\d+) (\d+)$", out, re.M)]


def check_heartbeats(hb):
    """Counter 1, 2, 3, ... with a clock that never goes back; returns the
    largest gap in ms."""
    assert hb, "no heartbeats"
    assert hb[0][0] == 1, f"heartbeat history starts at {hb[0][0]}, not 1"
    gap = 0
    for (n0, t0), (n1, t1) in zip(hb, hb[1:]):
        assert n1 == n0 + 1, f"heartbeat counter {n0} -> {n1} (reboot or loss)"
        assert t1 >= t0, f"heartbeat clock went back {t0} -> {t1}"
        gap = max(gap, t1 - t0)
    return gap


# What a guest kernel prints when its memory went bad under it.
OOPS = re.compile(r"^(.*\b(Oops|BUG:|Kernel panic|general protection fault|"
                  r"Fatal exception|unable to handle)\b.*)$", re.M)


def guest_oops(c, vm=VM):
    """The first kernel oops line on VM's console, or None."""
    m = OOPS.search(console(c, vm))
    return m.group(1) if m else None


def max_gap_after(hb, n):
    """Largest heartbeat gap among beats numbered >= n."""
    gap = 0
    for (n0, t0), (n1, t1) in zip(hb, hb[1:]):
        if n0 >= n:
            gap = max(gap, t1 - t0)
    return gap


def wait_heartbeats_past(c, n, vm=VM, more=20, timeout=60):
    """Waits until the console (history included) shows beat n + more and
    the whole history is unbroken; returns the beats."""
    def ok():
        hb = heartbeats(c, vm)
        if not hb or hb[0][0] != 1 or hb[-1][0] < n + more:
            return None
        return hb
    hb = wait_for(f"{vm} heartbeats past {n + more} with full history", ok,
                  timeout=timeout)
    check_heartbeats(hb)
    return hb


def where(c, vm=VM):
    return c.where(vm)


def qemu_pids(c, i, vm):
    """Live QEMU processes of VM on host i. libvirt runs each QEMU in a
    mount namespace of its own, cloned from its host's: its bind mounts of
    <cluster dir>/hostI/... say which host it belongs to."""
    want = os.path.join(c.env["DROVER_CLUSTER_DIR"], f"host{i}", "lib")
    out = []
    for p in glob.glob("/proc/[0-9]*/cmdline"):
        pid = int(p.split("/")[2])
        try:
            argv = open(p, "rb").read().split(b"\0")
            if not argv or b"qemu-system" not in argv[0]:
                continue
            if not any(a == f"guest={vm}".encode()
                       or a.startswith(f"guest={vm},".encode()) for a in argv):
                continue
            status = open(f"/proc/{pid}/status").read()
            if re.search(r"^State:\s+Z", status, re.M):
                continue
            mounts = open(f"/proc/{pid}/mountinfo").read()
        except OSError:
            continue
        # The bind mount on /var/lib/libvirt; its root is relative to the
        # file system holding the cluster dir.
        roots = [f[3] for f in (ln.split(" ") for ln in mounts.splitlines())
                 if len(f) > 4 and f[4] == "/var/lib/libvirt"]
        if any(r.endswith(f"/host{i}/lib") and want.endswith(r) for r in roots):
            out.append(pid)
    return out


def leftovers(c):
    d = c.env["DROVER_CLUSTER_DIR"]
    return sorted(glob.glob(os.path.join(d, "host*", "lib", "qemu", "drover-mig-*"))
                  + glob.glob(os.path.join(d, "host*", "run", "libvirt", "drover-mig-*")))


def inventory_host(c, vm=VM):
    v = c.vms_by_name().get(vm)
    return v and v["host"]


def assert_only_on(c, i, vm=VM, timeout=30):
    """VM running + persistent on host i only (libvirt), one QEMU there and
    none on the other host, the inventory says host i, no sockets left."""
    other = 3 - i
    w = wait_for(f"{vm} only on host{i}", lambda: (
        lambda w: w if w == {i: ("yes", "running")} else None)(where(c, vm)),
        timeout=timeout)
    assert w == {i: ("yes", "running")}, w
    assert vm not in c.domains(other), c.domains(other)
    wait_for(f"no QEMU of {vm} on host{other}",
             lambda: qemu_pids(c, other, vm) == [] or None, timeout=15)
    assert len(qemu_pids(c, i, vm)) == 1, qemu_pids(c, i, vm)
    d = c.env["DROVER_CLUSTER_DIR"]
    pidf = os.path.join(d, f"host{other}", "run", "libvirt", "qemu", f"{vm}.pid")
    assert not os.path.exists(pidf), f"{pidf} left behind"
    wait_for(f"inventory: {vm} on host{i}",
             lambda: inventory_host(c, vm) == f"host{i}" or None, timeout=20)
    wait_for("no migration sockets left",
             lambda: leftovers(c) == [] or None, timeout=15)


# --- droverctl ---------------------------------------------------------------

def migrate(c, vm, dst, *extra, timeout=CTL_TIMEOUT):
    """`droverctl migrate VM --to hostDST --json`; (rc, job dict or None,
    wall seconds)."""
    t0 = time.monotonic()
    p = c.ctl("migrate", vm, "--to", f"host{dst}", *extra, "--json",
              check=False, timeout=timeout)
    wall = time.monotonic() - t0
    job = None
    try:
        job = json.loads(p.stdout)
    except ValueError:
        pass
    if p.returncode not in (0, 1):
        raise AssertionError(f"droverctl migrate exited {p.returncode}: "
                             f"{p.stdout} {p.stderr}")
    return p.returncode, job, wall, p


def migrate_start(c, vm, dst, *extra):
    argv = [os.path.join(BUILD, "cli", "droverctl"), "migrate", vm, "--to",
            f"host{dst}", *extra, "--json"]
    return subprocess.Popen(argv, env=c.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def migrate_finish(proc, timeout=CTL_TIMEOUT):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"droverctl migrate hung for {timeout}s")
    return proc.returncode, out, err


def jobs(c):
    return c.ctl_json("jobs")["jobs"]


def job_by_id(c, jid):
    for j in jobs(c):
        if j["id"] == jid:
            return j
    return None


def running_migration(c, vm):
    """The running migrate job of VM once pre-copy has moved memory."""
    for j in jobs(c):
        m = j.get("migration") or {}
        if (j["kind"] == "migrate" and j["vm"] == vm and j["state"] == "running"
                and m.get("phase") == "precopy"
                and int(m.get("memory_processed", 0)) > 0):
            return j
    return None


def wait_midway(c, vm, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("migration ended before the fault: "
                                 f"{proc.communicate()}")
        try:
            j = running_migration(c, vm)
        except Exception:  # noqa: BLE001 - a busy scheduler: retry
            j = None
        if j:
            return j
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{vm} migration not in pre-copy after {timeout}s")


def assert_job_failed(c, jid):
    j = job_by_id(c, jid)
    assert j is not None, f"job {jid} not listed"
    assert j["state"] == "failed", (j["state"], j["message"], j["error"])
    assert j["error"], f"job {jid} failed without an error message"
    w = c.ctl("job", "watch", jid, "--json", check=False, timeout=60)
    assert w.returncode == 1, f"job watch exited {w.returncode}: {w.stdout}"
    wj = json.loads(w.stdout)
    assert wj["state"] == "failed" and wj["error"], wj
    return j["error"]


# --- grpcio, for the token case ---------------------------------------------

def vm_spec(pb):
    return pb.VmSpec(name=VM, vcpus=1, memory=MEMORY, kernel=KERNEL,
                     initrd=INITRD, cmdline=CMDLINE, accel="tcg")


# --- the run ----------------------------------------------------------------

def main():
    c = two_host_cluster("/tmp/drover-cluster-mig")
    return run_on_cluster(c, run_cases, with_pb=True, tmp_prefix="drover-mig-test-")


def run_cases(c, tap, tmp, pb):
    st = {"at": None, "moves": [], "faults": [], "restarted": 0.0}
    d = c.env["DROVER_CLUSTER_DIR"]

    def restarted():
        st["restarted"] = time.monotonic()

    def settle():
        """After an agent restart (or stop), the scheduler's channel to it
        may sit in gRPC's reconnect backoff (up to 5 s) and the agent may
        still be reconnecting to libvirt: give both time."""
        left = st["restarted"] + 6.0 - time.monotonic()
        if left > 0:
            time.sleep(left)

    def assert_alive():
        """The guest survived everything so far: no kernel oops (memory
        that went bad in a migration shows up there) and still beating."""
        oops = guest_oops(c)
        assert not oops, f"guest {VM} kernel oops: {oops.strip()}"
        n = heartbeats(c)[-1][0]
        wait_for(f"{VM} heart-beating", lambda: heartbeats(c)[-1][0] > n + 10
                 or None, timeout=10)

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE)
        w = wait_for("VM defined", lambda: where(c) or None, timeout=30)
        st["at"] = list(w)[0]
        out = wait_for("workload ready", lambda: "ws-ready" in console(c, VM),
                       timeout=120)
        assert out
        wait_heartbeats_past(c, 0, more=50, timeout=60)
        assert_only_on(c, st["at"])
        log(f"VM {VM} runs on host{st['at']}")

    def move(record=True, *extra):
        """One good migration to the other host, fully checked."""
        src = st["at"]
        dst = 3 - src
        before = heartbeats(c)
        check_heartbeats(before)
        n0 = before[-1][0]
        settle()
        rc, job, wall, p = migrate(c, VM, dst, *extra)
        assert rc == 0 and job and job["state"] == "done", \
            f"migration host{src}->host{dst} failed: rc={rc} {p.stdout} {p.stderr}"
        m = job["migration"]
        assert m["phase"] == "completed", m
        assert int(m["wire_bytes"]) > 0 and float(m["total_s"]) > 0, m
        st["at"] = dst
        assert_only_on(c, dst)
        hb = wait_heartbeats_past(c, n0)
        gap = max_gap_after(hb, max(1, n0 - 5))
        rec = {"src": src, "dst": dst, "total_s": float(m["total_s"]),
               "wall_s": wall, "downtime_ms": int(m["downtime_ms"]),
               "gap_ms": gap, "rounds": len(m.get("rounds", [])),
               "limit_ms": int(m["downtime_limit_ms"]),
               "qemu_mib": int(m["qemu_bytes"]) / 2**20,
               "wire_mib": int(m["wire_bytes"]) / 2**20,
               "mode": m.get("compress_mode", "")}
        if record:
            st["moves"].append(rec)
        return rec

    def series():
        for k in range(MOVES):
            r = move(True)
            log(f"move {k + 1:2d} host{r['src']}->host{r['dst']}: "
                f"total {r['total_s']:.2f}s (wall {r['wall_s']:.2f}s) "
                f"QEMU downtime {r['downtime_ms']}ms, largest heartbeat gap "
                f"{r['gap_ms']}ms, rounds {r['rounds']}, limit {r['limit_ms']}ms, "
                f"QEMU {r['qemu_mib']:.1f} MiB, wire {r['wire_mib']:.1f} MiB "
                f"({r['mode']})")
        assert_alive()
        mv = st["moves"]

        def stats(key):
            v = sorted(x[key] for x in mv)
            return (f"min {v[0]:.0f} median {v[len(v) // 2]:.0f} "
                    f"max {v[-1]:.0f}")
        log(f"summary of {len(mv)} moves: total ms "
            f"{stats_ms(mv, 'total_s')}; QEMU downtime ms {stats('downtime_ms')}; "
            f"largest heartbeat gap ms {stats('gap_ms')}")

    def stats_ms(mv, key):
        v = sorted(x[key] * 1000 for x in mv)
        return f"min {v[0]:.0f} median {v[len(v) // 2]:.0f} max {v[-1]:.0f}"

    def fault_case(name, inject, slow=True, before=None, after=None):
        """Runs a migration with a fault, checks the outcome, then a good
        migration to the same destination (no reservation left)."""
        def case():
            assert_alive()
            src = st["at"]
            dst = 3 - src
            hb0 = heartbeats(c)
            check_heartbeats(hb0)
            t0 = time.monotonic()
            if before:
                before(src, dst)
            settle()
            try:
                proc = migrate_start(c, VM, dst, *(SLOW if slow else []))
                ctx = inject(src, dst, proc)
                rc, out, err = migrate_finish(proc)
            finally:
                if after:
                    after(src, dst)
            wall = time.monotonic() - t0
            assert rc == 1, f"droverctl migrate exited {rc}: {out} {err}"
            job = json.loads(out)
            jid = job["id"]
            error = assert_job_failed(c, jid)
            w = wait_for("VM running on one host", lambda: (
                lambda w: w if len(w) == 1 and list(w.values())[0] == ("yes", "running")
                else None)(where(c)), timeout=60)
            at = list(w)[0]
            assert at == src, f"VM ended on host{at}, not the source host{src}"
            assert_only_on(c, at)
            assert VM not in c.domains(dst)
            wait_heartbeats_past(c, hb0[-1][0])
            st["faults"].append((name, wall, error, ctx))
            log(f"{name}: failed after {wall:.1f}s; error: {error}")
            if ctx:
                log(f"  {ctx}")
            # Nothing reserved or claimed on the destination any more.
            r = move(record=False)
            log(f"  then host{r['src']}->host{r['dst']} works: "
                f"{r['total_s']:.2f}s, downtime {r['downtime_ms']}ms")
        tap.case(name, case)

    # a. channel cut by the source agent's fault point
    def restart_agent(i, extra_env=None, sig="TERM"):
        c.harness("kill-agent", str(i), sig)
        env = dict(c.env)
        env.pop("DROVER_FAULTS", None)
        if extra_env:
            env.update(extra_env)
        subprocess.run([os.path.join(ROOT, "tests", "cluster", "cluster"),
                        "start-agent", str(i)], env=env, check=True,
                       capture_output=True, timeout=90)
        restarted()

    def cut_inject(src, dst, proc):
        return None

    # b. destination agent killed
    def kill_dst_agent(src, dst, proc):
        j = wait_midway(c, VM, proc)
        c.harness("kill-agent", str(dst), "KILL")
        restarted()
        return (f"destination agent killed at "
                f"{int(j['migration']['memory_processed']) >> 20} MiB sent")

    # c. destination QEMU killed
    def kill_dst_qemu(src, dst, proc):
        j = wait_midway(c, VM, proc)
        pidf = os.path.join(d, f"host{dst}", "run", "libvirt", "qemu",
                            f"{VM}.pid")
        pid = int(open(pidf).read().strip())
        assert pid in qemu_pids(c, dst, VM), (pid, qemu_pids(c, dst, VM))
        os.kill(pid, signal.SIGKILL)
        return (f"destination QEMU {pid} killed at "
                f"{int(j['migration']['memory_processed']) >> 20} MiB sent")

    # d. destination unreachable: its agent stopped (SIGSTOP) mid-way
    def agent_pid(i):
        return int(open(os.path.join(d, "pids", f"host{i}-agent.pid")).read())

    def stop_dst_agent(src, dst, proc):
        j = wait_midway(c, VM, proc)
        os.kill(agent_pid(dst), signal.SIGSTOP)
        st["stopped"] = dst
        return (f"destination agent stopped at "
                f"{int(j['migration']['memory_processed']) >> 20} MiB sent")

    def cont_dst_agent(src, dst):
        if st.pop("stopped", None):
            os.kill(agent_pid(dst), signal.SIGCONT)
            restarted()

    # e. source agent restarted
    def restart_src_agent(sig):
        def inject(src, dst, proc):
            j = wait_midway(c, VM, proc)
            t0 = time.monotonic()
            c.harness("kill-agent", str(src), sig)
            t1 = time.monotonic()
            c.harness("start-agent", str(src))
            restarted()
            return (f"source agent stopped ({sig}) at "
                    f"{int(j['migration']['memory_processed']) >> 20} MiB sent "
                    f"in {t1 - t0:.1f}s, back in {time.monotonic() - t1:.1f}s")
        return inject

    def start_dst_agent(src, dst):
        c.harness("start-agent", str(dst))
        restarted()

    def tokens():
        assert_alive()
        ag = Agents(c, pb)
        spec = vm_spec(pb)
        src = st["at"]
        dst = 3 - src
        jid = f"tok-{os.getpid()}"
        prep = ag.prepare(jid + "-a", src, dst, spec)
        ag.cancel_incoming(jid + "-a", prep.token, dst)
        old = prep.token
        for kind, token in (("invalid", "0" * 64), ("reused", old)):
            j = f"{jid}-{kind}"
            prep = ag.prepare(j, src, dst, spec)
            assert prep.channel_address and prep.token != old
            msgs, err = ag.migrate_out(j, VM, src, dst, prep, token)
            assert err is not None, f"MigrateOut with a {kind} token succeeded"
            assert msgs and msgs[-1].phase == "failed", msgs[-1:]
            assert "token" in msgs[-1].error, msgs[-1].error
            log(f"{kind} token refused: {msgs[-1].error}")
            ag.cancel_incoming(j, prep.token, dst)
            assert_only_on(c, src)
        wait_heartbeats_past(c, heartbeats(c)[-1][0])
        r = move(record=False)
        log(f"then host{r['src']}->host{r['dst']} works")

    def hot():
        c.ctl("vm", "create", HOT, "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", HOT_CMDLINE)
        w = wait_for(f"{HOT} defined", lambda: where(c, HOT) or None, timeout=30)
        src = list(w)[0]
        dst = 3 - src
        wait_for("hot workload ready", lambda: "ws-ready" in console(c, HOT),
                 timeout=120)
        n0 = wait_heartbeats_past(c, 0, vm=HOT, more=20)[-1][0]
        t0 = time.monotonic()
        rc, job, wall, p = migrate(c, HOT, dst, "--bandwidth", "80",
                                   "--timeout-per-gib", "60", "--compress", "off",
                                   timeout=150)
        assert job, (rc, p.stdout, p.stderr)
        m = job.get("migration") or {}
        log(f"dirty > link: rc={rc} state={job['state']} "
            f"forced={m.get('forced_switchover')} total={m.get('total_s')}s "
            f"downtime={m.get('downtime_ms')}ms rounds={len(m.get('rounds', []))} "
            f"limit={m.get('downtime_limit_ms')}ms error={job['error']!r} "
            f"wall={time.monotonic() - t0:.1f}s")
        if rc == 0:
            assert job["state"] == "done" and m.get("forced_switchover"), job
            at = dst
        else:
            assert job["state"] == "failed" and job["error"], job
            assert "timeout" in job["error"] or "abort" in job["error"], job["error"]
            at = src
        hot_after(at, n0)

    def hot_after(at, n0):
        """HOT is on host AT alone, its kernel did not oops and its
        heartbeat goes on unbroken past beat N0."""
        st["hot_at"] = at
        assert_only_on(c, at, vm=HOT)
        oops = guest_oops(c, HOT)
        assert not oops, f"guest {HOT} kernel oops: {oops.strip()}"
        hb = wait_heartbeats_past(c, n0, vm=HOT)
        log(f"{HOT} heartbeat unbroken through beat {hb[-1][0]}, "
            f"largest gap after the move {max_gap_after(hb, n0 - 5)}ms")

    def forced():
        """The same guest on a link it still outruns, with room in the
        timeout: the controller must see the stall and pause the guest."""
        src = st["hot_at"]
        dst = 3 - src
        n0 = heartbeats(c, HOT)[-1][0]
        settle()
        rc, job, wall, p = migrate(c, HOT, dst, "--bandwidth", "400",
                                   "--stall-rounds", "2", "--timeout-per-gib",
                                   "480", "--compress", "off", timeout=170)
        assert job, (rc, p.stdout, p.stderr)
        m = job.get("migration") or {}
        log(f"forced switchover: rc={rc} state={job['state']} "
            f"forced={m.get('forced_switchover')} total={m.get('total_s')}s "
            f"downtime={m.get('downtime_ms')}ms rounds={len(m.get('rounds', []))} "
            f"limit={m.get('downtime_limit_ms')}ms error={job['error']!r}")
        assert rc == 0 and job["state"] == "done", job
        assert m.get("forced_switchover"), m
        assert int(m["downtime_ms"]) > 0, m
        hot_after(dst, n0)
        c.ctl("vm", "destroy", HOT)
        c.ctl("vm", "delete", HOT)

    def final_check():
        hb = heartbeats(c)
        gap = check_heartbeats(hb)
        log(f"{VM}: {len(hb)} heartbeats over the whole run, counter unbroken "
            f"from 1, largest gap {gap}ms")
        for name, wall, error, ctx in st["faults"]:
            log(f"  fault {name}: {wall:.1f}s -> {error}")

    tap.case("boot a 256 MiB TCG guest with a dirtying workload", boot)
    tap.case(f"{MOVES} moves back and forth: each completed, on one host, "
             "inventory = libvirt, heartbeat unbroken", series)
    fault_case("fault: channel cut mid-migration (mig-cut-channel)", cut_inject,
               slow=False,
               before=lambda s, d_: restart_agent(s, {"DROVER_FAULTS": "mig-cut-channel"}),
               after=lambda s, d_: restart_agent(s))
    fault_case("fault: destination agent killed mid-migration", kill_dst_agent,
               after=start_dst_agent)
    fault_case("fault: destination QEMU killed mid-migration", kill_dst_qemu)
    fault_case("fault: destination unreachable (agent stopped) mid-migration",
               stop_dst_agent, after=cont_dst_agent)
    fault_case("fault: source agent restarted (TERM) mid-migration",
               restart_src_agent("TERM"))
    fault_case("fault: source agent killed (KILL) and restarted mid-migration",
               restart_src_agent("KILL"))
    def lz4_move():
        assert_alive()
        r = move(False, "--compress", "on")
        assert r["mode"] == "lz4", r
        assert r["wire_mib"] < r["qemu_mib"], r
        log(f"lz4 move host{r['src']}->host{r['dst']}: QEMU {r['qemu_mib']:.1f} MiB, "
            f"wire {r['wire_mib']:.1f} MiB, total {r['total_s']:.2f}s, "
            f"QEMU downtime {r['downtime_ms']}ms")

    tap.case("one move with lz4 on: fewer bytes on the wire, heartbeat unbroken",
             lz4_move)
    tap.case("fault: invalid and reused tokens refused, VM stays", tokens)
    tap.case("dirty rate above the link: forced switchover or clean abort", hot)
    tap.case("dirty rate above the link, 2 stalled rounds allowed: forced "
             "switchover, VM resumed on the destination", forced)
    tap.case("heartbeat over the whole run", final_check)


if __name__ == "__main__":
    sys.exit(main())
