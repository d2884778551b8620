"""Visibility: a radiologist without privileges at a trust neither finds nor fetches its images."""

from __future__ import annotations

import httpx
import pytest
from requests.exceptions import HTTPError
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import add_user, audit_rows, bearer
from tests.dicomweb.conftest import DR_A, DR_B, LiveApi, Pushed
from worklist.enums import AuditAction, Role
from worklist.models import User


def _status(call: object) -> int:
    with pytest.raises(HTTPError) as raised:
        call()  # type: ignore[operator]
    response = raised.value.response
    assert response is not None
    return int(response.status_code)


def test_a_radiologist_without_privileges_gets_nothing_and_404s(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User], db: sessionmaker[Session]
) -> None:
    client = live_api.client(users[DR_B])
    study = head_ct.spec.study_uid
    series = head_ct.spec.series[0].series_uid
    sop = next(iter(head_ct.files))
    assert client.search_for_studies() == []
    assert client.search_for_studies(search_filters={"StudyInstanceUID": study}) == []
    assert client.search_for_series(search_filters={"StudyInstanceUID": study}) == []
    assert client.search_for_instances(search_filters={"PatientID": "RXA-001"}) == []
    for call in (
        lambda: client.search_for_series(study),
        lambda: client.search_for_instances(study, series),
        lambda: client.retrieve_study(study),
        lambda: client.retrieve_series(study, series),
        lambda: client.retrieve_instance(study, series, sop),
        lambda: client.retrieve_study_metadata(study),
        lambda: client.retrieve_series_metadata(study, series),
        lambda: client.retrieve_instance_frames(study, series, sop, [1]),
    ):
        assert _status(call) == 404
    assert audit_rows(db, AuditAction.STUDY_RETRIEVED) == []
    assert audit_rows(db, AuditAction.STUDY_QUERIED) == []


def test_unknown_series_and_instances_of_a_visible_study_are_404(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    client = live_api.client(users[DR_A])
    study = head_ct.spec.study_uid
    series = head_ct.spec.series[0].series_uid
    assert _status(lambda: client.retrieve_series(study, "1.2.3.4")) == 404
    assert _status(lambda: client.retrieve_instance(study, series, "1.2.3.4")) == 404
    assert _status(lambda: client.search_for_instances(study, "1.2.3.4")) == 404
    assert _status(lambda: client.retrieve_study("1.2.3.4")) == 404


def test_no_token_is_401_and_an_alert_client_has_no_images(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User], db: sessionmaker[Session]
) -> None:
    url = f"{live_api.base_url}/dicomweb/studies"
    assert httpx.get(url).status_code == 401
    assert httpx.get(f"{url}/{head_ct.spec.study_uid}").status_code == 401
    with db() as session, session.begin():
        alerts = add_user(session, "alerts.rxa", Role.ALERT_CLIENT, "RXA")
        session.expunge_all()
    headers = bearer(live_api.settings, alerts)
    assert httpx.get(url, headers=headers).status_code == 403
    assert httpx.get(f"{url}/{head_ct.spec.study_uid}", headers=headers).status_code == 403


def test_study_detail_says_where_to_fetch_the_images(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    study = head_ct.spec.study_uid
    headers = bearer(live_api.settings, users[DR_A])
    detail = httpx.get(f"{live_api.base_url}/api/v1/studies/{study}", headers=headers)
    assert detail.status_code == 200
    url = detail.json()["dicomweb_url"]
    assert url == f"{live_api.base_url}/dicomweb/studies/{study}"
    metadata = httpx.get(f"{url}/metadata", headers=headers)
    assert metadata.status_code == 200
    assert len(metadata.json()) == 7
