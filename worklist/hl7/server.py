"""The MLLP listener (``worklist hl7``): asyncio, one task per connection.

Messages on one connection are handled one after another, in the order they came, and
each ACK is written after its message's commit. A message over
``WORKLIST_HL7_MAX_MESSAGE_BYTES`` is never held whole: it is refused (AR) once its end
block arrives, and what follows is read as usual. A connection whose bytes are not MLLP
is closed; one that drops mid-message loses only that message, never stored. Neither
touches the other connections. Logs carry the peer, the facility, the control id and
the outcome, never message content (nor exception messages, which may quote it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import traceback
from dataclasses import dataclass, field

from redis.asyncio import Redis as AsyncRedis
from sqlalchemy.ext.asyncio import AsyncEngine

from worklist.config import ConfigError, Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.events.bus import make_async_redis
from worklist.hl7.errors import AckCode, ErrorCode, Hl7Rejection, reject
from worklist.hl7.fields import decode, read_header
from worklist.hl7.mllp import FramingError, Message, MllpReader, Oversized, frame
from worklist.hl7.service import Hl7Context, Outcome, answer, handle_message
from worklist.metrics import HL7_LATENCY, HL7_MESSAGES

log = logging.getLogger(__name__)

READ_CHUNK = 65536
# On stop, a message being handled gets this long to commit and be acknowledged.
STOP_GRACE_SECONDS = 5.0
DB_POOL_SIZE = 4
DB_POOL_TIMEOUT_SECONDS = 10.0
# Header values in logs are cut: they come from the message, from strangers too.
_LOGGED_CHARS = 64


@dataclass(eq=False)
class _Connection:
    peer: str | None
    task: asyncio.Task[None]
    busy: bool = False
    messages: int = 0


@dataclass
class Hl7Listener:
    """The listener: ``start`` binds, ``stop`` drains and closes."""

    context: Hl7Context
    max_message_bytes: int
    message_timeout_seconds: float = 60.0
    _server: asyncio.Server | None = None
    _connections: set[_Connection] = field(default_factory=set)

    @property
    def port(self) -> int:
        """The port bound (useful with port 0)."""
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port``."""
        self._server = await asyncio.start_server(self._accept, host, port, limit=READ_CHUNK)
        log.info("hl7 listener ready", extra={"host": host, "port": self.port})

    async def stop(self) -> None:
        """Stop accepting; let messages in hand finish (briefly); close every connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self._connections):
            if not connection.busy:
                connection.task.cancel()
        tasks = [c.task for c in self._connections]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")
        peer = str(address[0]) if isinstance(address, tuple) else None
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(peer=peer, task=task)
        self._connections.add(connection)
        log.info("hl7 connection opened", extra={"peer": peer})
        try:
            await self._serve(connection, reader, writer)
        except (ConnectionError, TimeoutError) as exc:
            log.info("hl7 connection lost", extra={"peer": peer, "error": type(exc).__name__})
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "hl7 connection failed; closed",
                extra={
                    "peer": peer,
                    "error": type(exc).__name__,
                    "at": f"{where.filename}:{where.lineno}",
                },
            )
        finally:
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            log.info("hl7 connection closed", extra={"peer": peer, "messages": connection.messages})

    async def _serve(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        mllp = MllpReader(self.max_message_bytes)
        while True:
            try:
                if mllp.mid_message:
                    chunk = await asyncio.wait_for(
                        reader.read(READ_CHUNK), self.message_timeout_seconds
                    )
                else:
                    chunk = await reader.read(READ_CHUNK)
            except TimeoutError:
                log.warning(
                    "hl7 message not finished in time; connection closed, nothing stored",
                    extra={"peer": connection.peer},
                )
                return
            if not chunk:
                if mllp.mid_message:
                    log.warning(
                        "hl7 connection closed mid-message; nothing stored",
                        extra={"peer": connection.peer},
                    )
                return
            try:
                done = mllp.feed(chunk)
            except FramingError:
                log.warning(
                    "hl7 framing error (not MLLP); connection closed",
                    extra={"peer": connection.peer},
                )
                return
            for item in done:
                connection.busy = True
                started = time.perf_counter()
                outcome = await self._outcome(item, connection.peer)
                writer.write(frame(outcome.ack))
                await writer.drain()
                connection.busy = False
                connection.messages += 1
                elapsed = time.perf_counter() - started
                HL7_MESSAGES.labels(outcome.code.value).inc()
                HL7_LATENCY.observe(elapsed)
                _log_outcome(outcome, connection.peer, elapsed)

    async def _outcome(self, item: Message | Oversized, peer: str | None) -> Outcome:
        if isinstance(item, Message):
            return await handle_message(self.context, item.data, peer=peer)
        too_large = reject(
            ErrorCode.DATA_TYPE, f"message over {self.max_message_bytes} bytes is not accepted"
        )
        try:
            header = read_header(decode(item.head))
        except Hl7Rejection:
            header = None
        return answer(header, too_large, reason="message too large")


def _log_outcome(outcome: Outcome, peer: str | None, elapsed: float) -> None:
    extra = {
        "peer": peer,
        "facility": outcome.facility[:_LOGGED_CHARS],
        "control_id": outcome.control_id[:_LOGGED_CHARS],
        "ack": outcome.code.value,
        "ms": round(elapsed * 1000, 2),
    }
    if outcome.code is AckCode.ACCEPT:
        log.debug(
            "hl7 message", extra={**extra, "orders": outcome.orders, "resent": outcome.resent}
        )
        return
    error = outcome.error.value if outcome.error is not None else None
    log.warning("hl7 message refused", extra={**extra, "error": error, "reason": outcome.reason})


@dataclass
class Hl7Runtime:
    """A listener with the engine and Redis client it uses."""

    listener: Hl7Listener
    engine: AsyncEngine
    redis: AsyncRedis | None

    async def close(self) -> None:
        """Stop the listener, then release the database and Redis."""
        await self.listener.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


def build_hl7(settings: Settings) -> Hl7Runtime:
    """A listener on the configured database and Redis (not yet listening)."""
    engine = make_async_engine(
        settings.require_database_url(),
        pool_size=DB_POOL_SIZE,
        pool_timeout=DB_POOL_TIMEOUT_SECONDS,
        application_name="worklist-hl7",
    )
    redis = make_async_redis(settings.redis_url) if settings.redis_url else None
    context = Hl7Context(
        sessions=make_async_sessionmaker(engine),
        redis=redis,
        priority_map=settings.hl7_priority_map,
        turnaround_targets=settings.turnaround_targets,
    )
    listener = Hl7Listener(
        context=context,
        max_message_bytes=settings.hl7_max_message_bytes,
        message_timeout_seconds=settings.hl7_message_timeout_seconds,
    )
    return Hl7Runtime(listener=listener, engine=engine, redis=redis)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Listen on ``WORKLIST_HL7_HOST:PORT`` until ``stop`` is set."""
    runtime = build_hl7(settings)
    try:
        try:
            await runtime.listener.start(settings.hl7_host, settings.hl7_port)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {settings.hl7_host}:{settings.hl7_port} ({exc.strerror}); "
                "set WORKLIST_HL7_HOST / WORKLIST_HL7_PORT"
            ) from exc
        await stop.wait()
        log.info("hl7 listener stopping")
    finally:
        await runtime.close()


def serve(settings: Settings) -> int:
    """Blocking entry point of ``worklist hl7``: run until SIGINT/SIGTERM; exit code."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop)

    asyncio.run(main())
    return 0
