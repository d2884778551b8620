"""WADO-RS with the real dicomweb-client: the bytes pushed come back, metadata, frames."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.encaps import get_frame
from pydicom.filebase import DicomBytesIO
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import DR_A, LiveApi, Pushed, push_sample, stored_file
from tests.gateway.conftest import dataset_bytes
from worklist.config import Settings
from worklist.enums import AuditAction
from worklist.models import User
from worklist.synthetic import new_uid


def _part10(dataset: object) -> bytes:
    """The Part 10 bytes dicomweb-client received (it parses them into a Dataset)."""
    buffer = DicomBytesIO()
    dataset.save_as(buffer, enforce_file_format=True)  # type: ignore[attr-defined]
    return buffer.getvalue()


def _raw_parts(client: DICOMwebClient, url: str) -> list[bytes]:
    # The raw parts, before dicomweb-client parses them (its private multipart reader).
    return list(client._http_get_multipart(url))


def test_study_series_and_instance_come_back_byte_for_byte(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    db: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    client = live_api.client(users[DR_A])
    study = head_ct.spec.study_uid
    root = f"{live_api.base_url}/dicomweb/studies/{study}"

    parts = _raw_parts(client, root)
    assert len(parts) == 7
    for part in parts:
        received = tmp_path / "received.dcm"
        received.write_bytes(part)
        sop = str(dcmread(received, stop_before_pixels=True).SOPInstanceUID)
        # Exactly the stored file, whose dataset is exactly what the site pushed.
        assert part == stored_file(db, settings, sop).read_bytes()
        assert dataset_bytes(received) == dataset_bytes(head_ct.files[sop])

    retrieved = client.retrieve_study(study)
    assert {str(ds.SOPInstanceUID) for ds in retrieved} == set(head_ct.files)

    coronal = head_ct.spec.series[1].series_uid
    series = client.retrieve_series(study, coronal)
    assert len(series) == 2
    assert {str(ds.SeriesInstanceUID) for ds in series} == {coronal}
    assert len(_raw_parts(client, f"{root}/series/{coronal}")) == 2

    sop = str(series[0].SOPInstanceUID)
    instance = client.retrieve_instance(study, coronal, sop)
    assert instance.PixelData == dcmread(head_ct.files[sop]).PixelData
    [only] = _raw_parts(client, f"{root}/series/{coronal}/instances/{sop}")
    assert only == stored_file(db, settings, sop).read_bytes()


def test_metadata_carries_the_header_ohif_needs_and_a_pixel_data_uri(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    client = live_api.client(users[DR_A])
    study = head_ct.spec.study_uid
    metadata = client.retrieve_study_metadata(study)
    assert len(metadata) == 7
    axial = head_ct.spec.series[0].series_uid
    series_md = client.retrieve_series_metadata(study, axial)
    assert len(series_md) == 3
    first = series_md[0]
    sop = first["00080018"]["Value"][0]
    sent = dcmread(head_ct.files[sop])
    assert first["00280010"]["Value"] == [sent.Rows]
    assert first["00280011"]["Value"] == [sent.Columns]
    assert first["00280100"]["Value"] == [16]
    assert first["00280103"]["Value"] == [0]
    assert first["00280004"]["Value"] == ["MONOCHROME2"]
    assert first["00100010"]["Value"] == [{"Alphabetic": "Smith^Anne"}]
    assert first["00083002"]["Value"] == ["1.2.840.10008.1.2.1"]
    uri = first["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/instances/{sop}/bulkdata/7FE00010")
    # dicomweb-client (requests) sends a Host header without the port; URIs follow Host.
    [pixels] = client.retrieve_bulkdata(uri.replace("http://127.0.0.1/", f"{live_api.base_url}/"))
    assert pixels == sent.PixelData

    one = client.retrieve_instance_metadata(study, axial, sop)
    assert one["00080018"]["Value"] == [sop]


def test_uncompressed_frames_are_the_pixel_data_slices(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    gateway: Gateway,
    tmp_path: Path,
) -> None:
    client = live_api.client(users[DR_A])
    study = head_ct.spec.study_uid
    series = head_ct.spec.series[0].series_uid
    sop = next(s for s, p in head_ct.files.items() if dcmread(p).SeriesInstanceUID == series)
    [frame] = client.retrieve_instance_frames(study, series, sop, [1])
    assert frame == dcmread(head_ct.files[sop]).PixelData

    # 15 frames of 10x10 32-bit, Implicit VR Little Endian.
    dose_series = new_uid()
    path = push_sample(gateway.port, "rtdose.dcm", study, tmp_path, series_uid=dose_series)
    sent = dcmread(path)
    dose_sop = str(sent.SOPInstanceUID)
    size = 10 * 10 * 4
    frames = client.retrieve_instance_frames(study, dose_series, dose_sop, [2, 15, 7])
    assert frames == [sent.PixelData[(n - 1) * size : n * size] for n in (2, 15, 7)]


@pytest.mark.parametrize(
    ("sample", "media_type"),
    [("examples_ybr_color.dcm", "image/jpeg"), ("SC_rgb_rle_2frame.dcm", "image/dicom-rle")],
)
def test_compressed_frames_are_served_encapsulated_as_stored(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    gateway: Gateway,
    tmp_path: Path,
    sample: str,
    media_type: str,
) -> None:
    study, series = head_ct.spec.study_uid, new_uid()
    path = push_sample(gateway.port, sample, study, tmp_path, series_uid=series)
    sent = dcmread(path)
    frames = int(sent.NumberOfFrames)
    syntax = str(sent.file_meta.TransferSyntaxUID)
    client = live_api.client(users[DR_A])
    got = client.retrieve_instance_frames(
        study, series, str(sent.SOPInstanceUID), [2, 1], media_types=((media_type, syntax),)
    )
    expected = [get_frame(sent.PixelData, n - 1, number_of_frames=frames) for n in (2, 1)]
    assert got == expected

    headers = bearer(live_api.settings, users[DR_A])
    sop = sent.SOPInstanceUID
    url = f"{live_api.base_url}/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    raw = httpx.get(
        f"{url}/frames/1",
        headers={**headers, "Accept": 'multipart/related; type="application/octet-stream"'},
    )
    assert raw.status_code == 406  # uncompressed asked for; we do not transcode
    missing = httpx.get(f"{url}/frames/{frames + 1}", headers=headers)
    assert missing.status_code == 404


def test_unacceptable_media_types_answer_406(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    headers = bearer(live_api.settings, users[DR_A])
    url = f"{live_api.base_url}/dicomweb/studies/{head_ct.spec.study_uid}"
    jpeg = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    assert httpx.get(url, headers={**headers, "Accept": jpeg}).status_code == 406
    assert httpx.get(url, headers={**headers, "Accept": "image/png"}).status_code == 406
    ok = httpx.get(
        url, headers={**headers, "Accept": 'multipart/related; type="application/dicom"'}
    )
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    metadata_xml = httpx.get(
        f"{url}/metadata", headers={**headers, "Accept": "application/dicom+xml"}
    )
    assert metadata_xml.status_code == 406
    bad_frames = httpx.get(
        f"{url}/series/{head_ct.spec.series[0].series_uid}/instances/1.2.3/frames/x,1",
        headers=headers,
    )
    assert bad_frames.status_code == 422


def test_every_retrieval_is_audited_with_level_and_instance_count(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    db: sessionmaker[Session],
) -> None:
    client = live_api.client(users[DR_A])
    study = head_ct.spec.study_uid
    axial = head_ct.spec.series[0].series_uid
    client.retrieve_study(study)
    client.retrieve_series_metadata(study, axial)
    sop = client.search_for_instances(study, axial)[0]["00080018"]["Value"][0]
    client.retrieve_instance_frames(study, axial, sop, [1])
    rows = audit_rows(db, AuditAction.STUDY_RETRIEVED)
    summary = [
        (
            r.actor,
            r.actor_kind,
            r.study_uid,
            r.detail["level"],
            r.detail["resource"],
            r.detail["instances"],
        )
        for r in rows
    ]
    assert summary == [
        (DR_A, "user", study, "study", "instances", 7),
        (DR_A, "user", study, "series", "metadata", 3),
        (DR_A, "user", study, "instance", "frames", 1),
    ]
    assert all(r.site_id is not None for r in rows)
