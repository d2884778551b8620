"""The one Server-Sent Events implementation, shared by ``/api/v1/events`` and the alert stream.

A stream is its replay (what it reads, from where, how one event looks: each stream's own,
see ``Replay``) driven by the loop here, which owns everything else: the wire format
(``retry:``, ``id:``/``event:``/one-line ``data:``, ``: keep-alive`` comments), the
``Last-Event-ID`` header and ``?last_event_id=``, the periodic re-check of the caller's
access (the stream ends when it is lost), backoff while the source is away (keep-alives
hold the line meanwhile), shielded cleanup on disconnect, and the response.

FastAPI's own ``fastapi.sse`` gives the response object (``EventSourceResponse``) and no
more. Its encoder serves generator endpoints only (naming ``EventSourceResponse`` as a
route's ``response_class`` switches it on, so our routes name ``StreamingResponse``).
That encoder sends fixed ``: ping`` keep-alives at a private, fixed interval that knows
nothing of our reads, and orders an event's fields ``event:``/``data:``/``id:``; our
wire format (``id:`` first, ``: keep-alive``) is documented, so ``frame`` below keeps
it byte for byte.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Generic, Protocol, TypeVar

import anyio
from fastapi import Depends, Header, Query
from fastapi.sse import EventSourceResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from worklist.api.deps import SessionMakerDep, SigningKey, StreamCredentialDep, StreamUser
from worklist.auth import service as auth_service
from worklist.errors import AuthenticationFailed, DomainError, Forbidden, InvalidInput
from worklist.models import User

log = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
KEEPALIVE = b": keep-alive\n\n"
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_EVENT_ID_LENGTH = 64
# A reader that is told of news (rather than polling for it) waits as long as keep-alives allow.
NO_POLL = math.inf
# A client that hangs up right after receiving still received: its bookkeeping is given this long.
SENT_TIMEOUT_SECONDS = 5.0

P = TypeVar("P")  # a stream's position, i.e. its event ids: str (Redis) or int (outbox)
A = TypeVar("A")  # what a stream knows of its caller's access


class InvalidEventId(ValueError):
    """A Last-Event-ID that is not an event id of the stream."""


class StreamUnavailable(DomainError):
    """The stream's source cannot be read right now (the rest of the API still works)."""

    status_code = 503


def frame(*, event: str, data: str, id: str | int | None = None) -> bytes:
    """One SSE event: ``id:`` (when given), ``event:``, ``data:``; every field on one line."""
    fields = [("id", str(id))] if id is not None else []
    fields += [("event", event), ("data", data)]
    if any("\n" in value or "\r" in value for _, value in fields):
        raise ValueError("an SSE field must be a single line")
    return "".join(f"{name}: {value}\n" for name, value in fields).encode() + b"\n"


def retry_field(milliseconds: int) -> bytes:
    """The ``retry:`` field telling a client how long to wait before reconnecting."""
    return f"retry: {milliseconds}\n\n".encode()


class Clock(Protocol):
    """Where a stream reads the time and sleeps (tests pass one they move by hand)."""

    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``anyio.sleep``."""

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``anyio.sleep(seconds)``."""
        await anyio.sleep(seconds)


MONOTONIC = MonotonicClock()


@dataclass(frozen=True)
class StreamTiming:
    """How often a stream does what it does unasked (tests override ``stream_timing``)."""

    keepalive_seconds: float = 15.0
    # Re-validate the caller (token expiry, deactivation, changed privileges) this often...
    recheck_seconds: float = 60.0
    # ...and at most this often when a replay asks for it sooner (an unknown site code).
    forced_recheck_seconds: float = 5.0
    retry_milliseconds: int = 3000
    max_backoff_seconds: float = 10.0

    def backoff_seconds(self, failures: int) -> float:
        """How long to wait after ``failures`` failed reads in a row: 1, 2, 4, ... capped."""
        return min(0.5 * 2.0**failures, self.max_backoff_seconds)


def stream_timing() -> StreamTiming:
    """The streams' timing (a dependency, so tests can make it quick)."""
    return StreamTiming()


StreamTimingDep = Annotated[StreamTiming, Depends(stream_timing)]

RefreshAccess = Callable[[], Awaitable[A | None]]


class Caller(Generic[A]):
    """A stream's current view of its caller's access, re-checked periodically."""

    def __init__(
        self,
        access: A,
        refresh: RefreshAccess[A],
        *,
        timing: StreamTiming,
        clock: Clock,
        stream: str,
    ) -> None:
        self.access: A | None = access
        self._refresh = refresh
        self._timing = timing
        self._clock = clock
        self._stream = stream
        self._checked = clock.now()

    async def recheck(self, *, force: bool = False) -> None:
        """Re-read the caller's access when it is due (sooner when ``force``d); None: lost."""
        age = self._clock.now() - self._checked
        due = self._timing.forced_recheck_seconds if force else self._timing.recheck_seconds
        if age < due:
            return
        self._checked = self._clock.now()
        try:
            self.access = await self._refresh()
        except Exception as exc:  # the database is away: keep what we knew
            log.warning("stream access check failed", extra={"stream": self._stream, "error": exc})


@dataclass(frozen=True)
class Start(Generic[P]):
    """Where a stream starts: after ``after``; ``opening`` is sent first (e.g. a resync)."""

    after: P
    opening: bytes = b""


@dataclass(frozen=True)
class Batch(Generic[P]):
    """One read: the position to read after next, the events to send, and what to do once sent."""

    position: P
    data: bytes = b""
    sent: Callable[[], Awaitable[None]] | None = None


class Reader(Protocol[P]):
    """An open stream's view of its source."""

    # Errors of the source that mean "away for now": the read is retried with backoff.
    unavailable: tuple[type[Exception], ...]
    # The longest a read waits for news before the stream reads again (inf: it is told).
    poll_seconds: float

    async def read(self, after: P, *, wait: float) -> Batch[P]:
        """What the caller may see after ``after``, waiting up to ``wait`` s when nothing is new."""
        ...

    async def aclose(self) -> None:
        """Release the source (runs shielded from the disconnect's cancellation)."""
        ...


class Replay(Protocol[P, A]):
    """A stream's own part: its event ids, where it starts, and its reader."""

    name: str  # in logs: "event stream", "alert stream"
    invalid_id: str  # the 422 detail for a Last-Event-ID that is not one of its ids

    def parse_id(self, text: str) -> P:
        """A client's Last-Event-ID as a position; InvalidEventId otherwise."""
        ...

    async def start(self, after: P | None, access: A) -> Start[P]:
        """Where to start: after ``after``, or "now"; StreamUnavailable when the source is away."""
        ...

    def reader(self, caller: Caller[A]) -> Reader[P]:
        """Open the source for one stream (called when the stream begins)."""
        ...


async def sse_stream(
    replay: Replay[P, A],
    *,
    start: Start[P],
    access: A,
    refresh: RefreshAccess[A],
    timing: StreamTiming,
    clock: Clock = MONOTONIC,
) -> AsyncGenerator[bytes, None]:
    """The caller's SSE byte stream: replay after ``start``, then live, until disconnect.

    Ends when ``refresh`` says the caller lost access. While the source is unreachable it
    keeps the connection with keep-alive comments and resumes where it stopped.
    """
    caller = Caller(access, refresh, timing=timing, clock=clock, stream=replay.name)
    reader = replay.reader(caller)
    try:
        yield retry_field(timing.retry_milliseconds) + start.opening
        position = start.after
        last_sent = clock.now()
        failures = 0
        while True:
            await caller.recheck()
            if caller.access is None:
                return
            idle = clock.now() - last_sent
            if idle >= timing.keepalive_seconds:
                yield KEEPALIVE
                last_sent, idle = clock.now(), 0.0
            wait = min(reader.poll_seconds, timing.keepalive_seconds - idle)
            try:
                batch = await reader.read(position, wait=wait)
            except reader.unavailable as exc:
                failures += 1
                if failures == 1:
                    log.warning(
                        "stream lost its source, retrying",
                        extra={"stream": replay.name, "error": exc},
                    )
                # Never past the next keep-alive: they hold the line while the source is away.
                await clock.sleep(min(timing.backoff_seconds(failures), wait))
                continue
            if failures:
                log.info(
                    "stream has its source again",
                    extra={"stream": replay.name, "after_failures": failures},
                )
                failures = 0
            position = batch.position
            if batch.data:
                yield batch.data
                last_sent = clock.now()
                if batch.sent is not None:
                    with anyio.move_on_after(SENT_TIMEOUT_SECONDS, shield=True):
                        await batch.sent()
    finally:
        # Shielded: on disconnect this runs inside a cancelled scope.
        with anyio.CancelScope(shield=True):
            await reader.aclose()


async def last_event_id(
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=MAX_EVENT_ID_LENGTH,
            description="Resume after this event id",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(
            max_length=MAX_EVENT_ID_LENGTH,
            description="Resume after this event id, for an EventSource opened anew "
            "(the Last-Event-ID header wins if both)",
        ),
    ] = None,
) -> str | None:
    """The id a client resumes after: its Last-Event-ID header, else ``?last_event_id=``."""
    # The header wins: a browser's own reconnect sends it with the newer id.
    return last_event_id_header or last_event_id


LastEventIdDep = Annotated[str | None, Depends(last_event_id)]


@dataclass(frozen=True)
class Subscriber:
    """Who opened a stream, and how to check them again while it is open."""

    user: User
    sessionmaker: async_sessionmaker[AsyncSession]
    signing_key: str
    credential: auth_service.StreamCredential

    def refresh(self, load: Callable[[AsyncSession, User], Awaitable[A]]) -> RefreshAccess[A]:
        """A re-check of the credential: ``load``'s access, or None once it is refused."""

        async def refresh() -> A | None:
            # The request's session is gone by now: each check has its own.
            async with self.sessionmaker() as check:
                try:
                    again = await auth_service.user_from_stream_credential(
                        session=check, signing_key=self.signing_key, credential=self.credential
                    )
                    return await load(check, again)
                except (AuthenticationFailed, Forbidden):
                    return None

        return refresh


async def subscriber(
    user: StreamUser,
    sessionmaker: SessionMakerDep,
    signing_key: SigningKey,
    credential: StreamCredentialDep,
) -> Subscriber:
    """The stream's caller (by bearer token or ``?ticket=``), with what re-checks them."""
    return Subscriber(
        user=user, sessionmaker=sessionmaker, signing_key=signing_key, credential=credential
    )


SubscriberDep = Annotated[Subscriber, Depends(subscriber)]


async def open_stream(
    replay: Replay[P, A],
    *,
    last_event_id: str | None,
    access: A,
    refresh: RefreshAccess[A],
    timing: StreamTiming,
) -> EventSourceResponse:
    """The response of a stream endpoint: 422 for a bad Last-Event-ID, else the stream."""
    try:
        after = replay.parse_id(last_event_id) if last_event_id else None
    except InvalidEventId as exc:
        raise InvalidInput(replay.invalid_id) from exc
    start = await replay.start(after, access)
    content = sse_stream(replay, start=start, access=access, refresh=refresh, timing=timing)
    return EventSourceResponse(content, headers=STREAM_HEADERS)
