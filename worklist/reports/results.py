"""Results delivery: a signed report, as FHIR R4, to the trust whose patient it is.

Signing and amending call ``deliver_result`` inside their transaction, so the
``report.finalised`` / ``report.amended`` outbox message commits (or rolls back) with
the report. Its deliveries: the webhook, and an ORU^R01 to the trust's RIS when the
site has a RIS target (``worklist.results``, rendered from the same message).
``GET .../report/fhir`` builds the resource the same way from the same rows, so it
equals what the webhook carried for that report version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from worklist import outbox
from worklist.audit import repository as audit
from worklist.doubleread.service import is_blinded
from worklist.enums import AuditAction, OutboxEventType, ReportStatus
from worklist.errors import NotFound
from worklist.models import Report, ReportAddendum, Study, User
from worklist.reports import repository
from worklist.reports.fhir import diagnostic_report
from worklist.studies import repository as studies
from worklist.studies.service import STUDY_NOT_FOUND
from worklist.studies.visibility import result_visible_condition

NO_SIGNED_REPORT = "the study has no signed report (a draft is not a result)"


async def report_parts(
    session: AsyncSession, report: Report
) -> tuple[Sequence[ReportAddendum], dict[int, str]]:
    """The report's addenda (flushing any just added) and the usernames of everyone involved."""
    addenda = await repository.list_addenda(session, report_id=report.id)
    user_ids = {report.author_id, *(a.author_id for a in addenda)}
    if report.finalised_by_id is not None:
        user_ids.add(report.finalised_by_id)
    names = await repository.usernames(session, user_ids)
    return addenda, names


async def deliver_result(
    session: AsyncSession,
    *,
    study: Study,
    report: Report,
    addenda: Sequence[ReportAddendum],
    names: dict[int, str],
    event_type: OutboxEventType,
) -> None:
    """Add the result's outbox message for the originating trust to this transaction."""
    patient, site = await repository.get_patient_and_site(session, study=study)
    readers = await repository.readers(session, names)
    order = await repository.get_order(session, study=study)
    resource = diagnostic_report(
        report=report,
        addenda=addenda,
        study=study,
        patient=patient,
        site=site,
        readers=readers,
        order=order,
    )
    outbox.enqueue(
        session,
        site=site,
        event_type=event_type,
        data={
            "study_uid": study.study_uid,
            "accession_number": study.accession_number,
            "site": {"code": site.code, "name": site.name},
            "report": resource,
        },
        study_id=study.id,
        hl7=True,
    )


async def get_fhir_report(
    *, session: AsyncSession, user: User, study_uid: str, address: str | None
) -> tuple[dict[str, Any], int]:
    """The study's signed report as a FHIR DiagnosticReport, and its version; audited.

    404 when the study is not visible, or has no report or only a draft.
    """
    study = await studies.get_visible_study(
        session, study_uid=study_uid, visible=result_visible_condition(user)
    )
    if study is None:
        raise NotFound(STUDY_NOT_FOUND)
    report = await repository.get_report(session, study_id=study.id)
    if report is None or report.status is ReportStatus.DRAFT:
        raise NotFound(NO_SIGNED_REPORT)
    if await is_blinded(session, user=user, study_id=study.id):
        raise NotFound(NO_SIGNED_REPORT)
    addenda, names = await report_parts(session, report)
    patient, site = await repository.get_patient_and_site(session, study=study)
    readers = await repository.readers(session, names)
    order = await repository.get_order(session, study=study)
    resource = diagnostic_report(
        report=report,
        addenda=addenda,
        study=study,
        patient=patient,
        site=site,
        readers=readers,
        order=order,
    )
    audit.record(
        session,
        actor=user.username,
        actor_kind=audit.ActorKind.USER,
        action=AuditAction.REPORT_FHIR_VIEW,
        study_uid=study.study_uid,
        site_id=study.site_id,
        address=address,
        detail={"version": report.version},
    )
    return resource, report.version
