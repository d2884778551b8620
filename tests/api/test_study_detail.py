"""GET /api/v1/studies/{uid}: series, priors across trusts, and the audit of every read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import (
    NORTH,
    SOUTH,
    T0,
    add_patient,
    add_series,
    add_site,
    add_study,
    add_user,
    audit_rows,
    bearer,
)
from worklist.config import Settings
from worklist.enums import AuditAction, Role, StudyStatus
from worklist.identity import make_nhs_number
from worklist.models import Site


@dataclass
class History:
    """A NORTH study with priors at NORTH, SOUTH and EAST, plus a stranger's study."""

    study_uid: str
    north_site_id: int
    same_row_prior: str
    south_prior: str
    east_prior: str
    stranger: str
    prior_sites: dict[str, int]


@pytest.fixture
def history(db: sessionmaker[Session], sites: dict[str, Site]) -> History:
    """The same NHS number at three trusts; the caller will only hold NORTH privileges."""
    nhs_number = make_nhs_number(1234)
    with db() as session, session.begin():
        east_site = add_site(session, "EAST")
        north = add_patient(session, sites[NORTH], local_id="N1", nhs_number=nhs_number)
        south = add_patient(session, sites[SOUTH], local_id="S9", nhs_number=nhs_number)
        east = add_patient(session, east_site, local_id="E5", nhs_number=nhs_number)
        stranger = add_patient(session, sites[NORTH], local_id="N2", nhs_number=make_nhs_number(9))
        study = add_study(session, north, received_at=T0)
        for number in (3, 1, 2):
            add_series(session, study, number=number, description=f"series {number}")
        same_row = add_study(
            session, north, status=StudyStatus.REPORTED, received_at=T0 - timedelta(days=400)
        )
        south_prior = add_study(
            session, south, status=StudyStatus.REPORTED, received_at=T0 - timedelta(days=30)
        )
        east_prior = add_study(
            session,
            east,
            status=StudyStatus.REPORTED,
            received_at=T0 - timedelta(days=90),
            modalities=["MR"],
        )
        other = add_study(session, stranger)
    return History(
        study_uid=study.study_uid,
        north_site_id=sites[NORTH].id,
        same_row_prior=same_row.study_uid,
        south_prior=south_prior.study_uid,
        east_prior=east_prior.study_uid,
        stranger=other.study_uid,
        prior_sites={
            same_row.study_uid: sites[NORTH].id,
            south_prior.study_uid: sites[SOUTH].id,
            east_prior.study_uid: east_site.id,
        },
    )


@pytest.fixture
def north_radiologist(
    db: sessionmaker[Session], sites: dict[str, Site], settings: Settings
) -> dict[str, str]:
    """Headers of a radiologist privileged at NORTH only."""
    with db() as session, session.begin():
        user = add_user(session, "rad", Role.RADIOLOGIST, NORTH)
    return bearer(settings, user)


def test_detail_lists_series_by_number(
    client: TestClient, history: History, north_radiologist: dict[str, str]
) -> None:
    body = client.get(f"/api/v1/studies/{history.study_uid}", headers=north_radiologist).json()

    assert [s["number"] for s in body["series"]] == [1, 2, 3]
    assert set(body["series"][0]) == {
        "series_uid",
        "modality",
        "description",
        "number",
        "instance_count",
    }
    assert body["series"][0]["description"] == "series 1"
    assert body["study_uid"] == history.study_uid
    assert body["site"]["code"] == NORTH


def test_priors_follow_the_nhs_number_across_trusts_newest_first(
    client: TestClient, history: History, north_radiologist: dict[str, str]
) -> None:
    body = client.get(f"/api/v1/studies/{history.study_uid}", headers=north_radiologist).json()

    priors = body["priors"]
    assert [p["study_uid"] for p in priors] == [
        history.south_prior,
        history.east_prior,
        history.same_row_prior,
    ]
    assert [p["site"]["code"] for p in priors] == [SOUTH, "EAST", NORTH]
    assert priors[1]["modalities"] == ["MR"]
    assert priors[0]["status"] == "reported"
    assert priors[0]["report_status"] is None
    assert set(priors[0]) == {
        "study_uid", "site", "study_datetime", "modalities", "description",
        "accession_number", "status", "report_status", "links",
    }  # fmt: skip
    prior_path = f"/api/v1/studies/{history.study_uid}/priors/{history.south_prior}"
    assert priors[0]["links"] == {
        "detail": prior_path,
        "report": f"{prior_path}/report",
        "dicomweb": f"http://testserver/dicomweb/studies/{history.south_prior}"
        f"?via={history.study_uid}",
    }


def test_priors_shown_do_not_make_other_trusts_studies_visible(
    client: TestClient, history: History, north_radiologist: dict[str, str]
) -> None:
    client.get(f"/api/v1/studies/{history.study_uid}", headers=north_radiologist)

    response = client.get(f"/api/v1/studies/{history.south_prior}", headers=north_radiologist)

    assert response.status_code == 404


def test_study_view_and_each_prior_view_are_audited(
    client: TestClient,
    db: sessionmaker[Session],
    history: History,
    north_radiologist: dict[str, str],
) -> None:
    client.get(f"/api/v1/studies/{history.study_uid}", headers=north_radiologist)

    views = audit_rows(db, AuditAction.STUDY_VIEW)
    assert [(v.actor, v.study_uid, v.site_id, v.address) for v in views] == [
        ("rad", history.study_uid, history.north_site_id, "testclient")
    ]
    prior_views = audit_rows(db, AuditAction.PRIOR_VIEW)
    assert {v.study_uid: v.site_id for v in prior_views} == history.prior_sites
    assert all(v.detail == {"via": history.study_uid} for v in prior_views)
    assert all(v.actor == "rad" for v in prior_views)


def test_hidden_study_read_writes_no_audit_rows(
    client: TestClient,
    db: sessionmaker[Session],
    history: History,
    north_radiologist: dict[str, str],
) -> None:
    client.get(f"/api/v1/studies/{history.south_prior}", headers=north_radiologist)

    assert audit_rows(db, AuditAction.STUDY_VIEW) == []
    assert audit_rows(db, AuditAction.PRIOR_VIEW) == []


def test_worklist_read_is_audited_with_filters_and_returned_uids(
    client: TestClient,
    db: sessionmaker[Session],
    history: History,
    north_radiologist: dict[str, str],
) -> None:
    response = client.get(
        "/api/v1/worklist", params={"modality": "ct", "q": "doe"}, headers=north_radiologist
    )

    listed = [item["study_uid"] for item in response.json()["items"]]
    rows = audit_rows(db, AuditAction.WORKLIST_LIST)
    assert len(rows) == 1
    assert rows[0].actor == "rad"
    assert rows[0].address == "testclient"
    assert rows[0].detail["study_uids"] == listed
    assert set(listed) == {history.study_uid, history.stranger}
    assert rows[0].detail["filters"]["modality"] == ["CT"]
    assert rows[0].detail["filters"]["q"] == "doe"
    assert rows[0].detail["filters"]["status"] == ["ready", "in_progress"]
