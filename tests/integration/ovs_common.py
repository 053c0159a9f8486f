"""A private Open vSwitch for the integration tests (issue 13).

This machine has no openvswitch kernel module, so the bridge uses the
userspace datapath (datapath_type=netdev). ovsdb-server and ovs-vswitchd
run inside the cluster's network namespace (the taps libvirt makes for the
guests are there, and vswitchd opens them there), with their database,
logs, pid files and control sockets in a scratch directory of the test.

libvirt runs `ovs-vsctl` itself for <virtualport type='openvswitch'>, and
the agents run `ovs-vsctl list-br`, both without --db and with a cleared
environment (OVS_RUNDIR does not reach them): they talk to the default
socket /run/openvswitch/db.sock. So ovsdb-server also listens there, but
only once the bridge exists (see start()), and only if no other OVS owns
that socket: a second OVS on the machine is refused, never shared.

The cluster's VMs all run on this one machine, so one OVS bridge serves
both of its "hosts", as one Linux bridge does in nic_common.py."""
import os
import shutil
import signal
import time

from drover_harness import log, run, wait_for

DEFAULT_RUNDIR = "/run/openvswitch"
DEFAULT_SOCK = os.path.join(DEFAULT_RUNDIR, "db.sock")
SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


def ovs_installed():
    return all(shutil.which(p) for p in
               ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl",
                "ovsdb-tool")) and os.path.exists(SCHEMA)


class Ovs:
    """ovsdb-server + ovs-vswitchd in network namespace NETNS, state in
    DIR. start() makes bridge BR (netdev datapath); stop() ends both
    daemons and removes what start() made in /run/openvswitch."""

    def __init__(self, netns, dir, br):
        self.netns = netns
        self.dir = dir
        self.br = br
        self.sock = os.path.join(dir, "db.sock")
        self.made_rundir = False
        self.pids = {}

    def _ctl(self, daemon):
        return os.path.join(self.dir, f"{daemon}.ctl")

    def _pidfile(self, daemon):
        return os.path.join(self.dir, f"{daemon}.pid")

    def vsctl(self, *args, check=True):
        """ovs-vsctl on this OVS's private socket."""
        return run(["ovs-vsctl", f"--db=unix:{self.sock}", "--timeout=10",
                    *args], check=check, timeout=30)

    def appctl(self, daemon, *args, check=True):
        return run(["ovs-appctl", "-t", self._ctl(daemon), *args],
                   check=check, timeout=30)

    def _spawn(self, daemon, *args):
        argv = ["ip", "netns", "exec", self.netns, daemon, *args,
                f"--pidfile={self._pidfile(daemon)}",
                f"--unixctl={self._ctl(daemon)}",
                f"--log-file={os.path.join(self.dir, daemon + '.log')}",
                "--no-chdir", "--detach"]
        # Their own run directory: the bridges' management sockets go
        # there, not into the default one.
        env = dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir,
                   OVS_LOGDIR=self.dir)
        run(argv, timeout=60, env=env)
        with open(self._pidfile(daemon)) as f:
            self.pids[daemon] = int(f.read().strip())

    def start(self):
        assert ovs_installed(), "Open vSwitch is not installed (scripts/deps)"
        # Another OVS answering on the default socket is never taken over.
        if os.path.exists(DEFAULT_SOCK):
            p = run(["ovs-vsctl", "--timeout=2", "show"], check=False)
            assert p.returncode != 0, \
                f"another Open vSwitch runs on {DEFAULT_SOCK}; not touching it"
            os.unlink(DEFAULT_SOCK)  # a stale socket of a dead ovsdb-server
        os.makedirs(self.dir, exist_ok=True)
        db = os.path.join(self.dir, "conf.db")
        run(["ovsdb-tool", "create", db, SCHEMA])
        self._spawn("ovsdb-server", db, f"--remote=punix:{self.sock}")
        # The bridge exists before anything else can see this OVS: an
        # agent that asks the default socket never sees it without BR
        # (and keeps that answer 30 s).
        self.vsctl("--no-wait", "init")
        self.vsctl("--no-wait", "add-br", self.br, "--", "set", "bridge",
                   self.br, "datapath_type=netdev")
        # The guests' virtio-net leaves TCP checksums to the host (the tap
        # hands vswitchd CHECKSUM_PARTIAL packets): without the vnet
        # header that this option makes vswitchd read and write on its
        # packet sockets, the receiving guest drops every TCP segment as
        # corrupt while ARP and ping pass. Read at vswitchd's start only.
        self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                   "other_config:userspace-tso-enable=true")
        self._spawn("ovs-vswitchd", f"unix:{self.sock}")
        wait_for(f"{self.br} made by ovs-vswitchd", lambda: run(
            ["ip", "netns", "exec", self.netns, "ip", "link", "show",
             self.br], check=False).returncode == 0, 30)
        if not os.path.isdir(DEFAULT_RUNDIR):
            os.makedirs(DEFAULT_RUNDIR)
            self.made_rundir = True
        self.appctl("ovsdb-server", "ovsdb-server/add-remote",
                    f"punix:{DEFAULT_SOCK}")
        wait_for("ovs-vsctl on the default socket",
                 lambda: self.br in run(["ovs-vsctl", "--timeout=2", "list-br"],
                                        check=False).stdout.split(), 10)
        log(f"Open vSwitch up in {self.netns}: bridge {self.br} "
            f"(netdev datapath), pids {self.pids}")

    def port_tag(self, port):
        """The VLAN tag OVS has on PORT, as ovs-vsctl prints it ("[]": none)."""
        return self.vsctl("get", "port", port, "tag").stdout.strip()

    def ports(self):
        out = self.vsctl("list-ports", self.br).stdout
        return sorted(x.strip() for x in out.splitlines() if x.strip())

    def stop(self):
        killed_db = False
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            pid = self.pids.pop(daemon, None)
            if pid is None:
                continue
            self.appctl(daemon, "exit", check=False)
            t = time.monotonic() + 10
            while time.monotonic() < t and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.1)
            if os.path.exists(f"/proc/{pid}"):
                log(f"{daemon} ({pid}) ignored exit: killed")
                killed_db = killed_db or daemon == "ovsdb-server"
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        # ovsdb-server removes its sockets when it exits; a killed one
        # leaves them.
        if killed_db and os.path.exists(DEFAULT_SOCK):
            os.unlink(DEFAULT_SOCK)
        if self.made_rundir:
            try:
                os.rmdir(DEFAULT_RUNDIR)
            except OSError as e:
                log(f"{DEFAULT_RUNDIR} left: {e}")
            self.made_rundir = False
