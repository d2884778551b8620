"""The retrieval benchmark's study: one 300-instance CT, generated once and reused.

The ingest set's CT has 190 instances; issue 5 asks for a 300-instance CT study, so this
is a CT-only study built with the same code (``worklist.synthetic.make_instance`` and
``bench.dataset.decorate``): 300 x 512x512 16-bit, Explicit VR Little Endian, three axial
series. UIDs derive from fixed strings, so regenerating gives byte-identical files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.dataset import DATA_ROOT, decorate
from worklist.identity import make_nhs_number
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, make_instance, new_uid

SET_NAME = "retrieve-ct300-v1"
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Study:
    """The generated study on disk: its files (in series order), sizes and UIDs."""

    root: Path
    study_uid: str
    files: tuple[Path, ...]
    sizes: tuple[int, ...]
    sop_uids: tuple[str, ...]

    @property
    def count(self) -> int:
        """Number of instances."""
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        """Sum of the file sizes: the bytes a retrieval moves (MB/s is computed on these)."""
        return sum(self.sizes)


def _uid(label: str) -> str:
    return new_uid(f"{SET_NAME}/{label}")


def study_spec() -> StudySpec:
    """CT chest/abdomen/pelvis: 300 axial 512x512 slices in three series."""
    patient = PatientSpec(
        local_id="BT0388120",
        name="HUGHES^ELEANOR^MAY",
        nhs_number=make_nhs_number(572_901_344),
        birth_date="19490607",
        sex="F",
    )
    return StudySpec(
        patient=patient,
        study_uid=_uid("ct/study"),
        accession_number="BTCT24119305",
        description="CT Chest Abdomen Pelvis with contrast",
        study_datetime=datetime(2026, 11, 3, 9, 12, 44),
        requested_priority="HIGH",
        series=[
            SeriesSpec("CT", 150, 512, 512, "Ax 1.25mm Soft Tissue", _uid("ct/series/1")),
            SeriesSpec("CT", 100, 512, 512, "Ax 1.25mm Bone", _uid("ct/series/2")),
            SeriesSpec("CT", 50, 512, 512, "Ax 2.5mm Lung", _uid("ct/series/3")),
        ],
    )


def _write(study: StudySpec, directory: Path) -> tuple[list[Path], list[str]]:
    directory.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    sop_uids: list[str] = []
    for number, series in enumerate(study.series, start=1):
        for index in range(series.count):
            ds = make_instance(study, series, index, number)
            decorate(ds, study, series, index)
            path = directory / f"ct-s{number:02d}-{index + 1:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
            sop_uids.append(str(ds.SOPInstanceUID))
    return paths, sop_uids


def load_or_generate(root: Path | None = None) -> Study:
    """Return the study under ``bench/.data/<SET_NAME>``, generating it the first time."""
    root = root or DATA_ROOT / SET_NAME
    manifest_path = root / MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        files = tuple(root / f for f in manifest["files"])
        sizes = tuple(int(s) for s in manifest["sizes"])
        if all(p.is_file() and p.stat().st_size == s for p, s in zip(files, sizes, strict=True)):
            return Study(root, manifest["study_uid"], files, sizes, tuple(manifest["sop_uids"]))
        print(f"study under {root} is incomplete; regenerating")
    print(f"generating the 300-instance CT study into {root} (once) ...", flush=True)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    spec = study_spec()
    paths, sop_uids = _write(spec, staging)
    manifest = {
        "set": SET_NAME,
        "study_uid": spec.study_uid,
        "files": [str(p.relative_to(staging)) for p in paths],
        "sizes": [p.stat().st_size for p in paths],
        "sop_uids": sop_uids,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
    staging.rename(root)
    return load_or_generate(root)


if __name__ == "__main__":
    study = load_or_generate()
    print(f"{study.count} instances, {study.total_bytes / 1e6:.1f} MB under {study.root}")
