#!/usr/bin/python3
"""Snapshots on a real local cluster (TCG guests, real qcow2 chains),
driven through the agents' own calls with the scheduler's certificate:
CreateSnapshot, ListSnapshots, RevertSnapshot, DeleteSnapshot.

Data checks with qemu-io on the disk of the stopped VM: S1 holds pattern
0x11, S2 0x22, the VM then writes 0x33; a revert to S1 reads 0x11, to S2
0x22, and both snapshots survive the reverts. Live: a disk-only snapshot
of the running guest lengthens the chain, deleting S1 while it runs
merges it (the chain one image shorter, the data intact), a memory
snapshot reverted resumes the guest (its heartbeat counter continues from
the snapshot's value, no second boot). Bad input changes nothing. The
agent killed (fault points) during a create and during a merge: after its
restart the tree matches the disks. Deleting every snapshot leaves one
image, the VM's own. (A VM with snapshots migrating: test-migrate-snapshots.)
Prints TAP.
"""
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (AGENT, CLUSTER, GUEST_CMDLINE, GUEST_DIR,  # noqa: E402
                            Agents, log, run, run_on_cluster,
                            two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
# drover.noagent: this guest does not answer as the QEMU guest agent, so
# that a quiesced snapshot is refused with its clear error (the guest-agent
# test takes quiesced snapshots with an agent that answers).
CMDLINE = GUEST_CMDLINE + " drover.hb_ms=100 drover.noagent"
VM = "snapvm1"
MiB = 1024 * 1024
NS = "{https://drover.dev/xmlns/snapshots/1}"


def main():
    c = two_host_cluster("/tmp/drover-cluster-snapshots")
    return run_on_cluster(c, run_cases, with_pb=True, tmp_prefix="drover-snap-")


def run_cases(c, tap, tmp, pb):
    st = {}

    def agents():
        return Agents(c, pb)

    def stream(method, req, timeout=300):
        """A StorageProgress stream to its end: (messages, RpcError|None)."""
        a = agents()
        msgs = []
        with a.grpc.secure_channel(a.addrs[st["at"]], a.creds) as ch:
            f = ch.unary_stream(AGENT + method,
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.StorageProgress.FromString)
            try:
                for m in f(req, timeout=timeout):
                    msgs.append(m)
            except a.grpc.RpcError as e:
                return msgs, e
        return msgs, None

    def snap(method, name, vm=None, ok=True, **kw):
        vm = vm or st["vm"]
        req = pb.AgentSnapshotRequest(job_id="job-" + name.replace("/", "-")[:20],
                                      vm=vm, name=name, **kw)
        msgs, err = stream(method, req)
        if ok:
            assert err is None, f"{method} {name}: {err.code()} {err.details()}"
            assert msgs and msgs[-1].phase == "completed", msgs
            return msgs[-1]
        assert err is not None, f"{method} {name} succeeded"
        return err

    def listing():
        a = agents()
        r = a.unary(st["at"], "ListSnapshots", pb.ListSnapshotsRequest(vm=st["vm"]),
                    pb.ListSnapshotsReply)
        return r

    def names():
        return [s.name for s in listing().snapshots]

    def vm_call(method):
        a = agents()
        return a.unary(st["at"], method, pb.VmRequest(name=st["vm"]), pb.AgentVmReply,
                       timeout=60)

    def disk(live=True):
        out = c.virsh(st["at"], "domblklist", st["vm"]).stdout
        m = re.search(r"vda\s+(\S+)", out)
        assert m, out
        return m.group(1)

    def chain(path):
        out = run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                   path]).stdout
        return [i["filename"] for i in json.loads(out)]

    def qio(path, cmd, readonly=False):
        argv = ["qemu-io", "-f", "qcow2"] + (["-r", "-U"] if readonly else []) \
            + ["-c", cmd, path]
        p = run(argv, check=False)
        return p.returncode == 0 and "failed" not in p.stdout + p.stderr

    def console():
        p = os.path.join(c.host_data(st["at"]), "console", st["vm"] + ".log")
        with open(p, errors="replace") as f:
            return f.read()

    def heartbeats():
        return [int(m) for m in re.findall(r"^HB (\d+) \d+\r?$", console(), re.M)]

    def boots():
        return console().count("DROVER-GUEST boot")

    def tree_xml():
        out = c.virsh(st["at"], "dumpxml", "--inactive", st["vm"]).stdout
        root = ET.fromstring(out)
        t = root.find(f"metadata/{NS}snapshots")
        return t

    def snap_dir():
        return os.path.join(c.host_data(st["at"]), "snapshots", st["vm"])

    def image_of(n):
        n = int(n)
        if n == 0:
            return os.path.join(c.host_data(st["at"]), "disks", st["vm"] + ".qcow2")
        return os.path.join(snap_dir(), f"{n}.qcow2")

    def tree_matches_disks():
        """No pending record; every snapshot's image exists and is in the
        active image's chain or under another branch; the domain runs on
        the recorded active image; no file nobody refers to."""
        t = tree_xml()
        if t is None:
            assert not os.listdir(snap_dir()) if os.path.isdir(snap_dir()) else True
            return
        assert t.find(f"{NS}pending") is None, ET.tostring(t)
        active = image_of(t.get("active"))
        assert disk() == active, (disk(), active)
        wanted = {os.path.basename(active)}
        for s in t.findall(f"{NS}snapshot"):
            img = image_of(s.get("image"))
            assert os.path.exists(img), img
            wanted.add(os.path.basename(img))
            if s.get("memory") == "1":
                wanted.add(s.get("name") + ".mem")
        files = set(os.listdir(snap_dir())) if os.path.isdir(snap_dir()) else set()
        extra = files - wanted
        assert not extra, f"files nobody refers to: {extra}"
        for img in chain(active):
            assert os.path.exists(img)

    def running():
        return c.where(st["vm"]).get(st["at"], (None, None))[1] == "running"

    def boot():
        st["vm"] = VM
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M",
              "--disk", "64M", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", CMDLINE)
        w = wait_for("VM defined", lambda: c.where(VM) or None, timeout=30)
        st["at"] = list(w)[0]
        wait_for("heartbeats", lambda: len(heartbeats()) >= 10, timeout=120)
        assert names() == [] and listing().current == ""

    def stopped_chain():
        vm_call("DestroyVm")
        base = disk()
        assert base == image_of(0), base
        assert qio(base, "write -P 0x11 0 1M")
        r = snap("CreateSnapshot", "s1", description="before the upgrade")
        assert [s.name for s in r.snapshots] == ["s1"], r.snapshots
        assert r.snapshots[0].current and r.snapshots[0].vm_state == "shutoff"
        assert r.snapshots[0].description == "before the upgrade"
        assert disk() == image_of(1), disk()
        assert chain(disk()) == [image_of(1), image_of(0)]
        assert qio(disk(), "write -P 0x22 0 1M")
        snap("CreateSnapshot", "s2")
        assert qio(disk(), "write -P 0x33 0 1M")
        l = listing()
        assert [(s.name, s.parent) for s in l.snapshots] == [("s1", ""), ("s2", "s1")]
        assert l.current == "s2"
        assert list(l.snapshots[0].children) == ["s2"]
        tree_matches_disks()

    def revert_data():
        snap("RevertSnapshot", "s1")
        assert qio(disk(), "read -P 0x11 0 1M"), "s1's data is not back"
        assert names() == ["s1", "s2"] and listing().current == "s1"
        snap("RevertSnapshot", "s2")
        assert qio(disk(), "read -P 0x22 0 1M"), "s2's data is not back"
        assert listing().current == "s2"
        # Again: the snapshot's image was never written.
        snap("RevertSnapshot", "s1")
        assert qio(disk(), "read -P 0x11 0 1M")
        snap("RevertSnapshot", "s2")
        assert qio(disk(), "read -P 0x22 0 1M")
        tree_matches_disks()
        vm_call("StartVm")
        n = len(heartbeats())
        wait_for("heartbeats after start", lambda: len(heartbeats()) > n + 10,
                 timeout=120)

    def live_disk_only():
        before = chain(disk())
        r = snap("CreateSnapshot", "s3")
        after = chain(disk())
        assert len(after) == len(before) + 1, (before, after)
        assert [s.name for s in r.snapshots] == ["s1", "s2", "s3"]
        assert r.snapshots[2].vm_state == "running" and r.snapshots[2].parent == "s2"
        assert running()
        n = len(heartbeats())
        wait_for("heartbeats go on", lambda: len(heartbeats()) > n + 10, timeout=60)
        tree_matches_disks()

    def delete_live():
        before = chain(disk())
        msgs = snap("DeleteSnapshot", "s1")
        after = chain(disk())
        assert len(after) == len(before) - 1, (before, after)
        assert names() == ["s2", "s3"]
        l = listing()
        assert l.snapshots[0].parent == "" and l.snapshots[1].parent == "s2"
        assert running()
        n = len(heartbeats())
        wait_for("heartbeats go on", lambda: len(heartbeats()) > n + 10, timeout=60)
        # s2's data is where s2 says: read through the image it froze now.
        t = tree_xml()
        s2 = [s for s in t.findall(f"{NS}snapshot") if s.get("name") == "s2"][0]
        assert qio(image_of(s2.get("image")), "read -P 0x22 0 1M", readonly=True)
        assert qio(disk(), "read -P 0x22 0 1M", readonly=True)
        tree_matches_disks()
        log(f"delete s1 live: chain {len(before)} -> {len(after)}, "
            f"{len(msgs.snapshots)} snapshots left")

    def memory_snapshot():
        hb0 = heartbeats()[-1]
        r = snap("CreateSnapshot", "m1", memory=True)
        hb1 = heartbeats()[-1]
        m1 = [s for s in r.snapshots if s.name == "m1"][0]
        assert m1.memory and m1.size_bytes > 10 * MiB, m1
        assert running()
        wait_for("guest goes on", lambda: heartbeats()[-1] > hb1 + 30, timeout=60)
        boots0 = boots()
        last = heartbeats()[-1]
        snap("RevertSnapshot", "m1")
        assert running()
        wait_for("heartbeats after the restore",
                 lambda: len(heartbeats()) > 0 and
                 any(x <= hb1 + 5 for x in heartbeats()[-20:]), timeout=60)
        hb = heartbeats()
        # The first heartbeat after the restore continues the snapshot's.
        idx = max(i for i in range(1, len(hb)) if hb[i] < hb[i - 1])
        resumed = hb[idx]
        log(f"memory snapshot taken at HB {hb0}..{hb1}, guest went on to "
            f"{last}, after the revert HB {resumed}")
        assert hb0 < resumed <= hb1 + 2, (hb0, hb1, resumed)
        assert boots() == boots0, "the guest booted again"
        st["boots"] = boots0
        tree_matches_disks()

    def revert_paused():
        """A memory snapshot reverted with paused: the guest waits where
        the snapshot left it until it is resumed."""
        snap("RevertSnapshot", "m1", paused=True)
        state = lambda: c.where(st["vm"]).get(st["at"], (None, None))[1]  # noqa: E731
        assert state() == "paused", state()
        hb = heartbeats()
        time.sleep(2)
        assert heartbeats() == hb, "a paused guest wrote heartbeats"
        c.virsh(st["at"], "resume", st["vm"])
        wait_for("heartbeats after resume", lambda: len(heartbeats()) > len(hb) + 5,
                 timeout=60)
        assert boots() == st.get("boots", boots())
        tree_matches_disks()

    def bad_input():
        before = listing()
        chain0 = chain(disk())
        e = snap("CreateSnapshot", "s2", ok=False)
        assert e.code().name == "ALREADY_EXISTS", e
        for bad in ("a/b", "..", "../x", "S1", ""):
            e = snap("CreateSnapshot", bad, ok=False)
            assert e.code().name == "INVALID_ARGUMENT", (bad, e)
            e = snap("RevertSnapshot", bad, ok=False)
            assert e.code().name == "INVALID_ARGUMENT", (bad, e)
        e = snap("CreateSnapshot", "x1", vm="novm", ok=False)
        assert e.code().name == "NOT_FOUND", e
        e = snap("CreateSnapshot", "x1", vm="../etc", ok=False)
        assert e.code().name == "INVALID_ARGUMENT", e
        for m in ("RevertSnapshot", "DeleteSnapshot"):
            e = snap(m, "nosuch", ok=False)
            assert e.code().name == "NOT_FOUND", (m, e)
        e = snap("CreateSnapshot", "q1", quiesce=True, ok=False)
        assert e.code().name == "FAILED_PRECONDITION", e
        assert "no QEMU guest agent answered" in e.details(), e.details()
        e = snap("CreateSnapshot", "d1", description="x" * 2000, ok=False)
        assert e.code().name == "INVALID_ARGUMENT", e
        assert listing() == before
        assert chain(disk()) == chain0
        tree_matches_disks()

    def agent_up():
        try:
            listing()
            return True
        except Exception:  # noqa: BLE001
            return False

    def restart_agent(faults=None):
        i = st["at"]
        c.harness("kill-agent", str(i), "TERM", check=False)
        env = dict(c.env)
        if faults:
            env["DROVER_FAULTS"] = faults
        run([CLUSTER, "start-agent", str(i)], env=env, timeout=60)
        wait_for("agent up", agent_up, timeout=30)

    def crash(fault, method, name):
        restart_agent(fault)
        e = snap(method, name, ok=False)
        log(f"{fault}: {e.code().name}")
        wait_for("agent dead", lambda: not agent_up(), timeout=30)
        c.harness("start-agent", str(st["at"]))
        wait_for("agent up", agent_up, timeout=30)
        wait_for("record finished", lambda: tree_xml().find(f"{NS}pending") is None,
                 timeout=120)

    def crash_create():
        crash("snapshot-create-crash-before", "CreateSnapshot", "c1")
        assert "c1" not in names()
        tree_matches_disks()
        n = len(chain(disk()))
        crash("snapshot-create-crash-after", "CreateSnapshot", "c2")
        assert "c2" in names() and listing().current == "c2"
        assert len(chain(disk())) == n + 1
        assert running()
        tree_matches_disks()

    def failed_create():
        before = listing()
        src = disk()
        files = sorted(os.listdir(snap_dir()))
        restart_agent("snapshot-create-fail")
        try:
            e = snap("CreateSnapshot", "f1", ok=False)
            assert e.code().name == "INTERNAL" and "fault" in e.details(), e
            e = snap("CreateSnapshot", "f2", memory=True, ok=False)
            assert e.code().name == "INTERNAL", e
        finally:
            restart_agent()
        assert listing() == before
        assert disk() == src and running()
        assert sorted(os.listdir(snap_dir())) == files, "a failed create left files"
        tree_matches_disks()

    def orphan_files():
        """Snapshot files of a VM libvirt no longer knows go at the
        agent's next start; those of a VM it knows stay."""
        orphan = os.path.join(c.host_data(st["at"]), "snapshots", "ghostvm")
        os.makedirs(orphan, exist_ok=True)
        with open(os.path.join(orphan, "1.qcow2"), "w") as f:
            f.write("left behind\n")
        files = sorted(os.listdir(snap_dir()))
        restart_agent()
        wait_for("orphan removed", lambda: not os.path.exists(orphan), timeout=30)
        assert sorted(os.listdir(snap_dir())) == files
        tree_matches_disks()

    def crash_delete():
        n = len(chain(disk()))
        crash("snapshot-delete-crash-merging", "DeleteSnapshot", "c2")
        assert "c2" not in names(), names()
        assert len(chain(disk())) == n - 1
        assert running()
        tree_matches_disks()
        hb = len(heartbeats())
        wait_for("heartbeats go on", lambda: len(heartbeats()) > hb + 10, timeout=60)
        # Killed after the merge (pivoted), before the record: finished.
        snap("CreateSnapshot", "c3")
        n = len(chain(disk()))
        crash("snapshot-delete-crash-after-merge", "DeleteSnapshot", "c3")
        assert "c3" not in names(), names()
        assert len(chain(disk())) == n - 1
        assert running()
        tree_matches_disks()
        # Killed before the merge began: it is done at the restart.
        snap("CreateSnapshot", "c4")
        n = len(chain(disk()))
        crash("snapshot-delete-crash-before", "DeleteSnapshot", "c4")
        assert "c4" not in names(), names()
        assert len(chain(disk())) == n - 1
        assert running()
        tree_matches_disks()

    def delete_all():
        # Children first: a branch's leaf image just goes, and the base
        # never has two branches on it when its own snapshot goes.
        for name in reversed(names()):
            snap("DeleteSnapshot", name)
        assert names() == []
        assert disk() == image_of(0), disk()
        assert chain(disk()) == [image_of(0)]
        assert running()
        tree_matches_disks()
        hb = len(heartbeats())
        wait_for("heartbeats go on", lambda: len(heartbeats()) > hb + 10, timeout=60)
        bad = [line for line in console().splitlines()
               if re.search(r"I/O error|Buffer I/O|BUG:|Oops|Kernel panic", line)]
        assert not bad, bad


    def revert_crash():
        cur = listing().current
        crash("snapshot-revert-crash-before", "RevertSnapshot", "s3")
        assert listing().current == cur
        wait_for("VM running again", running, timeout=60)
        tree_matches_disks()
        # Killed with the VM destroyed and the new overlay made: the VM
        # boots again on the image it had.
        crash("snapshot-revert-crash-after-stop", "RevertSnapshot", "s3")
        assert listing().current == cur
        wait_for("VM running again", running, timeout=60)
        tree_matches_disks()
        crash("snapshot-revert-crash-after-define", "RevertSnapshot", "s3")
        assert listing().current == "s3"
        wait_for("VM running on s3", running, timeout=60)
        tree_matches_disks()
        hb = len(heartbeats())
        wait_for("heartbeats go on", lambda: len(heartbeats()) > hb + 10, timeout=120)

    # --- the disk-checking guest (drover.disk=check) -----------------------

    GEN = re.compile(r"^DROVER-GUEST disk gen (\d+) written", re.M)
    FOUND = re.compile(r"^DROVER-GUEST disk found blocks=(\d+) ok=(\d+) bad=(\d+) "
                       r"blank=(\d+) gen_min=(\d+) gen_max=(\d+)", re.M)

    def gens():
        return [int(g) for g in GEN.findall(console())]

    def found():
        return [tuple(int(x) for x in m) for m in FOUND.findall(console())]

    def snap_in_pause(name):
        """Snapshot NAME right after a generation is written, in the
        guest's pause: returns the generation it holds."""
        n = len(gens())
        wait_for("a generation written", lambda: len(gens()) > n or None,
                 timeout=120, interval=0.05)
        g = gens()[-1]
        snap("CreateSnapshot", name)
        assert gens()[-1] == g, f"generation {gens()[-1]} began during {name}"
        return g

    def expect_found(before, gen):
        wait_for("the guest's disk report", lambda: len(found()) > before or None,
                 timeout=120)
        f = found()[-1]
        blocks, ok, bad, blank, gmin, gmax = f
        assert (ok, bad, blank, gmin, gmax) == (blocks, 0, 0, gen, gen), \
            f"guest found {f}, expected every block at generation {gen}"

    def disk_boot():
        st["vm"] = "snapdisk1"
        c.ctl("vm", "create", "snapdisk1", "--vcpus", "1", "--memory", "256M",
              "--disk", "16M", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", CMDLINE + " drover.disk=check drover.disk_blocks=64"
              " drover.disk_pause_ms=3000")
        w = wait_for("VM defined", lambda: c.where("snapdisk1") or None, timeout=30)
        st["at"] = list(w)[0]
        wait_for("disk found", lambda: found() or None, timeout=120)
        assert found()[-1][3] == found()[-1][0], found()  # a fresh disk: blank
        st["g0"] = snap_in_pause("d0")
        st["g1"] = snap_in_pause("d1")
        st["g2"] = snap_in_pause("d2")
        log(f"d0, d1, d2 hold generations {st['g0']}, {st['g1']}, {st['g2']}")
        assert st["g0"] < st["g1"] < st["g2"]

    def disk_reverts():
        n = len(found())
        snap("RevertSnapshot", "d1")
        expect_found(n, st["g1"])
        wait_for("the guest writes on", lambda: gens()[-1] > st["g1"] + 1, timeout=120)
        n = len(found())
        snap("RevertSnapshot", "d2")
        expect_found(n, st["g2"])
        n = len(found())
        snap("RevertSnapshot", "d1")
        expect_found(n, st["g1"])
        wait_for("the guest writes on", lambda: gens()[-1] > st["g1"] + 1, timeout=120)
        tree_matches_disks()

    def disk_delete_branches():
        # d1's image holds d2's (another branch) and the running overlay.
        before = chain(disk())
        snap("DeleteSnapshot", "d1")
        after = chain(disk())
        assert len(after) == len(before) - 1, (before, after)
        assert names() == ["d0", "d2"], names()
        tree_matches_disks()
        g = gens()[-1]
        wait_for("the guest writes on", lambda: gens()[-1] > g + 1, timeout=120)
        n = len(found())
        snap("RevertSnapshot", "d2")
        expect_found(n, st["g2"])
        n = len(found())
        snap("RevertSnapshot", "d0")
        expect_found(n, st["g0"])
        # Two branches on the base: refused, nothing changed.
        e = snap("DeleteSnapshot", "d0", ok=False)
        assert e.code().name == "FAILED_PRECONDITION" and "branches" in e.details(), e
        assert names() == ["d0", "d2"]
        tree_matches_disks()

    def disk_delete_all():
        # Stopped in a pause (no block half-written): the offline merge
        # (qemu-img commit, the domain redefined on the base).
        k = len(gens())
        wait_for("a generation written", lambda: len(gens()) > k or None,
                 timeout=120, interval=0.05)
        vm_call("DestroyVm")
        g = gens()[-1]
        snap("DeleteSnapshot", "d2")
        snap("DeleteSnapshot", "d0")
        assert names() == [] and disk() == image_of(0)
        assert chain(disk()) == [image_of(0)]
        tree_matches_disks()
        assert not os.listdir(snap_dir()), os.listdir(snap_dir())
        n = len(found())
        vm_call("StartVm")
        wait_for("the guest's disk report", lambda: len(found()) > n or None,
                 timeout=120)
        blocks, ok, bad, blank, gmin, gmax = found()[-1]
        assert (ok, bad, blank) == (blocks, 0, 0), found()[-1]
        assert gmin == gmax == g, (g, found()[-1])

    if not tap.case("boot a TCG guest with a 64 MiB disk", boot):
        return
    tap.case("stopped VM: s1 (0x11), s2 (0x22), then 0x33 written", stopped_chain)
    tap.case("revert to s1, s2, again: each one's data, both kept", revert_data)
    tap.case("live disk-only snapshot s3: chain one longer, guest runs",
             live_disk_only)
    tap.case("delete s1 while running: merged, chain one shorter, data intact",
             delete_live)
    tap.case("memory snapshot reverted: the counter continues, no boot",
             memory_snapshot)
    tap.case("memory snapshot reverted paused: waits until resumed",
             revert_paused)
    tap.case("bad input: clear errors, nothing changed", bad_input)
    tap.case("agent killed during create: rolled back / finished", crash_create)
    tap.case("a create that fails leaves nothing, changes nothing",
             failed_create)
    tap.case("snapshot files of a VM no longer here go at start",
             orphan_files)
    tap.case("agent killed during a live merge: finished at restart",
             crash_delete)
    tap.case("agent killed during a revert: rolled back / finished",
             revert_crash)
    tap.case("delete every snapshot: one image, the VM's own", delete_all)
    if not tap.case("disk-checking guest: d0, d1, d2 taken between "
                    "generations", disk_boot):
        return
    tap.case("revert to d1, d2, d1: the guest finds exactly their data",
             disk_reverts)
    tap.case("delete d1 (two images on it) while running; d2 and d0 intact; "
             "two branches on the base refused", disk_delete_branches)
    tap.case("delete the rest while stopped: one image, the guest's data "
             "intact",
             disk_delete_all)


if __name__ == "__main__":
    sys.exit(main())
