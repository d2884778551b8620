"""SQL for claims: leases, takeovers, the ``worklist/next`` pick and lease expiry.

Lock order, everywhere a study and its claim change together: the study row first
(``FOR NO KEY UPDATE``, like report writes), then the claim row. Keeping to it means
claims, releases, report saves and the expiry job never deadlock one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.models import Claim, Study, User
from worklist.studies import lifecycle
from worklist.studies.lifecycle import StudyEvent
from worklist.studies.repository import (
    active_claim_condition,
    held_by,
)

# Built once: a study without a running claim (its alias of ``claims`` cost per request).
UNHELD = ~held_by()

# DML ... RETURNING Claim must refresh an instance the session may already hold.
_REFRESH: dict[str, Any] = {"synchronize_session": False, "populate_existing": True}


@dataclass(frozen=True)
class HeldClaim:
    """A study's claim row, its holder's username, and whether its lease still runs."""

    claim: Claim
    username: str
    active: bool


@dataclass(frozen=True)
class ExpiredClaim:
    """A claim the expiry job ended."""

    study_id: int
    study_uid: str
    site_id: int
    username: str
    expires_at: datetime
    returned_to_worklist: bool


def lease_end(lease_seconds: float) -> ColumnElement[datetime]:
    return func.now() + timedelta(seconds=lease_seconds)


async def get_claim(session: AsyncSession, *, study_id: int) -> HeldClaim | None:
    """The study's claim row as now committed, whether or not its lease has run out."""
    stmt = (
        select(Claim, User.username, active_claim_condition())
        .join(User, User.id == Claim.user_id)
        .where(Claim.study_id == study_id)
        .execution_options(populate_existing=True)
    )
    row = (await session.execute(stmt)).one_or_none()
    return HeldClaim(claim=row[0], username=row[1], active=bool(row[2])) if row else None


def _replacing(stmt: Insert) -> dict[str, Any]:
    # A takeover starts afresh: the row leaves any group its previous holder had it in.
    return {
        "user_id": stmt.excluded.user_id,
        "claimed_at": stmt.excluded.claimed_at,
        "expires_at": stmt.excluded.expires_at,
        "group_study_id": stmt.excluded.group_study_id,
    }


def _upsert(study_id: int, user_id: int, lease_seconds: float) -> tuple[Insert, dict[str, Any]]:
    stmt = insert(Claim).values(
        study_id=study_id,
        user_id=user_id,
        claimed_at=func.now(),
        expires_at=lease_end(lease_seconds),
        group_study_id=None,
    )
    return stmt, _replacing(stmt)


def take_free(rows: Select[*tuple[Any, ...]]) -> Insert:
    """INSERT of claims for ``rows`` (study_id, user_id, claimed_at, expires_at,
    group_study_id), taking over only expired claims.

    The condition is checked against the latest committed claim row, not the statement's
    snapshot: the guard that keeps two ``worklist/next`` callers off the same study.
    """
    stmt = insert(Claim).from_select(
        ["study_id", "user_id", "claimed_at", "expires_at", "group_study_id"], rows
    )
    return stmt.on_conflict_do_update(
        index_elements=[Claim.study_id], set_=_replacing(stmt), where=Claim.expires_at <= func.now()
    )


async def put_claim(
    session: AsyncSession, *, study_id: int, user_id: int, lease_seconds: float
) -> Claim:
    """Give the study to ``user_id`` with a fresh lease, replacing any claim row it had.

    The caller holds the study's lock and has decided the takeover is allowed.
    """
    stmt, values = _upsert(study_id, user_id, lease_seconds)
    stmt = stmt.on_conflict_do_update(index_elements=[Claim.study_id], set_=values)
    return (await session.scalars(stmt.returning(Claim), execution_options=_REFRESH)).one()


async def extend_claim(
    session: AsyncSession, *, study_id: int, user_id: int, lease_seconds: float
) -> Claim | None:
    """Renew ``user_id``'s claim on the study (lease from now); None if they hold none."""
    stmt = (
        update(Claim)
        .where(Claim.study_id == study_id, Claim.user_id == user_id)
        .values(expires_at=lease_end(lease_seconds))
        .returning(Claim)
    )
    return (await session.scalars(stmt, execution_options=_REFRESH)).one_or_none()


async def delete_claim(session: AsyncSession, *, study_id: int) -> Claim | None:
    """End the study's claim; the deleted row, or None if it had none."""
    stmt = delete(Claim).where(Claim.study_id == study_id).returning(Claim)
    return (await session.scalars(stmt, execution_options=_REFRESH)).one_or_none()


async def lock_study(session: AsyncSession, *, study_id: int) -> Study | None:
    """Lock the study row (first step of the lock order) and return it."""
    stmt = (
        select(Study)
        .where(Study.id == study_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def expire_due_claims(
    session: AsyncSession, *, now: datetime | None, limit: int
) -> list[ExpiredClaim]:
    """Delete claims whose lease ran out; their ``in_progress`` studies go back to ``ready``.

    Studies locked by a request in flight (a claim, a report save) are skipped and picked
    up by a later run, so the job never waits on, or races with, the API.
    """
    reference: datetime | ColumnElement[datetime] = func.now() if now is None else now
    due = (
        select(Study.id)
        .join(Claim, Claim.study_id == Study.id)
        .where(Claim.expires_at <= reference)
        .order_by(Claim.expires_at)
        .limit(limit)
        .with_for_update(of=Study, key_share=True, skip_locked=True)
    )
    study_ids = list(await session.scalars(due))
    if not study_ids:
        return []
    ended = (
        await session.execute(
            delete(Claim)
            .where(Claim.study_id.in_(study_ids), Claim.expires_at <= reference)
            .returning(Claim.study_id, Claim.user_id, Claim.expires_at),
            execution_options={"synchronize_session": False},
        )
    ).all()
    if not ended:
        return []
    ended_ids = [row.study_id for row in ended]
    returned = set(
        await session.scalars(
            lifecycle.bulk_update(StudyEvent.CLAIM_ENDED, Study.id.in_(ended_ids)).returning(
                Study.id
            ),
            execution_options={"synchronize_session": False},
        )
    )
    studies = {
        row.id: (row.study_uid, row.site_id)
        for row in await session.execute(
            select(Study.id, Study.study_uid, Study.site_id).where(Study.id.in_(ended_ids))
        )
    }
    usernames: dict[int, str] = {
        row.id: row.username
        for row in await session.execute(
            select(User.id, User.username).where(User.id.in_({row.user_id for row in ended}))
        )
    }
    return [
        ExpiredClaim(
            study_id=row.study_id,
            study_uid=studies[row.study_id][0],
            site_id=studies[row.study_id][1],
            username=usernames[row.user_id],
            expires_at=row.expires_at,
            returned_to_worklist=row.study_id in returned,
        )
        for row in ended
    ]
