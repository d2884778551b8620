"""A prior's report is shown through another study only once it is signed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    SOUTH,
    add_patient,
    add_site,
    add_study,
    add_user,
    audit_rows,
    bearer,
    client,
)
from worklist.config import Settings
from worklist.enums import AuditAction, ReportStatus, Role, StudyStatus
from worklist.identity import make_nhs_number
from worklist.models import Report

__all__ = ["client"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(ReportStatus.DRAFT, 404), (ReportStatus.FINAL, 200), (ReportStatus.AMENDED, 200)],
)
def test_prior_report_is_readable_once_signed_never_as_a_draft(
    client: TestClient,
    db: sessionmaker[Session],
    settings: Settings,
    status: ReportStatus,
    expected: int,
) -> None:
    nhs = make_nhs_number(555)
    with db() as session, session.begin():
        north, south = add_site(session, NORTH), add_site(session, SOUTH)
        reader = add_user(session, "rad.north", Role.RADIOLOGIST, NORTH)
        author = add_user(session, "rad.south", Role.RADIOLOGIST, SOUTH)
        current = add_study(session, add_patient(session, north, nhs_number=nhs))
        prior = add_study(
            session, add_patient(session, south, nhs_number=nhs), status=StudyStatus.REPORTED
        )
        session.add(
            Report(
                study_id=prior.id,
                status=status,
                text="Draft or not",
                version=2,
                author_id=author.id,
                finalised_by_id=None if status is ReportStatus.DRAFT else author.id,
            )
        )
        urls = (current.study_uid, prior.study_uid)
    url = f"/api/v1/studies/{urls[0]}/priors/{urls[1]}/report"

    response = client.get(url, headers=bearer(settings, reader))

    assert response.status_code == expected, response.text
    assert len(audit_rows(db, AuditAction.PRIOR_REPORT_VIEW)) == (expected == 200)
