"""POST /api/v1/fhir/ServiceRequest: a trust's RIS places, changes and cancels orders as
R4 ServiceRequests; the answer is the order as stored, and matching works as for HL7."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows, client
from tests.fhir.orders import (
    ACCESSION,
    ACT_CODE,
    ALERTS_A,
    NHS_NUMBER,
    NHS_SYSTEM,
    NICIP,
    ODS,
    ORDERS_A,
    READER,
    RECEIVED_AT,
    URL,
    Ris,
    ris,
    service_request,
    typed,
    valid_service_request,
)
from tests.reports.conftest import claim_of
from worklist.enums import AuditAction, OrderStatus, Priority, StudyStatus

__all__ = ["client", "ris"]


def test_a_new_service_request_is_the_sites_order_answered_201_with_what_was_stored(
    ris: Ris, db: sessionmaker[Session]
) -> None:
    valid_service_request(service_request())  # what a RIS sends is a valid R4 resource

    response = ris.post(service_request())

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    [order] = ris.orders()
    assert response.headers["Location"] == f"{URL}/{order.id}"
    resource = response.json()
    valid_service_request(resource)
    assert resource["id"] == str(order.id)
    assert (order.source, order.status, order.last_control) == ("fhir", OrderStatus.ACTIVE, "NW")
    assert order.accession_number == ACCESSION
    assert (order.placer_order_number, order.filler_order_number) == ("PL-77", "FL-88")
    assert (order.nhs_number, order.patient_local_id) == (NHS_NUMBER, "A-000123")
    assert order.patient_name == "SMITH^John^Peter^Mr"
    assert order.patient_birth_date == date(1948, 3, 2)
    assert (order.procedure_coding_system, order.procedure_code) == (NICIP, "CHEAD")
    assert order.procedure_name == "CT Head without contrast"
    assert (order.priority, order.ris_priority, order.ris_status) == (
        Priority.STAT,
        "stat",
        "active",
    )
    assert (order.referrer_name, order.referrer_code) == ("Dr Ann Jones", "1234567")
    assert order.referrer_organisation == "Trust A Emergency Department"
    assert order.referrer_organisation_code == "RXA"
    assert order.patient_source == "emergency"
    assert order.indication == "Fall, on anticoagulants, GCS 14; Head injury"
    assert order.requested_at == datetime(2030, 1, 7, 8, 15, tzinfo=UTC)
    # As sent (the NHS number normalised is in ``nhs_number``).
    assert order.patient_identifiers == [
        {"id": "943 476 5919", "authority": NHS_SYSTEM, "type": None},
        {"id": "A-000123", "authority": "https://trusta.example/Id/mrn", "type": "MR"},
    ]
    [received] = audit_rows(db, AuditAction.ORDER_RECEIVED)
    assert (received.actor, received.detail["source"]) == (ORDERS_A, "fhir")


def test_the_answer_says_what_is_stored_and_reads_back_the_same(ris: Ris) -> None:
    resource = ris.post(service_request()).json()

    contained = {r["id"]: r for r in resource["contained"]}
    [accession] = [i for i in resource["identifier"] if i["type"]["coding"][0]["code"] == "ACSN"]
    assert accession["value"] == ACCESSION
    assert accession["system"] == "urn:imaging-network:site:TRUSTA:accession"
    assert resource["status"] == "active"
    assert resource["priority"] == "stat"
    assert resource["code"]["coding"] == [
        {"system": NICIP, "code": "CHEAD", "display": "CT Head without contrast"}
    ]
    assert resource["subject"] == {"reference": "#patient"}
    patient = contained["patient"]
    assert {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS_NUMBER} in (
        patient["identifier"]
    )
    assert patient["birthDate"] == "1948-03-02"
    role = contained[resource["requester"]["reference"].removeprefix("#")]
    assert role["practitioner"]["display"] == "Dr Ann Jones"
    assert role["organization"]["identifier"] == {"system": ODS, "value": "RXA"}
    encounter = contained[resource["supportingInfo"][0]["reference"].removeprefix("#")]
    assert encounter["class"] == {"system": ACT_CODE, "code": "EMER"}
    assert resource["reasonCode"] == [{"text": "Fall, on anticoagulants, GCS 14; Head injury"}]
    assert resource["authoredOn"] == "2030-01-07T08:15:00.000Z"
    assert resource["performer"][0]["identifier"]["value"] == "TRUSTA"

    read = ris.client.get(f"{URL}/{resource['id']}", headers=ris.headers[ORDERS_A])
    assert read.status_code == 200, read.text
    assert read.json() == resource

    again = ris.post(resource)  # posting the answer back changes nothing
    assert again.status_code == 200, again.text
    unchanged = {k: v for k, v in again.json().items() if k != "meta"}
    assert unchanged == {k: v for k, v in resource.items() if k != "meta"}


def test_the_order_matches_the_waiting_study_and_its_priority_sets_the_due_time(
    ris: Ris, db: sessionmaker[Session]
) -> None:
    ris.post(service_request())

    study = ris.study()
    [order] = ris.orders()
    assert study.order_id == order.id
    assert study.priority is Priority.STAT
    assert study.due_at == RECEIVED_AT + timedelta(hours=1)
    assert [row.study_uid for row in audit_rows(db, AuditAction.ORDER_MATCHED)] == [ris.study_uid]


def test_posting_the_same_accession_again_changes_the_order_and_answers_200(ris: Ris) -> None:
    first = ris.post(service_request())
    second = ris.post(service_request(priority="routine", reasonCode=[{"text": "Follow-up"}]))

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    [order] = ris.orders()
    assert (order.priority, order.last_control) == (Priority.ROUTINE, "XO")
    assert order.indication == "Follow-up; Head injury"
    assert ris.study().priority is Priority.ROUTINE


@pytest.mark.parametrize("status", ["revoked", "entered-in-error"])
def test_a_revoked_request_cancels_the_order_and_takes_its_study_off_the_worklist(
    ris: Ris, db: sessionmaker[Session], status: str
) -> None:
    ris.post(service_request())

    response = ris.post(service_request(status=status))

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    [order] = ris.orders()
    assert (order.status, order.last_control) == (OrderStatus.CANCELLED, "CA")
    assert ris.study().status is StudyStatus.CANCELLED
    assert claim_of(db, ris.study_uid) is None
    assert len(audit_rows(db, AuditAction.ORDER_CANCELLED)) == 1

    reinstated = ris.post(service_request(status="active"))
    assert reinstated.json()["status"] == "active"
    assert ris.study().status is not StudyStatus.CANCELLED


def test_a_revoked_request_for_an_unknown_accession_is_stored_cancelled(ris: Ris) -> None:
    body = service_request(status="revoked", identifier=[typed("ACSN", "NEVER-SEEN")])

    response = ris.post(body)

    assert response.status_code == 201, response.text
    assert response.json()["status"] == "revoked"
    assert ris.orders()[0].status == OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("fhir", "ours"),
    [("stat", "stat"), ("asap", "urgent"), ("urgent", "urgent"), ("routine", "routine")],
)
def test_fhir_priorities_map_to_ours(ris: Ris, fhir: str, ours: str) -> None:
    response = ris.post(service_request(priority=fhir))

    assert response.status_code == 201, response.text
    assert ris.orders()[0].priority == Priority(ours)
    assert response.json()["priority"] == fhir


def _with_setting(
    encounter_class: str | None, organisation: str, display: str | None = None
) -> Any:
    body = service_request()
    body["contained"][1]["organization"]["identifier"]["value"] = organisation
    if encounter_class is None:
        body["contained"].pop(2)
        body["supportingInfo"] = [{"type": "Encounter", "display": display}] if display else []
    else:
        body["contained"][2]["class"]["code"] = encounter_class
    return body


@pytest.mark.parametrize(
    ("encounter_class", "organisation", "display", "source"),
    [
        ("EMER", "RXA", None, "emergency"),
        ("IMP", "RXA", None, "inpatient"),
        ("AMB", "RXA", None, "outpatient"),
        ("HH", "RXA", None, "other"),
        ("AMB", "B82001", None, "gp"),  # a GP practice's ODS code: direct access
        (None, "B82001", None, "gp"),
        ("EMER", "B82001", None, "emergency"),  # sent by the GP to ED: the patient is in ED
        (None, "RXA", "IMP", "inpatient"),  # a logical reference naming the class
        (None, "RXA", "outpatient", "outpatient"),
        (None, "RXA", None, None),
    ],
)
def test_the_patient_source_comes_from_the_encounter_or_a_gp_referrer(
    ris: Ris, encounter_class: str | None, organisation: str, display: str | None, source: str
) -> None:
    response = ris.post(_with_setting(encounter_class, organisation, display))

    assert response.status_code == 201, response.text
    valid_service_request(response.json())
    assert ris.orders()[0].patient_source == source


def test_logical_references_name_the_patient_and_the_referrer(ris: Ris) -> None:
    body = service_request(
        contained=None,
        subject={
            "identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS_NUMBER}
        },
        requester={"type": "Practitioner", "display": "Dr Bo Smith", "identifier": {"value": "G1"}},
        supportingInfo=None,
        code={"coding": [{"system": "http://snomed.info/sct", "code": "169069000"}]},
    )

    response = ris.post(body)

    assert response.status_code == 201, response.text
    valid_service_request(response.json())
    [order] = ris.orders()
    assert (order.nhs_number, order.patient_local_id) == (NHS_NUMBER, None)
    assert (order.referrer_name, order.referrer_code, order.referrer_organisation) == (
        "Dr Bo Smith",
        "G1",
        None,
    )
    assert (order.procedure_code, order.procedure_name) == ("169069000", None)


def test_an_organisation_as_requester_is_the_referring_organisation(ris: Ris) -> None:
    requester = {"identifier": {"system": ODS, "value": "B82001"}, "display": "Riverside Surgery"}

    ris.post(service_request(requester=requester, supportingInfo=None))

    [order] = ris.orders()
    assert (order.referrer_name, order.referrer_code) == (None, None)
    assert (order.referrer_organisation, order.referrer_organisation_code) == (
        "Riverside Surgery",
        "B82001",
    )
    assert order.patient_source == "gp"


def test_a_date_alone_is_midnight_in_england(ris: Ris) -> None:
    ris.post(service_request(authoredOn="2030-07-01"))

    assert ris.orders()[0].requested_at == datetime(2030, 6, 30, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/fhir+json; charset=utf-8"]
)
def test_plain_json_is_accepted_too(ris: Ris, content_type: str) -> None:
    assert ris.post(service_request(), content_type=content_type).status_code == 201


def test_the_sites_alert_client_may_place_orders(ris: Ris, db: sessionmaker[Session]) -> None:
    response = ris.post(service_request(), ALERTS_A)

    assert response.status_code == 201, response.text
    [received] = audit_rows(db, AuditAction.ORDER_RECEIVED)
    assert received.actor == ALERTS_A


def test_the_read_is_audited_and_limited_to_the_sites_clients(
    ris: Ris, db: sessionmaker[Session]
) -> None:
    order_id = ris.post(service_request()).json()["id"]

    def read(who: str, order: str = order_id) -> int:
        return ris.client.get(f"{URL}/{order}", headers=ris.headers[who]).status_code

    assert read(ORDERS_A) == 200
    assert read(ALERTS_A) == 200
    assert read("c.ris") == 404  # another trust's order is not there for it
    assert read(READER) == 403
    assert read(ORDERS_A, "999999") == 404
    assert read(ORDERS_A, "x1") == 404
    assert read(ORDERS_A, "99999999999999") == 404
    viewed = audit_rows(db, AuditAction.ORDER_VIEW)
    assert [(v.actor, v.detail["order_id"]) for v in viewed] == [
        (ORDERS_A, int(order_id)),
        (ALERTS_A, int(order_id)),
    ]
