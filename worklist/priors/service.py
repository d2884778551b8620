"""Prior reads: a study the caller may see opens its listed priors, and nothing else.

The caller must see the ``via`` study (the worklist's visibility rule) and the prior must
be one of the priors that study's detail lists (``studies.repository.prior_condition``);
anything else is 404. Every read is audited against the prior's study and site, naming
the via study, in the request's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.doubleread.service import is_blinded
from worklist.enums import AuditAction
from worklist.errors import NotFound
from worklist.models import Study, User
from worklist.reports.schemas import ReportOut
from worklist.reports.service import signed_report
from worklist.studies import grants, repository
from worklist.studies.repository import WorklistRow
from worklist.studies.schemas import PriorDetail, SeriesOut, WorklistItem
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import readable_study_condition

PRIOR_NOT_FOUND = "prior not found"


@dataclass(frozen=True)
class ViaStudy:
    """A study the caller may see, and the SQL condition true for exactly its priors."""

    study: Study
    priors: ColumnElement[bool]


async def via_study(session: AsyncSession, *, user: User, study_uid: str) -> ViaStudy:
    """The visible study priors are reached through; NotFound when the caller may not see it."""
    row = await repository.get_visible_study(
        session,
        study_uid=study_uid,
        visible=readable_study_condition(user),
        load=repository.StudyLoad.WORKLIST_ROW,
    )
    if row is None:
        raise NotFound(STUDY_NOT_FOUND)
    return ViaStudy(study=row.study, priors=repository.prior_condition(row.study))


async def open_prior(
    session: AsyncSession, *, user: User, study_uid: str, prior_uid: str
) -> tuple[Study, WorklistRow]:
    """The via study and its listed prior ``prior_uid``; NotFound for either missing."""
    via = await via_study(session, user=user, study_uid=study_uid)
    prior = await repository.get_prior(session, study=via.study, prior_uid=prior_uid)
    if prior is None:
        raise NotFound(PRIOR_NOT_FOUND)
    return via.study, prior


def audit_prior_read(
    session: AsyncSession,
    *,
    user: User,
    action: AuditAction,
    prior_uid: str,
    prior_site_id: int,
    via: Study,
    address: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a prior read against the prior's study and site, naming the via study (and
    the grant the caller reads it through, if that is how they see it)."""
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=action,
        study_uid=prior_uid,
        site_id=prior_site_id,
        address=address,
        detail={"via": via.study_uid, **grants.audit_detail(user, via), **(detail or {})},
    )


async def get_prior_detail(
    *, session: AsyncSession, user: User, study_uid: str, prior_uid: str, address: str | None
) -> PriorDetail:
    """A listed prior's detail (series, no priors of its own); audited as a prior view."""
    via, row = await open_prior(session, user=user, study_uid=study_uid, prior_uid=prior_uid)
    prior = row.study
    series = await repository.list_series(session, study_id=prior.id)
    audit_prior_read(
        session,
        user=user,
        action=AuditAction.PRIOR_VIEW,
        prior_uid=prior.study_uid,
        prior_site_id=prior.site_id,
        via=via,
        address=address,
        detail={"resource": "detail"},
    )
    columns = await repository.get_worklist_columns(session, study_id=prior.id)
    return PriorDetail(
        **WorklistItem.fields_from_columns(columns),
        via=via.study_uid,
        series=[SeriesOut.from_series(s) for s in series],
    )


async def get_prior_report(
    *, session: AsyncSession, user: User, study_uid: str, prior_uid: str, address: str | None
) -> ReportOut:
    """A listed prior's signed report with its addenda; audited as a prior report view."""
    via, row = await open_prior(session, user=user, study_uid=study_uid, prior_uid=prior_uid)
    prior = row.study
    if await is_blinded(session, user=user, study_id=prior.id):
        raise NotFound(PRIOR_NOT_FOUND)
    report = await signed_report(session, study=prior)
    audit_prior_read(
        session,
        user=user,
        action=AuditAction.PRIOR_REPORT_VIEW,
        prior_uid=prior.study_uid,
        prior_site_id=prior.site_id,
        via=via,
        address=address,
        detail={"version": report.version},
    )
    return report
