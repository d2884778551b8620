"""/api/v1/sites/{code}/webhook: status, URL, re-enabling after a 410, secret rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH
from tests.sites.conftest import (
    ADMIN,
    ALERTS,
    NORTH_MANAGER,
    NORTH_URL,
    RADIOLOGIST,
    SOUTH_MANAGER,
    Staff,
    audit_text,
    enqueue_for,
    site_row,
    update_site,
    webhook_audit,
)
from worklist.config import Settings
from worklist.enums import AuditAction, DeliveryChannel
from worklist.models import Delivery, DeliveryAttempt

GONE = "410 Gone from https://results.north.example/hooks at 2030-01-07T09:00:00+00:00"


def add_attempts(db: sessionmaker[Session], webhook_count: int) -> None:
    """Record one failed attempt per pending NORTH webhook delivery (oldest first)."""
    with db() as session, session.begin():
        deliveries = session.scalars(
            select(Delivery)
            .where(Delivery.channel == DeliveryChannel.WEBHOOK)
            .order_by(Delivery.id)
            .limit(webhook_count)
        ).all()
        start = datetime.now(UTC) - timedelta(minutes=len(deliveries))
        for n, delivery in enumerate(deliveries):
            session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id,
                    attempt=1,
                    url=NORTH_URL,
                    started_at=start + timedelta(minutes=n),
                    duration_ms=12.5,
                    status_code=500,
                    outcome="failed",
                    error=f"HTTP 500 #{n}",
                )
            )


def test_the_manager_sees_the_endpoint_its_backlog_and_latest_attempts(
    staff: Staff, db: sessionmaker[Session]
) -> None:
    webhook_ids = enqueue_for(db, NORTH, 25)
    add_attempts(db, 25)

    response = staff.call("GET", NORTH_MANAGER, NORTH)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["site"]["code"] == NORTH
    assert (body["url"], body["status"], body["secret_configured"]) == (NORTH_URL, "active", True)
    assert (body["disabled_at"], body["disabled_reason"]) == (None, None)
    assert body["secret_rollover_until"] is None
    assert body["pending_deliveries"] == 25
    assert body["oldest_pending_at"] is not None
    attempts = body["recent_attempts"]
    assert len(attempts) == 20
    assert [a["webhook_id"] for a in attempts] == webhook_ids[::-1][:20]
    assert attempts[0] == {
        "at": attempts[0]["at"],
        "webhook_id": webhook_ids[-1],
        "event": "alert.raised",
        "status_code": 500,
        "outcome": "failed",
        # Stored as "HTTP 500 #24" (as a reply body once was): only the status is shown.
        "error": "HTTP 500 Internal Server Error",
    }
    assert staff.north_secret not in response.text
    assert "whsec_" not in response.text


def test_a_site_without_endpoint_is_not_configured(staff: Staff) -> None:
    response = staff.call("GET", SOUTH_MANAGER, SOUTH)

    assert response.status_code == 200
    body = response.json()
    assert (body["url"], body["status"], body["secret_configured"]) == (
        None,
        "not_configured",
        False,
    )
    assert (body["pending_deliveries"], body["recent_attempts"]) == (0, [])


def test_an_endpoint_disabled_by_a_410_is_shown_and_re_enabled_once(
    staff: Staff, db: sessionmaker[Session]
) -> None:
    disabled_at = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    update_site(db, NORTH, webhook_disabled_at=disabled_at, webhook_disabled_reason=GONE)

    shown = staff.call("GET", NORTH_MANAGER, NORTH).json()
    enabled = staff.call("POST", NORTH_MANAGER, NORTH, "/enable")
    again = staff.call("POST", NORTH_MANAGER, NORTH, "/enable")

    assert shown["status"] == "disabled"
    assert datetime.fromisoformat(shown["disabled_at"]) == disabled_at
    assert shown["disabled_reason"] == GONE
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["status"], enabled.json()["disabled_at"]) == ("active", None)
    assert again.status_code == 200
    assert again.json()["status"] == "active"
    assert site_row(db, NORTH).webhook_disabled_at is None
    [row] = webhook_audit(db)
    assert (row.action, row.actor, row.site_id) == (
        AuditAction.WEBHOOK_ENABLED,
        NORTH_MANAGER,
        site_row(db, NORTH).id,
    )
    assert row.detail["disabled_reason"] == GONE


def test_enabling_a_site_without_endpoint_is_a_conflict(staff: Staff) -> None:
    response = staff.call("POST", SOUTH_MANAGER, SOUTH, "/enable")

    assert response.status_code == 409
    assert "no webhook URL" in response.json()["detail"]


def test_the_first_url_issues_a_secret_once_and_later_urls_keep_it(
    staff: Staff, db: sessionmaker[Session]
) -> None:
    first = staff.call("PUT", SOUTH_MANAGER, SOUTH, json={"url": "https://south.example/a"})
    secret = site_row(db, SOUTH).webhook_secret
    second = staff.call(
        "PUT", SOUTH_MANAGER, SOUTH, json={"url": "http://10.0.0.5:8080/b?token=xyz"}
    )

    assert first.status_code == 200, first.text
    assert first.json()["status"] == "active"
    assert first.json()["secret"] == secret
    assert secret is not None
    assert secret.startswith("whsec_")
    assert second.status_code == 200
    assert second.json()["secret"] is None
    assert second.json()["url"] == "http://10.0.0.5:8080/b?token=xyz"
    assert site_row(db, SOUTH).webhook_secret == secret
    changes = webhook_audit(db)
    assert [r.action for r in changes] == [AuditAction.WEBHOOK_CHANGED] * 2
    assert [r.detail["secret_issued"] for r in changes] == [True, False]
    assert changes[1].detail["url"] == "http://10.0.0.5:8080/b"  # no query: it may hold a token
    assert secret not in audit_text(db)
    assert "xyz" not in audit_text(db)


def test_a_new_url_clears_the_disabled_state_of_the_old_one(
    staff: Staff, db: sessionmaker[Session]
) -> None:
    update_site(db, NORTH, webhook_disabled_at=datetime.now(UTC), webhook_disabled_reason=GONE)

    same = staff.call("PUT", NORTH_MANAGER, NORTH, json={"url": NORTH_URL})
    moved = staff.call("PUT", NORTH_MANAGER, NORTH, json={"url": "https://new.north.example/h"})

    assert same.json()["status"] == "disabled"  # nothing changed: the same endpoint said 410
    assert moved.json()["status"] == "active"
    assert moved.json()["secret"] is None
    assert site_row(db, NORTH).webhook_secret == staff.north_secret
    [row] = webhook_audit(db)
    assert row.detail["re_enabled"] is True


@pytest.mark.parametrize(
    "url",
    [
        "ftp://north.example/x",
        "north.example/hooks",
        "http://",
        "javascript:alert(1)",
        "https://a b",
        "http://north.example:99999/h",
    ],
)
def test_only_absolute_http_urls_are_accepted(
    staff: Staff, db: sessionmaker[Session], url: str
) -> None:
    response = staff.call("PUT", NORTH_MANAGER, NORTH, json={"url": url})

    assert response.status_code == 422
    assert site_row(db, NORTH).webhook_url == NORTH_URL
    assert webhook_audit(db) == []


def test_rotation_returns_a_new_secret_and_keeps_the_old_one_valid_for_the_overlap(
    staff: Staff, db: sessionmaker[Session], settings: Settings
) -> None:
    before = datetime.now(UTC)

    response = staff.call("POST", NORTH_MANAGER, NORTH, "/rotate-secret")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["secret"] != staff.north_secret
    until = datetime.fromisoformat(body["previous_valid_until"])
    overlap = timedelta(seconds=settings.webhook_secret_overlap_seconds)
    assert before + overlap <= until <= datetime.now(UTC) + overlap
    site = site_row(db, NORTH)
    assert (site.webhook_secret, site.webhook_previous_secret) == (
        body["secret"],
        staff.north_secret,
    )
    assert site.webhook_previous_secret_until == until
    status = staff.call("GET", NORTH_MANAGER, NORTH).json()
    assert datetime.fromisoformat(status["secret_rollover_until"]) == until
    [row] = webhook_audit(db)
    assert row.action == AuditAction.WEBHOOK_SECRET_ROTATED
    assert row.detail["overlap_seconds"] == settings.webhook_secret_overlap_seconds
    text = audit_text(db)
    assert body["secret"] not in text
    assert staff.north_secret not in text


def test_rotation_with_a_chosen_overlap_and_with_none(
    staff: Staff, db: sessionmaker[Session]
) -> None:
    first = staff.call("POST", ADMIN, NORTH, "/rotate-secret", json={"overlap_seconds": 60})
    second = staff.call("POST", ADMIN, NORTH, "/rotate-secret", json={"overlap_seconds": 0})

    assert first.status_code == second.status_code == 200
    until = datetime.fromisoformat(first.json()["previous_valid_until"])
    assert timedelta(seconds=30) < until - datetime.now(UTC) <= timedelta(seconds=60)
    assert second.json()["previous_valid_until"] is None
    site = site_row(db, NORTH)
    assert site.webhook_secret == second.json()["secret"]
    assert (site.webhook_previous_secret, site.webhook_previous_secret_until) == (None, None)
    assert staff.call("GET", ADMIN, NORTH).json()["secret_rollover_until"] is None


def test_an_overlap_out_of_range_is_refused(staff: Staff, db: sessionmaker[Session]) -> None:
    response = staff.call("POST", ADMIN, NORTH, "/rotate-secret", json={"overlap_seconds": -1})

    assert response.status_code == 422
    assert site_row(db, NORTH).webhook_secret == staff.north_secret


ENDPOINTS = [
    ("GET", "", None),
    ("PUT", "", {"url": "https://elsewhere.example/h"}),
    ("POST", "/enable", None),
    ("POST", "/rotate-secret", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ENDPOINTS)
@pytest.mark.parametrize(
    ("who", "code", "status"),
    [
        (NORTH_MANAGER, NORTH, 200),
        (ADMIN, NORTH, 200),
        (SOUTH_MANAGER, NORTH, 404),  # another trust's endpoint is not revealed
        (ADMIN, "NOWHERE", 404),
        (RADIOLOGIST, NORTH, 403),
        (ALERTS, NORTH, 403),
    ],
)
def test_only_the_sites_managers_and_admins_manage_its_webhook(
    staff: Staff,
    db: sessionmaker[Session],
    method: str,
    suffix: str,
    body: dict[str, str] | None,
    who: str,
    code: str,
    status: int,
) -> None:
    response = staff.call(method, who, code, suffix, json=body)

    assert response.status_code == status, response.text
    if status != 200:
        site = site_row(db, NORTH)
        assert (site.webhook_url, site.webhook_secret) == (NORTH_URL, staff.north_secret)
        assert webhook_audit(db) == []


def test_webhook_endpoints_need_a_token(staff: Staff) -> None:
    assert staff.client.get(f"/api/v1/sites/{NORTH}/webhook").status_code == 401
