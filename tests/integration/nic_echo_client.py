"""Echo client for the VM-network tests, run inside the cluster's network
namespace: ONE TCP connection to HOST:PORT, a small request every 10 ms,
each echo awaited (30 s at most) and compared. Runs until the file STOP
exists, then prints one JSON line: sent, answered, the answer times (unix
seconds) and any error. Never reconnects: a broken connection is an error."""
import json
import os
import socket
import sys
import time

host, port, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {"sent": 0, "answered": 0, "times": [], "error": None}
try:
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(30)
    i = 0
    while not os.path.exists(stop):
        msg = f"ping {i:08d}\n".encode()
        s.sendall(msg)
        res["sent"] += 1
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(len(msg) - len(got))
            if not chunk:
                raise ConnectionError("connection closed by the guest")
            got += chunk
        if got != msg:
            raise ValueError(f"echo {got!r} != {msg!r}")
        res["answered"] += 1
        res["times"].append(time.time())
        i += 1
        time.sleep(0.01)
    s.close()
except Exception as e:  # noqa: BLE001 - reported to the test
    res["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(res))
