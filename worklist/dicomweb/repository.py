"""SQL for DICOMweb: QIDO-RS matching on the index and the files a WADO-RS request streams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import ARRAY, ColumnElement, Select, Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager

from worklist.dicomweb.query import Matching
from worklist.models import Instance, Patient, Series, Study
from worklist.timezones import SITE_TIMEZONE

LIKE_ESCAPE = "\\"
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


def _text_match(
    column: Any, pattern: str, *, case_insensitive: bool = False
) -> ColumnElement[bool]:
    if "%" not in pattern.replace("\\%", "") and "_" not in pattern.replace("\\_", ""):
        literal = pattern.replace("\\%", "%").replace("\\_", "_").replace("\\\\", "\\")
        return func.lower(column) == literal.lower() if case_insensitive else column == literal
    if case_insensitive:
        return column.ilike(pattern, escape=LIKE_ESCAPE)  # type: ignore[no-any-return]
    return column.like(pattern, escape=LIKE_ESCAPE)  # type: ignore[no-any-return]


def _study_conditions(matching: Matching) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if matching.study_uids:
        conditions.append(Study.study_uid.in_(matching.study_uids))
    if matching.patient_name is not None:
        conditions.append(_text_match(Patient.name, matching.patient_name, case_insensitive=True))
    if matching.patient_id is not None:
        conditions.append(_text_match(Patient.local_id, matching.patient_id))
    if matching.accession_number is not None:
        conditions.append(_text_match(Study.accession_number, matching.accession_number))
    if matching.study_description is not None:
        conditions.append(
            _text_match(Study.description, matching.study_description, case_insensitive=True)
        )
    if matching.date_from is not None or matching.date_to is not None:
        local_day = func.date(func.timezone(SITE_TIMEZONE.key, Study.study_datetime))
        if matching.date_from is not None:
            conditions.append(local_day >= matching.date_from)
        if matching.date_to is not None:
            conditions.append(local_day <= matching.date_to)
    if matching.modalities_in_study:
        wanted = cast(list(matching.modalities_in_study), ARRAY(Text))
        conditions.append(Study.modalities.op("&&")(wanted))
    return conditions


def _series_conditions(matching: Matching) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if matching.series_uids:
        conditions.append(Series.series_uid.in_(matching.series_uids))
    if matching.modalities:
        conditions.append(Series.modality.in_(matching.modalities))
    if matching.series_number is not None:
        conditions.append(Series.number == matching.series_number)
    return conditions


def _instance_conditions(matching: Matching) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if matching.sop_instance_uids:
        conditions.append(Instance.sop_instance_uid.in_(matching.sop_instance_uids))
    if matching.sop_class_uids:
        conditions.append(Instance.sop_class_uid.in_(matching.sop_class_uids))
    if matching.instance_number is not None:
        conditions.append(Instance.instance_number == matching.instance_number)
    return conditions


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
    stmt = _with_study(select(Study), visible).where(*_study_conditions(matching))
    stmt = stmt.order_by(Study.study_datetime.desc().nulls_last(), Study.id.desc())
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
    conditions = _study_conditions(matching) + _series_conditions(matching)
    stmt = stmt.where(*conditions).order_by(Study.id, Series.number.nulls_last(), Series.id)
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
    conditions = (
        _study_conditions(matching) + _series_conditions(matching) + _instance_conditions(matching)
    )
    stmt = stmt.where(*conditions).order_by(
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
