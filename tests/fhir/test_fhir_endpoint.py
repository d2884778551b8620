"""GET /report/fhir: the delivered resource, to whoever may read the result, audited."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.fhir.conftest import (
    ADMIN,
    ALERTS_A,
    ALERTS_C,
    MANAGER_A,
    MANAGER_C,
    OTHER_RADIOLOGIST,
    READER,
    Result,
    assert_valid_diagnostic_report,
    messages,
    payload,
)
from tests.reports.conftest import report_url
from worklist.enums import AuditAction, OutboxEventType


def test_the_endpoint_returns_exactly_the_delivered_resource_for_each_version(
    result: Result, db: sessionmaker[Session]
) -> None:
    signed = result.sign()

    response = result.fhir(READER)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.headers["ETag"] == f'W/"{signed["version"]}"'
    [finalised] = messages(db, OutboxEventType.REPORT_FINALISED)
    assert response.json() == payload(finalised)["data"]["report"]
    assert_valid_diagnostic_report(response.json())

    result.amend()

    amended_response = result.fhir(READER)
    [amended] = messages(db, OutboxEventType.REPORT_AMENDED)
    assert amended_response.json() == payload(amended)["data"]["report"]
    assert amended_response.json()["status"] == "amended"


@pytest.mark.parametrize(
    ("who", "status"),
    [
        (READER, 200),
        (MANAGER_A, 200),
        (ALERTS_A, 200),  # trust A's results system pulls its own result
        (ADMIN, 200),
        (OTHER_RADIOLOGIST, 404),
        (MANAGER_C, 404),
        (ALERTS_C, 404),
    ],
)
def test_the_result_is_readable_by_trust_a_and_invisible_to_trust_c(
    result: Result, who: str, status: int
) -> None:
    result.sign()

    response = result.fhir(who)

    assert response.status_code == status, response.text
    if status == 404:
        assert response.json() == {"detail": "study not found"}


def test_a_draft_is_not_a_result(result: Result, db: sessionmaker[Session]) -> None:
    assert result.fhir(READER).status_code == 404  # no report at all
    result.save()

    response = result.fhir(READER)

    assert response.status_code == 404
    assert "signed report" in response.json()["detail"]
    assert result.fhir(ALERTS_A).status_code == 404
    assert audit_rows(db, AuditAction.REPORT_FHIR_VIEW) == []


def test_reading_the_result_is_audited(result: Result, db: sessionmaker[Session]) -> None:
    signed = result.sign()

    assert result.fhir(ALERTS_A).status_code == 200

    [row] = audit_rows(db, AuditAction.REPORT_FHIR_VIEW)
    assert (row.actor, row.study_uid, row.detail) == (
        ALERTS_A,
        result.study_uid,
        {"version": signed["version"]},
    )


def test_an_alert_client_still_cannot_read_the_report_itself(result: Result) -> None:
    result.sign()

    response = result.send("GET", ALERTS_A, report_url(result.study_uid))

    assert response.status_code == 404


def test_the_endpoint_needs_a_token(result: Result) -> None:
    result.sign()

    response = result.client.get(report_url(result.study_uid, "/fhir"))

    assert response.status_code == 401
