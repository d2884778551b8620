"""Where the benchmarks' services are and how to drive them: PostgreSQL, the ``worklist``
CLI, DICOM association defaults."""

from __future__ import annotations

import secrets
import string
import sys
from pathlib import Path

import psycopg
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

REPO_ROOT = Path(__file__).resolve().parents[2]
PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"
CALLING_AET = "BENCHSCU"
GATEWAY_AET = "IMAGING_NET"
START_TIMEOUT = 60.0


def pg_admin_conninfo(dbname: str = "postgres") -> str:
    """libpq connection string for the benchmark's PostgreSQL."""
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname}"


def recreate_database(name: str) -> None:
    """Drop (closing any leftover connections) and create an empty database."""
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    """Drop a benchmark database if it exists."""
    with psycopg.connect(pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dicom_echo(port: int, called_aet: str, calling_aet: str = CALLING_AET) -> bool:
    """True when a C-ECHO to ``port`` succeeds."""
    ae = AE(ae_title=calling_aet)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", port, ae_title=called_aet)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and int(status.Status) == 0
    finally:
        assoc.release()


def random_secret(length: int = 48) -> str:
    """A random key of letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def worklist_cli(*args: str) -> list[str]:
    """argv running the ``worklist`` CLI with this interpreter (``python -m worklist``)."""
    return [sys.executable, "-m", "worklist", *args]


def gateway_available() -> bool:
    """True once the lead's ``dicom_gateway`` package has its server and CLI."""
    return all(
        (REPO_ROOT / path).exists()
        for path in ("dicom_gateway/server.py", "dicom_gateway/__main__.py", "worklist/cli.py")
    )
