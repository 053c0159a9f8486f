#!/usr/bin/python3
"""Drover live migration against plain libvirt migration, same run, same cluster.

Run through tests/bench/migrate (it builds the daemons and the test guest).

Setup: `tests/cluster/cluster up 2` in DROVER_CLUSTER_DIR (default
/tmp/drover-cluster-bench): two libvirt hosts (mount namespaces), the
scheduler and one agent per host (127.0.K.2, 127.0.K.3; K is
DROVER_CLUSTER_NET, default 0). Guests: 512 MiB,
1 vCPU, TCG, the test guest (tests/guest) with a heartbeat every 10 ms and
a dirtying workload:

  dirty=low   working set  64 MiB rewritten at 8 MiB/s
  dirty=high  working set 256 MiB rewritten as fast as the guest can
  data=zero|text|random   what the workload writes (drover.data)

Paths, one after the other on the same guest, each moving it to the other
host:
  drover  `droverctl migrate VM --to HOST --json`: libvirt's control
          connection and QEMU's stream carried by the agents' TLS channel
          (destination agent's migration listener, port 7402), lz4 auto.
  native  `virsh migrate --live --p2p --persistent --undefinesource --xml X
          VM qemu+unix:///system?socket=<dest libvirt-sock>
          tcp://<dest ip>:<native port>`: QEMU's own TCP stream, no Drover.
          X is the domain's migratable XML with the serial/console file
          moved into the destination agent's console dir, which is exactly
          what Drover's destination does (PrepareIncoming), so that the
          next Drover migration finds the console where the agents expect
          it. Figures: `virsh domjobinfo --completed --rawstats` on the
          destination (libvirt hands the completed job stats over with
          the migration; with --undefinesource the source has no domain
          left to ask).

  native-tls  (with --paths) native, with QEMU's own TLS on its stream
          (`virsh migrate --tls`): the bench makes a CA, a server
          certificate per host (its loopback IP as the name QEMU checks)
          and a client certificate, puts them in each host's libvirt
          config dir (/etc/libvirt/drover-bench-tls inside the host's
          namespace), points qemu.conf's migrate_tls_x509_cert_dir there
          and restarts the hosts' libvirtd before any guest starts. The
          fair baseline for Drover's encrypted channel.
  native-autoconverge  (with --paths) native with QEMU's auto-converge
          (`virsh migrate --auto-converge`, QEMU's default initial 20 %,
          step 10 %): QEMU's own throttling against Drover's ladder.

  relay   (with --relay) native's migration, but QEMU's stream goes
          through relay_floor.py: a unix socket on each host (the same
          path in both namespaces, as with Drover) joined by one TCP
          connection, bytes moved by splice(2), no TLS, no frames, no
          checks. The cost of the topology alone: the least any
          agent-carried stream can cost on this machine.

Network-observed downtime (--net): the cluster runs inside a network
namespace (--netns NAME, default drover-bench with --net; `cluster up 2
--netns NAME`, the bench process itself then enters it, so droverctl,
tc, the link check and the client all run there and the 1gbit htb sits
on the namespace's own loopback, touching no other cluster). A Linux
bridge benchbr0 (10.79.0.1/24) in the namespace, a network benchnet on
it, and each guest gets one virtio-net NIC on it (`vm create --net
benchnet`), drover.ip=10.79.0.N/24 and drover.echo=7. Native migration
sends the domain's migratable XML, which carries the same <interface>
(checked before each native move; the destination's domain is checked
after every move: same MAC, bridge and model). Around each migration
(every path) tests/integration/nic_echo_client.py runs in the namespace:
ONE TCP connection to the guest's echo service, a small request every
10 ms, each answer awaited, never a reconnect (a broken connection is
reported per move and fails T6). Per move: the largest gap between
consecutive answers, from a second before the migration starts to a
second after it ended; per link and path: median and max over the
moves, and Drover / each native path. Echo traffic crosses the bridge,
not lo, so the shaping applies to the migration streams only.

Pairing: one fresh guest per (data, dirty); per link condition REPS pairs;
pair k runs drover then native for even k and native then drover for odd
k (so neither path always gets the first or the host1->host2 move).
Each case line also gives the range of the pairs' own Drover / native
total ratios: on this shared 2-core machine single pairs swing far more
than the medians do.
Before each pair the guest has been running its workload since
`DROVER-GUEST ws-ready`, so both paths see the same steady state.

Links:
  unshaped  loopback as is
  1gbit     htb root qdisc on lo, one 1gbit class per path (same
            parameters), u32 filters on destination 127.0.0.2-3 and the
            destination port: 7402 (Drover channel) and the native
            migration port. Unmatched traffic is
            not shaped. Removed on exit, always. The classes' byte counters
            are printed as an independent "wire" figure for both paths.

Per migration (per case the median over the reps):
  total      libvirt's time_elapsed of the completed job, read on the
             destination (`domjobinfo --completed`) for both paths: the
             same instrument. Drover's own job.migration.total_s (source
             agent's wall time around virDomainMigrateToURI3) is printed
             next to it and kept in the JSON.
  downtime   QEMU's, from the same statistics (Drover's job reports the
             same figure).
  guest      guest-seen downtime as specified: largest step between
             consecutive heartbeat monotonic_ms values, from the last
             heartbeat before the migration to the last one after it.
             Under TCG the guest's clock stands still while QEMU has the
             guest paused, so this misses most of the stop.
  host-seen  largest gap between heartbeat lines reaching the console
             files (source, then destination), stamped with the host's
             clock by a 4 ms poller: the stop as the outside world sees it.
  wire       Drover: the channel's wire_bytes; native: QEMU's
             data_processed (what goes into its TCP stream). On the
             shaped link also the htb classes' byte counters.
  wall       the `droverctl migrate` / `virsh migrate` command, end to end.
  pause      QEMU's pause split by QEMU's own events on both hosts (`virsh
             qemu-monitor-event`): stop (source STOP -> MIGRATION
             "device"), final ("device" -> source "completed": the last
             pages and the device state loaded by the destination) and
             hand-over (-> destination RESUME: libvirt's Finish). The JSON
             also keeps live_ms (source "setup" -> STOP: the pre-copy
             rounds) and every first event in ms after the source's
             "setup" (events_ms); libvirt's time_elapsed minus the
             source's "completed" is what came before QEMU's migration
             (Begin, the connection to the destination, Prepare).

Targets (checked and printed PASS/MISS, never tuned):
  T1 link=1gbit data=text: drover total <= 0.8x native and wire <= 0.6x
  T2 data=random, any link: drover total <= 1.05x native
  T3 link=unshaped, any data: drover total <= 1.05x native
  T4 guest-seen downtime no worse than native (tolerance: one heartbeat
     period, the resolution of the measurement)
  T6 (--net) per link: Drover's median network-observed gap no worse than
     native's (tolerance: one request period, 10 ms), no broken connection
"""
import argparse
import atexit
import ctypes
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(REPO, "tests", "cluster", "cluster")
D = os.environ.get("DROVER_CLUSTER_DIR", "/tmp/drover-cluster-bench")
BUILD = os.environ.get("DROVER_BUILD_DIR", os.path.join(REPO, "build"))
CTL = os.path.join(BUILD, "cli", "droverctl")
KERNEL = os.path.join(REPO, "tests", "guest", "out", "vmlinuz")
INITRD = os.path.join(REPO, "tests", "guest", "out", "initramfs.img")
# The cluster's loopback net (tests/cluster/cluster: 127.0.K.0/24).
NET = int(os.environ.get("DROVER_CLUSTER_NET", "0"))
SCHED = "127.0.%d.1:7400" % NET
NATIVE_PATHS = ("native", "native-tls", "native-autoconverge")
TLS_DIR = "drover-bench-tls"  # under each host's /etc/libvirt
DROVER_PORT = 7402
HB_MS = 10
MEMORY = "512M"

# --net: the guests' NIC, on a bridge inside the cluster's namespace.
NETNS = None  # set by --netns / --net: the whole bench then runs inside it
NET_BRIDGE = "benchbr0"
NET_NAME = "benchnet"
NET_PREFIX = "10.79.0"  # bridge .1, guests .10 upwards (namespace only)
ECHO_PORT = 7
ECHO_PERIOD_MS = 10  # nic_echo_client.py's request period
ECHO_CLIENT = os.path.join(REPO, "tests", "integration", "nic_echo_client.py")
CLONE_NEWNET = 0x40000000

DIRTY = {
    "low": {"ws": 64, "rate": 8},
    "high": {"ws": 256, "rate": 0},
}
LINKS = ("unshaped", "1gbit")
DATAS = ("zero", "text", "random")

# The integration suite's guest command line (pti=on: see GUEST_CMDLINE in
# tests/integration/drover_harness.py for the QEMU TCG bug it avoids).
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from drover_harness import GUEST_CMDLINE  # noqa: E402

HB_RE = re.compile(rb"^HB (\d+) (\d+)\r?$", re.M)


def log(msg):
    print("migrate: " + msg, file=sys.stderr, flush=True)


def out(msg):
    print(msg, flush=True)


def run(cmd, timeout=120, check=True, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (
            " ".join(cmd[:4]), p.returncode,
            (p.stderr.decode(errors="replace") + p.stdout.decode(errors="replace")).strip()[-2000:]))
    return p


# ---- cluster --------------------------------------------------------------

def host_ip(i):
    return "127.0.%d.%d" % (NET, i + 1)


def host_sock(i):
    return "%s/host%d/run/libvirt/libvirt-sock" % (D, i)


def host_uri(i):
    return "qemu+unix:///system?socket=" + host_sock(i)


def host_data(i):
    return "%s/host%d/data" % (D, i)


def virsh(i, *args, timeout=120, check=True):
    return run(["virsh", "-q", "-c", host_uri(i)] + list(args), timeout=timeout, check=check)


def ctl(*args, timeout=120, check=True):
    return run([CTL, "--scheduler", SCHED, "--tls-dir", D + "/pki/droverctl"] + list(args),
               timeout=timeout, check=check)


def foreign_daemons():
    """Drover daemons (any cluster) that are not ours."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # Clusters on other loopback addresses do not collide with ours
        # (they still share the CPUs: see the load figures printed).
        if ("drover-scheduler" in cmd or "drover-agent" in cmd) and D not in cmd \
                and re.search(r"127\.0\.%d\.[123]:74\d\d" % NET, cmd):
            found.append("%s %s" % (pid, cmd[:120]))
    return found


def lo_root_qdisc():
    p = run(["tc", "qdisc", "show", "dev", "lo"], check=False)
    for line in p.stdout.decode().splitlines():
        if " root " in line:
            return line.strip()
    return ""


def wait_for_machine(max_wait):
    """Only one cluster fits the fixed ports; wait for others to go."""
    t0 = time.time()
    said = False
    while True:
        others = foreign_daemons()
        q = lo_root_qdisc()
        busy_q = q and not q.startswith("qdisc noqueue")
        if not others and not busy_q:
            return
        if not said:
            log("waiting: another cluster or a qdisc on lo is in use:\n  "
                + "\n  ".join(others + ([q] if busy_q else [])))
            said = True
        if time.time() - t0 > max_wait:
            raise RuntimeError("machine still busy after %d s" % max_wait)
        time.sleep(15)


# ---- the cluster's network namespace (--netns, --net) ---------------------

NETNS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")  # as tests/cluster/cluster
_libc = None
_home_ns = None  # fd of the namespace the bench started in


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise RuntimeError("setns: %s" % os.strerror(e))


def enter_netns(name):
    """Moves this process (its main thread, before any other thread
    exists; every later thread and child inherits it) into the cluster's
    network namespace: droverctl's TCP, tc on lo, the link check, the
    echo client all run there, and nothing of it reaches the machine's
    own loopback. virsh keeps using the hosts' unix sockets (files)."""
    global _home_ns
    if threading.active_count() != 1:
        raise RuntimeError("enter_netns: other threads already run")
    fd = os.open("/run/netns/" + name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _home_ns is None:
            _home_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        _setns(fd)
    finally:
        os.close(fd)


def leave_netns():
    """Back where the bench started (before `cluster down`, which kills
    every process left in the namespace)."""
    global _home_ns
    if _home_ns is not None:
        _setns(_home_ns)
        os.close(_home_ns)
        _home_ns = None


def setup_bench_network(env, timeout=60):
    """One Linux bridge in the namespace and one network on it, usable on
    both hosts once their agents have reported the bridge."""
    run([CLUSTER, "bridge", "add", NET_BRIDGE, NET_PREFIX + ".1/24"], env=env)
    # The scheduler's state outlives `cluster down` (without --purge): a
    # previous run's network on the same bridge is this one.
    r = ctl("network", "show", NET_NAME, "--json", check=False)
    if r.returncode != 0:
        ctl("network", "create", NET_NAME, "--bridge", NET_BRIDGE)
    elif json.loads(r.stdout).get("bridge") != NET_BRIDGE:
        raise RuntimeError("network %s exists on another bridge: %s" % (NET_NAME, r.stdout[:300]))
    t0 = time.monotonic()
    while True:
        doc = json.loads(ctl("network", "show", NET_NAME, "--json").stdout)
        hosts = doc.get("hosts", [])
        if len(hosts) == 2 and all(h.get("usable") for h in hosts):
            return
        if time.monotonic() - t0 > timeout:
            raise RuntimeError("network %s not usable on both hosts after %d s: %s" % (
                NET_NAME, timeout, doc))
        time.sleep(0.5)


def domain_nics(root):
    """[(type, mac, bridge, model)] of the domain XML's interfaces."""
    res = []
    for itf in root.findall("./devices/interface"):
        mac = itf.find("mac")
        src = itf.find("source")
        model = itf.find("model")
        res.append((itf.get("type"), None if mac is None else (mac.get("address") or "").lower(),
                    None if src is None else src.get("bridge"),
                    None if model is None else model.get("type")))
    return res


class NetWatch:
    """nic_echo_client.py (tests/integration) in the namespace during one
    migration: ONE TCP connection to the guest's echo service, a small
    request every 10 ms, each answer awaited; it never reconnects, so a
    broken connection is an error. The network-observed downtime of the
    move is the largest gap between consecutive answers over the client's
    whole life (from before the migration starts to after it ended)."""

    def __init__(self, vm, work):
        self.vm = vm
        self.stop_file = os.path.join(work, "echo-%s.stop" % vm.name)
        if os.path.exists(self.stop_file):
            os.unlink(self.stop_file)
        self.p = None

    def start(self, settle=1.0):
        self.p = subprocess.Popen([sys.executable, ECHO_CLIENT, self.vm.ip, str(ECHO_PORT),
                                   self.stop_file],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(settle)  # connected and answering before the move starts
        if self.p.poll() is not None:
            raise RuntimeError("echo client to %s:%d ended before the migration: %s %s" % (
                self.vm.ip, ECHO_PORT, self.p.stdout.read()[-500:], self.p.stderr.read()[-500:]))
        return self

    def retransmits(self):
        """TCP's retransmission count of the client's connection (`ss -ti`
        in the namespace: the total of "retrans:CUR/TOTAL"), None if ss
        does not show the connection."""
        p = run(["ss", "-tin", "dst", "%s:%d" % (self.vm.ip, ECHO_PORT)], check=False, timeout=10)
        text = p.stdout.decode(errors="replace")
        if "%s:%d" % (self.vm.ip, ECHO_PORT) not in text:
            return None
        m = re.search(r"retrans:\d+/(\d+)", text)
        return int(m.group(1)) if m else 0

    def finish(self, after=1.0, timeout=60):
        """{'net_gap_ms', 'net_sent', 'net_answered', 'net_error',
        'net_retrans'}."""
        time.sleep(after)  # answers from the destination, settled
        retrans = self.retransmits()
        open(self.stop_file, "w").close()
        try:
            so, se = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            so, se = self.p.communicate()
        finally:
            if os.path.exists(self.stop_file):
                os.unlink(self.stop_file)
        try:
            res = json.loads(so.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"net_gap_ms": None, "net_sent": 0, "net_answered": 0, "net_retrans": retrans,
                    "net_error": "echo client printed no result: %s" % se[-300:]}
        ts = res.get("times") or []
        gap = max((b - a for a, b in zip(ts, ts[1:])), default=None)
        err = res.get("error")
        if err is None and res.get("answered") != res.get("sent"):
            err = "answered %s of %s" % (res.get("answered"), res.get("sent"))
        return {"net_gap_ms": None if gap is None else gap * 1000.0,
                "net_sent": res.get("sent", 0), "net_answered": res.get("answered", 0),
                "net_retrans": retrans, "net_error": err}

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.communicate()


# ---- QEMU's own TLS (native-tls) ------------------------------------------

def setup_native_tls(work):
    """A CA, a server certificate per host (its IP as subject
    alternative name: QEMU checks the destination's name from the URI)
    and one client certificate, in each host's /etc/libvirt/TLS_DIR, and
    qemu.conf pointing migrate_tls_x509_cert_dir there; then the hosts'
    libvirtd restart to read it. Before any guest exists."""
    def ossl(*args):
        run(["openssl"] + list(args), timeout=60)
    ca_key, ca = os.path.join(work, "ca-key.pem"), os.path.join(work, "ca-cert.pem")
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=drover-bench-ca", "-keyout", ca_key, "-out", ca)
    cli_key, cli_csr = os.path.join(work, "client-key.pem"), os.path.join(work, "client.csr")
    cli = os.path.join(work, "client-cert.pem")
    ext = os.path.join(work, "ext.cnf")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=drover-bench-client",
         "-keyout", cli_key, "-out", cli_csr)
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
    ossl("x509", "-req", "-in", cli_csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-days", "2", "-extfile", ext, "-out", cli)
    for i in (1, 2):
        d = os.path.join(D, "host%d" % i, "etc", TLS_DIR)
        os.makedirs(d, exist_ok=True)
        key, csr = os.path.join(d, "server-key.pem"), os.path.join(work, "s%d.csr" % i)
        sext = os.path.join(work, "s%d.cnf" % i)
        with open(sext, "w") as f:
            f.write("subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n"
                    "keyUsage=digitalSignature,keyEncipherment\n" % host_ip(i))
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % host_ip(i),
             "-keyout", key, "-out", csr)
        ossl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-days", "2", "-extfile", sext, "-out", os.path.join(d, "server-cert.pem"))
        for name, src in (("ca-cert.pem", ca), ("client-cert.pem", cli), ("client-key.pem", cli_key)):
            with open(src, "rb") as fi, open(os.path.join(d, name), "wb") as fo:
                fo.write(fi.read())
        conf = os.path.join(D, "host%d" % i, "etc", "qemu.conf")
        with open(conf) as f:
            text = f.read()
        if "migrate_tls_x509_cert_dir" not in text.split("# --- drover bench tls ---")[-1] \
                or "# --- drover bench tls ---" not in text:
            with open(conf, "a") as f:
                f.write("\n# --- drover bench tls ---\nmigrate_tls_x509_cert_dir = "
                        "\"/etc/libvirt/%s\"\nmigrate_tls_x509_verify = 1\n" % TLS_DIR)
        run([CLUSTER, "restart-libvirtd", str(i)], timeout=120)
    log("native-tls: certificates in host1/host2 etc/%s, libvirtd restarted" % TLS_DIR)


# ---- tc -------------------------------------------------------------------

class Shaper:
    """htb on lo: class 1:10 for the Drover channel, 1:20 for native."""

    def __init__(self, native_port, rate="1gbit"):
        self.native_port = native_port
        self.relay_port = native_port + 1  # --relay: shaped like native
        self.rate = rate
        self.active = False

    def up(self):
        q = lo_root_qdisc()
        if q and not q.startswith("qdisc noqueue"):
            raise RuntimeError("lo already has a root qdisc (%s); not touching it" % q)
        self.active = True
        cmds = [
            "qdisc add dev lo root handle 1: htb default 0",
            # Loopback sends 64 KiB GSO packets: a burst of a few of them
            # keeps htb from stalling the flow below the rate.
            "class add dev lo parent 1: classid 1:10 htb rate %s ceil %s burst 256k cburst 256k quantum 65536" % (self.rate, self.rate),
            "class add dev lo parent 1: classid 1:20 htb rate %s ceil %s burst 256k cburst 256k quantum 65536" % (self.rate, self.rate),
        ]
        # Only this cluster's hosts (127.0.0.2, .3) and the link check's
        # sink (127.0.0.4): other helpers' clusters on other loopback
        # addresses use the same ports.
        for dst in ("127.0.%d.2/31" % NET, "127.0.%d.4/32" % NET):
            for port, cls in ((DROVER_PORT, "1:10"), (self.native_port, "1:20"),
                              (self.relay_port, "1:20")):
                cmds.append("filter add dev lo parent 1: protocol ip prio 1 u32 match ip dst %s "
                            "match ip dport %d 0xffff flowid %s" % (dst, port, cls))
        for c in cmds:
            run(["tc"] + c.split())

    def down(self):
        if not self.active:
            return
        q = lo_root_qdisc()
        if q.startswith("qdisc htb 1:"):
            run(["tc", "qdisc", "del", "dev", "lo", "root"], check=False)
        self.active = False

    def counters(self):
        """Bytes sent per class: {'drover': n, 'native': n}."""
        if not self.active:
            return {}
        p = run(["tc", "-s", "class", "show", "dev", "lo"], check=False)
        res = {}
        cur = None
        for line in p.stdout.decode().splitlines():
            m = re.match(r"class htb 1:(\d+) ", line)
            if m:
                cur = {"10": "drover", "20": "native"}.get(m.group(1))
                continue
            m = re.match(r"\s*Sent (\d+) bytes", line)
            if m and cur:
                res[cur] = int(m.group(1))
                cur = None
        return res


def link_check(port, mib=48):
    """Throughput of a plain TCP stream to PORT on 127.0.0.4 (no agent there)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.%d.4" % NET, port))
    srv.listen(1)
    got = [0]

    def sink():
        c, _ = srv.accept()
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            got[0] += len(b)
        c.close()

    th = threading.Thread(target=sink)
    th.start()
    s = socket.create_connection(("127.0.%d.4" % NET, port))
    buf = b"\x55" * (1 << 20)
    t0 = time.monotonic()
    for _ in range(mib):
        s.sendall(buf)
    s.shutdown(socket.SHUT_WR)
    th.join()
    dt = time.monotonic() - t0
    s.close()
    srv.close()
    return got[0] * 8 / dt / 1e6


# ---- guest console --------------------------------------------------------

def serial_path(host, vm):
    x = virsh(host, "dumpxml", vm).stdout.decode()
    root = ET.fromstring(x)
    src = root.find("./devices/serial/source")
    if src is None or not src.get("path"):
        raise RuntimeError("VM %s on host%d has no serial file" % (vm, host))
    return src.get("path")


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def console_bytes(log_path):
    """What the guest wrote, as Drover keeps it: NAME.history + NAME.log."""
    return read(log_path[:-len(".log")] + ".history") + read(log_path) \
        if log_path.endswith(".log") else read(log_path)


def heartbeats(data):
    hb = {}
    for m in HB_RE.finditer(data):
        hb[int(m.group(1))] = int(m.group(2))
    return hb


def last_counter(data):
    hb = heartbeats(data)
    return max(hb) if hb else 0


def guest_gap_ms(data, c0, c1):
    """Largest mono_ms step between consecutive heartbeats c0..c1."""
    hb = heartbeats(data)
    ks = sorted(k for k in hb if c0 <= k <= c1)
    if len(ks) < 2 or ks[0] != c0:
        return None
    gap = 0
    for a, b in zip(ks, ks[1:]):
        gap = max(gap, hb[b] - hb[a])
    return gap


class ConsoleTail:
    """Host-side view of the heartbeats: polls the source's and the
    destination's console files every POLL_S and stamps each new
    heartbeat line with the host's monotonic clock. The guest's own clock
    stands still while QEMU has it paused (TCG), so only the host sees the
    whole stop."""

    POLL_S = 0.004

    def __init__(self, paths):
        self.paths = paths
        self.arrivals = []  # (host_s, counter)
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._th.start()
        return self

    def stop(self):
        self._stop.set()
        self._th.join()

    def _run(self):
        state = {}  # path -> [inode, offset, partial line]
        for p in self.paths:
            # What is there already is not news.
            try:
                s = os.stat(p)
                state[p] = [s.st_ino, s.st_size, b""]
            except OSError:
                state[p] = [None, 0, b""]
        seen = set()
        while not self._stop.is_set():
            for p in self.paths:
                st = state[p]
                try:
                    s = os.stat(p)
                except OSError:
                    continue
                if st[0] != s.st_ino:
                    st[0], st[1], st[2] = s.st_ino, 0, b""
                if s.st_size <= st[1]:
                    continue
                try:
                    with open(p, "rb") as f:
                        f.seek(st[1])
                        chunk = f.read(s.st_size - st[1])
                except OSError:
                    continue
                now = time.monotonic()
                st[1] += len(chunk)
                buf = st[2] + chunk
                cut = buf.rfind(b"\n")
                st[2] = buf[cut + 1:]
                for m in HB_RE.finditer(buf[:cut + 1]):
                    c = int(m.group(1))
                    if c not in seen:
                        seen.add(c)
                        self.arrivals.append((now, c))
            time.sleep(self.POLL_S)

    def gap_ms(self):
        a = sorted(self.arrivals, key=lambda x: x[1])
        if len(a) < 2:
            return None
        return max((b[0] - x[0]) * 1000 for x, b in zip(a, a[1:]))


# ---- VMs ------------------------------------------------------------------

class Vm:
    def __init__(self, name, data, dirty):
        self.name = name
        self.data = data
        self.dirty = dirty
        self.host = 1
        self.ready_s = None
        self.ip = None  # --net: the guest's address on NET_BRIDGE
        self.nics = None  # --net: domain_nics() as created


def check_nics(vm):
    """--net: the VM's domain on its current host has exactly the NIC it
    was created with (MAC, bridge, virtio)."""
    if vm.nics is None:
        return
    got = domain_nics(ET.fromstring(virsh(vm.host, "dumpxml", vm.name).stdout.decode()))
    if got != vm.nics:
        raise RuntimeError("%s on host%d: interfaces %s, created with %s" % (
            vm.name, vm.host, got, vm.nics))


def create_vm(vm, ready_timeout):
    d = DIRTY[vm.dirty]
    cmdline = "%s drover.hb_ms=%d drover.ws_mib=%d drover.rate_mib=%d drover.data=%s" % (
        GUEST_CMDLINE, HB_MS, d["ws"], d["rate"], vm.data)
    net = []
    if vm.ip:
        cmdline += " drover.ip=%s/24 drover.echo=%d" % (vm.ip, ECHO_PORT)
        net = ["--net", NET_NAME]
    t0 = time.monotonic()
    ctl("vm", "create", vm.name, "--vcpus", "1", "--memory", MEMORY, "--kernel", KERNEL,
        "--initrd", INITRD, "--cmdline", cmdline, "--host", "host1", *net)
    vm.host = 1
    if vm.ip:
        vm.nics = domain_nics(ET.fromstring(virsh(1, "dumpxml", vm.name).stdout.decode()))
        if len(vm.nics) != 1 or vm.nics[0][0] != "bridge" or vm.nics[0][2] != NET_BRIDGE \
                or vm.nics[0][3] != "virtio":
            raise RuntimeError("%s: expected one virtio NIC on %s, domain has %s" % (
                vm.name, NET_BRIDGE, vm.nics))
    path = serial_path(1, vm.name)
    while True:
        data = read(path)
        if b"DROVER-GUEST error" in data:
            line = data[data.index(b"DROVER-GUEST error"):].split(b"\n")[0]
            raise RuntimeError("guest %s: %s" % (vm.name, line.decode(errors="replace")))
        if b"DROVER-GUEST ws-ready" in data and \
                (not vm.ip or b"DROVER-GUEST echo listening" in data):
            break
        if time.monotonic() - t0 > ready_timeout:
            raise RuntimeError("guest %s: no ws-ready within %d s (console %s)" % (
                vm.name, ready_timeout, path))
        time.sleep(0.2)
    vm.ready_s = time.monotonic() - t0
    up = re.search(rb"DROVER-GUEST up [^\n]*", data)
    out("migrate: vm %s ready: ws-ready after %.1fs from create (%s)" % (
        vm.name, vm.ready_s, up.group(0).decode() if up else "?"))


def delete_vm(name):
    r = ctl("vm", "delete", name, "--force", check=False, timeout=60)
    if r.returncode != 0:
        for i in (1, 2):
            virsh(i, "destroy", name, check=False)
            virsh(i, "undefine", name, check=False)


def vm_record(name):
    r = ctl("vm", "show", name, "--json", check=False, timeout=20)
    if r.returncode != 0:
        return None
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return None
    return doc.get("vm", doc) if isinstance(doc, dict) else None


def wait_inventory(vm, timeout=60):
    """Until the scheduler shows VM running on its current host."""
    t0 = time.monotonic()
    want = "host%d" % vm.host
    while time.monotonic() - t0 < timeout:
        rec = vm_record(vm.name)
        if rec and rec.get("host") == want and str(rec.get("state", "")).lower() == "running":
            return time.monotonic() - t0
        time.sleep(0.25)
    raise RuntimeError("scheduler does not show %s running on %s after %d s (last: %s)" % (
        vm.name, want, timeout, vm_record(vm.name)))


# ---- one migration --------------------------------------------------------

def settle_counter(path):
    """Last heartbeat counter now (after a short pause so it is current)."""
    time.sleep(0.3)
    return last_counter(console_bytes(path))


def parse_json_tail(text):
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    i = text.find("\n{")
    while i >= 0:
        try:
            return json.loads(text[i + 1:])
        except ValueError:
            i = text.find("\n{", i + 1)
    raise RuntimeError("no JSON in droverctl output: %s" % text[-500:])


class QemuEvents:
    """QEMU's STOP, RESUME and MIGRATION events on both hosts during one
    migration, stamped by QEMU itself (`virsh qemu-monitor-event`; both
    hosts share this machine's clock), to split the guest's pause:

      stop      source STOP -> source MIGRATION "device": QEMU sends what
                is left of RAM (long when a switchover is forced);
      final     "device" -> source "completed": the last RAM pages and the
                device state reach the destination QEMU, which loads them
                (QEMU's return path makes the source wait for that);
      handover  source "completed" -> destination RESUME: libvirt's Finish
                call to the destination, which starts the vCPUs.

    None where an event is missing, and handover None after a forced
    switchover (the guest arrives paused and is resumed later)."""

    PAT = re.compile(r"event (\w+) at (\d+)\.(\d+) for domain '([^']*)': ?(.*)")

    def __init__(self, name):
        self.name = name
        self.procs = {}

    def start(self):
        for h in (1, 2):
            self.procs[h] = subprocess.Popen(
                ["virsh", "-q", "-c", host_uri(h), "qemu-monitor-event", "--loop",
                 "--regex", "--event", "^(STOP|RESUME|MIGRATION)$"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(0.3)  # registered before the migration starts
        return self

    def stop(self, src, forced):
        texts = {}
        for h, p in self.procs.items():
            p.send_signal(signal.SIGINT)
            try:
                text, _ = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                text, _ = p.communicate()
            texts[h] = text.decode(errors="replace")
        return self.phases(texts, self.name, src, forced)

    @classmethod
    def phases(cls, texts, name, src, forced):
        """TEXTS: {host: virsh output}; the first event of each kind counts."""
        ev = {}
        for h, text in texts.items():
            for line in text.splitlines():
                m = cls.PAT.search(line)
                if not m or m.group(4) != name:
                    continue
                what = m.group(1)
                if what == "MIGRATION":
                    st = re.search(r'"status": ?"([\w-]+)"', m.group(5))
                    if not st:
                        continue
                    what = st.group(1)
                t = int(m.group(2)) + int(m.group(3)) / 1e6
                ev.setdefault(("src" if h == src else "dst", what), t)

        def ms(a, b):
            if a not in ev or b not in ev:
                return None
            return (ev[b] - ev[a]) * 1000.0
        base = ev.get(("src", "setup"))
        return {
            # every first event, in ms after the source's "setup" (when
            # libvirt's Perform starts QEMU's migration), for offline study
            "events_ms": None if base is None else {
                "%s:%s" % k: round((t - base) * 1000.0, 1) for k, t in sorted(ev.items(), key=lambda kv: kv[1])},
            "live_ms": ms(("src", "setup"), ("src", "STOP")),
            "stop_ms": ms(("src", "STOP"), ("src", "device")),
            "final_ms": ms(("src", "device"), ("src", "completed")),
            "handover_ms": None if forced else ms(("src", "completed"), ("dst", "RESUME")),
        }


def migrate_drover(vm, shaper):
    src, dst = vm.host, 3 - vm.host
    src_path = serial_path(src, vm.name)
    # Where Drover's destination puts the console (PrepareIncoming).
    dst_guess = os.path.join(host_data(dst), "console", vm.name + ".log")
    c0 = settle_counter(src_path)
    tc0 = shaper.counters()
    tail = ConsoleTail([src_path, dst_guess]).start()
    events = QemuEvents(vm.name).start()
    t0 = time.monotonic()
    try:
        r = ctl("migrate", vm.name, "--to", "host%d" % dst, "--json", timeout=900, check=False)
    except BaseException:
        events.stop(src, True)
        raise
    wall = time.monotonic() - t0
    if r.returncode != 0:
        events.stop(src, True)
        raise RuntimeError("droverctl migrate %s failed (rc %d): %s" % (
            vm.name, r.returncode, (r.stderr + r.stdout).decode(errors="replace")[-1500:]))
    doc = parse_json_tail(r.stdout.decode())
    job = doc.get("job", doc)
    pause = events.stop(src, bool((job.get("migration") or {}).get("forced_switchover")))
    if job.get("state") != "done":
        raise RuntimeError("migration job %s ended %s: %s" % (job.get("id"), job.get("state"), job.get("error")))
    tc1 = shaper.counters()
    vm.host = dst
    dst_path = serial_path(dst, vm.name)
    # The destination agent copies the source's console into NAME.history
    # after the switchover; wait for it (the source copy is then removed).
    t1 = time.monotonic()
    while os.path.exists(src_path) and time.monotonic() - t1 < 15:
        time.sleep(0.1)
    c1 = settle_counter(dst_path)
    tail.stop()
    if dst_path != dst_guess:
        log("note: Drover put the console of %s at %s, not %s" % (vm.name, dst_path, dst_guess))
    gap = guest_gap_ms(console_bytes(dst_path), c0, c1)
    st = completed_stats(dst, vm.name)
    m = job.get("migration") or {}
    pred = job.get("prediction") or {}
    return {
        "path": "drover",
        "total_s": st["time_elapsed_s"],
        "own_total_s": float(m.get("total_s") or 0),
        "downtime_ms": st["downtime_ms"],
        "own_downtime_ms": float(m.get("downtime_ms") or 0),
        "guest_ms": gap,
        "host_ms": tail.gap_ms(),
        "wire_bytes": int(m.get("wire_bytes") or 0),
        "qemu_bytes": st["data_bytes"],
        "own_qemu_bytes": int(m.get("qemu_bytes") or 0),
        "tc_bytes": (tc1.get("drover", 0) - tc0.get("drover", 0)) if tc0 else None,
        "wall_s": wall,
        "compress": m.get("compress_mode") or "",
        "ratio": float(m.get("compression_ratio") or 0),
        "rounds": st["iterations"],
        "stats": st["raw"],
        "forced": bool(m.get("forced_switchover")),
        "pause": pause,
        "pred_total_s": pred.get("total_s"),
        "pred_downtime_ms": pred.get("downtime_ms"),
        "job": job.get("id"),
        "src": src, "dst": dst,
    }


def rawstats(text):
    res = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        res[k.strip()] = v.strip()
    return res


def completed_stats(host, name):
    """libvirt's statistics of the finished migration job, as the
    destination has them (the same instrument for both paths)."""
    raw = rawstats(virsh(host, "domjobinfo", "--completed", "--rawstats", name).stdout.decode())

    def num(key):
        try:
            return float(raw.get(key))
        except (TypeError, ValueError):
            return 0.0
    return {
        "time_elapsed_s": num("time_elapsed") / 1000.0,
        "downtime_ms": num("downtime"),
        "data_bytes": int(num("data_processed")),
        "iterations": int(num("memory_iteration")),
        "raw": raw,
    }


RELAY_SOCK = "/var/lib/libvirt/qemu/bench-relay.sock"


def start_relay(src, dst, port):
    """Both ends of relay_floor.py, each in its host's mount namespace."""
    script = os.path.join(REPO, "tests", "bench", "relay_floor.py")
    procs = []
    for h, args in ((dst, ["dst", host_ip(dst), str(port), RELAY_SOCK]),
                    (src, ["src", RELAY_SOCK, host_ip(dst), str(port)])):
        holder = open(os.path.join(D, "pids", "host%d-holder.pid" % h)).read().strip()
        p = subprocess.Popen(["nsenter", "-t", holder, "-m", "--", "/usr/bin/python3", script] + args,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        if p.stdout.readline().strip() != b"ready":
            for q in procs:
                q.kill()
            raise RuntimeError("relay_floor %s: %s" % (args[0], p.stderr.read().decode(errors="replace")))
    return procs


def stop_relay(procs):
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def migrate_native(vm, shaper, port, native_timeout, relay=False, path="native"):
    """RELAY: QEMU's stream through relay_floor.py on shaper.relay_port.
    PATH native-tls: QEMU's TLS; native-autoconverge: QEMU's throttle."""
    src, dst = vm.host, 3 - vm.host
    src_path = serial_path(src, vm.name)
    dst_path = os.path.join(host_data(dst), "console", vm.name + ".log")
    # The same clean slate Drover's PrepareIncoming makes (nothing writes
    # these: the guest writes src_path).
    for p in (dst_path, dst_path[:-4] + ".history"):
        if os.path.exists(p):
            os.unlink(p)
    root = ET.fromstring(virsh(src, "dumpxml", "--migratable", vm.name).stdout.decode())
    for dev in ("serial", "console"):
        for s in root.findall("./devices/%s/source" % dev):
            if s.get("path") == src_path:
                s.set("path", dst_path)
    if vm.nics is not None and domain_nics(root) != vm.nics:
        # --net: the destination's domain must have the same interface.
        raise RuntimeError("native: migratable XML of %s has interfaces %s, not %s" % (
            vm.name, domain_nics(root), vm.nics))
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(ET.tostring(root, encoding="unicode"))
        xml_file = f.name
    c0 = settle_counter(src_path)
    tc0 = shaper.counters()
    # Started (and ready) before the clock and the watchers: not timed,
    # and a relay that fails to start leaves nothing running.
    try:
        relays = start_relay(src, dst, shaper.relay_port) if relay else []
    except BaseException:
        os.unlink(xml_file)
        raise
    tail = ConsoleTail([src_path, dst_path]).start()
    events = QemuEvents(vm.name).start()
    t0 = time.monotonic()
    args = ["migrate", "--live", "--p2p", "--persistent", "--undefinesource",
            "--xml", xml_file]
    if native_timeout > 0:
        # libvirt's own way out of a migration that does not converge:
        # pause the guest after this long (a forced switchover).
        args += ["--timeout", str(native_timeout), "--timeout-suspend"]
    if path == "native-tls":
        args += ["--tls"]
    elif path == "native-autoconverge":
        args += ["--auto-converge"]
    if relay:
        args += [vm.name, host_uri(dst), "unix://" + RELAY_SOCK]
    else:
        args += [vm.name, host_uri(dst), "tcp://%s:%d" % (host_ip(dst), port)]
    try:
        r = virsh(src, *args, timeout=native_timeout + 900, check=False)
    except BaseException:
        events.stop(src, True)
        raise
    finally:
        os.unlink(xml_file)
        stop_relay(relays)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        events.stop(src, True)
        raise RuntimeError("virsh migrate %s failed: %s" % (
            vm.name, (r.stderr + r.stdout).decode(errors="replace")[-1500:]))
    tc1 = shaper.counters()
    vm.host = dst
    st = completed_stats(dst, vm.name)
    # After --timeout-suspend the guest arrives paused, as after a forced
    # switchover; it must run (Drover's destination does the same).
    state = virsh(dst, "domstate", vm.name).stdout.decode().strip()
    forced = state.startswith("paused")
    pause = events.stop(src, forced)
    if forced:
        virsh(dst, "resume", vm.name, check=False)
    c1 = settle_counter(dst_path)
    tail.stop()
    data = console_bytes(src_path) + read(dst_path)
    gap = guest_gap_ms(data, c0, c1)
    # Hand-over done: the source's copy goes, as with Drover.
    for p in (src_path, src_path[:-4] + ".history"):
        if src_path.endswith(".log") and os.path.exists(p):
            os.unlink(p)
    return {
        "path": "relay" if relay else path,
        "total_s": st["time_elapsed_s"],
        "downtime_ms": st["downtime_ms"],
        "guest_ms": gap,
        "host_ms": tail.gap_ms(),
        "wire_bytes": st["data_bytes"],
        "qemu_bytes": st["data_bytes"],
        "tc_bytes": (tc1.get("native", 0) - tc0.get("native", 0)) if tc0 else None,
        "wall_s": wall,
        "compress": "",
        "ratio": 1.0,
        "rounds": st["iterations"],
        "forced": forced,
        "pause": pause,
        "src": src, "dst": dst,
        "stats": st["raw"],
    }


PANIC_MARKS = (b"Kernel panic", b"BUG: ", b"Oops: ", b"general protection fault")


def guest_alive(vm):
    """True when the guest still writes heartbeats and did not oops."""
    path = serial_path(vm.host, vm.name)
    n1 = last_counter(console_bytes(path))
    time.sleep(1.0)
    data = console_bytes(path)
    tail = data[-65536:]
    return last_counter(data) > n1 and not any(m in tail for m in PANIC_MARKS)


# ---- report ---------------------------------------------------------------

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fx(v, fmt):
    return "-" if v is None else fmt % v


def mib(b):
    return None if b is None else b / (1 << 20)


def summarize(results):
    """{(link, data, dirty): {'drover': {...medians}, 'native': {...}}}"""
    cases = {}
    for r in results:
        key = (r["link"], r["data"], r["dirty"])
        cases.setdefault(key, {}).setdefault(r["path"], []).append(r)
    summ = {}
    for key, d in cases.items():
        s = {}
        for path, rs in d.items():
            s[path] = {
                "n": len(rs),
                "total_s": med([r["total_s"] for r in rs]),
                "downtime_ms": med([r["downtime_ms"] for r in rs]),
                "guest_ms": med([r["guest_ms"] for r in rs]),
                "host_ms": med([r["host_ms"] for r in rs]),
                "own_total_s": med([r.get("own_total_s") for r in rs]),
                "wire_mib": mib(med([r["wire_bytes"] for r in rs])),
                "tc_mib": mib(med([r["tc_bytes"] for r in rs])),
                "wall_s": med([r["wall_s"] for r in rs]),
                "compress": ",".join(sorted(set(r["compress"] for r in rs if r["compress"]))),
                "forced": sum(1 for r in rs if r["forced"]),
                "crashed": sum(1 for r in rs if r.get("guest_crashed")),
            }
            for k in ("stop_ms", "final_ms", "handover_ms"):
                s[path][k] = med([(r.get("pause") or {}).get(k) for r in rs])
        # Drover / native total of each pair (same rep: the same guest,
        # minutes apart), to show how far single pairs swing.
        by_rep = {}
        for path in ("drover", "native"):
            for r in d.get(path, []):
                by_rep.setdefault(r["rep"], {})[path] = r["total_s"]
        s["pair_ratios"] = sorted(v["drover"] / v["native"] for v in by_rep.values()
                                  if v.get("drover") and v.get("native"))
        summ[key] = s
    return summ


def case_line(key, s):
    link, data, dirty = key
    d, n = s.get("drover"), s.get("native")
    if not d or not n:
        return "migrate: link=%s data=%s dirty=%s  incomplete" % key
    return ("migrate: link=%s data=%s dirty=%s  total drover=%ss native=%ss %sx | "
            "downtime qemu %s/%sms %sx | guest %s/%sms %sx | host-seen %s/%sms %sx | "
            "wire %s/%sMiB %sx | wall %s/%ss %sx | pairs %s | lz4 %s%s" % (
                link, data, dirty,
                fx(d["total_s"], "%.2f"), fx(n["total_s"], "%.2f"), fx(ratio(d["total_s"], n["total_s"]), "%.2f"),
                fx(d["downtime_ms"], "%.0f"), fx(n["downtime_ms"], "%.0f"), fx(ratio(d["downtime_ms"], n["downtime_ms"]), "%.2f"),
                fx(d["guest_ms"], "%.0f"), fx(n["guest_ms"], "%.0f"), fx(ratio(d["guest_ms"], n["guest_ms"]), "%.2f"),
                fx(d["host_ms"], "%.0f"), fx(n["host_ms"], "%.0f"), fx(ratio(d["host_ms"], n["host_ms"]), "%.2f"),
                fx(d["wire_mib"], "%.0f"), fx(n["wire_mib"], "%.0f"), fx(ratio(d["wire_mib"], n["wire_mib"]), "%.2f"),
                fx(d["wall_s"], "%.2f"), fx(n["wall_s"], "%.2f"), fx(ratio(d["wall_s"], n["wall_s"]), "%.2f"),
                "total %s-%sx" % (fx(min(s["pair_ratios"], default=None), "%.2f"),
                                  fx(max(s["pair_ratios"], default=None), "%.2f")),
                d["compress"] or "-",
                ("" if not (d["forced"] or n["forced"]) else
                 " | forced switchover drover %d native %d" % (d["forced"], n["forced"]))
                + ("" if not (d["crashed"] or n["crashed"]) else
                   " | guest crashed after migration: drover %d/%d native %d/%d" % (
                       d["crashed"], d["n"], n["crashed"], n["n"]))))


def table(summ, reps):
    lines = [
        "| link | data | dirty | total (s) | x | QEMU downtime (ms) | x | guest-seen (ms) | x | host-seen (ms) | x | wire (MiB) | x | tc-counted (MiB) | command wall (s) | x | lz4 | guest crashed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(summ, key=lambda k: (LINKS.index(k[0]), DATAS.index(k[1]), list(DIRTY).index(k[2]))):
        s = summ[key]
        d, n = s.get("drover"), s.get("native")
        if not d or not n:
            continue
        lines.append("| %s | %s | %s | %s / %s | %s | %s / %s | %s | %s / %s | %s | %s / %s | %s | %s / %s | %s | %s | %s / %s | %s | %s | %d/%d / %d/%d |" % (
            key[0], key[1], key[2],
            fx(d["total_s"], "%.2f"), fx(n["total_s"], "%.2f"), fx(ratio(d["total_s"], n["total_s"]), "%.2f"),
            fx(d["downtime_ms"], "%.0f"), fx(n["downtime_ms"], "%.0f"), fx(ratio(d["downtime_ms"], n["downtime_ms"]), "%.2f"),
            fx(d["guest_ms"], "%.0f"), fx(n["guest_ms"], "%.0f"), fx(ratio(d["guest_ms"], n["guest_ms"]), "%.2f"),
            fx(d["host_ms"], "%.0f"), fx(n["host_ms"], "%.0f"), fx(ratio(d["host_ms"], n["host_ms"]), "%.2f"),
            fx(d["wire_mib"], "%.0f"), fx(n["wire_mib"], "%.0f"), fx(ratio(d["wire_mib"], n["wire_mib"]), "%.2f"),
            "-" if d["tc_mib"] is None else "%.0f / %.0f" % (d["tc_mib"], n["tc_mib"] or 0),
            fx(d["wall_s"], "%.2f"), fx(n["wall_s"], "%.2f"), fx(ratio(d["wall_s"], n["wall_s"]), "%.2f"),
            d["compress"] or "-", d["crashed"], d["n"], n["crashed"], n["n"]))
    lines.append("")
    lines.append("Drover / native, x = Drover/native. 512 MiB TCG guests, 1 vCPU, heartbeat every %d ms; "
                 "median of %d migration(s) per path and case; dirty low = 64 MiB rewritten at 8 MiB/s, "
                 "high = 256 MiB as fast as the guest can. Total, QEMU downtime: libvirt's completed-job "
                 "statistics (time_elapsed, downtime) on the destination, the same instrument for both. "
                 "Guest-seen: largest step of the guest's CLOCK_MONOTONIC between heartbeats (that clock "
                 "stands still while QEMU has the guest paused). Host-seen: largest gap between heartbeat "
                 "lines reaching the console files, on the host's clock. Wire: Drover's channel wire_bytes, "
                 "native QEMU's data_processed; tc-counted: bytes through the 1gbit htb classes (incl. "
                 "headers). Command wall: `droverctl migrate` vs `virsh migrate`, end to end. Guest crashed: migrations after which "
                 "the guest oopsed or stopped writing heartbeats (then recreated; its downtime figures are left out)." % (HB_MS, reps))
    lines.append("")
    lines.append("Where QEMU's pause goes, from QEMU's own events (median ms, Drover / native): "
                 "stop = source STOP to MIGRATION \"device\" (RAM still to send; long after a forced "
                 "switchover), final = \"device\" to the source's \"completed\" (last pages and device "
                 "state loaded by the destination QEMU), hand-over = source \"completed\" to the "
                 "destination's RESUME (libvirt's Finish; left out after a forced switchover).")
    lines.append("")
    lines.append("| link | data | dirty | stop (ms) | final (ms) | hand-over (ms) |")
    lines.append("|---|---|---|---|---|---|")
    for key in sorted(summ, key=lambda k: (LINKS.index(k[0]), DATAS.index(k[1]), list(DIRTY).index(k[2]))):
        d, n = summ[key].get("drover"), summ[key].get("native")
        if not d or not n:
            continue
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            key[0], key[1], key[2],
            *["%s / %s" % (fx(d[k], "%.0f"), fx(n[k], "%.0f"))
              for k in ("stop_ms", "final_ms", "handover_ms")]))
    return "\n".join(lines)


def relay_table(summ):
    """Total time of the three paths: what the bare topology costs
    (relay / native) against what Drover costs (drover / native)."""
    lines = ["Relay floor: native's stream through a bare splice relay with Drover's topology "
             "(unix -> TCP -> unix, no TLS), median total (s):", "",
             "| link | data | dirty | drover | native | relay | relay / native | drover / native | drover / relay |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(summ, key=lambda k: (LINKS.index(k[0]), DATAS.index(k[1]), list(DIRTY).index(k[2]))):
        d, n, r = (summ[key].get(p) for p in ("drover", "native", "relay"))
        if not (d and n and r):
            continue
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            key[0], key[1], key[2],
            fx(d["total_s"], "%.2f"), fx(n["total_s"], "%.2f"), fx(r["total_s"], "%.2f"),
            fx(ratio(r["total_s"], n["total_s"]), "%.2f"), fx(ratio(d["total_s"], n["total_s"]), "%.2f"),
            fx(ratio(d["total_s"], r["total_s"]), "%.2f")))
    return "\n".join(lines)


def native_table(summ):
    """Drover against each native path: median total, QEMU downtime and
    host-seen pause; the ratio of totals against native-tls (the
    encrypted baseline)."""
    cols = [p for p in ("drover",) + NATIVE_PATHS]
    lines = ["Drover against native paths (median total s / QEMU downtime ms / host-seen ms; "
             "n = migrations):", "",
             "| link | data | dirty | " + " | ".join(cols) + " | drover / native-tls total |",
             "|---|---|---|" + "---|" * len(cols) + "---|"]
    for key in sorted(summ, key=lambda k: (LINKS.index(k[0]), DATAS.index(k[1]), list(DIRTY).index(k[2]))):
        s = summ[key]
        cells = []
        for p in cols:
            v = s.get(p)
            cells.append("-" if not v else "%s / %s / %s (n=%d%s)" % (
                fx(v["total_s"], "%.2f"), fx(v["downtime_ms"], "%.0f"), fx(v["host_ms"], "%.0f"),
                v["n"], ", %d forced" % v["forced"] if v["forced"] else ""))
        d, t = s.get("drover"), s.get("native-tls")
        lines.append("| %s | %s | %s | %s | %s |" % (
            key[0], key[1], key[2], " | ".join(cells),
            fx(ratio(d["total_s"], t["total_s"]), "%.2f") if d and t else "-"))
    return "\n".join(lines)


def net_stats(results, link, path):
    """Network-observed downtime of PATH's moves on LINK (--net): moves,
    median and max gap (ms), broken connections. Moves after which the
    guest crashed are left out of the gaps (not of the broken count)."""
    rs = [r for r in results if r["link"] == link and r["path"] == path and "net_gap_ms" in r]
    gaps = [r["net_gap_ms"] for r in rs if r["net_gap_ms"] is not None and not r.get("guest_crashed")
            and not r["net_error"]]
    return {"n": len(rs), "median_ms": med(gaps), "max_ms": max(gaps) if gaps else None,
            "broken": sum(1 for r in rs if r["net_error"]),
            "retrans": sum(1 for r in rs if r.get("net_retrans"))}


def net_table(results, links, paths):
    lines = ["Network-observed downtime (--net): largest gap between echo answers per move, one TCP "
             "connection per move from the cluster's namespace to the guest's echo service, a "
             "request every %d ms, no reconnect (median / max over the moves, ms):" % ECHO_PERIOD_MS, "",
             "| link | path | moves | median gap (ms) | max gap (ms) | broken connections | "
             "moves with TCP retransmissions | drover / this path (median) | drover / this path (max) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for link in links:
        d = net_stats(results, link, "drover")
        for path in paths:
            s = net_stats(results, link, path)
            lines.append("| %s | %s | %d | %s | %s | %d | %d | %s | %s |" % (
                link, path, s["n"], fx(s["median_ms"], "%.0f"), fx(s["max_ms"], "%.0f"), s["broken"],
                s["retrans"],
                "-" if path == "drover" else fx(ratio(d["median_ms"], s["median_ms"]), "%.2f"),
                "-" if path == "drover" else fx(ratio(d["max_ms"], s["max_ms"]), "%.2f")))
    return "\n".join(lines)


def net_checks(results, links):
    """T6: per link, Drover's median network-observed gap no worse than
    native's (tolerance: one request period) and no broken connection."""
    res = []
    for link in links:
        d, n = net_stats(results, link, "drover"), net_stats(results, link, "native")
        if not d["n"] or not n["n"]:
            res.append(("network-observed gap, %s: drover <= native + %d ms" % (link, ECHO_PERIOD_MS),
                        "SKIP", "no moves of both paths"))
            continue
        ok = (d["median_ms"] is not None and n["median_ms"] is not None
              and d["median_ms"] <= n["median_ms"] + ECHO_PERIOD_MS and not d["broken"] and not n["broken"])
        res.append(("network-observed gap, %s: drover <= native + %d ms" % (link, ECHO_PERIOD_MS),
                    "PASS" if ok else "MISS",
                    "median %s/%sms, max %s/%sms, broken %d/%d" % (
                        fx(d["median_ms"], "%.0f"), fx(n["median_ms"], "%.0f"),
                        fx(d["max_ms"], "%.0f"), fx(n["max_ms"], "%.0f"), d["broken"], n["broken"])))
    return res


def checks(summ):
    res = []

    def each(pred):
        return [(k, s) for k, s in sorted(summ.items()) if pred(k) and s.get("drover") and s.get("native")]

    def verdict(items, ok, fmt):
        if not items:
            return "SKIP", "no cases measured"
        parts, good = [], True
        for k, s in items:
            passed, text = ok(s["drover"], s["native"])
            good = good and passed
            parts.append("%s/%s/%s %s%s" % (k[0], k[1], k[2], text, "" if passed else " (miss)"))
        return ("PASS" if good else "MISS"), "; ".join(parts)

    def t1(d, n):
        rt, rw = ratio(d["total_s"], n["total_s"]), ratio(d["wire_mib"], n["wire_mib"])
        return (rt is not None and rt <= 0.8 and rw is not None and rw <= 0.6,
                "total %sx wire %sx" % (fx(rt, "%.2f"), fx(rw, "%.2f")))

    def tt(d, n):
        rt = ratio(d["total_s"], n["total_s"])
        return rt is not None and rt <= 1.05, "total %sx" % fx(rt, "%.2f")

    def t4(key):
        def f(d, n):
            if d[key] is None or n[key] is None:
                return False, "gap not measured"
            return d[key] <= n[key] + HB_MS, "%.0f/%.0fms" % (d[key], n[key])
        return f

    res.append(("1gbit text: total <= 0.8x and wire <= 0.6x",) + verdict(each(lambda k: k[0] == "1gbit" and k[1] == "text"), t1, None))
    res.append(("random, any link: total <= 1.05x",) + verdict(each(lambda k: k[1] == "random"), tt, None))
    res.append(("unshaped, any data: total <= 1.05x",) + verdict(each(lambda k: k[0] == "unshaped"), tt, None))
    res.append(("guest-seen downtime <= native + %d ms (heartbeat period)" % HB_MS,) + verdict(each(lambda k: True), t4("guest_ms"), None))
    res.append(("host-seen downtime <= native + %d ms (heartbeat period)" % HB_MS,) + verdict(each(lambda k: True), t4("host_ms"), None))

    def t5(d, t):
        rt = ratio(d["total_s"], t["total_s"])
        return rt is not None and rt <= 1.0, "total %sx" % fx(rt, "%.2f")
    tls = [(k, {"drover": s["drover"], "native": s["native-tls"]}) for k, s in sorted(summ.items())
           if k[0] == "unshaped" and s.get("drover") and s.get("native-tls")]
    if tls:
        res.append(("unshaped: drover total <= 1.0x native-tls",) + verdict(tls, t5, None))
    return res


# ---- main -----------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2, help="migration pairs per case and link (default 2)")
    ap.add_argument("--links", default=",".join(LINKS))
    ap.add_argument("--data", default=",".join(DATAS))
    ap.add_argument("--dirty", default=",".join(DIRTY))
    ap.add_argument("--native-port", type=int, default=49320, help="QEMU's port for the native path")
    ap.add_argument("--native-timeout", type=int, default=120,
                    help="native: `virsh migrate --timeout S --timeout-suspend` (0 = none)")
    ap.add_argument("--native-only", action="store_true",
                    help="only the native path (to check the harness while droverctl migrate is not there)")
    ap.add_argument("--relay", action="store_true",
                    help="a third path per pair: native's migration through relay_floor.py (port native+1)")
    ap.add_argument("--paths", default="drover,native",
                    help="comma list of drover, native, native-tls, native-autoconverge "
                         "(default drover,native)")
    ap.add_argument("--ready-timeout", type=int, default=300)
    ap.add_argument("--wait-machine", type=int, default=1800,
                    help="seconds to wait for another cluster to go away")
    ap.add_argument("--out", default=None, help="raw results as JSON (default DROVER_CLUSTER_DIR/bench-migrate.json)")
    ap.add_argument("--keep", action="store_true", help="leave the cluster up at the end")
    ap.add_argument("--netns", default=os.environ.get("DROVER_CLUSTER_NETNS") or None,
                    help="run the cluster inside this network namespace (`cluster up 2 --netns "
                         "NAME`; default DROVER_CLUSTER_NETNS, else none) and the bench with it")
    ap.add_argument("--net", action="store_true",
                    help="network-observed downtime: each guest gets a virtio-net NIC on a bridge "
                         "in the namespace (implies --netns, default drover-bench) and runs its echo "
                         "service; an echo client keeps one TCP connection to it through each move")
    a = ap.parse_args()
    if a.net and not a.netns:
        a.netns = "drover-bench"
    if a.netns and not NETNS_RE.match(a.netns):
        ap.error("bad namespace name %r" % a.netns)
    links = [x for x in a.links.split(",") if x]
    datas = [x for x in a.data.split(",") if x]
    dirties = [x for x in a.dirty.split(",") if x]
    for x in links:
        if x not in LINKS:
            ap.error("unknown link %s" % x)
    for x in datas:
        if x not in DATAS:
            ap.error("unknown data %s" % x)
    for x in dirties:
        if x not in DIRTY:
            ap.error("unknown dirty level %s" % x)
    if os.geteuid() != 0:
        ap.error("must run as root (cluster, tc)")
    paths = [x for x in a.paths.split(",") if x]
    for x in paths:
        if x != "drover" and x not in NATIVE_PATHS:
            ap.error("unknown path %s" % x)
    if a.native_only:
        paths = [x for x in paths if x != "drover"] or ["native"]
    if a.relay:
        paths.append("relay")

    global NETNS
    NETNS = a.netns
    shaper = Shaper(a.native_port)
    vms = []
    state = {"cluster": False, "watch": None}
    net_work = tempfile.mkdtemp(prefix="drover-bench-net-")

    def cleanup():
        if state["watch"]:
            state["watch"].kill()
        try:
            shaper.down()
        except Exception as e:  # noqa: BLE001 - cleanup goes on
            log("tc cleanup: %s" % e)
        if state["cluster"]:
            for vm in vms:
                try:
                    delete_vm(vm.name)
                except Exception as e:  # noqa: BLE001
                    log("delete %s: %s" % (vm.name, e))
            try:
                leave_netns()  # `down` kills what is left in the namespace
            except RuntimeError as e:
                log("leaving the namespace: %s (not taking the cluster down)" % e)
                a.keep = True
            if not a.keep:
                subprocess.run([CLUSTER, "down"], stdout=subprocess.DEVNULL, env=env)
        try:
            os.rmdir(net_work)
        except OSError:
            pass
        if lo_root_qdisc().startswith("qdisc htb 1:") and shaper.active:
            log("WARNING: qdisc still on lo")

    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    if not a.native_only:
        h = run([CTL, "migrate", "--help"], check=False)
        if b"migrate VM" not in h.stdout + h.stderr:
            raise SystemExit("migrate: %s has no `migrate` verb yet (use --native-only)" % CTL)

    env = dict(os.environ, DROVER_CLUSTER_DIR=D, DROVER_BUILD_DIR=BUILD,
               DROVER_REPORT_INTERVAL_MS=os.environ.get("DROVER_REPORT_INTERVAL_MS", "1000"))
    env.pop("DROVER_CLUSTER_NETNS", None)
    up = [CLUSTER, "up", "2"]
    if NETNS:
        # Its own loopback: no port or qdisc of another cluster to wait for.
        up += ["--netns", NETNS]
    else:
        wait_for_machine(a.wait_machine)
    state["cluster"] = True
    p = subprocess.run(up, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise SystemExit("migrate: cluster up failed:\n" + p.stdout.decode(errors="replace")[-3000:])
    if NETNS:
        enter_netns(NETNS)
    log("cluster up in %s%s" % (D, " (namespace %s)" % NETNS if NETNS else ""))
    if a.net:
        setup_bench_network(env)
        out("migrate: --net: network %s on bridge %s (%s.1/24) in namespace %s; echo requests "
            "every %d ms over one TCP connection per migration" % (
                NET_NAME, NET_BRIDGE, NET_PREFIX, NETNS, ECHO_PERIOD_MS))
    if "native-tls" in paths:
        with tempfile.TemporaryDirectory(prefix="drover-bench-tls-") as work:
            setup_native_tls(work)

    results = []
    t_start = time.monotonic()
    out("migrate: load average at start: %s (other helpers' clusters share these 2 cores)" % open("/proc/loadavg").read().strip())
    for dirty in dirties:
        for data in datas:
            vm = Vm("bm-%s-%s" % (data, dirty), data, dirty)
            if a.net:
                vm.ip = "%s.%d" % (NET_PREFIX, 10 + len(results) % 200)
            delete_vm(vm.name)
            vms.append(vm)
            create_vm(vm, a.ready_timeout)
            wait_inventory(vm)
            for link in links:
                if link == "1gbit":
                    shaper.up()
                    for port in (DROVER_PORT, a.native_port):
                        out("migrate: link check 1gbit class for port %d: %.0f Mbit/s" % (port, link_check(port)))
                for rep in range(a.reps):
                    order = paths if rep % 2 == 0 else list(reversed(paths))
                    for path in order:
                        inv = wait_inventory(vm)
                        if a.net:
                            state["watch"] = NetWatch(vm, net_work).start()
                        if path == "drover":
                            r = migrate_drover(vm, shaper)
                        else:
                            r = migrate_native(vm, shaper, a.native_port, a.native_timeout,
                                               relay=path == "relay",
                                               path="native" if path == "relay" else path)
                        if a.net:
                            r.update(state["watch"].finish())
                            state["watch"] = None
                            check_nics(vm)
                            out("migrate:   %-6s network-observed: largest gap between echo answers "
                                "%sms, %d/%d answered, TCP retransmissions %s%s" % (
                                    path, fx(r["net_gap_ms"], "%.0f"), r["net_answered"], r["net_sent"],
                                    fx(r["net_retrans"], "%d"),
                                    "" if not r["net_error"] else " CONNECTION BROKEN: %s" % r["net_error"]))
                        r.update(link=link, data=data, dirty=dirty, rep=rep, inventory_wait_s=inv)
                        r["guest_crashed"] = not guest_alive(vm)
                        if r["guest_crashed"]:
                            # Its downtime figures mean nothing; QEMU's
                            # figures of the transfer still stand.
                            r["guest_ms"] = r["host_ms"] = None
                        results.append(r)
                        pz = r.get("pause") or {}
                        out("migrate:   %-6s host%d->host%d link=%s data=%s dirty=%s rep=%d: total %.2fs%s "
                            "downtime %.0fms (stop/final/hand-over %s/%s/%sms) guest %sms host-seen %sms "
                            "rounds %d wire %.1fMiB qemu %.1fMiB%s wall %.2fs%s%s%s" % (
                                path, r["src"], r["dst"], link, data, dirty, rep, r["total_s"],
                                " (job %.2fs)" % r["own_total_s"] if "own_total_s" in r else "",
                                r["downtime_ms"],
                                *[fx(pz.get(k), "%.0f") for k in ("stop_ms", "final_ms", "handover_ms")],
                                fx(r["guest_ms"], "%.0f"), fx(r["host_ms"], "%.0f"),
                                r["rounds"], mib(r["wire_bytes"]),
                                mib(r["qemu_bytes"]),
                                "" if r["tc_bytes"] is None else " tc %.1fMiB" % mib(r["tc_bytes"]),
                                r["wall_s"],
                                " lz4=%s %.2fx" % (r["compress"], r["ratio"]) if r["compress"] else "",
                                " FORCED" if r["forced"] else "",
                                " GUEST CRASHED (no heartbeats / oops after the migration)" if r["guest_crashed"] else ""))
                        if r["guest_crashed"]:
                            delete_vm(vm.name)
                            create_vm(vm, a.ready_timeout)
                            wait_inventory(vm)
                shaper.down()
            delete_vm(vm.name)
            vms.remove(vm)

    summ = summarize(results)
    out("")
    for key in sorted(summ, key=lambda k: (LINKS.index(k[0]), DATAS.index(k[1]), list(DIRTY).index(k[2]))):
        out(case_line(key, summ[key]))
    out("")
    out(table(summ, a.reps))
    out("")
    if a.relay:
        out(relay_table(summ))
        out("")
    if any(p in paths for p in ("native-tls", "native-autoconverge")):
        out(native_table(summ))
        out("")
    if a.net:
        out(net_table(results, links, paths))
        out("")
    for name, verdict, detail in checks(summ) + (net_checks(results, links) if a.net else []):
        out("migrate: check %-62s %s  (%s)" % (name, verdict, detail))
    out("migrate: %d migrations in %.0f s; load average at end: %s" % (
        len(results), time.monotonic() - t_start, open("/proc/loadavg").read().strip()))
    path = a.out or os.path.join(D, "bench-migrate.json")
    with open(path, "w") as f:
        json.dump({"results": results,
                   "summary": {"%s/%s/%s" % k: v for k, v in summ.items()}}, f, indent=1)
    out("migrate: raw results in %s" % path)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        log("error: %s" % e)
        sys.exit(1)
