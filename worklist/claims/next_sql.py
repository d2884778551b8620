"""The statements of ``POST /api/v1/worklist/next``, compiled once per shape and sent to
the driver, pipelined.

``next`` is the hot write: building its statements (CTEs, aliases, the allocation
conditions) and SQLAlchemy's cache keys for them cost more CPU than PostgreSQL spent
running them (bench/README.md, "Worklist benchmark"). As for the worklist page
(``worklist.studies.page``), each request builds only its filter conditions (their values
by name, ``Binds``), and the statement around them is assembled and compiled once per
shape. They run on the request's own transaction (the session's connection, through
``db.driver_connection``), so the session commits them with the rest.

A request is: the allocation lock and the pick in one round trip; the patient's other
studies, the picked study's worklist columns and its audit row in the next; the group's
audit rows (when there is a group); the commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import (
    ARRAY,
    BindParameter,
    Integer,
    Interval,
    Select,
    all_,
    bindparam,
    func,
    null,
    select,
    true,
)

from worklist.allocation import repository as allocation
from worklist.audit import repository as audit
from worklist.claims.repository import UNHELD, take_free
from worklist.db import DriverSql, StatementCache, driver_errors, driver_sql
from worklist.enums import StudyStatus
from worklist.identity import normalise_nhs_number
from worklist.models import Claim, Patient, Study
from worklist.studies import lifecycle
from worklist.studies import repository as studies
from worklist.studies.lifecycle import StudyEvent
from worklist.studies.repository import WORKLIST_ORDER, Binds, FilterShape
from worklist.studies.schemas import WorklistFilters
from worklist.studies.visibility import (
    shaped_visibility_condition,
    visibility_params,
    visibility_shape,
    visible_site_ids,
)
from worklist.users.repository import Account

_USER = bindparam("claim_user_id", type_=Integer, required=False)
_LEASE = bindparam("claim_lease", type_=Interval, required=False)
_EXCLUDE = bindparam("claim_exclude", type_=ARRAY(Integer), required=False)
_FIRST = bindparam("group_first_id", type_=Integer, required=False)
_PATIENT = bindparam("group_patient_id", type_=Integer, required=False)
_NHS_NUMBER: BindParameter[str] = bindparam("group_nhs_number", required=False)
_STUDY = bindparam("study_id", type_=Integer, required=False)


@dataclass(frozen=True)
class _Shape:
    sees: str  # visibility.visibility_shape
    filters: FilterShape
    exclude: bool
    blocked: bool  # the cap's hint rather than the pick


def _candidates(shape: _Shape, filters: WorklistFilters) -> Select[*tuple[Any, ...]]:
    conditions = studies.filter_conditions(filters, binds=Binds())
    eligible = [allocation.BY_SUBSPECIALTY]
    eligible.append(~allocation.UNDER_CAP if shape.blocked else allocation.UNDER_CAP)
    stmt = (
        select(Study.id, Study.study_uid, Study.site_id, Study.patient_id, Patient.nhs_number)
        .join(Study.site)
        .join(Study.patient)
        .where(shaped_visibility_condition(shape.sees), UNHELD, *conditions, *eligible)
    )
    if shape.exclude:
        stmt = stmt.where(Study.id != all_(_EXCLUDE))
    return stmt.order_by(*WORKLIST_ORDER).limit(1)


def _pick(shape: _Shape, filters: WorklistFilters) -> DriverSql:
    # Lock the most urgent eligible study (SKIP LOCKED: concurrent callers each take a
    # different one) and claim it, in one statement. A study found here may still have
    # been claimed by a transaction that committed after its snapshot: the INSERT then
    # takes over only an expired claim (``take_free``'s guard) and no claim comes back.
    candidate = (
        _candidates(shape, filters)
        .with_for_update(of=Study, key_share=True, skip_locked=True)
        .cte("candidate")
    )
    rows = select(candidate.c.id, _USER, func.now(), func.now() + _LEASE, null())
    claimed = (
        take_free(rows).returning(Claim.study_id, Claim.claimed_at, Claim.expires_at).cte("claimed")
    )
    moved = lifecycle.bulk_update(
        StudyEvent.CLAIMED, Study.id.in_(select(claimed.c.study_id))
    ).returning(Study.id)
    stmt = (
        select(
            candidate.c.id,
            candidate.c.study_uid,
            candidate.c.site_id,
            candidate.c.patient_id,
            candidate.c.nhs_number,
            claimed.c.claimed_at,
            claimed.c.expires_at,
        )
        .select_from(candidate.outerjoin(claimed, true()))
        .add_cte(moved.cte("moved"))
    )
    return driver_sql(stmt)


def _group(sees: str, nhs_number: bool) -> DriverSql:
    # The patient's other unheld studies the caller sees, claimed with the first as their
    # group: locked in id order, skipping locked ones, so this never waits nor deadlocks.
    patient = studies.same_patient_condition(
        patient_id=_PATIENT,
        nhs_number=_NHS_NUMBER if nhs_number else None,
    )
    members = (
        select(Study.id)
        .where(
            Study.id != _FIRST,
            patient,
            shaped_visibility_condition(sees),
            Study.status.in_([StudyStatus.READY, StudyStatus.IN_PROGRESS]),
            UNHELD,
        )
        .order_by(Study.id)
        .with_for_update(of=Study, key_share=True, skip_locked=True)
        .cte("members")
    )
    rows = select(members.c.id, _USER, func.now(), func.now() + _LEASE, _FIRST)
    claimed = take_free(rows).returning(Claim.study_id, Claim.expires_at).cte("claimed")
    moved = lifecycle.bulk_update(
        StudyEvent.CLAIMED, Study.id.in_(select(claimed.c.study_id))
    ).returning(Study.id)
    stmt = (
        select(claimed.c.study_id, Study.study_uid, Study.site_id, claimed.c.expires_at)
        .join(Study, Study.id == claimed.c.study_id)
        .add_cte(moved.cte("moved"))
        .order_by(claimed.c.study_id)
    )
    return driver_sql(stmt)


# A request's own values, named, are laid over the constants a statement binds.
_LOCK_SQL, _LOCK_CONSTANTS = driver_sql(allocation.LOCK)
_COLUMNS_SQL, _COLUMNS_CONSTANTS = driver_sql(studies.worklist_columns().where(Study.id == _STUDY))
_AUDIT_SQL, _AUDIT_CONSTANTS = driver_sql(audit.INSERT_EVENT)
assert not _AUDIT_CONSTANTS, "an audit row is all named values"
_PICKS: StatementCache[_Shape] = StatementCache()
_GROUPS: StatementCache[tuple[str, bool]] = StatementCache()


@dataclass(frozen=True)
class Taken:
    """The study the pick chose (locked) and, unless a transaction that committed after
    its snapshot claimed it first, the claim just made on it."""

    study_id: int
    study_uid: str
    site_id: int
    patient_id: int
    nhs_number: str | None
    claimed_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class Member:
    """A study claimed with the first study of a patient's group."""

    study_id: int
    study_uid: str
    site_id: int
    expires_at: datetime


def _prepare(
    account: Account, filters: WorklistFilters, lease: timedelta, *, exclude: bool, blocked: bool
) -> tuple[_Shape, dict[str, Any]]:
    # The shape of the pick (or of the cap's hint) and its parameters.
    binds = Binds()
    studies.filter_conditions(filters, binds=binds)
    site_ids = visible_site_ids(account.role, account.site_ids)
    shape = _Shape(
        sees=visibility_shape(site_ids),
        filters=studies.filter_shape(filters, binds),
        exclude=exclude,
        blocked=blocked,
    )
    params: dict[str, Any] = {
        **binds.values,
        **visibility_params(site_ids),
        "allocation_user_id": account.id,
        "allocation_subspecialties": sorted(set(account.subspecialties)),
        "claim_user_id": account.id,
        "claim_lease": lease,
    }
    return shape, params


async def pick(
    connection: psycopg.AsyncConnection[Any],
    *,
    account: Account,
    filters: WorklistFilters,
    statuses: Sequence[StudyStatus],
    exclude: Sequence[int],
    lease: timedelta,
    lock: bool,
) -> Taken | None:
    """Claim the most urgent eligible study (``lock``: take the caller's allocation lock
    first, ``allocation.lock_allocations``, in the same round trip); None when none is."""
    narrowed = replace(filters, statuses=tuple(statuses), mine=False)
    shape, params = _prepare(account, narrowed, lease, exclude=bool(exclude), blocked=False)
    sql, constants = _PICKS.get(shape, lambda: _pick(shape, narrowed))
    if exclude:
        params["claim_exclude"] = list(exclude)
    async with driver_errors(sql):
        async with connection.pipeline():
            if lock:
                await connection.execute(_LOCK_SQL, {**_LOCK_CONSTANTS, **params})
            picked = await connection.execute(sql, {**constants, **params})
        row = await picked.fetchone()
    return None if row is None else Taken(*row)


async def blocked_by_cap(
    connection: psycopg.AsyncConnection[Any],
    *,
    account: Account,
    filters: WorklistFilters,
    statuses: Sequence[StudyStatus],
    lease: timedelta,
) -> bool:
    """Whether a study is refused by the cap alone. Unlocked: a hint for the answer."""
    narrowed = replace(filters, statuses=tuple(statuses), mine=False)
    shape, params = _prepare(account, narrowed, lease, exclude=False, blocked=True)
    sql, constants = _PICKS.get(shape, lambda: driver_sql(_candidates(shape, narrowed)))
    async with driver_errors(sql):
        cursor = await connection.execute(sql, {**constants, **params})
        return await cursor.fetchone() is not None


async def claim_rest(
    connection: psycopg.AsyncConnection[Any],
    *,
    account: Account,
    taken: Taken,
    lease: timedelta,
    audit_row: dict[str, Any],
) -> tuple[list[Member], dict[str, Any]]:
    """Claim the patient's other studies with ``taken`` (its group), read ``taken``'s
    worklist columns and write ``audit_row`` (``audit.new_values``), in one round trip."""
    nhs_number = normalise_nhs_number(taken.nhs_number)
    site_ids = visible_site_ids(account.role, account.site_ids)
    key = (visibility_shape(site_ids), nhs_number is not None)
    group_sql, constants = _GROUPS.get(key, lambda: _group(*key))
    params: dict[str, Any] = {
        **visibility_params(site_ids),
        "claim_user_id": account.id,
        "claim_lease": lease,
        "group_first_id": taken.study_id,
        "group_patient_id": taken.patient_id,
        "group_nhs_number": nhs_number,
    }
    async with driver_errors(group_sql):
        async with connection.pipeline():
            grouped = await connection.execute(group_sql, {**constants, **params})
            columns = connection.cursor(row_factory=dict_row)
            await columns.execute(_COLUMNS_SQL, {**_COLUMNS_CONSTANTS, "study_id": taken.study_id})
            await connection.execute(_AUDIT_SQL, _audit_params(audit_row))
        members = [Member(*row) for row in await grouped.fetchall()]
        row = await columns.fetchone()
    assert row is not None
    return members, row


async def write_audit(connection: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]]) -> None:
    """Write the audit rows (``audit.new_values``) in one round trip."""
    async with driver_errors(_AUDIT_SQL), connection.cursor() as cursor:
        await cursor.executemany(_AUDIT_SQL, [_audit_params(row) for row in rows])


def _audit_params(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "detail": Jsonb(row["detail"])}
