"""SQL for claim groups: a patient's studies ``worklist/next`` hands to one reader together.

The others' claims name the first study (``claims.group_study_id``); they are released and
renewed with it. Lock order as in ``worklist.claims.repository``: study rows first, the
group's in id order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.claims.repository import lease_end
from worklist.models import Claim, Study
from worklist.studies import lifecycle
from worklist.studies.lifecycle import StudyEvent


@dataclass(frozen=True)
class GroupMember:
    """A study claimed with (or released with) the first study of a patient's group."""

    study_id: int
    study_uid: str
    site_id: int
    expires_at: datetime


async def extend_group(
    session: AsyncSession, *, first_id: int, user_id: int, lease_seconds: float
) -> None:
    """Renew ``user_id``'s claims grouped under ``first_id`` with it (lease from now).

    The caller holds the first study's lock. The members' study rows are not locked for
    this: nothing locks a claim row before its study row, so no cycle can form.
    """
    await session.execute(
        update(Claim)
        .where(Claim.group_study_id == first_id, Claim.user_id == user_id)
        .values(expires_at=lease_end(lease_seconds)),
        execution_options={"synchronize_session": False},
    )


async def release_group(session: AsyncSession, *, first_id: int, user_id: int) -> list[GroupMember]:
    """End ``user_id``'s claims grouped under ``first_id``; their studies back to ready.

    The caller holds the first study's lock; the members' study rows are locked next, in
    id order (the lock order), whether or not their leases still run.
    """
    locked = (
        select(Study.id)
        .join(Claim, Claim.study_id == Study.id)
        .where(Claim.group_study_id == first_id, Claim.user_id == user_id)
        .order_by(Study.id)
        .with_for_update(of=Study, key_share=True)
    )
    member_ids = list(await session.scalars(locked))
    if not member_ids:
        return []
    ended = (
        await session.execute(
            delete(Claim)
            .where(Claim.study_id.in_(member_ids), Claim.user_id == user_id)
            .returning(Claim.study_id, Claim.expires_at),
            execution_options={"synchronize_session": False},
        )
    ).all()
    ended_ids = [row.study_id for row in ended]
    await session.execute(
        lifecycle.bulk_update(StudyEvent.CLAIM_ENDED, Study.id.in_(ended_ids)),
        execution_options={"synchronize_session": False},
    )
    studies = {
        row.id: row
        for row in await session.execute(
            select(Study.id, Study.study_uid, Study.site_id).where(Study.id.in_(ended_ids))
        )
    }
    return sorted(
        (
            GroupMember(
                study_id=row.study_id,
                study_uid=studies[row.study_id].study_uid,
                site_id=studies[row.study_id].site_id,
                expires_at=row.expires_at,
            )
            for row in ended
        ),
        key=lambda member: member.study_id,
    )
