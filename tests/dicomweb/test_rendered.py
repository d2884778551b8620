"""WADO-RS rendered and thumbnail resources, real app, of images pushed through the gateway."""

from __future__ import annotations

import io
from functools import partial
from pathlib import Path

import httpx
import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import audit_rows, bearer
from tests.dicomweb.conftest import DR_A, DR_B, LiveApi, Pushed, push, push_sample
from tests.gateway.conftest import send, write_files
from worklist.enums import AuditAction
from worklist.models import User
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, make_instance, new_uid

# One row of raw stored values; with Rescale Intercept -1024 they are these HU.
RAW = [0, 1000, 1250, 1750, 2000, 4000]  # HU: -1024, -24, 226, 726, 976, 2976
INTERCEPT = -1024
ROWS = 2
JPEG2000_PART2 = "1.2.840.10008.1.2.4.92"  # no decoder here for it
# A first render loads the decoders; a loaded machine can take a while.
TIMEOUT_SECONDS = 30
_get = partial(httpx.get, timeout=TIMEOUT_SECONDS)


def _known_study(gateway: Gateway, directory: Path, **attributes: object) -> tuple[str, str, str]:
    """An RXA study of one CT image whose rows are RAW, with extra header ``attributes``."""
    series = SeriesSpec(modality="CT", count=1, rows=ROWS, columns=len(RAW))
    spec = StudySpec(patient=PatientSpec("RXA-KNOWN", name="Known^Pixels"), series=[series])
    ds = make_instance(spec, series, 0, 1)
    ds.PixelData = np.array([RAW] * ROWS, dtype=np.uint16).tobytes()
    ds.RescaleIntercept = INTERCEPT
    ds.RescaleSlope = 1
    for name, value in attributes.items():
        setattr(ds, name, value)
    [path] = write_files([ds], directory / spec.study_uid)
    assert [r.status for r in send(gateway.port, [path])] == [0]
    return spec.study_uid, series.series_uid, str(ds.SOPInstanceUID)


def _grey(response: httpx.Response) -> NDArray[np.uint8]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    assert image.mode == "L"
    pixels = np.asarray(image)
    assert pixels.shape == (ROWS, len(RAW))
    assert (pixels == pixels[0]).all()
    row: NDArray[np.uint8] = pixels[0]
    return row


def _image(response: httpx.Response, media_type: str = "image/jpeg") -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    image = Image.open(io.BytesIO(response.content))
    assert image.format == {"image/jpeg": "JPEG", "image/png": "PNG"}[media_type]
    return image


def _ordered(pushed: Pushed, series_uid: str) -> list[str]:
    """The SOP Instance UIDs of one pushed series, by Instance Number."""
    found = []
    for sop, path in pushed.files.items():
        ds = dcmread(path, stop_before_pixels=True)
        if ds.SeriesInstanceUID == series_uid:
            found.append((int(ds.InstanceNumber), sop))
    return [sop for _, sop in sorted(found)]


def test_a_window_maps_modality_values_to_the_grey_levels_of_its_function(
    live_api: LiveApi, gateway: Gateway, users: dict[str, User], tmp_path: Path
) -> None:
    study, series, sop = _known_study(gateway, tmp_path, WindowCenter=476, WindowWidth=1000)
    url = f"{live_api.base_url}/dicomweb/studies/{study}/series/{series}/instances/{sop}/rendered"
    png = {**bearer(live_api.settings, users[DR_A]), "Accept": "image/png"}

    def grey(params: dict[str, str] | None = None) -> list[int]:
        return [int(v) for v in _grey(_get(url, params=params, headers=png))]

    # The instance's own window (centre 476, width 1000, linear), on HU not stored values.
    assert grey() == [0, 0, 64, 191, 255, 255]
    assert grey({"window": "476,1000,linear"}) == [0, 0, 64, 191, 255, 255]
    assert grey({"window": "476,1000,linear-exact"}) == [0, 0, 64, 191, 255, 255]
    # A narrower window centred lower: brighter, more values clipped to white.
    assert grey({"window": "226,500,linear-exact"}) == [0, 0, 128, 255, 255, 255]
    assert grey({"window": "226,500,sigmoid"}) == [0, 30, 128, 250, 254, 255]
    for bad in ("476", "a,b", "476,0", "476,1000,gamma", "nan,1000"):
        response = _get(url, params={"window": bad}, headers=png)
        assert response.status_code == 422, bad


def test_without_a_window_the_value_range_is_used_and_monochrome1_is_inverted(
    live_api: LiveApi, gateway: Gateway, users: dict[str, User], tmp_path: Path
) -> None:
    png = {**bearer(live_api.settings, users[DR_A]), "Accept": "image/png"}
    root = f"{live_api.base_url}/dicomweb/studies"

    study, series, sop = _known_study(gateway, tmp_path / "range")
    url = f"{root}/{study}/series/{series}/instances/{sop}/rendered"
    # HU -1024..2976: centre 976, width 4000.
    assert _grey(_get(url, headers=png)).tolist() == [0, 64, 80, 112, 128, 255]

    study, series, sop = _known_study(
        gateway,
        tmp_path / "inverted",
        PhotometricInterpretation="MONOCHROME1",
        WindowCenter=476,
        WindowWidth=1000,
    )
    url = f"{root}/{study}/series/{series}/instances/{sop}/rendered"
    assert _grey(_get(url, headers=png)).tolist() == [255, 255, 191, 64, 0, 0]
    thumbnail = _get(url.replace("/rendered", "/thumbnail"), headers=png)
    assert _grey(thumbnail).tolist() == [255, 255, 191, 64, 0, 0]


def test_instances_and_frames_render_as_jpeg_and_png_of_their_size(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    gateway: Gateway,
    tmp_path: Path,
) -> None:
    headers = bearer(live_api.settings, users[DR_A])
    study = head_ct.spec.study_uid
    axial = head_ct.spec.series[0].series_uid
    sop = _ordered(head_ct, axial)[0]
    url = f"{live_api.base_url}/dicomweb/studies/{study}/series/{axial}/instances/{sop}"

    jpeg = _get(f"{url}/rendered", headers=headers)
    assert _image(jpeg).size == (64, 64)
    assert _image(jpeg).mode == "L"
    assert "private" in jpeg.headers["cache-control"]
    png = _get(f"{url}/frames/1/rendered", headers={**headers, "Accept": "image/png"})
    assert _image(png, "image/png").size == (64, 64)
    # PNG is lossless: the instance and its only frame are the same picture.
    same = _get(f"{url}/rendered", headers={**headers, "Accept": "image/png"})
    assert same.content == png.content
    scaled = _get(f"{url}/rendered", params={"viewport": "32,16"}, headers=headers)
    assert _image(scaled).size == (16, 16)
    poor = _get(f"{url}/rendered", params={"quality": "5"}, headers=headers)
    assert len(_image(poor).tobytes()) == 64 * 64
    assert len(poor.content) < len(jpeg.content)
    assert _get(f"{url}/frames/2/rendered", headers=headers).status_code == 404
    assert _get(f"{url}/frames/1,1/rendered", headers=headers).status_code == 406
    for params in ({"viewport": "0,10"}, {"viewport": "1e9,10"}, {"quality": "0"}):
        assert _get(f"{url}/rendered", params=params, headers=headers).status_code == 422

    # A multi-frame image: frame n is frame n (frames of 0, 2000 and 4000).
    series = SeriesSpec(modality="CT", count=1, rows=4, columns=4)
    ds = make_instance(head_ct.spec, series, 0, 9)
    ds.NumberOfFrames = 3
    ds.PixelData = np.repeat(np.array([0, 2000, 4000], dtype=np.uint16), 16).tobytes()
    [path] = write_files([ds], tmp_path / "multiframe")
    assert [r.status for r in send(gateway.port, [path])] == [0]
    frames = f"{live_api.base_url}/dicomweb/studies/{study}/series/{series.series_uid}"
    frames += f"/instances/{ds.SOPInstanceUID}/frames"
    window = {"window": "2000,4000,linear-exact"}
    for number, level in ((1, 0), (2, 128), (3, 255)):
        response = _get(
            f"{frames}/{number}/rendered", params=window, headers={**headers, "Accept": "image/png"}
        )
        assert set(np.asarray(_image(response, "image/png")).flatten().tolist()) == {level}
    assert _get(f"{frames}/4/rendered", headers=headers).status_code == 404


def test_compressed_and_colour_images_render(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    gateway: Gateway,
    tmp_path: Path,
) -> None:
    headers = {**bearer(live_api.settings, users[DR_A]), "Accept": "image/png"}
    study = head_ct.spec.study_uid
    root = f"{live_api.base_url}/dicomweb/studies/{study}/series"

    def rendered(sample: str, frame: int = 1) -> Image.Image:
        series = new_uid()
        path = push_sample(gateway.port, sample, study, tmp_path / sample, series_uid=series)
        sop = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        url = f"{root}/{series}/instances/{sop}/frames/{frame}/rendered"
        return _image(_get(url, headers=headers), "image/png")

    plain = rendered("MR_small.dcm")
    # JPEG 2000 and JPEG-LS lossless hold the same pixels: the same picture comes out.
    for lossless in ("MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        assert np.array_equal(np.asarray(rendered(lossless)), np.asarray(plain)), lossless
    assert plain.size == (64, 64)
    # JPEG baseline YBR_FULL_422, multi-frame: colour, second frame.
    colour = rendered("examples_ybr_color.dcm", frame=2)
    assert (colour.mode, colour.size) == ("RGB", (320, 240))
    rle = rendered("SC_rgb_rle_2frame.dcm", frame=2)
    assert (rle.mode, rle.size) == ("RGB", (100, 100))


def test_an_image_that_cannot_be_decoded_is_406_and_not_audited(
    live_api: LiveApi,
    head_ct: Pushed,
    users: dict[str, User],
    gateway: Gateway,
    db: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    series = SeriesSpec(modality="CT", count=1, rows=4, columns=4)
    ds: Dataset = make_instance(head_ct.spec, series, 0, 9)
    ds.file_meta.TransferSyntaxUID = UID(JPEG2000_PART2)
    ds.PixelData = encapsulate([b"\xff\x4f" + bytes(30)])
    ds["PixelData"].VR = "OB"
    [path] = write_files([ds], tmp_path / "part2")
    assert [r.status for r in send(gateway.port, [path])] == [0]
    headers = bearer(live_api.settings, users[DR_A])
    url = (
        f"{live_api.base_url}/dicomweb/studies/{head_ct.spec.study_uid}"
        f"/series/{series.series_uid}/instances/{ds.SOPInstanceUID}"
    )
    for resource in ("rendered", "thumbnail", "frames/1/rendered"):
        response = _get(f"{url}/{resource}", headers=headers)
        assert response.status_code == 406, resource
        assert JPEG2000_PART2 in response.json()["detail"]
    assert audit_rows(db, AuditAction.STUDY_RETRIEVED) == []
    # A study thumbnail passes over it to a series that renders.
    study = _get(
        f"{live_api.base_url}/dicomweb/studies/{head_ct.spec.study_uid}/thumbnail", headers=headers
    )
    assert _image(study).size == (64, 64)


def test_thumbnails_of_study_series_instance_and_frame_fit_the_viewport(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User], gateway: Gateway, tmp_path: Path
) -> None:
    headers = bearer(live_api.settings, users[DR_A])
    study = head_ct.spec.study_uid
    axial, coronal = (s.series_uid for s in head_ct.spec.series[:2])
    root = f"{live_api.base_url}/dicomweb/studies/{study}"

    def thumbnail(path: str, **params: str) -> httpx.Response:
        return _get(f"{root}{path}/thumbnail", params=params, headers=headers)

    middle_axial = _ordered(head_ct, axial)[1]
    middle_coronal = _ordered(head_ct, coronal)[1]
    of_study = thumbnail("", viewport="32,32")
    assert _image(of_study).size == (32, 32)
    # The study's is the middle image of its first series; a series' its middle image.
    axial_instance = f"/series/{axial}/instances/{middle_axial}"
    assert of_study.content == thumbnail(axial_instance, viewport="32,32").content
    of_series = thumbnail(f"/series/{coronal}", viewport="32,32")
    coronal_instance = f"/series/{coronal}/instances/{middle_coronal}"
    assert of_series.content == thumbnail(coronal_instance, viewport="32,32").content
    assert of_series.content != of_study.content
    frame = thumbnail(f"{coronal_instance}/frames/1", viewport="20,10")
    assert _image(frame).size == (10, 10)
    assert _image(thumbnail(axial_instance)).size == (64, 64)  # small images are not enlarged

    # Without a viewport a thumbnail fits 128 pixels; a viewport can enlarge.
    wide = SeriesSpec(modality="CR", count=1, rows=200, columns=300)
    spec = StudySpec(patient=PatientSpec("RXA-WIDE"), series=[wide])
    push(gateway.port, spec, tmp_path / "wide")
    wide_root = f"{live_api.base_url}/dicomweb/studies/{spec.study_uid}"
    assert _image(_get(f"{wide_root}/thumbnail", headers=headers)).size == (128, 85)
    big = _get(f"{wide_root}/thumbnail", params={"viewport": "600,600"}, headers=headers)
    assert _image(big).size == (600, 400)
    assert thumbnail("/series/1.2.3").status_code == 404


# (Accept header, accept query parameter, what is served; None: 406)
NEGOTIATIONS: list[tuple[str | None, str | None, str | None]] = [
    (None, None, "image/jpeg"),
    ("*/*", None, "image/jpeg"),
    ("image/*", None, "image/jpeg"),
    ("image/png", None, "image/png"),
    ("image/webp, image/png;q=0.5, image/jpeg;q=0.4", None, "image/png"),
    ("image/jpeg", "image/png", "image/png"),
    ("image/gif", None, None),
    ("application/dicom", None, None),
    ('multipart/related; type="image/jpeg"', None, None),
    ("image/jpeg", "image/gif", None),
]


def test_accept_chooses_jpeg_or_png_and_anything_else_is_406(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User]
) -> None:
    url = f"{live_api.base_url}/dicomweb/studies/{head_ct.spec.study_uid}/thumbnail"
    for accept, parameter, served in NEGOTIATIONS:
        headers = bearer(live_api.settings, users[DR_A])
        if accept is not None:
            headers["Accept"] = accept
        params = {"accept": parameter} if parameter else None
        response = _get(url, params=params, headers=headers)
        if served is None:
            assert response.status_code == 406, (accept, parameter)
            assert "image/jpeg or image/png" in response.json()["detail"]
        else:
            _image(response, served)


def test_another_trusts_radiologist_gets_404_everywhere_and_nothing_is_audited(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User], db: sessionmaker[Session]
) -> None:
    study = head_ct.spec.study_uid
    axial = head_ct.spec.series[0].series_uid
    sop = _ordered(head_ct, axial)[0]
    instance = f"/studies/{study}/series/{axial}/instances/{sop}"
    root = f"{live_api.base_url}/dicomweb"
    outsider = bearer(live_api.settings, users[DR_B])
    for path in (
        f"{instance}/rendered",
        f"{instance}/frames/1/rendered",
        f"{instance}/thumbnail",
        f"{instance}/frames/1/thumbnail",
        f"/studies/{study}/series/{axial}/thumbnail",
        f"/studies/{study}/thumbnail",
    ):
        assert _get(f"{root}{path}", headers=outsider).status_code == 404, path
        assert _get(f"{root}{path}").status_code == 401, path
    assert audit_rows(db, AuditAction.STUDY_RETRIEVED) == []


def test_rendered_and_thumbnail_retrievals_are_audited(
    live_api: LiveApi, head_ct: Pushed, users: dict[str, User], db: sessionmaker[Session]
) -> None:
    headers = bearer(live_api.settings, users[DR_A])
    study = head_ct.spec.study_uid
    axial = head_ct.spec.series[0].series_uid
    sop = _ordered(head_ct, axial)[0]
    root = f"{live_api.base_url}/dicomweb/studies/{study}"
    for path in (
        f"/series/{axial}/instances/{sop}/rendered",
        f"/series/{axial}/instances/{sop}/frames/1/thumbnail",
        f"/series/{axial}/thumbnail",
        "/thumbnail",
    ):
        assert _get(f"{root}{path}", headers=headers).status_code == 200, path
    rows = audit_rows(db, AuditAction.STUDY_RETRIEVED)
    summary = [
        (
            r.actor,
            r.study_uid,
            r.detail["via"],
            r.detail["level"],
            r.detail["resource"],
            r.detail["series_uid"],
            r.detail["sop_instance_uid"],
        )
        for r in rows
    ]
    assert summary == [
        (DR_A, study, "dicomweb", "instance", "rendered", axial, sop),
        (DR_A, study, "dicomweb", "instance", "thumbnail", axial, sop),
        (DR_A, study, "dicomweb", "series", "thumbnail", axial, None),
        (DR_A, study, "dicomweb", "study", "thumbnail", None, None),
    ]
    assert all(r.site_id is not None and r.address == "127.0.0.1" for r in rows)
