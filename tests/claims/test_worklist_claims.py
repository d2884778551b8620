"""Claims and report status on the worklist, the study detail and its priors; ``mine=true``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import NORTH, SOUTH, T0, add_patient, add_study
from tests.claims.conftest import Staff, add_claim, add_expired_claim, add_report
from worklist.claims.schemas import NextCase
from worklist.enums import ReportStatus, StudyStatus
from worklist.identity import make_nhs_number
from worklist.models import Order, Site
from worklist.studies.schemas import WorklistPage

WORKLIST = "/api/v1/worklist"


def items(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    """Worklist items by study UID."""
    response = client.get(WORKLIST, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return {item["study_uid"]: item for item in response.json()["items"]}


def test_worklist_shows_the_running_claim_and_the_report_status(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        free = add_study(session, patient)
        held = add_study(session, patient)
        add_claim(session, held, staff.ids["rad_north"], claimed_at=T0, expires_at=future)
        add_report(session, held, staff.ids["rad_north"], ReportStatus.DRAFT)
        lapsed = add_study(session, patient)
        add_expired_claim(session, lapsed, staff.ids["rad_north2"])
        reported = add_study(session, patient, status=StudyStatus.REPORTED)
        add_report(session, reported, staff.ids["rad_north"], ReportStatus.FINAL)

    listed = items(client, staff["admin"], status=["ready", "in_progress", "reported"])

    assert listed[free.study_uid]["claim"] is None
    assert listed[free.study_uid]["report_status"] is None
    claim = listed[held.study_uid]["claim"]
    assert claim["username"] == "rad_north"
    assert datetime.fromisoformat(claim["expires_at"]) == future
    assert listed[held.study_uid]["report_status"] == "draft"
    assert listed[lapsed.study_uid]["claim"] is None
    assert listed[reported.study_uid]["report_status"] == "final"


def test_worklist_page_is_one_query_whatever_its_claims_and_reports(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        for n in range(12):
            study = add_study(session, patient)
            if n % 2:
                add_claim(
                    session,
                    study,
                    staff.ids["rad_north"],
                    claimed_at=T0,
                    expires_at=datetime.now(UTC) + timedelta(hours=1),
                )
            if n % 3 == 0:
                add_report(session, study, staff.ids["rad_north"], ReportStatus.DRAFT)
    # Every statement the API sends, through SQLAlchemy or straight to the driver (the
    # page is sent to psycopg): counted where both end, psycopg's cursor, then sent on.
    statements: list[str] = []
    execute = psycopg.AsyncCursor.execute

    async def counted(cursor: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return await execute(cursor, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.AsyncCursor, "execute", counted)
        assert len(items(client, staff["rad_north"], limit=200)) == 12

    # Claims, holders and reports come with the page, never one query per study.
    touching = [s for s in statements if any(t in s for t in ("studies", "claims", "reports"))]
    assert len(touching) == 1


def test_mine_lists_only_studies_the_caller_holds(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        mine = add_study(session, patient)
        add_claim(session, mine, staff.ids["rad_north"], claimed_at=T0, expires_at=future)
        theirs = add_study(session, patient)
        add_claim(session, theirs, staff.ids["rad_north2"], claimed_at=T0, expires_at=future)
        lapsed = add_study(session, patient)
        add_expired_claim(session, lapsed, staff.ids["rad_north"])
        add_study(session, patient)

    assert list(items(client, staff["rad_north"], mine="true")) == [mine.study_uid]
    assert list(items(client, staff["rad_north2"], mine="true")) == [theirs.study_uid]
    assert items(client, staff["admin"], mine="true") == {}


def test_mine_follows_claims_made_through_the_api(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        first, second = add_study(session, patient), add_study(session, patient)
    client.post(f"/api/v1/studies/{first.study_uid}/claim", headers=staff["rad_north"])
    client.post(f"/api/v1/studies/{second.study_uid}/claim", headers=staff["rad_north"])
    client.delete(f"/api/v1/studies/{second.study_uid}/claim", headers=staff["rad_north"])

    assert list(items(client, staff["rad_north"], mine="true")) == [first.study_uid]


def test_study_detail_and_priors_carry_claim_and_report_status(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    nhs_number = make_nhs_number(77)
    future = datetime.now(UTC) + timedelta(hours=1)
    with db() as session, session.begin():
        current = add_study(session, add_patient(session, sites[NORTH], nhs_number=nhs_number))
        add_claim(session, current, staff.ids["rad_both"], claimed_at=T0, expires_at=future)
        prior = add_study(
            session,
            add_patient(session, sites[SOUTH], nhs_number=nhs_number),
            status=StudyStatus.REPORTED,
            received_at=T0 - timedelta(days=90),
        )
        add_report(session, prior, staff.ids["rad_both"], ReportStatus.AMENDED)

    response = client.get(f"/api/v1/studies/{current.study_uid}", headers=staff["rad_north"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["claim"]["username"] == "rad_both"
    assert body["report_status"] is None
    assert [(p["study_uid"], p["report_status"]) for p in body["priors"]] == [
        (prior.study_uid, "amended")
    ]


def test_the_page_and_next_write_exactly_what_their_response_models_write(
    client: TestClient, db: sessionmaker[Session], sites: dict[str, Site], staff: Staff
) -> None:
    """The hot routes serialise rows without the models (``worklist.jsonbody``): every
    field kind (claim, report, order with its referrer, dates, aware datetimes, enums,
    flags) must come back unchanged from the model, so the body is the model's."""
    future = datetime.now(UTC).replace(microsecond=123456) + timedelta(hours=1)
    with db() as session, session.begin():
        patient = add_patient(session, sites[NORTH])
        order = Order(
            site_id=patient.site_id,
            accession_number="ACC-JSON-1",
            placer_order_number="PL-1",
            filler_order_number="FI-1",
            status="active",
            last_control="NW",
            source="hl7",
            patient_identifiers=[],
            procedure_code="CHEST",
            procedure_name="CT chest",
            indication="Cough; ?mass",
            referrer_name="Dr Jones",
            referrer_code="G123",
            referrer_organisation="A81001",
            patient_source="gp",
            requested_at=T0,
            updated_at=T0,
        )
        session.add(order)
        session.flush()
        ordered = add_study(
            session, patient, accession_number="ACC-JSON-1", order_id=order.id, flags=["urgent"]
        )
        held = add_study(session, patient, received_at=T0 + timedelta(seconds=1))
        add_claim(session, held, staff.ids["rad_north"], claimed_at=T0, expires_at=future)
        add_report(session, held, staff.ids["rad_north"], ReportStatus.DRAFT)
        add_study(session, patient, received_at=T0 + timedelta(seconds=2))

    response = client.get(WORKLIST, headers=staff["rad_north"], params={"limit": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == WorklistPage.model_validate(body).model_dump(mode="json")
    shown = {item["study_uid"]: item for item in body["items"]}
    assert shown[ordered.study_uid]["order"]["referrer"]["code"] == "G123"
    assert shown[held.study_uid]["claim"]["username"] == "rad_north"
    assert body["next_cursor"] is not None

    taken = client.post("/api/v1/worklist/next", headers=staff["rad_north2"])
    assert taken.status_code == 200, taken.text
    case = taken.json()
    assert case == NextCase.model_validate(case).model_dump(mode="json")
    assert case["claim"]["username"] == "rad_north2"
