"""The alert stream's replay for ``worklist.sse``: a trust's alert events, from PostgreSQL.

The outbox is the source of truth: every event is an ``alert.*`` outbox message of the
caller's sites; its ``id:`` is the message id, ``event:`` its type, ``data:`` the alert
JSON. The ``id:`` is the message's position in ``alert_stream``, assigned in commit order
(migration 0006), so reading ``id > last`` never skips one and a reconnect with
``Last-Event-ID`` replays exactly what was missed. Redis only makes it prompt: a wake-up
on ``worklist.outbox.WAKE_CHANNEL`` triggers a read at once; without one (Redis silent or
down) the stream re-reads every ``alert_stream_poll_seconds``. When an event was written
to a client, the message's ``sse`` delivery is marked delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.alerts import repository
from worklist.alerts.repository import StreamMessage
from worklist.alerts.visibility import stream_sites
from worklist.metrics import DELIVERY_LATENCY
from worklist.models import User
from worklist.outbox.wakeups import listen_for_wakeups, wait_for_event
from worklist.sse import Batch, Caller, InvalidEventId, Start, frame

log = logging.getLogger(__name__)

READ_BATCH = 200
INVALID_EVENT_ID = "Last-Event-ID must be the id of an alert event (a positive integer)"


def parse_event_id(text: str) -> int:
    """A client's Last-Event-ID (a message id); InvalidEventId otherwise."""
    stripped = text.strip()
    if not (stripped.isascii() and stripped.isdigit()) or len(stripped) > 19:
        raise InvalidEventId(text)
    return int(stripped)


@dataclass(frozen=True)
class StreamAccess:
    """The sites whose alert events the caller may receive; ``None`` means every site."""

    site_ids: frozenset[int] | None


async def load_access(session: AsyncSession, user: User) -> StreamAccess:
    """The sites whose alert events ``user`` may stream; Forbidden for other roles."""
    return StreamAccess(site_ids=stream_sites(user))


def format_event(message: StreamMessage) -> bytes:
    """One SSE event: the message body's ``data`` on one line (JSON never holds a newline)."""
    data = json.loads(message.body)["data"]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return frame(id=message.id, event=message.type, data=text)


async def _mark_delivered(
    factory: async_sessionmaker[AsyncSession], messages: list[StreamMessage]
) -> None:
    """Record the deliveries in a short transaction of their own (best effort)."""
    try:
        async with factory() as session, session.begin():
            ids = [m.message_id for m in messages]
            first = set(await repository.mark_sse_delivered(session, ids))
    except Exception as exc:  # the client has the events; only the bookkeeping is late
        log.warning("alert stream could not record deliveries", extra={"error": exc})
        return
    now = datetime.now(UTC)
    for message in messages:
        if message.message_id in first:
            latency = (now - message.created_at).total_seconds()
            DELIVERY_LATENCY.labels("sse").observe(max(latency, 0.0))


class AlertReplay:
    """The alert stream's replay: ``alert_stream`` positions of the caller's sites."""

    name = "alert stream"
    invalid_id = INVALID_EVENT_ID

    def __init__(
        self,
        *,
        factory: async_sessionmaker[AsyncSession],
        redis_url: str | None,
        poll_seconds: float,
    ) -> None:
        self._factory = factory
        self._redis_url = redis_url
        self._poll_seconds = poll_seconds

    def parse_id(self, text: str) -> int:
        """A client's Last-Event-ID as a message id."""
        return parse_event_id(text)

    async def start(self, after: int | None, access: StreamAccess) -> Start[int]:
        """After ``after``, or after the newest event of the caller's sites."""
        if after is None:
            async with self._factory() as session:
                after = await repository.newest_alert_message_id(session, access.site_ids)
        return Start(after=after)

    def reader(self, caller: Caller[StreamAccess]) -> AlertReader:
        """Reads of the outbox, prompted by Redis wake-ups when there is Redis."""
        return AlertReader(
            self._factory, caller, redis_url=self._redis_url, poll_seconds=self._poll_seconds
        )


class AlertReader:
    """One stream's reads of ``alert_stream``: at once when woken, else every poll."""

    # Any database failure (there are many kinds): retried, the stream stays open.
    unavailable: tuple[type[Exception], ...] = (Exception,)

    def __init__(
        self,
        factory: async_sessionmaker[AsyncSession],
        caller: Caller[StreamAccess],
        *,
        redis_url: str | None,
        poll_seconds: float,
    ) -> None:
        self._factory = factory
        self._caller = caller
        self.poll_seconds = poll_seconds
        # Read at once at the start, after a full batch and after a failure; else wait first.
        self._more = True
        self._wake, self._stopping = asyncio.Event(), asyncio.Event()
        self._listener = (
            asyncio.create_task(
                listen_for_wakeups(redis_url, self._wake, self._stopping, self._interested)
            )
            if redis_url
            else None
        )

    def _interested(self, named: set[int]) -> bool:
        access = self._caller.access
        sites = access.site_ids if access is not None else frozenset()
        return sites is None or bool(named & sites)

    async def read(self, after: int, *, wait: float) -> Batch[int]:
        """The caller's sites' events after ``after``; waits for a wake-up (or ``wait``) first
        unless more may be pending."""
        if not self._more:
            await wait_for_event(self._wake, wait)
        access = self._caller.access
        sites = access.site_ids if access is not None else frozenset()
        self._wake.clear()  # a wake-up during the read below makes the next wait return at once
        self._more = True
        async with self._factory() as session:
            batch = await repository.alert_messages_after(
                session, sites, after=after, limit=READ_BATCH
            )
        self._more = len(batch) == READ_BATCH
        if not batch:
            return Batch(position=after)
        return Batch(
            position=batch[-1].id,
            data=b"".join(format_event(m) for m in batch),
            sent=partial(_mark_delivered, self._factory, batch),
        )

    async def aclose(self) -> None:
        """Stop the wake-up listener."""
        self._stopping.set()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
