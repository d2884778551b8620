"""worklist.sse, the loop both streams share: framing, keep-alives, backoff, access, cleanup.

Time is a clock the test moves: a read "waits" by advancing it, a backoff sleep too, so
nothing here sleeps for real and every instant asserted is exact.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import anyio
import pytest

from worklist.errors import InvalidInput
from worklist.sse import (
    KEEPALIVE,
    NO_POLL,
    Batch,
    Caller,
    InvalidEventId,
    Start,
    StreamTiming,
    frame,
    last_event_id,
    open_stream,
    retry_field,
    sse_stream,
)

TIMING = StreamTiming()  # the defaults: keep-alive 15 s, re-check 60 s, backoff up to 10 s
RETRY = b"retry: 3000\n\n"
MAX_READS = 1000  # no test needs more: beyond, the loop under test spins


class SourceAway(ConnectionError):
    """The fake source's "unreachable"."""


class Bug(RuntimeError):
    """An error that is not the source being away."""


@dataclass
class FakeClock:
    """A monotonic clock that moves only when told; ``sleep`` moves it."""

    t: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def now(self) -> float:
        """The current instant."""
        return self.t

    async def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock past it."""
        self.sleeps.append(seconds)
        self.t += seconds
        await anyio.lowlevel.checkpoint()


# One scripted read: "quiet" (nothing new within the wait), "away" (the source fails),
# "bug" (an unexpected error), "block" (never returns), or (seconds later, event names).
Step = str | tuple[float, list[str]]


@dataclass
class FakeReplay:
    """A Replay whose reader follows a script; positions count the events sent."""

    unavailable: ClassVar[tuple[type[Exception], ...]] = (SourceAway,)
    clock: FakeClock
    script: list[Step]
    poll_seconds: float = NO_POLL
    name: str = "fake stream"
    invalid_id: str = "not one of ours"
    reads: list[tuple[float, int, float]] = field(default_factory=list)  # (at, after, wait)
    sent: list[int] = field(default_factory=list)
    closed: bool = False

    def parse_id(self, text: str) -> int:
        """Digits only."""
        if not text.isdigit():
            raise InvalidEventId(text)
        return int(text)

    async def start(self, after: int | None, access: str) -> Start[int]:
        """After ``after``, else after 0."""
        return Start(after=after or 0)

    def reader(self, caller: Caller[str]) -> FakeReplay:
        """This object is its own reader."""
        return self

    async def read(self, after: int, *, wait: float) -> Batch[int]:
        """The next scripted step."""
        self.reads.append((self.clock.t, after, wait))
        assert len(self.reads) < MAX_READS, "the stream reads in a loop without waiting"
        step = self.script.pop(0) if self.script else "quiet"
        if step == "away":
            raise SourceAway("connection refused")
        if step == "bug":
            raise Bug("not the source")
        if step == "block":
            await anyio.sleep_forever()
        if step == "quiet":
            self.clock.t += wait
            return Batch(position=after)
        assert isinstance(step, tuple)
        later, names = step
        assert later <= wait, "a scripted event must come within the read's wait"
        self.clock.t += later
        data = b"".join(
            frame(id=after + n + 1, event=name, data="{}") for n, name in enumerate(names)
        )
        position = after + len(names)
        return Batch(position=position, data=data, sent=lambda: self._sent(position))

    async def _sent(self, position: int) -> None:
        self.sent.append(position)

    async def aclose(self) -> None:
        """Mark closed, after a checkpoint (which a cancelled, unshielded scope would fail)."""
        await anyio.lowlevel.checkpoint()
        self.closed = True


def _always(access: str | None) -> Callable[[], Awaitable[str | None]]:
    async def refresh() -> str | None:
        return access

    return refresh


def _stream(
    replay: FakeReplay,
    refresh: Callable[[], Awaitable[str | None]] | None = None,
    *,
    timing: StreamTiming = TIMING,
    start: Start[int] | None = None,
) -> AsyncGenerator[bytes, None]:
    return sse_stream(
        replay,
        start=start or Start(after=0),
        access="north",
        refresh=refresh or _always("north"),
        timing=timing,
        clock=replay.clock,
    )


async def _take(
    stream: AsyncGenerator[bytes, None], clock: FakeClock, count: int | None = None
) -> list[tuple[float, bytes]]:
    """(instant, chunk) for ``count`` chunks, or until the stream ends."""
    chunks: list[tuple[float, bytes]] = []
    async for chunk in stream:
        chunks.append((clock.t, chunk))
        if count is not None and len(chunks) == count:
            break
    await stream.aclose()
    return chunks


def _run(replay: FakeReplay, count: int | None = None, **kwargs: Any) -> list[tuple[float, bytes]]:
    async def main() -> list[tuple[float, bytes]]:
        return await _take(_stream(replay, **kwargs), replay.clock, count)

    return anyio.run(main)


def test_an_event_is_written_id_first_with_its_data_on_one_line() -> None:
    assert frame(id="1712345678901-0", event="study.claimed", data='{"a":1}') == (
        b'id: 1712345678901-0\nevent: study.claimed\ndata: {"a":1}\n\n'
    )
    assert (
        frame(id=42, event="alert.raised", data="{}")
        == b"id: 42\nevent: alert.raised\ndata: {}\n\n"
    )
    assert frame(event="worklist.resync", data="{}") == b"event: worklist.resync\ndata: {}\n\n"
    assert retry_field(3000) == RETRY
    assert KEEPALIVE == b": keep-alive\n\n"


@pytest.mark.parametrize("field_name", ["id", "event", "data"])
def test_a_field_with_a_line_break_is_refused(field_name: str) -> None:
    fields = {"id": "1", "event": "e", "data": "{}", field_name: "two\nlines"}
    with pytest.raises(ValueError, match="single line"):
        frame(**fields)


def test_a_stream_opens_with_the_retry_field_and_its_opening() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, [])
    opening = frame(event="worklist.resync", data="{}")
    [(at, first)] = _run(replay, 1, start=Start(after=7, opening=opening))
    assert (at, first) == (0.0, RETRY + opening)


def test_a_quiet_stream_sends_a_keep_alive_each_interval() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, [])
    chunks = _run(replay, 4)
    assert chunks == [(0.0, RETRY), (15.0, KEEPALIVE), (30.0, KEEPALIVE), (45.0, KEEPALIVE)]
    assert {wait for _, _, wait in replay.reads} == {15.0}


def test_an_event_postpones_the_next_keep_alive_and_the_next_read_resumes_after_it() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, [(10.0, ["a", "b"])])
    chunks = _run(replay, 3)
    assert [at for at, _ in chunks] == [0.0, 10.0, 25.0]
    assert chunks[1][1] == frame(id=1, event="a", data="{}") + frame(id=2, event="b", data="{}")
    assert chunks[2][1] == KEEPALIVE
    # The read after the events starts after them, waiting only until the keep-alive is due.
    assert replay.reads[:2] == [(0.0, 0, 15.0), (10.0, 2, 15.0)]
    assert replay.sent == [2]


def test_a_polling_reader_waits_no_longer_than_its_poll() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, [], poll_seconds=1.0)
    chunks = _run(replay, 2)
    assert chunks == [(0.0, RETRY), (15.0, KEEPALIVE)]
    assert [wait for _, _, wait in replay.reads][:15] == [1.0] * 15


def test_a_source_away_is_retried_with_growing_backoff_while_keep_alives_hold_the_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, ["away"] * 6 + [(1.0, ["back"])])
    with caplog.at_level(logging.INFO, logger="worklist.sse"):
        chunks = _run(replay, 4)
    # 1, 2, 4 s; then 8 s (all the keep-alive allows); 10 s (the cap); 5 s (the keep-alive).
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 5.0]
    assert chunks[:3] == [(0.0, RETRY), (15.0, KEEPALIVE), (30.0, KEEPALIVE)]
    assert chunks[3] == (31.0, frame(id=1, event="back", data="{}"))
    assert {after for _, after, _ in replay.reads} == {0}  # resumed where it stopped
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "worklist.sse"]
    assert messages == [
        ("WARNING", "stream lost its source, retrying"),  # once, not at every failure
        ("INFO", "stream has its source again"),
    ]


def test_an_error_that_is_not_the_source_being_away_ends_the_stream_and_closes_it() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, ["bug"])
    with pytest.raises(Bug):
        _run(replay, 5)  # bounded: a swallowed error would turn into keep-alives
    assert replay.closed
    assert clock.sleeps == []


def test_the_stream_ends_once_a_recheck_finds_the_access_lost() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, [])
    checks: list[float] = []

    async def refresh() -> str | None:
        checks.append(clock.t)
        return None

    chunks = _run(replay, refresh=refresh)
    assert [at for at, _ in chunks] == [0.0, 15.0, 30.0, 45.0]  # nothing at 60 s: it ended
    assert checks == [60.0]
    assert replay.closed


def test_a_failed_access_check_keeps_what_was_known_until_the_next_one() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, [])
    answers: list[str | Exception | None] = [RuntimeError("database away"), "north", None]
    checks: list[float] = []

    async def refresh() -> str | None:
        checks.append(clock.t)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    chunks = _run(replay, refresh=refresh)
    assert checks == [60.0, 120.0, 180.0]
    assert chunks[-1] == (165.0, KEEPALIVE)


def test_a_forced_recheck_waits_for_its_own_shorter_interval() -> None:
    clock = FakeClock()
    checks: list[float] = []

    async def refresh() -> str | None:
        checks.append(clock.t)
        return "south"

    caller = Caller("north", refresh, timing=TIMING, clock=clock, stream="fake stream")

    async def main() -> None:
        for at, force in [(4.9, True), (5.0, True), (9.0, True), (59.0, False), (65.0, False)]:
            clock.t = at
            await caller.recheck(force=force)

    anyio.run(main)
    assert checks == [5.0, 65.0]
    assert caller.access == "south"


def test_a_cancelled_stream_still_closes_its_source() -> None:
    clock = FakeClock()
    replay = FakeReplay(clock, ["block"])

    async def main() -> None:
        stream = _stream(replay)
        with anyio.move_on_after(0):  # the client hangs up while the stream waits to read
            async for _ in stream:
                pass
        await stream.aclose()

    anyio.run(main)
    assert replay.closed


def test_the_header_wins_over_the_query_parameter() -> None:
    async def main() -> list[str | None]:
        return [
            await last_event_id(last_event_id_header="9", last_event_id="3"),
            await last_event_id(last_event_id_header=None, last_event_id="3"),
            await last_event_id(),
        ]

    assert anyio.run(main) == ["9", "3", None]


def test_opening_a_stream_with_an_id_not_of_the_stream_is_invalid_input() -> None:
    replay = FakeReplay(FakeClock(), [])

    async def main() -> None:
        await open_stream(
            replay, last_event_id="1-0", access="north", refresh=_always("north"), timing=TIMING
        )

    with pytest.raises(InvalidInput) as raised:
        anyio.run(main)
    assert raised.value.detail == "not one of ours"
