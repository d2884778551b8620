"""`worklist reindex`: rebuild the index from the stored files, with a summary."""

from __future__ import annotations

import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import build_gateway
from tests.cli.conftest import Invoke
from tests.factories import new_site
from worklist.config import Settings
from worklist.models import Instance, Study
from worklist.synthetic import (
    SOP_CLASS_BY_MODALITY,
    PatientSpec,
    SeriesSpec,
    StudySpec,
    iter_instances,
)

SENDER = "RXA_PACS"


@pytest.fixture
def stored_study(db: sessionmaker[Session], settings: Settings) -> StudySpec:
    """A study received by a real gateway: files on disk and rows in the index."""
    with db() as session, session.begin():
        new_site(session, "RXA", name="Trust A", ae_title=SENDER, hosts=["127.0.0.1"])
    study = StudySpec(
        patient=PatientSpec("P1"),
        series=[SeriesSpec("CT", count=3), SeriesSpec("MR", count=2)],
    )
    gateway = build_gateway(settings)
    gateway.start()
    try:
        ae = AE(ae_title=SENDER)
        for sop_class in SOP_CLASS_BY_MODALITY.values():
            ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", gateway.port, ae_title=settings.gateway_ae_title)
        assert assoc.is_established
        for instance in iter_instances(study):
            assert assoc.send_c_store(instance).Status == 0
        assoc.release()
    finally:
        gateway.shutdown()
    return study


def test_reindex_rebuilds_a_lost_index_from_the_files(
    invoke: Invoke, db: sessionmaker[Session], stored_study: StudySpec
) -> None:
    with db() as session, session.begin():
        session.execute(text("TRUNCATE studies, series, instances CASCADE"))

    result = invoke("reindex")

    assert result.exit_code == 0, result.output
    assert "5 files: 5 indexed" in result.stdout
    assert "0 errors" in result.stdout
    assert "reindexing" in result.stderr  # the progress bar
    with db() as session:
        study = session.scalars(select(Study)).one()
        instances = session.scalars(select(Instance.sop_instance_uid)).all()
    assert study.study_uid == stored_study.study_uid
    assert study.instance_count == 5
    assert study.series_count == 2
    assert len(instances) == 5


def test_reindex_reports_unreadable_files_and_exits_non_zero(
    invoke: Invoke, settings: Settings, stored_study: StudySpec
) -> None:
    junk = settings.dicom_dir / "RXA" / "00" / "00" / "1.2.3" / "1.2.3.4" / "1.2.3.4.5.dcm"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b"not a DICOM file")

    result = invoke("reindex")

    assert result.exit_code == 1
    assert "6 files: 5 indexed" in result.stdout
    assert "1 errors" in result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 files could not be indexed")
