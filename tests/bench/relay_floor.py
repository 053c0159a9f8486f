#!/usr/bin/python3
"""The cheapest relay with the topology of Drover's channel, for one
connection: unix socket -> TCP -> unix socket, no TLS, no frames, no
checks, bytes moved with splice(2) through a pipe (no copy in user space).

tests/bench/migrate --relay runs one end in each host's mount namespace
and sends a plain libvirt migration's memory stream through them: what any
agent-carried stream costs on this machine before the channel does
anything of its own.

  relay_floor.py src UNIX_PATH HOST PORT   listen on UNIX_PATH; on the
                                           connection, connect to HOST:PORT
  relay_floor.py dst HOST PORT UNIX_PATH   listen on HOST:PORT; on the
                                           connection, connect to UNIX_PATH

Prints "ready" once listening, relays both directions of one connection
(QEMU's return path runs backwards), then exits. Loopback only.
"""
import fcntl
import ipaddress
import os
import socket
import sys
import threading

CHUNK = 1 << 20
F_SETPIPE_SZ = 1031


def pump(a, b, done):
    r, w = os.pipe()
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass
    try:
        while True:
            n = os.splice(a.fileno(), w, CHUNK)
            if n == 0:
                break
            while n > 0:
                n -= os.splice(r, b.fileno(), n)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        os.close(r)
        os.close(w)
        done.release()


def relay(x, y):
    done = threading.Semaphore(0)
    for a, b in ((x, y), (y, x)):
        threading.Thread(target=pump, args=(a, b, done), daemon=True).start()
    done.acquire()
    done.acquire()


def loopback(host):
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit("relay_floor: %s is not a loopback address" % host)
    return host


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("src", "dst"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "src":
        path, host, port = sys.argv[2], loopback(sys.argv[3]), int(sys.argv[4])
        if os.path.exists(path):
            os.unlink(path)
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(path)
        ls.listen(1)
        print("ready", flush=True)
        x, _ = ls.accept()
        ls.close()
        os.unlink(path)
        y = socket.create_connection((host, port))
    else:
        host, port, path = loopback(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, port))
        ls.listen(1)
        print("ready", flush=True)
        x, _ = ls.accept()
        ls.close()
        y = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        y.connect(path)
    relay(x, y)


if __name__ == "__main__":
    main()
