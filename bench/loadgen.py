"""HTTP load generator for ``bench.worklist``, run as its own process.

    python -m bench.loadgen PLAN.json RESULT.json

Two modes, both over keep-alive HTTP/1.1 connections (a minimal asyncio client on uvloop:
a few tens of microseconds of CPU per request, so on a small machine the generator takes
little from the server it measures):

- ``open``: requests are *scheduled* at a fixed rate (request ``i`` at ``start + i / rate``)
  whatever the server does; each is sent on an idle connection, or a new one if all are
  busy, and its latency is measured from its scheduled time, not from when it could be
  sent. A slow server therefore shows up as latency (no coordinated omission).
- ``closed``: ``clients`` concurrent clients, each sending its next request as soon as the
  previous answer arrives (saturation); throughput counts answers completed after the
  warm-up and before the end.

The plan lists the API ports (request ``i`` of the open schedule goes to port ``i mod N``,
closed-loop client ``k`` to port ``k mod N``) and weighted request templates (name, method,
path, bearer token, optionally the Accept header);
the choice sequence is drawn from a seeded generator, so runs are comparable. With
``extract`` a dotted JSON path of every 2xx answer is collected (e.g. the study UIDs
that ``POST /api/v1/worklist/next`` hands out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

with contextlib.suppress(ImportError):
    import uvloop

READ_LIMIT = 1 << 22
# uvicorn closes keep-alive connections idle for 5 s (timeout_keep_alive): like any HTTP
# client pool, do not reuse a connection idle for longer than this.
MAX_IDLE_SECONDS = 3.0
END_GRACE_SECONDS = 30.0
MAX_CONNECTIONS_PER_PORT = 1000


class HttpError(RuntimeError):
    """The peer sent something that is not an HTTP/1.1 answer we understand."""


@dataclass
class Template:
    """A request the plan may send."""

    name: str
    method: str
    path: str
    token: str
    weight: float = 1.0
    extract: str | None = None
    client: int | None = None  # closed mode: only this client sends it
    accept: str = "application/json"
    raw: bytes = b""

    def __post_init__(self) -> None:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            "Host: 127.0.0.1",
            f"Authorization: Bearer {self.token}",
            f"Accept: {self.accept}",
        ]
        if self.method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        self.raw = ("\r\n".join(lines) + "\r\n\r\n").encode()


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send ``raw`` and read the answer: (status, body)."""
        loop = asyncio.get_running_loop()
        if self.writer is not None and loop.time() - self.last_used > MAX_IDLE_SECONDS:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                "127.0.0.1", self.port, limit=READ_LIMIT
            )
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise HttpError(f"bad status line {lines[0]!r}")
        status = int(parts[1])
        length = 0
        chunked = False
        close = False
        for line in lines[1:]:
            if not line:
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key == "content-length":
                length = int(value)
            elif key == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif key == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            body = await self._read_chunked()
        else:
            body = await self.reader.readexactly(length) if length else b""
        self.last_used = loop.time()
        if close:
            self.close()
        return status, body

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        """Drop the connection (a new one is opened on the next request)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Results:
    """Everything measured, as returned to the orchestrator."""

    latencies: dict[str, list[float]] = field(default_factory=dict)  # ms, per template
    service: dict[str, list[float]] = field(default_factory=dict)  # ms from actual send
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    extracted: list[Any] = field(default_factory=list)
    completed_at: list[float] = field(default_factory=list)  # s since start
    sent: int = 0
    unfinished: int = 0
    connections_opened: int = 0
    max_in_flight: int = 0
    max_dispatch_lag_ms: float = 0.0
    window_seconds: float = 0.0
    counted: int = 0

    def record(
        self, template: Template, status: int, body: bytes, latency: float, service: float
    ) -> None:
        """Keep one answer."""
        self.latencies.setdefault(template.name, []).append(latency * 1000)
        self.service.setdefault(template.name, []).append(service * 1000)
        by_status = self.statuses.setdefault(template.name, {})
        by_status[str(status)] = by_status.get(str(status), 0) + 1
        if status >= 400 and len(self.errors) < 20:
            self.errors.append(f"{template.name}: {status} {body[:300]!r}")
        if template.extract and 200 <= status < 300 and body:
            value: Any = json.loads(body)
            for key in template.extract.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            self.extracted.append(value)


class Pool:
    """Idle keep-alive connections per port; new ones are opened when none is idle."""

    def __init__(self, results: Results) -> None:
        self.idle: dict[int, list[Connection]] = {}
        self.total: dict[int, int] = {}
        self.results = results
        self.freed = asyncio.Condition()

    async def acquire(self, port: int) -> Connection:
        """An idle connection to ``port`` (or a new one, up to the cap)."""
        async with self.freed:
            while True:
                idle = self.idle.setdefault(port, [])
                if idle:
                    return idle.pop()
                if self.total.get(port, 0) < MAX_CONNECTIONS_PER_PORT:
                    self.total[port] = self.total.get(port, 0) + 1
                    self.results.connections_opened += 1
                    return Connection(port)
                await self.freed.wait()

    async def release(self, conn: Connection) -> None:
        """Return a connection for reuse."""
        async with self.freed:
            self.idle.setdefault(conn.port, []).append(conn)
            self.freed.notify()


async def _send(
    template: Template, conn: Connection, results: Results, scheduled: float, start: float
) -> None:
    loop = asyncio.get_running_loop()
    sent = loop.time()
    try:
        status, body = await conn.request(template.raw)
    except (OSError, asyncio.IncompleteReadError, HttpError, ValueError) as exc:
        conn.close()
        status, body = 599, repr(exc).encode()
    done = loop.time()
    results.record(template, status, body, done - scheduled, done - sent)
    results.completed_at.append(done - start)


async def run_open(plan: dict[str, Any], templates: list[Template], results: Results) -> None:
    """Fixed-rate schedule; latency from each request's scheduled time."""
    rate = float(plan["rate"])
    duration = float(plan["duration"])
    total = int(rate * duration)
    ports = [int(p) for p in plan["ports"]]
    rng = random.Random(plan.get("seed", 1))
    choices = rng.choices(templates, weights=[t.weight for t in templates], k=total)
    pool = Pool(results)
    loop = asyncio.get_running_loop()
    in_flight = 0
    tasks: set[asyncio.Task[None]] = set()
    waiting: dict[asyncio.Task[None], tuple[Template, float]] = {}

    async def one(template: Template, port: int, scheduled: float) -> None:
        nonlocal in_flight
        in_flight += 1
        results.max_in_flight = max(results.max_in_flight, in_flight)
        try:
            conn = await pool.acquire(port)
            try:
                await _send(template, conn, results, scheduled, start)
            finally:
                await pool.release(conn)
        finally:
            in_flight -= 1

    start = loop.time() + 0.05
    for index, template in enumerate(choices):
        scheduled = start + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        results.max_dispatch_lag_ms = max(
            results.max_dispatch_lag_ms, (loop.time() - scheduled) * 1000
        )
        task = asyncio.create_task(one(template, ports[index % len(ports)], scheduled))
        tasks.add(task)
        waiting[task] = (template, scheduled)
        task.add_done_callback(tasks.discard)
        results.sent += 1
    if tasks:
        _done, pending = await asyncio.wait(set(tasks), timeout=END_GRACE_SECONDS)
        results.unfinished = len(pending)
        now = loop.time()
        for task in pending:
            task.cancel()
            # Still waiting: count the wait so far (a lower bound of its latency).
            template, scheduled = waiting[task]
            results.latencies.setdefault(template.name, []).append((now - scheduled) * 1000)
            by_status = results.statuses.setdefault(template.name, {})
            by_status["unfinished"] = by_status.get("unfinished", 0) + 1
    results.window_seconds = loop.time() - start
    results.counted = sum(len(v) for v in results.latencies.values())


async def run_closed(plan: dict[str, Any], templates: list[Template], results: Results) -> None:
    """``clients`` concurrent request loops; answers after the warm-up are counted."""
    clients = int(plan["clients"])
    duration = float(plan["duration"])
    warmup = float(plan.get("warmup", 0.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    end = measure_from + duration
    shared = [t for t in templates if t.client is None]
    ports = [int(p) for p in plan["ports"]]
    counted = 0

    async def client(number: int) -> None:
        nonlocal counted
        rng = random.Random(plan.get("seed", 1) * 1000 + number)
        own = [t for t in templates if t.client == number] or shared
        weights = [t.weight for t in own]
        conn = Connection(ports[number % len(ports)])
        results.connections_opened += 1
        try:
            while loop.time() < end:
                template = rng.choices(own, weights=weights)[0]
                before = loop.time()
                await _send(template, conn, results, before, start)
                results.sent += 1
                finished = loop.time()
                if measure_from <= finished <= end:
                    counted += 1
                elif finished < measure_from:
                    # warm-up answers are not part of the figures
                    results.latencies[template.name].pop()
                    results.service[template.name].pop()
        finally:
            conn.close()

    await asyncio.gather(*(client(n) for n in range(clients)))
    results.window_seconds = duration
    results.counted = counted
    results.max_in_flight = clients


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.loadgen PLAN.json RESULT.json", file=sys.stderr)
        return 2
    plan = json.loads(Path(args[0]).read_text())
    templates = [Template(**t) for t in plan["templates"]]
    results = Results()
    runner = run_open if plan["mode"] == "open" else run_closed
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    if "uvloop" in sys.modules:
        uvloop.run(runner(plan, templates, results))
    else:
        asyncio.run(runner(plan, templates, results))
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    out = results.__dict__ | {
        "mode": plan["mode"],
        "started_unix": started,
        "cpu_seconds": (cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
    }
    Path(args[1]).write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
