#!/usr/bin/python3
"""Live migration of a VM with snapshots (issue 12) on a real two-host
local cluster, through droverctl, with the disk-checking test guest
(drover.disk=check) telling at each boot which disk state it sees.

- S1, the guest writes on, S2, then a memory snapshot M1; `migrate --to
  host2` while the guest writes: it runs on host2 afterwards, `snapshot
  list` there shows the same tree (S1 <- S2 <- M1, M1 current), its disk
  is DATA2/snapshots/VM/N.qcow2 whose chain lies in host2's data
  directory only, and host1 has no file of the VM left;
- on host2, revert to S1: the guest boots on exactly S1's data; revert
  to S2: S2's; revert to M1: no boot, the heartbeat counter goes on from
  M1's value (its memory file came along);
- the destination agent killed (fault point) while the chain's files come
  in: the migration fails, the VM keeps running on its host with both
  snapshots and goes on writing; host1, restarted, has no file of the VM.
Prints TAP.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (CLUSTER, GUEST_CMDLINE, GUEST_DIR, log, run,  # noqa: E402
                            run_on_cluster, two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
# pti=on: see docs/migration.md (TCG migrations).
DISK_CMDLINE = (GUEST_CMDLINE + " pti=on drover.hb_ms=200 drover.disk=check"
                " drover.disk_blocks=64 drover.disk_pause_ms=1500")
VM = "mig-snap"
WRITTEN = re.compile(r"^DROVER-GUEST disk gen (\d+) written\r?$", re.M)
FOUND = re.compile(r"^DROVER-GUEST disk found blocks=(\d+) ok=(\d+) bad=(\d+) "
                   r"blank=(\d+) gen_min=(\d+) gen_max=(\d+)\r?$", re.M)
HB = re.compile(r"^HB (\d+) \d+\r?\n", re.M)
TREE = {"s1", "s2", "m1"}
BAD_CONSOLE = re.compile(r"I/O error|blk_update_request|Buffer I/O|BUG:|Oops|"
                         r"Kernel panic")


def main():
    c = two_host_cluster("/tmp/drover-cluster-migsnap")
    return run_on_cluster(c, run_cases, tmp_prefix="drover-migsnap-")


def run_cases(c, tap, tmp):
    st = {}

    def console():
        return c.ctl("vm", "console", VM).stdout

    def written():
        return [int(g) for g in WRITTEN.findall(console())]

    def founds():
        return [tuple(int(x) for x in m) for m in FOUND.findall(console())]

    def wait_gen_after(g):
        return wait_for(f"writing generation {g + 1}",
                        lambda: max(written(), default=0) > g and max(written()), 120)

    def by_name():
        return {s["name"]: s for s in c.ctl_json("snapshot", "list", VM)
                .get("snapshots", [])}

    def host_index():
        return int(c.vms_by_name()[VM]["host"].removeprefix("host"))

    def disk_of(i):
        out = c.virsh(i, "domblklist", VM).stdout
        m = re.search(r"vda\s+(\S+)", out)
        assert m, out
        return m.group(1)

    def chain(path):
        """(file, backing file) of each image of PATH's chain."""
        info = json.loads(run(["qemu-img", "info", "-U", "--backing-chain",
                               "--output=json", path]).stdout)
        return [(i["filename"], i.get("backing-filename")) for i in info]

    def files_of(i):
        """The VM's files in host I's data directory."""
        d = c.host_data(i)
        found = []
        for sub in ("disks", "snapshots"):
            p = os.path.join(d, sub)
            for n in os.listdir(p) if os.path.isdir(p) else []:
                if n.startswith(VM + ".") or n == VM:
                    found.append(os.path.join(sub, n))
        sd = os.path.join(d, "snapshots", VM)
        if os.path.isdir(sd):
            found += [os.path.join("snapshots", VM, n) for n in os.listdir(sd)]
        return sorted(found)

    def take(name):
        """snapshot create right after a generation is complete."""
        g = wait_gen_after(max(written(), default=0))
        c.ctl("snapshot", "create", VM, name, timeout=600)
        return g

    def no_bad_console():
        bad = [ln for ln in console().splitlines() if BAD_CONSOLE.search(ln)]
        assert not bad, f"guest console shows errors: {bad}"

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M", "--disk", "32M",
              "--host", "host1", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", DISK_CMDLINE)
        wait_for("the first generation on the disk", lambda: written(), 180)
        st["g1"] = take("s1")
        wait_gen_after(st["g1"] + 1)
        st["g2"] = take("s2")
        st["hb0"] = int(HB.findall(console())[-1])
        c.ctl("snapshot", "create", VM, "m1", "--memory", timeout=900)
        st["hb1"] = int(HB.findall(console())[-1])
        snaps = by_name()
        assert set(snaps) == TREE and snaps["m1"].get("current"), snaps
        assert snaps["m1"].get("memory") and snaps["m1"]["parent"] == "s2", snaps
        st["files1"] = files_of(1)
        log(f"s1 after generation {st['g1']}, s2 after {st['g2']}; host1 files "
            f"{st['files1']}")

    def migrate():
        g = max(written())
        p = c.ctl("migrate", VM, "--to", "host2", "--json", check=False, timeout=600)
        assert p.returncode == 0, f"migrate failed: {p.stdout}\n{p.stderr}"
        job = json.loads(p.stdout)
        m = job["migration"]
        assert job["state"] == "done" and m["phase"] == "completed", job
        log(f"migrated: total {m.get('total_s')}s, disk {m.get('disk_processed')}"
            f"/{m.get('disk_total')} bytes")
        w = wait_for("VM only on host2", lambda: (
            c.where(VM) if c.where(VM) == {2: ("yes", "running")} else None), 60)
        assert w == {2: ("yes", "running")}, w
        assert host_index() == 2
        # The chain is host2's own: every image and backing file there.
        d2 = c.host_data(2)
        top = disk_of(2)
        assert top.startswith(os.path.join(d2, "snapshots", VM) + "/"), top
        ch = chain(top)
        assert len(ch) >= 3, ch
        for f, b in ch:
            assert f.startswith(d2 + "/"), ch
            assert b is None or b.startswith(d2 + "/"), ch
        assert not [f for f in files_of(2) if f.endswith(".incoming")], files_of(2)
        wait_for("no file of the VM left on host1", lambda: files_of(1) == [] or None, 30)
        snaps = wait_for("the tree on host2", lambda: (
            by_name() if set(by_name()) == TREE else None), 60)
        assert snaps["m1"].get("current") and snaps["m1"]["parent"] == "s2", snaps
        assert snaps["s2"]["parent"] == "s1" and snaps["m1"].get("memory"), snaps
        text = c.ctl("snapshot", "list", VM).stdout
        log("snapshot list on host2:\n" + text.rstrip())
        wait_gen_after(g + 1)
        no_bad_console()

    def reverts():
        for name in ("s1", "s2"):
            g = st["g1" if name == "s1" else "g2"]
            n = len(founds())
            c.ctl("snapshot", "revert", VM, name, timeout=600)
            blocks, ok, bad, blank, gmin, gmax = wait_for(
                "the guest's disk check after the revert",
                lambda: len(founds()) > n and founds()[-1], 180)
            log(f"revert to {name} on host2 (taken after generation {g}): found "
                f"ok={ok} bad={bad} gen {gmin}..{gmax}")
            assert bad == 0 and blank == 0 and ok == blocks, (name, ok, bad, blank)
            assert g <= gmin <= gmax <= g + 1, (name, g, gmin, gmax)
            assert host_index() == 2
            assert set(by_name()) == TREE

    def memory_revert():
        boots = console().count("DROVER-GUEST up")
        seen = len(HB.findall(console()))
        c.ctl("snapshot", "revert", VM, "m1", timeout=900)

        def jumped():
            """The heartbeats from where the counter stopped counting on
            by one (the restore: back or forward, the guest ran a while
            since its last boot)."""
            hb = [int(x) for x in HB.findall(console())]
            jump = [i for i in range(max(seen, 1), len(hb)) if hb[i] != hb[i - 1] + 1]
            return jump and hb[jump[-1]:]

        resumed = wait_for("the heartbeat counter jumping to m1's", jumped, 120)
        log(f"memory snapshot during HB {st['hb0']}..{st['hb1']}; after the "
            f"revert on host2 HB {resumed[0]}..")
        assert console().count("DROVER-GUEST up") == boots, "the guest booted again"
        assert st["hb0"] <= resumed[0] <= st["hb1"] + 10, (st["hb0"], st["hb1"], resumed[:3])
        assert by_name()["m1"].get("current")

    def restart_agent(i, faults=None):
        c.harness("kill-agent", str(i), "TERM", check=False)
        env = dict(c.env)
        if faults:
            env["DROVER_FAULTS"] = faults
        run([CLUSTER, "start-agent", str(i)], env=env, timeout=60)
        wait_for(f"host{i} up", lambda: c.hosts_by_name()[f"host{i}"]["state"] == "up"
                 or None, 60)

    def killed_destination():
        """The VM is on host2 now: migrate it back to host1 whose agent
        dies once the first image of the chain is in."""
        restart_agent(1, "mig-chain-crash-receiving")
        n = len(written())
        for _ in range(10):
            # The scheduler's channel to a restarted agent backs off a
            # while: only a PrepareIncoming that could not reach it is
            # tried again.
            time.sleep(3)
            p = c.ctl("migrate", VM, "--to", "host1", "--json", check=False,
                      timeout=600)
            if "Connection refused" not in p.stdout + p.stderr:
                break
        out = (p.stdout + p.stderr).strip()
        log("migrate with host1 killed: " + out[-400:])
        assert p.returncode != 0, f"the migration succeeded: {p.stdout}"
        assert "snapshot chain not sent" in out, out
        w = wait_for("VM still on host2", lambda: (
            c.where(VM) if c.where(VM) == {2: ("yes", "running")} else None), 60)
        assert w == {2: ("yes", "running")}, w
        assert set(by_name()) == TREE
        # Still writing (after the memory revert its generation numbers
        # are m1's, below the highest seen).
        wait_for("generations written on", lambda: len(written()) > n + 1, 120)
        no_bad_console()
        c.harness("start-agent", "1", check=False)
        wait_for("host1 up", lambda: c.hosts_by_name()["host1"]["state"] == "up"
                 or None, 60)
        wait_for("nothing of the VM on host1", lambda: files_of(1) == [] or None, 30)
        assert 1 not in c.where(VM), c.where(VM)

    if not tap.case("a guest with a checkable disk and snapshots s1, s2, m1 (memory)",
                    boot):
        return
    if not tap.case("migrate to host2 while writing: the chain and the tree follow, "
                    "host1 keeps nothing", migrate):
        return
    tap.case("on host2 revert to s1, then s2: each one's data", reverts)
    tap.case("on host2 revert to the memory snapshot m1: no boot, the counter "
             "goes on from m1's", memory_revert)
    tap.case("destination killed while the chain comes in: the VM stays, "
             "nothing left there", killed_destination)


if __name__ == "__main__":
    sys.exit(main())
