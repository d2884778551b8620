"""Study grants: access to one study (and, through it, its priors) that a radiologist holds
because a request names them -- a second opinion they took, a double read they hold --
for as long as that request runs.

A grant opens reads only: the study's detail, its images (DICOMweb), its signed report
and its priors through it. It never puts the study on the holder's worklist, nor lets
them claim, triage, report or raise alerts on it (those stay with site privileges).
Every read through a grant is audited naming the grant (``audit_detail``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, String, any_, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import with_expression
from sqlalchemy.sql.base import ExecutableOption

from worklist.models import Study, StudyGrant, User


class GrantReason(enum.StrEnum):
    """Why a radiologist holds a grant (``study_grants.reason``)."""

    SECOND_OPINION = "second_opinion"
    DOUBLE_READ = "double_read"


@dataclass(frozen=True)
class Grant:
    """A grant one user holds on one study, and the request behind it."""

    study_id: int
    reason: GrantReason
    reason_id: int


def _encoded() -> ColumnElement[list[str]]:
    # "study_id:reason:reason_id" for each grant of the outer query's user.
    encoded = func.concat_ws(":", StudyGrant.study_id, StudyGrant.reason, StudyGrant.reason_id)
    granted = select(encoded).where(StudyGrant.user_id == User.id).scalar_subquery()
    return func.array(granted, type_=ARRAY(String))


def load_grants() -> ExecutableOption:
    """The loader option that fills ``User.grants`` in the query that loads the account."""
    return with_expression(User.grants, _encoded())


def held(user: User) -> dict[int, Grant]:
    """The grants ``user`` holds by study id (none unless loaded with ``load_grants``)."""
    out: dict[int, Grant] = {}
    for entry in user.grants or ():
        study_id, reason, reason_id = entry.split(":")
        out[int(study_id)] = Grant(int(study_id), GrantReason(reason), int(reason_id))
    return out


def granted_condition(user: User) -> ColumnElement[bool] | None:
    """True for the studies ``user`` holds a grant on (None when they hold none)."""
    study_ids = sorted(held(user))
    if not study_ids:
        return None
    return Study.id == any_(bindparam(None, study_ids, type_=ARRAY(Integer)))


def audit_detail(user: User, study: Study) -> dict[str, object]:
    """What an audit row of a read adds when ``user`` reads ``study`` through a grant.

    Empty when the user holds privileges at the study's site (or holds no grant on it).
    """
    if study.site_id in {site.id for site in user.sites}:
        return {}
    grant = held(user).get(study.id)
    if grant is None:
        return {}
    return {"grant": {"reason": grant.reason.value, "id": grant.reason_id}}


async def give(
    session: AsyncSession, *, user_id: int, study_id: int, reason: GrantReason, reason_id: int
) -> None:
    """Grant ``user_id`` reads of the study for the request ``reason``/``reason_id``."""
    await session.execute(
        insert(StudyGrant)
        .values(user_id=user_id, study_id=study_id, reason=reason.value, reason_id=reason_id)
        .on_conflict_do_nothing()
    )


async def end(session: AsyncSession, *, reason: GrantReason, reason_id: int) -> None:
    """End every grant the request ``reason``/``reason_id`` gave (it was answered, withdrawn,
    submitted or handed back)."""
    await session.execute(
        delete(StudyGrant).where(
            StudyGrant.reason == reason.value, StudyGrant.reason_id == reason_id
        )
    )
