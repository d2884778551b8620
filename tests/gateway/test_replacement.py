"""A replacement that cannot be indexed leaves the stored instance exactly as it was.

PostgreSQL is really stopped (a private embedded server, `pg_ctl stop`) in the middle of
an association, between the first version of an instance and its replacement.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom import AE, _config
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dicom_gateway import reindex, status
from dicom_gateway.server import Gateway, build_gateway
from tests.conftest import SECRET_KEY
from tests.factories import new_site
from tests.gateway.conftest import SITE_A_AE, send, write_files
from worklist.config import Settings
from worklist.db import make_engine, make_sessionmaker, migrate
from worklist.embedded import EmbeddedPostgres, start_postgres
from worklist.models import AuditEvent, Instance
from worklist.synthetic import PatientSpec, SeriesSpec, StudySpec, iter_instances

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _pg_ctl(server: EmbeddedPostgres, *args: str) -> subprocess.CompletedProcess[bytes]:
    from pgserver._commands import POSTGRES_BIN_PATH

    command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", *args]
    return subprocess.run(command, user=server.system_user, capture_output=True, check=False)


@pytest.fixture
def private_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own, which it may really stop and start again."""
    parent = Path(tempfile.mkdtemp(prefix="worklist-replace-"))
    parent.chmod(0o755)  # as root, the server runs as another user that must reach it
    server = start_postgres(parent)
    migrate(server.url)
    try:
        yield server
    finally:
        _pg_ctl(server, "-m", "immediate", "stop")
        shutil.rmtree(parent, ignore_errors=True)


def _versions(tmp_path: Path) -> tuple[Path, Path]:
    [first] = write_files(
        iter_instances(StudySpec(patient=PatientSpec("R1"), series=[SeriesSpec(count=1)])),
        tmp_path / "v1",
    )
    changed = dcmread(first)
    changed.InstitutionName = "CORRECTED"
    second = tmp_path / "v2.dcm"
    changed.save_as(second, enforce_file_format=True)
    return first, second


def _stored_versions(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "dicom").rglob("*.dcm"))


def test_a_replacement_during_a_database_outage_keeps_the_old_file_and_row(
    private_postgres: EmbeddedPostgres, tmp_path: Path, redis_url: str
) -> None:
    server = private_postgres
    settings = Settings(
        database_url=server.url,
        redis_url=redis_url,
        data_dir=tmp_path / "var",
        secret_key=SECRET_KEY,
        gateway_port=0,
    )
    engine = make_engine(server.url)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        new_site(session, "RXA", name="A", ae_title=SITE_A_AE)
    first, second = _versions(tmp_path)
    gateway = build_gateway(settings)
    gateway.start()
    ae = AE(ae_title=SITE_A_AE)
    ae.add_requested_context(CT, [EXPLICIT_LE])
    assoc = ae.associate("127.0.0.1", gateway.port, ae_title="IMAGING_NET")
    assert assoc.is_established
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assert assoc.send_c_store(first).Status == status.SUCCESS
        [stored] = _stored_versions(settings.data_dir)
        original = stored.read_bytes()
        engine.dispose()
        assert _pg_ctl(server, "-m", "fast", "stop").returncode == 0

        refused = assoc.send_c_store(second)

        assert refused.Status == status.OUT_OF_RESOURCES
        assert _stored_versions(settings.data_dir) == [stored]
        assert stored.read_bytes() == original
        # As pgserver starts it: no TCP, the socket in the data directory the URL names.
        options = ["-o", '-h ""', "-o", f"-k {server.pgdata}", "-l", str(server.pgdata / "log")]
        started = _pg_ctl(server, *options, "start")
        assert started.returncode == 0, started.stderr
        with sessions() as session:
            row = session.scalars(select(Instance)).one()
        assert (row.path, row.size_bytes) == (
            str(stored.relative_to(settings.dicom_dir)),
            len(original),
        )

        # The sender retries once the database is back: the replacement goes through.
        assert assoc.send_c_store(second).Status == status.SUCCESS
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
        assoc.release()
        gateway.shutdown()
    [replacement] = _stored_versions(settings.data_dir)
    assert dcmread(replacement).InstitutionName == "CORRECTED"
    with sessions() as session:
        row = session.scalars(select(Instance)).one()
        actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert settings.dicom_dir / row.path == replacement
    assert row.size_bytes == replacement.stat().st_size
    assert actions.count("instance.replaced") == 1
    # A reindex agrees with what the gateway left.
    result = reindex.reindex(settings)
    assert (result.errors, result.removed, result.superseded) == (0, 0, 0)
    engine.dispose()


def test_a_version_left_by_a_crash_is_passed_over_by_reindex_and_cleared_by_a_resend(
    gateway: Gateway, settings: Settings, db: sessionmaker[Session], tmp_path: Path
) -> None:
    first, second = _versions(tmp_path)
    [result] = send(gateway.port, [first])
    assert result.status == status.SUCCESS
    [stored] = _stored_versions(settings.data_dir)
    # What a crash after placing a replacement, before its commit, leaves behind.
    orphan = stored.with_name(stored.stem + "~0123456789abcdef.dcm")
    orphan.write_bytes(second.read_bytes())

    outcome = reindex.reindex(settings)

    assert (outcome.errors, outcome.superseded) == (0, 1)
    with db() as session:
        row = session.scalars(select(Instance)).one()
    assert settings.dicom_dir / row.path == stored
    [resent] = send(gateway.port, [first])
    assert resent.status == status.SUCCESS
    assert _stored_versions(settings.data_dir) == [stored]
