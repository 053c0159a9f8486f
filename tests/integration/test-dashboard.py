#!/usr/bin/python3
"""The web dashboard in a real browser, against the real local cluster.

The scheduler serves the dashboard (--http-listen, HTTPS with its
certificate from the cluster's CA). Debian's chromium runs headless under
chromedriver, driven through the W3C WebDriver HTTP API with Python's
standard library, with flags that keep it off the network. Checks, on the
DOM (not only HTTP statuses):
- without a login the page shows how to log in and no host at all, and
  the API answers 401;
- a token from `droverctl dashboard-token` logs in once (HttpOnly, Secure,
  SameSite=Strict session cookie; the token does not work twice); the page
  lists both hosts and the VM on its host;
- a migration started with `droverctl migrate` shows in the page as a job
  row with a phase and the remaining bytes, and ends with the VM shown on
  the other host and a row in the migration history;
- actions by clicking, as an operator: the page migrates the VM back to
  host1 and snapshots a second VM (picked with its row's button); the
  job shows in the page (the form's answer, the job's row or the
  migration history) and droverctl sees the VM moved and the snapshot;
  then a backup of the second VM and a drain of host2 (then undrained);
- client certificates: an operator's and a viewer's may read the API, only
  the operator may start a migration, a drain, a snapshot or a backup;
  bad input (400), unknown VM or host (404) are refused and change
  nothing;
- bad input (unknown path, huge body, huge header, no login) gets its
  status or a closed connection, and browsers that never read their event
  stream or vanish do not stall the scheduler.

Screenshots go to <build>/meson-logs/dashboard/ (no-login.png, hosts.png,
migrating.png, migrated.png, actions.png). Prints TAP.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from drover_harness import (BUILD, GUEST_CMDLINE, GUEST_DIR, ROOT,  # noqa: E402
                            Cluster, log, run_on_cluster, wait_for)

KERNEL = os.path.join(GUEST_DIR, "vmlinuz")
INITRD = os.path.join(GUEST_DIR, "initramfs.img")
# A guest that keeps writing 32 MiB of memory, and a link limit: the
# migration takes several seconds, long enough to be seen in the page.
CMDLINE = GUEST_CMDLINE + " drover.hb_ms=10 drover.ws_mib=32"
VM = "dash-1"
# A second VM, with a disk: snapshots are of disks.
VM2 = "dash-2"
SNAP = "from-page"
HTTP_PORT = 19201
SHOTS = os.path.join(BUILD, "meson-logs", "dashboard")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# No network but loopback: nothing to phone home to, nothing to update.
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--disable-extensions",
               "--no-default-browser-check", "--metrics-recording-only",
               "--disable-domain-reliability", "--window-size=1280,1600"]


def free_port(lo=19250, hi=19299):
    for port in range(lo, hi + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise AssertionError("no free port for chromedriver")


class WebDriver:
    """The few W3C WebDriver commands the test needs, over plain HTTP."""

    def __init__(self, user_data_dir):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}", "--allowed-ips=127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_for("chromedriver", lambda: self._ready(), timeout=30, interval=0.2)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            # The scheduler's certificate is from the cluster's own CA.
            "acceptInsecureCerts": True,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": CHROME_ARGS + [f"--user-data-dir={user_data_dir}"],
            }}}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            return self._call("GET", "/status")["ready"]
        except OSError:
            return False

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise AssertionError(f"webdriver {method} {path}: {e.read()[:500]!r}")

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def click(self, css):
        """A real click (WebDriver's, with its checks that the element is
        shown and not covered) on the first element matching CSS."""
        for attempt in range(5):
            ref = self.cmd("POST", "/element", {"using": "css selector", "value": css})
            try:
                self.cmd("POST", f"/element/{list(ref.values())[0]}/click", {})
                return
            except AssertionError as e:
                # The page redrew its rows between finding and clicking.
                if "stale element" not in str(e) or attempt == 4:
                    raise

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))
        log(f"screenshot {path}")

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except Exception:  # noqa: BLE001 - the browser may be gone already
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# What the page shows, read from its DOM in one go.
READ_PAGE = """
const rows = sel => [...document.querySelectorAll(sel)];
const text = (r, cls) => { const c = r.querySelector('td.' + cls); return c ? c.textContent : null; };
return {
  login: !document.getElementById('login').hidden,
  cluster: !document.getElementById('cluster').hidden,
  hosts: rows('#hosts tbody tr').map(r => ({name: r.dataset.host,
      state: r.querySelector('td.state').textContent})),
  vms: rows('#vms tbody tr').map(r => ({name: r.dataset.vm, host: text(r, 'host'),
      state: r.querySelector('td.state').textContent})),
  jobs: rows('#jobs tbody tr').map(r => ({id: r.dataset.job, kind: r.dataset.kind,
      vm: r.dataset.vm, phase: text(r, 'phase'), remaining: text(r, 'remaining'),
      round: text(r, 'round'), eta: text(r, 'eta')})),
  migrations: rows('#migrations tbody tr').map(r => r.dataset.job),
  live: document.getElementById('live').classList.contains('on'),
  who: document.getElementById('who').textContent,
  text: document.body.innerText,
};
"""


def https_context(cert_dir=None):
    ctx = ssl.create_default_context(cafile=os.path.join(cert_dir or "", "ca.pem")) \
        if cert_dir else ssl.create_default_context()
    ctx.check_hostname = False
    if cert_dir:
        ctx.load_cert_chain(os.path.join(cert_dir, "cert.pem"), os.path.join(cert_dir, "key.pem"))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http(url, method="GET", body=None, headers=None, cert_dir=None, timeout=10):
    """(status, body bytes) of one request; HTTP errors are results."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=https_context(cert_dir), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def cases(c, tap, tmp):
    base = f"https://127.0.0.1:{HTTP_PORT}"
    pki = os.path.join(c.env["DROVER_CLUSTER_DIR"], "pki")
    browser = WebDriver(os.path.join(tmp, "chromium-profile"))

    def page():
        return browser.js(READ_PAGE)

    def setup_vm():
        c.ctl("vm", "create", VM, "--vcpus", "1", "--memory", "256M", "--host", "host1",
              "--kernel", KERNEL, "--initrd", INITRD, "--cmdline", CMDLINE)
        c.ctl("vm", "create", VM2, "--vcpus", "1", "--memory", "128M", "--disk", "32M",
              "--host", "host1", "--kernel", KERNEL, "--initrd", INITRD,
              "--cmdline", GUEST_CMDLINE)
        wait_for("VMs running", lambda: all(
            c.vms_by_name()[v]["state"] == "running" for v in (VM, VM2)))

    def no_login():
        browser.get(base + "/")
        p = wait_for("the login help", lambda: (lambda x: x if x["login"] else None)(page()),
                     timeout=30)
        browser.screenshot("no-login.png")
        assert not p["cluster"], p
        assert p["hosts"] == [] and p["vms"] == [], p
        assert "host1" not in p["text"] and VM not in p["text"], p["text"]
        assert "droverctl dashboard-token" in p["text"], p["text"]
        for path in ("/api/state", "/api/events"):
            status, _ = http(base + path)
            assert status == 401, (path, status)

    def token_login():
        token = c.ctl("dashboard-token").stdout.strip()
        assert len(token) == 64, token
        browser.get(f"{base}/?token={token}")
        p = wait_for("hosts and the VM in the page", lambda: (lambda x: x if (
            {h["name"] for h in x["hosts"]} >= {"host1", "host2"}
            and any(v["name"] == VM and v["host"] == "host1" for v in x["vms"])) else None)(page()),
            timeout=30)
        assert browser.js("return location.pathname + location.search") == "/", \
            "the token stays in the address bar"
        assert all(h["state"] == "up" for h in p["hosts"]), p["hosts"]
        assert p["cluster"] and not p["login"], p
        assert "operator" in p["who"], p["who"]
        wait_for("the live dot", lambda: page()["live"], timeout=20)
        browser.screenshot("hosts.png")
        cookies = browser.cmd("GET", "/cookie")
        session = [k for k in cookies if k["name"] == "drover_session"]
        assert session, cookies
        assert session[0]["httpOnly"] and session[0]["secure"], session
        assert session[0].get("sameSite") == "Strict", session
        # One use only.
        status, _ = http(f"{base}/?token={token}")
        assert status == 401, status

    def migration_in_page():
        seen = []
        proc = subprocess.Popen([os.path.join(BUILD, "cli", "droverctl"), "migrate", VM,
                                 "--to", "host2", "--bandwidth", "200"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=c.env)
        shot = False
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            p = page()
            for j in p["jobs"]:
                if j["kind"] == "migrate" and j["vm"] == VM:
                    seen.append(j)
                    if not shot and j["phase"] == "precopy" and j["remaining"] not in ("-", None):
                        browser.screenshot("migrating.png")
                        shot = True
            time.sleep(0.2)
        out = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, out
        log(out.strip().splitlines()[-1] if out.strip() else "")
        phases = sorted({j["phase"] for j in seen})
        log(f"{len(seen)} job rows seen, phases {phases}, "
            f"remaining {[j['remaining'] for j in seen][:6]}")
        with_progress = [j for j in seen if j["phase"] not in ("-", None)
                         and j["remaining"] not in ("-", None)]
        assert with_progress, seen
        assert shot, "no screenshot in pre-copy"
        p = wait_for("the VM on host2 in the page", lambda: (lambda x: x if any(
            v["name"] == VM and v["host"] == "host2" for v in x["vms"])
            and not x["jobs"] else None)(page()), timeout=60)
        assert p["migrations"], p
        browser.screenshot("migrated.png")

    def action_result(action):
        """The form's answer once it has one: (text, job id or None, whether
        the job's row was in the Jobs table then)."""
        def answered():
            r = browser.js(f"const e = document.getElementById('{action}-result');"
                           "const id = e.dataset.job || null;"
                           "return [e.textContent, id, !!id && [...document.querySelectorAll("
                           "'#jobs tbody tr')].some(r => r.dataset.job === id)];")
            return r if r[0] and r[0] != "starting…" else None
        text, job, row = wait_for(f"the {action} form's answer", answered, timeout=30)
        if job and not row:
            # The page lists the job as it shows the answer; give the
            # table a moment all the same.
            try:
                row = bool(wait_for(f"the {action} job's row", lambda: browser.js(
                    "return [...document.querySelectorAll('#jobs tbody tr')].some("
                    f"r => r.dataset.job === '{job}') || null;"), timeout=10,
                    interval=0.2))
            except AssertionError:
                row = False
        return text, job, row

    def jobs_by_id():
        return {j["id"]: j for j in c.ctl_json("jobs")["jobs"]}

    def actions_by_clicking():
        wait_for("the action forms", lambda: browser.js(
            "return !document.getElementById('actions').hidden && "
            f"[...document.querySelectorAll('#migrate-vm option')].some(o => o.value === '{VM}')"),
            timeout=30)
        # Migrate back to host1: the VM's own row picks it, then the form.
        browser.click(f'#vms tr[data-vm="{VM}"] button[data-pick="migrate-vm"]')
        assert browser.js("return document.getElementById('migrate-vm').value") == VM
        browser.js("document.getElementById('migrate-to').value = 'host1';")
        browser.click("#migrate-go")
        text, job, row = action_result("migrate")
        assert job, text
        log(f"migrate form: {text}; its row in the Jobs table: {row}")
        rows = []

        def moved():
            p = page()
            rows.extend(j for j in p["jobs"] if j["id"] == job)
            return p if (any(v["name"] == VM and v["host"] == "host1" for v in p["vms"])
                         and job in p["migrations"]) else None
        wait_for("the VM on host1 in the page, the job in the history", moved, timeout=180)
        log(f"{len(rows)} live rows of the job, phases {sorted({j['phase'] for j in rows})}")
        assert row or rows, "the job never showed in the Jobs table"
        v = c.vms_by_name()[VM]
        assert v["host"] == "host1" and v["state"] == "running", v
        assert jobs_by_id()[job]["state"] == "done", jobs_by_id()[job]
        # A snapshot of the second VM: its row's button picks it.
        browser.click(f'#vms tr[data-vm="{VM2}"] button[data-pick="snapshot-vm"]')
        assert browser.js("return document.getElementById('snapshot-vm').value") == VM2
        browser.js(f"document.getElementById('snapshot-name').value = '{SNAP}';")
        browser.click("#snapshot-go")
        text, job, row = action_result("snapshot")
        assert job, text
        # A disk-only snapshot may be over (job.ended takes its row away)
        # before the test looks: then the row is not required.
        assert row or jobs_by_id()[job]["state"] in ("done", "failed"), \
            "the snapshot job is not in the Jobs table"
        log(f"snapshot form: {text}; its row in the Jobs table: {row}")
        browser.screenshot("actions.png")
        wait_for("the snapshot job done", lambda: jobs_by_id()[job]["state"] in ("done", "failed"),
                 timeout=120)
        assert jobs_by_id()[job]["state"] == "done", jobs_by_id()[job]
        assert SNAP in c.ctl("snapshot", "list", VM2).stdout
        wait_for("the job gone from the Jobs table",
                 lambda: all(j["id"] != job for j in page()["jobs"]), timeout=30)
        # A refusal shows its reason in the page: the name is taken now.
        browser.js(f"document.getElementById('snapshot-vm').value = '{VM2}';"
                   f"document.getElementById('snapshot-name').value = '{SNAP}';")
        browser.click("#snapshot-go")
        text, job, _ = action_result("snapshot")
        assert job is None and text.startswith("refused:") and SNAP in text, text
        # A backup of the same VM into the hosts' repository (the field
        # empty: the one its host reports).
        browser.click(f'#vms tr[data-vm="{VM2}"] button[data-pick="backup-vm"]')
        browser.click("#backup-go")
        text, job, row = action_result("backup")
        # A small disk's backup may be over (job.ended takes its row away)
        # before the test looks: then the row is not required.
        assert job and (row or jobs_by_id()[job]["state"] in ("done", "failed")), text
        log(f"backup form: {text}; its row in the Jobs table: {row}")
        wait_for("the backup job done", lambda: jobs_by_id()[job]["state"] in ("done", "failed"),
                 timeout=120)
        assert jobs_by_id()[job]["state"] == "done", jobs_by_id()[job]
        backups = c.ctl_json("backup", "list", VM2, "--repo", "main")["backups"]
        assert len(backups) == 1, backups
        # Drain host2 (nothing runs there now): its row's button picks it.
        browser.click('#hosts tr[data-host="host2"] button[data-pick="drain-host"]')
        browser.click("#drain-go")
        text, job, row = action_result("drain")
        assert job, text
        log(f"drain form: {text}")
        wait_for("host2 in maintenance in the page", lambda: any(
            h["name"] == "host2" and "maintenance" in h["state"] for h in page()["hosts"]),
            timeout=60)
        assert c.hosts_by_name()["host2"].get("maintenance") == "maintenance"
        assert jobs_by_id()[job]["kind"] == "drain"
        c.ctl("host", "undrain", "host2")

    def certificates():
        subprocess.run([os.path.join(ROOT, "scripts", "pki"), pki, "viewer", "dash-viewer"],
                       check=True, capture_output=True)
        status, body = http(base + "/api/state", cert_dir=os.path.join(pki, "droverctl"))
        assert status == 200 and json.loads(body)["me"]["role"] == "operator", (status, body)
        status, body = http(base + "/api/state", cert_dir=os.path.join(pki, "dash-viewer"))
        state = json.loads(body)
        assert status == 200 and state["me"]["role"] == "viewer", (status, body)
        assert not state["me"]["may_act"], state["me"]
        migrate = json.dumps({"vm": VM, "to": "host1"}).encode()
        hdr = {"Content-Type": "application/json"}
        status, body = http(base + "/api/migrate", "POST", migrate, hdr,
                            cert_dir=os.path.join(pki, "dash-viewer"))
        assert status == 403, (status, body)
        # A host's certificate is no login for people.
        status, _ = http(base + "/api/state", cert_dir=os.path.join(pki, "host1"))
        assert status == 401, status
        # The operator may; a bad request is refused with its reason.
        status, body = http(base + "/api/migrate", "POST", b'{"vm": "nope-1"}', hdr,
                            cert_dir=os.path.join(pki, "droverctl"))
        assert status == 404, (status, body)
        status, body = http(base + "/api/migrate", "POST", b"vm=x",
                            {"Content-Type": "application/x-www-form-urlencoded"},
                            cert_dir=os.path.join(pki, "droverctl"))
        assert status == 415, (status, body)
        # Drain, snapshot, backup: the viewer may not; bad input, unknown
        # names; and afterwards nothing has changed.
        jobs_before = set(jobs_by_id())
        snaps_before = c.ctl("snapshot", "list", VM2).stdout
        refusals = [
            ("dash-viewer", "drain", {"host": "host2"}, 403),
            ("dash-viewer", "snapshot", {"vm": VM2, "name": "v1"}, 403),
            ("dash-viewer", "backup", {"vm": VM2, "repo": ""}, 403),
            ("droverctl", "drain", {"host": "nohost"}, 404),
            ("droverctl", "drain", {"host": "../host1"}, 400),
            ("droverctl", "drain", {"host": 7}, 400),
            ("droverctl", "drain", {}, 400),
            ("droverctl", "snapshot", {"vm": "nope-1", "name": "s1"}, 404),
            ("droverctl", "snapshot", {"vm": VM2, "name": "a/b"}, 400),
            ("droverctl", "snapshot", {"vm": VM2, "name": "x" * 300}, 400),
            ("droverctl", "snapshot", {"vm": VM2}, 400),
            ("droverctl", "backup", {"vm": "nope-1", "repo": ""}, 404),
            ("droverctl", "backup", {"vm": VM2, "repo": "../etc"}, 400),
            ("droverctl", "backup", {"vm": VM2, "repo": "other"}, 404),
        ]
        for who, action, req, want in refusals:
            status, body = http(base + "/api/" + action, "POST", json.dumps(req).encode(),
                                hdr, cert_dir=os.path.join(pki, who))
            assert status == want, (who, action, req, status, body)
            assert json.loads(body)["error"], body
        status, body = http(base + "/api/snapshot", "POST", b"[1, 2]", hdr,
                            cert_dir=os.path.join(pki, "droverctl"))
        assert status == 400, (status, body)
        assert set(jobs_by_id()) == jobs_before
        assert c.ctl("snapshot", "list", VM2).stdout == snaps_before
        assert not c.hosts_by_name()["host2"].get("maintenance"), c.hosts_by_name()["host2"]

    def bad_input():
        assert http(base + "/nope")[0] == 404
        assert http(base + "/static/nope.js")[0] == 404
        assert http(base + "/api/state", "DELETE")[0] == 405
        status, _ = http(base + "/api/migrate", "POST", b"x" * (1 << 20),
                         {"Content-Type": "application/json"})
        assert status == 413, status
        # Headers over libsoup's limit: the connection is closed.
        try:
            status, _ = http(base + "/api/state", headers={"X-Big": "a" * 200000})
        except (OSError, urllib.error.URLError) as e:
            status = f"closed ({type(e).__name__})"
        log(f"200 kB header: {status}")
        assert status != 200
        assert http(base + "/api/state")[0] == 401  # still serving

    def slow_browsers():
        # urllib follows the redirect without the cookie: take it ourselves.
        conn = socket.create_connection(("127.0.0.1", HTTP_PORT))
        tls = https_context().wrap_socket(conn)
        tls.sendall(f"GET /?token={c.ctl('dashboard-token').stdout.strip()} HTTP/1.1\r\n"
                    f"Host: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = tls.recv(65536).decode(errors="replace")
        tls.close()
        cookie = [x.split(":", 1)[1].split(";")[0].strip()
                  for x in head.split("\r\n") if x.lower().startswith("set-cookie:")][0]
        streams = []
        for i in range(4):
            s = https_context().wrap_socket(socket.create_connection(("127.0.0.1", HTTP_PORT)))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode())
            streams.append(s)
        # Two vanish at once, two never read.
        for s in streams[:2]:
            s.close()
        for _ in range(3):
            c.ctl("vm", "stop", VM, "--force")
            c.ctl("vm", "start", VM)
        t0 = time.monotonic()
        status, body = http(base + "/api/state", headers={"Cookie": cookie})
        took = time.monotonic() - t0
        assert status == 200, (status, body)
        assert took < 5, took
        c.ctl("hosts")
        for s in streams[2:]:
            s.close()

    try:
        tap.case("a VM to look at", setup_vm)
        tap.case("without a login: no cluster in the page, 401 from the API", no_login)
        tap.case("token login: cookie, hosts and the VM in the page", token_login)
        tap.case("a migration from the CLI shows live and ends on host2", migration_in_page)
        tap.case("by clicking: a migration back to host1, a snapshot, a backup, a drain",
                 actions_by_clicking)
        tap.case("client certificates: operator acts, viewer looks, host refused", certificates)
        tap.case("bad path, method, body, header: statuses, still serving", bad_input)
        tap.case("browsers that never read or vanish do not stall the scheduler", slow_browsers)
    finally:
        browser.quit()


if __name__ == "__main__":
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        print("1..0 # SKIP chromium and chromium-driver are not installed (scripts/deps)")
        sys.exit(0)
    cluster = Cluster(hosts=2)
    # A backup repository both agents reach (the backup action).
    repo = os.path.join(cluster.env["DROVER_CLUSTER_DIR"], "repo-dashboard")
    cluster.env["DROVER_AGENT_ARGS"] = (cluster.env.get("DROVER_AGENT_ARGS", "")
                                        + f" --backup-repo main={repo}").strip()
    cluster.env["DROVER_SCHEDULER_ARGS"] = (
        cluster.env.get("DROVER_SCHEDULER_ARGS", "") + f" --http-listen 127.0.0.1:{HTTP_PORT}")
    sys.exit(run_on_cluster(cluster, cases, tmp_prefix="drover-dashboard-"))
