"""Outbox test helpers: trusts whose webhook points at the test receiver, messages, dispatchers."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import add_outbox_message
from tests.receiver import WebhookReceiver
from worklist.config import Settings
from worklist.db import normalise_url
from worklist.enums import DeliveryChannel, OutboxEventType
from worklist.models import Delivery, DeliveryAttempt, OutboxMessage, Site
from worklist.outbox import WAKE_CHANNEL, wake_payload
from worklist.outbox.channel import WebhookChannel
from worklist.outbox.dispatcher import Dispatcher, run_dispatcher
from worklist.outbox.sender import make_client
from worklist.outbox.targets import TargetPolicy
from worklist.sites.service import new_webhook_secret

_codes = itertools.count(1)


@dataclass(frozen=True)
class DeliveryRow:
    """A webhook delivery as stored, with its message's webhook id."""

    webhook_id: str
    status: str
    attempts: int
    last_status_code: int | None


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Settings with short backoff and poll interval, so failures retry quickly.

    The POST timeout stays far above a quick reply's latency on a loaded machine, so an
    answer is never recorded as a timeout; tests of timeouts set a shorter one.
    """
    return settings.model_copy(
        update={
            "webhook_timeout_seconds": 5.0,
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_max_seconds": 0.4,
            "webhook_concurrency": 8,
            "worker_interval_seconds": 0.2,
        }
    )


def add_webhook_site(
    db: sessionmaker[Session],
    url: str,
    *,
    secret: str | None = None,
    code: str | None = None,
    **fields: Any,
) -> Site:
    """Commit a trust whose webhook is ``url`` (with a fresh secret unless given)."""
    number = next(_codes)
    with db() as session, session.begin():
        site = Site(
            code=code or f"T{number}",
            name=f"Trust {number}",
            webhook_url=url,
            webhook_secret=secret or new_webhook_secret(),
            **fields,
        )
        session.add(site)
    return site


@pytest.fixture
def trust(db: sessionmaker[Session], webhook_receiver: WebhookReceiver) -> Site:
    """A trust whose webhook is the receiver, which knows its secret."""
    site = add_webhook_site(db, webhook_receiver.url)
    assert site.webhook_secret is not None
    webhook_receiver.secrets = [site.webhook_secret]
    return site


def enqueue_messages(
    db: sessionmaker[Session],
    site: Site,
    count: int,
    *,
    event_type: OutboxEventType = OutboxEventType.ALERT_RAISED,
    wake: redis.Redis | None = None,
) -> list[str]:
    """Commit ``count`` messages for ``site`` (one transaction); their webhook ids.

    With ``wake`` the Redis wake-up is published after the commit, as the API does.
    """
    with db() as session, session.begin():
        messages = [
            add_outbox_message(
                session, site, event_type=event_type, data={"n": n, "site": site.code}
            )
            for n in range(count)
        ]
    if wake is not None:
        wake.publish(WAKE_CHANNEL, wake_payload({site.id}))
    return [m.webhook_id for m in messages]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client of the test Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@contextmanager
def running_dispatcher(settings: Settings, count: int = 1) -> Iterator[list[threading.Thread]]:
    """``count`` dispatchers in threads, each as the worker runs it; stopped (and checked) after."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=run_dispatcher, args=(settings, stop), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    try:
        yield threads
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not any(t.is_alive() for t in threads), "dispatcher did not stop"


def dispatch_once(settings: Settings) -> int:
    """One dispatcher step, as the running one takes it: claim what is due, send it all and
    record the outcomes; how many were sent."""

    async def step() -> int:
        engine = create_async_engine(normalise_url(settings.require_database_url()))
        try:
            sessions = async_sessionmaker(engine, expire_on_commit=False)
            policy = TargetPolicy.from_settings(settings)
            async with make_client(concurrency=settings.webhook_concurrency, policy=policy) as http:
                channel = WebhookChannel(settings, http)
                return await Dispatcher(settings, sessions, channel).dispatch_once()
        finally:
            await engine.dispose()

    return asyncio.run(step())


def webhook_deliveries(db: sessionmaker[Session]) -> dict[str, DeliveryRow]:
    """Every webhook delivery by its message's webhook id."""
    with db() as session:
        rows = session.execute(
            select(
                OutboxMessage.webhook_id,
                Delivery.status,
                Delivery.attempts,
                Delivery.last_status_code,
            )
            .join(Delivery, Delivery.message_id == OutboxMessage.id)
            .where(Delivery.channel == DeliveryChannel.WEBHOOK)
        ).all()
    return {row[0]: DeliveryRow(row[0], str(row[1]), row[2], row[3]) for row in rows}


def attempts_by_webhook_id(db: sessionmaker[Session]) -> dict[str, list[DeliveryAttempt]]:
    """Every recorded attempt, grouped by webhook id, in attempt order."""
    with db() as session:
        rows = session.execute(
            select(OutboxMessage.webhook_id, DeliveryAttempt)
            .join(Delivery, Delivery.message_id == OutboxMessage.id)
            .join(DeliveryAttempt, DeliveryAttempt.delivery_id == Delivery.id)
            .order_by(DeliveryAttempt.id)
        ).all()
    grouped: dict[str, list[DeliveryAttempt]] = {}
    for webhook_id, attempt in rows:
        grouped.setdefault(webhook_id, []).append(attempt)
    return grouped


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what or predicate}")
        time.sleep(0.05)


def all_delivered(db: sessionmaker[Session], webhook_ids: list[str]) -> Callable[[], bool]:
    """A predicate: every one of ``webhook_ids`` is delivered."""

    def check() -> bool:
        rows = webhook_deliveries(db)
        return all(w in rows and rows[w].status == "delivered" for w in webhook_ids)

    return check


def accepted_counts(receiver: WebhookReceiver) -> Counter[str]:
    """How many times the receiver answered 2xx to each webhook id."""
    return Counter(r.webhook_id for r in receiver.accepted())
