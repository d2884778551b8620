"""The monthly per-examination extract: the Diagnostic Imaging Dataset items we hold, as CSV.

One row per examination (study, cancelled ones excepted) whose test date -- the study
date/time, else its first arrival -- falls in the month, in the network's wall-clock zone
(``worklist.timezones``: the DID counts local dates, and a study taken at 00:30 on the
1st of a summer month is in that month, not the one before). Dates are written as local
``YYYY-MM-DD``, as the DID submits them. Items we hold no order for are empty.

Memory stays bounded whatever the month holds: the rows come from a server-side cursor
``rows_per_chunk`` at a time and leave as one CSV chunk per batch (``csv_chunks``). The
read is audited as one bulk read (``AuditAction.STATS_EXTRACT``: month, row count, sites)
by ``begin_extract``, in a transaction the caller commits before the first row is read,
so an extract a client stops reading half-way is still on record.

Cells are neutralised against CSV (formula) injection: a value from a trust's RIS that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with
``'``, so a spreadsheet shows it as text instead of evaluating it.

Speed (docs/did-extract.md): every cell is text when it leaves PostgreSQL, the rows are
read from psycopg's own server-side cursor (no SQLAlchemy row per examination) and the
month's reports are found by one range of study ids when the month's studies are close
together in id, as they are when ids follow arrival (else by one probe per study).
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    Date,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    select,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.enums import AuditAction, Role, StudyStatus
from worklist.errors import Forbidden, InvalidInput
from worklist.models import Order, Report, Site, Study, User
from worklist.timezones import SITE_TIMEZONE

# The DID items we hold, in DESIGN's order; the CSV's header row.
HEADER = (
    "site_code",
    "accession_number",
    "imaging_code",
    "patient_source",
    "referrer_code",
    "referring_organisation_code",
    "request_date",
    "request_received_date",
    "test_date",
    "report_issue_date",
)
MONTH_PATTERN = r"^[12][0-9]{3}-(0[1-9]|1[0-2])$"  # years 1000-2999: datetime-safe both ends
ROWS_PER_CHUNK = 1000
# The month's reports are read as one range of study ids when the range holds at most
# this many ids per examination of the month (else each study probes its report).
ID_RANGE_FACTOR = 4
# For the extract's own transaction only (LOCAL): a month sorts in memory, not on disk;
# no JIT (the per-row lookups cost the statement above ``jit_above_cost``, and compiling
# it took longer, ~0.1 s, than running it); dates written ``YYYY-MM-DD`` whatever the
# server's DateStyle.
_SETTINGS = (
    text("SET LOCAL work_mem = '32MB'"),
    text("SET LOCAL jit = off"),
    text("SET LOCAL DateStyle = 'ISO, YMD'"),
)
NOT_FOR_ROLE = "only managers and admins may take the extract"
# What a spreadsheet reads as the start of a formula (OWASP's CSV injection list).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CODES = [ord(prefix) for prefix in FORMULA_PREFIXES]


@dataclass(frozen=True)
class Month:
    """A calendar month of the network's wall clocks."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``, or InvalidInput (422)."""
        if not re.fullmatch(MONTH_PATTERN, text):
            raise InvalidInput(f"month must be YYYY-MM, not {text!r}")
        year, month = text.split("-")
        return cls(int(year), int(month))

    def bounds(self) -> tuple[datetime, datetime]:
        """Local midnight of the 1st, and of the 1st of the month after (half-open)."""
        start = datetime(self.year, self.month, 1, tzinfo=SITE_TIMEZONE)
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return start, datetime(year, month, 1, tzinfo=SITE_TIMEZONE)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class ExtractPlan:
    """What one extract covers: the month, the sites (None: all), its row count, and the
    smallest and largest study id among its examinations (None: it has none)."""

    month: Month
    site_ids: tuple[int, ...] | None
    rows: int
    study_ids: tuple[int, int] | None = None

    def id_range(self) -> tuple[int, int] | None:
        """The study ids to read the month's reports in, if few enough to read them all."""
        if self.study_ids is None:
            return None
        low, high = self.study_ids
        return self.study_ids if high - low + 1 <= ID_RANGE_FACTOR * self.rows else None


def extract_sites(user: User) -> tuple[int, ...] | None:
    """The sites ``user`` may extract (None: every site), or Forbidden (403)."""
    if user.role is Role.ADMIN:
        return None
    if user.role is Role.MANAGER:
        return tuple(sorted(site.id for site in user.sites))
    raise Forbidden(NOT_FOR_ROLE)


def _test_time() -> ColumnElement[datetime]:
    return func.coalesce(Study.study_datetime, Study.received_at)


def _local_date(column: ColumnExpressionArgument[datetime | None]) -> ColumnElement[str | None]:
    # A date's text is YYYY-MM-DD under DateStyle ISO (_SETTINGS): cheaper than to_char.
    return cast(cast(func.timezone(SITE_TIMEZONE.key, column), Date), Text)


def _as_text(column: ColumnExpressionArgument[str | None]) -> ColumnElement[str | None]:
    """The cell a spreadsheet shows as text: a leading formula character gets a ``'``.

    In SQL, so the API writes each batch of rows as it comes (no Python per cell).
    """
    # ascii(): the first character's code as an integer, the cheapest test per cell.
    first = func.ascii(column)
    return case((first.in_(_FORMULA_CODES), literal("'") + column), else_=column)


def _conditions(month: Month, site_ids: tuple[int, ...] | None) -> list[ColumnElement[bool]]:
    start, end = month.bounds()
    conditions = [
        _test_time() >= start,
        _test_time() < end,
        Study.status != StudyStatus.CANCELLED,
    ]
    if site_ids == ():
        conditions.append(false())  # a manager of no site (ARRAY[] has no type as a literal)
    elif site_ids is not None:
        conditions.append(
            Study.site_id == any_(bindparam("site_ids", list(site_ids), type_=ARRAY(Integer)))
        )
    return conditions


def extract_statement(
    month: Month, site_ids: tuple[int, ...] | None, id_range: tuple[int, int] | None = None
) -> Select[*tuple[Any, ...]]:
    """The extract's rows, in test-time order, every cell already text (or NULL).

    The month's studies are sorted on their test time and id alone, and each row's site
    code, order and cells are computed as the sorted rows come out (the order by primary
    key, ``LATERAL ... OFFSET 0`` so the planner keeps a nested loop, which keeps the
    order). Their reports: with ``id_range``, the reports of that range of study ids
    joined by hash (a month's ~26,000 at 1M studies, read in one index range); else one
    probe per study by the unique study_id. A plain join hashed all ~1M reports.
    """
    test_time = _test_time().label("test_time")
    columns = (Study.id, Study.site_id, Study.order_id, Study.accession_number, test_time)
    chosen_rows = select(*columns).select_from(Study).where(*_conditions(month, site_ids))
    if id_range is not None:
        low, high = id_range
        reports = (
            select(Report.study_id, Report.finalised_at)
            .where(Report.study_id >= low, Report.study_id <= high)
            .subquery("month_reports")
        )
        chosen_rows = chosen_rows.outerjoin(reports, reports.c.study_id == Study.id).add_columns(
            reports.c.finalised_at
        )
    chosen = chosen_rows.order_by(test_time, Study.id).offset(0).subquery("chosen")
    issued_at: Any = (
        chosen.c.finalised_at
        if id_range is not None
        else select(Report.finalised_at).where(Report.study_id == chosen.c.id).scalar_subquery()
    )
    order = (
        select(
            Order.procedure_code,
            Order.patient_source,
            Order.referrer_code,
            Order.referrer_organisation_code,
            Order.requested_at,
            Order.received_at,
        )
        .where(Order.id == chosen.c.order_id)
        .offset(0)
        .lateral("order")
    )
    statement: Select[*tuple[Any, ...]] = (
        select(
            _as_text(Site.code),
            _as_text(chosen.c.accession_number),
            _as_text(order.c.procedure_code),
            _as_text(order.c.patient_source),
            _as_text(order.c.referrer_code),
            _as_text(order.c.referrer_organisation_code),
            _local_date(order.c.requested_at),
            _local_date(order.c.received_at),
            _local_date(chosen.c.test_time),
            _local_date(issued_at),
        )
        .select_from(chosen)
        .join(Site, Site.id == chosen.c.site_id)
        .outerjoin(order, true())
        .order_by(chosen.c.test_time, chosen.c.id)
    )
    return statement


async def month_rows(
    session: AsyncSession, *, month: Month, site_ids: tuple[int, ...] | None
) -> tuple[int, tuple[int, int] | None]:
    """How many examinations the extract holds, and their smallest and largest study id."""
    statement = select(func.count(), func.min(Study.id), func.max(Study.id)).where(
        *_conditions(month, site_ids)
    )
    count, low, high = (await session.execute(statement)).one()
    return int(count), (int(low), int(high)) if count else None


async def begin_extract(
    session: AsyncSession,
    *,
    actor: str,
    actor_kind: audit.ActorKind,
    month: Month,
    site_ids: tuple[int, ...] | None,
    address: str | None = None,
) -> ExtractPlan:
    """Count the month's rows and stage the one audit row of the bulk read.

    The caller commits ``session`` before streaming (``csv_chunks`` on another session):
    the record of the read must not depend on the client reading to the end.
    """
    rows, study_ids = await month_rows(session, month=month, site_ids=site_ids)
    codes = None
    if site_ids is not None:
        statement = select(Site.code).where(Site.id.in_(site_ids)).order_by(Site.code)
        codes = list((await session.scalars(statement)).all())
    audit.record(
        session,
        actor=actor,
        actor_kind=actor_kind,
        action=AuditAction.STATS_EXTRACT,
        site_id=site_ids[0] if site_ids is not None and len(site_ids) == 1 else None,
        address=address,
        detail={"month": str(month), "rows": rows, "sites": codes},
    )
    return ExtractPlan(month=month, site_ids=site_ids, rows=rows, study_ids=study_ids)


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    # None (SQL NULL) is written as an empty cell.
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def select_sql(plan: ExtractPlan, dialect: Dialect) -> str:
    """The extract's SELECT as SQL text, its values inline.

    The values are the month's bounds, site and study ids and this module's constants
    (no text from a request): psycopg's cursor then needs no SQLAlchemy parameters.
    """
    statement = extract_statement(plan.month, plan.site_ids, plan.id_range())
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


async def csv_chunks(
    session: AsyncSession, *, plan: ExtractPlan, rows_per_chunk: int = ROWS_PER_CHUNK
) -> AsyncIterator[str]:
    """The CSV, header first, ``rows_per_chunk`` rows per chunk, from a server-side cursor."""
    yield _csv_text([HEADER])
    connection = await session.connection()
    for setting in _SETTINGS:
        await connection.execute(setting)
    statement = select_sql(plan, connection.dialect)
    # psycopg's own server-side cursor, in the session's transaction: its rows are plain
    # tuples of text, which csv.writer takes as they are (SQLAlchemy rows cost as much
    # again per examination).
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert isinstance(driver, psycopg.AsyncConnection)
    async with driver.cursor(name="did_extract") as cursor:
        await cursor.execute(statement)
        fetching = asyncio.ensure_future(cursor.fetchmany(rows_per_chunk))
        try:
            while rows := await fetching:
                # PostgreSQL computes the next batch while this one is written: the
                # FETCH goes out (the task runs to its first wait) before the writing.
                fetching = asyncio.ensure_future(cursor.fetchmany(rows_per_chunk))
                await asyncio.sleep(0)
                yield _csv_text(rows)
        finally:
            if not fetching.done():
                # The reader went away mid-extract: let the pending FETCH finish, so
                # the cursor closes on a connection that is not busy.
                await asyncio.wait([fetching])
