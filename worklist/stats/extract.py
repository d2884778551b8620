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
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ColumnExpressionArgument,
    Integer,
    Select,
    any_,
    bindparam,
    case,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
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
# For the extract's own transaction only (LOCAL): a month sorts in memory, not on disk.
_SORT_IN_MEMORY = text("SET LOCAL work_mem = '32MB'")
NOT_FOR_ROLE = "only managers and admins may take the extract"
# What a spreadsheet reads as the start of a formula (OWASP's CSV injection list).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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
    """What one extract covers: the month, the sites (None: all), and its row count."""

    month: Month
    site_ids: tuple[int, ...] | None
    rows: int


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
    return func.to_char(func.timezone(SITE_TIMEZONE.key, column), "YYYY-MM-DD")


def _as_text(column: ColumnExpressionArgument[str | None]) -> ColumnElement[str | None]:
    """The cell a spreadsheet shows as text: a leading formula character gets a ``'``.

    In SQL, so the API writes each batch of rows as it comes (no Python per cell).
    """
    first = func.left(column, 1)
    return case((first.in_(FORMULA_PREFIXES), literal("'") + column), else_=column)


def _issued_at() -> ColumnElement[datetime | None]:
    # A lookup by the unique study_id per row: as a join, PostgreSQL read and hashed all
    # ~1M reports of bench_worklist for a month's ~50,000 studies.
    return select(Report.finalised_at).where(Report.study_id == Study.id).scalar_subquery()


def _conditions(month: Month, site_ids: tuple[int, ...] | None) -> list[ColumnElement[bool]]:
    start, end = month.bounds()
    conditions = [
        _test_time() >= start,
        _test_time() < end,
        Study.status != StudyStatus.CANCELLED,
    ]
    if site_ids is not None:
        conditions.append(
            Study.site_id == any_(bindparam("site_ids", list(site_ids), type_=ARRAY(Integer)))
        )
    return conditions


def extract_statement(month: Month, site_ids: tuple[int, ...] | None) -> Select[*tuple[Any, ...]]:
    """The extract's rows, in test-time order, every cell already text (or NULL)."""
    statement: Select[*tuple[Any, ...]] = (
        select(
            _as_text(Site.code),
            _as_text(Study.accession_number),
            _as_text(Order.procedure_code),
            _as_text(Order.patient_source),
            _as_text(Order.referrer_code),
            _as_text(Order.referrer_organisation_code),
            _local_date(Order.requested_at),
            _local_date(Order.received_at),
            _local_date(_test_time()),
            _local_date(_issued_at()),
        )
        .select_from(Study)
        .join(Site, Site.id == Study.site_id)
        .outerjoin(Order, Order.id == Study.order_id)
        .where(*_conditions(month, site_ids))
        .order_by(_test_time(), Study.id)
    )
    return statement


async def count_rows(
    session: AsyncSession, *, month: Month, site_ids: tuple[int, ...] | None
) -> int:
    """How many examinations the extract holds."""
    statement = select(func.count()).select_from(Study).where(*_conditions(month, site_ids))
    return int((await session.execute(statement)).scalar_one())


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
    rows = await count_rows(session, month=month, site_ids=site_ids)
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
    return ExtractPlan(month=month, site_ids=site_ids, rows=rows)


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    # None (SQL NULL) is written as an empty cell.
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


async def csv_chunks(
    session: AsyncSession, *, plan: ExtractPlan, rows_per_chunk: int = ROWS_PER_CHUNK
) -> AsyncIterator[str]:
    """The CSV, header first, ``rows_per_chunk`` rows per chunk, from a server-side cursor."""
    yield _csv_text([HEADER])
    # Core rows on the session's connection: no ORM loading step for plain columns.
    connection = await session.connection()
    await connection.execute(_SORT_IN_MEMORY)
    result = await connection.stream(
        extract_statement(plan.month, plan.site_ids),
        execution_options={"yield_per": rows_per_chunk},
    )
    async for partition in result.partitions():
        yield _csv_text(partition)
