"""POST /api/v1/studies/{study_uid}/alerts: who may raise, what is written, what is refused."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import (
    FINDING,
    NHS_NUMBER,
    TRUST_A,
    Network,
    add_study_of,
    alert_body,
    audit_actions,
    count_rows,
    deliveries,
    messages,
)
from tests.claims.conftest import add_report
from worklist.enums import ReportStatus


def _raise(client: TestClient, network: Network, who: str, body: dict[str, Any]) -> Any:
    return client.post(
        f"/api/v1/studies/{network.study_uid}/alerts", json=body, headers=network[who]
    )


def test_the_claim_holder_raises_an_alert_for_the_originating_trust_in_one_transaction(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    response = _raise(client, network, "rad_b", alert_body(recipient="On-call neurosurgery"))

    assert response.status_code == 201, response.text
    alert = response.json()
    assert response.headers["Location"] == f"/api/v1/alerts/{alert['id']}"
    assert alert["study_uid"] == network.study_uid
    assert alert["site"] == {"code": TRUST_A, "name": "Trust_A Trust"}
    assert alert["category"] == "critical"
    assert alert["finding"] == FINDING
    assert alert["recipient"] == "On-call neurosurgery"
    assert alert["raised_by"] == "rad_b"
    assert alert["status"] == "open"
    assert alert["escalation_level"] == 0
    assert alert["acknowledged_by"] is None
    assert alert["acknowledged_at"] is None
    assert alert["acknowledgement_note"] is None
    assert alert["patient"]["nhs_number"] == NHS_NUMBER
    assert alert["patient"]["name"] == "PATIENT^ALPHA"
    assert alert["accession_number"]
    raised_at = datetime.fromisoformat(alert["raised_at"])
    assert datetime.fromisoformat(alert["ack_due_at"]) - raised_at == timedelta(minutes=15)
    # Trust A has a webhook: one delivery per channel, neither tried yet.
    assert [(d["channel"], d["status"], d["attempts"]) for d in alert["deliveries"]] == [
        ("webhook", "pending", 0),
        ("sse", "pending", 0),
    ]
    assert {d["event"] for d in alert["deliveries"]} == {"alert.raised"}

    [message] = messages(db, alert["id"])
    assert message.type == "alert.raised"
    assert message.site_id == network.sites[TRUST_A].id
    assert alert["deliveries"][0]["webhook_id"] == message.webhook_id
    body = json.loads(message.body)
    assert body["type"] == "alert.raised"
    expected = {k: v for k, v in alert.items() if k != "deliveries"}
    assert body["data"] == expected
    assert len(deliveries(db, alert["id"])) == 2
    [audited] = audit_actions(db)
    assert (audited.action, audited.actor, audited.study_uid) == (
        "alert.raised",
        "rad_b",
        network.study_uid,
    )
    assert audited.detail["alert_id"] == alert["id"]


def test_the_reports_author_may_raise_an_alert_after_signing(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        study = add_study_of(session, network.sites[TRUST_A])
        add_report(session, study, network.users["rad_a"].id, ReportStatus.FINAL)
        uid = study.study_uid

    response = client.post(
        f"/api/v1/studies/{uid}/alerts",
        json=alert_body("cancer", "New 3 cm spiculated right upper lobe mass."),
        headers=network["rad_a"],
    )

    assert response.status_code == 201, response.text
    assert response.json()["category"] == "cancer"
    due = datetime.fromisoformat(response.json()["ack_due_at"])
    assert due - datetime.fromisoformat(response.json()["raised_at"]) == timedelta(hours=72)


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("rad_a", 403),  # sees the study, holds no claim, wrote no report
        ("manager_a", 403),
        ("admin", 403),
        ("alert_a", 404),  # no worklist: the study does not exist for them
        ("rad_c", 404),
        ("manager_c", 404),
        ("alert_c", 404),
    ],
)
def test_only_the_claim_holder_or_author_raises_and_a_refusal_writes_nothing(
    client: TestClient, network: Network, db: sessionmaker[Session], who: str, status: int
) -> None:
    response = _raise(client, network, who, alert_body())

    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert count_rows(db) == {
        "alerts": 0,
        "alert_breaches": 0,
        "outbox_messages": 0,
        "deliveries": 0,
    }
    assert audit_actions(db) == []


def test_an_unknown_study_is_not_found(client: TestClient, network: Network) -> None:
    response = client.post(
        "/api/v1/studies/1.2.3.4/alerts", json=alert_body(), headers=network["rad_b"]
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"category": "catastrophic", "finding": FINDING},
        {"category": "Critical", "finding": FINDING},
        {"finding": FINDING},
        {"category": "critical"},
        {"category": "critical", "finding": ""},
        {"category": "critical", "finding": "   \n"},
        {"category": "critical", "finding": "x" * 10_001},
        {"category": "critical", "finding": "bad\x00byte"},
        {"category": "critical", "finding": FINDING, "recipient": "r" * 201},
        {"category": "critical", "finding": FINDING, "priority": "high"},
        {"category": "critical", "finding": 42},
    ],
)
def test_an_invalid_alert_is_refused_with_422_and_leaves_nothing_written(
    client: TestClient, network: Network, db: sessionmaker[Session], body: dict[str, Any]
) -> None:
    response = _raise(client, network, "rad_b", body)

    assert response.status_code == 422, response.text
    assert count_rows(db)["alerts"] == 0
    assert count_rows(db)["outbox_messages"] == 0
    assert audit_actions(db) == []


def test_the_longest_finding_and_recipient_are_accepted(
    client: TestClient, network: Network
) -> None:
    body = alert_body("urgent", "f" * 10_000, recipient="r" * 200)
    response = _raise(client, network, "rad_b", body)
    assert response.status_code == 201, response.text
    assert len(response.json()["finding"]) == 10_000


def test_a_site_without_a_webhook_gets_only_the_stream_delivery(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    with db() as session, session.begin():
        study = add_study_of(session, network.sites["TRUST_B"])
        add_report(session, study, network.users["rad_b"].id, ReportStatus.FINAL)
        uid = study.study_uid

    response = client.post(
        f"/api/v1/studies/{uid}/alerts", json=alert_body(), headers=network["rad_b"]
    )

    assert response.status_code == 201, response.text
    assert [d["channel"] for d in response.json()["deliveries"]] == ["sse"]
