"""SQL of routing: the rule list, the facts the rules look at, and the studies' routing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    Table,
    and_,
    column,
    delete,
    func,
    insert,
    or_,
    select,
    update,
    values,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from worklist.enums import StudyStatus
from worklist.models import Order, Patient, RoutingRule, Study
from worklist.routing.matcher import Routed, Rule

_STUDIES = cast(Table, Study.__table__)

# Studies still to be reported keep following the rules; a reported or cancelled one
# keeps the subspecialty it was reported under.
UNREPORTED = (StudyStatus.RECEIVING, StudyStatus.READY, StudyStatus.IN_PROGRESS)

# A subspecialty a manager set by hand (no rule behind it) stays until they change it.
ROUTABLE: ColumnElement[bool] = and_(
    Study.status.in_(UNREPORTED),
    or_(Study.subspecialty_rule.is_not(None), Study.subspecialty.is_(None)),
)

# Changing the rules takes this lock exclusively; routing a study takes it shared, so a
# study is routed either before a change (and re-routed by it) or with the new rules.
# ``RULES_HELD`` is the shared form as a SQL expression, for hot paths that take it in the
# same statement as another lock (an HL7 order: ``orders.repository.lock_accession``).
RULES_HELD = "pg_advisory_xact_lock_shared(hashtext('worklist.routing_rules'))"
_RULES_LOCK = {
    True: "SELECT pg_advisory_xact_lock(hashtext('worklist.routing_rules'))",
    False: f"SELECT {RULES_HELD}",
}


async def lock_rules(session: AsyncSession, *, exclusive: bool) -> None:
    """Take the rule list's transaction lock (shared to route, exclusive to change)."""
    # Straight to the driver: nothing to compile or map (every order message takes it).
    connection = await session.connection()
    await connection.exec_driver_sql(_RULES_LOCK[exclusive])


async def list_rules(session: AsyncSession) -> list[Rule]:
    """The rule list in order."""
    rows = await session.scalars(select(RoutingRule).order_by(RoutingRule.position))
    return [
        Rule(
            position=row.position,
            subspecialty=row.subspecialty,
            modality=row.modality,
            body_part=row.body_part,
            procedure_pattern=row.procedure_pattern,
            max_age_years=row.max_age_years,
        )
        for row in rows
    ]


async def replace_rules(session: AsyncSession, rules: Sequence[Rule]) -> None:
    """Replace the whole list (the caller holds the exclusive lock)."""
    await session.execute(delete(RoutingRule))
    if rules:
        await session.execute(
            insert(RoutingRule),
            [
                {
                    "position": rule.position,
                    "subspecialty": rule.subspecialty,
                    "modality": rule.modality,
                    "body_part": rule.body_part,
                    "procedure_pattern": rule.procedure_pattern,
                    "max_age_years": rule.max_age_years,
                }
                for rule in rules
            ],
        )


@dataclass(frozen=True)
class FactsRow:
    """A routable study as the rules see it, with its current routing."""

    study_id: int
    modalities: Sequence[str]
    body_part: str | None
    description: str | None
    study_datetime: datetime | None
    received_at: datetime
    birth_date: date | None
    procedure_code: str | None
    procedure_name: str | None
    current: Routed


_FACTS = (
    select(
        Study.id,
        Study.modalities,
        Study.body_part,
        Study.description,
        Study.study_datetime,
        Study.received_at,
        func.coalesce(
            Patient.birth_date, Study.received_patient_birth_date, Order.patient_birth_date
        ).label("birth_date"),
        Order.procedure_code,
        Order.procedure_name,
        Study.subspecialty,
        Study.subspecialty_rule,
    )
    .join(Patient, Patient.id == Study.patient_id)
    .outerjoin(Order, Order.id == Study.order_id)
    .where(ROUTABLE)
    .order_by(Study.id)
)


async def routable_facts(
    session: AsyncSession,
    *,
    study_ids: Sequence[int] | None = None,
    after_id: int | None = None,
    limit: int | None = None,
) -> list[FactsRow]:
    """Routable studies among ``study_ids`` (or all of them, by id after ``after_id``)."""
    stmt = _FACTS
    if study_ids is not None:
        stmt = stmt.where(Study.id.in_(study_ids))
    if after_id is not None:
        stmt = stmt.where(Study.id > after_id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        FactsRow(
            study_id=row.id,
            modalities=row.modalities,
            body_part=row.body_part,
            description=row.description,
            study_datetime=row.study_datetime,
            received_at=row.received_at,
            birth_date=row.birth_date,
            procedure_code=row.procedure_code,
            procedure_name=row.procedure_name,
            current=Routed(row.subspecialty, row.subspecialty_rule),
        )
        for row in await session.execute(stmt)
    ]


@dataclass(frozen=True)
class RoutedStudy:
    """A study whose routing changed."""

    study_id: int
    study_uid: str
    site_id: int
    routed: Routed


async def set_routing(
    session: AsyncSession, changes: Sequence[tuple[int, Routed]]
) -> list[RoutedStudy]:
    """Write the new routing of still-routable studies in one statement; those it changed.

    A study a manager routed by hand meanwhile (the row is re-checked) keeps theirs.
    """
    if not changes:
        return []
    new = values(
        column("id", Integer),
        column("subspecialty", String),
        column("rule", Integer),
        name="new_routing",
    ).data([(study_id, routed.subspecialty, routed.rule) for study_id, routed in changes])
    stmt = (
        update(_STUDIES)
        .where(_STUDIES.c.id == new.c.id, ROUTABLE)
        .values(
            # An all-NULL VALUES column is text to PostgreSQL: say what it holds.
            subspecialty=sql_cast(new.c.subspecialty, String),
            subspecialty_rule=sql_cast(new.c.rule, Integer),
        )
        .returning(
            Study.id, Study.study_uid, Study.site_id, Study.subspecialty, Study.subspecialty_rule
        )
    )
    done = [
        RoutedStudy(
            row.id, row.study_uid, row.site_id, Routed(row.subspecialty, row.subspecialty_rule)
        )
        for row in await session.execute(stmt)
    ]
    _refresh_loaded(session, done)
    return done


def _refresh_loaded(session: AsyncSession, done: Sequence[RoutedStudy]) -> None:
    # The UPDATE bypassed the ORM: a Study already loaded in this session (an order's
    # studies) is told the new values, so a later flush or read does not undo them.
    by_id = {study.study_id: study.routed for study in done}
    for obj in list(session.sync_session.identity_map.values()):
        if isinstance(obj, Study) and obj.id in by_id:
            set_committed_value(obj, "subspecialty", by_id[obj.id].subspecialty)
            set_committed_value(obj, "subspecialty_rule", by_id[obj.id].rule)
