"""SQL for second opinions: who may see and take a request, the queue, and its guarded moves.

Every change of a request's status is one conditional UPDATE (``WHERE status = ...``)
checked against the latest committed row, so of any number of concurrent takers exactly
one moves an open request; ``lock_next`` skips requests another ``next`` has locked.
Lock order where a study changes with its request (a major discrepancy): the study row
first, then the request's.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    case,
    false,
    func,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from worklist.enums import ReportStatus, Role
from worklist.models import Report, SecondOpinion, Site, Study, Subspecialty, User
from worklist.opinions.schemas import OpinionStatus, Urgency
from worklist.studies.repository import held_by
from worklist.studies.visibility import visible_study_condition

# DML ... RETURNING SecondOpinion must refresh an instance the session may already hold.
_REFRESH: dict[str, Any] = {"synchronize_session": False, "populate_existing": True}

_Radiologist = aliased(User, name="radiologist")
_Requester = aliased(User, name="requester")
_Holder = aliased(User, name="holder")

# Urgent first, then oldest: the queue's order and ``next``'s.
URGENCY_RANK = case((SecondOpinion.urgency == Urgency.URGENT.value, 0), else_=1)
QUEUE_ORDER = (URGENCY_RANK, SecondOpinion.created_at, SecondOpinion.id)


@dataclass(frozen=True)
class OpinionRow:
    """A request with its study's UID, site and description, and the users it names."""

    opinion: SecondOpinion
    study_uid: str
    site_id: int
    site_code: str
    site_name: str
    modalities: list[str]
    description: str | None
    radiologist: str | None
    requested_by: str
    claimed_by: str | None
    rank: int


@dataclass(frozen=True)
class QueueKey:
    """Where a queue page ends: urgency rank, creation time, id."""

    rank: int
    created_at: datetime
    id: int


@dataclass(frozen=True)
class AskerStanding:
    """What entitles a user to ask about a study: its claim, or its report's authorship."""

    holds_claim: bool
    report_author_id: int | None
    report_status: ReportStatus | None


def addressed_to(user: User) -> ColumnElement[bool]:
    """Requests for ``user``: naming them, or no one and their subspecialty (or none)."""
    for_anyone: ColumnElement[bool] = SecondOpinion.subspecialty.is_(None)
    if user.subspecialties:
        held = bindparam(None, sorted(user.subspecialties), type_=ARRAY(String))
        for_anyone = or_(for_anyone, SecondOpinion.subspecialty == any_(held))
    return or_(
        SecondOpinion.radiologist_id == user.id,
        and_(SecondOpinion.radiologist_id.is_(None), for_anyone),
    )


def open_to(user: User) -> ColumnElement[bool]:
    """Requests ``user`` could take (any status): addressed to them, asked by someone else."""
    if user.role is not Role.RADIOLOGIST:
        return false()
    return and_(addressed_to(user), SecondOpinion.requested_by_id != user.id)


def is_addressed_to(opinion: SecondOpinion, user: User) -> bool:
    """``addressed_to`` for one loaded request."""
    if opinion.radiologist_id is not None:
        return opinion.radiologist_id == user.id
    return opinion.subspecialty is None or opinion.subspecialty in user.subspecialties


def _site_condition(user: User) -> ColumnElement[bool]:
    site_ids = sorted(site.id for site in user.sites)
    if not site_ids:
        return false()
    return Study.site_id == any_(bindparam(None, site_ids, type_=ARRAY(Integer)))


def queue_condition(user: User) -> ColumnElement[bool]:
    """The queue ``user`` sees (on rows joined to their study).

    A radiologist: the open requests they may take, and those they asked or hold; a
    manager: their site's; an admin: all; other roles: none.
    """
    if user.role is Role.ADMIN:
        return true()
    if user.role is Role.MANAGER:
        return _site_condition(user)
    if user.role is not Role.RADIOLOGIST:
        return false()
    return or_(
        and_(SecondOpinion.status == OpinionStatus.OPEN.value, open_to(user)),
        SecondOpinion.requested_by_id == user.id,
        SecondOpinion.claimed_by_id == user.id,
    )


def seen_condition(user: User) -> ColumnElement[bool]:
    """Requests ``user`` may open: their queue, and every request on a study they see."""
    return or_(queue_condition(user), visible_study_condition(user))


def claimable_condition(user: User) -> ColumnElement[bool]:
    """What a claim looks up: what the user sees, and the running requests open to them
    (so a taker who lost the race learns it was taken, 409, rather than 404)."""
    running = SecondOpinion.status.in_([OpinionStatus.OPEN.value, OpinionStatus.CLAIMED.value])
    return or_(seen_condition(user), and_(running, open_to(user)))


def _rows() -> Any:
    return (
        select(
            SecondOpinion,
            Study.study_uid,
            Study.site_id,
            Site.code,
            Site.name,
            Study.modalities,
            Study.description,
            _Radiologist.username,
            _Requester.username,
            _Holder.username,
            URGENCY_RANK,
        )
        .join(Study, Study.id == SecondOpinion.study_id)
        .join(Site, Site.id == Study.site_id)
        .join(_Requester, _Requester.id == SecondOpinion.requested_by_id)
        .outerjoin(_Radiologist, _Radiologist.id == SecondOpinion.radiologist_id)
        .outerjoin(_Holder, _Holder.id == SecondOpinion.claimed_by_id)
        .execution_options(populate_existing=True)
    )


def _row(values: Sequence[Any]) -> OpinionRow:
    return OpinionRow(*values)


async def get_opinion(
    session: AsyncSession, *, opinion_id: int, condition: ColumnElement[bool]
) -> OpinionRow | None:
    """The request with this id if ``condition`` admits it, else None (as committed now)."""
    stmt = _rows().where(SecondOpinion.id == opinion_id, condition)
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else _row(row)


async def list_opinions(
    session: AsyncSession,
    *,
    condition: ColumnElement[bool],
    statuses: Collection[OpinionStatus],
    mine_of: int | None,
    after: QueueKey | None,
    limit: int,
) -> list[OpinionRow]:
    """The requests ``condition`` admits, urgent first then oldest, from after ``after``.

    ``mine_of`` narrows to the requests that user asked or holds.
    """
    stmt = _rows().where(condition)
    if statuses:
        stmt = stmt.where(SecondOpinion.status.in_([s.value for s in statuses]))
    if mine_of is not None:
        stmt = stmt.where(
            or_(SecondOpinion.requested_by_id == mine_of, SecondOpinion.claimed_by_id == mine_of)
        )
    if after is not None:
        stmt = stmt.where(tuple_(*QUEUE_ORDER) > tuple_(after.rank, after.created_at, after.id))
    stmt = stmt.order_by(*QUEUE_ORDER).limit(limit)
    return [_row(row) for row in await session.execute(stmt)]


async def list_for_study(session: AsyncSession, *, study_id: int) -> list[OpinionRow]:
    """Every request on one study, oldest first (the study's detail lists them)."""
    stmt = _rows().where(SecondOpinion.study_id == study_id)
    stmt = stmt.order_by(SecondOpinion.created_at, SecondOpinion.id)
    return [_row(row) for row in await session.execute(stmt)]


async def asker_standing(session: AsyncSession, *, study_id: int, user_id: int) -> AskerStanding:
    """Whether ``user_id`` holds the study's unexpired claim; its report's author and status."""
    stmt = (
        select(held_by(user_id), Report.author_id, Report.status)
        .select_from(Study)
        .outerjoin(Report, Report.study_id == Study.id)
        .where(Study.id == study_id)
    )
    holds, author_id, status = (await session.execute(stmt)).one()
    return AskerStanding(bool(holds), author_id, status)


async def report_status(session: AsyncSession, *, study_id: int) -> ReportStatus | None:
    """The study's report status as now committed (None: no report)."""
    stmt = select(Report.status).where(Report.study_id == study_id)
    status: ReportStatus | None = await session.scalar(stmt)
    return status


async def subspecialty_exists(session: AsyncSession, code: str) -> bool:
    """Whether ``code`` is an active code of the subspecialty vocabulary."""
    stmt = select(Subspecialty.code).where(Subspecialty.code == code, Subspecialty.active)
    return await session.scalar(stmt) is not None


async def active_radiologist_id(session: AsyncSession, username: str) -> int | None:
    """The id of the active radiologist with this username, or None."""
    stmt = select(User.id).where(
        User.username == username, User.role == Role.RADIOLOGIST, User.active
    )
    user_id: int | None = await session.scalar(stmt)
    return user_id


def add_opinion(
    session: AsyncSession,
    *,
    study_id: int,
    question: str,
    subspecialty: str | None,
    radiologist_id: int | None,
    urgency: Urgency,
    requested_by_id: int,
) -> SecondOpinion:
    """A new open request (the caller's flush writes it)."""
    opinion = SecondOpinion(
        study_id=study_id,
        question=question,
        subspecialty=subspecialty,
        radiologist_id=radiologist_id,
        urgency=urgency.value,
        requested_by_id=requested_by_id,
    )
    session.add(opinion)
    return opinion


async def take(session: AsyncSession, *, opinion_id: int, user_id: int) -> SecondOpinion | None:
    """Give the open request to ``user_id``; None when it is no longer open."""
    stmt = (
        update(SecondOpinion)
        .where(SecondOpinion.id == opinion_id, SecondOpinion.status == OpinionStatus.OPEN.value)
        .values(status=OpinionStatus.CLAIMED.value, claimed_by_id=user_id, claimed_at=func.now())
        .returning(SecondOpinion)
    )
    return (await session.scalars(stmt, execution_options=_REFRESH)).one_or_none()


async def lock_next(
    session: AsyncSession, *, user: User, exclude: Collection[int]
) -> SecondOpinion | None:
    """Lock the most urgent, oldest open request ``user`` may take, skipping locked ones."""
    stmt = select(SecondOpinion).where(
        SecondOpinion.status == OpinionStatus.OPEN.value, open_to(user)
    )
    if exclude:
        stmt = stmt.where(SecondOpinion.id.not_in(exclude))
    stmt = (
        stmt.order_by(*QUEUE_ORDER)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def answer(
    session: AsyncSession, *, opinion_id: int, user_id: int, agreement: str, text: str
) -> SecondOpinion | None:
    """Record the holder's answer; None unless ``user_id`` holds the still-claimed request."""
    stmt = (
        update(SecondOpinion)
        .where(
            SecondOpinion.id == opinion_id,
            SecondOpinion.status == OpinionStatus.CLAIMED.value,
            SecondOpinion.claimed_by_id == user_id,
        )
        .values(
            status=OpinionStatus.ANSWERED.value,
            agreement=agreement,
            answer_text=text,
            answered_at=func.now(),
            ended_at=func.now(),
        )
        .returning(SecondOpinion)
    )
    return (await session.scalars(stmt, execution_options=_REFRESH)).one_or_none()


async def withdraw(session: AsyncSession, *, opinion_id: int) -> SecondOpinion | None:
    """End a running (open or claimed) request unanswered; None when it had already ended."""
    running = [OpinionStatus.OPEN.value, OpinionStatus.CLAIMED.value]
    stmt = (
        update(SecondOpinion)
        .where(SecondOpinion.id == opinion_id, SecondOpinion.status.in_(running))
        .values(status=OpinionStatus.WITHDRAWN.value, ended_at=func.now())
        .returning(SecondOpinion)
    )
    return (await session.scalars(stmt, execution_options=_REFRESH)).one_or_none()
