"""POST /api/v1/alerts/{id}/acknowledge: who may, once only, idempotent, race-free."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import LiveApi, Network, alert_body, audit_actions, messages

ACK = {"acknowledged_by": "Dr Jane Smith, ED consultant", "note": "Neurosurgery on their way."}


def _raise(client: TestClient, network: Network) -> str:
    response = client.post(
        f"/api/v1/studies/{network.study_uid}/alerts", json=alert_body(), headers=network["rad_b"]
    )
    assert response.status_code == 201, response.text
    alert_id: str = response.json()["id"]
    return alert_id


def _ack(client: TestClient, network: Network, alert_id: str, who: str, body: Any = None) -> Any:
    return client.post(
        f"/api/v1/alerts/{alert_id}/acknowledge", json=body or ACK, headers=network[who]
    )


@pytest.mark.parametrize("who", ["alert_a", "manager_a"])
def test_the_originating_trust_acknowledges_once_and_a_repeat_returns_the_same_answer(
    client: TestClient, network: Network, db: sessionmaker[Session], who: str
) -> None:
    alert_id = _raise(client, network)

    first = _ack(client, network, alert_id, who)
    again = _ack(client, network, alert_id, who, {"acknowledged_by": "Someone else"})

    assert first.status_code == 200, first.text
    acknowledged = first.json()
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledged_by"] == ACK["acknowledged_by"]
    assert acknowledged["acknowledgement_note"] == ACK["note"]
    assert datetime.fromisoformat(acknowledged["acknowledged_at"]) >= datetime.fromisoformat(
        acknowledged["raised_at"]
    )
    assert again.status_code == 200, again.text
    assert {k: v for k, v in again.json().items() if k != "deliveries"} == {
        k: v for k, v in acknowledged.items() if k != "deliveries"
    }
    assert [m.type for m in messages(db, alert_id)] == ["alert.raised", "alert.acknowledged"]
    assert [e["event"] for e in acknowledged["deliveries"]] == [
        "alert.raised",
        "alert.raised",
        "alert.acknowledged",
        "alert.acknowledged",
    ]
    acks = [row for row in audit_actions(db) if row.action == "alert.acknowledged"]
    assert [(row.actor, row.detail["alert_id"]) for row in acks] == [(who, alert_id)]
    shown = client.get(f"/api/v1/alerts/{alert_id}", headers=network["rad_b"]).json()
    assert shown["status"] == "acknowledged"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("rad_b", 403),  # follows the alert they raised, but it is not theirs to take
        ("admin", 403),
        ("rad_a", 404),
        ("alert_c", 404),
        ("manager_c", 404),
        ("rad_c", 404),
    ],
)
def test_only_the_trusts_alert_clients_and_managers_acknowledge(
    client: TestClient, network: Network, db: sessionmaker[Session], who: str, status: int
) -> None:
    alert_id = _raise(client, network)

    response = _ack(client, network, alert_id, who)

    assert response.status_code == status, response.text
    assert [m.type for m in messages(db, alert_id)] == ["alert.raised"]
    shown = client.get(f"/api/v1/alerts/{alert_id}", headers=network["alert_a"]).json()
    assert shown["status"] == "open"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"acknowledged_by": ""},
        {"acknowledged_by": "  "},
        {"acknowledged_by": "x" * 201},
        {"acknowledged_by": "Dr X", "note": "n" * 2001},
        {"acknowledged_by": "Dr X", "extra": 1},
    ],
)
def test_an_invalid_acknowledgement_is_refused_and_changes_nothing(
    client: TestClient, network: Network, db: sessionmaker[Session], body: dict[str, Any]
) -> None:
    alert_id = _raise(client, network)

    response = client.post(
        f"/api/v1/alerts/{alert_id}/acknowledge", json=body, headers=network["alert_a"]
    )

    assert response.status_code == 422, response.text
    assert [m.type for m in messages(db, alert_id)] == ["alert.raised"]
    assert [row.action for row in audit_actions(db)] == ["alert.raised"]


def test_acknowledging_a_malformed_or_unknown_id_is_not_found(
    client: TestClient, network: Network
) -> None:
    for bad in ("nope", "00000000-0000-0000-0000-000000000000"):
        assert _ack(client, network, bad, "alert_a").status_code == 404


def test_concurrent_acknowledgements_record_exactly_one(
    live_api: LiveApi, network: Network, db: sessionmaker[Session]
) -> None:
    alert_id = live_api.raise_alert(network["rad_b"], network.study_uid)["id"]
    callers = 8
    barrier = threading.Barrier(callers)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def acknowledge(n: int) -> None:
        who = "alert_a" if n % 2 else "manager_a"
        with httpx.Client(base_url=live_api.base_url, timeout=10) as http:
            barrier.wait()
            response = http.post(
                f"/api/v1/alerts/{alert_id}/acknowledge",
                json={"acknowledged_by": f"Clinician {n}"},
                headers=network[who],
            )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=acknowledge, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert [r.status_code for r in answers] == [200] * callers
    winners = {r.json()["acknowledged_by"] for r in answers}
    assert len(winners) == 1
    assert [m.type for m in messages(db, alert_id)] == ["alert.raised", "alert.acknowledged"]
    acks = [row for row in audit_actions(db) if row.action == "alert.acknowledged"]
    assert len(acks) == 1
    assert acks[0].detail["acknowledged_by"] in winners
