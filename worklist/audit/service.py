"""Reading the audit log: who may read which rows, keyset cursors, and auditing the read."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from worklist import pagination
from worklist.audit import repository
from worklist.audit.repository import AuditKey, AuditQuery
from worklist.audit.schemas import AuditEntry, AuditPage
from worklist.enums import Role
from worklist.errors import Forbidden
from worklist.models import User

# Reading the log is itself recorded (who looked at whose trail).
AUDIT_VIEW = "audit.view"
NO_AUDIT_ACCESS = "only admins and managers may read the audit log"


def readable_sites(user: User) -> list[int] | None:
    """The sites whose rows ``user`` may read (None: all rows); Forbidden for other roles."""
    if user.role is Role.ADMIN:
        return None
    if user.role is Role.MANAGER:
        return sorted(site.id for site in user.sites)
    raise Forbidden(NO_AUDIT_ACCESS)


def encode_cursor(key: AuditKey) -> str:
    """An opaque cursor for the position after ``key``."""
    return pagination.encode_cursor(key.at, key.id)


def decode_cursor(cursor: str) -> AuditKey:
    """The position a cursor stands for; InvalidInput when it is not one of ours."""
    at, row_id = pagination.decode_cursor(cursor, (datetime, int))
    return AuditKey(at=at, id=row_id)


async def list_audit(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str | None,
    username: str | None,
    since: datetime | None,
    limit: int,
    cursor: str | None,
    address: str | None,
) -> AuditPage:
    """One page of the audit rows ``user`` may read, newest first; the read is audited."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    query = AuditQuery(
        site_ids=readable_sites(user), study_uid=study_uid, actor=username, since=since
    )
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.list_events(session, query, after=after, limit=limit + 1)
    page = rows[:limit]
    next_cursor = (
        encode_cursor(AuditKey(at=page[-1][0].at, id=page[-1][0].id)) if len(rows) > limit else None
    )
    repository.record(
        session,
        actor=user.username,
        actor_kind=repository.ActorKind.USER,
        action=AUDIT_VIEW,
        address=address,
        detail={
            "study_uid": study_uid,
            "username": username,
            "since": since.isoformat() if since else None,
            "returned": len(page),
        },
    )
    return AuditPage(
        items=[AuditEntry.from_row(event, code) for event, code in page], next_cursor=next_cursor
    )
