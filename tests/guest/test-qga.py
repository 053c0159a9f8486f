#!/usr/bin/python3
"""The test guest's QEMU guest agent protocol, on the host: drover-guest
--qga-stdio reads requests on stdin and answers on stdout (its console
lines go to stderr). Prints TAP."""
import json
import subprocess
import sys

EXE = sys.argv[1]


def talk(data):
    p = subprocess.run([EXE, "--qga-stdio"], input=data, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, p
    return p.stdout, p.stderr.decode()


def answers(data):
    out, _ = talk(data)
    return [json.loads(line) for line in out.decode().splitlines()]


def t_sync():
    a = answers(b'{"execute":"guest-sync","arguments":{"id":1234}}\n'
                b'{"execute": "guest-sync", "arguments": {"id": -5}}')
    assert a == [{"return": 1234}, {"return": -5}], a


def t_sync_delimited():
    out, _ = talk(b'\xff\xff{"execute":"guest-sync-delimited","arguments":{"id":99}}')
    assert out == b'\xff{"return": 99}\n', out


def t_reset():
    # A half request, then 0xFF: the half is dropped, the next one answered.
    a = answers(b'{"execute":"guest-sy\xff{"execute":"guest-ping"}')
    assert a == [{"return": {}}], a


def t_ping_info():
    a = answers(b'{"execute":"guest-ping"}{"execute":"guest-info"}')
    assert a[0] == {"return": {}}, a
    names = [c["name"] for c in a[1]["return"]["supported_commands"]]
    for n in ("guest-ping", "guest-sync-delimited", "guest-fsfreeze-freeze",
              "guest-network-get-interfaces"):
        assert n in names, names


def t_interfaces():
    a = answers(b'{"execute":"guest-network-get-interfaces"}')
    ifs = {i["name"]: i for i in a[0]["return"]}
    assert "lo" in ifs, ifs
    lo = [x for x in ifs["lo"]["ip-addresses"] if x["ip-address-type"] == "ipv4"]
    assert lo and lo[0]["ip-address"] == "127.0.0.1" and lo[0]["prefix"] == 8, ifs


def t_freeze():
    out, err = talk(b'{"execute":"guest-fsfreeze-status"}{"execute":"guest-fsfreeze-freeze"}'
                    b'{"execute":"guest-fsfreeze-status"}{"execute":"guest-fsfreeze-freeze"}'
                    b'{"execute":"guest-fsfreeze-thaw"}{"execute":"guest-fsfreeze-thaw"}'
                    b'{"execute":"guest-fsfreeze-status"}')
    a = [json.loads(x) for x in out.decode().splitlines()]
    assert a[0] == {"return": "thawed"} and a[1] == {"return": 1}, a
    assert a[2] == {"return": "frozen"} and "error" in a[3], a
    assert a[4] == {"return": 1} and a[5] == {"return": 0}, a
    assert a[6] == {"return": "thawed"}, a
    assert err.count("DROVER-GUEST fsfreeze frozen") == 1, err
    assert err.count("DROVER-GUEST fsfreeze thawed") == 1, err


def t_errors():
    a = answers(b'{"execute":"guest-exec","arguments":{"path":"/bin/sh"}}\n'
                b'not json\n'
                b'{"arguments":{}}\n'
                b'{"execute":"guest-sync"}\n'
                b'{"execute":"guest-ping",}\n'
                b'{"execute":"guest-ping","arguments":{"x":[1,{"a":"}\\"{"}],"y":null}}')
    assert a[0]["error"]["class"] == "CommandNotFound", a
    for i in (1, 2, 3, 4):
        assert a[i]["error"]["class"] == "GenericError", (i, a)
    assert a[5] == {"return": {}}, a


def t_limits():
    # Nesting past the depth cap, and a request past the length cap: an
    # error each, and the agent goes on.
    deep = b'{"execute":"guest-ping","arguments":{"x":' + b'[' * 100 + b']' * 100 + b'}}'
    big = b'{"execute":"guest-ping","arguments":{"x":"' + b'a' * 70000 + b'"}}'
    a = answers(deep + big + b'{"execute":"guest-ping"}')
    assert "error" in a[0] and "error" in a[1], a
    assert "too long" in a[1]["error"]["desc"], a
    assert a[2] == {"return": {}}, a


tests = [t_sync, t_sync_delimited, t_reset, t_ping_info, t_interfaces, t_freeze,
         t_errors, t_limits]
failed = 0
for n, t in enumerate(tests, 1):
    try:
        t()
        print(f"ok {n} - {t.__name__}")
    except Exception as e:  # noqa: BLE001 - reported
        failed += 1
        print(f"not ok {n} - {t.__name__}\n# {e!r}")
print(f"1..{len(tests)}")
sys.exit(1 if failed else 0)
