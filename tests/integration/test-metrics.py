#!/usr/bin/python3
"""Prometheus metrics on a real two-host local cluster (TCG guests).

Every daemon of the cluster serves /metrics (`--metrics-listen`, addresses
from `cluster env`). With a VM running:
- each daemon's exposition passes `promtool check metrics`, and carries the
  VM's, the hosts' and the gRPC series with the right values;
- a real Prometheus server (loopback only, its own scratch storage) scrapes
  the cluster every second, and its HTTP API answers queries for the VM's
  memory and the agents' gRPC counters;
- a migration: a scrape of the source agent while the migration holds the
  VM's libvirt job answers at once with the migration's live gauges; after
  it, the downtime histogram's count went up (through Prometheus), the
  scheduler counted the migration, and the VM's series moved hosts;
- bad input (unknown path, other methods, a huge header, a big body) gets
  its status and the daemon keeps serving;
- a backup: the scheduler's drover_vm_last_backup_timestamp_seconds{vm}
  appears with the time the backup began (none before, none for a VM
  without one, through Prometheus too), promtool still passes, and the
  series goes with the VM;
- the agents' dirty rate measurement (page sampling): the VM writing
  8 MiB/s reads within bounds in `vm show --json`, `vm show` and the
  agent's gauge; an idle guest booted for it reads at most 1 MiB/s;
- `--metrics-tls` serves HTTPS with the component's certificate.
Prints TAP.
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_DIR, Cluster, log,  # noqa: E402
                            run_on_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
# The migration test's workload: 32 MiB written at 8 MiB/s, so that a
# migration at 100 Mbit/s takes a few pre-copy rounds.
CMDLINE = (GUEST_CMDLINE + " drover.hb_ms=10 drover.ws_mib=32 "
           "drover.rate_mib=8 drover.data=text")
VM = "met1"
# A small VM with a disk, backed up into the agents' repository.
BK_VM = "met-bk"
# A guest without the workload, for the dirty rate case.
IDLE = "met-idle"
MiB = 1024 * 1024
# Page sampling reads 512 pages per GiB: for these 256 MiB guests and a
# 2 s calculation one dirty sampled page is 1 MiB/s. Measured here: VM
# (8 MiB/s over 32 MiB) read 2-6 MiB/s, often less than it writes under
# a loaded TCG host; an idle guest 0. The bounds: at least one sampled
# page for VM, at most one for the idle guest.
DIRTY_BUSY_MIB = (1, 64)
DIRTY_IDLE_MAX_MIB = 1
MEMORY = 256 * 1024 * 1024
# This test's own loopback ports (the cluster's are in tests/cluster/cluster).
PROM_PORT = 19190
TLS_SCHED_PORT = 19191
TLS_METRICS_PORT = 19192
# A scrape answers from memory: anything near this is a scrape that waited.
SCRAPE_LIMIT_S = 5.0


def scrape(addr, path="/metrics"):
    """(status, content type, body) of GET http://ADDR/PATH."""
    try:
        with urllib.request.urlopen(f"http://{addr}{path}", timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def metrics(addr):
    status, ctype, body = scrape(addr)
    assert status == 200, (addr, status, body[:200])
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    return body


def sample(body, series):
    """The value of the sample SERIES (name{labels} exactly as rendered),
    or None."""
    for line in body.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def promtool(body):
    p = subprocess.run(["promtool", "check", "metrics"], input=body,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"promtool: {p.stdout} {p.stderr}"


def raw(addr, data, read=True, timeout=30, body=0):
    """Sends DATA, then BODY bytes, over a new connection to ADDR; the
    status line's code, or 0 when the server closed (or said nothing
    within TIMEOUT seconds)."""
    host, port = addr.rsplit(":", 1)
    buf = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
            chunk = b"x" * 65536
            for _ in range(body // len(chunk)):
                s.sendall(chunk)
        except OSError:
            pass  # the server may close while we still send
        if not read:
            return None
        try:
            while b"\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            pass
    if not buf.startswith(b"HTTP/1."):
        return 0
    return int(buf.split(b" ", 2)[1])


class Prometheus:
    """A Prometheus server scraping the cluster every second: loopback
    only, scratch storage in TMP, nothing else configured (no remote
    write, no alertmanager), so it talks to nothing but the targets."""

    def __init__(self, c, tmp):
        self.base = f"http://127.0.0.1:{PROM_PORT}"
        agents = [c.env[f"DROVER_HOST{i}_METRICS"] for i in range(1, c.hosts + 1)]
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: drover-scheduler\n"
                    f"    static_configs: [{{targets: ['{c.env['DROVER_SCHEDULER_METRICS']}']}}]\n"
                    "  - job_name: drover-agent\n"
                    f"    static_configs: [{{targets: {json.dumps(agents)}}}]\n")
        self.log = open(os.path.join(tmp, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file", cfg,
             "--storage.tsdb.path", os.path.join(tmp, "tsdb"),
             "--web.listen-address", f"127.0.0.1:{PROM_PORT}",
             "--log.level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("Prometheus ready", self.ready, timeout=60)

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited {self.proc.returncode}")
        try:
            with urllib.request.urlopen(self.base + "/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, q):
        """Instant query Q: [(labels, value)]."""
        url = self.base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=30) as r:
            doc = json.load(r)
        assert doc["status"] == "success", doc
        return [(x["metric"], float(x["value"][1])) for x in doc["data"]["result"]]

    def value(self, q):
        """The one value of Q, or None when it has no result."""
        res = self.query(q)
        assert len(res) <= 1, res
        return res[0][1] if res else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def main():
    c = Cluster(hosts=2, report_interval_ms=1000)
    # One repository both agents reach (as a shared mount would be).
    repo = os.path.join(c.env["DROVER_CLUSTER_DIR"], "repo-metrics")
    c.env["DROVER_AGENT_ARGS"] = (c.env.get("DROVER_AGENT_ARGS", "")
                                  + f" --backup-repo main={repo}").strip()
    return run_on_cluster(c, run_cases, tmp_prefix="drover-metrics-")


def run_cases(c, tap, tmp):
    st = {}
    sched = c.env["DROVER_SCHEDULER_METRICS"]

    def agent(i):
        return c.env[f"DROVER_HOST{i}_METRICS"]

    def vm_host():
        v = c.vms_by_name().get(VM)
        return v and int(v["host"][len("host"):])

    def boot():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE)
        st["at"] = wait_for("VM placed", vm_host, timeout=30)
        wait_for("VM running in the inventory",
                 lambda: c.vms_by_name()[VM]["state"] == "running", timeout=30)
        wait_for("workload ready",
                 lambda: "ws-ready" in c.ctl("vm", "console", VM).stdout,
                 timeout=120)

    tap.case("a VM runs", boot)

    def agent_series():
        i = st["at"]
        labels = f'{{vm="{VM}",host="host{i}"}}'
        # The agent polls every report interval: its next poll shows it.
        body = wait_for("the VM's series on its agent", lambda: (
            lambda b: b if sample(b, "drover_vm_vcpus" + labels) else None)(
                metrics(agent(i))), timeout=30)
        promtool(body)
        assert sample(body, "drover_vm_vcpus" + labels) == 1
        assert sample(body, "drover_vm_memory_configured_bytes" + labels) == MEMORY
        assert sample(body, "drover_vm_memory_resident_bytes" + labels) > 0
        assert sample(body, "drover_vm_cpu_usage_seconds_total" + labels) > 0
        assert sample(body, f'drover_vm_state{{vm="{VM}",host="host{i}",'
                      'state="running"}') == 1
        assert sample(body, f'drover_host_vms{{host="host{i}"}}') == 1
        assert sample(body, f'drover_host_cpus{{host="host{i}"}}') > 0
        assert sample(body, f'drover_host_memory_total_bytes{{host="host{i}"}}') > 0
        assert sample(body, f'drover_host_data_free_bytes{{host="host{i}"}}') > 0
        # The scheduler created it through AgentService/CreateVm.
        assert sample(body, 'drover_grpc_server_handled_total{method='
                      '"AgentService/CreateVm",code="OK"}') == 1
        assert sample(body, 'drover_grpc_server_handling_seconds_count{method='
                      '"AgentService/CreateVm"}') == 1
        other = metrics(agent(3 - i))
        promtool(other)
        assert f'vm="{VM}"' not in other
        assert sample(other, f'drover_host_vms{{host="host{3 - i}"}}') == 0

    tap.case("agents: promtool passes, the VM's and host's series", agent_series)

    def scheduler_series():
        body = metrics(sched)
        promtool(body)
        assert sample(body, 'drover_scheduler_hosts{state="up",service="in-service"}') == 2
        assert sample(body, 'drover_scheduler_hosts{state="down",service="in-service"}') == 0
        assert sample(body, 'drover_scheduler_vms{state="running"}') == 1
        assert sample(body, 'drover_scheduler_jobs{kind="create",state="done"}') == 1
        assert sample(body, "drover_scheduler_reports_total") > 0
        assert sample(body, 'drover_grpc_server_handled_total{method='
                      '"SchedulerService/ReportHost",code="OK"}') > 0
        assert sample(body, 'drover_grpc_server_handled_total{method='
                      '"SchedulerService/CreateVm",code="OK"}') == 1
        # A call of a method nobody serves counts under "unknown", so
        # clients cannot add series of their own.
        assert 'method="/' not in body

    tap.case("scheduler: promtool passes, hosts, VMs, jobs, reports, gRPC",
             scheduler_series)

    def prometheus_start():
        st["prom"] = Prometheus(c, tmp)

        def up():
            res = st["prom"].query("up")
            return len(res) == 3 and all(v == 1 for _, v in res)
        wait_for("Prometheus scraping all three daemons", up, timeout=60)
        i = st["at"]
        mem = wait_for("the VM's memory through Prometheus", lambda: st["prom"].value(
            f'drover_vm_memory_configured_bytes{{vm="{VM}",host="host{i}"}}'), timeout=30)
        assert mem == MEMORY, mem
        n = wait_for("the agents' gRPC counter through Prometheus", lambda: st["prom"].value(
            'sum(drover_grpc_server_handled_total{job="drover-agent",'
            'method="AgentService/CreateVm",code="OK"})'), timeout=30)
        assert n == 1, n
        reports = st["prom"].value('drover_scheduler_reports_total{job="drover-scheduler"}')
        assert reports and reports > 0, reports

    tap.case("a real Prometheus scrapes the cluster and answers queries",
             prometheus_start)

    def migrate_and_scrape():
        prom = st["prom"]
        src = st["at"]
        dst = 3 - src
        # The dirty rate case's idle guest boots now, on the destination
        # (the source must end with no VM), so that it is up by then.
        c.ctl("vm", "create", IDLE, "--vcpus", "1", "--memory", "256M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline",
              GUEST_CMDLINE, "--host", f"host{dst}")
        before = prom.value("sum(drover_migration_downtime_seconds_count)") or 0
        argv = [os.path.join(BUILD, "cli", "droverctl"), "migrate", VM, "--to",
                f"host{dst}", "--bandwidth", "100", "--compress", "off", "--json"]
        proc = subprocess.Popen(argv, env=c.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        labels = f'{{vm="{VM}",host="host{src}"}}'
        slowest = 0.0
        seen_live = 0
        try:
            # While the migration runs (and holds the VM's libvirt job), a
            # scrape of the source answers from memory, with its gauges.
            while proc.poll() is None:
                t0 = time.monotonic()
                body = metrics(agent(src))
                took = time.monotonic() - t0
                slowest = max(slowest, took)
                assert took < SCRAPE_LIMIT_S, f"scrape took {took:.2f}s"
                job = next((j for j in c.ctl_json("jobs")["jobs"]
                            if j["kind"] == "migrate" and j["vm"] == VM), None)
                m = (job or {}).get("migration") or {}
                # Gauges are set before the progress reaches the scheduler:
                # a migration still in pre-copy after the scrape had them.
                if (job and job["state"] == "running" and m.get("phase") == "precopy"
                        and int(m.get("memory_processed", 0)) > 0
                        and proc.poll() is None):
                    fresh = metrics(agent(src))
                    job2 = next(j for j in c.ctl_json("jobs")["jobs"]
                                if j["id"] == job["id"])
                    if job2["state"] == "running":
                        assert sample(fresh, "drover_migration_data_remaining_bytes"
                                      + labels) is not None, "no live gauge"
                        assert sample(fresh, "drover_migration_iteration" + labels) >= 1
                        assert sample(fresh, "drover_migration_dirty_memory_rate_bytes"
                                      + labels) is not None
                        seen_live += 1
                time.sleep(0.2)
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        log(f"slowest scrape during the migration: {slowest * 1000:.0f} ms; "
            f"live gauges checked {seen_live} times")
        assert proc.returncode == 0, f"migration failed: {out} {err}"
        assert json.loads(out)["state"] == "done"
        st["at"] = dst
        body = metrics(agent(src))
        assert sample(body, "drover_migration_data_remaining_bytes" + labels) is None
        assert sample(body, f'drover_migrations_total{{host="host{src}",'
                      'result="completed"}') == 1
        assert sample(body, f'drover_migration_downtime_seconds_count{{host="host{src}"}}') == 1
        assert sample(body, f'drover_migration_channel_wire_bytes_total{{host="host{src}"}}') > 0
        assert sample(body, f'drover_migration_channel_payload_bytes_total{{host="host{src}"}}') > 0
        promtool(body)
        after = wait_for("the downtime histogram's count up in Prometheus", lambda: (
            lambda v: v if v and v > before else None)(
                prom.value("sum(drover_migration_downtime_seconds_count)")), timeout=30)
        assert after == before + 1, (before, after)
        s = metrics(sched)
        promtool(s)
        assert sample(s, 'drover_migrations_total{result="completed"}') == 1
        assert sample(s, "drover_migration_duration_seconds_count") == 1
        assert sample(s, "drover_migration_duration_predicted_ratio_count") == 1
        assert sample(s, 'drover_scheduler_jobs{kind="migrate",state="done"}') == 1

    tap.case("migration: scrapes answer at once mid-migration; downtime "
             "histogram, results and channel bytes after", migrate_and_scrape)

    def series_move():
        src, dst = 3 - st["at"], st["at"]
        wait_for("the VM's series gone from its old host", lambda:
                 f'vm="{VM}"' not in metrics(agent(src)), timeout=30)
        wait_for("the VM's series on its new host", lambda: sample(
            metrics(agent(dst)), f'drover_vm_state{{vm="{VM}",host="host{dst}",'
            'state="running"}') == 1, timeout=30)
        assert sample(metrics(agent(src)), f'drover_host_vms{{host="host{src}"}}') == 0

    tap.case("the VM's series left its old host with it", series_move)

    def dirty_rate():
        # The agents measure each running VM's dirty rate (QEMU page
        # sampling, 2 s every 30 s, the first at once): VM writes 8 MiB/s,
        # an idle guest next to it (created in the migration case) far
        # less once it has booted.
        at = st["at"]

        def status(name):
            s = c.ctl_json("vm", "show", name).get("status") or {}
            return s if s.get("dirty_rate_measured") else None

        busy = wait_for(f"{VM}'s dirty rate measured on host{at}",
                        lambda: status(VM), timeout=30)
        rate = busy.get("dirty_rate_bytes_per_second", 0) / MiB
        log(f"{VM} dirty rate {rate:.1f} MiB/s")
        assert DIRTY_BUSY_MIB[0] <= rate <= DIRTY_BUSY_MIB[1], rate
        text = c.ctl("vm", "show", VM).stdout
        assert "dirty-rate" in text and "MiB/s" in text, text
        body = metrics(agent(at))
        promtool(body)
        got = sample(body, "drover_vm_dirty_memory_rate_bytes"
                     f'{{vm="{VM}",host="host{at}"}}')
        assert got is not None and got >= DIRTY_BUSY_MIB[0] * MiB, got
        # The idle guest's first measurement comes while it boots; one
        # taken after it is up (every 30 s) is of the idle guest.
        wait_for(f"{IDLE} up", lambda: "DROVER-GUEST up" in c.ctl(
            "vm", "console", IDLE).stdout, timeout=90)
        t_up = time.monotonic()
        idle = wait_for(f"{IDLE}'s dirty rate after boot", lambda: (
            lambda s: s if s and time.monotonic() - s.get(
                "dirty_rate_age_s", 0) > t_up + 1 else None)(status(IDLE)),
            timeout=45)
        idle_rate = idle.get("dirty_rate_bytes_per_second", 0) / MiB
        log(f"{IDLE} dirty rate {idle_rate:.1f} MiB/s")
        assert idle_rate <= DIRTY_IDLE_MAX_MIB, idle_rate
        c.ctl("vm", "destroy", IDLE)

    tap.case("agents measure dirty rates: ~8 MiB/s busy, idle far less",
             dirty_rate)

    def bad_input():
        for addr in (sched, agent(1)):
            assert scrape(addr, "/nope")[0] == 404
            assert scrape(addr, "/metrics/../../etc/passwd")[0] == 404
            host = addr.rsplit(":", 1)[0]
            assert raw(addr, f"DELETE /metrics HTTP/1.1\r\nHost: {host}\r\n"
                       "Connection: close\r\n\r\n".encode()) == 405
            # A 256 KiB header: refused or dropped, never served.
            junk = "x" * (256 * 1024)
            code = raw(addr, f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n"
                       f"X-Junk: {junk}\r\nConnection: close\r\n\r\n".encode())
            assert code != 200, code
            # A body over 64 KiB: 413 at once when the client asks first
            # (Expect: 100-continue), else once the body is sent.
            big = (f"POST /metrics HTTP/1.1\r\nHost: {host}\r\n"
                   "Content-Length: 4194304\r\nConnection: close\r\n")
            assert raw(addr, (big + "Expect: 100-continue\r\n\r\n").encode()) == 413
            code = raw(addr, (big + "\r\n").encode(), body=4194304)
            assert code in (413, 0), code
            # A client that announces 64 MiB and sends none of it holds
            # only its own connection: others are served meanwhile.
            host_, port_ = addr.rsplit(":", 1)
            with socket.create_connection((host_, int(port_)), timeout=30) as stall:
                stall.sendall(f"POST /metrics HTTP/1.1\r\nHost: {host}\r\n"
                              "Content-Length: 67108864\r\n\r\n".encode())
                t0 = time.monotonic()
                promtool(metrics(addr))
                took = time.monotonic() - t0
                assert took < SCRAPE_LIMIT_S, f"scrape beside a stalled client: {took:.2f}s"
            # Garbage, and a client that connects and vanishes.
            raw(addr, b"\x16\x03\x01\x00\xff garbage\r\n\r\n")
            raw(addr, b"GET /metr", read=False)
            # ... and it keeps serving.
            promtool(metrics(addr))

    tap.case("bad input: 404, 405, huge header, big body; still serving",
             bad_input)

    def last_backup():
        name = "drover_vm_last_backup_timestamp_seconds"
        c.ctl("vm", "create", BK_VM, "--vcpus", "1", "--memory", "128M", "--disk", "16M",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", GUEST_CMDLINE)
        wait_for("the backup VM running",
                 lambda: c.vms_by_name()[BK_VM]["state"] == "running", timeout=60)
        assert name + "{" not in metrics(sched), "a series before any backup"
        t0 = time.time()
        out = c.ctl("backup", "create", BK_VM, "--repo", "main").stdout
        t1 = time.time()
        log(out.strip().splitlines()[-1] if out.strip() else "")
        body = metrics(sched)
        promtool(body)
        ts = sample(body, f'{name}{{vm="{BK_VM}"}}')
        assert ts is not None and t0 - 2 <= ts <= t1 + 1, (t0, ts, t1)
        assert sample(body, f'{name}{{vm="{VM}"}}') is None
        assert f"# TYPE {name} gauge" in body
        got = wait_for("the backup's time through Prometheus", lambda: st["prom"].value(
            f'{name}{{vm="{BK_VM}"}}'), timeout=30)
        assert abs(got - ts) < 0.01, (got, ts)
        c.ctl("vm", "delete", BK_VM, "--force")
        wait_for("the series gone with the VM",
                 lambda: f'vm="{BK_VM}"' not in metrics(sched), timeout=60)

    tap.case("a backup: drover_vm_last_backup_timestamp_seconds, gone with the VM",
             last_backup)

    def metrics_tls():
        d = c.env["DROVER_CLUSTER_DIR"]
        pki = os.path.join(d, "pki", "scheduler")
        state = tempfile.mkdtemp(dir=tmp)
        p = subprocess.Popen(
            [os.path.join(BUILD, "scheduler", "drover-scheduler"),
             "--listen", f"127.0.0.1:{TLS_SCHED_PORT}", "--state", state,
             "--tls-dir", pki, "--metrics-listen", f"127.0.0.1:{TLS_METRICS_PORT}",
             "--metrics-tls"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.pem"))
            # The certificate names the cluster's scheduler address, not
            # 127.0.0.1 on this test's port: check the chain, not the name.
            ctx.check_hostname = False

            def get():
                if p.poll() is not None:
                    raise AssertionError(f"scheduler exited: {p.stderr.read()}")
                try:
                    with urllib.request.urlopen(
                            f"https://127.0.0.1:{TLS_METRICS_PORT}/metrics",
                            context=ctx, timeout=10) as r:
                        return r.read().decode()
                except urllib.error.URLError:
                    return None
            body = wait_for("HTTPS metrics", get, timeout=30)
            promtool(body)
            assert "drover_scheduler_hosts" in body
            # Plain HTTP on the HTTPS port is not served.
            assert raw(f"127.0.0.1:{TLS_METRICS_PORT}",
                       b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") != 200
        finally:
            p.terminate()
            p.wait(timeout=30)

    tap.case("--metrics-tls: HTTPS with the scheduler's certificate", metrics_tls)

    def prometheus_stop():
        if "prom" in st:
            st.pop("prom").stop()

    tap.case("Prometheus stops", prometheus_stop)


if __name__ == "__main__":
    sys.exit(main())
