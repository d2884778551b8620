"""The DiagnosticReport names the order it answers: ``basedOn`` its ServiceRequest."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.fhir.conftest import (
    ACCESSION,
    ORIGIN,
    READER,
    Result,
    assert_valid_diagnostic_report,
    messages,
    payload,
)
from tests.results.conftest import add_order

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def test_based_on_references_the_orders_service_request_by_accession_number(
    result: Result, db: sessionmaker[Session]
) -> None:
    add_order(db, result.study_uid)

    result.sign()

    resource = payload(messages(db)[0])["data"]["report"]
    assert_valid_diagnostic_report(resource)
    assert resource["basedOn"] == [
        {
            "type": "ServiceRequest",
            "identifier": {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "system": f"urn:imaging-network:site:{ORIGIN}:accession",
                "value": ACCESSION,
            },
        }
    ]
    fetched = result.fhir(READER)
    assert fetched.status_code == 200
    assert fetched.json()["basedOn"] == resource["basedOn"]


def test_the_reference_is_the_same_whatever_numbers_the_order_carries(
    result: Result, db: sessionmaker[Session]
) -> None:
    add_order(db, result.study_uid, placer_order_number=None, filler_order_number=None)

    result.sign()

    resource = payload(messages(db)[0])["data"]["report"]
    [reference] = resource["basedOn"]
    assert reference["identifier"]["value"] == ACCESSION


def test_a_study_without_an_order_has_no_based_on(
    result: Result, db: sessionmaker[Session]
) -> None:
    result.sign()
    result.amend()

    for message in messages(db):
        assert "basedOn" not in payload(message)["data"]["report"]
    assert "basedOn" not in result.fhir(READER).json()
