#!/usr/bin/python3
"""The test guest's checkable data disk (drover.disk=check), booted with
plain QEMU (TCG) on real qcow2 images made by qemu-img.

Checks: a fresh disk is found blank and then written generation after
generation without disturbing the heartbeat; a guest stopped in the pause
after "disk gen G written" finds ok=N bad=0 gen_min=gen_max=G at the next
boot; one stopped mid-pass finds two adjacent generations and still bad=0;
a data block changed with qemu-io while the guest is down is found bad, a
zeroed one blank, and the header does not count; drover.disk_blocks caps
the block count and a small disk gives size/64 KiB - 1 blocks; without
drover.disk=check the guest leaves the disk alone and the older options
(drover.disk_write_mib) still work. Prints TAP.

QEMU is stopped with SIGTERM, which makes it finish the guest's in-flight
requests and flush the image before it exits, as a pause for a snapshot
would. Uses no cluster and no fixed ports.
"""
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import GUEST_CMDLINE, GUEST_DIR, Tap, log, run  # noqa: E402

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
BLOCK = 64 * 1024
FOUND = re.compile(r"^DROVER-GUEST disk found blocks=(\d+) ok=(\d+) bad=(\d+) "
                   r"blank=(\d+) gen_min=(\d+) gen_max=(\d+)$", re.M)
WRITTEN = re.compile(r"^DROVER-GUEST disk gen (\d+) written$", re.M)
HB = re.compile(r"^HB (\d+) (\d+)$", re.M)
BAD_CONSOLE = re.compile(r"I/O error|blk_update_request|Buffer I/O|BUG:|Oops|"
                         r"Kernel panic|DROVER-GUEST error")


class Guest:
    """One QEMU process running the test guest with DISK as virtio vda."""

    def __init__(self, tmp, disk, args, name):
        self.console = os.path.join(tmp, f"console-{name}.log")
        cmdline = f"{GUEST_CMDLINE} {args}"
        self.p = subprocess.Popen(
            ["qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-smp", "1",
             "-display", "none", "-monitor", "none", "-no-reboot",
             "-serial", f"file:{self.console}",
             "-kernel", KERNEL, "-initrd", INITRD, "-append", cmdline,
             "-drive", f"file={disk},if=virtio,format=qcow2,cache=none"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)

    def text(self):
        try:
            with open(self.console, "rb") as f:
                return f.read().decode(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def wait(self, what, pred, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.text()
            r = pred(out)
            if r:
                return r
            if self.p.poll() is not None:
                raise AssertionError(f"QEMU exited {self.p.returncode} waiting for "
                                     f"{what}: {self.p.stdout.read()}\n{out[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; console tail:\n"
                             f"{self.text()[-2000:]}")

    def found(self):
        m = self.wait("the disk check line", lambda out: FOUND.search(out))
        return tuple(int(x) for x in m.groups())

    def gens(self):
        return [int(g) for g in WRITTEN.findall(self.text())]

    def stop(self):
        """SIGTERM: QEMU drains the guest's I/O and flushes, then exits."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError("QEMU did not exit on SIGTERM")
        bad = [line for line in self.text().splitlines() if BAD_CONSOLE.search(line)]
        assert not bad, f"guest console shows errors: {bad}"


def new_disk(tmp, name, size):
    path = os.path.join(tmp, f"{name}.qcow2")
    run(["qemu-img", "create", "-q", "-f", "qcow2", path, str(size)])
    return path


def boot_found(tmp, disk, name, args=""):
    """Boots, returns the found line's numbers, and stops the guest in the
    long pause after its first pass, so the disk is left holding one whole
    generation: gen_max + 1."""
    g = Guest(tmp, disk, f"drover.disk=check drover.disk_pause_ms=600000 {args}", name)
    try:
        found = g.found()
        g.wait("the first pass", lambda out: WRITTEN.search(out), timeout=180)
    finally:
        g.stop()
    assert g.gens() == [found[5] + 1], f"generations written: {g.gens()}"
    return found


def main():
    for f in (KERNEL, INITRD):
        if not os.path.exists(f):
            print(f"Bail out! no test guest at {f} (run tests/guest/build)")
            return 1
    tmp = tempfile.mkdtemp(prefix="drover-guest-disk-")
    tap = Tap()
    state = {}

    def fresh_then_generations():
        disk = new_disk(tmp, "a", 64 * 1024 * 1024)
        g = Guest(tmp, disk, "drover.hb_ms=100 drover.disk=check "
                  "drover.disk_pause_ms=2000", "fresh")
        try:
            found = g.found()
            assert found == (256, 0, 0, 256, 0, 0), f"fresh disk: {found}"
            g.wait("generation 3", lambda out: "DROVER-GUEST disk gen 3 written" in out,
                   timeout=180)
            # Stop in the pause after the newest generation: it is complete.
            last = g.gens()[-1]
        finally:
            g.stop()
        assert g.gens()[-1] == last, f"a pass after gen {last} finished before the stop"
        assert g.gens() == list(range(1, last + 1)), f"generations {g.gens()}"
        hb = [(int(a), int(b)) for a, b in HB.findall(g.text())]
        assert len(hb) >= 20, f"only {len(hb)} heartbeats"
        gaps = [tb - ta for (_, ta), (_, tb) in zip(hb, hb[1:])]
        for (a, _), (b, _) in zip(hb, hb[1:]):
            assert b == a + 1, f"heartbeat counter {a} -> {b}"
        log(f"{len(hb)} heartbeats at 100 ms while writing {last} generations; "
            f"largest gap {max(gaps)} ms")
        # The writer runs at nice 19: heartbeats stay near their period (the
        # margin is for a loaded 2-core host running TCG).
        assert max(gaps) < 1000, f"heartbeat gap of {max(gaps)} ms while writing"
        state["disk"], state["gen"] = disk, last

    def reboot_after_pause():
        disk, gen = state["disk"], state["gen"]
        found = boot_found(tmp, disk, "reboot")
        log(f"after stopping in the pause after gen {gen}: {found}")
        assert found == (256, 256, 0, 0, gen, gen), found
        state["gen"] = gen + 1

    def stopped_mid_pass():
        disk = state["disk"]
        seen_mid = 0
        for attempt in range(3):
            g = Guest(tmp, disk, "drover.disk=check drover.disk_pause_ms=0",
                      f"mid{attempt}")
            try:
                g.found()
                g.wait("two generations", lambda out: len(WRITTEN.findall(out)) >= 2,
                       timeout=180)
                time.sleep(random.uniform(0.0, 1.0))
            finally:
                g.stop()
            last = g.gens()[-1]
            found = boot_found(tmp, disk, f"mid{attempt}b")
            n, ok, bad, blank, gmin, gmax = found
            log(f"stopped after gen {last} was written: {found}")
            assert (n, ok, bad, blank) == (256, 256, 0, 0), found
            # A pass that finished just before the stop may not have said so.
            assert last <= gmin <= gmax <= last + 1, found
            assert gmax - gmin <= 1, found
            if gmax == gmin + 1:
                seen_mid += 1
            state["gen"] = gmax + 1
        assert seen_mid > 0, "no stop landed mid-pass in 3 tries"

    def corrupted_blocks():
        disk = state["disk"]
        gen = state["gen"]  # the whole generation the last boot left
        # 4 KiB of 0xab inside data block 16, data block 40 zeroed, and the
        # header (block 0) overwritten: one bad, one blank, header ignored.
        run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0xab {16 * BLOCK + 8192} 4k",
             "-c", f"write -z {40 * BLOCK} {BLOCK}", "-c", "write -P 0x11 0 512", disk])
        found = boot_found(tmp, disk, "corrupt")
        log(f"after qemu-io changed blocks 0, 16 and 40: {found}")
        assert found == (256, 254, 1, 1, gen, gen), found
        # That boot rewrote everything; then 8 bytes in one payload change.
        found = boot_found(tmp, disk, "healed")
        assert found == (256, 256, 0, 0, gen + 1, gen + 1), f"rewritten disk: {found}"
        run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a {200 * BLOCK + 4096} 8",
             disk])
        found = boot_found(tmp, disk, "8bytes")
        log(f"after 8 bytes of block 200 changed: {found}")
        assert found == (256, 255, 1, 0, gen + 2, gen + 2), found

    def block_counts():
        small = new_disk(tmp, "small", 1024 * 1024)
        found = boot_found(tmp, small, "small")
        assert found == (15, 0, 0, 15, 0, 0), f"1 MiB disk: {found}"
        disk = state["disk"]
        found = boot_found(tmp, disk, "cap", "drover.disk_blocks=8")
        assert found[:4] == (8, 8, 0, 0), f"drover.disk_blocks=8: {found}"

    def without_check():
        disk = new_disk(tmp, "plain", 16 * 1024 * 1024)
        g = Guest(tmp, disk, "drover.hb_ms=100 drover.disk_write_mib=2", "plain")
        try:
            g.wait("heartbeats", lambda out: len(HB.findall(out)) >= 10)
        finally:
            g.stop()
        out = g.text()
        assert "DROVER-GUEST up ws=0 rate=0 data=zero hb=100" in out, out[-2000:]
        assert "DROVER-GUEST disk wrote 2 MiB" in out, out[-2000:]
        assert "DROVER-GUEST disk found" not in out, "disk checked without drover.disk=check"

    tap.case("fresh disk found blank, generations written, heartbeat undisturbed",
             fresh_then_generations)
    if "disk" in state:
        tap.case("stopped in the pause: next boot finds ok=N bad=0 at that generation",
                 reboot_after_pause)
        tap.case("stopped mid-pass: two adjacent generations, bad=0", stopped_mid_pass)
        tap.case("blocks changed with qemu-io are found bad or blank", corrupted_blocks)
        tap.case("drover.disk_blocks caps N; a small disk gives size/64K - 1",
                 block_counts)
    tap.case("without drover.disk=check the disk is left alone; disk_write_mib works",
             without_check)
    rc = tap.done()
    if rc == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        log(f"consoles kept in {tmp}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
