"""Event test helpers: the API served by uvicorn in-process, an SSE reader, Redis access."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, add_site
from tests.conftest import REDIS_BASE_URL
from worklist.app import create_app
from worklist.config import Settings
from worklist.events.bus import STREAM_KEY
from worklist.models import Site
from worklist.sse import StreamTiming, stream_timing

# Short keep-alives make a quiet stream still yield lines, so reads never wait long.
TEST_TIMING = StreamTiming(keepalive_seconds=0.3)
READ_TIMEOUT_SECONDS = 10.0


def quick_streams(app: FastAPI, **changes: float) -> None:
    """Make ``app``'s SSE streams use ``TEST_TIMING`` (with ``changes``)."""
    timing = replace(TEST_TIMING, **changes)
    app.dependency_overrides[stream_timing] = lambda: timing


@dataclass
class SseEvent:
    """One event as a client parses it."""

    id: str | None
    event: str | None
    data: dict[str, Any] | None


@dataclass
class SseReader:
    """Reads events from one open ``text/event-stream`` response."""

    response: httpx.Response
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    ended: bool = False  # the server closed the stream
    _lines: Iterator[str] | None = None

    def _read_lines(self) -> Iterator[str]:
        yield from self.response.iter_lines()
        self.ended = True

    def next_event(self, timeout: float = 5.0) -> SseEvent | None:
        """The next event, or None when none arrived within ``timeout`` (or the stream ended)."""
        if self._lines is None:
            self._lines = self._read_lines()
        deadline = time.monotonic() + timeout
        fields: dict[str, str] = {}
        for line in self._lines:
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif "retry" in fields and len(fields) == 1:
                self.retry = int(fields.pop("retry"))
            elif fields:
                data = fields.get("data")
                return SseEvent(
                    id=fields.get("id"),
                    event=fields.get("event"),
                    data=json.loads(data) if data is not None else None,
                )
            if time.monotonic() > deadline:
                return None
        return None

    def next_comment(self, timeout: float = READ_TIMEOUT_SECONDS) -> str | None:
        """The next comment line (events before it are dropped), None if none in ``timeout``."""
        seen = len(self.comments)
        deadline = time.monotonic() + timeout
        while len(self.comments) == seen and time.monotonic() < deadline and not self.ended:
            self.next_event(timeout=0)
        return self.comments[seen] if len(self.comments) > seen else None

    def end(self, timeout: float = READ_TIMEOUT_SECONDS) -> bool:
        """True when the server closes the stream (no event before) within ``timeout``."""
        return self.next_event(timeout) is None and self.ended

    def events(self, count: int, timeout: float = 5.0) -> list[SseEvent]:
        """Exactly ``count`` events (fails the test if fewer arrive in time)."""
        received = []
        for _ in range(count):
            event = self.next_event(timeout)
            assert event is not None, f"only {len(received)} of {count} events: {received}"
            received.append(event)
        return received


@dataclass
class LiveApi:
    """The API served over a real socket."""

    app: FastAPI
    base_url: str

    def client(self) -> httpx.Client:
        """A plain client of the API, with the same read timeout as the streams."""
        return httpx.Client(base_url=self.base_url, timeout=READ_TIMEOUT_SECONDS)

    @contextmanager
    def sse(
        self,
        headers: dict[str, str],
        *,
        last_event_id: str | None = None,
        params: dict[str, str] | None = None,
    ) -> Iterator[SseReader]:
        """Open ``GET /api/v1/events``; the stream's start is fixed once this yields."""
        all_headers = dict(headers)
        if last_event_id is not None:
            all_headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(READ_TIMEOUT_SECONDS)
        with (
            httpx.Client(base_url=self.base_url, timeout=timeout) as client,
            client.stream("GET", "/api/v1/events", headers=all_headers, params=params) as response,
        ):
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            yield SseReader(response)


# Event tests assert on everything in the stream (and on its absence), and the stream key
# is fixed: keep them off the Redis databases the other test packages use (1, 2, ...).
EVENTS_REDIS_DB_BASE = 8


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> str:
    """A Redis database of this worker's own, apart from other test packages'."""
    index = 0 if worker_id == "master" else int(worker_id.removeprefix("gw"))
    return f"{REDIS_BASE_URL}/{EVENTS_REDIS_DB_BASE + index}"


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def live_api(settings: Settings, db: sessionmaker[Session]) -> Iterator[LiveApi]:
    """create_app(settings) under uvicorn in a thread, on a free port, with quick streams."""
    app = create_app(settings)
    quick_streams(app)
    sock = _free_socket()
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn exited"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield LiveApi(app=app, base_url=f"http://{host}:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def sites(db: sessionmaker[Session]) -> dict[str, Site]:
    """Two trusts: NORTH and SOUTH."""
    with db() as session, session.begin():
        return {code: add_site(session, code) for code in (NORTH, SOUTH)}


@pytest.fixture
def redis_client(redis_url: str, db: sessionmaker[Session]) -> Iterator[redis.Redis]:
    """A synchronous client of the test Redis database (emptied by ``db``)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def stream_entries(client: redis.Redis) -> list[tuple[str, dict[str, str]]]:
    """Every entry of the event stream, oldest first, decoded."""
    return [
        (entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})
        for entry_id, fields in client.xrange(STREAM_KEY)
    ]


def unused_redis_url() -> str:
    """A Redis URL nothing listens on."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    return f"redis://127.0.0.1:{port}/0"
