#!/usr/bin/python3
"""Clones and templates on a real agent (local cluster, one host, TCG
guests), driven through AgentService with the scheduler's certificate.

The source VM runs the disk-checking test guest (drover.disk=check) and
is destroyed after it wrote a few generations, so its image holds
checkable data. Then: it becomes a template (read-only image, VmStatus
.template); ten linked clones of it boot (HB lines) in batches, each
finding the template's data on its disk, with the UUIDs asked for and
only a few hundred KiB of disk each (printed); a full clone streams its
progress, its image matches the template's (`qemu-img compare`) with no
backing file, and it boots; a full and a linked clone made from a
snapshot of a running VM find the data as it was in that snapshot; StartVm
of the template, DeleteVm of a base
in use, a linked clone of a VM that is no template and bad names are
refused with clear errors and change nothing; a clone that fails after
its domain was defined is rolled back; an agent killed in the middle of
a full clone (copying, and after the define) leaves nothing of the clone
after it restarts. Prints TAP.
"""
import os
import re
import stat
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (AGENT, CLUSTER, GUEST_CMDLINE, GUEST_DIR,  # noqa: E402
                            Agents, Cluster, log, run, run_on_cluster, wait_for)

import grpc  # noqa: E402

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
# no_timer_check: with several TCG guests booting on a loaded 2-core host,
# the kernel's IO-APIC timer check can miss its ticks and panic ("IO-APIC +
# timer doesn't work"); seen once in 10 boots here.
CMDLINE = (GUEST_CMDLINE + " no_timer_check drover.hb_ms=200 drover.disk=check"
           " drover.disk_blocks=64 drover.disk_pause_ms=2000")
MEMORY = 128 * 1024 * 1024
DISK = 64 * 1024 * 1024
SRC = "tpl"
N_LINKED = 10
BATCH = 4
FOUND = re.compile(r"^DROVER-GUEST disk found (blocks=\d+ ok=\d+ bad=\d+ blank=\d+ "
                   r"gen_min=\d+ gen_max=\d+)\r?$", re.M)
HB = re.compile(r"^HB (\d+) \d+\r?$", re.M)


def main():
    c = Cluster(hosts=1, report_interval_ms=1000)
    c.env["DROVER_CLUSTER_DIR"] = os.environ.get("DROVER_CLUSTER_DIR",
                                                 "/tmp/drover-cluster-clones")
    return run_on_cluster(c, run_cases, with_pb=True, tmp_prefix="drover-clones-test-")


def run_cases(c, tap, tmp, pb):
    agents = Agents(c, pb)
    data = c.host_data(1)
    disks = os.path.join(data, "disks")
    consoles = os.path.join(data, "console")
    st = {}

    def spec(name, cmdline=CMDLINE):
        return pb.VmSpec(name=name, vcpus=1, memory=MEMORY, disk=DISK, kernel=KERNEL,
                         initrd=INITRD, cmdline=cmdline, accel="tcg")

    def unary(method, req, reply, timeout=60):
        return agents.unary(1, method, req, reply, timeout=timeout)

    def expect_error(fn, code, *words):
        try:
            fn()
        except grpc.RpcError as e:
            assert e.code() == code, f"status {e.code()} ({e.details()}), not {code}"
            for w in words:
                assert w in e.details(), f"{w!r} not in {e.details()!r}"
            return e.details()
        raise AssertionError(f"no error; expected {code}")

    def clone(name, mode="", start=False, source=SRC, the_uuid=None, msgs=None,
              job="job-clone", timeout=300, from_snapshot=""):
        """CloneVm to the end: (progress messages, RpcError or None)."""
        req = pb.AgentCloneRequest(job_id=job, source=source, spec=spec(name),
                                   uuid=the_uuid or "", mode=mode, start=start,
                                   from_snapshot=from_snapshot)
        msgs = [] if msgs is None else msgs
        with grpc.secure_channel(agents.addrs[1], agents.creds) as ch:
            f = ch.unary_stream(AGENT + "CloneVm",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.StorageProgress.FromString)
            try:
                for m in f(req, timeout=timeout):
                    msgs.append(m)
            except grpc.RpcError as e:
                return msgs, e
        return msgs, None

    def clone_ok(name, **kw):
        msgs, err = clone(name, **kw)
        assert err is None, f"clone {name}: {err.code()} {err.details()}"
        assert msgs and msgs[-1].phase == "completed", [m.phase for m in msgs]
        return msgs

    def console(name):
        try:
            with open(os.path.join(consoles, name + ".log"), "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def found_line(name):
        m = FOUND.search(console(name))
        return m.group(1) if m else None

    def hb_count(name):
        return len(HB.findall(console(name)))

    def wait_booted(name, timeout=300):
        """Until NAME's guest checked its disk and beats; fails at once
        when its kernel panics."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = console(name)
            assert "Kernel panic" not in out, f"{name} panicked: {out[-600:]}"
            if found_line(name) and hb_count(name) >= 5:
                return
            time.sleep(0.5)
        raise AssertionError(f"{name} did not boot in {timeout}s: {console(name)[-600:]}")

    def destroy(name):
        unary("DestroyVm", pb.VmRequest(name=name), pb.AgentVmReply)

    def delete(name):
        unary("DeleteVm", pb.DeleteVmRequest(name=name, force=True), pb.Empty)

    def files_of(name):
        return sorted(f for f in os.listdir(disks) if f.split(".")[0] == name) + \
            sorted(f for f in os.listdir(consoles) if f.split(".")[0] == name)

    def disk_bytes(name):
        return os.stat(os.path.join(disks, name + ".qcow2")).st_blocks * 512

    def img_info(path):
        return run(["qemu-img", "info", "-U", path]).stdout

    # --- the source: a VM whose disk holds checkable data --------------------
    def source_vm():
        unary("CreateVm", pb.AgentCreateVmRequest(spec=spec(SRC)), pb.AgentVmReply,
              timeout=120)
        wait_for("generation 2 on the source's disk",
                 lambda: "DROVER-GUEST disk gen 2 written" in console(SRC), 240)
        # A running VM is no template.
        expect_error(lambda: unary("MakeTemplate", pb.VmRequest(name=SRC),
                                   pb.AgentVmReply),
                     grpc.StatusCode.FAILED_PRECONDITION, SRC, "running")
        # Nor can a running VM be copied, or linked to.
        _, err = clone("early", mode="full")
        assert err and err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
        assert "running" in err.details(), err.details()
        # Most likely in the 2 s pause after generation 2; a stop mid-pass
        # leaves two adjacent generations, still all blocks good.
        destroy(SRC)
        st["src_console"] = console(SRC)
        assert "early" not in c.domains(1) and not files_of("early")

    if not tap.case("a source VM with checkable data on its disk, stopped", source_vm):
        return

    def bad_input():
        before = (c.domains(1), sorted(os.listdir(disks)))
        # A linked clone needs a protected base.
        _, err = clone("lnk", mode="linked")
        assert err and err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
        assert "template" in err.details(), err.details()
        log(f"linked clone of a plain VM: {err.details()}")
        for bad in ("a/b", "..", "../etc", "x.qcow2"):
            _, err = clone(bad)
            assert err and err.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, err)
            _, err = clone("fine", source=bad)
            assert err and err.code() == grpc.StatusCode.INVALID_ARGUMENT, (bad, err)
        log(f"bad name: {err.details()}")
        _, err = clone(SRC)
        assert err and err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        _, err = clone("nosuch", source="nosuch-src")
        assert err and err.code() == grpc.StatusCode.NOT_FOUND, err
        _, err = clone("uu", the_uuid="not-a-uuid")
        assert err and err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        _, err = clone("fromsnap", from_snapshot="s1")
        assert err and err.code() == grpc.StatusCode.NOT_FOUND, err
        assert "no snapshot named 's1'" in err.details(), err.details()
        _, err = clone("fromsnap", from_snapshot="../s1")
        assert err and err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert (c.domains(1), sorted(os.listdir(disks))) == before

    tap.case("bad input refused, nothing made", bad_input)

    def rollback_after_define():
        c.harness("kill-agent", "1", "TERM")
        restart_agent({"DROVER_FAULTS": "clone-fail-after-define"})
        _, err = clone("rb", mode="full")
        assert err and "clone-fail-after-define" in err.details(), err
        assert "rb" not in c.domains(1), c.domains(1)
        assert not files_of("rb"), files_of("rb")
        c.harness("kill-agent", "1", "TERM")
        restart_agent()

    def restart_agent(extra_env=None):
        env = dict(c.env)
        env.pop("DROVER_FAULTS", None)
        if extra_env:
            env.update(extra_env)
        subprocess.run([CLUSTER, "start-agent", "1"], env=env, check=True,
                       capture_output=True, timeout=90)
        wait_for("the agent answering",
                 lambda: unary("GetHostInfo", pb.Empty(), pb.HostInfo, timeout=5), 60)

    tap.case("a clone failing after its define is rolled back", rollback_after_define)

    # --- the template ----------------------------------------------------------
    def make_template():
        r = unary("MakeTemplate", pb.VmRequest(name=SRC), pb.AgentVmReply)
        assert r.vm.template, r.vm
        img = os.path.join(disks, SRC + ".qcow2")
        mode = stat.S_IMODE(os.stat(img).st_mode)
        assert mode == 0o444, oct(mode)
        # Again: nothing changes, no error.
        r = unary("MakeTemplate", pb.VmRequest(name=SRC), pb.AgentVmReply)
        assert r.vm.template
        d = expect_error(lambda: unary("StartVm", pb.VmRequest(name=SRC), pb.AgentVmReply),
                         grpc.StatusCode.FAILED_PRECONDITION, SRC, "template")
        log(f"StartVm of the template: {d}")
        assert c.where(SRC)[1][1] == "shut off", c.where(SRC)

    if not tap.case("a stopped VM becomes a template; StartVm of it refused",
                    make_template):
        return

    def linked_clones():
        names = [f"lc{i}" for i in range(1, N_LINKED + 1)]
        uuids = {n: str(uuid.uuid4()) for n in names}
        times, sizes, made, founds = [], {}, {}, {}
        for b in range(0, N_LINKED, BATCH):
            batch = names[b:b + BATCH]
            for n in batch:
                t0 = time.monotonic()
                msgs = clone_ok(n, start=True, the_uuid=uuids[n])
                times.append(time.monotonic() - t0)
                made[n] = disk_bytes(n)
                vm = msgs[-1].vm
                assert vm.name == n and vm.uuid == uuids[n], vm
                assert not vm.template and vm.state == "running", vm
            for n in batch:
                wait_booted(n)
                founds[n] = found_line(n)
                sizes[n] = disk_bytes(n)
                info = img_info(os.path.join(disks, n + ".qcow2"))
                assert os.path.join(disks, SRC + ".qcow2") in info, info
                assert "DROVER-GUEST up" in console(n) and "Kernel panic" not in console(n)
            for n in batch:
                destroy(n)
        log(f"linked clone calls: {', '.join(f'{t:.2f}' for t in times)} s")
        log("disk bytes per linked clone when made: "
            + ", ".join(f"{n}={made[n] // 1024} KiB" for n in names))
        log("... after booting and writing 64 blocks of 64 KiB: "
            + ", ".join(f"{n}={sizes[n] // 1024} KiB" for n in names))
        # Every clone found the template's data, intact.
        vals = set(founds.values())
        assert len(vals) == 1, founds
        line = vals.pop()
        log(f"each clone found: {line}")
        assert " bad=0 blank=0 " in line and line.startswith("blocks=64 ok=64"), line
        # Distinct identities: UUIDs, MACs if any.
        seen_uuid, seen_mac = set(), set()
        for n in names:
            xml = c.virsh(1, "dumpxml", n).stdout
            u = re.search(r"<uuid>([^<]+)</uuid>", xml).group(1)
            assert u == uuids[n] and u not in seen_uuid
            seen_uuid.add(u)
            for mac in re.findall(r"<mac address='([^']+)'", xml):
                assert mac not in seen_mac, mac
                seen_mac.add(mac)
        assert max(times) < 30, times
        st["linked"] = names

    if not tap.case(f"{N_LINKED} linked clones of the template boot with their own "
                    "UUIDs and find its data", linked_clones):
        return

    def concurrent_clones():
        names = ["pc1", "pc2", "pc3", "pc4"]
        results = {}

        def one(n):
            results[n] = clone(n)

        threads = [threading.Thread(target=one, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for n in names:
            msgs, err = results[n]
            assert err is None, f"{n}: {err.code()} {err.details()}"
            assert msgs[-1].phase == "completed", msgs[-1]
            assert msgs[-1].vm.state == "shutoff" and not msgs[-1].vm.template, msgs[-1]
        for n in names:
            delete(n)
            assert not files_of(n), files_of(n)

    tap.case("linked clones of one template asked for at once all succeed",
             concurrent_clones)

    def base_in_use():
        d = expect_error(lambda: delete(SRC), grpc.StatusCode.FAILED_PRECONDITION,
                         f"VM {SRC} is the base of {N_LINKED} linked clones: "
                         + ", ".join(st["linked"]))
        log(f"DeleteVm of the template: {d}")
        assert SRC in c.domains(1)
        assert os.path.exists(os.path.join(disks, SRC + ".qcow2"))

    tap.case("DeleteVm of a base in use refused, naming its clones", base_in_use)

    def full_clone():
        msgs = clone_ok("fc1", mode="full")
        copying = [m for m in msgs if m.phase == "copying"]
        assert copying, [m.phase for m in msgs]
        last = copying[-1]
        assert last.total > 0 and last.processed == last.total, last
        assert all(a.processed <= b.processed for a, b in zip(copying, copying[1:]))
        log(f"full clone: {len(copying)} progress messages, {last.total} bytes, "
            f"{last.throughput / 1e6:.0f} MB/s")
        src_img = os.path.join(disks, SRC + ".qcow2")
        img = os.path.join(disks, "fc1.qcow2")
        assert "backing file" not in img_info(img), img_info(img)
        cmp = run(["qemu-img", "compare", "-U", src_img, img], check=False)
        assert cmp.returncode == 0, cmp.stdout + cmp.stderr
        log(f"qemu-img compare: {cmp.stdout.strip()}")
        unary("StartVm", pb.VmRequest(name="fc1"), pb.AgentVmReply, timeout=120)
        wait_for("fc1's disk check and heartbeats",
                 lambda: found_line("fc1") and hb_count("fc1") >= 5, 300)
        assert " bad=0 blank=0 " in found_line("fc1"), found_line("fc1")
        destroy("fc1")

    tap.case("a full clone streams progress, matches the source, boots", full_clone)

    def from_snapshot():
        vm = "snapsrc"
        unary("CreateVm", pb.AgentCreateVmRequest(spec=spec(vm)), pb.AgentVmReply,
              timeout=120)
        wait_for(f"generation 2 on {vm}'s disk",
                 lambda: "DROVER-GUEST disk gen 2 written" in console(vm), 240)
        req = pb.AgentSnapshotRequest(job_id="job-snap", vm=vm, name="s1",
                                      created_ms=int(time.time() * 1000))
        with grpc.secure_channel(agents.addrs[1], agents.creds) as ch:
            f = ch.unary_stream(AGENT + "CreateSnapshot",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.StorageProgress.FromString)
            msgs = list(f(req, timeout=120))
        assert msgs[-1].phase == "completed", msgs[-1]
        at = max(int(g) for g in re.findall(r"disk gen (\d+) written", console(vm)))
        # The VM goes on writing after the snapshot.
        wait_for(f"generation {at + 3}",
                 lambda: f"DROVER-GUEST disk gen {at + 3} written" in console(vm), 240)
        # From its snapshot while it runs: a full and a linked clone.
        clone_ok("fs1", mode="full", source=vm, from_snapshot="s1", start=True)
        clone_ok("ls1", mode="linked", source=vm, from_snapshot="s1", start=True)
        for n in ("fs1", "ls1"):
            wait_booted(n)
        log(f"snapshot s1 of {vm} taken after gen {at} was written; the clones "
            f"found: {found_line('fs1')} / {found_line('ls1')}")
        assert found_line("fs1") == found_line("ls1"), (found_line("fs1"),
                                                        found_line("ls1"))
        m = re.match(r"blocks=64 ok=64 bad=0 blank=0 gen_min=(\d+) gen_max=(\d+)",
                     found_line("fs1"))
        assert m, found_line("fs1")
        gmin, gmax = int(m.group(1)), int(m.group(2))
        assert at <= gmin <= gmax <= at + 1, (at, gmin, gmax)
        # The linked clone sits on the image s1 froze, not on the one the
        # VM writes now.
        active = re.search(r"<source file='([^']+)'",
                           c.virsh(1, "dumpxml", vm).stdout).group(1)
        backing = re.search(r"^backing file: (.*)$",
                            img_info(os.path.join(disks, "ls1.qcow2")), re.M).group(1)
        log(f"{vm} runs on {active}; ls1 is an overlay on {backing}")
        assert backing != active and backing.startswith(data), (backing, active)
        assert stat.S_IMODE(os.stat(backing).st_mode) == 0o444
        assert "backing file" not in img_info(os.path.join(disks, "fs1.qcow2"))
        # Deleting s1 would merge into (or remove) the image ls1 rests on.
        dreq = pb.AgentSnapshotRequest(job_id="job-snapdel", vm=vm, name="s1")
        with grpc.secure_channel(agents.addrs[1], agents.creds) as ch:
            f = ch.unary_stream(AGENT + "DeleteSnapshot",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.StorageProgress.FromString)
            try:
                list(f(dreq, timeout=120))
                raise AssertionError("DeleteSnapshot of a linked clone's base succeeded")
            except grpc.RpcError as e:
                log(f"DeleteSnapshot of the clone's base: {e.code()}: {e.details()}")
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
                assert "linked clone: ls1" in e.details(), e.details()
        assert stat.S_IMODE(os.stat(backing).st_mode) == 0o444
        d = expect_error(lambda: delete(vm), grpc.StatusCode.FAILED_PRECONDITION,
                         f"VM {vm} is the base of 1 linked clone: ls1")
        log(f"DeleteVm of the snapshot's VM: {d}")
        # A VM with snapshots does not become a template, stopped or not.
        unary("DestroyVm", pb.VmRequest(name=vm), pb.AgentVmReply)
        t = expect_error(lambda: unary("MakeTemplate", pb.VmRequest(name=vm),
                                       pb.AgentVmReply),
                         grpc.StatusCode.FAILED_PRECONDITION,
                         f"VM {vm} has 1 snapshot: delete them")
        log(f"MakeTemplate of a VM with a snapshot: {t}")
        for n in ("fs1", "ls1", vm):
            delete(n)
            assert not files_of(n), files_of(n)

    tap.case("full and linked clones from a snapshot of a running VM find the "
             "snapshot's data", from_snapshot)

    def killed_midway(fault, reached):
        def case():
            c.harness("kill-agent", "1", "TERM")
            restart_agent({"DROVER_FAULTS": fault})
            msgs = []
            t = threading.Thread(target=clone, args=("kc",),
                                 kwargs={"mode": "full", "msgs": msgs}, daemon=True)
            t.start()
            wait_for(f"the clone to reach {fault}", lambda: reached(msgs), 120, 0.1)
            assert os.path.exists(os.path.join(disks, "kc.qcow2.clone")), files_of("kc")
            log(f"at {fault}: {files_of('kc')}, domains {c.domains(1)}")
            c.harness("kill-agent", "1", "KILL")
            t.join(30)
            restart_agent()
            wait_for("nothing left of the clone",
                     lambda: not files_of("kc") and "kc" not in c.domains(1), 60)
            # The name is free again: the same clone works now.
            clone_ok("kc", mode="full")
            delete("kc")
            assert not files_of("kc")
        return case

    tap.case("agent killed while a full clone copies: nothing left after restart",
             killed_midway("clone-hold-copying",
                           lambda m: any(x.phase == "copying" for x in m)))
    tap.case("agent killed after the clone's define: nothing left after restart",
             killed_midway("clone-hold-after-define",
                           lambda m: "kc" in c.domains(1)))

    def cleanup():
        for n in st.get("linked", []) + ["fc1"]:
            delete(n)
        delete(SRC)
        assert SRC not in c.domains(1) and not files_of(SRC)

    tap.case("clones deleted, then the template", cleanup)


if __name__ == "__main__":
    sys.exit(main())
