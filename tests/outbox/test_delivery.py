"""Webhook delivery: signed POSTs, retried under one webhook-id until a 2xx, every attempt kept."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict

import pytest
import redis
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.events.conftest import unused_redis_url
from tests.outbox.conftest import (
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
from worklist.models import Delivery, OutboxMessage, Site
from worklist.outbox.signing import USER_AGENT


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_committed_message_is_posted_once_signed_byte_for_byte(
    db: sessionmaker[Session],
    fast: Settings,
    trust: Site,
    webhook_receiver: WebhookReceiver,
    redis_client: redis.Redis,
) -> None:
    delivered_before = _sample(
        "worklist_webhook_attempts_total", {"site": trust.code, "outcome": "delivered"}
    )
    latency_before = _sample("worklist_delivery_latency_seconds_count", {"channel": "webhook"})
    [webhook_id] = enqueue_messages(db, trust, 1, wake=redis_client)

    with running_dispatcher(fast):
        [request] = webhook_receiver.wait_accepted(1)
        wait_until(all_delivered(db, [webhook_id]), what="delivery row marked delivered")

    with db() as session:
        body = session.scalar(
            select(OutboxMessage.body).where(OutboxMessage.webhook_id == webhook_id)
        )
        delivery = session.scalars(select(Delivery)).one()
    assert request.verified
    assert request.webhook_id == webhook_id
    assert body is not None
    assert request.body == body.encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.payload["type"] == "alert.raised"
    assert request.payload["data"] == {"n": 0, "site": trust.code}
    assert delivery.attempts == 1
    assert delivery.delivered_at is not None
    assert delivery.last_status_code == 204
    assert delivery.lease_token is None
    [attempt] = attempts_by_webhook_id(db)[webhook_id]
    assert (attempt.attempt, attempt.outcome, attempt.status_code) == (1, "delivered", 204)
    assert attempt.url == webhook_receiver.url
    assert attempt.retry_at is None
    assert attempt.error is None
    assert len(webhook_receiver.requests) == 1
    assert (
        _sample("worklist_webhook_attempts_total", {"site": trust.code, "outcome": "delivered"})
        == delivered_before + 1
    )
    assert (
        _sample("worklist_delivery_latency_seconds_count", {"channel": "webhook"})
        == latency_before + 1
    )


def test_failures_timeouts_and_429_are_retried_with_the_same_id_until_accepted(
    db: sessionmaker[Session],
    fast: Settings,
    trust: Site,
    webhook_receiver: WebhookReceiver,
) -> None:
    # The quick replies must be recorded as answers, however loaded the machine: a timeout
    # far above their latency, and a reply that arrives well after it.
    patient = fast.model_copy(update={"webhook_timeout_seconds": 2.0})
    seen: defaultdict[str, int] = defaultdict(int)
    lock = threading.Lock()
    script = [
        Reply(500, body=b"database is down"),
        Reply(504, delay=3.0),  # longer than the timeout
        Reply(429, headers={"Retry-After": "1"}),
        Reply(204),
    ]

    def flaky(request: Received) -> Reply:
        with lock:
            n = seen[request.webhook_id]
            seen[request.webhook_id] += 1
        return script[min(n, len(script) - 1)]

    webhook_receiver.behaviour = flaky
    ids = enqueue_messages(db, trust, 6)
    with running_dispatcher(patient):
        wait_until(all_delivered(db, ids), timeout=30, what="every message delivered")
        requests = webhook_receiver.wait_for(lambda reqs: len(reqs) >= 4 * len(ids))

    by_id: defaultdict[str, list[Received]] = defaultdict(list)
    ids_by_body: defaultdict[bytes, set[str]] = defaultdict(set)
    for request in requests:
        by_id[request.webhook_id].append(request)
        ids_by_body[request.body].add(request.webhook_id)
    assert set(by_id) == set(ids)
    assert all(len(found) == 1 for found in ids_by_body.values())
    for webhook_id in ids:
        tries = sorted(by_id[webhook_id], key=lambda r: r.at)
        assert [r.status for r in tries] == [500, 504, 429, 204]
        assert all(r.verified for r in tries)
        assert tries[3].at - tries[2].at >= 1.0, "Retry-After: 1 was not honoured"

    attempts = attempts_by_webhook_id(db)
    rows = webhook_deliveries(db)
    for webhook_id in ids:
        stored = attempts[webhook_id]
        assert [a.attempt for a in stored] == [1, 2, 3, 4]
        assert [a.outcome for a in stored] == ["failed", "timeout", "failed", "delivered"]
        assert [a.status_code for a in stored] == [500, None, 429, 204]
        # Our words only: the receiver's reply body is neither stored nor shown.
        assert stored[0].error == "HTTP 500 Internal Server Error"
        assert all(a.retry_at is not None for a in stored[:3])
        assert stored[3].retry_at is None
        retry_after_wait = stored[2].retry_at - stored[2].started_at  # type: ignore[operator]
        assert retry_after_wait.total_seconds() >= 1.0
        assert rows[webhook_id].attempts == 4
        assert rows[webhook_id].status == "delivered"


def test_redirects_are_not_followed(
    db: sessionmaker[Session], fast: Settings, trust: Site, webhook_receiver: WebhookReceiver
) -> None:
    answers = iter([Reply(302, headers={"Location": "/elsewhere"})])
    webhook_receiver.behaviour = lambda _: next(answers, Reply(204))
    [webhook_id] = enqueue_messages(db, trust, 1)

    with running_dispatcher(fast):
        wait_until(all_delivered(db, [webhook_id]))

    assert {r.path for r in webhook_receiver.requests} == {"/hooks"}
    outcomes = [(a.outcome, a.status_code) for a in attempts_by_webhook_id(db)[webhook_id]]
    assert outcomes == [("failed", 302), ("delivered", 204)]


def test_connection_errors_are_retried_until_the_endpoint_answers(
    db: sessionmaker[Session], fast: Settings, webhook_receiver: WebhookReceiver
) -> None:
    site = add_webhook_site(db, "http://127.0.0.1:1/hooks")
    assert site.webhook_secret is not None
    webhook_receiver.secrets = [site.webhook_secret]
    [webhook_id] = enqueue_messages(db, site, 1)

    with running_dispatcher(fast):
        wait_until(lambda: len(attempts_by_webhook_id(db).get(webhook_id, [])) >= 2)
        with db() as session, session.begin():
            session.execute(
                update(Site).where(Site.id == site.id).values(webhook_url=webhook_receiver.url)
            )
        wait_until(all_delivered(db, [webhook_id]))

    stored = attempts_by_webhook_id(db)[webhook_id]
    assert stored[0].outcome == "error"
    assert stored[0].url == "http://127.0.0.1:1/hooks"
    assert stored[0].error
    assert stored[-1].outcome == "delivered"
    assert stored[-1].url == webhook_receiver.url
    assert webhook_deliveries(db)[webhook_id].attempts == len(stored)


def test_a_redis_wake_up_delivers_at_once_without_waiting_for_the_poll(
    db: sessionmaker[Session],
    fast: Settings,
    trust: Site,
    webhook_receiver: WebhookReceiver,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slow_poll = fast.model_copy(update={"worker_interval_seconds": 60.0})
    with (
        caplog.at_level(logging.DEBUG, logger="worklist.outbox.wakeups"),
        running_dispatcher(slow_poll),
    ):
        wait_until(
            lambda: any(r.getMessage() == "subscribed to outbox wake-ups" for r in caplog.records)
        )
        enqueue_messages(db, trust, 1, wake=redis_client)
        webhook_receiver.wait_accepted(1, timeout=10)
        # Now idle until the 60 s poll: only the wake-up can bring the next one.
        enqueue_messages(db, trust, 1, wake=redis_client)
        webhook_receiver.wait_accepted(2, timeout=10)


def test_without_redis_deliveries_go_out_through_the_poll(
    db: sessionmaker[Session],
    fast: Settings,
    trust: Site,
    webhook_receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    no_redis = fast.model_copy(update={"redis_url": unused_redis_url()})
    with caplog.at_level(logging.WARNING, logger="worklist.outbox"), running_dispatcher(no_redis):
        first = enqueue_messages(db, trust, 3)
        wait_until(all_delivered(db, first))
        second = enqueue_messages(db, trust, 2)
        wait_until(all_delivered(db, second))

    assert {r.webhook_id for r in webhook_receiver.accepted()} == set(first + second)
    assert any(
        r.getMessage() == "redis unavailable, outbox falls back on polling" for r in caplog.records
    )


def test_the_dispatcher_survives_a_database_outage_and_stops_promptly(
    fast: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = fast.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    )
    with (
        caplog.at_level(logging.WARNING, logger="worklist.outbox.dispatcher"),
        running_dispatcher(unreachable) as [thread],
    ):
        wait_until(
            lambda: any(
                r.getMessage() == "database unavailable, webhooks wait" for r in caplog.records
            )
        )
        assert thread.is_alive()
    # running_dispatcher asserted that it stopped when told to.
    assert not thread.is_alive()
