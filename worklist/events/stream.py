"""Server-Sent Events from the event stream, filtered by what the caller may see.

Every SSE event is one stream entry: ``id:`` is its stream ID, ``event:`` its type,
``data:`` a JSON object ``{study_uid, site, at, data}``. A client that reconnects
with ``Last-Event-ID`` gets exactly the entries after that ID (those it may see),
then the live tail. If entries after that ID were trimmed from the stream (or
Redis lost it), a ``worklist.resync`` event says so first: reload the worklist.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError, ResponseError

from worklist.events.bus import STREAM_KEY, StreamEvent, decode

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keep-alive\n\n"
# Re-validate the caller (token expiry, deactivation, changed privileges) this often.
ACCESS_RECHECK_SECONDS = 60.0
# Site codes are re-read at most this often when an event names an unknown site.
UNKNOWN_SITE_RELOAD_SECONDS = 5.0
READ_COUNT = 200
RETRY_MILLISECONDS = 3000
MAX_BACKOFF_SECONDS = 10.0
RESYNC_EVENT = "worklist.resync"
START_OF_STREAM = "0-0"

# A stream reader's socket must outlast its longest blocking XREAD.
READER_SOCKET_MARGIN_SECONDS = 5.0
READER_CONNECT_TIMEOUT_SECONDS = 1.0

_STREAM_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")


def make_reader_redis(url: str) -> AsyncRedis:
    """A Redis client for one stream's blocking reads."""
    return AsyncRedis.from_url(
        url,
        socket_connect_timeout=READER_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=KEEPALIVE_SECONDS + READER_SOCKET_MARGIN_SECONDS,
    )


class InvalidEventId(ValueError):
    """A Last-Event-ID that is not a stream ID."""


def parse_event_id(text: str) -> str:
    """Normalise a client's Last-Event-ID (``<ms>-<seq>``); InvalidEventId otherwise."""
    match = _STREAM_ID.match(text.strip())
    if match is None:
        raise InvalidEventId(text)
    return f"{int(match.group(1))}-{int(match.group(2) or 0)}"


def _order(stream_id: str) -> tuple[int, int]:
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Audience:
    """Which sites' events a caller may see; ``site_ids=None`` means every site."""

    site_ids: frozenset[int] | None

    def sees(self, site_id: int) -> bool:
        """True when events of ``site_id`` may be shown."""
        return self.site_ids is None or site_id in self.site_ids


@dataclass(frozen=True)
class Access:
    """What a stream needs to know about its caller: who they may see, and site codes."""

    audience: Audience
    site_codes: Mapping[int, str]


@dataclass(frozen=True)
class StartPoint:
    """Where a stream starts: after ``after``; ``gap`` when entries after it may be lost."""

    after: str
    gap: bool = False


async def start_point(client: AsyncRedis, last_event_id: str | None) -> StartPoint:
    """Resolve where to start: after ``last_event_id``, or after the newest entry ("now").

    "Now" is pinned to a concrete ID rather than ``$`` so that nothing published
    between two reads is skipped. Raises RedisError/OSError when Redis is away.
    """
    if last_event_id is None:
        newest: Any = await client.xrevrange(STREAM_KEY, count=1)
        return StartPoint(after=_text(newest[0][0]) if newest else START_OF_STREAM)
    try:
        info: dict[str, Any] = await client.xinfo_stream(STREAM_KEY)
    except ResponseError:  # no stream at all: Redis lost it, or nothing was ever published
        return StartPoint(after=last_event_id, gap=True)
    resume = _order(last_event_id)
    # Trimming moves the first entry past the client's position; XDEL raises max-deleted.
    # (When the client's own entry was the last one trimmed this says "gap" needlessly:
    # a resync is harmless, a silent gap is not.)
    first: Any = info.get("first-entry")
    oldest_kept = _text(first[0]) if first else _text(info["last-generated-id"])
    max_deleted = _text(info.get("max-deleted-entry-id") or START_OF_STREAM)
    gap = _order(oldest_kept) > resume or _order(max_deleted) > resume
    return StartPoint(after=last_event_id, gap=gap)


def format_event(event: StreamEvent, site_code: str | None) -> bytes:
    """One SSE event (``json.dumps`` never emits a newline, so ``data:`` is one line)."""
    payload = {"study_uid": event.study_uid, "site": site_code, "at": event.at, "data": event.data}
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.id}\nevent: {event.type}\ndata: {body}\n\n".encode()


def _resync_event(after: str) -> bytes:
    body = json.dumps({"after": after, "detail": "events were missed: reload the worklist"})
    return f"event: {RESYNC_EVENT}\ndata: {body}\n\n".encode()


def _entries(response: Any) -> list[tuple[str, StreamEvent | None]]:
    # RESP2 (our clients' protocol): [[key, [(id, fields), ...]]] or None after a timeout.
    return [
        (_text(entry_id), decode(entry_id, fields))
        for _, entries in response or ()
        for entry_id, fields in entries
    ]


RefreshAccess = Callable[[], Awaitable[Access | None]]


class _Caller:
    """The stream's current view of its caller, re-checked periodically."""

    def __init__(self, access: Access, refresh: RefreshAccess) -> None:
        self.access: Access | None = access
        self._refresh = refresh
        self._checked = time.monotonic()

    async def recheck(self, *, force: bool = False) -> None:
        """Re-read the caller's access when it is due (sooner when ``force``d)."""
        age = time.monotonic() - self._checked
        if age < (UNKNOWN_SITE_RELOAD_SECONDS if force else ACCESS_RECHECK_SECONDS):
            return
        self._checked = time.monotonic()
        try:
            self.access = await self._refresh()
        except Exception as exc:  # the database is away: keep what we knew
            log.warning("event stream access check failed", extra={"error": exc})

    async def site_code(self, site_id: int) -> str | None:
        """The code of ``site_id``, re-reading the sites once when it is new to us."""
        if self.access is not None and site_id not in self.access.site_codes:
            await self.recheck(force=True)
        return None if self.access is None else self.access.site_codes.get(site_id)


async def sse_stream(
    *,
    open_client: Callable[[], AsyncRedis],
    start: StartPoint,
    access: Access,
    refresh: RefreshAccess,
) -> AsyncIterator[bytes]:
    """The caller's SSE byte stream: replay after ``start``, then live, until disconnect.

    Ends when ``refresh`` says the caller lost access. While Redis is unreachable it
    keeps the connection with keep-alive comments and resumes where it stopped.
    """
    client = open_client()
    caller = _Caller(access, refresh)
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
        if start.gap:
            yield _resync_event(start.after)
        last_id = start.after
        last_sent = time.monotonic()
        failures = 0
        while True:
            await caller.recheck()
            if caller.access is None:
                return
            idle = time.monotonic() - last_sent
            if idle >= KEEPALIVE_SECONDS:
                yield KEEPALIVE
                last_sent, idle = time.monotonic(), 0.0
            block_ms = max(1, int((KEEPALIVE_SECONDS - idle) * 1000))
            try:
                response = await client.xread(
                    {STREAM_KEY: last_id}, count=READ_COUNT, block=block_ms
                )
            except (RedisError, OSError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("event stream lost redis, retrying", extra={"error": exc})
                await anyio.sleep(min(0.5 * 2**failures, MAX_BACKOFF_SECONDS, KEEPALIVE_SECONDS))
                continue
            if failures:
                log.info("event stream has redis again", extra={"after_failures": failures})
                failures = 0
            for entry_id, event in _entries(response):
                last_id = entry_id
                if event is None or caller.access is None:
                    continue
                if caller.access.audience.sees(event.site_id):
                    yield format_event(event, await caller.site_code(event.site_id))
                    last_sent = time.monotonic()
    finally:
        # Shielded: on disconnect this runs inside a cancelled scope.
        with anyio.CancelScope(shield=True):
            await client.aclose()
