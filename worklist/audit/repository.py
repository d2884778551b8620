"""SQL for the audit log: rows are added to the caller's transaction, never committed here."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, false, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.enums import AuditAction
from worklist.models import AuditEvent, Site

# Longest actor text kept: an attempted username is caller-controlled input.
MAX_ACTOR_LENGTH = 128


class ActorKind(enum.StrEnum):
    """Who performed an audited action."""

    USER = "user"
    NODE = "node"
    SYSTEM = "system"


def new_values(
    *,
    actor: str,
    actor_kind: ActorKind | str,
    action: AuditAction | str,
    study_uid: str | None = None,
    site_id: int | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of the audit row for one action: the one row builder.

    ``new_event`` makes the row of them; ``record_now`` and the hot paths that write the
    row by a Core INSERT (HL7 orders) take them as they are.
    """
    return {
        "actor": actor[:MAX_ACTOR_LENGTH],
        "actor_kind": str(actor_kind),
        "action": str(action),
        "study_uid": study_uid,
        "site_id": site_id,
        "address": address,
        "detail": detail or {},
    }


def new_event(
    *,
    actor: str,
    actor_kind: ActorKind | str,
    action: AuditAction | str,
    study_uid: str | None = None,
    site_id: int | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """The audit row for one action, not yet added to any session.

    ``record`` adds it to the domain's transaction; the gateway's threads, whose index
    transactions are synchronous, add it to theirs (``session.add``).
    """
    return AuditEvent(
        **new_values(
            actor=actor,
            actor_kind=actor_kind,
            action=action,
            study_uid=study_uid,
            site_id=site_id,
            address=address,
            detail=detail,
        )
    )


def record(
    session: AsyncSession,
    *,
    actor: str,
    actor_kind: ActorKind | str,
    action: AuditAction | str,
    study_uid: str | None = None,
    site_id: int | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit row to ``session``'s transaction; it commits (or rolls back) with it."""
    event = new_event(
        actor=actor,
        actor_kind=actor_kind,
        action=action,
        study_uid=study_uid,
        site_id=site_id,
        address=address,
        detail=detail,
    )
    session.add(event)
    return event


# The row of ``new_values``, every column a named parameter (for the driver: ``driver_sql``).
INSERT_EVENT = insert(cast(Table, AuditEvent.__table__)).values(
    {
        name: bindparam(name, required=False)
        for name in ("actor", "actor_kind", "action", "study_uid", "site_id", "address", "detail")
    }
)


async def record_now(
    session: AsyncSession,
    *,
    actor: str,
    actor_kind: ActorKind | str,
    action: AuditAction | str,
    study_uid: str | None = None,
    site_id: int | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """``record``, written at once by one INSERT rather than by the next flush: for a hot
    path that adds one row and would otherwise pay for a unit-of-work flush (HL7 orders,
    bench.hl7). Same row, same transaction."""
    values = new_values(
        actor=actor,
        actor_kind=actor_kind,
        action=action,
        study_uid=study_uid,
        site_id=site_id,
        address=address,
        detail=detail,
    )
    # On the connection: a Core INSERT needs none of the session's execution machinery.
    await (await session.connection()).execute(INSERT_EVENT, values)


@dataclass(frozen=True)
class AuditKey:
    """A row's position in the log's newest-first order: (at, id)."""

    at: datetime
    id: int


@dataclass(frozen=True)
class AuditQuery:
    """Which audit rows to list; ``site_ids=None`` means every site (and none)."""

    site_ids: Sequence[int] | None
    study_uid: str | None = None
    actor: str | None = None
    since: datetime | None = None


async def list_events(
    session: AsyncSession, query: AuditQuery, *, after: AuditKey | None, limit: int
) -> list[tuple[AuditEvent, str | None]]:
    """Audit rows matching ``query``, newest first, after ``after``; each with its site code."""
    stmt = select(AuditEvent, Site.code).outerjoin(Site, Site.id == AuditEvent.site_id)
    if query.site_ids is not None:
        stmt = stmt.where(AuditEvent.site_id.in_(query.site_ids) if query.site_ids else false())
    if query.study_uid is not None:
        stmt = stmt.where(AuditEvent.study_uid == query.study_uid)
    if query.actor is not None:
        stmt = stmt.where(AuditEvent.actor == query.actor)
    if query.since is not None:
        stmt = stmt.where(AuditEvent.at >= query.since)
    if after is not None:
        # The redundant ``at <=`` bound lets the (…, at) indexes serve the keyset.
        stmt = stmt.where(
            AuditEvent.at <= after.at,
            or_(AuditEvent.at < after.at, AuditEvent.id < after.id),
        )
    stmt = stmt.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    rows = await session.execute(stmt)
    return [(event, code) for event, code in rows]
