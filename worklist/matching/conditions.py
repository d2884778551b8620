"""SQL of a ``Matching``: Core conditions on the index, for a sync or an async session.

Written to use the indexes of migrations 0001 and 0009: UIDs by their unique indexes
(``= ANY`` of one array parameter, whatever the number of UIDs), names by
``lower(name)`` (equality or a LIKE prefix), study dates as a range of
``study_datetime`` (never a function of the column), accession numbers by theirs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Integer, Text, any_, exists, func, literal, select
from sqlalchemy.types import TypeEngine

from worklist.matching.values import (
    LIKE_ESCAPE,
    DateRange,
    Level,
    Matching,
    has_wildcards,
    like_pattern,
)
from worklist.models import Instance, Patient, Series, Site, Study
from worklist.timezones import SITE_TIMEZONE

# Newest study first: the order of ``ix_studies_newest`` (migration 0009).
NEWEST_FIRST = (Study.study_datetime.desc().nulls_last(), Study.id.desc())


def matching_conditions(matching: Matching) -> list[ColumnElement[bool]]:
    """Conditions true for exactly the matches of ``matching``.

    They are on ``Study``, and on ``Series`` (SERIES and IMAGE level) and ``Instance``
    (IMAGE level), which the statement joins; patient and site keys are subqueries.
    """
    conditions = _study_conditions(matching)
    if matching.level.reaches(Level.SERIES):
        conditions += _series_conditions(matching)
    if matching.level.reaches(Level.IMAGE):
        conditions += _instance_conditions(matching)
    return conditions


def any_of(
    column: Any, values: Iterable[Any], item_type: TypeEngine[Any] | None = None
) -> ColumnElement[bool]:
    """``column = ANY(:values)``: one array parameter, so one statement for any count."""
    condition: ColumnElement[bool] = column == any_(_array(list(values), item_type or Text()))
    return condition


def sites_condition(site_ids: Iterable[int]) -> ColumnElement[bool]:
    """True for the studies of these sites."""
    return any_of(Study.site_id, sorted(site_ids), Integer())


def _array(values: list[Any], item_type: TypeEngine[Any]) -> Any:
    # One parameter typed as an array (psycopg's dialect renders ``::TEXT[]``).
    return literal(values, ARRAY(item_type))


def _study_conditions(matching: Matching) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if matching.study_uids:
        conditions.append(any_of(Study.study_uid, matching.study_uids))
    patient: list[ColumnElement[bool]] = []
    if matching.patient_name is not None:
        patient.append(_text(Patient.name, matching.patient_name, fold_case=True))
    if matching.patient_id is not None:
        patient.append(_text(Patient.local_id, matching.patient_id))
    if patient:
        # correlate(None): the statement may join patients itself; this is a set of its own.
        patients = select(Patient.id).where(*patient).correlate(None)
        conditions.append(Study.patient_id.in_(patients))
    if matching.issuer_of_patient_id is not None:
        # A local patient ID is issued by its site: the issuer is the site's code.
        issuer = _text(Site.code, matching.issuer_of_patient_id)
        conditions.append(Study.site_id.in_(select(Site.id).where(issuer).correlate(None)))
    if matching.accession_number is not None:
        conditions.append(_text(Study.accession_number, matching.accession_number))
    if matching.study_description is not None:
        conditions.append(_text(Study.description, matching.study_description, fold_case=True))
    if matching.study_date is not None:
        conditions += _days(Study.study_datetime, matching.study_date)
    if matching.modalities_in_study:
        conditions.append(_codes_in_array(Study.modalities, matching.modalities_in_study))
    return conditions


def _series_conditions(matching: Matching) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if matching.series_uids:
        conditions.append(any_of(Series.series_uid, matching.series_uids))
    if matching.modalities:
        conditions.append(_codes(Series.modality, matching.modalities))
    if matching.series_number is not None:
        conditions.append(Series.number == matching.series_number)
    return conditions


def _instance_conditions(matching: Matching) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if matching.sop_instance_uids:
        conditions.append(any_of(Instance.sop_instance_uid, matching.sop_instance_uids))
    if matching.sop_class_uids:
        conditions.append(any_of(Instance.sop_class_uid, matching.sop_class_uids))
    if matching.instance_number is not None:
        conditions.append(Instance.instance_number == matching.instance_number)
    return conditions


def _text(column: Any, value: str, *, fold_case: bool = False) -> ColumnElement[bool]:
    """Equality without wildcards (any index), else LIKE (an index for a literal prefix).

    Case is folded by PostgreSQL's ``lower()`` on both sides, as ``ix_patients_name_lower``
    is built, so the index serves the comparison.
    """
    subject: Any = func.lower(column) if fold_case else column
    operand = like_pattern(value) if has_wildcards(value) else value
    bound: Any = func.lower(literal(operand, Text())) if fold_case else literal(operand, Text())
    condition: ColumnElement[bool] = (
        subject.like(bound, escape=LIKE_ESCAPE) if has_wildcards(value) else subject == bound
    )
    return condition


def _codes(column: Any, codes: tuple[str, ...]) -> ColumnElement[bool]:
    if any(has_wildcards(code) for code in codes):
        # LIKE ANY takes no ESCAPE clause; PostgreSQL's default escape is the backslash.
        patterns = _array([like_pattern(code) for code in codes], Text())
        condition: ColumnElement[bool] = column.like(any_(patterns))
        return condition
    return any_of(column, codes)


def _codes_in_array(column: Any, codes: tuple[str, ...]) -> ColumnElement[bool]:
    """Any element of an array column matching any code (ModalitiesInStudy)."""
    if any(has_wildcards(code) for code in codes):
        element = func.unnest(column).column_valued("code")
        return exists(select(element).where(_codes(element, codes)))
    return column.op("&&")(_array(list(codes), Text()))  # type: ignore[no-any-return]


def _days(column: Any, days: DateRange) -> list[ColumnElement[bool]]:
    """``column``'s site-local day within ``days``, as a range of the column itself."""
    conditions: list[ColumnElement[bool]] = []
    if days.start is not None:
        conditions.append(column >= _midnight(days.start))
    if days.end is not None and days.end < date.max:
        conditions.append(column < _midnight(days.end + timedelta(days=1)))
    # An undated study matches no date range, open or not.
    return conditions or [column.is_not(None)]


def _midnight(day: date) -> datetime:
    """The site-local start of ``day`` (midnight exists on every day in Europe/London)."""
    return datetime.combine(day, time.min, tzinfo=SITE_TIMEZONE)
