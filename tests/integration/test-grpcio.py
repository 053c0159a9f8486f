#!/usr/bin/python3
"""Wire compatibility: a standard gRPC client (Debian's python3-grpcio)
talks to the real drover-scheduler over mutual TLS.

Usage: test-grpcio.py [path/to/drover-scheduler]
(default: $DROVER_BUILD_DIR/scheduler/drover-scheduler). Prints TAP.
Run with /usr/bin/python3: that is where python3-grpcio and
python3-protobuf are installed.

Messages come from proto/drover.proto via Debian's protoc --python_out;
calls use the generic channel.unary_unary, so no grpc plugin is needed.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SRC_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(SRC_DIR, "proto")
SERVICE = "/drover.v1.SchedulerService/"
N_TESTS = 9

results = []


def ok(cond, name, diag=""):
    n = len(results) + 1
    results.append(bool(cond))
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, name), flush=True)
    if not cond and diag:
        for line in str(diag).splitlines():
            print("# " + line, flush=True)


def run(argv, cwd=None):
    r = subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(argv), r.stderr.strip()))


def make_certs(tmp):
    """CA, scheduler cert (IP SAN 127.0.0.1), an operator's client cert and
    a host's (py-host); one dir each with ca.pem / cert.pem / key.pem like
    drover's --tls-dir. Subjects say the role (O) and name (CN)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    run(["openssl", "req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem",
                                          "-subj", "/CN=drover-test-ca"], cwd=tmp)
    dirs = {}
    for name, subj, san in (("sched", "/O=scheduler/CN=drover-scheduler", "IP:127.0.0.1"),
                            ("client", "/O=operator/CN=drover-py-client", None),
                            ("host", "/O=host/CN=py-host", None)):
        d = os.path.join(tmp, name)
        os.mkdir(d)
        argv = ["openssl", "req", "-x509"] + ec + [
            "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
            "-subj", subj, "-CA", "ca.pem", "-CAkey", "ca.key",
            "-addext", "basicConstraints=critical,CA:FALSE"]
        if san:
            argv += ["-addext", "subjectAltName=" + san]
        run(argv, cwd=tmp)
        shutil.copy(os.path.join(tmp, "ca.pem"), os.path.join(d, "ca.pem"))
        dirs[name] = d
    return dirs


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def read(path):
    with open(path, "rb") as f:
        return f.read()


def rpc_code(fn):
    """Runs fn; returns the grpc.StatusCode it failed with, or None."""
    import grpc
    try:
        fn()
        return None
    except grpc.RpcError as e:
        return e.code()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("DROVER_BUILD_DIR", "build"), "scheduler", "drover-scheduler")
    print("1..%d" % N_TESTS, flush=True)
    if not os.access(binary, os.X_OK):
        print("Bail out! drover-scheduler not found at %s" % binary, flush=True)
        return 1
    try:
        import grpc
    except ImportError as e:
        print("Bail out! python3-grpcio missing (%s); run with /usr/bin/python3" % e, flush=True)
        return 1

    tmp = tempfile.mkdtemp(prefix="drover-grpcio-")
    proc = None
    log = None
    try:
        run(["protoc", "--proto_path=" + PROTO_DIR, "--python_out=" + tmp,
             os.path.join(PROTO_DIR, "drover.proto")])
        sys.path.insert(0, tmp)
        import drover_pb2 as pb

        dirs = make_certs(tmp)
        state = os.path.join(tmp, "state")
        os.mkdir(state)
        port = free_port()
        target = "127.0.0.1:%d" % port
        log = open(os.path.join(tmp, "scheduler.log"), "w+")
        proc = subprocess.Popen([binary, "--listen", target, "--state", state,
                                 "--tls-dir", dirs["sched"]],
                                stdout=log, stderr=subprocess.STDOUT)
        up = wait_listening(proc, port)
        if not up:
            log.seek(0)
        ok(up, "drover-scheduler listens on %s" % target, "" if up else log.read())
        if not up:
            return 1

        def creds_of(d):
            return grpc.ssl_channel_credentials(
                root_certificates=read(os.path.join(d, "ca.pem")),
                private_key=read(os.path.join(d, "key.pem")),
                certificate_chain=read(os.path.join(d, "cert.pem")))

        client = dirs["client"]
        # An operator lists; the host registers itself, with its own
        # certificate (only a host may register, and only as itself).
        channel = grpc.secure_channel(target, creds_of(client))
        host_channel = grpc.secure_channel(target, creds_of(dirs["host"]))

        def method(name, req, rep, ch=channel):
            return ch.unary_unary(SERVICE + name,
                                  request_serializer=req.SerializeToString,
                                  response_deserializer=rep.FromString)

        list_hosts = method("ListHosts", pb.ListHostsRequest, pb.ListHostsReply)
        register = method("RegisterHost", pb.RegisterHostRequest, pb.RegisterHostReply,
                          host_channel)

        try:
            reply = list_hosts(pb.ListHostsRequest(), timeout=10)
            ok(len(reply.hosts) == 0, "ListHosts over mTLS decodes an empty host list",
               repr(reply))
        except grpc.RpcError as e:
            ok(False, "ListHosts over mTLS decodes an empty host list", e)

        host = pb.HostInfo(name="py-host", address="127.0.0.1:1", cpus=2,
                           cpu_model="test", memory_total=4 << 30, memory_free=2 << 30,
                           accel="tcg", data_total=10 << 30, data_free=5 << 30)
        try:
            reply = register(pb.RegisterHostRequest(host=host), timeout=10)
            ok(isinstance(reply, pb.RegisterHostReply), "RegisterHost py-host accepted")
        except grpc.RpcError as e:
            ok(False, "RegisterHost py-host accepted", e)

        try:
            reply = list_hosts(pb.ListHostsRequest(), timeout=10)
            names = [h.info.name for h in reply.hosts]
            ok(names == ["py-host"], "ListHosts shows py-host", repr(names))
        except grpc.RpcError as e:
            ok(False, "ListHosts shows py-host", e)

        # Garbage bytes where a message should be: refused, not a crash.
        raw = host_channel.unary_unary(SERVICE + "RegisterHost")
        code = rpc_code(lambda: raw(b"\x0a\x7f\x01", timeout=10))
        ok(code == grpc.StatusCode.INVALID_ARGUMENT, "malformed request -> INVALID_ARGUMENT",
           code)

        raw = channel.unary_unary(SERVICE + "NoSuchMethod")
        code = rpc_code(lambda: raw(b"", timeout=10))
        ok(code == grpc.StatusCode.UNIMPLEMENTED, "unknown method -> UNIMPLEMENTED", code)
        channel.close()
        host_channel.close()

        # TLS with our CA but no client certificate: refused.
        anon = grpc.secure_channel(target, grpc.ssl_channel_credentials(
            root_certificates=read(os.path.join(client, "ca.pem"))))
        anon_list = method("ListHosts", pb.ListHostsRequest, pb.ListHostsReply, anon)
        code = rpc_code(lambda: anon_list(pb.ListHostsRequest(), timeout=10))
        ok(code == grpc.StatusCode.UNAVAILABLE, "client without certificate is refused", code)
        anon.close()

        plain = grpc.insecure_channel(target)
        plain_list = method("ListHosts", pb.ListHostsRequest, pb.ListHostsReply, plain)
        code = rpc_code(lambda: plain_list(pb.ListHostsRequest(), timeout=10))
        ok(code == grpc.StatusCode.UNAVAILABLE, "plaintext client is refused", code)
        plain.close()

        alive = proc.poll() is None
        ok(alive, "drover-scheduler still running", "exit status %s" % proc.returncode)
    except Exception as e:  # report, then clean up below
        print("Bail out! %s: %s" % (type(e).__name__, e), flush=True)
        return 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log is not None:
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(results) and len(results) == N_TESTS else 1


if __name__ == "__main__":
    sys.exit(main())
