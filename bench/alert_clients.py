"""The alert benchmark's clients: the SSE listener, the open-loop alert sender, Redis wake-ups.

All times are ``time.monotonic()`` (CLOCK_MONOTONIC on Linux: one clock for every
process of the machine, so the webhook receiver's arrival times compare with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import redis

ALERTS_STREAM_PATH = "/api/v1/alerts/stream"
RECONNECT_DELAY_SECONDS = 0.5
# The sender's HTTP pool: reuse a keep-alive connection only while uvicorn keeps it
# (its timeout_keep_alive is 5 s), as the worklist load generator does.
KEEPALIVE_EXPIRY_SECONDS = 3.0
POST_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SseEvent:
    """One event as the listener received it."""

    event_id: str | None
    type: str
    alert_id: str | None
    at: float


@dataclass
class SseListener:
    """``GET /api/v1/alerts/stream`` in a thread (httpx streaming), as an alert client would.

    Reconnects with ``Last-Event-ID`` when the stream ends or fails (counted).
    """

    base_url: str
    token: str
    path: str = ALERTS_STREAM_PATH
    events: list[SseEvent] = field(default_factory=list)
    connects: int = 0
    errors: list[str] = field(default_factory=list)
    connected: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _response: httpx.Response | None = None
    _last_id: str | None = None

    def start(self) -> None:
        """Connect in a background thread."""
        self._thread = threading.Thread(target=self._run, name="sse-listener", daemon=True)
        self._thread.start()

    def snapshot(self) -> list[SseEvent]:
        """The events received so far."""
        with self._lock:
            return list(self.events)

    def stop(self) -> None:
        """Close the stream and end the thread."""
        self._stop.set()
        response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        timeout = httpx.Timeout(10.0, read=None)
        with httpx.Client(base_url=self.base_url, timeout=timeout) as client:
            while not self._stop.is_set():
                headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
                if self._last_id is not None:
                    headers["Last-Event-ID"] = self._last_id
                try:
                    with client.stream("GET", self.path, headers=headers) as response:
                        self._response = response
                        if response.status_code != 200:
                            response.read()
                            self.errors.append(f"{response.status_code} {response.text[:300]}")
                            self.connected.set()
                            self._stop.wait(RECONNECT_DELAY_SECONDS * 4)
                            continue
                        self.connects += 1
                        self.connected.set()
                        self._read(response)
                except (httpx.HTTPError, OSError) as exc:
                    if not self._stop.is_set():
                        self.errors.append(repr(exc)[:300])
                finally:
                    self._response = None
                self._stop.wait(RECONNECT_DELAY_SECONDS)

    def _read(self, response: httpx.Response) -> None:
        event_id: str | None = None
        event_type = "message"
        data: list[str] = []
        for line in response.iter_lines():
            if line == "":
                if data:
                    self._dispatch(event_id, event_type, "\n".join(data))
                event_id, event_type, data = None, "message", []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "id":
                event_id = value
            elif name == "event":
                event_type = value
            elif name == "data":
                data.append(value)

    def _dispatch(self, event_id: str | None, event_type: str, data: str) -> None:
        at = time.monotonic()
        alert_id: str | None = None
        with contextlib.suppress(ValueError, AttributeError):
            payload: Any = json.loads(data)
            value = payload.get("id") if isinstance(payload, dict) else None
            alert_id = str(value) if value is not None else None
        if event_id is not None:
            self._last_id = event_id
        with self._lock:
            self.events.append(SseEvent(event_id, event_type, alert_id, at))


@dataclass
class WakeMonitor:
    """Records when Redis wake-ups naming trust A arrive (pub/sub ``worklist:outbox``).

    Diagnostic only: they show whether the API publishes a wake-up after each commit
    (SSE and webhook latency should then follow it, not a poll interval).
    """

    redis_url: str
    channel: str
    site_id: int
    times: list[float] = field(default_factory=list)
    error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Subscribe in a background thread."""
        self._thread = threading.Thread(target=self._run, name="wake-monitor", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def stop(self) -> None:
        """Unsubscribe and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            pubsub.subscribe(self.channel)
        except redis.RedisError as exc:
            self.error = repr(exc)
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is None:
                    continue
                at = time.monotonic()
                raw = message.get("data", b"")
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                if str(self.site_id) in {part.strip() for part in text.split(",")}:
                    self.times.append(at)
        except redis.RedisError as exc:
            self.error = repr(exc)
        finally:
            with contextlib.suppress(Exception):
                pubsub.close()
                client.close()


@dataclass
class SentAlert:
    """One ``POST .../alerts`` of the run."""

    index: int
    phase: str
    study_uid: str
    port: int
    scheduled: float
    t0: float = 0.0  # monotonic, just before the request was handed to the client
    t0_wall: float = 0.0  # time.time() at the same moment (to compare with database times)
    post_ms: float | None = None
    status: int | None = None
    alert_id: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


async def _raise_all(
    alerts: list[SentAlert], token: str, rate: float, category: str
) -> dict[str, float]:
    limits = httpx.Limits(
        max_connections=200, max_keepalive_connections=50, keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS
    )
    headers = {"Authorization": f"Bearer {token}"}
    max_lag = 0.0
    async with httpx.AsyncClient(
        limits=limits, timeout=POST_TIMEOUT_SECONDS, headers=headers
    ) as client:

        async def one(alert: SentAlert) -> None:
            body = {
                "category": category,
                "finding": f"Benchmark alert {alert.phase} #{alert.index}: "
                "acute subdural haematoma with midline shift",
                "recipient": "On-call emergency department consultant",
            }
            url = f"http://127.0.0.1:{alert.port}/api/v1/studies/{alert.study_uid}/alerts"
            alert.t0_wall = time.time()
            alert.t0 = time.monotonic()
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError as exc:
                alert.post_ms = (time.monotonic() - alert.t0) * 1000
                alert.error = repr(exc)[:300]
                return
            alert.post_ms = (time.monotonic() - alert.t0) * 1000
            alert.status = response.status_code
            if response.status_code == 201:
                alert.alert_id = str(response.json().get("id"))
            else:
                alert.error = response.text[:300]

        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        mono_offset = time.monotonic() - loop.time()
        tasks = []
        for n, alert in enumerate(alerts):
            scheduled = start + n / rate
            alert.scheduled = scheduled + mono_offset
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            max_lag = max(max_lag, loop.time() - scheduled)
            tasks.append(asyncio.create_task(one(alert)))
        await asyncio.gather(*tasks)
    return {"max_dispatch_lag_ms": max_lag * 1000}


def raise_alerts(
    *,
    phase: str,
    count: int,
    rate: float,
    ports: list[int],
    study_uids: list[str],
    token: str,
    category: str = "critical",
) -> tuple[list[SentAlert], dict[str, float]]:
    """POST ``count`` alerts open-loop at ``rate``/s (alert i: study i mod S, port i mod N)."""
    alerts = [
        SentAlert(
            index=i,
            phase=phase,
            study_uid=study_uids[i % len(study_uids)],
            port=ports[i % len(ports)],
            scheduled=0.0,
        )
        for i in range(count)
    ]
    info = asyncio.run(_raise_all(alerts, token, rate, category))
    return alerts, info


SAMPLE_SQL = """
SELECT coalesce(wait_event_type, ''), coalesce(wait_event, ''), coalesce(state, ''), count(*)
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
 GROUP BY 1, 2, 3
"""


@dataclass
class DbSampler:
    """Samples the benchmark database's sessions every ``interval`` s (diagnostic).

    Each sample counts the sessions per state (``active``, ``idle in transaction``: a
    transaction held open while its process does something else) and per wait event
    (``Lock:advisory``, ``Lock:transactionid``, ``LWLock:...``, ``Client:ClientRead``).
    """

    conninfo: str
    interval: float = 0.1
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Sample in a background thread."""
        self._thread = threading.Thread(target=self._run, name="db-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.conninfo, autocommit=True) as conn:
                while not self._stop.wait(self.interval):
                    counts: dict[str, int] = {}
                    for wait_type, wait_event, state, n in conn.execute(SAMPLE_SQL).fetchall():
                        counts[f"state:{state}"] = counts.get(f"state:{state}", 0) + int(n)
                        if wait_type and state == "active":
                            key = f"wait:{wait_type}:{wait_event}"
                            counts[key] = counts.get(key, 0) + int(n)
                    self.samples.append((time.monotonic(), counts))
        except Exception:  # diagnostic only: a failed sampler leaves fewer samples
            return

    def summary(self, start: float, end: float) -> dict[str, Any]:
        """Per state / wait event: share of samples with one or more sessions, mean, max."""
        window = [counts for at, counts in self.samples if start <= at <= end]
        if not window:
            return {"samples": 0}
        keys = sorted({key for counts in window for key in counts})
        n = len(window)
        return {
            "samples": n,
            "interval_seconds": self.interval,
            "by_key": {
                key: {
                    "share": round(sum(1 for c in window if c.get(key)) / n, 3),
                    "mean": round(sum(c.get(key, 0) for c in window) / n, 2),
                    "max": max(c.get(key, 0) for c in window),
                }
                for key in keys
            },
        }
