"""The requests OHIF v3 makes (its URLs and Accept headers), answered as it expects."""

from __future__ import annotations

import io

import httpx
from PIL import Image
from pydicom import dcmread

from tests.api.conftest import bearer
from tests.dicomweb.conftest import DR_A, LiveApi, Pushed
from worklist.models import User

DICOM_JSON = "application/dicom+json"
# OHIF's default data source omits the quotes around the type (omitQuotationForMultipartRequest).
OHIF_FRAME_ACCEPT = "multipart/related; type=application/octet-stream; transfer-syntax=*"


def _parts(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    boundary = response.headers["content-type"].split("boundary=")[1].strip('"').encode()
    parts = []
    for chunk in response.content.split(b"--" + boundary)[1:-1]:
        head, _, body = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        parts.append((headers, body.removesuffix(b"\r\n")))
    assert response.content.endswith(b"--" + boundary + b"--\r\n")
    return parts


def test_ohif_study_list_series_metadata_and_frames(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    headers = bearer(live_api.settings, users[DR_A])
    root = f"{live_api.base_url}/dicomweb"
    with httpx.Client(headers=headers) as http:
        studies = http.get(
            f"{root}/studies?limit=101&offset=0&fuzzymatching=false"
            "&includefield=00081030%2C00080060&PatientName=*smith*",
            headers={"Accept": DICOM_JSON},
        )
        assert studies.status_code == 200
        assert studies.headers["content-type"] == DICOM_JSON
        [study] = studies.json()
        uid = study["0020000D"]["Value"][0]
        assert uid == head_ct.spec.study_uid

        series = http.get(f"{root}/studies/{uid}/series", headers={"Accept": DICOM_JSON})
        assert series.status_code == 200
        series_uid = series.json()[0]["0020000E"]["Value"][0]

        metadata = http.get(
            f"{root}/studies/{uid}/series/{series_uid}/metadata", headers={"Accept": DICOM_JSON}
        )
        assert metadata.status_code == 200
        assert metadata.headers["content-type"] == DICOM_JSON
        first = metadata.json()[0]
        for tag in ("00280010", "00280011", "00280100", "00280103", "00280004", "0020000E"):
            assert tag in first, tag
        sop = first["00080018"]["Value"][0]

        frame = http.get(
            f"{root}/studies/{uid}/series/{series_uid}/instances/{sop}/frames/1",
            headers={"Accept": OHIF_FRAME_ACCEPT},
        )
        assert frame.status_code == 200
        content_type = frame.headers["content-type"]
        assert content_type.startswith('multipart/related; type="application/octet-stream"')
        assert "transfer-syntax=1.2.840.10008.1.2.1" in content_type
        [(part_headers, pixels)] = _parts(frame)
        assert part_headers["Content-Type"] == (
            "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
        )
        assert pixels == dcmread(head_ct.files[sop]).PixelData


# OHIF 3.13's stock data source (thumbnailRendering "thumbnail", thumbnailRequestStrategy
# "fetch"): a plain fetch of the instance's, or else the series', thumbnail at 256,256.
OHIF_THUMBNAIL_QUERY = "viewport=256%2C256"


def test_ohif_stock_config_thumbnails_are_jpeg_images(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    headers = {**bearer(live_api.settings, users[DR_A]), "Accept": "image/jpeg"}
    study = head_ct.spec.study_uid
    series = head_ct.spec.series[0].series_uid
    sop = next(s for s, p in head_ct.files.items() if dcmread(p).SeriesInstanceUID == series)
    root = f"{live_api.base_url}/dicomweb/studies/{study}/series/{series}"
    with httpx.Client(headers=headers, timeout=30) as http:
        for url in (f"{root}/instances/{sop}/thumbnail", f"{root}/thumbnail"):
            response = http.get(f"{url}?{OHIF_THUMBNAIL_QUERY}")
            assert response.status_code == 200, url
            assert response.headers["content-type"] == "image/jpeg"
            image = Image.open(io.BytesIO(response.content))
            assert image.format == "JPEG"
            assert image.size == (256, 256)  # 64x64 scaled to fit the viewport
