"""Triage: a manager of the study's site, or an admin, sets its clinical priority."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.enums import AuditAction, Priority, Role
from worklist.errors import Forbidden, NotFound
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import User
from worklist.studies import repository
from worklist.studies.schemas import WorklistItem
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import visible_study_condition

TRIAGE_ROLES = (Role.MANAGER, Role.ADMIN)
ONLY_MANAGERS_TRIAGE = "only a manager of the study's site or an admin may change its priority"


async def triage_study(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str,
    priority: Priority,
    turnaround_targets: dict[str, timedelta],
    address: str | None,
) -> WorklistItem:
    """Set a visible study's priority and recompute ``due_at`` from its arrival; audited."""
    study = await repository.get_visible_study(
        session,
        study_uid=study_uid,
        visible=visible_study_condition(user),
        load=repository.StudyLoad.SITE_AND_PATIENT,
        lock=True,
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    # Managers see only their own site, so a visible study is one they may triage.
    if user.role not in TRIAGE_ROLES:
        raise Forbidden(ONLY_MANAGERS_TRIAGE)
    old_priority, old_due_at = study.priority, study.due_at
    study.priority = priority
    study.due_at = study.received_at + turnaround_targets[priority.value]
    await session.flush()
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.STUDY_TRIAGED,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={
            "old_priority": old_priority.value,
            "new_priority": priority.value,
            "old_due_at": old_due_at.isoformat(),
            "new_due_at": study.due_at.isoformat(),
        },
    )
    stage(
        session,
        WorklistEvent(
            type=EventType.STUDY_UPDATED,
            site_id=study.site_id,
            study_uid=study.study_uid,
            data={"priority": priority.value, "due_at": study.due_at.isoformat()},
        ),
    )
    await session.flush()
    row = await repository.get_worklist_columns(session, study_id=study.id)
    return WorklistItem.model_validate(WorklistItem.fields_from_columns(row))
