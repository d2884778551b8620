"""SQL for reports, their versions and addenda, and the study row a signed report moves.

Every write to ``reports`` is guarded in SQL (``WHERE version = :expected AND status = ...``)
so a stale writer changes nothing even without the study lock the service takes first.
The database triggers refuse any change to signed text and any rewrite of history; their
errors (SQLSTATE ``WL010`` / ``WL011``) become ``Conflict`` here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Executable, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.enums import ReportStatus
from worklist.errors import Conflict
from worklist.models import (
    Order,
    Patient,
    Report,
    ReportAddendum,
    ReportVersion,
    Site,
    Study,
    User,
)
from worklist.reports.fhir import Reader

# Raised by the triggers of migration 0002: signed report text changed / history rewritten.
IMMUTABLE_SQLSTATES = frozenset({"WL010", "WL011"})
RECORD_IS_IMMUTABLE = "a signed report and its history cannot be changed (add an addendum)"

# DML ... RETURNING Report must refresh an instance the session may already hold.
_REFRESH: dict[str, Any] = {"synchronize_session": False, "populate_existing": True}


async def execute_write(session: AsyncSession, statement: Executable) -> Any:
    """Execute a write; a refusal by the report-immutability triggers becomes ``Conflict``."""
    try:
        return await session.execute(statement, execution_options=_REFRESH)
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in IMMUTABLE_SQLSTATES:
            raise Conflict(RECORD_IS_IMMUTABLE) from exc
        raise


async def get_report(session: AsyncSession, *, study_id: int) -> Report | None:
    """The study's report as now committed (never a stale copy from the session)."""
    stmt = (
        select(Report).where(Report.study_id == study_id).execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def create_draft(
    session: AsyncSession, *, study_id: int, text: str, author_id: int
) -> Report | None:
    """Insert version 1 of the study's report; None if the study already has one."""
    stmt = (
        insert(Report)
        .values(
            study_id=study_id,
            status=ReportStatus.DRAFT,
            text=text,
            version=1,
            author_id=author_id,
        )
        .on_conflict_do_nothing(index_elements=[Report.study_id])
        .returning(Report)
    )
    result = await execute_write(session, stmt)
    report: Report | None = result.scalars().one_or_none()
    return report


async def update_draft(
    session: AsyncSession, *, report_id: int, expected_version: int, text: str, author_id: int
) -> Report | None:
    """Replace a draft's text if it is still at ``expected_version``; None otherwise."""
    stmt = (
        update(Report)
        .where(
            Report.id == report_id,
            Report.version == expected_version,
            Report.status == ReportStatus.DRAFT,
        )
        .values(
            text=text,
            author_id=author_id,
            version=Report.version + 1,
            updated_at=func.now(),
        )
        .returning(Report)
    )
    result = await execute_write(session, stmt)
    report: Report | None = result.scalars().one_or_none()
    return report


async def finalise(
    session: AsyncSession, *, report_id: int, expected_version: int, user_id: int
) -> Report | None:
    """Sign a draft still at ``expected_version`` (a new version); None otherwise."""
    stmt = (
        update(Report)
        .where(
            Report.id == report_id,
            Report.version == expected_version,
            Report.status == ReportStatus.DRAFT,
        )
        .values(
            status=ReportStatus.FINAL,
            version=Report.version + 1,
            updated_at=func.now(),
            finalised_at=func.now(),
            finalised_by_id=user_id,
        )
        .returning(Report)
    )
    result = await execute_write(session, stmt)
    report: Report | None = result.scalars().one_or_none()
    return report


async def mark_amended(session: AsyncSession, *, report_id: int) -> Report | None:
    """Mark a signed report amended (a new version, text unchanged); None if it is a draft."""
    stmt = (
        update(Report)
        .where(Report.id == report_id, Report.status != ReportStatus.DRAFT)
        .values(status=ReportStatus.AMENDED, version=Report.version + 1, updated_at=func.now())
        .returning(Report)
    )
    result = await execute_write(session, stmt)
    report: Report | None = result.scalars().one_or_none()
    return report


def add_version(session: AsyncSession, *, report: Report, saved_by_id: int) -> None:
    """Append the report as it now stands to its history."""
    session.add(
        ReportVersion(
            report_id=report.id,
            version=report.version,
            status=report.status,
            text=report.text,
            saved_by_id=saved_by_id,
        )
    )


def add_addendum(session: AsyncSession, *, report_id: int, text: str, author_id: int) -> None:
    """Append an addendum to a signed report."""
    session.add(ReportAddendum(report_id=report_id, text=text, author_id=author_id))


async def list_addenda(session: AsyncSession, *, report_id: int) -> Sequence[ReportAddendum]:
    """The report's addenda, oldest first."""
    stmt = (
        select(ReportAddendum)
        .where(ReportAddendum.report_id == report_id)
        .order_by(ReportAddendum.created_at, ReportAddendum.id)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).all()


async def usernames(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, str]:
    """Usernames by user id."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.username).where(User.id.in_(ids)))
    return {row.id: row.username for row in rows}


async def readers(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, Reader]:
    """Username, display name and registration by user id (as reports name people)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    stmt = select(User.id, User.username, User.name, User.registration).where(User.id.in_(ids))
    rows = await session.execute(stmt)
    return {
        row.id: Reader(username=row.username, name=row.name, registration=row.registration)
        for row in rows
    }


async def get_patient_and_site(session: AsyncSession, *, study: Study) -> tuple[Patient, Site]:
    """The study's patient and its site (the originating trust), as now committed."""
    stmt = (
        select(Patient, Site)
        .select_from(Study)
        .join(Patient, Patient.id == Study.patient_id)
        .join(Site, Site.id == Study.site_id)
        .where(Study.id == study.id)
        .execution_options(populate_existing=True)
    )
    patient, site = (await session.execute(stmt)).one()
    return patient, site


async def get_order(session: AsyncSession, *, study: Study) -> Order | None:
    """The study's order as now committed, or None when it has none."""
    stmt = (
        select(Order)
        .join(Study, Study.order_id == Order.id)
        .where(Study.id == study.id)
        .execution_options(populate_existing=True)
    )
    return await session.scalar(stmt)
