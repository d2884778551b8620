"""The retrieval benchmark's clients: a WADO-RS study reader, a C-MOVE requester, an RSS probe.

The WADO-RS reader streams the response with httpx and splits the multipart body as it
arrives, keeping only the first bytes of each part: it counts parts and their bytes and
checks each is a Part 10 file ("DICM" at offset 128), without holding the study.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelMove,
)

from bench.shared.procs import BenchError

ACCEPT = 'multipart/related; type="application/dicom"'
# Kept of each part: its headers and the start of the Part 10 file (preamble + "DICM").
HEAD_BYTES = 1024
PART10_MAGIC_OFFSET = 128
PENDING = (0xFF00, 0xFF01)
MOVE_TIMEOUT = 600.0


class RetrievalFailed(BenchError):
    """One retrieval did not deliver the whole study (recorded; the run goes on)."""

    def __init__(self, message: str, seconds: float | None = None) -> None:
        super().__init__(message)
        self.seconds = seconds


class MultipartCounter:
    """Splits a ``multipart/related`` body fed in chunks; keeps HEAD_BYTES of each part."""

    def __init__(self, boundary: str) -> None:
        self.delimiter = b"\r\n--" + boundary.encode("ascii")
        self.received = 0
        self._marks: list[int] = []  # stream offset of each delimiter
        self._heads: list[bytearray] = []  # HEAD_BYTES after each delimiter
        self._open = 0  # first head still filling
        # The body opens with "--boundary": a virtual CRLF before it makes every
        # delimiter "\r\n--boundary", so one search finds them all.
        self._tail = b"\r\n"
        self._base = -2  # stream offset of self._tail[0]

    def feed(self, chunk: bytes) -> None:
        """Scan one chunk of the body."""
        self.received += len(chunk)
        data = self._tail + chunk
        base = self._base
        for index in range(self._open, len(self._heads)):
            self._fill(self._heads[index], self._marks[index], data, base)
        while self._open < len(self._heads) and len(self._heads[self._open]) >= HEAD_BYTES:
            self._open += 1
        at = data.find(self.delimiter)
        while at >= 0:
            self._marks.append(base + at)
            head = bytearray()
            self._heads.append(head)
            self._fill(head, base + at, data, base)
            at = data.find(self.delimiter, at + 1)
        keep = len(self.delimiter) - 1
        self._tail = data[-keep:] if len(data) > keep else data
        self._base = base + len(data) - len(self._tail)

    def _fill(self, head: bytearray, mark: int, data: bytes, base: int) -> None:
        start = mark + len(self.delimiter) + len(head) - base
        missing = HEAD_BYTES - len(head)
        if missing > 0 and start < len(data):
            head += data[max(start, 0) : start + missing]

    def parts(self) -> list[tuple[str, int, bool]]:
        """(content type, body bytes, is a Part 10 file) of each part; BenchError if malformed."""
        if not self._marks or not self._heads[-1].startswith(b"--"):
            raise BenchError("multipart body without its closing delimiter")
        result: list[tuple[str, int, bool]] = []
        for index, head in enumerate(self._heads[:-1]):
            end = head.find(b"\r\n\r\n")
            if not head.startswith(b"\r\n") or end < 0:
                raise BenchError(f"part {index + 1}: no header block in the first bytes")
            headers = bytes(head[2:end]).decode("latin-1").split("\r\n")
            ctype = next(
                (
                    h.split(":", 1)[1].strip()
                    for h in headers
                    if h.lower().startswith("content-type:")
                ),
                "",
            )
            body_start = self._marks[index] + len(self.delimiter) + end + 4
            size = self._marks[index + 1] - body_start
            magic_at = end + 4 + PART10_MAGIC_OFFSET
            is_part10 = bytes(head[magic_at : magic_at + 4]) == b"DICM"
            result.append((ctype, size, is_part10))
        return result


@dataclass(frozen=True)
class WadoResult:
    """One WADO-RS study retrieval."""

    seconds: float
    first_byte_seconds: float
    parts: int
    part_bytes: int
    body_bytes: int
    content_type: str


def boundary_of(content_type: str) -> str:
    """The ``boundary`` parameter of a multipart Content-Type."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise BenchError(f"no boundary in Content-Type {content_type!r}")


def wado_study(
    client: httpx.Client, base_url: str, study_uid: str, token: str | None, expected: int
) -> WadoResult:
    """GET the whole study as multipart/related; read, split and check every part."""
    headers = {"Accept": ACCEPT, "Accept-Encoding": "identity"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"{base_url}/studies/{study_uid}"
    start = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        first_byte = time.perf_counter() - start
        if response.status_code != 200:
            response.read()
            raise RetrievalFailed(f"GET {url}: {response.status_code} {response.text[:500]}")
        content_type = response.headers.get("content-type", "")
        counter = MultipartCounter(boundary_of(content_type))
        for chunk in response.iter_raw():
            counter.feed(chunk)
    seconds = time.perf_counter() - start
    parts = counter.parts()
    bad = [i + 1 for i, (ctype, _, part10) in enumerate(parts) if not part10]
    kinds = {ctype.split(";")[0].strip() for ctype, _, _ in parts}
    if len(parts) != expected or bad or kinds != {"application/dicom"}:
        raise RetrievalFailed(
            f"GET {url}: {len(parts)} parts (expected {expected}), part types {kinds}, "
            f"not Part 10: {bad[:10]}",
            seconds,
        )
    return WadoResult(
        seconds=seconds,
        first_byte_seconds=first_byte,
        parts=len(parts),
        part_bytes=sum(size for _, size, _ in parts),
        body_bytes=counter.received,
        content_type=content_type,
    )


@dataclass(frozen=True)
class MoveResult:
    """One C-MOVE of the study: time to the final response and its sub-operation counts."""

    seconds: float
    completed: int
    failed: int
    warnings: int
    pending_responses: int


def move_study(
    port: int, called_aet: str, calling_aet: str, destination: str, study_uid: str
) -> MoveResult:
    """C-MOVE (Study Root, STUDY level); time from the request to the final response."""
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    ae.acse_timeout = ae.network_timeout = 30
    ae.dimse_timeout = MOVE_TIMEOUT
    assoc = ae.associate("127.0.0.1", port, ae_title=called_aet)
    if not assoc.is_established:
        raise BenchError(f"C-MOVE: {called_aet} refused the association from {calling_aet}")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    pending = 0
    final: Dataset | None = None
    try:
        start = time.perf_counter()
        for status, _ in assoc.send_c_move(
            identifier, destination, StudyRootQueryRetrieveInformationModelMove
        ):
            if not status or "Status" not in status:
                raise RetrievalFailed(
                    f"C-MOVE to {called_aet}: no valid response (aborted?)",
                    time.perf_counter() - start,
                )
            if int(status.Status) in PENDING:
                pending += 1
                continue
            final = status
        seconds = time.perf_counter() - start
    finally:
        if assoc.is_established:
            assoc.release()
    if final is None or int(final.Status) != 0:
        code = "none" if final is None else f"0x{int(final.Status):04X}"
        counts = (
            ""
            if final is None
            else (
                f" ({final.get('NumberOfCompletedSuboperations', '?')} completed, "
                f"{final.get('NumberOfFailedSuboperations', '?')} failed)"
            )
        )
        raise RetrievalFailed(f"C-MOVE to {called_aet}: final status {code}{counts}", seconds)
    return MoveResult(
        seconds=seconds,
        completed=int(final.get("NumberOfCompletedSuboperations", -1)),
        failed=int(final.get("NumberOfFailedSuboperations", 0)),
        warnings=int(final.get("NumberOfWarningSuboperations", 0)),
        pending_responses=pending,
    )


def rss_bytes(pid: int) -> int:
    """Resident set size of a process now (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class RssProbe:
    """Samples a process's resident memory every ``interval`` seconds in a thread."""

    pid: int
    interval: float = 0.01
    baseline: int = 0
    peak: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssProbe:
        self.baseline = self.peak = rss_bytes(self.pid)
        self._thread = threading.Thread(target=self._run, name="rss-probe", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))
            self.samples += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def growth(self) -> int:
        """Peak minus the resident memory when sampling started."""
        return self.peak - self.baseline
