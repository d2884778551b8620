"""Audit log payloads."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel

from worklist.models import AuditEvent


class AuditEntry(BaseModel):
    """One audited read or change: who, what, which study and site, when, from where."""

    id: int
    at: AwareDatetime
    actor: str
    actor_kind: str
    action: str
    study_uid: str | None
    site_code: str | None
    address: str | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, event: AuditEvent, site_code: str | None) -> AuditEntry:
        """Build from the ORM row and its site's code."""
        return cls(
            id=event.id,
            at=event.at,
            actor=event.actor,
            actor_kind=event.actor_kind,
            action=event.action,
            study_uid=event.study_uid,
            site_code=site_code,
            address=event.address,
            detail=event.detail,
        )


class AuditPage(BaseModel):
    """A page of the audit log, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[AuditEntry]
    next_cursor: str | None
