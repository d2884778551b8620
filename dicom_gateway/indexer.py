"""Index received instances in PostgreSQL, many per transaction (group commit).

Every C-STORE handler thread hands its instance to one committer thread and
waits. While a commit is in flight the next instances queue up and share the
following commit, so durable acknowledgement costs one WAL flush per batch,
not per instance.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from dicom_gateway.parse import InstanceHeader
from worklist.enums import Priority
from worklist.metrics import INGEST_BATCH_SIZE

log = logging.getLogger("dicom_gateway.indexer")


@dataclass(frozen=True)
class SiteRef:
    """The site an instance came from, as the indexer needs it."""

    id: int
    code: str
    default_priority: Priority | None


@dataclass(frozen=True)
class IndexRequest:
    """One stored instance to index."""

    header: InstanceHeader
    site: SiteRef
    path: str
    size_bytes: int
    actor: str
    address: str | None
    replaced: bool = False


_INDEX_INSTANCES = text("SELECT index_instances(CAST(:batch AS jsonb), :at)")
STUDY_OWNED_ELSEWHERE_SQLSTATES = ("WL001", "WL002")


def index_batch(
    session: Session | Connection,
    requests: Sequence[IndexRequest],
    *,
    turnaround: dict[str, timedelta],
    now: datetime | None = None,
) -> int:
    """Index ``requests`` with one call of the ``index_instances`` SQL function; flush only.

    Returns how many instances were new or replaced (identical resends change nothing).
    """
    now = now or datetime.now(UTC)
    batch = json.dumps([_as_row(r, turnaround, now) for r in requests])
    return int(session.execute(_INDEX_INSTANCES, {"batch": batch, "at": now}).scalar_one())


def _as_row(r: IndexRequest, turnaround: dict[str, timedelta], now: datetime) -> dict[str, Any]:
    h = r.header
    priority = h.requested_priority or r.site.default_priority or Priority.ROUTINE
    return {
        "site_id": r.site.id,
        "patient_id": h.patient_id,
        "nhs_number": h.nhs_number,
        "patient_name": h.patient_name,
        "birth_date": h.birth_date.isoformat() if h.birth_date else None,
        "sex": h.sex,
        "study_uid": h.study_uid,
        "accession_number": h.accession_number,
        "study_description": h.study_description,
        "study_datetime": h.study_datetime.isoformat() if h.study_datetime else None,
        "priority": priority.value,
        "due_at": (now + turnaround[priority.value]).isoformat(),
        # A matching RIS order's priority replaces the DICOM one (index_instances_v4).
        "turnaround_seconds": {key: value.total_seconds() for key, value in turnaround.items()},
        "series_uid": h.series_uid,
        "modality": h.modality,
        "series_description": h.series_description,
        "series_number": h.series_number,
        "sop_instance_uid": h.sop_instance_uid,
        "sop_class_uid": h.sop_class_uid,
        "transfer_syntax_uid": h.transfer_syntax_uid,
        "instance_number": h.instance_number,
        "path": r.path,
        "size_bytes": r.size_bytes,
        "replaced": r.replaced,
        "actor": r.actor,
        "address": r.address,
    }


class IndexFailed(Exception):
    """The instance could not be indexed; ``retryable`` when the database is at fault."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.retryable = retryable


class GroupCommitter:
    """Group commit without a committer thread (leader/follower).

    The first C-STORE thread to arrive while no commit is running becomes the
    leader: it indexes everything queued, in batches, in its own thread, until the
    queue is empty. Threads arriving meanwhile only queue and wait. One association
    therefore pays no thread hand-off; many share commits.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        turnaround: dict[str, timedelta],
        max_batch: int = 64,
        on_committed: Callable[[list[IndexRequest]], None] | None = None,
    ) -> None:
        self._engine = engine
        # Called with each committed batch, in the committing thread: it must not block.
        self._on_committed = on_committed
        # One connection, used by one leader at a time: no pool checkout or pre-ping per batch.
        self._connection: Connection | None = None
        self._turnaround = turnaround
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[tuple[IndexRequest, Future[None]]] = []
        self._leading = False

    def start(self) -> None:
        """Nothing to start: commits run in the submitting threads."""

    def stop(self) -> None:
        """Release the connection (in-flight commits finish in their threads)."""
        with self._lock:
            leading = self._leading
        if not leading:
            self._disconnect()

    def submit(self, request: IndexRequest) -> Future[None]:
        """Queue an instance; the future completes when its index rows are committed."""
        future: Future[None] = Future()
        with self._lock:
            self._pending.append((request, future))
            if self._leading:
                return future
            self._leading = True
        self._lead()
        return future

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if not batch:
                    self._leading = False
                    return
            try:
                self._commit(batch)
            except BaseException as exc:  # never leave followers waiting forever
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                with self._lock:
                    self._leading = False
                raise

    def _commit(self, batch: list[tuple[IndexRequest, Future[None]]]) -> None:
        INGEST_BATCH_SIZE.observe(len(batch))
        requests = [request for request, _ in batch]
        try:
            self._index(requests)
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(_as_index_failure(exc))
                return
            # Isolate the culprit: one bad instance must not fail the others.
            for item in batch:
                self._commit([item])
            return
        for _, future in batch:
            future.set_result(None)
        if self._on_committed is not None:
            try:
                self._on_committed(requests)
            except Exception:  # a notification must never fail an ingest
                log.exception("on_committed hook failed")

    def _index(self, requests: list[IndexRequest]) -> None:
        if self._connection is None:
            self._connection = self._engine.connect()
        try:
            with self._connection.begin():
                index_batch(self._connection, requests, turnaround=self._turnaround)
        except DBAPIError as exc:
            if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
                self._disconnect()
            raise

    def _disconnect(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def _as_index_failure(exc: Exception) -> IndexFailed:
    # The exception's text carries the SQL parameters (patient data): only its kind is kept.
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in STUDY_OWNED_ELSEWHERE_SQLSTATES:
        return IndexFailed(f"study already belongs to another site ({sqlstate})", retryable=False)
    error = type(orig or exc).__name__
    log.error("index commit failed", extra={"error": error, "sqlstate": sqlstate})
    return IndexFailed(f"database unavailable: {error}", retryable=True)
