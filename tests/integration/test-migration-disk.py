#!/usr/bin/python3
"""Live migration of a VM with a local qcow2 disk on a real 2-host cluster
(TCG guests), through `droverctl migrate` (scheduler -> PrepareIncoming ->
MigrateOut; libvirt's non-shared storage migration, QEMU's NBD stream
carried by the agents' channel).

The guest writes 8 MiB of random data at the start of vda at boot
(drover.disk_write_mib=8) and then only heart-beats. Checks, after each
move: the VM is persistent and running on exactly one host, its disk on
the destination is DATA/disks/NAME.qcow2 there, of the same virtual size,
with at least 8 MiB allocated and the same first 8 MiB as the image it
booted with; the source image is gone; no migration socket is left; the
heartbeat counter goes on (console history included) and the guest shows
no I/O error. A migration cut mid-way leaves the VM and its disk on the
source and removes the destination's new image; an image already at the
destination is never overwritten. Prints TAP.
"""
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (CLUSTER, GUEST_CMDLINE, GUEST_DIR, log,  # noqa: E402
                            run, run_on_cluster, two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = GUEST_CMDLINE + " drover.hb_ms=10 drover.disk_write_mib=8"
VM = "migdisk1"
DISK = 64 * 1024 * 1024
WRITTEN = 8 * 1024 * 1024
BAD_CONSOLE = re.compile(r"I/O error|blk_update_request|Buffer I/O|BUG:|Oops|"
                         r"Kernel panic|DROVER-GUEST disk write failed")


def heartbeats(c):
    out = c.ctl("vm", "console", VM).stdout
    return [int(m.group(1)) for m in re.finditer(r"^HB (\d+) \d+\r?\n", out, re.M)]


def check_console(c, min_count=1, since=0):
    """Asserts no guest errors and an unbroken heartbeat counter; returns
    (heartbeat count, largest gap in the guest's clock from heartbeat
    SINCE on, ms)."""
    out = c.ctl("vm", "console", VM).stdout
    bad = [line for line in out.splitlines() if BAD_CONSOLE.search(line)]
    assert not bad, f"guest console shows errors: {bad}"
    hb = [(int(m.group(1)), int(m.group(2)))
          for m in re.finditer(r"^HB (\d+) (\d+)\r?\n", out, re.M)]
    assert len(hb) >= min_count, f"only {len(hb)} heartbeats"
    gap = 0
    for (a, ta), (b, tb) in zip(hb, hb[1:]):
        assert b == a + 1, f"heartbeat counter {a} -> {b}"
        assert tb >= ta, f"guest clock went back {ta} -> {tb}"
        if a >= since:
            gap = max(gap, tb - ta)
    return len(hb), gap


def where(c):
    return c.where(VM)


def disk_path(c, i):
    return os.path.join(c.host_data(i), "disks", VM + ".qcow2")


def image_info(path):
    """(virtual size, allocated bytes) of a qcow2 in use (-U)."""
    out = run(["qemu-img", "info", "-U", "--output=json", path]).stdout
    info = json.loads(out)
    return info["virtual-size"], info["actual-size"]


def image_digest(path, tmp):
    """SHA-256 of the first WRITTEN bytes of the guest's view of PATH."""
    raw = os.path.join(tmp, "disk.raw")
    run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", path, raw])
    with open(raw, "rb") as f:
        data = f.read(WRITTEN)
    os.unlink(raw)
    assert len(data) == WRITTEN
    assert data.count(0) < WRITTEN // 2, "the guest's data is not in the image"
    return hashlib.sha256(data).hexdigest()


def leftovers(c):
    d = c.env["DROVER_CLUSTER_DIR"]
    found = []
    for i in (1, 2):
        for sub in (("lib", "qemu"), ("run", "libvirt")):
            p = os.path.join(d, f"host{i}", *sub)
            if os.path.isdir(p):
                found += [os.path.join(p, n) for n in os.listdir(p)
                          if n.startswith("drover-mig-")]
    return sorted(found)


def assert_only_on(c, i):
    w = wait_for(f"VM only on host{i}", lambda: (
        where(c) if set(where(c)) == {i} and where(c)[i] == ("yes", "running")
        else None), timeout=30)
    assert w == {i: ("yes", "running")}, w
    wait_for("no migration sockets left", lambda: leftovers(c) == [] or None,
             timeout=15)


def agent_up(c, i):
    """Host I's agent accepts connections (its address as registered)."""
    host, port = c.hosts_by_name()[f"host{i}"]["info"]["address"].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


def settle_after_restart():
    """The scheduler's gRPC channel to a restarted agent backs off (about
    1 s, growing) after the refused reconnects while it was down; give it
    time to reconnect before the next migration goes through it."""
    time.sleep(3)


def main():
    c = two_host_cluster("/tmp/drover-cluster-migdisk")
    return run_on_cluster(c, run_cases, tmp_prefix="drover-migdisk-")


def run_cases(c, tap, tmp):
    st = {"results": []}

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M",
              "--disk", "64M", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", CMDLINE)
        w = wait_for("VM defined", lambda: where(c) or None, timeout=30)
        st["at"] = list(w)[0]
        wait_for("the guest wrote its disk", lambda: "DROVER-GUEST disk wrote 8 MiB"
                 in c.ctl("vm", "console", VM).stdout, timeout=90)
        wait_for("heartbeats", lambda: len(heartbeats(c)) >= 50, timeout=90)
        check_console(c)
        path = disk_path(c, st["at"])
        size, alloc = image_info(path)
        assert size == DISK, size
        assert alloc >= WRITTEN, alloc
        st["digest"] = image_digest(path, tmp)
        log(f"VM {VM} runs on host{st['at']}, {alloc} bytes allocated, "
            f"first 8 MiB sha256 {st['digest'][:16]}...")

    def migrate():
        src = st["at"]
        dst = 3 - src
        before = len(heartbeats(c))
        p = c.ctl("migrate", VM, "--to", f"host{dst}", "--json", check=False,
                  timeout=600)
        return src, dst, before, p

    def migrate_ok():
        src, dst, before, p = migrate()
        # Right after an agent restart the scheduler's gRPC channel to it
        # may still be backing off from the refused reconnects: PrepareIncoming
        # fails before anything happened. Only that is retried.
        for _ in range(10):
            if p.returncode == 0 or not st.pop("restarted", False) \
                    or "Connection refused" not in p.stdout + p.stderr:
                break
            log("scheduler could not reach the restarted agent yet; retrying")
            wait_for("VM still on the source", lambda: where(c) == {
                src: ("yes", "running")}, timeout=30)
            time.sleep(1)
            st["restarted"] = True
            src, dst, before, p = migrate()
        st.pop("restarted", None)
        assert p.returncode == 0, f"migrate failed: {p.stdout}\n{p.stderr}"
        job = json.loads(p.stdout)
        m = job["migration"]
        assert job["state"] == "done" and m["phase"] == "completed", job
        assert_only_on(c, dst)
        st["at"] = dst
        # The disk lives in the destination's data dir now.
        blk = c.virsh(dst, "domblklist", VM).stdout
        assert disk_path(c, dst) in blk, blk
        size, alloc = image_info(disk_path(c, dst))
        assert size == DISK, size
        assert alloc >= WRITTEN, alloc
        assert image_digest(disk_path(c, dst), tmp) == st["digest"], \
            "the disk's data changed on the way"
        wait_for("source image removed",
                 lambda: not os.path.exists(disk_path(c, src)), timeout=20)
        wait_for("heartbeats after the move",
                 lambda: len(heartbeats(c)) > before + 50 or None, timeout=60)
        _, gap = check_console(c, since=before)
        log(f"host{src}->host{dst}: total {m['total_s']:.2f}s, QEMU downtime "
            f"{m['downtime_ms']}ms, QEMU bytes {m['qemu_bytes']}, memory "
            f"{m['memory_processed']}, channel payload {m['payload_bytes']} "
            f"wire {m['wire_bytes']} ({m['compress_mode']}), "
            f"destination image {alloc} bytes allocated, largest guest "
            f"heartbeat gap {gap}ms")
        st["results"].append((m["total_s"], m["downtime_ms"], m["qemu_bytes"],
                              m["wire_bytes"]))

    def refuse_existing_image():
        src = st["at"]
        dst = 3 - src
        stray = disk_path(c, dst)
        with open(stray, "wb") as f:
            f.write(b"not yours\n")
        try:
            _, _, _, p = migrate()
            assert p.returncode != 0, "migrated over an existing image"
            assert "exists" in (p.stdout + p.stderr), p.stdout + p.stderr
            with open(stray, "rb") as f:
                assert f.read() == b"not yours\n", "the stray image was touched"
            assert_only_on(c, src)
            assert os.path.exists(disk_path(c, src))
            check_console(c)
        finally:
            os.unlink(stray)

    def channel_cut():
        src = st["at"]
        dst = 3 - src
        env = dict(c.env)
        env["DROVER_FAULTS"] = "mig-cut-channel"
        c.harness("kill-agent", str(src), "TERM")
        run([CLUSTER, "start-agent", str(src)], env=env, timeout=60)
        try:
            wait_for("source agent up", lambda: agent_up(c, src), timeout=30)
            settle_after_restart()
            _, _, before, p = migrate()
            assert p.returncode != 0, "migration with a cut channel succeeded"
            assert "injected fault" in p.stdout + p.stderr, p.stdout + p.stderr
            log(f"channel cut: {(p.stdout + p.stderr).strip().splitlines()[-1:]}")
            assert_only_on(c, src)
            wait_for("destination image removed",
                     lambda: not os.path.exists(disk_path(c, dst)), timeout=30)
            assert image_digest(disk_path(c, src), tmp) == st["digest"]
            wait_for("heartbeats go on", lambda: len(heartbeats(c)) > before + 50
                     or None, timeout=60)
            check_console(c)
        finally:
            c.harness("kill-agent", str(src), "TERM")
            c.harness("start-agent", str(src))
            wait_for("source agent up", lambda: agent_up(c, src), timeout=30)
            settle_after_restart()

    def kill_dest():
        src = st["at"]
        dst = 3 - src
        image = disk_path(c, dst)
        before = len(heartbeats(c))
        argv = [os.path.join(c.env["DROVER_BUILD_DIR"], "cli", "droverctl"),
                "migrate", VM, "--to", f"host{dst}"]
        proc = subprocess.Popen(argv, env=c.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        # Kill the destination agent once its QEMU's NBD server listens
        # (libvirt prepared the VM there, the disk copy starts).
        nbd = os.path.join(c.env["DROVER_CLUSTER_DIR"], f"host{dst}", "lib",
                           "qemu")
        listening = lambda: any(n.startswith("drover-mig-")  # noqa: E731
                                and n.endswith("-disk.sock")
                                for n in os.listdir(nbd))
        wait_for("destination NBD socket", lambda: listening()
                 or proc.poll() is not None, timeout=60, interval=0.01)
        killed = proc.poll() is None
        if killed:
            c.harness("kill-agent", str(dst), "KILL")
        out, _ = proc.communicate(timeout=600)
        c.harness("start-agent", str(dst))
        st["restarted"] = True
        wait_for("destination agent up", lambda: agent_up(c, dst), timeout=30)
        settle_after_restart()
        log(f"destination agent killed: {killed}; droverctl: "
            f"{out.strip().splitlines()[-1:]}")
        if not killed or proc.returncode == 0:
            # It finished before the kill: then it must have arrived.
            assert proc.returncode == 0, out
            assert_only_on(c, dst)
            st["at"] = dst
            return
        assert_only_on(c, src)
        assert image_digest(disk_path(c, src), tmp) == st["digest"]
        # The restarted agent takes the image back at once, or (while
        # libvirt still tears the half-made VM down) at the next
        # PrepareIncoming: it is never left unmarked.
        wait_for("destination image removed or marked", lambda: (
            not os.path.exists(image) or os.path.exists(image + ".incoming")),
            timeout=20)
        log(f"destination image after the restart: "
            f"{'marked' if os.path.exists(image) else 'removed'}")
        wait_for("heartbeats go on", lambda: len(heartbeats(c)) > before + 50
                 or None, timeout=60)
        check_console(c)

    def final_check():
        n, gap = check_console(c, min_count=500)
        log(f"{n} heartbeats, counter unbroken, largest gap {gap}ms")
        for total, down, qb, wire in st["results"]:
            log(f"  disk VM migration: total {total:.2f}s, QEMU downtime "
                f"{down}ms, QEMU bytes {qb}, wire {wire}")

    if not tap.case("boot a TCG guest with a 64 MiB disk, 8 MiB written", boot):
        return
    tap.case("migrate there: disk copied, source image removed", migrate_ok)
    tap.case("migrate back", migrate_ok)
    tap.case("an image already at the destination is refused, kept",
             refuse_existing_image)
    tap.case("channel cut mid-migration: VM and disk stay, destination "
             "image removed", channel_cut)
    tap.case("destination agent killed mid-migration: VM and disk stay",
             kill_dest)
    tap.case("migrate again after the failures", migrate_ok)
    tap.case("heartbeat and console over the whole run", final_check)


if __name__ == "__main__":
    sys.exit(main())
