"""SQL for double-reading rules, double reads, who may take one, and who is blinded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    any_,
    bindparam,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from worklist.doubleread.schemas import ReadKind, ReadStatus
from worklist.enums import AuditAction, Role
from worklist.models import (
    AuditEvent,
    DoubleRead,
    DoubleReadingRule,
    Site,
    Study,
    Subspecialty,
    User,
)

# Reads of a report: whoever did one of these on a study has seen its first report.
REPORT_READS = (
    AuditAction.REPORT_VIEW.value,
    AuditAction.REPORT_FHIR_VIEW.value,
    AuditAction.PRIOR_REPORT_VIEW.value,
)
LIST_LIMIT = 500


async def list_rules(session: AsyncSession, *, site_id: int) -> Sequence[DoubleReadingRule]:
    """The site's rules in order."""
    stmt = (
        select(DoubleReadingRule)
        .where(DoubleReadingRule.site_id == site_id)
        .order_by(DoubleReadingRule.position)
    )
    return (await session.scalars(stmt)).all()


async def replace_rules(
    session: AsyncSession, *, site_id: int, rules: Sequence[DoubleReadingRule]
) -> None:
    """Replace the site's rules with ``rules`` (positions as given)."""
    await session.execute(delete(DoubleReadingRule).where(DoubleReadingRule.site_id == site_id))
    session.add_all(rules)
    await session.flush()


async def known_subspecialties(session: AsyncSession, codes: set[str]) -> set[str]:
    """Which of ``codes`` are active subspecialties of the network vocabulary."""
    if not codes:
        return set()
    stmt = select(Subspecialty.code).where(
        Subspecialty.code.in_(sorted(codes)), Subspecialty.active.is_(True)
    )
    return set(await session.scalars(stmt))


async def has_second_read(session: AsyncSession, *, study_id: int) -> bool:
    """True when the study already has a double read or peer review."""
    stmt = select(
        exists().where(
            DoubleRead.study_id == study_id, DoubleRead.kind != ReadKind.ARBITRATION.value
        )
    )
    return bool(await session.scalar(stmt))


def _ids(values: Sequence[int]) -> ColumnElement[bool]:
    return Study.site_id == any_(bindparam(None, sorted(values), type_=ARRAY(Integer)))


def may_take_condition(user: User, *, unless_seen: bool = True) -> ColumnElement[bool]:
    """True for the reads (joined to their study) ``user`` may take, whatever their status.

    Never the first reader (nor, for an arbitration, the second); never someone who has
    read the study's report already (blinding; ``unless_seen=False`` leaves that probe of
    the audit log out, for a wider set that is cheaper to find); with ``other_trust`` only a
    radiologist whose home site is not the study's, otherwise one with privileges there.
    """
    if user.role is not Role.RADIOLOGIST:
        return false()
    site_ids = [site.id for site in user.sites]
    own_trust = _ids(site_ids) if site_ids else false()
    other_trust = Study.site_id != user.home_site_id if user.home_site_id is not None else false()
    parent = aliased(DoubleRead)
    second_reader = exists().where(parent.id == DoubleRead.parent_id, parent.reader_id == user.id)
    saw_report = exists().where(
        AuditEvent.study_uid == Study.study_uid,
        AuditEvent.actor == user.username,
        AuditEvent.action.in_(REPORT_READS),
    )
    # An arbiter compares both reads: they are not blinded, so may have read the report.
    blind = (
        or_(DoubleRead.kind == ReadKind.ARBITRATION.value, ~saw_report) if unless_seen else true()
    )
    return and_(
        DoubleRead.first_reader_id != user.id,
        ~second_reader,
        blind,
        or_(
            and_(DoubleRead.other_trust.is_(True), other_trust),
            and_(DoubleRead.other_trust.is_(False), own_trust),
        ),
    )


def listed_condition(user: User) -> ColumnElement[bool]:
    """The reads ``user`` may see: a radiologist the open ones they may take and their own;
    a manager their sites' reads; an admin all."""
    if user.role is Role.ADMIN:
        return true()
    if user.role is Role.MANAGER:
        site_ids = [site.id for site in user.sites]
        return _ids(site_ids) if site_ids else false()
    if user.role is Role.RADIOLOGIST:
        open_to_take = and_(DoubleRead.status == ReadStatus.OPEN.value, may_take_condition(user))
        return or_(DoubleRead.reader_id == user.id, open_to_take)
    return false()


async def list_reads(
    session: AsyncSession, *, visible: ColumnElement[bool], statuses: Sequence[ReadStatus]
) -> Sequence[tuple[DoubleRead, Study]]:
    """Reads under ``visible`` (oldest first) with their studies, site loaded."""
    stmt = select(DoubleRead, Study).join(Study, Study.id == DoubleRead.study_id).where(visible)
    if statuses:
        stmt = stmt.where(DoubleRead.status.in_([s.value for s in statuses]))
    stmt = stmt.order_by(DoubleRead.created_at, DoubleRead.id).limit(LIST_LIMIT)
    return [(row[0], row[1]) for row in await session.execute(stmt)]


async def get_read(
    session: AsyncSession, *, read_id: int, visible: ColumnElement[bool], lock: bool = False
) -> tuple[DoubleRead, Study] | None:
    """One read under ``visible`` with its study; ``lock`` takes the read's row lock."""
    stmt = (
        select(DoubleRead, Study)
        .join(Study, Study.id == DoubleRead.study_id)
        .where(DoubleRead.id == read_id, visible)
    )
    if lock:
        stmt = stmt.with_for_update(of=DoubleRead).execution_options(populate_existing=True)
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1])


async def next_open(session: AsyncSession, *, user: User) -> tuple[DoubleRead, Study] | None:
    """The oldest open read ``user`` may take, locked; reads another request holds are skipped."""
    stmt = (
        select(DoubleRead, Study)
        .join(Study, Study.id == DoubleRead.study_id)
        .where(DoubleRead.status == ReadStatus.OPEN.value, may_take_condition(user))
        .order_by(DoubleRead.created_at, DoubleRead.id)
        .limit(1)
        .with_for_update(of=DoubleRead, skip_locked=True)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1])


async def blinded_study_ids(
    session: AsyncSession, *, user_id: int, study_id: int | None = None
) -> set[int]:
    """Studies on which ``user_id`` holds a second read not yet submitted (blinded)."""
    stmt = select(DoubleRead.study_id).where(
        DoubleRead.reader_id == user_id,
        DoubleRead.status == ReadStatus.CLAIMED.value,
        DoubleRead.kind != ReadKind.ARBITRATION.value,
    )
    if study_id is not None:
        stmt = stmt.where(DoubleRead.study_id == study_id)
    return set(await session.scalars(stmt))


async def blinded_study_uids(session: AsyncSession, *, user: User) -> frozenset[str]:
    """The UIDs of the studies whose report ``user`` may not learn of yet: those they hold
    an unsubmitted second read on, and those with an open one they could still take.

    (Including those they may no longer take for having read the report: blinding them too
    costs nothing, and spares a stream's every refresh a probe of the audit log per read.)
    """
    open_to_take = and_(
        DoubleRead.status == ReadStatus.OPEN.value,
        DoubleRead.kind != ReadKind.ARBITRATION.value,
        may_take_condition(user, unless_seen=False),
    )
    held = and_(
        DoubleRead.reader_id == user.id,
        DoubleRead.status == ReadStatus.CLAIMED.value,
        DoubleRead.kind != ReadKind.ARBITRATION.value,
    )
    stmt = (
        select(Study.study_uid)
        .join(DoubleRead, DoubleRead.study_id == Study.id)
        .where(or_(held, open_to_take))
    )
    return frozenset(await session.scalars(stmt))


async def usernames(session: AsyncSession, user_ids: set[int]) -> dict[int, str]:
    """Usernames by id."""
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    return {row[0]: row[1] for row in rows}


async def site_codes(session: AsyncSession, site_ids: set[int]) -> dict[int, str]:
    """Site codes by id."""
    if not site_ids:
        return {}
    rows = await session.execute(select(Site.id, Site.code).where(Site.id.in_(site_ids)))
    return {row[0]: row[1] for row in rows}


async def get_read_by_id(session: AsyncSession, read_id: int) -> DoubleRead | None:
    """A read by id, unconditionally (the parent of an arbitration someone may see)."""
    return await session.get(DoubleRead, read_id)


async def db_now(session: AsyncSession) -> datetime:
    """The transaction's timestamp (what ``now()`` says in SQL)."""
    value = await session.scalar(select(func.now()))
    assert isinstance(value, datetime)
    return value
