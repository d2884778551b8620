"""Signing and amending write the result's outbox message in the same transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.fhir.conftest import (
    ACCESSION,
    ADDENDUM_TEXT,
    LOCAL_ID,
    NHS_NUMBER,
    ORIGIN,
    READER,
    READER_GMC,
    READER_NAME,
    SIGNED_TEXT,
    Result,
    assert_valid_diagnostic_report,
    deliveries_of,
    identifiers,
    make_result,
    messages,
    payload,
)
from tests.reports.conftest import run_async
from worklist.config import Settings
from worklist.enums import DeliveryChannel, OutboxEventType, ReportStatus
from worklist.models import OutboxMessage, Report, User
from worklist.reports import service
from worklist.users.repository import get_user


def same_instant(fhir_instant: str, api_timestamp: str) -> bool:
    """FHIR instants are sent to the millisecond; the API gives microseconds."""
    difference = datetime.fromisoformat(api_timestamp) - datetime.fromisoformat(fhir_instant)
    return timedelta(0) <= difference < timedelta(milliseconds=1)


def test_finalising_writes_a_report_finalised_message_with_a_webhook_delivery(
    result: Result, db: sessionmaker[Session]
) -> None:
    signed = result.sign()

    [message] = messages(db)
    assert message.type == OutboxEventType.REPORT_FINALISED
    assert deliveries_of(db, message) == [DeliveryChannel.WEBHOOK]
    body = payload(message)
    assert body["type"] == "report.finalised"
    data = body["data"]
    assert data["study_uid"] == result.study_uid
    assert data["accession_number"] == ACCESSION
    assert data["site"] == {"code": ORIGIN, "name": "Trust A Hospitals NHS Foundation Trust"}
    resource = data["report"]
    assert_valid_diagnostic_report(resource)
    assert resource["status"] == "final"
    assert resource["meta"]["versionId"] == str(signed["version"])
    assert resource["conclusion"] == SIGNED_TEXT
    assert same_instant(resource["issued"], signed["finalised_at"])
    assert resource["resultsInterpreter"] == [
        {"reference": "#practitioner-1", "display": READER_NAME}
    ]
    assert identifiers(resource, "Practitioner") == {
        "https://fhir.hl7.org.uk/Id/gmc-number": READER_GMC,
        "urn:imaging-network:user": READER,
    }
    assert identifiers(resource, "Patient") == {
        "https://fhir.nhs.uk/Id/nhs-number": NHS_NUMBER,
        f"urn:imaging-network:site:{ORIGIN}:patient-id": LOCAL_ID,
    }
    assert identifiers(resource, "ImagingStudy")["urn:dicom:uid"] == f"urn:oid:{result.study_uid}"


def test_an_addendum_writes_report_amended_with_the_addendum_in_the_conclusion(
    result: Result, db: sessionmaker[Session]
) -> None:
    result.sign()

    amended = result.amend()

    finalised, message = messages(db)
    assert finalised.type == OutboxEventType.REPORT_FINALISED
    assert message.type == OutboxEventType.REPORT_AMENDED
    assert deliveries_of(db, message) == [DeliveryChannel.WEBHOOK]
    resource = payload(message)["data"]["report"]
    assert_valid_diagnostic_report(resource)
    assert resource["status"] == "amended"
    assert resource["meta"]["versionId"] == str(amended["version"])
    conclusion = resource["conclusion"]
    assert conclusion.startswith(SIGNED_TEXT)
    assert "ADDENDUM 1" in conclusion
    assert conclusion.endswith(ADDENDUM_TEXT)
    [addendum] = amended["addenda"]
    assert same_instant(resource["issued"], addendum["created_at"])
    # The first message still carries the report as it was signed.
    assert payload(finalised)["data"]["report"]["conclusion"] == SIGNED_TEXT


def test_a_refused_finalise_writes_no_message(result: Result, db: sessionmaker[Session]) -> None:
    draft = result.save()

    stale = result.finalise(draft["version"] + 1)

    assert stale.status_code == 412
    assert messages(db) == []


def test_the_message_commits_and_rolls_back_with_the_signature(
    result: Result, db: sessionmaker[Session], settings: Settings
) -> None:
    version = result.save()["version"]
    assert settings.database_url is not None

    def committed_counts() -> tuple[int, int]:
        with db() as session:
            signed = session.scalar(
                select(func.count()).select_from(Report).where(Report.status != ReportStatus.DRAFT)
            )
            outbox = session.scalar(select(func.count()).select_from(OutboxMessage))
        return signed or 0, outbox or 0

    async def sign(session: AsyncSession, *, commit: bool) -> tuple[int, int]:
        user = await get_user(session, READER)
        assert isinstance(user, User)
        await service.finalise(
            session=session,
            user=user,
            study_uid=result.study_uid,
            version=version,
            lease_seconds=600,
            address=None,
        )
        # Inside the transaction both exist; nobody else sees either yet.
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        seen_outside = committed_counts()
        if commit:
            await session.commit()
        else:
            await session.rollback()
        return seen_outside

    assert run_async(settings.database_url, lambda s: sign(s, commit=False)) == (0, 0)
    assert committed_counts() == (0, 0)

    assert run_async(settings.database_url, lambda s: sign(s, commit=True)) == (0, 0)
    assert committed_counts() == (1, 1)


def test_a_trust_without_a_webhook_gets_the_message_but_no_webhook_delivery(
    client: TestClient, db: sessionmaker[Session], settings: Settings
) -> None:
    result = make_result(client, db, settings, webhook_url=None)

    result.sign()

    [message] = messages(db)
    assert message.type == OutboxEventType.REPORT_FINALISED
    assert deliveries_of(db, message) == []
