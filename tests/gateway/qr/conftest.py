"""Query/retrieve fixtures: two trusts' studies in the gateway, a workstation of trust B."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.factories import new_grant, new_site
from tests.gateway.conftest import SITE_A_AE, SITE_B_AE, send, write_files
from tests.ports import reserve_port
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances

WORKSTATION_AE = "RXB_WS"
ROGUE_AE = "RXD_WS"
GATEWAY_AE = "IMAGING_NET"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@dataclass
class Network:
    """What the trusts pushed: each study's spec and the files sent, by SOP Instance UID."""

    gateway: Gateway
    study_a: StudySpec
    study_b: StudySpec
    files: dict[str, Path]
    destination_port: int


def dcmtk(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool (with Nagle off: 10-30x faster)."""
    return subprocess.run(
        [str(a) for a in args],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def network(gateway: Gateway, db: sessionmaker[Session], tmp_path: Path) -> Network:
    """Study A pushed by trust A, study B by trust B; B's workstation registered with a port."""
    study_a = StudySpec(
        patient=PatientSpec(local_id="A-100", name="Müller^Jürgen", charset="ISO_IR 100"),
        series=[
            SeriesSpec(modality="CT", count=3, description="Axial"),
            SeriesSpec(modality="MR", count=2, description="T2"),
        ],
        accession_number="ACC-A1",
        description="CT and MR head",
        study_datetime=datetime(2026, 11, 3, 9, 30),
    )
    study_b = StudySpec(
        patient=PatientSpec(local_id="B-200", name="SMITH^ANNA"),
        series=[SeriesSpec(modality="CR", count=1, description="Chest PA")],
        accession_number="ACC-B1",
        description="Chest X-ray",
        study_datetime=datetime(2026, 10, 20, 14, 0),
    )
    files: dict[str, Path] = {}
    for spec, aet, name in ((study_a, SITE_A_AE, "a"), (study_b, SITE_B_AE, "b")):
        paths = write_files(iter_instances(spec), tmp_path / "pushed" / name)
        results = send(gateway.port, paths, calling_ae=aet)
        assert {r.status for r in results} == {0}
        files.update({r.sop_instance_uid: p for r, p in zip(results, paths, strict=True)})
    port = reserve_port()
    with db() as session, session.begin():
        new_site(
            session, "RXB", name="Trust B", ae_title=WORKSTATION_AE, hosts=["127.0.0.1"], port=port
        )
        new_site(
            session,
            "RXD",
            name="Trust D",
            ae_title=ROGUE_AE,
            hosts=["127.0.0.1"],
            port=reserve_port(),
        )
    return Network(gateway, study_a, study_b, files, port)


def grant(db: sessionmaker[Session], ae_title: str, site_code: str) -> None:
    """``worklist node grant AET --site CODE``."""
    with db() as session, session.begin():
        new_grant(session, ae_title=ae_title, site_code=site_code)


@pytest.fixture
def storescp(network: Network, tmp_path: Path) -> Iterator[Path]:
    """DCMTK storescp listening as the workstation (its registered port); yields its folder."""
    received = tmp_path / "received"
    received.mkdir()
    proc = subprocess.Popen(
        [
            "/usr/bin/storescp",
            "-aet",
            WORKSTATION_AE,
            "+xa",
            "-od",
            str(received),
            str(network.destination_port),
        ],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(network.destination_port, proc)
        yield received
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("storescp exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("storescp did not start listening")


def c_find(port: int, identifier: Dataset, *, calling_ae: str = WORKSTATION_AE) -> list[Dataset]:
    """Pending C-FIND identifiers, with pynetdicom; asserts the final status is success."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind, [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=GATEWAY_AE)
    assert assoc.is_established
    try:
        results: list[Dataset] = []
        final = None
        for rsp, ds in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            if rsp.Status == 0xFF00 and ds is not None:
                results.append(ds)
            else:
                final = int(rsp.Status)
    finally:
        assoc.release()
    assert final == 0
    return results


def c_move_statuses(
    port: int, identifier: Dataset, destination: str, *, calling_ae: str = WORKSTATION_AE
) -> list[Dataset]:
    """Every C-MOVE response (command set) from the gateway, with pynetdicom."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove, [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=GATEWAY_AE)
    assert assoc.is_established
    try:
        return [
            rsp
            for rsp, _ in assoc.send_c_move(
                identifier, destination, StudyRootQueryRetrieveInformationModelMove
            )
        ]
    finally:
        assoc.release()


def identifier(level: str, **keys: object) -> Dataset:
    """A Study Root identifier."""
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def received_files(folder: Path) -> dict[str, Dataset]:
    """Files a DCMTK SCP wrote, by SOP Instance UID."""
    out: dict[str, Dataset] = {}
    for path in folder.rglob("*"):
        if path.is_file():
            ds = dcmread(path)
            out[str(ds.SOPInstanceUID)] = ds
    return out
