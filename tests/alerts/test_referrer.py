"""Alerts that reach the referrer: an alert on a study with an order is addressed to the
order's referrer, carries the order's clinical context, and every channel (API, webhook
payload, alert stream, FHIR Communication) names the referrer; without an order nothing
changes. Escalation still goes to the trust's alert desk (its webhook and stream)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.communication import Communication
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.conftest import (
    TRUST_A,
    LiveApi,
    Network,
    alert_body,
    audit_actions,
    messages,
)
from tests.conftest import run_committed, run_jobs
from worklist.alerts.escalation import escalate_overdue
from worklist.audit.repository import ActorKind
from worklist.config import Settings
from worklist.enums import OrderSource, PatientSource, Priority
from worklist.models import Alert, Study
from worklist.orders.content import OrderContent, OrderControl, Referrer
from worklist.orders.service import Actor, apply_order
from worklist.worker import Job

REFERRER = Referrer(
    name="Dr Ann Jones",
    code="C1234567",
    organisation="Riverside Surgery",
    organisation_code="B82001",
)
INDICATION = "Sudden severe headache; on apixaban"
REQUESTED_AT = datetime(2030, 1, 7, 8, 15, tzinfo=UTC)
EXPECTED_REFERRER = {
    "name": "Dr Ann Jones",
    "code": "C1234567",
    "organisation": "Riverside Surgery",
}


def _accession(db: sessionmaker[Session], study_uid: str) -> str:
    with db() as session:
        accession = session.scalar(
            select(Study.accession_number).where(Study.study_uid == study_uid)
        )
    assert accession
    return accession


def place_order(
    settings: Settings, network: Network, accession: str, referrer: Referrer = REFERRER
) -> int:
    """Trust A's RIS orders ``accession`` (applied as the HL7 and FHIR intakes apply it)."""
    content = OrderContent(
        control=OrderControl.NEW,
        accession_number=accession,
        placer_order_number="PL-77",
        filler_order_number="FL-88",
        procedure_code="CHEAD",
        procedure_coding_system="NICIP",
        procedure_name="CT Head",
        priority=Priority.STAT,
        ris_priority="S",
        referrer=referrer,
        patient_source=PatientSource.GP,
        indication=INDICATION,
        requested_at=REQUESTED_AT,
    )

    async def work(session: AsyncSession) -> int:
        applied = await apply_order(
            session,
            site_id=network.sites[TRUST_A].id,
            content=content,
            source=OrderSource.HL7,
            actor=Actor(name="ris", kind=ActorKind.SYSTEM),
            turnaround_targets=settings.turnaround_targets,
        )
        return applied.order_id

    return run_committed(settings.require_database_url(), work)


@pytest.fixture
def ordered(network: Network, db: sessionmaker[Session], settings: Settings) -> Network:
    """The network, its study matched to an order from Dr Ann Jones at Riverside Surgery."""
    place_order(settings, network, _accession(db, network.study_uid))
    return network


def _raise(client: TestClient, network: Network, **extra: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/studies/{network.study_uid}/alerts",
        json=alert_body(**extra),
        headers=network["rad_b"],
    )
    assert response.status_code == 201, response.text
    alert: dict[str, Any] = response.json()
    return alert


def _payload(db: sessionmaker[Session], alert_id: str, event: str) -> dict[str, Any]:
    [message] = [m for m in messages(db, alert_id) if m.type == event]
    data: dict[str, Any] = json.loads(message.body)["data"]
    return data


def test_an_alert_on_an_ordered_study_is_addressed_to_the_referrer_with_the_orders_context(
    client: TestClient, ordered: Network, db: sessionmaker[Session]
) -> None:
    alert = _raise(client, ordered)

    assert alert["recipient"] == "Dr Ann Jones, Riverside Surgery"
    assert alert["referrer"] == EXPECTED_REFERRER
    assert alert["order"] == {
        "placer_order_number": "PL-77",
        "filler_order_number": "FL-88",
        "procedure_code": "CHEAD",
        "procedure_name": "CT Head",
        "indication": INDICATION,
        "patient_source": "gp",
        "requested_at": "2030-01-07T08:15:00Z",
    }
    with db() as session:
        stored = session.get_one(Alert, alert["id"])
    assert (stored.referrer_name, stored.referrer_code, stored.referrer_organisation) == (
        "Dr Ann Jones",
        "C1234567",
        "Riverside Surgery",
    )
    # The webhook payload is the alert's JSON: it names the referrer too.
    raised = _payload(db, alert["id"], "alert.raised")
    assert raised["referrer"] == EXPECTED_REFERRER
    assert raised["recipient"] == "Dr Ann Jones, Riverside Surgery"
    assert raised["order"]["indication"] == INDICATION
    fetched = client.get(f"/api/v1/alerts/{alert['id']}", headers=ordered["alert_a"]).json()
    assert fetched["referrer"] == EXPECTED_REFERRER
    assert fetched["order"] == alert["order"]


def test_a_recipient_the_radiologist_names_is_kept_and_the_referrer_still_recorded(
    client: TestClient, ordered: Network
) -> None:
    alert = _raise(client, ordered, recipient="On-call neurosurgical registrar")

    assert alert["recipient"] == "On-call neurosurgical registrar"
    assert alert["referrer"] == EXPECTED_REFERRER


def test_a_referrer_known_only_by_code_is_the_recipient_by_code(
    client: TestClient, network: Network, db: sessionmaker[Session], settings: Settings
) -> None:
    accession = _accession(db, network.study_uid)
    place_order(settings, network, accession, Referrer(code="G7654321", organisation_code="RXA01"))

    alert = _raise(client, network)

    assert alert["recipient"] == "G7654321, RXA01"
    assert alert["referrer"] == {"name": None, "code": "G7654321", "organisation": "RXA01"}


def test_without_an_order_the_referrer_and_order_are_null_and_the_recipient_as_given(
    client: TestClient, network: Network, db: sessionmaker[Session]
) -> None:
    unnamed = _raise(client, network)
    named = _raise(client, network, recipient="Duty consultant")

    assert (unnamed["recipient"], unnamed["referrer"], unnamed["order"]) == (None, None, None)
    assert (named["recipient"], named["referrer"], named["order"]) == (
        "Duty consultant",
        None,
        None,
    )
    payload = _payload(db, unnamed["id"], "alert.raised")
    assert (payload["referrer"], payload["order"], payload["recipient"]) == (None, None, None)


def test_the_alert_keeps_the_referrer_it_was_raised_for_when_the_order_changes(
    client: TestClient, ordered: Network, db: sessionmaker[Session], settings: Settings
) -> None:
    alert = _raise(client, ordered)

    place_order(
        settings,
        ordered,
        _accession(db, ordered.study_uid),
        Referrer(name="Dr Bo Smith", code="C7777777", organisation="Hilltop Practice"),
    )

    fetched = client.get(f"/api/v1/alerts/{alert['id']}", headers=ordered["alert_a"]).json()
    assert fetched["referrer"] == EXPECTED_REFERRER  # who was paged
    assert fetched["recipient"] == "Dr Ann Jones, Riverside Surgery"


def test_escalated_and_acknowledged_payloads_name_the_referrer(
    client: TestClient, ordered: Network, db: sessionmaker[Session], settings: Settings
) -> None:
    alert = _raise(client, ordered)
    due = datetime.fromisoformat(alert["ack_due_at"])
    job = Job("escalate_alerts", lambda session, s: escalate_overdue(session, s, now=due))

    assert run_jobs(settings, (job,))["escalate_alerts"] == 1
    acknowledged = client.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge",
        json={"acknowledged_by": "Dr Ann Jones"},
        headers=ordered["alert_a"],
    )

    assert acknowledged.status_code == 200, acknowledged.text
    for event in ("alert.escalated", "alert.acknowledged"):
        payload = _payload(db, alert["id"], event)
        assert payload["referrer"] == EXPECTED_REFERRER, event
        assert payload["order"]["procedure_name"] == "CT Head", event
    # Escalation goes to the trust as before: its site's message, its webhook and stream.
    escalated = [m for m in messages(db, alert["id"]) if m.type == "alert.escalated"]
    assert [m.site_id for m in escalated] == [ordered.sites[TRUST_A].id]


def test_the_alert_stream_names_the_referrer(live_api: LiveApi, ordered: Network) -> None:
    with live_api.sse(ordered["alert_a"]) as reader:
        raised = live_api.raise_alert(ordered["rad_b"], ordered.study_uid)
        [event] = reader.events(1)

    assert (event.event, event.data is not None) == ("alert.raised", True)
    assert event.data is not None
    assert event.data["id"] == raised["id"]
    assert event.data["referrer"] == EXPECTED_REFERRER
    assert event.data["recipient"] == "Dr Ann Jones, Riverside Surgery"


def _communication(client: TestClient, network: Network, alert_id: str, who: str) -> Any:
    return client.get(f"/api/v1/alerts/{alert_id}/fhir", headers=network[who])


def test_the_fhir_communication_is_addressed_to_the_referrer_and_the_trust(
    client: TestClient, ordered: Network, db: sessionmaker[Session]
) -> None:
    alert = _raise(client, ordered)

    response = _communication(client, ordered, alert["id"], "alert_a")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    resource = response.json()
    Communication.model_validate(resource)
    referrer, trust = resource["recipient"]
    assert referrer["display"] == "Dr Ann Jones"
    assert referrer["identifier"] == {
        "system": "https://fhir.hl7.org.uk/Id/gmc-number",
        "value": "1234567",
    }
    contained = {r["id"]: r for r in resource["contained"]}
    assert referrer["reference"] == "#referrer"
    assert contained["referrer"]["resourceType"] == "Practitioner"
    assert contained["referrer"]["name"] == [{"text": "Dr Ann Jones"}]
    assert trust["type"] == "Organization"
    assert trust["identifier"]["value"] == TRUST_A
    assert resource["status"] == "in-progress"
    assert resource["priority"] == "stat"
    assert resource["payload"] == [{"contentString": alert["finding"]}]
    assert resource["basedOn"][0]["identifier"]["value"] == _accession(db, ordered.study_uid)
    assert resource["about"][0]["identifier"]["value"] == f"urn:oid:{ordered.study_uid}"
    nhs = [i for i in contained["patient"]["identifier"] if "nhs-number" in i["system"]]
    assert nhs == [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}]
    assert [a.action for a in audit_actions(db)][-1] == "alert.view"


def test_the_fhir_communication_without_an_order_goes_to_the_named_recipient_and_trust(
    client: TestClient, network: Network
) -> None:
    alert = _raise(client, network, recipient="Duty consultant")
    client.post(
        f"/api/v1/alerts/{alert['id']}/acknowledge",
        json={"acknowledged_by": "Dr Who", "note": "Patient recalled"},
        headers=network["alert_a"],
    )

    resource = _communication(client, network, alert["id"], "rad_b").json()

    Communication.model_validate(resource)
    assert resource["recipient"][0] == {"display": "Duty consultant"}
    assert resource["recipient"][1]["type"] == "Organization"
    assert "basedOn" not in resource
    assert [r["resourceType"] for r in resource["contained"]] == ["Patient"]
    assert resource["status"] == "completed"
    assert resource["note"] == [{"text": "Acknowledged by Dr Who: Patient recalled"}]
    assert resource["received"].endswith("Z")


@pytest.mark.parametrize(("who", "status"), [("alert_c", 404), ("rad_c", 404), ("admin", 200)])
def test_the_fhir_communication_is_visible_as_the_alert_is(
    client: TestClient, network: Network, who: str, status: int
) -> None:
    alert = _raise(client, network)

    assert _communication(client, network, alert["id"], who).status_code == status


def test_an_unknown_alert_has_no_communication(client: TestClient, network: Network) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert _communication(client, network, missing, "admin").status_code == 404
    assert _communication(client, network, "not-a-uuid", "admin").status_code == 404
