"""PUT /report: drafts by the claim holder, If-Match versions, history, lease renewal, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.reports.conftest import HOLDER, Ward, claim_of, set_claim, versions_of
from worklist.enums import AuditAction, ReportStatus
from worklist.reports.schemas import MAX_TEXT_LENGTH


def test_first_save_creates_version_1_draft_without_if_match(ward: Ward) -> None:
    response = ward.save(HOLDER, "Findings: pending.")

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    assert body["status"] == "draft"
    assert body["text"] == "Findings: pending."
    assert body["author"] == HOLDER
    assert body["version"] == 1
    assert body["finalised_at"] is None
    assert body["finalised_by"] is None
    assert body["addenda"] == []
    assert body["created_at"] == body["updated_at"]


def test_get_returns_the_draft_with_its_etag(ward: Ward) -> None:
    ward.save(HOLDER, "one")
    ward.save(HOLDER, "two", if_match='"1"')

    response = ward.get(HOLDER)

    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    assert response.json()["text"] == "two"
    assert response.json()["version"] == 2


def test_get_without_a_report_is_404(ward: Ward) -> None:
    response = ward.get(HOLDER)

    assert response.status_code == 404
    assert response.json() == {"detail": "report not found"}


@pytest.mark.parametrize("if_match", ['"1"', "1", 'W/"1"', '"7", "1"'])
def test_later_save_accepts_the_version_in_every_if_match_form(ward: Ward, if_match: str) -> None:
    ward.save(HOLDER, "first")

    response = ward.save(HOLDER, "second", if_match=if_match)

    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.headers["ETag"] == '"2"'


def test_later_save_without_if_match_is_428(ward: Ward) -> None:
    ward.save(HOLDER, "first")

    response = ward.save(HOLDER, "blind overwrite")

    assert response.status_code == 428
    assert ward.get(HOLDER).json()["text"] == "first"


def test_wildcard_if_match_is_refused_because_it_would_overwrite_any_version(ward: Ward) -> None:
    ward.save(HOLDER, "first")

    assert ward.save(HOLDER, "blind overwrite", if_match="*").status_code == 428


@pytest.mark.parametrize("if_match", ['"1"', '"3"', '"abc"'])
def test_stale_or_unknown_version_is_412_with_the_current_version(
    ward: Ward, if_match: str
) -> None:
    ward.save(HOLDER, "v1")
    ward.save(HOLDER, "v2", if_match=1)

    response = ward.save(HOLDER, "lost update", if_match=if_match)

    assert response.status_code == 412
    assert response.json()["version"] == 2
    assert response.headers["ETag"] == '"2"'
    assert ward.get(HOLDER).json()["text"] == "v2"


def test_if_match_on_the_first_save_is_412_since_no_version_exists(ward: Ward) -> None:
    response = ward.save(HOLDER, "text", if_match='"1"')

    assert response.status_code == 412
    assert response.json()["version"] == 0


def test_every_saved_version_is_kept_in_the_history(ward: Ward, db: sessionmaker[Session]) -> None:
    for version, text in enumerate(["a", "b", "c", ""], start=0):
        response = ward.save(HOLDER, text, if_match=version or None)
        assert response.status_code == 200, response.text

    history = versions_of(db, ward.study_uid)

    assert [(v.version, v.text, v.status) for v in history] == [
        (1, "a", ReportStatus.DRAFT),
        (2, "b", ReportStatus.DRAFT),
        (3, "c", ReportStatus.DRAFT),
        (4, "", ReportStatus.DRAFT),
    ]


def test_a_save_renews_the_claim_lease(ward: Ward, db: sessionmaker[Session]) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    set_claim(db, ward.study_uid, HOLDER, expires_at=soon)

    ward.save(HOLDER, "still working")

    claim = claim_of(db, ward.study_uid)
    assert claim is not None
    assert claim.expires_at > datetime.now(UTC) + timedelta(minutes=29)


def test_text_over_the_limit_is_422_and_at_the_limit_is_kept(ward: Ward) -> None:
    assert ward.save(HOLDER, "x" * (MAX_TEXT_LENGTH + 1)).status_code == 422

    response = ward.save(HOLDER, "x" * MAX_TEXT_LENGTH)

    assert response.status_code == 200
    assert len(response.json()["text"]) == MAX_TEXT_LENGTH


def test_nul_characters_are_422_not_a_database_error(ward: Ward) -> None:
    assert ward.save(HOLDER, "bad\x00text").status_code == 422


def test_unicode_text_round_trips(ward: Ward) -> None:
    text = "Impression: no bleed — cf. prior 2029; Größe 3 mm; 肺结节"
    ward.save(HOLDER, text)

    assert ward.get(HOLDER).json()["text"] == text


def test_saves_and_reads_are_audited(ward: Ward, db: sessionmaker[Session]) -> None:
    ward.save(HOLDER, "v1")
    ward.save(HOLDER, "v2", if_match=1)
    ward.save(HOLDER, "stale", if_match=1)
    ward.get(HOLDER)

    saved = audit_rows(db, AuditAction.REPORT_SAVED)
    viewed = audit_rows(db, AuditAction.REPORT_VIEW)
    assert [(r.actor, r.study_uid, r.detail["version"]) for r in saved] == [
        (HOLDER, ward.study_uid, 1),
        (HOLDER, ward.study_uid, 2),
    ]
    assert [(r.actor, r.study_uid) for r in viewed] == [(HOLDER, ward.study_uid)]
    assert viewed[0].site_id == saved[0].site_id is not None


def test_a_refused_save_keeps_nothing(ward: Ward, db: sessionmaker[Session]) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=30)
    ward.save(HOLDER, "v1")
    set_claim(db, ward.study_uid, HOLDER, expires_at=soon)

    assert ward.save(HOLDER, "stale", if_match=5).status_code == 412

    claim = claim_of(db, ward.study_uid)
    assert claim is not None
    assert claim.expires_at == soon
    assert len(versions_of(db, ward.study_uid)) == 1
