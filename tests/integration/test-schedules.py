#!/usr/bin/python3
"""Disaster-recovery schedules end to end (issue 16): droverctl ->
scheduler -> agent -> libvirt/QEMU on a real local cluster, with a short
period (10 s) so that a run comes every few seconds.

- bad input (durations, calendars, actions, names, selectors, --every
  with --at) is refused with a clear message and stores nothing;
- a snapshot schedule with --keep-last 3 fires on time, and retention
  leaves exactly the three newest of its snapshots (a snapshot of the VM
  taken by hand is never touched);
- paused, nothing new starts; run-now runs it once at once;
- the scheduler down for 25 s (two or three slots): after it comes back
  the missed slots run once, not once each, and no slot ever runs twice;
- dr report: a VM within its RPO is ok; its schedule paused past the RPO,
  the report says outside-rpo and exits 1;
- a backup schedule every 10 s with --keep-last 2: backups land in the
  repository the agents share and the older ones are pruned away; dr
  report names the newest, before and after a scheduler restart;
- restore drills: bad drill settings are refused; a drill after a good
  backup restores it into a scratch VM (on the other host), which boots
  and prints its readiness line, then goes (record, domain, disk); a
  drill interrupted by a scheduler restart is cleaned up at the next
  start and counts as failed; a drill with no host that has room for the
  scratch VM is skipped, saying so; a drill of backups whose chunks were
  corrupted fails at the restore and leaves nothing either; a drill whose
  scratch VM's agent is killed during the restore fails, and nothing of it
  is left once the agent is back;
- the VM's host lost (agent killed, VM destroyed) while a schedule backs
  it up every 10 s: its newest backup, restored on the other host, is no
  older than one interval plus that backup's duration, and boots with
  every block of its disk consistent;
- with --dr-jobs-per-repo 1, two VMs of one backup schedule due in the
  same second on two hosts are backed up one after the other, never at
  once.
- faults: the agent killed (fault point, as kill -9) during a scheduled
  backup: the run failed with the host and why (schedule show, dr report,
  job list, the event naming its retry), no manifest of it, the last good
  backup kept, the next run good, backup verify passes, the guest writes
  on; a schedule deleted while its backup runs: the job ends done, nothing
  new starts; the agent killed during a scheduled snapshot: the snapshot
  recorded at its start is whole (deletes), the next run good; a VM that
  migrated is backed up on the host it runs on now (the job says so).
Prints TAP.
"""
import calendar
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BACKUP_GUEST_CMDLINE, CLUSTER, DISK_FOUND,  # noqa: E402
                            GUEST_DIR, log,
                            run_on_cluster, two_host_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
VM = "sched-web"
STAMP = re.compile(r"-(\d{8}-\d{6})$")
# A job whose agent was killed under it (scheduler/sched-snap-op.c).
AGENT_GONE = re.compile(r"host 'host1': (its agent stopped answering|"
                        r"the connection to its agent broke)")


def main():
    c = two_host_cluster("/tmp/drover-cluster-schedules")
    # Both agents back up into one directory, as a shared mount would be.
    # "dr" is the host-loss case's own: the drills case corrupts main's chunks.
    repo = os.path.join(c.env["DROVER_CLUSTER_DIR"], "repo-main")
    dr = os.path.join(c.env["DROVER_CLUSTER_DIR"], "repo-dr")
    c.env["DROVER_AGENT_ARGS"] = f"--backup-repo main={repo} --backup-repo dr={dr}"
    # One schedule backup at a time into a repository (the last case).
    c.env["DROVER_SCHEDULER_ARGS"] = "--dr-jobs-per-repo 1"
    return run_on_cluster(c, run_cases, tmp_prefix="drover-schedules-")


def run_cases(c, tap, tmp):
    def schedules():
        return {s["name"]: s for s in c.ctl_json("schedule", "list").get("schedules", [])}

    def snaps(prefix):
        got = c.ctl_json("snapshot", "list", VM).get("snapshots", [])
        return sorted(s["name"] for s in got if s["name"].startswith(prefix + "-"))

    def stamp(name):
        """The slot a schedule's snapshot was made for, unix seconds."""
        return calendar.timegm(time.strptime(STAMP.search(name).group(1), "%Y%m%d-%H%M%S"))

    def bad_input():
        cases = [
            (["--every", "10x"], "unit 'x' is not one of"),
            (["--every", "2s"], "--every is at least 5s"),
            (["--at", "25:00"], "hour 25 is out of range"),
            (["--every", "10s", "--at", "daily"], "exactly one of --every, --at"),
            (["--every", "10s", "--action", "copy"], "action 'copy' is not"),
            (["--every", "10s", "--select", "a/b"], "selector 'a/b'"),
            (["--every", "10s", "--keep-last=-1"], "keep counts"),
            (["--every", "10s", "--repo", "main"], "--repo is for backups"),
        ]
        for extra, says in cases:
            argv = ["schedule", "create", "bad", "--select", VM, "--action", "snapshot"]
            if "--action" in extra:
                argv = ["schedule", "create", "bad", "--select", VM]
            if "--select" in extra:
                argv = ["schedule", "create", "bad", "--action", "snapshot"]
            p = c.ctl(*argv, *extra, check=False)
            assert p.returncode != 0 and says in p.stderr, (extra, p.returncode, p.stderr)
        p = c.ctl("schedule", "create", "a/b", "--select", VM, "--action", "snapshot",
                  "--every", "10s", check=False)
        assert p.returncode != 0 and "schedule" in p.stderr, p.stderr
        p = c.ctl("schedule", "show", "nope", check=False)
        assert p.returncode != 0 and "nope" in p.stderr, p.stderr
        assert schedules() == {}, schedules()

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "128M", "--disk", "16M",
              "--host", "host1", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", BACKUP_GUEST_CMDLINE)  # its disk holds data to restore
        wait_for(f"{VM} running", lambda: c.vms_by_name()[VM]["state"] == "running", 120)
        c.ctl("snapshot", "create", VM, "by-hand")

    def retention():
        s = c.ctl_json("schedule", "create", "sch1", "--select", "sched-*",
                       "--action", "snapshot", "--every", "10s", "--keep-last", "3")
        assert s["matched"] == [VM], s
        wait_for("five runs of sch1",
                 lambda: schedules()["sch1"].get("runs_ok", 0) >= 5, 150, 2)
        kept = wait_for("retention down to three",
                        lambda: (lambda n: n if len(n) == 3 else None)(snaps("sch1")),
                        60, 2)
        log(f"sch1 kept {kept}; {schedules()['sch1']}")
        stamps = [stamp(n) for n in kept]
        assert all(b - a >= 10 and (b - a) % 10 == 0
                   for a, b in zip(stamps, stamps[1:])), kept
        assert "by-hand" in [x["name"] for x in
                             c.ctl_json("snapshot", "list", VM)["snapshots"]]
        assert schedules()["sch1"].get("runs_failed", 0) == 0, schedules()["sch1"]

    def pause_and_run_now():
        c.ctl("schedule", "pause", "sch1")
        time.sleep(3)  # a run already started may finish
        before = schedules()["sch1"].get("runs_ok", 0)
        time.sleep(15)
        s = schedules()["sch1"]
        assert s["paused"] and s.get("runs_ok", 0) == before, s
        out = c.ctl("schedule", "run-now", "sch1").stdout
        assert "1 VM(s) queued" in out, out
        wait_for("the run-now run", lambda: schedules()["sch1"].get("runs_ok", 0) == before + 1,
                 60, 1)
        c.ctl("schedule", "delete", "sch1")
        assert "sch1" not in schedules()

    def restart_catch_up():
        c.ctl("schedule", "create", "sch2", "--select", VM, "--action", "snapshot",
              "--every", "10s")
        wait_for("the first run of sch2", lambda: len(snaps("sch2")) >= 1, 60, 1)
        t0 = time.time()
        c.env["DROVER_RESTART_PAUSE_S"] = "25"
        try:
            c.harness("restart-scheduler")
        finally:
            del c.env["DROVER_RESTART_PAUSE_S"]
        t1 = time.time()
        # After the restart: the missed slots' one run, then the regular ones.
        wait_for("two runs of sch2 after the restart",
                 lambda: len([n for n in snaps("sch2") if stamp(n) >= t0]) >= 2, 90, 1)
        names = snaps("sch2")
        stamps = [stamp(n) for n in names]
        log(f"down {t0:.0f}..{t1:.0f}; sch2 made {names}")
        # Down from about t0 for 25 s (then it waits for the hosts): the
        # slots of that time, two or three, run once between them.
        missed = [s for s in stamps if t0 < s < t0 + 24]
        assert len(missed) == 1, f"slots run while the scheduler was down: {missed}"
        assert len(set(stamps)) == len(stamps), names
        assert all(b - a >= 10 for a, b in zip(stamps, stamps[1:])), names
        s = schedules()["sch2"]
        assert s.get("runs_failed", 0) == 0, s
        c.ctl("schedule", "delete", "sch2")

    def report():
        c.ctl("schedule", "create", "sch3", "--select", VM, "--action", "snapshot",
              "--every", "10s", "--rpo", "15s")
        wait_for("a run of sch3", lambda: len(snaps("sch3")) >= 1, 60, 1)
        p = c.ctl("dr", "report", "--json", check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        row = [v for v in json.loads(p.stdout)["vms"] if v["schedule"] == "sch3"][0]
        assert row["vm"] == VM and row["state"] == "ok", row
        assert row["last_good"] in snaps("sch3"), row
        # Paused past its RPO: the report says so and exits 1.
        c.ctl("schedule", "pause", "sch3")
        p = wait_for("sch3 outside its RPO",
                     lambda: (lambda p: p if p.returncode == 1 else None)(
                         c.ctl("dr", "report", check=False)), 40, 2)
        assert "outside-rpo" in p.stdout and "not within their RPO" in p.stderr, \
            p.stdout + p.stderr
        c.ctl("schedule", "delete", "sch3")

    def backups():
        def listed():
            got = c.ctl_json("backup", "list", VM, "--repo", "main").get("backups", [])
            return [b for b in got if b["vm"] == VM]

        c.ctl("schedule", "create", "bk1", "--select", VM, "--action", "backup",
              "--repo", "main", "--every", "10s", "--keep-last", "2", "--rpo", "5m")
        wait_for("three backups by bk1",
                 lambda: schedules()["bk1"].get("runs_ok", 0) >= 3, 120, 2)
        kept = wait_for("the repository pruned to two",
                        lambda: (lambda b: b if len(b) == 2 else None)(listed()), 60, 2)
        log(f"bk1 kept {[b['id'] for b in kept]}; {schedules()['bk1']}")
        assert schedules()["bk1"].get("runs_failed", 0) == 0, schedules()["bk1"]

        # dr report knows the newest backup a run made, and so does a
        # scheduler that restarted (the store keeps it).
        def bk1_row():
            p = c.ctl("dr", "report", "--json", check=False)
            return [v for v in json.loads(p.stdout)["vms"] if v["schedule"] == "bk1"][0]

        def settled():
            # A run that was under way when paused has ended.
            row = bk1_row()
            time.sleep(3)
            newest = max(listed(), key=lambda b: int(b["start_s"]))["id"]
            return row if row == bk1_row() and row["last_good"] == newest else None

        c.ctl("schedule", "pause", "bk1")
        row = wait_for("dr report names the newest backup", settled, 60, 1)
        assert row["state"] == "ok" and row.get("last_good_ms", 0) > 0, row
        c.harness("restart-scheduler")
        wait_for("hosts up again", lambda: all(
            h["state"] == "up" for h in c.hosts_by_name().values()), 60)
        again = bk1_row()
        assert (again["last_good"], again["last_good_ms"]) == \
            (row["last_good"], row["last_good_ms"]), (again, row)
        log(f"dr report after a restart: {again['last_good']} {again['state']}")
        c.ctl("schedule", "delete", "bk1")

    def scratch_left():
        """Scratch VMs anywhere: the scheduler's records, libvirt's
        domains, disk files on either host."""
        left = [v for v in c.vms_by_name() if v.startswith("drill-")]
        for i in (1, 2):
            left += [d for d in c.virsh(i, "list", "--all", "--name").stdout.split()
                     if d.startswith("drill-")]
            disks = os.path.join(c.host_data(i), "disks")
            left += [f for f in os.listdir(disks) if f.startswith("drill-")]
        return left

    def drills():
        def row():
            p = c.ctl("dr", "report", "--json", check=False)
            return [v for v in json.loads(p.stdout)["vms"] if v["schedule"] == "bk2"][0]

        def drill_ended(since):
            r = row()
            return r if r.get("last_drill_ms", 0) > since and not r.get("drill_vm") else None

        # Bad input first: clear errors, nothing stored.
        for args, want in (
                (["--action", "snapshot", "--drill-every", "2"], "need --action backup"),
                (["--action", "backup", "--drill-ready", "(unclosed"], "readiness pattern"),
                (["--action", "backup", "--drill-timeout", "2s"], "drill timeout"),
        ):
            p = c.ctl("schedule", "create", "bad-drill", "--select", VM, "--every", "1h",
                      *args, check=False)
            assert p.returncode != 0 and want in p.stderr, (args, p.stderr)
        assert "bad-drill" not in schedules()

        c.ctl("schedule", "create", "bk2", "--select", VM, "--action", "backup",
              "--repo", "main", "--every", "1h", "--drill-every", "1",
              "--drill-ready", "^HB 3 ", "--drill-timeout", "5m")
        p = c.ctl("schedule", "drill", "bk2", check=False)
        assert p.returncode == 0 and "no backup" in p.stdout, p.stdout + p.stderr
        p = c.ctl("schedule", "drill", "bk2", "--vm", "nosuch", check=False)
        assert p.returncode != 0 and "does not select" in p.stderr, p.stderr

        # A good backup, then a drill on its own (--drill-every 1): the
        # scratch VM boots on the other host, is ready, and goes.
        t0 = time.time() * 1000
        c.ctl("schedule", "run-now", "bk2")
        r = wait_for("the first drill's end", lambda: drill_ended(t0), 300, 2)
        log(f"drill: {r.get('last_drill')} recovery {r.get('recovery_ms', 0)} ms "
            f"{r.get('last_drill_error', '')}")
        assert r["last_drill"] == "passed" and r.get("recovery_ms", 0) > 0, r
        assert wait_for("scratch VM gone", lambda: not scratch_left() or None, 60, 1)
        text = c.ctl("dr", "report", check=False).stdout
        assert "passed" in text, text

        # The scheduler stopped in the middle of a drill: its next start
        # deletes the scratch VM; the drill counts as failed.
        t1 = time.time() * 1000
        p = c.ctl("schedule", "drill", "bk2", "--json")
        scratch = json.loads(p.stdout)["drills"][0]["scratch_vm"]
        wait_for(f"{scratch} restored", lambda: scratch in c.vms_by_name() or None, 120, 1)
        c.harness("restart-scheduler")
        r = wait_for("the interrupted drill's end", lambda: drill_ended(t1), 120, 2)
        assert r["last_drill"] == "failed" and "stopped during the drill" in \
            r.get("last_drill_error", ""), r
        assert wait_for("scratch VM gone after the restart",
                        lambda: not scratch_left() or None, 60, 1)

        # No host with room for the scratch VM (the scheduler keeps 1 TiB
        # of each host from VMs): the drill is skipped, saying why, and
        # makes nothing.
        args = c.env.get("DROVER_SCHEDULER_ARGS", "")
        c.env["DROVER_SCHEDULER_ARGS"] = (args + " --memory-reserve 1T").strip()
        try:
            c.harness("restart-scheduler")
            wait_for("both hosts up", lambda: all(
                h["state"] == "up" for h in c.hosts_by_name().values()), 60)
            t3 = time.time() * 1000
            c.ctl("schedule", "drill", "bk2")
            r = wait_for("the drill without room", lambda: drill_ended(t3), 120, 2)
            log(f"drill without room: {r['last_drill']}: {r.get('last_drill_error')}")
            assert r["last_drill"] == "skipped" and "no host can run" in \
                r.get("last_drill_error", ""), r
            assert not scratch_left(), scratch_left()
        finally:
            c.env["DROVER_SCHEDULER_ARGS"] = args
            c.harness("restart-scheduler")
        wait_for("both hosts up", lambda: all(
            h["state"] == "up" for h in c.hosts_by_name().values()), 60)

        # Backups whose data was corrupted fail their drill, and leave
        # nothing behind either.
        chunks = os.path.join(c.env["DROVER_CLUSTER_DIR"], "repo-main", "chunks")
        n = 0
        for d, _, files in os.walk(chunks):
            for f in files:
                with open(os.path.join(d, f), "r+b") as fh:
                    data = bytearray(fh.read())
                    if data:
                        data[len(data) // 2] ^= 0xff
                        fh.seek(0)
                        fh.write(data)
                        n += 1
        assert n > 0, "no chunk to corrupt"
        t2 = time.time() * 1000
        c.ctl("schedule", "drill", "bk2")
        r = wait_for("the corrupted backup's drill", lambda: drill_ended(t2), 300, 2)
        log(f"corrupted {n} chunks: drill {r['last_drill']}: {r.get('last_drill_error')}")
        assert r["last_drill"] == "failed" and "restore" in r.get("last_drill_error", ""), r
        assert wait_for("no scratch VM after the failed drill",
                        lambda: not scratch_left() or None, 60, 1)
        c.ctl("schedule", "delete", "bk2")

    def labels():
        # Bad labels are refused whole; nothing changes.
        for bad in (["Tier=db"], ["tier=d b"], ["=db"], [f"k{i}=v" for i in range(17)]):
            p = c.ctl("vm", "label", VM, *bad, check=False)
            assert p.returncode != 0 and "label" in p.stderr, (bad, p.stderr)
        assert c.ctl_json("vm", "show", VM).get("labels", "") == ""
        p = c.ctl("vm", "label", "nosuch-vm", "tier=db", check=False)
        assert p.returncode != 0 and "nosuch-vm" in p.stderr, p.stderr
        c.ctl("vm", "label", VM, "tier=db", "zone=a")
        c.ctl("vm", "label", VM, "zone-", "app=web")
        got = c.ctl_json("vm", "show", VM)["labels"]
        assert got == "app=web,tier=db", got
        # A schedule selects by label; another value matches nothing.
        p = c.ctl("schedule", "create", "lab1", "--select", "label:tier=db",
                  "--action", "snapshot", "--every", "1h", "--paused", "--json", check=False)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["matched"] == [VM], p.stdout
        p = c.ctl("schedule", "create", "lab2", "--select", "label:tier=web",
                  "--action", "snapshot", "--every", "1h", "--paused", "--json")
        assert json.loads(p.stdout).get("matched", []) == [], p.stdout
        p = c.ctl("schedule", "create", "lab3", "--select", "label:Bad=x",
                  "--action", "snapshot", "--every", "1h", check=False)
        assert p.returncode != 0 and "label" in p.stderr, p.stderr
        # A group is the label "group": group:NAME selects it.
        c.ctl("vm", "label", VM, "group=prod")
        p = c.ctl("schedule", "create", "grp1", "--select", "group:prod",
                  "--action", "snapshot", "--every", "1h", "--paused", "--json")
        assert json.loads(p.stdout)["matched"] == [VM], p.stdout
        p = c.ctl("schedule", "create", "grp2", "--select", "group:dev",
                  "--action", "snapshot", "--every", "1h", "--paused", "--json")
        assert json.loads(p.stdout).get("matched", []) == [], p.stdout
        for bad in ("group:", "group:a/b", "group:../x"):
            p = c.ctl("schedule", "create", "grp3", "--select", bad,
                      "--action", "snapshot", "--every", "1h", check=False)
            assert p.returncode != 0 and "group" in p.stderr, (bad, p.stderr)
        c.ctl("vm", "label", VM, "group-")
        assert c.ctl_json("schedule", "show", "grp1").get("matched", []) == []
        c.ctl("vm", "label", VM, "tier-")
        assert c.ctl_json("schedule", "show", "lab1").get("matched", []) == []
        # The labels stay across a scheduler restart (the store keeps them).
        c.harness("restart-scheduler")
        wait_for("the VM again", lambda: VM in c.vms_by_name(), 60)
        assert c.ctl_json("vm", "show", VM)["labels"] == "app=web"
        for s in ("lab1", "lab2", "grp1", "grp2"):
            c.ctl("schedule", "delete", s)

    def host_lost():
        every = 10

        def listed():
            got = c.ctl_json("backup", "list", VM, "--repo", "dr").get("backups", [])
            return [b for b in got if b["vm"] == VM]

        c.ctl("schedule", "create", "bk3", "--select", VM, "--action", "backup",
              "--repo", "dr", "--every", f"{every}s", "--keep-last", "3")
        wait_for("two backups by bk3",
                 lambda: schedules()["bk3"].get("runs_ok", 0) >= 2, 120, 1)
        # The host goes: its agent killed, the VM's QEMU with it.
        c.harness("kill-agent", "1", "KILL")
        c.virsh(1, "destroy", VM)
        lost = time.time()
        newest = max(listed(), key=lambda b: int(b["start_s"]))
        shown = c.ctl_json("backup", "show", newest["id"], "--repo", "dr")
        took = int(shown["end_s"]) - int(shown["start_s"])
        age = lost - int(newest["start_s"])
        log(f"host lost {age:.1f} s after the newest backup began ({newest['id']}, "
            f"took {took} s)")
        # start_s is whole seconds: one more of slack.
        assert age <= every + took + 1, (age, every, took, newest)
        # Once the scheduler has host1 down, dr report calls the VM's
        # RPO at risk (nobody can say how its copies stand), exit 1.
        wait_for("host1 down", lambda: c.hosts_by_name()["host1"]["state"] == "down",
                 30)

        def bk3_row():
            p = c.ctl("dr", "report", "--json", check=False)
            return [v for v in json.loads(p.stdout)["vms"] if v["schedule"] == "bk3"][0]
        row = bk3_row()
        assert row["vm"] == VM and row["state"] == "rpo-at-risk", row
        p = c.ctl("dr", "report", check=False)
        assert p.returncode == 1 and "rpo-at-risk" in p.stdout, p.stdout + p.stderr
        c.ctl("schedule", "delete", "bk3")

        new = "sched-web-dr"
        p = c.ctl("backup", "restore", newest["id"], "--as", new, "--host", "host2",
                  "--start", "--repo", "dr")
        log(p.stdout.strip())
        assert c.where(new).get(2, (None, None))[1] == "running", c.where(new)

        def found():
            m = DISK_FOUND.search(c.ctl("vm", "console", new).stdout)
            return m and tuple(int(x) for x in m.groups())
        f = wait_for("the restored guest's disk report", found, 180, 1)
        blocks, ok, bad, blank, gmin, gmax = f
        log(f"restored on host2: {f}")
        assert blocks > 0 and (ok, bad, blank) == (blocks, 0, 0), f
        assert gmin >= 1, f

    def repo_limit():
        # host1's agent back (its VM stays stopped: a stopped VM's backup
        # is read from its disk); the restored VM runs on host2.
        subprocess.run([CLUSTER, "start-agent", "1"], env=c.env, check=True,
                       capture_output=True, timeout=90)
        wait_for("host1 up", lambda: c.hosts_by_name()["host1"]["state"] == "up", 60)
        vms = sorted([VM, "sched-web-dr"])
        c.ctl("schedule", "create", "bk4", "--select", "sched-web*", "--action",
              "backup", "--repo", "dr", "--every", "1h", "--paused")
        t0 = time.time() * 1000
        c.ctl("schedule", "run-now", "bk4")  # both due now

        def done():
            got = [j for j in c.ctl_json("jobs")["jobs"]
                   if j["kind"] == "backup" and j["vm"] in vms
                   and int(j["created_ms"]) >= t0 - 1000]
            return got if len(got) == 2 and all(
                j["state"] in ("done", "failed") for j in got) else None
        jobs = sorted(wait_for("both backups of bk4", done, 180, 1),
                      key=lambda j: int(j["created_ms"]))
        log("bk4 jobs: " + ", ".join(
            f"{j['vm']} {j['state']} {int(j['created_ms']) - t0:.0f}.."
            f"{int(j['updated_ms']) - t0:.0f} ms" for j in jobs))
        assert [j["state"] for j in jobs] == ["done", "done"], jobs
        assert sorted(j["vm"] for j in jobs) == vms, jobs
        # The second began only once the first had ended.
        assert int(jobs[1]["created_ms"]) >= int(jobs[0]["updated_ms"]), jobs
        c.ctl("schedule", "delete", "bk4")

    # --- faults (issue 16's untested paths) --------------------------------
    fault = {}

    def now_ms():
        return int(time.time() * 1000)

    def start_agent(i, faults=None):
        """Starts host I's agent (after it died) with FAULTS or none."""
        env = dict(c.env)
        env.pop("DROVER_FAULTS", None)
        if faults:
            env["DROVER_FAULTS"] = faults
        subprocess.run([CLUSTER, "start-agent", str(i)], env=env, check=True,
                       capture_output=True, timeout=90)
        wait_for(f"host{i} up", lambda: c.hosts_by_name()[f"host{i}"]["state"] == "up", 60)

    def events(since):
        out = c.ctl("events", "-n", "1000", "--json").stdout
        return [e for e in map(json.loads, out.splitlines())
                if int(e.get("time_ms", 0)) >= since]

    def runs_of(name, since):
        return [e for e in events(since) if e["kind"] == "schedule.run"
                and e["message"].startswith(f"schedule {name}: ")]

    def jobs_of(vm, kind, since):
        return [j for j in c.ctl_json("jobs")["jobs"] if j["kind"] == kind
                and j["vm"] == vm and int(j["created_ms"]) >= since]

    def report_row(name, vm=VM):
        p = c.ctl("dr", "report", "--json", check=False)
        return [v for v in json.loads(p.stdout)["vms"]
                if v["schedule"] == name and v["vm"] == vm][0]

    def disk_gen(vm=VM):
        got = re.findall(r"^DROVER-GUEST disk gen (\d+) written",
                         c.ctl("vm", "console", vm).stdout, re.M)
        return int(got[-1]) if got else 0

    def backup_killed():
        def listed():
            got = c.ctl_json("backup", "list", VM, "--repo", "dr").get("backups", [])
            return sorted(b["id"] for b in got if b["vm"] == VM)

        # The guest writes its disk (every backup then reads data).
        wait_for("the guest writing its disk", lambda: disk_gen() >= 1, 180, 1)
        c.ctl("schedule", "create", "bkf", "--select", VM, "--action", "backup",
              "--repo", "dr", "--every", "10s", "--keep-last", "2", "--paused")
        c.ctl("schedule", "run-now", "bkf")
        wait_for("bkf's first backup", lambda: schedules()["bkf"].get("runs_ok", 0) == 1,
                 120, 1)
        good = listed()
        assert len(good) == 1, good
        gen = disk_gen()
        # The next backup kills its agent (as kill -9) once data flows.
        c.restart_agent(1, "backup-crash-reading")
        t1 = now_ms()
        c.ctl("schedule", "run-now", "bkf")
        s = wait_for("the killed run counted", lambda: (lambda s: s if s.get(
            "runs_failed", 0) >= 1 else None)(schedules()["bkf"]), 120, 1)
        log(f"bkf after the kill: {s}")
        assert s["runs_failed"] == 1 and s["failures_in_row"] == 1, s
        assert AGENT_GONE.search(s["last_error"]) \
            and VM in s["last_error"], s
        failed = [j for j in jobs_of(VM, "backup", t1) if j["state"] == "failed"]
        assert len(failed) == 1 and failed[0].get("error"), failed
        assert failed[0].get("source_host") == "host1", failed
        row = report_row("bkf")
        assert row["failures_in_row"] == 1 and "host1" in row.get("last_error", ""), row
        assert row["last_good"] == good[0], row
        ev = [e for e in runs_of("bkf", t1) if e.get("state") == "failed"]
        assert len(ev) == 1 and failed[0]["id"] in ev[0]["message"] \
            and "attempt 1 of 3; again in 30 s" in ev[0]["message"], ev
        # No manifest of the broken backup; the last good one stays.
        assert listed() == good, (listed(), good)
        # The agent back (holding each backup a moment, for the next case):
        # libvirt's backup job the dead agent left is ended.
        start_agent(1, "backup-hold-reading")
        wait_for("no libvirt job left", lambda: "None" in c.virsh(
            1, "domjobinfo", VM).stdout, 30, 1)
        wait_for(f"{VM} running", lambda: c.vms_by_name()[VM]["state"] == "running", 30, 1)
        t2 = now_ms()
        c.ctl("schedule", "resume", "bkf")
        s = wait_for("bkf's next run good", lambda: (lambda s: s if s.get(
            "runs_ok", 0) >= 2 else None)(schedules()["bkf"]), 60, 1)
        assert s["failures_in_row"] == 0 and s["runs_failed"] == 1, s
        row = report_row("bkf")
        assert row["failures_in_row"] == 0 and row["last_good"] != good[0], row
        # Retention (keep-last 2) kept the last good one and the new one.
        now = wait_for("bkf's two backups", lambda: (lambda b: b if len(b) == 2 else None)(
            listed()), 30, 1)
        assert good[0] in now and row["last_good"] in now, (now, good, row)
        p = c.ctl("backup", "verify", "--all", "--repo", "dr", check=False)
        assert p.returncode == 0, p.stdout + p.stderr
        # The guest wrote on, its disk sound, across the agent's death.
        wait_for("the guest writing on", lambda: disk_gen() > gen, 30, 1)
        text = c.ctl("vm", "console", VM).stdout
        assert "DROVER-GUEST error" not in text, text[-2000:]
        assert c.vms_by_name()[VM]["state"] == "running"
        log(f"bkf: kept {now}, took {(now_ms() - t2) / 1000:.1f} s to the next good run")

    def delete_while_running():
        # bkf runs every 10 s and the agent holds each backup 4 s.
        since = now_ms()
        job = wait_for("a bkf backup running", lambda: (lambda j: j[0] if j else None)(
            [j for j in jobs_of(VM, "backup", since) if j["state"] == "running"]), 30, 0.5)
        c.ctl("schedule", "delete", "bkf")
        fault["deleted_ms"] = now_ms()
        end = wait_for("the running job's end", lambda: (lambda j: j if j["state"] in (
            "done", "failed") else None)(
            [j for j in c.ctl_json("jobs")["jobs"] if j["id"] == job["id"]][0]), 60, 0.5)
        assert end["state"] == "done", end
        assert int(end["updated_ms"]) >= fault["deleted_ms"], (end, fault)
        assert "bkf" not in schedules()

    def nothing_after_delete():
        # At least one period and window after the delete, nothing new.
        left = fault["deleted_ms"] / 1000 + 13 - time.time()
        if left > 0:
            time.sleep(left)
        late = [j for j in jobs_of(VM, "backup", fault["deleted_ms"])]
        assert late == [], late
        evs = runs_of("bkf", fault["deleted_ms"])
        assert len(evs) <= 1 and all(e["state"] == "done" for e in evs), evs

    def snapshot_killed():
        # The agent dies right after the snapshot switched the disk.
        c.restart_agent(1, "snapshot-create-crash-after")
        c.ctl("schedule", "create", "snf", "--select", VM, "--action", "snapshot",
              "--every", "10s", "--keep-last", "2", "--paused")
        c.ctl("schedule", "run-now", "snf")
        s = wait_for("the killed snapshot run counted", lambda: (lambda s: s if s.get(
            "runs_failed", 0) >= 1 else None)(schedules()["snf"]), 120, 1)
        log(f"snf after the kill: {s}")
        assert AGENT_GONE.search(s["last_error"]), s
        start_agent(1)
        # The disk had switched: the agent's start records the snapshot
        # (not half: listed whole), and the scheduler's list follows.
        cut = wait_for("the killed run's snapshot recorded", lambda: (
            lambda m: m if len(m) == 1 else None)(snaps("snf")), 30, 1)
        log(f"snapshot of the killed run: {cut}")
        wait_for(f"{VM} running", lambda: c.vms_by_name()[VM]["state"] == "running", 30, 1)
        c.ctl("schedule", "resume", "snf")
        wait_for("snf's next run good", lambda: schedules()["snf"].get("runs_ok", 0) >= 1,
                 60, 1)
        c.ctl("schedule", "pause", "snf")
        s = schedules()["snf"]
        assert s["failures_in_row"] == 0, s
        # Whatever the killed run left is a whole snapshot: it deletes.
        for name in cut:
            c.ctl("snapshot", "delete", VM, name)
        wait_for("snf's snapshots", lambda: not set(cut) & set(snaps("snf")), 60, 1)
        assert "DROVER-GUEST error" not in c.ctl("vm", "console", VM).stdout
        assert c.vms_by_name()[VM]["state"] == "running"
        c.ctl("schedule", "delete", "snf")

    def moved(vm="sched-web-dr"):
        c.ctl("schedule", "create", "bkm", "--select", vm, "--action", "backup",
              "--repo", "dr", "--every", "10s", "--paused")
        was = c.vms_by_name()[vm]
        assert was["state"] == "running", was
        to = "host1" if was["host"] == "host2" else "host2"
        c.ctl("migrate", vm, "--to", to)
        wait_for(f"{vm} running on {to}", lambda: (lambda v: v["host"] == to and v[
            "state"] == "running")(c.vms_by_name()[vm]), 30, 1)
        t1 = now_ms()
        c.ctl("schedule", "resume", "bkm")
        wait_for("bkm's run after the move", lambda: schedules()["bkm"].get(
            "runs_ok", 0) >= 1, 60, 1)
        c.ctl("schedule", "delete", "bkm")
        done = [j for j in jobs_of(vm, "backup", t1) if j["state"] == "done"]
        assert done and all(j.get("source_host") == to for j in done), done
        ev = [e for e in runs_of("bkm", t1) if e.get("state") == "done"]
        assert ev and all(e["host"] == to for e in ev), ev
        log(f"{vm} moved to {to}: backed up there by job {done[0]['id']}")

    def drill_agent_killed(vm="sched-web-dr"):
        # The scratch VM's host loses its agent in the middle of the drill's
        # restore: the drill fails saying so, and once the agent is back
        # nothing of the scratch VM is left anywhere.
        c.ctl("schedule", "create", "bkd", "--select", vm, "--action", "backup",
              "--repo", "dr", "--every", "1h", "--paused", "--drill-ready", "^HB 3 ")
        c.ctl("schedule", "run-now", "bkd")
        wait_for("bkd's backup", lambda: schedules()["bkd"].get("runs_ok", 0) >= 1,
                 120, 1)
        other = 2 if c.vms_by_name()[vm]["host"] == "host1" else 1
        c.restart_agent(other, "restore-crash-writing")

        def row():
            p = c.ctl("dr", "report", "--json", check=False)
            return [v for v in json.loads(p.stdout)["vms"] if v["schedule"] == "bkd"][0]

        t0 = now_ms()
        p = c.ctl("schedule", "drill", "bkd", "--json")
        scratch = json.loads(p.stdout)["drills"][0]["scratch_vm"]
        r = wait_for("the drill's end", lambda: (lambda r: r if r.get(
            "last_drill_ms", 0) > t0 and r.get("last_drill") else None)(row()), 180, 1)
        log(f"drill with its agent killed: {r['last_drill']}: {r.get('last_drill_error')}")
        assert r["last_drill"] == "failed" and "restore" in r.get(
            "last_drill_error", ""), r
        start_agent(other)
        left = wait_for(f"{scratch} gone everywhere", lambda: not scratch_left() or None,
                        180, 2)
        assert left, scratch_left()
        assert c.vms_by_name()[vm]["state"] == "running"
        c.ctl("schedule", "delete", "bkd")

    tap.case("bad input: clear errors, nothing stored", bad_input)
    if not tap.case("a VM with a disk, and a snapshot taken by hand", boot):
        return
    tap.case("VM labels: bad ones refused, set and removed, selected by "
             "label:KEY=VALUE and group:NAME, kept across a restart", labels)
    tap.case("every 10s, keep-last 3: on time, exactly the three newest kept, "
             "the hand-made one untouched", retention)
    tap.case("paused: nothing starts; run-now runs it once", pause_and_run_now)
    tap.case("scheduler down 25 s: the missed slots run once, none twice",
             restart_catch_up)
    tap.case("dr report: ok within the RPO; paused past it, outside and exit 1",
             report)
    tap.case("a backup schedule: backups into the repository, pruned to keep-last 2",
             backups)
    tap.case("restore drills: one passes on the other host, one interrupted by a "
             "scheduler restart and one of corrupted backups fail, one without "
             "room is skipped; no scratch VM is left", drills)
    tap.case("agent killed during a scheduled backup: the run failed with its "
             "reason (show, dr report, job list), retried, the next run good, the "
             "repository sound, the VM running", backup_killed)
    tap.case("a schedule deleted while its backup runs: the job finishes done",
             delete_while_running)
    tap.case("agent killed during a scheduled snapshot: the list consistent, the "
             "VM running, the next run good", snapshot_killed)
    tap.case("a deleted schedule starts nothing afterwards", nothing_after_delete)
    tap.case("host lost: the newest backup is at most one interval plus its "
             "duration old, restores on the other host and boots consistent",
             host_lost)
    tap.case("--dr-jobs-per-repo 1: two VMs due at once on two hosts are backed "
             "up one after the other", repo_limit)
    tap.case("a VM that moved is backed up on the host it runs on now", moved)
    tap.case("the scratch VM's agent killed during a drill's restore: the drill "
             "failed, nothing left once the agent is back", drill_agent_killed)


if __name__ == "__main__":
    sys.exit(main())
