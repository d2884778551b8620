"""`worklist stats extract --month YYYY-MM [--out FILE]`: the API's CSV, every site."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows
from tests.cli.conftest import Invoke
from tests.stats.extract_rows import HEADER, MONTH, ROWS, build_month
from worklist.enums import AuditAction

EVERY_SITE = [ROWS["N-EARLY"], ROWS["N-ORDERED"], ROWS["S-MID"], ROWS["N-ARRIVED"]]


@pytest.fixture
def month(db: sessionmaker[Session]) -> None:
    """The fixed month (tests/stats/extract_rows.py), committed."""
    with db() as session, session.begin():
        build_month(session)


def test_extract_to_stdout_is_every_sites_month(invoke: Invoke, month: None) -> None:
    result = invoke("stats", "extract", "--month", MONTH)

    assert result.exit_code == 0, result.output
    assert list(csv.reader(io.StringIO(result.stdout))) == [HEADER, *EVERY_SITE]


def test_extract_to_a_file_writes_it_whole_and_audits_the_read(
    invoke: Invoke, db: sessionmaker[Session], month: None, tmp_path: Path
) -> None:
    out = tmp_path / "did.csv"

    result = invoke("stats", "extract", "--month", MONTH, "--out", str(out))

    assert result.exit_code == 0, result.output
    assert "4 examinations of 2030-07 written to" in result.stderr
    with out.open(encoding="utf-8", newline="") as written:
        assert list(csv.reader(written)) == [HEADER, *EVERY_SITE]
    assert list(tmp_path.iterdir()) == [out]
    (row,) = audit_rows(db, AuditAction.STATS_EXTRACT)
    assert row.actor.startswith("cli:")
    assert (row.actor_kind, row.detail) == ("system", {"month": MONTH, "rows": 4, "sites": None})


def test_a_bad_month_is_one_error_line(invoke: Invoke, month: None) -> None:
    result = invoke("stats", "extract", "--month", "2030-7")

    assert result.exit_code == 1
    assert result.stderr == "error: month must be YYYY-MM, not '2030-7'\n"


def test_an_unwritable_out_is_one_error_line_and_leaves_nothing(
    invoke: Invoke, db: sessionmaker[Session], month: None, tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "did.csv"

    result = invoke("stats", "extract", "--month", MONTH, "--out", str(out))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot write {out}: ")
    assert not (tmp_path / "missing").exists()
    assert audit_rows(db, AuditAction.STATS_EXTRACT) == []
