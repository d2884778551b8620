"""The benchmark's synthetic data set, generated once (deterministically) and reused.

Shape (about the size of the anchors in the issue: ~300 instances, ~145 MB):

- CT chest/abdomen/pelvis: 190 instances, 512x512 16-bit, two series;
- MR brain: 110 instances, 256x256 16-bit, four series;
- CR chest: 2 instances, 3000x2500 16-bit (PA and lateral).

Every file is Explicit VR Little Endian with a File Meta header. UIDs are derived from
fixed entropy strings, so regenerating gives byte-identical files; the version tag in
``SET_NAME`` changes whenever the shape changes, giving new study/series/SOP UIDs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydicom.dataset import Dataset

from worklist.identity import make_nhs_number
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, make_instance, new_uid

DATA_ROOT = Path(__file__).resolve().parent / ".data"
SET_NAME = "ingest-v1"
MANIFEST = "manifest.json"
MANUFACTURER = "Bench Imaging Systems"
INSTITUTION = "Bench Trust General Hospital"


@dataclass(frozen=True)
class DataSet:
    """A generated set on disk: its files (sorted), UIDs and size."""

    root: Path
    files: tuple[Path, ...]
    sizes: tuple[int, ...]
    study_uids: tuple[str, ...]
    sop_uids: tuple[str, ...]
    warmup_file: Path
    warmup_sop_uid: str

    @property
    def count(self) -> int:
        """Number of instances in the measured set (the warm-up instance excluded)."""
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        """Sum of file sizes of the measured set."""
        return sum(self.sizes)

    def split(self, parts: int) -> list[list[Path]]:
        """Partition the files into ``parts`` lists of about equal bytes (largest first).

        Each part keeps the set's order, so a part is a sequence of series chunks like a
        PACS pushing several studies at once.
        """
        bins: list[list[int]] = [[] for _ in range(parts)]
        loads = [0] * parts
        for index in sorted(range(len(self.files)), key=lambda i: -self.sizes[i]):
            target = loads.index(min(loads))
            bins[target].append(index)
            loads[target] += self.sizes[index]
        return [[self.files[i] for i in sorted(b)] for b in bins if b]


def _uid(label: str) -> str:
    return new_uid(f"{SET_NAME}/{label}")


def _studies() -> list[tuple[str, StudySpec]]:
    """The three studies of the set (deterministic UIDs, realistic attributes)."""
    smith = PatientSpec(
        local_id="BT0104417",
        name="SMITH^MARGARET^ANNE",
        nhs_number=make_nhs_number(943_476_591),
        birth_date="19580314",
        sex="F",
    )
    okafor = PatientSpec(
        local_id="BT0271350",
        name="OKAFOR^DANIEL",
        nhs_number=make_nhs_number(485_777_345),
        birth_date="19810922",
        sex="M",
    )
    ct = StudySpec(
        patient=smith,
        study_uid=_uid("ct/study"),
        accession_number="BTCT24110017",
        description="CT Chest Abdomen Pelvis with contrast",
        study_datetime=datetime(2026, 11, 2, 14, 5, 31),
        requested_priority="HIGH",
        series=[
            SeriesSpec("CT", 120, 512, 512, "Ax 1.25mm Soft Tissue", _uid("ct/series/1")),
            SeriesSpec("CT", 70, 512, 512, "Ax 2.5mm Lung", _uid("ct/series/2")),
        ],
    )
    mr = StudySpec(
        patient=okafor,
        study_uid=_uid("mr/study"),
        accession_number="BTMR24110342",
        description="MRI Head with and without contrast",
        study_datetime=datetime(2026, 11, 2, 10, 42, 7),
        series=[
            SeriesSpec("MR", 30, 256, 256, "Ax T2 FSE", _uid("mr/series/1")),
            SeriesSpec("MR", 30, 256, 256, "Ax FLAIR", _uid("mr/series/2")),
            SeriesSpec("MR", 25, 256, 256, "Ax DWI b1000", _uid("mr/series/3")),
            SeriesSpec("MR", 25, 256, 256, "Ax T1 post contrast", _uid("mr/series/4")),
        ],
    )
    cr = StudySpec(
        patient=smith,
        study_uid=_uid("cr/study"),
        accession_number="BTXR24110988",
        description="XR Chest PA and lateral",
        study_datetime=datetime(2026, 11, 2, 8, 17, 55),
        series=[SeriesSpec("CR", 2, 3000, 2500, "Chest PA/LAT", _uid("cr/series/1"))],
    )
    return [("ct", ct), ("mr", mr), ("cr", cr)]


def _warmup_study() -> StudySpec:
    return StudySpec(
        patient=PatientSpec(local_id="BT0000001", name="WARMUP^BENCH", birth_date="19900101"),
        study_uid=_uid("warmup/study"),
        accession_number="BTWARMUP",
        description="Bench warm-up",
        series=[SeriesSpec("MR", 1, 256, 256, "Warm-up", _uid("warmup/series"))],
    )


def decorate(ds: Dataset, study: StudySpec, series: SeriesSpec, index: int) -> None:
    """Add the attributes a real modality writes (equipment, geometry, display)."""
    ds.InstitutionName = INSTITUTION
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = {"CT": "Helix 128", "MR": "Tesla 3T", "CR": "Plate 35"}.get(
        series.modality, "Generic"
    )
    ds.StationName = f"BT{series.modality}01"
    ds.ReferringPhysicianName = "PATEL^ANIL^^DR"
    ds.StudyID = study.accession_number[-4:]
    ds.AcquisitionDate = ds.ContentDate = ds.StudyDate
    ds.AcquisitionTime = ds.ContentTime = ds.StudyTime
    ds.InstanceCreationDate = ds.StudyDate
    ds.BodyPartExamined = {"CT": "CHEST", "MR": "HEAD", "CR": "CHEST"}.get(series.modality, "")
    ds.PatientAge = f"{study.study_datetime.year - int(study.patient.birth_date[:4]):03d}Y"
    ds.ImageType = ["ORIGINAL", "PRIMARY"] + (["AXIAL"] if series.modality != "CR" else [])
    if series.modality in ("CT", "MR"):
        thickness = 1.25 if series.modality == "CT" else 5.0
        ds.FrameOfReferenceUID = new_uid(f"{study.study_uid}/for")
        ds.PositionReferenceIndicator = ""
        ds.SliceThickness = thickness
        ds.PixelSpacing = [0.703125, 0.703125] if series.modality == "CT" else [0.9375, 0.9375]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        z = -index * thickness
        ds.ImagePositionPatient = [-180.0, -180.0, z]
        ds.SliceLocation = z
        ds.WindowCenter = 40 if series.modality == "CT" else 600
        ds.WindowWidth = 400 if series.modality == "CT" else 1200
    if series.modality == "CT":
        ds.KVP = 120
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
    if series.modality == "MR":
        ds.MagneticFieldStrength = 3
        ds.RepetitionTime = 4000
        ds.EchoTime = 90
    if series.modality == "CR":
        ds.ViewPosition = "PA" if index == 0 else "LL"
        ds.ImagerPixelSpacing = [0.139, 0.139]


def _write_study(study: StudySpec, directory: Path, prefix: str, sop_uids: list[str]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for number, series in enumerate(study.series, start=1):
        for index in range(series.count):
            ds = make_instance(study, series, index, number)
            decorate(ds, study, series, index)
            path = directory / f"{prefix}-s{number:02d}-{index + 1:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
            sop_uids.append(str(ds.SOPInstanceUID))
    return paths


def load_or_generate(root: Path | None = None, *, log: bool = True) -> DataSet:
    """Return the set under ``bench/.data/<SET_NAME>``, generating it the first time."""
    root = root or DATA_ROOT / SET_NAME
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        files = tuple(root / f for f in manifest["files"])
        sizes = tuple(int(s) for s in manifest["sizes"])
        if all(p.is_file() and p.stat().st_size == s for p, s in zip(files, sizes, strict=True)):
            return DataSet(
                root,
                files,
                sizes,
                tuple(manifest["study_uids"]),
                tuple(manifest["sop_uids"]),
                root / manifest["warmup_file"],
                manifest["warmup_sop_uid"],
            )
        if log:
            print(f"data set under {root} is incomplete; regenerating")
    if log:
        print(f"generating the synthetic data set into {root} (once) ...", flush=True)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    paths: list[Path] = []
    study_uids: list[str] = []
    sop_uids: list[str] = []
    for prefix, study in _studies():
        paths += _write_study(study, staging / prefix, prefix, sop_uids)
        study_uids.append(study.study_uid)
    warmup_uids: list[str] = []
    (warmup,) = _write_study(_warmup_study(), staging / "warmup", "warmup", warmup_uids)
    rel = [str(p.relative_to(staging)) for p in paths]
    manifest = {
        "set": SET_NAME,
        "files": rel,
        "sizes": [p.stat().st_size for p in paths],
        "study_uids": study_uids,
        "sop_uids": sop_uids,
        "warmup_file": str(warmup.relative_to(staging)),
        "warmup_sop_uid": warmup_uids[0],
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    staging.rename(root)
    return load_or_generate(root, log=False)


if __name__ == "__main__":
    data = load_or_generate()
    print(f"{data.count} instances, {data.total_bytes / 1e6:.1f} MB under {data.root}")
