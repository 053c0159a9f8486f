#!/usr/bin/env python3
"""VM NICs on Drover networks (issue 13), on a 2-host cluster inside a
network namespace with two bridges: VMs created with --net get
02:44:52 MACs and boot the test guest with drover.ip; two VMs on one
network talk, one on the other network cannot; the MACs survive live
migration and one TCP connection to the guest's echo service stays open
through two moves (every echo answered, the largest gap logged), and
QEMU's self-announce (RARP frames from its MAC, caught with an AF_PACKET
socket on the bridge in the namespace) follows each move; bad
input (unknown network, multicast or duplicate MAC, deleting a network in
use) is refused and changes nothing. The 10-move run is
test-vm-nets-moves.py (suite slow)."""
import subprocess
import sys
import time

from drover_harness import log, run_on_cluster, wait_for
from nic_common import (MAC_PREFIX, NET_A, NET_B, create_vm, dumpxml,
                        moves_with_one_connection, nets_cluster, nics,
                        probes, setup_networks, wait_echo)

A_IP, B_IP, C_IP = "10.77.1.10", "10.77.1.11", "10.77.1.12"
# A's address on a NIC hot-plugged into network B (drover.ip1: eth1).
A_HOT_IP = "10.77.2.10"
# One echo through the namespace's side of a bridge: prints "ok".
ECHO_ONCE = ("import socket,sys; s=socket.create_connection((sys.argv[1], 7), 5); "
             "s.sendall(b'hot-nic\\n'); d=b''\n"
             "while len(d) < 8:\n d += s.recv(64) or sys.exit('closed')\n"
             "print('ok' if d == b'hot-nic\\n' else d)")


# Prints "ready", then the source MAC of each RARP frame (ethertype 0x8035)
# seen on bridge argv[1] until stdin closes.
RARP_CAPTURE = (
    "import select,socket,sys\n"
    "s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW,socket.htons(0x8035))\n"
    "s.bind((sys.argv[1],0)); print('ready',flush=True)\n"
    "while True:\n"
    " r,_,_=select.select([s,sys.stdin],[],[])\n"
    " if s in r:\n"
    "  f=s.recv(2048)\n"
    "  if len(f)>=14 and f[12:14]==b'\\x80\\x35':"
    " print(':'.join('%02x'%b for b in f[6:12]),flush=True)\n"
    " if sys.stdin in r and not sys.stdin.read(1): break\n")


def cases(c, tap, tmp):
    st = {}

    def boot():
        setup_networks(c)
        create_vm(c, "a", NET_A, A_IP, f"drover.ip1={A_HOT_IP}/24", host="host1")
        create_vm(c, "b", NET_A, B_IP, f"drover.probe={A_IP}:7", host="host2")
        # C is in A's subnet but on the other network's bridge.
        create_vm(c, "c", NET_B, C_IP, f"drover.probe={A_IP}:7,{C_IP}:7")
        for v in ("a", "b", "c"):
            wait_echo(c, v)
        for v in ("a", "b", "c"):
            n = nics(c, v)
            assert len(n) == 1, n
            assert n[0]["mac"].startswith(MAC_PREFIX), n
            assert n[0]["bridge"] in ("vmnica", "vmnicb"), n
            xml = dumpxml(c, v)
            assert "<interface type='bridge'>" in xml and n[0]["mac"] in xml, xml
            assert "<model type='virtio'/>" in xml
        macs = {nics(c, v)[0]["mac"] for v in ("a", "b", "c")}
        assert len(macs) == 3, macs
        st["mac_a"] = nics(c, "a")[0]["mac"]
        out = c.ctl("vm", "show", "a").stdout
        assert st["mac_a"] in out and "network neta bridge vmnica" in out, out

    def same_network():
        wait_for("b's probes of a answered 3 times",
                 lambda: sum(ok for _, ok in probes(c, "b", f"{A_IP}:7")) >= 3, 60)

    def other_network():
        wait_for("c reaches itself",
                 lambda: sum(ok for _, ok in probes(c, "c", f"{C_IP}:7")) >= 2, 60)
        wait_for("c tried a 3 times",
                 lambda: len(probes(c, "c", f"{A_IP}:7")) >= 3, 60)
        assert not any(ok for _, ok in probes(c, "c", f"{A_IP}:7")), \
            "c reached a across networks"

    def bad_input():
        before = sorted(c.vms_by_name())
        p = create_vm(c, "d", "nosuch", "10.77.1.20", check=False)
        assert p.returncode != 0 and "no network named 'nosuch'" in p.stderr, p.stderr
        p = create_vm(c, "d", NET_A, "10.77.1.20", mac="01:00:5e:00:00:01",
                      check=False)
        assert p.returncode != 0 and "multicast" in p.stderr, p.stderr
        p = create_vm(c, "d", NET_A, "10.77.1.20", mac="02:44:52:zz:00:01",
                      check=False)
        assert p.returncode != 0 and "malformed" in p.stderr, p.stderr
        p = create_vm(c, "d", NET_A, "10.77.1.20", mac=st["mac_a"], check=False)
        assert p.returncode != 0 and "already used by VM 'a'" in p.stderr, p.stderr
        p = create_vm(c, "d", NET_A, "10.77.1.20",
                      mac=st["mac_a"].upper(), check=False)
        assert p.returncode != 0 and "already used by VM 'a'" in p.stderr, p.stderr
        p = c.ctl("network", "delete", NET_A, check=False)
        assert p.returncode != 0 and "in use by VM(s) a, b" in p.stderr, p.stderr
        assert sorted(c.vms_by_name()) == before, "a refused create changed the VMs"
        assert NET_A in c.ctl("network", "list").stdout
        # A network no VM uses goes.
        c.ctl("network", "create", "spare", "--bridge", "vmnica")
        c.ctl("network", "delete", "spare")

    def hotplug():
        def ports(br):
            out = c.exec("ip", "-o", "link", "show", "master", br).stdout
            return len([l for l in out.splitlines() if l.strip()])

        def iflist(vm):
            i = int(c.vms_by_name()[vm]["host"][len("host"):])
            return c.virsh(i, "domiflist", vm).stdout

        n_b = ports("vmnicb")
        p = c.ctl("vm", "nic", "add", "a", NET_B, "--json")
        vm = __import__("json").loads(p.stdout)
        added = [n for n in vm["spec"]["nics"] if n["network"] == NET_B]
        assert len(added) == 1 and added[0]["mac"].startswith(MAC_PREFIX), vm
        mac = added[0]["mac"]
        st["hot_mac"] = mac
        assert mac in iflist("a") and "vmnicb" in iflist("a"), iflist("a")
        assert ports("vmnicb") == n_b + 1, "no new port on vmnicb"
        # The scheduler keeps it through the next reports.
        time.sleep(2.5)
        assert [n["mac"] for n in nics(c, "a")] == [st["mac_a"], mac], nics(c, "a")
        assert mac in c.ctl("vm", "show", "a").stdout
        # Inside the guest the new NIC comes up with drover.ip1, and the
        # namespace reaches a's echo service through bridge B.
        wait_for("a's hot-plugged NIC up in the guest",
                 lambda: f"DROVER-GUEST net eth1 {A_HOT_IP}/24" in
                 c.ctl("vm", "console", "a").stdout, 60)
        p = wait_for("an echo through the hot-plugged NIC",
                     lambda: c.exec("python3", "-c", ECHO_ONCE, A_HOT_IP,
                                    check=False, timeout=30).stdout.strip() == "ok", 30, 1)
        # Bad hot-plug input: unknown network, a MAC in use, unknown NIC.
        p = c.ctl("vm", "nic", "add", "a", "nosuch", check=False)
        assert p.returncode != 0 and "no network named 'nosuch'" in p.stderr, p.stderr
        p = c.ctl("vm", "nic", "add", "b", NET_A, "--mac", st["mac_a"], check=False)
        assert p.returncode != 0 and "already used by VM 'a'" in p.stderr, p.stderr
        p = c.ctl("vm", "nic", "remove", "a", "02:44:52:00:00:00", check=False)
        assert p.returncode != 0 and "has no NIC" in p.stderr, p.stderr
        assert len(nics(c, "b")) == 1
        # Unplug by network: gone from the domain and the bridge.
        c.ctl("vm", "nic", "remove", "a", NET_B)
        wait_for("the NIC gone from the domain", lambda: mac not in iflist("a"), 30)
        wait_for("the port gone from the bridge",
                 lambda: ports("vmnicb") == n_b, 30)
        time.sleep(2.5)
        assert [n["mac"] for n in nics(c, "a")] == [st["mac_a"]], nics(c, "a")
        # a still answers on its boot NIC.
        n = sum(ok for _, ok in probes(c, "b", f"{A_IP}:7"))
        wait_for("b reaches a after the unplug",
                 lambda: sum(ok for _, ok in probes(c, "b", f"{A_IP}:7")) > n + 1, 30)

    def moves():
        # QEMU's self-announce, seen on bridge A inside the namespace: RARP
        # frames (ethertype 0x8035) from a's MAC after each move.
        cap = subprocess.Popen(c.exec_argv("python3", "-c", RARP_CAPTURE,
                                           "vmnica"),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
        assert cap.stdout.readline().strip() == "ready"
        moves_with_one_connection(c, tmp, "a", 2)
        out, _ = cap.communicate(input="", timeout=30)
        senders = out.split()
        log(f"RARP frames on vmnica by sender: "
            f"{ {m: senders.count(m) for m in set(senders)} }")
        # QEMU announces 5 times per move (announce-rounds' default): more
        # than 5 means both moves announced.
        assert senders.count(st["mac_a"]) >= 6, senders
        # Still on the network after the moves: b keeps reaching a.
        n = sum(ok for _, ok in probes(c, "b", f"{A_IP}:7"))
        wait_for("b reaches a after the moves",
                 lambda: sum(ok for _, ok in probes(c, "b", f"{A_IP}:7")) > n + 2, 30)

    if tap.case("networks, VMs with NICs boot with 02:44:52 MACs", boot):
        tap.case("two VMs on one network talk", same_network)
        tap.case("a VM on the other network cannot reach them", other_network)
        tap.case("bad input refused, nothing changed", bad_input)
        tap.case("NIC hot-plug and unplug on a running VM", hotplug)
        tap.case("MACs kept and one TCP connection open through 2 live moves",
                 moves)


def main():
    t0 = time.monotonic()
    rc = run_on_cluster(nets_cluster("", 41), cases, tmp_prefix="drover-vm-nets-")
    log(f"took {time.monotonic() - t0:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
