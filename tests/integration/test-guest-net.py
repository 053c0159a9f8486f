#!/usr/bin/python3
"""Guest networking on the harness's network namespace, without Drover's
NIC support: the test guest booted with plain QEMU (TCG) inside a
namespace made by tests/cluster/cluster, its virtio-net NIC on a tap on a
bridge in that namespace.

Checks: `cluster netns-up` and `cluster bridge add` make the namespace and
its bridges (their addresses are not visible outside; bad names and
CIDRs are refused and change nothing); a client inside the namespace gets
its bytes back from a guest's echo service (drover.echo) on several
connections at once; two guests on one bridge talk to each other
(drover.probe); a guest on a second bridge, in the same subnet, is not
reachable from the first bridge and cannot reach it either, while it
answers itself; heartbeats go on; `cluster down --purge` leaves no
namespace, bridge or QEMU behind. Last, a whole 2-host cluster runs in a
namespace (`cluster up 2 --netns`): every daemon is inside it, droverctl
through `cluster exec` lists both hosts up, a libvirt domain's tap goes on
a bridge of the namespace and its echo answers there, and down removes it.
Prints TAP.
"""
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, CLUSTER, GUEST_CMDLINE, GUEST_INITRD, GUEST_KERNEL,  # noqa: E402
                            Cluster, Tap, log, run, wait_for)

TAG = f"{os.getpid() % 100000}"
NETNS = f"drover-gn{TAG}"
BR1, BR2 = f"gn{TAG}b1", f"gn{TAG}b2"
A_IP, B_IP, C_IP = "10.77.1.5", "10.77.1.6", "10.77.1.7"

# The client run inside the namespace: CONNS connections to HOST:PORT,
# interleaved writes of random chunks on all of them, every echo compared.
CLIENT = r"""
import os, random, socket, sys
host, port, conns, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ss = [socket.create_connection((host, port), timeout=5) for _ in range(conns)]
rnd = random.Random(7)
sent = [bytearray() for _ in ss]
got = [bytearray() for _ in ss]
for k in range(total // 4096):
    i = k % len(ss)
    chunk = bytes(rnd.getrandbits(8) for _ in range(4096))
    ss[i].sendall(chunk)
    sent[i] += chunk
    while len(got[i]) < len(sent[i]):
        b = ss[i].recv(65536)
        if not b:
            sys.exit(f"connection {i} closed early")
        got[i] += b
for i, s in enumerate(ss):
    if got[i] != sent[i]:
        sys.exit(f"connection {i}: echo differs")
    s.close()
print("echoed", sum(len(x) for x in got), "bytes on", len(ss), "connections")
"""

# A client that fills its connection without reading any echo, then
# (while it stays stalled) runs CLIENT on 2 other connections, then
# resets a connection that has echo data in flight.
STALL = r"""
import select, socket, struct, subprocess, sys
host, port, client = sys.argv[1], int(sys.argv[2]), sys.argv[3]
st = socket.create_connection((host, port), timeout=5)
st.setblocking(False)
sent = 0
# Until every buffer on the way is full: no room for 2 s.
while sent < 64 << 20:
    try:
        sent += st.send(b"x" * 65536)
    except BlockingIOError:
        if not select.select([], [st], [], 2.0)[1]:
            break
print("stalled after", sent, "bytes")
r = subprocess.run([sys.executable, "-c", client, host, str(port), "2", str(32 * 1024)],
                   capture_output=True, text=True, timeout=30)
print(r.stdout.strip(), r.stderr.strip())
rs = socket.create_connection((host, port), timeout=5)
rs.sendall(b"y" * 200000)
rs.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
rs.close()
st.close()
sys.exit(r.returncode)
"""


class NetGuest:
    """QEMU inside the namespace with one virtio-net NIC on TAP (on BR)."""

    def __init__(self, c, tmp, name, tap, br, ip, mac, extra=""):
        self.name = name
        self.console = os.path.join(tmp, f"console-{name}.log")
        c.exec("ip", "tuntap", "add", "dev", tap, "mode", "tap")
        c.exec("ip", "link", "set", tap, "master", br, "up")
        cmdline = f"{GUEST_CMDLINE} drover.ip={ip}/24 drover.echo=7 {extra}".strip()
        self.p = subprocess.Popen(
            c.exec_argv("qemu-system-x86_64", "-accel", "tcg", "-m", "128", "-smp", "1",
                        "-display", "none", "-monitor", "none", "-no-reboot",
                        "-serial", f"file:{self.console}",
                        "-kernel", GUEST_KERNEL, "-initrd", GUEST_INITRD, "-append", cmdline,
                        "-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                        "-device", f"virtio-net-pci,netdev=n0,mac={mac}"),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)

    def text(self):
        try:
            with open(self.console, "rb") as f:
                return f.read().decode(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def wait(self, what, pred, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = pred(self.text())
            if r:
                return r
            if self.p.poll() is not None:
                raise AssertionError(f"{self.name}: QEMU exited {self.p.returncode} waiting for "
                                     f"{what}: {self.p.stdout.read()}\n{self.text()[-1500:]}")
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: timed out waiting for {what}; console tail:\n"
                             f"{self.text()[-1500:]}")

    def probes(self, target):
        """[(n, ok)] of this guest's probes of TARGET (IP:PORT)."""
        rx = re.compile(r"^DROVER-GUEST probe " + re.escape(target) + r" (ok|fail) n=(\d+)", re.M)
        return [(int(m.group(2)), m.group(1) == "ok") for m in rx.finditer(self.text())]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def addrs_outside():
    return run(["ip", "-br", "addr"]).stdout


def case_namespace(c, st):
    c.netns_up()
    assert c.netns_exists(), f"/run/netns/{NETNS} missing after netns-up"
    c.bridge_add(BR1, "10.77.1.1/24")
    c.bridge_add(BR2, "10.77.2.1/24")
    inside = c.exec("ip", "-br", "addr").stdout
    assert re.search(rf"^{BR1}\s.*10\.77\.1\.1/24", inside, re.M), inside
    assert re.search(rf"^{BR2}\s.*10\.77\.2\.1/24", inside, re.M), inside
    assert re.search(r"^lo\s+UNKNOWN\s+127\.0\.0\.1/8", inside, re.M), inside
    out = addrs_outside()
    assert "10.77." not in out and BR1 not in out, f"namespace addresses leak out:\n{out}"
    st["bridges"] = inside


def case_bad_input(c, st):
    before = c.exec("ip", "-br", "link").stdout
    bad = [("../x", "10.77.3.1/24"), ("a" * 16, "10.77.3.1/24"), ("gnbad", "8.8.8.8/24"),
           ("gnbad", "10.77.3.300/24"), ("gnbad", "10.77.3.1/31"), ("gnbad", "10.77.3.1"),
           (BR1, "10.77.4.1/24")]
    for br, cidr in bad:
        p = c.harness("bridge", "add", br, cidr, check=False)
        assert p.returncode != 0, f"bridge add {br} {cidr} accepted"
        assert p.stderr.strip(), f"bridge add {br} {cidr}: no error text"
    p = c.harness("bridge", "add", "gnbad", "10.77.3.1/24; reboot", check=False)
    assert p.returncode != 0
    after = c.exec("ip", "-br", "link").stdout
    assert before == after, f"a refused bridge add changed links:\n{before}\n---\n{after}"
    p = c.harness("netns-up", "other-ns", check=False)
    assert p.returncode != 0, "a second namespace for one cluster dir was accepted"
    assert not os.path.exists("/run/netns/other-ns")
    # Another cluster dir may not adopt (and later delete) this namespace.
    env = dict(c.env, DROVER_CLUSTER_DIR=c.env["DROVER_CLUSTER_DIR"] + "-other")
    p = run([CLUSTER, "netns-up", NETNS], check=False, env=env)
    assert p.returncode != 0 and "not this cluster's" in p.stderr, p.stderr
    run([CLUSTER, "down", "--purge"], check=False, env=env)
    assert c.netns_exists(), "another cluster dir's down removed the namespace"


def case_guests(c, st, tmp):
    g = st["guests"]
    g["A"] = NetGuest(c, tmp, "A", f"gn{TAG}a", BR1, A_IP, "52:54:00:77:01:05")
    g["B"] = NetGuest(c, tmp, "B", f"gn{TAG}b", BR1, B_IP, "52:54:00:77:01:06",
                      f"drover.probe={A_IP}:7,{C_IP}:7")
    # C: same subnet as A and B, but on the other bridge.
    g["C"] = NetGuest(c, tmp, "C", f"gn{TAG}c", BR2, C_IP, "52:54:00:77:01:07",
                      f"drover.probe={C_IP}:7,{A_IP}:7")
    for x, ip in (("A", A_IP), ("B", B_IP), ("C", C_IP)):
        g[x].wait("eth0 configured", lambda t, ip=ip: f"DROVER-GUEST net eth0 {ip}/24" in t)
        g[x].wait("echo listening", lambda t: "DROVER-GUEST echo listening port=7" in t)


def case_echo(c, st):
    p = c.exec("python3", "-c", CLIENT, A_IP, "7", "4", str(256 * 1024), timeout=60)
    log(p.stdout.strip())
    assert f"echoed {256 * 1024} bytes on 4 connections" in p.stdout, p.stdout
    # A client that never reads its echo stalls only its own connection;
    # one that resets mid-echo does not end the service (or the guest).
    p = c.exec("python3", "-c", STALL, A_IP, "7", CLIENT, check=False, timeout=60)
    log(p.stdout.strip())
    assert p.returncode == 0 and "echoed 32768 bytes on 2 connections" in p.stdout, \
        f"{p.stdout}\n{p.stderr}"
    p = c.exec("python3", "-c", CLIENT, A_IP, "7", "1", "8192", timeout=60)
    assert "echoed 8192 bytes on 1 connections" in p.stdout, p.stdout
    a = st["guests"]["A"]
    hb = len(re.findall(r"^HB \d+ \d+$", a.text(), re.M))
    a.wait("heartbeats going on", lambda t: len(re.findall(r"^HB \d+ \d+$", t, re.M)) >= hb + 2,
           15)


def case_same_bridge(c, st):
    b = st["guests"]["B"]
    wait_for("B's probes of A answered 3 times",
             lambda: sum(ok for _, ok in b.probes(f"{A_IP}:7")) >= 3, 40)


def case_other_bridge(c, st):
    g = st["guests"]
    # C is alive and its echo works (it reaches itself) ...
    wait_for("C's probes of itself answered",
             lambda: sum(ok for _, ok in g["C"].probes(f"{C_IP}:7")) >= 2, 40)
    # ... but neither side reaches the other bridge.
    wait_for("B tried C 3 times", lambda: len(g["B"].probes(f"{C_IP}:7")) >= 3, 40)
    wait_for("C tried A 3 times", lambda: len(g["C"].probes(f"{A_IP}:7")) >= 3, 40)
    assert not any(ok for _, ok in g["B"].probes(f"{C_IP}:7")), "B reached C across bridges"
    assert not any(ok for _, ok in g["C"].probes(f"{A_IP}:7")), "C reached A across bridges"
    p = c.exec("python3", "-c", CLIENT, C_IP, "7", "1", "4096", check=False, timeout=30)
    assert p.returncode != 0, f"C answered from {BR1}'s address space: {p.stdout}"
    for x in g.values():
        assert len(re.findall(r"^HB \d+ \d+$", x.text(), re.M)) >= 3, f"{x.name}: no heartbeats"
        assert "DROVER-GUEST error" not in x.text(), f"{x.name}: {x.text()[-1500:]}"


def case_teardown(c, st):
    pids = [x.p.pid for x in st["guests"].values()]
    c.harness("down", "--purge")
    assert not c.netns_exists(), f"/run/netns/{NETNS} still there after down"
    assert NETNS not in run(["ip", "netns", "list"]).stdout
    for x in st["guests"].values():
        x.p.wait(10)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    out = addrs_outside()
    assert BR1 not in out and f"gn{TAG}a" not in out, out
    assert not os.path.exists(c.env["DROVER_CLUSTER_DIR"]), "cluster dir not purged"


def case_cluster_netns(tmp):
    ns = f"drover-gc{TAG}"
    c = Cluster(hosts=2, report_interval_ms=1000, netns=ns)
    c.env["DROVER_CLUSTER_DIR"] = os.path.join(tmp, "cluster-netns")
    try:
        c.up()
        assert c.env.get("DROVER_CLUSTER_NETNS") == ns, "cluster env lacks the namespace"
        st = c.harness("status").stdout
        assert f"network namespace {ns}" in st, st
        assert st.count(" running ") >= 9, st
        inode = os.stat(f"/run/netns/{ns}").st_ino
        pids = os.path.join(c.env["DROVER_CLUSTER_DIR"], "pids")
        for f in sorted(os.listdir(pids)):
            if not f.endswith(".pid"):
                continue
            pid = open(os.path.join(pids, f)).read().strip()
            ns_link = os.readlink(f"/proc/{pid}/ns/net")
            assert ns_link == f"net:[{inode}]", f"{f} ({pid}) runs in {ns_link}, not {ns}"
        p = c.exec(os.path.join(BUILD, "cli", "droverctl"), "--scheduler",
                   c.env["DROVER_SCHEDULER"], "--tls-dir", c.env["DROVER_TLS_DIR"], "hosts")
        assert len(re.findall(r"^host[12]\s+up\s", p.stdout, re.M)) == 2, p.stdout
        hosts = c.hosts_by_name()
        assert {h["state"] for h in hosts.values()} == {"up"} and len(hosts) == 2, hosts
        # libvirtd of host 1 runs in the namespace: a domain's tap goes on
        # a bridge there and its echo service answers a client there.
        c.bridge_add(f"gc{TAG}b1", "10.77.2.1/24")
        console = os.path.join(tmp, "console-lv.log")
        xml = f"""<domain type='qemu'><name>gn-lv{TAG}</name><memory unit='MiB'>128</memory>
<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type>
<kernel>{GUEST_KERNEL}</kernel><initrd>{GUEST_INITRD}</initrd>
<cmdline>{GUEST_CMDLINE} drover.ip=10.77.2.5/24 drover.echo=7</cmdline></os>
<devices><serial type='file'><source path='{console}'/></serial>
<interface type='bridge'><source bridge='gc{TAG}b1'/><mac address='52:54:00:77:02:05'/>
<model type='virtio'/></interface></devices></domain>"""
        xf = os.path.join(tmp, "lv.xml")
        with open(xf, "w") as f:
            f.write(xml)
        c.virsh(1, "create", xf)
        links = c.exec("ip", "-o", "link", "show", "master", f"gc{TAG}b1").stdout
        assert links.strip(), "no port on the bridge after virsh create"
        wait_for("the libvirt guest's echo service",
                 lambda: "echo listening" in open(console, errors="replace").read(), 60)
        p = c.exec("python3", "-c", CLIENT, "10.77.2.5", "7", "2", str(64 * 1024), timeout=60)
        assert "echoed 65536 bytes on 2 connections" in p.stdout, p.stdout
    finally:
        c.harness("down", "--purge", check=False)
    assert not os.path.exists(f"/run/netns/{ns}"), f"{ns} still there after down"


def main():
    tap = Tap()
    tmp = tempfile.mkdtemp(prefix="drover-guest-net-")
    c = Cluster(hosts=0, netns=NETNS)
    c.env["DROVER_CLUSTER_DIR"] = os.path.join(tmp, "cluster")
    st = {"guests": {}}
    t0 = time.monotonic()
    try:
        if tap.case("namespace and bridges", case_namespace, c, st):
            tap.case("bad bridge names and CIDRs refused, nothing changed", case_bad_input, c, st)
            if tap.case("three guests boot with eth0 and echo", case_guests, c, st, tmp):
                tap.case("client in the namespace: echo on 4 connections at once, a stalled "
                         "and a reset client harmless", case_echo, c, st)
                tap.case("two guests on one bridge talk", case_same_bridge, c, st)
                tap.case("a guest on the other bridge is unreachable", case_other_bridge, c, st)
        tap.case("down removes namespace, bridges, taps and guests", case_teardown, c, st)
        tap.case("a 2-host cluster inside a namespace", case_cluster_netns, tmp)
    finally:
        for x in st["guests"].values():
            x.stop()
        c.harness("down", "--purge", check=False)
        for ns in (NETNS, f"drover-gc{TAG}"):
            if os.path.exists(f"/run/netns/{ns}"):
                log(f"removing leftover namespace {ns}")
                subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"whole run {time.monotonic() - t0:.0f}s")
    return tap.done()


if __name__ == "__main__":
    random.seed(1)
    sys.exit(main())
