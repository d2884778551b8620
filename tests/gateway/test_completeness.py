"""Truncated or inconsistent instances are refused with 0xC000 and leave nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.completeness import IncompleteDataset, check_complete
from dicom_gateway.server import Gateway
from tests.gateway.conftest import SITE_A_AE, send, write_files
from worklist.config import Settings
from worklist.models import Instance
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances, new_uid

STORESCU = "/usr/bin/storescu"
SEQUENCE_DELIMITER_LENGTH = 8


def _native(directory: Path, count: int = 1) -> list[Path]:
    spec = StudySpec(patient=PatientSpec("TRUNC1"), series=[SeriesSpec(count=count)])
    return write_files(iter_instances(spec), directory)


def _compressed(name: str, directory: Path) -> Path:
    ds = dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = new_uid()
    ds.SeriesInstanceUID = new_uid()
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = "TRUNC2"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _cut(path: Path, remove: int, name: str) -> Path:
    data = path.read_bytes()
    out = path.with_name(name)
    out.write_bytes(data[: len(data) - remove])
    return out


def _stored(db: sessionmaker[Session], settings: Settings) -> tuple[int, list[Path]]:
    with db() as session:
        rows = session.scalar(select(func.count()).select_from(Instance)) or 0
    return rows, sorted(p for p in settings.dicom_dir.rglob("*") if p.is_file())


def _peer(gateway: Gateway) -> list[str]:
    return ["127.0.0.1", str(gateway.port)]


def _received_leftovers(settings: Settings) -> list[Path]:
    return [p for p in (settings.data_dir / "tmp").rglob("*") if p.is_file() and p.name != ".lock"]


def test_native_instance_cut_inside_pixel_data_is_refused_and_nothing_stored(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    (whole,) = _native(tmp_path / "native")
    cut = _cut(whole, 1000, "cut.dcm")
    results = send(gateway.port, [cut])
    assert results[0].status == status.CANNOT_UNDERSTAND
    assert results[0].comment == "dataset truncated inside (7FE0,0010)"
    assert _stored(db, settings) == (0, [])
    assert _received_leftovers(settings) == []


def test_pixel_data_shorter_than_its_image_attributes_is_refused(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    (whole,) = _native(tmp_path / "native")
    ds = dcmread(whole)
    ds.NumberOfFrames = 2  # one frame's bytes: element lengths add up, the image does not
    ds.save_as(tmp_path / "two-frames.dcm", enforce_file_format=True)
    results = send(gateway.port, [tmp_path / "two-frames.dcm"])
    assert results[0].status == status.CANNOT_UNDERSTAND
    assert results[0].comment is not None
    assert results[0].comment.startswith("Pixel Data is shorter than Rows x Columns")
    assert _stored(db, settings) == (0, [])


@pytest.mark.parametrize(
    ("remove", "comment"),
    [
        (500, "dataset truncated inside (7FE0,0010)"),
        (SEQUENCE_DELIMITER_LENGTH, "dataset truncated inside (7FE0,0010)"),
    ],
    ids=["cut-inside-a-fragment", "sequence-delimiter-missing"],
)
def test_encapsulated_instance_cut_short_is_refused_and_a_complete_one_accepted(
    gateway: Gateway,
    db: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
    remove: int,
    comment: str,
) -> None:
    whole = _compressed("SC_rgb_jpeg_dcmtk.dcm", tmp_path / "jpeg")
    cut = _cut(whole, remove, "cut.dcm")
    # The same association goes on: the cut copy refused, the whole file then accepted.
    results = send(gateway.port, [cut, whole])
    assert [(r.status, r.comment) for r in results] == [
        (status.CANNOT_UNDERSTAND, comment),
        (status.SUCCESS, None),
    ]
    rows, files = _stored(db, settings)
    assert rows == 1
    assert [f.read_bytes()[-100:] for f in files] == [whole.read_bytes()[-100:]]
    assert _received_leftovers(settings) == []


def test_truncated_deflated_instance_is_refused(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    whole = _compressed("image_dfl.dcm", tmp_path / "deflated")
    cut = _cut(whole, 200, "cut.dcm")
    with pytest.raises(IncompleteDataset, match="truncated"):
        check_complete(cut)
    results = send(gateway.port, [cut])
    assert results[0].status == status.CANNOT_UNDERSTAND
    assert _stored(db, settings) == (0, [])


def test_storescu_refusing_a_cut_file_leaves_nothing_stored_or_received(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    (whole,) = _native(tmp_path / "native")
    cut = _cut(whole, 3001, "cut.dcm")
    # DCMTK finds the file short while sending it and aborts the association.
    completed = subprocess.run(
        [STORESCU, "-v", "-aet", SITE_A_AE, "-aec", "IMAGING_NET", *_peer(gateway), str(cut)],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Aborting Association" in completed.stdout + completed.stderr
    assert _received_leftovers(settings) == []
    assert _stored(db, settings) == (0, [])


def test_every_cut_point_of_a_small_file_is_detected(tmp_path: Path) -> None:
    whole = _compressed("MR_small_RLE.dcm", tmp_path / "rle")
    check_complete(whole)
    data = whole.read_bytes()
    start = len(data) - 2048
    refused = 0
    for end in range(start, len(data), 7):
        piece = tmp_path / "piece.dcm"
        piece.write_bytes(data[:end])
        with pytest.raises(IncompleteDataset):
            check_complete(piece)
        refused += 1
    assert refused > 200


def test_icon_with_encapsulated_pixel_data_inside_a_sequence_is_complete(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset
    from pydicom.encaps import encapsulate

    path = _compressed("SC_rgb_jpeg_dcmtk.dcm", tmp_path / "icon")
    ds = dcmread(path)
    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated = 2, 2, 8
    icon.PixelData = encapsulate([b"\xff\xd8fake\xff\xd9"])
    icon["PixelData"].VR = "OB"
    ds.IconImageSequence = [icon]
    ds.save_as(path, enforce_file_format=True)
    check_complete(path)
    with pytest.raises(IncompleteDataset):
        check_complete(_cut(path, 9, "cut.dcm"))


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPGExtended.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
        "CT_small.dcm",
    ],
)
def test_complete_files_in_every_transfer_syntax_pass(name: str) -> None:
    check_complete(Path(get_testdata_file(name)))  # type: ignore[arg-type]


def test_pydicoms_truncated_samples_are_refused() -> None:
    for name in ("MR_truncated.dcm", "rtplan_truncated.dcm"):
        with pytest.raises(IncompleteDataset, match="truncated"):
            check_complete(Path(get_testdata_file(name)))  # type: ignore[arg-type]
