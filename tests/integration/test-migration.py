#!/usr/bin/python3
"""Live migration on a real 2-host cluster (TCG guests), driven at the
agents' AgentService (PrepareIncoming on the destination, MigrateOut on the
source) with Debian's python3-grpcio, the way the scheduler drives them.

Checks: the VM ends persistent and running on exactly one host, the guest's
heartbeat counter in the console (`HB <n> <mono_ms>`) never resets and
never skips back, across hosts (console history follows the VM), and
failures (wrong/reused token, channel cut, destination agent killed) leave
the VM running on the source with nothing left behind. Prints TAP.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (GUEST_DIR, ROOT, Cluster, Tap, log,  # noqa: E402
                            wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = ("console=ttyS0 quiet drover.hb_ms=10 drover.ws_mib=32 "
           "drover.rate_mib=8 drover.data=text")
VM = "mig1"
MEMORY = 256 * 1024 * 1024
AGENT = "/drover.v1.AgentService/"


def load_pb(tmp):
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"),
                    "--python_out=" + tmp, "drover.proto"], check=True)
    sys.path.insert(0, tmp)
    import drover_pb2  # noqa: E402
    return drover_pb2


class Agents:
    def __init__(self, c, pb):
        import grpc
        self.grpc = grpc
        self.c = c
        self.pb = pb
        d = c.env["DROVER_CLUSTER_DIR"]
        pki = os.path.join(d, "pki", "droverctl")
        rd = lambda f: open(os.path.join(pki, f), "rb").read()  # noqa: E731
        self.creds = grpc.ssl_channel_credentials(rd("ca.pem"), rd("key.pem"),
                                                  rd("cert.pem"))

    def addr(self, i):
        return f"127.0.0.{i + 1}:7401"

    def channel(self, i):
        return self.grpc.secure_channel(self.addr(i), self.creds)

    def unary(self, i, method, req, reply_cls, timeout=30):
        with self.channel(i) as ch:
            f = ch.unary_unary(AGENT + method,
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=reply_cls.FromString)
            return f(req, timeout=timeout)

    def spec(self):
        pb = self.pb
        return pb.VmSpec(name=VM, vcpus=1, memory=MEMORY, kernel=KERNEL,
                         initrd=INITRD, cmdline=CMDLINE, accel="tcg")

    def prepare(self, job, src, dst):
        pb = self.pb
        req = pb.PrepareIncomingRequest(job_id=job, spec=self.spec(),
                                        source_host=f"host{src}",
                                        source_address=self.addr(src))
        return self.unary(dst, "PrepareIncoming", req, pb.PrepareIncomingReply)

    def cancel_incoming(self, job, token, dst):
        pb = self.pb
        return self.unary(dst, "CancelIncoming",
                          pb.CancelIncomingRequest(job_id=job, token=token),
                          pb.Empty)

    def migrate_out(self, job, src, dst, prep, token=None, on_msg=None,
                    timeout=300):
        """Returns (list of MigrationProgress, grpc error or None)."""
        pb = self.pb
        req = pb.MigrateOutRequest(
            job_id=job, name=VM, dest_host=f"host{dst}",
            dest_address=self.addr(dst),
            channel_address=prep.channel_address,
            token=token if token is not None else prep.token,
            dest_console_path=prep.console_path,
            dest_disk_path=prep.disk_path)
        msgs = []
        with self.channel(src) as ch:
            f = ch.unary_stream(AGENT + "MigrateOut",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.MigrationProgress.FromString)
            try:
                for m in f(req, timeout=timeout):
                    msgs.append(m)
                    if on_msg:
                        on_msg(m)
            except self.grpc.RpcError as e:
                return msgs, e
        return msgs, None


def heartbeats(c):
    out = c.ctl("vm", "console", VM).stdout
    return [(int(m.group(1)), int(m.group(2)))
            for m in re.finditer(r"^HB (\d+) (\d+)", out, re.M)]


def check_heartbeats(c, min_count=1):
    hb = heartbeats(c)
    assert len(hb) >= min_count, f"only {len(hb)} heartbeats"
    gaps = []
    for (n0, t0), (n1, t1) in zip(hb, hb[1:]):
        assert n1 == n0 + 1, f"heartbeat counter {n0} -> {n1}"
        assert t1 >= t0, f"heartbeat clock went back {t0} -> {t1}"
        gaps.append(t1 - t0)
    return hb, max(gaps) if gaps else 0


def where(c):
    """{host index: (persistent, state)} for the VM."""
    out = {}
    for i in (1, 2):
        p = c.virsh(i, "dominfo", VM, check=False)
        if p.returncode != 0:
            continue
        info = dict(re.findall(r"^([^:]+):\s*(.*)$", p.stdout, re.M))
        out[i] = (info.get("Persistent"), info.get("State"))
    return out


def leftovers(c):
    d = c.env["DROVER_CLUSTER_DIR"]
    return sorted(glob.glob(os.path.join(d, "host*", "lib", "qemu", "drover-mig-*"))
                  + glob.glob(os.path.join(d, "host*", "run", "libvirt", "drover-mig-*")))


def assert_only_on(c, i):
    w = wait_for(f"VM only on host{i}", lambda: (
        where(c) if set(where(c)) == {i} and where(c)[i] == ("yes", "running")
        else None), timeout=30)
    assert w == {i: ("yes", "running")}, w
    left = wait_for("no migration sockets left",
                    lambda: leftovers(c) == [] or None, timeout=15)
    assert left


def summary(msgs):
    final = msgs[-1]
    return (f"phase={final.phase} total={final.total_s:.2f}s "
            f"qemu_downtime={final.downtime_ms}ms qemu_bytes={final.qemu_bytes} "
            f"wire={final.wire_bytes} payload={final.payload_bytes} "
            f"ratio={final.compression_ratio:.2f} mode={final.compress_mode} "
            f"rounds={len(final.rounds)} limit={final.downtime_limit_ms}ms "
            f"forced={final.forced_switchover} msgs={len(msgs)}")


def main():
    c = Cluster(hosts=2, report_interval_ms=1000)
    c.env.setdefault("DROVER_CLUSTER_DIR", "/tmp/drover-cluster-mig")
    c.env["DROVER_CLUSTER_DIR"] = os.environ.get("DROVER_CLUSTER_DIR",
                                                 "/tmp/drover-cluster-mig")
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix="drover-mig-test-")
    try:
        pb = load_pb(tmp)
        c.up()
    except Exception as e:  # noqa: BLE001
        print(f"not ok 1 - cluster up\n# {e}")
        print("1..1")
        c.down()
        return 1
    try:
        run_cases(c, tap, Agents(c, pb))
    finally:
        c.down()
    return tap.done()


def run_cases(c, tap, ag):
    st = {"n": 0}

    def job():
        st["n"] += 1
        return f"test-{os.getpid()}-{st['n']}"

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE)
        w = wait_for("VM defined", lambda: where(c) or None, timeout=30)
        st["at"] = list(w)[0]
        wait_for("heartbeats", lambda: len(heartbeats(c)) >= 50, timeout=90)
        check_heartbeats(c)
        log(f"VM {VM} runs on host{st['at']}")

    def migrate_ok():
        src = st["at"]
        dst = 3 - src
        before = len(heartbeats(c))
        j = job()
        prep = ag.prepare(j, src, dst)
        assert prep.token and prep.channel_address.startswith(f"127.0.0.{dst + 1}:")
        assert prep.console_path.startswith(c.host_data(dst)), prep.console_path
        t0 = time.monotonic()
        msgs, err = ag.migrate_out(j, src, dst, prep)
        wall = time.monotonic() - t0
        assert err is None, f"MigrateOut failed: {err} / {msgs[-1] if msgs else None}"
        final = msgs[-1]
        assert final.phase == "completed", final
        assert final.wire_bytes > 0 and final.payload_bytes > 0, final
        assert final.total_s > 0
        st["last_token"] = (j, prep, src, dst)
        assert_only_on(c, dst)
        st["at"] = dst
        # Console history follows the VM: the old heartbeats and new ones.
        hb = wait_for("heartbeats after the move (with history)",
                      lambda: len(heartbeats(c)) > before + 20 or None, timeout=60)
        assert hb
        _, gap = check_heartbeats(c)
        log(f"host{src}->host{dst}: {summary(msgs)} wall={wall:.2f}s "
            f"largest guest heartbeat gap={gap}ms")
        st.setdefault("results", []).append((final.total_s, final.downtime_ms, gap))
        # The source keeps no copy of the log once handed over.
        src_log = os.path.join(c.host_data(src), "console", VM + ".log")
        wait_for("source console log removed",
                 lambda: not os.path.exists(src_log), timeout=20)

    def refused(token_kind):
        src = st["at"]
        dst = 3 - src
        j = job()
        prep = ag.prepare(j, src, dst)
        if token_kind == "invalid":
            token = "0" * 64
        else:  # reused: the token of the completed migration before
            token = st["last_token"][1].token
        msgs, err = ag.migrate_out(j, src, dst, prep, token=token)
        assert err is not None, "MigrateOut with a bad token succeeded"
        assert msgs and msgs[-1].phase in ("failed", "aborted"), msgs[-1:]
        assert "token" in msgs[-1].error, msgs[-1].error
        log(f"{token_kind} token refused: {msgs[-1].error}")
        ag.cancel_incoming(j, prep.token, dst)
        assert_only_on(c, src)
        check_heartbeats(c)

    def disk_refused():
        pb = ag.pb
        spec = ag.spec()
        spec.name = "mig-disk"
        spec.disk = 64 * 1024 * 1024
        req = pb.PrepareIncomingRequest(job_id=job(), spec=spec,
                                        source_host="host1",
                                        source_address=ag.addr(1))
        try:
            ag.unary(2, "PrepareIncoming", req, pb.PrepareIncomingReply)
        except ag.grpc.RpcError as e:
            assert e.code() == ag.grpc.StatusCode.FAILED_PRECONDITION, e
            assert "local disks" in e.details()
            return
        raise AssertionError("disk VM accepted")

    def channel_cut():
        src = st["at"]
        dst = 3 - src
        env = dict(c.env)
        # Restart the source agent with the fault point on.
        c.harness("kill-agent", str(src), "TERM")
        env["DROVER_FAULTS"] = "mig-cut-channel"
        subprocess.run([os.path.join(ROOT, "tests", "cluster", "cluster"),
                        "start-agent", str(src)], env=env, check=True,
                       capture_output=True, timeout=60)
        wait_for("source agent up", lambda: _agent_up(ag, src), timeout=30)
        try:
            j = job()
            prep = ag.prepare(j, src, dst)
            msgs, err = ag.migrate_out(j, src, dst, prep)
            assert err is not None, "migration with a cut channel succeeded"
            log(f"channel cut: {summary(msgs)} error={msgs[-1].error!r}")
            assert msgs[-1].phase == "failed", msgs[-1]
            assert_only_on(c, src)
            wait_for("reservation dropped on the destination",
                     lambda: _prepare_ok(ag, src, dst), timeout=30)
            check_heartbeats(c)
        finally:
            c.harness("kill-agent", str(src), "TERM")
            c.harness("start-agent", str(src))
            wait_for("source agent up", lambda: _agent_up(ag, src), timeout=30)

    def kill_dest():
        src = st["at"]
        dst = 3 - src
        j = job()
        prep = ag.prepare(j, src, dst)
        killed = {}

        def on_msg(m):
            if not killed and m.phase == "precopy" and m.memory_processed > 0:
                c.harness("kill-agent", str(dst), "KILL")
                killed["at"] = m.memory_processed

        msgs, err = ag.migrate_out(j, src, dst, prep, on_msg=on_msg)
        log(f"destination agent killed at {killed.get('at')} bytes: "
            f"{summary(msgs)} error={msgs[-1].error!r}")
        c.harness("start-agent", str(dst))
        wait_for("destination agent up", lambda: _agent_up(ag, dst), timeout=30)
        if not killed:
            # It finished before we could kill: then it must have arrived.
            assert err is None
            st["at"] = dst
            assert_only_on(c, dst)
            return
        assert err is not None and msgs[-1].phase == "failed", msgs[-1]
        assert_only_on(c, src)
        check_heartbeats(c)

    def final_check():
        hb, gap = check_heartbeats(c, min_count=100)
        log(f"{len(hb)} heartbeats, counter unbroken, largest gap {gap}ms")
        for total, down, g in st.get("results", []):
            log(f"  migration: total {total:.2f}s, QEMU downtime {down}ms, "
                f"guest gap {g}ms")

    tap.case("boot a 256 MiB TCG guest with a dirtying workload", boot)
    tap.case("migrate there (completed, persistent+running on one host, "
             "heartbeat unbroken, console history)", migrate_ok)
    tap.case("migrate back", migrate_ok)
    tap.case("invalid token refused, VM stays", refused, "invalid")
    tap.case("reused token refused, VM stays", refused, "reused")
    tap.case("disk VMs refused with FAILED_PRECONDITION", disk_refused)
    tap.case("channel cut mid-migration: VM stays on the source", channel_cut)
    tap.case("destination agent killed mid-migration: VM stays", kill_dest)
    tap.case("migrate again after the faults", migrate_ok)
    tap.case("heartbeat over the whole run", final_check)


def _agent_up(ag, i):
    try:
        ag.unary(i, "GetHostInfo", ag.pb.Empty(), ag.pb.HostInfo, timeout=3)
        return True
    except Exception:  # noqa: BLE001
        return False


def _prepare_ok(ag, src, dst):
    """The destination accepts a new PrepareIncoming for the VM (so the old
    reservation and name claim are gone); cancels it again."""
    j = f"probe-{time.monotonic_ns()}"
    try:
        prep = ag.prepare(j, src, dst)
    except ag.grpc.RpcError:
        return False
    ag.cancel_incoming(j, prep.token, dst)
    return True


if __name__ == "__main__":
    sys.exit(main())
