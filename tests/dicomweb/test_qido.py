"""QIDO-RS with the real dicomweb-client: matching, paging, includefield, errors, audit."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import ADMIN, DR_A, LiveApi, Pushed, push
from worklist.enums import AuditAction
from worklist.models import User
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec

STUDY_UID = "0020000D"
SERIES_UID = "0020000E"
SOP_UID = "00080018"
PATIENT_NAME = "00100010"


def _values(results: list[dict[str, Any]], tag: str) -> list[Any]:
    return [r[tag]["Value"][0] for r in results]


def _chest_xr(gateway: Gateway, tmp_path: Path) -> Pushed:
    spec = StudySpec(
        patient=PatientSpec("RXA-002", name="Jones^Bob", birth_date="19451103", sex="M"),
        series=[SeriesSpec(modality="CR", count=1, description="PA")],
        accession_number="ACC-CXR-9",
        description="Chest X-ray",
        study_datetime=datetime(2026, 10, 5, 14, 0),
    )
    return push(gateway.port, spec, tmp_path / "sent")


def test_study_search_matches_name_id_accession_dates_modalities_and_uids(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User], gateway: Gateway, tmp_path: Path
) -> None:
    chest = _chest_xr(gateway, tmp_path)
    client = live_api.client(users[DR_A])
    head, cxr = head_ct.spec.study_uid, chest.spec.study_uid

    def found(**filters: str) -> set[str]:
        return set(_values(client.search_for_studies(search_filters=filters), STUDY_UID))

    assert found() == {head, cxr}
    assert found(PatientName="smith*") == {head}
    assert found(PatientName="*BOB") == {cxr}
    assert found(PatientName="Sm?th^Anne") == {head}
    assert found(PatientName="Smith") == set()
    assert found(PatientID="RXA-002") == {cxr}
    assert found(AccessionNumber="ACC-HEAD-1") == {head}
    assert found(AccessionNumber="ACC-*") == {head, cxr}
    assert found(StudyDate="20261101") == {head}
    assert found(StudyDate="20261001-20261031") == {cxr}
    assert found(StudyDate="20261006-") == {head}
    assert found(StudyDate="-20261005") == {cxr}
    assert found(ModalitiesInStudy="MR") == {head}
    assert found(ModalitiesInStudy="CR,MR") == {head, cxr}
    assert found(StudyInstanceUID=f"{head},{cxr}") == {head, cxr}
    assert found(StudyInstanceUID=cxr) == {cxr}
    assert found(StudyDescription="*x-RAY") == {cxr}
    assert found(fuzzymatching="false", PatientName="jones^bob") == {cxr}

    [study] = client.search_for_studies(search_filters={"StudyInstanceUID": head})
    assert study[PATIENT_NAME]["Value"] == [{"Alphabetic": "Smith^Anne"}]
    assert study["00100020"]["Value"] == ["RXA-001"]
    assert study["00100030"]["Value"] == ["19600214"]
    assert study["00100040"]["Value"] == ["F"]
    assert study["00080020"]["Value"] == ["20261101"]
    assert study["00080030"]["Value"] == ["093000"]
    assert study["00081030"]["Value"] == ["CT head"]
    assert study["00080061"]["Value"] == ["CT", "MR"]
    assert study["00201206"]["Value"] == [3]
    assert study["00201208"]["Value"] == [7]
    assert study["00081190"]["Value"][0].endswith(f"/dicomweb/studies/{head}")


def test_series_and_instance_searches_list_a_study_in_order(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    client = live_api.client(users[DR_A])
    uid = head_ct.spec.study_uid
    series = client.search_for_series(uid)
    assert _values(series, SERIES_UID) == [s.series_uid for s in head_ct.spec.series]
    assert _values(series, "00080060") == ["CT", "CT", "MR"]
    assert _values(series, "0008103E") == ["Axial", "Coronal", "T2"]
    assert _values(series, "00200011") == [1, 2, 3]
    assert _values(series, "00201209") == [3, 2, 2]
    assert PATIENT_NAME not in series[0]

    mr = client.search_for_series(uid, search_filters={"Modality": "MR"})
    assert _values(mr, SERIES_UID) == [head_ct.spec.series[2].series_uid]

    axial = head_ct.spec.series[0].series_uid
    instances = client.search_for_instances(uid, axial)
    assert _values(instances, "00200013") == [1, 2, 3]
    assert set(_values(instances, SOP_UID)) <= set(head_ct.files)
    assert _values(instances, "00080016") == ["1.2.840.10008.5.1.4.1.1.2"] * 3
    assert _values(instances, "00083002") == ["1.2.840.10008.1.2.1"] * 3

    everywhere = client.search_for_instances(search_filters={"Modality": "MR"})
    assert len(everywhere) == 2
    assert set(_values(client.search_for_instances(uid), SOP_UID)) == set(head_ct.files)
    assert len(client.search_for_series(search_filters={"PatientID": "RXA-001"})) == 3


def test_limit_offset_and_includefield(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    client = live_api.client(users[DR_A])
    uid = head_ct.spec.study_uid
    all_series = _values(client.search_for_series(uid), SERIES_UID)
    page = client.search_for_series(uid, limit=2, offset=1)
    assert _values(page, SERIES_UID) == all_series[1:3]

    with_study = client.search_for_series(uid, fields=["all"])
    assert with_study[0][PATIENT_NAME]["Value"] == [{"Alphabetic": "Smith^Anne"}]
    named = client.search_for_series(uid, fields=["PatientID", "00081030"])
    assert named[0]["00100020"]["Value"] == ["RXA-001"]
    assert named[0]["00081030"]["Value"] == ["CT head"]
    assert PATIENT_NAME not in named[0]


def test_bad_query_parameters_answer_422_with_a_clear_detail(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    headers = bearer(live_api.settings, users[DR_A])
    url = f"{live_api.base_url}/dicomweb/studies"
    for params, words in (
        ({"StudyDate": "2026-1101"}, "StudyDate"),
        ({"StudyDate": "20261301"}, "StudyDate"),
        ({"StudyDate": "20261102-20261101"}, "ends before"),
        ({"limit": "0"}, "limit"),
        ({"offset": "x"}, "offset"),
        ({"includefield": "NotAKeyword"}, "includefield"),
        ({"StudyInstanceUID": "1.2.x"}, "StudyInstanceUID"),
    ):
        response = httpx.get(url, params=params, headers=headers)
        assert response.status_code == 422, (params, response.text)
        assert words in response.json()["detail"]
    xml = httpx.get(url, headers={**headers, "Accept": "application/dicom+xml"})
    assert xml.status_code == 406


def test_each_query_returning_patient_data_is_audited_once(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    db: sessionmaker[Session],
) -> None:
    client = live_api.client(users[DR_A])
    client.search_for_studies(search_filters={"PatientName": "smith*"})
    client.search_for_studies(search_filters={"PatientName": "nobody*"})
    client.search_for_series(head_ct.spec.study_uid)
    rows = audit_rows(db, AuditAction.STUDY_QUERIED)
    assert [(r.actor, r.detail["level"]) for r in rows] == [(DR_A, "study"), (DR_A, "series")]
    assert rows[0].detail["study_uids"] == [head_ct.spec.study_uid]
    assert rows[0].detail["matching"] == {"patient_name": "smith%"}
    assert rows[1].study_uid == head_ct.spec.study_uid
    assert rows[1].site_id is not None


def test_an_admin_searches_every_trust(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    studies = live_api.client(users[ADMIN]).search_for_studies()
    assert _values(studies, STUDY_UID) == [head_ct.spec.study_uid]
