"""DICOMweb fixtures: studies pushed through the real gateway, the API on a real socket, users."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.data import get_testdata_file
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway.server import Gateway
from tests.api.conftest import add_user, bearer
from tests.gateway.conftest import SITE_A_AE, SITE_B_AE, gateway, send, sites, write_files
from worklist.app import create_app
from worklist.config import Settings
from worklist.enums import Role
from worklist.models import Instance, User
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances, new_uid

__all__ = ["SITE_B_AE", "gateway", "sites"]

DR_A = "dr.a"  # reporting privileges at RXA
DR_B = "dr.b"  # privileges at RXB only: must not see RXA's studies
ADMIN = "admin"


@dataclass(frozen=True)
class Pushed:
    """A study pushed through the gateway: its spec and the files the sender had."""

    spec: StudySpec
    files: dict[str, Path]  # SOP Instance UID -> the sender's Part 10 file


@dataclass
class LiveApi:
    """The API served by uvicorn over a real socket."""

    base_url: str
    settings: Settings

    def client(self, user: User) -> DICOMwebClient:
        """A dicomweb-client session for ``user``, bearer token in its headers."""
        return DICOMwebClient(url=f"{self.base_url}/dicomweb", headers=bearer(self.settings, user))


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def live_api(settings: Settings, db: sessionmaker[Session]) -> Iterator[LiveApi]:
    """create_app(settings) under uvicorn in a thread, on a free port."""
    sock = _free_socket()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", timeout_graceful_shutdown=2)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn exited"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    host, port = sock.getsockname()
    try:
        yield LiveApi(base_url=f"http://{host}:{port}", settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def users(db: sessionmaker[Session], sites: None) -> dict[str, User]:
    """A radiologist at RXA, one at RXB only, and an admin."""
    with db() as session, session.begin():
        made = {
            DR_A: add_user(session, DR_A, Role.RADIOLOGIST, "RXA"),
            DR_B: add_user(session, DR_B, Role.RADIOLOGIST, "RXB"),
            ADMIN: add_user(session, ADMIN, Role.ADMIN),
        }
        session.expunge_all()
    return made


def push(port: int, spec: StudySpec, directory: Path, *, calling_ae: str = SITE_A_AE) -> Pushed:
    """Send a synthetic study through the gateway; return the sender's files."""
    paths = write_files(iter_instances(spec), directory / spec.study_uid)
    results = send(port, paths, calling_ae=calling_ae)
    assert all(r.status == 0 for r in results), results
    files = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in paths}
    return Pushed(spec=spec, files=files)


def push_sample(
    port: int, name: str, study_uid: str, directory: Path, *, series_uid: str | None = None
) -> Path:
    """Send one of pydicom's sample files (its own transfer syntax) into ``study_uid``."""
    sample = get_testdata_file(name)
    assert isinstance(sample, str), name
    ds = dcmread(sample)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or new_uid()
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = "SAMPLE-1"
    ds.PatientName = "SAMPLE^PATIENT"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    results = send(port, [path])
    assert [r.status for r in results] == [0], results
    return path


def stored_file(db: sessionmaker[Session], settings: Settings, sop_uid: str) -> Path:
    """Where the gateway keeps an instance."""
    with db() as session:
        relative = session.scalar(select(Instance.path).where(Instance.sop_instance_uid == sop_uid))
    assert relative is not None
    return settings.dicom_dir / relative


@pytest.fixture
def head_ct(gateway: Gateway, tmp_path: Path) -> Pushed:
    """An RXA study: CT head (two series of 3 and 2) and an MR series of 2."""
    spec = StudySpec(
        patient=PatientSpec("RXA-001", name="Smith^Anne", birth_date="19600214", sex="F"),
        series=[
            SeriesSpec(modality="CT", count=3, description="Axial"),
            SeriesSpec(modality="CT", count=2, description="Coronal"),
            SeriesSpec(modality="MR", count=2, description="T2"),
        ],
        accession_number="ACC-HEAD-1",
        description="CT head",
    )
    return push(gateway.port, spec, tmp_path / "sent")
