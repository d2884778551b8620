"""``GET /api/v1/studies/{study_uid}/priors/{prior_uid}`` and its ``/report``: read-only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, current_user
from worklist.api.guard import UidPath
from worklist.priors import service
from worklist.reports.schemas import ReportOut
from worklist.reports.service import etag
from worklist.studies.schemas import PriorDetail, PriorLinks

router = APIRouter(
    prefix="/api/v1/studies/{study_uid:uid}/priors/{prior_uid:uid}",
    tags=["priors"],
    dependencies=[Depends(current_user)],
)

NOT_LISTED: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "The study is not visible to the caller, or the prior is not one of "
        "the priors its detail lists"
    }
}


@router.get("", response_model=PriorDetail, responses=NOT_LISTED)
async def get_prior(
    study_uid: UidPath,
    prior_uid: UidPath,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
) -> PriorDetail:
    """A prior of a study the caller may see: its detail and series (audited)."""
    detail = await service.get_prior_detail(
        session=session, user=user, study_uid=study_uid, prior_uid=prior_uid, address=address
    )
    detail.links = PriorLinks.build(
        base_url=str(request.base_url).rstrip("/"), study_uid=study_uid, prior_uid=prior_uid
    )
    detail.dicomweb_url = detail.links.dicomweb
    return detail


@router.get(
    "/report",
    response_model=ReportOut,
    responses={
        404: {
            "description": "As for the prior's detail, or the prior has no signed report "
            "(drafts are not shown through a prior)"
        }
    },
)
async def get_prior_report(
    study_uid: UidPath,
    prior_uid: UidPath,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    response: Response,
) -> ReportOut:
    """A prior's signed report with its addenda (audited); ``ETag`` carries its version."""
    report = await service.get_prior_report(
        session=session, user=user, study_uid=study_uid, prior_uid=prior_uid, address=address
    )
    response.headers["ETag"] = etag(report.version)
    return report
