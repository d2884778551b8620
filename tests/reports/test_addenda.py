"""POST /report/addenda: signed reports are added to, never rewritten."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.reports.conftest import (
    COLLEAGUE,
    HOLDER,
    Ward,
    claim_of,
    set_claim,
    study_row,
    versions_of,
)
from worklist.enums import AuditAction, ReportStatus, StudyFlag, StudyStatus
from worklist.events import EventType, WorklistEvent
from worklist.reports import service as report_service


def _new_images_arrived(db: sessionmaker[Session], study_uid: str) -> None:
    """What the gateway does when instances arrive after the report was signed."""
    with db() as session, session.begin():
        session.execute(
            text(
                "UPDATE studies SET status = 'ready', flags = array_append(flags, :flag)"
                " WHERE study_uid = :uid"
            ),
            {"flag": StudyFlag.NEW_IMAGES_AFTER_REPORT.value, "uid": study_uid},
        )


def test_an_addendum_amends_the_report_and_shows_in_get(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    signed = ward.signed()

    response = ward.addendum(HOLDER, "Addendum: 4 mm nodule right upper lobe.")

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "amended"
    assert body["text"] == signed["text"]
    assert body["finalised_at"] == signed["finalised_at"]
    assert body["version"] == signed["version"] + 1
    [addendum] = body["addenda"]
    assert addendum["text"] == "Addendum: 4 mm nodule right upper lobe."
    assert addendum["author"] == HOLDER
    assert addendum["created_at"]
    fetched = ward.get(COLLEAGUE)
    assert fetched.json() == body
    assert fetched.headers["ETag"] == f'"{body["version"]}"'
    assert versions_of(db, ward.study_uid)[-1].status is ReportStatus.AMENDED


def test_addenda_accumulate_in_order(ward: Ward) -> None:
    ward.signed()

    ward.addendum(HOLDER, "first")
    response = ward.addendum(HOLDER, "second")

    assert [a["text"] for a in response.json()["addenda"]] == ["first", "second"]
    assert response.json()["status"] == "amended"


def test_a_draft_cannot_take_an_addendum(ward: Ward) -> None:
    ward.save(HOLDER, "draft")

    assert ward.addendum(HOLDER, "too early").status_code == 409


def test_an_addendum_without_a_report_is_404(ward: Ward) -> None:
    assert ward.addendum(HOLDER, "nothing to add to").status_code == 404


@pytest.mark.parametrize("blank", ["", "   "])
def test_an_empty_addendum_is_422(ward: Ward, blank: str) -> None:
    ward.signed()

    assert ward.addendum(HOLDER, blank).status_code == 422


def test_the_author_may_add_an_addendum_without_a_claim(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    ward.signed()
    assert claim_of(db, ward.study_uid) is None

    assert ward.addendum(HOLDER, "Addendum by the author.").status_code == 201


def test_another_radiologist_needs_the_claim_to_add_an_addendum(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    ward.signed()

    assert ward.addendum(COLLEAGUE, "not mine to add").status_code == 403

    _new_images_arrived(db, ward.study_uid)
    set_claim(db, ward.study_uid, COLLEAGUE)
    response = ward.addendum(COLLEAGUE, "New series reviewed: no change.")

    assert response.status_code == 201, response.text
    assert response.json()["addenda"][0]["author"] == COLLEAGUE


def test_an_addendum_for_new_images_returns_the_study_to_reported(
    ward: Ward, db: sessionmaker[Session]
) -> None:
    ward.signed()
    _new_images_arrived(db, ward.study_uid)
    set_claim(db, ward.study_uid, COLLEAGUE)

    assert ward.addendum(COLLEAGUE, "New series reviewed: no change.").status_code == 201

    study = study_row(db, ward.study_uid)
    assert study.status is StudyStatus.REPORTED
    assert study.flags == []
    assert claim_of(db, ward.study_uid) is None


def test_an_addendum_is_staged_and_audited(
    ward: Ward, db: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    ward.signed()
    events: list[WorklistEvent] = []
    monkeypatch.setattr(report_service, "stage", lambda session, event: events.append(event))

    ward.addendum(HOLDER, "Addendum.")

    [event] = events
    assert (event.type, event.study_uid) == (EventType.REPORT_AMENDED, ward.study_uid)
    assert event.data["version"] == 3
    [row] = audit_rows(db, AuditAction.REPORT_ADDENDUM)
    assert (row.actor, row.study_uid, row.detail["version"]) == (HOLDER, ward.study_uid, 3)
