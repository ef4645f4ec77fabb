"""Ports from the OS, held until the process that needs them binds them.

A port picked, released and used later can be taken by anything in between. Here a port stays
bound by the test (SO_REUSEADDR, not listening) while the server it is for starts: the OS hands
it to nobody else, and servers that bind with SO_REUSEADDR (Kafka's JVM, Prometheus, Python's
http.server) can still take it. A held port that never listens refuses every connection, which
is what a test needs for "nothing answers here" (port 9 may well answer on some machines).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


def _hold(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def held_ports(count: int = 1, *, consecutive: bool = False) -> Iterator[list[int]]:
    """*count* free ports (consecutive ones with *consecutive*, e.g. Kafka's client and
    controller ports), held until the block ends."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            if consecutive and held:
                try:
                    held.append(_hold(held[-1].getsockname()[1] + 1))
                except OSError:  # the next port is taken: start the run again elsewhere
                    for sock in held:
                        sock.close()
                    held.clear()
                continue
            held.append(_hold())
        yield [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port on 127.0.0.1 where every connection is refused while the block runs."""
    with held_ports(1) as (port,):
        yield port
