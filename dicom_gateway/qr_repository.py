"""SQL for query/retrieve: matches from the index (never the files), within visible sites."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from dicom_gateway.qr_match import Level, Query, is_universal, like_pattern, literal_pattern
from worklist.models import DicomNode, Instance, Patient, Series, Site, Study
from worklist.timezones import SITE_TIMEZONE

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
    session: Session, query: Query, site_ids: Collection[int], limit: int
) -> list[RowMapping]:
    """Up to ``limit`` matches at the query's level among the studies of ``site_ids``."""
    if not site_ids:
        return []
    columns = list(_STUDY_COLUMNS)
    order = [Study.study_datetime.desc().nulls_last(), Study.id]
    if query.level in (Level.SERIES, Level.IMAGE):
        columns += _SERIES_COLUMNS
        order += [Series.number.nulls_last(), Series.id]
    if query.level is Level.IMAGE:
        columns += _INSTANCE_COLUMNS
        order += [Instance.instance_number.nulls_last(), Instance.id]
    stmt = _filtered(select(*columns), query, site_ids).order_by(*order).limit(limit)
    return list(session.execute(stmt).mappings())


def instances_to_retrieve(
    session: Session, query: Query, site_ids: Collection[int], limit: int
) -> list[StoredInstance]:
    """Up to ``limit`` stored instances a retrieval names, study by study, in series order."""
    if not site_ids:
        return []
    stmt = _filtered(
        select(
            Study.study_uid,
            Study.site_id,
            Instance.sop_instance_uid,
            Instance.sop_class_uid,
            Instance.transfer_syntax_uid,
            Instance.path,
        ),
        query,
        site_ids,
        instances=True,
    )
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


def _filtered(
    stmt: Select,  # type: ignore[type-arg]
    query: Query,
    site_ids: Collection[int],
    *,
    instances: bool = False,
) -> Select:  # type: ignore[type-arg]
    stmt = stmt.select_from(Study).join(Patient, Patient.id == Study.patient_id)
    stmt = stmt.where(Study.site_id.in_(list(site_ids)))
    # The issuer of a local patient ID is its site (as QIDO answers): join only when needed.
    if not instances or not is_universal(query.issuer_of_patient_id):
        stmt = stmt.join(Site, Site.id == Study.site_id)
        stmt = _text_match(stmt, Site.code, query.issuer_of_patient_id)
    if not is_universal(query.patient_name):
        assert query.patient_name is not None
        pattern = like_pattern(query.patient_name) or literal_pattern(query.patient_name)
        stmt = stmt.where(Patient.name.ilike(pattern, escape="\\"))
    stmt = _text_match(stmt, Patient.local_id, query.patient_id)
    stmt = _text_match(stmt, Study.accession_number, query.accession_number)
    if query.study_date is not None:
        local_day = func.date(func.timezone(SITE_TIMEZONE.key, Study.study_datetime))
        if query.study_date.start is not None:
            stmt = stmt.where(local_day >= query.study_date.start)
        if query.study_date.end is not None:
            stmt = stmt.where(local_day <= query.study_date.end)
    if query.study_uids:
        stmt = stmt.where(Study.study_uid.in_(query.study_uids))
    if query.modalities_in_study:
        stmt = stmt.where(Study.modalities.op("&&")(list(query.modalities_in_study)))
    below_study = instances or query.level is not Level.STUDY
    if below_study:
        stmt = stmt.join(Series, Series.study_id == Study.id)
        # Series keys only narrow a SERIES or IMAGE request (a STUDY retrieval moves it all).
        if query.level is not Level.STUDY:
            if query.series_uids:
                stmt = stmt.where(Series.series_uid.in_(query.series_uids))
            stmt = _text_match(stmt, Series.modality, query.modality)
    if instances or query.level is Level.IMAGE:
        stmt = stmt.join(Instance, Instance.series_id == Series.id)
        if query.level is Level.IMAGE and query.sop_uids:
            stmt = stmt.where(Instance.sop_instance_uid.in_(query.sop_uids))
    return stmt


def _text_match(stmt: Select, column: object, value: str | None) -> Select:  # type: ignore[type-arg]
    if is_universal(value):
        return stmt
    assert value is not None
    pattern = like_pattern(value)
    if pattern is None:
        return stmt.where(column == value)  # type: ignore[arg-type]
    return stmt.where(column.like(pattern, escape="\\"))  # type: ignore[attr-defined]
