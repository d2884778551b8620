"""The app under a real uvicorn server in a thread, and raw HTTP/1.1 over a socket."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

START_TIMEOUT_SECONDS = 10.0
SOCKET_TIMEOUT_SECONDS = 10.0


@contextmanager
def serve(app: FastAPI) -> Iterator[tuple[str, int]]:
    """Run ``app`` under uvicorn on a free loopback port until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield host, port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def read_response(conn: socket.socket) -> tuple[int, bytes]:
    """Read one response (status and body) until the server closes or its length is read."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        None,
    )
    while length is not None and len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def connect(address: tuple[str, int]) -> socket.socket:
    """A TCP connection to the server, with a timeout so a stuck server fails the test."""
    return socket.create_connection(address, timeout=SOCKET_TIMEOUT_SECONDS)
