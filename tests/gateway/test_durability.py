"""Durability: kill -9 mid-push, database outages, and rebuilding the index from files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE, _config
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.reindex import reindex
from dicom_gateway.server import Gateway
from tests.conftest import ADMIN_URL, SECRET_KEY
from tests.gateway.conftest import (
    SITE_A_AE,
    association_outcome,
    dataset_bytes,
    no_delay,
    send,
    write_files,
)
from tests.ports import reserve_port
from worklist.config import Settings
from worklist.db import normalise_url
from worklist.models import Instance, Study
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances


def _start_gateway_process(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WORKLIST_DATABASE_URL": str(settings.database_url),
        "WORKLIST_REDIS_URL": str(settings.redis_url),
        "WORKLIST_DATA_DIR": str(settings.data_dir),
        "WORKLIST_SECRET_KEY": SECRET_KEY,
        "WORKLIST_GATEWAY_PORT": str(port),
    }
    process = subprocess.Popen([sys.executable, "-m", "dicom_gateway"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if association_outcome(port) == "established":
                return process
        except (OSError, RuntimeError):
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("gateway process did not start")


@pytest.fixture
def gateway_process_port(sites: None) -> Iterator[int]:
    """A free port for a gateway run as a separate process."""
    return reserve_port()


def _push_until_killed(
    port: int, files: list[Path], acked: list[str], enough: threading.Event, kill_after: int
) -> None:
    """Send files one by one over one association; record every success the gateway answers
    (``enough`` is set at the ``kill_after``-th)."""
    from pydicom import dcmread

    ae = AE(ae_title=SITE_A_AE)
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 5
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", port, ae_title="IMAGING_NET")
    no_delay(assoc)
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        for path in files:
            if not assoc.is_established:
                return
            response = assoc.send_c_store(path)
            if "Status" in response and response.Status == status.SUCCESS:
                acked.append(str(dcmread(path, stop_before_pixels=True).SOPInstanceUID))
                if len(acked) >= kill_after:
                    enough.set()
    except (RuntimeError, OSError):
        return
    finally:
        if assoc.is_established:
            assoc.release()


def test_kill_9_mid_push_loses_no_acknowledged_instance(
    settings: Settings, db: sessionmaker[Session], gateway_process_port: int, tmp_path: Path
) -> None:
    # The kill follows the 60th acknowledgement at once; the 90 after it keep it mid-push.
    kill_after = 60
    spec = StudySpec(
        patient=PatientSpec("KILL1"), series=[SeriesSpec(count=150, rows=128, columns=128)]
    )
    files = write_files(iter_instances(spec), tmp_path / "push")
    from pydicom import dcmread

    by_uid = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in files}
    process = _start_gateway_process(settings, gateway_process_port)
    acked: list[str] = []
    enough = threading.Event()
    sender = threading.Thread(
        target=_push_until_killed,
        args=(gateway_process_port, files, acked, enough, kill_after),
    )
    sender.start()
    try:
        assert enough.wait(60), f"only {len(acked)} acknowledged"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        sender.join(timeout=30)
        assert kill_after <= len(acked) < len(files), "the kill must land mid-push"

        restarted = _start_gateway_process(settings, gateway_process_port)
        try:
            with db() as session:
                rows = dict(session.execute(select(Instance.sop_instance_uid, Instance.path)).all())
            for sop_uid in acked:
                assert sop_uid in rows, f"acknowledged {sop_uid} is not indexed"
                stored = settings.dicom_dir / rows[sop_uid]
                assert dataset_bytes(stored) == dataset_bytes(by_uid[sop_uid])
            for path in rows.values():
                assert (settings.dicom_dir / path).exists(), "index row without its file"

            # The sender retries everything it was not told succeeded: all arrive once.
            remaining = [by_uid[uid] for uid in by_uid if uid not in set(acked)]
            assert {r.status for r in send(gateway_process_port, remaining)} == {status.SUCCESS}
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    with db() as session:
        study = session.scalars(select(Study)).one()
        assert study.instance_count == len(files)
        assert session.scalar(select(func.count()).select_from(Instance)) == len(files)
    assert not list(settings.dicom_dir.rglob("*.partial"))


def test_reindex_repairs_files_stored_but_not_indexed(
    gateway: Gateway, settings: Settings, db: sessionmaker[Session], tmp_path: Path
) -> None:
    spec = StudySpec(
        patient=PatientSpec("RE1", nhs_number="9434765919"),
        series=[SeriesSpec(count=4), SeriesSpec(modality="MR", count=2)],
    )
    assert {r.status for r in send(gateway.port, iter_instances(spec))} == {status.SUCCESS}
    gateway.shutdown()
    with db() as session, session.begin():
        # A crash between the file's fsync and the index commit leaves exactly this.
        victims = session.scalars(select(Instance).limit(3)).all()
        for victim in victims:
            session.delete(victim)
        session.execute(text("UPDATE studies SET instance_count = 0, series_count = 0"))
    # And a file whose index row outlived it (disk restored from an older backup).
    with db() as session:
        orphan_row = session.scalars(select(Instance)).first()
        assert orphan_row is not None
    (settings.dicom_dir / orphan_row.path).unlink()

    progress: list[tuple[int, int]] = []
    result = reindex(settings, progress=lambda done, total: progress.append((done, total)))

    assert result.files == 5
    assert result.repaired == 3
    assert result.removed == 1
    assert result.errors == 0
    assert progress[-1] == (5, 5)
    with db() as session:
        study = session.scalars(select(Study)).one()
        indexed = set(session.scalars(select(Instance.sop_instance_uid)))
    assert study.instance_count == 5
    assert study.series_count == 2
    assert indexed == {p.stem for p in settings.dicom_dir.rglob("*.dcm")}


@pytest.fixture
def admin_engine(database_url: str) -> Iterator[object]:
    engine = create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    yield engine
    db_name = database_url.rsplit("/", 1)[1]
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS true'))
    engine.dispose()


def test_database_outage_answers_out_of_resources_and_leaves_no_file(
    gateway: Gateway,
    settings: Settings,
    db: sessionmaker[Session],
    database_url: str,
    admin_engine: object,
    tmp_path: Path,
) -> None:
    files = write_files(
        iter_instances(StudySpec(patient=PatientSpec("DB1"), series=[SeriesSpec(count=2)])),
        tmp_path / "outage",
    )
    db_name = database_url.rsplit("/", 1)[1]
    ae = AE(ae_title=SITE_A_AE)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"])
    assoc = ae.associate("127.0.0.1", gateway.port, ae_title="IMAGING_NET")
    assert assoc.is_established
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assert assoc.send_c_store(files[0]).Status == status.SUCCESS
        with admin_engine.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :db AND application_name = 'worklist-gateway'"
                ),
                {"db": db_name},
            )
        response = assoc.send_c_store(files[1])
        assert response.Status == status.OUT_OF_RESOURCES
        assert "retry" in str(response.ErrorComment)
        assert len(list(settings.dicom_dir.rglob("*.dcm"))) == 1

        with admin_engine.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS true'))
        # Same association, the sender retries: accepted now.
        assert assoc.send_c_store(files[1]).Status == status.SUCCESS
    finally:
        assoc.release()
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 2
    assert len(list(settings.dicom_dir.rglob("*.dcm"))) == 2
