"""POST /report/finalise: signing ends the claim, reports the study, and freezes the text."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.reports.conftest import (
    HOLDER,
    Ward,
    claim_of,
    report_url,
    run_async,
    set_claim,
    study_row,
    versions_of,
)
from worklist.config import Settings
from worklist.enums import AuditAction, ReportStatus, StudyFlag, StudyStatus
from worklist.errors import Conflict
from worklist.events import EventType, WorklistEvent
from worklist.reports import repository
from worklist.reports import service as report_service

SIGNED_TEXT = "No acute intracranial abnormality."


@pytest.fixture
def staged_events(monkeypatch: pytest.MonkeyPatch) -> list[WorklistEvent]:
    """Every event the report service stages."""
    events: list[WorklistEvent] = []
    monkeypatch.setattr(report_service, "stage", lambda session, event: events.append(event))
    return events


def test_draft_to_final_reports_the_study_and_ends_the_claim(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    saved = ward.save(HOLDER, SIGNED_TEXT).json()

    response = ward.finalise(HOLDER, saved["version"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "final"
    assert body["text"] == SIGNED_TEXT
    assert body["version"] == 2
    assert body["finalised_by"] == HOLDER
    assert body["finalised_at"] is not None
    assert response.headers["ETag"] == '"2"'
    assert study_row(db, ward.study_uid).status is StudyStatus.REPORTED
    assert claim_of(db, ward.study_uid) is None
    assert [(v.version, v.status) for v in versions_of(db, ward.study_uid)] == [
        (1, ReportStatus.DRAFT),
        (2, ReportStatus.FINAL),
    ]
    assert ward.get(HOLDER).json() == body


def test_finalising_stages_the_event_and_audits(
    ward: Ward, db: sessionmaker[Session], staged_events: list[WorklistEvent]
) -> None:
    ward.signed()

    [event] = staged_events
    assert event.type == EventType.REPORT_FINALISED
    assert event.study_uid == ward.study_uid
    assert event.site_id == study_row(db, ward.study_uid).site_id
    assert event.data["version"] == 2
    assert event.data["finalised_by"] == HOLDER
    [row] = audit_rows(db, AuditAction.REPORT_FINALISED)
    assert (row.actor, row.study_uid, row.detail["version"]) == (HOLDER, ward.study_uid, 2)


def test_finalising_clears_the_new_images_flag(ward: Ward, db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        session.execute(
            text("UPDATE studies SET flags = ARRAY[:flag] WHERE study_uid = :uid"),
            {"flag": StudyFlag.NEW_IMAGES_AFTER_REPORT.value, "uid": ward.study_uid},
        )

    ward.signed()

    assert study_row(db, ward.study_uid).flags == []


def test_finalising_a_stale_version_is_412(ward: Ward) -> None:
    ward.save(HOLDER, "v1")
    ward.save(HOLDER, "v2", if_match=1)

    response = ward.finalise(HOLDER, 1)

    assert response.status_code == 412
    assert response.json()["version"] == 2
    assert ward.get(HOLDER).json()["status"] == "draft"


@pytest.mark.parametrize("blank", ["", "  \n\t "])
def test_empty_text_cannot_be_signed(ward: Ward, blank: str) -> None:
    ward.save(HOLDER, blank)

    assert ward.finalise(HOLDER, 1).status_code == 422


@pytest.mark.parametrize("payload", [{}, {"version": "1"}, {"version": 0}, {"version": 1.5}])
def test_finalise_needs_an_integer_version(ward: Ward, payload: dict[str, Any]) -> None:
    ward.save(HOLDER, SIGNED_TEXT)

    response = ward.send("POST", HOLDER, report_url(ward.study_uid, "/finalise"), json=payload)

    assert response.status_code == 422


def test_finalising_without_a_report_is_404(ward: Ward) -> None:
    assert ward.finalise(HOLDER, 1).status_code == 404


def test_a_final_report_cannot_be_changed_through_the_api(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    signed = ward.signed()
    # Even a radiologist who claims the study again (new images) cannot rewrite it.
    set_claim(db, ward.study_uid, HOLDER)

    assert ward.save(HOLDER, "rewritten", if_match=signed["version"]).status_code == 409
    assert ward.save(HOLDER, "rewritten").status_code == 409
    assert ward.finalise(HOLDER, signed["version"]).status_code == 409
    assert ward.get(HOLDER).json() == signed
    assert len(versions_of(db, ward.study_uid)) == 2


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE reports SET text = 'rewritten'",
        "UPDATE reports SET status = 'draft'",
        "UPDATE reports SET finalised_at = now() - interval '1 day'",
        "DELETE FROM reports",
        "UPDATE report_versions SET text = 'rewritten'",
        "DELETE FROM report_versions",
    ],
)
def test_a_final_report_and_its_history_cannot_be_changed_in_sql(
    ward: Ward, engine: Engine, statement: str
) -> None:
    signed = ward.signed()

    with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
        conn.execute(text(statement))

    assert getattr(raised.value.orig, "sqlstate", None) in {"WL010", "WL011"}
    assert ward.get(HOLDER).json() == signed


def test_addenda_cannot_be_changed_in_sql(ward: Ward, engine: Engine) -> None:
    ward.signed()
    ward.addendum(HOLDER, "Addendum.")

    for statement in ("UPDATE report_addenda SET text = 'x'", "DELETE FROM report_addenda"):
        with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
            conn.execute(text(statement))
        assert getattr(raised.value.orig, "sqlstate", None) == "WL011"


def test_a_trigger_refusal_surfaces_as_conflict(ward: Ward, settings: Settings) -> None:
    ward.signed()
    assert settings.database_url is not None

    async def rewrite(session: AsyncSession) -> None:
        await repository.execute_write(session, text("UPDATE reports SET text = 'rewritten'"))

    with pytest.raises(Conflict):
        run_async(settings.database_url, rewrite)
