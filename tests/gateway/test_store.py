"""C-STORE into the gateway: indexing, transfer syntaxes, resends and bad input."""

from __future__ import annotations

import io
import os
import subprocess
from datetime import timedelta
from pathlib import Path

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.server import Gateway
from tests.gateway.conftest import SITE_B_AE, dataset_bytes, send, write_files
from worklist.config import Settings
from worklist.enums import Priority, StudyStatus
from worklist.models import AuditEvent, Instance, Patient, Series, Study
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances, new_uid

STORESCU = "/usr/bin/storescu"


def _study_spec(**patient: str) -> StudySpec:
    return StudySpec(
        patient=PatientSpec(**{"local_id": "A123", **patient}),  # type: ignore[arg-type]
        series=[
            SeriesSpec(modality="CT", count=3, description="Axial"),
            SeriesSpec(modality="CT", count=2, description="Coronal"),
            SeriesSpec(modality="MR", count=2, description="T2"),
        ],
        accession_number="ACC-77",
        description="CT and MR head",
    )


def _files_on_disk(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.dicom_dir.rglob("*") if p.is_file())


def _assert_indexed(db: sessionmaker[Session], spec: StudySpec, expected_name: str) -> None:
    sent = {str(ds.SOPInstanceUID) for ds in iter_instances(spec)}
    with db() as session:
        study = session.scalars(select(Study).where(Study.study_uid == spec.study_uid)).one()
        patient = session.get(Patient, study.patient_id)
        series = session.scalars(select(Series).where(Series.study_id == study.id)).all()
        stored = set(
            session.scalars(select(Instance.sop_instance_uid).where(Instance.study_id == study.id))
        )
    assert stored == sent
    assert study.instance_count == 7
    assert study.series_count == 3
    assert sorted(s.instance_count for s in series) == [2, 2, 3]
    assert {s.series_uid for s in series} == {s.series_uid for s in spec.series}
    assert study.modalities == ["CT", "MR"]
    assert study.accession_number == "ACC-77"
    assert study.description == "CT and MR head"
    assert study.status is StudyStatus.RECEIVING
    assert patient is not None
    assert patient.name == expected_name
    assert patient.local_id == "A123"
    assert patient.nhs_number == "9434765919"


def test_multi_series_study_from_pynetdicom_is_indexed_with_decoded_names(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings
) -> None:
    spec = _study_spec(name="Müller^Jürgen", nhs_number="943 476 5919", charset="ISO_IR 100")
    results = send(gateway.port, iter_instances(spec))
    assert [r.status for r in results] == [status.SUCCESS] * 7
    _assert_indexed(db, spec, "Müller^Jürgen")
    assert len(_files_on_disk(settings)) == 7


def test_multi_series_study_from_dcmtk_storescu_is_indexed(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    spec = _study_spec(name="Ōtsuka^Zoë", nhs_number="9434765919", charset="ISO_IR 192")
    files = write_files(iter_instances(spec), tmp_path / "out")
    completed = subprocess.run(
        [STORESCU, "-aet", "SITEA_PACS", "-aec", "IMAGING_NET", "127.0.0.1", str(gateway.port)]
        + [str(f) for f in files],
        env={**os.environ, "TCP_NODELAY": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    _assert_indexed(db, spec, "Ōtsuka^Zoë")
    stored = {p.name for p in _files_on_disk(settings)}
    assert stored == {f"{dcmread(f).SOPInstanceUID}.dcm" for f in files}


def _retagged(name: str, study_uid: str, directory: Path) -> Path:
    """A pydicom test file given fresh UIDs, saved in its own transfer syntax."""
    ds = dcmread(get_testdata_file(name))
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = new_uid()
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = "COMPRESSED-1"
    path = directory / name
    ds.save_as(path, enforce_file_format=True)
    return path


COMPRESSED_SAMPLES = {
    "SC_rgb_jpeg_dcmtk.dcm": "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "JPGExtended.dcm": "1.2.840.10008.1.2.4.51",  # JPEG extended
    "MR_small_jp2klossless.dcm": "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "MR_small_RLE.dcm": "1.2.840.10008.1.2.5",  # RLE
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",  # deflated explicit VR LE
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",  # explicit VR big endian
}


def test_compressed_transfer_syntaxes_are_stored_byte_for_byte(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    study_uid = new_uid()
    files = [_retagged(name, study_uid, tmp_path) for name in COMPRESSED_SAMPLES]
    results = send(gateway.port, files)
    assert [r.status for r in results] == [status.SUCCESS] * len(files)
    with db() as session:
        rows = {
            i.sop_instance_uid: i
            for i in session.scalars(select(Instance).where(Instance.path.contains(study_uid)))
        }
    for path, expected_ts in zip(files, COMPRESSED_SAMPLES.values(), strict=True):
        sop_uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        row = rows[sop_uid]
        assert row.transfer_syntax_uid == expected_ts
        stored = settings.dicom_dir / row.path
        assert dataset_bytes(stored) == dataset_bytes(path), path.name
        assert str(dcmread(stored).file_meta.TransferSyntaxUID) == expected_ts


def test_resend_is_idempotent_and_different_bytes_replace_with_audit(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    spec = StudySpec(patient=PatientSpec("R1"), series=[SeriesSpec(count=2)])
    first = write_files(iter_instances(spec), tmp_path / "first")
    assert [r.status for r in send(gateway.port, first)] == [0, 0]
    assert [r.status for r in send(gateway.port, first)] == [0, 0]

    changed = dcmread(first[0])
    changed.SeriesDescription = "Corrected by the modality"
    changed.save_as(tmp_path / "changed.dcm", enforce_file_format=True)
    assert [r.status for r in send(gateway.port, [tmp_path / "changed.dcm"])] == [0]

    with db() as session:
        study = session.scalars(select(Study)).one()
        assert study.instance_count == 2
        assert session.scalar(select(func.count()).select_from(Instance)) == 2
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.study_uid == spec.study_uid)
        ).all()
        row = session.scalars(
            select(Instance).where(Instance.sop_instance_uid == str(changed.SOPInstanceUID))
        ).one()
    assert sorted(actions) == ["instance.replaced", "instance.stored", "instance.stored"]
    assert dataset_bytes(settings.dicom_dir / row.path) == dataset_bytes(tmp_path / "changed.dcm")
    assert len(_files_on_disk(settings)) == 2


def _raw_file(path: Path, meta_sop_uid: str, body: bytes) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = meta_sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, meta)
    path.write_bytes(buffer.getvalue() + body)
    return path


def _encoded(ds: Dataset) -> bytes:
    """The dataset alone (no preamble, no meta), explicit VR little endian."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_dataset(buffer, ds)
    return buffer.getvalue()


def test_bad_instances_get_failure_statuses_and_leave_nothing_behind(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings, tmp_path: Path
) -> None:
    spec = StudySpec(patient=PatientSpec("BAD1"), series=[SeriesSpec(count=2)])
    good = write_files(iter_instances(spec), tmp_path / "good")
    template = dcmread(good[0])

    def variant(name: str, **changes: str | None) -> Path:
        ds = dcmread(good[0])
        ds.SOPInstanceUID = new_uid(name)
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        del ds.file_meta
        return _raw_file(tmp_path / f"{name}.dcm", str(ds.SOPInstanceUID), _encoded(ds))

    undecodable = _raw_file(tmp_path / "garbage.dcm", new_uid("g"), b"\xff" * 64 + b"not DICOM")
    missing_study = variant("missing", StudyInstanceUID=None)
    traversal = variant("traversal", StudyInstanceUID="../../x")
    slashed_series = variant("slashed", SeriesInstanceUID="1.2/../../etc")
    mismatch = _raw_file(tmp_path / "mismatch.dcm", new_uid("other"), _encoded(template))
    results = send(
        gateway.port,
        [good[0], undecodable, missing_study, traversal, slashed_series, mismatch, good[1]],
    )
    assert [r.status for r in results] == [
        status.SUCCESS,
        status.CANNOT_UNDERSTAND,
        status.MISSING_UID,
        status.INVALID_UID,
        status.INVALID_UID,
        status.SOP_INSTANCE_MISMATCH,
        status.SUCCESS,
    ]
    assert all(r.comment for r in results[1:-1])
    with db() as session:
        indexed = set(session.scalars(select(Instance.sop_instance_uid)))
    assert indexed == {str(dcmread(p).SOPInstanceUID) for p in good}
    assert {p.name for p in _files_on_disk(settings)} == {f"{uid}.dcm" for uid in indexed}
    assert not list(tmp_path.parent.glob("**/x"))


def test_study_belonging_to_another_site_is_refused(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings
) -> None:
    spec = StudySpec(patient=PatientSpec("OWN1"), series=[SeriesSpec(count=1)])
    assert [r.status for r in send(gateway.port, iter_instances(spec))] == [0]
    intruder = next(iter_instances(spec))
    intruder.SOPInstanceUID = new_uid("intruder")
    results = send(gateway.port, [intruder], calling_ae=SITE_B_AE)
    assert results[0].status == status.STUDY_OF_ANOTHER_SITE
    # The sender's terms only: no database exception, SQL or SQLSTATE.
    assert results[0].comment == "Study Instance UID belongs to another sending site"
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 1
    assert len(_files_on_disk(settings)) == 1


def test_requested_procedure_priority_sets_priority_and_due_time(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings
) -> None:
    stat = StudySpec(patient=PatientSpec("P-STAT"), series=[SeriesSpec(count=1)])
    stat.requested_priority = "STAT"
    routine = StudySpec(patient=PatientSpec("P-ROUT"), series=[SeriesSpec(count=1)])
    assert [
        r.status for r in send(gateway.port, [*iter_instances(stat), *iter_instances(routine)])
    ] == [0, 0]
    with db() as session:
        studies = {s.study_uid: s for s in session.scalars(select(Study))}
    assert studies[stat.study_uid].priority is Priority.STAT
    assert studies[stat.study_uid].due_at - studies[stat.study_uid].received_at == timedelta(
        hours=1
    )
    assert studies[routine.study_uid].priority is Priority.ROUTINE
    assert studies[routine.study_uid].due_at - studies[routine.study_uid].received_at == timedelta(
        days=7
    )


def test_new_images_after_a_final_report_flag_the_study_and_bring_it_back(
    gateway: Gateway, db: sessionmaker[Session]
) -> None:
    spec = StudySpec(patient=PatientSpec("LATE1"), series=[SeriesSpec(count=3)])
    first, second, late = list(iter_instances(spec))
    assert [r.status for r in send(gateway.port, [first, second])] == [0, 0]
    with db() as session, session.begin():
        study = session.scalars(select(Study)).one()
        study.status = StudyStatus.REPORTED
    # A resend of what was reported changes nothing ...
    assert [r.status for r in send(gateway.port, [first])] == [0]
    with db() as session:
        study = session.scalars(select(Study)).one()
        assert study.status is StudyStatus.REPORTED
        assert study.flags == []
    # ... a new image brings the study back to the worklist, flagged.
    assert [r.status for r in send(gateway.port, [late])] == [0]
    with db() as session:
        study = session.scalars(select(Study)).one()
    assert study.status is StudyStatus.RECEIVING
    assert study.flags == ["new_images_after_report"]
    assert study.instance_count == 3
