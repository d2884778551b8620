"""The QIDO-RS benchmark's data set: N studies of one small instance each, on disk.

    python -m bench.qido_data [--studies 20000]

Generated once per size into ``bench/.data/qido-v1-<N>/`` (gitignored) with a fixed seed,
so regeneration gives the same studies. Patients carry the worklist benchmark's
long-tailed surnames (``bench.load_studies``), studies are spread over three years
(between 08:00 and 18:00, so a study's day is the same in any time zone near UTC), and
the files are split into ``PARTS`` directories, one storescu association each.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from bench.dataset import DATA_ROOT
from bench.load_studies import GIVEN_NAMES, SURNAMES
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, make_instance, new_uid

SET_VERSION = "qido-v1"
MANIFEST = "manifest.json"
DEFAULT_STUDIES = 20_000
PARTS = 4
SEED = 20261202
PIXELS = 16  # rows = columns: a 512-byte image, the instance is mostly its header
LAST_DAY = datetime(2026, 11, 30)
DAYS = 3 * 365
MODALITIES = {
    "CT": ("CT Chest Abdomen Pelvis", "CT Head", "CT Pulmonary Angiogram"),
    "MR": ("MRI Brain", "MRI Lumbar Spine", "MRI Knee Right"),
    "CR": ("XR Chest PA", "XR Hand Left", "XR Pelvis"),
}


@dataclass(frozen=True)
class QidoStudy:
    """What the queries match on, per study."""

    study_uid: str
    patient_name: str
    study_date: str


@dataclass(frozen=True)
class QidoSet:
    """The generated studies: where they are and what they hold."""

    root: Path
    studies: tuple[QidoStudy, ...]

    @property
    def count(self) -> int:
        """Number of studies (one instance each)."""
        return len(self.studies)

    @property
    def parts(self) -> list[Path]:
        """The part directories (one storescu association each)."""
        return [self.root / f"part-{index}" for index in range(PARTS)]

    @property
    def total_bytes(self) -> int:
        """Bytes of all files."""
        return sum(p.stat().st_size for part in self.parts for p in part.iterdir())


def _specs(count: int) -> list[StudySpec]:
    rng = np.random.default_rng(SEED)
    patients = max(1, count // 2)
    weight = 1.0 / (np.arange(len(SURNAMES)) + 10.0)
    surname = rng.choice(len(SURNAMES), size=patients, p=weight / weight.sum())
    given = rng.integers(0, len(GIVEN_NAMES), size=patients)
    patient_of = rng.integers(0, patients, size=count)
    day = rng.integers(0, DAYS, size=count)
    second = rng.integers(8 * 3600, 18 * 3600, size=count)
    modality = rng.integers(0, len(MODALITIES), size=count)
    kinds = list(MODALITIES)
    specs: list[StudySpec] = []
    for i in range(count):
        p = int(patient_of[i])
        kind = kinds[int(modality[i])]
        when = LAST_DAY - timedelta(days=int(day[i])) + timedelta(seconds=int(second[i]))
        patient = PatientSpec(
            local_id=f"QIDO{p:07d}",
            name=f"{SURNAMES[int(surname[p])]}^{GIVEN_NAMES[int(given[p])]}",
            birth_date=f"{1930 + p % 70}0{1 + p % 9}1{p % 9}",
            sex="FM"[p % 2],
        )
        series = SeriesSpec(
            kind, 1, PIXELS, PIXELS, f"{kind} series", new_uid(f"{SET_VERSION}/{i}/series")
        )
        specs.append(
            StudySpec(
                patient=patient,
                series=[series],
                study_uid=new_uid(f"{SET_VERSION}/{i}/study"),
                accession_number=f"QA{i:08d}",
                description=MODALITIES[kind][i % 3],
                study_datetime=when,
            )
        )
    return specs


def _generate(root: Path, count: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for index in range(PARTS):
        (root / f"part-{index}").mkdir(parents=True)
    studies = []
    for i, spec in enumerate(_specs(count)):
        ds = make_instance(spec, spec.series[0], 0, 1)
        ds.save_as(root / f"part-{i % PARTS}" / f"{i:08d}.dcm", enforce_file_format=True)
        studies.append([spec.study_uid, spec.patient.name, spec.study_datetime.strftime("%Y%m%d")])
    (root / MANIFEST).write_text(json.dumps({"version": SET_VERSION, "studies": studies}))


def load_or_generate(count: int = DEFAULT_STUDIES) -> QidoSet:
    """The set of ``count`` studies under ``bench/.data``, generated the first time."""
    root = DATA_ROOT / f"{SET_VERSION}-{count}"
    manifest = root / MANIFEST
    on_disk = sum(1 for part in root.glob("part-*") for _ in part.iterdir())
    if not manifest.exists() or on_disk != count:
        print(f"generating {count} one-instance studies into {root} (once) ...", flush=True)
        _generate(root, count)
    rows = json.loads(manifest.read_text())["studies"]
    return QidoSet(root, tuple(QidoStudy(*row) for row in rows))


def main(argv: list[str] | None = None) -> int:
    """Generate (or find) the data set alone."""
    parser = argparse.ArgumentParser(prog="python -m bench.qido_data", description=__doc__)
    parser.add_argument("--studies", type=int, default=DEFAULT_STUDIES)
    data = load_or_generate(parser.parse_args(argv).studies)
    print(f"{data.count} studies, {data.total_bytes / 1e6:.1f} MB under {data.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
