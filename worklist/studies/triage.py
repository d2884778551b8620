"""Triage: a manager of the study's site, or an admin, sets its clinical priority and its
subspecialty (set by hand, it no longer follows the routing rules until set to null)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.enums import AuditAction, Role
from worklist.errors import Forbidden, InvalidInput, NotFound
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import Study, User
from worklist.routing import service as routing
from worklist.studies import repository
from worklist.studies.schemas import TriageRequest, WorklistItem
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import visible_study_condition
from worklist.subspecialties.service import check_codes

TRIAGE_ROLES = (Role.MANAGER, Role.ADMIN)
ONLY_MANAGERS_TRIAGE = "only a manager of the study's site or an admin may change its priority"
NOTHING_TO_CHANGE = "give priority and/or subspecialty"


async def triage_study(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str,
    change: TriageRequest,
    turnaround_targets: dict[str, timedelta],
    address: str | None,
) -> WorklistItem:
    """Set a visible study's priority (``due_at`` recomputed from its arrival) and/or its
    subspecialty; audited, announced as ``study.updated``."""
    fields = change.model_fields_set
    if not fields:
        raise InvalidInput(NOTHING_TO_CHANGE)
    if "priority" in fields and change.priority is None:
        raise InvalidInput("priority cannot be null")
    if "subspecialty" in fields:
        # Before the study is locked (worklist.routing.service.hold_rules).
        await routing.hold_rules(session)
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
    detail: dict[str, Any] = {}
    data: dict[str, Any] = {}
    if change.priority is not None:
        detail |= {"old_priority": study.priority.value, "new_priority": change.priority.value}
        detail["old_due_at"] = study.due_at.isoformat()
        study.priority = change.priority
        study.due_at = study.received_at + turnaround_targets[change.priority.value]
        detail["new_due_at"] = study.due_at.isoformat()
        data |= {"priority": change.priority.value, "due_at": study.due_at.isoformat()}
    if "subspecialty" in fields:
        detail["old_subspecialty"] = study.subspecialty
        detail["old_subspecialty_rule"] = study.subspecialty_rule
        await _set_subspecialty(session, study, change.subspecialty)
        detail["new_subspecialty"] = study.subspecialty
        detail["new_subspecialty_rule"] = study.subspecialty_rule
        data |= {"subspecialty": study.subspecialty, "subspecialty_rule": study.subspecialty_rule}
    await session.flush()
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.STUDY_TRIAGED,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail=detail,
    )
    stage(
        session,
        WorklistEvent(
            type=EventType.STUDY_UPDATED,
            site_id=study.site_id,
            study_uid=study.study_uid,
            data=data,
        ),
    )
    await session.flush()
    row = await repository.get_worklist_columns(session, study_id=study.id)
    return WorklistItem.model_validate(WorklistItem.fields_from_columns(row))


async def _set_subspecialty(session: AsyncSession, study: Study, code: str | None) -> None:
    """A code set by hand (no rule), or null: routed by the rules again now."""
    if code is not None:
        await check_codes(session, [code])
        study.subspecialty, study.subspecialty_rule = code, None
        return
    study.subspecialty, study.subspecialty_rule = None, None
    await session.flush()
    await routing.route_studies(session, [study.id])
