"""Where received datasets are written before they are checked and placed: ``DATA_DIR/tmp``.

Beside the store, so placing a file is an atomic rename on the same filesystem. Each
gateway process writes in a directory of its own, locked (``flock``) while it runs;
at start-up a process removes what dead processes left behind (an association killed
mid-transfer, a crash), never the files of a live sibling sharing the data directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from pathlib import Path

log = logging.getLogger("dicom_gateway")

LOCK_NAME = ".lock"
PROCESS_DIR_PREFIX = "gateway-"


class ReceiveArea:
    """This process's directory for datasets being received, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.directory = root / f"{PROCESS_DIR_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock_fd: int | None = None

    def open(self) -> Path:
        """Remove stale leftovers, then create and lock this process's directory."""
        self.root.mkdir(parents=True, exist_ok=True)
        removed = remove_stale(self.root)
        if removed:
            log.info("stale received files removed", extra={"count": removed})
        self.directory.mkdir()
        fd = os.open(self.directory / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock_fd = fd
        return self.directory

    def close(self) -> None:
        """Remove this process's directory (nothing in it is still wanted) and unlock."""
        if self._lock_fd is None:
            return
        shutil.rmtree(self.directory, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = None


def remove_stale(root: Path) -> int:
    """Delete files under ``root`` that no live gateway process holds; return how many."""
    removed = 0
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            if _held(entry):
                continue
            removed += sum(1 for p in entry.rglob("*") if p.is_file() and p.name != LOCK_NAME)
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
            removed += 1
    return removed


def _held(directory: Path) -> bool:
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the lock we may just have taken
    return False
