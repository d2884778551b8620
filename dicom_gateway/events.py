"""``study.received`` events for committed instances, published off the C-STORE path.

The committer hands each committed batch to ``StudyReceivedPublisher.on_committed``,
which only queues it. A background thread merges what arrived within
``window_seconds`` into one event per study (``data.instances`` = how many were
indexed) and appends them to the event stream in one round trip. If Redis is down
or the queue is full, events are dropped with a log line: the index in PostgreSQL
is the truth, the event only a hint to refresh.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter

import redis

from dicom_gateway.indexer import IndexRequest
from worklist.events import EventType, WorklistEvent
from worklist.events.bus import publish_sync

log = logging.getLogger("dicom_gateway.events")

DEFAULT_WINDOW_SECONDS = 0.2
MAX_QUEUED_BATCHES = 10_000
STOP_TIMEOUT_SECONDS = 5.0

StudyKey = tuple[int, str]  # (site id, study instance UID)


def received_events(counts: Counter[StudyKey]) -> list[WorklistEvent]:
    """One ``study.received`` event per study, with how many instances were indexed."""
    return [
        WorklistEvent(EventType.STUDY_RECEIVED, site_id, study_uid, {"instances": count})
        for (site_id, study_uid), count in counts.items()
    ]


def count_by_study(requests: list[IndexRequest], counts: Counter[StudyKey]) -> None:
    """Add ``requests`` to ``counts`` by (site, study)."""
    counts.update((r.site.id, r.header.study_uid) for r in requests)


class StudyReceivedPublisher:
    """Publishes ``study.received`` for committed batches from its own thread."""

    def __init__(
        self, client: redis.Redis, *, window_seconds: float = DEFAULT_WINDOW_SECONDS
    ) -> None:
        self._client = client
        self._window = window_seconds
        self._queue: queue.Queue[list[IndexRequest] | None] = queue.Queue(MAX_QUEUED_BATCHES)
        self._thread = threading.Thread(target=self._run, name="study-events", daemon=True)
        self._full_logged = False

    def start(self) -> None:
        """Start the publishing thread."""
        self._thread.start()

    def stop(self) -> None:
        """Publish what is queued (best effort), stop the thread and close the client."""
        try:
            self._queue.put(None, timeout=STOP_TIMEOUT_SECONDS)
        except queue.Full:
            log.warning("event queue full at shutdown, pending events dropped")
        self._thread.join(timeout=STOP_TIMEOUT_SECONDS)
        self._client.close()

    def on_committed(self, requests: list[IndexRequest]) -> None:
        """The committer's hook: queue the batch and return at once."""
        try:
            self._queue.put_nowait(requests)
        except queue.Full:
            if not self._full_logged:  # once per episode: the queue only fills when Redis stalls
                self._full_logged = True
                log.warning("event queue full, study.received events dropped")
            return
        self._full_logged = False

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            counts: Counter[StudyKey] = Counter()
            count_by_study(first, counts)
            stopping = self._collect(counts)
            self._publish(counts)
            if stopping:
                return

    def _collect(self, counts: Counter[StudyKey]) -> bool:
        """Merge batches arriving within the window; True when asked to stop."""
        deadline = time.monotonic() + self._window
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=remaining)
            except queue.Empty:
                return False
            if item is None:
                return True
            count_by_study(item, counts)
        return False

    def _publish(self, counts: Counter[StudyKey]) -> None:
        events = received_events(counts)
        try:
            publish_sync(self._client, events)
        except (redis.RedisError, OSError) as exc:
            log.warning(
                "redis unavailable, study.received events dropped",
                extra={"events": len(events), "error": exc},
            )
