"""Child processes, ports and waiting, with clean-up guaranteed even on Ctrl-C.

Every server is started in its own session (process group) and stopped by signalling the
whole group, so forked children (``storescp --fork``, Orthanc threads, uvicorn workers)
go with it. ``ProcessRegistry.stop_all`` is called from ``finally`` and from ``atexit``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO

DCMTK_STORESCU = "/usr/bin/storescu"
DCMTK_STORESCP = "/usr/bin/storescp"
ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_PLUGINS = Path("/usr/share/orthanc/plugins")

# Debian's DCMTK leaves Nagle's algorithm on unless told otherwise.
DCMTK_ENV = {"TCP_NODELAY": "1"}


class BenchError(RuntimeError):
    """A run failed (lost data, a failed push, a server that did not start)."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours, plus TCP_NODELAY, plus ``extra``."""
    env = dict(os.environ)
    env.update(DCMTK_ENV)
    if extra:
        env.update(extra)
    return env


class Server:
    """A long-running child in its own process group, its output in a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env(env),
            cwd=cwd,
            start_new_session=True,
        )
        REGISTRY.add(self)

    @property
    def pid(self) -> int:
        """The leader's process id (also the process group id)."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the leader runs."""
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        try:
            if self.alive():
                _signal_group(self.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.pid, signal.SIGKILL)
                    self.proc.wait(5)
            # Forked children may outlive the leader: clear the whole group.
            _signal_group(self.pid, signal.SIGKILL)
        finally:
            self._log.close()
            REGISTRY.discard(self)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ProcessRegistry:
    """Every live server, so a crash or Ctrl-C still stops them all."""

    def __init__(self) -> None:
        self._servers: list[Server] = []

    def add(self, server: Server) -> None:
        """Track ``server``."""
        self._servers.append(server)

    def discard(self, server: Server) -> None:
        """Forget ``server`` (it was stopped)."""
        if server in self._servers:
            self._servers.remove(server)

    def stop_all(self) -> None:
        """Stop every tracked server, newest first."""
        for server in reversed(list(self._servers)):
            with contextlib.suppress(Exception):
                server.stop(timeout=5)


REGISTRY = ProcessRegistry()
atexit.register(REGISTRY.stop_all)


def install_signal_handlers() -> None:
    """Turn SIGINT/SIGTERM/SIGHUP into KeyboardInterrupt so ``finally`` blocks run.

    SIGINT is set explicitly: a shell starting us in the background leaves it ignored.
    """

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGINT, _raise)
    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    server: Server | None = None,
    interval: float = 0.05,
) -> None:
    """Poll ``check`` until it is true; fail with the server's log if it died or timed out."""
    deadline = time.monotonic() + timeout
    while True:
        if server is not None and not server.alive():
            raise BenchError(
                f"{server.name} exited (code {server.proc.returncode}) while waiting for {what}:\n"
                f"{server.log_tail()}"
            )
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            tail = f":\n{server.log_tail()}" if server is not None else ""
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def run_checked(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 300,
) -> str:
    """Run a short command to completion; raise with its output when it fails."""
    result = subprocess.run(
        list(argv),
        env=child_env(env),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise BenchError(
            f"command failed ({result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout[-2000:]}{result.stderr[-4000:]}"
        )
    return result.stdout


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first), or None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by a process group.

    Sums every member (zombies too, until reaped) plus the reaped children accounted to
    the leader, so a ``storescp --fork`` child counts whether or not it was reaped yet.
    """
    total_ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _proc_stat(int(entry.name))
        if fields is None or int(fields[2]) != pgid:
            continue
        total_ticks += int(fields[11]) + int(fields[12])
        if int(entry.name) == pgid:
            total_ticks += int(fields[13]) + int(fields[14])
    return total_ticks / _CLOCK_TICKS


def pids_cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process in ``pids``."""
    result: dict[int, float] = {}
    for pid in pids:
        fields = _proc_stat(pid)
        if fields is not None:
            result[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return result
