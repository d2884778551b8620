"""Worklist and study reads: visibility, keyset cursors, priors, and the audit of every read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from worklist import pagination
from worklist.audit import repository as audit
from worklist.enums import AuditAction, Priority
from worklist.errors import NotFound
from worklist.models import User
from worklist.opinions import repository as opinions
from worklist.opinions.schemas import SecondOpinionSummary
from worklist.studies import grants, page, repository
from worklist.studies.repository import WorklistKey
from worklist.studies.schemas import (
    PriorStudy,
    ReceivedPatient,
    SeriesOut,
    StudyDetail,
    WorklistFilters,
    WorklistItem,
)
from worklist.studies.visibility import (
    readable_study_condition,
    require_worklist_access,
)
from worklist.users.repository import Account

STUDY_NOT_FOUND = "study not found"


def encode_cursor(key: WorklistKey) -> str:
    """An opaque cursor for the position after ``key``."""
    return pagination.encode_cursor(key.due_at, key.priority, key.received_at, key.id)


def decode_cursor(cursor: str) -> WorklistKey:
    """The position a cursor stands for; InvalidInput when it is not one of ours."""
    due_at, priority, received_at, study_id = pagination.decode_cursor(
        cursor, (datetime, Priority, datetime, int)
    )
    return WorklistKey(due_at=due_at, priority=priority, received_at=received_at, id=study_id)


async def list_worklist(
    *,
    connection: psycopg.AsyncConnection[Any],
    account: Account,
    filters: WorklistFilters,
    limit: int,
    cursor: str | None,
    address: str | None,
) -> dict[str, Any]:
    """One page of the worklist the account may see (a ``WorklistPage``'s fields, as JSON
    writes them: ``worklist.jsonbody``); audited by the statement that reads it."""
    require_worklist_access(account)
    after = decode_cursor(cursor) if cursor else None
    rows = await page.read_page(
        connection,
        account=account,
        address=address,
        filters=filters,
        after=after,
        cursor=cursor,
        limit=limit,
    )
    shown = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = shown[-1]
        key = WorklistKey(
            last["due_at"], Priority(last["priority"]), last["received_at"], last["id"]
        )
        next_cursor = encode_cursor(key)
    items = [WorklistItem.fields_from_columns(row) for row in shown]
    return {"items": items, "next_cursor": next_cursor}


async def get_study_detail(
    *, session: AsyncSession, user: User, study_uid: str, address: str | None
) -> StudyDetail:
    """A visible study with its series and priors (any trust); each read is audited."""
    study = await repository.get_visible_study(
        session,
        study_uid=study_uid,
        visible=readable_study_condition(user),
        load=repository.StudyLoad.SITE_AND_PATIENT,
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    columns = await repository.get_worklist_columns(session, study_id=study.id)
    series = await repository.list_series(session, study_id=study.id)
    # Priors ignore visibility on purpose: a report needs the patient's whole history.
    priors = await repository.list_priors(session, study=study)
    second_opinions = await opinions.list_for_study(session, study_id=study.id)
    grant = grants.audit_detail(user, study)
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.STUDY_VIEW,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail=grant,
    )
    for prior in (p.study for p in priors):
        audit.record(
            session,
            actor=user.username,
            actor_kind=audit.ActorKind.USER,
            action=AuditAction.PRIOR_VIEW,
            study_uid=prior.study_uid,
            site_id=prior.site_id,
            address=address,
            detail={"via": study.study_uid, **grant},
        )
    return StudyDetail(
        **WorklistItem.fields_from_columns(columns),
        series=[SeriesOut.from_series(s) for s in series],
        priors=[PriorStudy.from_row(p) for p in priors],
        received_patient=ReceivedPatient.of_mismatched(study),
        second_opinions=[SecondOpinionSummary.from_row(row) for row in second_opinions],
    )
