#!/usr/bin/python3
"""Who may do what, checked from outside against the real daemons over
mutual TLS on a 2-host local cluster.

1. The authorization matrix, generated from the daemons' own tables
   (`--print-authz`): every method of SchedulerService and AgentService
   called with each role's certificate (host, scheduler, operator,
   viewer), a revoked one and one from another CA. A role in the method's
   row is let through (whatever the handler then says of the empty
   request); any other is PERMISSION_DENIED by the table; the revoked
   certificate is UNAUTHENTICATED and the foreign one cannot connect.
   Revocation reaches the daemons by SIGHUP, which also proves reload.
2. The attacks: a host certificate deleting a VM, registering or
   reporting as another host, calling another host's MigrateOut; an
   operator certificate calling an agent; a registration whose address
   is not an address; a migration token presented with the wrong
   certificate and presented twice, also while its migration runs; a
   libvirt call that is not part of a migration through a valid control
   stream; a local non-root user opening the relay socket.

Prints TAP. Run with /usr/bin/python3 (python3-grpcio).
"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_DIR, ROOT, AGENT,  # noqa: E402
                            Agents, grpc_creds, log, run, run_on_cluster,
                            two_host_cluster, wait_for)

import grpc  # noqa: E402

PKI_SCRIPT = os.path.join(ROOT, "scripts", "pki")
RELAY = os.path.join(BUILD, "tests", "virt", "mig-relay")
KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
CMDLINE = GUEST_CMDLINE + " drover.hb_ms=100"
MEMORY = 256 * 1024 * 1024
# The two streaming methods; every other is unary.
STREAMING = {"SchedulerService/WatchJob", "SchedulerService/WatchEvents",
             "AgentService/MigrateOut"}
TABLE_DENIAL = "may not call this method"


def authz_table(binary):
    """{"Service/Method": set of roles} from BINARY --print-authz."""
    out = run([binary, "--print-authz"]).stdout
    table = {}
    for line in out.splitlines():
        method, roles = line.split()
        table[method] = set() if roles == "-" else set(roles.split(","))
    assert table, f"{binary} --print-authz printed nothing"
    return table


def call_raw(addr, creds, method, timeout=15):
    """Calls METHOD ("Service/Method") with an empty request; returns the
    status code and details (OK and "" when it answered)."""
    path = "/drover.v1." + method
    with grpc.secure_channel(addr, creds) as ch:
        try:
            if method in STREAMING:
                for _ in ch.unary_stream(path)(b"", timeout=timeout):
                    break
            else:
                ch.unary_unary(path)(b"", timeout=timeout)
        except grpc.RpcError as e:
            return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""


def rpc(addr, creds, method, req, reply_cls, timeout=15):
    """A unary call with messages; returns (reply, None) or (None, RpcError)."""
    with grpc.secure_channel(addr, creds) as ch:
        f = ch.unary_unary("/drover.v1." + method,
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=reply_cls.FromString)
        try:
            return f(req, timeout=timeout), None
        except grpc.RpcError as e:
            return None, e


def expect_code(err, code, *words):
    assert err is not None, f"expected {code}, the call succeeded"
    assert err.code() == code, (err.code(), err.details())
    for w in words:
        assert w in (err.details() or ""), (w, err.details())
    log(f"{code.name}: {err.details()}")


def relay(tls_dir, channel_address, kind, token, sock, peer_host="host2"):
    """tests/virt/mig-relay: carries the first connection to SOCK over a
    migration stream of KIND with TOKEN, with the certificate in TLS_DIR,
    to the destination host PEER_HOST's listener. Returns the process."""
    p = subprocess.Popen([RELAY, "--tls-dir", tls_dir, "--to", channel_address,
                          "--peer-host", peer_host, "--kind", kind, "--token", token,
                          "--socket", sock], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    wait_for("the relay listening", lambda: os.path.exists(sock) or p.poll() is not None,
             15)
    return p


def probe(tls_dir, channel_address, kind, token, tmp, peer_host="host2"):
    """Whether the destination admits a stream of KIND with TOKEN from the
    certificate in TLS_DIR: (0, output) admitted (still carrying after 5 s),
    (1, output) refused."""
    sock = os.path.join(tmp, f"probe-{time.monotonic_ns()}.sock")
    p = relay(tls_dir, channel_address, kind, token, sock, peer_host)
    client = socket.socket(socket.AF_UNIX)
    try:
        client.connect(sock)
        try:
            out, _ = p.communicate(timeout=5)
            return (1 if p.returncode else 0), out.strip()
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
            return 0, out.strip()
    finally:
        client.close()


def main():
    c = two_host_cluster("/tmp/drover-cluster-sec")
    return run_on_cluster(c, run_cases, with_pb=True, tmp_prefix="drover-sec-test-")


def run_cases(c, tap, tmp, pb):
    d = c.env["DROVER_CLUSTER_DIR"]
    pki = os.path.join(d, "pki")
    sched_addr = c.env["DROVER_SCHEDULER"]
    hosts = c.hosts_by_name()
    agent_addr = {i: hosts[f"host{i}"]["info"]["address"] for i in (1, 2)}
    creds = {}
    dirs = {}

    def pki_make(*args):
        run([PKI_SCRIPT, pki, *args])

    def sighup_all():
        for f in ("scheduler.pid", "host1-agent.pid", "host2-agent.pid"):
            pid = int(open(os.path.join(d, "pids", f)).read().strip())
            os.kill(pid, signal.SIGHUP)

    def identities():
        # The cluster made scheduler, droverctl (operator) and hostI.
        pki_make("viewer", "look")
        pki_make("operator", "former")
        pki_make("host", "host9", "127.0.0.9")
        pki_make("--foreign", "operator", "stranger")
        for role, name in (("host", "host1"), ("scheduler", "scheduler"),
                           ("operator", "droverctl"), ("viewer", "look"),
                           ("revoked", "former"), ("foreign", "stranger"),
                           ("host2", "host2"), ("host9", "host9")):
            dirs[role] = os.path.join(pki, name)
            creds[role] = grpc_creds(dirs[role])
        # Before revocation the operator "former" may list.
        _, err = rpc(sched_addr, creds["revoked"], "SchedulerService/ListHosts",
                     pb.ListHostsRequest(), pb.ListHostsReply)
        assert err is None, err
        pki_make("--revoke", "former")
        sighup_all()
        # The daemons read the CRL on SIGHUP; they keep serving.
        wait_for("the scheduler refusing the revoked certificate",
                 lambda: call_raw(sched_addr, creds["revoked"],
                                  "SchedulerService/ListHosts")[0]
                 == grpc.StatusCode.UNAUTHENTICATED, 30)
        wait_for("both hosts still up after SIGHUP", lambda: all(
            h["state"] == "up" for h in c.hosts_by_name().values()), 30)

    if not tap.case("identities: viewer, host9, a revoked operator (CRL by SIGHUP), "
                    "a foreign CA", identities):
        return

    def matrix():
        tables = {
            "SchedulerService": (authz_table(os.path.join(BUILD, "scheduler",
                                                          "drover-scheduler")),
                                 sched_addr),
            "AgentService": (authz_table(os.path.join(BUILD, "agent", "drover-agent")),
                             agent_addr[1]),
        }
        checked = 0
        bad = []
        for service, (table, addr) in tables.items():
            for method, roles in table.items():
                assert method.startswith(service + "/"), method
                for who in ("host", "scheduler", "operator", "viewer", "revoked",
                            "foreign"):
                    code, details = call_raw(addr, creds[who], method)
                    checked += 1
                    if who == "foreign":
                        ok = code == grpc.StatusCode.UNAVAILABLE
                        want = "UNAVAILABLE (no TLS session)"
                    elif who == "revoked":
                        ok = code == grpc.StatusCode.UNAUTHENTICATED
                        want = "UNAUTHENTICATED"
                    elif who in roles:
                        ok = not (code == grpc.StatusCode.PERMISSION_DENIED
                                  and TABLE_DENIAL in details) and code not in (
                            grpc.StatusCode.UNAUTHENTICATED,
                            grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED)
                        want = "let through by the table"
                    else:
                        ok = (code == grpc.StatusCode.PERMISSION_DENIED
                              and TABLE_DENIAL in details and who in details)
                        want = f"PERMISSION_DENIED naming role {who}"
                    if not ok:
                        bad.append(f"{method} as {who}: {code.name} {details!r}, "
                                   f"expected {want}")
        log(f"{checked} calls checked against the tables")
        assert not bad, "\n".join(bad)

    tap.case("authorization matrix: every method x every role, revoked, foreign CA",
             matrix)

    # A VM the attacks go after.
    def vm_for_attacks():
        c.ctl("vm", "create", "sec-vm", "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE,
              "--host", "host1", "--accel", "tcg", timeout=240)
        wait_for("sec-vm running", lambda: c.vms_by_name()["sec-vm"]["state"]
                 == "running", 120)

    if not tap.case("a running VM to attack", vm_for_attacks):
        return

    def host_deletes_vm():
        _, err = rpc(sched_addr, creds["host"], "SchedulerService/DeleteVm",
                     pb.DeleteVmRequest(name="sec-vm", force=True), pb.Empty)
        expect_code(err, grpc.StatusCode.PERMISSION_DENIED, "host")
        assert "sec-vm" in c.vms_by_name()
        assert "sec-vm" in c.domains(1)

    tap.case("a host certificate cannot delete a VM", host_deletes_vm)

    def host_impersonates():
        before = c.hosts_by_name()["host2"]
        info = pb.HostInfo(name="host2", address="127.0.0.2:7401", cpus=64,
                           memory_total=1 << 40, memory_free=1 << 40, accel="tcg",
                           data_total=1 << 40, data_free=1 << 40)
        _, err = rpc(sched_addr, creds["host"], "SchedulerService/RegisterHost",
                     pb.RegisterHostRequest(host=info), pb.RegisterHostReply)
        expect_code(err, grpc.StatusCode.PERMISSION_DENIED, "host1", "host2")
        # A report in host2's name that would claim sec-vm, with a seq far
        # ahead: refused, and host2's own reports still count afterwards.
        st = pb.VmStatus(name="sec-vm", state="running", vcpus=1, memory=MEMORY)
        _, err = rpc(sched_addr, creds["host"], "SchedulerService/ReportHost",
                     pb.ReportHostRequest(host=info, vms=[st], seq=1 << 60),
                     pb.ReportHostReply)
        expect_code(err, grpc.StatusCode.PERMISSION_DENIED, "host1", "host2")
        time.sleep(3)
        after = c.hosts_by_name()["host2"]
        assert after["info"]["address"] == before["info"]["address"], after
        assert after["info"]["cpus"] == before["info"]["cpus"], after
        assert after["state"] == "up", after
        assert c.vms_by_name()["sec-vm"]["host"] == "host1"

    tap.case("a host certificate cannot register or report as another host",
             host_impersonates)

    def bad_address():
        info = pb.HostInfo(name="host9", address="unix:/run/drover/evil.sock", cpus=2,
                           memory_total=1 << 30, memory_free=1 << 30, accel="tcg")
        _, err = rpc(sched_addr, creds["host9"], "SchedulerService/RegisterHost",
                     pb.RegisterHostRequest(host=info), pb.RegisterHostReply)
        expect_code(err, grpc.StatusCode.INVALID_ARGUMENT, "address")
        assert "host9" not in c.hosts_by_name()

    tap.case("registration refuses an address that is a gRPC target, not an address",
             bad_address)

    def host_calls_migrate_out():
        req = pb.MigrateOutRequest(job_id="sec-evil", name="sec-vm", dest_host="host9",
                                   dest_address="127.0.0.9:7401",
                                   channel_address="127.0.0.9:7402", token="0" * 64)
        with grpc.secure_channel(agent_addr[1], creds["host2"]) as ch:
            f = ch.unary_stream(AGENT + "MigrateOut",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.MigrationProgress.FromString)
            try:
                list(f(req, timeout=15))
                err = None
            except grpc.RpcError as e:
                err = e
        expect_code(err, grpc.StatusCode.PERMISSION_DENIED, "host")
        assert c.vms_by_name()["sec-vm"]["host"] == "host1"
        assert "sec-vm" in c.domains(1)

    tap.case("a host certificate cannot call another host's MigrateOut",
             host_calls_migrate_out)

    def operator_calls_agent():
        for method, req, reply in (
                ("AgentService/GetHostInfo", pb.Empty(), pb.HostInfo),
                ("AgentService/DestroyVm", pb.VmRequest(name="sec-vm"), pb.AgentVmReply),
                ("AgentService/ReadConsole", pb.ConsoleRequest(name="sec-vm"),
                 pb.ConsoleChunk)):
            _, err = rpc(agent_addr[1], creds["operator"], method, req, reply)
            expect_code(err, grpc.StatusCode.PERMISSION_DENIED, "operator")
        assert c.vms_by_name()["sec-vm"]["state"] == "running"

    tap.case("an operator certificate cannot command an agent", operator_calls_agent)

    ag = Agents(c, pb)
    ghost = pb.VmSpec(name="sec-ghost", vcpus=1, memory=MEMORY, kernel=KERNEL,
                      initrd=INITRD, cmdline=CMDLINE, accel="tcg")

    def token_binding():
        prep = ag.prepare("sec-tok-1", 1, 2, ghost)
        try:
            for who in ("host2", "operator", "host9"):
                rc, out = probe(dirs[who], prep.channel_address, "control", prep.token,
                                tmp)
                assert rc != 0, f"{who}'s certificate was accepted: {out}"
                log(f"{who}: {out}")
            rc, out = probe(dirs["host"], prep.channel_address, "memory", "f" * 64, tmp)
            assert rc == 1, out
            rc, out = probe(dirs["host"], prep.channel_address, "control", prep.token,
                            tmp)
            assert rc == 0, f"the source host's certificate was refused: {out}"
            rc, out = probe(dirs["host"], prep.channel_address, "control", prep.token,
                            tmp)
            assert rc == 1, f"a used token was accepted again: {out}"
            log(f"replayed: {out}")
        finally:
            ag.cancel_incoming("sec-tok-1", prep.token, 2)

    tap.case("a token works only for the source host's certificate, and only once",
             token_binding)

    def libvirt_through_stream():
        before = c.domains(2)
        for attempt, args in (("list", ["list", "--all"]),
                              ("define", ["define", os.path.join(tmp, "evil.xml")])):
            open(os.path.join(tmp, "evil.xml"), "w").write(
                "<domain type='qemu'><name>sec-evil</name><memory>65536</memory>"
                "<os><type>hvm</type></os></domain>")
            job = f"sec-virsh-{attempt}"
            prep = ag.prepare(job, 1, 2, ghost)
            sock = os.path.join(tmp, f"{attempt}.sock")
            p = relay(dirs["host"], prep.channel_address, "control", prep.token, sock)
            try:
                v = subprocess.run(["virsh", "-c", f"qemu+unix:///system?socket={sock}",
                                    *args], capture_output=True, text=True, timeout=60)
                out, _ = p.communicate(timeout=30)
                log(f"virsh {attempt}: exit {v.returncode}: {v.stderr.strip()}")
                log(f"relay: exit {p.returncode}: {out.strip()}")
                assert v.returncode != 0, f"virsh {attempt} through the stream worked"
                assert p.returncode != 0 and "not part of a migration" in out, out
            finally:
                if p.poll() is None:
                    p.kill()
                ag.cancel_incoming(job, prep.token, 2)
        assert c.domains(2) == before, (before, c.domains(2))
        assert "sec-evil" not in c.domains(2)

    tap.case("a libvirt call that is not a migration is refused on a valid control "
             "stream", libvirt_through_stream)

    def replay_during_migration():
        prep = ag.prepare("sec-mig-1", 1, 2, pb.VmSpec(
            name="sec-vm", vcpus=1, memory=MEMORY, kernel=KERNEL, initrd=INITRD,
            cmdline=CMDLINE, accel="tcg"))
        result = {}
        progress = []

        def migrate():
            result["msgs"], result["err"] = ag.migrate_out(
                "sec-mig-1", "sec-vm", 1, 2, prep, prep.token, timeout=180,
                params=pb.MigrationParams(bandwidth_bps=2 * 1024 * 1024),
                msgs=progress)

        t = threading.Thread(target=migrate)
        t.start()
        try:
            qemu_dir = os.path.join(d, "host1", "lib", "qemu")
            relay_sock = os.path.join(qemu_dir, "drover-mig-sec-mig-1.sock")
            wait_for("the relay socket of the running migration",
                     lambda: os.path.exists(relay_sock), 60)
            # Both of the migration's own streams are open once memory is
            # on the wire; before that a probe would race them for the token
            # (and may win it: the migration then fails). QEMU counting
            # memory sent, or a few bytes on the wire, does not show it:
            # the control stream opens first, and QEMU writes into the
            # local relay before the memory stream's HELLO is answered.
            # A mebibyte on the wire does: only memory is that large.
            wait_for("memory on the migration channel",
                     lambda: any(m.wire_bytes > (1 << 20) for m in list(progress))
                     or not t.is_alive(), 120)
            assert t.is_alive(), f"migration ended before the probe: {result.get('err')}"
            for kind in ("memory", "control"):
                rc, out = probe(dirs["host"], prep.channel_address, kind, prep.token, tmp)
                assert rc == 1, f"token replayed for {kind} while running: {out}"
                log(f"replay {kind}: {out}")
            # A local user who is neither root nor QEMU's cannot reach it:
            # the socket is not world-writable, and connecting as nobody
            # fails (also where nobody can reach the directory).
            mode = os.stat(relay_sock).st_mode & 0o777
            log(f"relay socket mode {mode:o}")
            assert not mode & 0o002, f"relay socket is world-writable ({mode:o})"
            r = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                 "/usr/bin/python3", "-c",
                 "import socket,sys; s=socket.socket(socket.AF_UNIX);"
                 f"s.connect({relay_sock!r})"], capture_output=True, text=True, timeout=30)
            log(f"nobody connecting: exit {r.returncode}: {r.stderr.strip()[-200:]}")
            assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
        finally:
            t.join(240)
        assert not t.is_alive()
        log(f"migration: {result.get('err')}; "
            f"{result['msgs'][-1].phase if result.get('msgs') else 'no progress'}")
        wait_for("sec-vm on a host, running", lambda: c.vms_by_name()["sec-vm"]["state"]
                 == "running", 120)

    tap.case("during a migration: its token cannot be replayed, its relay socket is "
             "closed to other local users", replay_during_migration)


if __name__ == "__main__":
    sys.exit(main())
