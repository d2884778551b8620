"""GET /api/v1/alerts and /api/v1/alerts/{id}: visibility by role and trust, filters, pages,
the audit of every read, and how deliveries are shown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import (
    TRUST_A,
    TRUST_C,
    Network,
    add_study_of,
    alert_body,
    audit_actions,
    claim_for,
)
from worklist.enums import DeliveryChannel
from worklist.models import Delivery, Site


def _raise(client: TestClient, network: Network, uid: str, who: str = "rad_b", **body: Any) -> str:
    response = client.post(
        f"/api/v1/studies/{uid}/alerts", json=alert_body(**body), headers=network[who]
    )
    assert response.status_code == 201, response.text
    alert_id: str = response.json()["id"]
    return alert_id


@pytest.fixture
def two_trusts_alerts(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> dict[str, str]:
    """One alert on trust A's study (by rad_b) and one on a trust C study (by rad_c)."""
    with db() as session, session.begin():
        study_c = add_study_of(session, network.sites[TRUST_C])
        claim_for(session, study_c, network.users["rad_c"])
        uid_c = study_c.study_uid
    return {
        TRUST_A: _raise(client, network, network.study_uid),
        TRUST_C: _raise(client, network, uid_c, "rad_c", category="urgent"),
    }


def _listed(client: TestClient, network: Network, who: str, **params: Any) -> list[str]:
    response = client.get("/api/v1/alerts", params=params, headers=network[who])
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("alert_a", {TRUST_A}),
        ("manager_a", {TRUST_A}),
        ("rad_b", {TRUST_A}),  # the alerts they raised
        ("rad_a", set()),  # trust A's radiologist did not raise it
        ("alert_c", {TRUST_C}),
        ("manager_c", {TRUST_C}),
        ("rad_c", {TRUST_C}),
        ("admin", {TRUST_A, TRUST_C}),
    ],
)
def test_each_role_lists_and_reads_exactly_the_alerts_it_may_see(
    client: TestClient,
    network: Network,
    two_trusts_alerts: dict[str, str],
    who: str,
    sees: set[str],
) -> None:
    expected = {two_trusts_alerts[trust] for trust in sees}
    assert set(_listed(client, network, who)) == expected
    for trust, alert_id in two_trusts_alerts.items():
        response = client.get(f"/api/v1/alerts/{alert_id}", headers=network[who])
        assert response.status_code == (200 if trust in sees else 404), (trust, response.text)
        if trust in sees:
            assert response.json()["id"] == alert_id
            assert response.json()["site"]["code"] == trust


def test_reading_alerts_is_audited_with_the_alert_ids(
    client: TestClient,
    network: Network,
    db: sessionmaker[Session],
    two_trusts_alerts: dict[str, str],
) -> None:
    alert_a = two_trusts_alerts[TRUST_A]
    _listed(client, network, "alert_a")
    client.get(f"/api/v1/alerts/{alert_a}", headers=network["manager_a"])

    views = [row for row in audit_actions(db) if row.action == "alert.view"]
    assert [(v.actor, v.detail["alert_ids"]) for v in views] == [
        ("alert_a", [alert_a]),
        ("manager_a", [alert_a]),
    ]
    assert views[1].study_uid == network.study_uid
    assert views[1].site_id == network.sites[TRUST_A].id


@pytest.mark.parametrize(
    "bad", ["not-a-uuid", "1", "0b8a3c1e-2f4d-4e5a-9b6c-7d8e9f0a1b2c", "stream2"]
)
def test_a_malformed_or_unknown_alert_id_is_not_found(
    client: TestClient, network: Network, bad: str
) -> None:
    assert client.get(f"/api/v1/alerts/{bad}", headers=network["admin"]).status_code == 404


def test_the_list_filters_and_pages_newest_first(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        other = add_study_of(session, network.sites[TRUST_A])
        claim_for(session, other, network.users["rad_b"])
        other_uid = other.study_uid
    raised = [
        _raise(client, network, network.study_uid, category="critical"),
        _raise(client, network, other_uid, category="urgent"),
        _raise(client, network, network.study_uid, category="cancer"),
        _raise(client, network, other_uid, category="critical"),
        _raise(client, network, network.study_uid, category="critical"),
    ]
    newest_first = list(reversed(raised))

    pages: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/api/v1/alerts", params=params, headers=network["alert_a"]).json()
        pages.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
    assert pages == newest_first
    assert cursor is None

    assert _listed(client, network, "alert_a", category="critical") == [
        raised[4],
        raised[3],
        raised[0],
    ]
    assert _listed(client, network, "alert_a", study_uid=other_uid) == [raised[3], raised[1]]
    assert _listed(client, network, "alert_a", status="acknowledged") == []
    assert _listed(client, network, "alert_a", status="open") == newest_first


@pytest.mark.parametrize(
    "params",
    [
        {"status": "closed"},
        {"category": "minor"},
        {"limit": 0},
        {"limit": 201},
        {"cursor": "not-a-cursor"},
        {"cursor": "WyJ4Il0"},  # base64 JSON of the wrong shape
    ],
)
def test_invalid_list_parameters_answer_422(
    client: TestClient, network: Network, params: dict[str, Any]
) -> None:
    response = client.get("/api/v1/alerts", params=params, headers=network["admin"])
    assert response.status_code == 422, response.text


def test_deliveries_show_retrying_held_and_delivered(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    alert_id = _raise(client, network, network.study_uid)
    now = datetime.now(UTC)
    with db() as session, session.begin():
        session.execute(
            update(Delivery)
            .where(Delivery.channel == DeliveryChannel.WEBHOOK)
            .values(attempts=2, last_attempt_at=now, last_status_code=503, last_error="HTTP 503")
        )
        session.execute(
            update(Delivery)
            .where(Delivery.channel == DeliveryChannel.SSE)
            .values(status="delivered", attempts=1, last_attempt_at=now, delivered_at=now)
        )

    def shown() -> list[tuple[str, str, int, int | None]]:
        alert = client.get(f"/api/v1/alerts/{alert_id}", headers=network["alert_a"]).json()
        return [
            (d["channel"], d["status"], d["attempts"], d["last_status_code"])
            for d in alert["deliveries"]
        ]

    assert shown() == [("webhook", "retrying", 2, 503), ("sse", "delivered", 1, None)]

    with db() as session, session.begin():
        session.execute(
            update(Site)
            .where(Site.id == network.sites[TRUST_A].id)
            .values(webhook_disabled_at=now, webhook_disabled_reason="410 Gone")
        )
    assert shown() == [("webhook", "held", 2, 503), ("sse", "delivered", 1, None)]
