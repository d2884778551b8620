"""410 Gone: the endpoint is disabled (shown to its manager); deliveries wait, none is lost."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.outbox.conftest import (
    all_delivered,
    attempts_by_webhook_id,
    dispatch_once,
    enqueue_messages,
    running_dispatcher,
    wait_until,
    webhook_deliveries,
)
from tests.receiver import Received, Reply, WebhookReceiver
from worklist.config import Settings
from worklist.enums import AuditAction
from worklist.models import AuditEvent, Site


def _site(db: sessionmaker[Session], site_id: int) -> Site:
    with db() as session:
        return session.get_one(Site, site_id)


def _disable_audits(db: sessionmaker[Session]) -> list[AuditEvent]:
    with db() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == AuditAction.WEBHOOK_DISABLED)
            )
        )


def test_410_disables_the_endpoint_and_holds_deliveries_until_it_is_re_enabled(
    db: sessionmaker[Session],
    fast: Settings,
    trust: Site,
    webhook_receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webhook_receiver.behaviour = lambda _: Reply(410)
    with caplog.at_level(logging.WARNING, logger="worklist.outbox"):
        with running_dispatcher(fast):
            [first] = enqueue_messages(db, trust, 1)
            wait_until(lambda: _site(db, trust.id).webhook_disabled_at is not None)
        later = enqueue_messages(db, trust, 3)
        # A dispatcher step claims everything due: nothing of a disabled endpoint's.
        assert dispatch_once(fast) == 0
        assert len(webhook_receiver.requests) == 1

        site = _site(db, trust.id)
        rows = webhook_deliveries(db)
        assert rows[first].status == "pending"
        assert rows[first].attempts == 1
        assert rows[first].last_status_code == 410
        assert all(rows[w].status == "pending" and rows[w].attempts == 0 for w in later)

        webhook_receiver.behaviour = lambda _: Reply(204)
        with db() as session, session.begin():
            session.execute(
                update(Site).where(Site.id == trust.id).values(webhook_disabled_at=None)
            )
        assert dispatch_once(fast) == 4
        assert all_delivered(db, [first, *later])()

    assert site.webhook_disabled_reason is not None
    assert site.webhook_disabled_reason.startswith(f"410 Gone from {webhook_receiver.url} at ")
    [audit] = _disable_audits(db)
    assert (audit.actor, audit.actor_kind, audit.site_id) == ("worker", "system", trust.id)
    assert audit.detail["url"] == webhook_receiver.url
    assert [a.outcome for a in attempts_by_webhook_id(db)[first]] == ["gone", "delivered"]
    assert webhook_deliveries(db)[first].attempts == 2
    assert any("410 Gone" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def test_410_from_a_url_the_site_no_longer_uses_does_not_disable_it(
    db: sessionmaker[Session], fast: Settings, trust: Site, webhook_receiver: WebhookReceiver
) -> None:
    new_url = webhook_receiver.url + "?moved=1"

    def moved_while_answering(request: Received) -> Reply:
        if "moved" in request.path:
            return Reply(204)
        # The trust points its webhook elsewhere while the old endpoint says it is gone.
        with db() as session, session.begin():
            session.execute(update(Site).where(Site.id == trust.id).values(webhook_url=new_url))
        return Reply(410)

    webhook_receiver.behaviour = moved_while_answering
    [webhook_id] = enqueue_messages(db, trust, 1)
    with running_dispatcher(fast):
        wait_until(all_delivered(db, [webhook_id]))

    assert _site(db, trust.id).webhook_disabled_at is None
    assert _disable_audits(db) == []
    stored = attempts_by_webhook_id(db)[webhook_id]
    assert [(a.outcome, a.url) for a in stored] == [
        ("gone", webhook_receiver.url),
        ("delivered", new_url),
    ]
