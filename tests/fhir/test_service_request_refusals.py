"""POST /api/v1/fhir/ServiceRequest refuses clearly: who may not order, for which site,
and input that is not an order (an OperationOutcome, nothing stored, no value echoed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import client
from tests.fhir.orders import (
    ADMIN,
    MANAGER_A,
    ORDERS_A,
    ORDERS_C,
    READER,
    URL,
    Ris,
    ris,
    service_request,
    typed,
)
from worklist.config import Settings
from worklist.models import AuditEvent, Order

__all__ = ["client", "ris"]

INVALID_NHS_NUMBER = "9434765918"  # fails the Modulus 11 check


def _outcome(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    body: dict[str, Any] = response.json()
    OperationOutcome.model_validate(body)
    [issue] = body["issue"]
    assert (issue["severity"], issue["code"]) == ("error", code)
    assert issue["diagnostics"]
    return issue


def _nothing_stored(db: sessionmaker[Session]) -> None:
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Order)) == 0
        orders = select(func.count()).where(AuditEvent.action.startswith("order."))
        assert session.scalar(orders) == 0


@pytest.mark.parametrize("who", [READER, MANAGER_A, ADMIN])
def test_only_a_trusts_order_or_alert_client_may_order_whatever_it_sends(
    ris: Ris, db: sessionmaker[Session], who: str
) -> None:
    for body in (service_request(), b"{not json"):
        _outcome(ris.post(body, who), 403, "forbidden")
    _nothing_stored(db)


def test_without_a_token_it_is_401(ris: Ris, db: sessionmaker[Session]) -> None:
    response = ris.client.post(URL, json=service_request())

    assert response.status_code == 401
    _nothing_stored(db)


@pytest.mark.parametrize(
    "naming",
    [
        {"identifier": [typed("ACSN", "ACC-A-42", "urn:imaging-network:site:TRUSTA:accession")]},
        {"performer": [{"identifier": {"system": "urn:imaging-network:site", "value": "TRUSTA"}}]},
    ],
)
def test_a_client_may_only_order_for_its_own_site(
    ris: Ris, db: sessionmaker[Session], naming: dict[str, Any]
) -> None:
    _outcome(ris.post(service_request(**naming), ORDERS_C), 403, "forbidden")
    _nothing_stored(db)


def test_an_order_applies_to_the_callers_site_only(ris: Ris) -> None:
    response = ris.post(service_request(), ORDERS_C)  # trust C's RIS, the same accession

    assert response.status_code == 201, response.text
    assert response.json()["performer"][0]["identifier"]["value"] == "TRUSTC"
    assert ris.study().order_id is None  # trust A's study is not trust C's order


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _with_patient_nhs_number(value: Any) -> dict[str, Any]:
    body = service_request()
    body["contained"][0]["identifier"][0]["value"] = value
    return body


BAD_INPUT: list[tuple[str, Any, int, str]] = [
    ("not JSON", b"{not json", 400, "structure"),
    ("not UTF-8", b'{"resourceType": "\xff"}', 400, "structure"),
    ("deeply nested", _deep(100_000), 400, "structure"),
    ("an array", [service_request()], 400, "structure"),
    ("another resource", {"resourceType": "Patient", "id": "x"}, 400, "structure"),
    ("no resourceType", service_request(resourceType=None), 400, "structure"),
    ("identifier not a list", service_request(identifier="ACC-A-42"), 400, "structure"),
    ("status not a string", service_request(status=5), 400, "structure"),
    ("NUL in text", service_request(reasonCode=[{"text": "a\x00b"}]), 400, "structure"),
    ("NHS number not a string", _with_patient_nhs_number(9434765919), 400, "structure"),
    ("no identifier", service_request(identifier=None), 422, "required"),
    ("no accession", service_request(identifier=[typed("PLAC", "PL-1")]), 422, "required"),
    (
        "two accessions",
        service_request(identifier=[typed("ACSN", "A1"), typed("ACSN", "A2")]),
        422,
        "value",
    ),
    ("accession too long", service_request(identifier=[typed("ACSN", "A" * 65)]), 422, "value"),
    ("invalid NHS number", _with_patient_nhs_number(INVALID_NHS_NUMBER), 422, "value"),
    ("no subject", service_request(subject=None), 422, "required"),
    ("an unidentified subject", service_request(subject={"display": "J Smith"}), 422, "required"),
    ("unknown priority", service_request(priority="high"), 422, "value"),
    ("no status", service_request(status=None), 422, "required"),
    ("unknown status", service_request(status="cancelled"), 422, "value"),
    ("authoredOn not a date", service_request(authoredOn="yesterday"), 422, "value"),
    ("authoredOn impossible", service_request(authoredOn="2030-02-30"), 422, "value"),
]


@pytest.mark.parametrize(
    ("body", "status", "code"), [case[1:] for case in BAD_INPUT], ids=[c[0] for c in BAD_INPUT]
)
def test_input_that_is_not_an_order_is_refused_with_an_operation_outcome(
    ris: Ris, db: sessionmaker[Session], body: Any, status: int, code: str
) -> None:
    response = ris.post(body)

    _outcome(response, status, code)
    assert INVALID_NHS_NUMBER not in response.text
    _nothing_stored(db)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_fhir_json_is_415(
    ris: Ris, db: sessionmaker[Session], content_type: str
) -> None:
    _outcome(ris.post(service_request(), content_type=content_type), 415, "not-supported")
    _nothing_stored(db)


def test_a_body_over_the_api_limit_is_413(
    ris: Ris, db: sessionmaker[Session], settings: Settings
) -> None:
    body = service_request(reasonCode=[{"text": "x" * settings.max_body_bytes}])

    response = ris.post(json.dumps(body).encode())

    assert response.status_code == 413
    assert "at most" in response.json()["detail"]
    _nothing_stored(db)


def test_an_order_client_has_no_worklist(ris: Ris) -> None:
    response = ris.client.get("/api/v1/worklist", headers=ris.headers[ORDERS_A])

    assert response.status_code == 403


def test_a_refused_request_leaves_the_accepted_order_alone(ris: Ris) -> None:
    ris.post(service_request())

    _outcome(ris.post(service_request(priority="high")), 422, "value")

    [order] = ris.orders()
    assert order.ris_priority == "stat"
