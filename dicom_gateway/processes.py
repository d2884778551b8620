"""Run the gateway as one or several processes sharing the DICOM port (SO_REUSEPORT).

pynetdicom serves each association in a thread, so one process is bound by the
GIL. With ``WORKLIST_GATEWAY_PROCESSES=N`` the parent serves too and starts N-1
children; the kernel spreads new associations across them. Nothing is shared
but PostgreSQL and the storage directory, which both already serialise correctly.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from dicom_gateway.server import build_gateway
from worklist.config import ConfigError, Settings

log = logging.getLogger("dicom_gateway")


def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM (or until a child process dies); return an exit code."""
    processes = settings.gateway_processes
    if processes > 1 and settings.gateway_port == 0:
        raise ConfigError("WORKLIST_GATEWAY_PROCESSES > 1 needs a fixed WORKLIST_GATEWAY_PORT")
    if processes > 1:
        settings = settings.model_copy(update={"gateway_reuse_port": True})
    gateway = build_gateway(settings)
    stopping = threading.Event()
    children: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        # Only a flag: the main thread stops everything. A handler that shut the gateway
        # down itself could interrupt start() between bind and the acceptor's start, and
        # wait for that acceptor forever.
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    gateway.start()
    env = {
        **os.environ,
        "WORKLIST_GATEWAY_PROCESSES": "1",
        "WORKLIST_GATEWAY_REUSE_PORT": "true",
        "WORKLIST_GATEWAY_PORT": str(gateway.port),
    }
    for _ in range(processes - 1):
        if stopping.is_set():
            break
        children.append(subprocess.Popen([sys.executable, "-m", "dicom_gateway"], env=env))
    if children:
        threading.Thread(target=_watch_children, args=(children, stopping), daemon=True).start()
        log.info("gateway processes started", extra={"processes": processes})
    stopping.wait()
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    gateway.shutdown()
    for child in children:
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed else 0


def _watch_children(children: list[subprocess.Popen[bytes]], stopping: threading.Event) -> None:
    """If a child dies on its own, stop everything so the supervisor restarts us."""
    while not stopping.is_set():
        for child in children:
            if child.poll() is not None and not stopping.is_set():
                log.error("gateway child process died", extra={"returncode": child.returncode})
                stopping.set()
                return
        stopping.wait(0.5)
