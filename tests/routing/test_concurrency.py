"""Changes of the rules are serialised: concurrent replacements never collide, and a
study being routed holds the rules until its transaction ends."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import run_with_async_sessions
from worklist.audit.repository import ActorKind
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.models import RoutingRule
from worklist.routing import service
from worklist.routing.matcher import Rule
from worklist.sites.service import Actor

OPERATOR = Actor(name="cli:test", kind=ActorKind.SYSTEM)
LISTS = [
    [Rule(0, "neuro", modality="CT"), Rule(1, "general")],
    [Rule(0, "chest", modality="CR"), Rule(1, "msk"), Rule(2, "general")],
]


def stored(db: sessionmaker[Session]) -> list[str]:
    with db() as session:
        rows = session.scalars(select(RoutingRule).order_by(RoutingRule.position))
        return [rule.subspecialty for rule in rows]


def test_concurrent_replacements_each_apply_whole(
    db: sessionmaker[Session], database_url: str
) -> None:
    async def replace(sessions: async_sessionmaker[AsyncSession], rules: list[Rule]) -> None:
        async with sessions() as session, session.begin():
            await service.replace_rules(session, actor=OPERATOR, rules=rules)

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> None:
        for _ in range(5):
            await asyncio.gather(*(replace(sessions, rules) for rules in LISTS))

    run_with_async_sessions(database_url, scenario)

    assert stored(db) in (["neuro", "general"], ["chest", "msk", "general"])


def test_a_replacement_waits_for_a_transaction_routing_studies(
    db: sessionmaker[Session], database_url: str
) -> None:
    async def scenario() -> list[str]:
        # The router, the change and a probe of pg_stat_activity: three connections.
        engine = make_async_engine(database_url, pool_size=3)
        sessions = make_async_sessionmaker(engine)
        order: list[str] = []
        try:
            async with sessions() as router, router.begin():
                await service.hold_rules(router)
                change = asyncio.create_task(_replace_then_note(sessions, order))
                await _wait_for_a_lock_wait(sessions)
                assert not change.done()
                order.append("routed")
            await change
        finally:
            await engine.dispose()
        return order

    assert asyncio.run(scenario()) == ["routed", "changed"]
    assert stored(db) == ["neuro", "general"]


_WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
)


async def _wait_for_a_lock_wait(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Until another session waits for an advisory lock (the rules), 10 s at most."""
    deadline = time.monotonic() + 10
    while True:
        # A new transaction each time: pg_stat_activity is read once per transaction.
        async with sessions() as probe:
            if await probe.scalar(_WAITING):
                return
        assert time.monotonic() < deadline, "the change never waited for the rules"
        await asyncio.sleep(0.01)


async def _replace_then_note(sessions: async_sessionmaker[AsyncSession], order: list[str]) -> None:
    async with sessions() as session, session.begin():
        await service.replace_rules(session, actor=OPERATOR, rules=LISTS[0])
    order.append("changed")
