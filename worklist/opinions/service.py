"""Second opinions: who may ask, who may take, the answer, and the study grant in between.

A request's life: ``open`` (asked) -> ``claimed`` (taken: the taker is granted reads of
the study and its priors) -> ``answered`` or ``withdrawn`` (the grant ends). This module
is the one owner of that state machine; each move is a guarded UPDATE in the repository,
audited and announced (a ``second_opinion.*`` event on the study's site) in the caller's
transaction. Checks run in this order: the caller sees the request (404), its state
allows the move (409), the caller may make it (403), the input is acceptable (422).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import true
from sqlalchemy.ext.asyncio import AsyncSession

from worklist import pagination
from worklist.audit import repository as audit
from worklist.claims.repository import lock_study
from worklist.enums import AuditAction, ReportStatus, Role
from worklist.errors import Conflict, Forbidden, InvalidInput, NotFound
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import SecondOpinion, User
from worklist.opinions import repository
from worklist.opinions.repository import OpinionRow, QueueKey
from worklist.opinions.schemas import (
    ENDED,
    Agreement,
    AnswerIn,
    OpinionStatus,
    SecondOpinionIn,
    SecondOpinionList,
    SecondOpinionOut,
)
from worklist.studies import grants, lifecycle
from worklist.studies import repository as studies
from worklist.studies.grants import GrantReason
from worklist.studies.lifecycle import StudyEvent
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import require_worklist_access, visible_study_condition

OPINION_NOT_FOUND = "second opinion not found"
NOT_ASKER = "only the study's claim holder or its report's author may ask for a second opinion"
UNKNOWN_SUBSPECIALTY = "subspecialty is not a code of the subspecialties table"
UNKNOWN_RADIOLOGIST = "radiologist is not the username of an active radiologist"
ASKING_YOURSELF = "a second opinion is asked of someone else"
ONLY_RADIOLOGISTS = "only radiologists take second opinions"
OWN_REQUEST = "you asked for this second opinion: someone else must give it"
NOT_ADDRESSED = "this second opinion is for another radiologist or subspecialty"
TAKEN = "the second opinion has been taken by another radiologist"
ENDED_ALREADY = "the second opinion has ended ({status})"
NOT_CLAIMED = "the second opinion is not taken yet: claim it first"
NOT_HOLDER = "only the radiologist who took the second opinion may answer it"
NOT_WITHDRAWER = (
    "only the requester, a manager of the study's site or an admin may withdraw a second opinion"
)
# The study flag a major discrepancy sets applies to a signed reading only.
SIGNED = (ReportStatus.FINAL, ReportStatus.AMENDED)


class OpinionTaken(Conflict):
    """Another radiologist holds the request (or it has ended)."""

    def __init__(self, detail: str, *, status: OpinionStatus, claimed_by: str | None) -> None:
        super().__init__(detail)
        self.status = status
        self.claimed_by = claimed_by

    def body(self) -> dict[str, Any]:
        """The detail, the request's status and who holds it."""
        return {**super().body(), "status": self.status.value, "claimed_by": self.claimed_by}


def _audit(
    session: AsyncSession,
    *,
    user: User,
    action: AuditAction,
    row: OpinionRow,
    address: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    # Never the question or answer text: the audit log names what happened, not findings.
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=action,
        study_uid=row.study_uid,
        site_id=row.site_id,
        address=address,
        detail={"second_opinion": row.opinion.id, **(detail or {})},
    )


def _announce(session: AsyncSession, event_type: EventType, row: OpinionRow) -> None:
    opinion = row.opinion
    stage(
        session,
        WorklistEvent(
            type=event_type,
            site_id=row.site_id,
            study_uid=row.study_uid,
            data={
                "id": opinion.id,
                "status": opinion.status,
                "urgency": opinion.urgency,
                "subspecialty": opinion.subspecialty,
                "radiologist": row.radiologist,
                "requested_by": row.requested_by,
                "claimed_by": row.claimed_by,
                "agreement": opinion.agreement,
            },
        ),
    )


async def _reread(session: AsyncSession, opinion_id: int) -> OpinionRow:
    row = await repository.get_opinion(session, opinion_id=opinion_id, condition=true())
    if row is None:
        raise NotFound(OPINION_NOT_FOUND)
    return row


def _refuse_for_state(row: OpinionRow) -> NoReturn:
    """Raise the 409 a request's state answers to a move it no longer allows."""
    status = OpinionStatus(row.opinion.status)
    if status in ENDED:
        raise OpinionTaken(
            ENDED_ALREADY.format(status=status.value), status=status, claimed_by=row.claimed_by
        )
    raise OpinionTaken(TAKEN, status=status, claimed_by=row.claimed_by)


async def request_opinion(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str,
    body: SecondOpinionIn,
    address: str | None,
) -> SecondOpinionOut:
    """Ask for a second opinion on a study (its claim holder or its report's author)."""
    study = await studies.get_visible_study(
        session, study_uid=study_uid, visible=visible_study_condition(user)
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    standing = await repository.asker_standing(session, study_id=study.id, user_id=user.id)
    if user.role is not Role.RADIOLOGIST or not (
        standing.holds_claim or standing.report_author_id == user.id
    ):
        raise Forbidden(NOT_ASKER)
    if body.subspecialty is not None and not await repository.subspecialty_exists(
        session, body.subspecialty
    ):
        raise InvalidInput(UNKNOWN_SUBSPECIALTY)
    radiologist_id = None
    if body.radiologist is not None:
        radiologist_id = await repository.active_radiologist_id(session, body.radiologist)
        if radiologist_id is None:
            raise InvalidInput(UNKNOWN_RADIOLOGIST)
        if radiologist_id == user.id:
            raise InvalidInput(ASKING_YOURSELF)
    opinion = repository.add_opinion(
        session,
        study_id=study.id,
        question=body.question,
        subspecialty=body.subspecialty,
        radiologist_id=radiologist_id,
        urgency=body.urgency,
        requested_by_id=user.id,
    )
    await session.flush()
    row = await _reread(session, opinion.id)
    _audit(
        session,
        user=user,
        action=AuditAction.SECOND_OPINION_REQUESTED,
        row=row,
        address=address,
        detail={
            "urgency": opinion.urgency,
            "subspecialty": opinion.subspecialty,
            "radiologist": row.radiologist,
        },
    )
    _announce(session, EventType.SECOND_OPINION_REQUESTED, row)
    return SecondOpinionOut.from_row(row)


def encode_cursor(row: OpinionRow) -> str:
    """An opaque cursor for the position after ``row`` in the queue."""
    return pagination.encode_cursor(row.rank, row.opinion.created_at, row.opinion.id)


def decode_cursor(cursor: str) -> QueueKey:
    """The queue position a cursor stands for; InvalidInput when it is not one of ours."""
    rank, created_at, opinion_id = pagination.decode_cursor(cursor, (int, datetime, int))
    return QueueKey(rank=rank, created_at=created_at, id=opinion_id)


async def list_queue(
    *,
    session: AsyncSession,
    user: User,
    statuses: list[OpinionStatus],
    mine: bool,
    limit: int,
    cursor: str | None,
    address: str | None,
) -> SecondOpinionList:
    """One page of the caller's queue (``repository.queue_condition``); the read is audited."""
    require_worklist_access(user)
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_opinions(
        session,
        condition=repository.queue_condition(user),
        statuses=statuses,
        mine_of=user.id if mine else None,
        after=after,
        limit=limit + 1,
    )
    page = rows[:limit]
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.SECOND_OPINION_VIEW,
        address=address,
        detail={
            "filters": {"status": [s.value for s in statuses], "mine": mine},
            "cursor": cursor,
            "second_opinions": [row.opinion.id for row in page],
        },
    )
    return SecondOpinionList(
        items=[SecondOpinionOut.from_row(row) for row in page],
        next_cursor=encode_cursor(page[-1]) if len(rows) > limit else None,
    )


async def visible_opinion(session: AsyncSession, user: User, opinion_id: int) -> OpinionRow:
    """The request if the caller may open it (``seen_condition``), else NotFound."""
    row = await repository.get_opinion(
        session, opinion_id=opinion_id, condition=repository.seen_condition(user)
    )
    if row is None:
        raise NotFound(OPINION_NOT_FOUND)
    return row


async def get_opinion(
    *, session: AsyncSession, user: User, opinion_id: int, address: str | None
) -> SecondOpinionOut:
    """One request the caller may see; the read is audited."""
    row = await visible_opinion(session, user, opinion_id)
    _audit(session, user=user, action=AuditAction.SECOND_OPINION_VIEW, row=row, address=address)
    return SecondOpinionOut.from_row(row)


async def _taken(
    session: AsyncSession, *, user: User, opinion: SecondOpinion, address: str | None, via: str
) -> SecondOpinionOut:
    """What follows a won take: the grant on the study, the audit row and the event."""
    await grants.give(
        session,
        user_id=user.id,
        study_id=opinion.study_id,
        reason=GrantReason.SECOND_OPINION,
        reason_id=opinion.id,
    )
    row = await _reread(session, opinion.id)
    _audit(
        session,
        user=user,
        action=AuditAction.SECOND_OPINION_CLAIMED,
        row=row,
        address=address,
        detail={"via": via},
    )
    _announce(session, EventType.SECOND_OPINION_CLAIMED, row)
    return SecondOpinionOut.from_row(row)


async def claim_opinion(
    *, session: AsyncSession, user: User, opinion_id: int, address: str | None
) -> SecondOpinionOut:
    """Take an open request addressed to the caller; one taker wins, the others get 409.

    Taking it again as its holder changes nothing and answers the request.
    """
    row = await repository.get_opinion(
        session, opinion_id=opinion_id, condition=repository.claimable_condition(user)
    )
    if row is None:
        raise NotFound(OPINION_NOT_FOUND)
    opinion = row.opinion
    if opinion.status == OpinionStatus.CLAIMED and opinion.claimed_by_id == user.id:
        return SecondOpinionOut.from_row(row)
    if opinion.status != OpinionStatus.OPEN:
        _refuse_for_state(row)
    if user.role is not Role.RADIOLOGIST:
        raise Forbidden(ONLY_RADIOLOGISTS)
    if opinion.requested_by_id == user.id:
        raise Forbidden(OWN_REQUEST)
    if not repository.is_addressed_to(opinion, user):
        raise Forbidden(NOT_ADDRESSED)
    taken = await repository.take(session, opinion_id=opinion.id, user_id=user.id)
    if taken is None:
        _refuse_for_state(await _reread(session, opinion.id))
    return await _taken(session, user=user, opinion=taken, address=address, via="claim")


async def next_opinion(
    *, session: AsyncSession, user: User, address: str | None
) -> SecondOpinionOut | None:
    """Take the most urgent, oldest open request the radiologist may take; None if none."""
    if user.role is not Role.RADIOLOGIST:
        raise Forbidden(ONLY_RADIOLOGISTS)
    passed_over: list[int] = []
    while True:
        candidate = await repository.lock_next(session, user=user, exclude=passed_over)
        if candidate is None:
            return None
        taken = await repository.take(session, opinion_id=candidate.id, user_id=user.id)
        if taken is not None:
            return await _taken(session, user=user, opinion=taken, address=address, via="next")
        # Taken by a transaction that committed after our snapshot: try the next one.
        passed_over.append(candidate.id)


async def answer_opinion(
    *, session: AsyncSession, user: User, opinion_id: int, body: AnswerIn, address: str | None
) -> SecondOpinionOut:
    """Answer a request the caller holds: it ends, and so does their grant on the study.

    A major discrepancy with a signed report flags the study ``major_discrepancy`` (the
    study lifecycle's ``DISCREPANCY_FOUND``) until the next addendum.
    """
    row = await visible_opinion(session, user, opinion_id)
    if row.opinion.status != OpinionStatus.CLAIMED:
        if row.opinion.status == OpinionStatus.OPEN:
            raise OpinionTaken(NOT_CLAIMED, status=OpinionStatus.OPEN, claimed_by=None)
        _refuse_for_state(row)
    if row.opinion.claimed_by_id != user.id:
        raise Forbidden(NOT_HOLDER)
    major = body.agreement is Agreement.MAJOR_DISCREPANCY
    # Study row first, then the request's: the lock order of every change to a study.
    study = await lock_study(session, study_id=row.opinion.study_id) if major else None
    answered = await repository.answer(
        session,
        opinion_id=row.opinion.id,
        user_id=user.id,
        agreement=body.agreement.value,
        text=body.text,
    )
    if answered is None:
        _refuse_for_state(await _reread(session, row.opinion.id))
    await grants.end(session, reason=GrantReason.SECOND_OPINION, reason_id=answered.id)
    flagged = False
    if study is not None and await repository.report_status(session, study_id=study.id) in SIGNED:
        lifecycle.apply(study, StudyEvent.DISCREPANCY_FOUND)
        await session.flush()
        flagged = True
    row = await _reread(session, answered.id)
    _audit(
        session,
        user=user,
        action=AuditAction.SECOND_OPINION_ANSWERED,
        row=row,
        address=address,
        detail={"agreement": body.agreement.value, "study_flagged": flagged},
    )
    _announce(session, EventType.SECOND_OPINION_ANSWERED, row)
    return SecondOpinionOut.from_row(row)


async def withdraw_opinion(
    *, session: AsyncSession, user: User, opinion_id: int, address: str | None
) -> SecondOpinionOut:
    """Withdraw a running request (its requester, a manager of its site, an admin)."""
    row = await visible_opinion(session, user, opinion_id)
    if row.opinion.status in ENDED:
        _refuse_for_state(row)
    may = (
        row.opinion.requested_by_id == user.id
        or user.role is Role.ADMIN
        or (user.role is Role.MANAGER and row.site_id in {site.id for site in user.sites})
    )
    if not may:
        raise Forbidden(NOT_WITHDRAWER)
    withdrawn = await repository.withdraw(session, opinion_id=row.opinion.id)
    if withdrawn is None:
        _refuse_for_state(await _reread(session, row.opinion.id))
    await grants.end(session, reason=GrantReason.SECOND_OPINION, reason_id=withdrawn.id)
    row = await _reread(session, withdrawn.id)
    _audit(
        session,
        user=user,
        action=AuditAction.SECOND_OPINION_WITHDRAWN,
        row=row,
        address=address,
        detail={"holder": row.claimed_by},
    )
    _announce(session, EventType.SECOND_OPINION_WITHDRAWN, row)
    return SecondOpinionOut.from_row(row)
