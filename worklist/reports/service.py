"""Report rules: who may write, optimistic concurrency, signing, addenda, audit and events.

Signing and amending also deliver the result to the originating trust (``results``):
its outbox message is written in the same transaction as the signature or addendum.

Every write first locks the study row, so the writers of one study (saves, signing,
addenda) run one after the other and each sees the version its predecessor committed.
Checks run in this order: the study is visible (404), a report exists where one is
needed (404), the report's state allows the operation (409), the caller may do it
(403), the caller's version is current (428 / 412), the text is acceptable (422).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from worklist.audit import repository as audit
from worklist.claims import repository as claims_repository
from worklist.claims.service import renew_claim
from worklist.doubleread import rules as double_reading
from worklist.doubleread.service import is_blinded
from worklist.enums import AuditAction, OutboxEventType, ReportStatus, StudyFlag
from worklist.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from worklist.events import EventType, WorklistEvent, stage
from worklist.models import Report, ReportAddendum, Study, User
from worklist.reports import repository
from worklist.reports.results import deliver_result, report_parts
from worklist.reports.schemas import AddendumOut, ReportOut
from worklist.studies import grants, lifecycle
from worklist.studies import repository as studies
from worklist.studies.lifecycle import StudyEvent
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import readable_study_condition, visible_study_condition

REPORT_NOT_FOUND = "report not found"
NO_SIGNED_REPORT = "the study has no signed report"
REPORT_IS_SIGNED = "the report is signed: its text cannot change (add an addendum)"
REPORT_NOT_SIGNED = "the report is a draft: addenda are added to signed reports"
NOT_CLAIM_HOLDER = "only the radiologist holding the claim on this study may do this"
NOT_AUTHOR_OR_HOLDER = "only the report's author or the claim holder may add an addendum"
IF_MATCH_REQUIRED = 'the report exists: send If-Match: "<version>" with the version you edited'
IF_MATCH_WILDCARD = 'If-Match must name the version you edited, e.g. If-Match: "3"'
NO_REPORT_YET = "there is no report yet: save the first draft without If-Match"
STALE_VERSION = "the report has changed since that version: reload it and reapply your edit"
EMPTY_TEXT = "a report cannot be signed with empty text"
EMPTY_ADDENDUM = "an addendum needs text"


class PreconditionRequired(DomainError):
    """A write to an existing report came without ``If-Match``."""

    status_code = 428


class StaleVersion(DomainError):
    """The caller's version is not the report's current one (0: there is no report)."""

    status_code = 412

    def __init__(self, detail: str, *, version: int) -> None:
        super().__init__(detail)
        self.version = version

    def body(self) -> dict[str, Any]:
        """The detail and the report's current version."""
        return {**super().body(), "version": self.version}

    def headers(self) -> dict[str, str]:
        """The current version as the ETag, when there is a report."""
        return {"ETag": etag(self.version)} if self.version else {}


def parse_if_match(header: str | None) -> set[int] | None:
    """The versions an ``If-Match`` header names (``"3"``, ``3``, ``W/"3"``, lists); None if absent.

    Tags that are not versions of ours are dropped, so they never match (412);
    ``*`` is refused because it would overwrite whatever version is there.
    """
    if header is None or not header.strip():
        return None
    versions: set[int] = set()
    for raw in header.split(","):
        tag = raw.strip().removeprefix("W/").strip().strip('"').strip()
        if tag == "*":
            raise PreconditionRequired(IF_MATCH_WILDCARD)
        if tag.isascii() and tag.isdigit():
            versions.add(int(tag))
    return versions


def etag(version: int) -> str:
    """The entity tag of a report version."""
    return f'"{version}"'


async def get_report(
    *, session: AsyncSession, user: User, study_uid: str, address: str | None
) -> ReportOut:
    """The report of a study the user may see, with its addenda; the read is audited."""
    study = await studies.get_visible_study(
        session, study_uid=study_uid, visible=readable_study_condition(user)
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    if await is_blinded(session, user=user, study_id=study.id):
        raise NotFound(REPORT_NOT_FOUND)
    report = await _require_report(session, study=study)
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.REPORT_VIEW,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={"version": report.version, **grants.audit_detail(user, study)},
    )
    return await _report_out(session, report)


async def signed_report(session: AsyncSession, *, study: Study) -> ReportOut:
    """The study's signed report with its addenda (NotFound for none or a draft); not audited.

    For readers outside the study's own reporting (a prior read through another study):
    a draft is the author's work in progress, not a result anyone else should act on.
    """
    report = await _require_report(session, study=study)
    if report.status is ReportStatus.DRAFT:
        raise NotFound(NO_SIGNED_REPORT)
    return await _report_out(session, report)


async def save_draft(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str,
    text: str,
    if_match: str | None,
    lease_seconds: float,
    address: str | None,
) -> ReportOut:
    """Save a draft as the claim holder: the first save creates it, later ones need If-Match."""
    study = await _visible_study(session, user=user, study_uid=study_uid, lock=True)
    current = await repository.get_report(session, study_id=study.id)
    if current is not None and current.status is not ReportStatus.DRAFT:
        raise Conflict(REPORT_IS_SIGNED)
    await _renew_claim(
        session, study=study, user=user, lease_seconds=lease_seconds, address=address
    )
    expected = parse_if_match(if_match)
    saved: Report | None
    if current is None:
        if expected is not None:
            raise StaleVersion(NO_REPORT_YET, version=0)
        saved = await repository.create_draft(
            session, study_id=study.id, text=text, author_id=user.id
        )
        if saved is None:
            raise PreconditionRequired(IF_MATCH_REQUIRED)
    else:
        if expected is None:
            raise PreconditionRequired(IF_MATCH_REQUIRED)
        if current.version not in expected:
            raise StaleVersion(STALE_VERSION, version=current.version)
        saved = await repository.update_draft(
            session,
            report_id=current.id,
            expected_version=current.version,
            text=text,
            author_id=user.id,
        )
        if saved is None:
            await _raise_for_lost_race(session, study=study)
    repository.add_version(session, report=saved, saved_by_id=user.id)
    _audit_change(session, user, study, AuditAction.REPORT_SAVED, saved, address)
    return await _report_out(session, saved)


async def finalise(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str,
    version: int,
    lease_seconds: float,
    address: str | None,
) -> ReportOut:
    """Sign the draft at ``version``: the study becomes reported and its claim ends."""
    study = await _visible_study(session, user=user, study_uid=study_uid, lock=True)
    current = await _require_report(session, study=study)
    if current.status is not ReportStatus.DRAFT:
        raise Conflict(REPORT_IS_SIGNED)
    await _renew_claim(
        session, study=study, user=user, lease_seconds=lease_seconds, address=address
    )
    if current.version != version:
        raise StaleVersion(STALE_VERSION, version=current.version)
    if not current.text.strip():
        raise InvalidInput(EMPTY_TEXT)
    signed = await repository.finalise(
        session, report_id=current.id, expected_version=version, user_id=user.id
    )
    if signed is None:
        await _raise_for_lost_race(session, study=study)
    repository.add_version(session, report=signed, saved_by_id=user.id)
    await claims_repository.delete_claim(session, study_id=study.id)
    lifecycle.apply(study, StudyEvent.REPORT_SIGNED)
    await session.flush()
    _audit_change(session, user, study, AuditAction.REPORT_FINALISED, signed, address)
    addenda, names = await report_parts(session, signed)
    await deliver_result(
        session,
        study=study,
        report=signed,
        addenda=addenda,
        names=names,
        event_type=OutboxEventType.REPORT_FINALISED,
    )
    out = _to_out(signed, addenda, names)
    stage(
        session,
        WorklistEvent(
            type=EventType.REPORT_FINALISED,
            site_id=study.site_id,
            study_uid=study.study_uid,
            data={"version": out.version, "author": out.author, "finalised_by": user.username},
        ),
    )
    await double_reading.after_first_final(
        session, study=study, author_id=signed.author_id, user=user, address=address
    )
    return out


async def add_addendum(
    *,
    session: AsyncSession,
    user: User,
    study_uid: str,
    text: str,
    lease_seconds: float,
    address: str | None,
) -> ReportOut:
    """Add an addendum to a signed report (author or claim holder); the report is amended.

    When the addendum answers images that arrived after signing, the study is reported
    again: the flag is cleared and the claim taken for the addendum ends. Any addendum
    clears ``major_discrepancy`` (a second opinion's, ``worklist.opinions``).
    """
    study = await _visible_study(session, user=user, study_uid=study_uid, lock=True)
    current = await _require_report(session, study=study)
    if current.status is ReportStatus.DRAFT:
        raise Conflict(REPORT_NOT_SIGNED)
    if current.author_id != user.id:
        await _renew_claim(
            session,
            study=study,
            user=user,
            lease_seconds=lease_seconds,
            address=address,
            denied=NOT_AUTHOR_OR_HOLDER,
        )
    if not text.strip():
        raise InvalidInput(EMPTY_ADDENDUM)
    repository.add_addendum(session, report_id=current.id, text=text, author_id=user.id)
    amended = await repository.mark_amended(session, report_id=current.id)
    if amended is None:
        await _raise_for_lost_race(session, study=study)
    repository.add_version(session, report=amended, saved_by_id=user.id)
    if StudyFlag.NEW_IMAGES_AFTER_REPORT in study.flags:
        await claims_repository.delete_claim(session, study_id=study.id)
        lifecycle.apply(study, StudyEvent.NEW_IMAGES_ANSWERED)
    else:
        lifecycle.apply(study, StudyEvent.ADDENDUM_ADDED)  # answers a major discrepancy
    await session.flush()
    _audit_change(session, user, study, AuditAction.REPORT_ADDENDUM, amended, address)
    addenda, names = await report_parts(session, amended)
    await deliver_result(
        session,
        study=study,
        report=amended,
        addenda=addenda,
        names=names,
        event_type=OutboxEventType.REPORT_AMENDED,
    )
    stage(
        session,
        WorklistEvent(
            type=EventType.REPORT_AMENDED,
            site_id=study.site_id,
            study_uid=study.study_uid,
            data={"version": amended.version, "addendum_by": user.username},
        ),
    )
    return _to_out(amended, addenda, names)


async def _visible_study(session: AsyncSession, *, user: User, study_uid: str, lock: bool) -> Study:
    study = await studies.get_visible_study(
        session, study_uid=study_uid, visible=visible_study_condition(user), lock=lock
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    return study


async def _require_report(session: AsyncSession, *, study: Study) -> Report:
    report = await repository.get_report(session, study_id=study.id)
    if report is None:
        raise NotFound(REPORT_NOT_FOUND)
    return report


async def _renew_claim(
    session: AsyncSession,
    *,
    study: Study,
    user: User,
    lease_seconds: float,
    address: str | None,
    denied: str = NOT_CLAIM_HOLDER,
) -> None:
    """Renew the caller's claim on the study (activity keeps a lease); Forbidden without one."""
    try:
        await renew_claim(
            session,
            study_id=study.id,
            user_id=user.id,
            lease_seconds=lease_seconds,
            address=address,
        )
    except DomainError as exc:
        raise Forbidden(denied) from exc


async def _raise_for_lost_race(session: AsyncSession, *, study: Study) -> NoReturn:
    """A guarded write matched nothing: say why, from the state another writer committed."""
    report = await repository.get_report(session, study_id=study.id)
    if report is None:
        raise NotFound(REPORT_NOT_FOUND)
    if report.status is not ReportStatus.DRAFT:
        raise Conflict(REPORT_IS_SIGNED)
    raise StaleVersion(STALE_VERSION, version=report.version)


def _audit_change(
    session: AsyncSession,
    user: User,
    study: Study,
    action: AuditAction,
    report: Report,
    address: str | None,
) -> None:
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=action,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={"version": report.version, "status": report.status.value},
    )


async def _report_out(session: AsyncSession, report: Report) -> ReportOut:
    addenda, names = await report_parts(session, report)
    return _to_out(report, addenda, names)


def _to_out(report: Report, addenda: Sequence[ReportAddendum], names: dict[int, str]) -> ReportOut:
    return ReportOut(
        status=report.status,
        text=report.text,
        author=names[report.author_id],
        version=report.version,
        created_at=report.created_at,
        updated_at=report.updated_at,
        finalised_at=report.finalised_at,
        finalised_by=names[report.finalised_by_id] if report.finalised_by_id else None,
        addenda=[
            AddendumOut(text=a.text, author=names[a.author_id], created_at=a.created_at)
            for a in addenda
        ],
    )
