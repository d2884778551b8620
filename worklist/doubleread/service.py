"""The double-read queue: who sees and takes a read, submitting it, arbitration, blinding.

One owner of a read's state: ``open`` -> ``claimed`` (claim, next) -> ``submitted``
(submit). Every change locks the read's row first, so of two readers racing for one
read exactly one wins (the other gets 409, or ``next`` skips it). A reader without
privileges at the study's site reads it through a study grant for as long as they hold
the read (``worklist.studies.grants``).

Blinding: until they submit, the holder of a double read or peer review may not read the
study's report (``is_blinded``: the report, its FHIR view and the prior-report route answer
404), and nobody who has read that report may take the read (``may_take_condition``).
An arbitration is not blinded: the arbiter compares both reads.

Discordance: a score other than 1 or 2a (2b, 3a, 3b: a discrepancy likely to be clinically
significant, or one that should be made most of the time) opens an arbitration read for a
third radiologist, neither the first reader nor the second.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.doubleread import repository
from worklist.doubleread.rules import create_read
from worklist.doubleread.schemas import (
    DoubleReadOut,
    FirstReport,
    ParentRead,
    ReadKind,
    ReadStatus,
    SubmitIn,
)
from worklist.enums import AuditAction, ReportStatus, Role
from worklist.errors import Conflict, Forbidden, InvalidInput, NotFound
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import DoubleRead, Report, Study, User
from worklist.reports import repository as reports
from worklist.studies import grants
from worklist.studies.grants import GrantReason

READ_NOT_FOUND = "double read not found"
ONLY_RADIOLOGISTS = "only radiologists take double reads"
ALREADY_TAKEN = "this read has been taken by another radiologist"
ALREADY_SUBMITTED = "this read has been submitted"
NOT_HELD = "you do not hold this read: claim it first"
TEXT_REQUIRED = "a discordant score needs text saying what differs"

CONCORDANT_SCORES = frozenset({"1", "2a"})


def _visible(user: User) -> ColumnElement[bool]:
    return repository.listed_condition(user)


def _sees_everything(user: User, read: DoubleRead) -> bool:
    """Managers, admins, the arbiter holding an arbitration, and a second reader after
    submitting see the first report, its author and (arbitration) the read it decides on."""
    if user.role in (Role.ADMIN, Role.MANAGER):
        return True
    if read.reader_id != user.id:
        return False
    return read.kind == ReadKind.ARBITRATION.value or read.status == ReadStatus.SUBMITTED.value


async def _one_out(
    session: AsyncSession, user: User, row: tuple[DoubleRead, Study]
) -> DoubleReadOut:
    return (await _to_out(session, user, [row], detailed=True))[0]


async def _to_out(
    session: AsyncSession,
    user: User,
    rows: Sequence[tuple[DoubleRead, Study]],
    *,
    detailed: bool = False,
) -> list[DoubleReadOut]:
    """The reads as the caller may see them; ``detailed`` (one read, not the list) adds the
    first report and the read an arbitration decides on, where they are disclosed."""
    disclosed = {read.id for read, _ in rows if _sees_everything(user, read)}
    parents: dict[int, DoubleRead] = {}
    first_reports: dict[int, Report] = {}
    for read, study in rows:
        if not detailed or read.id not in disclosed:
            continue
        if read.parent_id is not None:
            parent = await repository.get_read_by_id(session, read.parent_id)
            if parent is not None:
                parents[read.id] = parent
        report = await reports.get_report(session, study_id=study.id)
        if report is not None and report.status is not ReportStatus.DRAFT:
            first_reports[read.id] = report
    user_ids = {read.first_reader_id for read, _ in rows}
    user_ids.update(read.reader_id for read, _ in rows if read.reader_id)
    user_ids.update(p.reader_id for p in parents.values() if p.reader_id)
    user_ids.update(r.author_id for r in first_reports.values())
    names = await repository.usernames(session, user_ids)
    codes = await repository.site_codes(session, {study.site_id for _, study in rows})
    return [
        _read_out(
            read,
            study,
            site=codes[study.site_id],
            names=names,
            disclosed=read.id in disclosed,
            parent=parents.get(read.id),
            report=first_reports.get(read.id),
        )
        for read, study in rows
    ]


def _read_out(
    read: DoubleRead,
    study: Study,
    *,
    site: str,
    names: dict[int, str],
    disclosed: bool,
    parent: DoubleRead | None,
    report: Report | None,
) -> DoubleReadOut:
    return DoubleReadOut(
        id=read.id,
        study_uid=study.study_uid,
        site=site,
        kind=ReadKind(read.kind),
        status=ReadStatus(read.status),
        parent_id=read.parent_id,
        parent=None
        if parent is None
        else ParentRead(
            id=parent.id,
            kind=ReadKind(parent.kind),
            reader=names.get(parent.reader_id) if parent.reader_id else None,
            score=parent.score,
            text=parent.text,
            submitted_at=parent.submitted_at,
        ),
        first_reader=names[read.first_reader_id] if disclosed else None,
        first_report=None
        if report is None
        else FirstReport(
            text=report.text, author=names[report.author_id], finalised_at=report.finalised_at
        ),
        other_trust=read.other_trust,
        reader=names.get(read.reader_id) if read.reader_id else None,
        claimed_at=read.claimed_at,
        score=read.score,
        text=read.text,
        submitted_at=read.submitted_at,
        created_at=read.created_at,
    )


def _audit(
    session: AsyncSession,
    *,
    user: User,
    action: AuditAction,
    read: DoubleRead,
    study: Study,
    address: str | None,
    **detail: object,
) -> None:
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=action,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={"id": read.id, "kind": read.kind, **detail},
    )


async def list_reads(
    *, session: AsyncSession, user: User, statuses: Sequence[ReadStatus], address: str | None
) -> list[DoubleReadOut]:
    """The reads the caller may see (oldest first); audited as one view naming them."""
    rows = await repository.list_reads(session, visible=_visible(user), statuses=statuses)
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.DOUBLE_READ_VIEW,
        address=address,
        detail={"ids": [read.id for read, _ in rows]},
    )
    return await _to_out(session, user, rows)


async def get_read(
    *, session: AsyncSession, user: User, read_id: int, address: str | None
) -> DoubleReadOut:
    """One read the caller may see; audited."""
    row = await repository.get_read(session, read_id=read_id, visible=_visible(user))
    if row is None:
        raise NotFound(READ_NOT_FOUND)
    read, study = row
    _audit(
        session,
        user=user,
        action=AuditAction.DOUBLE_READ_VIEW,
        read=read,
        study=study,
        address=address,
    )
    return await _one_out(session, user, row)


async def claim(
    *, session: AsyncSession, user: User, read_id: int, address: str | None
) -> DoubleReadOut:
    """Take an open read; claiming one's own read again answers it unchanged."""
    if user.role is not Role.RADIOLOGIST:
        raise Forbidden(ONLY_RADIOLOGISTS)
    mine_or_takeable = repository.may_take_condition(user) | (DoubleRead.reader_id == user.id)
    row = await repository.get_read(session, read_id=read_id, visible=mine_or_takeable, lock=True)
    if row is None:
        raise NotFound(READ_NOT_FOUND)
    read, study = row
    if read.reader_id == user.id:
        if read.status == ReadStatus.SUBMITTED.value:
            raise Conflict(ALREADY_SUBMITTED)
        return await _one_out(session, user, row)
    if read.status != ReadStatus.OPEN.value:
        raise Conflict(ALREADY_TAKEN)
    await _take(session, user=user, read=read, study=study, address=address)
    return await _one_out(session, user, row)


async def next_read(
    *, session: AsyncSession, user: User, address: str | None
) -> DoubleReadOut | None:
    """Take the oldest open read the caller may take; None when there is none."""
    if user.role is not Role.RADIOLOGIST:
        raise Forbidden(ONLY_RADIOLOGISTS)
    row = await repository.next_open(session, user=user)
    if row is None:
        return None
    read, study = row
    await _take(session, user=user, read=read, study=study, address=address)
    return await _one_out(session, user, row)


async def _take(
    session: AsyncSession, *, user: User, read: DoubleRead, study: Study, address: str | None
) -> None:
    read.status = ReadStatus.CLAIMED.value
    read.reader_id = user.id
    read.claimed_at = await repository.db_now(session)
    granted = study.site_id not in {site.id for site in user.sites}
    if granted:
        await grants.give(
            session,
            user_id=user.id,
            study_id=study.id,
            reason=GrantReason.DOUBLE_READ,
            reason_id=read.id,
        )
    await session.flush()
    _audit(
        session,
        user=user,
        action=AuditAction.DOUBLE_READ_CLAIMED,
        read=read,
        study=study,
        address=address,
        grant=granted,
    )


async def submit(
    *, session: AsyncSession, user: User, read_id: int, body: SubmitIn, address: str | None
) -> DoubleReadOut:
    """Submit the held read's score and text: its grant ends, the first report opens to the
    reader, and a discordant second read opens an arbitration."""
    row = await repository.get_read(session, read_id=read_id, visible=_visible(user), lock=True)
    if row is None:
        raise NotFound(READ_NOT_FOUND)
    read, study = row
    if read.status == ReadStatus.SUBMITTED.value:
        raise Conflict(ALREADY_SUBMITTED)
    if read.reader_id != user.id or read.status != ReadStatus.CLAIMED.value:
        raise Forbidden(NOT_HELD)
    if body.score != "1" and not body.text.strip():
        raise InvalidInput(TEXT_REQUIRED)
    read.status = ReadStatus.SUBMITTED.value
    read.score = body.score
    read.text = body.text
    read.submitted_at = await repository.db_now(session)
    await grants.end(session, reason=GrantReason.DOUBLE_READ, reason_id=read.id)
    await session.flush()
    arbitration: DoubleRead | None = None
    if read.kind != ReadKind.ARBITRATION.value and body.score not in CONCORDANT_SCORES:
        arbitration = await create_read(
            session,
            study=study,
            kind=ReadKind.ARBITRATION,
            first_reader_id=read.first_reader_id,
            other_trust=read.other_trust,
            parent_id=read.id,
        )
        _audit(
            session,
            user=user,
            action=AuditAction.DOUBLE_READ_CREATED,
            read=arbitration,
            study=study,
            address=address,
            parent=read.id,
        )
    _audit(
        session,
        user=user,
        action=AuditAction.DOUBLE_READ_SUBMITTED,
        read=read,
        study=study,
        address=address,
        score=body.score,
        arbitration=None if arbitration is None else arbitration.id,
    )
    stage(
        session,
        WorklistEvent(
            type=EventType.DOUBLE_READ_SUBMITTED,
            site_id=study.site_id,
            study_uid=study.study_uid,
            # No score, no reader: scores are for managers, never peers.
            data={"id": read.id, "kind": read.kind},
        ),
    )
    return await _one_out(session, user, row)


async def is_blinded(session: AsyncSession, *, user: User, study_id: int) -> bool:
    """True while ``user`` holds an unsubmitted double read or peer review of the study."""
    if user.role is not Role.RADIOLOGIST:
        return False
    return bool(await repository.blinded_study_ids(session, user_id=user.id, study_id=study_id))
