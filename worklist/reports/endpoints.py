"""``/api/v1/studies/{study_uid}/report``: read, save a draft, sign, add an addendum; the
signed result as FHIR R4 (``/fhir``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response, status
from fastapi.responses import JSONResponse

from worklist.api.deps import ClientAddress, CurrentUser, SessionDep, SettingsDep, current_user
from worklist.api.guard import UidPath
from worklist.api.limits import body_limited_route, json_body_bytes
from worklist.api.permissions import study_access
from worklist.enums import Role
from worklist.reports import results, service
from worklist.reports.fhir import FHIR_JSON
from worklist.reports.schemas import (
    MAX_TEXT_LENGTH,
    AddendumIn,
    FinaliseIn,
    ReportOut,
    ReportTextIn,
    StaleVersionOut,
)
from worklist.reports.service import NOT_CLAIM_HOLDER, etag

# The longest text a report or an addendum may have, however its JSON spells it.
REPORT_BODY_BYTES = json_body_bytes(MAX_TEXT_LENGTH)

router = APIRouter(
    prefix="/api/v1/studies/{study_uid:uid}/report",
    tags=["reports"],
    dependencies=[Depends(current_user)],
    route_class=body_limited_route(REPORT_BODY_BYTES),
)
# Before the body is validated: the study is visible, and only radiologists write drafts.
WRITER = study_access(roles=(Role.RADIOLOGIST,), detail=NOT_CLAIM_HOLDER)

NOT_VISIBLE: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such study or report, or the study is not visible to the caller"}
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_VISIBLE,
    403: {"description": "The caller may see the study but may not write this report"},
    409: {"description": "The report's state does not allow this (signed, or still a draft)"},
}
STALE: dict[int | str, dict[str, Any]] = {
    412: {"model": StaleVersionOut, "description": "Stale version; the body has the current one"},
}

IfMatch = Annotated[
    str | None,
    Header(description='The version being edited: "3" (also 3 or W/"3"); not on the first save'),
]


@router.get("", response_model=ReportOut, responses=NOT_VISIBLE)
async def get_report(
    study_uid: UidPath,
    session: SessionDep,
    user: CurrentUser,
    address: ClientAddress,
    response: Response,
) -> ReportOut:
    """The study's report with its addenda; ``ETag`` carries its version."""
    report = await service.get_report(
        session=session, user=user, study_uid=study_uid, address=address
    )
    response.headers["ETag"] = etag(report.version)
    return report


@router.get(
    "/fhir",
    response_class=JSONResponse,
    responses={
        200: {
            "content": {FHIR_JSON: {"schema": {"type": "object"}}},
            "description": "The signed report as a FHIR R4 DiagnosticReport",
        },
        404: {"description": "No such study, no signed report, or the study is not visible"},
    },
)
async def get_fhir_report(
    study_uid: UidPath, session: SessionDep, user: CurrentUser, address: ClientAddress
) -> JSONResponse:
    """The signed report as a FHIR R4 ``DiagnosticReport`` (what the trust's webhook got).

    Readable by whoever may read the report, and by the study site's alert client.
    """
    resource, version = await results.get_fhir_report(
        session=session, user=user, study_uid=study_uid, address=address
    )
    return JSONResponse(resource, media_type=FHIR_JSON, headers={"ETag": f'W/"{version}"'})


@router.put(
    "",
    response_model=ReportOut,
    responses={
        **WRITE_ERRORS,
        **STALE,
        428: {"description": "The report exists: If-Match is required"},
    },
    dependencies=[WRITER],
)
async def save_report(
    study_uid: UidPath,
    body: ReportTextIn,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
    response: Response,
    if_match: IfMatch = None,
) -> ReportOut:
    """Save a draft (claim holder only); renews the claim's lease."""
    report = await service.save_draft(
        session=session,
        user=user,
        study_uid=study_uid,
        text=body.text,
        if_match=if_match,
        lease_seconds=settings.claim_lease_seconds,
        address=address,
    )
    response.headers["ETag"] = etag(report.version)
    return report


@router.post(
    "/finalise",
    response_model=ReportOut,
    responses={**WRITE_ERRORS, **STALE},
    dependencies=[WRITER],
)
async def finalise_report(
    study_uid: UidPath,
    body: FinaliseIn,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
    response: Response,
) -> ReportOut:
    """Sign the report at ``version`` (claim holder); the study is reported, the claim ends."""
    report = await service.finalise(
        session=session,
        user=user,
        study_uid=study_uid,
        version=body.version,
        lease_seconds=settings.claim_lease_seconds,
        address=address,
    )
    response.headers["ETag"] = etag(report.version)
    return report


@router.post(
    "/addenda",
    response_model=ReportOut,
    status_code=status.HTTP_201_CREATED,
    responses=WRITE_ERRORS,
    # Whether the report is signed is told to anyone who sees the study (409 before 403).
    dependencies=[study_access()],
)
async def add_addendum(
    study_uid: UidPath,
    body: AddendumIn,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    address: ClientAddress,
    response: Response,
) -> ReportOut:
    """Add an addendum to a signed report (its author or the claim holder); it is amended."""
    report = await service.add_addendum(
        session=session,
        user=user,
        study_uid=study_uid,
        text=body.text,
        lease_seconds=settings.claim_lease_seconds,
        address=address,
    )
    response.headers["ETag"] = etag(report.version)
    return report
