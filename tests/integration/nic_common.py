"""Shared by test-vm-nets.py and test-vm-nets-moves.py (issue 13): a
2-host cluster inside a network namespace with two bridges and two
networks, test guests with NICs, and a one-connection echo client."""
import json
import os
import re
import subprocess
import sys
import time

from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_INITRD, GUEST_KERNEL,
                            Cluster, log, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
BR_A, BR_B = "vmnica", "vmnicb"
NET_A, NET_B = "neta", "netb"
MAC_PREFIX = "02:44:52:"


def nets_cluster(tag, net_k):
    c = Cluster(hosts=2, report_interval_ms=1000, netns=f"drover-nic{tag}")
    c.env["DROVER_CLUSTER_DIR"] = os.environ.get(
        "DROVER_CLUSTER_DIR", f"/tmp/drover-cluster-nics{tag}")
    c.env["DROVER_CLUSTER_NET"] = os.environ.get("DROVER_CLUSTER_NET", str(net_k))
    return c


def setup_networks(c):
    """Two bridges in the namespace, two networks, both usable on both
    hosts once the agents reported the bridges."""
    c.bridge_add(BR_A, "10.77.1.1/24")
    c.bridge_add(BR_B, "10.77.2.1/24")
    c.ctl("network", "create", NET_A, "--bridge", BR_A)
    c.ctl("network", "create", NET_B, "--bridge", BR_B)

    def usable():
        for n in (NET_A, NET_B):
            hosts = c.ctl_json("network", "show", n).get("hosts", [])
            if len(hosts) != 2 or not all(h.get("usable") for h in hosts):
                return False
        return True
    wait_for("both networks usable on both hosts", usable, 30)


def create_vm(c, name, net, ip, extra="", host=None, mac=None, check=True):
    cmdline = f"{GUEST_CMDLINE} drover.ip={ip}/24 drover.echo=7 {extra}".strip()
    argv = ["vm", "create", name, "--vcpus", "1", "--memory", "160M",
            "--kernel", GUEST_KERNEL, "--initrd", GUEST_INITRD,
            "--cmdline", cmdline]
    if net:
        argv += ["--net", net + (f",mac={mac}" if mac else "")]
    if host:
        argv += ["--host", host]
    return c.ctl(*argv, check=check)


def vm_json(c, name):
    return c.ctl_json("vm", "show", name)


def nics(c, name):
    return vm_json(c, name)["spec"].get("nics", [])


def console(c, name):
    return c.ctl("vm", "console", name).stdout


def wait_echo(c, name, timeout=120):
    wait_for(f"{name} echo listening",
             lambda: "DROVER-GUEST echo listening port=7" in console(c, name),
             timeout)


def probes(c, name, target):
    rx = re.compile(r"^DROVER-GUEST probe " + re.escape(target)
                    + r" (ok|fail) n=(\d+)", re.M)
    return [(int(m.group(2)), m.group(1) == "ok")
            for m in rx.finditer(console(c, name))]


def host_of(c, name):
    return vm_json(c, name)["host"]


def dumpxml(c, name):
    i = int(host_of(c, name)[len("host"):])
    return c.virsh(i, "dumpxml", name).stdout


class EchoClient:
    """nic_echo_client.py inside the namespace: one connection to IP:7."""

    def __init__(self, c, tmp, ip, tag="echo"):
        self.stop = os.path.join(tmp, f"{tag}.stop")
        self.p = subprocess.Popen(
            c.exec_argv(sys.executable, os.path.join(HERE, "nic_echo_client.py"),
                        ip, "7", self.stop),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self, timeout=60):
        open(self.stop, "w").close()
        out, err = self.p.communicate(timeout=timeout)
        assert out.strip(), f"echo client printed nothing: {err}"
        return json.loads(out.strip().splitlines()[-1])


def migrate(c, name, dst):
    t0 = time.time()
    p = c.ctl("migrate", name, "--to", dst, check=False, timeout=600)
    t1 = time.time()
    assert p.returncode == 0, f"migrate {name} to {dst}: {p.stdout} {p.stderr}"
    return t0, t1


def max_gap(times, t0, t1):
    """Largest gap between answers from t0 to a second after t1."""
    ts = [t for t in times if t0 - 1 <= t <= t1 + 1]
    if len(ts) < 2:
        return float("inf")
    return max(b - a for a, b in zip(ts, ts[1:]))


def moves_with_one_connection(c, tmp, name, n_moves):
    """Migrates NAME back and forth N_MOVES times while one client keeps
    one TCP connection to its echo service; every echo answered, MACs and
    the NIC kept, the echo answering on the destination at once."""
    macs = [n["mac"] for n in nics(c, name)]
    client = EchoClient(c, tmp, "10.77.1.10", tag=f"moves{n_moves}")
    time.sleep(2)
    windows = []
    try:
        for k in range(n_moves):
            src = host_of(c, name)
            dst = "host2" if src == "host1" else "host1"
            t0, t1 = migrate(c, name, dst)
            windows.append((k + 1, src, dst, t0, t1))
            assert host_of(c, name) == dst
            assert [n["mac"] for n in nics(c, name)] == macs, "MACs changed"
            xml = dumpxml(c, name)
            for m in macs:
                assert f"<mac address='{m}'/>" in xml, f"{m} not in {dst}'s XML"
            time.sleep(1)
    finally:
        res = client.finish()
    assert res["error"] is None, f"echo client: {res['error']}"
    assert res["answered"] == res["sent"] and res["sent"] > 0, res
    worst = 0.0
    for k, src, dst, t0, t1 in windows:
        g = max_gap(res["times"], t0, t1)
        worst = max(worst, g)
        log(f"move {k} {src}->{dst}: {t1 - t0:.1f}s, largest gap between "
            f"echo answers {g * 1000:.0f} ms")
        # The echo answers on the destination at once: no gap anywhere near
        # a TCP retransmission timeout's worth of silence.
        assert g < 3.0, f"move {k}: {g:.1f}s without an answer"
    log(f"{n_moves} moves on one connection: {res['answered']} echoes, all "
        f"answered, largest gap {worst * 1000:.0f} ms")
