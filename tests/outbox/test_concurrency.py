"""Several dispatchers share the outbox without double work; one hung trust starves no other."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from tests.outbox.conftest import (
    accepted_counts,
    add_webhook_site,
    all_delivered,
    attempts_by_webhook_id,
    enqueue_messages,
    running_dispatcher,
    wait_until,
    webhook_deliveries,
)
from tests.receiver import Received, Reply, WebhookReceiver
from worklist.config import Settings
from worklist.db import normalise_url
from worklist.models import Site
from worklist.outbox import repository
from worklist.outbox.channel import WebhookChannel
from worklist.outbox.dispatcher import MAX_IN_FLIGHT_PER_SITE, Dispatcher, lease_seconds
from worklist.outbox.sender import make_client
from worklist.outbox.targets import TargetPolicy

T = TypeVar("T")
DELIVERED_WITHIN_SECONDS = 60.0


def run_async(
    settings: Settings, scenario: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]
) -> T:
    """Run ``scenario`` with async sessions on the test database."""

    async def main() -> T:
        engine = create_async_engine(normalise_url(settings.require_database_url()))
        try:
            return await scenario(async_sessionmaker(engine, expire_on_commit=False))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_two_dispatchers_deliver_200_messages_each_exactly_once(
    db: sessionmaker[Session],
    fast: Settings,
    trust: Site,
    webhook_receiver: WebhookReceiver,
    redis_client: redis.Redis,
) -> None:
    # A POST times out, and a lease expires, only far beyond the test's own deadline
    # (lease = 2 x timeout + 5 s): every second attempt or POST would be a double claim,
    # never a legitimate retry of a send slowed down by a loaded machine.
    patient = fast.model_copy(update={"webhook_timeout_seconds": 60.0})
    assert lease_seconds(patient) > DELIVERED_WITHIN_SECONDS
    webhook_receiver.behaviour = lambda _: Reply(204, delay=0.005)
    ids = enqueue_messages(db, trust, 100)
    with running_dispatcher(patient, count=2):
        for _ in range(10):
            ids += enqueue_messages(db, trust, 10, wake=redis_client)
        wait_until(
            all_delivered(db, ids), timeout=DELIVERED_WITHIN_SECONDS, what="200 messages delivered"
        )

    counts = accepted_counts(webhook_receiver)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1, "a message was POSTed twice"
    assert all(r.verified for r in webhook_receiver.requests)
    attempts = attempts_by_webhook_id(db)
    rows = webhook_deliveries(db)
    assert all(rows[w].attempts == len(attempts[w]) == 1 for w in ids)


def test_a_hung_endpoint_does_not_hold_up_another_trusts_deliveries(
    db: sessionmaker[Session], fast: Settings, webhook_receiver: WebhookReceiver
) -> None:
    patient = fast.model_copy(update={"webhook_timeout_seconds": 10.0})
    hung = add_webhook_site(db, webhook_receiver.url + "?hung=1")
    healthy = add_webhook_site(db, webhook_receiver.url + "?healthy=1")
    webhook_receiver.secrets = [s.webhook_secret for s in (hung, healthy) if s.webhook_secret]

    def answer(request: Received) -> Reply:
        return Reply(204, delay=10.0) if "hung" in request.path else Reply(204)

    webhook_receiver.behaviour = answer
    # The hung trust's backlog is older, so it is first in line for every free slot.
    enqueue_messages(db, hung, 20)
    healthy_ids = enqueue_messages(db, healthy, 20)
    with running_dispatcher(patient):
        # Well before the hung endpoint's 10 s timeout frees a single slot.
        wait_until(all_delivered(db, healthy_ids), timeout=8, what="healthy trust's deliveries")
        hung_requests = [r for r in webhook_receiver.requests if "hung" in r.path]
        assert hung_requests == []  # all still hanging
    assert set(accepted_counts(webhook_receiver)) == set(healthy_ids)


def test_a_claim_gives_no_site_more_than_its_share_of_slots(
    db: sessionmaker[Session], fast: Settings, webhook_receiver: WebhookReceiver
) -> None:
    busy_site = add_webhook_site(db, webhook_receiver.url)
    other_site = add_webhook_site(db, webhook_receiver.url)
    enqueue_messages(db, busy_site, 10)
    enqueue_messages(db, other_site, 10)

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> Counter[int]:
        async with sessions() as session, session.begin():
            claimed = await repository.claim_due(
                session,
                limit=8,
                lease_seconds=30,
                per_site=MAX_IN_FLIGHT_PER_SITE,
                busy={busy_site.id: MAX_IN_FLIGHT_PER_SITE - 1},
            )
        return Counter(c.site_id for c in claimed)

    claimed = run_async(fast, scenario)
    assert claimed == {busy_site.id: 1, other_site.id: MAX_IN_FLIGHT_PER_SITE}


def test_a_worker_whose_lease_was_taken_over_writes_nothing_to_the_delivery(
    db: sessionmaker[Session], fast: Settings, trust: Site, webhook_receiver: WebhookReceiver
) -> None:
    [webhook_id] = enqueue_messages(db, trust, 1)
    states: list[tuple[str, int]] = []

    def snapshot() -> None:
        row = webhook_deliveries(db)[webhook_id]
        states.append((row.status, row.attempts))

    async def scenario(sessions: async_sessionmaker[AsyncSession]) -> None:
        async with make_client(concurrency=2, policy=TargetPolicy.from_settings(fast)) as client:
            stalled = Dispatcher(fast, sessions, WebhookChannel(fast, client))
            successor = Dispatcher(fast, sessions, WebhookChannel(fast, client))
            async with sessions() as session, session.begin():
                # A lease that is already over: as if this worker stalled past it.
                [old] = await repository.claim_due(
                    session, limit=1, lease_seconds=0.0, per_site=4, busy={}
                )
            [new] = await successor.claim(1)
            assert new.lease_token != old.lease_token
            await stalled.deliver(old)
            snapshot()
            await successor.deliver(new)
            snapshot()

    run_async(fast, scenario)

    assert states == [("pending", 0), ("delivered", 1)]
    # Both POSTs happened and both attempts are on record, with the same webhook-id.
    assert [r.webhook_id for r in webhook_receiver.requests] == [webhook_id, webhook_id]
    assert len(attempts_by_webhook_id(db)[webhook_id]) == 2
