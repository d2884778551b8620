"""SQL for DICOMweb: QIDO-RS matching on the index and the files a WADO-RS request streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVarTuple

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from worklist.matching.conditions import NEWEST_FIRST, matching_conditions
from worklist.matching.values import Matching
from worklist.models import Instance, Series, Study

_Ts = TypeVarTuple("_Ts")


@dataclass(frozen=True)
class SeriesRow:
    """A matched series with its study (study loaded with patient and site)."""

    series: Series
    study: Study


@dataclass(frozen=True)
class InstanceRow:
    """A matched instance with its series and study."""

    instance: Instance
    series: Series
    study: Study


@dataclass(frozen=True)
class StoredInstance:
    """What a WADO-RS response needs of one instance: its UIDs and where its file is."""

    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str
    size_bytes: int


def _with_study(stmt: Select[*_Ts], visible: ColumnElement[bool]) -> Select[*_Ts]:
    return (
        stmt.join(Study.patient)
        .join(Study.site)
        .options(contains_eager(Study.patient), contains_eager(Study.site))
        .where(visible)
    )


async def search_studies(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool],
    matching: Matching,
    limit: int,
    offset: int,
) -> list[Study]:
    """Visible studies matching, newest first; each loaded with its patient and site."""
    stmt = _with_study(select(Study), visible).where(*matching_conditions(matching))
    stmt = stmt.order_by(*NEWEST_FIRST)
    rows = await session.scalars(stmt.limit(limit).offset(offset))
    return list(rows.unique())


async def search_series(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool],
    matching: Matching,
    limit: int,
    offset: int,
) -> list[SeriesRow]:
    """Visible series matching, by study then series number."""
    stmt = _with_study(select(Series, Study).join(Study, Series.study_id == Study.id), visible)
    stmt = stmt.where(*matching_conditions(matching))
    stmt = stmt.order_by(Study.id, Series.number.nulls_last(), Series.id)
    rows = await session.execute(stmt.limit(limit).offset(offset))
    return [SeriesRow(series=series, study=study) for series, study in rows]


async def search_instances(
    session: AsyncSession,
    *,
    visible: ColumnElement[bool],
    matching: Matching,
    limit: int,
    offset: int,
) -> list[InstanceRow]:
    """Visible instances matching, by study, series and instance number."""
    stmt = _with_study(
        select(Instance, Series, Study)
        .join(Series, Instance.series_id == Series.id)
        .join(Study, Instance.study_id == Study.id),
        visible,
    )
    stmt = stmt.where(*matching_conditions(matching)).order_by(
        Study.id,
        Series.number.nulls_last(),
        Series.id,
        Instance.instance_number.nulls_last(),
        Instance.id,
    )
    rows = await session.execute(stmt.limit(limit).offset(offset))
    return [InstanceRow(instance=i, series=s, study=st) for i, s, st in rows]


async def series_exists(session: AsyncSession, *, study_id: int, series_uid: str) -> bool:
    """True when the study has a series with this UID."""
    stmt = select(Series.id).where(Series.study_id == study_id, Series.series_uid == series_uid)
    return (await session.scalar(stmt)) is not None


async def list_stored_instances(
    session: AsyncSession,
    *,
    study_id: int,
    series_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> list[StoredInstance]:
    """A study's stored instances (optionally one series or instance), in reading order."""
    stmt = (
        select(
            Series.series_uid,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.path,
            Instance.size_bytes,
        )
        .join(Series, Instance.series_id == Series.id)
        .where(Instance.study_id == study_id)
    )
    if series_uid is not None:
        stmt = stmt.where(Series.series_uid == series_uid)
    if sop_instance_uid is not None:
        stmt = stmt.where(Instance.sop_instance_uid == sop_instance_uid)
    stmt = stmt.order_by(
        Series.number.nulls_last(),
        Series.id,
        Instance.instance_number.nulls_last(),
        Instance.id,
    )
    rows = await session.execute(stmt)
    return [StoredInstance(*row) for row in rows]
