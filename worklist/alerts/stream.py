"""``GET /api/v1/alerts/stream``: a trust's alert events as Server-Sent Events, from PostgreSQL.

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
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.alerts import repository
from worklist.alerts.repository import StreamMessage
from worklist.metrics import DELIVERY_LATENCY
from worklist.outbox.wakeups import listen_for_wakeups, wait_for_event

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keep-alive\n\n"
# Re-validate the caller (token expiry, deactivation, changed site) this often.
ACCESS_RECHECK_SECONDS = 60.0
READ_BATCH = 200
RETRY_MILLISECONDS = 3000
MAX_BACKOFF_SECONDS = 10.0
MARK_TIMEOUT_SECONDS = 5.0


class InvalidEventId(ValueError):
    """A Last-Event-ID that is not an alert event id."""


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


RefreshAccess = Callable[[], Awaitable[StreamAccess | None]]


def format_event(message: StreamMessage) -> bytes:
    """One SSE event: the message body's ``data`` on one line (JSON never holds a newline)."""
    data = json.loads(message.body)["data"]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {message.id}\nevent: {message.type}\ndata: {text}\n\n".encode()


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


class _Caller:
    """The stream's current view of its caller, re-checked periodically."""

    def __init__(self, access: StreamAccess, refresh: RefreshAccess) -> None:
        self.access: StreamAccess | None = access
        self._refresh = refresh
        self._checked = time.monotonic()

    async def recheck(self) -> None:
        """Re-read the caller's access when it is due."""
        if time.monotonic() - self._checked < ACCESS_RECHECK_SECONDS:
            return
        self._checked = time.monotonic()
        try:
            self.access = await self._refresh()
        except Exception as exc:  # the database is away: keep what we knew
            log.warning("alert stream access check failed", extra={"error": exc})


async def alert_stream(
    *,
    factory: async_sessionmaker[AsyncSession],
    redis_url: str | None,
    access: StreamAccess,
    refresh: RefreshAccess,
    after: int,
    poll_seconds: float,
) -> AsyncIterator[bytes]:
    """The caller's SSE byte stream: every alert event after ``after``, then live.

    Ends when ``refresh`` says the caller lost access. While the database is unreachable
    it keeps the connection with keep-alive comments and resumes where it stopped.
    """
    caller = _Caller(access, refresh)

    def interested(named: set[int]) -> bool:
        sites = caller.access.site_ids if caller.access is not None else frozenset()
        return sites is None or bool(named & sites)

    # Wake-ups make the stream prompt; without Redis it re-reads every ``poll_seconds``.
    wake, stopping = asyncio.Event(), asyncio.Event()
    listener = (
        asyncio.create_task(listen_for_wakeups(redis_url, wake, stopping, interested))
        if redis_url
        else None
    )
    last_id = after
    failures = 0
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
        last_sent = time.monotonic()
        while True:
            await caller.recheck()
            if caller.access is None:
                return
            sites = caller.access.site_ids
            wake.clear()  # a wake-up during the read below makes the next wait return at once
            try:
                async with factory() as session:
                    batch = await repository.alert_messages_after(
                        session, sites, after=last_id, limit=READ_BATCH
                    )
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("alert stream lost the database", extra={"error": exc})
                batch = None
            if batch is not None:
                failures = 0
            if batch:
                yield b"".join(format_event(m) for m in batch)
                last_id, last_sent = batch[-1].id, time.monotonic()
                # Shielded: a client that hangs up right after receiving still received.
                with anyio.move_on_after(MARK_TIMEOUT_SECONDS, shield=True):
                    await _mark_delivered(factory, batch)
                if len(batch) == READ_BATCH:
                    continue
            idle = time.monotonic() - last_sent
            if idle >= KEEPALIVE_SECONDS:
                yield KEEPALIVE
                last_sent, idle = time.monotonic(), 0.0
            wait = min(poll_seconds, KEEPALIVE_SECONDS - idle)
            if batch is None:  # database away: back off, the keep-alives hold the line
                await anyio.sleep(min(0.5 * 2**failures, MAX_BACKOFF_SECONDS, wait))
                continue
            await wait_for_event(wake, wait)
    finally:
        stopping.set()
        if listener is not None:
            listener.cancel()
