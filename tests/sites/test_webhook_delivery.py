"""With the real dispatcher: a 410 is shown to the manager and undone; rotation keeps receipt."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH
from tests.receiver import Received, Reply, WebhookReceiver
from tests.sites.conftest import (
    NORTH_MANAGER,
    Staff,
    dispatcher,
    enqueue_for,
    update_site,
    wait_until,
)
from worklist.config import Settings


def test_a_410_disables_the_endpoint_the_manager_sees_it_and_enabling_releases_the_held(
    staff: Staff,
    db: sessionmaker[Session],
    settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    update_site(db, NORTH, webhook_url=webhook_receiver.url)
    webhook_receiver.secrets = [staff.north_secret]
    webhook_receiver.behaviour = lambda request: Reply(410)

    with dispatcher(settings):
        [gone_id] = enqueue_for(db, NORTH)
        webhook_receiver.wait_for(lambda requests: any(r.status == 410 for r in requests))

        def disabled() -> bool:
            return bool(staff.call("GET", NORTH_MANAGER, NORTH).json()["status"] == "disabled")

        wait_until(disabled, what="the 410 disables the endpoint")
        # Enqueued once the endpoint is disabled (the 410 is recorded after its answer).
        held_ids = enqueue_for(db, NORTH, 2)
        status = staff.call("GET", NORTH_MANAGER, NORTH).json()
        webhook_receiver.behaviour = lambda request: Reply(204)

        enabled = staff.call("POST", NORTH_MANAGER, NORTH, "/enable")
        accepted = webhook_receiver.wait_accepted(3)

    assert "410" in status["disabled_reason"]
    assert status["pending_deliveries"] == 3
    latest = status["recent_attempts"][0]
    assert (latest["webhook_id"], latest["status_code"], latest["outcome"]) == (
        gone_id,
        410,
        "gone",
    )
    assert enabled.json()["status"] == "active"
    assert {r.webhook_id for r in accepted} == {gone_id, *held_ids}
    after = staff.call("GET", NORTH_MANAGER, NORTH).json()
    assert after["pending_deliveries"] == 0


def test_receivers_keep_verifying_with_the_old_secret_during_the_rollover(
    staff: Staff,
    db: sessionmaker[Session],
    settings: Settings,
    webhook_receiver: WebhookReceiver,
) -> None:
    update_site(db, NORTH, webhook_url=webhook_receiver.url)
    rotation = staff.call(
        "POST", NORTH_MANAGER, NORTH, "/rotate-secret", json={"overlap_seconds": 3600}
    ).json()
    new_secret = rotation["secret"]

    def accepted_ids(requests: list[Received]) -> set[str]:
        return {r.webhook_id for r in requests if r.status == 204}

    with dispatcher(settings):
        webhook_receiver.secrets = [staff.north_secret]  # a receiver not yet updated
        [during_old] = enqueue_for(db, NORTH)
        webhook_receiver.wait_for(lambda requests: during_old in accepted_ids(requests))

        webhook_receiver.secrets = [new_secret]  # a receiver already updated
        [during_new] = enqueue_for(db, NORTH)
        webhook_receiver.wait_for(lambda requests: during_new in accepted_ids(requests))

        retired = staff.call(
            "POST", NORTH_MANAGER, NORTH, "/rotate-secret", json={"overlap_seconds": 0}
        ).json()
        webhook_receiver.secrets = [new_secret]  # now one secret too old
        [after] = enqueue_for(db, NORTH)
        webhook_receiver.wait_for(
            lambda requests: any(r.webhook_id == after and r.status == 400 for r in requests)
        )
        webhook_receiver.secrets = [retired["secret"]]
        webhook_receiver.wait_for(lambda requests: after in accepted_ids(requests))

    assert retired["previous_valid_until"] is None
