"""SQL for the worklist, study detail and priors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, Text, and_, false, or_, select, tuple_, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from worklist.enums import Priority
from worklist.identity import normalise_nhs_number
from worklist.models import Patient, Series, Site, Study
from worklist.studies.schemas import WorklistFilters

MAX_PRIORS = 100
_NAME_TOKEN_SPLIT = re.compile(r"[\s^,]+")


@dataclass(frozen=True)
class WorklistKey:
    """A study's position in worklist order: (due_at, priority, received_at, id)."""

    due_at: datetime
    priority: Priority
    received_at: datetime
    id: int

    @classmethod
    def of(cls, study: Study) -> WorklistKey:
        """The key of ``study``."""
        return cls(study.due_at, study.priority, study.received_at, study.id)


WORKLIST_ORDER = (Study.due_at, Study.priority, Study.received_at, Study.id)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(q: str) -> ColumnElement[bool] | None:
    """Match patient name (every word), accession (case-insensitive), NHS number, description."""
    text = q.strip()
    if not text:
        return None
    options: list[ColumnElement[bool]] = [
        Study.description.ilike(f"%{_escape_like(text)}%", escape="\\"),
        Study.accession_number.ilike(_escape_like(text), escape="\\"),
    ]
    words = [w for w in _NAME_TOKEN_SPLIT.split(text) if w]
    if words:
        options.append(
            and_(*(Patient.name.ilike(f"%{_escape_like(w)}%", escape="\\") for w in words))
        )
    nhs_number = normalise_nhs_number(text)
    if nhs_number is not None:
        options.append(Patient.nhs_number == nhs_number)
    return or_(*options)


def filter_conditions(filters: WorklistFilters) -> list[ColumnElement[bool]]:
    """SQL conditions for the worklist filters (Study joined with Site and Patient)."""
    conditions: list[ColumnElement[bool]] = [Study.status.in_(filters.statuses)]
    if filters.sites:
        conditions.append(Site.code.in_(filters.sites))
    if filters.modalities:
        modalities = type_coerce(Study.modalities, ARRAY(Text))
        conditions.append(modalities.overlap(list(filters.modalities)))
    if filters.priorities:
        conditions.append(Study.priority.in_(filters.priorities))
    if filters.q:
        search = search_condition(filters.q)
        if search is not None:
            conditions.append(search)
    if filters.mine:
        # No claims yet (a later issue adds them): nobody holds any study.
        conditions.append(false())
    return conditions


def _studies_with_site_and_patient() -> Select[Study]:
    return (
        select(Study)
        .join(Study.site)
        .join(Study.patient)
        .options(contains_eager(Study.site), contains_eager(Study.patient))
    )


async def list_worklist(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool],
    filters: WorklistFilters,
    after: WorklistKey | None,
    limit: int,
) -> Sequence[Study]:
    """Visible studies matching ``filters`` in worklist order, starting after ``after``."""
    stmt = _studies_with_site_and_patient().where(visible, *filter_conditions(filters))
    if after is not None:
        stmt = stmt.where(
            tuple_(*WORKLIST_ORDER) > (after.due_at, after.priority, after.received_at, after.id)
        )
    stmt = stmt.order_by(*WORKLIST_ORDER).limit(limit)
    return (await session.scalars(stmt)).all()


async def get_visible_study(
    session: AsyncSession, *, study_uid: str, visible: ColumnElement[bool]
) -> Study | None:
    """The study with this UID (site and patient loaded) if ``visible`` admits it."""
    stmt = _studies_with_site_and_patient().where(Study.study_uid == study_uid, visible)
    return (await session.scalars(stmt)).one_or_none()


async def list_series(session: AsyncSession, *, study_id: int) -> Sequence[Series]:
    """The study's series by series number."""
    stmt = (
        select(Series)
        .where(Series.study_id == study_id)
        .order_by(Series.number.asc().nulls_last(), Series.series_uid)
    )
    return (await session.scalars(stmt)).all()


async def list_priors(
    session: AsyncSession, *, study: Study, nhs_number: str | None
) -> Sequence[Study]:
    """The patient's other studies at any site (same patient row or NHS number), newest first."""
    same_patient: ColumnElement[bool] = Study.patient_id == study.patient_id
    if nhs_number is not None:
        same_patient = or_(same_patient, Patient.nhs_number == nhs_number)
    stmt = (
        _studies_with_site_and_patient()
        .where(Study.id != study.id, same_patient)
        .order_by(
            Study.study_datetime.desc().nulls_last(), Study.received_at.desc(), Study.id.desc()
        )
        .limit(MAX_PRIORS)
    )
    return (await session.scalars(stmt)).all()
