"""Where a running `worklist up` keeps the addresses of its embedded services.

`worklist up` writes ``DATA_DIR/run/services.json`` once its embedded PostgreSQL and
Redis are up and removes it when it stops. Every other command run with the same
``WORKLIST_DATA_DIR`` and no URL configured reads it, so `worklist site list` or
`worklist user add` administer the stack `up` is running without anyone copying a
socket path out of a log.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_DIR = "run"
STATE_FILE = "services.json"


@dataclass(frozen=True)
class RunningServices:
    """The embedded services of one `worklist up`, as its other commands reach them."""

    pid: int
    database_url: str | None
    redis_url: str | None


class NotRunning(Exception):
    """No live `worklist up` has embedded services for this data directory."""


def state_path(data_dir: Path) -> Path:
    """The services file of ``data_dir``."""
    return data_dir / STATE_DIR / STATE_FILE


def publish(data_dir: Path, services: RunningServices) -> Path:
    """Write the services file atomically (owner-only: the URLs name private sockets)."""
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(services), out)
    partial.replace(path)
    return path


def withdraw(data_dir: Path, pid: int) -> None:
    """Remove the services file if it is still the one process ``pid`` wrote."""
    path = state_path(data_dir)
    with contextlib.suppress(NotRunning):
        if read(data_dir, check_alive=False).pid != pid:
            return
    path.unlink(missing_ok=True)


def read(data_dir: Path, *, check_alive: bool = True) -> RunningServices:
    """The services `worklist up` published for ``data_dir``; NotRunning if none is live."""
    path = state_path(data_dir)
    try:
        raw = json.loads(path.read_text())
        services = RunningServices(
            pid=int(raw["pid"]), database_url=raw["database_url"], redis_url=raw["redis_url"]
        )
    except FileNotFoundError as exc:
        raise NotRunning(f"no `worklist up` is running for {data_dir.resolve()}") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotRunning(f"{path} is unreadable ({type(exc).__name__})") from exc
    if check_alive and not _alive(services.pid):
        raise NotRunning(
            f"the `worklist up` (pid {services.pid}) that started the embedded services for "
            f"{data_dir.resolve()} is no longer running"
        )
    return services


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
