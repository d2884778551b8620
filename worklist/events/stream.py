"""The worklist event stream's replay for ``worklist.sse``: Redis entries the caller may see.

Every SSE event is one stream entry: ``id:`` is its stream ID, ``event:`` its type,
``data:`` a JSON object ``{study_uid, site, at, data}``. A client that reconnects
with ``Last-Event-ID`` gets exactly the entries after that ID (those it may see),
then the live tail. If entries after that ID were trimmed from the stream (or
Redis lost it), a ``worklist.resync`` event says so first: reload the worklist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError, ResponseError

from worklist.events.bus import STREAM_KEY, StreamEvent, decode
from worklist.sse import (
    NO_POLL,
    Batch,
    Caller,
    InvalidEventId,
    Start,
    StreamTiming,
    StreamUnavailable,
    frame,
)

READ_COUNT = 200
RESYNC_EVENT = "worklist.resync"
START_OF_STREAM = "0-0"
EVENTS_UNAVAILABLE = "the event stream is unavailable (Redis unreachable); retry shortly"
INVALID_EVENT_ID = "Last-Event-ID must be an event id of this stream (e.g. 1712345678901-0)"

# A stream reader's socket must outlast its longest blocking XREAD.
READER_SOCKET_MARGIN_SECONDS = 5.0
READER_CONNECT_TIMEOUT_SECONDS = 1.0

_STREAM_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$")


def make_reader_redis(url: str, *, longest_block_seconds: float) -> AsyncRedis:
    """A Redis client for one stream's blocking reads (none longer than given)."""
    return AsyncRedis.from_url(
        url,
        socket_connect_timeout=READER_CONNECT_TIMEOUT_SECONDS,
        socket_timeout=longest_block_seconds + READER_SOCKET_MARGIN_SECONDS,
    )


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


# Events that may tell of a second read starting or of the first report changing: a
# radiologist's stream re-reads which studies it is blinded to before showing one.
BLINDING_EVENT_PREFIXES = ("double_read.", "report.")
# A second read's own events carry no reader, score or report: they pass blinding.
UNBLINDED_EVENT_PREFIX = "double_read."


@dataclass(frozen=True)
class Access:
    """What a stream needs to know about its caller: who they may see, site codes, and the
    studies whose events reach them without data (``blinded``: a second read of theirs,
    or one they could take, is not yet submitted; see ``worklist.doubleread``)."""

    audience: Audience
    site_codes: Mapping[int, str]
    blinded: frozenset[str] = field(default_factory=frozenset)
    # Whether the caller can become blinded at all (radiologists).
    blindable: bool = False

    def shown(self, event: StreamEvent) -> StreamEvent:
        """``event`` as this caller may see it: its data dropped on a blinded study."""
        if event.study_uid not in self.blinded or event.type.startswith(UNBLINDED_EVENT_PREFIX):
            return event
        return replace(event, data={})


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
    return frame(id=event.id, event=event.type, data=body)


def _resync_event(after: str) -> bytes:
    body = json.dumps({"after": after, "detail": "events were missed: reload the worklist"})
    return frame(event=RESYNC_EVENT, data=body)


def _entries(response: Any) -> list[tuple[str, StreamEvent | None]]:
    # RESP2 (our clients' protocol): [[key, [(id, fields), ...]]] or None after a timeout.
    return [
        (_text(entry_id), decode(entry_id, fields))
        for _, entries in response or ()
        for entry_id, fields in entries
    ]


async def _site_code(caller: Caller[Access], site_id: int) -> str | None:
    """The code of ``site_id``, re-reading the sites once when it is new to us."""
    if caller.access is not None and site_id not in caller.access.site_codes:
        await caller.recheck(force=True)
    return None if caller.access is None else caller.access.site_codes.get(site_id)


class EventReplay:
    """The worklist event stream's replay: entries of the Redis stream the caller may see."""

    name = "event stream"
    invalid_id = INVALID_EVENT_ID

    def __init__(self, *, redis: AsyncRedis, redis_url: str, timing: StreamTiming) -> None:
        self._redis = redis
        self._redis_url = redis_url
        self._longest_block = timing.keepalive_seconds

    def parse_id(self, text: str) -> str:
        """A client's Last-Event-ID as a stream ID."""
        return parse_event_id(text)

    async def start(self, after: str | None, access: Access) -> Start[str]:
        """After ``after`` (a resync first if entries were lost), or after the newest entry."""
        try:
            point = await start_point(self._redis, after)
        except (RedisError, OSError) as exc:
            raise StreamUnavailable(EVENTS_UNAVAILABLE) from exc
        return Start(after=point.after, opening=_resync_event(point.after) if point.gap else b"")

    def reader(self, caller: Caller[Access]) -> EventReader:
        """Blocking reads on a Redis connection of this stream's own."""
        client = make_reader_redis(self._redis_url, longest_block_seconds=self._longest_block)
        return EventReader(client, caller)


class EventReader:
    """One stream's blocking XREADs, filtered by what its caller may see."""

    unavailable: tuple[type[Exception], ...] = (RedisError, OSError)
    poll_seconds = NO_POLL  # XREAD returns as soon as an entry is added

    def __init__(self, client: AsyncRedis, caller: Caller[Access]) -> None:
        self._client = client
        self._caller = caller

    async def read(self, after: str, *, wait: float) -> Batch[str]:
        """The visible entries after ``after``, blocking up to ``wait`` s for the first."""
        response = await self._client.xread(
            {STREAM_KEY: after}, count=READ_COUNT, block=max(1, int(wait * 1000))
        )
        position, frames = after, []
        for entry_id, event in _entries(response):
            position = entry_id
            access = self._caller.access
            if event is None or access is None:
                continue
            if access.blindable and event.type.startswith(BLINDING_EVENT_PREFIXES):
                await self._caller.recheck(force=True)
                access = self._caller.access
                if access is None:
                    continue
            if access.audience.sees(event.site_id):
                code = await _site_code(self._caller, event.site_id)
                frames.append(format_event(access.shown(event), code))
        return Batch(position=position, data=b"".join(frames))

    async def aclose(self) -> None:
        """Close the reader's Redis connection."""
        await self._client.aclose()
