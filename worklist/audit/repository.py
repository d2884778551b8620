"""SQL for the audit log: rows are added to the caller's transaction, never committed here."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from worklist.enums import AuditAction
from worklist.models import AuditEvent

# Longest actor text kept: an attempted username is caller-controlled input.
MAX_ACTOR_LENGTH = 128


class ActorKind(enum.StrEnum):
    """Who performed an audited action."""

    USER = "user"
    NODE = "node"
    SYSTEM = "system"


def record(
    session: Session | AsyncSession,
    *,
    actor: str,
    actor_kind: ActorKind | str,
    action: AuditAction | str,
    study_uid: str | None = None,
    site_id: int | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one audit row to ``session``'s transaction (sync or async); it commits with it."""
    event = AuditEvent(
        actor=actor[:MAX_ACTOR_LENGTH],
        actor_kind=str(actor_kind),
        action=str(action),
        study_uid=study_uid,
        site_id=site_id,
        address=address,
        detail=detail or {},
    )
    session.add(event)
    return event
