"""A radiologist at trust B opens, through the B study they report, the patient's prior at A."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydicom import dcmread
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import DR_B, LiveApi, stored_file
from tests.gateway.conftest import dataset_bytes
from tests.priors.conftest import PRIOR_REPORT, History
from worklist.config import Settings
from worklist.enums import AuditAction
from worklist.models import User


def _get(live_api: LiveApi, user: User, path: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{live_api.base_url}{path}", params=params, headers=bearer(live_api.settings, user)
    )


def test_the_study_detail_links_its_prior_at_another_trust(
    live_api: LiveApi, history: History, users: dict[str, User]
) -> None:
    body = _get(live_api, users[DR_B], f"/api/v1/studies/{history.current_uid}").json()

    [prior] = body["priors"]
    assert (prior["study_uid"], prior["site"]["code"]) == (history.prior_uid, "RXA")
    assert prior["report_status"] == "final"
    path = f"/api/v1/studies/{history.current_uid}/priors/{history.prior_uid}"
    assert prior["links"]["detail"] == path
    assert prior["links"]["report"] == f"{path}/report"
    assert prior["links"]["dicomweb"] == (
        f"{live_api.base_url}/dicomweb/studies/{history.prior_uid}?via={history.current_uid}"
    )


def test_radiologist_reads_the_prior_detail_and_signed_report_through_the_study(
    live_api: LiveApi, history: History, users: dict[str, User], db: sessionmaker[Session]
) -> None:
    links = _get(live_api, users[DR_B], f"/api/v1/studies/{history.current_uid}").json()["priors"][
        0
    ]["links"]

    detail = _get(live_api, users[DR_B], links["detail"])
    report = _get(live_api, users[DR_B], links["report"])

    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert (body["study_uid"], body["via"], body["site"]["code"]) == (
        history.prior_uid,
        history.current_uid,
        "RXA",
    )
    assert [s["series_uid"] for s in body["series"]] == [
        s.series_uid for s in history.prior.spec.series
    ]
    assert [s["instance_count"] for s in body["series"]] == [2, 1]
    assert body["dicomweb_url"] == links["dicomweb"]
    assert "priors" not in body
    assert report.status_code == 200, report.text
    assert (report.json()["text"], report.json()["status"]) == (PRIOR_REPORT, "final")
    assert report.headers["ETag"] == f'"{report.json()["version"]}"'

    views = [r for r in audit_rows(db, AuditAction.PRIOR_VIEW) if r.detail.get("resource")]
    assert [(v.actor, v.study_uid, v.site_id, v.detail) for v in views] == [
        (
            DR_B,
            history.prior_uid,
            history.site_ids["RXA"],
            {"via": history.current_uid, "resource": "detail"},
        )
    ]
    [read] = audit_rows(db, AuditAction.PRIOR_REPORT_VIEW)
    assert (read.actor, read.study_uid, read.site_id) == (
        DR_B,
        history.prior_uid,
        history.site_ids["RXA"],
    )
    assert read.detail == {"via": history.current_uid, "version": report.json()["version"]}
    assert audit_rows(db, AuditAction.REPORT_VIEW) == []


def test_radiologist_retrieves_the_prior_images_byte_for_byte_through_the_study(
    live_api: LiveApi,
    history: History,
    users: dict[str, User],
    db: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    client = live_api.client(users[DR_B])
    via = {"via": history.current_uid}
    prior = history.prior_uid
    axial, t2 = (s.series_uid for s in history.prior.spec.series)

    parts = list(
        client._http_get_multipart(f"{live_api.base_url}/dicomweb/studies/{prior}", params=via)
    )
    assert len(parts) == 3
    for part in parts:
        received = tmp_path / "received.dcm"
        received.write_bytes(part)
        sop = str(dcmread(received, stop_before_pixels=True).SOPInstanceUID)
        assert part == stored_file(db, settings, sop).read_bytes()
        assert dataset_bytes(received) == dataset_bytes(history.prior.files[sop])

    series = client.retrieve_series(prior, axial, additional_params=via)
    assert {str(ds.SOPInstanceUID) for ds in series} == {
        sop for sop, path in history.prior.files.items() if dcmread(path).SeriesInstanceUID == axial
    }
    sop = str(series[0].SOPInstanceUID)
    sent = dcmread(history.prior.files[sop])
    instance = client.retrieve_instance(prior, axial, sop, additional_params=via)
    assert instance.PixelData == sent.PixelData
    [frame] = client.retrieve_instance_frames(prior, axial, sop, [1], additional_params=via)
    assert frame == sent.PixelData

    metadata = client.retrieve_series_metadata(prior, axial, additional_params=via)
    assert len(metadata) == 2
    uri = next(m for m in metadata if m["00080018"]["Value"] == [sop])["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/instances/{sop}/bulkdata/7FE00010?via={history.current_uid}")
    # dicomweb-client (requests) sends a Host header without the port; URIs follow Host.
    [pixels] = client.retrieve_bulkdata(uri.replace("http://127.0.0.1/", f"{live_api.base_url}/"))
    assert pixels == sent.PixelData
    assert len(client.retrieve_study_metadata(prior, additional_params=via)) == 3

    found = client.search_for_series(prior, additional_params=via)
    assert {s["0020000E"]["Value"][0] for s in found} == {axial, t2}
    assert all(s["00081190"]["Value"][0].endswith(f"?via={history.current_uid}") for s in found)
    instances = client.search_for_instances(prior, t2, additional_params=via)
    assert len(instances) == 1

    retrieved = audit_rows(db, AuditAction.PRIOR_RETRIEVED)
    assert len(retrieved) == 7
    assert {(r.actor, r.study_uid, r.site_id) for r in retrieved} == {
        (DR_B, prior, history.site_ids["RXA"])
    }
    assert all(r.detail["via"] == history.current_uid for r in retrieved)
    assert {r.detail["resource"] for r in retrieved} == {
        "instances",
        "frames",
        "metadata",
        "bulkdata",
    }
    queried = audit_rows(db, AuditAction.PRIOR_QUERIED)
    assert [(q.study_uid, q.detail["via"], q.detail["level"]) for q in queried] == [
        (prior, history.current_uid, "series"),
        (prior, history.current_uid, "instance"),
    ]
    assert audit_rows(db, AuditAction.STUDY_RETRIEVED) == []


def test_a_study_search_through_the_study_finds_its_priors_and_nothing_else(
    live_api: LiveApi, history: History, users: dict[str, User], db: sessionmaker[Session]
) -> None:
    client = live_api.client(users[DR_B])

    through = client.search_for_studies(additional_params={"via": history.current_uid})
    own = client.search_for_studies()
    everything = client.search_for_studies(
        search_filters={"PatientName": "Jones*"}, additional_params={"via": history.current_uid}
    )

    assert [s["0020000D"]["Value"][0] for s in through] == [history.prior_uid]
    assert [s["0020000D"]["Value"][0] for s in everything] == [history.prior_uid]
    assert {s["0020000D"]["Value"][0] for s in own} == {
        history.current_uid,
        history.unlinked_b.spec.study_uid,
    }
    queried = audit_rows(db, AuditAction.PRIOR_QUERIED)
    assert [(q.study_uid, q.site_id, q.detail["level"]) for q in queried] == [
        (history.prior_uid, history.site_ids["RXA"], "study")
    ] * 2
