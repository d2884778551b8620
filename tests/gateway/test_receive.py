"""Receiving datasets: temporary files under DATA_DIR/tmp, a missing SOP Instance UID answered.

The empty-UID test fails without ``dicom_gateway.receive_fix`` (pynetdicom 3.0.4's reactor
thread dies: the sender gets no response and a temporary file stays in the system tmp).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from dicom_gateway.receiving import LOCK_NAME, ReceiveArea
from dicom_gateway.server import Gateway, build_gateway
from tests.gateway.conftest import SITE_A_AE, no_delay
from worklist.config import Settings
from worklist.models import Instance
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances

DEADLINE_SECONDS = 10.0
SCU_DIMSE_TIMEOUT_SECONDS = 10.0
FRAGMENT_BYTES = 16384  # a sender may send PDUs smaller than the gateway's maximum


@pytest.fixture
def system_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary directory, private to this test (where pynetdicom wrote before)."""
    directory = tmp_path / "system-tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != LOCK_NAME)


def _instances(count: int, **series: int) -> list[Dataset]:
    spec = StudySpec(patient=PatientSpec("RECV1"), series=[SeriesSpec(count=count, **series)])
    return list(iter_instances(spec))


def _associate(port: int) -> Any:
    ae = AE(ae_title=SITE_A_AE)
    ae.dimse_timeout = SCU_DIMSE_TIMEOUT_SECONDS
    ae.add_requested_context(str(_instances(1)[0].SOPClassUID), [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title="IMAGING_NET")
    assert assoc.is_established
    no_delay(assoc)
    return assoc


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_empty_sop_instance_uid_gets_missing_uid_and_the_association_goes_on(
    gateway: Gateway,
    db: sessionmaker[Session],
    settings: Settings,
    system_tmp: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dicom_gateway")
    empty, good = _instances(2)
    empty.SOPInstanceUID = ""
    assoc = _associate(gateway.port)
    try:
        first = assoc.send_c_store(empty)
        second = assoc.send_c_store(good)
    finally:
        assoc.release()
    assert int(first.Status) == status.MISSING_UID
    assert first.ErrorComment == "Affected SOP Instance UID is missing"
    assert int(second.Status) == status.SUCCESS

    def closed() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "association closed"]

    _wait_for(closed, "the association closed line")
    record = closed()[0]
    assert (record.stored, record.failed) == (1, 1)
    assert _files(system_tmp) == []
    assert _files(settings.data_dir / "tmp") == []
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 1


def test_received_datasets_are_written_under_the_data_dir(
    gateway: Gateway, settings: Settings, system_tmp: Path
) -> None:
    seen: list[Path] = []

    def spy(event: Any) -> None:
        path = getattr(event.message, "_data_set_path", None)
        if path is not None:
            seen.append(Path(path))

    server = gateway._server
    server.bind(evt.EVT_DIMSE_RECV, spy)
    try:
        assoc = _associate(gateway.port)
        try:
            assert int(assoc.send_c_store(_instances(1)[0]).Status) == status.SUCCESS
        finally:
            assoc.release()
    finally:
        server.unbind(evt.EVT_DIMSE_RECV, spy)
    assert len(seen) == 1
    assert seen[0].parent == gateway.receive_area.directory
    assert seen[0].is_relative_to(settings.data_dir / "tmp")
    assert not seen[0].exists()  # placed in the store
    assert _files(system_tmp) == []


def _store_fragments(assoc: Any, ds: Dataset, *, sop_class_uid: str | None) -> list[Any]:
    """A C-STORE-RQ and its dataset as the P-DATA primitives a sender puts on the wire."""
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = sop_class_uid
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    return list(message.encode_msg(assoc.accepted_contexts[0].context_id, FRAGMENT_BYTES))


def test_association_aborted_mid_dataset_leaves_no_received_file(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings
) -> None:
    ds = _instances(1, rows=256, columns=256)[0]
    assoc = _associate(gateway.port)
    fragments = _store_fragments(assoc, ds, sop_class_uid=str(ds.SOPClassUID))
    assert len(fragments) > 3
    for fragment in fragments[:-2]:  # the command and part of the dataset, never its end
        assoc.dul.send_pdu(fragment)
    received = settings.data_dir / "tmp"
    _wait_for(lambda: _files(received), "the partial dataset to arrive")
    assoc.abort()
    _wait_for(lambda: not _files(received), "the partial dataset to be removed")
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 0


def test_store_without_sop_class_uid_aborts_that_association_only(
    gateway: Gateway, db: sessionmaker[Session], settings: Settings
) -> None:
    ds = _instances(1)[0]
    assoc = _associate(gateway.port)
    for fragment in _store_fragments(assoc, ds, sop_class_uid=None):
        assoc.dul.send_pdu(fragment)
    _wait_for(lambda: assoc.is_aborted, "the gateway to abort the association")
    assert _files(settings.data_dir / "tmp") == []
    # The gateway goes on serving.
    again = _associate(gateway.port)
    try:
        assert int(again.send_c_store(ds).Status) == status.SUCCESS
    finally:
        again.release()


@pytest.fixture
def live_sibling(settings: Settings) -> Iterator[Path]:
    """Another gateway process's receive directory on the same data dir, in use."""
    area = ReceiveArea(settings.data_dir / "tmp")
    directory = area.open()
    (directory / "in-flight.dcm").write_bytes(b"\0" * 132)
    yield directory
    area.close()


def test_start_up_removes_stale_received_files_but_not_a_live_siblings(
    settings: Settings, sites: None, live_sibling: Path
) -> None:
    root = settings.data_dir / "tmp"
    (root / "tmpab12cd.dcm").write_bytes(b"left by a killed association")
    dead = root / "gateway-999999-deadbeef"
    dead.mkdir()
    (dead / LOCK_NAME).touch()  # nobody holds its lock any more
    (dead / "tmp1.dcm").write_bytes(b"\0" * 132)
    gateway = build_gateway(settings)
    gateway.start()
    try:
        assert not (root / "tmpab12cd.dcm").exists()
        assert not dead.exists()
        assert (live_sibling / "in-flight.dcm").exists()
        assert gateway.receive_area.directory.is_dir()
    finally:
        gateway.shutdown()
    assert not gateway.receive_area.directory.exists()
    assert (live_sibling / "in-flight.dcm").exists()
