#!/usr/bin/python3
"""Disk images (issue 13) on a two-host cluster whose hosts have their own
image directories (host1: A, host2: B; host2's agent is restarted with B).

Checks: the test guest's bootable disk image (tests/guest/build-disk)
imports as qcow2 to one host and as raw to both, and `image list` says
where each is; files that are not disk images (random bytes named .qcow2,
a text file) and bad names are refused and leave nothing behind; a VM
created with --image lands on the host that has the image, boots from its
disk (heartbeats on its console, no kernel in its domain XML, <boot
dev='hd'/>) whose disk is a qcow2 overlay on the image, grown to --disk;
an image in use cannot be deleted (scheduler and agent say so); migrating
that VM to a host without the image is refused with a clear error; a
cloud-init seed (ISO 9660 "cidata", user-data as given, meta-data with the
VM's name) is attached as a read-only cdrom, and its VM migrates to the
other host and back (seed rebuilt there, gone from the old host); an image
VM's disk-only snapshot + revert, a linked clone from that snapshot and a
backup restored as a new VM boot, the image staying their backing file
and undeletable (only with DROVER_IMAGES_STORAGE=1: the slow suite's
images-storage); image.imported and
image.deleted events; an agent killed in the middle of an upload (fault
point image-import-exit) leaves no image and, once restarted, no upload
file, and the import then succeeds. Prints TAP.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402

from drover_harness import (CLUSTER, ROOT, Agents, check_unbroken,  # noqa: E402
                            console_heartbeats, log, run, run_on_cluster,
                            two_host_cluster, wait_for)

CLUSTER_DIR = "/tmp/drover-cluster-images"
BUILD_DISK = os.path.join(ROOT, "tests", "guest", "build-disk")


def image_hosts(c):
    return {i["name"]: sorted(i.get("hosts", []))
            for i in c.ctl_json("image", "list").get("images", [])}


def disk_files(d):
    p = os.path.join(d, "disks")
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def start_agent(c, i, image_dir, faults=None):
    c.harness("kill-agent", str(i), "TERM", check=False)
    env = dict(c.env)
    env["DROVER_IMAGE_DIR"] = image_dir
    env.pop("DROVER_FAULTS", None)
    if faults:
        env["DROVER_FAULTS"] = faults
    subprocess.run([CLUSTER, "start-agent", str(i)], env=env, check=True,
                   capture_output=True, timeout=90)
    wait_for(f"host{i} up",
             lambda: c.hosts_by_name()[f"host{i}"]["state"] == "up", 60)


def cases(c, tap, tmp, pb):
    dir_a, dir_b = c.image_dirs
    out = run([BUILD_DISK], timeout=600).stdout
    raw, qcow2 = [line for line in out.splitlines() if line.startswith("/")][-2:]
    start_agent(c, 2, dir_b)

    def import_images():
        r = c.ctl("image", "import", "tq", qcow2, "--host", "host1")
        assert "imported" in r.stdout, r.stdout
        r = c.ctl("image", "import", "tr", raw)
        assert "host1: image tr imported" in r.stdout, r.stdout
        assert "host2: image tr imported" in r.stdout, r.stdout
        wait_for("images in the reports",
                 lambda: image_hosts(c) == {"tq": ["host1"],
                                            "tr": ["host1", "host2"]}, 30)
        assert disk_files(dir_a) == ["tq.qcow2", "tr.raw"], disk_files(dir_a)
        assert disk_files(dir_b) == ["tr.raw"], disk_files(dir_b)
        show = c.ctl_json("image", "show", "tq")
        assert show["format"] == "qcow2", show
        sizes = os.path.getsize(qcow2) + os.path.getsize(raw)

        def host1_metrics():
            url = "http://" + c.env["DROVER_HOST1_METRICS"] + "/metrics"
            with urllib.request.urlopen(url, timeout=30) as r:
                body = r.read().decode()
            return ('drover_host_images{host="host1"} 2' in body
                    and f'drover_host_image_bytes{{host="host1"}} {sizes}' in body)
        wait_for("host1's image metrics", host1_metrics, 30)
        r = c.ctl("image", "import", "tq", qcow2, "--host", "host1", check=False)
        assert r.returncode != 0 and "exists" in r.stderr, r.stderr
    tap.case("import qcow2 to one host, raw to both; list and show", import_images)

    def refuse_bad_files():
        junk = os.path.join(tmp, "junk.qcow2")
        with open(junk, "wb") as f:
            f.write(os.urandom(3 * 1024 * 1024 + 17))
        text = os.path.join(tmp, "notes.txt")
        with open(text, "w") as f:
            f.write("this is not a disk image\n" * 100)
        before = disk_files(dir_a)
        for name, path in (("junk", junk), ("notes", text)):
            r = c.ctl("image", "import", name, path, "--host", "host1", check=False)
            assert r.returncode == 1, (name, r.returncode, r.stderr)
            assert "not" in r.stderr and "image" in r.stderr, r.stderr
            log(f"{name}: {r.stderr.strip()}")
        assert disk_files(dir_a) == before, disk_files(dir_a)
        for bad in ("a/b", "..", "Upper", ""):
            r = c.ctl("image", "import", bad, qcow2, check=False)
            assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert disk_files(dir_a) == before and "junk" not in image_hosts(c)
    tap.case("non-images and bad names are refused and leave nothing",
             refuse_bad_files)

    def boot_from_image():
        c.ctl("vm", "create", "img1", "--vcpus", "1", "--memory", "256M",
              "--image", "tq", "--disk", "64M")
        vm = c.vms_by_name()["img1"]
        assert vm["host"] == "host1", vm
        xml = c.virsh(1, "dumpxml", "img1").stdout
        assert "<kernel>" not in xml and "<boot dev='hd'/>" in xml, xml
        disk = re.search(r"<source file='([^']+\.qcow2)'", xml).group(1)
        info = json.loads(run(["qemu-img", "info", "-U", "--output=json",
                               disk]).stdout)
        assert info["format"] == "qcow2", info
        assert info["backing-filename"] == os.path.join(
            os.path.realpath(dir_a), "disks", "tq.qcow2"), info
        assert info.get("backing-filename-format") == "qcow2", info
        assert info["virtual-size"] == 64 * 1024 * 1024, info
        hb = wait_for("heartbeats from the image's disk",
                      lambda: len(console_heartbeats(c, "img1")) >= 3, 120)
        assert hb
    tap.case("a VM created --image boots from its disk (overlay, grown)",
             boot_from_image)

    def delete_in_use():
        r = c.ctl("image", "delete", "tq", check=False)
        assert r.returncode == 1 and "in use" in r.stderr and "img1" in r.stderr, r.stderr
        assert "tq.qcow2" in disk_files(dir_a)
    tap.case("an image in use cannot be deleted", delete_in_use)

    def migrate_needs_image():
        r = c.ctl("migrate", "img1", "--to", "host2", check=False)
        assert r.returncode != 0, r.stdout
        assert "no image 'tq'" in r.stderr, r.stderr
        log(r.stderr.strip())
        assert c.vms_by_name()["img1"]["host"] == "host1"
        # The destination's agent refuses on its own too, and makes nothing.
        spec = pb.VmSpec(name="img1", vcpus=1, memory=256 * 1024 * 1024,
                         disk=64 * 1024 * 1024, image="tq")
        try:
            Agents(c, pb).prepare(f"img-{os.getpid()}", 1, 2, spec)
            raise AssertionError("PrepareIncoming without the image succeeded")
        except grpc.RpcError as e:
            assert "no image named 'tq' on host host2" in e.details(), e.details()
            log(f"PrepareIncoming: {e.details()}")
        left = os.listdir(os.path.join(c.host_data(2), "disks"))
        assert not [f for f in left if f.startswith("img1")], left
    tap.case("migration to a host without the image is refused",
             migrate_needs_image)

    def cloud_init():
        ud = os.path.join(tmp, "user-data.yaml")
        text = "#cloud-config\nruncmd:\n  - echo drover-was-here\n"
        with open(ud, "w") as f:
            f.write(text)
        c.ctl("vm", "create", "img2", "--vcpus", "1", "--memory", "256M",
              "--image", "tr", "--cloud-init", ud, "--host", "host2")
        xml = c.virsh(2, "dumpxml", "img2").stdout
        m = re.search(r"<disk type='file' device='cdrom'>.*?<source file='([^']+)'"
                      r".*?</disk>", xml, re.S)
        assert m and "<readonly/>" in m.group(0), xml
        seed = m.group(1)
        d = run(["isoinfo", "-d", "-i", seed]).stdout
        assert re.search(r"^Volume id: cidata$", d, re.M), d
        got = run(["isoinfo", "-R", "-i", seed, "-x", "/user-data"]).stdout
        assert got == text, got
        meta = run(["isoinfo", "-R", "-i", seed, "-x", "/meta-data"]).stdout
        assert "instance-id: img2" in meta and "local-hostname: img2" in meta, meta
        # It migrates: the destination rebuilds the seed, the source's goes.
        seeds = {i: os.path.join(c.host_data(i), "disks", "img2.seed.iso")
                 for i in (1, 2)}
        assert seed == seeds[2], (seed, seeds)
        for src, dst in ((2, 1), (1, 2)):
            c.ctl("migrate", "img2", "--to", f"host{dst}", timeout=300)
            wait_for(f"img2 on host{dst}",
                     lambda: c.vms_by_name()["img2"]["host"] == f"host{dst}", 60)
            assert c.where("img2") == {dst: ("yes", "running")}, c.where("img2")
            xml = c.virsh(dst, "dumpxml", "img2").stdout
            m = re.search(r"<disk type='file' device='cdrom'>.*?<source "
                          r"file='([^']+)'.*?</disk>", xml, re.S)
            assert m and m.group(1) == seeds[dst], xml
            got = run(["isoinfo", "-R", "-i", seeds[dst], "-x", "/user-data"]).stdout
            assert got == text, got
            wait_for(f"no seed left on host{src}",
                     lambda: not os.path.exists(seeds[src]), 30)
        c.ctl("vm", "delete", "img2", "--force")
        assert not os.path.exists(seed), seed
    tap.case("cloud-init seed attached with the right contents; its VM "
             "migrates there and back with the seed", cloud_init)

    def migrate_with_image():
        c.ctl("vm", "create", "img3", "--vcpus", "1", "--memory", "256M",
              "--image", "tr", "--host", "host1")
        wait_for("img3 heartbeats",
                 lambda: len(console_heartbeats(c, "img3")) >= 3, 120)
        c.ctl("migrate", "img3", "--to", "host2", timeout=300)
        wait_for("img3 on host2",
                 lambda: c.vms_by_name()["img3"]["host"] == "host2", 60)
        before = check_unbroken(c, "img3")
        wait_for("img3 heartbeats go on",
                 lambda: check_unbroken(c, "img3") >= before + 3, 60)
        xml = c.virsh(2, "dumpxml", "img3").stdout
        disk = re.search(r"<source file='([^']+\.qcow2)'", xml).group(1)
        info = json.loads(run(["qemu-img", "info", "-U", "--output=json",
                               disk]).stdout)
        assert info["backing-filename"] == os.path.join(
            os.path.realpath(dir_b), "disks", "tr.raw"), info
        assert info.get("backing-filename-format") == "raw", info
    tap.case("a VM made from an image live-migrates to a host with the image",
             migrate_with_image)

    tr_b = os.path.join(os.path.realpath(dir_b), "disks", "tr.raw")

    def chain_of(host, vm):
        """The backing chain of VM's running disk on HOST (filenames)."""
        xml = c.virsh(host, "dumpxml", vm).stdout
        disk = re.search(r"<disk type='file' device='disk'>.*?<source "
                         r"file='([^']+)'", xml, re.S).group(1)
        out = run(["qemu-img", "info", "-U", "--backing-chain",
                   "--output=json", disk]).stdout
        return [i["filename"] for i in json.loads(out)]

    def boots(vm, n=3):
        wait_for(f"{vm} heartbeats",
                 lambda: len(console_heartbeats(c, vm)) >= n, 180)

    def image_kept():
        assert "tr.raw" in disk_files(dir_b), disk_files(dir_b)
        r = c.ctl("image", "delete", "tr", "--host", "host2", check=False)
        assert r.returncode != 0 and "in use" in r.stderr, r.stderr
        assert "tr.raw" in disk_files(dir_b), disk_files(dir_b)

    # Snapshots, clones and backups of an image VM: about 70 s more, so
    # CI leaves them to the slow suite's images-storage
    # (DROVER_IMAGES_STORAGE=1); without them img3 just goes.
    storage = os.environ.get("DROVER_IMAGES_STORAGE") == "1"

    def snapshot_image_vm():
        c.ctl("snapshot", "create", "img3", "s1", timeout=300)
        ch = chain_of(2, "img3")
        assert ch[-1] == tr_b and len(ch) == 3, ch
        c.ctl("snapshot", "revert", "img3", "s1", timeout=300)
        wait_for("img3 running after the revert",
                 lambda: c.where("img3") == {2: ("yes", "running")}, 60)
        ch = chain_of(2, "img3")
        assert ch[-1] == tr_b, ch
        n = len(console_heartbeats(c, "img3"))
        boots("img3", n + 3)
        image_kept()
    if storage:
        tap.case("an image VM's disk-only snapshot and revert keep the image "
                 "as its backing file", snapshot_image_vm)

    def clone_image_vm():
        # A running VM clones from a snapshot: s1 of the case above.
        c.ctl("vm", "clone", "img3", "img3l", "--linked", "--from-snapshot",
              "s1", "--host", "host2", "--start", timeout=600)
        assert c.where("img3l") == {2: ("yes", "running")}, c.where("img3l")
        boots("img3l")
        ch = chain_of(2, "img3l")
        assert ch[-1] == tr_b, ch
        log(f"linked clone chain: {ch}")
        image_kept()
        c.ctl("vm", "delete", "img3l", "--force")
    if storage:
        tap.case("a linked clone of an image VM (from its snapshot) boots on "
                 "the image", clone_image_vm)

    def backup_image_vm():
        c.ctl("backup", "create", "img3", "--repo", "main", timeout=600)
        out = c.ctl_json("backup", "list", "img3", "--repo", "main")
        ids = [b["id"] for b in out.get("backups", [])]
        assert len(ids) == 1, out
        c.ctl("backup", "restore", ids[0], "--as", "img3r", "--host", "host2",
              "--start", "--repo", "main", timeout=600)
        assert c.where("img3r") == {2: ("yes", "running")}, c.where("img3r")
        boots("img3r")
        log(f"restored chain: {chain_of(2, 'img3r')}")
        image_kept()
        c.ctl("vm", "delete", "img3r", "--force")
        c.ctl("vm", "delete", "img3", "--force")
        assert "tr.raw" in disk_files(dir_b), disk_files(dir_b)
    if storage:
        tap.case("a backup of an image VM restores as a new VM that boots",
                 backup_image_vm)
    else:
        c.ctl("vm", "delete", "img3", "--force")

    def delete_unused():
        c.ctl("vm", "delete", "img1", "--force")
        r = c.ctl("image", "delete", "tq")
        assert "deleted" in r.stdout, r.stdout
        assert "tq.qcow2" not in disk_files(dir_a)
        wait_for("tq gone from the list", lambda: "tq" not in image_hosts(c), 30)
        out = c.ctl("events", "-n", "200", "--json").stdout
        kinds = re.findall(r'"kind":\s*"([^"]+)"', out)
        assert "image.imported" in kinds and "image.deleted" in kinds, kinds
    tap.case("an unused image is deleted; image events", delete_unused)

    def killed_mid_import():
        big = os.path.join(tmp, "big.qcow2")
        run(["qemu-img", "convert", "-O", "qcow2", "-o", "preallocation=metadata",
             qcow2, big])
        with open(big, "ab") as f:  # pieces beyond the first
            f.write(b"\0" * (4 * 1024 * 1024))
        start_agent(c, 1, dir_a, faults="image-import-exit")
        r = c.ctl("image", "import", "big", big, "--host", "host1", check=False)
        assert r.returncode != 0, r.stdout
        files = disk_files(dir_a)
        assert "big.qcow2" not in files, files
        log(f"after the kill: {files}")
        # A seed of a VM this host does not have (a create cut short).
        ghost = os.path.join(c.host_data(1), "disks", "ghost.seed.iso")
        with open(ghost, "wb") as f:
            f.write(b"x")
        start_agent(c, 1, dir_a)
        wait_for("no upload left", lambda: not [f for f in disk_files(dir_a)
                                                 if f.endswith(".import")], 30)
        wait_for("the orphan seed removed", lambda: not os.path.exists(ghost), 30)
        c.ctl("image", "import", "big", big, "--host", "host1")
        assert "big.qcow2" in disk_files(dir_a)
    tap.case("an agent killed mid-import leaves nothing; the retry works; "
             "orphan seeds go at start",
             killed_mid_import)

    def shared_directory():
        start_agent(c, 2, dir_a)  # now both hosts share directory A
        r = c.ctl("image", "import", "shared", raw)
        assert "host host1: image shared imported" in r.stdout, r.stdout
        assert ("host host2: has image shared already (a shared image "
                "directory)") in r.stdout, r.stdout
        wait_for("both hosts report it",
                 lambda: image_hosts(c).get("shared") == ["host1", "host2"], 30)
        r = c.ctl("image", "delete", "shared")
        assert "host host1: image shared deleted" in r.stdout, r.stdout
        assert "shared.raw" not in disk_files(dir_a), disk_files(dir_a)
        wait_for("shared gone", lambda: "shared" not in image_hosts(c), 30)
    tap.case("hosts sharing one image directory get an image once",
             shared_directory)

    def two_uploaders():
        with open(raw, "rb") as f:
            data = f.read(2 * 1024 * 1024)
        half = len(data) // 2
        ag = Agents(c, pb)

        def piece(offset, chunk, upload="", last=False):
            req = pb.ImageChunk(name="dup", size=len(data), offset=offset,
                                data=chunk, upload=upload, last=last)
            return ag.unary(1, "ImportImage", req, pb.ImageChunkReply)

        a = piece(0, data[:half]).upload
        assert re.fullmatch(r"[0-9a-f]{16}", a), a
        for bad in ("", "../../etc/passwd", "0" * 15):
            try:
                piece(half, data[half:], upload=bad, last=True)
                raise AssertionError(f"a piece with upload id {bad!r} was taken")
            except grpc.RpcError as e:
                assert "upload id" in e.details(), e.details()
        b = piece(0, data[:half]).upload
        assert b != a
        try:  # the first uploader was superseded
            piece(half, data[half:], upload=a, last=True)
            raise AssertionError("a superseded upload went on")
        except grpc.RpcError as e:
            assert "no upload" in e.details(), e.details()
        r = piece(half, data[half:], upload=b, last=True)
        assert r.image.format == "raw" and r.image.size == len(data), r
        files = disk_files(dir_a)
        assert "dup.raw" in files and not [f for f in files if f.endswith(".import")], files
        c.ctl("image", "delete", "dup", "--host", "host1")
    tap.case("two uploaders of one name never share a file (upload ids)",
             two_uploaders)


def main():
    c = two_host_cluster(CLUSTER_DIR)
    base = c.env["DROVER_CLUSTER_DIR"]
    c.image_dirs = (base + "-images-a", base + "-images-b")
    for d in c.image_dirs:
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        os.chmod(d, 0o755)
    c.env["DROVER_IMAGE_DIR"] = c.image_dirs[0]
    c.env["DROVER_AGENT_ARGS"] = ("--backup-repo main="
                                  + os.path.join(base, "repo-main"))
    try:
        return run_on_cluster(c, cases, with_pb=True, tmp_prefix="drover-images-")
    finally:
        for d in c.image_dirs:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
