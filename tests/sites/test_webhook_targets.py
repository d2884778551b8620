"""With private targets not allowed (the default): the API refuses them; removing a URL holds."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH
from tests.sites.conftest import (
    ADMIN,
    NORTH_MANAGER,
    NORTH_URL,
    RADIOLOGIST,
    SOUTH_MANAGER,
    Staff,
    audit_text,
    enqueue_for,
    site_row,
    webhook_audit,
)
from worklist.config import Settings
from worklist.enums import AuditAction, DeliveryChannel, DeliveryStatus
from worklist.models import Delivery


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The default policy: public webhook targets only."""
    return settings.model_copy(update={"webhook_allow_private": False})


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:1/", "127.0.0.1 is a loopback address"),
        ("http://localhost:5432/", "localhost names this machine"),
        ("http://[::1]:1/", "::1 is a loopback address"),
        ("http://0/", "non-standard spelling of 0.0.0.0"),
        ("http://0.0.0.0:8000/", "0.0.0.0 is an unspecified address"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.5:8080/hooks", "10.0.0.5 is a private address"),
        ("http://[fd00::5]/hooks", "private"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://2130706433/", "non-standard spelling of 127.0.0.1"),
        ("https://user:secret@results.north.example/hooks", "credentials are not allowed"),
        ("https://results.north.example/hooks#x", "fragment"),
    ],
)
def test_the_api_refuses_a_target_that_is_not_public_with_a_clear_422(
    staff: Staff, db: sessionmaker[Session], url: str, reason: str
) -> None:
    response = staff.call("PUT", NORTH_MANAGER, NORTH, json={"url": url})

    assert response.status_code == 422
    assert reason in response.text
    assert site_row(db, NORTH).webhook_url == NORTH_URL
    assert webhook_audit(db) == []


def test_a_public_name_is_accepted(staff: Staff, db: sessionmaker[Session]) -> None:
    response = staff.call("PUT", ADMIN, NORTH, json={"url": "https://new.north.example/h"})

    assert response.status_code == 200, response.text
    assert site_row(db, NORTH).webhook_url == "https://new.north.example/h"


def test_a_radiologist_is_refused_before_the_target_is_judged(staff: Staff) -> None:
    response = staff.call("PUT", RADIOLOGIST, NORTH, json={"url": "http://127.0.0.1:1/"})

    assert response.status_code == 403


def pending_webhooks(db: sessionmaker[Session]) -> int:
    with db() as session:
        rows = session.scalars(
            select(Delivery).where(
                Delivery.channel == DeliveryChannel.WEBHOOK,
                Delivery.status == DeliveryStatus.PENDING,
            )
        ).all()
    return len(rows)


def test_removing_the_url_holds_pending_and_new_deliveries_and_is_audited(
    staff: Staff, db: sessionmaker[Session]
) -> None:
    enqueue_for(db, NORTH, 2)

    removed = staff.call("DELETE", NORTH_MANAGER, NORTH)
    enqueue_for(db, NORTH, 1)  # an event while there is no URL: held too, not dropped
    again = staff.call("DELETE", NORTH_MANAGER, NORTH)
    status = staff.call("GET", NORTH_MANAGER, NORTH).json()

    assert removed.status_code == 200, removed.text
    assert removed.json()["status"] == "removed"
    assert removed.json()["url"] is None
    assert f"removed by {NORTH_MANAGER}" in removed.json()["disabled_reason"]
    assert again.status_code == 200
    assert (status["status"], status["pending_deliveries"]) == ("removed", 3)
    assert pending_webhooks(db) == 3
    site = site_row(db, NORTH)
    assert site.webhook_url is None
    assert site.webhook_secret == staff.north_secret  # kept for the next URL
    [row] = webhook_audit(db)  # the second removal changed nothing
    assert (row.action, row.actor) == (AuditAction.WEBHOOK_REMOVED, NORTH_MANAGER)
    assert row.detail["url"] == NORTH_URL
    assert staff.north_secret not in audit_text(db)


def test_a_new_url_after_removal_makes_the_endpoint_active_again(
    staff: Staff, db: sessionmaker[Session]
) -> None:
    enqueue_for(db, NORTH, 1)
    staff.call("DELETE", ADMIN, NORTH)

    enable = staff.call("POST", NORTH_MANAGER, NORTH, "/enable")
    put = staff.call("PUT", NORTH_MANAGER, NORTH, json={"url": NORTH_URL})

    assert enable.status_code == 409  # nothing to enable without a URL
    assert put.status_code == 200, put.text
    assert (put.json()["status"], put.json()["pending_deliveries"]) == ("active", 1)
    assert put.json()["secret"] is None
    actions = [(r.action, r.detail.get("re_enabled")) for r in webhook_audit(db)]
    assert actions == [(AuditAction.WEBHOOK_REMOVED, None), (AuditAction.WEBHOOK_CHANGED, True)]


@pytest.mark.parametrize(("who", "status"), [(SOUTH_MANAGER, 404), (RADIOLOGIST, 403)])
def test_only_the_sites_managers_and_admins_remove_its_url(
    staff: Staff, db: sessionmaker[Session], who: str, status: int
) -> None:
    response = staff.call("DELETE", who, NORTH)

    assert response.status_code == status
    assert site_row(db, NORTH).webhook_url == NORTH_URL
    assert webhook_audit(db) == []
