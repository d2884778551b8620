"""What a prior link does not open: 404 unless the caller sees the via study that lists it."""

from __future__ import annotations

import httpx
import pytest
from pydicom import dcmread
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import DR_B, LiveApi
from tests.priors.conftest import History
from worklist.enums import AuditAction
from worklist.models import User

# (path template, takes ?via=): {p} the prior (or study under test), {v} the via study.
API = ["/api/v1/studies/{v}/priors/{p}", "/api/v1/studies/{v}/priors/{p}/report"]
DICOMWEB = [
    "/dicomweb/studies/{p}",
    "/dicomweb/studies/{p}/metadata",
    "/dicomweb/studies/{p}/series",
    "/dicomweb/studies/{p}/instances",
    "/dicomweb/studies/{p}/series/{s}",
    "/dicomweb/studies/{p}/series/{s}/metadata",
    "/dicomweb/studies/{p}/series/{s}/instances",
    "/dicomweb/studies/{p}/series/{s}/instances/{i}",
    "/dicomweb/studies/{p}/series/{s}/instances/{i}/metadata",
    "/dicomweb/studies/{p}/series/{s}/instances/{i}/frames/1",
    "/dicomweb/studies/{p}/series/{s}/instances/{i}/bulkdata/7FE00010",
]


def _statuses(
    live_api: LiveApi, user: User, history: History, *, target: str, via: str | None
) -> dict[str, int]:
    pushed = next(
        p
        for p in (history.prior, history.stranger_a, history.current, history.unlinked_b)
        if p.spec.study_uid == target
    )
    sop, path = next(iter(pushed.files.items()))
    series = str(dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
    headers = bearer(live_api.settings, user)
    answers = {}
    for template in API + DICOMWEB:
        url = template.format(p=target, v=via or history.current_uid, s=series, i=sop)
        params = {"via": via} if via is not None and url.startswith("/dicomweb") else {}
        response = httpx.get(f"{live_api.base_url}{url}", params=params, headers=headers)
        answers[template] = response.status_code
    return answers


def test_without_via_the_prior_stays_invisible(
    live_api: LiveApi, history: History, users: dict[str, User], db: sessionmaker[Session]
) -> None:
    headers = bearer(live_api.settings, users[DR_B])
    base = f"{live_api.base_url}/api/v1/studies/{history.prior_uid}"

    dicomweb = _statuses(live_api, users[DR_B], history, target=history.prior_uid, via=None)

    assert {t: dicomweb[t] for t in DICOMWEB} == dict.fromkeys(DICOMWEB, 404)
    assert httpx.get(base, headers=headers).status_code == 404
    assert httpx.get(f"{base}/report", headers=headers).status_code == 404
    assert audit_rows(db, AuditAction.PRIOR_RETRIEVED) == []
    assert audit_rows(db, AuditAction.STUDY_RETRIEVED) == []


@pytest.mark.parametrize("via", ["stranger_a", "unlinked_b", "prior", "missing"])
def test_a_via_study_that_is_hidden_or_not_linked_opens_nothing(
    live_api: LiveApi,
    history: History,
    users: dict[str, User],
    db: sessionmaker[Session],
    via: str,
) -> None:
    # stranger_a: an RXA study dr.b may not see; unlinked_b: visible, another patient;
    # prior: the prior itself (not visible to dr.b); missing: no such study.
    via_uid = "1.2.3.4.5" if via == "missing" else getattr(history, via).spec.study_uid

    answers = _statuses(live_api, users[DR_B], history, target=history.prior_uid, via=via_uid)

    assert answers == dict.fromkeys(API + DICOMWEB, 404)
    assert audit_rows(db, AuditAction.PRIOR_RETRIEVED) == []
    assert audit_rows(db, AuditAction.PRIOR_REPORT_VIEW) == []


@pytest.mark.parametrize("target", ["stranger_a", "current"])
def test_via_opens_the_listed_priors_only_not_other_studies(
    live_api: LiveApi, history: History, users: dict[str, User], target: str
) -> None:
    # stranger_a: another RXA patient's study; current: the via study is not its own prior.
    uid = getattr(history, target).spec.study_uid

    answers = _statuses(live_api, users[DR_B], history, target=uid, via=history.current_uid)

    assert answers == dict.fromkeys(API + DICOMWEB, 404)


def test_nothing_of_the_prior_can_be_written_or_claimed(
    live_api: LiveApi, history: History, users: dict[str, User]
) -> None:
    headers = bearer(live_api.settings, users[DR_B])
    prior = f"{live_api.base_url}/api/v1/studies/{history.prior_uid}"
    through = f"{live_api.base_url}/api/v1/studies/{history.current_uid}/priors/{history.prior_uid}"

    assert httpx.put(f"{through}/report", json={"text": "x"}, headers=headers).status_code == 405
    assert httpx.post(f"{prior}/claim", headers=headers).status_code == 404
    assert httpx.put(f"{prior}/report", json={"text": "x"}, headers=headers).status_code == 404
    alert = {"category": "critical", "finding": "haemorrhage"}
    assert httpx.post(f"{prior}/alerts", headers=headers, json=alert).status_code == 404
    sites = httpx.get(
        f"{live_api.base_url}/api/v1/worklist", params={"site": "RXA"}, headers=headers
    )
    assert sites.json()["items"] == []
