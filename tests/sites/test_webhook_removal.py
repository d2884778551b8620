"""With the real dispatcher: a removed URL holds deliveries until a new one is set; what a
receiver answers is never shown beyond its status."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH
from tests.receiver import Reply, WebhookReceiver
from tests.sites.conftest import (
    NORTH_MANAGER,
    Staff,
    dispatcher,
    enqueue_for,
    update_site,
    wait_until,
)
from worklist.config import Settings
from worklist.models import Delivery, DeliveryAttempt
from worklist.sites.service import new_webhook_secret

LEAK = "pg_hba.conf rejects host 10.9.8.7 user postgres"


def test_removing_the_url_holds_deliveries_and_setting_one_again_releases_them(
    staff: Staff,
    db: sessionmaker[Session],
    settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    south_secret = new_webhook_secret()
    update_site(db, NORTH, webhook_url=webhook_receiver.url)
    update_site(db, SOUTH, webhook_url=webhook_receiver.url, webhook_secret=south_secret)
    webhook_receiver.secrets = [staff.north_secret, south_secret]

    def pending() -> int:
        return int(staff.call("GET", NORTH_MANAGER, NORTH).json()["pending_deliveries"])

    with dispatcher(settings):
        [before] = enqueue_for(db, NORTH)
        wait_until(lambda: pending() == 0, what="the first message delivered")
        removed = staff.call("DELETE", NORTH_MANAGER, NORTH)
        held = enqueue_for(db, NORTH, 2)
        # Due after the held ones: once it is delivered, they were passed over, not missed.
        [barrier] = enqueue_for(db, SOUTH)
        webhook_receiver.wait_for(lambda reqs: any(r.webhook_id == barrier for r in reqs))
        while_removed = {r.webhook_id for r in webhook_receiver.requests}
        status = staff.call("GET", NORTH_MANAGER, NORTH).json()

        readded = staff.call("PUT", NORTH_MANAGER, NORTH, json={"url": webhook_receiver.url})
        accepted = webhook_receiver.wait_accepted(4)
        wait_until(lambda: pending() == 0, what="the held messages delivered")

    assert removed.json()["status"] == "removed"
    assert while_removed == {before, barrier}
    assert (status["status"], status["pending_deliveries"]) == ("removed", 2)
    assert readded.json()["status"] == "active"
    assert {r.webhook_id for r in accepted} == {before, barrier, *held}


def test_a_receivers_reply_body_reason_and_location_are_never_kept_or_shown(
    staff: Staff,
    db: sessionmaker[Session],
    settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    update_site(db, NORTH, webhook_url=webhook_receiver.url)
    webhook_receiver.secrets = [staff.north_secret]
    replies = iter(
        [
            Reply(302, headers={"Location": f"http://10.9.8.7/{LEAK}"}, body=LEAK.encode()),
            Reply(503, body=LEAK.encode(), reason=LEAK),
        ]
    )
    webhook_receiver.behaviour = lambda _: next(replies, Reply(500, body=LEAK.encode()))

    def answered(count: int) -> bool:
        with db() as session:
            return len(session.scalars(select(DeliveryAttempt)).all()) >= count

    with dispatcher(settings):
        [webhook_id] = enqueue_for(db, NORTH)
        webhook_receiver.wait_for(lambda reqs: len(reqs) >= 2)
        wait_until(lambda: answered(2), what="both answers recorded")

    response = staff.call("GET", NORTH_MANAGER, NORTH)
    first, second = sorted(response.json()["recent_attempts"], key=lambda a: a["at"])[:2]
    assert (first["status_code"], first["error"]) == (302, "HTTP 302 Found (redirect not followed)")
    assert (second["status_code"], second["error"]) == (503, "HTTP 503 Service Unavailable")
    assert "10.9.8.7" not in response.text
    assert "pg_hba" not in response.text
    with db() as session:
        stored = [a.error or "" for a in session.scalars(select(DeliveryAttempt))]
        stored += [d.last_error or "" for d in session.scalars(select(Delivery))]
    assert stored
    assert not any("pg_hba" in text or "10.9.8.7" in text for text in stored)
    assert {r.webhook_id for r in webhook_receiver.requests} == {webhook_id}
