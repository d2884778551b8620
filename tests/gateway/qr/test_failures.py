"""Query/retrieve while the database is unreachable: explicit failure statuses, no crash."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.uid import ImplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import Engine, create_engine, text

from dicom_gateway import status
from tests.conftest import ADMIN_URL
from tests.gateway.qr.conftest import GATEWAY_AE, WORKSTATION_AE, Network, c_find, identifier
from worklist.db import normalise_url


@pytest.fixture
def database_down(database_url: str) -> Iterator[tuple[Engine, str]]:
    """An admin engine and the test database's name; connections are allowed again after."""
    engine = create_engine(normalise_url(ADMIN_URL), isolation_level="AUTOCOMMIT")
    name = database_url.rsplit("/", 1)[1]
    yield engine, name
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    engine.dispose()


def _cut(engine: Engine, name: str) -> None:
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :db AND application_name = 'worklist-gateway'"
            ),
            {"db": name},
        )


def test_database_outage_answers_failure_statuses_and_gateway_recovers(
    network: Network, database_down: tuple[Engine, str]
) -> None:
    ae = AE(ae_title=WORKSTATION_AE)
    for model in (
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_requested_context(model, [ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", network.gateway.port, ae_title=GATEWAY_AE)
    assert assoc.is_established
    study = identifier("STUDY", StudyInstanceUID=network.study_b.study_uid)
    try:
        _cut(*database_down)
        find = [
            int(r.Status)
            for r, _ in assoc.send_c_find(
                identifier("STUDY", PatientName="*"), StudyRootQueryRetrieveInformationModelFind
            )
        ]
        move = [
            int(r.Status)
            for r, _ in assoc.send_c_move(
                study, WORKSTATION_AE, StudyRootQueryRetrieveInformationModelMove
            )
        ]
        get = [
            int(r.Status)
            for r, _ in assoc.send_c_get(study, StudyRootQueryRetrieveInformationModelGet)
        ]
    finally:
        assoc.release()
    assert find == [status.OUT_OF_RESOURCES]
    assert move == [status.MOVE_UNABLE_TO_PROCESS]
    assert get == [status.OUT_OF_RESOURCES_MATCHES]

    engine, name = database_down
    with engine.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    found = c_find(network.gateway.port, identifier("STUDY", StudyInstanceUID=""))
    assert [str(ds.StudyInstanceUID) for ds in found] == [network.study_b.study_uid]
