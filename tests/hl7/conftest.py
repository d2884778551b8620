"""HL7 fixtures: a site whose RIS is a registered sender, and counts of what was stored."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import new_site
from tests.hl7.messages import FACILITY
from worklist.config import Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.events.bus import make_async_redis
from worklist.hl7.server import build_hl7
from worklist.hl7.service import Hl7Context, Outcome, handle_message
from worklist.models import AuditEvent, Hl7Message, Hl7Sender, Order, Site

T = TypeVar("T")
SITE = "RXA"


@dataclass(frozen=True)
class Stored:
    """How many rows the HL7 side has written."""

    orders: int
    messages: int
    audit: int


def stored(db: sessionmaker[Session]) -> Stored:
    """Count orders, recorded messages and audit rows."""
    with db() as session:
        return Stored(
            orders=session.scalar(select(func.count()).select_from(Order)) or 0,
            messages=session.scalar(select(func.count()).select_from(Hl7Message)) or 0,
            audit=session.scalar(select(func.count()).select_from(AuditEvent)) or 0,
        )


NOTHING = Stored(orders=0, messages=0, audit=0)


@pytest.fixture
def hl7_site(db: sessionmaker[Session]) -> int:
    """Site RXA with its RIS registered as facility ``RXA_RIS`` (any address)."""
    with db.begin() as session:
        site = new_site(session, SITE)
        session.add(Hl7Sender(facility=FACILITY, site_id=site.id))
        return site.id


def set_hosts(db: sessionmaker[Session], site_id: int, hosts: list[str]) -> None:
    """Restrict where the site's HL7 may come from."""
    with db.begin() as session:
        site = session.get(Site, site_id)
        assert site is not None
        site.hl7_hosts = hosts


Handle = Callable[..., Outcome]


@pytest.fixture
def handle(settings: Settings, hl7_site: int) -> Handle:
    """Handle messages in order on one event loop, as one connection would."""

    def run(*messages: bytes, peer: str = "127.0.0.1") -> Outcome:
        outcomes = run_in_context(settings, lambda ctx: _all(ctx, messages, peer))
        return outcomes[-1]

    return run


async def _all(context: Hl7Context, messages: tuple[bytes, ...], peer: str) -> list[Outcome]:
    return [await handle_message(context, data, peer=peer) for data in messages]


def run_in_context(
    settings: Settings, work: Callable[[Hl7Context], Awaitable[T]], *, connections: int = 2
) -> T:
    """Run ``work`` with a handling context on the test database and Redis."""

    async def main() -> T:
        engine = make_async_engine(
            settings.require_database_url(), pool_size=connections, pool_timeout=30
        )
        redis = make_async_redis(settings.redis_url) if settings.redis_url else None
        context = Hl7Context(
            sessions=make_async_sessionmaker(engine),
            redis=redis,
            priority_map=settings.hl7_priority_map,
            turnaround_targets=settings.turnaround_targets,
        )
        try:
            return await work(context)
        finally:
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    return asyncio.run(main())


@dataclass
class RunningListener:
    """A listener serving on a thread of its own (its own event loop)."""

    port: int
    stop: Callable[[], None]


@pytest.fixture
def listener(settings: Settings, hl7_site: int) -> Iterator[RunningListener]:
    """``worklist hl7``'s listener in-process on a free port, for site RXA's RIS."""
    with running_listener(settings) as it:
        yield it


@contextmanager
def running_listener(settings: Settings) -> Iterator[RunningListener]:
    """A listener with ``settings`` on a thread of its own, stopped at the end."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def serve() -> None:
        runtime = build_hl7(settings)
        stop = asyncio.Event()
        try:
            await runtime.listener.start("127.0.0.1", 0)
            state.update(port=runtime.listener.port, loop=asyncio.get_running_loop(), stop=stop)
            ready.set()
            await stop.wait()
        finally:
            await runtime.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the HL7 listener did not start"

    def stop() -> None:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(30)

    yield RunningListener(port=state["port"], stop=stop)
    if thread.is_alive():
        stop()
