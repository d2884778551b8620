"""Loopback ports for servers a test starts later (another process, a restart).

A port that was free a moment ago can be taken before the server binds it: every
outgoing connection of the other xdist worker takes an ephemeral port from the same
range. A reservation keeps a socket bound to the port (SO_REUSEADDR and SO_REUSEPORT,
never listening) until the test process ends: the kernel hands the port to no one
else, and servers that set either option (uvicorn, redis-server, pynetdicom, the
gateway's shared port) still bind and listen on it.
"""

from __future__ import annotations

import socket

_reservations: list[socket.socket] = []


def reserve_port() -> int:
    """A loopback port nothing listens on, kept from every other process's use."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    _reservations.append(sock)
    port: int = sock.getsockname()[1]
    return port
