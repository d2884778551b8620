"""Worklist events (``study.received``, ``study.claimed``, ...).

Domain code *stages* events on the session it is working in; they are published
(Redis Streams) only after that transaction commits, so a rolled-back change never
announces itself. Publishing is best effort: PostgreSQL holds the truth.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

STAGED_KEY = "worklist.events"


class EventType(enum.StrEnum):
    """The event types DESIGN names (domain code may stage others: the type is free text)."""

    STUDY_RECEIVED = "study.received"
    STUDY_READY = "study.ready"
    STUDY_CLAIMED = "study.claimed"
    STUDY_RELEASED = "study.released"
    # Ours: a study's priority, due time or status changed (triage, an order).
    STUDY_UPDATED = "study.updated"
    REPORT_FINALISED = "report.finalised"
    REPORT_AMENDED = "report.amended"
    # Ours (migration 0011): second opinions and double reads.
    SECOND_OPINION_REQUESTED = "second_opinion.requested"
    SECOND_OPINION_CLAIMED = "second_opinion.claimed"
    SECOND_OPINION_ANSWERED = "second_opinion.answered"
    SECOND_OPINION_WITHDRAWN = "second_opinion.withdrawn"
    DOUBLE_READ_CREATED = "double_read.created"
    DOUBLE_READ_SUBMITTED = "double_read.submitted"


@dataclass(frozen=True)
class WorklistEvent:
    """One change a client may be told about; ``site_id`` decides who may see it."""

    type: str
    site_id: int
    study_uid: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def stage(session: AsyncSession, event: WorklistEvent) -> None:
    """Queue ``event`` for publication once ``session``'s transaction commits."""
    session.info.setdefault(STAGED_KEY, []).append(event)


def staged(session: AsyncSession) -> list[WorklistEvent]:
    """Take the events staged on ``session`` (clearing them)."""
    events: list[WorklistEvent] = session.info.pop(STAGED_KEY, [])
    return events
