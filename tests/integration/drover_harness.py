"""Shared helpers for the integration suite: a TAP reporter, the local
cluster harness, droverctl and virsh wrappers. Runs under /usr/bin/python3
(standard library only)."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("DROVER_BUILD_DIR", os.path.join(ROOT, "build"))
CLUSTER = os.path.join(ROOT, "tests", "cluster", "cluster")
GUEST_DIR = os.path.join(ROOT, "tests", "guest", "out")

# Kernel command line every test guest starts with. `pti=on` is there for
# TCG: QEMU before 9.0 (Debian 12 has 7.2) does not reset the TCG TLB's
# dirty-tracking flags after the aligned fast path of the migration bitmap
# sync (fixed upstream by "physmem: Fix migration dirty bitmap coherency
# with TCG memory access"), so guest stores through TLB entries made before
# a sync are never marked dirty and never resent: the guest kernel oopses
# on the destination. Page-table isolation makes the guest switch CR3, and
# so flush QEMU's TLB, on every kernel entry and exit, which closes that
# window. Measured with plain `virsh migrate`, 512 MiB guest, 256 MiB of
# random data rewritten flat out: an oops within the first 3 migrations
# without it, 20 of 20 clean with it. KVM does not have the bug.
GUEST_CMDLINE = "console=ttyS0 quiet pti=on"
GUEST_KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
GUEST_INITRD = os.path.join(GUEST_DIR, "initramfs.img")
# The disk-checking guest (drover.disk=check): what it writes, generation
# after generation, and what it finds on its disk at boot.
DISK_GEN = re.compile(r"^DROVER-GUEST disk gen (\d+) written", re.M)
# The backup tests' guest: blocks 1..64 of 64 KiB (the first 4 MiB), a
# 4 s pause after each generation: a backup begun in the pause holds
# exactly that generation.
BACKUP_GUEST_CMDLINE = (GUEST_CMDLINE + " drover.hb_ms=200 drover.disk=check"
                        " drover.disk_blocks=64 drover.disk_pause_ms=4000")
DISK_FOUND = re.compile(r"^DROVER-GUEST disk found blocks=(\d+) ok=(\d+) bad=(\d+) "
                        r"blank=(\d+) gen_min=(\d+) gen_max=(\d+)", re.M)


class Tap:
    """Minimal TAP producer: each case is a function; a failed assertion
    or exception fails that case and the run goes on."""

    def __init__(self):
        self.n = 0
        self.failed = 0
        self.logs = None  # a cluster's logs directory, tailed on failure

    def tail_logs(self, lines=15):
        """The last LINES lines of each daemon's log, as TAP comments: what
        the cluster was doing when a case failed."""
        if not self.logs or not os.path.isdir(self.logs):
            return
        for name in sorted(os.listdir(self.logs)):
            path = os.path.join(self.logs, name)
            try:
                with open(path, errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                continue
            print(f"# --- {name}, last {len(tail)} lines:")
            for line in tail:
                print(f"#   {line}")

    def case(self, name, fn, *args):
        self.n += 1
        t0 = time.monotonic()
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - report every failure
            self.failed += 1
            print(f"not ok {self.n} - {name}")
            for line in traceback.format_exc().splitlines():
                print(f"# {line}")
            self.tail_logs()
            sys.stdout.flush()
            return False
        print(f"ok {self.n} - {name} ({time.monotonic() - t0:.1f}s)")
        sys.stdout.flush()
        return True

    def done(self):
        print(f"1..{self.n}")
        return 1 if self.failed else 0


def log(msg):
    # Every line a TAP comment: error texts (e.g. QEMU's) carry newlines.
    for line in str(msg).splitlines() or [""]:
        print(f"# {line}")
    sys.stdout.flush()


def run(argv, check=True, timeout=300, env=None, input=None):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=env, input=input)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{shlex.join(argv)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


class Cluster:
    """The local cluster (tests/cluster/cluster). NETNS (optional): run it
    inside that network namespace (`cluster up N --netns NETNS`); then
    ctl() runs droverctl inside it, exec() runs any command there, and
    bridge_add() makes a bridge there. Without NETNS nothing changes."""

    def __init__(self, hosts=2, report_interval_ms=1000, netns=None):
        self.hosts = hosts
        self.netns = netns
        self.env = dict(os.environ)
        self.env.pop("G_DEBUG", None)
        self.env["DROVER_BUILD_DIR"] = BUILD
        self.env["DROVER_REPORT_INTERVAL_MS"] = str(report_interval_ms)
        self.env.setdefault("DROVER_CLUSTER_DIR", "/tmp/drover-cluster-test")
        if netns:
            self.env["DROVER_CLUSTER_NETNS"] = netns
        else:
            # The default mode never inherits a namespace from the caller.
            self.env.pop("DROVER_CLUSTER_NETNS", None)
        self.report_interval_ms = report_interval_ms

    def harness(self, *args, check=True, timeout=300):
        return run([CLUSTER, *args], check=check, timeout=timeout, env=self.env)

    def up(self):
        self.harness("down", "--purge", check=False)
        self.harness("up", str(self.hosts))
        out = self.harness("env").stdout
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):]
            if "=" not in line:
                continue
            k, v = line.split("=", 1)
            self.env[k] = shlex.split(v)[0] if v else ""

    def down(self):
        self.harness("down", check=False)

    def netns_up(self):
        """Only the namespace (no daemons): for tests that run QEMU."""
        assert self.netns, "netns_up needs Cluster(netns=...)"
        self.harness("netns-up", self.netns)

    def netns_exists(self):
        return bool(self.netns) and os.path.exists(f"/run/netns/{self.netns}")

    def exec(self, *argv, check=True, timeout=300, input=None):
        """ARGV inside the cluster's namespace (`cluster exec`)."""
        return run([CLUSTER, "exec", *argv], check=check, timeout=timeout,
                   env=self.env, input=input)

    def exec_argv(self, *argv):
        """ARGV prefixed to run inside the namespace, for Popen."""
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    def bridge_add(self, br, cidr):
        self.harness("bridge", "add", br, cidr)

    def restart_agent(self, i, faults=None):
        """Restarts host I's agent (TERM, then start), with the fault points
        FAULTS (DROVER_FAULTS) or none, and waits until the scheduler has it
        up."""
        self.harness("kill-agent", str(i), "TERM")
        env = dict(self.env)
        env.pop("DROVER_FAULTS", None)
        if faults:
            env["DROVER_FAULTS"] = faults
        subprocess.run([CLUSTER, "start-agent", str(i)], env=env, check=True,
                       capture_output=True, timeout=90)
        wait_for(f"host{i} up",
                 lambda: self.hosts_by_name()[f"host{i}"]["state"] == "up", 60)

    def ctl(self, *args, check=True, timeout=300, tls_dir=None, extra=()):
        argv = self.exec_argv(os.path.join(BUILD, "cli", "droverctl"), *extra)
        if tls_dir is not None:
            argv += ["--tls-dir", tls_dir]
        return run(argv + list(args), check=check, timeout=timeout, env=self.env)

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args, "--json").stdout)

    def host_uri(self, i):
        return self.env[f"DROVER_HOST{i}_URI"]

    def host_data(self, i):
        return self.env[f"DROVER_HOST{i}_DATA"]

    def virsh(self, i, *args, check=True):
        return run(["virsh", "-q", "-c", self.host_uri(i), *args], check=check,
                   env=self.env)

    def domains(self, i):
        out = self.virsh(i, "list", "--all", "--name").stdout
        return sorted(x.strip() for x in out.splitlines() if x.strip())

    def where(self, vm):
        """{host index: (persistent, state)} of VM per each host's libvirt."""
        out = {}
        for i in range(1, self.hosts + 1):
            p = self.virsh(i, "dominfo", vm, check=False)
            if p.returncode != 0:
                continue
            info = dict(re.findall(r"^([^:]+):\s*(.*)$", p.stdout, re.M))
            out[i] = (info.get("Persistent"), info.get("State"))
        return out

    def hosts_by_name(self):
        return {h["info"]["name"]: h for h in self.ctl_json("hosts")["hosts"]}

    def vms_by_name(self):
        return {v["spec"]["name"]: v for v in self.ctl_json("vm", "list")["vms"]}


def run_on_cluster(c, cases, with_pb=False, tmp_prefix="drover-test-"):
    """The whole of an integration test: brings cluster C up, runs
    CASES (c, tap, tmp[, pb]) with a scratch directory TMP (and drover_pb2
    when WITH_PB), takes the cluster down and removes TMP. A cluster that
    does not come up is one failed case. Returns the exit status."""
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix=tmp_prefix)
    t0 = time.monotonic()
    try:
        try:
            extra = (load_pb(tmp),) if with_pb else ()
            c.up()
        except Exception as e:  # noqa: BLE001 - reported as a case
            print("not ok 1 - cluster up")
            log(e)
            print("1..1")
            c.down()
            return 1
        tap.logs = os.path.join(c.env["DROVER_CLUSTER_DIR"], "logs")
        try:
            cases(c, tap, tmp, *extra)
        finally:
            log(f"whole run {time.monotonic() - t0:.0f}s")
            c.down()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tap.done()


def two_host_cluster(cluster_dir):
    """The cluster the migration tests run on: two hosts reporting every
    second, in $DROVER_CLUSTER_DIR or else CLUSTER_DIR."""
    c = Cluster(hosts=2, report_interval_ms=1000)
    c.env["DROVER_CLUSTER_DIR"] = os.environ.get("DROVER_CLUSTER_DIR", cluster_dir)
    return c


def console_heartbeats(c, vm):
    """The heartbeat counters VM's test guest printed on its console
    (drover.hb_ms), in order."""
    out = c.ctl("vm", "console", vm).stdout
    return [int(m.group(1)) for m in re.finditer(r"^HB (\d+) \d+$", out, re.M)]


def check_unbroken(c, vm):
    """VM's heartbeats start at 1 and never skip or restart (no reboot, no
    loss across live migrations); returns the last one."""
    hb = console_heartbeats(c, vm)
    assert hb and hb[0] == 1, f"{vm}: heartbeats start at {hb[:1]}"
    for a, b in zip(hb, hb[1:]):
        assert b == a + 1, f"{vm}: heartbeat {a} -> {b} (reboot or loss)"
    return hb[-1]


def wait_for(what, pred, timeout=60, interval=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# --- speaking the services directly (python3-grpcio) ------------------------

AGENT = "/drover.v1.AgentService/"
SCHEDULER = "/drover.v1.SchedulerService/"


def load_pb(tmp):
    """drover_pb2 made from proto/drover.proto into TMP (Debian's protoc)."""
    subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"),
                    "--python_out=" + tmp, "drover.proto"], check=True)
    sys.path.insert(0, tmp)
    import drover_pb2  # noqa: E402
    return drover_pb2


def grpc_creds(pki_dir):
    """Channel credentials from a --tls-dir (ca.pem, key.pem, cert.pem)."""
    import grpc
    rd = lambda f: open(os.path.join(pki_dir, f), "rb").read()  # noqa: E731
    return grpc.ssl_channel_credentials(rd("ca.pem"), rd("key.pem"), rd("cert.pem"))


class Agents:
    """AgentService spoken directly, with the certificate of component
    PKI_NAME of the cluster (default the scheduler's: only the scheduler
    may command agents), at the addresses the hosts registered."""

    def __init__(self, c, pb, pki_name="scheduler"):
        import grpc
        self.grpc = grpc
        self.pb = pb
        self.creds = grpc_creds(os.path.join(c.env["DROVER_CLUSTER_DIR"], "pki", pki_name))
        hosts = c.hosts_by_name()
        self.addrs = {int(n[len("host"):]): h["info"]["address"]
                      for n, h in hosts.items() if n.startswith("host")}

    def unary(self, i, method, req, reply_cls, timeout=30):
        with self.grpc.secure_channel(self.addrs[i], self.creds) as ch:
            f = ch.unary_unary(AGENT + method,
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=reply_cls.FromString)
            return f(req, timeout=timeout)

    def prepare(self, job, src, dst, spec):
        req = self.pb.PrepareIncomingRequest(job_id=job, spec=spec,
                                             source_host=f"host{src}",
                                             source_address=self.addrs[src])
        return self.unary(dst, "PrepareIncoming", req, self.pb.PrepareIncomingReply)

    def cancel_incoming(self, job, token, dst):
        return self.unary(dst, "CancelIncoming",
                          self.pb.CancelIncomingRequest(job_id=job, token=token),
                          self.pb.Empty)

    def migrate_out(self, job, name, src, dst, prep, token, timeout=120, params=None,
                    msgs=None):
        """MigrateOut to the end: (progress messages, RpcError or None).
        MSGS, when given, is the list the messages are appended to as they
        arrive (another thread may watch it)."""
        pb = self.pb
        req = pb.MigrateOutRequest(
            job_id=job, name=name, dest_host=f"host{dst}",
            dest_address=self.addrs[dst],
            channel_address=prep.channel_address, token=token,
            dest_console_path=prep.console_path, dest_disk_path=prep.disk_path,
            params=params)
        msgs = [] if msgs is None else msgs
        with self.grpc.secure_channel(self.addrs[src], self.creds) as ch:
            f = ch.unary_stream(AGENT + "MigrateOut",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.MigrationProgress.FromString)
            try:
                for m in f(req, timeout=timeout):
                    msgs.append(m)
            except self.grpc.RpcError as e:
                return msgs, e
        return msgs, None
