"""A cross-trust second opinion: a neuroradiologist at trust B, with no privileges at trust
A, takes A's request; they read that study, its report, its priors and its images (each
read audited naming the request), nothing else of A's; and lose it all when it ends.

Studies are pushed through the real gateway and read through the API and DICOMweb on a
real socket (``tests/dicomweb/conftest.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import DR_A, DR_B, LiveApi, gateway, live_api, push, sites, users
from tests.gateway.conftest import SITE_A_AE
from tests.opinions.conftest import QUESTION, add_subspecialties
from tests.priors.conftest import sign_report
from worklist.enums import AuditAction
from worklist.identity import make_nhs_number
from worklist.models import AuditEvent, User
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec

__all__ = ["gateway", "live_api", "sites", "users"]

QUEUE = "/api/v1/second-opinions"


@dataclass(frozen=True)
class Scenario:
    """A's study (report signed by dr.a), its prior at A, another A patient's study."""

    study_uid: str
    prior_uid: str
    stranger_uid: str
    opinion_id: int


def _spec(local_id: str, nhs: int, when: datetime) -> StudySpec:
    return StudySpec(
        patient=PatientSpec(local_id, name="Evans^Rhys", nhs_number=make_nhs_number(nhs)),
        series=[SeriesSpec(modality="MR", count=2, description="DWI")],
        accession_number=f"ACC-{local_id}-{when:%Y}",
        description="MR head",
        study_datetime=when,
    )


@pytest.fixture
def scenario(
    gateway: Gateway,
    live_api: LiveApi,
    users: dict[str, User],
    db: sessionmaker[Session],
    tmp_path: Path,
) -> Scenario:
    """dr.a (RXA) signed the study's report and asks neuro; dr.b (RXB, neuro) takes it."""
    sent = tmp_path / "sent"
    study = push(gateway.port, _spec("RXA-5", 5150, datetime(2026, 11, 2, 9)), sent)
    prior = push(gateway.port, _spec("RXA-6", 5150, datetime(2024, 2, 1, 9)), sent)
    stranger = push(gateway.port, _spec("RXA-7", 6060, datetime(2026, 10, 1, 9)), sent)
    assert SITE_A_AE  # every study above is pushed as trust A's PACS
    sign_report(live_api, db, users[DR_A], prior.spec.study_uid)
    sign_report(live_api, db, users[DR_A], study.spec.study_uid)
    with db() as session, session.begin():
        add_subspecialties(session, "neuro")
        session.execute(update(User).where(User.username == DR_B).values(subspecialties=["neuro"]))
    with httpx.Client(base_url=live_api.base_url) as http:
        asked = http.post(
            f"/api/v1/studies/{study.spec.study_uid}/second-opinions",
            json={"question": QUESTION, "subspecialty": "neuro", "urgency": "urgent"},
            headers=bearer(live_api.settings, users[DR_A]),
        )
    assert asked.status_code == 201, asked.text
    return Scenario(
        study_uid=study.spec.study_uid,
        prior_uid=prior.spec.study_uid,
        stranger_uid=stranger.spec.study_uid,
        opinion_id=asked.json()["id"],
    )


def _reads(http: httpx.Client, s: Scenario) -> dict[str, int]:
    """The status of every read dr.b might try on A's studies."""
    prior = f"/api/v1/studies/{s.study_uid}/priors/{s.prior_uid}"
    qido = http.get("/dicomweb/studies", params={"StudyInstanceUID": s.study_uid})
    return {
        "study": http.get(f"/api/v1/studies/{s.study_uid}").status_code,
        "report": http.get(f"/api/v1/studies/{s.study_uid}/report").status_code,
        "prior": http.get(prior).status_code,
        "prior_report": http.get(f"{prior}/report").status_code,
        "qido": qido.status_code if qido.status_code != 200 else len(qido.json()),
        "wado": http.get(f"/dicomweb/studies/{s.study_uid}/metadata").status_code,
        "prior_wado": http.get(
            f"/dicomweb/studies/{s.prior_uid}/metadata", params={"via": s.study_uid}
        ).status_code,
    }


GRANTED = {
    "study": 200,
    "report": 200,
    "prior": 200,
    "prior_report": 200,
    "qido": 1,
    "wado": 200,
    "prior_wado": 200,
}
# A QIDO-RS search that matches nothing answers an empty list.
NONE = dict.fromkeys(GRANTED, 404) | {"qido": 0}


def _never(http: httpx.Client, s: Scenario) -> None:
    """What a grant never opens: another study of the trust, its worklist, claims."""
    assert http.get(f"/api/v1/studies/{s.stranger_uid}").status_code == 404
    assert http.get(f"/dicomweb/studies/{s.stranger_uid}/metadata").status_code == 404
    listed = http.get("/api/v1/worklist", params={"status": ["ready", "reported", "receiving"]})
    assert listed.status_code == 200
    assert listed.json()["items"] == []
    assert http.post(f"/api/v1/studies/{s.study_uid}/claim").status_code == 404
    assert http.post(f"/api/v1/studies/{s.stranger_uid}/claim").status_code == 404
    addendum = http.post(f"/api/v1/studies/{s.study_uid}/report/addenda", json={"text": "x"})
    assert addendum.status_code == 404


@pytest.mark.parametrize("ending", ["answer", "withdraw"])
def test_a_specialist_at_another_trust_reads_the_study_and_its_priors_only_while_it_runs(
    live_api: LiveApi,
    users: dict[str, User],
    db: sessionmaker[Session],
    scenario: Scenario,
    ending: str,
) -> None:
    s = scenario
    dr_b = bearer(live_api.settings, users[DR_B])
    with httpx.Client(base_url=live_api.base_url, headers=dr_b) as http:
        assert _reads(http, s) == NONE
        [queued] = http.get(QUEUE).json()["items"]
        assert (queued["id"], queued["study"]["site"]["code"]) == (s.opinion_id, "RXA")
        assert "patient" not in queued
        assert "Evans" not in str(queued)

        taken = http.post(f"{QUEUE}/{s.opinion_id}/claim")
        assert taken.status_code == 200, taken.text

        assert _reads(http, s) == GRANTED
        detail = http.get(f"/api/v1/studies/{s.study_uid}").json()
        assert [p["study_uid"] for p in detail["priors"]] == [s.prior_uid]
        assert detail["patient"]["name"] == "Evans^Rhys"
        _never(http, s)

        if ending == "answer":
            done = http.post(
                f"{QUEUE}/{s.opinion_id}/answer",
                json={"agreement": "minor_discrepancy", "text": "Also small vessel disease."},
            )
        else:
            done = httpx.post(
                f"{live_api.base_url}{QUEUE}/{s.opinion_id}/withdraw",
                headers=bearer(live_api.settings, users[DR_A]),
            )
        assert done.status_code == 200, done.text

        assert _reads(http, s) == NONE
        _never(http, s)
        # Their own request stays theirs to see (it names no patient).
        assert http.get(f"{QUEUE}/{s.opinion_id}").status_code == 200

    _assert_reads_audited_with_the_grant(db, s)


def _assert_reads_audited_with_the_grant(db: sessionmaker[Session], s: Scenario) -> None:
    grant = {"reason": "second_opinion", "id": s.opinion_id}
    with db() as session:
        rows = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.actor == DR_B).order_by(AuditEvent.id)
            )
        )
    reads = {
        AuditAction.STUDY_VIEW,
        AuditAction.PRIOR_VIEW,
        AuditAction.REPORT_VIEW,
        AuditAction.PRIOR_REPORT_VIEW,
        AuditAction.STUDY_RETRIEVED,
        AuditAction.PRIOR_RETRIEVED,
    }
    through = [r for r in rows if r.action in reads]
    assert {r.action for r in through} == reads
    assert all(r.detail["grant"] == grant for r in through), [r.detail for r in through]
    assert {r.study_uid for r in through} == {s.study_uid, s.prior_uid}
    [queried] = [
        r
        for r in audit_rows(db, AuditAction.STUDY_QUERIED)
        if r.actor == DR_B and r.detail["results"]
    ]
    assert queried.detail["grants"] == {s.study_uid: grant}
