"""SQL for query/retrieve: matches from the index (never the files), within visible sites."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import Select, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from worklist.matching.conditions import NEWEST_FIRST, matching_conditions, sites_condition
from worklist.matching.values import Level, Matching
from worklist.models import DicomNode, Instance, Patient, Series, Site, Study

_Ts = TypeVarTuple("_Ts")
_STUDY_COLUMNS = (
    Study.study_uid,
    Study.site_id,
    Study.accession_number,
    Study.description.label("study_description"),
    Study.study_datetime,
    Study.modalities,
    Study.series_count,
    Study.instance_count.label("study_instance_count"),
    Patient.name.label("patient_name"),
    Patient.local_id.label("patient_id"),
    Patient.birth_date,
    Patient.sex,
    Site.code.label("site_code"),
)
_SERIES_COLUMNS = (
    Series.series_uid,
    Series.modality,
    Series.description.label("series_description"),
    Series.number.label("series_number"),
    Series.instance_count.label("series_instance_count"),
)
_INSTANCE_COLUMNS = (
    Instance.sop_instance_uid,
    Instance.sop_class_uid,
    Instance.instance_number,
)


@dataclass(frozen=True)
class Destination:
    """A C-MOVE destination node: where to connect, and which node it is."""

    ae_title: str
    hosts: list[str]
    port: int | None
    node_id: int


@dataclass(frozen=True)
class StoredInstance:
    """One instance to send: where its file is and how it is encoded."""

    study_uid: str
    site_id: int
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: str


def find_matches(
    session: Session, matching: Matching, site_ids: Collection[int], limit: int
) -> list[RowMapping]:
    """Up to ``limit`` matches at the query's level among the studies of ``site_ids``."""
    if not site_ids:
        return []
    columns: list[Any] = list(_STUDY_COLUMNS)
    order: list[Any] = list(NEWEST_FIRST)
    if matching.level.reaches(Level.SERIES):
        columns += _SERIES_COLUMNS
        order += [Series.number.nulls_last(), Series.id]
    if matching.level.reaches(Level.IMAGE):
        columns += _INSTANCE_COLUMNS
        order += [Instance.instance_number.nulls_last(), Instance.id]
    stmt = select(*columns).select_from(Study).join(Patient, Patient.id == Study.patient_id)
    stmt = stmt.join(Site, Site.id == Study.site_id)
    stmt = _down_to(stmt, matching.level)
    stmt = stmt.where(sites_condition(site_ids), *matching_conditions(matching))
    return list(session.execute(stmt.order_by(*order).limit(limit)).mappings())


def instances_to_retrieve(
    session: Session, matching: Matching, site_ids: Collection[int], limit: int
) -> list[StoredInstance]:
    """Up to ``limit`` stored instances a retrieval names, study by study, in series order."""
    if not site_ids:
        return []
    stmt = _down_to(
        select(
            Study.study_uid,
            Study.site_id,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.path,
        ).select_from(Study),
        Level.IMAGE,
    )
    # The matching's level decides which keys narrow: a STUDY retrieval moves all of it.
    stmt = stmt.where(sites_condition(site_ids), *matching_conditions(matching))
    stmt = stmt.order_by(
        Study.id, Series.number.nulls_last(), Series.id, Instance.instance_number, Instance.id
    ).limit(limit)
    return [StoredInstance(*row) for row in session.execute(stmt)]


def destination_node(session: Session, ae_title: str) -> Destination | None:
    """The active node (of an active site) with this AE title, or None."""
    row = session.execute(
        select(DicomNode.ae_title, DicomNode.hosts, DicomNode.port, DicomNode.id)
        .join(Site, Site.id == DicomNode.site_id)
        .where(DicomNode.ae_title == ae_title, DicomNode.active, Site.active)
    ).one_or_none()
    return None if row is None else Destination(row[0], list(row[1] or []), row[2], row[3])


def _down_to(stmt: Select[*_Ts], level: Level) -> Select[*_Ts]:
    """``stmt`` over studies joined down to the rows of ``level``."""
    if level.reaches(Level.SERIES):
        stmt = stmt.join(Series, Series.study_id == Study.id)
    if level.reaches(Level.IMAGE):
        stmt = stmt.join(Instance, Instance.series_id == Series.id)
    return stmt
