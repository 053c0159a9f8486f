#!/usr/bin/python3
"""Snapshots, clones and templates end to end (issue 12): droverctl ->
scheduler -> agent -> libvirt/QEMU on a real two-host local cluster, with
the disk-checking test guest (drover.disk=check) telling which disk state
it sees at boot.

- S1, the guest writes on, S2; revert to S1: the guest boots on exactly
  S1's data (every block checks out, generations those of S1); revert to
  S2: S2's; both snapshots kept, the tree and the current one as listed;
- delete S1 while the guest runs: the chain is one image shorter, the
  guest keeps writing;
- a memory snapshot reverted: no new boot, the heartbeat counter goes on
  from the snapshot's value;
- bad input (a name with '/', a duplicate, unknown VM or snapshot) is
  refused and changes nothing;
- a template: never started, clones linked by default, boot on its data
  with their own UUIDs; the base cannot be deleted while clones use it; a
  full clone's image matches the template's (qemu-img compare);
- the jobs and events the commands leave.
Prints TAP.
"""
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (GUEST_CMDLINE, GUEST_DIR, log, run,  # noqa: E402
                            run_on_cluster, two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
DISK_CMDLINE = (GUEST_CMDLINE + " drover.hb_ms=200 drover.disk=check"
                " drover.disk_blocks=64 drover.disk_pause_ms=1500")
VM, TPL = "snap-web", "snap-tpl"
WRITTEN = re.compile(r"^DROVER-GUEST disk gen (\d+) written\r?$", re.M)
FOUND = re.compile(r"^DROVER-GUEST disk found blocks=(\d+) ok=(\d+) bad=(\d+) "
                   r"blank=(\d+) gen_min=(\d+) gen_max=(\d+)\r?$", re.M)
HB = re.compile(r"^HB (\d+) \d+\r?\n", re.M)


def main():
    c = two_host_cluster("/tmp/drover-cluster-snapcli")
    return run_on_cluster(c, run_cases, tmp_prefix="drover-snapcli-")


def run_cases(c, tap, tmp):
    st = {}

    def console(vm=VM):
        return c.ctl("vm", "console", vm).stdout

    def written(vm=VM):
        return [int(g) for g in WRITTEN.findall(console(vm))]

    def founds(vm=VM):
        return [tuple(int(x) for x in m) for m in FOUND.findall(console(vm))]

    def boots(vm=VM):
        return console(vm).count("DROVER-GUEST up")

    def wait_gen_after(g, vm=VM):
        """Waits until the guest has written a generation after G; returns
        the newest written generation."""
        return wait_for(f"{vm} writing generation {g + 1}",
                        lambda: max(written(vm), default=0) > g and max(written(vm)), 120)

    def snapshots():
        return c.ctl_json("snapshot", "list", VM)

    def by_name():
        return {s["name"]: s for s in snapshots().get("snapshots", [])}

    def host_index(vm):
        return int(c.vms_by_name()[vm]["host"].removeprefix("host"))

    def disk_of(vm):
        out = c.virsh(host_index(vm), "domblklist", vm).stdout
        m = re.search(r"vda\s+(\S+)", out)
        assert m, out
        return m.group(1)

    def chain(path):
        out = run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                   path]).stdout
        return [i["filename"] for i in json.loads(out)]

    def take(name, *args):
        """snapshot create, right after a generation is complete (the
        guest pauses 1.5 s between generations). Returns (last generation
        written before, the command's output)."""
        before = written()
        g = wait_gen_after(max(before, default=0))
        out = c.ctl("snapshot", "create", VM, name, *args, timeout=600).stdout
        return g, out

    def found_after_revert(n_before):
        """The 'disk found' line of the boot after a revert."""
        return wait_for("the guest's disk check after the revert",
                        lambda: len(founds()) > n_before and founds()[-1], 180)

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M", "--disk", "32M",
              "--host", "host1", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", DISK_CMDLINE)
        wait_for("the first generation on the disk", lambda: written(), 180)
        f = founds()
        assert f and f[0][3] == f[0][0], f"a fresh disk is blank: {f}"

    def two_snapshots_and_reverts():
        g1, out = take("s1", "--description", "before the upgrade")
        log(f"s1 after generation {g1}: {out.strip().splitlines()[-1]}")
        g2 = wait_gen_after(g1 + 1)
        g2, _ = take("s2")
        log(f"s2 after generation {g2}")
        snaps = by_name()
        assert set(snaps) == {"s1", "s2"}, snaps
        assert snaps["s2"]["parent"] == "s1" and snaps["s2"].get("current"), snaps
        assert snaps["s1"].get("description") == "before the upgrade", snaps
        show = c.ctl_json("snapshot", "show", VM, "s1")
        assert show.get("name") == "s1" or show.get("snapshot", {}).get("name") == "s1", show
        text = c.ctl("snapshot", "list", VM).stdout
        log("snapshot list:\n" + text.rstrip())
        assert re.search(r"^\*.*s2", text, re.M), text

        for name, g in (("s1", g1), ("s2", g2), ("s1", g1), ("s2", g2)):
            n = len(founds())
            c.ctl("snapshot", "revert", VM, name, timeout=600)
            blocks, ok, bad, blank, gmin, gmax = found_after_revert(n)
            log(f"revert to {name} (taken after generation {g}): found "
                f"ok={ok} bad={bad} gen {gmin}..{gmax}")
            assert bad == 0 and blank == 0 and ok == blocks, (name, ok, bad, blank)
            assert g <= gmin <= gmax <= g + 1, (name, g, gmin, gmax)
            snaps = by_name()
            assert set(snaps) == {"s1", "s2"} and snaps[name].get("current"), snaps
        st["chain_before_delete"] = len(chain(disk_of(VM)))

    def delete_live():
        # The VM runs on s2 now (the last revert), s2 on s1: delete s1
        # under it (s1's image takes in s2's).
        g = max(written())
        c.ctl("snapshot", "delete", VM, "s1", timeout=600)
        snaps = by_name()
        assert set(snaps) == {"s2"}, snaps
        after = len(chain(disk_of(VM)))
        log(f"chain {st['chain_before_delete']} -> {after} images")
        assert after == st["chain_before_delete"] - 1, (st["chain_before_delete"], after)
        wait_gen_after(g + 1)
        assert "error" not in console().split("DROVER-GUEST disk found")[-1].lower()

    def memory_snapshot():
        b = boots()
        wait_for("heartbeats", lambda: HB.findall(console()), 60)
        hb0 = int(HB.findall(console())[-1])
        c.ctl("snapshot", "create", VM, "m1", "--memory", timeout=900)
        hb1 = int(HB.findall(console())[-1])
        wait_for("the guest going on", lambda: int(HB.findall(console())[-1]) > hb1 + 10, 120)
        seen = [int(x) for x in HB.findall(console())]
        last = seen[-1]
        c.ctl("snapshot", "revert", VM, "m1", timeout=900)

        def went_back():
            """The heartbeats from where the counter went back, after the
            ones seen before the revert (earlier reboots went back too)."""
            hb = [int(x) for x in HB.findall(console())]
            back = [i for i in range(len(seen), len(hb)) if hb[i] < hb[i - 1]]
            return back and hb[back[-1]:]

        resumed = wait_for("the heartbeat counter going back", went_back, 120)
        log(f"memory snapshot during HB {hb0}..{hb1}; went on to {last}; "
            f"after the revert HB {resumed[0]}..")
        log("console after the revert: " + console()[-400:].replace("\n", " | "))
        assert boots() == b, "the guest booted again"
        assert hb0 <= resumed[0] <= hb1 + 10, (hb0, hb1, resumed[:3])
        assert by_name()["m1"].get("memory"), by_name()

    def bad_input():
        before = by_name()
        for args, code, words in (
                (["snapshot", "create", VM, "a/b"], 2, ["a/b"]),
                (["snapshot", "create", VM, ".."], 2, [".."]),
                (["snapshot", "create", VM, "s2"], 1, ["s2", "already has"]),
                (["snapshot", "create", "no-such-vm", "x"], 1, ["no-such-vm"]),
                (["snapshot", "revert", VM, "nope"], 1, ["nope"]),
                (["snapshot", "delete", VM, "nope"], 1, ["nope"])):
            p = c.ctl(*args, check=False)
            msg = p.stdout + p.stderr
            log(f"{' '.join(args[:2])} {args[2:]}: exit {p.returncode}: {msg.strip()[:160]}")
            assert p.returncode == code, (args, p.returncode, msg)
            for w in words:
                assert w in msg, (args, w, msg)
        assert by_name() == before, "bad input changed the tree"

    def template_and_clones():
        c.ctl("vm", "create", TPL, "--vcpus", "1", "--memory", "128M", "--disk", "16M",
              "--host", "host2", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", DISK_CMDLINE)
        g = wait_for("the template's data", lambda: written(TPL), 180)[-1]
        c.ctl("vm", "stop", TPL, "--force")
        wait_for(f"{TPL} stopped", lambda: c.vms_by_name()[TPL]["state"] == "shutoff", 60)
        c.ctl("vm", "template", TPL)
        assert c.vms_by_name()[TPL].get("template"), c.vms_by_name()[TPL]
        p = c.ctl("vm", "start", TPL, check=False)
        log(f"vm start of a template: {(p.stdout + p.stderr).strip()[:160]}")
        assert p.returncode != 0 and "template" in p.stdout + p.stderr, p
        t0 = time.monotonic()
        for n in ("snap-c1", "snap-c2"):
            c.ctl("vm", "clone", TPL, n, "--start", timeout=600)
        log(f"two linked clones made and started in {time.monotonic() - t0:.1f}s")
        uuids = set()
        for n in ("snap-c1", "snap-c2"):
            f = wait_for(f"{n} checking its disk", lambda n=n: founds(n), 180)[0]
            blocks, ok, bad, blank, gmin, gmax = f
            assert bad == 0 and ok == blocks and gmax <= g + 1 and gmin >= 1, (n, f, g)
            uuids.add(c.vms_by_name()[n]["status"]["uuid"])
            assert TPL in " ".join(chain(disk_of(n))), chain(disk_of(n))
        uuids.add(c.vms_by_name()[TPL]["status"]["uuid"])
        assert len(uuids) == 3, uuids
        p = c.ctl("vm", "delete", TPL, check=False)
        msg = p.stdout + p.stderr
        log(f"vm delete of the base: {msg.strip()[:200]}")
        assert p.returncode != 0 and "snap-c1" in msg and "snap-c2" in msg, msg
        c.ctl("vm", "clone", TPL, "snap-f1", "--full", timeout=600)
        src, dst = disk_of(TPL), disk_of("snap-f1")
        assert len(chain(dst)) == 1, chain(dst)
        r = run(["qemu-img", "compare", "-U", src, dst], check=False)
        log(f"qemu-img compare template / full clone: {r.stdout.strip()}")
        assert r.returncode == 0, r.stdout + r.stderr

    def jobs_and_events():
        kinds = {j["kind"] for j in c.ctl_json("jobs")["jobs"] if j["state"] == "done"}
        for k in ("snapshot-create", "snapshot-revert", "snapshot-delete", "clone"):
            assert k in kinds, (k, kinds)
        out = c.ctl("events", "-n", "500").stdout
        for k in ("snapshot.created", "snapshot.reverted", "snapshot.deleted", "vm.cloned"):
            assert k in out, (k, out[-2000:])

    if not tap.case("a guest with a checkable disk", boot):
        return
    if tap.case("s1, s2; revert to s1, s2, s1, s2: each one's data, both kept",
                two_snapshots_and_reverts):
        tap.case("delete s1 while running: chain one shorter, the guest writes on",
                 delete_live)
    tap.case("memory snapshot reverted: no boot, the counter goes on", memory_snapshot)
    tap.case("bad input: refused, nothing changed", bad_input)
    tap.case("template: linked clones boot on its data, base protected, full clone equal",
             template_and_clones)
    tap.case("jobs and events of all of it", jobs_and_events)


if __name__ == "__main__":
    sys.exit(main())
