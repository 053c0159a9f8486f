#!/usr/bin/python3
"""The scheduler's event stream on a real 2-host cluster.

`droverctl events -f --json` (one JSON object per line) runs for the whole
test and must see: a VM created, stopped and started again, host2's agent
killed (host.down) and started again (host.registered), and a migration's
job.started, job.progress and job.ended. `droverctl events -n N` without
-f prints the last N and exits.

A reader that does not read (python3-grpcio, small HTTP/2 window, never
iterating) while a simulated host floods the scheduler with thousands of
VM state changes is dropped: once it reads again it gets what was queued,
then a "dropped" event saying how many it missed, then the stream ends
(RESOURCE_EXHAUSTED). Meanwhile the scheduler answers other calls at once
and a reader that keeps up sees the whole flood. Prints TAP.
"""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_DIR, ROOT,  # noqa: E402
                            SCHEDULER, Cluster, grpc_creds, log,
                            run_on_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
VM = "ev-1"
FLOOD_HOST = "flood-1"
FLOOD_VMS = 500
FLOOD_REPORTS = 20


class Follower:
    """`droverctl events -f --json` in the background; every event after
    the newest one at its start lands in self.events. It asks for the
    scheduler's backlog and drops what came before, so that nothing is
    missed however long the stream takes to open (ASan, a loaded host)."""

    def __init__(self, c):
        ctl = os.path.join(BUILD, "cli", "droverctl")
        newest = subprocess.run([ctl, "events", "-n", "1", "--json"], env=c.env,
                                check=True, capture_output=True, text=True).stdout
        self.after = json.loads(newest)["seq"] if newest.strip() else 0
        argv = [ctl, "events", "-f", "--json", "-n", "1000"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env=c.env)
        self.events = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            if ev["seq"] <= self.after and ev["kind"] != "dropped":
                continue
            with self.lock:
                self.events.append(ev)

    def find(self, pred):
        with self.lock:
            return [e for e in self.events if pred(e)]

    def wait(self, what, pred, timeout=120):
        return wait_for(what, lambda: self.find(pred), timeout=timeout)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.proc.stderr.read()


def cases(c, tap, tmp, pb):
    follower = Follower(c)

    def vm_lifecycle():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "128M",
              "--host", "host1", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", GUEST_CMDLINE)
        created = follower.wait("vm.created", lambda e: e["kind"] == "vm.created"
                                and e["vm"] == VM)
        assert created[0]["host"] == "host1", created
        job = follower.wait("the create job's end", lambda e: e["kind"] == "job.ended"
                            and e["vm"] == VM and e["job"]["kind"] == "create")
        assert job[0]["state"] == "done", job
        assert follower.find(lambda e: e["kind"] == "job.started"
                             and e["job_id"] == job[0]["job_id"]), "no job.started"
        c.ctl("vm", "stop", VM, "--force")
        follower.wait("vm.state -> shutoff", lambda e: e["kind"] == "vm.state"
                      and e["vm"] == VM and e["state"] == "shutoff")
        off = follower.find(lambda e: e["kind"] == "vm.state" and e["vm"] == VM
                            and e["state"] == "shutoff")[-1]["seq"]
        c.ctl("vm", "start", VM)
        # libvirt starts a domain paused and then resumes it: a report may
        # catch it paused in between (shutoff -> paused -> running).
        ev = follower.wait("vm.state -> running after the stop",
                           lambda e: e["kind"] == "vm.state" and e["vm"] == VM
                           and e["state"] == "running" and e["seq"] > off)
        path = [e["old_state"] for e in follower.find(
            lambda e: e["kind"] == "vm.state" and e["vm"] == VM and e["seq"] > off
            and e["seq"] <= ev[0]["seq"])]
        assert path[0] == "shutoff" and set(path[1:]) <= {"paused"}, path
        log(f"seq {ev[0]['seq']}: {ev[0]['message']} (from {' -> '.join(path)})")

    def host_down_up():
        c.harness("kill-agent", "2")
        down = follower.wait("host.down host2", lambda e: e["kind"] == "host.down"
                             and e["host"] == "host2", timeout=60)
        log(down[0]["message"])
        c.harness("start-agent", "2")
        follower.wait("host2 registered again",
                      lambda e: e["kind"] == "host.registered" and e["host"] == "host2"
                      and e["seq"] > down[0]["seq"] and e["old_state"] == "down",
                      timeout=60)
        wait_for("host2 up", lambda: c.hosts_by_name()["host2"]["state"] == "up")

    def migration():
        c.ctl("migrate", VM, "--to", "host2", timeout=600)
        ended = follower.wait("job.ended of the migration",
                              lambda e: e["kind"] == "job.ended" and e["vm"] == VM
                              and e["job"]["kind"] == "migrate")
        job_id = ended[0]["job_id"]
        assert ended[0]["state"] == "done", ended
        started = follower.find(lambda e: e["kind"] == "job.started"
                                and e["job_id"] == job_id)
        progress = follower.find(lambda e: e["kind"] == "job.progress"
                                 and e["job_id"] == job_id)
        assert started, "no job.started"
        assert progress, "no job.progress"
        phases = [p["job"]["migration"]["phase"] for p in progress
                  if p["job"]["migration"]]
        log(f"{len(progress)} progress events, phases {phases}")
        assert started[0]["seq"] < progress[0]["seq"] < ended[0]["seq"]
        assert ended[0]["job"]["dest_host"] == "host2"
        assert ended[0]["job"]["migration"]["phase"] == "completed", ended
        moved = follower.find(lambda e: e["kind"] == "vm.moved" and e["vm"] == VM
                              and e["host"] == "host2" and e["seq"] > started[0]["seq"])
        assert moved and moved[0]["state"] == "running", moved

    def last_n():
        p = c.ctl("events", "-n", "5", "--json")
        lines = p.stdout.splitlines()
        assert len(lines) == 5, p.stdout
        seqs = [json.loads(x)["seq"] for x in lines]
        assert seqs == sorted(seqs) and seqs[-1] - seqs[0] == 4, seqs
        text = c.ctl("events", "-n", "12").stdout.splitlines()
        assert len(text) == 12, text
        log("\n".join(text))

    def slow_reader_dropped():
        import grpc
        pki = os.path.join(c.env["DROVER_CLUSTER_DIR"], "pki")
        subprocess.run([os.path.join(ROOT, "scripts", "pki"), pki, "host",
                        FLOOD_HOST, "127.0.0.1"], check=True, capture_output=True)
        sched = c.env["DROVER_SCHEDULER"]
        # The stalled reader: a small, fixed HTTP/2 window, never read.
        slow_ch = grpc.secure_channel(sched, grpc_creds(os.path.join(pki, "droverctl")),
                                      options=[("grpc.http2.bdp_probe", 0)])
        watch = slow_ch.unary_stream(SCHEDULER + "WatchEvents",
                                     request_serializer=lambda m: m.SerializeToString(),
                                     response_deserializer=pb.Event.FromString)
        stalled = watch(pb.WatchEventsRequest(follow=True), timeout=300)
        fast = Follower(c)

        host_ch = grpc.secure_channel(sched, grpc_creds(os.path.join(pki, FLOOD_HOST)))
        unary = lambda m, cls: host_ch.unary_unary(  # noqa: E731
            SCHEDULER + m, request_serializer=lambda x: x.SerializeToString(),
            response_deserializer=cls.FromString)
        info = pb.HostInfo(name=FLOOD_HOST, address="127.0.0.1:1", cpus=0,
                           memory_total=0, accel="tcg")
        unary("RegisterHost", pb.RegisterHostReply)(
            pb.RegisterHostRequest(host=info), timeout=30)
        report = unary("ReportHost", pb.ReportHostReply)
        slowest = 0.0
        # Each report changes FLOOD_VMS VMs at once, and the next goes only
        # once the reader that keeps up has them all: that reader is never
        # more than one report (under SCHED_EVENTS_QUEUE_MAX) behind, however
        # slow this machine is, while the stalled one falls behind at the
        # third. Operators are asked every fourth report.
        flood_t0 = time.monotonic()
        last_vm = f"flood-vm-{FLOOD_VMS - 1}"
        for seq in range(1, FLOOD_REPORTS + 1):
            state = "running" if seq % 2 else "paused"
            vms = [pb.VmStatus(name=f"flood-vm-{i}", state=state, vcpus=1,
                               memory=1 << 20) for i in range(FLOOD_VMS)]
            report(pb.ReportHostRequest(host=info, vms=vms, seq=seq), timeout=60)
            wait_for(f"report {seq}'s events", lambda: len(
                fast.find(lambda e: e["vm"] == last_vm)) >= seq, timeout=60,
                interval=0.05)
            # The scheduler keeps answering operators meanwhile.
            if seq % 4 == 0:
                t0 = time.monotonic()
                c.ctl("hosts")
                slowest = max(slowest, time.monotonic() - t0)
            time.sleep(0.1)
        log(f"flood in {time.monotonic() - flood_t0:.1f}s; slowest `droverctl hosts` "
            f"during it: {slowest:.2f}s")
        assert slowest < 10, slowest
        total = FLOOD_REPORTS * FLOOD_VMS

        # The reader that keeps up sees the last report's changes.
        fast.wait("the flood's end",
                  lambda e: e["kind"] == "vm.state" and e["vm"] == f"flood-vm-{FLOOD_VMS - 1}"
                  and e["state"] == "paused", timeout=60)
        got_fast = len(fast.find(lambda e: e["vm"].startswith("flood-vm-")))
        dropped_fast = fast.find(lambda e: e["kind"] == "dropped")
        fast.stop()
        assert not dropped_fast, dropped_fast
        assert got_fast == total, (got_fast, total)

        # The stalled one is ended within SCHED_EVENTS_LAG_MAX_MS (10 s)
        # even though it never read; now it reads what was queued.
        time.sleep(12)
        got, last, status = 0, None, None
        first_seq = None
        try:
            for ev in stalled:
                got += 1
                last = ev
                first_seq = ev.seq if first_seq is None else first_seq
        except grpc.RpcError as e:
            status = e.code()
        log(f"stalled reader got {got} events, then {last.kind if last else None} "
            f"(missed {last.missed if last else 0}), status {status}")
        assert last is not None and last.kind == "dropped", last
        assert last.missed > 0 and "missed" in last.message, last
        # Every event from its first to the marker's was either delivered
        # or counted as missed.
        assert got - 1 + last.missed == last.seq - first_seq + 1, \
            (got, last.missed, first_seq, last.seq)
        assert status == grpc.StatusCode.RESOURCE_EXHAUSTED, status
        slow_ch.close()
        host_ch.close()
        # And the scheduler logged it and goes on.
        c.ctl("hosts")
        with open(os.path.join(c.env["DROVER_CLUSTER_DIR"], "logs", "scheduler.log")) as f:
            assert "event stream dropped" in f.read()

    try:
        tap.case("VM created, stopped and started: events", vm_lifecycle)
        tap.case("host down and up: events", host_down_up)
        tap.case("migration: job.started, job.progress, job.ended", migration)
        tap.case("events -n N without -f: the last N", last_n)
        tap.case("a reader that does not read is dropped with a marker",
                 slow_reader_dropped)
    finally:
        err = follower.stop()
        if err.strip():
            log(f"follower stderr: {err.strip()}")


if __name__ == "__main__":
    sys.exit(run_on_cluster(Cluster(hosts=2), cases, with_pb=True,
                            tmp_prefix="drover-events-"))
