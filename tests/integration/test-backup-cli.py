#!/usr/bin/python3
"""Backups as operators make and restore them (issue 14): droverctl ->
scheduler -> agent -> libvirt/QEMU on a real two-host local cluster whose
agents share one repository directory (--backup-repo main=SHARED, as a
shared mount would be), with the disk-checking test guest.

- `backup create` (full), the guest writes on, `backup create` again:
  incremental, far fewer bytes read; `backup list --json` shows both,
  `backup show` the incremental;
- `backup restore ID --as NEW --host host2 --start`: NEW runs on host2
  (the repository written from host1) and its guest finds every block ok
  at a generation no older than the backup's;
- bad input (unknown VM, unknown backup, a name with '/', NEW already
  existing, --in-place on a running VM): clear errors, nothing made;
- a backup of a VM that is migrating is refused.
Prints TAP.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BACKUP_GUEST_CMDLINE, BUILD,  # noqa: E402
                            DISK_FOUND, DISK_GEN, GUEST_INITRD, GUEST_KERNEL, log, run,
                            run_on_cluster, two_host_cluster, wait_for)

VM, NEW = "bkcli1", "bkcli1-r"
MiB = 1024 * 1024


def main():
    c = two_host_cluster("/tmp/drover-cluster-backupcli")
    repo = os.path.join(c.env["DROVER_CLUSTER_DIR"], "repo-shared")
    c.env["DROVER_AGENT_ARGS"] = f"--backup-repo main={repo}"
    return run_on_cluster(c, run_cases, tmp_prefix="drover-backupcli-")


def run_cases(c, tap, tmp):
    st = {}

    def console(vm):
        return c.ctl("vm", "console", vm).stdout

    def gens(vm=VM):
        return [int(g) for g in DISK_GEN.findall(console(vm))]

    def ctl_fails(*args):
        p = c.ctl(*args, check=False)
        assert p.returncode != 0, f"droverctl {args} succeeded: {p.stdout}"
        return p.stderr + p.stdout

    def backups(*args):
        return c.ctl_json("backup", "list", *args, "--repo", "main")["backups"]

    def vms():
        return sorted(c.vms_by_name())

    def domains():
        return {i: c.domains(i) for i in (1, 2)}

    def create_in_pause(what):
        """backup create right after a generation is written, in the
        guest's pause: (that generation, droverctl's output, the backup)."""
        n = len(gens())
        wait_for("a generation written", lambda: len(gens()) > n or None,
                 timeout=120, interval=0.1)
        g = gens()[-1]
        before = {b["id"] for b in backups(VM)}
        out = c.ctl("backup", "create", VM, "--repo", "main").stdout
        new = [b for b in backups(VM) if b["id"] not in before]
        assert len(new) == 1, f"{what}: backups made: {new}"
        b = new[0]
        log(f"{what}: {b['id']} {b['kind']}, read {int(b.get('bytes_read', 0))}, "
            f"new {int(b.get('bytes_new', 0))}\n{out}")
        return g, out, b

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M", "--disk",
              "256M", "--kernel", GUEST_KERNEL, "--initrd", GUEST_INITRD,
              "--cmdline", BACKUP_GUEST_CMDLINE, "--host", "host1")
        wait_for("a generation", lambda: gens() or None, timeout=180)
        # 128 MiB the guest never touches, written while it is down: the
        # full backup has something to read that an incremental must not.
        c.ctl("vm", "destroy", VM)
        disk = os.path.join(c.host_data(1), "disks", VM + ".qcow2")
        run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5c {64 * MiB} {128 * MiB}",
             disk])
        c.ctl("vm", "start", VM)
        n = len(gens())
        wait_for("generations go on", lambda: len(gens()) > n + 1, timeout=180)

    def full():
        g, out, b = create_in_pause("full")
        assert b["kind"] == "full", b
        read = int(b["bytes_read"])
        assert 128 * MiB <= read < 140 * MiB, b
        assert b["id"] in out and "full" in out and "consistency" in out, out
        st["full"] = b

    def incremental():
        g, out, b = create_in_pause("incremental")
        assert b["kind"] == "incremental" and b["parent"] == st["full"]["id"], b
        assert int(b["bytes_read"]) < int(st["full"]["bytes_read"]) / 4, b
        assert "incremental from " + st["full"]["id"] in out, out
        st["inc"], st["gen_inc"] = b, g

    def list_show():
        ids = [b["id"] for b in backups()]
        assert ids[:2] == [st["inc"]["id"], st["full"]["id"]], ids
        assert [b["id"] for b in backups(VM)] == ids[:2]
        table = c.ctl("backup", "list", VM, "--repo", "main").stdout
        for col in ("ID", "VM", "KIND", "TAKEN", "SIZE", "NEW", "CONSISTENCY"):
            assert col in table.splitlines()[0], table
        shown = c.ctl_json("backup", "show", st["inc"]["id"], "--repo", "main")
        assert shown["id"] == st["inc"]["id"] and shown["vm"] == VM, shown
        assert shown["spec"]["vcpus"] == 1 and shown["disks"][0]["target"] == "vda", shown
        text = c.ctl("backup", "show", st["inc"]["id"], "--repo", "main").stdout
        assert "incremental from " + st["full"]["id"] in text, text

    def restore():
        p = c.ctl("backup", "restore", st["inc"]["id"], "--as", NEW, "--host",
                  "host2", "--start", "--repo", "main")
        log(p.stdout)
        assert c.vms_by_name()[NEW]["host"] == "host2"
        assert c.where(NEW).get(2, (None, None))[1] == "running", c.where(NEW)
        assert 1 not in c.where(NEW), c.where(NEW)

        def found():
            m = DISK_FOUND.search(console(NEW))
            return m and tuple(int(x) for x in m.groups())
        f = wait_for("the restored guest's disk report", found, timeout=180)
        blocks, ok, bad, blank, gmin, gmax = f
        log(f"restored {st['inc']['id']} (generation {st['gen_inc']}): found {f}")
        assert (ok, bad, blank) == (blocks, 0, 0), f
        assert gmin >= st["gen_inc"], f
        spec = c.vms_by_name()[NEW]["spec"]
        assert int(spec["disk"]) == 256 * MiB and int(spec["memory"]) == 256 * MiB, spec

    def bad_input():
        before_vms, before_doms = vms(), domains()
        n = len(backups())
        err = ctl_fails("backup", "create", "nosuchvm", "--repo", "main")
        assert "nosuchvm" in err, err
        bogus = VM + "-20990101T000000Z-abcdef"
        err = ctl_fails("backup", "restore", bogus, "--as", "bkx1", "--repo", "main")
        assert bogus in err or "not found" in err.lower(), err
        err = ctl_fails("backup", "show", bogus, "--repo", "main")
        assert bogus in err or "not found" in err.lower(), err
        err = ctl_fails("backup", "restore", st["inc"]["id"], "--as", "a/b", "--repo", "main")
        assert "a/b" in err, err
        err = ctl_fails("backup", "restore", st["inc"]["id"], "--as", VM, "--repo", "main")
        assert "already exists" in err, err
        err = ctl_fails("backup", "restore", st["inc"]["id"], "--in-place", "--repo", "main")
        assert "stop" in err, err
        err = ctl_fails("backup", "restore", st["inc"]["id"], "--repo", "main")
        assert "--as" in err, err
        assert vms() == before_vms and domains() == before_doms, (vms(), domains())
        assert len(backups()) == n

    def migrating_refused():
        # Slowed down so that it is still running when the backup comes.
        mig = subprocess.Popen(
            [os.path.join(BUILD, "cli", "droverctl"), "migrate", VM, "--to",
             "host2", "--bandwidth", "40", "--json"],
            env=c.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def migrating():
                return [j for j in c.ctl_json("jobs")["jobs"]
                        if j["kind"] == "migrate" and j["vm"] == VM
                        and j["state"] == "running"]
            job = wait_for("the migration running", migrating, timeout=60)[0]
            n = len(backups(VM))
            err = ctl_fails("backup", "create", VM, "--repo", "main")
            assert "migrating" in err and job["id"] in err, err
            assert len(backups(VM)) == n
            c.ctl("job", "cancel", job["id"], check=False)
        finally:
            out, errout = mig.communicate(timeout=300)
        log(f"migration: exit {mig.returncode} {errout[-300:]}")

    def guest_found(vm, after=0):
        """The guest's next disk report (blocks, ok, bad, blank, gen_min,
        gen_max) after the first AFTER ones."""
        def found():
            f = DISK_FOUND.findall(console(vm))
            return len(f) > after and tuple(int(x) for x in f[-1])
        return wait_for(f"{vm}'s disk report", found, timeout=180)

    def stopped():
        # Stopped in the guest's pause: the disk holds one whole generation.
        n = len(gens())
        wait_for("a generation written", lambda: len(gens()) > n or None,
                 timeout=120, interval=0.1)
        c.ctl("vm", "destroy", VM)
        st["gen_stop"] = gens()[-1]
        wait_for("the VM stopped", lambda: c.vms_by_name()[VM]["state"] == "shutoff",
                 timeout=30)
        before = {b["id"] for b in backups(VM)}
        out = c.ctl("backup", "create", VM, "--repo", "main").stdout
        new = [b for b in backups(VM) if b["id"] not in before]
        assert len(new) == 1 and new[0]["kind"] == "full", new
        assert "stopped" in out and int(new[0]["bytes_read"]) >= 128 * MiB, out
        assert not new[0]["checkpoint"], new[0]
        st["stopped"] = new[0]

    def restore_stopped():
        c.ctl("backup", "restore", st["stopped"]["id"], "--as", NEW + "s",
              "--host", "host2", "--start", "--repo", "main")
        blocks, ok, bad, blank, gmin, gmax = f = guest_found(NEW + "s")
        log(f"stopped backup (generation {st['gen_stop']}) restored: found {f}")
        assert (ok, bad, blank) == (blocks, 0, 0) and gmin >= st["gen_stop"], f

    def in_place():
        last = st["gen_stop"]
        assert last > st["gen_inc"], (last, st["gen_inc"])
        n_found = len(DISK_FOUND.findall(console(VM)))
        c.ctl("backup", "restore", st["inc"]["id"], "--in-place", "--repo", "main")
        c.ctl("vm", "start", VM)
        blocks, ok, bad, blank, gmin, gmax = guest_found(VM, n_found)
        log(f"in place: generation {st['gen_inc']} restored over {last}: "
            f"found {(blocks, ok, bad, blank, gmin, gmax)}")
        assert (ok, bad, blank) == (blocks, 0, 0)
        assert st["gen_inc"] <= gmin and gmax < last, (gmin, gmax, last)

    def restore_fails():
        name = NEW + "f"
        c.restart_agent(2, "restore-fail-after-define")
        try:
            err = ctl_fails("backup", "restore", st["inc"]["id"], "--as", name,
                            "--host", "host2", "--start", "--repo", "main")
            assert "restore-fail-after-define" in err, err
        finally:
            c.restart_agent(2)
        assert name not in c.vms_by_name(), c.vms_by_name().keys()
        assert name not in c.domains(2), c.domains(2)
        left = [f for f in os.listdir(os.path.join(c.host_data(2), "disks"))
                if f.startswith(name + ".")]
        assert not left, left

    def events():
        out = c.ctl("events", "-n", "500").stdout
        for k in ("backup.created", "backup.restored", "backup.failed"):
            assert k in out, (k, out[-2000:])
        kinds = {j["kind"] for j in c.ctl_json("jobs")["jobs"] if j["state"] == "done"}
        assert {"backup", "restore"} <= kinds, kinds

    if not tap.case("boot a guest writing its disk on host1, 128 MiB more", boot):
        return
    if not tap.case("backup create: full, allocated data only, a summary", full):
        return
    if not tap.case("backup create again: incremental, far fewer bytes", incremental):
        return
    tap.case("backup list --json shows both, backup show the incremental", list_show)
    tap.case("backup restore --as NEW --host host2 --start: every block ok", restore)
    tap.case("bad input: clear errors, nothing made", bad_input)
    tap.case("a backup of a migrating VM is refused", migrating_refused)
    if not tap.case("backup create of the stopped VM: full, says why", stopped):
        return
    tap.case("the stopped VM's backup restored on host2: every block ok",
             restore_stopped)
    tap.case("backup restore --in-place of the stopped VM: the backup's "
             "generation back", in_place)
    tap.case("a restore failing once the domain is defined leaves no VM, "
             "domain or disk", restore_fails)
    tap.case("the jobs and events of backups and restores", events)


if __name__ == "__main__":
    sys.exit(main())
