#!/usr/bin/python3
"""A full clone to the other host (issue 12), end to end: droverctl ->
scheduler -> both agents -> the agents' mutual-TLS channel -> libvirt/QEMU
on a real two-host local cluster, with the disk-checking test guest
(drover.disk=check).

- a stopped VM's image (the guest's checkable blocks plus 96 MiB of
  random data) is cloned on its own host and to host2, both timed (MB/s
  logged for the comparison); the clone on host2 has an image equal to
  the source's (`qemu-img compare`), no backing file, a new UUID and new
  MAC addresses, and it boots there finding the source's data;
- the job shows its progress (`droverctl job watch`: the sending phase)
  and fails when host2's agent is killed mid-copy: the reservation goes,
  nothing of the clone is left on host2 after its agent restarts (no
  file, no domain), the source is untouched (same bytes); with host1's
  (the sender's) agent killed instead, host2 drops the clone at once (the
  scheduler's abort) and host1 its marks at its restart;
- a clone from a snapshot of the running source (a chain the source
  flattens first) goes to host2 and equals the snapshot's disk.
Prints TAP.
"""
import hashlib
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (GUEST_CMDLINE, GUEST_DIR, log, run,  # noqa: E402
                            run_on_cluster, two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = (GUEST_CMDLINE + " no_timer_check drover.hb_ms=200 drover.disk=check"
           " drover.disk_blocks=64 drover.disk_pause_ms=1500")
SRC = "xc-src"
MiB = 1024 * 1024
RANDOM_AT, RANDOM_LEN = 16 * MiB, 96 * MiB
WRITTEN = re.compile(r"^DROVER-GUEST disk gen (\d+) written\r?$", re.M)
FOUND = re.compile(r"^DROVER-GUEST disk found blocks=(\d+) ok=(\d+) bad=(\d+) "
                   r"blank=(\d+) gen_min=(\d+) gen_max=(\d+)\r?$", re.M)
HB = re.compile(r"^HB (\d+) \d+\r?$", re.M)
MAC = re.compile(r"<mac address=['\"]([0-9a-f:]+)['\"]")


def main():
    c = two_host_cluster("/tmp/drover-cluster-xclone")
    return run_on_cluster(c, run_cases, tmp_prefix="drover-xclone-")


def run_cases(c, tap, tmp):
    st = {}

    def console(vm):
        return c.ctl("vm", "console", vm).stdout

    def written(vm):
        return [int(g) for g in WRITTEN.findall(console(vm))]

    def founds(vm):
        return [tuple(int(x) for x in m) for m in FOUND.findall(console(vm))]

    def image(i, vm):
        return os.path.join(c.host_data(i), "disks", f"{vm}.qcow2")

    def files_on(i, vm):
        d = os.path.join(c.host_data(i), "disks")
        return sorted(f for f in os.listdir(d) if f.startswith(vm + "."))

    def chain(path):
        out = run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                   path]).stdout
        return [i["filename"] for i in json.loads(out)]

    def compare(a, b):
        r = run(["qemu-img", "compare", "-U", a, b], check=False)
        log(f"qemu-img compare {os.path.basename(a)} {os.path.basename(b)}: "
            f"{r.stdout.strip()}")
        assert r.returncode == 0, r.stdout + r.stderr

    def sha(path):
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def stop(vm):
        c.ctl("vm", "stop", vm, "--force")
        wait_for(f"{vm} stopped", lambda: c.vms_by_name()[vm]["state"] == "shutoff", 60)

    def restart_agent(i, faults=None):
        c.restart_agent(i, faults)

    def timed_clone(*args):
        """Runs vm clone ARGS; returns (seconds, its output)."""
        t0 = time.monotonic()
        out = c.ctl("vm", "clone", *args, timeout=900).stdout
        return time.monotonic() - t0, out

    def source():
        c.ctl("vm", "create", SRC, "--vcpus", "1", "--memory", "128M", "--disk", "128M",
              "--host", "host1", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", CMDLINE)
        wait_for("two generations on the disk", lambda: len(written(SRC)) >= 2, 240)
        stop(SRC)
        # Data that does not compress, after the guest's blocks: what a
        # full clone's throughput is measured on.
        rand = os.path.join(tmp, "random.bin")
        with open(rand, "wb") as f:
            f.write(os.urandom(RANDOM_LEN))
        run(["qemu-io", "-f", "qcow2", "-c",
             f"write -s {rand} {RANDOM_AT} {RANDOM_LEN}", image(1, SRC)])
        st["gen"] = max(written(SRC))
        log(f"{SRC}: generation {st['gen']} and {RANDOM_LEN // MiB} MiB of random "
            f"data; image {os.path.getsize(image(1, SRC)) / MiB:.1f} MiB")

    def clone_to_host2():
        size = os.path.getsize(image(1, SRC))
        t_loc, _ = timed_clone(SRC, "xc-loc", "--full")
        t_far, out = timed_clone(SRC, "xc-far", "--full", "--host", "host2")
        log("vm clone --host host2:\n" + out.rstrip())
        loc, far = size / t_loc / 1e6, size / t_far / 1e6
        log(f"full clone of a {size / MiB:.1f} MiB image: one host {t_loc:.2f}s "
            f"({loc:.1f} MB/s), to host2 {t_far:.2f}s ({far:.1f} MB/s), "
            f"ratio {far / loc:.2f}")
        vms = c.vms_by_name()
        assert vms["xc-far"]["host"] == "host2", vms["xc-far"]
        assert vms["xc-far"]["state"] == "shutoff", vms["xc-far"]
        assert "xc-far" in c.domains(2) and "xc-far" not in c.domains(1)
        dst = image(2, "xc-far")
        assert chain(dst) == [dst], chain(dst)
        compare(image(1, SRC), dst)
        # Nothing of the clone stays on the source's host.
        assert files_on(1, "xc-far") == [], files_on(1, "xc-far")
        assert files_on(2, "xc-far") == ["xc-far.qcow2"], files_on(2, "xc-far")
        c.ctl("vm", "delete", "xc-loc")

    def clone_boots():
        c.ctl("vm", "start", "xc-far")
        f = wait_for("xc-far checking its disk", lambda: founds("xc-far"), 240)[0]
        blocks, ok, bad, blank, gmin, gmax = f
        log(f"xc-far found blocks={blocks} ok={ok} bad={bad} gen {gmin}..{gmax}")
        assert bad == 0 and blank == 0 and ok == blocks, f
        assert gmax <= st["gen"] + 1, (f, st["gen"])
        wait_for("xc-far's heartbeat", lambda: HB.findall(console("xc-far")), 120)
        vms = c.vms_by_name()
        assert vms["xc-far"]["status"]["uuid"] != vms[SRC]["status"]["uuid"], vms
        # Drover's domains have no <interface> yet: the MACs are new if
        # there are any (test-agent-clone checks the rewrite itself).
        src_macs = MAC.findall(c.virsh(1, "dumpxml", SRC).stdout)
        far_macs = MAC.findall(c.virsh(2, "dumpxml", "xc-far").stdout)
        log(f"MACs: {SRC} {src_macs}, xc-far {far_macs}")
        assert not set(src_macs) & set(far_macs), (src_macs, far_macs)
        jobs = [j for j in c.ctl_json("jobs")["jobs"]
                if j["kind"] == "clone" and j["state"] == "done"]
        assert any("host2" in j.get("message", "") for j in jobs), jobs

    def killed_midway(victim, name):
        """The agent of host VICTIM is killed while clone NAME's image
        travels to host2."""
        def case():
            before = sha(image(1, SRC))
            restart_agent(1, "clone-hold-sending")
            job = c.ctl_json("vm", "clone", SRC, name, "--full", "--host", "host2",
                             "--detach")
            watch = {}

            def follow():
                watch["p"] = c.ctl("job", "watch", job["id"], check=False, timeout=300)
            t = threading.Thread(target=follow, daemon=True)
            t.start()
            wait_for("the clone sending", lambda: any(
                j["id"] == job["id"] and "sending" in j.get("message", "")
                for j in c.ctl_json("jobs")["jobs"]), 120, 0.2)
            log(f"sending; on host2: {files_on(2, name)}")
            assert f"{name}.qcow2.clone" in files_on(2, name), files_on(2, name)
            c.harness("kill-agent", str(victim), "KILL")
            t.join(120)
            p = watch["p"]
            log("job watch:\n" + (p.stdout + p.stderr).rstrip())
            assert p.returncode == 1 and "sending" in p.stdout, p.stdout + p.stderr
            over = [j for j in c.ctl_json("jobs")["jobs"] if j["id"] == job["id"]][0]
            log(f"job {over['state']}: {over.get('error')}")
            assert over["state"] == "failed" and over.get("error"), over
            assert name not in c.vms_by_name(), "the reservation stayed"
            if victim == 1:
                # host2 was told to abort: nothing left there at once.
                wait_for(f"nothing of {name} on host2 before any restart",
                         lambda: not files_on(2, name) and name not in c.domains(2), 60)
            restart_agent(victim)
            if victim != 1:
                restart_agent(1)
            wait_for(f"nothing of {name} on host2",
                     lambda: not files_on(2, name) and name not in c.domains(2), 60)
            wait_for(f"nothing of {name} on host1", lambda: not files_on(1, name), 60)
            assert sha(image(1, SRC)) == before, "the source's image changed"
            assert c.vms_by_name()[SRC]["state"] == "shutoff"
        return case

    def from_snapshot():
        c.ctl("vm", "start", SRC)
        g = max(written(SRC))
        wait_for("a new generation", lambda: max(written(SRC)) > g, 240)
        c.ctl("snapshot", "create", SRC, "s1", timeout=600)
        g = max(written(SRC))
        wait_for("another generation", lambda: max(written(SRC)) > g, 240)
        c.ctl("snapshot", "create", SRC, "s2", timeout=600)
        live = c.virsh(1, "domblklist", SRC).stdout
        top = re.search(r"vda\s+(\S+)", live).group(1)
        frozen = chain(top)[1]  # s2's image, an overlay on s1's
        assert len(chain(frozen)) == 2, chain(frozen)
        c.ctl("vm", "clone", SRC, "xc-s2", "--full", "--from-snapshot", "s2",
              "--host", "host2", timeout=900)
        dst = image(2, "xc-s2")
        assert chain(dst) == [dst], chain(dst)
        compare(frozen, dst)
        assert not files_on(1, "xc-s2"), files_on(1, "xc-s2")
        assert c.vms_by_name()[SRC]["state"] == "running"

    if not tap.case("a stopped VM with a checkable disk and 96 MiB of random data",
                    source):
        return
    if tap.case("full clone to host2: equal image, no backing, timed against one host",
                clone_to_host2):
        tap.case("the clone boots on host2 on the source's data, new UUID and MACs",
                 clone_boots)
    tap.case("host2's agent killed mid-copy: job failed, nothing left, source intact",
             killed_midway(2, "xc-kill"))
    tap.case("host1's agent killed mid-copy: job failed, host2 aborts, source intact",
             killed_midway(1, "xc-kill1"))
    tap.case("full clone from a snapshot of the running VM (a chain) to host2",
             from_snapshot)


if __name__ == "__main__":
    sys.exit(main())
