"""Synthetic DICOM instances for the demo, the tests and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

SOP_CLASS_BY_MODALITY = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "CR": ComputedRadiographyImageStorage,
}
UID_ROOT = "1.2.826.0.1.3680043.10.1138."


def new_uid(entropy: str | None = None) -> str:
    """A UID under the project's root (deterministic when ``entropy`` is given)."""
    return str(generate_uid(prefix=UID_ROOT, entropy_srcs=[entropy] if entropy else None))


@dataclass
class PatientSpec:
    """Who the synthetic study is of."""

    local_id: str
    name: str = "DOE^JANE"
    nhs_number: str | None = None
    birth_date: str = "19700101"
    sex: str = "F"
    charset: str | None = None


@dataclass
class SeriesSpec:
    """One synthetic series."""

    modality: str = "CT"
    count: int = 3
    rows: int = 64
    columns: int = 64
    description: str = "Synthetic series"
    series_uid: str = field(default_factory=new_uid)
    body_part: str | None = None


@dataclass
class StudySpec:
    """One synthetic study."""

    patient: PatientSpec
    series: list[SeriesSpec]
    study_uid: str = field(default_factory=new_uid)
    accession_number: str = "ACC0001"
    description: str = "Synthetic study"
    study_datetime: datetime = field(default_factory=lambda: datetime(2026, 11, 1, 9, 30))
    requested_priority: str | None = None


def make_instance(study: StudySpec, series: SeriesSpec, index: int, series_number: int) -> Dataset:
    """Build one image instance with pixel data, encoded Explicit VR Little Endian."""
    ds = Dataset()
    sop_class = SOP_CLASS_BY_MODALITY.get(series.modality, CTImageStorage)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    if study.patient.charset:
        ds.SpecificCharacterSet = study.patient.charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = new_uid(f"{series.series_uid}.{index}")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series.series_uid
    ds.Modality = series.modality
    ds.PatientName = study.patient.name
    ds.PatientID = study.patient.local_id
    if study.patient.nhs_number:
        ds.OtherPatientIDs = study.patient.nhs_number
    ds.PatientBirthDate = study.patient.birth_date
    ds.PatientSex = study.patient.sex
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.description
    ds.SeriesDescription = series.description
    if series.body_part:
        ds.BodyPartExamined = series.body_part
    ds.StudyDate = study.study_datetime.strftime("%Y%m%d")
    ds.StudyTime = study.study_datetime.strftime("%H%M%S")
    ds.SeriesNumber = series_number
    ds.InstanceNumber = index + 1
    if study.requested_priority:
        ds.RequestedProcedurePriority = study.requested_priority
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = series.rows
    ds.Columns = series.columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    rng = np.random.default_rng(index + series_number * 1000)
    ds.PixelData = rng.integers(0, 4096, (series.rows, series.columns), dtype=np.uint16).tobytes()
    return ds


def iter_instances(study: StudySpec) -> Iterator[Dataset]:
    """Every instance of ``study``, series by series."""
    for number, series in enumerate(study.series, start=1):
        for index in range(series.count):
            yield make_instance(study, series, index, number)
