#!/usr/bin/env python3
"""One TCP connection through ten live migrations (issue 13, suite slow):
a VM with a NIC on a Drover network moves back and forth ten times
between the two hosts of a cluster inside a network namespace while a
client inside the namespace keeps ONE connection to the guest's echo
service, sending every 10 ms: no reconnect, every echo answered, the MACs
kept, and the largest gap between answers logged per move."""
import sys
import time

from drover_harness import log, run_on_cluster
from nic_common import (NET_A, create_vm, moves_with_one_connection,
                        nets_cluster, setup_networks, wait_echo)


def cases(c, tap, tmp):
    def boot():
        setup_networks(c)
        create_vm(c, "a", NET_A, "10.77.1.10", host="host1")
        wait_echo(c, "a")

    if tap.case("a VM with a NIC boots", boot):
        tap.case("one TCP connection open through 10 live moves",
                 moves_with_one_connection, c, tmp, "a", 10)


def main():
    t0 = time.monotonic()
    rc = run_on_cluster(nets_cluster("m", 42), cases,
                        tmp_prefix="drover-vm-nets-moves-")
    log(f"took {time.monotonic() - t0:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
