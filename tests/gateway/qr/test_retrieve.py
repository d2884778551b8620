"""C-MOVE and C-GET from the gateway: real DCMTK peers, visibility, refusals and audit."""

from __future__ import annotations

from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import status
from tests.gateway.conftest import SITE_A_AE
from tests.gateway.qr.conftest import (
    GATEWAY_AE,
    ROGUE_AE,
    WORKSTATION_AE,
    Network,
    c_move_statuses,
    dcmtk,
    grant,
    identifier,
    received_files,
)
from worklist.enums import AuditAction
from worklist.models import AuditEvent


def _assert_same_instances(network: Network, received: dict[str, Dataset], study_uid: str) -> None:
    pushed = {
        uid: dcmread(path)
        for uid, path in network.files.items()
        if str(dcmread(path, stop_before_pixels=True).StudyInstanceUID) == study_uid
    }
    assert set(received) == set(pushed)
    for uid, original in pushed.items():
        copy = received[uid]
        assert copy.PixelData == original.PixelData
        assert copy.SOPClassUID == original.SOPClassUID
        assert copy.SeriesInstanceUID == original.SeriesInstanceUID
        assert str(copy.PatientName) == str(original.PatientName)


def _movescu(network: Network, *keys: str, calling_ae: str = WORKSTATION_AE) -> str:
    args = ["/usr/bin/movescu", "-v", "-S", "-aet", calling_ae, "-aec", GATEWAY_AE]
    args += ["-aem", WORKSTATION_AE]
    for key in keys:
        args += ["-k", key]
    result = dcmtk(*args, "127.0.0.1", str(network.gateway.port))
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def _retrieval_audit(db: sessionmaker[Session]) -> list[AuditEvent]:
    with db() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == AuditAction.STUDY_RETRIEVED)
                .order_by(AuditEvent.id)
            )
        )


def test_movescu_retrieves_granted_study_to_registered_storescp(
    network: Network, db: sessionmaker[Session], storescp: Path
) -> None:
    grant(db, WORKSTATION_AE, "RXA")
    uid = network.study_a.study_uid
    _movescu(network, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={uid}")
    _assert_same_instances(network, received_files(storescp), uid)
    [row] = _retrieval_audit(db)
    assert (row.actor, row.actor_kind, row.study_uid) == (WORKSTATION_AE, "node", uid)
    assert row.detail == {
        "level": "STUDY",
        "destination": WORKSTATION_AE,
        "instances": 5,
        "failed": 0,
    }


def test_move_reports_sub_operation_counts_and_series_level(
    network: Network, db: sessionmaker[Session], storescp: Path
) -> None:
    grant(db, WORKSTATION_AE, "RXA")
    series = network.study_a.series[0].series_uid
    responses = c_move_statuses(
        network.gateway.port,
        identifier("SERIES", StudyInstanceUID=network.study_a.study_uid, SeriesInstanceUID=series),
        WORKSTATION_AE,
    )
    pending = [r for r in responses if r.Status == status.PENDING]
    assert [int(r.NumberOfRemainingSuboperations) for r in pending] == [2, 1, 0]
    final = responses[-1]
    assert final.Status == status.SUCCESS
    assert (final.NumberOfCompletedSuboperations, final.NumberOfFailedSuboperations) == (3, 0)
    received = received_files(storescp)
    assert {str(ds.SeriesInstanceUID) for ds in received.values()} == {series}
    assert len(received) == 3
    [row] = _retrieval_audit(db)
    assert row.detail["level"] == "SERIES"
    assert row.detail["instances"] == 3


def test_ungranted_node_moves_nothing(
    network: Network, db: sessionmaker[Session], storescp: Path
) -> None:
    uid = network.study_a.study_uid
    for calling_ae in (WORKSTATION_AE, ROGUE_AE):
        responses = c_move_statuses(
            network.gateway.port,
            identifier("STUDY", StudyInstanceUID=uid),
            WORKSTATION_AE,
            calling_ae=calling_ae,
        )
        final = responses[-1]
        assert final.Status == status.SUCCESS
        assert final.NumberOfCompletedSuboperations == 0
        assert final.NumberOfFailedSuboperations == 0
    assert received_files(storescp) == {}
    assert _retrieval_audit(db) == []


def test_move_to_unregistered_destination_answers_destination_unknown(
    network: Network, db: sessionmaker[Session]
) -> None:
    grant(db, WORKSTATION_AE, "RXA")
    ident = identifier("STUDY", StudyInstanceUID=network.study_a.study_uid)
    for destination in ("NOBODY_AE", "SITEA_PACS"):  # unknown; registered without a port
        responses = c_move_statuses(network.gateway.port, ident, destination)
        assert [int(r.Status) for r in responses] == [status.MOVE_DESTINATION_UNKNOWN]
    assert _retrieval_audit(db) == []


def test_getscu_retrieves_study_over_its_own_association(
    network: Network, db: sessionmaker[Session], tmp_path: Path
) -> None:
    grant(db, WORKSTATION_AE, "RXA")
    uid = network.study_a.study_uid
    out = tmp_path / "got"
    out.mkdir()
    args = ["/usr/bin/getscu", "-v", "-S", "-aet", WORKSTATION_AE, "-aec", GATEWAY_AE]
    args += ["-od", str(out), "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}"]
    result = dcmtk(*args, "127.0.0.1", str(network.gateway.port))
    assert result.returncode == 0, result.stderr
    _assert_same_instances(network, received_files(out), uid)
    [row] = _retrieval_audit(db)
    assert row.detail == {
        "level": "STUDY",
        "destination": WORKSTATION_AE,
        "instances": 5,
        "failed": 0,
    }


def test_getscu_of_ungranted_node_gets_nothing(network: Network, tmp_path: Path) -> None:
    out = tmp_path / "got"
    out.mkdir()
    args = ["/usr/bin/getscu", "-S", "-aet", ROGUE_AE, "-aec", GATEWAY_AE, "-od", str(out)]
    args += [
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={network.study_b.study_uid}",
    ]
    result = dcmtk(*args, "127.0.0.1", str(network.gateway.port))
    assert result.returncode == 0, result.stderr
    assert list(out.iterdir()) == []


def test_a_move_only_sends_what_the_destination_may_see_too(
    network: Network, db: sessionmaker[Session], storescp: Path
) -> None:
    # Trust A's own PACS may see its study, but B's workstation has no grant for trust A:
    # the study must not be pushed to it until the grant exists.
    ident = identifier("STUDY", StudyInstanceUID=network.study_a.study_uid)

    before = c_move_statuses(network.gateway.port, ident, WORKSTATION_AE, calling_ae=SITE_A_AE)
    assert before[-1].Status == status.SUCCESS
    assert before[-1].NumberOfCompletedSuboperations == 0
    assert received_files(storescp) == {}

    grant(db, WORKSTATION_AE, "RXA")
    after = c_move_statuses(network.gateway.port, ident, WORKSTATION_AE, calling_ae=SITE_A_AE)
    assert after[-1].NumberOfCompletedSuboperations == 5
    _assert_same_instances(network, received_files(storescp), network.study_a.study_uid)
