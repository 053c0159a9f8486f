#!/usr/bin/python3
"""Backup repositories as operators manage them (issue 14), on a real
local cluster of two hosts whose agents run with --backup-repo-root ROOT.

`repo add` of a path outside ROOT is refused, saying why, and nothing is
stored; `repo add shared ROOT/shared`: both hosts attach it and `repo
list` shows both. A VM with a disk but no guest (it sits in its
firmware; CreateBackup needs no guest) gets data written with qemu-io
while it is down, then two backups over the agent's CreateBackup: b1
holds chunks A and B, b2 (full) chunks A and C. `repo status` shows the
counts. Chunk C corrupted and chunk A deleted: `backup verify --all`
exits 1 and names both, A affecting b1 and b2, C only b2; repaired, it
exits 0. `backup prune --keep-last 1 --dry-run` changes nothing; without
--dry-run it removes b1; `repo gc` (chunk files made old enough) frees
chunk B; the status afterwards agrees. An agent restarted comes back
without the repository and the scheduler attaches it again when the
agent registers. Prints TAP.
"""
import hashlib
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (AGENT, CLUSTER, Agents, log, run,  # noqa: E402
                            run_on_cluster, two_host_cluster, wait_for)

VM = "bkrepo1"
MiB = 1024 * 1024
CHUNK = 4 * MiB


def digest(byte):
    """The chunk name of 4 MiB of BYTE."""
    return hashlib.sha256(bytes([byte]) * CHUNK).hexdigest()


A, B, C = digest(0x11), digest(0x12), digest(0x21)


def main():
    c = two_host_cluster("/tmp/drover-cluster-backup-repo")
    root = os.path.join(c.env["DROVER_CLUSTER_DIR"], "repos")
    # The agents make the root when missing (the cluster dir is purged
    # before they start).
    c.env["DROVER_AGENT_ARGS"] = f"--backup-repo-root {root}"
    return run_on_cluster(c, lambda c, tap, tmp, pb: run_cases(c, tap, tmp, pb, root),
                          with_pb=True, tmp_prefix="drover-backup-repo-")


def run_cases(c, tap, tmp, pb, root):
    repo = os.path.join(root, "shared")
    st = {}

    def repos():
        return {r["name"]: r for r in c.ctl_json("repo", "list").get("repos", [])}

    def status():
        return c.ctl_json("repo", "status", "shared")

    def chunk_path(d):
        return os.path.join(repo, "chunks", d[:2], d)

    def manifest(bid):
        with open(os.path.join(repo, "backups", bid + ".json")) as f:
            return json.load(f)

    def backup(what, full=False):
        a = Agents(c, pb)
        req = pb.AgentBackupRequest(job_id="job-" + what, vm=VM, repo="shared",
                                    full=full)
        with a.grpc.secure_channel(a.addrs[st["at"]], a.creds) as ch:
            f = ch.unary_stream(AGENT + "CreateBackup",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=pb.StorageProgress.FromString)
            msgs = list(f(req, timeout=300))
        last = msgs[-1]
        assert last.phase == "completed" and last.backup_id, msgs[-3:]
        log(f"backup {what}: {last.backup_id}, read {last.processed}, "
            f"{last.bytes_new} new")
        return last.backup_id

    def write_disk(*writes):
        """qemu-io WRITES (byte, offset) of one chunk each while the VM is down."""
        c.ctl("vm", "destroy", VM)
        disk = os.path.join(c.host_data(st["at"]), "disks", VM + ".qcow2")
        for byte, off in writes:
            run(["qemu-io", "-f", "qcow2", "-c",
                 f"write -P {byte:#x} {off} {CHUNK}", disk])
        c.ctl("vm", "start", VM)
        wait_for("VM running",
                 lambda: c.where(VM).get(st["at"], (None, ""))[1] == "running",
                 timeout=60)

    def refused_outside():
        outside = os.path.join(c.env["DROVER_CLUSTER_DIR"], "elsewhere")
        p = c.ctl("repo", "add", "stray", outside, check=False)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        assert "outside" in p.stderr and root in p.stderr, p.stderr
        assert "host1" in p.stderr and "host2" in p.stderr, p.stderr
        assert "stray" not in repos(), repos()
        assert not os.path.exists(outside), "a refused path was made"
        # ".." is refused before any host is asked.
        p = c.ctl("repo", "add", "stray", repo + "/../../etc", check=False)
        assert p.returncode == 1 and ".." in p.stderr, p.stderr
        assert "stray" not in repos()

    def add_shared():
        out = c.ctl_json("repo", "add", "shared", repo)
        assert sorted(out["hosts"]) == ["host1", "host2"], out
        assert os.path.isdir(os.path.join(repo, "chunks")), "not made"
        r = wait_for("both hosts report it",
                     lambda: (lambda r: r if r and sorted(r.get("hosts", [])) ==
                              ["host1", "host2"] else None)(repos().get("shared")),
                     timeout=30)
        assert r["path"] == repo and r.get("stored"), r
        # The same name at another path is refused.
        p = c.ctl("repo", "add", "shared", root + "/other", check=False)
        assert p.returncode == 1 and "exists" in p.stderr, p.stderr

    def two_backups():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "128M",
              "--disk", "64M")
        w = wait_for("VM defined", lambda: c.where(VM) or None, timeout=60)
        st["at"] = list(w)[0]
        write_disk((0x11, 0), (0x12, CHUNK))
        st["b1"] = backup("b1")
        write_disk((0x21, CHUNK))
        st["b2"] = backup("b2", full=True)
        m1, m2 = manifest(st["b1"]), manifest(st["b2"])
        assert m1["disks"][0]["chunks"][:2] == [A, B], m1["disks"][0]["chunks"][:3]
        assert m2["disks"][0]["chunks"][:2] == [A, C], m2["disks"][0]["chunks"][:3]

    def status_counts():
        s = status()
        log(f"status: {s}")
        assert s["name"] == "shared" and s["host"] in ("host1", "host2"), s
        assert int(s["backups"]) == 2 and int(s["chunks"]) == 3, s
        assert int(s["raw_bytes"]) == 3 * CHUNK, s
        assert int(s["logical_bytes"]) == 4 * CHUNK, s
        assert abs(s["dedup_ratio"] - 4 / 3) < 0.01, s
        assert s["compression_ratio"] > 10, s
        text = c.ctl("repo", "status", "shared").stdout
        assert "BACKUPS" in text and "DEDUP" in text and "1.33" in text, text

    def verify_names_bad():
        saved = os.path.join(tmp, "saved")
        os.makedirs(saved)
        for d in (A, C):
            shutil.copy2(chunk_path(d), os.path.join(saved, d))
        with open(chunk_path(C), "r+b") as f:
            f.seek(-8, os.SEEK_END)
            f.write(b"\xde\xad\xbe\xef\xde\xad\xbe\xef")
        os.unlink(chunk_path(A))
        p = c.ctl("backup", "verify", "--all", check=False)
        log(p.stdout)
        assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
        lines = p.stdout.splitlines()
        a = [i for i, line in enumerate(lines) if A in line]
        cc = [i for i, line in enumerate(lines) if C in line]
        assert a and "missing" in lines[a[0]], p.stdout
        assert cc and "corrupt" in lines[cc[0]], p.stdout
        after_a = "\n".join(lines[a[0] + 1:a[0] + 3])
        after_c = "\n".join(lines[cc[0] + 1:cc[0] + 3])
        assert st["b1"] in after_a and st["b2"] in after_a, p.stdout
        assert st["b2"] in after_c and st["b1"] not in after_c, p.stdout
        assert int(status()["last_verify_ms"]) > 0
        # Repaired, verify is clean.
        for d in (A, C):
            shutil.copy2(os.path.join(saved, d), chunk_path(d))
        p = c.ctl("backup", "verify", st["b1"], st["b2"], check=False)
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert "all good" in p.stdout, p.stdout

    def prune():
        p = c.ctl("backup", "prune", VM, "--keep-last", "1", "--dry-run")
        assert "would be removed" in p.stdout, p.stdout
        assert int(status()["backups"]) == 2, "a dry run removed something"
        out = c.ctl_json("backup", "prune", VM, "--keep-last", "1")
        kept = {b["id"]: b["kept_by"] for b in out["backups"]}
        assert kept == {st["b2"]: "keep-last", st["b1"]: "removed"}, out
        assert out["removed"] == [st["b1"]], out
        assert not os.path.exists(os.path.join(repo, "backups", st["b1"] + ".json"))
        assert os.path.exists(os.path.join(repo, "backups", st["b2"] + ".json"))
        # Bad input changes nothing.
        p = c.ctl("backup", "prune", "../x", "--keep-last", "1", check=False)
        assert p.returncode == 2, p.stderr
        p = c.ctl("backup", "prune", VM, "--keep-last", "1", "--repo", "nosuch",
                  check=False)
        assert p.returncode == 1 and "nosuch" in p.stderr, p.stderr

    def gc():
        # gc keeps chunks touched in the last hour (backups in flight on
        # other hosts); make them older, as time would.
        old = time.time() - 2 * 3600
        for d, _, files in os.walk(os.path.join(repo, "chunks")):
            for f in files:
                os.utime(os.path.join(d, f), (old, old))
        size_b = os.path.getsize(chunk_path(B))
        job = c.ctl_json("repo", "gc", "shared", "--wait")
        assert job["state"] == "done" and job["kind"] == "gc", job
        g = job["storage"]["gc"]
        # Freed counts the space the file took (whole filesystem blocks).
        assert int(g["chunks_swept"]) == 1 and int(g["bytes_freed"]) >= size_b > 0, g
        assert not os.path.exists(chunk_path(B))
        assert os.path.exists(chunk_path(A)) and os.path.exists(chunk_path(C))
        st["freed"] = int(g["bytes_freed"])

    def status_after():
        s = status()
        assert int(s["backups"]) == 1 and int(s["chunks"]) == 2, s
        assert int(s["last_gc_freed"]) == st["freed"] and int(s["last_gc_ms"]) > 0, s
        assert abs(s["dedup_ratio"] - 1.0) < 0.01, s
        p = c.ctl("backup", "verify", "--all", check=False)
        assert p.returncode == 0, p.stdout

    def agent_restart():
        other = 3 - st["at"]
        c.harness("kill-agent", str(other), "TERM", check=False)
        wait_for("host down or gone from the list",
                 lambda: f"host{other}" not in repos()["shared"].get("hosts", []),
                 timeout=30)
        run([CLUSTER, "start-agent", str(other)], env=c.env, timeout=60)
        r = wait_for("the restarted host has the repository again",
                     lambda: (lambda r: r if sorted(r.get("hosts", [])) ==
                              ["host1", "host2"] else None)(repos()["shared"]),
                     timeout=60)
        log(f"after the restart: {r}")

    if not tap.case("repo add outside the agents' root: refused, why, nothing stored",
                    refused_outside):
        return
    if not tap.case("repo add shared: both hosts attach it, repo list shows both",
                    add_shared):
        return
    if not tap.case("two backups of a VM with a disk (no guest)", two_backups):
        return
    tap.case("repo status: backups, chunks, dedup and compression", status_counts)
    tap.case("a corrupt and a missing chunk: verify exits 1, names both and the "
             "backups they affect; repaired, exits 0", verify_names_bad)
    tap.case("prune --keep-last 1: the dry run changes nothing, then b1 goes",
             prune)
    tap.case("repo gc frees the chunk only b1 used", gc)
    tap.case("status afterwards consistent", status_after)
    tap.case("an agent restarted gets the repository again on register",
             agent_restart)


if __name__ == "__main__":
    sys.exit(main())
