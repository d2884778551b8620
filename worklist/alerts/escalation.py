"""Escalation of alerts whose acknowledgement deadline passed (a worker job)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from worklist.config import Settings


def escalate_overdue(session: Session, settings: Settings) -> int:
    """Escalate every open alert past its ``ack_due_at``; return how many."""
    raise NotImplementedError("escalation is being written")
