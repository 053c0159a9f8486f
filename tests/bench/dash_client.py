#!/usr/bin/python3
"""The dashboard page and a Prometheus server, as tests/bench/report plays
them: GET /api/state every STATE_S seconds (with the page's session
cookie) and GET /metrics every SCRAPE_S seconds, each over ONE persistent
HTTP/1.1 connection, as a browser and Prometheus keep theirs (a new
process and TLS handshake per request would put the harness's own cost
on the machine the scheduler shares). Runs until SIGTERM, then prints
what it did on stdout:

    dash-client: state=N (BYTES bytes) metrics=M (BYTES bytes) errors=E reconnects=R
"""
import argparse
import http.client
import signal
import ssl
import sys
import time
import urllib.parse


class Getter:
    def __init__(self, url, headers):
        u = urllib.parse.urlsplit(url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port
        self.path = u.path or "/"
        self.headers = headers
        self.conn = None
        self.count = self.bytes = self.errors = self.reconnects = 0

    def connect(self):
        if self.https:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # loopback, the bench's own PKI
            self.conn = http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=30)
        else:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def get(self):
        for attempt in (0, 1):
            if self.conn is None:
                self.connect()
                if self.count or self.errors:
                    self.reconnects += 1
            try:
                self.conn.request("GET", self.path, headers=self.headers)
                r = self.conn.getresponse()
                body = r.read()
                if r.status != 200:
                    self.errors += 1
                    return
                self.count += 1
                self.bytes += len(body)
                return
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
        self.errors += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--state", required=True, help="https://.../api/state")
    ap.add_argument("--cookie", required=True)
    ap.add_argument("--metrics", default="", help="http://.../metrics ('' = none)")
    ap.add_argument("--state-s", type=float, default=5.0)
    ap.add_argument("--scrape-s", type=float, default=1.0)
    a = ap.parse_args()

    state = Getter(a.state, {"Cookie": a.cookie})
    metrics = Getter(a.metrics, {}) if a.metrics else None
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    start = time.monotonic()
    next_state = start + a.state_s
    next_scrape = start + a.scrape_s
    while not stop:
        now = time.monotonic()
        if metrics and now >= next_scrape:
            metrics.get()
            next_scrape += a.scrape_s
        if now >= next_state:
            state.get()
            next_state += a.state_s
        wake = min(next_state, next_scrape if metrics else next_state)
        time.sleep(max(0.0, min(0.2, wake - time.monotonic())))
    m = metrics or Getter("http://127.0.0.1:1/", {})
    print("dash-client: state=%d (%d bytes) metrics=%d (%d bytes) errors=%d reconnects=%d"
          % (state.count, state.bytes, m.count, m.bytes, state.errors + m.errors,
             state.reconnects + m.reconnects))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
