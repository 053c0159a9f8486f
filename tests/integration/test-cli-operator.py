#!/usr/bin/python3
"""What a new operator trips over (issue 11), on a real two-host local
cluster, through droverctl and confirmed with virsh:

- --version on every program;
- `vm create` with nothing to boot, `--vcpus 0`, and the migration knobs
  at 0 are refused with a message that says what is wrong;
- `--insecure` against the TLS scheduler says the scheduler wants TLS;
- `droverctl job cancel`: a queued migration is dropped, a running one is
  aborted with the VM left running on its source, a finished job and a
  job that is not a migration are refused;
- Ctrl-C on `droverctl migrate` says the migration goes on and how to
  cancel it, and the migration does go on;
- the progress of a VM with a disk shows the disk copy, never 100 % before
  the end, and a summary that names what each byte count counts;
- stop (forced or not), start and destroy leave jobs, and a forced stop
  says it was forced;
- a VM whose host is down shows `unknown` until its host reports again.
"""

import os
import re
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_DIR, Cluster, log,  # noqa: E402
                            run, run_on_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
# A (web) keeps a working set dirty; D (data) has a disk.
WEB, DATA = "op-web", "op-data"
WEB_CMDLINE = GUEST_CMDLINE + " drover.hb_ms=200 drover.ws_mib=16 drover.rate_mib=8"
DATA_CMDLINE = GUEST_CMDLINE + " drover.hb_ms=200"
# 1 MB/s: a migration that lasts long enough to be cancelled or interrupted.
SLOW = ["--bandwidth", "8"]


def main():
    c = Cluster(hosts=2, report_interval_ms=1000)
    c.env["DROVER_CLUSTER_DIR"] = os.environ.get("DROVER_CLUSTER_DIR",
                                                 "/tmp/drover-cluster-cli")
    # One migration out of a host at a time, so a second one queues.
    c.env["DROVER_SCHEDULER_ARGS"] = "--max-migrations-out 1"
    return run_on_cluster(c, run_cases, tmp_prefix="drover-cli-test-")


def job_of(c, job_id):
    for j in c.ctl_json("jobs")["jobs"]:
        if j["id"] == job_id:
            return j
    raise AssertionError(f"job {job_id} not listed")


def start_migrate(c, vm, *args):
    """droverctl migrate VM ARGS in the background; returns (process, job id)."""
    p = subprocess.Popen([os.path.join(BUILD, "cli", "droverctl"), "migrate", vm, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=c.env)
    line = p.stdout.readline()
    m = re.match(r"job (\S+): migrating", line)
    assert m, (line, p.poll())
    # The first line after the prediction comes from the watch, which has
    # set up its Ctrl-C handling by then.
    while line.startswith(("job ", "prediction:")):
        line = p.stdout.readline()
        assert line, p.poll()
    return p, m.group(1)


def state_on(c, i, vm):
    p = c.virsh(i, "domstate", vm, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def settled_on(c, i, vm):
    """VM runs on host I and is nowhere else, and the scheduler agrees."""
    other = 3 - i
    return (state_on(c, i, vm) == "running" and state_on(c, other, vm) is None
            and c.vms_by_name()[vm]["host"] == f"host{i}"
            and c.vms_by_name()[vm]["state"] == "running")


def run_cases(c, tap, tmp):
    def versions():
        for prog in (("cli", "droverctl"), ("agent", "drover-agent"),
                     ("scheduler", "drover-scheduler")):
            out = run([os.path.join(BUILD, *prog), "--version"]).stdout
            assert re.fullmatch(rf"{prog[1]} \d+\.\d+\.\d+\S*\n", out), out

    tap.case("--version on droverctl, drover-agent and drover-scheduler", versions)

    def refusals():
        before = set(c.vms_by_name())
        cases = [
            # Nothing to boot: the scheduler refuses, naming both ways out.
            (["vm", "create", "op-empty", "--vcpus", "1", "--memory", "128M"], 1,
             ["nothing to boot", "--kernel", "--disk"]),
            # A wrong value is not a missing flag.
            (["vm", "create", "op-zero", "--vcpus", "0", "--memory", "128M",
              "--kernel", KERNEL], 2, ["--vcpus: 0 is not valid", "from 1 to 512"]),
            (["vm", "create", "op-zero", "--memory", "128M", "--kernel", KERNEL], 2,
             ["--vcpus N is required"]),
            (["migrate", WEB, "--max-downtime", "0"], 2, ["--max-downtime", "from 1 to 60000"]),
            (["migrate", WEB, "--stall-rounds", "0"], 2, ["--stall-rounds", "from 1 to 1000"]),
            (["migrate", WEB, "--timeout-per-gib", "0"], 2,
             ["--timeout-per-gib", "from 1 to 86400"]),
        ]
        for argv, rc, words in cases:
            p = c.ctl(*argv, check=False)
            assert p.returncode == rc, (argv, p.returncode, p.stderr)
            for w in words:
                assert w in p.stderr, (argv, w, p.stderr)
            log(p.stderr.splitlines()[0])
        assert set(c.vms_by_name()) == before
        for i in (1, 2):
            assert not any(d in ("op-empty", "op-zero") for d in c.domains(i))
        # --insecure against the TLS scheduler: not only "Socket closed".
        p = run([os.path.join(BUILD, "cli", "droverctl"), "--insecure", "hosts"],
                check=False, env={k: v for k, v in c.env.items() if k != "DROVER_TLS_DIR"})
        assert p.returncode == 1, p
        assert "serves TLS" in p.stderr and "--tls-dir" in p.stderr, p.stderr
        log(p.stderr)

    def boot():
        c.ctl("vm", "create", WEB, "--vcpus", "1", "--memory", "256M", "--host", "host1",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", WEB_CMDLINE)
        c.ctl("vm", "create", DATA, "--vcpus", "1", "--memory", "128M", "--disk", "64M",
              "--host", "host1", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", DATA_CMDLINE)
        for vm in (WEB, DATA):
            wait_for(f"{vm} heartbeats",
                     lambda vm=vm: "HB " in c.ctl("vm", "console", vm).stdout, timeout=120)

    tap.case("boot two guests on host1 (one dirtying, one with a disk)", boot)
    tap.case("nothing to boot, --vcpus 0, knobs at 0, --insecure to TLS: clear refusals",
             refusals)

    def cancel():
        # WEB's slow migration holds host1's one outgoing slot: DATA queues.
        pw, web_job = start_migrate(c, WEB, *SLOW)
        pd, data_job = start_migrate(c, DATA)
        wait_for("DATA queued", lambda: job_of(c, data_job)["state"] == "queued", 30)
        p = c.ctl("job", "cancel", data_job)
        assert "cancelled" in p.stdout and "before it started" in p.stdout, p.stdout
        j = job_of(c, data_job)
        assert j["state"] == "failed" and "cancelled by the operator" in j["error"], j
        assert pd.wait(timeout=30) == 1, pd.stderr.read()

        wait_for("WEB copying", lambda: (job_of(c, web_job).get("migration") or {})
                 .get("phase") == "precopy", 60)
        p = c.ctl("job", "cancel", web_job, timeout=120)
        log(p.stdout)
        assert "cancelled" in p.stdout and "stays running on host 'host1'" in p.stdout, p.stdout
        assert pw.wait(timeout=60) == 1
        j = job_of(c, web_job)
        assert j["state"] == "failed" and j["message"] == "migration cancelled", j
        wait_for("WEB running on host1 only", lambda: settled_on(c, 1, WEB), 60)

        # Finished, unknown, and not a migration: refused, nothing changes.
        p = c.ctl("job", "cancel", web_job, check=False)
        assert p.returncode == 1 and "already failed" in p.stderr, p.stderr
        p = c.ctl("job", "cancel", "00000000-0000-0000-0000-000000000000", check=False)
        assert p.returncode == 1 and "no job with id" in p.stderr, p.stderr
        create = [j for j in c.ctl_json("jobs")["jobs"] if j["kind"] == "create"][0]
        p = c.ctl("job", "cancel", create["id"], check=False)
        assert p.returncode == 1 and "already done" in p.stderr, p.stderr

    tap.case("job cancel: a queued migration dropped, a running one aborted with the VM "
             "left on its source; finished jobs refused", cancel)

    def interrupt():
        p, job_id = start_migrate(c, WEB, *SLOW)
        wait_for("WEB migrating", lambda: job_of(c, job_id)["state"] == "running", 60)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        log(err)
        assert p.returncode == 128 + signal.SIGINT, p.returncode
        assert f"migration job {job_id} goes on" in err, err
        assert f"droverctl job cancel {job_id}" in err, err
        # It does go on, and can still be cancelled.
        assert job_of(c, job_id)["state"] == "running"
        c.ctl("job", "cancel", job_id, timeout=120)
        wait_for("WEB running on host1 only", lambda: settled_on(c, 1, WEB), 60)

    tap.case("Ctrl-C on droverctl migrate: the migration goes on, the message says how "
             "to cancel it", interrupt)

    def progress():
        # Not a TTY: a line a second, then the summary.
        p = wait_for("DATA migrates (the source may still be finishing the cancel)",
                     lambda: (lambda r: r if r.returncode == 0 else None)(
                         c.ctl("migrate", DATA, "--to", "host2", check=False)), 60, 2)
        log(p.stdout)
        lines = p.stdout.splitlines()
        summary = lines.index("migrated op-data: host1 -> host2")
        body = lines[:summary]
        assert not any(re.match(r"(\[[#-]*\]\s+)?100%", x) for x in body[:-1]), body
        assert any("disk " in x for x in body), body
        text = "\n".join(lines[summary:])
        assert re.search(r"^  memory sent   \S+ \S+ by QEMU", text, re.M), text
        assert re.search(r"^  disk copied   [\d.]+ MiB of 64\.0 MiB", text, re.M), text
        assert "QEMU counted" in text and re.search(r"^  channel       .* on the wire",
                                                    text, re.M), text
        j = [j for j in c.ctl_json("jobs")["jobs"] if j["vm"] == DATA][-1]
        assert j["migration"]["disk_total"] == 64 * 1024 * 1024, j["migration"]
        wait_for("DATA running on host2 only", lambda: settled_on(c, 2, DATA), 60)

    tap.case("progress of a VM with a disk: disk copy shown, no 100 % before the end, "
             "a summary that says what each count is", progress)

    def lifecycle():
        out = c.ctl("vm", "stop", DATA, "--force").stdout
        assert "forced off (--force" in out, out
        out = c.ctl("vm", "start", DATA).stdout
        assert "started on host host2" in out, out
        out = c.ctl("vm", "destroy", DATA).stdout
        assert "destroyed (forced off)" in out, out
        c.ctl("vm", "start", DATA)
        # The test guest ignores ACPI: a graceful stop ends forced, and says so.
        out = c.ctl("vm", "stop", DATA, "--timeout", "3").stdout
        log(out)
        assert ("forced off: the guest did not shut down" in out
                or "shut down by the guest" in out), out
        kinds = [(j["kind"], j["state"]) for j in c.ctl_json("jobs")["jobs"]
                 if j["vm"] == DATA]
        for k in ("stop", "start", "destroy"):
            assert (k, "done") in kinds, kinds
        table = c.ctl("jobs").stdout
        assert re.search(r"\bstop\s+op-data\s+done.*forced off", table), table

    tap.case("stop, start and destroy leave jobs; a forced stop says it was forced",
             lifecycle)

    def unknown():
        assert c.vms_by_name()[WEB]["state"] == "running"
        c.harness("kill-agent", "1")
        wait_for("host1 down", lambda: c.hosts_by_name()["host1"]["state"] == "down", 30)
        vms = c.vms_by_name()
        assert vms[WEB]["state"] == "unknown", vms[WEB]
        assert vms[DATA]["state"] != "unknown", vms[DATA]
        assert re.search(rf"^{WEB}\s+host1\s+unknown\b", c.ctl("vm", "list").stdout, re.M)
        show = c.ctl("vm", "show", WEB).stdout
        assert re.search(r"^state\s+unknown$", show, re.M), show
        c.harness("start-agent", "1")
        wait_for("WEB running again", lambda: c.vms_by_name()[WEB]["state"] == "running", 30)

    tap.case("a VM whose host is down shows unknown until its host reports", unknown)


if __name__ == "__main__":
    sys.exit(main())
