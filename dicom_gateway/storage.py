"""Durable placement of received files under ``DATA_DIR/dicom``.

Layout: ``dicom/<site>/<h0>/<h1>/<study>/<series>/<sop>.dcm`` where ``h0``/``h1``
come from a hash of the Study UID, so no directory grows without bound.
A file is fsync'd, renamed into place and its directory fsync'd before the index
row is committed: after a crash a file may lack its index row (``worklist
reindex`` repairs that) but an index row never lacks its file.

A replacement (other bytes under a stored SOP Instance UID) never overwrites the file
the index names: it is written beside it as a new version, ``<sop>~<token>.dcm``, the
index row is switched to it in the same commit, and only then is the old version
removed. A failed commit therefore leaves the stored instance exactly as it was.
"""

from __future__ import annotations

import errno
import fcntl
import filecmp
import hashlib
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from worklist.uids import is_valid_uid

FILE_SUFFIX = ".dcm"
VERSION_MARK = "~"


class Storage:
    """The instance store on a local filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._durable_dirs: set[Path] = {self.root}
        self._lock = threading.Lock()

    def relative_path(self, site_code: str, study: str, series: str, sop: str) -> Path:
        """Where an instance lives, relative to the root. UIDs must be validated already."""
        for uid in (study, series, sop):
            if not is_valid_uid(uid):
                raise ValueError(f"refusing to build a path from invalid UID {uid!r}")
        digest = hashlib.sha1(study.encode(), usedforsecurity=False).hexdigest()
        return Path(site_code, digest[:2], digest[2:4], study, series, sop + FILE_SUFFIX)

    def absolute(self, relative: Path | str) -> Path:
        """The absolute path of a stored file."""
        return self.root / relative

    def versions(self, relative: Path) -> list[Path]:
        """The stored files of the instance at canonical path ``relative`` (any version)."""
        directory = self.absolute(relative).parent
        if not directory.is_dir():
            return []
        sop = relative.name.removesuffix(FILE_SUFFIX)
        found = [
            relative.parent / path.name
            for path in directory.iterdir()
            if path.suffix == FILE_SUFFIX and canonical_name(path.name) == relative.name
        ]
        return sorted(found, key=lambda p: (p.name != sop + FILE_SUFFIX, p.name))

    @contextmanager
    def locked(self, relative: Path) -> Iterator[None]:
        """Hold the lock of the instance's series directory (flock: across processes)."""
        fd = os.open(self.absolute(relative).parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def new_version(self, relative: Path) -> Path:
        """A fresh path for another version of the instance at canonical path ``relative``."""
        sop = relative.name.removesuffix(FILE_SUFFIX)
        return relative.parent / f"{sop}{VERSION_MARK}{secrets.token_hex(8)}{FILE_SUFFIX}"

    def same_content(self, candidate: Path, relative: Path) -> bool:
        """True when the stored file at ``relative`` holds exactly ``candidate``'s bytes."""
        stored = self.absolute(relative)
        return stored.exists() and filecmp.cmp(candidate, stored, shallow=False)

    def place(self, source: Path, relative: Path, *, synced: bool = False) -> Path:
        """Make ``source`` durable at ``relative`` (replacing any file there) and return it.

        ``synced`` says the caller already fsync'd ``source`` (see ``sync_file``).
        """
        target = self.absolute(relative)
        self._ensure_dir(target.parent)
        if not synced:
            _fsync_file(source)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            # Someone removed directories under us: forget what we knew and retry once.
            with self._lock:
                self._durable_dirs = {self.root}
            self._ensure_dir(target.parent)
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # Temporary file on another filesystem: copy beside the target, then rename.
            partial = target.with_suffix(".partial")
            try:
                shutil.copyfile(source, partial)
                _fsync_file(partial)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        _fsync_dir(target.parent)
        return target

    def remove(self, relative: Path) -> None:
        """Delete a stored file (used when its index commit failed)."""
        target = self.absolute(relative)
        target.unlink(missing_ok=True)
        if target.parent.exists():
            _fsync_dir(target.parent)

    def iter_files(self) -> list[Path]:
        """Every stored instance file, relative to the root."""
        return sorted(p.relative_to(self.root) for p in self.root.rglob("*" + FILE_SUFFIX))

    def _ensure_dir(self, directory: Path) -> None:
        if directory in self._durable_dirs:
            return
        missing = []
        current = directory
        while current not in self._durable_dirs and not current.exists():
            missing.append(current)
            current = current.parent
        directory.mkdir(parents=True, exist_ok=True)
        # A new directory is durable only once its parent's entry is.
        for created in reversed(missing):
            _fsync_dir(created.parent)
        with self._lock:
            self._durable_dirs.add(directory)


def sync_file(path: Path) -> None:
    """fsync a file by path (releases the GIL: callers overlap it with parsing)."""
    _fsync_file(path)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def canonical_name(name: str) -> str:
    """The canonical name of a stored file's instance: ``<sop>~<token>.dcm`` → ``<sop>.dcm``."""
    stem = name.removesuffix(FILE_SUFFIX)
    return stem.split(VERSION_MARK, 1)[0] + FILE_SUFFIX
