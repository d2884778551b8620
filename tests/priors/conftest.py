"""Prior fixtures: a patient seen at trust B with a prior at trust A, pushed through the gateway.

``dr.b`` holds privileges at RXB only; the RXA prior is linked to the RXB study by the
patient's NHS number, and its report is signed at RXA by ``dr.a`` through the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import bearer
from tests.dicomweb.conftest import (
    ADMIN,
    DR_A,
    DR_B,
    LiveApi,
    Pushed,
    gateway,
    live_api,
    push,
    sites,
    users,
)
from tests.gateway.conftest import SITE_A_AE, SITE_B_AE
from tests.reports.conftest import add_claim
from worklist.identity import make_nhs_number
from worklist.models import Site, Study, User
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec

__all__ = ["ADMIN", "DR_A", "DR_B", "gateway", "live_api", "sites", "users"]

PRIOR_REPORT = "CT head: small chronic left frontal infarct. No haemorrhage."


@dataclass(frozen=True)
class History:
    """The studies of the scenario and the sites they sit at."""

    current: Pushed  # RXB, the study dr.b reports
    prior: Pushed  # RXA, same NHS number: a prior of ``current``
    stranger_a: Pushed  # RXA, another patient
    unlinked_b: Pushed  # RXB, a third patient: visible to dr.b, not linked to the prior
    site_ids: dict[str, int]

    @property
    def current_uid(self) -> str:
        """The RXB study's UID."""
        return self.current.spec.study_uid

    @property
    def prior_uid(self) -> str:
        """The RXA prior's UID."""
        return self.prior.spec.study_uid


def _spec(local_id: str, nhs: int, when: datetime, *series: SeriesSpec) -> StudySpec:
    return StudySpec(
        patient=PatientSpec(local_id, name="Jones^Carys", nhs_number=make_nhs_number(nhs)),
        series=list(series),
        accession_number=f"ACC-{local_id}",
        description="CT head",
        study_datetime=when,
    )


def sign_report(live_api: LiveApi, db: sessionmaker[Session], user: User, study_uid: str) -> None:
    """Claim ``study_uid`` for ``user`` and sign ``PRIOR_REPORT`` through the API."""
    with db() as session, session.begin():
        study = session.scalars(select(Study).where(Study.study_uid == study_uid)).one()
        add_claim(session, study, session.merge(user))
    url = f"{live_api.base_url}/api/v1/studies/{study_uid}/report"
    headers = bearer(live_api.settings, user)
    saved = httpx.put(url, json={"text": PRIOR_REPORT}, headers=headers)
    assert saved.status_code == 200, saved.text
    signed = httpx.post(
        f"{url}/finalise", json={"version": saved.json()["version"]}, headers=headers
    )
    assert signed.status_code == 200, signed.text


@pytest.fixture
def history(
    gateway: Gateway,
    live_api: LiveApi,
    users: dict[str, User],
    db: sessionmaker[Session],
    tmp_path: Path,
) -> History:
    """The RXB study, its RXA prior (report signed), an RXA stranger and an unlinked RXB study."""
    sent = tmp_path / "sent"
    prior = push(
        gateway.port,
        _spec(
            "RXA-31",
            4242,
            datetime(2025, 3, 1, 10, 0),
            SeriesSpec(modality="CT", count=2, description="Axial"),
            SeriesSpec(modality="MR", count=1, description="T2"),
        ),
        sent,
        calling_ae=SITE_A_AE,
    )
    current = push(
        gateway.port,
        _spec("RXB-7", 4242, datetime(2026, 11, 1, 9, 0), SeriesSpec(modality="CT", count=1)),
        sent,
        calling_ae=SITE_B_AE,
    )
    stranger_a = push(
        gateway.port,
        _spec("RXA-90", 77, datetime(2025, 6, 1, 9, 0), SeriesSpec(modality="CT", count=1)),
        sent,
        calling_ae=SITE_A_AE,
    )
    unlinked_b = push(
        gateway.port,
        _spec("RXB-80", 91, datetime(2026, 10, 1, 9, 0), SeriesSpec(modality="CT", count=1)),
        sent,
        calling_ae=SITE_B_AE,
    )
    sign_report(live_api, db, users[DR_A], prior.spec.study_uid)
    with db() as session:
        site_ids = {code: id_ for id_, code in session.execute(select(Site.id, Site.code))}
    return History(
        current=current,
        prior=prior,
        stranger_a=stranger_a,
        unlinked_b=unlinked_b,
        site_ids=site_ids,
    )
